"""Benchmark: mapping evaluations per second on one core, and the default `tokenfab compare` wall time.

Goals (issue 2): >= 100,000 mapping evaluations/s; default compare < 3 s including start-up.
Run: python bench/engine_speed.py   (prints figures; asserts nothing)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core: numpy elementwise work is single-threaded anyway

from tokenfab import catalog  # noqa: E402
from tokenfab.mapping.search import SearchSpace, evaluate  # noqa: E402
from tokenfab.perf.efficiency import efficiency_for  # noqa: E402
from tokenfab.specs import SystemSpec  # noqa: E402
from tokenfab.specs.traffic import CHAT  # noqa: E402


def evals_per_second(model_id: str, chip_id: str, repeats: int = 20) -> tuple[int, float]:
    model, chip = catalog.load_model(model_id), catalog.load_chip(chip_id)
    system, eff = SystemSpec.for_chip(chip), efficiency_for(chip)
    evaluate(model, chip, system, eff, CHAT, SearchSpace())  # warm caches
    n = 0
    t0 = time.perf_counter()
    for _ in range(repeats):
        n += len(evaluate(model, chip, system, eff, CHAT, SearchSpace()))
    return n // repeats, n / (time.perf_counter() - t0)


def pool_evals_per_second(model_id: str, chip_id: str, repeats: int = 10) -> tuple[int, float]:
    """Points/s of the disaggregated search: the prefill and decode pool grids (`mapping.modes`)."""
    from tokenfab.mapping import modes
    from tokenfab.specs.cache import KV_TIERS
    model, chip = catalog.load_model(model_id), catalog.load_chip(chip_id)
    system, eff = SystemSpec.for_chip(chip), efficiency_for(chip)
    n = 0
    t0 = time.perf_counter()
    for _ in range(repeats):
        n += len(modes.decode_pool(model, chip, system, eff, CHAT, SearchSpace(), 320))
        n += len(modes.prefill_pool(model, chip, system, eff, CHAT, SearchSpace(), 64, KV_TIERS["ssd"], 50.0))
    return n // repeats, n / (time.perf_counter() - t0)


def main() -> None:
    print("mapping evaluations per second (one process, one core):")
    for model_id, chip_id in [("llama-3.1-70b", "h100-sxm"), ("deepseek-v3", "h200-sxm"),
                              ("qwen3-235b-a22b", "b200"), ("gpt-oss-120b", "mi300x")]:
        points, rate = evals_per_second(model_id, chip_id)
        print(f"  {model_id:18s} on {chip_id:9s}: {points:6d} points/grid  {rate:12,.0f} evals/s")
    print("disaggregated pools (prefill + decode grids), points per second:")
    for model_id, chip_id in [("llama-3.1-70b", "h100-sxm"), ("deepseek-v3", "h800-sxm")]:
        points, rate = pool_evals_per_second(model_id, chip_id)
        print(f"  {model_id:18s} on {chip_id:9s}: {points:6d} points/search {rate:12,.0f} evals/s")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tokenfab", "compare", "--json"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    print(f"default `tokenfab compare` wall time incl. start-up: best {min(times):.2f} s, "
          f"median {sorted(times)[1]:.2f} s (goal < 3 s)")


if __name__ == "__main__":
    main()
