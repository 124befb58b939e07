"""Kernel-table calibration from aiconfigurator (issue 14): how long the import and fit take, and the
fit error per table (median |error| of the engine's GEMM / all-reduce time against every measured row,
before -> after). Needs `pip install 'tokenfab[aic]'`; writes nothing.

Run: python bench/aic_calibration.py   (prints figures; asserts nothing; the issue asks for < 60 s)
"""

from __future__ import annotations

import time

from tokenfab.validate import aic_fit
from tokenfab.validate import aiconfigurator as aic


def main() -> None:
    t0 = time.perf_counter()
    root = aic.data_root()
    fits = aic_fit.fit_all(root)
    seconds = time.perf_counter() - t0
    print(f"aiconfigurator-core {aic.package_version()}: read and fitted {len(fits)} systems in {seconds:.1f} s")
    print(f"{'chip':14s} {'table':24s} {'rows':>7s} {'before':>8s} {'after':>8s} {'signed after':>13s}")
    for f in fits:
        for g in f.gemm:
            print(f"{f.chip:14s} {'gemm ' + g.precision:24s} {g.rows:7d} {g.median_ape_before:8.1%} "
                  f"{g.median_ape_after:8.1%} {g.signed_median_after:+13.1%}")
        for c in (f.allreduce, f.nccl_allreduce):
            if c is not None:
                print(f"{f.chip:14s} {c.table:24s} {c.rows:7d} {c.median_ape_before:8.1%} {c.median_ape_after:8.1%} "
                      f"{'' if c.small_msg_signed_after is None else f'{c.small_msg_signed_after:+.1%} <64K':>13s}")


if __name__ == "__main__":
    main()
