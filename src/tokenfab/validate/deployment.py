"""Predictions for end-to-end rows: build the deployment a row describes and ask the engine.

- MLPerf Offline and fixed-length throughput rows: the highest-throughput mapping with no latency
  limit at the row's chip count (and its TP/PP/EP where stated).
- MLPerf Server / Interactive throughput: the best mapping whose p99 TTFT (prefill queueing
  under Poisson arrivals, `validate.queueing`) and p99 TPOT meet the scenario's limits (MLPerf
  bounds both p99s). The TPOT tail is the prefill work interleaved with a request's decode
  (compound Poisson) over the dataset's output lengths where it publishes them
  (`output_tokens_rel_quantiles`): short answers share few steps, and a step that carries a
  prefill chunk is a large part of their time. With fixed lengths the modelled p99/mean is
  ~1.05, narrower than the logged 1.13-1.38; the output-length spread is most of the gap.
- Server mean TTFT / TPOT: at the server operating point, the highest load meeting the limits,
  which is where a tuned MLPerf run sets loadgen's target_qps. Pinning the load relative to the
  predicted capacity rather than at the logged absolute target_qps keeps a capacity error from
  being amplified by the steep latency-vs-load curve near saturation (the offered-load value is
  reported in the detail).
- Decode rows (disaggregated decode): decode-only throughput per chip at the stated parallelism,
  context length and per-user speed, or at the stated batch; a TPOT metric gets the step time.
- A stated operating point (`operating_point`): a concurrency (the `batch` column or the notes)
  is predicted in a closed loop (`mapping.closed_loop`: throughput, mean TTFT, TPOT and E2E
  together); a request rate on a server row outside MLPerf in an open loop (Poisson, the offered
  load up to the capacity); disaggregated prefill/decode on separate pools. Only what the row
  leaves open is searched, and the detail string says what was stated and what was searched.
- Server rows outside MLPerf get neither MLPerf's latency limits nor its dataset lengths; without
  a stated load or limits they are the benchmark's maximum load.
Precision: the row's weight format when stated, else every format the chip computes natively
(the search keeps the fastest, as a submitter would).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenfab import api, catalog
from tokenfab.validate.queueing import tpot_p99_ms, ttft_with_queueing_ms
from tokenfab.mapping.search import SearchSpace, evaluate
from tokenfab.graph.speculative import tokens_per_step
from tokenfab.perf.framework import efficiency_under  # the row's `framework` profile
from tokenfab.validate.disaggregated import pools_from_notes, predict_pools_at_concurrency, with_row_mtp
from tokenfab.validate.workloads import with_row_media
from tokenfab.specs import SpecError, SystemSpec, Traffic
from tokenfab.validate.datasets import Lengths, is_mlperf, lengths_for, mlperf_benchmark_for, target_qps
from tokenfab.validate.micro import Unpredictable
from tokenfab.validate.operating_point import (
    CLOSED_LOOP_SCENARIOS,
    TOKEN_BUDGET,
    OperatingPoint,
    operating_point,
    predict_closed_loop,
    stated_chunk_tokens,
)

PERCENTILE_METRICS = ("ttft_ms_p50", "ttft_ms_p90", "tpot_ms_p50", "tpot_ms_p90")
"""Percentiles the queueing approximation does not give (it models the mean and the p99)."""
LOAD_BATCHES = tuple(range(1, 64)) + tuple(range(64, 4097, 16))
SERVER_BATCHES = tuple(range(1, 64)) + tuple(range(64, 2049, 16))
"""Batches the server search tries: fine enough for a latency limit to bind, capped like the API's."""


@dataclass(frozen=True)
class DeploymentPrediction:
    value: float
    detail: str


def _precisions(row, chip) -> tuple[str, ...]:
    if row.weight_precision:
        return (row.weight_precision,)
    formats = ["bf16"]
    if chip.fp8_tflops:
        formats.append("fp8")
    if chip.fp4_tflops:
        formats.append("fp4")
    return tuple(formats)


