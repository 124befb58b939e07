"""`simulate` runs the deployment `estimate` chooses, and the two agree at the same load.

The estimate is a steady state at its batch; the simulator at a fraction of the estimate's
capacity runs whatever batch Little's law gives. With the batch fixed at 16 sequences the decode
step of an 8B model on an H100 is mostly the weight read (8 GB of fp8 weights vs ~1.3 GB of KV
cache at 16 × 1,280 tokens), so TPOT barely moves with the batch and the two must agree; at the
estimate's own (SLO-sized) batch the simulated TPOT at 60% load is far lower, as it should be.
"""

from dataclasses import replace

import pytest

from tokenfab import catalog
from tokenfab.serving import deployment as dep
from tokenfab.serving.metrics import summarize
from tokenfab.serving.simulator import simulate
from tokenfab.serving.steptime import EngineStepTime, Mapping
from tokenfab.serving.traffic import LengthSpec, PrefixSpec, TrafficProfile, generate

MODEL, CHIP = "llama-3.1-8b", "h100-sxm"
PROF = TrafficProfile(name="fixed", input=LengthSpec(kind="fixed", value=1024),
                      output=LengthSpec(kind="fixed", value=256))


def _estimate(mode, **kw):
    m, c = catalog.load_model(MODEL), catalog.load_chip(CHIP)
    return m, dep.choose_estimate(m, c, 1024, 256, slo_ttft_ms=2000, slo_tpot_ms=50, mode=mode, **kw)


@pytest.mark.parametrize("mode", ["aggregated", "disaggregated"])
def test_simulated_deployment_of_the_estimate_keeps_up_and_matches_its_tpot(mode):
    m, est = _estimate(mode, batch=16)
    assert est.mode == mode
    cap = dep.capacity_rps(est)
    wl = generate(PROF, 0.6 * cap, 4000, seed=0)
    d = dep.from_estimate(m, est, wl)
    assert d.info["mode"] == mode and d.info["estimate"]["capacity_rps"] == pytest.approx(cap)
    s = summarize(simulate(wl, d))
    # Throughput is the offered load (60% of capacity: nothing queues up) ...
    assert s["steady_completed_rps"] == pytest.approx(s["steady_offered_rps"], rel=0.02)
    assert s["steady_offered_rps"] == pytest.approx(0.6 * cap, rel=0.05)
    # ... and TPOT is the estimate's within 15% (measured: aggregated 0.91x, disaggregated 0.97x;
    # lower because at 60% load fewer prompts interrupt the decodes and the batch holds ~9, not 16).
    assert s["tpot_ms_mean"] == pytest.approx(est.tpot_ms, rel=0.15)


def test_disaggregated_pools_have_their_own_chip_mapping_and_the_estimates_kv_transfer():
    m, est = _estimate("disaggregated", decode_chip="h200-sxm")
    wl = generate(PROF, 1.0, 200, seed=0)
    d = dep.from_estimate(m, est, wl)
    pre, dec = est.pools
    assert d.disagg == (pre["instances"], dec["instances"])
    assert d.prefill.steptime.chip.id == "h100-sxm" and d.steptime.chip.id == "h200-sxm"
    assert d.prefill.steptime.mapping.batch == pre["batch"] and d.steptime.mapping.batch == dec["batch"]
    assert d.prefill.engines_per_instance == pre["dp"] and d.engines_per_replica == dec["dp"]
    assert d.total_chips == pre["instances"] * pre["num_chips"] + dec["instances"] * dec["num_chips"]
    # The estimate's transfer for its prompt; linear in the tokens moved, from one latency.
    link = d.transfer
    assert link.kv_transfer_s(1024) == pytest.approx(est.kv_transfer_ms / 1e3)
    assert link.kv_transfer_s(2048) - link.kv_transfer_s(1024) == pytest.approx(link.kv_transfer_s(1024) - link.alpha_s)
    # --disagg P:D overrides the balanced instance counts, not the pools.
    forced = dep.from_estimate(m, est, wl, disagg=(1, 3))
    assert forced.disagg == (1, 3) and forced.steptime.mapping == d.steptime.mapping


