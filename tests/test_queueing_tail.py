"""The p99 TTFT tail: p99 of (M/G/1 wait + own prefill) against a Lindley-recursion simulation."""

import numpy as np
import pytest

from tokenfab.validate.queueing import mg1_tau_s, mg1_wait_s, p99_wait_plus_service_s


def _lindley_p99_sojourn(rho, cv, n=200_000, seed=0):
    """p99 of wait + service for a FCFS M/G/1 queue with lognormal service of mean 1."""
    rng = np.random.default_rng(seed)
    s = np.sqrt(np.log(1 + cv * cv))
    service = rng.lognormal(-s * s / 2, s, n)
    gaps = rng.exponential(1.0 / rho, n)
    wait = np.empty(n)
    w = 0.0
    for i in range(n):
        wait[i] = w
        w = max(0.0, w + service[i] - gaps[i])
    return float(np.percentile(wait + service, 99)), float(np.percentile(service, 99))


@pytest.mark.parametrize("rho,cv", [(0.24, 0.46), (0.4, 0.46), (0.6, 0.77), (0.8, 0.77)])
def test_p99_of_sum_matches_simulation(rho, cv):
    sim, service_p99 = _lindley_p99_sojourn(rho, cv)
    tau = mg1_tau_s(rho, 1.0, cv)
    got = float(p99_wait_plus_service_s(rho, tau, 1.0, service_p99))
    assert got == pytest.approx(sim, rel=0.10)
    # The sum of the two p99s, which the model used before, is well above the simulated tail.
    summed = float(mg1_wait_s(rho, 1.0, cv)[1]) + service_p99
    assert summed > sim * 1.05


def test_deterministic_service_and_limits():
    # No queueing: the p99 is the service itself.
    assert float(p99_wait_plus_service_s(0.0, 1.0, 2.0, 2.0)) == pytest.approx(2.0, rel=1e-3)
    # Deterministic service, exponential wait with probability rho: P(W > t - S) = rho e^{-(t-S)/tau}.
    rho, tau = 0.5, 1.0
    assert float(p99_wait_plus_service_s(rho, tau, 1.0, 1.0)) == pytest.approx(1.0 + tau * np.log(100 * rho), rel=1e-3)
    assert np.isinf(p99_wait_plus_service_s(1.0, mg1_tau_s(1.0, 1.0, 0.5), 1.0, 2.0))
    # Vectorized, monotone in load.
    rhos = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    out = p99_wait_plus_service_s(rhos, mg1_tau_s(rhos, 1.0, 0.6), 1.0, 2.5)
    assert np.all(np.diff(out) > 0)
