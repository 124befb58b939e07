"""SRAM-aware (tiled) time of GEMMs and attention, vectorized like `roofline`.

A GEMM (M×K)·(K×N) runs as output tiles Tm×Tn on the cores, K streamed in Tk steps:

- **core tiles**: candidates are multiples of the matrix unit's granules (M, N and K padding to
  the array); a tile is feasible when its operand buffers fit the per-core SRAM — twice
  (double buffering: loads overlap the matrix unit) or once (loads and compute serialize) —
  and its fp32 accumulators fit the register file (or the SRAM when the design has none);
- **core time**: per k-step max(MMA, load) (double-buffered) or their sum, a prologue load and an
  epilogue store; tiles go to cores in waves, or stream-K spreads k-steps evenly over the cores
  (fixing up partial tiles) when that is faster. Loads come from shared SRAM at its bandwidth,
  shared among the busy cores and divided by the multicast factor for the operand they share;
- **HBM traffic**: the least traffic over on-chip blockings that fit the SRAM pool (shared +
  per-core): an output block Mb×Nb whose accumulators stay on chip while K streams, or a
  whole A (or B) panel kept resident. Traffic = A·⌈N/Nb⌉ + B·⌈M/Mb⌉ + C. Feasibility only grows
  with SRAM, so more SRAM never raises traffic (nor time);
- **time** = max(core time, traffic / HBM bandwidth) + first-load latency + kernel launch.

Compute is derated by the efficiency's fraction for the precision (`Efficiency.gemm_frac`: clock
and issue losses the tiles do not explain) and by `TiledHW.sustained_frac` (power-capped
throughput per precision); `achievable_frac` is their product. `tiled_hw_for` gives a
`TiledHW` from a `ChipDesign` (exactly) or a catalog `ChipSpec` (family defaults, sourced below).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tokenfab.perf import roofline
from tokenfab.perf.efficiency import Efficiency

KIB = 1024.0
MIB = 1024.0 * 1024.0
_GRID = tuple(2.0 ** i for i in range(4, 17))  # on-chip block sizes considered for HBM reuse: 16 .. 65536
_TILE_MULTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_MAX_TILE = 512.0  # largest core tile side considered (beyond one granule)


@dataclass(frozen=True)
class TiledHW:
    """What the tiled model needs to know about a chip. Numeric fields may be numpy arrays
    (one element per design, shaped to broadcast against the GEMM shapes)."""

    cores: Any
    """Units output tiles are scheduled on (SMs; TPU MXUs)."""
    sram_per_core_bytes: Any
    """SRAM per core for operand tiles (shared memory / scratchpad), bytes."""
    shared_sram_bytes: Any
    """Shared SRAM (L2 / global buffer) of the chip, bytes; 0 when cores are fed from HBM."""
    array_rows: Any
    """Core matrix-unit rows: M granule (output-stationary) or K granule (weight-stationary)."""
    array_cols: Any
    """Core matrix-unit columns: N granule."""
    clock_mhz: Any = 1500.0
    """Matrix-unit clock, MHz."""
    weight_stationary: Any = False
    """True for weight-stationary arrays (TPU): rows pad K and M pads only to `m_granule`."""
    array_depth: Any = 1.0
    """K granule of output-stationary units at 2-byte inputs (tensor-core k-depth)."""
    m_granule: Any = 8.0
    """M granule of weight-stationary arrays (rows streamed per pass)."""
    acc_bytes_per_core: Any = 0.0
    """Register file available to fp32 accumulators, bytes; 0: accumulators share `sram_per_core_bytes`."""
    shared_sram_tb_s: Any = 0.0
    """Bandwidth from shared SRAM to all cores, TB/s (0: no shared level, loads are not the limit)."""
    multicast: Any = 1.0
    """Cores sharing one load of the operand they have in common (Hopper cluster TMA multicast: 2)."""
    dram_latency_us: Any = 0.7
    """First-load latency from HBM not hidden by the pipeline, µs."""
    sustained_frac: dict[str, Any] = field(default_factory=dict)
    """Precision → fraction of peak sustainable under the power cap (1 when absent)."""
    source: str = ""
    """Where these parameters come from."""

    def with_(self, **changes) -> "TiledHW":
        """A copy with fields replaced."""
        return replace(self, **changes)


# ---- GEMM -------------------------------------------------------------------------------------

def gemm_time_s(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, cores, eff: Efficiency, batch=1.0,
                compute_frac=None, ragged: bool = False, *, hw: TiledHW | None = None,
                precision: str | None = None):
    """Seconds for `batch` GEMMs (M×K)·(K×N) and whether each is compute-bound.

    Same arguments and return as `roofline.gemm_time_s` (`ragged` marks grouped GEMMs with random
    rows per group), plus the chip's `hw` (None: a generic GPU-like chip with `cores` cores) and
    the compute `precision`. Achievable fraction of the peak: `compute_frac` when given (use
    `achievable_frac` to build it per point: it includes the power cap), else
    `achievable_frac(eff, hw, precision)` with the precision inferred from the operand bytes when
    not given (min(a, w) bytes: 1 → fp8, <1 → fp4, 2 → bf16, 4 → fp32).
    """
    d = gemm_detail(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, cores, eff, batch, compute_frac, ragged,
                    hw=hw, precision=precision)
    return d["seconds"], d["compute_bound"]


def gemm_detail(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, cores, eff: Efficiency, batch=1.0,
                compute_frac=None, ragged: bool = False, *, hw: TiledHW | None = None,
                precision: str | None = None) -> dict[str, np.ndarray]:
    """`gemm_time_s` with its parts: seconds, compute_bound, core_s, hbm_s, hbm_bytes,
    shared_bytes (shared SRAM → cores), tile_m, tile_n, double_buffered, stream_k, util."""
    hw = hw or generic_hw(cores, eff)
    m = np.asarray(m, dtype=float)
    n = np.asarray(n, dtype=float)
    k = np.asarray(k, dtype=float)
    batch = np.asarray(batch, dtype=float)
    b_a = np.asarray(a_bytes, dtype=float)
    b_w = np.asarray(w_bytes, dtype=float)
    if compute_frac is None:
        frac = achievable_frac(eff, hw, precision or _precision_of(a_bytes, w_bytes))
    else:
        frac = np.asarray(compute_frac, dtype=float)

    core, traffic1 = _per_unique_shape(m, n, k, batch, b_a, b_w, peak_tflops, hw, frac, ragged)
    traffic = batch * traffic1
    hbm_s = traffic / (np.asarray(hbm_tb_s, dtype=float) * 1e12 * eff.hbm_frac)
    core_s = core["seconds"]
    latency = np.asarray(hw.dram_latency_us, dtype=float) * 1e-6
    seconds = np.maximum(core_s, hbm_s) + latency + eff.kernel_launch_us * 1e-6
    flops = 2.0 * m * n * k * batch
    ideal = flops / (np.asarray(peak_tflops, dtype=float) * 1e12)
    return {"seconds": seconds, "compute_bound": core_s >= hbm_s, "core_s": core_s, "hbm_s": hbm_s,
            "hbm_bytes": traffic + 0.0 * seconds, "shared_bytes": core["shared_bytes"],
            "tile_m": core["tile_m"], "tile_n": core["tile_n"], "double_buffered": core["double_buffered"],
            "stream_k": core["stream_k"], "util": ideal / np.maximum(core_s, 1e-30)}


_DEDUP_MIN = 2048  # arrays at least this large are evaluated once per distinct shape


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, index of each row's distinct row): `np.unique(rows, axis=0,
    return_inverse=True)` up to the order of the distinct rows, by factorizing one column at a
    time (1-D sorts; the running code is re-numbered each step so it stays below the row count)."""
    codes = np.zeros(len(rows), dtype=np.int64)
    for c in range(rows.shape[1]):
        values, col = np.unique(rows[:, c], return_inverse=True)
        codes = np.unique(codes * len(values) + col.reshape(-1), return_inverse=True)[1].reshape(-1)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)


