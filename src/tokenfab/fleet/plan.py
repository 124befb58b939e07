"""A scenario → the plan's numbers (`PlanProblem`) → the optimal plan as a JSON-ready dict.

Per chip: unit capex = (price + system share) × (1 + spares), the price falling by the chip's
decline per year from when it becomes available; opex per period = (power + hosting + operations
per hour, `cost.tco.owned_chip_hour_cost`) × hours in the period; facility kW = TDP × server
multiplier × PUE (provisioned, not average). Demand per workload and period: tokens/day × growth
× peak-to-average / 86,400, split into prompt and generated tokens by the traffic's lengths.
Capacity per chip and phase: `fleet.capacity` (tokenfab's estimate, cached).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from tokenfab.cost.export_control import export_control
from tokenfab.cost.system import SystemNeeds
from tokenfab.cost.tco import HOURS_PER_YEAR, capital_recovery_factor, owned_chip_hour_cost
from tokenfab.fleet.capacity import PhaseCapacity, phase_capacity, training_capacity
from tokenfab.fleet.lp import Infeasible, PlanProblem, Solution, solve
from tokenfab.fleet.scenario import FleetScenario, period_year
from tokenfab.perf.efficiency import MaturityRamp
from tokenfab.specs import SpecError
from tokenfab.specs.traffic import Traffic


def _by_period(labels: list[str], default: float | None, table: dict[str, float], spread_years: bool,
               per_year: float) -> np.ndarray:
    """[T] value per period: `table` by label (a YYYY key covers its quarters, split evenly when
    `spread_years`), else `default` (None → inf)."""
    out = np.full(len(labels), np.inf if default is None else float(default))
    for key, v in table.items():
        hits = [i for i, lab in enumerate(labels) if lab == key or (len(key) == 4 and lab.startswith(key))]
        for i in hits:
            out[i] = v * (per_year if spread_years and len(key) == 4 and len(hits) > 0 and "Q" in labels[i] else 1.0)
    return out


def traffic_of(w) -> Traffic:
    """The traffic a workload's capacity is estimated at."""
    return Traffic(input_len=w.input_len, output_len=w.output_len, slo_ttft_ms=w.slo_ttft_ms,
                   slo_tpot_ms=w.slo_tpot_ms, prefix_cache_hit=w.prefix_cache_hit)


