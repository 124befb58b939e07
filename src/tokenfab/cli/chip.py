"""`tokenfab chip ID|FILE`: a chip's derived datasheet, area and power breakdown, unit cost, feasibility;
with `--model`, what 10% more of each resource buys on that workload and, for a design, $/Mtok
against its shared SRAM size."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tokenfab.cli import options as o
from tokenfab.cli.common import console, emit, handle_errors


def register(app: typer.Typer) -> None:
    """Add `chip` to the app."""
    app.command("chip")(chip)


@handle_errors
def chip(
    name: str = typer.Argument(..., help="Design or chip id (catalog/designs, catalog/chips) or a YAML file."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write area and power bars as a self-contained page."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A model (LLM) to serve: adds what 10% more of "
                                        "each resource buys and, for a design, $/Mtok against its shared SRAM size."),
    isl: Optional[int] = o.Isl, osl: Optional[int] = o.Osl,
    slo_ttft_ms: Optional[float] = o.SloTtft, slo_tpot_ms: Optional[float] = o.SloTpot,
    fidelity: Optional[o.Fidelity] = typer.Option(None, "--fidelity", help="Operator model of the resource table "
                                                  "(default: tiled for a design, roofline for a catalog chip; the "
                                                  "SRAM sweep is always tiled)."),
    json_out: bool = o.Json,
) -> None:
    """Derive a chip design: peaks, bandwidth, die area and power by part, unit cost, feasibility.
    With --model: the binding constraint of the best deployment, the change in output $/Mtok and
    tok/s/chip from 10% more of each resource, and for a design $/Mtok at 0.25-4x its shared SRAM."""
    from tokenfab.design.summary import chip_summary

    traffic = None
    if model is None and any(v is not None for v in (isl, osl, slo_ttft_ms, slo_tpot_ms)):
        raise ValueError("--isl, --osl and the SLOs shape the --model's traffic: give --model too")
    if model is not None:
        from tokenfab import api

        if api.resolve_model(model).kind != "llm":
            raise ValueError(f"--model {model}: the resource table needs an LLM (prefill/decode), not a "
                             f"{api.resolve_model(model).kind} model")
        traffic = o.traffic_from(isl, osl, slo_ttft_ms, slo_tpot_ms)
    s = chip_summary(name)
    from tokenfab.catalog import load_chip
    from tokenfab.cost.export_control import export_control

    s["export_control"] = export_control(load_chip(name))
    if html is not None and s["kind"] != "design":
        raise ValueError(f"{name} is a datasheet chip: --html plots a design's area and power breakdown")
    if traffic is not None:
        s["workload"] = _workload(name, model, traffic, fidelity.value if fidelity else None)
    if html is not None:
        from tokenfab.report.design_plots import chip_html

        html.write_text(chip_html(s))

    def show() -> None:
        _print(s)
        if s.get("workload"):
            _print_workload(s["workload"], s["id"])

    emit(s, json_out, show, html)


def _workload(name: str, model: str, traffic, fidelity: str | None) -> dict:
    """What 10% more of each resource buys (and the SRAM sweep of a design), progress on stderr."""
    from tokenfab import explain
    from tokenfab.design.summary import chip_and_design
    from tokenfab.specs import SpecError

    spec, design = chip_and_design(name)
    fid = fidelity or ("tiled" if design is not None else "roofline")
    out = {"model": model, "input_len": traffic.input_len, "output_len": traffic.output_len,
           "slo_ttft_ms": traffic.slo_ttft_ms, "slo_tpot_ms": traffic.slo_tpot_ms, "fidelity": fid,
           "resources": None, "sram_sweep": None, "error": None}

    def progress(msg: str) -> None:
        print(f"tokenfab chip: estimating {msg}", file=sys.stderr, flush=True)

    try:
        progress(f"{model} on {spec.id} ({fid})")
        out["resources"] = explain.resource_sensitivity(model, spec, traffic, fidelity=fid, progress=progress)
    except SpecError as exc:
        out["error"] = str(exc)
    if design is not None and out["error"] is None:
        out["sram_sweep"] = explain.sram_sweep(model, design, traffic, progress=progress)
    return out


def _pct(v) -> str:
    return "—" if v is None else ("0.0%" if abs(v) < 5e-4 else f"{v:+.1%}")


def _usd(v) -> str:
    return "—" if v is None else f"{v:,.4g}"


def _print_workload(w: dict, chip_id: str) -> None:
    head = f"{w['model']} on {chip_id}, ISL {w['input_len']}, OSL {w['output_len']} ({w['fidelity']})"
    if w["error"]:
        console.print(f"[red]no estimate of {head}:[/] {w['error']}")
        return
    r = w["resources"]
    base = r["base"]
    console.print(f"{head}: {base['mode']}, {base['output_tok_s_per_chip']:,.0f} output tok/s/chip, "
                  f"${_usd(base['usd_per_mtok_output'])}/Mtok output")
    console.print(f"binding: [bold]{base['binding']}[/] — {base['binding_detail']}", highlight=False)
    t = Table(title=f"what {r['factor'] - 1:.0%} more of each resource buys (chip price kept)", title_justify="left")
    for col, just in (("resource", "left"), ("$/Mtok out", "right"), ("change", "right"), ("tok/s/chip", "right"),
                      ("change", "right"), ("binding then", "left")):
        t.add_column(col, justify=just)
    for row in r["rows"]:
        t.add_row(row["resource"], _usd(row["usd_per_mtok_output"]), _pct(row["usd_per_mtok_output_change"]),
                  f"{row['output_tok_s_per_chip']:,.0f}", _pct(row["output_tok_s_per_chip_change"]), row["binding"] or "")
    console.print(t)
    if w["fidelity"] == "roofline" and any(row["field"] == "sram" for row in r["rows"]):
        console.print("shared SRAM: the roofline model does not see it (--fidelity tiled does)")
    if w.get("sram_sweep"):
        ts = Table(title="$/Mtok against shared SRAM (re-derived design: area and cost move; tiled)",
                   title_justify="left")
        for col in ("SRAM x", "MB/die", "die mm²", "unit cost $", "$/Mtok out", "tok/s/chip", "binding"):
            ts.add_column(col, justify="left" if col == "binding" else "right")
        for row in w["sram_sweep"]:
            note = row["binding"] or ""
            if row["error"]:
                note = f"[red]{row['error']}[/]"
            elif not row["feasible"]:
                note = f"[red]infeasible[/]: {'; '.join(row['infeasible_reasons'])}"
            ts.add_row(f"{row['scale']:g}", f"{row['shared_sram_mb_per_die']:g}", f"{row['die_area_mm2']:,.0f}",
                       f"{row['unit_cost_usd']:,.0f}" if row["unit_cost_usd"] else "—", _usd(row["usd_per_mtok_output"]),
                       f"{row['output_tok_s_per_chip']:,.0f}" if row["output_tok_s_per_chip"] else "—", note)
        console.print(ts)


def _print(s: dict) -> None:
    spec = s["chip_spec"]
    t = Table(title=f"{s['id']}: datasheet" + (" (derived from the design)" if s["kind"] == "design" else ""))
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("published", justify="right")
    pub = s.get("published") or {}
    rows = [("bf16 TFLOPS", "bf16_tflops"), ("fp8 TFLOPS", "fp8_tflops"), ("int8 TOPS", "int8_tops"),
            ("fp4 TFLOPS", "fp4_tflops"), ("HBM TB/s", "hbm_tb_s"), ("HBM GB", "hbm_gb"),
            ("scale-up GB/s (one way)", "scaleup_gb_s"), ("scale-out GB/s", "scaleout_gb_s"),
            ("shared SRAM MB", "sram_mb"), ("die area mm²", "die_area_mm2"), ("TDP W", "tdp_w")]
    for label, key in rows:
        v = spec.get(key)
        if v is None:
            continue
        p = pub.get(key)
        t.add_row(label, f"{v:,.4g}", f"{p:,.4g}" if p is not None else "")
    if s["kind"] == "design":
        t.add_row("estimated power W", f"{s['power_w']:,.0f}", f"{pub['tdp_w']:,.4g}" if "tdp_w" in pub else "")
    console.print(t)
    ec = s.get("export_control")
    if ec:
        pd = f", density {ec['performance_density']:.2f}/mm²" if ec["performance_density"] is not None else ""
        hbm = (f"; HBM {ec['memory_bandwidth_density_gb_s_mm2']:.1f} GB/s/mm² per stack"
               + (" (above 3A090.c's 2)" if ec["hbm_3a090c"] else "")) if ec["memory_bandwidth_density_gb_s_mm2"] else ""
        tpp = f"TPP {ec['tpp']:,.0f}" if ec["tpp"] is not None else "TPP n/a"
        console.print(f"US export screen (ECCN 3A090): {tpp}{pd} → {ec['classification']} ({ec['reason']}){hbm}")
    if s["kind"] != "design":
        cost = s.get("unit_cost_usd")
        console.print(f"unit cost (fab model): {'$' + format(cost, ',.0f') if cost else 'n/a'}; {s['note']}")
        return
    for title, key, unit, total in (("die area by part", "area_mm2_breakdown", "mm²", s["die_area_mm2"]),
                                    ("power by part at the bf16 GEMM load", "power_w_breakdown", "W",
                                     s["power_w_gemm_bf16"])):
        tb = Table(title=f"{s['id']}: {title}")
        tb.add_column("part")
        tb.add_column(unit, justify="right")
        tb.add_column("share", justify="right")
        for part, v in s[key].items():
            if v > 0:
                tb.add_row(part.replace("_", " "), f"{v:,.1f}", f"{v / total:.0%}")
        tb.add_row("total", f"{total:,.1f}", "")
        console.print(tb)
    sus = ", ".join(f"{p} {f:.0%}" for p, f in s["sustained_frac"].items() if f < 0.999)
    cost = s.get("unit_cost_usd")
    console.print(f"die {s['die_area_mm2_each']:,.0f} mm² x {s['compute_dies']} "
                  f"(reticle {s['reticle_limit_mm2']:.0f}); "
                  f"PHY edge {s['shoreline_needed_mm']:.0f} of {s['shoreline_available_mm']:.0f} mm usable; "
                  f"power {s['power_w']:,.0f} W (bf16 GEMM {s['power_w_gemm_bf16']:,.0f}, HBM stream "
                  f"{s['power_w_stream']:,.0f}) vs TDP {s['tdp_w']:,.0f} W"
                  + (f"; power-capped: {sus}" if sus else ""))
    console.print(f"unit cost {'$' + format(cost, ',.0f') if cost else 'n/a'}"
                  + (f" ({s['package_cost']['packaging']}, die yield {s['package_cost']['die_yield']:.0%})"
                     if s.get("package_cost") else ""))
    if s["feasible"]:
        console.print("[green]feasible[/]")
    else:
        for r in s["infeasible_reasons"]:
            console.print(f"[bold red]infeasible:[/] {r}")
