"""The design-batch path (issue 16, speed): many chips evaluated at once over a design axis.

- `perf.screen`: the tiled model's kernels with one tile per aspect ratio in closed form;
- `mapping.batched`: the mapping search over (designs × mappings), with the screening kernels
  or the tiled model itself;
- `explore.screen`: design-space points scored at once, the search's screening stage.

Specifications: the batched path with the tiled kernels is the per-chip path (same numbers);
the screening kernels stay within a few percent of the tiled ones per mapping point; SRAM moves
screened throughput where the tiled model says it does; the same silicon as a catalog chip and
as a design screens the same (±3%); screened $/Mtok tracks the full per-design path.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab import api, catalog
from tokenfab.design import load_design, to_chip_spec
from tokenfab.mapping import batched
from tokenfab.mapping import search as ms
from tokenfab.perf import screen, tiled
from tokenfab.perf.efficiency import efficiency_for, family_default
from tokenfab.specs import Traffic

from test_tiled import ATTENTION_SRAM_CASES, GEMM_SRAM_CASES, sram_pair  # the tiled model's laws' cases

LLAMA = Traffic(input_len=6000, output_len=400, slo_ttft_ms=30000, slo_tpot_ms=200)  # chat-mix "batch"


def _chat_mix():
    from tokenfab.explore.catalog import load_base_design, load_space, load_workload
    from tokenfab.explore.designs import base_mapping
    from tokenfab.explore.evaluate import make_context

    wl, _ = load_workload("chat-mix")
    sp, sp_path = load_space(wl.space)
    base = load_base_design(sp, sp_path)
    return sp, make_context(wl, base_mapping(base, sp), sp.constraints, sp.search.max_chips, sp.search.fidelity)


def _sram_variant(core_kb=None, shared_mb=None):
    """The H100 design with its SRAM per SM and/or L2 changed (bench/sram_lever.py)."""
    base = load_design("h100-sxm-design")
    core = base.die.core.model_copy(update={"sram_kb": core_kb or base.die.core.sram_kb})
    die = base.die.model_copy(update={"core": core, "shared_sram_mb": shared_mb or base.die.shared_sram_mb})
    return to_chip_spec(base.model_copy(update={"die": die, "id": f"h100-sram-{core_kb or 0}k-{shared_mb or 0}m"}))


# ---- kernels ------------------------------------------------------------------------------------

SHAPES = [(1, 4096, 4096), (16, 6144, 4096), (128, 28672, 4096), (8192, 6144, 4096), (8192, 4096, 14336),
          (4096, 128256, 4096), (64, 7168, 2048), (512, 2048, 7168)]


@pytest.mark.parametrize("chip_id", ["h100-sxm", "tpu-v5e", "mi300x"])
def test_screen_gemm_is_the_tiled_gemm_within_a_few_percent(chip_id):
    """Per shape, the closed-form tile is within 10% of the 49-candidate search (the HBM traffic,
    the same blockings at their best sizes, is the same bytes)."""
    c = catalog.load_chip(chip_id)
    hw1 = tiled.tiled_hw_for(c)
    hw = batched.stack_hw([hw1])
    eff = efficiency_for(c)
    for m, n, k in SHAPES:
        for b in (2.0, 1.0):
            prec = "bf16" if b == 2.0 else "fp8"
            peak = c.peak_tflops(prec) or c.bf16_tflops
            frac = tiled.achievable_frac(eff, hw1, prec)
            t = tiled.gemm_detail(m, n, k, peak, c.hbm_tb_s, b, b, c.cores, eff, hw=hw1, compute_frac=frac)
            s = screen.gemm_detail(np.array([m]), np.array([n]), np.array([k]), np.array([[peak]]),
                                   np.array([[c.hbm_tb_s]]), b, b, eff, hw=hw, compute_frac=np.array([[frac]]))
            assert float(s["hbm_bytes"][0, 0]) == pytest.approx(float(t["hbm_bytes"]), rel=1e-9)
            assert float(s["seconds"][0, 0]) == pytest.approx(float(t["seconds"]), rel=0.10), (m, n, k, b)


def test_screen_kernels_never_move_against_sram():
    """Property: over random shapes, more SRAM per core or more shared SRAM never raises a
    screened GEMM's HBM traffic or time, nor a screened attention kernel's."""
    rng = np.random.default_rng(7)
    m = rng.choice([1.0, 8, 64, 512, 4096, 16384], 64)
    n = rng.choice([128.0, 1024, 4096, 28672], 64)
    k = rng.choice([128.0, 2048, 7168, 14336], 64)
    base = tiled.tiled_hw_for(catalog.load_chip("h100-sxm"))
    eff = efficiency_for(catalog.load_chip("h100-sxm"))
    sizes = [(kb, mb) for kb in (16, 64, 256, 1024) for mb in (0.5, 8, 50, 512, 4096)]
    hw = batched.stack_hw([base.with_(sram_per_core_bytes=kb * 1024.0, shared_sram_bytes=mb * 2 ** 20)
                           for kb, mb in sizes])
    g = screen.gemm_detail(m, n, k, np.full((len(sizes), 1), 989.0), np.full((len(sizes), 1), 3.35), 2.0, 2.0,
                           eff, hw=hw, compute_frac=0.7)
    geo = {"q_rows": rng.choice([1.0, 16, 128, 4096], 64), "kv_groups": rng.choice([8.0, 64], 64),
           "head_dim": np.full(64, 128.0), "v_head_dim": np.full(64, 128.0), "kv_bytes": np.full(64, 2.0)}
    keys = rng.choice([512.0, 8192, 32768], 64)
    flops = 2.0 * geo["q_rows"] * geo["kv_groups"] * keys * 256.0
    att = screen.attention_detail(flops, keys * geo["kv_groups"] * 512.0, np.full((len(sizes), 1), 989.0),
                                  np.full((len(sizes), 1), 3.35), eff, hw, geo)
    grid = lambda a: np.asarray(a).reshape(4, 5, -1)  # noqa: E731  (SRAM per core × shared)
    for d in (g, att):
        for key in ("hbm_bytes", "seconds"):
            x = grid(d[key])
            assert np.all(np.diff(x, axis=0) <= x[1:] * 1e-12 + 1e-18), key  # more SRAM per core
            assert np.all(np.diff(x, axis=1) <= x[:, 1:] * 1e-12 + 1e-18), key  # more shared SRAM


KIB, MIB = 1024.0, 1024.0 ** 2


def _one(hw: tiled.TiledHW) -> tiled.TiledHW:
    return batched.stack_hw([hw])


@settings(max_examples=150, deadline=None)
@given(**GEMM_SRAM_CASES)
def test_screened_gemm_more_sram_never_raises_hbm_traffic_or_time(m, n, k, b, cores, core_kib, shared_mib, grow,
                                                                   which, ws):
    """tests/test_tiled.py's law, through the screening kernels."""
    hw, bigger = sram_pair(cores, core_kib, shared_mib, grow, which, ws)
    eff = family_default("NVIDIA")
    run = lambda h: screen.gemm_detail(np.array([m]), np.array([n]), np.array([k]), np.array([[500.0]]),  # noqa: E731
                                       np.array([[3.0]]), b, b, eff, hw=_one(h))
    before, after = run(hw), run(bigger)
    assert float(after["hbm_bytes"][0, 0]) <= float(before["hbm_bytes"][0, 0]) * (1 + 1e-12)
    assert float(after["seconds"][0, 0]) <= float(before["seconds"][0, 0]) * (1 + 1e-12)
    assert float(after["hbm_bytes"][0, 0]) >= (m * k + n * k + m * n) * b * (1 - 1e-12)  # never below A + B + C