def _slo(row) -> tuple[float | None, float | None]:
    ttft, tpot = row.slo_ttft_ms, row.slo_tpot_ms
    if row.scenario in ("server", "interactive") and not (ttft or tpot) and is_mlperf(row):
        _, entry = mlperf_benchmark_for(row.model)
        limits = (entry or {}).get("slo_ms", {}).get(row.scenario, {})
        ttft, tpot = limits.get("ttft"), limits.get("tpot")
    if row.scenario in ("offline", "throughput", "prefill"):
        return None, None
    return ttft, tpot


def _num_chips(row) -> int:
    if row.num_chips:
        return int(row.num_chips)
    n = (row.tp or 1) * (row.pp or 1) * (row.dp or 1)
    return int(n)


def _best_estimate(row, model, chip, traffic: Traffic, n: int, **deployment):
    """The best `api.estimate` of the row's deployment over its possible precisions (meeting the
    SLOs first, then output tok/s per chip). `deployment`: mode and pool options; default: one
    aggregated pool of the row's `n` chips at its stated layout."""
    kwargs = deployment or dict(num_chips=n, batch=row.batch if row.scenario in ("decode", "prefill") else None,
                                max_chips=n, mode="aggregated")
    kwargs = {**kwargs, "prefill_chunk_tokens": stated_chunk_tokens(row)}
    best, errors = None, []
    for prec in _precisions(row, chip):
        try:
            est = api.estimate(model, chip, traffic, tp=row.tp, pp=row.pp, ep=row.ep, precision=prec,
                               kv_precision=row.kv_precision, mtp=bool(traffic.draft_tokens),
                               framework=_framework(row, chip), **kwargs)
        except SpecError as exc:
            errors.append(str(exc))
            continue
        key = (est.meets_slo, est.output_tok_s_per_chip)
        if best is None or key > (best.meets_slo, best.output_tok_s_per_chip):
            best = est
    if best is None:
        what = "disaggregated deployment" if kwargs.get("mode") == "disaggregated" else "mapping"
        raise Unpredictable(f"no {what} fits: {errors[0] if errors else 'no precision'}")
    return best


def _framework(row, chip) -> str | None:
    """The row's serving framework as a profile name the API takes (None: unknown harness, neutral)."""
    from tokenfab.perf.framework import profile_for
    return profile_for(row.framework, chip.vendor).id if row.framework else None


def _grid(row, model, chip, traffic: Traffic, n: int, precisions, tp=None, pp=None, ep=None,
          batches=SERVER_BATCHES, chunk_tokens: int | None = None):
    space = SearchSpace(num_chips=(n,), tp=(tp,) if tp else None, pp=(pp,) if pp else None,
                        ep=(ep,) if ep else None, batch=batches, precisions=tuple(precisions),
                        kv_precision=row.kv_precision, prefill_chunk_tokens=chunk_tokens)
    eff = efficiency_under(chip, row.framework, model.is_moe)
    return evaluate(model, chip, SystemSpec.for_chip(chip), eff, traffic, space, max_chip_count=n)


def _queue_shape(row) -> tuple[float, float]:
    """(prompt-length CV, p99/mean prompt length) of the row's dataset; fixed lengths: (0, 1)."""
    _, entry = mlperf_benchmark_for(row.model)
    if row.input_len is None and entry and entry.get("input_tokens_mean"):
        cv = float(entry.get("input_tokens_cv") or 1.0)
        r99 = float(entry.get("input_tokens_p99") or entry["input_tokens_mean"]) / float(entry["input_tokens_mean"])
        return cv, r99
    return 0.0, 1.0


def _output_rel(row) -> tuple[float, ...] | None:
    """The row's dataset output lengths relative to their mean (quantile nodes,
    `output_tokens_rel_quantiles`) where it is an MLPerf row and its dataset has them (an MLPerf
    run serves the whole dataset: a stated output length is that run's logged mean, the spread
    the dataset's); None: fixed lengths (`queueing.tpot_tail_factor`)."""
    _, entry = mlperf_benchmark_for(row.model)
    if entry and entry.get("output_tokens_rel_quantiles") and is_mlperf(row):
        return tuple(float(x) for x in entry["output_tokens_rel_quantiles"])
    return None


TIE_FRACTION = 0.98
CHUNK_BUDGETS = (2048, 4096, 8192)
"""Prefill token budgets a server may be configured with: under a TTFT limit a smaller chunk
trades prefill efficiency for a shorter iteration."""


