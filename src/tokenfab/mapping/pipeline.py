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
- micro-batches: continuous batching admits a new prompt as a sequence finishes, so the prompts
  prefilled in a round are a random count. With output lengths of mean `osl`, a batch of `batch`
  sequences finishes about Poisson(Λ = batch/osl) of them per round; the scheduler deals the
  waiting prompts to the micro-batches as it forms them, and the round waits for the one that got
  the most: E[ceil(C/pp)] of C ~ Poisson(Λ) (`expected_busiest_count`). Prompts longer than the
  prefill token budget are split into chunks processed one a round, which spreads their work and
  smooths the load; with pp = 1 there is no one to wait for.
"""

from __future__ import annotations

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


def expected_busiest_count(mu, n) -> np.ndarray:
    """E[ceil(C / n)] for C ~ Poisson(`mu`), elementwise: the count the busiest of `n` micro-batches
    carries when C arrivals are dealt out as evenly as they go (`prefill_straggler_factor`).
    Exact sum of P(C > k·n) over k for mu <= 400 (computed once per distinct (mu, n)); above, the
    mean plus the expected rounding-up, mu/n + (n - 1)/(2n), where the remainder is uniform."""
    from scipy.special import pdtrc

    mu, n = np.broadcast_arrays(np.asarray(mu, dtype=float), np.maximum(np.asarray(n, dtype=float), 1.0))
    keys, inverse = np.unique(np.stack([mu.ravel(), n.ravel()]), axis=1, return_inverse=True)
    vals = keys[0] / keys[1] + (keys[1] - 1.0) / (2.0 * keys[1])
    exact = np.flatnonzero(keys[0] <= 400.0)
    # Σ_j P(C > j·n) for j = 0 .. (mu + 12 sqrt(mu) + 20)/n (beyond it the tail is below 1e-30), many
    # keys at once in chunks sorted by the terms they need.
    terms = (keys[0, exact] + 12.0 * np.sqrt(keys[0, exact]) + 20.0) / keys[1, exact] + 2.0
    order = exact[np.argsort(terms)]
    for s in range(0, order.size, 2048):
        idx = order[s:s + 2048]
        m, k = keys[0, idx], keys[1, idx]
        j = np.arange(int(((m + 12.0 * np.sqrt(m) + 20.0) / k).max()) + 2, dtype=float)
        vals[idx] = np.sum(pdtrc(j[None, :] * k[:, None], m[:, None]), axis=1)
    vals[keys[0] <= 0] = 0.0
    out = np.empty(mu.shape)
    out.ravel()[:] = vals[inverse.ravel()]
    return out


def prefill_straggler_factor(batch, pp, osl: float, chunks_per_prompt=1.0) -> np.ndarray:
    """Expected prefill work of the busiest of `pp` micro-batches in a round over the mean (1 for
    pp = 1). The batch of sequences starts Λ = batch/osl prompts a round (Poisson); a prompt split
    into c chunks (one a round) puts c·Λ chunks of 1/c prompt in flight, which smooths the load.
    The chunks are dealt to the micro-batches as they are formed, not tied to the one whose sequence
    finished: TensorRT-LLM's micro-batch scheduler builds each micro-batch from every active request
    not in flight in another (`MicroBatchScheduler::operator()`, skipping `inflightReqIds`), so a
    round's C chunks leave the busiest micro-batch ceil(C/pp) of them:
    factor = E[ceil(C/pp)] / (c·Λ/pp), C ~ Poisson(c·Λ) (`expected_busiest_count`). (Pinned
    micro-batches, the max of pp independent counts, charged 1.33 where the MLPerf Llama-2-70B
    rows at PP 2 run at 1.0-1.15 and 1.8-1.9 where Llama-3.1-405B's long prompts arrive rarely.)"""
    pp = np.asarray(pp, dtype=float)
    mu = np.asarray(batch, dtype=float) / (pp * max(osl, 1.0)) * np.maximum(chunks_per_prompt, 1.0)
    mu = np.maximum(mu, 1e-9)
    return np.where(pp > 1, expected_busiest_count(pp * mu, pp) / mu, 1.0)
