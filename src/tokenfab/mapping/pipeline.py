"""Pipeline parallelism as it runs: the slowest stage sets the pace, and micro-batches carry
unequal prefill work. Vectorized over mapping points.

A pipeline of `pp` stages holds `pp` micro-batches; in one round each micro-batch passes every
stage once (one decode step for its sequences). A stage cannot start the next micro-batch before
it has finished the current one, and a micro-batch cannot enter a stage before the previous stage
is done with it, so with a micro-batch j needing X_j seconds on every stage the round lasts
pp × max_j X_j (the closed cyclic flow shop: the busiest job's circuit dominates the station
circuit, sum_j X_j ≤ pp × max_j X_j). Two things make the X_j unequal:

- stages: `num_layers` does not always split evenly (the slowest stage holds ceil(L/pp) layers),
  and the last stage also runs the LM head and sampling (the first, the embedding);
- micro-batches: continuous batching refills a micro-batch's slots as its own sequences finish,
  so the prompts it prefills in a round are a random count. With output lengths of mean `osl`,
  a micro-batch of `batch/pp` sequences finishes about Poisson(λ = batch/(pp·osl)) of them per
  round, and the round waits for the micro-batch with the most: E[max of pp Poisson(λ)]
  (`expected_max_poisson`). Prompts longer than the prefill token budget are split into chunks
  processed one a round, which spreads their work and smooths the load; with pp = 1 there is no
  one to wait for.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FIRST_STAGE_OPS = ("embedding",)
LAST_STAGE_OPS = ("lm_head", "sampling")


def pipelined_seconds(times, num_layers: int, pp) -> np.ndarray:
    """Seconds one micro-batch takes to pass all `pp` stages when every stage runs at the pace
    of the slowest: pp × (ceil(L/pp)/L × per-layer work + the end stages' extra ops). Equals the
    plain sum of `times` for pp = 1. `times`: OpTime list (per step, counts included)."""
    seconds = np.broadcast_arrays(*[t.seconds for t in times])
    total = np.sum(seconds, axis=0)
    first = sum((s for t, s in zip(times, seconds) if t.name in FIRST_STAGE_OPS), np.zeros_like(total))
    last = sum((s for t, s in zip(times, seconds) if t.name in LAST_STAGE_OPS), np.zeros_like(total))
    layers = total - first - last
    pp = np.asarray(pp, dtype=float)
    heaviest = np.ceil(num_layers / pp) / num_layers  # share of the layers on the fullest stage
    ends = np.where(pp > 1, np.maximum(first, last), first + last)  # one stage holds both ends
    return pp * (layers * heaviest + ends)


def expected_max_poisson(mu, n) -> np.ndarray:
    """E[max of `n` independent Poisson(`mu`) counts], elementwise. Exact sum of 1 - F(k)^n over
    k for mu <= 50 (computed once per distinct (mu, n)); the Gaussian approximation
    mu + sqrt(2 mu ln n) above, where it is accurate."""
    mu, n = np.broadcast_arrays(np.asarray(mu, dtype=float), np.asarray(n, dtype=float))
    out = np.empty(mu.shape)
    keys, inverse = np.unique(np.stack([mu.ravel(), n.ravel()]), axis=1, return_inverse=True)
    m_all, k_all = keys
    vals = m_all.copy()  # k <= 1 or mu <= 0: the count itself
    big = (k_all > 1) & (m_all > 400)
    vals[big] = m_all[big] + np.sqrt(m_all[big]) * np.array([_expected_max_normal(float(k)) for k in k_all[big]])
    exact = (k_all > 1) & (m_all > 0) & ~big
    if exact.any():
        vals[exact] = _exact_expected_max(m_all[exact], k_all[exact])
    out.ravel()[:] = vals[inverse.ravel()]
    return out


def _exact_expected_max(mu: np.ndarray, n: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Σ_j (1 - F(j)^n) over counts j = 0 .. mu + 12 sqrt(mu) + 20 of Poisson(mu), for many
    (mu, n) at once (keys sorted by mu and taken in chunks, the pmf in log space); beyond that
    count the tail mass is below 1e-30."""
    from scipy.special import gammaln

    out = np.empty(mu.size)
    order = np.argsort(mu)
    for s in range(0, mu.size, chunk):
        idx = order[s:s + chunk]
        m, k = mu[idx], n[idx]
        top = float(m.max())
        j = np.arange(int(top + 12.0 * np.sqrt(top) + 20.0), dtype=float)
        log_pmf = -m[:, None] + j[None, :] * np.log(m)[:, None] - gammaln(j + 1.0)[None, :]
        cdf = np.minimum(np.cumsum(np.exp(log_pmf), axis=1), 1.0)
        out[idx] = np.sum(1.0 - cdf ** k[:, None], axis=1)
    return out


@lru_cache(maxsize=None)
def _expected_max_normal(n: float) -> float:
    """E[max of n independent standard normals] = ∫ (1 - Φ(x)^n) dx over x > 0 − ∫ Φ(x)^n over x < 0."""
    from scipy.special import ndtr

    x = np.linspace(-8.0, 8.0, 3201)
    phi = ndtr(x)
    integrand = np.where(x >= 0, 1.0 - phi ** n, -(phi ** n))
    return float(np.sum(integrand) * (x[1] - x[0]))


def prefill_straggler_factor(batch, pp, osl: float, chunks_per_prompt=1.0) -> np.ndarray:
    """Expected prefill work of the busiest of `pp` micro-batches in a round over the mean (1 for
    pp = 1). A micro-batch of batch/pp sequences starts λ = batch/(pp·osl) prompts a round
    (Poisson); a prompt split into c chunks (one a round) puts c·λ chunks of 1/c prompt in flight,
    which smooths the load: factor = E[max of pp Poisson(c·λ)] / (c·λ)."""
    pp = np.asarray(pp, dtype=float)
    mu = np.asarray(batch, dtype=float) / (pp * max(osl, 1.0)) * np.maximum(chunks_per_prompt, 1.0)
    mu = np.maximum(mu, 1e-9)
    return np.where(pp > 1, expected_max_poisson(mu, pp) / mu, 1.0)
