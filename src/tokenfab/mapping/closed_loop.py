"""Serving at a fixed concurrency: N clients in a closed loop on a continuous-batching engine.

Each client submits a request, waits for its last token, thinks `think_s` and submits the next
(benchmarks run this way with `--max-concurrency` / `--concurrency`). Throughput, mean TTFT and
mean TPOT then follow together from the interactive response-time law (the closed-loop form of
Little's law),

    N = X · (TTFT + (osl − 1) · TPOT + Z),

where X is the engine's request rate, and from where the engine's time goes. Per engine (one
data-parallel rank), with the engine's step times as inputs:

- decode: a step of n sequences takes t_d(n) (a table over n); prefill: a step carrying T
  prompt tokens costs c1 · T more (its weights are read by the decode step it rides on, so a
  step with prompts and decodes takes max(t_d(n), c0) + c1 · T; c0: a step with prompts only);
  the engine admits at most `token_budget` tokens per step, decode tokens included
  (`max_num_batched_tokens` / `max_num_tokens`), so a long prompt is prefilled over several steps;
- u_p = X · isl · c1 is the share of time spent on prompts; a decoding request sits through the
  other clients' prompts prefilled during its life ((N − 1) / N of them: its own came before its
  first decode step), so its TPOT is t_d(n) · (1 + f · u_p / (1 − u_p)), f = (N − 1) / N (one
  client decodes at the pure step time: no other prompt is prefilled while it decodes);
- n, the mean number of sequences decoding, is X · (osl − 1) · TPOT (Little's law again);
- TTFT = the step in progress when the request arrives (a whole step for a request sent as its
  predecessor finishes, half of one after a random think time; with synchronized groups, the
  previous group's prefill step, as groups finish on consecutive steps) + its own prefill step(s),
  which carry the prompts that arrived with it (`k` prompts) + a wait for prompts ahead of it:
  an M/G/1 queue in time, utilization u_p, service one prompt's prefill, divided by the prompts
  one step can hold (they share a step rather than queue), times (N − 1) / N (a client's own
  earlier prompt is never ahead of it). The discrete-event simulator's
  clients complete only at step ends, so its prompts rarely meet (it shows little of this wait
  for prompts of a budget or more), but measured sweeps do: NVIDIA's NIM table for Llama-3.3-70B
  FP8 on 2 H100 (TP2, 5000/500 tokens) has mean TTFT 407 / 547 / 689 / 835 ms at 1 / 5 / 25 /
  50 clients; with the wait the engine (as calibrated in December 2026) predicts 447 / 510 / 691
  / 877 ms, without it 447 / 477 / 517 / 568 ms.

Two regimes of arrival are modelled:
- staggered (`synchronized=False`, prompt/output lengths that vary): completions are spread over
  the steps, so the prompts batched with a request are the Poisson arrivals of one step, 1 + X·τ;
- synchronized (exactly fixed lengths, all clients starting together, as the simulator runs them;
  `validate` uses it only for rows whose harness forces that, `validate.operating_point.
  synchronized_clients`: NVIDIA's NIM sweep, lengths not forced, shows no such groups):
  requests move in groups that were prefilled together and finish together; a group is what fits
  one step's budget (min(N, budget / isl) prompts) and a decoding request sits through the other
  groups' prefills only ((G − 1) / G of the prompt work, G = N · isl / budget groups). With all N
  prompts in one step (N · isl ≤ budget) the engine runs in waves: prefill all, decode all. A
  prefill-first scheduler (SGLang's: `validate.operating_point.prefill_first`) admits the whole wave
  and prefills it in chunks (`chunk_tokens`) before decoding resumes: the mean request's first token
  comes after half the chunks, and the rest of the wave's prefill lands in its TPOT.

Two properties of the server and the harness change the staggered regime:
- a scheduler that reads new requests only every `poll_steps` iterations (SGLang's
  `--scheduler-recv-interval P`: its receive counter grows by one per decode step, and by enough
  after a prefill to read again at once): a request arriving during decoding waits on average
  (P − 1) / 2 more decode steps to be seen, and the prompts that arrived over the P steps are
  prefilled together (k = 1 + P · X·τ per batch); with one client the engine idles between
  requests and polls at once, hence the (N − 1) / N weight;
- a scheduler that holds new prompts back to batch them (TensorRT-LLM's `batch_wait_timeout_iters
  T` with `batch_wait_max_tokens_ratio`, `PyExecutor._waiting_requests`: while sequences decode, the
  waiting prompts are scheduled only once T iterations have passed since the last flush or their
  tokens plus the decode tokens reach `wait_tokens` = ratio · max_num_tokens): the first arrival
  of a batch waits D = min(T, S_j) decode-only steps t_d(n), where S_j is the arrival of the j-th
  prompt after it (j more reach the token threshold), the others arriving as a Poisson stream of
  λ = X·t_d · (N − 1) / N per step; those that arrive meanwhile wait out the rest of the window, and
  the batch's prompts are prefilled together (`held_batch`: means over Poisson arrivals; with one
  client nothing decodes when a request arrives: no wait);
- a benchmark client that starts all N clients at once (vLLM's and SGLang's `bench_serving` with
  `--request-rate inf` behind `--max-concurrency N`): the first N requests arrive together, a wave
  prefilled in chunks of `chunk_tokens` (mean first token after (m + 1) / 2 of the m chunk steps,
  the rest of the wave's prefill in their TPOT), before arrivals spread out. With R requests per
  client (`--num-prompts R·N`) that wave is `burst_share` = 1 / R of the requests, whose TTFT and
  TPOT enter the means with that weight.

More clients than the engine admits (`max_seqs`: its batch cap or KV-cache capacity) queue for
admission: throughput and TPOT are those of `max_seqs` clients and the extra clients' wait
lands in TTFT, again by Little's law. Everything is vectorized over points (numpy arrays); the
fixed point is found by bisection on n. `tpot_percentile_s` and `ttft_median_s` give the TPOT
percentiles and the median TTFT from the same steady state (TTFT tails are not modelled).
Checked against the discrete-event simulator run closed-loop (`serving/closed_loop.py`,
`tests/test_closed_loop.py`).
"""