def _per_unique_shape(m, n, k, batch, b_a, b_w, peak_tflops, hw: TiledHW, frac, ragged: bool):
    """Core time and HBM traffic per GEMM, computed once per distinct (shape, peak, fraction) when
    the hardware is one chip and the points are many (mapping grids repeat shapes a lot)."""
    scalar_hw = all(np.ndim(v) == 0 for k_, v in hw.__dict__.items() if k_ not in ("sustained_frac", "source"))
    args = np.broadcast_arrays(m, n, k, batch, b_a, b_w, np.asarray(peak_tflops, dtype=float),
                               np.asarray(frac, dtype=float))
    shape = args[0].shape
    if not scalar_hw or args[0].size < _DEDUP_MIN:
        return (_core_time(m, n, k, batch, b_a, b_w, peak_tflops, hw, frac, ragged),
                hbm_traffic_bytes(m, n, k, b_a, b_w, hw))
    rows = np.stack([a.reshape(-1) for a in args], axis=1)
    uniq, inverse = unique_rows(rows)
    um, un, uk, ub, uba, ubw, upeak, ufrac = uniq.T
    core = _core_time(um, un, uk, ub, uba, ubw, upeak, hw, ufrac, ragged)
    traffic = hbm_traffic_bytes(um, un, uk, uba, ubw, hw)
    back = lambda x: np.asarray(x)[inverse].reshape(shape)  # noqa: E731
    return {key: back(v) for key, v in core.items()}, back(traffic)


