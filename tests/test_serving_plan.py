"""Capacity planning: the bisection's answer, infeasible SLOs, the validation hook."""

from dataclasses import replace

import pytest

from tokenfab import catalog
from tokenfab.serving import plan as pl
from tokenfab.serving.metrics import request_latencies
from tokenfab.serving.simulator import Deployment, EngineConfig, simulate
from tokenfab.serving.steptime import ConstantStepTime
from tokenfab.serving.traffic import LengthSpec, TrafficProfile, generate

PROF = TrafficProfile(name="p", input=LengthSpec(kind="uniform", low=100, high=1000),
                      output=LengthSpec(kind="uniform", low=10, high=100))
DEP = Deployment(steptime=ConstantStepTime(prefill_s=0.01, prefill_s_per_token=2e-5, decode_s=0.01,
                                           decode_s_per_seq=4e-4),
                 engine=EngineConfig(max_num_seqs=64, token_budget=1024))


def _meets(rate, unit, n):
    wl = unit.head(n)
    res = simulate(replace(wl, arrival_s=wl.arrival_s / rate), DEP)
    return pl.slo_check(request_latencies(res), 500.0, 25.0, 99.0)[0]


def test_bisection_rate_meets_the_slo_and_ten_percent_more_does_not():
    unit = generate(PROF, 1.0, 50_000, seed=0)
    s = pl.max_rate(DEP, unit, slo_ttft_ms=500.0, slo_tpot_ms=25.0, pct=99.0, min_requests=1000)
    assert s.feasible and s.max_rate_rps > 0
    assert s.metrics["ttft_ms_p99"] <= 500.0 and s.metrics["tpot_ms_p99"] <= 25.0
    # Re-simulate with the search's run sizing: the answer holds, 1.1x it does not.
    lifetime = 0.5 + unit.mean_lengths()[1] * 0.025
    n = lambda r: max(1000, int(r * 10 * lifetime) + 1)
    assert _meets(s.max_rate_rps, unit, n(s.max_rate_rps))
    assert not _meets(1.1 * s.max_rate_rps, unit, n(1.1 * s.max_rate_rps))
    assert s.failing_rate_rps <= 1.02 * s.max_rate_rps * 1.0001


def test_ttft_slo_below_one_prefill_is_reported_not_searched():
    unit = generate(PROF, 1.0, 5000, seed=0)
    # The shortest prefill alone takes 10 ms + 100 x 20 us = 12 ms > 5 ms.
    s = pl.max_rate(DEP, unit, slo_ttft_ms=5.0, slo_tpot_ms=None)
    assert not s.feasible and s.max_rate_rps is None and s.evaluations == 1
    assert "no number of replicas" in s.reason and "TTFT p99" in s.reason
    s = pl.max_rate(DEP, unit, slo_ttft_ms=None, slo_tpot_ms=5.0)
    assert not s.feasible and "TPOT p99" in s.reason


@pytest.mark.slow  # ~1 s; the inner loop checks the same sizing on `tokenfab plan --json` (tests/test_serving_cli.py)
def test_plan_on_the_engine_picks_a_best_mode_and_sizes_the_fleet():
    model, chip = catalog.load_model("llama-3.1-8b"), catalog.load_chip("h100-sxm")
    # Tight SLOs keep each simulated run short (its length follows the lifetime the SLOs allow).
    out = pl.plan(model, chip, PROF, slo_ttft_ms=200, slo_tpot_ms=20, tokens_per_day=5e9, requests=500,
                  chip_counts=(1,), disagg_ratios=((1, 1),), token_budgets=(2048,), max_requests=20_000,
                  rel_tol=0.1)  # a coarse bisection halves the time; its accuracy is the test below's
    assert out["feasible"] and len(out["candidates"]) == 2
    best = out["best"]
    assert best["rate_per_chip_rps"] == max(r["rate_per_chip_rps"] for r in out["candidates"])
    rps = 5e9 / 86400 / (out["mean_input_tokens"] + out["mean_output_tokens"])
    assert out["required_rps"] == pytest.approx(rps)
    assert out["num_chips"] == out["units"] * best["chips_per_unit"] and out["units"] * best["max_rate_rps"] >= rps
    if out["usd_per_chip_hour"] is not None:
        assert out["usd_per_day"] == pytest.approx(out["num_chips"] * out["usd_per_chip_hour"] * 24)
        assert out["usd_per_mtok"] == pytest.approx(out["usd_per_day"] / 5e3)
    else:
        assert out["usd_per_day"] is None and out["cost_basis"]


def test_plan_says_when_no_replica_count_can_meet_the_slo():
    model, chip = catalog.load_model("llama-3.1-8b"), catalog.load_chip("h100-sxm")
    out = pl.plan(model, chip, PROF, slo_ttft_ms=0.5, slo_tpot_ms=40, requests=300, chip_counts=(1,),
                  disagg_ratios=(), token_budgets=(2048,))
    assert not out["feasible"] and out["best"] is None and "no number of replicas" in out["reason"]


def test_predict_server_row_for_a_validator():
    from tokenfab.validate.server_sim import predict_server_row

    row = predict_server_row("llama-3.1-8b", "h100-sxm", num_chips=1, input_len=1024, output_len=128,
                             target_qps=5.0, slo_ttft_ms=2000, slo_tpot_ms=100, requests=800)
    assert {"throughput", "ttft_p99_ms", "tpot_p99_ms"} <= row.keys()
    assert row["meets_slo"] is True and not row["saturated"]
    assert row["throughput"] == pytest.approx(5.0 * 128, rel=0.15)  # keeps up: tokens/s = rate x output
    over = predict_server_row("llama-3.1-8b", "h100-sxm", num_chips=1, input_len=1024, output_len=128,
                              target_qps=500.0, slo_ttft_ms=2000, slo_tpot_ms=100, requests=800)
    assert over["saturated"] and over["ttft_p99_ms"] > row["ttft_p99_ms"]
