"""Every estimate names its binding constraint; what 10% more of each resource buys (issue 16, item 7)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tokenfab import api, explain
from tokenfab.cli import app
from tokenfab.specs import Traffic

CHAT = Traffic(input_len=2048, output_len=512, slo_ttft_ms=2000, slo_tpot_ms=50)
ONE_H100 = dict(num_chips=1, precision="bf16", mode="aggregated")


# ---- the batch cap, on grids worked by hand -------------------------------------------------------------------

def _grid(**cols):
    n = len(cols["batch"])
    base = {k: np.zeros(n, int) for k in ("num_chips", "tp", "pp", "dp", "ep", "prec")}
    return {**base, **{k: np.asarray(v, float if k != "batch" else int) for k, v in cols.items()}}


def test_next_batch_keeps_the_mapping():
    g = _grid(batch=[1, 2, 4, 2], tp=[1, 1, 1, 2], out=[1, 2, 3, 4])
    assert explain.next_batch(g, 0) == 1      # batch 2 at tp 1, not the tp 2 point
    assert explain.next_batch(g, 1) == 2
    assert explain.next_batch(g, 2) is None   # the largest batch tried at tp 1
    assert explain.next_batch(g, 3) is None


def test_a_larger_batch_that_does_not_fit_makes_memory_capacity_bind():
    # batch 2 -> 4 would serve 190 -> 300 tok/s/chip (+58%) but needs 3 GB more than the chip has.
    g = _grid(batch=[1, 2, 4], out=[100.0, 190.0, 300.0], free_gb=[5.0, 1.0, -3.0], tpot_ms=[10.0, 12.0, 15.0])
    cap, clause = explain.batch_cap(g, 1, "out", [explain.Limit("tpot slo", g["tpot_ms"], 50.0)])
    assert cap == "memory capacity"
    assert "+58%" in clause and "3.0 GB more" in clause and "1.0 GB free" in clause


def test_a_larger_batch_over_the_tpot_slo_makes_the_slo_bind():
    g = _grid(batch=[1, 2, 4], out=[100.0, 190.0, 300.0], free_gb=[5.0, 4.0, 2.0], tpot_ms=[10.0, 40.0, 55.0])
    cap, clause = explain.batch_cap(g, 1, "out", [explain.Limit("tpot slo", g["tpot_ms"], 50.0)])
    assert cap == "tpot slo" and "50 ms TPOT SLO" in clause and "55.0 ms" in clause


def test_a_batch_past_saturation_binds_nothing():
    # 190 -> 191 tok/s/chip is +0.5% < GAIN_MIN: the step's resources bind, not memory.
    g = _grid(batch=[1, 2, 4], out=[100.0, 190.0, 191.0], free_gb=[5.0, 1.0, -3.0], tpot_ms=[10.0, 12.0, 15.0])
    cap, _ = explain.batch_cap(g, 1, "out", [])
    assert cap is None


def test_mix_reports_shares_of_op_time():
    assert explain.mix(np.array([18.0, 71.0, 11.0])) == "71% HBM streaming, 18% compute, 11% collectives"


# ---- bindings of real estimates ------------------------------------------------------------------------------

def test_small_batch_decode_of_a_dense_model_is_hbm_bandwidth_bound():
    # Llama-3.1-8B, bf16, one H100, one sequence: every decode step reads all 8.03e9 × 2 B = 16.06 GB
    # of weights, ≥ 16.06e9 / 3.35e12 = 4.79 ms at the full 3.35 TB/s; the math is 2 × 8e9 FLOP,
    # 16 µs at 989 TFLOPS. Nothing but the HBM bandwidth can bind.
    e = api.estimate("llama-3.1-8b", "h100-sxm", CHAT, batch=1, **ONE_H100)
    assert e.binding == "hbm bandwidth"
    assert e.decode_step_ms >= 16.06e9 / 3.35e12 * 1e3
    assert "batch 1" in e.binding_detail and "HBM streaming" in e.binding_detail


def test_a_model_that_barely_fits_is_memory_capacity_bound():
    # Llama-3.1-70B in bf16 on 2 × H100: 141 GB of weights leave 70.6 GB per chip of the 80, and
    # after the reserve and activations under 2 GB for KV. One sequence of 2048 + 512 tokens holds
    # 80 layers × 8 KV heads × 128 × 2 (K, V) × 2 B × 2560 / 2 chips = 0.42 GB per chip.
    e = api.estimate("llama-3.1-70b", "h100-sxm", CHAT, num_chips=2, precision="bf16", mode="aggregated")
    assert e.binding == "memory capacity"
    per_seq_gb = 80 * 8 * 128 * 2 * 2 * 2560 / 2 / 1e9
    assert e.memory_gb_per_chip.kv_cache == pytest.approx(e.batch * per_seq_gb, rel=1e-6)
    assert e.memory_gb_per_chip.free < e.batch * per_seq_gb  # doubling the batch does not fit


def test_a_long_prefill_only_workload_is_compute_bound():
    # 16k-token prompts, one output token: prefill is ~2 × 8e9 × 16384 = 2.6e14 FLOP per prompt
    # plus attention, against 16 GB of weights read once per forward: ~100x past the H100's ridge.
    e = api.estimate("llama-3.1-8b", "h100-sxm", Traffic(input_len=16384, output_len=1), **ONE_H100)
    assert e.prefill_time_share > 0.9
    assert e.binding == "compute"


def test_an_aggregated_batch_capped_by_the_tpot_slo_names_it_and_loosening_it_helps():
    e = api.estimate("llama-3.1-70b", "h100-sxm", CHAT, mode="aggregated")
    assert e.binding == "tpot slo" and e.tpot_ms <= 50
    looser = api.estimate("llama-3.1-70b", "h100-sxm", CHAT.model_copy(update={"slo_tpot_ms": 100.0}),
                          mode="aggregated")
    assert looser.output_tok_s_per_chip > e.output_tok_s_per_chip


def test_a_missed_slo_binds():
    # No mapping can hold a 1 ms TPOT: the estimate is flagged and bound by that SLO.
    e = api.estimate("llama-3.1-8b", "h100-sxm", CHAT.model_copy(update={"slo_tpot_ms": 1.0}), mode="aggregated")
    assert not e.meets_slo and e.binding == "tpot slo" and "no mapping meets" in e.binding_detail


def test_a_disaggregated_estimate_names_the_decode_pool_and_describes_the_prefill_pool():
    e = api.estimate("llama-3.1-8b", "h100-sxm", CHAT, mode="disaggregated")
    assert e.binding in explain.BINDINGS
    assert e.binding_detail.startswith("decode pool:") and "prefill pool" in e.binding_detail


def test_an_attention_ffn_split_names_the_slowest_side_or_what_caps_its_batch():
    e = api.estimate("deepseek-v3", "h200-sxm", CHAT, mode="af-disaggregated")
    assert e.binding in explain.BINDINGS
    assert "all-to-all" in e.binding_detail and "expert side" in e.binding_detail


@settings(max_examples=12, deadline=None)
@given(isl=st.sampled_from([128, 1024, 4096]), osl=st.sampled_from([16, 256, 2048]),
       batch=st.sampled_from([1, 4, 16]))  # ≤ 16 × 6144 tokens × 131 kB of KV = 12.9 GB: always fits
def test_the_binding_resource_grown_10pct_helps_and_no_resource_helps_more_than_10pct(isl, osl, batch):
    # Mapping and batch fixed: every op time is max(work / rate, ...) and only gets shorter when a
    # rate grows, by at most the growth, so tok/s/chip rises by 0..10%; the binding resource's rate
    # rises it by more than nothing.
    traffic = Traffic(input_len=isl, output_len=osl)
    chip = api.resolve_chip("h100-sxm")
    base = api.estimate("llama-3.1-8b", chip, traffic, batch=batch, **ONE_H100)
    assert base.binding in ("hbm bandwidth", "compute")  # one chip, no SLO, batch fixed
    field = {"hbm bandwidth": "hbm_tb_s", "compute": "bf16_tflops"}[base.binding]
    gains = {}
    for f in ("hbm_tb_s", "bf16_tflops", "hbm_gb"):
        e = api.estimate("llama-3.1-8b", explain.grown(chip, f, 1.1), traffic, batch=batch, **ONE_H100)
        gains[f] = e.output_tok_s_per_chip / base.output_tok_s_per_chip - 1
    api.resolve_chip(chip)
    assert all(-1e-9 <= g <= 0.1 + 1e-9 for g in gains.values()), gains
    assert gains[field] > 0.005, (base.binding_detail, gains)


# ---- what 10% more buys ----------------------------------------------------------------------------------------

def test_more_hbm_bandwidth_cheapens_a_bandwidth_bound_decode_and_idle_resources_do_nothing():
    r = explain.resource_sensitivity("llama-3.1-8b", "h100-sxm", CHAT, batch=1, **ONE_H100)
    assert r["base"]["binding"] == "hbm bandwidth"
    rows = {row["resource"]: row for row in r["rows"]}
    # All decode time streams HBM: 10% more bandwidth cuts it by up to 1 - 1/1.1 = 9.1% (launch
    # and step overheads do not shrink), so output $/Mtok falls by 5..9.1%.
    assert -0.0910 < rows["HBM bandwidth"]["usd_per_mtok_output_change"] < -0.05
    assert r["rows"][0]["resource"] == "HBM bandwidth"  # sorted: the largest saving first
    # One chip, batch 1, bf16: links, capacity, fp8 math and SRAM (invisible to roofline) bind
    # nothing: no speed, and under 1% on $/Mtok. Links can only cost (a system priced by its NIC
    # and switch bandwidth), never save.
    for name in ("scale-up bandwidth", "scale-out bandwidth", "HBM capacity", "fp8 compute", "shared SRAM"):
        assert abs(rows[name]["output_tok_s_per_chip_change"]) < 1e-3, name
    for name in ("HBM capacity", "fp8 compute", "shared SRAM"):
        assert abs(rows[name]["usd_per_mtok_output_change"]) < 0.01, name
    for name in ("scale-up bandwidth", "scale-out bandwidth"):
        assert rows[name]["usd_per_mtok_output_change"] >= -1e-9, name
    assert api.resolve_chip("h100-sxm").hbm_tb_s == 3.35  # the chip as given is left as it was


def test_grown_changes_one_resource_only():
    chip = api.resolve_chip("h100-sxm")
    g = explain.grown(chip, "hbm_tb_s", 1.1)
    assert g.hbm_tb_s == pytest.approx(3.35 * 1.1)
    assert g.model_dump(exclude={"hbm_tb_s"}) == chip.model_dump(exclude={"hbm_tb_s"})
    s = explain.grown(chip, "sram", 2.0)
    assert explain.shared_sram_mb(s) == pytest.approx(2 * explain.shared_sram_mb(chip))
    assert s.price_usd == chip.price_usd


def test_present_resources_skip_what_the_chip_lacks():
    names = [label for label, _ in explain.present_resources(api.resolve_chip("h100-sxm"))]
    assert "fp4 compute" not in names and "int8 compute" not in names  # Hopper: no FP4; FP8 is its 8-bit path
    assert {"bf16 compute", "fp8 compute", "HBM bandwidth", "HBM capacity"} <= set(names)


# ---- the CLI ---------------------------------------------------------------------------------------------------

runner = CliRunner()


def test_estimate_json_and_text_name_the_binding():
    r = runner.invoke(app, ["estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["binding"] in explain.BINDINGS and out["binding_detail"]
    r = runner.invoke(app, ["estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm"])
    assert r.exit_code == 0 and "binding" in r.stdout


def test_chip_with_a_model_gives_the_resource_table_as_json():
    r = runner.invoke(app, ["chip", "h100-sxm", "-m", "llama-3.1-8b", "--osl", "128", "--json"])
    assert r.exit_code == 0, r.output
    w = json.loads(r.stdout)["workload"]
    assert w["fidelity"] == "roofline" and w["error"] is None and w["sram_sweep"] is None
    base, rows = w["resources"]["base"], w["resources"]["rows"]
    assert base["binding"] in explain.BINDINGS and base["usd_per_mtok_output"] > 0
    assert {row["resource"] for row in rows} >= {"bf16 compute", "fp8 compute", "HBM bandwidth", "HBM capacity",
                                                 "scale-up bandwidth", "scale-out bandwidth", "shared SRAM"}
    changes = [row["usd_per_mtok_output_change"] for row in rows]
    assert changes == sorted(changes)
    for row in rows:
        assert row["output_tok_s_per_chip"] == pytest.approx(
            base["output_tok_s_per_chip"] * (1 + row["output_tok_s_per_chip_change"]))


def test_chip_with_a_model_that_is_not_an_llm_is_a_one_line_error():
    r = runner.invoke(app, ["chip", "h100-sxm", "-m", "wan2.1-t2v-1.3b"])
    assert r.exit_code == 2 and "needs an LLM" in r.output and "Traceback" not in r.output
