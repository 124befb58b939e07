"""GPU microbenchmarks written as rows of tokenfab's measurement CSV schema.

Measures, on one NVIDIA GPU, what the engine's efficiency parameters describe: dense GEMMs (bf16,
fp8), MoE grouped GEMMs, decode attention and HBM copy bandwidth. The rows feed
`tokenfab validate --data FILE` and, after review, `tokenfab calibrate`.

Run (repository root, torch with CUDA only; tokenfab itself is not needed):
    python3 bench/gpu/microbench.py --out $OUT/micro.csv [--quick] [--only gemm,grouped,attention,bandwidth]
    python3 bench/gpu/microbench.py --out micro.csv --dry-run     # no GPU, no torch: fake timings, usable 0

Only the standard library and torch are used; torch is imported only for a real run. Each row is
written and flushed as soon as it is measured, so a run that is killed keeps what it measured; a
kernel that fails is skipped with its reason printed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import random
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import Any

COLUMNS = (
    "id", "source", "source_ref", "hardware", "num_chips", "model", "weight_precision", "activation_precision",
    "kv_precision", "framework", "scenario", "input_len", "output_len", "batch", "tp", "pp", "ep", "dp",
    "gemm_m", "gemm_n", "gemm_k", "message_bytes", "metric", "per", "value", "slo_ttft_ms", "slo_tpot_ms",
    "usable", "notes",
)
"""The measurement schema's columns (tokenfab.specs.measurement.COLUMNS), in order."""

SCRIPT = "bench/gpu/microbench.py"
ID_PREFIX = "K"  # K for kernel rows (G is taken by generation rows in public.csv)
BLOCKS = ("gemm", "grouped", "attention", "bandwidth")
PRECISIONS = ("bf16", "fp8")
UNITS = {"tflops": "TFLOPS", "tb_s": "TB/s"}

# (shape name, N, K) of the weight in A[M,K] x W[K,N]; weights are stored [N,K] as in nn.Linear.
LLAMA70B_SHAPES = (("Llama-70B TP1 qkv_proj", 10240, 8192), ("Llama-70B TP1 o_proj", 8192, 8192),
                   ("Llama-70B TP1 gate_up_proj", 57344, 8192), ("Llama-70B TP1 down_proj", 8192, 28672))
MIXTRAL_SHAPES = (("Mixtral-8x7B expert w1+w3", 28672, 4096), ("Mixtral-8x7B expert w2", 4096, 14336))
GEMM_M = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
QUICK_GEMM_SHAPES = (LLAMA70B_SHAPES[1], LLAMA70B_SHAPES[2], MIXTRAL_SHAPES[1])
QUICK_GEMM_M = (64, 512, 4096)

EXPERTS = 8
ROWS_PER_EXPERT = (64, 128, 256, 512, 1024, 2048)
QUICK_ROWS_PER_EXPERT = (128, 1024)
RAGGED_CHUNK = 16  # ragged groups get whole 16-row chunks: keeps every group's fp8 rows 16-byte aligned
RAGGED_SEED = 20250101

Q_HEADS, KV_HEADS, HEAD_DIM = 64, 8, 128  # Llama-3.1-70B attention geometry
ATTN_BATCH = (1, 16, 64, 256)
ATTN_CONTEXT = (512, 2048, 8192)
QUICK_ATTN_BATCH = (1, 64)
QUICK_ATTN_CONTEXT = (2048, 8192)
MIN_USABLE_KV_BYTES = 1 << 30  # below this a decode kernel is far from the 4 GiB stream micro.py predicts

COPY_BYTES = 4 << 30
FAST_ACCUM = True  # fp8 GEMMs accumulate with the tensor cores' fast path, as serving stacks do
SLEEP_CYCLES = 1_000_000  # ~0.5 ms GPU spin before each timed call hides Python launch cost
FAKE_SECONDS = 1e-3  # --dry-run: every kernel "takes" 1 ms

HARDWARE_IDS = (("GH200", "gh200"), ("H200", "h200-sxm"), ("H100 PCIe", "h100-pcie"),
                ("H100 80GB HBM3", "h100-sxm"), ("A100-SXM4-80GB", "a100-sxm-80g"),
                ("B200", "b200"))
