"""validate predicts each row at the operating point it states (concurrency, request rate,
layout) and reports what it skipped and why (issue 14, parts 1 and 5)."""

import json

import pytest
from typer.testing import CliRunner

from tokenfab.cli import app
from tokenfab.specs.measurement import COLUMNS, parse_measurements
from tokenfab.validate import summarize, validate_rows
from tokenfab.validate.datasets import read_measurements
from tokenfab.validate.operating_point import client_grid, operating_point

HEADER = ",".join(COLUMNS)


def _line(rid, **kw) -> str:
    cells = dict(id=rid, source="a serving benchmark", hardware="h100-sxm", num_chips="1", model="llama-3.1-8b",
                 scenario="throughput", input_len="1000", output_len="1000", metric="output_tok_s", per="system",
                 value="1000", usable="1", framework="vllm")
    cells.update(kw)
    return ",".join(f'"{cells.get(c, "")}"' for c in COLUMNS)


def _rows(*lines):
    return parse_measurements("\n".join((HEADER,) + lines) + "\n", "test.csv")


def _results(*lines):
    return {r.id: r for r in validate_rows(_rows(*lines))}


# --- what a row states ------------------------------------------------------------------------

def test_the_stated_operating_point_is_read_from_columns_and_notes():
    a, b, c, d = _rows(_line("A", batch=64, tp=2, num_chips=2), _line("B", notes="bench_serving --max-concurrency 16"),
                       _line("C", scenario="server", notes="client with --request-rate 4.5, 300 prompts"),
                       _line("D"))
    assert operating_point(a).concurrency == 64 and operating_point(a).layout == (("tp", 2),)
    assert operating_point(b).concurrency == 16
    assert operating_point(c).qps == 4.5 and operating_point(c).concurrency is None
    assert operating_point(d).describe() == "nothing"


def test_the_decode_table_grid_covers_every_small_batch_and_the_concurrency():
    g = client_grid(256)
    assert g[:16] == tuple(range(1, 17)) and g[-1] == 256 and len(g) < 40
    assert client_grid(3) == (1, 2, 3)


# --- closed loop at a stated concurrency --------------------------------------------------------

def test_a_stated_concurrency_is_predicted_in_a_closed_loop_not_at_maximum_throughput():
    r = _results(_line("MAX"), _line("C1", batch=1), _line("C64", batch=64))
    # One client cannot use the batch the maximum-throughput search picks.
    assert r["C1"].predicted < 0.05 * r["MAX"].predicted
    assert r["C1"].predicted < r["C64"].predicted < r["MAX"].predicted
    assert "stated: concurrency 64" in r["C64"].detail and "searched:" in r["C64"].detail
    assert "closed loop" in r["C64"].detail


def test_throughput_ttft_and_tpot_at_one_concurrency_obey_the_response_time_law():
    # 64 clients, 1000 output tokens: output tok/s = 64 x 1000 / (TTFT + 999 TPOT) exactly.
    r = _results(_line("X", batch=64), _line("T", batch=64, metric="ttft_ms_mean"),
                 _line("P", batch=64, metric="tpot_ms_mean"), _line("E", batch=64, metric="e2e_latency_ms_mean"))
    ttft, tpot = r["T"].predicted / 1e3, r["P"].predicted / 1e3
    assert r["X"].predicted == pytest.approx(64 * 1000 / (ttft + 999 * tpot), rel=1e-6)
    assert r["E"].predicted == pytest.approx(r["T"].predicted + 999 * r["P"].predicted, rel=1e-6)


def test_a_stated_layout_is_kept_and_only_the_rest_is_searched():
    r = _results(_line("L", model="llama-3.1-70b", num_chips=8, tp=8, batch=32))["L"]
    assert "tp8" in r.detail and "stated: concurrency 32, tp8" in r.detail
    assert "searched: pp1, dp1" in r.detail  # tp stated, precision searched too
    assert r.predicted > 0