def achievable_frac(eff: Efficiency, hw: TiledHW, precision: str):
    """Fraction of the dense `precision` peak a large GEMM sustains: the efficiency's fraction for
    that precision × the power-capped fraction of the chip (`hw.sustained_frac`, 1 when absent)."""
    base = eff.gemm_frac(precision) if hasattr(eff, "gemm_frac") else eff.gemm_compute_frac
    return np.asarray(base, dtype=float) * np.asarray(hw.sustained_frac.get(precision, 1.0), dtype=float)


def _granules(hw: TiledHW, b_a):
    """(M, N, K) granules of a core's matrix unit for inputs of `b_a` bytes."""
    ws = np.asarray(hw.weight_stationary, dtype=bool)
    rows = np.asarray(hw.array_rows, dtype=float)
    cols = np.asarray(hw.array_cols, dtype=float)
    depth_k = np.maximum(1.0, np.asarray(hw.array_depth, dtype=float) * 2.0 / np.maximum(b_a, 0.5))
    gm = np.where(ws, np.asarray(hw.m_granule, dtype=float), rows)
    gk = np.where(ws, rows, depth_k)
    return gm, cols, gk


def _core_time(m, n, k, batch, b_a, b_w, peak_tflops, hw: TiledHW, frac, ragged: bool):
    """Best core-side time over candidate tiles; `frac` is the achievable fraction of the per-core
    peak. Candidates sit on two trailing axes (Tm × Tn multiples of the granules), so there is no
    Python loop per shape or per candidate."""
    gm, gn, gk = _granules(hw, b_a)
    cores = np.asarray(hw.cores, dtype=float)
    s_core = np.asarray(hw.sram_per_core_bytes, dtype=float)
    acc_rf = np.asarray(hw.acc_bytes_per_core, dtype=float)
    shared = np.asarray(hw.shared_sram_bytes, dtype=float)
    l2_bw = np.asarray(hw.shared_sram_tb_s, dtype=float) * 1e12
    multicast = np.maximum(np.asarray(hw.multicast, dtype=float), 1.0)
    core_flops = np.asarray(peak_tflops, dtype=float) * 1e12 * frac / cores
    # K step: at least one granule and 128 bytes of each operand row (one cache line / DMA burst).
    tk = np.ceil(np.maximum(gk, 128.0 / np.maximum(b_a, 0.5)) / gk) * gk
    (m, n, k, batch, b_a, b_w, gm, gn, tk, cores, s_core, acc_rf, shared, l2_bw, multicast, core_flops) = [
        x[..., None, None] for x in np.broadcast_arrays(
            m, n, k, batch, b_a, b_w, gm, gn, tk, cores, s_core, acc_rf, shared, l2_bw, multicast, core_flops)]
    mults = np.asarray(_TILE_MULTS)
    tm = gm * mults[:, None]
    tn = gn * mults[None, :]
    smallest = (mults[:, None] == 1.0) & (mults[None, :] == 1.0)
    in_range = ((tm <= np.maximum(_MAX_TILE, gm)) & (tn <= np.maximum(_MAX_TILE, gn))) | smallest
    op = tm * tk * b_a + tk * tn * b_w
    acc = tm * tn * 4.0
    in_sram = acc_rf <= 0
    acc_ok = in_sram | (acc <= acc_rf)
    acc_sram = np.where(in_sram, acc, 0.0)
    fits2 = acc_ok & (2.0 * op + acc_sram <= s_core)
    fits1 = acc_ok & (op + acc_sram <= s_core)
    feasible = in_range & (fits1 | fits2 | smallest)

    ksteps = np.ceil(k / tk)
    # ragged groups (MoE experts): each group's last M tile is on average half empty
    tiles_m = (m + tm / 2.0) / tm if ragged else np.ceil(m / tm)
    tiles = tiles_m * np.ceil(n / tn) * batch
    active = np.minimum(tiles, cores)
    has_l2 = (shared > 0) & (l2_bw > 0)
    t_mma = 2.0 * tm * tn * tk / core_flops
    load = tm * tk * b_a + tk * tn * b_w / multicast
    with np.errstate(divide="ignore"):
        inv_bw = np.where(has_l2, np.maximum(active, 1.0) / np.where(has_l2, l2_bw, 1.0), 0.0)  # s/B per core
        inv_bw_all = np.where(has_l2, cores / np.where(has_l2, l2_bw, 1.0), 0.0)
    t_load = load * inv_bw
    step = np.where(fits2, np.maximum(t_mma, t_load), t_mma + t_load)
    epi = tm * tn * b_a * inv_bw  # outputs stored in the activation format, as the roofline counts them
    t_dp = np.ceil(tiles / cores) * (t_load + ksteps * step + epi)
    # stream-K: every core takes an equal share of all k-steps; partial tiles are fixed up through
    # shared SRAM (one extra store and load of an accumulator tile).
    t_sk = load * inv_bw_all + np.ceil(tiles * ksteps / cores) * step + 2.0 * tm * tn * 4.0 * inv_bw_all + epi
    use_sk = (ksteps > 1) & (t_sk < t_dp)
    t = np.where(feasible, np.where(use_sk, t_sk, t_dp), np.inf)

    shape = t.shape[:-2]
    flat = t.reshape(shape + (-1,))
    best = np.argmin(flat, axis=-1)[..., None]
    pick = lambda x: np.take_along_axis(np.broadcast_to(x, t.shape).reshape(shape + (-1,)), best, -1)[..., 0]  # noqa: E731
    return {"seconds": pick(t), "tile_m": pick(tm), "tile_n": pick(tn), "double_buffered": pick(fits2),
            "stream_k": pick(use_sk), "shared_bytes": pick(np.where(has_l2, tiles * ksteps * load, 0.0))}


