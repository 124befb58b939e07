"""Device check: GEMM TFLOP/s in a short burst against the same GEMMs run back to back for a minute.

Why (issue 19, `bench/train_layer_breakdown.py`): the training engine reproduces Korthikanti et al.'s
A100 layer and step times, but on H100 its BF16 layers run ~1.4x faster than Megatron's published
runs while its FP8 layers match NVIDIA's rows only because the FP8 GEMM rate it uses (0.52 of peak,
inference kernel tables with a dynamic-quantization pass) sits below what FP8 kernels reach
(cuBLASLt 1,290-1,377 TFLOP/s, public.csv M0329/M0330). One candidate shared by both formats is the
clock a GPU holds under hours of dense GEMMs at its power limit, below the clock of a kernel
microbenchmark. This script measures it: per precision and shape, the TFLOP/s of a 50-iteration
burst (what kernel tables record) and of `--seconds` of back-to-back GEMMs on normally distributed
data in 5-second windows, with the SM clock and board power NVML reports in each window.

Run on a GPU machine: python bench/train_gemm_sustained.py [--seconds 60]   (prints figures; asserts nothing)
Needs torch with CUDA (FP8 via torch._scaled_mm on Hopper or newer); pynvml optional.
"""

from __future__ import annotations

import argparse
import time

SHAPES = (
    (8192, 8192, 8192),
    (8192, 7168, 8192),  # Llama-3-70B at TP 8, seq 8192: fused gate/up (2 x 28672 / 8) x hidden
    (4096, 4608, 12288),  # GPT-3 175B at TP 8, seq 4096: QKV
)


def nvml():
    try:
        import pynvml

        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        return lambda: (pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                        pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
    except Exception:  # noqa: BLE001 - NVML is optional
        return lambda: (float("nan"), float("nan"))


def gemm_fn(torch, m, n, k, precision):
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    if precision == "bf16":
        return lambda: a @ b.t()
    fp8 = torch.float8_e4m3fn
    a8, b8 = a.to(fp8), b.to(fp8)
    one = torch.ones((), device="cuda", dtype=torch.float32)
    return lambda: torch._scaled_mm(a8, b8.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    import torch

    probe = nvml()
    print(f"{torch.cuda.get_device_name(0)}; sustained window {args.seconds:.0f} s")
    print(f"{'prec':<5} {'M x N x K':<20} {'burst TFLOP/s':>14} {'sustained (5 s windows), SM MHz, W':>40}")
    for precision in ("bf16", "fp8"):
        for m, n, k in SHAPES:
            try:
                fn = gemm_fn(torch, m, n, k, precision)
                fn()
            except Exception as exc:  # noqa: BLE001 - e.g. no FP8 on this GPU
                print(f"{precision:<5} {m}x{n}x{k}: skipped ({exc.__class__.__name__})")
                continue
            flops = 2.0 * m * n * k
            torch.cuda.synchronize()
            for _ in range(10):
                fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(50):
                fn()
            torch.cuda.synchronize()
            burst = 50 * flops / (time.perf_counter() - t0) / 1e12
            windows, end = [], time.perf_counter() + args.seconds
            while time.perf_counter() < end:
                t0, it = time.perf_counter(), 0
                while time.perf_counter() - t0 < 5.0:
                    for _ in range(20):
                        fn()
                    it += 20
                    torch.cuda.synchronize()
                clock, watts = probe()
                windows.append((it * flops / (time.perf_counter() - t0) / 1e12, clock, watts))
            text = " ".join(f"{w[0]:.0f}@{w[1]:.0f}/{w[2]:.0f}" for w in windows)
            print(f"{precision:<5} {f'{m}x{n}x{k}':<20} {burst:>14.0f}   {text}")


if __name__ == "__main__":
    main()
