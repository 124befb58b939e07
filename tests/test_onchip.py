"""On-chip memory as a lever (perf/onchip.py and its use by the tiled fidelity): what a deployment
keeps resident in shared SRAM, worked by hand; decode at the shared-SRAM bandwidth when the
weights live there; and the laws: more SRAM never adds HBM bytes or time, and it changes nothing
where nothing fits."""

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.catalog import load_model
from tokenfab.design.catalog import load_design
from tokenfab.design.derive import to_chip_spec
from tokenfab.graph import StepShape, step_ops
from tokenfab.mapping import search
from tokenfab.perf import onchip, tiled
from tokenfab.perf.efficiency import Efficiency, efficiency_for
from tokenfab.perf.tiled import KIB, MIB, TiledHW
from tokenfab.specs import SystemSpec, Traffic

MB = 1e6
NO_OVERHEAD = Efficiency(gemm_compute_frac=1.0, hbm_frac=1.0, kernel_launch_us=0.0)


# ---- the plan, by hand -------------------------------------------------------------------------

def test_weights_and_kv_both_pinned_when_they_fit_beside_the_activations():
    # 100 MB of shared SRAM, 10 MB of live activations: 90 MB left; 60 + 20 fit together.
    r = onchip.plan(100 * MB, 60 * MB, 20 * MB, 10 * MB)
    assert bool(r.weights) and bool(r.kv)
    assert float(r.pinned_bytes) == 80 * MB and float(r.saved_bytes) == 80 * MB


def test_when_only_one_fits_the_one_saving_more_reads_wins():
    # 60 + 40 > 90: weights alone save 60 MB a step, the KV cache alone 40 MB.
    r = onchip.plan(100 * MB, 60 * MB, 40 * MB, 10 * MB)
    assert bool(r.weights) and not bool(r.kv) and float(r.saved_bytes) == 60 * MB
    # Half of that shard is an embedding table a step only gathers from: the KV cache saves more.
    r = onchip.plan(100 * MB, 60 * MB, 40 * MB, 10 * MB, weight_read_bytes=30 * MB)
    assert bool(r.kv) and not bool(r.weights) and float(r.pinned_bytes) == 40 * MB


def test_no_partial_credit_for_a_set_larger_than_what_is_left():
    # 91 MB of weights and 91 MB of KV against 90 MB left: an LRU cache streaming either gets ~0 hits.
    r = onchip.plan(100 * MB, 91 * MB, 91 * MB, 10 * MB)
    assert not bool(r.weights) and not bool(r.kv) and float(r.saved_bytes) == 0.0


def test_a_chip_without_shared_sram_pins_nothing():
    r = onchip.plan(0.0, 0.0, 0.0, 0.0)
    assert not bool(r.weights) and not bool(r.kv)


@settings(max_examples=200, deadline=None)
@given(shared=st.floats(0, 4e9), w=st.floats(0, 4e9), kv=st.floats(0, 4e9), act=st.floats(0, 1e9),
       read_frac=st.floats(0.1, 1.0), grow=st.floats(1.0, 8.0))
def test_more_shared_sram_never_saves_fewer_bytes_nor_overfills(shared, w, kv, act, read_frac, grow):
    small = onchip.plan(shared, w, kv, act, weight_read_bytes=w * read_frac)
    big = onchip.plan(shared * grow, w, kv, act, weight_read_bytes=w * read_frac)
    assert float(big.saved_bytes) >= float(small.saved_bytes)
    for r, s in ((small, shared), (big, shared * grow)):
        assert float(r.pinned_bytes) <= max(s - act, 0.0)


# ---- decode at the shared-SRAM bandwidth -------------------------------------------------------

def _sram_chip(**kw) -> TiledHW:
    base = dict(cores=128, sram_per_core_bytes=256 * KIB, shared_sram_bytes=256 * MIB, array_rows=64, array_cols=8,
                array_depth=16, acc_bytes_per_core=128 * KIB, shared_sram_tb_s=20.0, multicast=1, dram_latency_us=0.0)
    return TiledHW(**{**base, **kw})


def test_a_resident_weight_matrix_is_read_at_the_shared_sram_bandwidth():
    # One decode token through an 8192 x 8192 FP8 layer: W = 64 MiB. From HBM at 2 TB/s the kernel
    # moves W + x + y = 67,108,864 + 16,384 + 16,384 B: 33.57 µs. Resident in a 256 MiB shared SRAM
    # at 20 TB/s: the cores load W (plus the 16 KiB activation row once per N tile) at 20 TB/s,
    # W / 20 TB/s = 3.355 µs, and HBM carries only x and y.
    w = 8192 * 8192 * 1.0
    args = (1, 8192, 8192, 10000.0, 2.0, 1.0, 2.0, 128, NO_OVERHEAD)
    hbm = tiled.gemm_detail(*args, hw=_sram_chip(), weights_resident=False)
    sram = tiled.gemm_detail(*args, hw=_sram_chip(), weights_resident=True)
    assert float(hbm["seconds"]) == pytest.approx((w + 2 * 8192 * 2.0) / 2e12, rel=1e-9)
    assert float(sram["hbm_bytes"]) == 2 * 8192 * 2.0
    assert w / 20e12 <= float(sram["seconds"]) <= 1.05 * w / 20e12


def _design_chip(shared_mb: float | None = None, core_kb: float | None = None):
    return _design_chip_cached(shared_mb, core_kb)


