"""Held-out checks of `tokenfab validate`: is the calibrated model tuned to the rows it is scored on?

1. Leave one microbenchmark source out: calibrate from the microbenchmark rows of every other
   source (end-to-end rows never enter a fit), then predict the left-out source's rows (never seen
   by that fit) and every end-to-end row. A model that generalizes keeps the left-out rows' error
   near the in-sample error and the end-to-end medians within a few points of the shipped fit.
2. End-to-end rows by round/source under the shipped calibration: none of them was ever fitted,
   so each group is out of sample; the spread between groups shows what a new round would see.

    python bench/heldout.py [--json]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from tokenfab.perf.efficiency import efficiency_for
from tokenfab.specs.measurement import load_measurements
from tokenfab.validate import metric_class, validate_rows
from tokenfab.validate.calibrate import calibrate, write_calibration
from tokenfab.validate.datasets import public_csv


def _source(row) -> str:
    return row.source.split(":")[0].split(" (")[0].strip()


def _median(results, cls=None) -> float | None:
    errs = [abs(r.error) for r in results if r.error is not None and (cls is None or metric_class(r.metric) == cls)]
    return float(np.median(errs)) if errs else None


def _round(row) -> str:
    s = row.source
    for tag in ("v4.0", "v4.1", "v5.0"):
        if f"MLPerf Inference {tag}" in s:
            return f"MLPerf {tag}"
    return _source(row)


def _validate_with(rows, train, tmp: Path):
    """Results of `rows` under a calibration fitted from `train` only (written to `tmp`). A chip
    fitted from `train` keeps the kernel-table (aiconfigurator) section of its shipped file, which
    no measurement row enters; a chip not fitted falls back to its family default (its shipped
    file is not copied, or the held-out rows would leak back through its fit)."""
    import shutil

    from tokenfab.perf.efficiency import calibration_path
    for f in calibrate(train, "held-out"):
        if f.fitted or f.transferred:
            if calibration_path(f.chip).exists():
                shutil.copy(calibration_path(f.chip), tmp / f"{f.chip}.yaml")
            write_calibration(f, "held-out", "-", tmp)
    os.environ["TOKENFAB_CALIBRATION_DIR"] = str(tmp)
    efficiency_for.cache_clear()
    try:
        return validate_rows(rows)
    finally:
        del os.environ["TOKENFAB_CALIBRATION_DIR"]
        efficiency_for.cache_clear()


def main() -> dict:
    rows = load_measurements(public_csv())
    shipped = validate_rows(rows)
    by_id = {r.id: r for r in shipped}
    micro = [r for r in rows if r.usable and r.is_micro]
    e2e = [r for r in rows if r.usable and not r.is_micro]
    out = {"shipped": {"throughput": _median(shipped, "throughput"), "latency": _median(shipped, "latency"),
                       "micro": _median(shipped, "micro")}, "leave_one_source_out": [], "e2e_by_round": {}}
    for src in sorted({_source(r) for r in micro}):
        held = [r for r in micro if _source(r) == src]
        train = [r for r in micro if _source(r) != src]
        with tempfile.TemporaryDirectory() as tmp:
            res = _validate_with(held + e2e, train, Path(tmp))
        held_res = [r for r in res if r.id in {h.id for h in held}]
        out["leave_one_source_out"].append({
            "held_out_source": src, "rows": len(held),
            "held_out_median_ape": _median(held_res),
            "in_sample_median_ape": _median([by_id[h.id] for h in held if h.id in by_id]),
            "throughput_median_ape": _median(res, "throughput"), "latency_median_ape": _median(res, "latency"),
        })
    groups: dict[str, list] = {}
    for r in e2e:
        if r.id in by_id:
            groups.setdefault(_round(r), []).append(by_id[r.id])
    for g, res in sorted(groups.items()):
        out["e2e_by_round"][g] = {"rows": len(res), "throughput_median_ape": _median(res, "throughput"),
                                  "latency_median_ape": _median(res, "latency"),
                                  "median_signed": float(np.median([r.error for r in res if r.error is not None]))
                                  if any(r.error is not None for r in res) else None}
    return out


def _pct(x) -> str:
    return "   —  " if x is None else f"{100 * x:5.1f}%"


if __name__ == "__main__":
    report = main()
    if "--json" in sys.argv:
        print(json.dumps(report, indent=2))
        sys.exit(0)
    s = report["shipped"]
    print(f"shipped calibration: throughput {_pct(s['throughput'])}  latency {_pct(s['latency'])}  micro {_pct(s['micro'])}")
    print("\nleave one microbenchmark source out (fit on the others; median |error|):")
    print(f"  {'held-out source':38s} rows  held-out  in-sample  throughput  latency")
    for r in report["leave_one_source_out"]:
        print(f"  {r['held_out_source'][:38]:38s} {r['rows']:4d}  {_pct(r['held_out_median_ape'])}   "
              f"{_pct(r['in_sample_median_ape'])}     {_pct(r['throughput_median_ape'])}   {_pct(r['latency_median_ape'])}")
    print("\nend-to-end rows by round/source (shipped calibration; never fitted):")
    for g, v in report["e2e_by_round"].items():
        print(f"  {g[:38]:38s} {v['rows']:4d}  throughput {_pct(v['throughput_median_ape'])}  "
              f"latency {_pct(v['latency_median_ape'])}  median signed {_pct(v['median_signed'])}")
