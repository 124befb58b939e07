"""Little's law on the shipped closed-loop runs: a run's throughput, TTFT and TPOT must not imply
more requests in flight than its stated concurrency (validate.consistency)."""

from pathlib import Path

import pytest

from tokenfab.validate.consistency import (LITTLE_TOLERANCE, closed_loop_violations, implied_in_flight,
                                           requests_per_s)
from tokenfab.validate.datasets import read_measurements

DATA = Path(__file__).resolve().parents[1] / "src" / "tokenfab" / "catalog" / "measurements"


def test_littles_law_worked_by_hand():
    # TensorRT-LLM's DeepSeek-V3.2 B200 max-throughput run (D0007-D0009): 8,618.2 output tok/s of
    # 1,024-token answers is 8.4162 req/s; TTFT 19,537.8 ms + 1,023 x 98.52 ms = 120.33 s per
    # request; 8.4162 x 120.33 = 1,012.7 requests in flight against a concurrency of 256.
    rate = requests_per_s("output_tok_s", 8618.2158, 8192, 1024)
    assert rate == pytest.approx(8.4162, rel=1e-4)
    assert implied_in_flight(rate, 1024, 98.5219, 19537.7776) == pytest.approx(1012.7, rel=1e-3)
    # total tokens count the prompt too: 2 req/s of 1,000 + 100 tokens is 2,200 tok/s.
    assert requests_per_s("total_tok_s", 2200.0, 1000, 100) == pytest.approx(2.0)


def _all_rows():
    rows = []
    for name in ("deployments.csv", "public.csv"):
        got, _ = read_measurements(DATA / name)
        rows += got
    return rows


def test_no_usable_shipped_run_breaks_littles_law():
    assert closed_loop_violations(_all_rows()) == []


def test_the_check_catches_the_run_it_excluded():
    rows = [r.model_copy(update={"usable": True}) for r in _all_rows() if r.id in ("D0007", "D0008", "D0009")]
    assert len(rows) == 3
    (ids, ratio), = closed_loop_violations(rows)
    assert ids == ("D0007", "D0008", "D0009")
    assert ratio == pytest.approx(1012.7 / 256, rel=1e-3) and ratio > LITTLE_TOLERANCE
