"""Screening fidelity: the tiled model's SRAM physics in closed form, vectorized over designs.

`perf.tiled` searches 49 core tiles (GEMM) or 18 query/key tiles (attention) per kernel and 13
on-chip blockings for HBM reuse: ~10-30 µs per (design, kernel shape), too slow to score a
thousand designs a second. This module keeps the same quantities with far fewer candidates
and no per-design candidate search, a few array operations per (design, shape):

- **GEMM core time**: core tiles Tm × Tn with Tm the matrix unit's M granule × 2^i (i ≤ 6, at
  most 512 rows and the padded M) and Tn = Tm × {1/2, 1, 2} on the N granule (21 candidates
  against `tiled`'s 49); a tile fits when its operands fit the per-core SRAM twice (double-
  buffered; else once, loads and compute serialize) and its fp32 accumulators the register file
  (or the SRAM); per k-step max(MMA, load from shared SRAM) over waves or stream-K, as `tiled`.
  Which tiles fit depends only on a design's core geometry, so the tile is chosen once per
  distinct geometry (at its designs' mean rates) and each design times it with its own cores,
  FLOP rate and shared-SRAM bandwidth.
- **GEMM HBM traffic**: the tiled model's own blockings (`tiled.hbm_traffic_bytes`' options), each
  at its best block size in closed form: a whole A (or B) panel of Mb rows resident (the largest
  power of two that fits the pool of shared + per-core SRAM), or a square output block whose
  accumulators stay on chip. Traffic = A·⌈N/Nb⌉ + B·⌈M/Mb⌉ + C, never below A + B + C.
- **Attention**: `tiled.attention_detail`'s 18 tiles (query rows × 64 or 16 keys) and rules
  (what fits the per-core SRAM beside the fp32 score/output spill, double buffering, K/V loads
  from shared SRAM, K/V passes over HBM), the core tile chosen once per core geometry as for
  GEMMs, the HBM passes at the largest query tile that fits.

Monotone like the tiled model: the candidate sets do not depend on the SRAM, which only decides
which fit, so more per-core SRAM only adds tiles (and double buffering) and more shared SRAM
only larger blocks or fewer K/V passes: more SRAM never raises traffic or time (property tests in
tests/test_design_batch.py; the choice is exact for a geometry's mean design, a design far from
that mean may time a tile another would beat by a few percent). It is a screening model: it ranks
designs for the design search (`explore.screen`), whose trials are then run with the tiled model.

Every function takes the tiled model's `TiledHW` (fields shaped (N, 1) for N designs) and point
arrays shaped (P,) and returns (N, P). Kernels are evaluated once per distinct point shape.
"""

from __future__ import annotations

import numpy as np

from tokenfab.perf import tiled
from tokenfab.perf.efficiency import Efficiency

_MAX_MULT = 64.0  # core tile multipliers 1 .. 64 of the granule (tiled._TILE_MULTS)
_MAX_TILE = 512.0
_GRID_MIN, _GRID_MAX = 16.0, 65536.0  # on-chip block sizes considered for HBM reuse (tiled._GRID)


_MANTISSA = np.int64((1 << 52) - 1)


def _pow2_floor(x):
    """Largest power of two ≤ x (x ≥ 1), elementwise; 0 where x < 1 or NaN (clearing a float64's
    mantissa bits leaves 2^floor(log2 x))."""
    x = np.asarray(x, dtype=float)
    ok = x >= 1.0
    bits = np.where(ok, x, 1.0).view(np.int64) & ~_MANTISSA
    return np.where(ok, bits.view(np.float64), 0.0)


_ASPECTS = (0.5, 1.0, 2.0)
"""Core tile aspect ratios Tn / Tm tried (with Tm = the M granule × 1 .. 64)."""


