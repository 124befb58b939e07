"""Queueing of prompts for prefill under Poisson arrivals: the tail the steady state leaves out.

The steady-state search gives each mapping point a cycle: `batch` sequences in flight per
data-parallel replica, arrivals at `batch / cycle` requests/s, and a share `rho` of the replica's
time spent on prefill. Prompts compete for that prefill time, so a prompt that arrives while
others are being prefilled waits. The replica's prefill work is an M/G/1 queue:

- service time per prompt S = amortized prefill time / pp (pipeline stages overlap prompts),
  utilization rho = prefill_time_share, service-time variability from the prompt-length
  coefficient of variation `cv` (prefill time grows with prompt length);
- mean wait (Pollaczek-Khinchine): W = rho · S (1 + cv²) / (2 (1 - rho));
- tail: P(W > t) ≈ rho · exp(-t / tau), tau = S (1 + cv²) / (2 (1 - rho)) (the exponential
  heavy-traffic / Cramér-Lundberg approximation), so the p99 wait is tau · ln(100 rho);
- the p99 TTFT is the p99 of the *sum* of that wait and the prompt's own (random) prefill, not
  the sum of the two p99s, which a request almost never meets at once: adding them overstated the
  p99 sojourn of a Lindley-recursion M/G/1 simulation by 15-45% at rho 0.24-0.6 (lognormal
  prompts, cv 0.46-0.77); the convolution below is within 7% (tests/test_queueing_tail.py).

A p99 TTFT limit (MLPerf server) therefore caps rho, and through it the throughput: long prompts
(large S) need headroom, short ones almost none. `tpot_p99_ms` gives the per-request TPOT tail
from the Poisson count of prefills a request's decode shares its steps with. Vectorized over
mapping points.
"""

from __future__ import annotations


import numpy as np


def mg1_tau_s(rho, service_s, cv):
    """Decay time (s) of the M/G/1 wait's exponential tail; inf where rho >= 1."""
    rho = np.asarray(rho, dtype=float)
    s = np.asarray(service_s, dtype=float)
    return np.where(rho < 1.0, s * (1.0 + cv * cv) / (2.0 * np.maximum(1.0 - rho, 1e-12)), np.inf)


def mg1_wait_s(rho, service_s, cv):
    """(mean wait, p99 wait) in seconds for an M/G/1 queue; inf where rho >= 1."""
    rho = np.asarray(rho, dtype=float)
    stable = rho < 1.0
    tau = mg1_tau_s(rho, service_s, cv)
    mean = np.where(stable, rho * tau, np.inf)
    p99 = np.where(stable, np.where(100.0 * rho > 1.0, tau * np.log(np.maximum(100.0 * rho, 1.0)), 0.0), np.inf)
    return mean, p99


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()
_Z99 = 2.3263478740408408  # standard normal 99th percentile


def _erfc(x):
    """Complementary error function over arrays (scipy's ufunc, imported where first used)."""
    from scipy.special import erfc

    return erfc(x)


def p99_wait_plus_service_s(rho, tau_s, service_mean_s, service_p99_s, q: float = 0.99):
    """The `q` quantile (s) of W + S for independent W and S, per point.

    W: the M/G/1 wait, 0 with probability 1 - rho and Exp(tau) otherwise (the tail of
    `mg1_wait_s`). S: the request's own service, lognormal with the given mean and p99 (a
    deterministic S when p99 <= mean). P(W + S > t) = (1 - rho) P(S > t) + rho E[min(1,
    exp(-(t - S) / tau))], the expectation by Gauss-Hermite quadrature over log S; t by bisection.
    inf where rho >= 1."""
    rho, tau, mu, p99 = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in
                                              (rho, tau_s, service_mean_s, service_p99_s)))
    mu = np.maximum(mu, 1e-12)
    r = np.log(np.maximum(p99, mu) / mu)
    sigma = _Z99 - np.sqrt(np.maximum(_Z99 * _Z99 - 2.0 * r, 0.0))  # p99/mean = exp(z s - s²/2)
    m = np.log(mu) - sigma * sigma / 2.0
    S = np.exp(m[..., None] + sigma[..., None] * _GH_X)  # (points, nodes)
    stable = (rho < 1.0) & np.isfinite(tau)
    tau_ok = np.where(stable & (tau > 0), tau, 1.0)[..., None]
    rho_c = np.clip(rho, 0.0, 1.0)[..., None]

    def tail(t):
        # P(S > t) in closed form (a step where S is deterministic), the rest by quadrature.
        z = (np.log(np.maximum(t, 1e-300)) - m) / np.maximum(sigma, 1e-12)
        over = np.where(sigma > 0, 0.5 * _erfc(z / np.sqrt(2.0)), (mu > t).astype(float))
        expo = np.sum(_GH_W * np.exp(np.minimum(0.0, -(t[..., None] - S) / tau_ok)), axis=-1)
        return (1.0 - rho_c[..., 0]) * over + rho_c[..., 0] * expo

    lo = np.zeros_like(mu)
    hi = S.max(axis=-1) + np.where(stable, tau_ok[..., 0] * 12.0, 0.0) + 1e-9
    for _ in range(34):  # the bracket shrinks 2^34-fold: 1e-10 of its width
        mid = 0.5 * (lo + hi)
        above = tail(mid) > 1.0 - q
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return np.where(stable, 0.5 * (lo + hi), np.inf)