def _concat(results):
    first = results[0]
    arrays = {k: np.concatenate([r.arrays[k] for r in results]) for k in first.arrays}
    from tokenfab.mapping.search import GridResult
    return GridResult(arrays, first.precisions, first.kv_precisions)


_SERVER_CACHE: dict[tuple, tuple] = {}
"""`_server` results by everything they depend on: an MLPerf run's throughput, TTFT and TPOT rows
(mean and p99) share one search. A pure function of its key, so the cache changes no figure; the
efficiency in the key follows profile overrides and calibration-directory changes."""
_SERVER_CACHE_MAX = 64


def _server(row, model, chip, traffic: Traffic, n: int):
    """Best mapping point under the scenario's limits with prefill queueing: p99 TTFT (M/G/1 tail)
    and p99 TPOT (the prefill work a request's decode shares, over the dataset's prompt and output
    lengths), over mappings, batches and prefill chunk budgets. Returns (grid, index, met); the grid
    is shared by rows of the same search (`_SERVER_CACHE`): read it, do not change it."""
    key = (model.model_dump_json(), chip.model_dump_json(), efficiency_under(chip, row.framework, model.is_moe),
           traffic, n, _precisions(row, chip), row.tp, row.pp, row.ep, row.kv_precision, _queue_shape(row),
           _output_rel(row), stated_chunk_tokens(row))
    if key not in _SERVER_CACHE:
        if len(_SERVER_CACHE) >= _SERVER_CACHE_MAX:
            _SERVER_CACHE.clear()
        _SERVER_CACHE[key] = _server_search(row, model, chip, traffic, n)
    return _SERVER_CACHE[key]


def _server_search(row, model, chip, traffic: Traffic, n: int):
    """`_server` without the cache."""
    free = traffic.model_copy(update={"slo_ttft_ms": None, "slo_tpot_ms": None})
    # A stated budget (TensorRT-LLM's max_num_tokens, vLLM's max_num_batched_tokens) caps a forward;
    # under a latency limit the scheduler runs fewer tokens than the cap when fewer wait.
    cap = stated_chunk_tokens(row)
    budgets = CHUNK_BUDGETS if cap is None else tuple(sorted({c for c in CHUNK_BUDGETS if c < cap} | {cap}))
    parts = [_grid(row, model, chip, free, n, _precisions(row, chip), row.tp, row.pp, row.ep, chunk_tokens=c)
             for c in budgets]
    if len(parts[0]) == 0:
        raise Unpredictable("no mapping with the stated parallelism")
    res = _concat(parts)
    res.extras["chunk_tokens"] = np.concatenate([np.full(len(p), c) for p, c in zip(parts, budgets)])
    a = res.arrays
    cv, r99 = _queue_shape(row)
    # The p99 TTFT (a bisection per point) only where it can decide: points that fit, meet the
    # TPOT limit and whose TTFT without any wait is within the TTFT limit; all fitting points
    # when none of those meets it (the least-missing point is then chosen).
    cand = a["fits"].copy()
    out_rel = _output_rel(row)
    tpot_p99 = tpot_p99_ms(a, cv, out_rel)  # MLPerf's TPOT limit is on the p99 over requests
    if traffic.slo_tpot_ms:
        cand &= tpot_p99 <= traffic.slo_tpot_ms
    if traffic.slo_ttft_ms:
        cand &= a["prefill_ms"] + 2.0 * a["decode_step_ms"] <= traffic.slo_ttft_ms
    q = _queue_where(a, cand, cv, r99)
    if traffic.slo_ttft_ms and not (cand & (q["ttft_p99_ms"] <= traffic.slo_ttft_ms)).any():
        q = _queue_where(a, a["fits"], cv, r99)
    res.extras["queue"] = q
    res.extras["cv"] = cv
    res.extras["tpot_p99_ms"] = tpot_p99
    ok = a["fits"].copy()
    miss = np.zeros(len(res))
    if traffic.slo_ttft_ms:
        ok &= q["ttft_p99_ms"] <= traffic.slo_ttft_ms
        miss = np.maximum(miss, q["ttft_p99_ms"] / traffic.slo_ttft_ms)
    if traffic.slo_tpot_ms:
        ok &= tpot_p99 <= traffic.slo_tpot_ms
        miss = np.maximum(miss, tpot_p99 / traffic.slo_tpot_ms)
    if not a["fits"].any():
        raise Unpredictable("nothing fits memory")
    if ok.any():
        # Among points within 2% of the best throughput an operator keeps the one with the most
        # latency headroom (throughput is flat there; latency is not).
        tput = np.where(ok, a["output_tok_s_per_chip"], -np.inf)
        near = ok & (tput >= TIE_FRACTION * tput.max())
        return res, int(np.argmin(np.where(near, q["ttft_p99_ms"], np.inf))), True
    return res, int(np.argmin(np.where(a["fits"], miss, np.inf))), False