def hbm_traffic_bytes(m, n, k, a_bytes, w_bytes, hw: TiledHW):
    """HBM bytes of one GEMM: the least over on-chip blockings that fit the SRAM pool (shared +
    per-core), never more than a single granule tile with no reuse, never less than A + B + C."""
    b_a = np.asarray(a_bytes, dtype=float)
    gm, gn, _ = _granules(hw, b_a)
    pool = np.asarray(hw.shared_sram_bytes, dtype=float) + \
        np.asarray(hw.cores, dtype=float) * np.asarray(hw.sram_per_core_bytes, dtype=float)
    acc_cap = np.asarray(hw.cores, dtype=float) * np.asarray(hw.acc_bytes_per_core, dtype=float)
    (m, n, k, b_a, b_w, gm, gn, pool, acc_cap) = [
        np.asarray(x, dtype=float)[..., None] for x in np.broadcast_arrays(
            m, n, k, b_a, w_bytes, gm, gn, pool, acc_cap)]
    chunk_k = 128.0 / np.maximum(b_a, 0.5)  # K elements in flight per operand row (double-buffered)
    a = m * k * b_a
    b = k * n * b_w
    c = m * n * b_a
    base = (a * np.ceil(n / gn) + b * np.ceil(m / gm) + c)[..., 0]  # one granule tile, nothing shared
    g = np.asarray(_GRID)
    # A panel (Mb rows x all K) resident while B streams past it once per row block; B likewise.
    t_a = np.where(g * k * b_a + 2.0 * chunk_k * gn * b_w <= pool, a + b * np.ceil(m / g) + c, np.inf)
    t_b = np.where(g * k * b_w + 2.0 * chunk_k * gm * b_a <= pool, a * np.ceil(n / g) + b + c, np.inf)
    # Output block Mb x Nb whose fp32 accumulators stay on chip while K streams in double-buffered
    # chunks: for each Mb the widest Nb (in granules) that fits the accumulators and the pool.
    acc_b = np.where(acc_cap > 0, 0.0, 4.0 * g)
    with np.errstate(divide="ignore", invalid="ignore"):
        nb_pool = (pool - 2.0 * chunk_k * g * b_a) / (2.0 * chunk_k * b_w + acc_b)
        nb_acc = np.where(acc_cap > 0, acc_cap / (4.0 * g), np.inf)
    nb = np.minimum(np.floor(np.minimum(nb_pool, nb_acc) / gn) * gn, np.ceil(n / gn) * gn)
    t_blk = np.where(nb >= gn, a * np.ceil(n / np.maximum(nb, 1.0)) + b * np.ceil(m / g) + c, np.inf)
    return np.minimum.reduce([base, t_a.min(axis=-1), t_b.min(axis=-1), t_blk.min(axis=-1)])


