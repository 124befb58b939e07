"""Benchmark: design-search trials per second on the inline, process and Ray executors.

The workload is `tokenfab design chat-mix` itself (tiled fidelity, every scenario's full mapping
search per feasible design): CPU-bound numpy in each worker. Each executor runs the same seeded
NSGA-II study (same trials, same designs), after a warm-up batch on other designs so worker
start-up and imports are not counted (they are printed separately). Trials that repeat a
design are answered from the study without evaluation on every executor alike.

Goal (issue 7): Ray on a local instance with 2 workers >= 1.6x the inline executor.
Run: python bench/explore_speed.py [--trials 128] [--batch 32] [--workers 2]   (prints; asserts nothing)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker: scaling comes from workers

from tokenfab.explore import SearchConfig, run_search  # noqa: E402
from tokenfab.explore.catalog import load_base_design, load_space, load_workload  # noqa: E402
from tokenfab.explore.designs import base_mapping  # noqa: E402
from tokenfab.explore.evaluate import clear_cache, make_context  # noqa: E402
from tokenfab.explore.executors import make_executor  # noqa: E402


def warm(ex, wl, sp, base, n: int) -> float:
    """Seconds to push one batch of other designs through the executor (imports, caches)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = make_context(wl, base_mapping(base, sp), sp.constraints, sp.search.max_chips, sp.search.fidelity)
    from tokenfab.explore.designs import distributions

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=12345), directions=["minimize"])
    dists = distributions(sp)
    items = []
    for i in range(n):
        t = study.ask(dists)
        items.append((i, dict(t.params)))
    t0 = time.perf_counter()
    ex.map(items, ctx)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--executors", default="inline,process,ray")
    args = ap.parse_args()
    wl, _ = load_workload("chat-mix")
    sp, sp_path = load_space(wl.space)
    base = load_base_design(sp, sp_path)
    print(f"tokenfab design chat-mix: {args.trials} NSGA-II trials, batch {args.batch}, seed {args.seed}, "
          f"{sp.search.fidelity} fidelity, max_chips {sp.search.max_chips}; {os.cpu_count()} CPUs")
    rates: dict[str, float] = {}
    for kind in args.executors.split(","):
        if kind == "ray" and importlib.util.find_spec("ray") is None:
            print("  ray      : not installed (pip install 'tokenfab[ray]')")
            continue
        clear_cache()
        t0 = time.perf_counter()
        ex = make_executor(kind, workers=None if kind == "inline" else args.workers)
        start = time.perf_counter() - t0
        try:
            warm_s = warm(ex, wl, sp, base, args.batch)
            # No screening stage: it runs inline before the first batch whatever the executor
            # (bench/design_batch_speed.py measures it); this measures the executors.
            cfg = SearchConfig(trials=args.trials, seed=args.seed, batch=args.batch, population=args.batch, screen=0)
            out = run_search(wl, sp, base, cfg, executor=ex)
        finally:
            ex.close()
        rate = len(out.trials) / out.seconds
        rates[kind] = rate
        feasible = sum(r.result["feasible"] for r in out.trials)
        speed = f"  {rate / rates['inline']:.2f}x inline" if "inline" in rates and kind != "inline" else ""
        print(f"  {kind:9s}: {rate:6.2f} trials/s  ({out.evaluated} designs evaluated, {feasible} feasible, "
              f"{out.seconds:5.1f} s; {ex.workers} worker(s); start {start:4.1f} s, warm-up batch {warm_s:4.1f} s)"
              f"{speed}")
    print("goal: ray (local, 2 workers) >= 1.6x inline")


if __name__ == "__main__":
    main()
