"""Regression gate on the shipped measurement sets (public, deployments, generation and training CSVs).

Fails if the median absolute percentage error over the predicted public rows grows by more than
2 points over the recorded baseline (`tests/validate_baseline.json`), or if coverage drops by
more than 2 points (skipping hard rows must not buy a better median).

The baseline is updated only deliberately, after a reviewed modelling or data change:

    TOKENFAB_UPDATE_VALIDATE_BASELINE=1 pytest tests/test_validate_regression.py
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tokenfab.specs.measurement import load_measurements
from tokenfab.validate import class_stats, summarize, validate_rows
from tokenfab.validate.datasets import shipped_csvs

BASELINE = Path(__file__).with_name("validate_baseline.json")
TOLERANCE = 0.02
"""Two percentage points, as fractions."""


@pytest.fixture(scope="module")
def public_summary():
    results = validate_rows([r for p in shipped_csvs() for r in load_measurements(p)])
    return summarize(results)["summary"], class_stats(results)


def _current(summary, classes) -> dict:
    keep = ("coverage", "n_predicted", "median_ape", "mape", "within_10", "within_25")
    return {
        **{k: round(summary[k], 4) for k in keep},
        "median_ape_by_class": {k: round(v["median_ape"], 4) for k, v in sorted(classes.items())
                                if v.get("median_ape") is not None},
        "data_sha256": hashlib.sha256(b"".join(Path(p).read_bytes() for p in shipped_csvs())).hexdigest(),
    }


@pytest.mark.slow  # validates every shipped row (~9 s)
def test_public_median_error_has_not_grown(public_summary):
    summary, classes = public_summary
    current = _current(summary, classes)
    if os.environ.get("TOKENFAB_UPDATE_VALIDATE_BASELINE"):
        BASELINE.write_text(json.dumps({
            "what": "tokenfab validate on the shipped measurement CSVs (datasets.shipped_csvs); fractions, not percents",
            **current}, indent=2) + "\n")
        pytest.skip("baseline rewritten")
    base = json.loads(BASELINE.read_text())
    assert summary["median_ape"] <= base["median_ape"] + TOLERANCE, (
        f"median |error| {summary['median_ape']:.3f} > baseline {base['median_ape']:.3f} + {TOLERANCE}")
    assert summary["coverage"] >= base["coverage"] - TOLERANCE, (
        f"coverage {summary['coverage']:.3f} < baseline {base['coverage']:.3f} - {TOLERANCE}")
    for cls, median in base.get("median_ape_by_class", {}).items():
        now = current["median_ape_by_class"].get(cls)
        assert now is not None and now <= median + TOLERANCE, f"{cls} median |error| {now} > baseline {median} + {TOLERANCE}"


def test_baseline_was_recorded_on_the_shipped_data():
    # A changed measurement file needs a deliberate baseline refresh (see the module docstring).
    base = json.loads(BASELINE.read_text())
    now = hashlib.sha256(b"".join(Path(p).read_bytes() for p in shipped_csvs())).hexdigest()
    assert base.get("data_sha256") == now, "measurement data changed since the baseline: refresh it deliberately"


def test_baseline_file_is_well_formed():
    base = json.loads(BASELINE.read_text())
    for key in ("median_ape", "coverage"):
        assert 0.0 <= base[key] <= 1.0
