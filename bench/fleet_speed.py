"""How fast `tokenfab fleet` plans: a 4-year quarterly plan, 10 chips, 5 workloads.

Prints the time to estimate the 50 (model, chip) capacities once (cold cache), the time to plan
again with them cached (what a re-run or a what-if costs; target < 5 s), and the LP's size.

    python bench/fleet_speed.py
"""

from __future__ import annotations

import os
import tempfile
import time

CHIPS = ["h100-sxm", "h200-sxm", "h20", "b200", "gb300", "mi300x", "ascend-910b", "ascend-910c", "gaudi3", "gb200"]
"""Ten chips with a catalog price (each priced as the catalog says)."""
WORKLOADS = [("chat-v3", "deepseek-v3", 2e11), ("chat-70b", "llama-3.1-70b", 5e10), ("qwen-moe", "qwen3-235b-a22b", 8e10),
             ("dense-32b", "qwen3-32b", 4e10), ("small-8b", "llama-3.1-8b", 1e11)]


def scenario() -> dict:
    return {
        "id": "bench", "start": "2026Q1", "periods": 16, "period": "quarter", "power_cap_mw": 400,
        "budget_per_period": 2.0e9, "discount_rate": 0.09, "price_decline_per_year": 0.15,
        "workloads": [{"id": i, "model": m, "tokens_per_day": v, "growth_per_year": 1.0, "peak_to_average": 1.6}
                      for i, m, v in WORKLOADS],
        "chips": [{"chip": c, "available_from": "2026Q3" if c == "gb300" else "2026Q1"} for c in CHIPS],
        "supply_caps": [{"vendor": "NVIDIA", "units_per_period": 40000}],
    }


def main() -> None:
    from tokenfab.fleet.lp import build
    from tokenfab.fleet.plan import build_problem, plan
    from tokenfab.fleet.scenario import FleetScenario

    sc = FleetScenario.from_mapping(scenario())
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TOKENFAB_CACHE"] = tmp
        t0 = time.perf_counter()
        build_problem(sc)
        cold = time.perf_counter() - t0
        import tokenfab.fleet.capacity as cap

        cap._MEMO.clear()  # the next plan reads the disk cache, as a new process would
        t0 = time.perf_counter()
        r = plan(sc)
        warm = time.perf_counter() - t0
        p, _ = build_problem(sc)
        t0 = time.perf_counter()
        obj, A, *_ = build(p)
        from tokenfab.fleet.lp import solve

        solve(p)
        lp = time.perf_counter() - t0
    print(f"scenario: {len(CHIPS)} chips x {len(WORKLOADS)} workloads x {sc.periods} quarters")
    print(f"LP: {A.shape[1]} variables, {A.shape[0]} constraints, {A.nnz} nonzeros")
    print(f"capacities estimated (cold cache):  {cold:6.2f} s")
    print(f"plan with cached capacities:        {warm:6.2f} s   (target < 5 s)")
    print(f"build + solve the LP alone:          {lp:6.3f} s")
    print(f"present value {r['npv_usd'] / 1e9:,.2f} B USD; last-quarter fleet: "
          + ", ".join(f"{k} {v:,.0f}" for k, v in r['periods'][-1]['fleet'].items()))


if __name__ == "__main__":
    main()
