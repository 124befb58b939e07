"""Attention data-parallel ranks coupled by expert parallelism step as one (mapping.search).

With a MoE model's experts spread over the data-parallel ranks (ep > 1, dp > 1), every MoE layer
exchanges tokens among all ranks, so an iteration lasts as long as its busiest rank's. Prompts are
scheduled per rank: a prompt's chunk runs while the other ranks decode, and each rank's cycle sits
through all ranks' chunks (TensorRT-LLM's ADP-balance blog: the slowest rank sets the iteration).
"""

import numpy as np
import pytest

from tokenfab.catalog import load_chip, load_model
from tokenfab.mapping.search import (SearchSpace, coupled_ranks, evaluate, lone_prefill_ratio, prefill_chunk,
                                     prepare)
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs import SystemSpec, Traffic

EFF = Efficiency()
TRAFFIC = Traffic(input_len=4096, output_len=512)


def _prep(model: str, **space):
    chip = load_chip("h200-sxm")
    return prepare(load_model(model), chip, SystemSpec.for_chip(chip), EFF, TRAFFIC, SearchSpace(**space))


def test_only_moe_layouts_with_experts_over_dp_ranks_are_coupled():
    p = _prep("deepseek-v3", num_chips=(8,), tp=(1, 8), ep=(1, 8), batch=(16,), precisions=("fp8",))
    g = coupled_ranks(p.model, p.ep, p.dp)
    want = np.where((p.ep > 1) & (p.dp > 1), p.dp, 1)
    assert np.array_equal(g, want)
    assert (g == 8).any() and (g == 1).any()
    dense = _prep("llama-3.1-70b", num_chips=(8,), tp=(1, 2), batch=(16,), precisions=("fp8",))
    assert np.all(coupled_ranks(dense.model, dense.ep, dense.dp) == 1)


def test_a_lone_chunk_keeps_its_dense_time_and_sheds_expert_work():
    p = _prep("deepseek-v3", num_chips=(8,), tp=(1,), ep=(8,), batch=(16,), precisions=("fp8",))
    _, _, times = prefill_chunk(p, 4096.0, 1.0)
    r = lone_prefill_ratio(p, 4096.0, 1.0, times)
    total = sum(np.asarray(t.seconds, float) for t in times)
    experts = sum(np.asarray(t.seconds, float) for t in times if t.name.startswith(("experts_", "moe_perm", "moe_unperm")))
    # The iteration loses at most the expert share (all of it at 1/8 the tokens would be 7/8 of it).
    assert np.all(r < 1.0)
    assert np.all(r >= (total - experts) / total - 1e-12)


def test_coupled_ranks_sit_through_every_ranks_prompts():
    # One point, attention DP8 x EP8, and the same point's figures worked from its parts:
    # cycle = osl x decode step + batch x dp x (lone chunk per prompt).
    model, chip = load_model("deepseek-v3"), load_chip("h200-sxm")
    space = SearchSpace(num_chips=(8,), tp=(1,), ep=(8,), batch=(16,), precisions=("fp8",))
    res = evaluate(model, chip, SystemSpec.for_chip(chip), EFF, TRAFFIC, space)
    assert len(res) == 1 and int(res.arrays["dp"][0]) == 8
    a = res.arrays
    p = prepare(model, chip, SystemSpec.for_chip(chip), EFF, TRAFFIC, space)
    k = float(a["prefill_prompts"][0])
    _, pipe, times = prefill_chunk(p, 4096.0, k)
    lone = float(lone_prefill_ratio(p, 4096.0, k, times)[0])
    cycle = 512 * a["decode_step_ms"][0] * 1e-3 + 16 * 8 * float(pipe[0]) * lone / k
    assert a["tpot_ms"][0] == pytest.approx(cycle / 512 * 1e3, rel=1e-9)
    # Against the same ranks if they were independent (dp replicas without expert exchange), the
    # prefill stall per cycle is dp x lone times larger.
    assert a["prefill_time_share"][0] > 0.0


def test_the_simulators_engine_is_the_coupled_group():
    # The step-time tables of the simulator (serving.steptime) for the same layout: one engine of
    # eight ranks, decodes spread over them, a lone chunk's experts at 1/8 of the tokens. The
    # chunk's iteration matches the mapping search's lone ratio.
    from tokenfab.serving.steptime import EngineStepTime, Mapping

    model, chip = load_model("deepseek-v3"), load_chip("h200-sxm")
    mp = Mapping(num_chips=8, tp=1, ep=8, dp=8, batch=16, weight_precision="fp8", kv_precision="fp8")
    one = EngineStepTime(model, chip, mp, max_ctx=4608, token_budget=4096, typical_len=4352)
    group = EngineStepTime(model, chip, mp, max_ctx=4608, token_budget=4096, typical_len=4352, coupled=True)
    assert (one.ranks, group.ranks) == (1, 8)
    assert group.max_seqs == 8 * one.max_seqs and group.kv_capacity_tokens == 8 * one.kv_capacity_tokens
    # 64 sequences over the group decode as 8 on each rank.
    assert group.decode(64, 2000.0)[0] == pytest.approx(one.decode(8, 2000.0)[0], rel=1e-9)
    lone_sim = group.mixed(0, 0.0, [(4096, 0)]) / one.mixed(0, 0.0, [(4096, 0)])
    space = SearchSpace(num_chips=(8,), tp=(1,), ep=(8,), batch=(16,), precisions=("fp8",))
    from tokenfab.perf.efficiency import efficiency_for
    p = prepare(model, chip, SystemSpec.for_chip(chip), efficiency_for(chip), TRAFFIC, space)
    _, _, times = prefill_chunk(p, 4096.0, 1.0)
    lone = float(lone_prefill_ratio(p, 4096.0, 1.0, times)[0])
    assert lone_sim < 1.0
    assert lone_sim == pytest.approx(lone, rel=0.05)
