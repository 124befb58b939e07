"""The serving stack's host path on the way to the first token: a framework profile's per-request
overhead and per-prompt-token cost, added to TTFT outside the engine's steps.

What the client times as TTFT is the engine's prefill (and the first decode step) plus the time the
request spends in the serving software around it: the API server's HTTP handling and chat template,
tokenizing the prompt, scheduler admission, a proxy in front of prefill/decode pools, streaming the
first token back. `FrameworkProfile.request_overhead_ms` and `input_us_per_token` carry it; both
default to 0 (the reference and every profile without a fit), so nothing changes until a fit ships.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tokenfab.mapping.closed_loop import closed_loop
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.framework import apply_profile, override_profiles, profile_for
from tokenfab.specs import SpecError
from tokenfab.specs.framework import FrameworkProfile


def prof(**kw) -> FrameworkProfile:
    return FrameworkProfile(id="vllm", **kw)


def test_host_path_is_the_overhead_plus_a_cost_per_prompt_token():
    # 40 ms + 10 µs × 4096 tokens = 40 + 40.96 = 80.96 ms
    assert prof(request_overhead_ms=40.0, input_us_per_token=10.0).request_host_s(4096) == pytest.approx(0.08096)
    assert prof().request_host_s(32768) == 0.0  # default: no host path


def test_host_path_is_not_an_efficiency_figure():
    p = prof(request_overhead_ms=40.0, input_us_per_token=10.0)
    assert p.is_neutral
    base = Efficiency()
    assert apply_profile(base, p) is base


def test_host_path_fields_are_bounded():
    with pytest.raises((SpecError, ValueError)):
        prof(request_overhead_ms=-1.0)
    with pytest.raises((SpecError, ValueError)):
        prof(input_us_per_token=1000.0)


def test_shipped_profiles_carry_no_unfitted_host_path():
    """A shipped profile has a host path only with a leave-one-source-out fit behind it (>= 8 TTFT
    rows from >= 2 sources, bench/fit_frameworks.py --stage host), said in its `source`."""
    from tokenfab.perf.framework import known_frameworks, load_framework
    for name in known_frameworks():
        p = load_framework(name)
        if p.request_host_s(8192) > 0:
            assert "host path" in p.source and "leave-one-source-out" in p.source, name
    # The reference's kernels are the calibration's (neutral factors); its OpenAI server (trtllm-serve)
    # has a host path since its rows at up to 4 clients came from two sources (2026-12-06).
    assert profile_for("trt-llm").is_neutral
    assert profile_for("trt-llm").request_host_s(8192) > 0.0
    # trtllm-bench feeds the executor directly: no server, no host path.
    assert profile_for("trtllm-bench").request_host_s(8192) == 0.0


def test_a_runtime_with_a_connector_qualifier_is_that_runtime():
    assert profile_for("vllm (MooncakeConnector)", "NVIDIA").id == "vllm"
    assert profile_for("SGLang (PD, mooncake)", "NVIDIA").id == "sglang"
    assert profile_for("vllm (MooncakeConnector)", "AMD").id == "vllm-rocm"
    assert profile_for("dynamo+trt-llm", "NVIDIA").id == "neutral"  # a different front end: no profile
    # TensorRT-LLM's benchmark harness: pre-tokenized requests straight into the executor, no server
    assert profile_for("trtllm-bench", "NVIDIA").request_host_s(8192) == 0.0


def test_host_time_acts_as_think_time_for_the_engine():
    """Little's law: N = X (TTFT_engine + L·TPOT + Z). A host delay Z outside the engine lowers the
    request rate of N closed-loop clients; with one client, X = 1 / (engine time + Z) exactly."""
    grid = np.array([1.0, 2.0, 4.0, 8.0])
    td = 0.01 * np.ones(4)  # 10 ms decode step at every batch
    kw = dict(input_len=1000, output_len=101, decode_batches=grid, decode_s=td, prefill_fixed_s=0.01,
              prefill_s_per_token=20e-6)
    a = closed_loop(1, think_s=0.0, **kw)
    b = closed_loop(1, think_s=0.05, **kw)
    # One client: engine TTFT = 0.01 + 20e-6 × 1000 = 0.03 s; E2E = 0.03 + 100 × 0.01 = 1.03 s.
    assert float(a["e2e_s"]) == pytest.approx(1.03, rel=1e-6)
    assert float(a["throughput_rps"]) == pytest.approx(1 / 1.03, rel=1e-6)
    assert float(b["throughput_rps"]) == pytest.approx(1 / 1.08, rel=1e-6)


def test_one_client_decodes_at_the_pure_step_and_others_prompts_slow_the_rest():
    """A decoding request sits through the other clients' prompts only (its own was prefilled
    before its first decode step). One client: TPOT is the pure decode step (10 ms) and no other
    prompt shares its prefill step. Two clients: the other's prompt, 20 ms per 1.0x s cycle,
    interleaves with half the prefill work seen by eight: TPOT between 10 ms and 8 clients' TPOT."""
    grid = np.array([1.0, 2.0, 4.0, 8.0])
    kw = dict(input_len=1000, output_len=101, decode_batches=grid, decode_s=0.01 * np.ones(4),
              prefill_fixed_s=0.01, prefill_s_per_token=20e-6)
    one, two, eight = (closed_loop(n, **kw) for n in (1, 2, 8))
    assert float(one["tpot_s"]) == pytest.approx(0.01, rel=1e-9)
    assert float(one["batched_prompts"]) == pytest.approx(1.0)
    assert 0.01 < float(two["tpot_s"]) < float(eight["tpot_s"])


