"""Checks a measurement set must pass before anything is fitted or scored on it.

A closed-loop benchmark run (`--max-concurrency N`: N clients, each sending its next request when
the last one finishes) obeys Little's law, N = X · E2E: the requests in flight equal the request
rate times the time each request spends in the system, and E2E ≥ TTFT + (osl − 1) · TPOT. A
source whose throughput, TTFT and TPOT for one run imply far more requests in flight than its
stated concurrency reports figures with different definitions or time bases, and no single model
of the run can match them all.
"""

from __future__ import annotations

from collections import defaultdict

LITTLE_TOLERANCE = 1.25
"""In-flight requests implied by the figures may exceed the stated concurrency by this factor
(means over a finite run, ramp-up and ramp-down, rounded published figures) before a run is
called inconsistent."""

_THROUGHPUT = {"output_tok_s": "output", "total_tok_s": "total", "input_tok_s": "input"}


def implied_in_flight(requests_s: float, output_len: float, tpot_ms: float, ttft_ms: float = 0.0) -> float:
    """Requests in flight that a request rate and per-request latencies imply (Little's law):
    requests_s × (TTFT + (output_len − 1) × TPOT); a lower bound, as E2E also holds the time
    before admission and after the last token."""
    return requests_s * (ttft_ms + max(output_len - 1.0, 0.0) * tpot_ms) * 1e-3


def requests_per_s(metric: str, value: float, input_len: float, output_len: float) -> float:
    """Request rate of a token-throughput figure (tokens/s divided by the tokens each request
    contributes to that metric)."""
    kind = _THROUGHPUT[metric]
    tokens = {"output": output_len, "total": input_len + output_len, "input": input_len}[kind]
    return value / tokens


def closed_loop_violations(rows) -> list[tuple[tuple[str, ...], float]]:
    """Runs (rows of one source, chip, model, chip count, concurrency and lengths) whose figures
    imply more than `LITTLE_TOLERANCE` × the stated concurrency in flight: ([row ids], ratio).
    `rows`: MeasurementRow-like objects (usable ones only are looked at; concurrency is `batch`)."""
    runs: dict[tuple, dict[str, object]] = defaultdict(dict)
    for r in rows:
        if not getattr(r, "usable", True) or not r.batch or not r.input_len or not r.output_len:
            continue
        if r.metric not in _THROUGHPUT and r.metric not in ("tpot_ms_mean", "ttft_ms_mean"):
            continue
        key = (r.source_ref, r.hardware, r.model, r.num_chips, r.batch, r.input_len, r.output_len)
        runs[key][r.metric] = r
    bad = []
    for key, m in runs.items():
        tput = next((m[k] for k in _THROUGHPUT if k in m), None)
        if tput is None or "tpot_ms_mean" not in m:
            continue
        chips = float(tput.num_chips or 1) if tput.per == "chip" else 1.0
        rate = requests_per_s(tput.metric, tput.value * chips, float(tput.input_len), float(tput.output_len))
        ttft = m["ttft_ms_mean"].value if "ttft_ms_mean" in m else 0.0
        ratio = implied_in_flight(rate, float(tput.output_len), m["tpot_ms_mean"].value, ttft) / float(tput.batch)
        if ratio > LITTLE_TOLERANCE:
            bad.append((tuple(sorted(x.id for x in m.values())), ratio))
    return bad
