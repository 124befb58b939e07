"""Deployment modes: prefill/decode disaggregation on one or two chip types, MTP by default,
prefix-cache hits and the three-way token price (issue 13)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tokenfab import api
from tokenfab.cli import app
from tokenfab.mapping import modes
from tokenfab.specs import Traffic
from tokenfab.specs.cache import KV_TIERS

runner = CliRunner()
CHAT = Traffic(input_len=2048, output_len=512, slo_ttft_ms=2000, slo_tpot_ms=50)


def test_kv_transfer_worked_by_hand():
    # DeepSeek-V3's MLA cache: (512 latent + 64 rope) elements × 61 layers × 1 byte (fp8) = 35,136 B
    # a token. 4,000 tokens = 140.5 MB, sent by 8 chips in parallel at 50 GB/s each: 0.351 ms,
    # plus 12 µs of network latency.
    m = api.resolve_model("deepseek-v3")
    t = modes.kv_transfer_s(m, 4000, 1.0, 8, 50.0, 12.0)
    assert float(t) == pytest.approx(12e-6 + 4000 * 35_136 / (8 * 50e9), rel=1e-9)
    # Llama-3.1-70B (GQA, 8 KV heads × 128 × 2 (K and V) × 80 layers × 2 bytes = 327,680 B/token).
    llama = api.resolve_model("llama-3.1-70b")
    assert float(modes.kv_transfer_s(llama, 1000, 2.0, 1, 100.0, 0.0)) == pytest.approx(1000 * 327_680 / 100e9)


def test_balance_matches_pool_throughputs():
    # 2,000 input and 500 output tokens per request; prefill chips do 10,000 input tok/s, decode
    # chips 1,000 output tok/s: a request takes 0.2 prefill-chip-s and 0.5 decode-chip-s, so 0.4
    # prefill chips per decode chip and 500 / 0.7 output tok/s per chip of either kind.
    ratio, per_chip = modes.balance(2000, 500, 10_000, 1_000)
    assert ratio == pytest.approx(0.4)
    assert per_chip == pytest.approx(500 / 0.7)
    # The pools balance: `ratio` prefill chips feed exactly one decode chip's request rate.
    assert ratio * 10_000 / 2000 == pytest.approx(1_000 / 500)


def test_integer_unit_is_the_smallest_balanced_deployment():
    # 0.5 prefill chips per decode chip, 8-chip prefill and 16-chip decode instances: 1 + 1 is
    # exactly balanced (8 = 0.5 × 16).
    assert modes.integer_unit(0.5, 8, 16) == (1, 1, pytest.approx(1.0))
    # 0.3: one 8-chip prefill instance feeds 26.7 decode chips, so 1 + 2 (32 chips) uses
    # 24 decode chips' worth of work; the efficiency is (8 + 24·... ) checked against the formula.
    n_p, n_d, eff = modes.integer_unit(0.3, 8, 16)
    used = min(n_p * 8 / 0.3, n_d * 16)
    assert eff == pytest.approx(used * 1.3 / (n_p * 8 + n_d * 16))
    assert eff >= 0.95


def test_choose_under_relaxes_an_unreachable_limit_to_the_best_throughput():
    a = {"fits": np.array([True, True, True]), "batch": np.array([1, 2, 3]), "num_chips": np.array([8, 8, 8]),
         "tok": np.array([1.0, 5.0, 9.0])}
    lat = np.array([100.0, 102.0, 300.0])
    c = modes.choose_under(a, "tok", lat, limit=50.0)
    assert (c.index, c.meets_slo) == (1, False)  # within 5% of the fastest, best throughput
    assert modes.choose_under(a, "tok", lat, limit=1000.0) == modes.Choice(2, True)


def test_disaggregation_is_never_chosen_where_it_is_worse():
    for model, chip in [("llama-3.1-8b", "h100-sxm"), ("deepseek-v3", "h200-sxm"), ("llama-3.1-70b", "h20")]:
        auto = api.estimate(model, chip, CHAT)
        agg = api.estimate(model, chip, CHAT, mode="aggregated")
        dis = api.estimate(model, chip, CHAT, mode="disaggregated")
        assert auto.output_tok_s_per_chip == pytest.approx(max(agg.output_tok_s_per_chip, dis.output_tok_s_per_chip)) \
            or auto.meets_slo != (agg.meets_slo and dis.meets_slo)
        assert auto.mode == ("disaggregated" if auto.output_tok_s_per_chip == dis.output_tok_s_per_chip else "aggregated")


def test_disaggregated_estimate_reports_pools_and_ttft_includes_transfer():
    e = api.estimate("llama-3.1-70b", "h100-sxm", CHAT, mode="disaggregated")
    assert e.mode == "disaggregated"
    assert [p["role"] for p in e.pools] == ["prefill", "decode"]
    pre, dec = e.pools
    assert e.ttft_ms == pytest.approx(pre["prefill_ms"] + pre["cache_read_ms"] + e.kv_transfer_ms + e.decode_step_ms)
    assert e.kv_transfer_ms > 0
    # The fleet rate is the balanced combination of the pools' rates.
    _, per_chip = modes.balance(2048, 512, pre["input_tok_s_per_chip"], dec["output_tok_s_per_chip"])
    assert e.output_tok_s_per_chip == pytest.approx(per_chip)
    assert pre["chip_share"] + dec["chip_share"] == pytest.approx(1.0)
    assert e.pd_ratio == pytest.approx(pre["chip_share"] / dec["chip_share"])


def test_heterogeneous_pools_use_each_chips_own_spec_and_price():
    het = api.estimate("llama-3.1-70b", "h20", CHAT, prefill_chip="h200-sxm", decode_chip="h20")
    same_p = api.estimate("llama-3.1-70b", "h200-sxm", CHAT, mode="disaggregated")
    same_d = api.estimate("llama-3.1-70b", "h20", CHAT, mode="disaggregated")
    assert het.chip == "h200-sxm+h20"
    assert (het.pools[0]["chip"], het.pools[1]["chip"]) == ("h200-sxm", "h20")
    assert het.pools[1]["output_tok_s_per_chip"] == pytest.approx(same_d.pools[1]["output_tok_s_per_chip"])
    # Same prefill pool as H200's own disaggregated deployment when the TTFT budget allows the same
    # pick (the decode step added to TTFT differs with the decode chip).
    assert het.pools[0]["input_tok_s_per_chip"] <= same_p.pools[0]["input_tok_s_per_chip"] * (1 + 1e-9)
    row = api.with_cost(het, api_rental(2.0))
    assert row["usd_per_chip_hour"] == pytest.approx(2.0)  # one rental price: blended = 2
    # Owned pricing: the blend weights each pool's own chip-hour by its share of chips.
    from tokenfab.cost import tco
    owned = api.with_cost(het)
    h200 = tco.chip_hour_cost_for(api.resolve_chip("h200-sxm")).total_usd_per_hour
    h20 = tco.chip_hour_cost_for(api.resolve_chip("h20")).total_usd_per_hour
    share = het.pools[0]["chip_share"]
    assert owned["usd_per_chip_hour"] == pytest.approx(share * h200 + (1 - share) * h20)


def api_rental(usd):
    from tokenfab.cli.options import economics_from
    return economics_from(None, usd)


def test_mtp_is_on_by_default_for_models_that_ship_it_and_acceptance_zero_is_off():
    m = api.resolve_model("deepseek-v3")
    assert api.with_mtp(m, CHAT).draft_tokens == 1
    assert api.with_mtp(m, CHAT).draft_acceptance == api.DEFAULT_MTP_ACCEPTANCE
    assert api.with_mtp(api.resolve_model("llama-3.1-70b"), CHAT).draft_tokens == 0
    on = api.estimate(m, "h200-sxm", CHAT, mode="aggregated")
    zero = api.estimate(m, "h200-sxm", CHAT, mode="aggregated", mtp_acceptance=0.0)
    off = api.estimate(m, "h200-sxm", CHAT, mode="aggregated", mtp=False)
    assert on.draft_tokens == 1 and off.draft_tokens == 0
    assert zero.model_dump() == off.model_dump()
    assert on.output_tok_s_per_chip > off.output_tok_s_per_chip


def test_zero_cache_hit_equals_no_cache_and_hits_cut_prefill_cost():
    base = api.estimate("llama-3.1-70b", "h100-sxm", CHAT, mode="disaggregated")
    zero = api.estimate("llama-3.1-70b", "h100-sxm", CHAT.model_copy(update={"prefix_cache_hit": 0.0}),
                        mode="disaggregated")
    assert zero.model_dump() == base.model_dump()
    hit = api.estimate("llama-3.1-70b", "h100-sxm", CHAT.model_copy(update={"prefix_cache_hit": 0.5}),
                       mode="disaggregated")
    assert hit.pools[0]["input_tok_s_per_chip"] > base.pools[0]["input_tok_s_per_chip"]
    assert hit.pools[0]["cache_read_ms"] > 0 == base.pools[0]["cache_read_ms"]


def test_price_splits_three_ways():
    t = CHAT.model_copy(update={"prefix_cache_hit": 0.5})
    e = api.estimate("deepseek-v3", "h200-sxm", t)
    row = api.with_cost(e, api_rental(2.0))
    # Storage of a cached token: 35,136 B (fp8 MLA) held 24 h at $10/TB-month.
    tier = KV_TIERS["ssd"]
    assert row["usd_per_mtok_cached_input"] == pytest.approx(35_136 / 1e12 * 10 / 720 * 24 * 1e6)
    assert tier.retention_h == 24
    # Chip-hours are paid in full by the uncached input and the output tokens.
    per_s = 2.0 / 3600
    paid = (row["usd_per_mtok_input"] * e.input_tok_s_per_chip * 0.5 + row["usd_per_mtok_output"] * e.output_tok_s_per_chip) / 1e6
    assert paid == pytest.approx(per_s, rel=1e-9)


def test_fleet_for_a_daily_volume():
    e = api.estimate("llama-3.1-70b", "h100-sxm", CHAT, mode="disaggregated")
    row = api.with_cost(e, api_rental(2.0), output_tokens_per_day=86_400 * e.output_tok_s_per_chip * 100)
    assert sum(row["fleet_chips"].values()) == pytest.approx(100)
    assert row["usd_per_day"] == pytest.approx(100 * 2.0 * 24)


def test_mla_decode_attention_runs_fp8_on_fp8_chips_only():
    from tokenfab.mapping.search import attention_precision_for
    m, llama = api.resolve_model("deepseek-v3"), api.resolve_model("llama-3.1-70b")
    h20, a100 = api.resolve_chip("h20"), api.resolve_chip("a100-sxm-80g")
    assert attention_precision_for(m, h20, "fp8", "decode", None) == "fp8"
    assert attention_precision_for(m, h20, "fp8", "prefill", None) == "bf16"
    assert attention_precision_for(m, h20, "bf16", "decode", None) == "bf16"
    assert attention_precision_for(llama, h20, "fp8", "decode", None) == "bf16"
    assert attention_precision_for(m, a100, "fp8", "decode", None) == "bf16"  # no fp8 math
    fp8 = api.estimate(m, "h20", CHAT, mode="aggregated", num_chips=16, tp=1, ep=16, batch=64, precision="fp8")
    bf16 = api.estimate(m, "h20", CHAT, mode="aggregated", num_chips=16, tp=1, ep=16, batch=64, precision="fp8",
                        attention_precision="bf16")
    assert fp8.time_breakdown_ms["decode"]["attention"] < bf16.time_breakdown_ms["decode"]["attention"]


def test_wide_ep_reaches_past_one_node_for_moe_decode():
    # DeepSeek's own pools run no pipeline (decode EP144, prefill EP32); pinned so, the search goes
    # past one 8-GPU node in both. (Left free, decode takes PP2 x EP8 at this TPOT limit's edge,
    # ~9% more tokens per chip than PP1 x EP16: a larger batch in the memory half the layers leave.)
    e = api.estimate("deepseek-v3", "h800-sxm", Traffic(input_len=4384, output_len=1211, prefix_cache_hit=0.563,
                                                         slo_tpot_ms=47.6), mode="disaggregated", pp=1)
    assert e.pools[1]["ep"] > 8 and e.pools[0]["ep"] > 8


@pytest.mark.parametrize("args, words", [
    (["--prefix-hit", "1.0"], "prefix"),
    (["--ep", "999"], "experts"),
    (["--mode", "sideways"], "mode"),
    (["--prefill-chip", "rtx-4090", "--max-chips", "2"], "prefill pool"),
])
def test_bad_deployment_input_is_one_line_exit_2(args, words):
    r = runner.invoke(app, ["estimate", "-m", "deepseek-v3", "-c", "h200-sxm", *args])
    assert r.exit_code == 2, r.output
    assert words in r.output.lower()
    assert "Traceback" not in r.output


def test_cli_json_carries_mode_pools_and_three_prices():
    r = runner.invoke(app, ["estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--mode", "disaggregated", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["mode"] == "disaggregated" and len(out["pools"]) == 2
    assert {"usd_per_mtok_input", "usd_per_mtok_cached_input", "usd_per_mtok_output"} <= out.keys()


def test_compare_ranks_chip_pairs_by_output_cost():
    r = runner.invoke(app, ["compare", "--models", "llama-3.1-8b", "--chips", "h100-sxm,h20", "--pairs", "--json"])
    assert r.exit_code == 0, r.output
    rows = [x for x in json.loads(r.stdout) if x.get("fits", True)]
    assert {x["chip"] for x in rows} == {"h100-sxm", "h20", "h100-sxm+h20", "h20+h100-sxm"}
    costs = [x["usd_per_mtok_output"] for x in rows]
    assert costs == sorted(costs)


def test_af_step_is_the_slowest_side_times_the_micro_batches():
    from tokenfab.mapping import af
    from tokenfab.perf.efficiency import efficiency_for
    m, c = api.resolve_model("deepseek-v3"), api.resolve_chip("h800-sxm")
    eff = efficiency_for(c)
    r = af.af_decode(m, c, c, CHAT, eff, eff, precisions=("fp8",), batches=(96,), latency_us=eff.scaleout_latency_us)
    a = r.arrays
    slowest = np.maximum(np.maximum(a["attention_ms"], a["experts_ms"]), a["alltoall_ms"])
    assert np.allclose(a["decode_step_ms"], slowest + eff.step_overhead_ms)
    # The all-to-all of one point worked by hand: 16 attention and 16 expert chips, 32 sequences a
    # micro-batch, 8 experts a token, 7,168 wide, fp8 out and bf16 back: 32 × 8 × 7168 × 3 B = 5.5 MB
    # each way per chip per layer over 50 GB/s × the link fraction, plus two latencies, × 58 layers.
    i = int(np.flatnonzero((a["attention_chips"] == 16) & (a["expert_chips"] == 16))[0])
    per_layer = 2 * eff.scaleout_latency_us * 1e-6 + 32 * 8 * 7168 * 3.0 / (c.scaleout_gb_s * 1e9 * eff.comm_bw_frac)
    assert a["alltoall_ms"][i] == pytest.approx(af.MICRO_BATCHES * 58 * per_layer * 1e3)
    # Output tokens per chip of either side.
    assert a["output_tok_s_per_chip"][i] == pytest.approx(16 * 96 / (a["decode_step_ms"][i] / 1e3) / 32)


def test_af_pools_price_each_side_on_its_own_chip():
    e = api.estimate("deepseek-v3", "h20", CHAT, ffn_chip="b200")
    assert e.mode == "af-disaggregated"
    assert [p["role"] for p in e.pools] == ["prefill", "attention", "ffn"]
    assert [p["chip"] for p in e.pools] == ["h20", "h20", "b200"]
    assert sum(p["chip_share"] for p in e.pools) == pytest.approx(1.0)
    from tokenfab.cost import tco
    row = api.with_cost(e)
    hours = {cid: tco.chip_hour_cost_for(api.resolve_chip(cid)).total_usd_per_hour for cid in ("h20", "b200")}
    assert row["usd_per_chip_hour"] == pytest.approx(sum(p["chip_share"] * hours[p["chip"]] for p in e.pools))


def test_af_needs_a_moe_model():
    r = runner.invoke(app, ["estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--mode", "af-disaggregated"])
    assert r.exit_code == 2 and "experts" in r.output


def test_prefill_pool_keeps_each_ops_unit_codes_aligned_with_its_context_parallel_points():
    # A VLM prompt of 30 images (~9.7K tokens) outgrows one forward's token budget, so the prefill pool
    # also searches context-parallel splits and joins their points. Ops with vector work (the ViT's)
    # carry per-point unit codes, which must be joined with the seconds (they were not: the
    # disaggregated estimate failed with a numpy shape mismatch).
    traffic = Traffic(input_len=2048, output_len=512, images=30)
    pool = modes.prefill_pool(api.resolve_model("qwen2.5-vl-7b"), api.resolve_chip("h100-sxm"),
                              *_pool_args(traffic))
    for t in pool.extras["prefill_times"]:
        assert np.shape(t.units) in ((), np.shape(t.seconds)), t.name
    est = api.estimate("qwen2.5-vl-7b", "h100-sxm", traffic, mode="disaggregated")
    assert est.mode == "disaggregated" and np.isfinite(est.output_tok_s_per_chip)


def _pool_args(traffic):
    from tokenfab.mapping.search import SearchSpace
    from tokenfab.perf.efficiency import efficiency_for
    from tokenfab.specs import SystemSpec
    from tokenfab.specs.cache import KV_TIERS as tiers

    chip = api.resolve_chip("h100-sxm")
    return (SystemSpec.for_chip(chip), efficiency_for(chip), traffic, SearchSpace(), 8, tiers["ssd"], 50.0)
