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

Fused attention runs as FlashAttention-style query and K/V tiles in the same SRAM levels
(`attention_detail`); weights or KV cache a deployment keeps in shared SRAM (`perf.onchip`)
cost no HBM traffic (`weights_resident`, `kv_resident`).

Compute is derated by the efficiency's fraction for the precision (`Efficiency.gemm_frac`: clock
and issue losses the tiles do not explain) and by `TiledHW.sustained_frac` (power-capped
throughput per precision); `achievable_frac` is their product. `tiled_hw_for` gives a
`TiledHW` from a `ChipDesign` (exactly) or a `ChipSpec`'s `microarch` block (data, sourced in its YAML).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
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
                precision: str | None = None, weights_resident=None):
    """Seconds for `batch` GEMMs (M×K)·(K×N) and whether each is compute-bound.

    Same arguments and return as `roofline.gemm_time_s` (`ragged` marks grouped GEMMs with random
    rows per group), plus the chip's `hw` (None: a generic GPU-like chip with `cores` cores) and
    the compute `precision`. Achievable fraction of the peak: `compute_frac` when given (use
    `achievable_frac` to build it per point: it includes the power cap), else
    `achievable_frac(eff, hw, precision)` with the precision inferred from the operand bytes when
    not given (min(a, w) bytes: 1 → fp8, <1 → fp4, 2 → bf16, 4 → fp32). `weights_resident`
    (per point, `perf.onchip`): the weights live in shared SRAM, so HBM carries only the
    activations; the cores still load the weights from shared SRAM at its bandwidth.
    """
    d = gemm_detail(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, cores, eff, batch, compute_frac, ragged,
                    hw=hw, precision=precision, weights_resident=weights_resident)
    return d["seconds"], d["compute_bound"]


def gemm_detail(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, cores, eff: Efficiency, batch=1.0,
                compute_frac=None, ragged: bool = False, *, hw: TiledHW | None = None,
                precision: str | None = None, weights_resident=None) -> dict[str, np.ndarray]:
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

    # Weights resident in shared SRAM cost no HBM bytes: the traffic is priced with 0-byte weights.
    b_w_hbm = None if weights_resident is None else np.where(np.asarray(weights_resident, dtype=bool), 0.0, b_w)
    core, traffic1 = _per_unique_shape(m, n, k, batch, b_a, b_w, peak_tflops, hw, frac, ragged, b_w_hbm)
    traffic = batch * traffic1
    hbm_s = traffic / (np.asarray(hbm_tb_s, dtype=float) * 1e12 * eff.hbm_frac)
    core_s = core["seconds"]
    latency = np.asarray(hw.dram_latency_us, dtype=float) * 1e-6
    seconds = np.maximum(core_s, hbm_s) + latency + eff.gemm_fixed_s("bf16")
    flops = 2.0 * m * n * k * batch
    ideal = flops / (np.asarray(peak_tflops, dtype=float) * 1e12)
    return {"seconds": seconds, "compute_bound": core_s >= hbm_s, "core_s": core_s, "hbm_s": hbm_s,
            "hbm_bytes": traffic + 0.0 * seconds, "shared_bytes": core["shared_bytes"],
            "tile_m": core["tile_m"], "tile_n": core["tile_n"], "double_buffered": core["double_buffered"],
            "stream_k": core["stream_k"], "util": ideal / np.maximum(core_s, 1e-30)}


