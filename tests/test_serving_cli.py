"""`tokenfab simulate` and `tokenfab plan` through typer's runner."""

import json

import pytest
import typer
from typer.testing import CliRunner

from tokenfab.cli import serving

runner = CliRunner()


@pytest.fixture(scope="module")
def app():
    # A fresh app with only these commands, whether or not the main app lists "serving" yet.
    a = typer.Typer()
    serving.register(a)
    return a


def invoke(app, *args):
    return runner.invoke(app, list(args))


def test_simulate_json_has_the_documented_keys(app):
    r = invoke(app, "simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "chat", "--rate", "5",
               "--requests", "400", "--seed", "1", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p99", "e2e_ms_p99", "throughput_tok_s", "goodput_rps",
            "itl_ms_p99", "queue_ms_p99", "kv_util_max", "batch_mean", "preemptions"} <= out.keys()
    assert out["requests"] == 400 and out["ttft_ms_p50"] <= out["ttft_ms_p99"] <= out["e2e_ms_p99"]
    # By default the deployment is the one `tokenfab estimate` chooses for the mean request.
    assert out["config"]["mode"] == out["config"]["estimate"]["mode"] and out["slo_ttft_ms"] == 2000  # profile's SLO
    again = json.loads(invoke(app, "simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "5",
                              "--requests", "400", "--seed", "1", "--json").stdout)
    assert again["ttft_ms_p99"] == out["ttft_ms_p99"]


