"""Scheduler behaviour: conservation, determinism, KV blocks, preemption, prefix cache, batching."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.serving.metrics import itl_samples, request_latencies, summarize
from tokenfab.serving.scheduler import Engine, Request
from tokenfab.serving.simulator import Deployment, EngineConfig, simulate
from tokenfab.serving.steptime import ConstantStepTime
from tokenfab.serving.traffic import (
    LengthSpec,
    PrefixSpec,
    TrafficProfile,
    Workload,
    generate,
)

CHATTY = TrafficProfile(name="t", input=LengthSpec(kind="uniform", low=20, high=400),
                        output=LengthSpec(kind="uniform", low=1, high=300))
STEP = dict(prefill_s=0.02, prefill_s_per_token=2e-5, decode_s=0.01, decode_s_per_seq=1e-4)


def _dep(kv_tokens=10**7, max_seqs=64, budget=512, replicas=1, router="least_outstanding", **kw):
    return Deployment(steptime=ConstantStepTime(kv_capacity_tokens=kv_tokens, **STEP, **kw),
                      engine=EngineConfig(max_num_seqs=max_seqs, token_budget=budget), replicas=replicas, router=router)


def _decode_tokens(res) -> int:
    return int(sum((e["itl_n"] * e["itl_k"]).sum() for e in res.engines))


def test_every_request_finishes_and_tokens_are_conserved():
    wl = generate(CHATTY, 30.0, 3000, seed=2)
    res = simulate(wl, _dep())
    assert np.all(res.t_done > 0) and np.all(res.t_first <= res.t_done)
    assert np.all(res.t_admit >= res.arrival) and np.all(res.t_first > res.t_admit)
    # One token per prefill, one per sequence per decode step.
    assert _decode_tokens(res) + len(wl) + res.preemptions.sum() == wl.output_tokens.sum()
    # Prefill work: every prompt token computed once (no preemption, no prefix sharing here).
    assert sum(e["prefill_tokens"] for e in res.engines) == wl.input_tokens.sum()
    s = summarize(res)
    assert s["output_tokens"] == wl.output_tokens.sum() and s["requests"] == 3000


def test_same_seed_same_run_other_seed_other_run():
    a = simulate(generate(CHATTY, 30.0, 2000, seed=5), _dep(replicas=2))
    b = simulate(generate(CHATTY, 30.0, 2000, seed=5), _dep(replicas=2))
    c = simulate(generate(CHATTY, 30.0, 2000, seed=6), _dep(replicas=2))
    assert np.array_equal(a.t_done, b.t_done) and np.array_equal(a.t_first, b.t_first)
    assert summarize(a)["ttft_ms_p99"] == summarize(b)["ttft_ms_p99"]
    assert not np.array_equal(a.t_done, c.t_done)


def test_kv_exhaustion_preempts_and_still_finishes_everything():
    # 60 requests at once, each growing to 450 tokens; the cache holds 1600 tokens (100 blocks).
    n = 60
    wl = Workload(np.zeros(n), np.full(n, 50), np.full(n, 400), np.full(n, -1), np.zeros(n, dtype=int))
    res = simulate(wl, _dep(kv_tokens=1600))
    assert res.preemptions.sum() > 0
    assert np.all(res.t_done > 0)
    assert _decode_tokens(res) + n + res.preemptions.sum() == wl.output_tokens.sum()
    kv_peak = max(e["kv"].max() for e in res.engines)
    assert kv_peak <= 1.0 + 1e-9
    # The same load with a large cache never preempts.
    assert simulate(wl, _dep(kv_tokens=10**6)).preemptions.sum() == 0


def test_admission_waits_for_kv_blocks():
    # Prompts of 1000 tokens, cache of 2048 tokens: at most two requests hold KV at once.
    n = 6
    wl = Workload(np.zeros(n), np.full(n, 1000), np.full(n, 8), np.full(n, -1), np.zeros(n, dtype=int))
    res = simulate(wl, _dep(kv_tokens=2048, budget=4096))
    assert max(e["running"].max() for e in res.engines) <= 2
    assert np.all(res.t_done > 0)


@settings(max_examples=40, deadline=None)
@given(offs=st.lists(st.integers(1, 200), min_size=1, max_size=30), steps=st.integers(0, 100),
       block=st.sampled_from([1, 4, 16]))
def test_block_count_matches_brute_force(offs, steps, block):
    e = Engine(0, sim=None, steptime=None, max_num_seqs=100, token_budget=100, block_size=block, kv_blocks=10**6)
    for i, target in enumerate(offs):
        r = Request(i, 0.0, target, 10**6)
        r.target, r.gen = target, 1
        e.S = i  # joined at different steps
        e._join_decode(r)
    S = e.S + steps
    brute = sum(math.ceil((r.off + S) / block) for r in e.decoding.values())
    assert e._dblocks(S) == brute
    assert e._dblocks_ub(S) >= brute


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), kv=st.integers(800, 20000), max_seqs=st.integers(1, 32),
       budget=st.integers(64, 2048))
def test_any_limits_serve_everything(seed, kv, max_seqs, budget):
    prof = TrafficProfile(name="p", input=LengthSpec(kind="uniform", low=1, high=300),
                          output=LengthSpec(kind="uniform", low=1, high=200))
    wl = generate(prof, 50.0, 150, seed=seed)
    res = simulate(wl, _dep(kv_tokens=kv, max_seqs=max_seqs, budget=budget))
    assert np.all(res.t_done >= res.t_first) and np.all(res.t_first > res.arrival)
    assert _decode_tokens(res) + len(wl) + res.preemptions.sum() == wl.output_tokens.sum()


def test_decode_windows_skip_ahead_instead_of_stepping_each_token():
    # One request of 1000 output tokens alone: one prefill step and one decode window.
    wl = Workload(np.zeros(1), np.array([10]), np.array([1000]), np.array([-1]), np.array([0]))
    res = simulate(wl, _dep())
    e = res.engines[0]
    assert e["steps"] == 1000 and len(e["itl_k"]) == 1 and e["itl_k"][0] == 999
    # 20 ms + 10 tokens x 20 us prefill, then 999 steps of 10.1 ms.
    assert abs(res.t_done[0] - (0.0202 + 999 * 0.0101)) < 1e-9


def test_arrival_cuts_a_decode_window_at_the_next_step_boundary():
    # A long decode is running; a second request arrives at t = 0.5 s and must start prefill at
    # the first decode-step boundary after 0.5 s, not after the first request finishes.
    wl = Workload(np.array([0.0, 0.5]), np.array([10, 10]), np.array([1000, 5]), np.array([-1, -1]), np.zeros(2, dtype=int))
    res = simulate(wl, _dep())
    first_prefill = 0.0202
    boundary = first_prefill + math.ceil((0.5 - first_prefill) / 0.0101) * 0.0101
    assert abs(res.t_admit[1] - boundary) < 1e-9
    assert res.t_done[1] < res.t_done[0]


def test_a_scheduler_reading_requests_every_p_steps_admits_at_its_next_read():
    """SGLang's `--scheduler-recv-interval 5`: while decoding, new requests are read every 5
    decode steps, counted from the read that follows the first request's prefill step. The same
    arrival as above (t = 0.5 s: 47.5 steps after that read) waits for the read at step 50, where
    every-step reads admit it at step 48; an idle engine reads the first one at once."""
    wl = Workload(np.array([0.0, 0.5]), np.array([10, 10]), np.array([1000, 5]), np.array([-1, -1]), np.zeros(2, dtype=int))
    dep = Deployment(steptime=ConstantStepTime(**STEP), engine=EngineConfig(max_num_seqs=64, token_budget=512,
                                                                            poll_steps=5))
    res = simulate(wl, dep)
    first_prefill = 0.0202
    assert res.t_admit[0] == 0.0
    assert abs(res.t_admit[1] - (first_prefill + 50 * 0.0101)) < 1e-9
    assert res.t_done[1] < res.t_done[0]


def test_chunked_prefill_splits_long_prompts_by_the_token_budget():
    wl = Workload(np.zeros(1), np.array([1000]), np.array([1]), np.array([-1]), np.array([0]))
    res = simulate(wl, _dep(budget=256))
    assert res.engines[0]["steps"] == 4  # 256 + 256 + 256 + 232


def test_prefix_cache_skips_shared_prefix_after_first_use():
    prof = TrafficProfile(name="p", input=LengthSpec(kind="fixed", value=600), output=LengthSpec(kind="fixed", value=4),
                          prefix=PrefixSpec(groups=2, tokens=500, share=1.0))
    wl = generate(prof, 5.0, 200, seed=1)
    res = simulate(wl, _dep())
    computed = sum(e["prefill_tokens"] for e in res.engines)
    assert computed == 200 * 600 - res.cached.sum()
    assert res.cached.sum() >= (200 - 2) * 499  # all but the first request of each group hit
    off = Deployment(steptime=ConstantStepTime(**STEP), engine=EngineConfig(prefix_caching=False))
    assert simulate(wl, off).cached.sum() == 0


def test_more_replicas_lower_latency_and_routers_spread_load():
    wl = generate(CHATTY, 60.0, 3000, seed=4)
    one = summarize(simulate(wl, _dep(max_seqs=16)))
    for router in ("least_outstanding", "round_robin"):
        res = simulate(wl, _dep(max_seqs=16, replicas=3, router=router))
        three = summarize(res)
        assert three["ttft_ms_p90"] < one["ttft_ms_p90"]
        per_engine = [e["prefill_tokens"] for e in res.engines]
        assert min(per_engine) > 0.2 * max(per_engine)


def test_itl_percentiles_weight_tokens_not_steps():
    wl = generate(CHATTY, 30.0, 1000, seed=8)
    res = simulate(wl, _dep())
    _, wts = itl_samples(res)
    assert wts.sum() == _decode_tokens(res)
    lat = request_latencies(res)
    assert np.nanmin(lat["tpot"]) >= 10.0 - 1e-9  # no interval is shorter than a decode step


def test_an_arrival_exactly_at_a_step_boundary_joins_the_next_step():
    # A (1000 tokens to generate) and C (2 tokens) are prefilled together, then one decode step
    # ends C. B arrives exactly when that step ends: arrivals are handled before step ends at
    # equal times, so B is admitted at that boundary rather than one decode step later.
    t1 = 0.0 + (STEP["prefill_s"] + STEP["prefill_s_per_token"] * 20)
    t2 = t1 + (STEP["decode_s"] + STEP["decode_s_per_seq"] * 2)
    wl = Workload(np.array([0.0, 0.0, t2]), np.array([10, 10, 10]), np.array([1000, 2, 5]), np.full(3, -1),
                  np.zeros(3, dtype=int))
    res = simulate(wl, _dep())
    assert res.t_done[1] == t2
    assert res.t_admit[2] == t2