def _queue_where(a: dict, mask: np.ndarray, cv: float, r99: float) -> dict:
    """`ttft_with_queueing_ms` on the points of `mask`; inf elsewhere."""
    out = {k: np.full(len(mask), np.inf) for k in ("ttft_mean_ms", "ttft_p99_ms", "prefill_wait_mean_ms",
                                                    "prefill_utilization")}
    if mask.any():
        sub = ttft_with_queueing_ms({k: v[mask] for k, v in a.items()}, cv, r99)
        for k in out:
            out[k][mask] = sub[k]
    return out


def _describe(res, i: int, met: bool) -> str:
    p = res.point(i)
    chunk = res.extras.get("chunk_tokens")
    q = res.extras.get("queue")
    extra = ""
    if chunk is not None and q is not None:
        extra = (f", chunk {int(chunk[i])} tok, TTFT p99 {q['ttft_p99_ms'][i]:.0f} ms, "
                 f"TPOT {p['tpot_ms']:.0f} ms, prefill util {q['prefill_utilization'][i]:.2f}")
    return (f"{res.precisions[p['prec']]} tp{p['tp']} pp{p['pp']} ep{p['ep']} dp{p['dp']} batch {p['batch']}"
            + extra + ("" if met else " (misses limits)"))


def _at_operating_point(res, i: int) -> dict[str, float]:
    """Mean and p99 TTFT / TPOT (ms) at the server operating point itself (the highest load
    meeting the limits, which is where a tuned MLPerf server run sets target_qps)."""
    q = res.extras["queue"]
    return {"ttft": float(q["ttft_mean_ms"][i]), "tpot": float(res.arrays["tpot_ms"][i]),
            "ttft_p99": float(q["ttft_p99_ms"][i]),
            "tpot_p99": float(res.extras["tpot_p99_ms"][i])}


def _at_offered_load(row, model, chip, traffic: Traffic, res, i: int, n: int, qps: float) -> dict[str, float]:
    """Mean TTFT / TPOT (ms) of the server mapping at the smallest batch serving `qps` requests/s.

    At that load the prompts waiting at a scheduling step are the arrivals of one decode step
    (about qps_replica x step time), so the prefill chunk is load-dependent; the prompt also waits
    for the replica's prefill queue (M/G/1 mean wait)."""
    p = res.point(i)
    prec = res.precisions[p["prec"]]
    budget = int(res.extras["chunk_tokens"][i])
    sweep = _grid(row, model, chip, traffic, n, (prec,), p["tp"], p["pp"], p["ep"], chunk_tokens=budget)
    a = sweep.arrays
    ok = a["fits"]
    if not ok.any():
        raise Unpredictable("the server mapping does not fit at any batch")
    order = np.argsort(a["batch"][ok])
    pick = lambda key: a[key][ok][order].astype(float)  # noqa: E731
    batch, rate = pick("batch"), pick("output_tok_s_per_chip") * n / traffic.output_len
    if rate[-1] < qps:  # the offered load exceeds the predicted capacity: saturated point
        j, w, saturated = len(rate) - 1, 0.0, True
    else:
        j = max(int(np.argmax(rate >= qps)), 1)
        w, saturated = float((qps - rate[j - 1]) / (rate[j] - rate[j - 1])), False
    lerp = lambda x: float(x[j - 1] + w * (x[j] - x[j - 1])) if j > 0 else float(x[j])  # noqa: E731
    b, tpot, dec_ms = lerp(batch), lerp(pick("tpot_ms")), lerp(pick("decode_step_ms"))
    replicas = float(p["dp"])
    k_load = max(1.0, (qps / replicas) * dec_ms * 1e-3)
    chunk = int(max(1, min(round(k_load * traffic.input_len), budget)))
    at = _grid(row, model, chip, traffic, n, (prec,), p["tp"], p["pp"], p["ep"],
               batches=(int(max(1, round(b))),), chunk_tokens=chunk)
    cv, _ = _queue_shape(row)
    q = ttft_with_queueing_ms(at.arrays, cv)
    return {"ttft": float(q["ttft_mean_ms"][0]), "tpot": tpot, "batch": b, "saturated": float(saturated)}