"""Device-name substrings → catalog chip ids (first match wins; NVL cards never match)."""


class Skip(Exception):
    """A kernel this torch build or GPU cannot run; the message says why."""


@dataclass
class Case:
    """One measurement: the CSV fields it fills, the work of one call and how to build the call."""

    label: str
    """Progress-line name."""
    fields: dict
    """CSV columns this case sets (scenario, metric, precisions, shape)."""
    work: float
    """FLOPs (metric tflops) or bytes (metric tb_s) of one call."""
    notes: str
    """What was measured, for the row's notes."""
    build: Callable[[Any], tuple[Callable[[], Any], str]]
    """torch → (the call to time, how it is computed)."""
    flush_l2: bool = True
    """Flush L2 before each timed call (small kernels)."""
    unusable: str = ""
    """Why the row cannot be predicted honestly ("" = usable)."""


@dataclass
class Env:
    """Where the rows were measured: the columns shared by every row and the environment note."""

    hardware: str
    framework: str
    source: str
    source_ref: str
    notes: str
    dry_run: bool = False


# ---------------------------------------------------------------------------------------------
# Cases (no torch needed)


def gemm_cases(quick: bool) -> list[Case]:
    """Dense GEMMs at Llama-70B TP1 projection and Mixtral expert shapes, bf16 and fp8."""
    shapes = QUICK_GEMM_SHAPES if quick else LLAMA70B_SHAPES + MIXTRAL_SHAPES
    out = []
    for precision in PRECISIONS:
        for name, n, k in shapes:
            for m in QUICK_GEMM_M if quick else GEMM_M:
                out.append(Case(
                    label=f"gemm {precision} M={m} N={n} K={k}",
                    fields=dict(scenario="gemm", metric="tflops", weight_precision=precision,
                                activation_precision=precision, gemm_m=m, gemm_n=n, gemm_k=k),
                    work=2.0 * m * n * k,
                    notes=f"dense GEMM, {name}: A[M,K] x W[K,N] with W stored [N,K]; tflops = 2MNK / kernel time",
                    build=partial(build_dense, m=m, n=n, k=k, precision=precision)))
    return out