def _row(rid):
    from tokenfab.specs.measurement import load_measurements
    from tokenfab.validate.datasets import measurements_dir
    return next(r for r in load_measurements(measurements_dir() / "deployments.csv") if r.id == rid)


@pytest.mark.parametrize("rid, low", [("D0029", 0.999), ("D0039", 0.75)])
def test_validate_adds_the_host_path_to_ttft_at_a_stated_concurrency(rid, low):
    """D0029: vLLM + MooncakeConnector, 1 client on separate prefill/decode pools, one API server
    (`pd_host_passes` 1 here): TTFT rises by exactly the host path (50 ms + 10 µs × 4096 tokens =
    90.96 ms). D0039: SGLang on 8 H20, 8
    closed-loop clients (`mapping.closed_loop`): by at most the host path and at least 3/4 of it —
    while a request is in the host path it is not in the engine, so the others queue a little less
    behind prompts (515-token prompts: 50 + 5.15 = 55.15 ms added on the client side)."""
    from tokenfab.validate.deployment import predict_deployment

    row = _row(rid)
    pid = profile_for(row.framework, "NVIDIA").id
    with override_profiles({pid: FrameworkProfile(id=pid)}):
        base = predict_deployment(row).value
    host = FrameworkProfile(id=pid, request_overhead_ms=50.0, input_us_per_token=10.0, pd_host_passes=1)
    with override_profiles({pid: host}):
        pred = predict_deployment(row)
    added = host.request_host_s(row.input_len) * 1e3
    assert "serving-stack host path" in pred.detail
    assert low * added <= pred.value - base <= added * 1.001


def test_a_proxy_that_asks_prefill_then_decode_pays_two_host_paths():
    """vLLM's disaggregated-serving proxy posts the request to the prefill server (max_tokens=1),
    waits, then posts it to the decode server: two API-server passes in turn. D0029 (vLLM +
    MooncakeConnector, 1 client, 4096-token prompt) with a 20 ms + 5 µs/token host path per pass:
    TTFT rises by 2 × (20 + 5 × 4096 / 1000) = 2 × 40.48 = 80.96 ms; with one pass (SGLang's router
    posts to both at once), by 40.48 ms."""
    from tokenfab.validate.deployment import predict_deployment

    row = _row("D0029")
    assert load_framework_id(row) == "vllm"
    with override_profiles({"vllm": FrameworkProfile(id="vllm")}):
        base = predict_deployment(row).value
    for passes, want_ms in ((2, 80.96), (1, 40.48)):
        host = FrameworkProfile(id="vllm", request_overhead_ms=20.0, input_us_per_token=5.0, pd_host_passes=passes)
        with override_profiles({"vllm": host}):
            assert predict_deployment(row).value - base == pytest.approx(want_ms, rel=1e-6)


def test_shipped_pd_host_passes_follow_each_proxy():
    from tokenfab.perf.framework import load_framework
    assert load_framework("vllm").pd_host_passes == 2
    assert load_framework("vllm", "AMD").pd_host_passes == 2
    assert load_framework("sglang").pd_host_passes == 1
    assert load_framework("trt-llm").pd_host_passes == 1


def load_framework_id(row) -> str:
    return profile_for(row.framework, "NVIDIA").id