def _decode_only(row, model, chip, traffic: Traffic, n: int) -> DeploymentPrediction:
    """Decode-pool throughput per chip: the largest batch whose step time meets the per-user speed."""
    eff = efficiency_under(chip, row.framework, model.is_moe)
    space = SearchSpace(num_chips=(n,), tp=(row.tp,) if row.tp else (1,), pp=(row.pp,) if row.pp else (1,),
                        ep=(row.ep,) if row.ep else None, batch=LOAD_BATCHES,
                        precisions=_precisions(row, chip), kv_precision=row.kv_precision)
    res = evaluate(model, chip, SystemSpec.for_chip(chip), eff, traffic, space, max_chip_count=n)
    a = res.arrays
    if len(res) == 0:
        raise Unpredictable("no mapping with the stated parallelism")
    tps = tokens_per_step(traffic.draft_tokens, traffic.draft_acceptance)  # MTP: tokens a step emits
    tok_s_chip = a["batch"] * a["dp"] * tps / (a["decode_step_ms"] * 1e-3) / a["num_chips"]
    ok = a["fits"].copy()
    stated = ""
    if row.batch:  # stated concurrent sequences of the pool: per rank batch / dp (nearest tried)
        want = np.maximum(row.batch / a["dp"], 1.0)
        tried = np.asarray(LOAD_BATCHES, dtype=float)
        nearest = tried[np.argmin(np.abs(tried[None, :] - want[:, None]), axis=1)]
        ok &= a["batch"] == nearest
        stated = f"stated batch {row.batch}; "
    elif row.slo_tpot_ms:
        ok &= a["decode_step_ms"] / tps <= row.slo_tpot_ms
    if not ok.any():
        raise Unpredictable("no decode batch fits memory and the per-user speed")
    i = int(np.argmax(np.where(ok, tok_s_chip, -np.inf)))
    detail = (f"{stated}decode-only tp{int(a['tp'][i])} ep{int(a['ep'][i])} dp{int(a['dp'][i])} "
              f"batch {int(a['batch'][i])}/rank, step {float(a['decode_step_ms'][i]):.1f} ms")
    if row.metric in ("tpot_ms_mean", "tpot_ms_p50"):
        return DeploymentPrediction(float(a["decode_step_ms"][i]) / tps, detail)
    if row.metric not in ("output_tok_s", None):
        raise Unpredictable(f"metric {row.metric} not modelled for decode rows")
    value = float(tok_s_chip[i]) if row.per == "chip" else float(tok_s_chip[i]) * n
    return DeploymentPrediction(value, detail)


def _lognormal(mean: float, cv: float):
    """Length distribution of a dataset with this mean and coefficient of variation (fixed if cv = 0)."""
    import math

    from tokenfab.serving.traffic import LengthSpec

    if cv <= 0:
        return LengthSpec(kind="fixed", value=max(int(round(mean)), 1))
    sigma = math.sqrt(math.log(1.0 + cv * cv))
    median = mean / math.exp(sigma * sigma / 2.0)
    return LengthSpec(kind="lognormal", median=max(int(round(median)), 1), sigma=sigma, min=1,
                      max=max(int(8 * mean), 16))