def build_problem(sc: FleetScenario, base_dir: Path | None = None,
                  progress: Callable[[str], None] | None = None) -> tuple[PlanProblem, dict]:
    """The LP's numbers for a scenario, and what they came from (capacities and their sources)."""
    from tokenfab.catalog import load_chip
    from tokenfab.cost.data import shipped_cost_data

    cost_data = shipped_cost_data()
    econ = cost_data.economics(sc.economics_preset)
    if sc.pue is not None:
        econ = econ.with_overrides({"pue": sc.pue}, "scenario")
    labels = sc.labels()
    T, dt = len(labels), sc.period_years
    years = np.array([period_year(lab) for lab in labels])
    specs = []
    for fc in sc.chips:
        name = fc.chip
        if base_dir is not None and (name.endswith((".yaml", ".yml")) or "/" in name):
            name = str((base_dir / name).resolve()) if not Path(name).is_absolute() else name
        specs.append(load_chip(name))
    C, W = len(sc.chips), len(sc.workloads)
    capex = np.zeros((C, T))
    opex = np.zeros(C)
    kw = np.zeros(C)
    avail = np.zeros((C, T), dtype=bool)
    maturity = np.ones((C, T))
    buy_cap = np.full((C, T), np.inf)
    vendors = []
    for c, (fc, spec) in enumerate(zip(sc.chips, specs)):
        price = fc.price / sc.fx if fc.price is not None else spec.price_usd
        if price is None:
            raise SpecError(f"chip {fc.name}: no price in the catalog; give `price` in the scenario")
        needs = SystemNeeds.of_chip(spec)
        hour = owned_chip_hour_cost(0.0, spec.tdp_w, econ, needs)
        system = hour.system_usd if sc.include_system and not spec.price_includes_system else 0.0
        y0 = period_year(fc.available_from)
        y1 = period_year(fc.available_until) if fc.available_until else np.inf
        decline = sc.price_decline_per_year if fc.price_decline_per_year is None else fc.price_decline_per_year
        since = np.maximum(years - y0, 0.0)
        capex[c] = (price * (1 - decline) ** since + system) * (1 + econ.spares_frac)
        opex[c] = (hour.power_usd_per_hour + hour.hosting_usd_per_hour + hour.ops_usd_per_hour) * HOURS_PER_YEAR * dt
        kw[c] = spec.tdp_w / 1000.0 * econ.server_power_multiplier * econ.pue
        avail[c] = (years >= y0 - 1e-9) & (years <= y1 + 1e-9)
        if fc.memory is not None:
            mem = cost_data.fab.memory.get(fc.memory)
            if mem is None:
                raise SpecError(f"chip {fc.name}: memory {fc.memory!r} is not in the cost data "
                                f"({', '.join(sorted(cost_data.fab.memory))})")
            if mem.available_from_year is not None:  # no chip before its memory is made in volume
                avail[c] &= years >= mem.available_from_year - 1e-9
        if fc.packaging is not None:
            pkg = cost_data.fab.packaging.get(fc.packaging)
            if pkg is None:
                raise SpecError(f"chip {fc.name}: packaging {fc.packaging!r} is not in the cost data "
                                f"({', '.join(sorted(cost_data.fab.packaging))})")
            if pkg.available_from_year is not None:
                avail[c] &= years >= pkg.available_from_year - 1e-9
        if fc.maturity_periods:  # the software ramp of `perf.efficiency`, in periods of dt years
            ramp = MaturityRamp(at_launch=fc.maturity_start_frac, months_to_mature=fc.maturity_periods * dt * 12.0)
            maturity[c] = [ramp.at((y - y0) * 12.0) for y in years]
        if fc.max_units_per_period is not None:
            buy_cap[c] = fc.max_units_per_period
        vendors.append((fc.vendor or spec.vendor).lower())
    vendor_caps = []
    for cap in sc.supply_caps:
        members = [c for c, v in enumerate(vendors) if cap.vendor.lower() in v]
        if not members:
            raise SpecError(f"supply cap for {cap.vendor!r}: no chip in the scenario is from that vendor")
        vendor_caps.append((cap.vendor, members, _by_period(labels, cap.units_per_period, cap.by_period, False, 1)))
    controlled = []  # (label, classification) of the US-origin chips 3A090 reaches
    if sc.export_controls is not None:
        us = {v.lower() for v in sc.export_controls.us_origin_vendors}
        for c, (fc, spec) in enumerate(zip(sc.chips, specs)):
            cls = export_control(spec)["classification"]
            if (fc.vendor or spec.vendor).split(" ")[0].lower() in us and cls.startswith("3A090"):
                controlled.append((c, cls))
        if sc.export_controls.controlled == "exclude":
            for c, _ in controlled:
                avail[c] = False
        elif controlled:
            vendor_caps.append((f"licensed 3A090 chips to {sc.export_controls.destination}", [c for c, _ in controlled],
                                np.full(T, sc.export_controls.licensed_units_per_period)))
    memory_caps = []
    for ms in sc.memory_supply:
        members = [c for c, fc in enumerate(sc.chips) if fc.memory == ms.memory and fc.memory_stacks > 0]
        memory_caps.append((ms.memory, members, [float(sc.chips[c].memory_stacks) for c in members],
                            _by_period(labels, ms.stacks_per_period, ms.by_period, False, 1)))
    packaging_caps = []
    for ps in sc.packaging_supply:
        members = [c for c, fc in enumerate(sc.chips) if fc.packaging == ps.packaging]
        packaging_caps.append((ps.packaging, members, _by_period(labels, ps.units_per_period, ps.by_period, False, 1)))
    cap_arr = np.zeros((C, W, 2))
    sources: dict[str, dict[str, dict]] = {}
    for w, wl in enumerate(sc.workloads):
        if wl.kind == "training":
            for c, (fc, spec) in enumerate(zip(sc.chips, specs)):
                given = (fc.prefill_tok_s_per_chip or {}).get(wl.id)
                if given is not None:
                    pc = PhaseCapacity(prefill_tok_s_per_chip=given, decode_tok_s_per_chip=given, source="given")
                else:
                    if progress:
                        progress(f"training capacity of {wl.model} on {fc.name}")
                    pc = training_capacity(wl.model, spec, wl.chips_per_run, wl.precision, wl.seq_len,
                                           wl.training_tokens_per_year)
                cap_arr[c, w] = (pc.prefill_tok_s_per_chip, 0.0)
                sources.setdefault(fc.name, {})[wl.id] = {"training_tok_s_per_chip": pc.prefill_tok_s_per_chip,
                                                         "source": pc.source}
            continue
        traffic = traffic_of(wl)
        for c, (fc, spec) in enumerate(zip(sc.chips, specs)):
            given = (fc.prefill_tok_s_per_chip or {}).get(wl.id), (fc.decode_tok_s_per_chip or {}).get(wl.id)
            if given[0] is not None and given[1] is not None:
                pc = PhaseCapacity(prefill_tok_s_per_chip=given[0], decode_tok_s_per_chip=given[1], source="given")
            else:
                if progress:
                    progress(f"capacity of {wl.model} on {fc.name}")
                pc = phase_capacity(wl.model, spec, traffic)
                if given[0] is not None or given[1] is not None:
                    pc = pc.model_copy(update={k: v for k, v in zip(
                        ("prefill_tok_s_per_chip", "decode_tok_s_per_chip"), given) if v is not None})
            cap_arr[c, w] = (pc.prefill_tok_s_per_chip, pc.decode_tok_s_per_chip)
            sources.setdefault(fc.name, {})[wl.id] = pc.model_dump()
    # a chip serving only one phase of a workload cannot serve it (requests need both)
    training = np.array([wl.kind == "training" for wl in sc.workloads])
    cap_arr[(cap_arr == 0).any(axis=2) & ~training[None, :]] = 0.0
    demand = np.zeros((W, 2, T))
    tokens = np.zeros((W, T))
    for w, wl in enumerate(sc.workloads):
        growth = (1 + wl.growth_per_year) ** (years - years[0])
        if wl.kind == "training":  # tokens trained per second, steady over the period
            demand[w, 0] = wl.training_tokens_per_year * growth / (HOURS_PER_YEAR * 3600) * wl.peak_to_average
            tokens[w] = wl.training_tokens_per_year * growth * dt
            continue
        avg_tok_s = wl.tokens_per_day / 86400.0 * growth
        share_in = wl.input_len / (wl.input_len + wl.output_len)
        demand[w, 0] = avg_tok_s * wl.peak_to_average * share_in
        demand[w, 1] = avg_tok_s * wl.peak_to_average * (1 - share_in)
        tokens[w] = avg_tok_s * dt * HOURS_PER_YEAR * 3600
    power = None
    if sc.power_cap_mw is not None or sc.power_cap_mw_by_period:
        power = _by_period(labels, sc.power_cap_mw, sc.power_cap_mw_by_period, False, 1) * 1000.0
    budget = None
    if sc.budget_per_period is not None or sc.budget_by_period:
        budget = _by_period(labels, sc.budget_per_period, sc.budget_by_period, True, dt) / sc.fx
    initial = np.zeros((C, T))
    names = [fc.name for fc in sc.chips]
    for f in sc.initial_fleet:
        c = names.index(f.chip)
        age = f.age_years + np.arange(T) * dt
        initial[c] += np.where(age < sc.depreciation_years - 1e-9, f.units, 0.0)
    problem = PlanProblem(
        chips=names, workloads=[w.id for w in sc.workloads], periods=labels, period_years=dt, cap=cap_arr,
        demand=demand, capex_usd=capex, opex_usd=opex, kw=kw, available=avail, life_years=sc.depreciation_years,
        discount_rate=sc.discount_rate, maturity=maturity, buy_cap=buy_cap, vendor_caps=vendor_caps,
        memory_caps=memory_caps, packaging_caps=packaging_caps,
        power_cap_kw=power, budget_usd=budget, initial=initial, objective=sc.objective,
        integer_units=sc.integer_units, tokens_weight=tokens, training=[bool(x) for x in training],
        min_served=np.array([wl.min_served_frac for wl in sc.workloads]))
    policy = sc.export_controls
    restricted = {names[c]: (f"{cls}: {'excluded' if policy.controlled == 'exclude' else 'licensed'} for "
                             f"{policy.destination}") for c, cls in controlled} if policy else {}
    return problem, {"capacity": sources, "specs": specs, "economics": econ, "tokens": tokens,
                     "restricted": restricted}


