"""Accuracy as a discipline: predict every usable published measurement and report the error.

`validate_rows(rows)` predicts each usable row of a measurement CSV (schema:
`tokenfab.specs.measurement`): end-to-end rows through the engine (`deployment`), microbenchmark
rows through the perf functions (`micro`). A row that cannot be predicted honestly is skipped with
the reason. `summarize` turns the results into the summary the CLI prints and the regression gate
checks. Errors are signed fractions: (predicted - measured) / measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tokenfab import catalog
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.specs import SpecError
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate.deployment import predict_deployment
from tokenfab.validate.micro import Unpredictable, predict_micro

THROUGHPUT_METRICS = ("output_tok_s", "total_tok_s", "input_tok_s", "requests_s", "samples_s")
TRAINING_METRICS = ("tokens_s", "mfu", "step_time_s", "chip_hours", "time_to_train_min")
"""Metrics of training runs (scenario `training`); their class is `training`."""
LATENCY_METRICS = ("ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99", "tpot_ms_mean", "tpot_ms_p50",
                   "tpot_ms_p90", "tpot_ms_p99", "e2e_latency_ms_mean", "latency_s")


@dataclass(frozen=True)
class RowResult:
    """The validation of one usable row."""

    id: str
    scenario: str
    metric: str
    hardware: str
    model: str | None
    per: str | None
    measured: float
    predicted: float | None
    error: float | None
    skipped: str | None
    detail: str = ""
    framework: str = ""
    """The row's serving framework or harness (the `framework` column)."""

    def to_dict(self) -> dict:
        return asdict(self)


def predict_row(row: MeasurementRow, server_sim: bool = False) -> tuple[float, str]:
    """(predicted value in the row's unit, detail). Raises Unpredictable with the reason."""
    if row.is_micro:
        try:
            chip = catalog.load_chip(row.hardware)
        except SpecError:
            raise Unpredictable(f"chip {row.hardware} is not in the catalog") from None
        eff = efficiency_for(chip)
        where = "calibrated" if eff.source.startswith("calibrated") else eff.source
        return predict_micro(row, chip, eff), f"efficiency: {where}"
    if row.scenario == "training":
        if row.metric == "time_to_train_min":  # MLPerf Training's score
            from tokenfab.validate.mlperf_training import predict_time_to_train
            return predict_time_to_train(row)
        from tokenfab.validate.training import predict_training
        return predict_training(row)
    from tokenfab.validate.workloads import predict_workload
    workload = predict_workload(row)  # diffusion / recommendation models (None for LLMs)
    if workload is not None:
        return workload
    pred = predict_deployment(row, server_sim=server_sim)
    return pred.value, pred.detail


def validate_rows(rows: list[MeasurementRow], server_sim: bool = False, unreadable=(),
                  progress=None) -> list[RowResult]:
    """Predict every usable row (unusable rows are left out). `server_sim`: MLPerf server
    throughput by discrete-event simulation (slower; see `deployment.predict_deployment`).
    `unreadable`: rows that did not parse (`datasets.read_measurements`), reported as skipped
    with their reason (unless their `usable` cell says 0). `progress(done, total)`, if given, is
    called once before the first usable row and after each one (total: the usable rows)."""
    out = [_unreadable_result(u) for u in unreadable
           if (u.cells.get("usable") or "").strip() not in ("0", "false", "False", "no")]
    usable = [row for row in rows if row.usable]
    if progress is not None:
        progress(0, len(usable))
    for done, row in enumerate(usable, 1):
        out.append(_validate_row(row, server_sim))
        if progress is not None:
            progress(done, len(usable))
    return out


def _validate_row(row: MeasurementRow, server_sim: bool) -> RowResult:
    """The prediction of one usable row and its error, or the reason it is skipped."""
    base = dict(id=row.id, scenario=row.scenario, metric=row.metric, hardware=row.hardware, model=row.model,
                per=row.per, measured=row.value, framework=row.framework)
    try:
        value, detail = predict_row(row, server_sim=server_sim)
    except Unpredictable as exc:
        return RowResult(**base, predicted=None, error=None, skipped=str(exc))
    if not np.isfinite(value) or value <= 0:
        return RowResult(**base, predicted=None, error=None, skipped=f"non-finite prediction ({value})")
    return RowResult(**base, predicted=float(value), error=float((value - row.value) / row.value),
                     skipped=None, detail=detail)


def _unreadable_result(u) -> RowResult:
    c = u.cells
    try:
        measured = float(c.get("value") or "nan")
    except ValueError:
        measured = float("nan")
    return RowResult(id=u.id, scenario=c.get("scenario") or "?", metric=c.get("metric") or "?",
                     hardware=c.get("hardware") or "?", model=c.get("model") or None, per=c.get("per") or None,
                     measured=measured, predicted=None, error=None, skipped=u.reason,
                     framework=c.get("framework") or "")


def _stats(results: list[RowResult]) -> dict:
    signed = np.array([r.error for r in results if r.error is not None])
    errs = np.abs(signed)
    n_pred = int(errs.size)
    return {
        "n": len(results),
        "n_predicted": n_pred,
        "coverage": n_pred / len(results) if results else 0.0,
        "median_ape": float(np.median(errs)) if n_pred else None,
        "median_error": float(np.median(signed)) if n_pred else None,
        "mape": float(np.mean(errs)) if n_pred else None,
        "within_10": float(np.mean(errs <= 0.10)) if n_pred else None,
        "within_25": float(np.mean(errs <= 0.25)) if n_pred else None,
    }


def _grouped(results: list[RowResult], key) -> dict:
    groups: dict[str, list[RowResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return {k: _stats(v) for k, v in sorted(groups.items())}


def metric_class(metric: str) -> str:
    """`throughput`, `latency`, `training` (a training run's figures) or `micro` (kernel / collective)."""
    if metric in TRAINING_METRICS:
        return "training"
    if metric in THROUGHPUT_METRICS:
        return "throughput"
    if metric in LATENCY_METRICS:
        return "latency"
    return "micro"


def summarize(results: list[RowResult]) -> dict:
    """`{"rows": [...], "summary": {...}}` with fractions (not percents)."""
    s = _stats(results)
    summary = {
        "coverage": s["coverage"], "n_predicted": s["n_predicted"], "median_ape": s["median_ape"],
        "mape": s["mape"], "within_10": s["within_10"], "within_25": s["within_25"],
        "by_class": _grouped(results, lambda r: metric_class(r.metric)),
        "by_scenario": _grouped(results, lambda r: r.scenario),
        "by_chip": _grouped(results, lambda r: r.hardware),
        "by_metric": _grouped(results, lambda r: r.metric),
        "by_framework": _grouped(results, lambda r: r.framework or "(not stated)"),
        "median_error": s["median_error"],
        "skip_reasons": skip_reasons(results),
    }
    return {"rows": [r.to_dict() for r in results], "summary": summary}


def class_stats(results: list[RowResult]) -> dict:
    """Summary statistics of end-to-end throughput rows, latency rows and microbenchmarks."""
    return _grouped(results, lambda r: metric_class(r.metric))


def skip_reasons(results: list[RowResult]) -> dict[str, int]:
    """How many rows were skipped for each reason, most frequent first. Unreadable rows count
    under one reason (their line and detail stay in the row's `skipped`)."""
    counts: dict[str, int] = {}
    for r in results:
        if r.skipped:
            key = "unreadable row" if r.skipped.startswith("unreadable row") else r.skipped
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
