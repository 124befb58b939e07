"""Tiled (SRAM-aware) GEMM model: hand-worked cases, physical laws, agreement with the roofline on
large GEMMs and with measurements on awkward ones."""

import csv
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.catalog import load_chip
from tokenfab.perf import roofline, tiled
from tokenfab.perf.efficiency import Efficiency, family_default
from tokenfab.perf.tiled import KIB, MIB, TiledHW

NO_OVERHEAD = Efficiency(gemm_compute_frac=1.0, hbm_frac=1.0, kernel_launch_us=0.0)


def one_core(**kw) -> TiledHW:
    base = dict(cores=1, sram_per_core_bytes=64 * MIB, shared_sram_bytes=0.0, array_rows=128, array_cols=128,
                array_depth=16, dram_latency_us=0.0)
    return TiledHW(**{**base, **kw})


# ---- hand-worked -------------------------------------------------------------------------------

def test_single_core_compute_bound_gemm_takes_flops_over_peak():
    # 128³ bf16 on one 128×128 output-stationary core at 1 TFLOP/s: one tile, two 64-deep k-steps,
    # no shared level to load from, so exactly 2·128³ / 1e12 s.
    t, compute_bound = tiled.gemm_time_s(128, 128, 128, 1.0, 1000.0, 2, 2, 1, NO_OVERHEAD, hw=one_core())
    assert float(t) == pytest.approx(2 * 128 ** 3 / 1e12, rel=1e-9)
    assert bool(compute_bound)


def test_m_pads_to_the_array_rows():
    # M = 64 on a 128-row output-stationary array computes a full 128-row tile: half the work wasted.
    full, _ = tiled.gemm_time_s(128, 128, 128, 1.0, 1000.0, 2, 2, 1, NO_OVERHEAD, hw=one_core())
    half, _ = tiled.gemm_time_s(64, 128, 128, 1.0, 1000.0, 2, 2, 1, NO_OVERHEAD, hw=one_core())
    assert float(half) == pytest.approx(float(full))


def test_weight_stationary_pads_k_not_m():
    ws = one_core(weight_stationary=True, m_granule=8)
    k64, _ = tiled.gemm_time_s(1024, 128, 64, 1.0, 1000.0, 2, 2, 1, NO_OVERHEAD, hw=ws)
    k128, _ = tiled.gemm_time_s(1024, 128, 128, 1.0, 1000.0, 2, 2, 1, NO_OVERHEAD, hw=ws)
    m8, _ = tiled.gemm_time_s(8, 128, 128, 1.0, 1000.0, 2, 2, 1, NO_OVERHEAD, hw=ws)
    assert float(k64) == pytest.approx(float(k128))          # K = 64 padded to the 128-row array
    assert float(m8) == pytest.approx(float(k128) * 8 / 1024)  # M only pads to 8 rows


def test_hbm_traffic_without_reuse_rereads_operands_per_tile():
    # 256³ bf16, 64×64 granules, no SRAM to share: A read once per N tile (4), B once per M tile (4).
    hw = one_core(sram_per_core_bytes=0.0, array_rows=64, array_cols=64)
    a = b = c = 256 * 256 * 2
    assert float(tiled.hbm_traffic_bytes(256, 256, 256, 2, 2, hw)) == 4 * a + 4 * b + c


def test_hbm_traffic_with_ample_sram_reads_each_operand_once():
    hw = one_core(sram_per_core_bytes=0.0, shared_sram_bytes=64 * MIB, array_rows=64, array_cols=64)
    assert float(tiled.hbm_traffic_bytes(256, 256, 256, 2, 2, hw)) == 3 * 256 * 256 * 2


def test_wave_quantization_on_a_small_gemm_without_split_k():
    # 4 output tiles on 8 cores, K a single step: half the cores idle, time = one tile's time.
    hw = one_core(cores=8, array_rows=64, array_cols=64, sram_per_core_bytes=16 * KIB)
    t, _ = tiled.gemm_time_s(128, 128, 64, 8.0, 1000.0, 2, 2, 8, NO_OVERHEAD, hw=hw)
    assert float(t) == pytest.approx(2 * 64 * 64 * 64 / 1e12, rel=1e-9)


