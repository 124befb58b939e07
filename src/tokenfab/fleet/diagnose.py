"""Why a fleet plan is infeasible, in one line: which constraint binds, when, and by how much.

Each family of constraints (power, budget, supply) is relaxed in turn with slack variables whose
total is minimised (a phase-1 LP). The first family that alone makes the plan feasible is named
with the first period that needs slack and how much ("demand in 2027Q3 exceeds the power cap by
42 MW"). When no one family suffices, all three are relaxed together; when even that fails, some
demand has no chip available that can serve it.
"""

from __future__ import annotations

import numpy as np

from tokenfab.fleet.lp import PlanProblem, shortfall


def _money(usd: float, sc) -> str:
    v = usd * sc.fx
    sym = "¥" if sc.currency == "CNY" else "$"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{sym}{v / div:,.1f}{unit}"
    return f"{sym}{v:,.0f}"


def _phrase(kind: str, period: str, name: str, amount: float, sc) -> str:
    if kind == "power":
        return f"demand in {period} exceeds the power cap by {amount:,.1f} MW"
    if kind == "budget":
        return f"demand in {period} exceeds the capital budget by {_money(amount, sc)}"
    if kind == "vendor supply":
        return f"demand in {period} exceeds the {name} supply cap by {amount:,.0f} units"
    if kind == "memory supply":
        return f"demand in {period} exceeds the {name} memory supply by {amount:,.0f} stacks"
    if kind == "packaging supply":
        return f"demand in {period} exceeds the {name} packaging supply by {amount:,.0f} packages"
    return f"demand in {period} exceeds the supply cap of {name} by {amount:,.0f} units"


def explain_infeasible(p: PlanProblem, sc) -> str:
    """One line naming what binds and by how much."""
    for families in (("power",), ("budget",), ("supply",)):
        if families[0] == "power" and p.power_cap_kw is None:
            continue
        if families[0] == "budget" and p.budget_usd is None:
            continue
        if (families[0] == "supply" and not p.vendor_caps and not p.memory_caps and not p.packaging_caps
                and (p.buy_cap is None or not np.isfinite(p.buy_cap).any())):
            continue
        gaps = shortfall(p, families)
        if gaps:
            kind, period, name, amount = gaps[0]
            more = f" (and in {len({g[1] for g in gaps}) - 1} more periods)" if len({g[1] for g in gaps}) > 1 else ""
            return "infeasible: " + _phrase(kind, period, name, amount, sc) + more
    gaps = shortfall(p, ("power", "budget", "supply"))
    if gaps:
        parts = "; ".join(_phrase(*g, sc) for g in gaps[:3])
        return f"infeasible: no single constraint explains it; together: {parts}"
    return "infeasible: " + _unservable(p)


def _unservable(p: PlanProblem) -> str:
    """The first demand that no available chip can serve."""
    C, W, T = p.shape
    ever = np.maximum.accumulate(p.available, axis=1)
    if p.initial is not None:
        ever = ever | (p.initial > 0)
    for t in range(T):
        for w in range(W):
            for ph in range(2):
                if p.demand[w, ph, t] > 0 and not any(ever[c, t] and p.cap[c, w, ph] > 0 for c in range(C)):
                    return (f"no chip available by {p.periods[t]} can serve {p.workloads[w]} "
                            f"({p.phase_name(w, ph)}); {p.demand[w, ph, t]:,.0f} tok/s unserved")
    return "the plan's constraints contradict one another"