@settings(max_examples=150, deadline=None)
@given(**ATTENTION_SRAM_CASES)
def test_screened_attention_more_sram_never_raises_traffic_or_time(tokens, group, keys, d, kv_bytes, seqs, core_kib,
                                                                    shared_mib, grow, which, ws):
    """tests/test_tiled.py's attention law (MLA's shared 576/512 latent included), screened."""
    dk, dv = d
    shared_kv = dk == 576
    geo = dict(q_rows=np.array([tokens * group]), kv_groups=np.array([seqs]), head_dim=np.array([dk]),
               v_head_dim=np.array([dv]), kv_bytes=np.array([kv_bytes]), kv_shared=np.array([shared_kv]))
    flops = np.array([2.0 * tokens * group * seqs * keys * (dk + dv)])
    kv_once = np.array([seqs * keys * (dk + (0 if shared_kv else dv)) * kv_bytes])
    hw = tiled.TiledHW(cores=132, sram_per_core_bytes=core_kib * KIB, shared_sram_bytes=shared_mib * MIB,
                       array_rows=128 if ws else 64, array_cols=128 if ws else 8, array_depth=16, weight_stationary=ws,
                       acc_bytes_per_core=0 if ws else 128 * KIB, shared_sram_tb_s=8.0 if shared_mib else 0.0,
                       multicast=2)
    bigger = hw.with_(
        sram_per_core_bytes=hw.sram_per_core_bytes * (grow if which in ("core", "both") else 1.0),
        shared_sram_bytes=hw.shared_sram_bytes * (grow if which in ("shared", "both") else 1.0))
    eff = family_default("NVIDIA")
    run = lambda h: screen.attention_detail(flops, kv_once, np.array([[989.0]]), np.array([[3.35]]), eff,  # noqa: E731
                                            _one(h), geo)
    before, after = run(hw), run(bigger)
    assert float(after["hbm_bytes"][0, 0]) <= float(before["hbm_bytes"][0, 0]) * (1 + 1e-12)
    assert float(after["seconds"][0, 0]) <= float(before["seconds"][0, 0]) * (1 + 1e-12)
    assert float(after["hbm_bytes"][0, 0]) >= kv_once[0] * (1 - 1e-12)  # never below reading K/V once