def test_vectorized_over_shapes_and_designs():
    hw = one_core(cores=np.array([[4.0], [8.0]]), array_rows=64, array_cols=64)
    m = np.array([64.0, 512.0, 4096.0])
    t, cb = tiled.gemm_time_s(m, 1024, 1024, np.array([[10.0], [20.0]]), 1.0, 2, 2, 8, NO_OVERHEAD, hw=hw)
    assert t.shape == (2, 3) and cb.shape == (2, 3)
    one = tiled.gemm_time_s(512.0, 1024, 1024, 20.0, 1.0, 2, 2, 8, NO_OVERHEAD, hw=one_core(cores=8.0, array_rows=64,
                                                                                            array_cols=64))[0]
    assert t[1, 1] == pytest.approx(float(one))


# ---- physical laws -----------------------------------------------------------------------------

dims = st.sampled_from([1, 7, 64, 100, 128, 333, 1024, 2048, 4096, 7168, 16384])


GEMM_SRAM_CASES = dict(
    m=dims, n=dims, k=dims, b=st.sampled_from([1.0, 2.0]), cores=st.sampled_from([1, 4, 32, 132]),
    core_kib=st.sampled_from([16, 64, 228, 1024]), shared_mib=st.sampled_from([0, 4, 50, 256]),
    grow=st.sampled_from([1.5, 2.0, 8.0]), which=st.sampled_from(["core", "shared", "both"]), ws=st.booleans())
"""GEMM shapes and SRAM growths of the GEMM law (also run on the screening kernels:
tests/test_design_batch.py)."""


def sram_pair(cores, core_kib, shared_mib, grow, which, ws) -> tuple[TiledHW, TiledHW]:
    """A small tiled chip (weight- or output-stationary) and the same chip with `grow` x the SRAM
    per core, shared, or both."""
    hw = TiledHW(cores=cores, sram_per_core_bytes=core_kib * KIB, shared_sram_bytes=shared_mib * MIB,
                 array_rows=128 if ws else 64, array_cols=128 if ws else 8, array_depth=16, weight_stationary=ws,
                 acc_bytes_per_core=0 if ws else 128 * KIB, shared_sram_tb_s=8.0 if shared_mib else 0.0)
    bigger = hw.with_(
        sram_per_core_bytes=hw.sram_per_core_bytes * (grow if which in ("core", "both") else 1.0),
        shared_sram_bytes=(hw.shared_sram_bytes or MIB) * (grow if which in ("shared", "both") else 1.0)
        if which != "core" else hw.shared_sram_bytes)
    return hw, bigger


@settings(max_examples=150, deadline=None)
@given(**GEMM_SRAM_CASES)
def test_more_sram_never_raises_hbm_traffic_or_time(m, n, k, b, cores, core_kib, shared_mib, grow, which, ws):
    hw, bigger = sram_pair(cores, core_kib, shared_mib, grow, which, ws)
    eff = family_default("NVIDIA")
    before = tiled.gemm_detail(m, n, k, 500.0, 3.0, b, b, cores, eff, hw=hw)
    after = tiled.gemm_detail(m, n, k, 500.0, 3.0, b, b, cores, eff, hw=bigger)
    assert float(after["hbm_bytes"]) <= float(before["hbm_bytes"]) * (1 + 1e-12)
    assert float(after["seconds"]) <= float(before["seconds"]) * (1 + 1e-12)
    assert float(after["hbm_bytes"]) >= (m * k + n * k + m * n) * b * (1 - 1e-12)  # never below A + B + C