_DEDUP_MIN = 2048  # attention arrays at least this large are evaluated once per distinct shape


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, index of each row's distinct row): `np.unique(rows, axis=0,
    return_inverse=True)` up to the order of the distinct rows, by factorizing one column at a
    time (1-D sorts) into a mixed-radix code; constant columns are skipped, and the code is
    re-numbered before it could overflow."""
    codes = np.zeros(len(rows), dtype=np.int64)
    radix = 1
    for c in range(rows.shape[1]):
        col = rows[:, c]
        if len(col) and col.min() == col.max():
            continue
        values, inv = np.unique(col, return_inverse=True)
        if radix * len(values) >= 2 ** 62:
            codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
            radix = int(codes.max()) + 1
        codes = codes * len(values) + inv.reshape(-1)
        radix *= len(values)
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)


def _per_unique_shape(m, n, k, batch, b_a, b_w, peak_tflops, hw: TiledHW, frac, ragged: bool, b_w_hbm=None):
    """Core time and HBM traffic per GEMM, computed once per distinct (shape, peak, fraction) when
    the hardware is one chip and the points are many (mapping grids repeat shapes a lot).
    `b_w_hbm`: weight bytes HBM carries per element (0 where resident; None: `b_w`)."""
    scalar_hw = all(np.ndim(v) == 0 for k_, v in hw.__dict__.items() if k_ not in ("sustained_frac", "source"))
    cols = [m, n, k, batch, b_a, b_w, np.asarray(peak_tflops, dtype=float), np.asarray(frac, dtype=float)]
    args = np.broadcast_arrays(*cols, *([] if b_w_hbm is None else [b_w_hbm]))
    shape = args[0].shape
    if not scalar_hw:
        return (_core_time(m, n, k, batch, b_a, b_w, peak_tflops, hw, frac, ragged),
                hbm_traffic_bytes(m, n, k, b_a, b_w if b_w_hbm is None else b_w_hbm, hw))
    rows = np.stack([a.reshape(-1) for a in args], axis=1)
    if len(rows) >= _DEDUP_MIN // 8:
        uniq, inverse = unique_rows(rows)
    else:  # a few rows: sorting them costs more than timing the repeats
        uniq, inverse = rows, np.arange(len(rows))
    key = (_hw_key(hw), bool(ragged), uniq.shape, hashlib.blake2b(np.ascontiguousarray(uniq).tobytes(),
                                                                  digest_size=16).digest())
    hit = _SHAPE_CACHE.get(key)
    if hit is None:
        um, un, uk, ub, uba, ubw, upeak, ufrac = uniq.T[:8]
        core = _core_time(um, un, uk, ub, uba, ubw, upeak, hw, ufrac, ragged)
        traffic = hbm_traffic_bytes(um, un, uk, uba, ubw if b_w_hbm is None else uniq[:, 8], hw)
        hit = ({k_: np.asarray(v) for k_, v in core.items()}, np.asarray(traffic))
        _SHAPE_CACHE[key] = hit
        if len(_SHAPE_CACHE) > _SHAPE_CACHE_SIZE:
            _SHAPE_CACHE.popitem(last=False)
    else:
        _SHAPE_CACHE.move_to_end(key)
    core, traffic = hit
    back = lambda x: x[inverse].reshape(shape)  # noqa: E731  (fresh arrays: the cache is never handed out)
    return {k_: back(v) for k_, v in core.items()}, back(traffic)


_SHAPE_CACHE: "OrderedDict[tuple, tuple[dict, np.ndarray]]" = OrderedDict()
"""Core time and HBM traffic per distinct GEMM shape set on one chip: a design's scenarios and
serving modes time the same shapes again and again (~40% of calls in a design search). LRU."""
_SHAPE_CACHE_SIZE = 512


def _hw_key(hw: TiledHW) -> tuple:
    """What of a scalar TiledHW sets the tiled time (its `source` text does not)."""
    return tuple((k_, tuple(sorted(v.items())) if isinstance(v, dict) else float(v) if np.ndim(v) == 0 else
                  np.asarray(v).tobytes()) for k_, v in hw.__dict__.items() if k_ != "source")


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
    # A tile loads only the rows A has (rows past M are zero-filled by the copy engine, not read).
    # A cluster of `multicast` cores shares one load of the operand its tiles have in common: B
    # when there are M tiles to cluster along, else A (decode: every N tile needs the same rows).
    load_a = np.minimum(m, tm) * tk * b_a
    load_b = tk * tn * b_w
    load = np.where(np.ceil(m / tm) >= multicast, load_a + load_b / multicast, load_a / multicast + load_b)
    with np.errstate(divide="ignore"):
        inv_bw = np.where(has_l2, np.maximum(active, 1.0) / np.where(has_l2, l2_bw, 1.0), 0.0)  # s/B per core
        inv_bw_all = np.where(has_l2, cores / np.where(has_l2, l2_bw, 1.0), 0.0)
    t_load = load * inv_bw
    step = np.where(fits2, np.maximum(t_mma, t_load), t_mma + t_load)
    epi = tm * tn * b_a * inv_bw  # outputs stored in the activation format, as the roofline counts them
    t_dp = np.ceil(tiles / cores) * (t_load + ksteps * step + epi)
    # stream-K: every core takes an equal share of all k-steps; partial tiles are fixed up through
    # shared SRAM (one extra store and load of an accumulator tile). All cores load at once, so
    # each gets 1/cores of the shared-SRAM bandwidth.
    t_load_all = load * inv_bw_all
    step_all = np.where(fits2, np.maximum(t_mma, t_load_all), t_mma + t_load_all)
    t_sk = t_load_all + np.ceil(tiles * ksteps / cores) * step_all + 2.0 * tm * tn * 4.0 * inv_bw_all + epi
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

_ATT_ROW_MULTS = tuple(2.0 ** i for i in range(9))  # query-tile rows Br: the row granule × 1 .. 256
_ATT_MAX_ROWS = 2048.0  # largest query tile considered (beyond one granule)
_ATT_KEYS = 64.0
"""Keys per K/V tile (Bc) of the kernels modelled: FlashAttention-2 (Dao 2023, §3.3) picks blocks of
64 or 128 per side; DeepSeek's FlashMLA runs the 576/512-wide latent in 64-row Q blocks against
64-key K/V blocks (kernel traits <576, 64, 64>). A 16-key tile is the fallback when 64 does not
fit (FlashMLA's SM80 port uses m64n16)."""
_ATT_Q_BYTES = 2.0  # Q and O tiles are bf16


def attention_time_s(flops, bytes_, peak_tflops, hbm_tb_s, eff: Efficiency, hw: TiledHW | None = None,
                     head_dim=128.0, precision: str = "bf16", *, geometry: dict | None = None,
                     kv_resident=None, shared_free_bytes=None):
    """Seconds for a fused (flash) attention kernel and whether it is compute-bound.

    Same arguments and return as `roofline.attention_time_s`, plus the chip's `hw`. With the
    kernel's `geometry` (op meta from the graph: query rows per KV group, groups, head dims, KV
    element bytes, K/V sharing one latent) the tiles are modelled (`attention_detail`). Without
    it only the head dimension is: QKᵀ contracts over `head_dim` (padded to the K granule) and
    PV produces `head_dim` columns (padded to one matrix unit's N granule), and `bytes_` is the
    HBM traffic (KV read once).
    """
    if hw is None:
        return roofline.attention_time_s(flops, bytes_, peak_tflops, hbm_tb_s, eff)
    if geometry is not None:
        d = attention_detail(flops, bytes_, peak_tflops, hbm_tb_s, eff, hw, geometry, precision,
                             kv_resident=kv_resident, shared_free_bytes=shared_free_bytes)
        return d["seconds"], d["compute_bound"]
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


def attention_detail(flops, bytes_, peak_tflops, hbm_tb_s, eff: Efficiency, hw: TiledHW, geometry: dict,
                     precision: str = "bf16", *, kv_resident=None, shared_free_bytes=None) -> dict[str, np.ndarray]:
    """A FlashAttention-style kernel through the SRAM levels: seconds, compute_bound, core_s, hbm_s,
    hbm_bytes, shared_bytes (shared SRAM → cores), tile_q (Br), tile_k (Bc), double_buffered,
    kv_passes (times HBM delivers each K/V byte).

    `geometry` (numbers or arrays per point): `q_rows` query rows of one (sequence, KV head) group
    in the kernel (query tokens × query heads sharing the KV head), `kv_groups` such groups on the
    chip, `head_dim` / `v_head_dim` (K and V widths), `kv_bytes` per K/V element, `kv_shared`
    (MLA's absorbed form: V is a slice of the cached latent, so K/V tiles carry `head_dim` only).
    Keys attended per query come from the FLOPs: flops = 2 · q_rows · groups · keys · (dk + dv).

    - **tiles**: a core holds a query tile (Br × dk, bf16), K/V tiles (Bc keys, double-buffered
      when two fit, else loads and compute serialize) and the fp32 S/P block and O accumulator
      (Br × Bc + Br × dv) in its accumulator file, what does not fit spilling into its SRAM.
      Br steps over the M granule × powers of two; Bc is 64 keys, or 16 when only that fits (both
      at least one array granule). When not even the smallest tile fits, Q is re-loaded with
      every K/V tile.
    - **core time**: per K/V tile max(MMA, load) (double-buffered) or their sum, plus loading Q
      and storing O; MMA pads Br, Bc and the head widths to the array; loads come from shared
      SRAM at its bandwidth, shared by all cores (split-KV keeps them busy), a K/V tile shared
      by the `multicast` cores working on Q tiles of one group. All query tiles of a group stream
      all its K/V, so shared-SRAM traffic ≈ K/V · ⌈q_rows / Br⌉: small Br starves the cores.
    - **HBM**: `bytes_` (KV read once, Q, O, new KV) plus re-reads: with shared SRAM, each wave of
      `cores` query tiles of a group walks its K/V together, so K/V comes from HBM once if a
      group's K/V fits the shared SRAM (`shared_free_bytes` of it when given), else once per
      wave (an LRU cache gets nothing from a stream longer than itself); without shared SRAM
      once per query tile. `kv_resident` (per point, `perf.onchip`): KV cache and activations
      live in shared SRAM, so the kernel moves nothing over HBM.
    The core time is the fastest tile's and the HBM traffic the least over the tiles that fit (as
    for GEMMs); time = max of the two + launch. More SRAM (per core or shared) only adds feasible
    tiles, double-buffers them and lowers passes, so it never raises traffic or time.
    """
    b_q = _ATT_Q_BYTES
    gm, gn, gk = _granules(hw, b_q)
    ws = np.asarray(hw.weight_stationary, dtype=bool)
    gn_unit = np.where(ws, np.asarray(hw.array_cols, dtype=float), gn)
    shared = np.asarray(hw.shared_sram_bytes, dtype=float)
    free = shared if shared_free_bytes is None else np.minimum(np.asarray(shared_free_bytes, dtype=float), shared)
    resident = np.zeros(()) if kv_resident is None else np.asarray(kv_resident, dtype=float)
    per_point = [np.asarray(x, dtype=float) for x in (
        flops, bytes_, peak_tflops, hbm_tb_s, geometry["q_rows"], geometry["kv_groups"], geometry["head_dim"],
        geometry["v_head_dim"], geometry["kv_bytes"], geometry.get("kv_shared", False), free, resident)]
    chip = dict(gm=gm, gn_unit=gn_unit, gk=gk, sustained=hw.sustained_frac.get(precision, 1.0), cores=hw.cores,
                s_core=hw.sram_per_core_bytes, acc_rf=hw.acc_bytes_per_core, shared=shared,
                l2_bw=np.asarray(hw.shared_sram_tb_s, dtype=float) * 1e12,
                mc=np.maximum(np.asarray(hw.multicast, dtype=float), 1.0))
    chip = {k: np.asarray(v, dtype=float) for k, v in chip.items()}
    args = np.broadcast_arrays(*per_point)
    shape = args[0].shape
    if any(np.ndim(v) for v in chip.values()) or args[0].size < _DEDUP_MIN:
        return _attention_tiles(*per_point, eff=eff, **chip)
    # One chip, many mapping points: each distinct kernel once (grids repeat them a lot).
    uniq, inverse = unique_rows(np.stack([a.reshape(-1) for a in args], axis=1))
    d = _attention_tiles(*uniq.T, eff=eff, **chip)
    return {k: np.asarray(v)[inverse].reshape(shape) for k, v in d.items()}


def _attention_tiles(flops, bytes_, peak, hbm_bw, q_rows, groups, dk, dv, kvb, kv_shared, free, resident, *,
                     eff: Efficiency, gm, gn_unit, gk, sustained, cores, s_core, acc_rf, shared, l2_bw, mc):
    """`attention_detail` on broadcast arrays (see there)."""
    b_q = _ATT_Q_BYTES
    kv_shared = np.asarray(kv_shared) > 0
    resident = np.asarray(resident) > 0
    q_rows = np.nan_to_num(q_rows, nan=0.0, posinf=0.0)  # a step without sequences has no query rows
    with np.errstate(divide="ignore", invalid="ignore"):
        den = 2.0 * q_rows * groups * (dk + dv)
        keys = np.where(den > 0, flops / np.where(den > 0, den, 1.0), 0.0)
    kv_row = (dk + np.where(kv_shared, 0.0, dv)) * kvb  # K/V bytes per key
    core_flops = peak * 1e12 * eff.attention_compute_frac * sustained / cores
    has_l2 = (shared > 0) & (l2_bw > 0)
    with np.errstate(divide="ignore"):
        inv_bw = np.where(has_l2, cores / np.where(has_l2, l2_bw, 1.0), 0.0)  # s/B per core, all cores loading
    x = lambda a: np.asarray(a)[..., None, None]  # noqa: E731  (candidates on two trailing axes)
    rows_m = np.asarray(_ATT_ROW_MULTS)[:, None]
    # Key tiles: the FlashAttention / FlashMLA block (64 keys) first, the smallest granule when
    # only that fits.
    unit_k = np.maximum(x(gn_unit), x(gk))
    bc = np.concatenate(np.broadcast_arrays(np.maximum(_ATT_KEYS, unit_k), np.maximum(16.0, unit_k)), axis=-1)
    # Query tiles step over the finer of the M and N granules: a few query rows (GQA decode) run
    # in the swapped form, Sᵀ = K·Qᵀ and Oᵀ = Vᵀ·Pᵀ, where they pad N, not M (TensorRT-LLM XQA).
    br = np.minimum(x(gm), x(gn_unit)) * rows_m
    smallest = (rows_m == 1.0) & (np.arange(2)[None, :] == 1)
    in_range = (br <= np.maximum(_ATT_MAX_ROWS, x(gm))) | smallest
    q_tile = br * x(dk) * b_q
    kv_tile = bc * x(kv_row)
    acc = br * bc * 4.0 + br * x(dv) * 4.0
    spill = np.where(x(acc_rf) > 0, np.maximum(acc - x(acc_rf), 0.0), acc)
    fits2 = q_tile + 2.0 * kv_tile + spill <= x(s_core)
    fits1 = q_tile + kv_tile + spill <= x(s_core)
    q_stream = smallest & ~fits1
    feasible = in_range & (fits1 | smallest)

    n_qt = np.ceil(x(q_rows) / br)
    tiles = x(groups) * n_qt
    ksteps = np.ceil(x(keys) / bc)
    pad = lambda a, g: np.ceil(a / g) * g  # noqa: E731
    gm_, gn_, gk_ = x(gm), x(gn_unit), x(gk)
    dk_p = pad(x(dk), gk_)
    macs_qo = pad(br, gm_) * (pad(bc, gn_) * dk_p + pad(x(dv), gn_) * pad(bc, gk_))  # Q rows on M
    macs_sw = pad(br, gn_) * (pad(bc, gm_) * dk_p + pad(x(dv), gm_) * pad(bc, gk_))  # swapped: Q rows on N
    t_mma = 2.0 * np.minimum(macs_qo, macs_sw) / x(core_flops)
    mc_eff = np.where(n_qt >= x(mc), x(mc), 1.0)
    load = kv_tile / mc_eff + np.where(q_stream, q_tile, 0.0)
    t_load = load * x(inv_bw)
    step = np.where(fits2, np.maximum(t_mma, t_load), t_mma + t_load)
    qo = q_tile + br * x(dv) * b_q
    core_s = tiles * (qo * x(inv_bw) + ksteps * step) / x(cores)
    shared_bytes = np.where(x(has_l2), tiles * (qo + ksteps * load), 0.0)

    kv_group = x(keys * kv_row)
    passes = np.where(x(has_l2), np.where(kv_group <= x(free), 1.0, np.ceil(n_qt / x(cores))), n_qt)
    hbm = np.where(x(resident), 0.0, x(bytes_) + x(groups) * kv_group * (passes - 1.0))
    # As for GEMMs, the core tile (fastest on the cores) and the reuse across waves (least HBM
    # traffic) are chosen separately, each over the tiles that fit.
    full = np.broadcast_shapes(core_s.shape, hbm.shape, feasible.shape)
    shape = full[:-2]

    def best_of(score):
        flat = np.broadcast_to(np.where(feasible, score, np.inf), full).reshape(shape + (-1,))
        i = np.argmin(flat, axis=-1)[..., None]
        return lambda a: np.take_along_axis(np.broadcast_to(a, full).reshape(shape + (-1,)), i, -1)[..., 0]

    on_core, on_hbm = best_of(core_s), best_of(hbm)
    c = on_core(core_s)
    h = on_hbm(hbm) / (hbm_bw * 1e12 * eff.hbm_frac)
    return {"seconds": np.maximum(c, h) + eff.kernel_launch_us * 1e-6, "compute_bound": c >= h, "core_s": c,
            "hbm_s": h, "hbm_bytes": on_hbm(hbm), "shared_bytes": on_core(shared_bytes), "tile_q": on_core(br),
            "tile_k": on_core(bc), "double_buffered": on_core(fits2), "kv_passes": on_hbm(passes)}


stream_time_s = roofline.stream_time_s  # elementwise kernels: no tiling to model


# ---- hardware descriptions --------------------------------------------------------------------

def generic_hw(cores, eff: Efficiency) -> TiledHW:
    """A GPU-like chip when nothing better is known: the efficiency's tile granules, 256 KiB per core."""
    return TiledHW(cores=cores, sram_per_core_bytes=256 * KIB, shared_sram_bytes=32 * MIB,
                   array_rows=float(eff.min_tile_m), array_cols=8.0, array_depth=16.0,
                   acc_bytes_per_core=128 * KIB, shared_sram_tb_s=32.0 * float(np.max(cores)) * 1.5e9 / 1e12,
                   source="generic: 256 KiB SRAM/core, 32 MiB shared, 32 B/clk/core at 1.5 GHz")


def from_microarch(m, clock_mhz: float = 1500.0) -> TiledHW:
    """`TiledHW` of a chip's `Microarch` block (data in the chip's YAML or derived from its design)."""
    ws = m.dataflow == "weight_stationary"
    return TiledHW(cores=float(m.tile_units), sram_per_core_bytes=m.sram_per_core_kib * KIB,
                   shared_sram_bytes=m.shared_sram_mib * MIB, array_rows=float(m.matrix_rows),
                   array_cols=float(m.matrix_cols), clock_mhz=float(clock_mhz), weight_stationary=ws,
                   array_depth=float(m.matrix_depth), m_granule=float(m.m_granule),
                   acc_bytes_per_core=m.accumulator_kib_per_core * KIB,
                   shared_sram_tb_s=float(m.shared_sram_tb_s) if m.shared_sram_mib > 0 else 0.0,
                   multicast=float(m.multicast), dram_latency_us=float(m.dram_latency_us),
                   sustained_frac=dict(m.sustained_frac), source=m.source)


def tiled_hw_for(chip) -> TiledHW:
    """`TiledHW` of a `ChipSpec`: its `microarch` block (catalog YAML, or carried from the design it
    was derived from); a chip without one gets a generic GPU-like description from its figures
    (`cores`, `sram_mb`, `clock_mhz`). A `ChipDesign`'s exact one is `design.derive.tiled_hw_from_design`
    (design imports perf, never the reverse)."""
    clock = float(chip.clock_mhz or 1500.0)
    if chip.microarch is not None:
        return from_microarch(chip.microarch, clock)
    cores = float(chip.cores or 100)
    l2 = (chip.sram_mb or 32.0) * MIB
    return TiledHW(cores=cores, sram_per_core_bytes=256 * KIB, shared_sram_bytes=l2, array_rows=64.0,
                   array_cols=8.0, array_depth=16.0, acc_bytes_per_core=128 * KIB, clock_mhz=clock,
                   shared_sram_tb_s=32.0 * cores * clock * 1e6 / 1e12,
                   source=f"generic GPU-like defaults for {chip.id} (no microarch block: 256 KiB SRAM/core, "
                          f"32 B/clk/core to shared SRAM; L2 from the chip's sram_mb)")


def _precision_of(a_bytes, w_bytes) -> str:
    b = float(min(np.min(np.asarray(a_bytes, dtype=float)), np.min(np.asarray(w_bytes, dtype=float))))
    if b >= 4:
        return "fp32"
    if b >= 2:
        return "bf16"
    if b >= 1:
        return "fp8"
    return "fp4"
