"""Benchmark: design-space points scored per second on one core, at both fidelities the design
search uses (issue 16: >= 1,000 designs/s per core at the fidelity the search uses).

- **screen** (`explore.screen.screen_points`): the search's screening stage, vectorized over
  designs — build + validate, derive (datasheet, area, power, cost, feasibility), the space's
  constraints, then every scenario's best deployment (aggregated, prefill/decode and
  attention-FFN disaggregated serving over a reduced mapping grid, `mapping.batched`) with the screening
  kernels (`perf.screen`: the tiled model's SRAM physics in closed form) and its $/Mtok.
- **full** (`explore.evaluate.evaluate_point`): one design at a time, tiled fidelity, every
  serving mode and the full mapping grid: what the search runs on the screened front and on
  every trial its sampler asks for.

Workload: `tokenfab design chat-mix`'s default space and mix (DeepSeek-V3 chat, Qwen3-235B RAG,
Llama-3.1-8B batch). Points are drawn uniformly from the space (seeded); all of them count,
buildable or not, as they do in a search. CPU seconds of this process (`time.process_time`,
one BLAS thread), best of `--repeat` runs: other processes on the machine do not count.

Run: python bench/design_batch_speed.py [--points 2000] [--repeat 3] [--full 6]   (prints; asserts nothing)
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from tokenfab.explore import screen  # noqa: E402
from tokenfab.explore.catalog import load_base_design, load_space, load_workload  # noqa: E402
from tokenfab.explore.designs import base_mapping  # noqa: E402
from tokenfab.explore.evaluate import clear_cache, evaluate_point, make_context  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", default="chat-mix")
    ap.add_argument("--points", type=int, default=2000, help="the default screen of a 60-trial search: 1,920")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--full", type=int, default=6, help="feasible designs timed on the full path (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    wl, _ = load_workload(args.workload)
    sp, sp_path = load_space(wl.space)
    base = load_base_design(sp, sp_path)
    ctx = make_context(wl, base_mapping(base, sp), sp.constraints, sp.search.max_chips, sp.search.fidelity)
    print(f"tokenfab design {wl.name}: {len(ctx.scenarios)} scenarios "
          f"({', '.join(s.model.id for s in ctx.scenarios)}), space {sp.name}; one core (process CPU time)")

    points = screen.sample_points(sp, args.points, args.seed)
    screen.screen_points(points[:32], ctx)  # imports and first-call costs
    best, scores = np.inf, None
    for _ in range(args.repeat):
        t0 = time.process_time()
        scores = screen.screen_points(points, ctx)
        best = min(best, time.process_time() - t0)
    n_ok = int(np.isfinite(scores["usd_per_mtok"]).sum())
    print(f"  screen: {args.points / best:8,.0f} designs/s per core  ({args.points} points in {best:.2f} CPU s; "
          f"{n_ok} reached the mapping stage and got a $/Mtok, {int(scores['feasible'].sum())} feasible)")

    if args.full > 0:
        idx = [int(i) for i in np.flatnonzero(scores["feasible"])[:args.full]]
        clear_cache()
        t0 = time.process_time()
        ratios = []
        for i in idx:
            r = evaluate_point(points[i], ctx)
            if r["feasible"]:
                ratios.append(scores["usd_per_mtok"][i] / r["objectives"]["usd_per_mtok"])
        dt = time.process_time() - t0
        print(f"  full  : {len(idx) / dt:8,.2f} designs/s per core  ({len(idx)} feasible designs in {dt:.1f} CPU s; "
              f"tiled, all serving modes, full mapping grid)")
        if ratios:
            print(f"  screened / full $/Mtok on those designs: {min(ratios):.3f} .. {max(ratios):.3f} "
                  f"(median {np.median(ratios):.3f})")
    print("goal (issue 16): >= 1,000 designs/s per core at the fidelity the search uses (its screen)")


if __name__ == "__main__":
    main()