@settings(max_examples=60, deadline=None)
@given(m=dims, n=dims, k=dims, bw=st.sampled_from([0.8, 2.0, 3.35, 8.0]))
def test_more_hbm_bandwidth_is_never_slower(m, n, k, bw):
    c = load_chip("h100-sxm")
    hw, eff = tiled.tiled_hw_for(c), family_default("NVIDIA")
    slow = tiled.gemm_time_s(m, n, k, 989.4, bw, 2, 2, 132, eff, hw=hw)[0]
    fast = tiled.gemm_time_s(m, n, k, 989.4, bw * 1.5, 2, 2, 132, eff, hw=hw)[0]
    assert float(fast) <= float(slow)


# ---- against the roofline and measurements -----------------------------------------------------

@pytest.mark.parametrize("chip_id", ["h100-sxm", "a100-sxm-80g", "b200", "mi300x", "tpu-v5e", "h100-sxm-design",
                                     "tpu-v5e-design"])
@pytest.mark.parametrize("size", [4096, 8192, 16384])
def test_tiled_agrees_with_roofline_on_large_square_gemms(chip_id, size):
    c = load_chip(chip_id)
    eff = family_default(c.vendor)
    rt, _ = roofline.gemm_time_s(size, size, size, c.bf16_tflops, c.hbm_tb_s, 2, 2, c.cores or 100, eff)
    tt, _ = tiled.gemm_time_s(size, size, size, c.bf16_tflops, c.hbm_tb_s, 2, 2, c.cores or 100, eff,
                              hw=tiled.tiled_hw_for(c))
    assert float(tt) == pytest.approx(float(rt), rel=0.10)


def _gemm_rows() -> list[dict]:
    path = Path(str(resources.files("tokenfab.catalog").joinpath("measurements"))) / "public.csv"
    return [r for r in csv.DictReader(path.open()) if r["scenario"] == "gemm" and r["usable"] == "1"]


def _predict(row: dict, model: str, chip_id: str | None = None) -> float:
    """Predicted value of a GEMM row in its metric, with the family-default (uncalibrated) efficiency."""
    c = load_chip(chip_id or row["hardware"])
    eff = family_default(c.vendor)
    p = row["weight_precision"]
    b = 1.0 if p == "fp8" else 2.0
    m, n, k = float(row["gemm_m"]), float(row["gemm_n"]), float(row["gemm_k"])
    g = float(row["batch"] or 1)
    args = (m, n, k, c.peak_tflops(p), c.hbm_tb_s, b, b, c.cores, eff, g)
    if model == "tiled":
        t = float(tiled.gemm_time_s(*args, hw=tiled.tiled_hw_for(c), precision=p)[0])
    else:
        t = float(roofline.gemm_time_s(*args, compute_frac=eff.gemm_frac(p))[0])
    return 2 * m * n * k * g / t / 1e12 if row["metric"] == "tflops" else t * 1e6


# Shapes that do not fill the machine: small M (decode-like), N off the tile grid, small cubes.
AWKWARD = ["M0331", "M0386", "M0388", "M0389", "M0395", "M0418", "M0419", "M0422"]


def test_tiled_is_closer_than_the_roofline_on_awkward_shapes():
    rows = [r for r in _gemm_rows() if r["id"] in AWKWARD]
    assert len(rows) == len(AWKWARD)
    err = {m: [abs(np.log(_predict(r, m) / float(r["value"]))) for r in rows] for m in ("tiled", "roofline")}
    assert np.mean(err["tiled"]) < 0.8 * np.mean(err["roofline"])
    assert np.median(err["tiled"]) < np.median(err["roofline"])


def test_tiled_explains_the_small_cube_that_the_roofline_misses():
    # H100 FP8 1024³ measures 274 TFLOPS: 64 tiles cannot fill 132 SMs and the 8-step K loop
    # cannot hide the pipeline fill; the roofline (no tiles) is ~80 % optimistic.
    row = next(r for r in _gemm_rows() if r["id"] == "M0331")
    assert _predict(row, "roofline") / 274.1 > 1.6
    assert _predict(row, "tiled") / 274.1 < 1.3