from __future__ import annotations

import numpy as np

BISECTION_STEPS = 40
"""Halvings of [0, admitted clients] that find the mean sequences decoding: 2^-40 of the interval
(under 1e-6 of a sequence at a million clients), far under any input's precision."""


def interp_rows(x, grid, table) -> np.ndarray:
    """Linear interpolation of each point's row of `table` (points × G) on the common increasing
    `grid` (G,) at that point's `x`; clamped to the grid's ends."""
    grid = np.asarray(grid, dtype=float)
    table = np.asarray(table, dtype=float)
    x = np.asarray(x, dtype=float)
    x, _ = np.broadcast_arrays(x, table[..., 0])
    if grid.size == 1:
        return np.broadcast_to(table[..., 0], x.shape).astype(float)
    xc = np.clip(x, grid[0], grid[-1])
    j = np.clip(np.searchsorted(grid, xc, side="right") - 1, 0, grid.size - 2)
    w = (xc - grid[j]) / (grid[j + 1] - grid[j])
    tb = np.broadcast_to(table, x.shape + (grid.size,))
    lo = np.take_along_axis(tb, j[..., None], -1)[..., 0]
    hi = np.take_along_axis(tb, (j + 1)[..., None], -1)[..., 0]
    return lo + w * (hi - lo)


HELD_GRID = 17
"""Time points of the integrals over a held batch's window (Simpson's rule)."""
HELD_TERMS = 64
"""Most Poisson terms summed for a held batch's token threshold; a threshold of more prompts is
taken at its mean (the window min(T, j / λ)), where the count's relative spread is small."""


