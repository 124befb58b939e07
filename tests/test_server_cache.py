"""The MLPerf server search is shared by the rows of one run (throughput, mean and p99 TTFT/TPOT),
and a different efficiency (a framework profile override) never reads another's result."""

from tokenfab.perf.framework import override_profiles
from tokenfab.specs.framework import FrameworkProfile
from tokenfab.specs.measurement import load_measurements
from tokenfab.validate import deployment
from tokenfab.validate.datasets import public_csv


def _rows(*ids):
    by_id = {r.id: r for r in load_measurements(public_csv())}
    return [by_id[i] for i in ids]


def test_one_search_serves_every_row_of_a_run(monkeypatch):
    calls = []
    real = deployment._server_search
    monkeypatch.setattr(deployment, "_server_search", lambda *a: calls.append(a[0].id) or real(*a))
    deployment._SERVER_CACHE.clear()
    rows = _rows("M0104", "M0105", "M0106", "M0107", "M0108")  # one MLPerf v4.1 H100 server run
    assert {r.scenario for r in rows} == {"server"} and len({r.source for r in rows}) == 1
    values = [deployment.predict_deployment(r).value for r in rows]
    assert calls == ["M0104"] and all(v > 0 for v in values)


def test_a_profile_override_is_a_new_search(monkeypatch):
    deployment._SERVER_CACHE.clear()
    (row,) = _rows("M0134")  # vLLM on MI300X, MLPerf server
    neutral_profile = {"vllm-rocm": FrameworkProfile(id="vllm-rocm")}
    half = {"vllm-rocm": FrameworkProfile(id="vllm-rocm", gemm_quality=0.5, attention_quality=0.5,
                                          memory_quality=0.5)}
    with override_profiles(neutral_profile):
        neutral = deployment.predict_deployment(row).value
    with override_profiles(half):
        slow = deployment.predict_deployment(row).value
    with override_profiles(neutral_profile):
        again = deployment.predict_deployment(row).value
    assert slow < 0.75 * neutral and again == neutral