# ---- attention and streams -------------------------------------------------------------------

def attention_time_s(flops, bytes_, peak_tflops, hbm_tb_s, eff: Efficiency, hw: TiledHW | None = None,
                     head_dim=128.0, precision: str = "bf16"):
    """Seconds for a fused (flash) attention kernel and whether it is compute-bound.

    Same arguments and return as `roofline.attention_time_s`, plus the chip's `hw` and the head
    dimension: QKᵀ contracts over `head_dim` (padded to the K granule) and PV produces `head_dim`
    columns (padded to one matrix unit's N granule), so small heads waste array width on
    systolic chips. Bytes are the kernel's HBM traffic (KV read once: Q blocks of all heads that
    share a KV head run together from on-chip SRAM).
    """
    if hw is None:
        return roofline.attention_time_s(flops, bytes_, peak_tflops, hbm_tb_s, eff)
    d = np.asarray(head_dim, dtype=float)
    gm, gn, gk = _granules(hw, 2.0)
    ws = np.asarray(hw.weight_stationary, dtype=bool)
    gn_unit = np.where(ws, np.asarray(hw.array_cols, dtype=float), gn)
    u_qk = d / (np.ceil(d / gk) * gk)
    u_pv = d / (np.ceil(d / gn_unit) * gn_unit)
    util = 2.0 / (1.0 / u_qk + 1.0 / u_pv)
    sustained = np.asarray(hw.sustained_frac.get(precision, 1.0), dtype=float)
    t_compute = np.asarray(flops, dtype=float) / (np.asarray(peak_tflops, dtype=float) * 1e12
                                                   * eff.attention_compute_frac * util * sustained)
    t_memory = np.asarray(bytes_, dtype=float) / (np.asarray(hbm_tb_s, dtype=float) * 1e12 * eff.hbm_frac)
    return np.maximum(t_compute, t_memory) + eff.kernel_launch_us * 1e-6, t_compute >= t_memory