def test_per_chip_rows_divide_the_system_throughput():
    r = _results(_line("S", num_chips=2, tp=2, batch=32), _line("C", num_chips=2, tp=2, batch=32, per="chip"))
    assert r["C"].predicted == pytest.approx(r["S"].predicted / 2)


# --- open loop, server rows outside MLPerf ---------------------------------------------------

def test_a_stated_request_rate_below_capacity_is_the_throughput():
    # 4 requests/s of 1000 output tokens on a chip that serves more: 4000 tokens/s.
    r = _results(_line("R", scenario="server", notes="request rate 4"),
                 _line("T", scenario="server", notes="request rate 4", metric="ttft_ms_mean"))
    assert r["R"].predicted == pytest.approx(4000.0)
    assert "open loop" in r["R"].detail and r["T"].predicted > 0


def test_a_server_row_outside_mlperf_gets_no_mlperf_lengths_or_limits():
    # llama-2-70b is an MLPerf model; a vLLM blog's server row must not take MLPerf's 222-token
    # prompts nor its 2 s / 200 ms limits.
    r = _results(_line("N", scenario="server", model="llama-2-70b", num_chips=8, input_len="", output_len=""),
                 _line("M", scenario="server", model="llama-2-70b", num_chips=8))
    assert "input length unknown" in r["N"].skipped
    assert r["M"].skipped is None and "misses" not in r["M"].detail


def test_a_decode_row_asking_for_tpot_gets_milliseconds():
    r = _results(_line("D", scenario="decode", batch=32, metric="tpot_ms_mean", input_len=2000, output_len=""),
                 _line("T", scenario="decode", batch=32, input_len=2000, output_len=""))
    step_ms = float(r["D"].detail.split("step ")[1].split(" ms")[0])
    assert r["D"].predicted == pytest.approx(step_ms, abs=0.05)
    # ... and the tokens/s row at the same batch is 32 tokens per step.
    assert r["T"].predicted == pytest.approx(32 / (r["D"].predicted / 1e3), rel=0.01)
    assert "stated batch 32" in r["D"].detail


# --- the harness ------------------------------------------------------------------------------

def _file(tmp_path, *lines):
    p = tmp_path / "m.csv"
    p.write_text("\n".join((HEADER,) + lines) + "\n")
    return p


def test_an_unreadable_row_is_skipped_with_its_reason(tmp_path):
    p = _file(tmp_path, _line("G", batch=8), _line("BAD", value="fast"), _line("G", batch=4))
    rows, bad = read_measurements(p)
    assert [r.id for r in rows] == ["G"]
    assert [b.id for b in bad] == ["BAD", "G"]
    assert "line 3" in bad[0].reason and "value" in bad[0].reason
    assert "duplicate id G" in bad[1].reason
    results = validate_rows(rows, unreadable=bad)
    s = summarize(results)["summary"]
    assert s["skip_reasons"] == {"unreadable row": 2}
    assert s["coverage"] == pytest.approx(1 / 3)