# ---- the batched mapping search -------------------------------------------------------------------

def test_batched_tiled_path_is_the_per_chip_path():
    """With the tiled kernels and the one-chip grid, the batched path gives every chip exactly what
    `api.estimate(..., mode="aggregated", fidelity="tiled")` gives it alone."""
    chips = [catalog.load_chip("h100-sxm"), to_chip_spec(load_design("h100-sxm-design")), _sram_variant(64, 16)]
    model = catalog.load_model("llama-3.1-8b")
    b = batched.best(model, batched.ChipBatch.from_specs(chips), efficiency_for(chips[0]), LLAMA,
                     kernels="tiled", modes=("aggregated",))
    for i, c in enumerate(chips):
        e = api.estimate(model, c, LLAMA, mode="aggregated", fidelity="tiled")
        assert b["output_tok_s_per_chip"][i] == pytest.approx(e.output_tok_s_per_chip, rel=1e-9)
        assert b["tpot_ms"][i] == pytest.approx(e.tpot_ms, rel=1e-9)
        assert (b["num_chips"][i], b["tp"][i], b["batch"][i]) == (e.num_chips, e.tp, e.batch)


def test_batched_attention_ffn_pool_is_mapping_af():
    """The attention-FFN decode pool of every chip in a batch is `mapping.af.af_decode`'s."""
    from tokenfab.mapping import af

    chips = [catalog.load_chip("h100-sxm"), _sram_variant(64, 512)]
    model = catalog.load_model("deepseek-v3")
    traffic = api.with_mtp(model, Traffic(input_len=2048, output_len=512, slo_ttft_ms=2000, slo_tpot_ms=50))
    eff = efficiency_for(chips[0])
    space = ms.SearchSpace(precisions=("fp8",), batch=(64, 192))
    a = batched.evaluate(model, batched.ChipBatch.from_specs(chips), eff, traffic, space, 64, "screen")
    got = batched.af_pool(model, batched.ChipBatch.from_specs(chips), eff, traffic, *a["_af"])
    for i, c in enumerate(chips):
        ref = af.af_decode(model, c, c, traffic, eff, eff, precisions=("fp8",), batches=(64, 192),
                           latency_us=eff.scaleout_latency_us).arrays
        assert got["output_tok_s_per_chip"][i] == pytest.approx(ref["output_tok_s_per_chip"], rel=1e-9)
        assert np.array_equal(got["fits"][i], ref["fits"])


@pytest.mark.parametrize("chip_id", ["h100-sxm", "tpu-v5e", "mi300x"])
def test_screen_kernels_track_the_tiled_ones_over_a_mapping_grid(chip_id):
    """Every point of the one-chip grid (Llama-3.1-8B): median within 2%, every point within 12%."""
    c = catalog.load_chip(chip_id)
    cb = batched.ChipBatch.from_specs([c])
    model = catalog.load_model("llama-3.1-8b")
    a = batched.evaluate(model, cb, efficiency_for(c), LLAMA, ms.SearchSpace(), 64, "tiled")
    s = batched.evaluate(model, cb, efficiency_for(c), LLAMA, ms.SearchSpace(), 64, "screen")
    ok = a["fits"][0]
    dev = np.abs(s["output_tok_s_per_chip"][0] / a["output_tok_s_per_chip"][0] - 1.0)[ok]
    assert np.median(dev) < 0.02 and dev.max() < 0.12


