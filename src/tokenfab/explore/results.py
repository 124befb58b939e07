"""Tables of a search: the feasible set, the Pareto front, the infeasible designs with their
reasons; the baseline chip on the same mix; the verdict against it; files (JSON, CSV, parquet,
one ChipDesign YAML per front design).

Rows are unique designs (the first trial that reached each); a design's $/Mtok breakdown splits
the mix's $/Mtok by the parts of its chip-hour cost (chip, server and network share, power,
hosting, operations), since every scenario pays the same chip-hour.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from tokenfab.explore import objectives as obj_mod
from tokenfab.explore.evaluate import EvalContext, evaluate_chip, evaluate_point
from tokenfab.explore.pareto import front_order, pareto_mask
from tokenfab.explore.search import SearchOutcome
from tokenfab.jsonsafe import json_safe

SIMILAR_AREA = 0.20
"""A design is comparable with the baseline at its node within ±20 % of its silicon area."""


# ---- rows -----------------------------------------------------------------------------------

def design_row(number: int | None, result: dict) -> dict:
    """A nested JSON row of one result."""
    return {"trial": number, "design_id": result.get("design_id"), "feasible": bool(result.get("feasible")),
            "reasons": list(result.get("reasons") or []), "objectives": dict(result.get("objectives") or {}),
            "params": dict(result.get("params") or {}), "chip": dict(result.get("chip") or {}),
            "chip_hour": dict(result.get("chip_hour") or {}), "scenarios": dict(result.get("scenarios") or {})}


def flat_row(row: dict) -> dict:
    """One CSV/parquet row: scalars only (params as `param.<path>`, scenarios as `<name>.<field>`)."""
    out: dict[str, Any] = {"trial": row.get("trial"), "design_id": row.get("design_id"), "feasible": row["feasible"],
                           "reasons": "; ".join(row.get("reasons") or [])}
    for k, v in (row.get("objectives") or {}).items():
        out[k] = v
    for k, v in (row.get("chip") or {}).items():
        if not isinstance(v, dict) and k not in out:
            out[k] = v
    out["usd_per_chip_hour"] = (row.get("chip_hour") or {}).get("total")
    for k, v in (row.get("params") or {}).items():
        out[f"param.{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    for name, s in (row.get("scenarios") or {}).items():
        for k in ("usd_per_mtok", "tpot_ms", "ttft_ms", "total_tok_s_per_chip", "num_chips", "tp", "ep", "batch",
                  "weight_precision", "error"):
            if k in s:
                out[f"{name}.{k}"] = s[k]
    return out


def unique_rows(outcome: SearchOutcome) -> list[dict]:
    """One row per distinct design, from the first trial that reached it."""
    seen: set[str] = set()
    rows = []
    for rec in outcome.trials:
        h = rec.result.get("design_hash")
        if h in seen:
            continue
        seen.add(h)
        rows.append(design_row(rec.number, rec.result))
    return rows


def front_rows(rows: list[dict], names: tuple[str, ...] | list[str]) -> list[dict]:
    """The Pareto front of the feasible rows in the objectives `names` (sorted by the first)."""
    feas = [r for r in rows if r["feasible"] and obj_mod.values(r, names) is not None]
    if not feas:
        return []
    v = np.array([obj_mod.values(r, names) for r in feas])
    return [feas[i] for i in front_order(v, pareto_mask(v))]


# ---- baseline and breakdowns ---------------------------------------------------------------------

def usd_breakdown(row: dict, server_usd: float) -> dict[str, float]:
    """The mix's $/Mtok split by chip-hour part: chip price, server and network share, power,
    hosting, operations (rental: one part)."""
    usd = (row.get("objectives") or {}).get("usd_per_mtok")
    ch = row.get("chip_hour") or {}
    total = ch.get("total")
    if usd is None or not total:
        return {}
    if ch.get("basis") == "rental":
        return {"rental": usd}
    price = ch.get("price_usd") or 0.0
    server_usd = ch.get("system_usd", server_usd)  # the chip's own system share when the row has it
    chip_share = price / (price + server_usd) if price + server_usd > 0 else 0.0
    capex = ch.get("capex", 0.0)
    parts = {"chip": capex * chip_share, "server_network": capex * (1.0 - chip_share),
             "power": ch.get("power", 0.0), "hosting": ch.get("hosting", 0.0), "ops": ch.get("ops", 0.0)}
    return {k: usd * v / total for k, v in parts.items()}


def baseline_result(chip_id: str, ctx: EvalContext) -> dict:
    """The baseline chip on the mix, as a row (its unit cost from the fab model where possible)."""
    from tokenfab import catalog
    from tokenfab.cost.data import shipped_cost_data
    from tokenfab.cost.fab import package_cost, package_spec_for_chip
    from tokenfab.specs import SpecError

    chip = catalog.load_chip(chip_id)
    fab = shipped_cost_data().fab
    try:
        unit = package_cost(package_spec_for_chip(chip, fab), fab).unit_cost_usd
    except SpecError:
        unit = None
    return design_row(None, evaluate_chip(chip, ctx, unit))


def reference_result(design_name: str, ctx: EvalContext, own_vendor: bool = False) -> dict:
    """The baseline's silicon as a design (e.g. `h100-sxm-design`) priced at unit cost: with the
    space's software assumption (its `vendor`), what the architecture alone is worth against it;
    with `own_vendor`, the design file's vendor (NVIDIA: CUDA-class efficiencies), what the
    margin alone is worth against the baseline."""
    from dataclasses import replace

    from tokenfab.design.catalog import load_design
    from tokenfab.explore.designs import set_path

    design = load_design(design_name)
    base = design.model_dump(mode="json")
    for k in ("published", "sources", "estimated_fields"):
        base.pop(k, None)
    if not own_vendor:  # the space's software: its vendor, stack and calibration, not the design file's
        set_path(base, "vendor", ctx.base.get("vendor", design.vendor))
        base["software"] = ctx.base.get("software", "")
        base["calibration"] = ctx.base.get("calibration")
    # The reference is judged on the mix only: the space's constraints do not apply to it.
    free = replace(ctx, base=base, constraints=type(ctx.constraints)(), allowed_nodes=None)
    row = design_row(None, evaluate_point({}, free))
    row["design_id"] = f"{design.id} (unit cost, vendor {base['vendor']})"
    return row


def _node_id(node: str | None) -> str | None:
    from tokenfab.cost.data import shipped_cost_data
    from tokenfab.cost.fab import resolve_node
    from tokenfab.specs import SpecError

    if not node:
        return None
    try:
        return resolve_node(node, shipped_cost_data().fab).id
    except SpecError:
        return node


def comparable(row: dict, base: dict) -> bool:
    """Same node as the baseline and total silicon within ±SIMILAR_AREA of its area."""
    a, b = row["chip"].get("die_area_mm2"), base["chip"].get("die_area_mm2")
    if a is None or b is None:
        return False
    return _node_id(row["chip"].get("process_node")) == _node_id(base["chip"].get("process_node")) \
        and abs(a / b - 1.0) <= SIMILAR_AREA


# ---- verdict -------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{x * 100:+.0f}%"


def explain(row: dict, base: dict, server_usd: float) -> dict:
    """Why a design's mix $/Mtok differs from the baseline's: chip-hour cost × tokens per chip-hour."""
    d, b = row["objectives"].get("usd_per_mtok"), base["objectives"].get("usd_per_mtok")
    hd, hb = row["chip_hour"].get("total"), base["chip_hour"].get("total")
    if not (d and b and hd and hb):
        return {}
    cost_ratio = d / b
    hour_ratio = hd / hb
    tokens_ratio = hour_ratio / cost_ratio  # mix tokens per chip-hour, design / baseline
    per_scenario = {}
    for name, s in row["scenarios"].items():
        sb = base["scenarios"].get(name, {})
        if "total_tok_s_per_chip" in s and sb.get("total_tok_s_per_chip"):
            per_scenario[name] = {"tok_s_per_chip": s["total_tok_s_per_chip"],
                                  "baseline_tok_s_per_chip": sb["total_tok_s_per_chip"],
                                  "ratio": s["total_tok_s_per_chip"] / sb["total_tok_s_per_chip"],
                                  "usd_per_mtok": s["usd_per_mtok"], "baseline_usd_per_mtok": sb["usd_per_mtok"]}
    figs = {k: (row["chip"].get(k), base["chip"].get(k))
            for k in ("price_usd", "bf16_tflops", "hbm_tb_s", "hbm_gb", "hbm_generation", "sram_mb_total", "tdp_w",
                      "die_area_mm2")}
    return {"usd_per_mtok_ratio": cost_ratio, "chip_hour_ratio": hour_ratio, "tokens_per_chip_hour_ratio": tokens_ratio,
            "breakdown_usd_per_mtok": usd_breakdown(row, server_usd),
            "baseline_breakdown_usd_per_mtok": usd_breakdown(base, server_usd),
            "scenarios": per_scenario, "figures": {k: {"design": v[0], "baseline": v[1]} for k, v in figs.items()}}


def _why(row: dict, base: dict, ex: dict) -> str:
    f = ex["figures"]
    parts = [f"chip-hour ${row['chip_hour']['total']:.2f} vs ${base['chip_hour']['total']:.2f} "
             f"({_pct(ex['chip_hour_ratio'] - 1)}"]
    pd, pb = f["price_usd"]["design"], f["price_usd"]["baseline"]
    if pd and pb:
        parts[-1] += f"; chip ${pd:,.0f} at unit cost vs ${pb:,.0f} market price"
    parts[-1] += ")"
    scen = ", ".join(f"{n} ×{s['ratio']:.2f}" for n, s in ex["scenarios"].items())
    parts.append(f"tokens per chip-hour ×{ex['tokens_per_chip_hour_ratio']:.2f} ({scen}; "
                 f"{f['hbm_generation']['design']} {f['hbm_tb_s']['design']:.1f} vs {f['hbm_generation']['baseline']} "
                 f"{f['hbm_tb_s']['baseline']:.2f} TB/s and "
                 f"{f['hbm_gb']['design']:.0f} vs {f['hbm_gb']['baseline']:.0f} GB, "
                 f"bf16 {f['bf16_tflops']['design']:,.0f} vs {f['bf16_tflops']['baseline']:,.0f} TFLOPS)")
    return "; ".join(parts)


def verdict(front: list[dict], base: dict, reference: dict | None, server_usd: float, workload: str,
            reference_native: dict | None = None) -> dict:
    """Does the front beat the baseline at equal node and similar area, and why (or why not)."""
    b = base["objectives"].get("usd_per_mtok")
    if b is None:
        return {"beats_baseline": None, "text": f"the baseline {base['design_id']} cannot serve {workload}: "
                                                 + "; ".join(base["reasons"])}
    comp = [r for r in front if comparable(r, base)]
    beating = [r for r in comp if r["objectives"]["usd_per_mtok"] < b]
    node = _node_id(base["chip"].get("process_node"))
    area = base["chip"].get("die_area_mm2")
    scope = f"at {node} within ±{SIMILAR_AREA:.0%} of its {area:,.0f} mm²"
    out: dict[str, Any] = {"baseline_usd_per_mtok": b, "similar_area_frac": SIMILAR_AREA, "node": node,
                           "comparable": [r["design_id"] for r in comp],
                           "beating": [r["design_id"] for r in beating]}
    ref = reference["objectives"].get("usd_per_mtok") if reference else None
    if beating:
        best = min(beating, key=lambda r: r["objectives"]["usd_per_mtok"])
        ex = explain(best, base, server_usd)
        d = best["objectives"]["usd_per_mtok"]
        text = (f"{len(beating)} of {len(front)} front designs beat {base['design_id']} on {workload} {scope}. "
                f"Best of them, {best['design_id']} ({best['chip']['process_node']}, "
                f"{best['chip']['die_area_mm2']:,.0f} mm² in {best['chip']['compute_dies']} die(s)): "
                f"${d:.4f}/Mtok vs ${b:.4f} ({_pct(d / b - 1)}). Why: {_why(best, base, ex)}.")
        if ref:
            native = reference_native["objectives"].get("usd_per_mtok") if reference_native else None
            text += " Split (factors multiply): "
            if native:
                text += (f"the baseline's silicon bought at unit cost with its own software "
                         f"({reference_native['design_id']}, ${native:.4f}/Mtok) {_pct(native / b - 1)} (margin); "
                         f"with the designs' software assumption ({reference['design_id']}, ${ref:.4f}/Mtok) "
                         f"{_pct(ref / native - 1)} (software); ")
            else:
                text += (f"the baseline's silicon at unit cost with the designs' software assumption "
                         f"({reference['design_id']}, ${ref:.4f}/Mtok) {_pct(ref / b - 1)} (margin and software); ")
            text += f"the architecture {_pct(d / ref - 1)}."
        out.update(beats_baseline=True, design=best["design_id"], explain=ex, text=text)
        return out
    if comp:
        best = min(comp, key=lambda r: r["objectives"]["usd_per_mtok"])
        ex = explain(best, base, server_usd)
        d = best["objectives"]["usd_per_mtok"]
        text = (f"No front design {scope} beats {base['design_id']} on {workload}: the best comparable one, "
                f"{best['design_id']}, costs ${d:.4f}/Mtok vs ${b:.4f}. Why: {_why(best, base, ex)}.")
        out.update(beats_baseline=False, design=best["design_id"], explain=ex, text=text)
        return out
    cheaper = [r for r in front if r["objectives"]["usd_per_mtok"] < b]
    text = (f"No front design is {scope}, so none compares with {base['design_id']} at equal node and similar "
            f"area; {len(cheaper)} of {len(front)} front designs (other nodes or sizes) cost less than its "
            f"${b:.4f}/Mtok. Run more trials, or fix process_node and narrow the core/SRAM ranges in the space.")
    out.update(beats_baseline=False, design=None, text=text)
    return out


# ---- files ---------------------------------------------------------------------------------------

def design_yaml(row: dict, base: dict, note: str) -> str:
    """A front design as a ChipDesign YAML (loads with `catalog.load_chip`, `compare`, `build-vs-buy`)."""
    import yaml

    from tokenfab.explore.designs import build_design

    design, _, error = build_design(base, row["params"])
    if design is None:
        raise ValueError(f"front design {row['design_id']} does not validate: {error}")
    data = design.model_dump(mode="json", exclude_none=True)
    ob = row["objectives"]
    data["notes"] = (f"{note} Mix $/Mtok {ob.get('usd_per_mtok', float('nan')):.4f}, mean TPOT "
                     f"{ob.get('tpot_ms', float('nan')):.1f} ms, unit cost ${ob.get('unit_cost_usd') or 0:,.0f}, "
                     f"{row['chip'].get('die_area_mm2', 0):,.0f} mm², est. {row['chip'].get('power_w', 0):,.0f} W.")
    data["estimated_fields"] = []
    head = f"# {row['design_id']}: a Pareto-front design found by `tokenfab design` (trial {row['trial']}).\n"
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


_clean = json_safe


def write_table(rows: list[dict], path_stem: Path) -> list[str]:
    """`<stem>.json` (nested rows), `<stem>.csv` (flat rows) and `<stem>.parquet` when pyarrow is
    installed. Returns the paths written."""
    written = []
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    js = path_stem.with_suffix(".json")
    js.write_text(json.dumps(_clean(rows), indent=1) + "\n")
    written.append(str(js))
    flat = [flat_row(r) for r in rows]
    keys: list[str] = []
    for r in flat:
        keys.extend(k for k in r if k not in keys)
    cs = path_stem.with_suffix(".csv")
    with cs.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in flat:
            w.writerow(r)
    written.append(str(cs))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    cols = {k: [_clean(r.get(k)) for r in flat] for k in keys}
    cols = {k: ([None if x is None else str(x) for x in v] if len({type(x) for x in v if x is not None}) > 1 else v)
            for k, v in cols.items()}
    pq.write_table(pa.table(cols), path_stem.with_suffix(".parquet"))
    written.append(str(path_stem.with_suffix(".parquet")))
    return written


def write_designs(front: list[dict], base: dict, out_dir: Path, note: str) -> dict[str, str]:
    """One ChipDesign YAML per front design under `out_dir`; design id → path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for row in front:
        path = out_dir / f"{row['design_id']}.yaml"
        path.write_text(design_yaml(row, base, note))
        paths[row["design_id"]] = str(path)
    return paths
