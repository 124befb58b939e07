"""Time a whole decode step of a dense transformer (Llama-3.1-8B geometry, random bf16 weights) on one GPU.

What it separates: the memory time a decode step cannot avoid (weights + KV read once) from the
fixed cost each kernel adds. Each case is timed eager and replayed as a CUDA graph; a tiny model
with the same kernel sequence (every kernel a few KiB) gives the per-kernel floor of that chain.
The kernels are plain PyTorch (cuBLAS GEMMs, SDPA flash decode, unfused elementwise ops), not a
serving stack's fused kernels: read the step as "this kernel chain on this chip", not as a
framework's TPOT. Informs `Efficiency.kernel_launch_us` and `hbm_frac` at decode.

    python3 bench/gpu/decode_step.py --out $OUT/decode_step.json [--batches 1,8,32,128] [--context 2048]

Prints one line per case; writes every case to --out as it is measured (a killed run keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Geometry:
    name: str
    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int

    def weight_bytes(self) -> int:
        per_layer = self.hidden * ((self.q_heads + 2 * self.kv_heads) * self.head_dim) \
            + self.q_heads * self.head_dim * self.hidden + self.hidden * 2 * self.ffn + self.ffn * self.hidden \
            + 2 * self.hidden
        return 2 * (self.layers * per_layer + self.vocab * self.hidden + self.hidden)

    def kv_bytes(self, batch: int, context: int) -> int:
        return 2 * self.layers * 2 * self.kv_heads * self.head_dim * batch * context


LLAMA8B = Geometry("llama-3.1-8b", 32, 4096, 32, 8, 128, 14336, 128256)
TINY = Geometry("tiny (same kernel chain)", 32, 128, 1, 1, 128, 128, 128)


def build(torch, g: Geometry, batch: int, context: int):
    F = torch.nn.functional
    dev, dt = "cuda", torch.bfloat16
    s = 0.02
    layers = []
    for _ in range(g.layers):
        layers.append(dict(
            wqkv=torch.randn((g.q_heads + 2 * g.kv_heads) * g.head_dim, g.hidden, device=dev, dtype=dt) * s,
            wo=torch.randn(g.hidden, g.q_heads * g.head_dim, device=dev, dtype=dt) * s,
            wgu=torch.randn(2 * g.ffn, g.hidden, device=dev, dtype=dt) * s,
            wd=torch.randn(g.hidden, g.ffn, device=dev, dtype=dt) * s,
            n1=torch.ones(g.hidden, device=dev, dtype=dt), n2=torch.ones(g.hidden, device=dev, dtype=dt),
            k=torch.randn(batch, g.kv_heads, context, g.head_dim, device=dev, dtype=dt),
            v=torch.randn(batch, g.kv_heads, context, g.head_dim, device=dev, dtype=dt)))
    lm = torch.randn(g.vocab, g.hidden, device=dev, dtype=dt) * s
    nf = torch.ones(g.hidden, device=dev, dtype=dt)
    rot = torch.randn(g.head_dim, device=dev, dtype=dt)
    x0 = torch.randn(batch, g.hidden, device=dev, dtype=dt)
    pos = context - 1
    qd, kd = g.q_heads * g.head_dim, g.kv_heads * g.head_dim

    def step():
        x = x0
        for L in layers:
            h = F.rms_norm(x, (g.hidden,), L["n1"])
            qkv = h @ L["wqkv"].t()
            q = qkv[:, :qd].view(batch, g.q_heads, 1, g.head_dim) * rot  # stands in for rotary
            k = qkv[:, qd:qd + kd].view(batch, g.kv_heads, 1, g.head_dim) * rot
            L["k"][:, :, pos:pos + 1].copy_(k)
            L["v"][:, :, pos:pos + 1].copy_(qkv[:, qd + kd:].view(batch, g.kv_heads, 1, g.head_dim))
            a = F.scaled_dot_product_attention(q, L["k"], L["v"], enable_gqa=True)
            x = x + a.reshape(batch, qd) @ L["wo"].t()
            h = F.rms_norm(x, (g.hidden,), L["n2"])
            gu = h @ L["wgu"].t()
            x = x + (F.silu(gu[:, :g.ffn]) * gu[:, g.ffn:]) @ L["wd"].t()
        return F.rms_norm(x, (g.hidden,), nf) @ lm.t()

    return step


def time_ms(torch, fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b))
    return statistics.median(out)


def count_kernels(torch, fn) -> int:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)


def measure(torch, g: Geometry, batch: int, context: int, reps: int) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    step = build(torch, g, batch, context)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), torch.no_grad():
        step()
        kernels = count_kernels(torch, step)
        eager = time_ms(torch, step, reps)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        graph.replay()
        graphed = time_ms(torch, graph.replay, reps)
    del graph, step
    torch.cuda.empty_cache()
    byts = g.weight_bytes() + g.kv_bytes(batch, context)
    return dict(model=g.name, batch=batch, context=context, kernels_per_step=kernels,
                eager_ms=round(eager, 4), graph_ms=round(graphed, 4), bytes_read=byts,
                graph_tb_s=round(byts / (graphed * 1e-3) / 1e12, 4),
                graph_us_per_kernel=round(graphed * 1e3 / kernels, 3), geometry=asdict(g))


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be at least 1")
    return v


def batch_list(text: str) -> list[int]:
    """argparse type: comma-separated batches, each >= 1."""
    return [positive_int(b.strip()) for b in text.split(",") if b.strip()] or [positive_int("")]


def require_cuda():
    """torch with a CUDA device, or one line on stderr and exit 2."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        what = "torch is not installed here" if torch is None else "torch sees no CUDA device"
        print(f"error: {what}; run this on the GPU machine (bench/gpu/README.md)", file=sys.stderr)
        raise SystemExit(2)
    return torch


def write_json(path: Path, doc: dict) -> None:
    """Write `doc` whole or not at all (a temporary file renamed over `path`)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--batches", default="1,8,32,128", type=batch_list)
    p.add_argument("--context", type=positive_int, default=2048)
    p.add_argument("--reps", type=positive_int, default=30)
    args = p.parse_args()
    if args.out.is_dir() or not args.out.parent.is_dir():
        p.error(f"--out {args.out}: give a file path in an existing folder")
    torch = require_cuda()
    env = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
               date=time.strftime("%Y-%m-%d", time.gmtime()), note="random bf16 weights; plain PyTorch kernels; "
               "sdpa flash backend with enable_gqa; medians of --reps after one warmup")
    rows = []
    cases = [(TINY, 1, 16)] + [(LLAMA8B, b, args.context) for b in args.batches]
    for g, b, c in cases:
        try:
            r = measure(torch, g, b, c, args.reps)
        except Exception as e:  # noqa: BLE001 - one failed case must not lose the others
            print(f"{g.name} batch={b}: skipped ({type(e).__name__}: {str(e).splitlines()[0][:160]})", flush=True)
            continue
        rows.append(r)
        print(f"{g.name} batch={b} context={c}: {r['kernels_per_step']} kernels, eager {r['eager_ms']} ms, "
              f"graph {r['graph_ms']} ms ({r['graph_tb_s']} TB/s of {r['bytes_read'] / 1e9:.2f} GB; "
              f"{r['graph_us_per_kernel']} us/kernel)", flush=True)
        write_json(args.out, dict(env=env, cases=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