def test_same_silicon_screens_the_same():
    """h100-sxm (catalog) and h100-sxm-design, screened on chat-mix's scenarios: within 3%."""
    _, ctx = _chat_mix()
    chips = [catalog.load_chip("h100-sxm"), to_chip_spec(load_design("h100-sxm-design"))]
    cb = batched.ChipBatch.from_specs(chips)
    for scen in ctx.scenarios:
        space = ms.SearchSpace(precisions=(scen.precision,) if scen.precision else None, pp=(1,), tp=(1, 2, 4, 8),
                               batch=batched.SCREEN_BATCHES)
        b = batched.best(scen.model, cb, api.efficiency_of(chips[0], scen.model), api.with_mtp(scen.model, scen.traffic),
                         space, 64, "screen")
        assert b["fits"].all()
        assert b["output_tok_s_per_chip"][1] == pytest.approx(b["output_tok_s_per_chip"][0], rel=0.03), scen.name


def test_chip_batch_from_design_arrays_is_the_chip_spec_one():
    """The screen builds chips from arrays (no ChipSpec per design): the same figures as
    `to_chip_spec` + `ChipBatch.from_specs`."""
    from tokenfab.cost.data import shipped_cost_data
    from tokenfab.design import evaluate_arrays
    from tokenfab.design.arrays import DesignArrays
    from tokenfab.design.tech import shipped_tech
    from tokenfab.explore.designs import build_design
    from tokenfab.explore.screen import chip_batch, sample_points

    sp, ctx = _chat_mix()
    designs = [d for d, _, _ in (build_design(ctx.base, p) for p in sample_points(sp, 12, 5)) if d is not None]
    tech, cost = shipped_tech(), shipped_cost_data()
    a = DesignArrays.from_designs(designs, tech, cost.fab)
    r = evaluate_arrays(a, tech, cost)
    fast = chip_batch(designs, a, r, np.array([d.calibration is None for d in designs]))
    slow = batched.ChipBatch.from_specs([to_chip_spec(d) for d in designs])
    for p in ("bf16", "fp8"):
        assert fast.peak(p) == pytest.approx(slow.peak(p), rel=1e-9)
    for name in ("hbm_tb_s", "hbm_gb", "cores", "scaleup_gb_s", "scaleout_gb_s", "vector_tflops", "sfu_tops"):
        assert getattr(fast, name) == pytest.approx(getattr(slow, name), rel=1e-9), name
    for name in ("cores", "sram_per_core_bytes", "shared_sram_bytes", "array_rows", "array_cols", "array_depth",
                 "acc_bytes_per_core", "shared_sram_tb_s", "multicast", "clock_mhz"):
        x = np.broadcast_to(np.asarray(getattr(fast.tiled, name), float), (len(designs), 1))
        assert x == pytest.approx(np.asarray(getattr(slow.tiled, name), float), rel=1e-6), name
    for p, v in slow.tiled.sustained_frac.items():
        assert fast.tiled.sustained_frac[p] == pytest.approx(v, rel=1e-9)


# ---- SRAM as a lever, through the batched path ------------------------------------------------------

def _fixed(model_id, traffic, chips, tp, batch, precision, kernels, variants):
    model = catalog.load_model(model_id)
    space = ms.SearchSpace(num_chips=(chips,), tp=(tp,), pp=(1,), batch=(batch,), precisions=(precision,),
                           ep=(chips,) if model.is_moe else None)
    cb = batched.ChipBatch.from_specs(variants)
    a = batched.evaluate(model, cb, efficiency_for(variants[0]), traffic, space, 64, kernels)
    return a["pool"]