def test_the_median_ttft_carries_the_host_path_once():
    """D0072: vLLM on one H100, one client, a median TTFT. With one staggered client the median is
    the mean (`closed_loop.ttft_median_s`), so a 40 ms + 10 µs/token host path raises it by exactly
    `request_host_s(input_len)` = 40 ms + 10 µs x the row's prompt tokens, once (it used to be added
    to the mean and again to the median taken from that mean: 88 ms against 48 ms)."""
    from tokenfab.validate.deployment import predict_deployment

    row = _row("D0072")
    assert row.metric == "ttft_ms_p50"
    with override_profiles({"vllm": FrameworkProfile(id="vllm")}):
        base = predict_deployment(row).value
    host = FrameworkProfile(id="vllm", request_overhead_ms=40.0, input_us_per_token=10.0)
    with override_profiles({"vllm": host}):
        pred = predict_deployment(row).value
    assert pred - base == pytest.approx(host.request_host_s(row.input_len) * 1e3, rel=1e-6)


@pytest.mark.slow
def test_the_host_path_fit_needs_two_sources_for_leave_one_source_out():
    """bench/fit_frameworks.py on Mooncake's nine vLLM PD rows (one source): the in-sample fit
    finds a positive overhead (the table's 46 ms TTFT at 128 tokens is ~9x the engine's 5 ms),
    but with one source there is no held-out check, so nothing is proposed."""
    import importlib.util
    from pathlib import Path

    from tokenfab import catalog
    spec = importlib.util.spec_from_file_location("fit_frameworks", Path(__file__).parents[1] / "bench" / "fit_frameworks.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    chip = catalog.load_chip("h800-sxm")
    rows = [(_row(f"D{i:04d}"), chip) for i in (29, 30, 31, 32, 67, 68, 69, 70, 71)]
    with override_profiles(fit._neutral_everywhere()):
        res = fit.fit_host_path("vllm", fit._ttft_at_concurrency(rows))
    assert res["n"] == 9 and len(res["sources"]) == 1
    assert res["best"].request_overhead_ms > 0
    assert res["insample"][0] < res["neutral"][0]
    assert res["loso"] is None


@pytest.mark.slow
def test_a_pinned_per_token_part_fits_the_overhead_alone_against_no_host_path():
    """`--us-per-token U`: every candidate carries U µs/token, the fit picks the overhead alone, and
    the reference it is judged against is still no host path at all (not the grid's first point,
    0 ms + U µs)."""
    import importlib.util
    from pathlib import Path

    from tokenfab import catalog
    spec = importlib.util.spec_from_file_location("fit_frameworks", Path(__file__).parents[1] / "bench" / "fit_frameworks.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    chip = catalog.load_chip("h800-sxm")
    rows = fit._ttft_at_concurrency([(_row(f"D{i:04d}"), chip) for i in (29, 30, 31, 32, 67, 68, 69, 70, 71)])
    with override_profiles(fit._neutral_everywhere()):
        free = fit.fit_host_path("vllm", rows)
        pinned = fit.fit_host_path("vllm", rows, us_per_token=15.0)
    assert pinned["best"].input_us_per_token == 15.0
    assert pinned["neutral"] == free["neutral"]
    for bad in ("-1", "nan", "5000"):
        with pytest.raises(SpecError, match="--us-per-token"):
            fit.main(["--us-per-token", bad, "--stage", "host"])
    with pytest.raises(SpecError, match="unknown profile trt-lm"):  # a typo fits nothing, silently
        fit.main(["--only", "trt-lm", "--stage", "host"])


@pytest.mark.slow
def test_the_host_fit_takes_rows_up_to_max_clients():
    """Rows at up to `--max-clients` clients fit the host path (default 4: their little queueing is the
    closed-loop model's); rows with more are scored only. AIMultiple's gpt-oss-20b sweep on one H200
    has 1, 4 and 8 clients (D0128, D0131, D0134)."""
    import importlib.util
    from pathlib import Path

    from tokenfab import catalog
    spec = importlib.util.spec_from_file_location("fit_frameworks", Path(__file__).parents[1] / "bench" / "fit_frameworks.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    chip = catalog.load_chip("h200-sxm")
    rows = fit._ttft_at_concurrency([(_row(f"D{i:04d}"), chip) for i in (128, 131, 134)])
    with override_profiles(fit._neutral_everywhere()):
        assert fit.fit_host_path("vllm", rows, max_clients=1)["n"] == 1
        assert fit.HOST_FIT_MAX_CLIENTS == 4 and fit.fit_host_path("vllm", rows)["n"] == 2
    for bad in ("0", "2000", "abc"):  # a typo is refused in one line too, not with argparse's usage block
        with pytest.raises(SpecError, match="--max-clients"):
            fit.main(["--max-clients", bad, "--stage", "host"])
