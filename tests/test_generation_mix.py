"""`multimodal-mix`: image, video and ranking scenarios weighed in their own units ($ per image batch,
per video, per million samples) beside the LLM scenarios, as `media-mix` does."""

import pytest

from tokenfab import catalog
from tokenfab.explore.catalog import load_base_design, load_space, load_workload
from tokenfab.explore.designs import base_mapping
from tokenfab.explore.evaluate import evaluate_chip, make_context


@pytest.mark.slow
def test_multimodal_mix_prices_each_scenario_in_its_own_unit():
    wl, _ = load_workload("multimodal-mix")
    sp, sp_path = load_space(wl.space)
    ctx = make_context(wl, base_mapping(load_base_design(sp, sp_path), sp), sp.constraints,
                       sp.search.max_chips, sp.search.fidelity)
    kinds = {s.name: s.kind for s in ctx.scenarios}
    assert kinds == {"chat": "llm", "image-qa": "llm", "text-to-image": "diffusion", "text-to-video": "diffusion",
                     "generative-ranking": "recsys", "ranking": "recsys"}
    assert sum(s.weight for s in ctx.scenarios) == pytest.approx(1.0)
    rate, refs = ctx.token_rate, dict(ctx.unit_refs)
    other = evaluate_chip(catalog.load_chip("h200-sxm"), ctx)
    assert other["feasible"], other["reasons"]
    rows, hour = other["scenarios"], other["chip_hour"]["total"]
    img = rows["text-to-image"]
    # one request = a batch of 4 images on its chips for its latency; counted at r per Mtok-equivalent
    assert img["usd_per_video"] == pytest.approx(hour * img["num_chips"] * img["latency_s"] / 3600)
    assert img["usd_per_mtok"] == pytest.approx(rate * img["usd_per_video"] / refs["text-to-image"])
    assert img["latency_s"] <= 60 and rows["text-to-video"]["latency_s"] <= 900
    rank = rows["generative-ranking"]
    assert rank["usd_per_million_samples"] == pytest.approx(hour / 3600 / rank["samples_s_per_chip"] * 1e6)
    assert other["objectives"]["usd_per_mtok"] == pytest.approx(sum(s["weight"] * s["usd_per_mtok"]
                                                                    for s in rows.values()))