def expert_rows(rows_per_expert: int, ragged: bool) -> list[int]:
    """Rows of each of the EXPERTS groups: all equal, or a fixed-seed multinomial draw of the same total
    in RAGGED_CHUNK-row chunks (equal probabilities)."""
    if not ragged:
        return [rows_per_expert] * EXPERTS
    rng = random.Random(RAGGED_SEED + rows_per_expert)
    chunks = [0] * EXPERTS
    for _ in range(EXPERTS * rows_per_expert // RAGGED_CHUNK):
        chunks[rng.randrange(EXPERTS)] += 1
    return [c * RAGGED_CHUNK for c in chunks]


def grouped_cases(quick: bool) -> list[Case]:
    """MoE grouped GEMMs at Mixtral-8x7B expert shapes: 8 groups, uniform and ragged rows per group."""
    out = []
    for precision in PRECISIONS:
        for name, n, k in MIXTRAL_SHAPES:
            for m_e in QUICK_ROWS_PER_EXPERT if quick else ROWS_PER_EXPERT:
                for ragged in (False, True):
                    rows = expert_rows(m_e, ragged)
                    layout = "ragged" if ragged else "uniform"
                    out.append(Case(
                        label=f"grouped {precision} {layout} E={EXPERTS} m_e={m_e} N={n} K={k}",
                        fields=dict(scenario="gemm", metric="tflops", weight_precision=precision,
                                    activation_precision=precision, batch=EXPERTS, gemm_m=m_e, gemm_n=n, gemm_k=k),
                        work=2.0 * sum(rows) * n * k,
                        notes=(f"grouped GEMM ({layout}), {name}: {EXPERTS} groups, rows per group {rows} "
                               f"(total {sum(rows)}); batch = number of groups, gemm_m = mean rows per group; "
                               f"tflops = 2*sum(rows)*N*K / kernel time"
                               + (f"; ragged rows: multinomial draw, seed {RAGGED_SEED + m_e}, "
                                  f"{RAGGED_CHUNK}-row chunks" if ragged else "")),
                        build=partial(build_grouped, rows=rows, n=n, k=k, precision=precision)))
    return out


def attention_cases(quick: bool) -> list[Case]:
    """Decode attention (one query token per sequence) over a bf16 KV cache, Llama-70B heads."""
    out = []
    for batch in QUICK_ATTN_BATCH if quick else ATTN_BATCH:
        for context in QUICK_ATTN_CONTEXT if quick else ATTN_CONTEXT:
            kv_bytes = 2 * batch * context * KV_HEADS * HEAD_DIM * 2
            unusable = "" if kv_bytes >= MIN_USABLE_KV_BYTES else (
                f"small KV read: validate/micro.py predicts attention tb_s as a 4 GiB stream (shape not "
                f"modelled); this kernel reads {kv_bytes / 2**20:.0f} MiB of KV, too little to reach that rate")
            out.append(Case(
                label=f"attention decode bf16 batch={batch} context={context}",
                fields=dict(scenario="attention", metric="tb_s", activation_precision="bf16", kv_precision="bf16",
                            batch=batch, input_len=context),
                work=float(kv_bytes),
                notes=(f"decode attention (1 query token per sequence), batch {batch}, context {context}, "
                       f"{Q_HEADS} q heads / {KV_HEADS} kv heads, head_dim {HEAD_DIM} (Llama-3.1-70B geometry), "
                       f"bf16 KV; tb_s = K+V bytes read ({kv_bytes} B) / kernel time"),
                build=partial(build_attention, batch=batch, context=context),
                unusable=unusable))
    return out


def bandwidth_cases(quick: bool) -> list[Case]:
    """HBM bandwidth: one device-to-device copy of a 4 GiB buffer (the same with --quick)."""
    return [Case(
        label="bandwidth copy 4 GiB",
        fields=dict(scenario="bandwidth", metric="tb_s"),
        work=2.0 * COPY_BYTES,
        notes=(f"HBM bandwidth, device-to-device copy (Tensor.copy_) of a {COPY_BYTES >> 30} GiB buffer; "
               f"tb_s = (bytes read + bytes written) / time = 2 x {COPY_BYTES} B / time (BabelStream Copy convention)"),
        build=build_copy,
        flush_l2=False)]


CASES = {"gemm": gemm_cases, "grouped": grouped_cases, "attention": attention_cases, "bandwidth": bandwidth_cases}


# ---------------------------------------------------------------------------------------------
# Kernels (torch is passed in: imported only for a real run)


def require_fp8(torch) -> None:
    """Raise Skip unless this torch and GPU run fp8 e4m3 GEMMs."""
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        raise Skip(f"torch {torch.__version__} has no float8_e4m3fn/_scaled_mm")
    if torch.cuda.get_device_capability() < (8, 9):
        raise Skip("fp8 GEMMs need compute capability 8.9 or later")


def scaled_mm(torch, a, w, scale):
    """fp8 a[M,K] x w[N,K]^T with per-tensor scales, bf16 output."""
    return torch._scaled_mm(a, w.t(), scale_a=scale, scale_b=scale, out_dtype=torch.bfloat16,
                            use_fast_accum=FAST_ACCUM)


def build_dense(torch, m: int, n: int, k: int, precision: str):
    """One dense GEMM: torch.matmul (bf16) or torch._scaled_mm (fp8, per-tensor scales, bf16 out)."""
    a = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
    if precision == "bf16":
        return (lambda: torch.matmul(a, w.t())), "torch.matmul (cuBLAS), bf16 in and out"
    require_fp8(torch)
    a8, w8 = a.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
    one = torch.ones((), device="cuda", dtype=torch.float32)
    return (lambda: scaled_mm(torch, a8, w8, one)), \
        f"torch._scaled_mm, fp8 e4m3 inputs, per-tensor scales, bf16 out, use_fast_accum={FAST_ACCUM}"


def grouped_kernel(torch, x, w, rows: list[int], precision: str):
    """torch._grouped_mm (bf16) or torch._scaled_grouped_mm (fp8, row-wise scales) over w[E,N,K]."""
    offs = torch.tensor(list(accumulate(rows)), device="cuda", dtype=torch.int32)
    wt = w.transpose(-2, -1)  # [E,K,N], column-major per group as the grouped kernels expect
    if precision == "bf16":
        if not hasattr(torch, "_grouped_mm"):
            raise Skip(f"torch {torch.__version__} has no _grouped_mm")
        return (lambda: torch._grouped_mm(x, wt, offs=offs)), "torch._grouped_mm"
    if not hasattr(torch, "_scaled_grouped_mm"):
        raise Skip(f"torch {torch.__version__} has no _scaled_grouped_mm")
    scale_x = torch.ones(x.shape[0], device="cuda", dtype=torch.float32)
    scale_w = torch.ones(w.shape[0], w.shape[1], device="cuda", dtype=torch.float32)

    def call():
        return torch._scaled_grouped_mm(x, wt, scale_x, scale_w, offs=offs, out_dtype=torch.bfloat16,
                                        use_fast_accum=FAST_ACCUM)
    return call, f"torch._scaled_grouped_mm, row-wise scales, bf16 out, use_fast_accum={FAST_ACCUM}"


def loop_kernel(torch, x, w, rows: list[int], precision: str):
    """One GEMM per expert on its own [N,K] matrix (empty groups skipped)."""
    pairs = [(xe, we) for xe, we in zip(x.split(rows), w.unbind(0)) if xe.shape[0]]
    if precision == "bf16":
        def call():
            for xe, we in pairs:
                torch.matmul(xe, we.t())
        return call, "per-expert loop of torch.matmul"
    one = torch.ones((), device="cuda", dtype=torch.float32)

    def call_fp8():
        for xe, we in pairs:
            scaled_mm(torch, xe, we, one)
    return call_fp8, f"per-expert loop of torch._scaled_mm, per-tensor scales, use_fast_accum={FAST_ACCUM}"


def build_grouped(torch, rows: list[int], n: int, k: int, precision: str):
    """A grouped GEMM over EXPERTS weight matrices: the fused torch kernel if it runs, else a loop."""
    x = torch.randn(sum(rows), k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(len(rows), n, k, device="cuda", dtype=torch.bfloat16)
    if precision == "fp8":
        require_fp8(torch)
        x, w = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
    try:
        call, method = grouped_kernel(torch, x, w, rows, precision)
        call()
        torch.cuda.synchronize()
        return call, method
    except Exception as exc:  # an absent or failing fused kernel: fall back, and say why
        fallback, method = loop_kernel(torch, x, w, rows, precision)
        return fallback, f"{method} (fused kernel unavailable: {short(exc)})"


def sdpa_call(torch, q, k, v, flash_only: bool, native_gqa: bool):
    """A call of scaled_dot_product_attention, optionally restricted to the flash backend."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    kwargs = {"enable_gqa": True} if native_gqa else {}

    def backend():
        if not flash_only:
            return contextlib.nullcontext()
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return sdpa_kernel(SDPBackend.FLASH_ATTENTION)

    def call():
        with backend():
            return sdpa(q, k, v, **kwargs)
    return call


def build_attention(torch, batch: int, context: int):
    """Decode SDPA over a [batch, KV_HEADS, context, HEAD_DIM] bf16 KV cache: the first variant that
    runs, preferring the flash backend and native GQA. The fallback folds each kv head's query heads
    into the query length (exact for one decode token, and the KV is still read once)."""
    kv = [torch.randn(batch, KV_HEADS, context, HEAD_DIM, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
    q = torch.randn(batch, Q_HEADS, 1, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    folded = q.view(batch, KV_HEADS, Q_HEADS // KV_HEADS, HEAD_DIM)
    variants = (("flash backend", True, True), ("flash backend", True, False),
                ("backend chosen by torch", False, True), ("backend chosen by torch", False, False))
    failures = []
    for backend, flash_only, native in variants:
        call = sdpa_call(torch, q if native else folded, *kv, flash_only, native)
        gqa = "GQA native (enable_gqa=True)" if native else \
            f"GQA folded ({Q_HEADS // KV_HEADS} q heads per kv head as query rows)"
        try:
            call()
            torch.cuda.synchronize()
        except Exception as exc:  # try the next variant, keep the reason
            failures.append(f"{backend}, {gqa}: {short(exc)}")
            continue
        tried = f" (failed first: {' | '.join(failures)})" if failures else ""
        return call, f"torch.nn.functional.scaled_dot_product_attention, {backend}, {gqa}{tried}"
    raise Skip("no SDPA variant ran: " + " | ".join(failures))


def build_copy(torch):
    """A device-to-device copy of COPY_BYTES."""
    src = torch.ones(COPY_BYTES, device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    return (lambda: dst.copy_(src)), "Tensor.copy_ (device to device)"


# ---------------------------------------------------------------------------------------------
# Timing


class GpuTimer:
    """Median CUDA-event time of a call: warmup, then `reps` timed calls, each after an optional L2
    flush and a short GPU spin so that the launch cost is not timed. The flush reads a buffer twice
    the L2 size: it leaves clean lines, whose eviction costs the timed kernel nothing (a memset would
    leave dirty lines to be written back during the timed kernel)."""

    def __init__(self, torch, warmup: int, reps: int):
        self.torch, self.warmup, self.reps = torch, warmup, reps
        l2 = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 0) or 64 << 20
        self.flush_buf = torch.zeros(2 * l2 // 4, device="cuda", dtype=torch.float32)
        self.sleep = getattr(torch.cuda, "_sleep", None)

    def seconds(self, call: Callable[[], Any], flush_l2: bool) -> float:
        """Median seconds of one call."""
        cuda = self.torch.cuda
        for _ in range(self.warmup):
            call()
        cuda.synchronize()
        events = [(cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)) for _ in range(self.reps)]
        for start, end in events:
            if flush_l2:
                self.flush_buf.sum()
            if self.sleep is not None:
                self.sleep(SLEEP_CYCLES)
            start.record()
            call()
            end.record()
        cuda.synchronize()
        return statistics.median(s.elapsed_time(e) for s, e in events) * 1e-3

    def measure(self, case: Case) -> tuple[float, str]:
        """(median seconds, how it was computed and timed) of one case; its tensors are freed after."""
        try:
            return self._measure(case)
        finally:
            self.torch.cuda.empty_cache()

    def _measure(self, case: Case) -> tuple[float, str]:
        call, method = case.build(self.torch)
        t = self.seconds(call, case.flush_l2)
        flush = "L2 flushed before each rep" if case.flush_l2 else "no L2 flush"
        return t, f"{method}; median of {self.reps} reps after {self.warmup} warmup, CUDA events, {flush}"


def dry_measure(case: Case) -> tuple[float, str]:
    """--dry-run: a fixed fake time."""
    return FAKE_SECONDS, "kernel not run"


# ---------------------------------------------------------------------------------------------
# Environment


def slug(name: str) -> str:
    """'NVIDIA H200 NVL' → 'h200-nvl'."""
    name = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"


def hardware_id(device_name: str) -> str:
    """Catalog chip id of a CUDA device name (a slug of the name when no catalog id fits)."""
    if "NVL" not in device_name:  # NVL parts are PCIe cards with other clocks and power: no catalog id
        for key, chip in HARDWARE_IDS:
            if key in device_name:
                return chip
    return slug(device_name)


def run_text(cmd: list[str]) -> str:
    """stdout of a command, or '' if it cannot run."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def nvidia_smi() -> str:
    """Driver, SM clocks and power limit of the first GPU, from nvidia-smi."""
    out = run_text(["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,power.limit",
                    "--format=csv,noheader"])
    parts = [p.strip() for p in out.splitlines()[0].split(",")] if out else []
    if len(parts) != 4:
        return "nvidia-smi: not available"
    return f"driver {parts[0]}; SM clock {parts[1]} (max {parts[2]}), power limit {parts[3]} (nvidia-smi at start)"


def source_ref() -> str:
    """The script path with the git revision, where the checkout has one."""
    rev = run_text(["git", "rev-parse", "--short=12", "HEAD"])
    if not rev:
        return f"{SCRIPT} (git revision not available)"
    modified = run_text(["git", "status", "--porcelain", "--", Path(__file__).name])
    return f"{SCRIPT} (git {rev}{', script differs from this revision' if modified else ''})"


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


def gpu_env(torch, hardware: str | None) -> Env:
    """The environment of a real run on CUDA device 0."""
    name = torch.cuda.get_device_name(0)
    props = torch.cuda.get_device_properties(0)
    notes = (f"env: {name} (sm_{props.major}{props.minor}, {props.multi_processor_count} SMs, "
             f"{props.total_memory / 2**30:.0f} GiB); torch {torch.__version__}, CUDA {torch.version.cuda}; "
             f"{nvidia_smi()}; measured {today()} UTC")
    return Env(hardware=hardware or hardware_id(name), framework=f"pytorch {torch.__version__}",
               source=f"tokenfab {SCRIPT} on {name}", source_ref=source_ref(), notes=notes)


def dry_env(hardware: str | None) -> Env:
    """The environment of --dry-run (no GPU)."""
    return Env(hardware=hardware or "h100-sxm", framework="pytorch (dry run)",
               source=f"tokenfab {SCRIPT} on dry run (no GPU)", source_ref=source_ref(),
               notes=f"env: dry run, no GPU; generated {today()} UTC", dry_run=True)


# ---------------------------------------------------------------------------------------------
# Rows


def short(exc: BaseException) -> str:
    """First line of an exception, with its type."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def make_row(row_id: str, case: Case, seconds: float, how: str, env: Env) -> dict:
    """One CSV row of a measured (or dry-run) case."""
    value = case.work / seconds / 1e12
    notes = [f"dry run: fake kernel time {FAKE_SECONDS * 1e6:.0f} us, not a measurement"] if env.dry_run else []
    if case.unusable:
        notes.append(case.unusable)
    notes += [case.notes, how, f"latency_us {seconds * 1e6:.2f}", env.notes]
    row = dict.fromkeys(COLUMNS, "")
    row.update(id=row_id, source=env.source, source_ref=env.source_ref, hardware=env.hardware, num_chips=1,
               framework=env.framework, per="chip", value=f"{value:.5g}",
               usable=0 if env.dry_run or case.unusable else 1, notes="; ".join(notes))
    row.update(case.fields)
    return row


def run_cases(cases: list[Case], measure: Callable[[Case], tuple[float, str]], env: Env, out: Path) -> int:
    """Measure every case, writing (and flushing) each row as it comes; returns the rows written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        fh.flush()
        for i, case in enumerate(cases, 1):
            head = f"[{i:3d}/{len(cases)}] {case.label}"
            try:
                seconds, how = measure(case)
            except Exception as exc:  # one failing kernel must not end the run
                print(f"{head}: skipped ({short(exc)})", flush=True)
                continue
            written += 1
            row = make_row(f"{ID_PREFIX}{written:04d}", case, seconds, how, env)
            writer.writerow(row)
            fh.flush()
            print(f"{head}: {row['value']} {UNITS[row['metric']]} ({seconds * 1e6:.1f} us)", flush=True)
    return written


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="CSV file to write (measurement schema)")
    p.add_argument("--quick", action="store_true", help="fewer shapes and repetitions (~90 s on an H100)")
    p.add_argument("--only", default=",".join(BLOCKS), help=f"comma-separated blocks among {','.join(BLOCKS)}")
    p.add_argument("--dry-run", action="store_true", help="no GPU or torch: fake timings, rows marked usable 0")
    p.add_argument("--hardware", help="chip id to record (default: from the device name)")
    args = p.parse_args(argv)
    args.only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = [b for b in args.only if b not in BLOCKS]
    if unknown or not args.only:
        p.error(f"--only takes blocks among {','.join(BLOCKS)}; got {','.join(unknown) or 'none'}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = [case for block in BLOCKS if block in args.only for case in CASES[block](args.quick)]
    if args.dry_run:
        env, measure = dry_env(args.hardware), dry_measure
    else:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: run with --dry-run to test without a GPU", file=sys.stderr)
            return 2
        torch.manual_seed(0)
        env = gpu_env(torch, args.hardware)
        measure = GpuTimer(torch, warmup=3 if args.quick else 10, reps=15 if args.quick else 50).measure
    print(f"{len(cases)} measurements on {env.source} -> {args.out} (hardware id {env.hardware})", flush=True)
    written = run_cases(cases, measure, env, args.out)
    print(f"wrote {written} of {len(cases)} rows to {args.out}", flush=True)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