def test_tiled_hw_for_catalog_families():
    h100 = tiled.tiled_hw_for(load_chip("h100-sxm"))
    assert (h100.cores, h100.sram_per_core_bytes, h100.shared_sram_bytes) == (132, 228 * KIB, 50 * MIB)
    v5e = tiled.tiled_hw_for(load_chip("tpu-v5e"))
    assert v5e.weight_stationary and v5e.cores == 4 and v5e.array_rows == 128
    assert v5e.cores * v5e.sram_per_core_bytes == 128 * MIB   # 128 MiB VMEM shared by 4 MXUs
    generic = tiled.tiled_hw_for(load_chip("mlu590"))
    assert "generic" in generic.source


def test_unique_rows_matches_numpy_unique_up_to_order():
    import numpy as np
    from tokenfab.perf.tiled import unique_rows
    rng = np.random.default_rng(3)
    rows = rng.choice([1.0, 2.5, 7168.0, 0.6], size=(5000, 5))
    uniq, inv = unique_rows(rows)
    ref = np.unique(rows, axis=0)
    assert len(uniq) == len(ref)
    assert np.array_equal(uniq[inv], rows)
    assert {tuple(r) for r in uniq} == {tuple(r) for r in ref}


# ---- attention tiles ---------------------------------------------------------------------------

NO_ATT_OVERHEAD = Efficiency(attention_compute_frac=1.0, hbm_frac=1.0, kernel_launch_us=0.0)


def hopper_like(**kw) -> TiledHW:
    base = dict(cores=132, sram_per_core_bytes=228 * KIB, shared_sram_bytes=50 * MIB, array_rows=64, array_cols=8,
                array_depth=16, acc_bytes_per_core=128 * KIB, shared_sram_tb_s=7.5, multicast=2, dram_latency_us=0.0)
    return TiledHW(**{**base, **kw})


def gqa_prefill(tokens=4096, group=8, keys=2048, d=128, kv_bytes=2.0):
    """A causal prefill of `tokens` tokens for one KV head shared by `group` query heads: the
    FLOPs, the HBM bytes of reading its K/V once, and the kernel geometry."""
    q_rows = tokens * group
    geo = dict(q_rows=q_rows, kv_groups=1, head_dim=d, v_head_dim=d, kv_bytes=kv_bytes)
    return 2.0 * q_rows * keys * 2 * d, tokens * 2 * d * kv_bytes, geo


def test_attention_tiles_that_fit_read_the_kv_once():
    # 4096 tokens x 8 query heads on one KV head (d = 128, bf16): K/V = 4096 x 256 x 2 B = 2 MiB. On a
    # Hopper-like chip the query tiles (128 rows) of a wave share K/V through the 50 MiB L2, which
    # holds all of it: HBM reads it once, 2,097,152 B.
    flops, kv_once, geo = gqa_prefill()
    d = tiled.attention_detail(flops, kv_once, 989.0, 3.35, NO_ATT_OVERHEAD, hopper_like(), geo)
    assert float(d["hbm_bytes"]) == 2_097_152 and float(d["kv_passes"]) == 1.0
    # Without a shared level each query tile streams K/V from HBM. The largest tile in 228 KiB has
    # 256 rows (Q 64 KiB, two 64-key K/V tiles of 32 KiB, S and O 192 KiB of which 128 KiB in the
    # register file): 32768 / 256 = 128 passes over the 2048 keys a query attends on average
    # (1 MiB): 2 MiB + 127 x 1 MiB.
    d = tiled.attention_detail(flops, kv_once, 989.0, 3.35, NO_ATT_OVERHEAD,
                               hopper_like(shared_sram_bytes=0.0, shared_sram_tb_s=0.0), geo)
    assert float(d["kv_passes"]) == 128
    assert float(d["hbm_bytes"]) == 2_097_152 + 127 * 2048 * 256 * 2