def held_batch(rate, steps, more, start=1.0):
    """A scheduler that holds waiting prompts back (TensorRT-LLM's batch waiting), per point: with
    prompts arriving as a Poisson stream of `rate` per step, a batch opens at an arrival and is
    released `steps` steps later or at the `more`-th arrival after the first (the token
    threshold), whichever comes first; `start` prompts (>= 1) open it together (those that arrived
    while the previous batch was prefilled), and count towards the threshold. Returns (mean steps
    a prompt waits, mean prompts per batch).

    Renewal-reward over one batch: with N(t) the arrivals after the first by time t < T, the batch
    is open while N(t) < j, so it stays open E[D] = ∫₀ᵀ P(N(t) < j) dt, its prompts wait in all
    E[D] + ∫₀ᵀ E[N(t); N(t) < j] dt (the first the whole window, each later one from its arrival)
    and it holds 1 + E[min(N(T), j)] prompts. No arrivals (rate 0), `steps` 0 or a threshold the
    opening prompts already meet: no hold (wait 0, `start` prompts)."""
    lam, T, j, m0 = (a.ravel() for a in np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                                for v in (rate, steps, more, start))))
    shape = np.broadcast_shapes(*(np.shape(v) for v in (rate, steps, more, start)))
    m0 = np.maximum(m0, 1.0)
    j = np.maximum(np.ceil(j - (m0 - 1.0) - 1e-9), 0.0)  # whole arrivals still needed
    on = (lam > 0) & (T > 0) & (j > 0) & (np.isfinite(T) | np.isfinite(j))  # an endless hold is none
    wait = np.zeros_like(lam)
    count = m0.copy()
    lam1 = np.where(lam > 0, lam, 1.0)
    # A timeout-free hold (T = inf) ends at the j-th arrival: E[D] = j / λ, waits j / λ + j(j-1)/(2λ).
    i = on & ~np.isfinite(T)
    wait[i] = (m0[i] * j[i] + 0.5 * j[i] * (j[i] - 1.0)) / lam1[i] / (m0[i] + j[i])
    count[i] = m0[i] + j[i]
    # A threshold of many prompts (or none): their count is near its mean, the window min(T, j / λ).
    i = on & np.isfinite(T) & (j > HELD_TERMS)
    D = np.minimum(T[i], np.where(np.isfinite(j[i]), j[i] / lam1[i], np.inf))
    wait[i] = D * (m0[i] + 0.5 * lam[i] * D) / (m0[i] + lam[i] * D)
    count[i] = m0[i] + lam[i] * D
    # Otherwise the Poisson sums, on a grid over the window (Simpson's rule).
    i = np.flatnonzero(on & np.isfinite(T) & (j <= HELD_TERMS))
    if i.size:
        Ti, ji = T[i], j[i]
        mu = np.linspace(0.0, 1.0, HELD_GRID)[:, None] * (lam[i] * Ti)[None, :]  # λt, (grid, points)
        p = np.exp(-mu)
        below = np.zeros_like(mu)  # P(N(t) < j)
        mean_below = np.zeros_like(mu)  # E[N(t); N(t) < j]
        for n in range(int(ji.max())):
            m = n < ji
            below += np.where(m, p, 0.0)
            mean_below += np.where(m, n * p, 0.0)
            p = p * mu / (n + 1)
        w = np.full(HELD_GRID, 2.0)
        w[1::2] = 4.0
        w[0] = w[-1] = 1.0
        w = w[:, None] * (Ti / (3.0 * (HELD_GRID - 1)))[None, :]
        waits = m0[i] * (w * below).sum(0) + (w * mean_below).sum(0)
        # E[min(N(T), j)] = E[N(T); N(T) < j] + j P(N(T) >= j)
        count[i] = m0[i] + mean_below[-1] + ji * (1.0 - below[-1])
        wait[i] = waits / count[i]
    return wait.reshape(shape), count.reshape(shape)


