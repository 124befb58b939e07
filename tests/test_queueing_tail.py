"""The p99 TTFT tail: p99 of (M/G/1 wait + own prefill) against a Lindley-recursion simulation;
the p99 TPOT tail (prefill work a request's decode shares) against a compound-Poisson simulation."""

import numpy as np
import pytest

from tokenfab.validate.queueing import mg1_tau_s, mg1_wait_s, p99_wait_plus_service_s, tpot_tail_factor


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


# Output lengths relative to their mean: a few very short answers, most near the mean, a long tail.
SPREAD = np.array([0.02, 0.1, 0.3, 0.6, 0.9, 1.1, 1.4, 1.8, 2.2, 2.6])


def _simulated_tail(batch, cv, nodes, n=400_000, seed=1):
    """p99 over requests of the prefill work their decode shares, relative to the mean request's:
    a request of relative length l sees Poisson(batch l) prompts of gamma length (mean 1, CV cv)."""
    rng = np.random.default_rng(seed)
    ell = np.ones(n) if nodes is None else rng.choice(nodes / nodes.mean(), n)
    count = rng.poisson(batch * ell)
    work = rng.gamma(np.maximum(count, 1e-12) / cv ** 2, cv ** 2) * (count > 0) if cv else count.astype(float)
    return float(np.quantile(work / (batch * ell), 0.99))


@pytest.mark.parametrize("batch", [16, 64, 256])
@pytest.mark.parametrize("cv", [0.0, 0.77])
@pytest.mark.parametrize("nodes", [None, SPREAD], ids=["fixed", "spread"])
def test_tpot_tail_matches_compound_poisson_simulation(batch, cv, nodes):
    got = float(tpot_tail_factor(batch, cv, nodes))
    assert got == pytest.approx(_simulated_tail(batch, cv, nodes), rel=0.12)


def test_tpot_tail_physics():
    b = np.array([4.0, 16.0, 64.0, 256.0, 1024.0])
    fixed, spread = tpot_tail_factor(b, 0.77), tpot_tail_factor(b, 0.77, SPREAD)
    # More sequences in flight average more prompts: the tail narrows toward the mean.
    assert np.all(np.diff(fixed) < 0) and np.all(np.diff(spread) < 0) and np.all(fixed > 1.0)
    # Short answers see few prompts each, so spread output lengths widen the tail at every batch.
    assert np.all(spread > fixed)
    # Fixed lengths at large batch: the normal limit 1 + 2.33 sqrt((1 + cv^2) / b).
    assert fixed[-1] == pytest.approx(1.0 + 2.33 * np.sqrt((1 + 0.77 ** 2) / 1024), rel=0.01)
    # One node at the mean is fixed lengths; the factor is per batch, whatever the array shape.
    assert tpot_tail_factor(b, 0.77, [1.0]) == pytest.approx(fixed)
    assert tpot_tail_factor(b.reshape(5, 1), 0.77).shape == (5, 1)


def test_mlperf_llama2_rows_take_the_datasets_output_spread():
    """An MLPerf Llama-2-70B row (its logged mean output length stated) runs the dataset's shipped
    output-length quantiles (mean 1, CV ~0.77: the stratified sample in mlperf_datasets.yaml); the
    same model in a non-MLPerf row, and a dataset without them, keep fixed lengths."""
    from types import SimpleNamespace

    from tokenfab.validate.deployment import _output_rel

    row = SimpleNamespace(model="llama-2-70b", output_len=290.3, scenario="server",
                          source="MLPerf Inference v4.1 closed: NVIDIA DGX-H100", source_ref="mlcommons/...")
    nodes = np.asarray(_output_rel(row))
    assert len(nodes) == 32 and np.all(np.diff(nodes) > 0)
    assert nodes.mean() == pytest.approx(1.0, abs=0.01) and nodes.std() / nodes.mean() == pytest.approx(0.77, abs=0.06)
    other = SimpleNamespace(**{**row.__dict__, "source": "a vendor blog", "source_ref": "example.com"})
    assert _output_rel(other) is None
    assert _output_rel(SimpleNamespace(**{**row.__dict__, "model": "mixtral-8x7b"})) is None