stream_time_s = roofline.stream_time_s  # elementwise kernels: no tiling to model


# ---- hardware descriptions --------------------------------------------------------------------

def generic_hw(cores, eff: Efficiency) -> TiledHW:
    """A GPU-like chip when nothing better is known: the efficiency's tile granules, 256 KiB per core."""
    return TiledHW(cores=cores, sram_per_core_bytes=256 * KIB, shared_sram_bytes=32 * MIB,
                   array_rows=float(eff.min_tile_m), array_cols=8.0, array_depth=16.0,
                   acc_bytes_per_core=128 * KIB, shared_sram_tb_s=32.0 * float(np.max(cores)) * 1.5e9 / 1e12,
                   source="generic: 256 KiB SRAM/core, 32 MiB shared, 32 B/clk/core at 1.5 GHz")


# Family defaults for catalog chips: (id prefixes, parameters, source). Sizes in KiB / MiB.
_HOPPER_SRC = ("NVIDIA Hopper tuning guide / H100 whitepaper: up to 228 KB shared memory and 256 KB register "
               "file per SM, 50 MB L2 (60 MB on the die, Chips and Cheese 'Funny L2'); wgmma m64nNk16 "
               "(4 tensor cores x 16 rows, N multiple of 8); TMA multicast in 2-CTA clusters (CUTLASS default); "
               "L2 -> SM ~7.5 TB/s (est., 5.5-10 TB/s reported)")
