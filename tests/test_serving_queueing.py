"""The simulator reduced to textbook queues: one server, batch 1, Poisson arrivals."""

import numpy as np
import pytest

from tokenfab.serving.metrics import request_latencies
from tokenfab.serving.simulator import Deployment, EngineConfig, simulate
from tokenfab.serving.steptime import ConstantStepTime
from tokenfab.serving.traffic import LengthSpec, TrafficProfile, generate


def _one_server(**step) -> Deployment:
    return Deployment(steptime=ConstantStepTime(**step), engine=EngineConfig(max_num_seqs=1))


@pytest.mark.slow
def test_md1_mean_wait_matches_pollaczek_khinchine():
    # M/D/1: service D = 10 ms (one prefill step, one output token), rho = 0.5.
    # Mean wait Wq = rho * D / (2 (1 - rho)) = 5.000 ms; mean TTFT = Wq + D = 15.000 ms.
    D, rho = 0.010, 0.5
    prof = TrafficProfile(name="md1", input=LengthSpec(kind="fixed", value=100), output=LengthSpec(kind="fixed", value=1))
    res = simulate(generate(prof, rho / D, 200_000, seed=0), _one_server(prefill_s=D))
    lat = request_latencies(res)
    wq = lat["queue"].mean() / 1e3
    assert wq == pytest.approx(0.005, rel=0.02)
    assert lat["ttft"].mean() / 1e3 == pytest.approx(0.015, rel=0.02)
    # Batch 1 with one token: service is exactly D for everyone.
    assert np.allclose(lat["e2e"] - lat["queue"], 1e3 * D)


@pytest.mark.slow
def test_mg1_with_decode_steps_matches_pollaczek_khinchine():
    # Service S = prefill 4 ms + (out - 1) decode steps of 1 ms, out uniform on 1..19:
    # E[S] = 4 + 9 = 13 ms, E[S^2] = Var + mean^2 = (19^2 - 1)/12 + 169 = 199 ms^2.
    # At rate 40/s (rho = 0.52): Wq = lambda E[S^2] / (2 (1 - rho)) = 0.04 * 199 / (2 * 0.48) = 8.292 ms.
    prof = TrafficProfile(name="mg1", input=LengthSpec(kind="fixed", value=10),
                          output=LengthSpec(kind="uniform", low=1, high=19))
    res = simulate(generate(prof, 40.0, 150_000, seed=3), _one_server(prefill_s=0.004, decode_s=0.001))
    wq = request_latencies(res)["queue"].mean()
    assert wq == pytest.approx(0.04 * 199 / (2 * 0.48), rel=0.03)


def test_idle_server_serves_immediately():
    prof = TrafficProfile(name="x", input=LengthSpec(kind="fixed", value=10), output=LengthSpec(kind="fixed", value=5))
    wl = generate(prof, 0.01, 20, seed=1)  # gaps of ~100 s, service 14 ms
    res = simulate(wl, _one_server(prefill_s=0.010, decode_s=0.001))
    lat = request_latencies(res)
    assert np.allclose(lat["queue"], 0.0)
    assert np.allclose(lat["ttft"], 10.0) and np.allclose(lat["e2e"], 14.0) and np.allclose(lat["tpot"], 1.0)
