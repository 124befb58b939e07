"""Fit the one MoE training parameter — the host seconds a dropless MoE layer exposes per
micro-batch (`tokenfab.train.moe.MOE_HOST_S_PER_LAYER`) — on the published MoE training rows,
and show how well it carries to data it was not fitted on.

    python bench/fit_train_moe.py [--step-ms 0.25 --max-ms 8]

Every usable MoE row of catalog/measurements/training.csv is predicted as `tokenfab validate` does
(same mapping, same search) at each value of a grid; the fit minimises the mean |log(predicted /
measured)|. Printed: the in-sample fit, leave-one-SOURCE-out (fit without a source's rows, score
them), leave-one-SYSTEM-out on NVIDIA's Megatron-Bridge table (fit without, e.g., its GB200 rows,
score them), and each row's error before (0 ms) and at the fit. Dense rows do not depend on the
parameter (a dense model has no MoE layer); the script checks that.

The expert all-to-all is on the critical path except where a row states the stack overlaps it
(notes `ep_overlap=1`: Megatron's `overlap_moe_expert_parallel_comm`; DualPipe always does,
`TrainingStack.ep_comm_overlap`), and a row whose MoE layer runs in a full CUDA graph with static
expert buffers (`moe_sync=0`) has no host sync: those rows do not depend on the parameter.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from tokenfab import catalog
from tokenfab.train import moe
from tokenfab.validate import validate_rows
from tokenfab.validate.datasets import read_measurements

CSV = Path(__file__).resolve().parents[1] / "src/tokenfab/catalog/measurements/training.csv"


def source_of(row) -> str:
    """The independent source a row comes from (rows of one table, or one author, share one)."""
    ref = row.source_ref
    for key, name in (("Megatron-Bridge", "NVIDIA Megatron-Bridge 25.11 table"),
                      ("Megatron-LM/pull/5728", "NVIDIA Megatron-LM PR #5728 recipes"),
                      ("Pai-Megatron-Patch", "Pai-Megatron-Patch issues #643/#658"),
                      ("2412.19437", "DeepSeek-V3 report")):
        if key in ref:
            return name
    return ref.split("@")[0][:40]


def is_moe(row) -> bool:
    try:
        return catalog.load_model(row.model).num_moe_layers > 0
    except Exception:  # noqa: BLE001 - a row naming no catalog model is not a MoE row here
        return False


def predict_at(rows, seconds: float) -> dict[str, float]:
    """Signed errors of the rows with the MoE host constant set to `seconds` (None: skipped)."""
    saved = moe.MOE_HOST_S_PER_LAYER
    moe.MOE_HOST_S_PER_LAYER = seconds
    try:
        return {r.id: r.error for r in validate_rows(rows)}
    finally:
        moe.MOE_HOST_S_PER_LAYER = saved


def loss(errors) -> float:
    e = np.array([x for x in errors if x is not None], float)
    return float(np.mean(np.abs(np.log1p(e)))) if len(e) else math.inf


def fit(grid, table, ids) -> int:
    """Index of the grid value that minimises the loss over `ids`."""
    return int(np.argmin([loss([table[i][r] for r in ids]) for i in range(len(grid))]))


def summary(errors) -> str:
    e = np.array([x for x in errors if x is not None], float)
    if not len(e):
        return "no rows"
    return f"median |error| {np.median(np.abs(e)):5.1%}, signed {np.median(e):+6.1%} ({len(e)} rows)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-ms", type=float, default=0.25)
    ap.add_argument("--max-ms", type=float, default=8.0)
    args = ap.parse_args()
    rows, _ = read_measurements(CSV)
    usable = [r for r in rows if r.usable]
    moe_rows = [r for r in usable if is_moe(r)]
    dense_rows = [r for r in usable if not is_moe(r)]
    grid = np.round(np.arange(0.0, args.max_ms + 1e-9, args.step_ms), 6) * 1e-3
    t0 = time.time()
    table = []
    for i, s in enumerate(grid):
        table.append(predict_at(moe_rows, float(s)))
        print(f"\r  grid {i + 1}/{len(grid)} ({s * 1e3:.2f} ms)", end="", flush=True)
    print(f"\r  {len(grid)} grid points x {len(moe_rows)} MoE rows in {time.time() - t0:.0f} s")
    ok = [r.id for r in moe_rows if table[0][r.id] is not None]
    src = {r.id: source_of(r) for r in moe_rows}
    best = fit(grid, table, ok)
    print(f"\nFit on all {len(ok)} predictable MoE rows: {grid[best] * 1e3:.2f} ms per MoE layer and micro-batch "
          f"(shipped: {moe.MOE_HOST_S_PER_LAYER * 1e3:.2f} ms)")
    print(f"  before (0 ms): {summary(table[0][r] for r in ok)}")
    print(f"  at the fit:    {summary(table[best][r] for r in ok)}")

    print("\nLeave-one-source-out (fit without the source, score its rows):")
    loso = []
    for s in sorted(set(src[r] for r in ok)):
        test = [r for r in ok if src[r] == s]
        k = fit(grid, table, [r for r in ok if src[r] != s])
        loso += [table[k][r] for r in test]
        print(f"  {s:38s} fit {grid[k] * 1e3:5.2f} ms -> {summary(table[k][r] for r in test)}"
              f"  (before {summary(table[0][r] for r in test)})")
    print(f"  all held-out rows: {summary(loso)}")

    print("\nLeave-one-system-out on the Megatron-Bridge table (fit without that system's rows of it):")
    mb = [r for r in moe_rows if r.id in ok and src[r.id].startswith("NVIDIA Megatron-Bridge")]
    losys = []
    for hw in sorted(set(r.hardware for r in mb)):
        test = [r.id for r in mb if r.hardware == hw]
        k = fit(grid, table, [r for r in ok if r not in test])
        losys += [table[k][r] for r in test]
        print(f"  {hw:10s} fit {grid[k] * 1e3:5.2f} ms -> {summary(table[k][r] for r in test)}")
    print(f"  all held-out rows: {summary(losys)}")

    ship = int(np.argmin(np.abs(grid - moe.MOE_HOST_S_PER_LAYER)))
    print(f"\nPer MoE row: error at 0 ms -> at the shipped {grid[ship] * 1e3:.2f} ms")
    for r in moe_rows:
        a, b = table[0][r.id], table[ship][r.id]
        if a is None:
            print(f"  {r.id} {r.hardware:10s} {r.model:16s} skipped")
            continue
        print(f"  {r.id} {r.hardware:10s} {r.model:16s} {a:+7.1%} -> {b:+7.1%}   [{src[r.id]}]")
    d0 = predict_at(dense_rows, 0.0)
    d1 = predict_at(dense_rows, float(grid[-1]))
    same = all((d0[k] is None and d1[k] is None) or abs(d0[k] - d1[k]) < 1e-12 for k in d0)
    print(f"\nDense rows unchanged by the parameter: {same} ({len(d0)} rows)")


if __name__ == "__main__":
    main()
