"""Serving metrics from a simulation: latency percentiles, throughput, goodput, utilisation.

Definitions (the ones benchmark tools use; times in ms unless named `_s`):
  - TTFT: first token time − arrival (with disaggregation, the prefill instance's first token).
  - TPOT: per request, (last token − first token) / (output tokens − 1), as vLLM's benchmark and
    MLPerf LoadGen report it; requests with one output token have none.
  - ITL: time between consecutive tokens of a sequence, over all tokens (a decode step of b
    sequences yields b intervals of its duration).
  - E2E: last token − arrival; queueing delay: first admission − arrival.
  - throughput: output tokens / span, where span runs from the first arrival to the last
    completion; goodput: requests meeting every SLO given / span; `steady_*`: the same inside
    the window between the 10% and 90% arrival quantiles (no empty start, no drain).
"""

from __future__ import annotations

import numpy as np

from tokenfab.serving.simulator import SimResult

PERCENTILES = (50, 90, 99)


def request_latencies(res: SimResult) -> dict[str, np.ndarray]:
    """Per-request TTFT, TPOT (NaN for single-token outputs), E2E and queueing delay, ms."""
    ttft = (res.t_first - res.arrival) * 1e3
    e2e = (res.t_done - res.arrival) * 1e3
    multi = res.output > 1
    tpot = np.full(len(res), np.nan)
    tpot[multi] = (res.t_done[multi] - res.t_first[multi]) / (res.output[multi] - 1) * 1e3
    queue = (res.t_admit - res.arrival) * 1e3
    return {"ttft": ttft, "tpot": tpot, "e2e": e2e, "queue": queue}


def percentile(values: np.ndarray, p: float) -> float | None:
    """The p-th percentile (linear interpolation) of the finite values, or None if there are none."""
    v = values[np.isfinite(values)]
    return float(np.percentile(v, p)) if len(v) else None


def weighted_percentile(values: np.ndarray, weights: np.ndarray, p: float) -> float | None:
    """p-th percentile of `values` repeated `weights` times (weights may be large integers)."""
    if len(values) == 0 or weights.sum() <= 0:
        return None
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    idx = int(np.searchsorted(cum, p / 100.0 * cum[-1], side="left"))
    return float(v[min(idx, len(v) - 1)])


def itl_samples(res: SimResult) -> tuple[np.ndarray, np.ndarray]:
    """(mean step seconds of each step or window, token intervals it produced)."""
    vals, wts = [], []
    for e in res.engines:
        if len(e["itl_n"]):
            vals.append(e["itl_dur"] / e["itl_k"])
            wts.append(e["itl_n"] * e["itl_k"])
    if not vals:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(vals), np.concatenate(wts).astype(float)


def meets_slo(res: SimResult, slo_ttft_ms: float | None, slo_tpot_ms: float | None) -> np.ndarray:
    """Per request: every given SLO met (a single-token request has no TPOT to miss)."""
    lat = request_latencies(res)
    ok = np.ones(len(res), dtype=bool)
    if slo_ttft_ms:
        ok &= lat["ttft"] <= slo_ttft_ms
    if slo_tpot_ms:
        ok &= ~(lat["tpot"] > slo_tpot_ms)
    return ok


def _time_weighted_mean(t: np.ndarray, v: np.ndarray, end: float) -> float:
    if len(t) == 0:
        return 0.0
    dt = np.diff(np.append(t, max(end, t[-1])))
    total = dt.sum()
    return float((v * dt).sum() / total) if total > 0 else float(v.mean())


def steady_rates(res: SimResult, lo: float = 0.1, hi: float = 0.9) -> tuple[float, float, float]:
    """(offered requests/s, completed requests/s, output tokens/s) inside the window between the
    arrivals of the `lo` and `hi` quantiles of requests, away from the empty start and the drain.
    Tokens of a request count at its first token and evenly between first and last token."""
    n = len(res)
    order = np.sort(res.arrival)
    a, b = float(order[int(lo * (n - 1))]), float(order[int(hi * (n - 1))])
    if b <= a:
        return 0.0, 0.0, 0.0
    w = b - a
    offered = float(((res.arrival >= a) & (res.arrival < b)).sum()) / w
    done = float(((res.t_done >= a) & (res.t_done < b)).sum()) / w
    first_in = ((res.t_first >= a) & (res.t_first < b)).astype(float)
    span = res.t_done - res.t_first
    overlap = np.clip(np.minimum(res.t_done, b) - np.maximum(res.t_first, a), 0.0, None)
    frac = np.where(span > 0, overlap / np.where(span > 0, span, 1.0), 0.0)
    tokens = float((first_in + frac * (res.output - 1)).sum())
    return offered, done, tokens / w


