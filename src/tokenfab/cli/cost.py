"""`tokenfab tco`, `tokenfab fab`, `tokenfab build-vs-buy`: what chips cost to run, make and design."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import typer
import yaml
from rich.table import Table

from tokenfab.cli import options as o
from tokenfab.cli.common import UserError, console, handle_errors, print_json, reject_empty
from tokenfab.cost.data import CostInputs, resolve
from tokenfab.cost.fab import PackageCost, package_cost, package_spec_for_chip, resolve_node
from tokenfab.cost.tco import chip_hour_cost, in_currency
from tokenfab.specs.base import SpecError
from tokenfab.specs.economics import Economics, FabData, PackageSpec, SystemCostSpec

_ECON_FILE = typer.Option(None, "--economics", help="YAML file overriding economics (and fab:/nre: sections).")
_PRESET = typer.Option(None, "--preset", help="Operating preset from the shipped data (us, china).")
_CURRENCY = typer.Option(None, "--currency", help="Show money in USD or CNY.")
_SET = typer.Option(None, "--set", help="Override an economics field: --set pue=1.1, "
                    "--set system.chips_per_host=4 (repeatable).")
_JSON = o.Json


def register(app: typer.Typer) -> None:
    """Add the cost commands to the app."""
    app.command("tco")(tco)
    app.command("fab")(fab)
    app.command("build-vs-buy")(build_vs_buy)


# ---- tco ------------------------------------------------------------------------------------

@handle_errors
def tco(
    chip: str = typer.Option(..., "--chip", help="Chip id or ChipSpec YAML path."),
    economics: Optional[Path] = _ECON_FILE,
    preset: Optional[str] = _PRESET,
    rental_usd_per_hour: Optional[float] = typer.Option(None, "--rental-usd-per-hour", help="Rent instead of own."),
    price_usd: Optional[float] = typer.Option(None, "--price-usd", min=0.0, help="Chip price, USD, replacing the catalog's (at most $1e9)."),
    currency: Optional[str] = _CURRENCY,
    set_: Optional[list[str]] = _SET,
    as_json: bool = _JSON,
) -> None:
    """Cost of one chip-hour: amortized capex (chip and its system share), power, hosting and operations
    (or a rental price)."""
    from tokenfab.catalog import load_chip

    inputs = _resolve(economics, preset, set_, rental_usd_per_chip_hour=rental_usd_per_hour, currency=currency)
    spec = load_chip(chip)
    econ = inputs.economics
    if price_usd is not None and price_usd > 1e9:  # past any chip: a typo, and $inf at 1.8e308
        raise UserError(f"--price-usd {price_usd:g} is more than $1e9 a chip")
    cost = chip_hour_cost(spec, econ, price_usd=price_usd)
    quote = inputs.data.market_rental.get(spec.id)
    out: dict[str, Any] = {"chip": spec.id, "currency": econ.currency, "cny_per_usd": econ.cny_per_usd,
                           **cost.model_dump()}
    out.update(in_currency(cost.model_dump(exclude={"system"}), econ))
    out["system_parts_usd"] = cost.system.parts() if cost.system else None
    out["market_rental"] = quote.model_dump() if quote else None
    out["economics"] = econ.model_dump()
    if as_json:
        print_json(out)
        return
    table = Table(title=f"{spec.id}: cost per chip-hour ({cost.basis})")
    table.add_column("part")
    table.add_column(f"{econ.currency}/h", justify="right")
    table.add_column("basis")
    if cost.basis == "owned":
        table.add_row("capex", _m(cost.capex_usd_per_hour, econ, 3),
                      f"{_m(cost.capex_usd, econ, 0)} (chip {_m(cost.chip_price_usd, econ, 0)} + system "
                      f"{_m(cost.system_usd, econ, 0)}, +{econ.spares_frac:.0%} spares) × CRF {cost.crf:.4f} "
                      f"over {econ.depreciation_years:g} y at {econ.cost_of_capital:.0%}")
        table.add_row("power", _m(cost.power_usd_per_hour, econ, 3),
                      f"{cost.wall_kw:.2f} kW at the wall × {_m(econ.electricity_usd_per_kwh, econ, 3)}/kWh")
        table.add_row("hosting", _m(cost.hosting_usd_per_hour, econ, 3),
                      f"{_m(econ.hosting_usd_per_kw_month, econ, 0)}/kW-month")
        table.add_row("operations", _m(cost.ops_usd_per_hour, econ, 3),
                      f"{_m(econ.ops_usd_per_chip_year, econ, 0)}/chip-year")
    else:
        table.add_row("rental", _m(cost.rental_usd_per_hour, econ, 3), "given")
    table.add_row("[bold]total[/]", f"[bold]{_m(cost.total_usd_per_hour, econ, 3)}[/]", "")
    console.print(table)
    if cost.system is not None:
        _print_system(spec, cost.system, econ)
    if quote:
        console.print(f"market rental: {_m(quote.usd_per_hour, econ, 2)}/h ({quote.date}, {quote.source})")


def _print_system(spec, system, econ: Economics) -> None:
    """The chip's system share by part, with what each part scales with."""
    t = Table(title=f"{spec.id}: system share per chip ({'flat override' if system.basis == 'flat' else 'modeled'})")
    t.add_column("part")
    t.add_column(econ.currency, justify="right")
    t.add_column("scales with")
    if system.basis == "flat":
        t.add_row("server and network", _m(system.total_usd, econ, 0), "server_and_network_usd_per_chip (flat)")
    else:
        s = econ.system
        how = {
            "host": f"{_m(s.host_usd_per_server, econ, 0)} per server / {s.chips_per_host} chips",
            "power_delivery": f"{spec.tdp_w:g} W × {_m(s.power_delivery_usd_per_w, econ, 2)}/W",
            "cooling": f"{spec.tdp_w:g} W, {system.cooling} "
                       f"(liquid above {s.liquid_cooling_above_w:g} W)",
            "nic": f"scale-out {spec.scaleout_gb_s:g} GB/s",
            "integration": f"{s.integration_markup_frac:.0%} on host, power, cooling, NIC",
            "scaleout_network": f"scale-out {spec.scaleout_gb_s:g} GB/s × "
                                f"{s.scaleout_switch_ports_per_endpoint:g} switch ports + optics",
            "scaleup_fabric": f"scale-up {spec.scaleup_gb_s:g} GB/s, {system.scaleup_fabric}, "
                              f"domain {spec.scaleup_domain}",
        }
        for name, v in system.parts().items():
            t.add_row(name.replace("_", " "), _m(v, econ, 0), how[name])
    t.add_row("[bold]total[/]", f"[bold]{_m(system.total_usd, econ, 0)}[/]", "")
    console.print(t)