@pytest.mark.parametrize("kernels", ["screen", "tiled"])
def test_sram_moves_throughput_where_physics_says(kernels):
    """bench/sram_lever.py's cases through the batched path: long-prefill attention slows with
    less SRAM per core (3.6x from 16 to 256 KiB); small-batch decode speeds up once L2 holds the
    weights (SRAM-resident); large-batch decode does not move; more SRAM is never slower."""
    per_core = [_sram_variant(core_kb=kb) for kb in (16, 64, 256, 1024)]
    shared = [_sram_variant(shared_mb=mb) for mb in (16, 50, 512, 2048)]
    long = _fixed("llama-3.1-70b", Traffic(input_len=32768, output_len=64), 8, 8, 1, "bf16", kernels, per_core)
    pre = long["prefill_tok_s_per_chip"][:, 0]
    assert np.all(np.diff(pre) >= -1e-9 * pre[1:]) and pre[-1] > 1.05 * pre[0]
    small = _fixed("llama-3.1-8b", Traffic(input_len=512, output_len=256), 8, 8, 8, "fp8", kernels, shared)
    dec = small["decode_tok_s_per_chip"][:, 0]
    # ~1.2 GB of weights per chip resident in 2 GiB of L2: the GEMMs read at the L2's bandwidth;
    # kernel launches then dominate the step (the tiled model: +5.8%).
    assert np.all(np.diff(dec) >= -1e-9 * dec[1:]) and dec[-1] > 1.03 * dec[0]
    big = _fixed("llama-3.1-70b", Traffic(input_len=1024, output_len=1024), 8, 8, 256, "fp8", kernels, shared)
    d = big["decode_tok_s_per_chip"][:, 0]
    assert d.max() / d.min() < 1.02


def test_sram_lever_screened_as_tiled():
    """The screened lever is the tiled one: each case's throughput within 5% of the tiled model."""
    variants = [_sram_variant(core_kb=kb) for kb in (16, 256)] + [_sram_variant(shared_mb=mb) for mb in (16, 2048)]
    for args, key in (((("llama-3.1-70b", Traffic(input_len=32768, output_len=64), 8, 8, 1, "bf16")),
                       "prefill_tok_s_per_chip"),
                      ((("llama-3.1-8b", Traffic(input_len=512, output_len=256), 8, 8, 8, "fp8")),
                       "decode_tok_s_per_chip")):
        s = _fixed(*args, "screen", variants)[key][:, 0]
        t = _fixed(*args, "tiled", variants)[key][:, 0]
        assert s == pytest.approx(t, rel=0.05)


# ---- the search's screening stage -------------------------------------------------------------------

def test_screened_points_are_built_priced_and_ranked():
    """Screening chat-mix points: invalid and unbuildable points get reasons and no price, the rest
    a $/Mtok from their best deployment; `pick` returns feasible points, front first."""
    from tokenfab.explore.screen import pick, sample_points, screen_points

    sp, ctx = _chat_mix()
    pts = sample_points(sp, 40, 11)
    s = screen_points(pts, ctx)
    assert len(s["feasible"]) == 40 and s["feasible"].any() and not s["feasible"].all()
    priced = np.isfinite(s["usd_per_mtok"])
    assert np.all(s["usd_per_mtok"][priced] > 0)
    assert all(s["reasons"][i] for i in np.flatnonzero(~s["feasible"]))
    chosen = pick(s, ("usd_per_mtok", "tpot_ms", "unit_cost_usd"), 5)
    assert len(chosen) == 5 and all(s["feasible"][i] for i in chosen)
    best = int(np.nanargmin(np.where(s["feasible"], s["usd_per_mtok"], np.nan)))
    assert best in chosen  # the cheapest is on the front


@pytest.mark.slow
def test_screen_tracks_the_full_path_on_a_few_designs():
    """A handful of chat-mix designs: screened $/Mtok at most 30% above the full per-design path
    (tiled, every serving mode and mapping) and never more than 3% below it (a reduced grid can
    only cost throughput; the kernels differ by a few percent)."""
    from tokenfab.explore.evaluate import evaluate_point
    from tokenfab.explore.screen import sample_points, screen_points

    sp, ctx = _chat_mix()
    pts = sample_points(sp, 24, 3)
    s = screen_points(pts, ctx)
    idx = [int(i) for i in np.flatnonzero(s["feasible"])[:3]]
    assert idx
    for i in idx:
        full = evaluate_point(pts[i], ctx)
        assert full["feasible"]
        ratio = s["usd_per_mtok"][i] / full["objectives"]["usd_per_mtok"]
        assert 0.97 < ratio < 1.3, (i, ratio)