def test_simulate_trace_disaggregated_with_reports(app, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n" +
                     "".join(f"{i * 0.05:.3f},{200 + 10 * i},{20 + i % 7}\n" for i in range(200)))
    html, chrome = tmp_path / "r.html", tmp_path / "t.json"
    r = invoke(app, "simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", str(trace), "--disagg", "1:2",
               "--replicas", "2", "--html", str(html), "--chrome-trace", str(chrome), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["kv_transfers"] == 200 and out["engines"] == 6 and out["config"]["disagg"] == [1, 2]
    assert "plotly" in html.read_text()[:200_000].lower()
    events = json.loads(chrome.read_text())["traceEvents"]
    assert any(e["ph"] == "X" for e in events)


def test_simulate_prints_tables(app):
    r = invoke(app, "simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "3", "--requests", "200")
    assert r.exit_code == 0, r.output
    assert "TTFT" in r.output and "goodput" in r.output


@pytest.mark.parametrize("extra, message", [
    (("--traffic", "chat"), "--rate is required"),
    (("--rate", "1", "--disagg", "two"), "--disagg expects P:D"),
    (("--rate", "1", "--traffic", "nope"), "unknown traffic profile"),
    (("--rate", "1", "--router", "random"), "unknown router"),
    (("--rate", "1", "--mode", "aggregated", "--disagg", "1:2"), "drop --mode aggregated"),
    (("--rate", "1", "--mode", "aggregated", "--prefill-chip", "h200-sxm"), "need separate pools"),
    (("--rate", "1", "--mode", "sideways"), "is not one of auto, aggregated, disaggregated"),
])
def test_simulate_user_errors_exit_2(app, extra, message):
    r = invoke(app, "simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", *extra)
    assert r.exit_code == 2 and message in r.output


def test_simulate_modes_and_pools(app):
    base = ("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "4", "--requests", "300", "--json")
    agg = json.loads(invoke(app, *base, "--mode", "aggregated").stdout)
    assert agg["config"]["mode"] == "aggregated" and [p["role"] for p in agg["config"]["pools"]] == ["aggregated"]
    r = invoke(app, *base, "--mode", "disaggregated", "--decode-chip", "h200-sxm")
    assert r.exit_code == 0, r.output
    dis = json.loads(r.stdout)["config"]
    pre, dec = dis["pools"]
    assert (pre["role"], pre["chip"], dec["role"], dec["chip"]) == ("prefill", "h100-sxm", "decode", "h200-sxm")
    # The unit is the estimate's balanced instances; its chips are the pools' chips.
    assert dis["disagg"] == [pre["instances"], dec["instances"]]
    assert json.loads(r.stdout)["chips"] == pre["chips"] + dec["chips"]
    # --disagg overrides the instance counts (and implies separate pools under auto).
    forced = json.loads(invoke(app, *base, "--disagg", "1:3").stdout)["config"]
    assert forced["mode"] == "disaggregated" and [p["instances"] for p in forced["pools"]] == [1, 3]


def test_malformed_trace_is_one_line_with_its_line_number(app, tmp_path):
    trace = tmp_path / "bad.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n0,10,5\n0.5,ten,5\n")
    r = invoke(app, "simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", str(trace))
    assert r.exit_code == 2
    assert "bad.csv:3: input_tokens 'ten' is not a number" in r.output
    assert len([ln for ln in r.output.splitlines() if ln.strip()]) == 1


def test_plan_json(app):
    r = invoke(app, "plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "code", "--chips", "1",
               "--no-disagg", "--requests", "300", "--tokens-per-day", "1e9", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["feasible"] and out["best"]["max_rate_rps"] > 0 and out["num_chips"] >= 1
    assert {"usd_per_day", "usd_per_mtok", "cost_basis"} <= out.keys()
    # The fleet for 1e9 tokens/day, worked as tests/test_serving_plan.py's engine test (slow tier) does.
    best = out["best"]
    assert best["rate_per_chip_rps"] == max(c["rate_per_chip_rps"] for c in out["candidates"] if c["feasible"])
    rps = 1e9 / 86400 / (out["mean_input_tokens"] + out["mean_output_tokens"])
    assert out["required_rps"] == pytest.approx(rps)
    assert out["num_chips"] == out["units"] * best["chips_per_unit"] and out["units"] * best["max_rate_rps"] >= rps
    assert (out["units"] - 1) * best["max_rate_rps"] < rps  # the fewest units that carry the volume
    if out["usd_per_chip_hour"] is not None:
        assert out["usd_per_day"] == pytest.approx(out["num_chips"] * out["usd_per_chip_hour"] * 24)
        assert out["usd_per_mtok"] == pytest.approx(out["usd_per_day"] / 1e3)


def test_plan_reports_mode_pools_and_the_estimates_choice(app):
    r = invoke(app, "plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "code", "--mode", "disaggregated",
               "--disagg", "1:2", "--requests", "300", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["mode"] == "disaggregated" and [c["disagg"] for c in out["candidates"]] == [[1, 2]]
    pre, dec = out["pools"]
    assert (pre["role"], pre["instances"], dec["role"], dec["instances"]) == ("prefill", 1, "decode", 2)
    assert out["best"]["chips_per_unit"] == pre["chips"] + dec["chips"]
    assert out["estimate"]["mode"] == "disaggregated" and out["estimate"]["capacity_rps"] > 0


@pytest.mark.parametrize("extra, message", [
    (("--no-disagg", "--mode", "disaggregated"), "--no-disagg means one pool"),
    (("--mode", "aggregated", "--disagg", "1:1"), "drop --mode aggregated"),
    (("--disagg", "1-1"), "--disagg expects P:D"),
])
def test_plan_conflicting_modes_exit_2(app, extra, message):
    r = invoke(app, "plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", "1", *extra)
    assert r.exit_code == 2 and message in r.output
    assert len([ln for ln in r.output.splitlines() if ln.strip()]) == 1


def test_plan_infeasible_slo_says_so(app):
    r = invoke(app, "plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "chat", "--chips", "1",
               "--no-disagg", "--requests", "200", "--slo-ttft-ms", "1")
    assert r.exit_code == 0, r.output
    assert "no number of replicas can meet it" in " ".join(r.output.split())


def test_prefill_first_scheduler_trades_ttft_for_tpot(app):
    """`--prefill-first` (SGLang's scheduler): arriving prompts are prefilled in steps of their own,
    so they wait less for their first token and the running decodes stall for them; the default mixes
    prompt chunks into decode steps (vLLM). Same workload, same deployment, 20 requests/s."""
    args = ("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "20", "--requests", "300",
            "--mode", "aggregated", "--seed", "1", "--json")
    mixed = json.loads(invoke(app, *args).stdout)
    first = json.loads(invoke(app, *args, "--prefill-first").stdout)
    assert (mixed["config"]["scheduler"], first["config"]["scheduler"]) == ("mixed", "prefill-first")
    assert first["config"]["mapping"] == mixed["config"]["mapping"]
    assert first["ttft_ms_mean"] < mixed["ttft_ms_mean"]
    assert first["tpot_ms_mean"] > mixed["tpot_ms_mean"]


def test_reading_new_requests_every_30_steps_trades_ttft_for_tpot(app):
    """`--poll-steps 30` (SGLang's `--scheduler-recv-interval 30`): a busy scheduler reads arrivals
    every 30 decode steps, so they wait longer for their first token and are prefilled in batches
    that interrupt the decodes less often. Same workload and deployment as above."""
    args = ("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "20", "--requests", "300",
            "--mode", "aggregated", "--seed", "1", "--prefill-first", "--json")
    every = json.loads(invoke(app, *args).stdout)
    polled = json.loads(invoke(app, *args, "--poll-steps", "30").stdout)
    assert (every["config"]["poll_steps"], polled["config"]["poll_steps"]) == (1, 30)
    assert polled["ttft_ms_mean"] > every["ttft_ms_mean"]
    assert polled["tpot_ms_mean"] < every["tpot_ms_mean"]


def test_batch_waiting_holds_prompts_back_for_their_first_token(app):
    """`--batch-wait-steps 40` (TensorRT-LLM's `batch_wait_timeout_iters: 40`): while sequences decode,
    new prompts wait up to 40 decode steps to be prefilled together, so their first token comes later;
    a token threshold releases them sooner. Same workload and deployment as above."""
    args = ("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "20", "--requests", "300",
            "--mode", "aggregated", "--seed", "1", "--json")
    plain = json.loads(invoke(app, *args).stdout)
    held = json.loads(invoke(app, *args, "--batch-wait-steps", "40").stdout)
    early = json.loads(invoke(app, *args, "--batch-wait-steps", "40", "--batch-wait-tokens", "3000").stdout)
    assert "batch_wait_steps" not in plain["config"]
    assert (held["config"]["batch_wait_steps"], early["config"]["batch_wait_tokens"]) == (40, 3000)
    assert held["ttft_ms_mean"] > early["ttft_ms_mean"] > plain["ttft_ms_mean"]
    bad = invoke(app, *args, "--batch-wait-tokens", "3000")
    assert bad.exit_code == 2 and "needs --batch-wait-steps" in bad.output and "Traceback" not in bad.output