def _first_index(inverse: np.ndarray, n_unique: int) -> np.ndarray:
    """Index of the first point of each distinct row."""
    first = np.empty(n_unique, dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    return first


_KEYS: dict[int, tuple[np.ndarray, np.ndarray]] = {}
"""Column keys of the per-design arrays of the step being timed (`time_ops` clears it): every op
of a step shares the step's peak, fraction and residency arrays."""


def _column_key(x) -> np.ndarray | None:
    """A per-point key of an (N, P) per-design array (None when it does not vary by point): a
    fixed random projection over the design axis, so equal columns get equal keys."""
    if isinstance(x, np.ndarray) and id(x) in _KEYS and _KEYS[id(x)][0] is x:
        return _KEYS[id(x)][1]
    a = np.asarray(x, dtype=float)
    if a.ndim < 2 or a.shape[-1] == 1:
        return None
    w = np.random.default_rng(20261203).uniform(0.5, 1.5, a.shape[0])
    key = w @ np.where(np.isfinite(a), a, 1e300)
    if isinstance(x, np.ndarray):
        _KEYS[id(x)] = (x, key)
    return key


class _Points:
    """Distinct points of per-point columns (P,) and per-design columns (N, P): each distinct point
    once, per-design values gathered at its first occurrence."""

    def __init__(self, point_cols: list, design_cols: list):
        cols = [np.asarray(c, dtype=float) for c in point_cols]
        keys = [k for k in (_column_key(d) for d in design_cols) if k is not None]
        args = np.broadcast_arrays(*cols, *keys)
        self.shape = args[0].shape
        rows = np.stack([a.reshape(-1) for a in args], axis=1)
        if len(rows) >= 16:
            uniq, self.inverse = tiled.unique_rows(rows)
        else:
            uniq, self.inverse = rows, np.arange(len(rows))
        self.first = _first_index(self.inverse, len(uniq))
        self.cols = [uniq[:, i] for i in range(len(cols))]

    def design(self, x):
        """A per-design value at the distinct points: (N, U) from (N, P); (N, 1) and scalars as they are."""
        x = np.asarray(x)
        if x.ndim >= 2 and x.shape[-1] > 1:
            return np.broadcast_to(x, x.shape[:-1] + self.shape).reshape(x.shape[0], -1)[:, self.first]
        return x

    def back(self, x):
        """(N, U) → (N, P)."""
        x = np.asarray(x)
        return np.take(x, self.inverse, axis=-1).reshape(x.shape[:-1] + self.shape)


def _hw_arrays(hw: tiled.TiledHW, b_a):
    gm, gn, gk = tiled._granules(hw, b_a)
    f = lambda v: np.asarray(v, dtype=float)  # noqa: E731
    return dict(gm=gm, gn=gn, gk=gk, cores=f(hw.cores), s_core=f(hw.sram_per_core_bytes),
                acc_rf=f(hw.acc_bytes_per_core), shared=f(hw.shared_sram_bytes),
                l2_bw=f(hw.shared_sram_tb_s) * 1e12, mc=np.maximum(f(hw.multicast), 1.0))


# ---- GEMM -------------------------------------------------------------------------------------

def gemm_time_s(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, cores, eff: Efficiency, batch=1.0,
                compute_frac=None, ragged: bool = False, *, hw: tiled.TiledHW, precision: str | None = None,
                weights_resident=None):
    """Seconds for `batch` GEMMs (M×K)·(K×N) and whether each is compute-bound: the arguments
    of `tiled.gemm_time_s`, with per-design arrays shaped (N, 1) or (N, P)."""
    d = gemm_detail(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, eff, batch, compute_frac, ragged, hw=hw,
                    precision=precision, weights_resident=weights_resident, parts=False)
    return d["seconds"], d["compute_bound"]


def gemm_detail(m, n, k, peak_tflops, hbm_tb_s, w_bytes, a_bytes, eff: Efficiency, batch=1.0, compute_frac=None,
                ragged: bool = False, *, hw: tiled.TiledHW, precision: str | None = None,
                weights_resident=None, parts: bool = True) -> dict[str, np.ndarray]:
    """`gemm_time_s` with its parts: seconds, compute_bound, core_s, hbm_s, hbm_bytes, tile_m,
    tile_n, double_buffered (each (N, P); `parts=False`: seconds and compute_bound only)."""
    if compute_frac is None:
        compute_frac = tiled.achievable_frac(eff, hw, precision or tiled._precision_of(a_bytes, w_bytes))
    res = np.zeros(()) if weights_resident is None else weights_resident
    pts = _Points([m, n, k, batch, a_bytes, w_bytes], [peak_tflops, compute_frac, res, hbm_tb_s])
    um, un, uk, ub, uba, ubw = pts.cols
    flops_u = pts.design(peak_tflops) * 1e12 * pts.design(compute_frac)
    res_u = pts.design(res)
    ubw_hbm = np.where(res_u > 0, 0.0, ubw)
    per_core = flops_u / np.asarray(hw.cores, dtype=float)
    core_s, tm, tn, db = _core(um, un, uk, ub, uba, ubw, per_core, hw, ragged)
    traffic = hbm_bytes(um, un, uk, uba, ubw_hbm, hw) * ub
    hbm_s = traffic / (pts.design(hbm_tb_s) * 1e12 * eff.hbm_frac)
    latency = np.asarray(hw.dram_latency_us, dtype=float) * 1e-6
    seconds = np.maximum(core_s, hbm_s) + latency + eff.gemm_fixed_s("bf16")
    b = pts.back
    if not parts:
        return {"seconds": b(seconds), "compute_bound": b(core_s >= hbm_s)}
    return {"seconds": b(seconds), "compute_bound": b(core_s >= hbm_s), "core_s": b(core_s), "hbm_s": b(hbm_s),
            "hbm_bytes": b(traffic), "tile_m": b(tm), "tile_n": b(tn), "double_buffered": b(db)}


def _core(m, n, k, batch, b_a, b_w, per_core_flops, hw: tiled.TiledHW, ragged: bool):
    """Core time of the best tile: (seconds, tile_m, tile_n, double_buffered), each (N, U).

    Which tiles fit depends on the design only through its core geometry (granules, per-core
    SRAM, accumulator file, multicast), so the 21 candidates (`_ASPECTS` × seven heights) are
    laid out once per distinct geometry and the one its mean design runs fastest is chosen; each
    design then times that tile with its own cores, FLOP rate and shared-SRAM bandwidth. (The
    tiled model searches 49 tiles for every design.)"""
    c = _hw_arrays(hw, b_a)
    n_des = max(np.shape(per_core_flops)[0] if np.ndim(per_core_flops) == 2 else 1,
                *(np.shape(v)[0] for v in c.values() if np.ndim(v) == 2))
    full = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (n_des,) + np.shape(v)[1:])  # noqa: E731
    geo_cols = [full(c[key]).reshape(n_des, -1)[:, 0] for key in ("gm", "gn", "gk", "s_core", "acc_rf", "mc")]
    geo, gi = tiled.unique_rows(np.stack(geo_cols, axis=1)) if n_des > 1 else (np.stack(geo_cols, axis=1),
                                                                               np.zeros(1, dtype=np.int64))
    cores_d = full(c["cores"]).reshape(n_des, -1)[:, 0]
    l2_d = full(c["l2_bw"]).reshape(n_des, -1)[:, 0]
    shared_d = full(c["shared"]).reshape(n_des, -1)[:, 0]
    flops_d = full(per_core_flops).reshape(n_des, -1)
    # A geometry's reference design: the mean of its members' cores, FLOP rate and bandwidth.
    n_geo = len(geo)
    count = np.bincount(gi, minlength=n_geo).astype(float)
    mean = lambda v: np.bincount(gi, weights=v, minlength=n_geo) / count  # noqa: E731
    ref = np.stack([mean(cores_d), mean(flops_d.mean(axis=1)), mean(l2_d * (shared_d > 0))], axis=1)
    x = lambda v: np.asarray(v, dtype=float)[..., None]  # noqa: E731
    gcol = lambda j: geo[:, j].reshape(-1, 1, 1)  # noqa: E731
    gm, gn, gk, s_core, acc_rf, mc = (gcol(j) for j in range(6))
    mu, nu, ku, bu, bau, bwu = x(m)[None], x(n)[None], x(k)[None], x(batch)[None], x(b_a)[None], x(b_w)[None]
    tk = np.ceil(np.maximum(gk, 128.0 / np.maximum(bau, 0.5)) / gk) * gk
    # Candidates on a trailing axis: Tm = gm · 2^i (i ≤ 6, ≤ 512 rows, ≤ the padded M) and, per
    # aspect ratio r, Tn = r · Tm rounded down to the N granule (≤ 512, ≤ the padded N). The set
    # does not depend on the SRAM, which only decides which fit: more SRAM, more candidates.
    r = np.asarray(_ASPECTS)
    m_cap = np.minimum(np.minimum(np.maximum(_MAX_TILE, gm), gm * _pow2_ceil(mu / gm)), gm * _MAX_MULT)
    n_cap = np.minimum(np.minimum(np.maximum(_MAX_TILE, gn), gn * _pow2_ceil(nu / gn)), gn * _MAX_MULT)
    heights = int(np.log2(np.max(m_cap / gm))) + 1  # heights past every padded M are never in range
    mult = np.exp2(np.arange(float(min(heights, 7))))
    tm = np.repeat(gm * mult, len(r), axis=-1) + 0.0 * mu  # (.., 7·R): i major, r minor
    rr = np.tile(r, len(mult))
    tn = np.clip(gn * _pow2_floor(rr * tm / gn), gn, n_cap)
    in_range = tm <= m_cap
    in_sram = acc_rf <= 0
    acc = 4.0 * tm * tn
    acc_ok = in_sram | (acc <= acc_rf)
    op = tk * (tm * bau + tn * bwu)
    acc_s = np.where(in_sram, acc, 0.0)
    db = acc_ok & (2.0 * op + acc_s <= s_core)
    smallest = (tm == gm) & (tn == gn)
    feasible = in_range & ((acc_ok & (op + acc_s <= s_core)) | smallest)
    ksteps = np.ceil(ku / tk)
    tiles_m = (mu + tm / 2.0) / tm if ragged else np.ceil(mu / tm)
    tiles = tiles_m * np.ceil(nu / tn) * bu
    load_a = np.minimum(mu, tm) * tk * bau
    load_b = tk * tn * bwu
    load = np.where(np.ceil(mu / tm) >= mc, load_a + load_b / mc, load_a / mc + load_b)
    mma = 2.0 * tm * tn * tk
    epi = tm * tn * bau
    fix = 2.0 * tm * tn * 4.0

    def timing(tiles_, ksteps_, load_, mma_, epi_, fix_, db_, cores, flops, l2):
        active = np.minimum(tiles_, cores)
        has_l2 = l2 > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_bw = np.where(has_l2, np.maximum(active, 1.0) / np.where(has_l2, l2, 1.0), 0.0)
            inv_all = np.where(has_l2, cores / np.where(has_l2, l2, 1.0), 0.0)
            t_mma = mma_ / flops
        t_load = load_ * inv_bw
        t_dp = np.ceil(tiles_ / cores) * (t_load + ksteps_ * np.where(db_, np.maximum(t_mma, t_load), t_mma + t_load)
                                          + epi_ * inv_bw)
        t_la = load_ * inv_all
        t_sk = (t_la + np.ceil(tiles_ * ksteps_ / cores) * np.where(db_, np.maximum(t_mma, t_la), t_mma + t_la)
                + (fix_ + epi_) * inv_all)
        return np.where((ksteps_ > 1) & (t_sk < t_dp), t_sk, t_dp)

    rc, rf, rl = (ref[:, j].reshape(-1, 1, 1) for j in range(3))
    t_ref = np.where(feasible, timing(tiles, ksteps, load, mma, epi, fix, db, rc, rf, rl), np.inf)
    best = np.argmin(t_ref, axis=-1)[..., None]  # (G, U, 1)
    pick = lambda a_: np.take_along_axis(np.broadcast_to(a_, t_ref.shape), best, -1)[..., 0][gi]  # noqa: E731
    tm_, tn_, db_, tiles_, ks_, load_, mma_, epi_, fix_ = (pick(v) for v in (tm, tn, db, tiles, ksteps, load, mma,
                                                                                  epi, fix))
    cores = cores_d.reshape(-1, 1)
    l2 = (l2_d * (shared_d > 0)).reshape(-1, 1)
    flops = flops_d if flops_d.shape[1] > 1 else flops_d.reshape(-1, 1)
    return timing(tiles_, ks_, load_, mma_, epi_, fix_, db_, cores, flops, l2), tm_, tn_, db_