@pytest.mark.slow
def test_screen_tracks_the_full_path_on_fifty_designs():
    """45 random feasible chat-mix designs (of 120 points): screened $/Mtok against the full
    per-design path. Measured: 1.01-1.18x over 50 (median 1.07; the screen's reduced grid only loses
    throughput), Spearman rank correlation 0.997 (README)."""
    from tokenfab.explore.evaluate import evaluate_point
    from tokenfab.explore.screen import sample_points, screen_points

    sp, ctx = _chat_mix()
    pts = sample_points(sp, 120, 21)
    s = screen_points(pts, ctx)
    idx = [int(i) for i in np.flatnonzero(s["feasible"])[:50]]
    scr, full = [], []
    for i in idx:
        f = evaluate_point(pts[i], ctx)
        if not f["feasible"]:
            continue
        scr.append(s["usd_per_mtok"][i])
        full.append(f["objectives"]["usd_per_mtok"])
    scr, full = np.array(scr), np.array(full)
    ratio = scr / full
    assert len(ratio) >= 40
    assert ratio.min() > 0.97 and ratio.max() < 1.3 and np.median(ratio) < 1.12
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(rank(scr), rank(full))[0, 1] > 0.98


def test_search_screens_a_new_study_and_seeds_its_first_trials():
    """`run_search`'s screening stage enqueues feasible screened points as a new study's first
    trials (nothing else is evaluated here: the study is only asked)."""
    import optuna

    from tokenfab.explore.designs import distributions
    from tokenfab.explore.search import SearchConfig, _screen

    sp, ctx = _chat_mix()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * 3)
    st = {"sampler": "nsga2", "batch": 4, "objectives": ("usd_per_mtok", "tpot_ms", "unit_cost_usd")}
    got = _screen(study, sp, st, SearchConfig(trials=4, screen=32), ctx, 4)
    assert got["screened"] == 32 and 1 <= got["screen_seeded"] <= 4
    first = study.ask(distributions(sp))
    assert study.user_attrs["screen"]["seeded"] == got["screen_seeded"]
    assert first.params  # the queue answers the first ask
    assert _screen(study, sp, {**st, "sampler": "grid"}, SearchConfig(trials=4, screen=64), ctx, 4) == {}


@pytest.mark.slow
def test_batched_tiled_is_the_per_chip_path_on_fifty_designs():
    """50 buildable chat-mix designs in one batch (tiled kernels, the one-chip grid, aggregated
    serving, Llama-3.1-8B): tok/s/chip equals `api.estimate` per design (1e-9), and the screen's
    $/chip-hour (affine in price, interpolated) is `tco.chip_hour_cost` of each design's ChipSpec,
    so $/Mtok agrees as well."""
    from tokenfab.cost import tco
    from tokenfab.explore.designs import build_design
    from tokenfab.explore.screen import sample_points, screen_points

    sp, ctx = _chat_mix()
    pts = sample_points(sp, 160, 9)
    s = screen_points(pts, ctx)
    idx = [int(i) for i in np.flatnonzero(np.isfinite(s["usd_per_mtok"]))[:50]]
    assert len(idx) == 50
    specs = [to_chip_spec(build_design(ctx.base, pts[i])[0]) for i in idx]
    model = catalog.load_model("llama-3.1-8b")
    groups: dict[int, list[int]] = {}
    for j, c in enumerate(specs):
        groups.setdefault(c.scaleup_domain, []).append(j)
    for members in groups.values():
        chips = [specs[j] for j in members]
        b = batched.best(model, batched.ChipBatch.from_specs(chips), efficiency_for(chips[0]), LLAMA,
                         kernels="tiled", modes=("aggregated",))
        for i, c in enumerate(chips):
            e = api.estimate(model, c, LLAMA, mode="aggregated", fidelity="tiled")
            assert b["output_tok_s_per_chip"][i] == pytest.approx(e.output_tok_s_per_chip, rel=1e-9)
    for j, i in enumerate(idx):  # the screen's price per chip-hour is the one pricing path's
        hourly = tco.chip_hour_cost(specs[j], tco.default_economics()).total_usd_per_hour
        tok = s["scenarios"]["batch"]["output_tok_s_per_chip"][i]
        row_usd = s["scenarios"]["batch"]["usd_per_mtok"][i]
        total = tok * (1 + LLAMA.input_len / LLAMA.output_len) if np.isfinite(tok) else np.nan
        if np.isfinite(total):
            assert row_usd == pytest.approx(hourly * 1e6 / 3600.0 / total, rel=1e-6)
