"""Roofline time of operators with shape-aware efficiency. Vectorized: every argument may be
a numpy array (one element per mapping/batch point) or a scalar.

time = max(compute time, memory time) + kernel launch (for ops that carry vector or special-function
work, also against `unit_times_s`: see `perf.evaluate`), where compute time divides FLOPs by the
dense peak × achievable fraction × tile utilization (M/N padding to the kernel's tile). A GEMM's
memory time and fixed cost depend on its kernel class (bf16, FP8/INT8, 4-bit weights): the weight
stream of decode-sized GEMMs and the per-GEMM fixed cost are fitted per class from measured kernel
tables (`tokenfab calibrate --source aiconfigurator`; unfitted chips use `hbm_frac` and
`kernel_launch_us` as before).
"""

from __future__ import annotations

import numpy as np

from tokenfab.perf.efficiency import Efficiency


def tile_utilization(m, n, cores: int, eff: Efficiency, ragged: bool = False):
    """Fraction of matrix-unit work that is useful for an M×N output (tile padding).

    M pads to a power-of-two tile between `min_tile_m` and `tile_m` (small-M kernels pick
    small tiles); N pads to `tile_n`. No wave-quantization loss: current GEMM libraries split the
    K loop of the last partial wave over the idle cores (stream-K / split-K, CUTLASS 3 and
    cuBLASLt on Hopper and later) or pick the tile shape to fill it. Measured: dropping the naive
    partial-wave penalty lowers the spread of the calibrated GEMM rows (mean |error| 7.8% ->
    7.2% over 44 rows; H100 5.3% -> 2.5%, H200 13% -> 5%). `cores` is kept for callers.
    """
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    tm = np.clip(2.0 ** np.ceil(np.log2(np.maximum(m, 1.0))), eff.min_tile_m, eff.tile_m)
    tiles_n = np.ceil(n / eff.tile_n)
    if ragged:
        # Grouped GEMM whose groups (experts) get a random number of rows around the mean m:
        # each group's last M tile is on average half empty, whatever the mean.
        pad_m = m / (m + tm / 2.0)
    else:
        pad_m = m / (np.ceil(m / tm) * tm)
    return pad_m * (n / (tiles_n * eff.tile_n))


def kernel_class(w_bytes):
    """GEMM kernel class by stored weight bytes per element: `bf16` (≥ 2 B), `lowp` (FP8/INT8,
    ≥ 1 B), `fp4` (4-bit weights: block-scaled FP4, or a weight-only kernel that dequantizes them to
    the compute format). The class picks the weight-streaming fraction and fixed cost
    (`Efficiency.gemm_stream_frac`, `gemm_fixed_s`); the compute side is the caller's (peak and
    fraction of the compute precision), so 4-bit weights on a chip without FP4 math are costed as
    4-bit weight bytes computed at the wider precision, never at an FP4 rate."""
    w = np.asarray(w_bytes, dtype=float)
    return np.where(w >= 2.0, "bf16", np.where(w >= 1.0, "lowp", "fp4"))


def gemm_kernel_terms(w_bytes, eff: Efficiency):
    """(HBM fraction, fixed seconds) of GEMMs with `w_bytes` weights (scalar or per point)."""
    w = np.asarray(w_bytes, dtype=float)
    hbm = np.where(w >= 2.0, eff.gemm_stream_frac("bf16"),
                   np.where(w >= 1.0, eff.gemm_stream_frac("lowp"), eff.gemm_stream_frac("fp4")))
    fixed = np.where(w >= 2.0, eff.gemm_fixed_s("bf16"),
                     np.where(w >= 1.0, eff.gemm_fixed_s("lowp"), eff.gemm_fixed_s("fp4")))
    return hbm, fixed


def moe_gemm_terms(w_bytes, eff: Efficiency, compute_frac, layer: bool = False):
    """(Efficiency, compute fraction, extra fixed seconds) of a grouped expert GEMM with `w_bytes`
    weights: the dense class's compute and weight-stream fractions times the fitted MoE scales
    (`Efficiency.moe_terms`), and, for the GEMM that carries it (`layer`), the MoE layer's fixed cost."""
    w = np.asarray(w_bytes, dtype=float)
    terms = {c: eff.moe_terms(c) for c in ("bf16", "lowp", "fp4")}

    def pick(i):
        return np.where(w >= 2.0, terms["bf16"][i], np.where(w >= 1.0, terms["lowp"][i], terms["fp4"][i]))

    frac = (eff.gemm_compute_frac if compute_frac is None else np.asarray(compute_frac)) * pick(0)
    scaled = eff.model_copy(update={f: eff.gemm_stream_frac(c) * terms[c][1] for f, c in (
        ("gemm_hbm_frac", "bf16"), ("lowp_gemm_hbm_frac", "lowp"), ("fp4_gemm_hbm_frac", "fp4"))})
    return scaled, frac, (pick(2) if layer else 0.0)


