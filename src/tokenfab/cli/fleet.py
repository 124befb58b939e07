"""`tokenfab fleet SCENARIO`: what to buy each period and what each chip serves (an LP, HiGHS)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tokenfab.cli import options as o
from tokenfab.cli.common import UserError, console, emit, err_console, handle_errors, reject_empty


def register(app: typer.Typer) -> None:
    """Add the fleet command to the app."""
    app.command("fleet")(fleet)


@handle_errors
def fleet(
    scenario: str = typer.Argument(..., help="Scenario YAML file or shipped id (cn-hyperscaler-2026, us-neocloud-2026)."),
    objective: Optional[str] = typer.Option(None, "--objective", help="min_cost (meet demand) or max_tokens (within budget)."),
    integer: Optional[bool] = typer.Option(None, "--integer/--lp", help="Whole chips (MILP) or the LP."),
    power_cap_mw: Optional[float] = typer.Option(None, "--power-cap-mw", help="Facility power cap, MW (every period)."),
    currency: Optional[str] = typer.Option(None, "--currency", help="Show money in USD or CNY."),
    as_json: bool = o.Json,
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report."),
) -> None:
    """Plan a mixed fleet over time: purchases per period, which workload and phase each chip serves,
    under supply caps, budget and a power cap; cost, $/Mtok and binding constraints with shadow prices."""
    from tokenfab.fleet.plan import plan
    from tokenfab.fleet.scenario import load_scenario

    reject_empty(**{"--objective": objective, "--currency": currency})
    if not scenario.strip():
        raise UserError("SCENARIO is empty: give a scenario file or a shipped id")
    sc, base = load_scenario(scenario)
    changes = {}
    if objective is not None:
        if objective not in ("min_cost", "max_tokens"):
            raise UserError(f"--objective must be min_cost or max_tokens, got {objective!r}")
        changes["objective"] = objective
    if integer is not None:
        changes["integer_units"] = integer
    if power_cap_mw is not None:
        if not power_cap_mw > 0:
            raise UserError("--power-cap-mw must be > 0")
        changes["power_cap_mw"] = power_cap_mw
        changes["power_cap_mw_by_period"] = {}
    if currency is not None:
        if currency.upper() not in ("USD", "CNY"):
            raise UserError(f"--currency must be USD or CNY, got {currency!r}")
        changes["currency"] = currency.upper()
    if changes:
        sc = type(sc).from_mapping({**sc.model_dump(exclude_unset=True), **changes}, origin=scenario)
    with err_console.status("estimating capacity per chip", spinner="dots") as status:
        result = plan(sc, base, progress=lambda msg: status.update(msg))
    if html is not None:
        from tokenfab.report.fleet_html import fleet_html

        html.write_text(fleet_html(result))
    emit(result, as_json, lambda: _print(result), html)


def _m(usd: float | None, r: dict) -> str:
    if usd is None:
        return "-"
    fx = r["cny_per_usd"] if r["currency"] == "CNY" else 1.0
    sym = "¥" if r["currency"] == "CNY" else "$"
    v = usd * fx
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{sym}{v / div:,.2f}{unit}"
    return f"{sym}{v:,.3f}"


def _units(d: dict) -> str:
    return ", ".join(f"{k} {v:,.0f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "-"


def _print(r: dict) -> None:
    cur = r["currency"]
    t = Table(title=f"fleet plan {r['scenario'] or ''} ({r['objective'].replace('_', ' ')}): "
                    f"present value {_m(r['npv_usd'], r)}", title_justify="left")
    for h, j in (("period", "left"), ("purchases", "left"), ("fleet", "left"), ("MW", "right"),
                 (f"capex {cur}", "right"), (f"opex {cur}", "right"), ("demand tok/s", "right"),
                 ("served", "right"), (f"{cur}/Mtok", "right"), ("tok/s/MW", "right")):
        t.add_column(h, justify=j)
    for q in r["periods"]:
        t.add_row(q["period"], _units(q["purchases"]), _units(q["fleet"]), f"{q['power_mw']:,.1f}",
                  _m(q["capex_usd"], r), _m(q["opex_usd"], r), f"{q['demand_tok_s']:,.0f}",
                  f"{q['served_tok_s'] / q['demand_tok_s']:.0%}" if q["demand_tok_s"] else "-",
                  _m(q["usd_per_mtok"], r), f"{q['tok_s_per_mw']:,.0f}" if q["tok_s_per_mw"] else "-")
    console.print(t)
    b = Table(title="binding constraints (shadow prices, present value)", title_justify="left")
    for h in ("constraint", "period", "on", "one more is worth"):
        b.add_column(h)
    for row in r["binding"][:10]:
        price = row["shadow_price"]
        if row["unit"].startswith("USD") and row["constraint"] != "budget":
            worth = f"{_m(price, r)} {row['unit'].split(') ', 1)[-1]}"
        else:
            worth = f"{price:,.4g} {row['unit']}"
        b.add_row(row["constraint"], row["period"], row["name"], worth)
    console.print(b)