def test_capacity_of_a_disaggregated_unit_is_its_slower_pool():
    _, est = _estimate("disaggregated")
    pre, dec = est.pools
    prefill_rps = pre["instances"] * pre["num_chips"] * pre["input_tok_s_per_chip"] / 1024
    decode_rps = dec["instances"] * dec["num_chips"] * dec["output_tok_s_per_chip"] / 256
    assert dep.capacity_rps(est) == pytest.approx(min(prefill_rps, decode_rps))


def test_mtp_decode_step_is_the_verify_step_over_tokens_per_step():
    # One draft at 50% acceptance emits 1 + 0.5 = 1.5 tokens per step; two at 50%: 1.75.
    assert Mapping(1, draft_tokens=1, draft_acceptance=0.5).tokens_per_step == 1.5
    assert Mapping(1, draft_tokens=2, draft_acceptance=0.5).tokens_per_step == 1.75
    m, c = catalog.load_model(MODEL), catalog.load_chip(CHIP)
    base = Mapping(num_chips=1, batch=8, weight_precision="fp8", kv_precision="fp8", draft_tokens=1)
    never = EngineStepTime(m, c, base, max_ctx=2048, token_budget=512)  # acceptance 0: one token per step
    half = EngineStepTime(m, c, replace(base, draft_acceptance=0.5), max_ctx=2048, token_budget=512)
    plain = EngineStepTime(m, c, replace(base, draft_tokens=0), max_ctx=2048, token_budget=512)
    for b, ctx in ((1, 100.0), (8, 1500.0)):
        assert half.decode(b, ctx)[0] == pytest.approx(never.decode(b, ctx)[0] / 1.5)
        assert never.decode(b, ctx)[0] > plain.decode(b, ctx)[0]  # verifying a draft costs something


def test_mtp_estimate_and_simulation_agree():
    m, est = _estimate("disaggregated", batch=16, mtp=True, mtp_acceptance=0.7)
    assert est.draft_tokens == 1 and est.draft_acceptance == 0.7
    wl = generate(PROF, 0.6 * dep.capacity_rps(est), 3000, seed=0)
    d = dep.from_estimate(m, est, wl)
    assert d.steptime.mapping.tokens_per_step == pytest.approx(1.7)
    s = summarize(simulate(wl, d))
    assert s["steady_completed_rps"] == pytest.approx(s["steady_offered_rps"], rel=0.02)
    assert s["tpot_ms_mean"] == pytest.approx(est.tpot_ms, rel=0.15)  # measured 0.975x


def test_prefix_hits_skip_prefill_on_the_prefill_pool():
    prof = TrafficProfile(name="shared", input=LengthSpec(kind="fixed", value=1024),
                          output=LengthSpec(kind="fixed", value=32), prefix=PrefixSpec(groups=1, tokens=512))
    m, c = catalog.load_model(MODEL), catalog.load_chip(CHIP)
    wl = generate(prof, 2.0, 200, seed=0)
    d = dep.build_deployment(m, c, wl, mode="disaggregated", disagg=(1, 1))
    res = simulate(wl, d)
    pre = [e for e in res.engines if e["role"] == "prefill"]
    # Every prompt after the first on the one prefill engine reuses the 512-token prefix.
    assert sum(e["prefill_tokens"] for e in pre) == 200 * 1024 - 199 * 512
    assert d.info["estimate"]["prefix_cache_hit"] == pytest.approx(0.5)


def test_mtp_is_on_by_default_for_a_model_that_ships_it_and_off_with_no_mtp():
    m, c = catalog.load_model("deepseek-v3"), catalog.load_chip("h200-sxm")
    wl = generate(TrafficProfile(name="f", input=LengthSpec(kind="fixed", value=2048),
                                 output=LengthSpec(kind="fixed", value=512)), 1.0, 50, seed=0)
    on = dep.build_deployment(m, c, wl, mode="disaggregated", mtp=None, slo_ttft_ms=2000, slo_tpot_ms=50)
    # DeepSeek-V3's one MTP module at 85% acceptance: 1.85 tokens per decode step, decode pool only.
    assert on.steptime.mapping.tokens_per_step == pytest.approx(1.85)
    assert on.prefill.steptime.mapping.draft_tokens == 0
    off = dep.build_deployment(m, c, wl, mode="disaggregated", mtp=False, slo_ttft_ms=2000, slo_tpot_ms=50)
    assert off.steptime.mapping.draft_tokens == 0 and off.info["estimate"]["draft_tokens"] == 0