def _pow2_ceil(x):
    """Smallest power of two ≥ x (1 for x ≤ 1)."""
    x = np.maximum(np.asarray(x, dtype=float), 1.0)
    f = _pow2_floor(x)
    return np.where(f < x, 2.0 * f, f)


def hbm_bytes(m, n, k, a_bytes, w_bytes, hw: tiled.TiledHW):
    """HBM bytes of one GEMM: the least of the tiled model's blockings at their best sizes (closed
    form), never more than a granule tile with no reuse, never less than A + B + C."""
    b_a = np.asarray(a_bytes, dtype=float)
    b_w = np.asarray(w_bytes, dtype=float)
    gm, gn, _ = tiled._granules(hw, b_a)
    cores = np.asarray(hw.cores, dtype=float)
    pool = np.asarray(hw.shared_sram_bytes, dtype=float) + cores * np.asarray(hw.sram_per_core_bytes, dtype=float)
    acc_cap = cores * np.asarray(hw.acc_bytes_per_core, dtype=float)
    chunk = 128.0 / np.maximum(b_a, 0.5)
    a = m * k * b_a
    b = k * n * b_w
    c = m * n * b_a
    base = a * np.ceil(n / gn) + b * np.ceil(m / gm) + c
    with np.errstate(divide="ignore", invalid="ignore"):
        # A panel of Mb rows resident: the largest power of two Mb with Mb·K·b_a + 2·chunk·gn·b_w ≤ pool.
        mb = np.clip(_pow2_floor((pool - 2.0 * chunk * gn * b_w) / (k * b_a)), 0.0, _GRID_MAX)
        t_a = np.where(mb >= _GRID_MIN, a + b * np.ceil(m / np.maximum(mb, 1.0)) + c, np.inf)
        nb_ = np.clip(_pow2_floor((pool - 2.0 * chunk * gm * b_a) / (k * np.where(b_w > 0, b_w, 1.0))),
                      0.0, _GRID_MAX)
        nb_ = np.where(b_w > 0, nb_, _GRID_MAX)
        t_b = np.where(nb_ >= _GRID_MIN, a * np.ceil(n / np.maximum(nb_, 1.0)) + b + c, np.inf)
        # Square output block g × g (g a power of two) with accumulators on chip and K streaming:
        # 2·chunk·g·(b_a + b_w) + [4·g² when there is no accumulator file] ≤ pool, 4·g² ≤ acc_cap.
        lin = 2.0 * chunk * (b_a + b_w)
        qa = np.where(acc_cap > 0, 0.0, 4.0)
        root = np.where(qa > 0, (np.sqrt(lin * lin + 4.0 * qa * pool) - lin) / (2.0 * np.where(qa > 0, qa, 1.0)),
                        pool / lin)
        root = np.minimum(root, np.where(acc_cap > 0, np.sqrt(acc_cap / 4.0), np.inf))
        g = np.clip(_pow2_floor(root), 0.0, _GRID_MAX)
        gmb = np.minimum(g, np.ceil(m / gm) * gm)
        gnb = np.minimum(g, np.ceil(n / gn) * gn)
        t_blk = np.where(g >= _GRID_MIN, a * np.ceil(n / np.maximum(gnb, 1.0)) + b * np.ceil(m / np.maximum(gmb, 1.0))
                         + c, np.inf)
    best = np.minimum(np.minimum(base, t_a), np.minimum(t_b, t_blk))
    return np.maximum(best, a + b + c)


