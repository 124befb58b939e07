"""`tokenfab design` on mixes with diffusion (video) and recommendation scenarios: evaluation,
the $/Mtok-equivalent objective, an unchanged all-LLM objective, and field checks by model kind."""

import math

import pytest

from tokenfab.explore.catalog import load_base_design, load_space, load_workload
from tokenfab.explore.designs import base_mapping
from tokenfab.explore.evaluate import evaluate_chip, evaluate_point, make_context
from tokenfab.specs import SpecError
from tokenfab.specs.workload import WorkloadSpec

# The best design of `tokenfab design chat-mix --trials 60 --seed 1` and its objectives, recorded
# before non-LLM scenarios existed: the all-LLM objective must not move.
CHAT_MIX_BEST = {"process_node": "tsmc-n3", "compute_dies": 2, "die.cores_per_die": 104,
                 "die.core.matrix_unit.rows": 16, "die.core.matrix_unit.cols": 8, "die.core.control": "simt",
                 "die.core.sram_kb": 256, "die.shared_sram_mb": 93, "clock_mhz": 1100, "tdp_w": 650,
                 "memory.hbm_generation": "hbm3e", "memory.hbm_stacks": 6, "io.scaleup_links": 24}
MEDIA_DESIGN = {"process_node": "tsmc-n3", "compute_dies": 1, "die.cores_per_die": 168,
                "die.core.matrix_unit.rows": 8, "die.core.matrix_unit.cols": 32, "die.core.control": "dataflow",
                "die.core.sram_kb": 512, "die.shared_sram_mb": 56, "clock_mhz": 1300, "tdp_w": 1100,
                "memory.hbm_generation": "hbm3e", "memory.hbm_stacks": 8, "io.scaleup_links": 12}


def context(wl):
    sp, sp_path = load_space(wl.space)
    return make_context(wl, base_mapping(load_base_design(sp, sp_path), sp), sp.constraints,
                        sp.search.max_chips, sp.search.fidelity)


@pytest.mark.slow  # end-to-end search/run; the inner loop keeps the cheaper tests of the same path
def test_mixed_workload_evaluates_a_design_in_mtok_equivalents():
    wl, _ = load_workload("media-mix")
    ctx = context(wl)
    kinds = {s.name: s.kind for s in ctx.scenarios}
    assert kinds == {"chat": "llm", "image-qa": "llm", "video": "diffusion", "ranking": "recsys"}
    r = evaluate_point(MEDIA_DESIGN, ctx)
    assert r["feasible"], r["reasons"]
    obj = r["objectives"]
    assert math.isfinite(obj["usd_per_mtok"]) and obj["usd_per_mtok"] > 0
    rows, rate, refs = r["scenarios"], ctx.token_rate, dict(ctx.unit_refs)
    video, rank = rows["video"], rows["ranking"]
    hour = r["chip_hour"]["total"]
    assert video["usd_per_video"] == pytest.approx(hour * video["num_chips"] * video["latency_s"] / 3600)
    assert rank["usd_per_million_samples"] == pytest.approx(hour / 3600 / rank["samples_s_per_chip"] * 1e6)
    assert video["usd_per_mtok"] == pytest.approx(rate * video["usd_per_video"] / refs["video"])
    assert obj["usd_per_mtok"] == pytest.approx(sum(s["weight"] * s["usd_per_mtok"] for s in rows.values()))
    # latency objectives: means over the LLM scenarios only (no seconds-per-video in a TPOT)
    llm = [rows["chat"], rows["image-qa"]]
    tw = sum(s["weight"] for s in llm)
    assert obj["tpot_ms"] == pytest.approx(sum(s["weight"] * s["tpot_ms"] for s in llm) / tw)
    # on the baseline every scenario costs r per Mtok-equivalent, so its mix figure is r
    from tokenfab import catalog
    base = evaluate_chip(catalog.load_chip(wl.baseline), ctx)
    assert base["scenarios"]["video"]["usd_per_mtok"] == pytest.approx(rate)
    assert base["objectives"]["usd_per_mtok"] == pytest.approx(rate)


def test_chat_mix_objective_is_the_plain_weighted_token_cost():
    # An all-LLM mix takes no Mtok-equivalent normalization: its objective is the weighted sum of
    # each scenario's own blended $/Mtok (weights sum to 1), and each scenario's figure is the one
    # `api.estimate` (the same deployment search `estimate` runs, modes included) and the one
    # pricing path give.
    from tokenfab import api
    from tokenfab.cost import tco
    from tokenfab.design import to_chip_spec
    from tokenfab.explore.designs import build_design

    wl, _ = load_workload("chat-mix")
    ctx = context(wl)
    assert ctx.token_rate is None and ctx.unit_refs == ()
    r = evaluate_point(CHAT_MIX_BEST, ctx)
    rows = r["scenarios"]
    assert sum(s["weight"] for s in rows.values()) == pytest.approx(1.0)
    assert r["objectives"]["usd_per_mtok"] == pytest.approx(sum(s["weight"] * s["usd_per_mtok"] for s in rows.values()))
    chip = to_chip_spec(build_design(ctx.base, CHAT_MIX_BEST)[0])
    for scen in ctx.scenarios:
        row = rows[scen.name]
        est = api.estimate(scen.model, chip, scen.traffic, precision=scen.precision, kv_precision=scen.kv_precision,
                           max_chips=ctx.max_chips, fidelity=ctx.fidelity)
        assert row["output_tok_s_per_chip"] == pytest.approx(est.output_tok_s_per_chip)
        split = tco.usd_per_mtok(row["usd_per_chip_hour"], est.input_tok_s_per_chip, est.output_tok_s_per_chip,
                                 est.prefill_time_share)
        assert row["usd_per_mtok"] == pytest.approx(split.blended_usd_per_mtok)


def _mix(video: dict, chat: dict | None = None) -> WorkloadSpec:
    return WorkloadSpec.from_mapping({
        "name": "bad-mix", "space": "chat-mix",
        "scenarios": [{"name": "chat", "weight": 0.9, "model": "llama-3.1-8b", **(chat or {})},
                      {"name": "video", "weight": 0.1, "model": "wan2.1-t2v-1.3b", **video}],
        "variants": {"more-video": {"scenarios": {"video": {"weight": 0.3}}}}})


def test_fields_that_do_not_suit_the_model_kind_are_named():
    with pytest.raises(SpecError, match=r"scenarios\.1 \(video\)\.input_len: LLM-only field; wan2\.1-t2v-1\.3b "
                                        r"is a diffusion model") as exc:
        context(_mix({"input_len": 512, "output_len": 1}))
    assert "\n" not in str(exc.value) and "slo_latency_s" in str(exc.value)
    with pytest.raises(SpecError, match=r"scenarios\.1 \(video\)\.kv_precision"):
        context(_mix({"kv_precision": "fp8"}))
    with pytest.raises(SpecError, match=r"scenarios\.1 \(video\)\.request: fps: unknown field"):
        context(_mix({"request": {"fps": 24}}))
    with pytest.raises(SpecError, match=r"scenarios\.0 \(chat\)\.request: only for diffusion"):
        context(_mix({}, chat={"request": {"steps": 10}}))
    # a variant of a valid mix stays valid (its scenarios keep which fields were set)
    wl = _mix({"request": {"steps": 20}})
    ctx = context(wl.with_variant("more-video", wl.variant("more-video")))
    assert next(s for s in ctx.scenarios if s.name == "video").request.steps == 20