def closed_loop(clients, input_len, output_len, decode_batches, decode_s, prefill_fixed_s, prefill_s_per_token,
                token_budget=8192, max_seqs=np.inf, think_s=0.0, synchronized=False, prompt_cv=0.0,
                chunk_tokens=None, poll_steps=1.0, burst_share=0.0, wait_steps=0.0, wait_tokens=np.inf) -> dict:
    """Steady state of `clients` closed-loop clients on one engine, per point (arrays broadcast).

    clients: concurrent requests on this engine; input_len / output_len: mean tokens (output
    >= 2, the first comes from the prefill); decode_batches (G,) and decode_s (points × G or G):
    decode step seconds by sequences decoding; prefill_fixed_s (c0) and prefill_s_per_token (c1):
    a prompt-only step of T tokens takes c0 + c1·T; token_budget: tokens per step; max_seqs:
    sequences the engine admits; think_s: client think time (s); synchronized: fixed-length
    clients that started together (groups) instead of staggered arrivals; prompt_cv: coefficient
    of variation of prompt lengths (the token-channel wait); chunk_tokens: the prefill chunk of a
    wave (default `token_budget`): a wave of N prompts (N · isl ≤ token_budget) is prefilled in
    m = ⌈N · isl / chunk_tokens⌉ prompt-only steps of c0 + c1 · N · isl / m each, so its requests'
    first tokens come after 1, 2, ..., m of them (mean TTFT (m + 1) / 2 steps) and the rest of the
    wave's prefill, which the early ones wait out before their second token, lands in their TPOT
    (mean TPOT = t_d(N) + (m − 1) / 2 steps / (osl − 1)); poll_steps: iterations between the
    scheduler's reads of new requests (staggered clients; 1 = every iteration); burst_share: share
    of the requests that arrived as the harness's opening wave of all clients at once (staggered
    clients; 0 = steady state only; both: see the module docstring); wait_steps / wait_tokens: a
    scheduler that holds prompts back until `wait_steps` iterations passed or the waiting prompt
    tokens plus the decode tokens reach `wait_tokens` (staggered clients; 0 / inf = no hold).

    Returns arrays: `throughput_rps` (requests/s), `output_tok_s`, `ttft_s`, `tpot_s`
    (mean step seen by a decoding request), `e2e_s`, `decoding` (mean sequences decoding),
    `prefill_share` (u_p), `batched_prompts` (prompts prefilled with a request), `admitted`
    (clients admitted, min(N, max_seqs))."""
    N, isl, osl, c0, c1, B, M, Z, sync, Q, P, W, T, H = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (clients, input_len, output_len, prefill_fixed_s, prefill_s_per_token,
                                               token_budget, max_seqs, think_s, synchronized,
                                               token_budget if chunk_tokens is None else chunk_tokens,
                                               poll_steps, burst_share, wait_steps, wait_tokens)))
    sync = sync > 0
    shape = N.shape
    grid = np.asarray(decode_batches, dtype=float)
    table = np.broadcast_to(np.asarray(decode_s, dtype=float), shape + (grid.size,))
    if np.any(N < 1) or np.any(osl < 2) or np.any(isl < 1):
        raise ValueError("closed loop needs >= 1 client, input_len >= 1 and output_len >= 2")
    if np.any(P < 1) or np.any((W < 0) | (W > 1)) or np.any(T < 0) or np.any(H <= 0) \
            or np.any(~np.isfinite(T) & ~np.isfinite(H)):
        raise ValueError("closed loop needs poll_steps >= 1, 0 <= burst_share <= 1, wait_steps >= 0, "
                         "wait_tokens > 0 and a finite one of them")
    P = np.where(sync, 1.0, P)
    W = np.where(sync, 0.0, W)
    T = np.where(sync, 0.0, T)
    holds = bool(np.any(T > 0))
    Neff = np.maximum(np.minimum(N, M), 1.0)
    L = osl - 1.0
    cv2 = float(prompt_cv) ** 2
    wave = sync & (Neff * isl <= B)  # every prompt in one step: prefill all, then decode all
    chunks = np.where(wave, np.maximum(np.ceil(Neff * isl / np.maximum(Q, 1.0) - 1e-9), 1.0), 1.0)

    def state(n):
        seen = np.where(wave, Neff, n)  # in waves the decode steps carry every client
        td = interp_rows(np.maximum(seen, grid[0]), grid, table)
        beff = np.where(wave, B, np.maximum(B - n, 1.0))
        groups = Neff * isl / beff
        # The prompts a decoding request sits through are the other clients' (its own was prefilled
        # before its first decode step): staggered, (N - 1) / N of the prefill work (none with one
        # client); synchronized, the other groups' prefills.
        share = np.where(sync, np.clip((groups - 1.0) / np.maximum(groups, 1.0), 0.0, 1.0), (Neff - 1.0) / Neff)
        # y = u_p solves n (1 - y) c = y L td (1 - (1 - share) y), c = isl c1 / 1 (smaller root).
        a = (1.0 - share) * L * td
        b = L * td + n * isl * c1
        c = n * isl * c1
        y = np.where(c > 0, 2.0 * c / (b + np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))), 0.0)
        y = np.minimum(y, 1.0 - 1e-12)
        tau = td * (1.0 + share * y / (1.0 - y))
        X = n / (L * tau)
        per_step = X * tau * (Neff - 1.0) / Neff  # other clients' prompts arriving during one step
        # A held batch (wait_steps): open to the timeout or the token threshold, over decode-only
        # steps (nothing is prefilled while prompts are held).
        more = np.maximum(np.ceil((H - n - isl) / isl - 1e-9), 0.0)  # prompts after the first to flush
        rate = X * (Neff - 1.0) / Neff  # other clients' prompts per second
        held_steps, held_k = held_batch(rate * td, T, more) if holds else (0.0, 1.0)
        for _ in range(2 if holds else 0):  # the prompts that arrive while a batch is prefilled open the next
            start = 1.0 + rate * c1 * held_k * isl
            held_steps, held_k = held_batch(rate * td, T, more, np.where(T > 0, start, 1.0))
        k = np.where(sync, np.clip(beff / isl, 1.0, Neff), held_k + P * per_step)
        base = np.where(wave, c0, np.maximum(td, c0))
        fits = k * isl <= beff
        steps = np.where(fits, 1.0, np.maximum(1.0, isl * (1.0 + (k - 1.0) / 2.0) / beff))
        step = base + c1 * np.minimum(k * isl, beff)  # a step carrying the request's prompts
        # A wave's prefill in `chunks` prompt-only steps: the mean request's first token after
        # (chunks + 1) / 2 of them; the rest of the wave's prefill is waited out before decoding.
        chunk_step = np.where(wave, (chunks * base + c1 * np.minimum(k * isl, beff)) / chunks, step)
        own = np.where(wave, 0.5 * (chunks + 1.0) * chunk_step, steps * step)
        held = np.where(wave, 0.5 * (chunks - 1.0) * chunk_step / L, 0.0)  # per decode step
        # The step in progress on arrival: staggered, a mean step; synchronized, the previous
        # group's prefill step (groups finish on consecutive steps) but for a burst's first group.
        # Nothing runs when the request's group is every client (waves) or it is the only client.
        inflight = np.where(sync, (1.0 - 1.0 / np.maximum(groups, 1.0)) * step + td / np.maximum(groups, 1.0), tau)
        residual = np.where(wave | (Neff <= 1.0), 0.0, np.where(Z > 0, 0.5, 1.0) * inflight
                            + (0.5 * (P - 1.0) * tau + held_steps * td) * (Neff - 1.0) / Neff)
        # Prompts queue for the prefill time (an M/G/1 queue in time: utilization y, the prefill
        # share; service one prompt's prefill); prompts that fit one step together (m per step)
        # share it, so only 1/m of the queue is waited for.
        per_step_max = np.maximum(np.floor(beff / isl), 1.0)
        service = base + c1 * np.minimum(isl, beff) * np.maximum(isl / beff, 1.0)
        others = (Neff - 1.0) / Neff  # a client's own earlier prompt is never ahead of it
        wait = np.where(sync, 0.0, others * y * service * (1.0 + cv2) / (2.0 * (1.0 - y)) / per_step_max)
        ttft = residual + own + wait
        tau = tau + held
        X = n / (L * tau)
        return dict(X=X, tau=tau, ttft=ttft, y=y, k=k, td=td, own=own, inflight=inflight, groups=groups,
                    pop=X * (ttft + L * tau + Z))

    lo = np.zeros(shape)
    hi = Neff.copy()
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        over = state(mid)["pop"] > Neff
        hi = np.where(over, mid, hi)
        lo = np.where(over, lo, mid)
    n = 0.5 * (lo + hi)
    s = state(n)
    X, tau = s["X"], s["tau"]
    # Clients beyond those admitted wait for admission: Little's law over all N.
    ttft = np.where(N > Neff, N / X - L * tau - Z, s["ttft"])
    admission = ttft - s["ttft"]
    steady = ttft
    # The harness's opening wave (staggered clients started together): the admitted clients'
    # prompts prefilled in chunks, first tokens after (m + 1) / 2 chunk steps on average, the rest
    # of the wave's prefill waited out before the second token.
    m = np.maximum(np.ceil(Neff * isl / np.maximum(Q, 1.0) - 1e-9), 1.0)
    chunk_step = c0 + c1 * Neff * isl / m
    ttft = (1.0 - W) * ttft + W * 0.5 * (m + 1.0) * chunk_step
    tau = tau + W * 0.5 * (m - 1.0) * chunk_step / L
    return {"throughput_rps": X, "output_tok_s": X * osl, "ttft_s": ttft, "tpot_s": tau,
            "e2e_s": ttft + L * tau, "decoding": n, "prefill_share": s["y"], "batched_prompts": s["k"],
            "admitted": Neff, "decode_step_s": s["td"], "own_prefill_s": s["own"], "in_progress_s": s["inflight"],
            "groups": np.where(sync & ~wave, s["groups"], 0.0), "admission_wait_s": admission,
            "steady_ttft_s": np.where(W < 0.5, steady, ttft)}