def test_long_prefill_attention_slows_when_the_tiles_no_longer_fit_and_not_when_sram_is_ample():
    flops, kv_once, geo = gqa_prefill(tokens=32768, keys=16384)
    t = {kib: float(tiled.attention_time_s(flops, kv_once, 989.0, 3.35, NO_ATT_OVERHEAD,
                                           hopper_like(sram_per_core_bytes=kib * KIB), geometry=geo)[0])
         for kib in (16, 64, 228, 1024)}
    # 228 KiB holds a 128-row Q tile (32 KiB) and two 64-key K/V tiles (2 x 32 KiB); the S block and
    # O accumulator sit in the register file; the kernel is compute-bound: FLOPs / peak.
    assert t[228] == pytest.approx(flops / 989e12, rel=0.01)
    assert t[1024] == t[228] and t[64] == t[228]
    # 16 KiB holds no 64-row Q tile beside a K/V tile: Q is re-loaded with every K/V tile and the
    # L2 becomes the limit.
    assert t[16] > 2.0 * t[228]


def test_mla_latent_needs_big_tiles():
    # DeepSeek MLA decode (FlashMLA): 128 query heads share one 576-wide latent (V = its first 512),
    # FP8 cache, 32 sequences of 4k keys: 483 FLOPs per cached byte, compute-bound on a Hopper-like
    # chip once a core holds a 64-row Q tile (64 x 576 x 2 B = 72 KiB) beside its K/V tiles.
    seqs, keys = 32, 4096
    geo = dict(q_rows=128, kv_groups=seqs, head_dim=576, v_head_dim=512, kv_bytes=1.0, kv_shared=True)
    flops = 2.0 * 128 * seqs * keys * (576 + 512)
    kv_once = seqs * keys * 576 * 1.0
    t = {kib: tiled.attention_detail(flops, kv_once, 989.0, 3.35, NO_ATT_OVERHEAD,
                                     hopper_like(sram_per_core_bytes=kib * KIB), geo) for kib in (16, 64, 128, 228)}
    assert float(t[128]["seconds"]) == float(t[228]["seconds"]) == pytest.approx(flops / 989e12, rel=0.05)
    # 64 KiB: at most a 32-row Q tile (36 KiB + two 16-key K/V tiles of 9 KiB), half of a 64-row
    # matrix unit: twice the time. 16 KiB: 8-row tiles, the latent re-streamed for every 8 rows.
    assert float(t[64]["tile_q"]) == 32
    assert float(t[64]["seconds"]) == pytest.approx(2.0 * float(t[128]["seconds"]), rel=0.05)
    assert float(t[16]["seconds"]) > 5.0 * float(t[128]["seconds"])
    assert float(t[228]["hbm_bytes"]) == kv_once  # the latent is read once


def test_kv_resident_in_shared_sram_moves_nothing_over_hbm():
    flops, kv_once, geo = gqa_prefill(tokens=1, group=8, keys=4096)
    d = tiled.attention_detail(flops, kv_once, 989.0, 3.35, NO_ATT_OVERHEAD, hopper_like(), geo, kv_resident=True)
    assert float(d["hbm_bytes"]) == 0.0 and float(d["hbm_s"]) == 0.0


ATTENTION_SRAM_CASES = dict(
    tokens=st.sampled_from([1, 2, 16, 512, 4096, 32768]), group=st.sampled_from([1, 4, 8, 16, 128]),
    keys=st.sampled_from([64, 1000, 8192, 65536]), d=st.sampled_from([(64, 64), (128, 128), (192, 128), (576, 512)]),
    kv_bytes=st.sampled_from([1.0, 2.0]), seqs=st.sampled_from([1, 8, 256]),
    core_kib=st.sampled_from([8, 32, 64, 228, 1024]), shared_mib=st.sampled_from([0, 1, 16, 256]),
    grow=st.sampled_from([1.5, 2.0, 8.0]), which=st.sampled_from(["core", "shared", "both"]), ws=st.booleans())
"""Attention shapes (GQA to MLA's shared 576/512 latent) and SRAM growths of the attention law
(also run on the screening kernels: tests/test_design_batch.py)."""


