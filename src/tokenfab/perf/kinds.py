"""Time of the operator kinds added for families beyond the decoder LLM (registry hook of
`perf.evaluate.time_ops`): `fused` kernels on the linear layers' tensor path, all-gathers, and
`scan`: a chunked linear-attention prefill (Gated DeltaNet), whose recurrent state passes from one
chunk of a sequence to the next inside one core.

A `scan` op carries its FLOPs, bytes, kernels and `meta["steps"]`, the chunks each sequence walks
in turn. Its time is the slowest of three bounds plus the chain's launches:
- work: FLOPs at the BF16 peak times `Efficiency.scan_compute_frac` (the chain's many small
  per-chunk products, when every core has chunks to work on: many sequences or heads);
- memory: bytes at the streaming fraction of HBM;
- sequence: `steps` x `Efficiency.scan_chunk_us` (one prompt's chunks one after another: more
  cores do not shorten it, a faster step does).
"""

from __future__ import annotations

import numpy as np

from tokenfab.perf import comm


def scan_terms(op, hw):
    """The parts of a `scan` op's time that do not depend on its two fitted fields: seconds of its
    FLOPs at the whole BF16 peak (divided by `scan_compute_frac`), its sequential chunk steps
    (times `scan_chunk_us`), seconds of its bytes at the streaming fraction, and its launches."""
    eff = hw.eff
    peak = hw.bf16_tflops if hw.bf16_tflops is not None else hw.attention_tflops
    peak_s = np.asarray(op.flops, float) / (np.asarray(peak) * 1e12)
    t_memory = np.asarray(op.bytes, float) / (hw.hbm_tb_s * 1e12 * eff.hbm_frac)
    return peak_s, np.asarray(op.meta.get("steps", 0.0), float), t_memory, op.kernels * eff.kernel_launch_us * 1e-6


def extra_kind_time(op, hw):
    """(seconds per occurrence, bound code) of an op whose kind `time_ops` does not know."""
    eff = hw.eff
    if op.kind == "fused":
        frac = eff.gemm_compute_frac if hw.gemm_frac is None else np.asarray(hw.gemm_frac)
        t_compute = np.asarray(op.flops, float) / (np.asarray(hw.gemm_tflops) * 1e12 * frac)
        t_memory = np.asarray(op.bytes, float) / (hw.hbm_tb_s * 1e12 * eff.hbm_frac)
        t = np.maximum(t_compute, t_memory) + op.kernels * eff.kernel_launch_us * 1e-6
        return t, np.where(t_compute >= t_memory, 0, 1)
    if op.kind == "scan":
        peak_s, steps, t_memory, launch = scan_terms(op, hw)
        t_work = peak_s / eff.scan_compute_frac
        t_steps = steps * eff.scan_chunk_us * 1e-6
        t = np.maximum(np.maximum(t_work, t_steps), t_memory) + launch
        return t, np.where(t_memory > np.maximum(t_work, t_steps), 1, 0)
    if op.kind == "allgather":
        t = comm.allgather_time_s(op.bytes, op.group, hw.system, eff)
        return t, np.full(np.shape(t), 2)
    raise ValueError(f"unknown op kind {op.kind!r} (op {op.name})")
