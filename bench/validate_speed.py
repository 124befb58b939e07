"""Benchmark: wall time of `tokenfab validate` on the shipped measurement set, and where it goes.

Goal (issue 14): the shipped set validates in under 15 s. Prints the CLI's wall time (start-up
included), the in-process time of `validate_rows` by row kind, and with `--profile` the functions
that take the most of it (cProfile, cumulative). Asserts nothing.

Run: python bench/validate_speed.py [--profile]
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict


def cli_seconds() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from tokenfab.cli import main; main()", "validate"],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def by_kind() -> tuple[float, dict[str, tuple[int, float]]]:
    """(seconds of validate_rows over every shipped row, {row kind: (rows, seconds)})."""
    from tokenfab.validate import metric_class, validate_rows
    from tokenfab.validate.datasets import read_measurements, shipped_csvs

    rows = [r for p in shipped_csvs() for r in read_measurements(p)[0]]
    spent: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    t0 = time.perf_counter()
    for r in rows:
        t = time.perf_counter()
        validate_rows([r])
        kind = f"{metric_class(r.metric)} / {r.scenario}"
        spent[kind][0] += 1
        spent[kind][1] += time.perf_counter() - t
    return time.perf_counter() - t0, {k: (int(n), s) for k, (n, s) in spent.items()}


def main() -> None:
    print(f"tokenfab validate (CLI, start-up included): {cli_seconds():.1f} s wall")
    total, kinds = by_kind()
    print(f"validate_rows, one row at a time: {total:.1f} s")
    for kind, (n, s) in sorted(kinds.items(), key=lambda kv: -kv[1][1])[:12]:
        print(f"  {kind:32s} {n:4d} rows {s:6.2f} s  ({1e3 * s / n:6.1f} ms/row)")
    if "--profile" in sys.argv:
        import cProfile
        import pstats

        from tokenfab.validate import validate_rows
        from tokenfab.validate.datasets import read_measurements, shipped_csvs

        rows = [r for p in shipped_csvs() for r in read_measurements(p)[0]]
        prof = cProfile.Profile()
        prof.runcall(validate_rows, rows)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