def summarize(res: SimResult, slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None,
              percentiles=PERCENTILES) -> dict:
    """Flat dict of metrics (keys like `ttft_ms_p99`, `throughput_tok_s`, `goodput_rps`)."""
    lat = request_latencies(res)
    out: dict = {}
    for name, v in lat.items():
        out[f"{name}_ms_mean"] = float(np.nanmean(v)) if np.isfinite(v).any() else None
        for p in percentiles:
            out[f"{name}_ms_p{p:g}"] = percentile(v, p)
    vals, wts = itl_samples(res)
    out["itl_ms_mean"] = float((vals * wts).sum() / wts.sum() * 1e3) if wts.sum() else None
    for p in percentiles:
        x = weighted_percentile(vals, wts, p)
        out[f"itl_ms_p{p:g}"] = None if x is None else x * 1e3
    t0 = float(res.arrival.min())
    t1 = float(res.t_done.max())
    span = max(t1 - t0, 1e-12)
    n = len(res)
    out_tok = int(res.output.sum())
    in_tok = int(res.prompt.sum())
    ok = meets_slo(res, slo_ttft_ms, slo_tpot_ms)
    out.update(
        requests=n,
        duration_s=span,
        offered_rps=(n - 1) / float(res.arrival.max() - t0) if n > 1 and res.arrival.max() > t0 else None,
        throughput_rps=n / span,
        throughput_tok_s=out_tok / span,
        total_tok_s=(out_tok + in_tok) / span,
        output_tokens=out_tok,
        input_tokens=in_tok,
        goodput_rps=int(ok.sum()) / span,
        slo_attainment=float(ok.mean()),
        slo_ttft_ms=slo_ttft_ms,
        slo_tpot_ms=slo_tpot_ms,
        preemptions=int(res.preemptions.sum()),
        prefix_cached_tokens=int(res.cached.sum()),
        kv_transfers=res.transfers["count"],
        kv_transfer_ms_mean=res.transfers["seconds"] / res.transfers["count"] * 1e3 if res.transfers["count"] else None,
    )
    offered, done, tok = steady_rates(res)
    out.update(steady_offered_rps=offered, steady_completed_rps=done, steady_output_tok_s=tok)
    batch, kv, kv_max, busy = [], [], [], []
    for e in res.engines:
        batch.append(_time_weighted_mean(e["t"], e["running"], t1))
        kv.append(_time_weighted_mean(e["t"], e["kv"], t1))
        kv_max.append(float(e["kv"].max()) if len(e["kv"]) else 0.0)
        busy.append(e["busy_s"] / span)
    out.update(batch_mean=float(np.mean(batch)), kv_util_mean=float(np.mean(kv)), kv_util_max=float(np.max(kv_max)),
               engine_busy_frac=float(np.mean(busy)), engines=len(res.engines),
               chips=res.deployment.total_chips, wall_s=res.wall_s,
               sim_requests_per_wall_s=n / res.wall_s if res.wall_s > 0 else None)
    out["output_tok_s_per_chip"] = out["throughput_tok_s"] / out["chips"] if out["chips"] else None
    return out


def chrome_trace(res: SimResult) -> dict:
    """Chrome/Perfetto trace JSON (`chrome://tracing`): one row per engine, one span per step or
    decode window (run with `record_trace=True`)."""
    events = []
    for e in res.engines:
        events.append({"name": "process_name", "ph": "M", "pid": e["index"],
                       "args": {"name": f"engine {e['index']} ({e['role']})"}})
    for idx, start, dur, kind, n, k, ptok in res.trace or []:
        name = (f"prefill {ptok} tok + decode {n}" if kind == 1 else
                f"prefill {ptok} tok" + (f" ({n} decodes wait)" if n else "") if kind == 3 else f"decode {n} × {k} steps")
        events.append({"name": name, "ph": "X", "pid": idx, "tid": 0, "ts": start * 1e6, "dur": dur * 1e6,
                       "args": {"decode_seqs": n, "steps": k, "prefill_tokens": ptok}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def time_series(res: SimResult, points: int = 2000) -> dict[str, np.ndarray]:
    """Running sequences, waiting requests and KV-cache use summed/averaged over engines on a
    regular time grid (for plots)."""
    t1 = float(res.t_done.max())
    t0 = float(res.arrival.min())
    grid = np.linspace(t0, t1, points)
    run = np.zeros(points)
    wait = np.zeros(points)
    kv = np.zeros(points)
    for e in res.engines:
        if not len(e["t"]):
            continue
        idx = np.searchsorted(e["t"], grid, side="right") - 1
        valid = idx >= 0
        run[valid] += e["running"][idx[valid]]
        wait[valid] += e["waiting"][idx[valid]]
        kv[valid] += e["kv"][idx[valid]]
    return {"t_s": grid, "running": run, "waiting": wait, "kv_util": kv / max(len(res.engines), 1)}