def report(sc: FleetScenario, p: PlanProblem, sol: Solution, extra: dict) -> dict:
    """The plan as JSON: periods with purchases, fleet, power, money and tokens; totals; binding."""
    fx = sc.fx
    C, W, T = p.shape
    crf = capital_recovery_factor(sc.discount_rate, sc.depreciation_years)
    periods = []
    # capital charge per installed unit and period: its capex levelized over its life (CRF)
    bought_at = np.zeros((C, T))
    inst = p.installed()
    for t in range(T):
        # capex of the units installed in t, weighted by when they were bought
        bought_at[:, t] = (sol.buy * p.capex_usd * inst[:, t][None, :]).sum(axis=1)
    init_capex = (p.initial if p.initial is not None else np.zeros((C, T))) * p.capex_usd[:, :1]
    for t, lab in enumerate(p.periods):
        served_tok_s = float((sol.served_frac[:, t][:, None] * p.demand[:, :, t]).sum())
        demand_tok_s = float(p.demand[:, :, t].sum())
        power_mw = float(sol.fleet[:, t] @ p.kw / 1000.0)
        capex = float(sol.buy[:, t] @ p.capex_usd[:, t])
        opex = float(sol.fleet[:, t] @ p.opex_usd)
        capital_charge = float((bought_at[:, t] + init_capex[:, t]).sum() * crf * p.period_years)
        tokens = float((sol.served_frac[:, t] * extra["tokens"][:, t]).sum())
        usd_per_mtok = (capital_charge + opex) / (tokens / 1e6) if tokens > 0 else None
        serve = {}
        for c in range(C):
            for w in range(W):
                for ph in range(2):
                    u = sol.alloc[c, w, ph, t]
                    if u > 1e-6:
                        serve.setdefault(p.chips[c], {}).setdefault(p.workloads[w], {})[p.phase_name(w, ph)] = u
        periods.append({
            "period": lab,
            "purchases": {p.chips[c]: float(sol.buy[c, t]) for c in range(C) if sol.buy[c, t] > 1e-6},
            "fleet": {p.chips[c]: float(sol.fleet[c, t]) for c in range(C) if sol.fleet[c, t] > 1e-6},
            "serving": serve,
            "power_mw": power_mw,
            "capex_usd": capex,
            "opex_usd": opex,
            "demand_tok_s": demand_tok_s,
            "served_tok_s": served_tok_s,
            "usd_per_mtok": usd_per_mtok,
            "tok_s_per_mw": served_tok_s / power_mw if power_mw > 0 else None,
        })
    out = {
        "scenario": sc.id,
        "objective": sc.objective,
        "currency": sc.currency,
        "cny_per_usd": sc.cny_per_usd,
        "periods": periods,
        "npv_usd": sol.cost_pv_usd,
        "usd_per_mtok": [q["usd_per_mtok"] for q in periods],
        "tok_s_per_mw": [q["tok_s_per_mw"] for q in periods],
        "binding": [b for b in sol.binding if b["constraint"] not in ("assignment", "demand")]
                   + [b for b in sol.binding if b["constraint"] in ("assignment", "demand")][:20],
        "capacity_tok_s_per_chip": extra["capacity"],
        "chips": {p.chips[c]: {"unit_capex_usd_first": float(p.capex_usd[c][p.available[c]][0])
                               if p.available[c].any() else None,
                               "opex_usd_per_period": float(p.opex_usd[c]), "facility_kw": float(p.kw[c]),
                               "export_control": export_control(extra["specs"][c]),
                               "restricted": extra.get("restricted", {}).get(p.chips[c])}
                  for c in range(C)},
        "sources": sc.sources,
    }
    if fx != 1.0:
        out["npv_cny"] = out["npv_usd"] * fx
        for q in periods:
            q["capex_cny"], q["opex_cny"] = q["capex_usd"] * fx, q["opex_usd"] * fx
            q["cny_per_mtok"] = q["usd_per_mtok"] * fx if q["usd_per_mtok"] is not None else None
    return out


def plan(sc: FleetScenario, base_dir: Path | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Solve a scenario: the plan as a dict; raises SpecError with one line saying what binds."""
    problem, extra = build_problem(sc, base_dir, progress)
    try:
        sol = solve(problem)
    except Infeasible:
        from tokenfab.fleet.diagnose import explain_infeasible

        raise SpecError(explain_infeasible(problem, sc)) from None
    return report(sc, problem, sol, extra)