def ttft_with_queueing_ms(arrays: dict, cv: float = 1.0, length_p99_ratio: float = 1.0) -> dict[str, np.ndarray]:
    """Mean and p99 TTFT (ms) per mapping point, at the load the point sustains.

    TTFT = the rest of the decode step running when the request arrives (half a step on average
    for Poisson arrivals, a whole one at the p99) + the wait in the prefill queue (which already
    holds the rest of a prefill in progress) + the prefill of the prompt's chunk + one decode
    step. At the p99: the p99 of the queue's wait plus the prompt's own chunk, whose p99 is the
    p99 prompt's when the prompt fills its chunk alone: a chunk holds a fixed token budget
    of several prompts, so only a prompt longer than that budget makes its own prefill longer
    (`length_p99_ratio` = p99 / mean prompt tokens; prefill time about linear in length).
    """
    k = np.maximum(arrays["prefill_prompts"], 1.0)
    chunk_s = arrays["prefill_ms"] * 1e-3
    dec_s = arrays["decode_step_ms"] * 1e-3
    service_s = chunk_s / k / np.maximum(arrays["pp"], 1.0)
    rho = arrays["prefill_time_share"]
    w_mean, _ = mg1_wait_s(rho, service_s, cv)
    own_p99 = chunk_s * np.maximum(1.0, max(length_p99_ratio, 1.0) / k)
    tau = mg1_tau_s(rho, service_s, cv)
    ttft_mean = (0.5 * dec_s + w_mean + chunk_s + dec_s) * 1e3
    ttft_p99 = (dec_s + p99_wait_plus_service_s(rho, tau, chunk_s, own_p99) + dec_s) * 1e3
    return {"ttft_mean_ms": ttft_mean, "ttft_p99_ms": ttft_p99, "prefill_wait_mean_ms": w_mean * 1e3,
            "prefill_utilization": rho}


def tpot_p99_ms(arrays: dict, cv: float = 0.0, output_rel=None) -> np.ndarray:
    """p99 over requests of the mean time per output token, per mapping point (ms).

    A request's TPOT is the decode step plus the prefill work interleaved during its life,
    spread over its output tokens: decode step + prefill part x `tpot_tail_factor` (the p99
    request's share of prefill work relative to the mean request's). `cv`: the prompt-length
    coefficient of variation; `output_rel`: the dataset's output lengths relative to their mean
    (quantile nodes), None for fixed lengths."""
    prefill_part = arrays["tpot_ms"] - arrays["decode_step_ms"]  # = batch x t_pre / (pp x osl), ms
    return arrays["decode_step_ms"] + prefill_part * tpot_tail_factor(arrays["batch"], cv, output_rel)


TPOT_TAIL = 0.01
"""Share of requests above the TPOT percentile `tpot_p99_ms` gives (MLPerf's limits are p99)."""


def tpot_tail_factor(batch, cv: float = 0.0, output_rel=None, tail: float = TPOT_TAIL) -> np.ndarray:
    """The (1 - `tail`) quantile over requests of the prefill work interleaved with a request's
    decode, relative to the mean request's, per batch.

    In steady state the prompts arriving during one request's life average `batch` times the
    request's relative length l (Little's law: arrival rate x life = sequences in flight x l);
    Poisson in count and of random length (CV `cv`), their work is compound Poisson with mean
    b l and variance b l (1 + cv²) prompts' worth, taken as the gamma distribution of those two
    moments (right-skewed, never negative: a short request sees few prompts, often none, now and
    then one whole chunk). Spread over the request's own tokens, its relative share X_l has mean 1
    and variance (1 + cv²) / (b l). Requests mix over l (`output_rel`: the dataset's output
    lengths relative to their mean, as equally likely quantile nodes; None: every request the
    mean length), and the tail is the x where the mixture's P(X > x) = `tail` (bisection). Short
    requests make most of that tail. At fixed lengths and large batches this is the normal
    1 + 2.33 sqrt((1 + cv²) / b)."""
    b = np.maximum(np.asarray(batch, dtype=float), 1.0)
    ell = np.array([1.0]) if output_rel is None or len(output_rel) == 0 else np.asarray(output_rel, dtype=float)
    ell = np.maximum(ell / ell.mean(), 1e-3)
    uniq, inv = np.unique(b, return_inverse=True)  # the factor depends on the batch alone
    key = (float(cv), tuple(np.round(ell, 12)), float(tail))
    known = _TAIL_CACHE.setdefault(key, {})
    todo = np.array([u for u in uniq if u not in known])
    if todo.size:
        known.update(zip(todo.tolist(), _mixture_tail(todo, cv, ell, tail).tolist()))
    return np.array([known[u] for u in uniq.tolist()])[inv].reshape(b.shape)


_TAIL_CACHE: dict[tuple, dict[float, float]] = {}
"""`tpot_tail_factor` per (cv, output nodes, tail) and batch: a validate run asks for the same
batches row after row (a pure function of its arguments, so a cache changes no figure)."""


def _mixture_tail(batch: np.ndarray, cv: float, ell: np.ndarray, tail: float) -> np.ndarray:
    """`tpot_tail_factor` for distinct batches: bisection on the mixture's survival function."""
    from scipy.special import gammaincc, gammainccinv  # the gamma survival function and its inverse

    k = batch[:, None] * ell[None, :] / (1.0 + cv * cv)  # gamma shape per (batch, node); X = G(k) / k
    node_q = gammainccinv(k, tail) / k  # P(G(k) / k > x) = gammaincc(k, k x)
    lo, hi = node_q.min(axis=1), node_q.max(axis=1)  # the mixture's quantile lies between its nodes'
    for _ in range(48):  # the bracket shrinks 2^48-fold
        x = 0.5 * (lo + hi)
        over = gammaincc(k, k * x[:, None]).mean(axis=1) > tail
        lo, hi = np.where(over, x, lo), np.where(over, hi, x)
    return 0.5 * (lo + hi)