_FAMILIES: list[tuple[tuple[str, ...], dict, str]] = [
    (("h100", "h800", "h200", "h20", "gh200"),
     dict(smem_kib=228, acc_kib=128, l2_mib=50, rows=64, cols=8, depth=16, l2_tb_s=7.5, multicast=2,
          latency_us=0.7), _HOPPER_SRC),
    (("b200", "b300", "gb200", "gb300"),
     dict(smem_kib=228, acc_kib=256, l2_mib=126, rows=128, cols=8, depth=16, l2_tb_s=16.0, multicast=2,
          latency_us=0.8),
     "NVIDIA Blackwell: 228 KB shared memory/SM, 256 KB tensor memory (TMEM) for accumulators, tcgen05 "
     "MMA M=128 per SM (256 per CTA pair); L2 size and bandwidth est. (two dies, ~2x Hopper's; not "
     "confirmed in our sources)"),
    (("a100",),
     dict(smem_kib=164, acc_kib=128, l2_mib=40, rows=64, cols=8, depth=16, l2_tb_s=5.0, multicast=1,
          latency_us=0.8),
     "NVIDIA A100 whitepaper: 164 KB shared memory and 256 KB registers per SM, 40 MB L2; mma.sync m16n8k16, "
     "CTA tiles from 64 rows; L2 bandwidth ~5 TB/s (est.)"),
    (("l40s", "l20"),
     dict(smem_kib=100, acc_kib=128, l2_mib=96, rows=64, cols=8, depth=16, l2_tb_s=4.0, multicast=1,
          latency_us=0.8),
     "NVIDIA Ada (AD102): 100 KB shared memory, 256 KB registers per SM, 96 MB L2; bandwidth est."),
    (("mi300", "mi325"),
     dict(smem_kib=64, acc_kib=256, l2_mib=256, rows=32, cols=32, depth=8, l2_tb_s=34.0, multicast=1,
          latency_us=1.0),
     "AMD CDNA3 whitepaper: 64 KB LDS and 512 KB VGPR/AGPR per CU; 4 MB L2 per XCD at 2 KB/clk (8 XCDs x "
     "2 KB x 2.1 GHz ~ 34 TB/s), 256 MB Infinity Cache; MFMA 32x32x8 bf16"),
    (("mi350", "mi355"),
     dict(smem_kib=160, acc_kib=256, l2_mib=256, rows=32, cols=32, depth=8, l2_tb_s=39.0, multicast=1,
          latency_us=1.0),
     "AMD CDNA4 (MI350 series): 160 KB LDS per CU (AMD CDNA4 whitepaper), 4 MB L2 per XCD at 2 KB/clk "
     "(est. as CDNA3, 2.4 GHz), 256 MB Infinity Cache; MFMA 32x32 bf16"),
    (("gaudi2",),
     dict(smem_kib=2048, acc_kib=1024, l2_mib=48, rows=256, cols=256, depth=1, l2_tb_s=6.4, multicast=1,
          latency_us=1.0, cores=2),
     "Intel Gaudi 2 (Hot Chips 2024): 2 MMEs (matrix engines, ~256x256 MACs each: 432 TF / (2 x 2 x 65536) = "
     "1.65 GHz), 48 MB SRAM; MME-local buffers and SRAM bandwidth est. (half of Gaudi 3's 12.8 TB/s)"),
    (("gaudi3",),
     dict(smem_kib=2048, acc_kib=1024, l2_mib=96, rows=256, cols=256, depth=1, l2_tb_s=12.8, multicast=1,
          latency_us=1.0, cores=8),
     "Intel Gaudi 3 (Hot Chips 2024): 8 MMEs of 256x256 (1835 TF / (8 x 2 x 65536) = 1.75 GHz), 96 MB SRAM "
     "at 12.8 TB/s; MME-local buffers est."),
    (("trainium2",),
     dict(tpu=True, mxus=8, mxu=128, vmem_mib=28, latency_us=1.0),
     "AWS Trainium2 (Neuron docs): 8 NeuronCore-v3, each a 128x128 systolic tensor engine fed from SBUF "
     "(224 MiB per chip -> 28 MiB per core)"),
    (("inferentia2",),
     dict(tpu=True, mxus=2, mxu=128, vmem_mib=24, latency_us=1.0),
     "AWS Inferentia2 (Neuron docs): 2 NeuronCore-v2 with 128x128 tensor engines; SBUF 24 MiB per core est. "
     "from Trainium1 (48 MiB per 2 cores)"),
    (("tpu-v5e",),
     dict(tpu=True, mxus=4, mxu=128, vmem_mib=128, latency_us=0.5),
     "Google: v5e TensorCore = 4 MXUs of 128x128 (GCP docs); 128 MiB VMEM (scaling book 'How to think about "
     "TPUs'); LHS streamed in (8,128) tiles; MXUs scheduled as separate tile units (est.)"),
    (("tpu-v5p",),
     dict(tpu=True, mxus=8, mxu=128, vmem_mib=128, latency_us=0.5),
     "Google: v5p = 2 TensorCores x 4 MXUs 128x128 (scaling book); VMEM size per core est. as v5e"),
    (("tpu-v6e",),
     dict(tpu=True, mxus=2, mxu=256, vmem_mib=128, latency_us=0.5),
     "Google: Trillium 256x256 MXU (scaling book); 2 MXUs per chip (hardware_catalog.csv); VMEM est. as v5e"),
    (("tpu-v7",),
     dict(tpu=True, mxus=8, mxu=256, vmem_mib=64, latency_us=0.5),
     "Google Ironwood: 2 TensorCores; MXU count/size and VMEM est."),
    (("ascend",),
     dict(smem_kib=512, acc_kib=128, l2_mib=192, rows=16, cols=16, depth=16, l2_tb_s=5.0, multicast=1,
          latency_us=1.0),
     "Ascend 910B (CANN platform values seen in public probes): L1 512 KiB, L0C 128 KiB accumulators, "
     "cube 16x16x16, L2 192 MiB; L2 bandwidth est."),
]


def _family(chip_id: str) -> tuple[dict, str] | None:
    for prefixes, params, src in _FAMILIES:
        if any(chip_id.startswith(p) for p in prefixes):
            return params, src
    return None