# ---- fab ------------------------------------------------------------------------------------

@handle_errors
def fab(
    die_mm2: Optional[float] = typer.Option(None, "--die-mm2", help="Total compute-die area, mm²."),
    node: Optional[str] = typer.Option(None, "--node", help="Process node id or name (tsmc-n5, 'TSMC 4N')."),
    chip: Optional[str] = typer.Option(None, "--chip", help="Take die, node and memory from a chip."),
    chiplets: Optional[int] = typer.Option(None, "--chiplets", help="Compute dies the area is split into."),
    hbm_stacks: Optional[int] = typer.Option(None, "--hbm-stacks", help="Memory stacks in the package."),
    hbm_gen: Optional[str] = typer.Option(None, "--hbm-gen", help="Memory: hbm2e, hbm3, hbm3e, dram."),
    hbm_gb: Optional[float] = typer.Option(None, "--hbm-gb", help="Memory capacity, GB (default stacks × GB/stack)."),
    packaging: Optional[str] = typer.Option(None, "--packaging", help="cowos-s, cowos-l, organic (default: auto)."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Vendor gross margin for the price (0..1)."),
    yield_model: Optional[str] = typer.Option(None, "--yield-model", help="poisson, murphy, seeds, negative_binomial."),
    defect_density: Optional[float] = typer.Option(None, "--defect-density", help="D0, defects/cm² (node override)."),
    wafer_usd: Optional[float] = typer.Option(None, "--wafer-usd", help="Wafer price, USD (node override)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Defect clustering α (node override)."),
    bond_yield: Optional[float] = typer.Option(None, "--bond-yield", help="Bond yield per die/stack (0..1]."),
    final_test_yield: Optional[float] = typer.Option(None, "--final-test-yield", help="Final test yield (0..1]."),
    economics: Optional[Path] = _ECON_FILE,
    as_json: bool = _JSON,
) -> None:
    """Unit cost of a package from wafer price, yield, memory and packaging; and its vendor price."""
    reject_empty(**{"--node": node, "--hbm-gen": hbm_gen, "--packaging": packaging, "--yield-model": yield_model})
    fab_data = _resolve(economics, None, None).data.fab
    spec_chip = None
    if chip is not None:
        from tokenfab.catalog import load_chip
        spec_chip = load_chip(chip)
    elif die_mm2 is None or node is None:
        raise UserError("give --die-mm2 and --node, or --chip")
    changes = {k: v for k, v in dict(compute_die_mm2=die_mm2, node=node, chiplets=chiplets, memory=hbm_gen,
                                      memory_stacks=hbm_stacks, memory_gb=hbm_gb, packaging=packaging).items()
               if v is not None}
    if spec_chip is not None:
        pkg = package_spec_for_chip(spec_chip, fab_data, **changes)
    else:
        pkg = PackageSpec.from_mapping(changes, origin="fab options")
    fab_data = _fab_overrides(fab_data, pkg, dict(defect_density_per_cm2=defect_density, wafer_usd=wafer_usd,
                                                  cluster_alpha=alpha),
                              dict(bond_yield_per_die=bond_yield, final_test_yield=final_test_yield))
    cost = package_cost(pkg, fab_data, yield_model=yield_model, margin=margin)
    out: dict[str, Any] = {"package": pkg.model_dump(), **cost.model_dump(), "parts_usd": cost.parts()}
    if spec_chip is not None:
        out["chip"] = spec_chip.id
        out["chip_price_usd"] = spec_chip.price_usd
        out["implied_gross_margin"] = (1 - cost.unit_cost_usd / spec_chip.price_usd) if spec_chip.price_usd else None
    out["sources"] = _fab_sources(fab_data, cost)
    out["supply_note"] = _supply_note(cost)
    if as_json:
        print_json(out)
        return
    _print_package(cost, title=f"{spec_chip.id if spec_chip else 'package'}: unit cost")
    if out["supply_note"]:
        console.print(f"note: {out['supply_note']}")
    if spec_chip is not None and spec_chip.price_usd:
        console.print(f"catalog price ${spec_chip.price_usd:,.0f} → implied gross margin "
                      f"{out['implied_gross_margin']:.0%}")


def _print_package(cost: PackageCost, title: str) -> None:
    table = Table(title=title)
    table.add_column("part")
    table.add_column("USD", justify="right")
    table.add_column("how")
    table.add_row("compute dies", f"{cost.compute_dies_usd:,.0f}",
                  f"{cost.chiplets} × {cost.die_mm2_each:.0f} mm² on {cost.node}: {cost.gross_dies_per_wafer:.1f} "
                  f"dies/wafer, {cost.yield_model} yield {cost.die_yield:.1%}, ${cost.good_die_usd:,.0f}/good die")
    table.add_row("memory", f"{cost.memory_usd:,.0f}",
                  f"{cost.memory_gb:g} GB {cost.memory or '-'} in {cost.memory_stacks} stacks")
    table.add_row("interposer", f"{cost.interposer_usd:,.0f}", f"{cost.interposer_mm2:,.0f} mm² ({cost.packaging})")
    table.add_row("assembly", f"{cost.assembly_usd:,.0f}", cost.packaging)
    table.add_row("final test", f"{cost.test_usd:,.0f}", "")
    table.add_row("packaging yield loss", f"{cost.yield_loss_usd:,.0f}", f"package yield {cost.package_yield:.1%}")
    table.add_row("[bold]unit cost[/]", f"[bold]{cost.unit_cost_usd:,.0f}[/]", "")
    table.add_row("vendor price", f"{cost.vendor_price_usd:,.0f}", f"at {cost.gross_margin:.0%} gross margin")
    console.print(table)


def _fab_overrides(fab_data: FabData, pkg: PackageSpec, node_changes: dict, packaging_changes: dict) -> FabData:
    """Fab data with the node (and packaging) the package uses changed by CLI flags, validated."""
    node_changes = {k: v for k, v in node_changes.items() if v is not None}
    packaging_changes = {k: v for k, v in packaging_changes.items() if v is not None}
    update: dict[str, Any] = {}
    if node_changes:
        n = resolve_node(pkg.node, fab_data)
        update["nodes"] = {**fab_data.nodes, n.id: n.with_overrides(node_changes, "command line")}
    if packaging_changes:  # applied to every packaging, since the choice may be automatic
        try:
            update["packaging"] = {k: p.with_overrides(packaging_changes, "command line")
                                   for k, p in fab_data.packaging.items()}
        except SpecError as exc:
            raise SpecError(str(exc).split(": ", 1)[-1]) from None
    return fab_data.model_copy(update=update) if update else fab_data


def _supply_note(cost: PackageCost) -> str | None:
    """A SMIC-node die priced with TSMC packaging or imported HBM: a supply chain a China buyer lacks."""
    if not cost.node.startswith("smic"):
        return None
    foreign = [what for what, bad in (("TSMC CoWoS packaging", cost.packaging.startswith("cowos")),
                                      (f"imported {cost.memory} (US 3A090.c since Dec 2024)",
                                       bool(cost.memory) and cost.memory.startswith("hbm"))) if bad]
    if not foreign:
        return None
    return (f"a {cost.node} die priced with {' and '.join(foreign)}; for the domestic supply chain use "
            "--packaging domestic-2.5d --hbm-gen cxmt-hbm2e (estimates)")


def _fab_sources(fab_data: FabData, cost: PackageCost) -> dict[str, Any]:
    """Sources of the node, memory and packaging numbers a cost used."""
    out = {"node": fab_data.nodes[cost.node].sources, "packaging": fab_data.packaging[cost.packaging].sources}
    if cost.memory:
        out["memory"] = fab_data.memory[cost.memory].sources
    return out


# ---- build vs buy ---------------------------------------------------------------------------

@handle_errors
def build_vs_buy(
    model: str = typer.Option(..., "--model", help="Model id or config.json path."),
    design: Optional[Path] = typer.Option(None, "--design", help="Custom chip: a ChipSpec YAML file."),
    chip: Optional[str] = typer.Option(None, "--chip", help="Custom chip: a catalog chip built in-house."),
    versus: str = typer.Option("h100-sxm", "--versus", help="Vendor chip to buy instead."),
    isl: Optional[int] = o.Isl,
    osl: Optional[int] = o.Osl,
    slo_ttft_ms: Optional[float] = o.SloTtft,
    slo_tpot_ms: Optional[float] = o.SloTpot,
    prefix_hit: float = o.PrefixHit,
    fleet: float = typer.Option(10000, "--fleet", help="Fleet size in vendor-chip equivalents."),
    economics: Optional[Path] = _ECON_FILE,
    preset: Optional[str] = _PRESET,
    rental_usd_per_hour: Optional[float] = typer.Option(None, "--rental-usd-per-hour", help="Rent the vendor chip."),
    currency: Optional[str] = _CURRENCY,
    set_: Optional[list[str]] = _SET,
    as_json: bool = _JSON,
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained HTML report."),
    npv: bool = typer.Option(False, "--npv", help="Add the NPV under uncertainty (seeded Monte Carlo, cost/npv.py): "
                             "--fleet is then the purchases over --horizon-years."),
    draws: int = typer.Option(10000, "--draws", min=1, max=1_000_000, help="Monte Carlo draws (--npv)."),
    seed: int = typer.Option(0, "--seed", help="Monte Carlo seed (--npv)."),
    horizon_years: float = typer.Option(6.0, "--horizon-years", help="Years over which --fleet is bought (--npv)."),
    nre_basis: str = typer.Option("ibs", "--nre-basis", help="ibs (IBS design cost by node) or team (--npv)."),
    vendor_margin: Optional[float] = typer.Option(None, "--vendor-margin", help="Vendor gross margin (default: "
                                                  "implied by its price and fab cost) (--npv)."),
    vendor_decline: float = typer.Option(0.30, "--vendor-decline", min=0.0, max=0.9, help="Vendor's yearly fall in cost per unit "
                                         "of performance (roadmap) (--npv)."),
    partner_markup: Optional[float] = typer.Option(None, "--partner-markup", min=0.0, help="ASIC-partner markup on the "
                                                   "custom unit cost (--npv)."),
    software_reuse: float = typer.Option(0.0, "--software-reuse", help="Share of the software stack reused from "
                                         "an earlier generation (--npv)."),
) -> None:
    """Build a custom chip or buy a vendor's: NRE, fleet cost for equal tokens, break-even, tornado;
    with --npv the net present value under uncertainty (respins, schedule, ramp, vendor roadmap)."""
    from tokenfab.catalog import load_chip
    from tokenfab.cost.compare import compare_build_vs_buy

    if (design is None) == (chip is None):
        raise UserError("give exactly one of --design FILE or --chip C for the custom chip")
    inputs = _resolve(economics, preset, set_, rental_usd_per_chip_hour=rental_usd_per_hour, currency=currency)
    custom = load_chip(str(design) if design is not None else chip)
    vendor = load_chip(versus)
    traffic = o.traffic_from(isl, osl, slo_ttft_ms, slo_tpot_ms, prefix_hit)
    est_custom, est_vendor = _estimate(model, custom, traffic), _estimate(model, vendor, traffic)
    result = compare_build_vs_buy(custom, vendor, est_custom, est_vendor, inputs.data, inputs.economics, fleet,
                                  model=model)
    npv_out = _npv(result, inputs, vendor, fleet, draws, seed, horizon_years, nre_basis, vendor_margin,
                   vendor_decline, partner_markup, software_reuse) if npv else None
    if html is not None:
        from tokenfab.report.cost_plots import build_vs_buy_html
        page = build_vs_buy_html(result, inputs.economics)
        if npv_out is not None:
            from tokenfab.report.fleet_html import npv_section_html
            page = page.replace("</body>", npv_section_html(npv_out, inputs.economics.currency,
                                                            inputs.economics.fx) + "</body>")
        html.write_text(page)
    econ = inputs.economics
    if as_json:
        out = result.model_dump()
        if npv_out is not None:
            out["npv"] = npv_out
        out["currency"], out["cny_per_usd"] = econ.currency, econ.cny_per_usd
        if econ.currency != "USD":
            totals = ("build_total_usd", "buy_total_usd", "savings_usd")
            out["headline"] = in_currency({k: out[k] for k in totals}, econ)
        if html is not None:
            out["html"] = str(html)
        print_json(out)
        return
    _print_build_vs_buy(result, econ)
    if npv_out is not None:
        _print_npv(npv_out, econ)
    if html is not None:
        console.print(f"wrote {html}")


def _npv(result, inputs: CostInputs, vendor, fleet: float, draws: int, seed: int, horizon_years: float,
         nre_basis: str, vendor_margin, vendor_decline: float, partner_markup, software_reuse: float) -> dict:
    """The Monte Carlo NPV block (`cost/npv.py`)."""
    from tokenfab.cost.npv import inputs_from_build_vs_buy, monte_carlo

    if not 0 < horizon_years <= 30:
        raise UserError("--horizon-years must be in (0, 30]")
    vendor_cost = package_cost(package_spec_for_chip(vendor, inputs.data.fab), inputs.data.fab).unit_cost_usd
    x, parts = inputs_from_build_vs_buy(result, inputs.data, inputs.economics, result.custom_package.node,
                                        vendor_cost, fleet, horizon_years, nre_basis, vendor_margin,
                                        vendor_decline, partner_markup, software_reuse)
    mc = monte_carlo(x, draws=draws, seed=seed)
    out = mc.model_dump()
    out["tornado"] = [dict(r.model_dump(), swing_usd=r.swing) for r in mc.tornado]
    out["inputs"] = x.model_dump()
    out["nre_by_node_usd"] = parts
    out["vendor_unit_cost_usd"] = vendor_cost
    return out


def _with_nre(r: dict) -> str:
    """The unit cost ratio with the build cost, or why there is none (no ASIC bought in the horizon)."""
    v = r["unit_compute_cost_ratio_with_nre"]
    if v is None or not math.isfinite(v):
        return f"no ASIC is bought within the {r['horizon_years']:g} y horizon to carry the build cost"
    return f"{v:.0%} with the build cost"


def _print_npv(r: dict, econ: Economics) -> None:
    console.print(f"[bold]NPV of building[/] at {r['units_per_year'] * r['horizon_years']:,.0f} vendor-chip "
                  f"equivalents over {r['horizon_years']:g} y ({r['draws']:,} draws, seed {r['seed']}): mean "
                  f"{_m(r['npv_usd'], econ, 0)} (p10 {_m(r['npv_p10_usd'], econ, 0)}, p90 {_m(r['npv_p90_usd'], econ, 0)});"
                  f" building wins in {r['p_build_wins']:.0%} of draws")
    console.print(f"break-even purchases p10/p50/p90: {_count(r['break_even_units_p10'])} / "
                  f"{_count(r['break_even_units_p50'])} / {_count(r['break_even_units_p90'])}; launch p50 "
                  f"{r['launch_years_p50']:.1f} y; unit compute cost vs vendor at launch {r['unit_compute_cost_ratio']:.0%}"
                  f" ({_with_nre(r)})")
    t = Table(title="NPV sensitivity (others at their mode)")
    for h in ("input", "low → NPV", "high → NPV"):
        t.add_column(h)
    for row in r["tornado"]:
        t.add_row(row["input"], f"{row['low']:,.4g} → {_m(row['npv_at_low_usd'], econ, 0)}",
                  f"{row['high']:,.4g} → {_m(row['npv_at_high_usd'], econ, 0)}")
    console.print(t)


def _estimate(model: str, chip, traffic):
    """The engine's estimate (imported here so the cost commands work without the engine)."""
    try:
        from tokenfab import api
    except ImportError as exc:
        raise UserError(f"the performance engine is not available ({exc})") from None
    return api.estimate(model, chip, traffic)


def _print_build_vs_buy(r, econ: Economics) -> None:
    t = Table(title=f"build {r.custom_chip} vs {'rent' if r.vendor_basis == 'rental' else 'buy'} "
                    f"{r.vendor_chip} for {r.model}")
    t.add_column("")
    t.add_column(f"build: {r.custom_chip}", justify="right")
    t.add_column(f"{r.vendor_basis}: {r.vendor_chip}", justify="right")
    ce, ve = r.custom_estimate, r.vendor_estimate
    t.add_row("output tok/s per chip", f"{r.inputs.custom_tok_s_per_chip:,.0f}",
              f"{r.inputs.vendor_tok_s_per_chip:,.0f}")
    if "tp" in ce and "tp" in ve:
        t.add_row("mapping (tp/pp/ep/dp, batch)", _mapping(ce), _mapping(ve))
    t.add_row("unit price", _m(r.inputs.custom_unit_usd, econ, 0),
              _m(r.inputs.vendor_price_usd, econ, 0) if r.vendor_basis == "owned" else "-")
    t.add_row("system share per chip", _m(r.custom_chip_hour.system_usd, econ, 0),
              _m(r.vendor_chip_hour.system_usd, econ, 0) if r.vendor_basis == "owned" else "-")
    t.add_row("cost per chip-hour", _m(r.custom_chip_hour.total_usd_per_hour, econ, 3),
              _m(r.vendor_chip_hour.total_usd_per_hour, econ, 3))
    t.add_row("lifetime cost per chip", _m(r.custom_lifetime_usd_per_chip, econ, 0),
              _m(r.vendor_lifetime_usd_per_chip, econ, 0))
    t.add_row("$/M output tokens (without / with NRE)",
              f"{_m(r.custom_tokens.output_usd_per_mtok, econ, 3)} / "
              f"{_m(r.custom_tokens_with_nre.output_usd_per_mtok, econ, 3)}",
              _m(r.vendor_tokens.output_usd_per_mtok, econ, 3))
    t.add_row("$/M input tokens", _m(r.custom_tokens.input_usd_per_mtok, econ, 3),
              _m(r.vendor_tokens.input_usd_per_mtok, econ, 3))
    t.add_row(f"fleet for {r.fleet_vendor_equiv:,.0f} vendor-chip equivalents", f"{r.custom_chips_at_fleet:,} chips",
              f"{r.fleet_vendor_equiv:,.0f} chips")
    t.add_row("total cost at that fleet", _m(r.build_total_usd, econ, 0), _m(r.buy_total_usd, econ, 0))
    console.print(t)
    n = Table(title=f"NRE {_m(r.nre.total_usd, econ, 0)}, time to market {r.nre.time_to_market_years:.1f} y")
    n.add_column("part")
    n.add_column(econ.currency, justify="right")
    for name, v in r.nre.parts().items():
        n.add_row(name, _m(v, econ, 0))
    console.print(n)
    be = "never (custom chips cost more per token)" if not math.isfinite(r.breakeven_fleet) else \
        f"{r.breakeven_fleet:,.0f} vendor-chip equivalents ({r.breakeven_fleet * r.chips_ratio:,.0f} custom chips)"
    console.print(f"[bold]break-even:[/] {be}; savings at {r.fleet_vendor_equiv:,.0f}: {_m(r.savings_usd, econ, 0)}")
    tt = Table(title="break-even sensitivity (vendor-chip equivalents)")
    tt.add_column("input")
    tt.add_column("low → break-even", justify="right")
    tt.add_column("high → break-even", justify="right")
    tt.add_column("range from")
    for b in r.tornado[:8]:
        tt.add_row(b.input, f"{b.low_value:,.4g} → {_count(b.breakeven_at_low)}",
                   f"{b.high_value:,.4g} → {_count(b.breakeven_at_high)}", b.range_source)
    console.print(tt)


def _mapping(e: dict) -> str:
    return f"{e.get('tp')}/{e.get('pp')}/{e.get('ep')}/{e.get('dp')}, {e.get('batch')}"


def _count(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "never"


# ---- shared -----------------------------------------------------------------------------------

def _resolve(economics: Optional[Path], preset: Optional[str], set_: Optional[list[str]], **flags: Any) -> CostInputs:
    """Cost data with the file, preset, `--set` pairs and named flags applied (None flags skipped)."""
    reject_empty(**{"--preset": preset, "--currency": flags.get("currency")})
    overrides = dict(_parse_set(set_ or []))
    if flags.get("currency") is not None:
        flags["currency"] = flags["currency"].upper()
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return resolve(economics, preset=preset, overrides=overrides)


def _parse_set(pairs: list[str]) -> list[tuple[str, Any]]:
    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects FIELD=VALUE, got {pair!r}")
        name = key.strip()
        known = (name.split(".", 1)[1] in SystemCostSpec.model_fields if name.startswith("system.")
                 else name in Economics.model_fields and name != "system")
        if not known:
            raise UserError(f"--set: unknown economics field {name!r}")
        if not value.strip():
            raise UserError(f"--set {key.strip()}=: no value given")
        out.append((key.strip(), yaml.safe_load(value)))
    return out


def _m(usd: float | None, econ: Economics, digits: int) -> str:
    """Money in the display currency."""
    if usd is None:
        return "-"
    symbol = "¥" if econ.currency == "CNY" else "$"
    v = usd * econ.fx
    return f"-{symbol}{-v:,.{digits}f}" if v < 0 else f"{symbol}{v:,.{digits}f}"