# ---- attention --------------------------------------------------------------------------------

def attention_time_s(flops, bytes_, peak_tflops, hbm_tb_s, eff: Efficiency, hw: tiled.TiledHW, head_dim=128.0,
                     precision: str = "bf16", *, geometry: dict | None = None, kv_resident=None):
    """Seconds of a fused attention kernel and whether it is compute-bound (the arguments of
    `tiled.attention_time_s`). Without `geometry` the tiled model's head-width form is used as is
    (it is already closed form)."""
    if geometry is None:
        return tiled.attention_time_s(flops, bytes_, peak_tflops, hbm_tb_s, eff, hw=hw, head_dim=head_dim,
                                      precision=precision)
    d = attention_detail(flops, bytes_, peak_tflops, hbm_tb_s, eff, hw, geometry, precision, kv_resident=kv_resident,
                         parts=False)
    return d["seconds"], d["compute_bound"]


def attention_detail(flops, bytes_, peak_tflops, hbm_tb_s, eff: Efficiency, hw: tiled.TiledHW, geometry: dict,
                     precision: str = "bf16", *, kv_resident=None, parts: bool = True) -> dict[str, np.ndarray]:
    """Seconds, compute_bound (`parts=False`: only these), core_s, hbm_s, hbm_bytes, tile_q (Br),
    tile_k (Bc), kv_passes, each (N, P). `tiled.attention_detail`'s 18 candidate tiles (query rows
    × two key-tile sizes) and rules; which fit depends on a design's core geometry only, so the
    core tile is chosen once per geometry (at its designs' mean rates) and the HBM passes at the
    largest query tile that fits (fewest passes)."""
    resident = np.zeros(()) if kv_resident is None else kv_resident
    pts = _Points([flops, bytes_, geometry["q_rows"], geometry["kv_groups"], geometry["head_dim"],
                   geometry["v_head_dim"], geometry["kv_bytes"], geometry.get("kv_shared", False)],
                  [peak_tflops, resident, hbm_tb_s])
    fl, by, q_rows, groups, dk, dv, kvb, kv_shared = pts.cols
    b_q = tiled._ATT_Q_BYTES
    c = _hw_arrays(hw, b_q)
    ws = np.asarray(hw.weight_stationary, dtype=bool)
    gn_unit = np.where(ws, np.asarray(hw.array_cols, dtype=float), c["gn"])
    peak_u = pts.design(peak_tflops)
    n_des = max(np.shape(peak_u)[0] if np.ndim(peak_u) == 2 else 1,
                *(np.shape(v)[0] for v in (*c.values(), gn_unit) if np.ndim(v) == 2))
    col = lambda v: np.broadcast_to(np.asarray(v, dtype=float), (n_des,) + np.shape(v)[1:]).reshape(n_des, -1)[:, 0]  # noqa: E731
    geo_cols = [col(v) for v in (c["gm"], gn_unit, c["gk"], c["s_core"], c["acc_rf"], c["mc"])]
    geo, gi = (tiled.unique_rows(np.stack(geo_cols, axis=1)) if n_des > 1
               else (np.stack(geo_cols, axis=1), np.zeros(1, dtype=np.int64)))
    cores_d, l2_d, shared_d = col(c["cores"]), col(c["l2_bw"]), col(c["shared"])
    sustained = np.asarray(hw.sustained_frac.get(precision, 1.0), dtype=float)
    flops_d = np.broadcast_to(peak_u * 1e12 * eff.attention_compute_frac * sustained, (n_des, len(fl)))
    count = np.bincount(gi, minlength=len(geo)).astype(float)
    mean = lambda v: np.bincount(gi, weights=v, minlength=len(geo)) / count  # noqa: E731
    ref_cores, ref_flops = mean(cores_d), mean(flops_d.mean(axis=1))
    ref_l2 = mean(l2_d * (shared_d > 0))

    kv_shared = kv_shared > 0
    q_rows = np.nan_to_num(q_rows, nan=0.0, posinf=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = 2.0 * q_rows * groups * (dk + dv)
        keys = np.where(den > 0, fl / np.where(den > 0, den, 1.0), 0.0)
    kv_row = (dk + np.where(kv_shared, 0.0, dv)) * kvb
    # Candidates (G, U, 18): Br = row granule × 2^i (i < 9), Bc = 64 or 16 keys (at least a granule).
    g = lambda j: geo[:, j].reshape(-1, 1, 1)  # noqa: E731
    gm, gnu, gk, s_core, acc_rf, mc = (g(j) for j in range(6))
    u = lambda v: np.asarray(v, dtype=float)[None, :, None]  # noqa: E731
    qr, grp, kk, dku, dvu, kvr = u(q_rows), u(groups), u(keys), u(dk), u(dv), u(kv_row)
    unit_k = np.maximum(gnu, gk)
    rows_m = np.repeat(np.asarray(tiled._ATT_ROW_MULTS), 2)
    which = np.tile(np.arange(2), len(tiled._ATT_ROW_MULTS))
    bc = np.where(which == 0, np.maximum(tiled._ATT_KEYS, unit_k), np.maximum(16.0, unit_k))
    br = np.minimum(gm, gnu) * rows_m
    smallest = (rows_m == 1.0) & (which == 1)
    in_range = (br <= np.maximum(tiled._ATT_MAX_ROWS, gm)) | smallest
    q_tile = br * dku * b_q
    kv_tile = bc * kvr
    acc = br * bc * 4.0 + br * dvu * 4.0
    spill = np.where(acc_rf > 0, np.maximum(acc - acc_rf, 0.0), acc)
    fits2 = q_tile + 2.0 * kv_tile + spill <= s_core
    fits1 = q_tile + kv_tile + spill <= s_core
    q_stream = smallest & ~fits1
    feasible = in_range & (fits1 | smallest)
    n_qt = np.ceil(qr / br)
    ksteps = np.ceil(kk / bc)
    pad = lambda a_, g_: np.ceil(a_ / g_) * g_  # noqa: E731
    dk_p = pad(dku, gk)
    macs = np.minimum(pad(br, gm) * (pad(bc, gnu) * dk_p + pad(dvu, gnu) * pad(bc, gk)),
                      pad(br, gnu) * (pad(bc, gm) * dk_p + pad(dvu, gm) * pad(bc, gk)))
    load_b = kv_tile / np.where(n_qt >= mc, mc, 1.0) + np.where(q_stream, q_tile, 0.0)
    qo = q_tile + br * dvu * b_q
    work = grp * n_qt  # tiles

    def core_time(tiles, ks, mac, load, qo_, db, cores, flops_c, l2):
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_bw = np.where(l2 > 0, cores / np.where(l2 > 0, l2, 1.0), 0.0)
            t_mma = 2.0 * mac / (flops_c / cores)
        t_load = load * inv_bw
        step = np.where(db, np.maximum(t_mma, t_load), t_mma + t_load)
        return tiles * (qo_ * inv_bw + ks * step) / cores

    rc, rf, rl = (x.reshape(-1, 1, 1) for x in (ref_cores, ref_flops, ref_l2))
    t_ref = np.where(feasible, core_time(work, ksteps, macs, load_b, qo, fits2, rc, rf, rl), np.inf)
    best = np.argmin(t_ref, axis=-1)[..., None]
    pick = lambda a_: np.take_along_axis(np.broadcast_to(a_, t_ref.shape), best, -1)[..., 0][gi]  # noqa: E731
    br_c, bc_c, tiles_c, ks_c, mac_c, load_c, qo_c, db_c = (pick(v) for v in (br, bc, work, ksteps, macs, load_b, qo,
                                                                               fits2))
    cores, l2 = cores_d.reshape(-1, 1), (l2_d * (shared_d > 0)).reshape(-1, 1)
    core_s = core_time(tiles_c, ks_c, mac_c, load_c, qo_c, db_c, cores, flops_d, l2)
    # HBM: the largest query tile that fits makes the fewest K/V passes.
    br_h = np.max(np.where(feasible, br, 0.0), axis=-1)[gi]
    n_qt_h = np.ceil(q_rows / br_h)
    kv_group = keys * kv_row
    has_l2 = (shared_d > 0).reshape(-1, 1) & (l2 > 0)
    passes = np.where(has_l2, np.where(kv_group <= shared_d.reshape(-1, 1), 1.0, np.ceil(n_qt_h / cores)), n_qt_h)
    hbm = np.where(pts.design(resident) > 0, 0.0, by + groups * kv_group * (passes - 1.0))
    hbm_s = hbm / (pts.design(hbm_tb_s) * 1e12 * eff.hbm_frac)
    b = pts.back
    seconds = b(np.maximum(core_s, hbm_s) + eff.kernel_launch_us * 1e-6)
    if not parts:
        return {"seconds": seconds, "compute_bound": b(core_s >= hbm_s)}
    return {"seconds": seconds, "compute_bound": b(core_s >= hbm_s), "core_s": b(core_s), "hbm_s": b(hbm_s),
            "hbm_bytes": b(hbm + 0.0 * core_s), "tile_q": b(br_c), "tile_k": b(bc_c), "kv_passes": b(passes)}


# ---- a step's ops -----------------------------------------------------------------------------

def time_ops(ops: list, hw, exact: bool = False) -> list:
    """`perf.evaluate.time_ops` for hardware whose fields are arrays over designs (shaped (N, 1) or
    (N, P)) and ops over points (P,): GEMMs and attention through the screening kernels (`exact`:
    the tiled model's, `tiled.gemm_time_s` / `tiled.attention_time_s`), every other kind as there;
    vector and special-function work against per-design peaks (`_with_units`, where a peak of 0
    or NaN means not timed, as None does there)."""
    from dataclasses import replace

    from tokenfab.perf import evaluate as ev

    out = []
    eff = hw.eff
    _KEYS.clear()
    bare = replace(hw, vector_tflops=None, sfu_tops=None)  # ev.time_ops takes scalar unit peaks only
    res = hw.resident
    w_res = None if res is None or not np.any(res.weights) else res.weights
    kv_res = None if res is None or not np.any(res.kv) else res.kv
    for op in ops:
        if op.kind == "gemm" and not exact:
            peak, frac = ev._gemm_peak(op, hw)
            t, cb = gemm_time_s(op.m, op.n, op.k, peak, hw.hbm_tb_s, op.w_bytes, op.a_bytes, hw.cores, eff,
                                batch=op.groups, compute_frac=frac, ragged=bool(op.meta.get("ragged", False)),
                                hw=hw.tiled, weights_resident=w_res)
            t = t + ev.act_quant_s(op, peak, hw)  # the FP8/FP4 activation quantization's pass, as there
            bound = np.where(cb, 0, 1)
        elif op.kind == "attention" and not exact:
            geo = op.meta if "q_rows" in op.meta else None
            t, cb = attention_time_s(op.flops, op.bytes, hw.attention_tflops, hw.hbm_tb_s, eff, hw.tiled,
                                     head_dim=op.meta.get("head_dim", 128.0), geometry=geo,
                                     kv_resident=None if geo is None else kv_res)
            bound = np.where(cb, 0, 1)
        else:
            one = ev.time_ops([op], bare)[0]
            t = np.asarray(one.seconds, float) / op.count if op.count else np.asarray(one.seconds, float)
            bound = one.bound
        unit = np.asarray(bound)
        if op.kind in ("attention", "stream", "fused") and (np.any(op.vector_flops) or np.any(op.sfu_ops)):
            t, bound, unit = _with_units(op, hw, t, bound)
        out.append(ev.OpTime(op.name, np.asarray(t, float) * op.count, bound, unit))
    _KEYS.clear()
    return out


def _per_peak(work, peak):
    """Seconds of `work` at `peak` tera-ops/s per design (0 where the peak is unknown: 0 or NaN)."""
    if peak is None:
        return 0.0
    p = np.nan_to_num(np.asarray(peak, dtype=float), nan=0.0)
    with np.errstate(divide="ignore"):
        inv = np.where(p > 0, 1e-12 / np.where(p > 0, p, 1.0), 0.0)  # (N, 1): cheap
    return np.asarray(work, dtype=float) * inv


def _with_units(op, hw, t, bound):
    """`perf.evaluate._with_units` with per-design unit peaks: max(the kernel's time, vector time +
    launch, special-function time + launch)."""
    launch = op.kernels * hw.eff.kernel_launch_us * 1e-6
    t = np.asarray(t, float)
    bound = np.asarray(bound)
    t_vec = _per_peak(op.vector_flops, hw.vector_tflops) + launch
    t_sfu = _per_peak(op.sfu_ops, hw.sfu_tops) + launch
    over_vec, over_sfu = t_vec > t, t_sfu > t
    if not (over_vec.any() or over_sfu.any()):  # the usual case: the units hide under the kernel
        return t, bound, bound
    new = np.maximum(t, np.maximum(t_vec, t_sfu))
    unit = np.where(over_sfu, np.where(t_sfu >= t_vec, 4, 3), np.where(over_vec, 3, bound))
    return new, np.where(unit >= 3, 0, bound), unit