def act_quant_time_s(m, k, hbm_tb_s, eff: Efficiency, low, fp4, batch=1.0):
    """Seconds of the activation quantization before `batch` GEMMs of M x K inputs: a memory pass of
    `Efficiency.act_quant_bytes` per element at the copy fraction where the GEMM computes below BF16
    (`low`, per point), of the 4-bit class where `fp4`, else of the FP8/INT8 class; none elsewhere.
    Boolean masks, not class names: this runs in the design screen's inner loop."""
    q = np.where(low, np.where(fp4, eff.act_quant_bytes("fp4"), eff.act_quant_bytes("lowp")), 0.0)
    return np.asarray(m, dtype=float) * k * batch * q / (np.asarray(hbm_tb_s) * 1e12 * eff.hbm_frac)


def gemm_time_s(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, cores: int, eff: Efficiency,
                batch=1.0, compute_frac=None, ragged: bool = False):
    """Seconds for `batch` independent GEMMs (M×K)·(K×N), weights of `w_bytes`/element.

    Bytes moved: the weight matrix once per GEMM, input activations (M×K) and output (M×N), at the
    weight-streaming fraction of the kernel class (`kernel_class`); plus the class's fixed cost per
    GEMM. `compute_frac` (scalar or per point) overrides `eff.gemm_compute_frac`, e.g. with the
    low-precision path's fraction (`Efficiency.gemm_frac`). `ragged`: the `batch` GEMMs have
    random row counts around `m` (MoE experts), see `tile_utilization`. A grouped GEMM (`batch` > 1)
    is one kernel: its fixed cost is paid once.
    """
    m = np.asarray(m, dtype=float)
    flops = 2.0 * m * n * k * batch
    bytes_ = batch * (n * k * w_bytes + m * (k + n) * a_bytes)
    util = tile_utilization(m, n, cores, eff, ragged=ragged)
    frac = eff.gemm_compute_frac if compute_frac is None else np.asarray(compute_frac)
    hbm_frac, fixed_s = gemm_kernel_terms(w_bytes, eff)
    t_compute = flops / (np.asarray(peak_tflops) * 1e12 * frac * util)
    t_memory = bytes_ / (np.asarray(hbm_tb_s) * 1e12 * hbm_frac)
    return np.maximum(t_compute, t_memory) + fixed_s, t_compute >= t_memory


def stream_time_s(bytes_, hbm_tb_s, eff: Efficiency, kernels=1.0):
    """Seconds for memory-bound elementwise kernels moving `bytes_` in total."""
    return np.asarray(bytes_) / (hbm_tb_s * 1e12 * eff.hbm_frac) + kernels * eff.kernel_launch_us * 1e-6


def attention_time_s(flops, bytes_, peak_tflops, hbm_tb_s, eff: Efficiency):
    """Seconds for a fused attention kernel doing `flops` and reading/writing `bytes_`."""
    t_compute = np.asarray(flops) / (np.asarray(peak_tflops) * 1e12 * eff.attention_compute_frac)
    t_memory = np.asarray(bytes_) / (hbm_tb_s * 1e12 * eff.hbm_frac)
    return np.maximum(t_compute, t_memory) + eff.kernel_launch_us * 1e-6, t_compute >= t_memory


def unit_times_s(vector_flops, sfu_ops, vector_tflops, sfu_tops):
    """(vector seconds, special-function seconds) of an op's non-matrix work at the chip's peaks.

    Peaks, not achievable fractions: the terms only bind where even peak throughput is slower than
    the op's memory or matrix time, so they never charge work a kernel could hide. A peak of None
    (unknown for the chip) gives 0 s: the work is not timed rather than guessed."""
    vf = np.asarray(vector_flops, dtype=float)
    so = np.asarray(sfu_ops, dtype=float)
    t_vec = vf / (vector_tflops * 1e12) if vector_tflops else np.zeros_like(vf)
    t_sfu = so / (sfu_tops * 1e12) if sfu_tops else np.zeros_like(so)
    return t_vec, t_sfu