def test_strict_fails_on_an_unreadable_row_with_one_line(tmp_path):
    p = _file(tmp_path, _line("G", batch=8), _line("BAD", value="fast"))
    res = CliRunner().invoke(app, ["validate", "--data", str(p), "--strict", "--json"])
    assert res.exit_code == 2
    assert "line 3 (id BAD)" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_the_summary_counts_skip_reasons_and_groups_by_framework(tmp_path):
    p = _file(tmp_path, _line("G", batch=8), _line("Q", hardware="no-such-chip"),
              _line("S", framework="sglang", batch=8), _line("BAD", value="fast"))
    res = CliRunner().invoke(app, ["validate", "--data", str(p), "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)["summary"]
    assert s["skip_reasons"] == {"chip no-such-chip is not in the catalog": 1, "unreadable row": 1}
    # vllm: G, Q and the unreadable row (its framework cell is read); 1 of them predicted
    assert s["by_framework"]["vllm"]["n"] == 3 and s["by_framework"]["vllm"]["n_predicted"] == 1
    assert s["by_framework"]["sglang"]["n_predicted"] == 1
    assert s["median_error"] is not None
    table = CliRunner().invoke(app, ["validate", "--data", str(p), "--show", "none"])
    assert table.exit_code == 0 and "Skipped rows by reason" in table.output and "framework sglang" in table.output


def test_an_unknown_show_value_is_one_line_and_exit_2():
    res = CliRunner().invoke(app, ["validate", "--show", "everything"])
    assert res.exit_code == 2 and "--show" in res.output


def test_clients_are_staggered_even_with_fixed_lengths():
    # Measured fixed-length sweeps do not show the simulator's synchronized groups (see
    # operating_point.SYNCHRONIZED_CLIENTS): a prompt is batched with the few that arrive with it.
    r = _results(_line("F", batch=64, metric="ttft_ms_mean"))["F"]
    assert "staggered" in r.detail


def test_a_disaggregated_row_is_predicted_on_separate_pools():
    r = _results(_line("D", model="deepseek-v3", hardware="h800-sxm", num_chips=32, input_len=4000, output_len=1000,
                       per="chip", notes="disaggregated prefill and decode"))["D"]
    assert r.skipped is None and "disaggregated pools" in r.detail and "prefill:decode chips" in r.detail


def test_the_closed_loop_prediction_agrees_with_the_simulator_on_the_engines_step_times():
    # The same engine twice: validate's closed-loop model on the search's step times, and the
    # discrete-event simulator run closed-loop on the engine's step-time tables (64 clients,
    # Llama-3.1-8B FP8 on one H100, 1000/1000 tokens on average, uniform 900-1100).
    import numpy as np

    from tokenfab import catalog
    from tokenfab.perf.framework import override_profiles, profile_for
    from tokenfab.serving.closed_loop import simulate_closed_loop, steady_metrics
    from tokenfab.serving.simulator import Deployment, EngineConfig
    from tokenfab.serving.steptime import Mapping, engine_step_time

    kw = dict(batch=64, weight_precision="fp8", tp=1, framework="trt-llm")
    # The engine alone: trtllm-serve's host path (outside the engine's steps) is not the simulator's.
    no_host = profile_for("trt-llm").model_copy(update={"request_overhead_ms": 0.0, "input_us_per_token": 0.0})
    with override_profiles({"trt-llm": no_host}):
        r = _results(_line("X", **kw), _line("T", metric="ttft_ms_mean", **kw), _line("P", metric="tpot_ms_mean", **kw))
    st = engine_step_time(catalog.load_model("llama-3.1-8b"), catalog.load_chip("h100-sxm"),
                          Mapping(num_chips=1, batch=64, weight_precision="fp8", kv_precision="fp8"),
                          max_ctx=2016, token_budget=8192)
    n = 4000
    rng = np.random.default_rng(0)
    lengths = rng.integers(900, 1101, (2, n))
    sim = steady_metrics(simulate_closed_loop(Deployment(steptime=st, engine=EngineConfig(max_num_seqs=64)), 64,
                                              lengths[0], lengths[1]), 64, n // 5)
    assert r["X"].predicted == pytest.approx(sim["output_tok_s"], rel=0.15)
    assert r["T"].predicted == pytest.approx(sim["ttft_mean_s"] * 1e3, rel=0.15)
    assert r["P"].predicted == pytest.approx(sim["tpot_mean_s"] * 1e3, rel=0.15)


def test_percentiles_at_a_stated_concurrency():
    # TPOT spreads little over requests (each averages ~1000 steps): p50 <= p90 <= p99, all near
    # the mean; the TTFT median is taken as the mean; TTFT tails are not modelled.
    r = _results(*(_line(m, batch=64, metric=m)
                   for m in ("tpot_ms_mean", "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p99", "ttft_ms_mean", "ttft_ms_p50",
                             "ttft_ms_p99")))
    mean, p50, p90, p99 = (r[k].predicted for k in ("tpot_ms_mean", "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p99"))
    assert p50 < p90 < p99 < 1.2 * mean and p50 == pytest.approx(mean, rel=0.05)
    assert r["ttft_ms_p50"].predicted == pytest.approx(r["ttft_ms_mean"].predicted)
    assert "tails are not modelled" in r["ttft_ms_p99"].skipped


# --- the harness's opening wave and the scheduler's reads ---------------------------------------

def test_requests_per_client_opening_wave_and_scheduler_flags_are_read_from_the_notes():
    from tokenfab.validate.operating_point import (TOKEN_BUDGET, opening_wave_share, prefill_chunk_tokens,
                                                   requests_per_client, scheduler_poll_steps)
    inferencex, cookbook, plain, pinned, sync = _rows(
        _line("A", framework="sglang", batch=64, notes="harness: closed loop, --num-prompts = 10*conc; server "
              "--scheduler-recv-interval 30 --chunked-prefill-size 32768"),
        _line("B", framework="sglang", batch=100, notes="'Successful requests: 1000'"),
        _line("C", batch=8, notes="bench serve at concurrency 8"),
        _line("D", batch=4, notes="vllm bench serve --num-prompts 200 --max-concurrency 4 --scheduler-recv-interval 9"),
        _line("E", framework="sglang", batch=8, notes="bench_serving --random-range-ratio 1, 80 prompts"))
    assert requests_per_client(inferencex, 64) == 10 and opening_wave_share(inferencex, 64) == pytest.approx(0.1)
    assert requests_per_client(cookbook, 100) == 10
    assert requests_per_client(plain, 8) is None and opening_wave_share(plain, 8) == 0.0  # steady state only
    assert requests_per_client(pinned, 4) == 50
    assert opening_wave_share(sync, 8) == 0.0  # synchronized groups: every request is in a wave already
    assert (scheduler_poll_steps(inferencex), prefill_chunk_tokens(inferencex)) == (30, 32768)
    # SGLang's flags on a vLLM row mean nothing: vLLM reads every step with its own token budget.
    assert (scheduler_poll_steps(pinned), prefill_chunk_tokens(pinned)) == (1, TOKEN_BUDGET)
    vllm, trt = _rows(_line("F", notes="server: --max-num-batched-tokens 16384 --chunked-prefill-size 4096"),
                      _line("G", framework="trt-llm", notes="extra config: max_num_tokens: 2048"))
    assert (prefill_chunk_tokens(vllm), prefill_chunk_tokens(trt)) == (16384, 2048)


def test_an_llmperf_run_that_states_no_request_count_completes_its_default_ten():
    from tokenfab.validate.operating_point import LLMPERF_DEFAULT_REQUESTS, opening_wave_share, requests_per_client
    bare, counted = _rows(_line("A", framework="trt-llm", batch=8, notes="Harness: LLMPerf (token_benchmark_ray)"),
                          _line("B", framework="trt-llm", batch=8, notes="LLMPerf, --num-prompts 80"))
    assert LLMPERF_DEFAULT_REQUESTS == 10
    # 8 clients start at once: 8 of the 10 requests are the opening wave.
    assert requests_per_client(bare, 8) == pytest.approx(1.25) and opening_wave_share(bare, 8) == pytest.approx(0.8)
    assert requests_per_client(bare, 20) == 1.0  # more clients than requests: every request is in the wave
    assert requests_per_client(counted, 8) == 10  # a stated count wins


def test_reading_new_requests_every_30_steps_lengthens_the_predicted_ttft_only():
    base = dict(framework="sglang", batch=32, hardware="h100-sxm", num_chips=1, input_len=1000, output_len=1000,
                metric="ttft_ms_mean", per="system")
    plain, polled = _results(_line("A", **base), _line("B", notes="--scheduler-recv-interval 30", **base)).values()
    assert polled.predicted > plain.predicted * 1.2
    tp_plain, tp_polled = _results(_line("A", **dict(base, metric="tpot_ms_mean")),
                                   _line("B", notes="--scheduler-recv-interval 30",
                                         **dict(base, metric="tpot_ms_mean"))).values()
    assert tp_polled.predicted <= tp_plain.predicted * 1.001


def test_tensorrt_llm_batch_waiting_is_read_from_its_config_and_holds_prompts_back():
    """TensorRT-LLM's `batch_wait_timeout_iters: 40` / `batch_wait_max_tokens_ratio: 0.8` with
    `max_num_tokens: 8192` hold new prompts for up to 40 iterations or 6,553.6 tokens; on another
    runtime the same words mean nothing."""
    from tokenfab.validate.operating_point import batch_wait
    base = dict(framework="trt-llm", batch=64, hardware="b200", num_chips=8, tp=8, model="deepseek-r1",
                weight_precision="fp8", activation_precision="fp8", kv_precision="fp8", input_len=922,
                output_len=922, metric="ttft_ms_mean", per="system")
    flags = "max_num_tokens: 8192; batch_wait_timeout_iters: 40, batch_wait_max_tokens_ratio: 0.8"
    held, sgl, plain, ratio_only = _rows(_line("A", notes=flags, **base),
                                         _line("B", notes=flags, **dict(base, framework="sglang")),
                                         _line("C", **base), _line("D", notes="batch_wait_max_tokens_ratio: 0.8", **base))
    assert batch_wait(held) == (40.0, pytest.approx(0.8 * 8192))
    # Without a timeout TensorRT-LLM's count is at its limit (0) at once: nothing is held.
    assert batch_wait(ratio_only) == (0.0, float("inf"))
    assert batch_wait(sgl) == (0.0, float("inf")) and batch_wait(plain) == (0.0, float("inf"))
    r_plain, r_held = _results(_line("C", **base), _line("A", notes=flags, **base)).values()
    assert r_held.predicted > r_plain.predicted + 200  # ~25 decode steps of ~25 ms on average


def test_a_stated_token_budget_prices_offline_and_caps_server_rows():
    """A row whose config states the server's token budget (TensorRT-LLM's max_num_tokens) is priced
    with it: offline (the queue always full, every forward filled to the budget) at that budget; a
    server row's search over budgets stops at it (fewer tokens run when fewer wait). The MLPerf
    Llama-3.1-405B offline rows at TP2 x PP2 ran 1,536 where the engine's default is 8,192: smaller
    chunks spread a long prompt over more rounds and the pipeline waits less."""
    from tokenfab.validate.operating_point import stated_chunk_tokens

    base = dict(framework="trt-llm", scenario="offline", model="llama-3.1-405b", hardware="b200", num_chips="4",
                tp="2", pp="2", dp="1", weight_precision="fp4", activation_precision="fp4", kv_precision="fp8",
                input_len="9400", output_len="650", metric="output_tok_s", value="800")
    plain, stated = _rows(_line("A", **base), _line("B", **base, notes="runtime max_num_tokens=1536"))
    assert (stated_chunk_tokens(plain), stated_chunk_tokens(stated)) == (None, 1536)
    res = _results(_line("A", **base), _line("B", **base, notes="runtime max_num_tokens=1536"))
    assert res["B"].predicted > 1.1 * res["A"].predicted  # the pipeline straggles less
    server = dict(base, scenario="server", model="llama-3.1-8b", hardware="h100-sxm", num_chips="1", tp="1", pp="1",
                  weight_precision="fp8", activation_precision="fp8", input_len="1000", output_len="300",
                  slo_ttft_ms="2000", slo_tpot_ms="100")
    free, capped = _results(_line("C", **server), _line("D", **server, notes="runtime max_num_tokens=1024")).values()
    assert "chunk 1024 tok" in capped.detail and "chunk 1024 tok" not in free.detail