def _server_by_simulation(row, model, chip, traffic: Traffic, n: int, res, i: int) -> tuple[float, str]:
    """MLPerf server capacity by discrete-event simulation: the highest Poisson request rate at
    which the serving simulator (continuous batching, chunked prefill, KV blocks) on the mapping
    the steady-state search chose keeps the p99 TTFT and p99 TPOT within the scenario's limits —
    what a submitter tunes target_qps to. Prompt lengths follow the dataset's mean and CV
    (lognormal); output lengths are the mean (their spread is not published). Returns
    (output tokens/s of the system, detail)."""
    from tokenfab.serving.deployment import build_deployment
    from tokenfab.serving.plan import max_rate
    from tokenfab.serving.steptime import Mapping
    from tokenfab.serving.traffic import TrafficProfile, generate

    p = res.point(i)
    cv, _ = _queue_shape(row)
    prof = TrafficProfile(name="mlperf-server", input=_lognormal(traffic.input_len, cv),
                          output=_lognormal(traffic.output_len, 0.0))
    unit = generate(prof, 1.0, 40_000, 0)
    mapping = Mapping(num_chips=n, tp=p["tp"], pp=p["pp"], ep=p["ep"], dp=p["dp"], batch=p["batch"],
                      weight_precision=res.precisions[p["prec"]], kv_precision=res.kv_precisions[p["prec"]])
    d = build_deployment(model, chip, unit, mapping=mapping, token_budget=int(res.extras["chunk_tokens"][i]))
    search = max_rate(d, unit, traffic.slo_ttft_ms, traffic.slo_tpot_ms, 99.0, 0.03, min_requests=1500)
    if not search.feasible:
        raise Unpredictable(f"simulated server misses the limits at any rate: {search.reason}")
    m = search.metrics
    detail = (f"simulated: {search.max_rate_rps:.3g} req/s, TTFT p99 {m['ttft_ms_p99']:.0f} ms, "
              f"TPOT p99 {m['tpot_ms_p99']:.0f} ms")
    return search.max_rate_rps * unit.head(2000).mean_lengths()[1], detail