Z_QUANTILE = {50: 0.0, 90: 1.2815515655446004, 99: 2.3263478740408408}
"""Standard normal quantiles for the TPOT percentiles."""


def tpot_percentile_s(result: dict, q: int, synchronized, prompt_cv: float = 0.0) -> np.ndarray:
    """The q-th percentile over requests of per-request TPOT (s), from a `closed_loop` result.

    A request's TPOT is the decode step plus the prefill work interleaved during its decode
    phase, spread over its tokens. Staggered: the prompts prefilled meanwhile are about Poisson
    with mean n (Little's law: arrival rate x decode time = sequences decoding), of random length
    (CV `prompt_cv`), so their work has relative spread sqrt((1 + cv²) / n) (compound Poisson, as
    `queueing.tpot_p99_ms`). Synchronized groups each sit through the same other groups' prefills:
    no spread."""
    td, tau, n = result["decode_step_s"], result["tpot_s"], np.maximum(result["decoding"], 1.0)
    z = Z_QUANTILE[q]
    spread = np.where(np.asarray(synchronized, dtype=bool), 0.0, z * np.sqrt((1.0 + prompt_cv ** 2) / n))
    return td + (tau - td) * (1.0 + spread)


def ttft_median_s(result: dict) -> np.ndarray:
    """Median TTFT (s). Synchronized groups finish on consecutive steps: with two groups or more,
    all but the first group of a burst wait for the previous group's prefill step, so the median
    is that step plus the request's own prefill; otherwise (waves, one or two groups, staggered
    clients) the mean stands in (simulated staggered medians are 5-10% below the mean), the mean of
    the steady arrivals where the harness's opening wave is a minority of the requests."""
    g = result["groups"]
    step = (result["in_progress_s"] * g - result["decode_step_s"]) / np.maximum(g - 1.0, 1e-9)
    synced = result["own_prefill_s"] + step + result["admission_wait_s"]
    mean = result.get("steady_ttft_s", result["ttft_s"])
    return np.where(g >= 2.0, synced, mean)  # below two groups, no majority: the mean
