"""Benchmark: training mapping evaluations per second on one core (issue 19 goal: >= 10,000/s).

An evaluation is one (tp, pp, cp, ep, dp, micro-batch, schedule) point under one (recompute,
ZeRO, overlap) variant: step time, memory, goodput and run time (`tokenfab.train.search`).
Run: python bench/train_speed.py   (prints figures; asserts nothing)
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core

from tokenfab import catalog  # noqa: E402
from tokenfab.perf.efficiency import efficiency_for  # noqa: E402
from tokenfab.specs import SystemSpec  # noqa: E402
from tokenfab.train import TrainingJob, TrainingStack  # noqa: E402
from tokenfab.train.search import prepare, search  # noqa: E402

CASES = (
    ("deepseek-v3", "h800-sxm", 2048, TrainingJob(tokens=14.8e12, precision="fp8")),
    ("llama-3.1-405b", "h100-sxm", 16384, TrainingJob(tokens=15.6e12, seq_len=8192)),
    ("llama-3.1-8b", "h100-sxm", 64, TrainingJob(tokens=1e12, seq_len=8192, global_batch_tokens=4 * 2**20)),
)


def main() -> None:
    print(f"{'model':<16} {'chip':<10} {'chips':>6} {'points':>9} {'evals':>10} {'seconds':>8} {'evals/s':>12}")
    for model_id, chip_id, n, job in CASES:
        model, chip = catalog.load_model(model_id), catalog.load_chip(chip_id)
        system, eff = SystemSpec.for_chip(chip), efficiency_for(chip)
        search(prepare(model, chip, system, eff, job, TrainingStack(), n))  # warm caches
        t0 = time.perf_counter()
        ctx = prepare(model, chip, system, eff, job, TrainingStack(), n)
        best = search(ctx)
        dt = time.perf_counter() - t0
        print(f"{model_id:<16} {chip_id:<10} {n:>6} {len(ctx.base):>9,} {best.evaluations:>10,} {dt:>8.2f} "
              f"{best.evaluations / dt:>12,.0f}")


if __name__ == "__main__":
    main()