def predict_deployment(row, server_sim: bool = False) -> DeploymentPrediction:
    """Predicted value of an end-to-end row in its metric unit (raises Unpredictable).

    `server_sim`: MLPerf server/interactive throughput rows by discrete-event simulation of the
    chosen mapping (`_server_by_simulation`, seconds a row) instead of the M/G/1 steady state."""
    op = operating_point(row)
    closed = bool(op.concurrency) and row.scenario in CLOSED_LOOP_SCENARIOS
    if row.metric in PERCENTILE_METRICS and not closed:
        raise Unpredictable("p50/p90 latency needs the serving simulator (the queueing model gives mean and p99)")
    if row.metric == "e2e_latency_ms_mean" and not closed:
        raise Unpredictable("end-to-end request latency is modelled at a stated concurrency only")
    try:
        chip = catalog.load_chip(row.hardware)
    except SpecError:
        raise Unpredictable(f"chip {row.hardware} is not in the catalog") from None
    try:
        model = catalog.load_model(row.model)
    except SpecError:
        raise Unpredictable(f"model {row.model} is not in the catalog") from None
    lengths: Lengths = lengths_for(row)
    if lengths.beams > 1:
        raise Unpredictable(f"beam search ({lengths.beams} beams) is not modelled")
    if row.scenario == "decode":
        isl = lengths.input_len or lengths.output_len
        if not isl:
            raise Unpredictable("decode context length not stated")
        traffic, mtp_note = with_row_mtp(Traffic(input_len=max(int(round(isl)), 1), output_len=1), row.notes)
        return _decode_only(row, model, chip, traffic, _num_chips(row))
    if lengths.input_len is None:
        raise Unpredictable("mean input length unknown (not published for this benchmark)")
    if lengths.output_len is None:
        raise Unpredictable("mean output length unknown")
    ttft_slo, tpot_slo = _slo(row)
    traffic = Traffic(input_len=max(int(round(lengths.input_len)), 1), output_len=max(int(round(lengths.output_len)), 1),
                      slo_ttft_ms=ttft_slo, slo_tpot_ms=tpot_slo)
    traffic, mtp_note = with_row_mtp(traffic, row.notes)
    traffic = with_row_media(traffic, row.notes)  # VLM rows: the images' tokens join the prompt
    n = _num_chips(row)
    scale = 1.0 if row.per == "chip" else float(n)
    if closed and op.disaggregated and pools_from_notes(row.notes):
        eff = efficiency_under(chip, row.framework, model.is_moe)
        values, detail = predict_pools_at_concurrency(row, model, chip, traffic, int(op.concurrency),
                                                      _precisions(row, chip), eff, mtp_note)
        return _closed_loop_value(row, values, n, detail)
    if closed:
        values, detail = predict_closed_loop(row, model, chip, traffic, n, op, _grid, _precisions(row, chip),
                                             _queue_shape(row)[0])
        return _closed_loop_value(row, values, n, detail)
    if op.disaggregated and row.metric in ("output_tok_s", "input_tok_s", "total_tok_s", "requests_s"):
        return _disaggregated(row, model, chip, traffic, n, op)
    if row.scenario in ("server", "interactive") and not is_mlperf(row) and not (ttft_slo or tpot_slo):
        if op.qps:
            return _open_loop(row, model, chip, traffic, n, op)
        if row.metric not in ("output_tok_s", "input_tok_s", "total_tok_s", "requests_s"):
            raise Unpredictable(f"{row.metric} of a server row needs its load (a concurrency or a request rate)")
        # No load and no limits stated: the benchmark's default (all requests at once) is maximum load.
    elif row.scenario in ("server", "interactive"):
        res, i, met = _server(row, model, chip, traffic, n)
        tuned = " (a target_qps tuned to the limits: predicted at the limits' edge)" if op.qps else ""
        mapping = f"stated: {op.describe()}{tuned}; searched: " + _describe(res, i, met)
        p = res.point(i)
        if row.metric in ("ttft_ms_mean", "tpot_ms_mean", "ttft_ms_p99", "tpot_ms_p99"):
            op = _at_operating_point(res, i)
            key = ("ttft" if row.metric.startswith("ttft") else "tpot") + ("_p99" if row.metric.endswith("p99") else "")
            note = f"{mapping}; at the operating point"
            qps = target_qps(row)
            if qps is not None:
                at = _at_offered_load(row, model, chip, traffic, res, i, n, qps)
                if key in at:
                    note += (f"; at the logged {qps:g} req/s instead: batch {at['batch']:.0f}"
                             f"{' (saturated)' if at['saturated'] else ''}, {at[key]:.0f} ms")
            return DeploymentPrediction(op[key], note)
        if server_sim and row.metric == "output_tok_s" and traffic.slo_ttft_ms and traffic.slo_tpot_ms:
            tok_s, sim = _server_by_simulation(row, model, chip, traffic, n, res, i)
            return DeploymentPrediction(tok_s / n * scale, f"{mapping}; {sim}")
        per_chip = {"output_tok_s": p["output_tok_s_per_chip"], "input_tok_s": p["input_tok_s_per_chip"],
                    "total_tok_s": p["total_tok_s_per_chip"]}
        if row.metric in per_chip:
            return DeploymentPrediction(per_chip[row.metric] * scale, mapping)
        if row.metric == "requests_s":
            return DeploymentPrediction(p["output_tok_s_per_chip"] * n / traffic.output_len, mapping)
        raise Unpredictable(f"metric {row.metric} not modelled for {row.scenario} rows")
    est = _best_estimate(row, model, chip, traffic, n)
    mapping = (f"stated: {op.describe()}; searched at maximum throughput: {est.weight_precision} tp{est.tp} "
               f"pp{est.pp} ep{est.ep} dp{est.dp} batch {est.batch}" + ("" if est.meets_slo else " (misses SLO)"))
    if row.metric == "output_tok_s":
        return DeploymentPrediction(est.output_tok_s_per_chip * scale, mapping)
    if row.metric == "input_tok_s":
        return DeploymentPrediction(est.input_tok_s_per_chip * scale, mapping)
    if row.metric == "total_tok_s":
        return DeploymentPrediction(est.total_tok_s_per_chip * scale, mapping)
    if row.metric == "requests_s":
        return DeploymentPrediction(est.output_tok_s_per_chip * n / traffic.output_len, mapping)
    raise Unpredictable(f"metric {row.metric} not modelled for {row.scenario} rows")


def _closed_loop_value(row, values: dict, n: int, detail: str) -> DeploymentPrediction:
    """The row's metric out of the closed-loop prediction (system totals; per chip where asked)."""
    latency = {"ttft_ms_mean": "ttft", "tpot_ms_mean": "tpot", "e2e_latency_ms_mean": "e2e", "ttft_ms_p50": "ttft_p50",
               "tpot_ms_p50": "tpot_p50", "tpot_ms_p90": "tpot_p90", "tpot_ms_p99": "tpot_p99"}
    if row.metric in latency:
        return DeploymentPrediction(values[latency[row.metric]], detail)
    if row.metric in ("output_tok_s", "input_tok_s", "total_tok_s", "requests_s"):
        per = float(n) if row.per == "chip" else 1.0
        return DeploymentPrediction(values[row.metric] / per, detail)
    raise Unpredictable(f"metric {row.metric} not modelled at a stated concurrency (TTFT tails are not modelled)")