@settings(max_examples=150, deadline=None)
@given(**ATTENTION_SRAM_CASES)
def test_more_sram_never_raises_attention_traffic_or_time(tokens, group, keys, d, kv_bytes, seqs, core_kib,
                                                          shared_mib, grow, which, ws):
    dk, dv = d
    shared_kv = dk == 576
    geo = dict(q_rows=tokens * group, kv_groups=seqs, head_dim=dk, v_head_dim=dv, kv_bytes=kv_bytes,
               kv_shared=shared_kv)
    flops = 2.0 * tokens * group * seqs * keys * (dk + dv)
    kv_once = seqs * keys * (dk + (0 if shared_kv else dv)) * kv_bytes
    hw = TiledHW(cores=132, sram_per_core_bytes=core_kib * KIB, shared_sram_bytes=shared_mib * MIB,
                 array_rows=128 if ws else 64, array_cols=128 if ws else 8, array_depth=16, weight_stationary=ws,
                 acc_bytes_per_core=0 if ws else 128 * KIB, shared_sram_tb_s=8.0 if shared_mib else 0.0, multicast=2)
    bigger = hw.with_(
        sram_per_core_bytes=hw.sram_per_core_bytes * (grow if which in ("core", "both") else 1.0),
        shared_sram_bytes=hw.shared_sram_bytes * (grow if which in ("shared", "both") else 1.0))
    eff = family_default("NVIDIA")
    before = tiled.attention_detail(flops, kv_once, 989.0, 3.35, eff, hw, geo)
    after = tiled.attention_detail(flops, kv_once, 989.0, 3.35, eff, bigger, geo)
    assert float(after["hbm_bytes"]) <= float(before["hbm_bytes"]) * (1 + 1e-12)
    assert float(after["seconds"]) <= float(before["seconds"]) * (1 + 1e-12)
    assert float(after["hbm_bytes"]) >= kv_once * (1 - 1e-12)  # never below reading K/V once


def test_attention_vectorized_over_points_matches_one_at_a_time():
    flops, kv_once, geo = gqa_prefill()
    tokens = np.array([1.0, 64.0, 4096.0] * 1000)  # enough points to take the one-per-distinct-kernel path
    geo_v = {**geo, "q_rows": tokens * 8}
    many = tiled.attention_detail(flops * tokens / 4096, kv_once, 989.0, 3.35, NO_ATT_OVERHEAD, hopper_like(), geo_v)
    for i in range(3):
        one = tiled.attention_detail(flops * tokens[i] / 4096, kv_once, 989.0, 3.35, NO_ATT_OVERHEAD, hopper_like(),
                                     {**geo, "q_rows": tokens[i] * 8})
        assert float(many["seconds"][i]) == float(one["seconds"])


def test_the_shape_cache_returns_what_a_fresh_evaluation_gives():
    """`_per_unique_shape` remembers core time and traffic per distinct shape set on one chip: a
    repeat is answered from the cache with fresh arrays equal to a cold evaluation, and another
    chip (other SRAM) is not answered from it."""
    from tokenfab.catalog import load_chip
    from tokenfab.perf.efficiency import family_default

    hw = tiled.tiled_hw_for(load_chip("h100-sxm"))
    eff = family_default("NVIDIA")
    m = np.array([1.0, 64.0, 1000.0, 4096.0])
    args = (m, 8192.0, 8192.0, 989.0, 3.35, 2.0, 2.0, 132, eff)
    tiled._SHAPE_CACHE.clear()
    cold = tiled.gemm_detail(*args, hw=hw)
    warm = tiled.gemm_detail(*args, hw=hw)
    assert len(tiled._SHAPE_CACHE) >= 1
    for k in cold:
        np.testing.assert_array_equal(np.asarray(cold[k]), np.asarray(warm[k]))
    warm["seconds"][...] = -1.0  # a caller writing into its result never reaches the cache
    np.testing.assert_array_equal(np.asarray(tiled.gemm_detail(*args, hw=hw)["seconds"]), np.asarray(cold["seconds"]))
    small = tiled.gemm_detail(*args, hw=hw.with_(sram_per_core_bytes=hw.sram_per_core_bytes / 8))
    assert not np.array_equal(np.asarray(small["seconds"]), np.asarray(cold["seconds"]))