_REGISTERED: dict[str, TiledHW] = {}


def register_hw(chip_id: str, hw: TiledHW) -> None:
    """Remember the exact `TiledHW` of a chip derived from a design (called by `to_chip_spec`)."""
    _REGISTERED[chip_id] = hw


def tiled_hw_for(chip_or_design, tech=None) -> TiledHW:
    """`TiledHW` of a `ChipDesign` (exact, from its parameters), of a ChipSpec derived from a
    design in this process (the same), or of a catalog `ChipSpec` (family defaults; chips of
    unknown family get a generic GPU-like description from their figures)."""
    if getattr(chip_or_design, "kind", None) == "design":
        from tokenfab.design.derive import tiled_hw_from_design  # design imports perf, not the reverse

        return tiled_hw_from_design(chip_or_design, tech)
    chip = chip_or_design
    if chip.source_of("default").startswith(f"derived from design {chip.id}"):
        if chip.id in _REGISTERED:
            return _REGISTERED[chip.id]
        from tokenfab.design.catalog import design_ids, load_design
        from tokenfab.design.derive import tiled_hw_from_design

        if chip.id in design_ids():  # a shipped design's ChipSpec rebuilt elsewhere (e.g. from JSON)
            return tiled_hw_from_design(load_design(chip.id), tech)
    fam = _family(chip.id)
    cores = float(chip.cores or 100)
    clock = float(chip.clock_mhz or 1500.0)
    if fam is None:
        l2 = (chip.sram_mb or 32.0) * MIB
        return TiledHW(cores=cores, sram_per_core_bytes=256 * KIB, shared_sram_bytes=l2, array_rows=64.0,
                       array_cols=8.0, array_depth=16.0, acc_bytes_per_core=128 * KIB, clock_mhz=clock,
                       shared_sram_tb_s=32.0 * cores * clock * 1e6 / 1e12,
                       source=f"generic GPU-like defaults for {chip.id} (256 KiB SRAM/core, 32 B/clk/core to "
                              f"shared SRAM; L2 from the chip's sram_mb)")
    p, src = fam
    if p.get("tpu"):
        mxus = float(p["mxus"])
        # VMEM/SBUF belongs to a core and is shared by its arrays: each array gets an equal slice
        # (`vmem_mib` is per TPU TensorCore; for Neuron chips `mxus` already counts cores).
        per_chip = p["vmem_mib"] * MIB * (_tpu_cores(chip) if chip.id.startswith("tpu") else mxus)
        return TiledHW(cores=mxus, sram_per_core_bytes=per_chip / mxus,
                       shared_sram_bytes=0.0, array_rows=float(p["mxu"]), array_cols=float(p["mxu"]),
                       weight_stationary=True, m_granule=8.0, clock_mhz=clock, dram_latency_us=p["latency_us"],
                       source=src)
    l2 = (chip.sram_mb or p["l2_mib"]) * MIB
    cores = float(p.get("cores", cores))  # Gaudi: tiles go to the matrix engines, not the TPCs
    return TiledHW(cores=cores, sram_per_core_bytes=p["smem_kib"] * KIB, shared_sram_bytes=l2,
                   array_rows=float(p["rows"]), array_cols=float(p["cols"]), array_depth=float(p["depth"]),
                   acc_bytes_per_core=p["acc_kib"] * KIB, shared_sram_tb_s=float(p["l2_tb_s"]),
                   multicast=float(p["multicast"]), clock_mhz=clock, dram_latency_us=p["latency_us"], source=src)


def _tpu_cores(chip) -> float:
    """TensorCores on a TPU chip (VMEM is per TensorCore)."""
    return float(chip.cores or 1)


def _precision_of(a_bytes, w_bytes) -> str:
    b = float(min(np.min(np.asarray(a_bytes, dtype=float)), np.min(np.asarray(w_bytes, dtype=float))))
    if b >= 4:
        return "fp32"
    if b >= 2:
        return "bf16"
    if b >= 1:
        return "fp8"
    return "fp4"