def _open_loop(row, model, chip, traffic: Traffic, n: int, op: OperatingPoint) -> DeploymentPrediction:
    """A non-MLPerf server row at its stated request rate (Poisson arrivals): the layout the row
    states, else the highest-throughput one; throughput is the offered load up to the capacity,
    mean TTFT/TPOT those at that load (`_at_offered_load`)."""
    free = traffic.model_copy(update={"slo_ttft_ms": None, "slo_tpot_ms": None})
    res = _grid(row, model, chip, free, n, _precisions(row, chip), row.tp, row.pp, row.ep, chunk_tokens=TOKEN_BUDGET)
    if len(res) == 0:
        raise Unpredictable("no mapping with the stated parallelism")
    a = res.arrays
    ok = a["fits"] & ((a["dp"] == row.dp) if row.dp else True)
    if not ok.any():
        raise Unpredictable("nothing fits memory at the stated layout")
    i = int(np.argmax(np.where(ok, a["output_tok_s_per_chip"], -np.inf)))
    res.extras["chunk_tokens"] = np.full(len(res), TOKEN_BUDGET)
    p = res.point(i)
    capacity = p["output_tok_s_per_chip"] * n / traffic.output_len
    rps = min(float(op.qps), capacity)
    head = (f"stated: {op.describe()}; searched: {res.precisions[p['prec']]} tp{p['tp']} pp{p['pp']} ep{p['ep']} "
            f"dp{p['dp']}; open loop, capacity {capacity:.3g} req/s")
    if row.metric in ("output_tok_s", "input_tok_s", "total_tok_s", "requests_s"):
        per = float(n) if row.per == "chip" else 1.0
        tokens = {"output_tok_s": traffic.output_len, "input_tok_s": traffic.input_len,
                  "total_tok_s": traffic.input_len + traffic.output_len, "requests_s": 1}[row.metric]
        return DeploymentPrediction(rps * tokens / per, head + (" (saturated)" if op.qps > capacity else ""))
    if row.metric in ("ttft_ms_mean", "tpot_ms_mean"):
        at = _at_offered_load(row, model, chip, traffic, res, i, n, float(op.qps))
        key = "ttft" if row.metric.startswith("ttft") else "tpot"
        tail = f"; batch {at['batch']:.0f}" + (" (saturated)" if at["saturated"] else "")
        return DeploymentPrediction(at[key], head + tail)
    raise Unpredictable(f"metric {row.metric} not modelled at a stated request rate")


def _disaggregated(row, model, chip, traffic: Traffic, n: int, op: OperatingPoint) -> DeploymentPrediction:
    """A row measured on separate prefill and decode pools: the engine's disaggregated deployment
    (`api.estimate(mode="disaggregated")`, the stated tp/pp/ep fixing the decode pool), whose fleet
    throughput per chip (pools in the ratio that balances them) scales to the row's chips."""
    best = _best_estimate(row, model, chip, traffic, n, max_chips=max(n, 8), mode="disaggregated")
    per_chip = {"output_tok_s": best.output_tok_s_per_chip, "input_tok_s": best.input_tok_s_per_chip,
                "total_tok_s": best.total_tok_s_per_chip,
                "requests_s": best.output_tok_s_per_chip / traffic.output_len}[row.metric]
    scale = 1.0 if row.per == "chip" else float(n)
    ratio = getattr(best, "pd_ratio", None)
    detail = (f"stated: {op.describe()}; searched: disaggregated pools, decode {best.weight_precision} tp{best.tp} "
              f"pp{best.pp} ep{best.ep} dp{best.dp} batch {best.batch}"
              + (f", prefill:decode chips {ratio:.2f}" if ratio else "") + ("" if best.meets_slo else " (misses SLO)"))
    return DeploymentPrediction(per_chip * scale, detail)