@lru_cache(maxsize=None)
def _design_chip_cached(shared_mb, core_kb):
    base = load_design("h100-sxm-design")
    core = base.die.core.model_copy(update={"sram_kb": core_kb or base.die.core.sram_kb})
    die = base.die.model_copy(update={"core": core, "shared_sram_mb": shared_mb or base.die.shared_sram_mb})
    return to_chip_spec(base.model_copy(update={"die": die, "id": f"h100-onchip-{shared_mb or 0}-{core_kb or 0}"}))


def _decode(model_id, chip, tp, batch, precision="fp8", traffic=Traffic(input_len=512, output_len=128)):
    model = load_model(model_id)
    space = search.SearchSpace(num_chips=(tp,), tp=(tp,), pp=(1,), batch=(batch,), precisions=(precision,))
    p = search.prepare(model, chip, SystemSpec.for_chip(chip), efficiency_for(chip), traffic, space, fidelity="tiled")
    t, times = search.decode_step(p)
    return p, float(np.ravel(t)[0]), times


def test_a_model_whose_weights_fit_the_shared_sram_decodes_at_its_bandwidth():
    # Llama-3.1-8B in FP8 over 8 chips: ~1.2 GB of weights per chip, resident in 2 GiB of shared
    # SRAM (7.7 TB/s on the H100 design) but not in 50 MiB. The decode GEMMs (less their fixed
    # launch and first-load costs) take W / HBM bandwidth without, and W / shared-SRAM bandwidth
    # with residency (up to the activation rows each tile loads and the pipeline fill: < 25%).
    def gemm_seconds_and_weights(shared_mb):
        chip = _design_chip(shared_mb)
        p, _, times = _decode("llama-3.1-8b", chip, tp=8, batch=1)
        shape = StepShape("decode", tokens=p.batch, seqs=p.batch, ctx=p.batch * 0 + 576, kv_len=p.batch * 0 + 576,
                          tp=p.tp, dp=p.dp, ep=p.ep, w_bytes=p.w_bytes, a_bytes=2.0, kv_bytes=p.kv_bytes)
        gemms = {o.name: o for o in step_ops(p.model, shape) if o.kind == "gemm"}
        fixed = p.eff.gemm_fixed_s("bf16") + p.hw.tiled.dram_latency_us * 1e-6
        t = sum(float(np.ravel(x.seconds)[0]) - gemms[x.name].count * fixed for x in times if x.name in gemms)
        w = sum(float(np.ravel(o.count * o.groups * o.n * o.k * o.w_bytes)[0]) for o in gemms.values())
        return p, chip, t, w

    p, chip, t, w = gemm_seconds_and_weights(50)
    assert not p.hw.resident.weights.any()
    assert t == pytest.approx(w / (chip.hbm_tb_s * 1e12 * p.eff.hbm_frac), rel=0.01)
    p, chip, t, w = gemm_seconds_and_weights(2048)
    assert p.hw.resident.weights.all()
    l2 = p.hw.tiled.shared_sram_tb_s * 1e12
    assert w / l2 <= t <= 1.25 * w / l2


def test_large_batch_decode_of_a_big_model_does_not_move_with_the_l2():
    # Llama-3.1-70B FP8 over 8 chips at batch 256: 9 GB of weights and 30+ GB of KV per chip; 16 and
    # 134 MB of L2 both hold neither, and decode GEMMs at M = 256 already read each weight once.
    _, small, _ = _decode("llama-3.1-70b", _design_chip(16), tp=8, batch=256,
                          traffic=Traffic(input_len=1024, output_len=1024))
    _, big, _ = _decode("llama-3.1-70b", _design_chip(134), tp=8, batch=256,
                        traffic=Traffic(input_len=1024, output_len=1024))
    assert big == pytest.approx(small, rel=0.01)


@settings(max_examples=12, deadline=None)
@given(model_id=st.sampled_from(["llama-3.2-1b", "llama-3.1-8b", "qwen3-8b"]), tp=st.sampled_from([1, 4, 8]),
       batch=st.sampled_from([1, 8, 64]), shared=st.sampled_from([(16, 128), (50, 512), (512, 4096), (128, 2048)]))
def test_more_shared_sram_never_slows_a_decode_step(model_id, tp, batch, shared):
    small_mb, big_mb = shared
    p_small, t_small, _ = _decode(model_id, _design_chip(small_mb), tp, batch)
    p_big, t_big, _ = _decode(model_id, _design_chip(big_mb), tp, batch)
    assert float(p_big.hw.resident.saved_bytes[0]) >= float(p_small.hw.resident.saved_bytes[0])
    assert t_big <= t_small * (1 + 1e-9)


def test_an_sram_only_design_is_searched_past_64_chips_by_default():
    """A chip whose memory cannot hold the model on 64 chips (230 MB of SRAM against Llama-3.1-8B's
    8 GB of int8 weights: 64 x 0.23 GB < 2 x 8 GB) is searched up to 4,096 chips and deep pipelines
    without `max_chips`, as Groq serves a model on hundreds of LPUs; an HBM chip keeps 64."""
    from tokenfab import api, catalog
    from tokenfab.mapping.search import default_max_chips

    lpu = api.resolve_chip("sram-lpu-design")
    m = catalog.load_model("llama-3.1-8b")
    assert default_max_chips(m, lpu) == 4096 and default_max_chips(m, catalog.load_chip("h100-sxm")) == 64
    est = api.estimate(m, lpu, traffic=api.CHAT.model_copy(update={"slo_tpot_ms": None}), mode="aggregated")
    mem = est.memory_gb_per_chip
    assert est.num_chips > 64 and mem.free >= 0 and mem.weights + mem.kv_cache + mem.activations <= lpu.hbm_gb
