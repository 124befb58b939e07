"""A whole design study: search, front, baseline, verdict, sensitivity, and a variant's search.

    report = design_study("chat-mix", trials=60, seed=1)          # what `tokenfab design` prints
    write_outputs(report, Path("out"))                            # tables and design YAMLs

`design_study` computes (no files); `write_outputs` writes.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from tokenfab.explore import results as res
from tokenfab.explore.catalog import load_base_design, load_space, load_variant, load_workload
from tokenfab.explore.executors import make_executor
from tokenfab.explore.search import SearchConfig, SearchOutcome, run_search
from tokenfab.explore.sensitivity import sensitivity
from tokenfab.specs.base import SpecError
from tokenfab.specs.space import DesignSpace
from tokenfab.specs.workload import WorkloadSpec

MOVE_FIGURES = ("usd_per_mtok", "bf16_tflops", "hbm_tb_s", "hbm_gb", "hbm_stacks", "hbm_generation",
                "shared_sram_mb", "core_sram_mb", "sram_mb_total", "flops_per_byte", "sram_mb_per_bf16_pflops",
                "die_area_mm2", "unit_cost_usd", "tdp_w")


def _server_usd(cfg: SearchConfig) -> float:
    from tokenfab.cost import tco

    return (cfg.economics or tco.default_economics()).server_and_network_usd_per_chip or 0.0  # rows carry their own


def summarize(outcome: SearchOutcome, workload: WorkloadSpec, baseline: dict | None, server_usd: float) -> dict:
    """Feasible, infeasible and front rows of a search, its best design, and the verdict."""
    rows = res.unique_rows(outcome)
    names = outcome.objectives
    front = res.front_rows(rows, names)
    for r in front:
        r["on_front"] = True
        if baseline is not None:
            b = baseline["objectives"].get("usd_per_mtok")
            d = r["objectives"].get("usd_per_mtok")
            r["comparable_to_baseline"] = res.comparable(r, baseline)
            r["vs_baseline_usd_per_mtok"] = (d / b - 1.0) if (b and d is not None) else None
        r["usd_per_mtok_breakdown"] = res.usd_breakdown(r, server_usd)
    front_ids = {r["design_id"] for r in front}
    feasible = [r for r in rows if r["feasible"]]
    for r in feasible:
        r["on_front"] = r["design_id"] in front_ids
    infeasible = [{"trial": r["trial"], "design_id": r["design_id"], "reasons": r["reasons"], "params": r["params"],
                   "chip": {k: r["chip"].get(k) for k in ("process_node", "compute_dies", "die_area_mm2",
                                                        "die_mm2_each", "power_w", "tdp_w", "unit_cost_usd")}}
                  for r in rows if not r["feasible"]]
    primary = names[0]
    best = min(front, key=lambda r: r["objectives"][primary]) if front else None
    return {"front": front, "feasible": feasible, "infeasible": infeasible, "best": best,
            "reason_counts": _reason_counts(infeasible)}


def _reason_counts(infeasible: list[dict]) -> dict[str, int]:
    """How many infeasible designs fail each kind of check."""
    kinds = (("reticle", "reticle"), ("die edge", "shoreline"), ("power", "power"), ("interposer", "interposer"),
             ("packaging", "interposer"), ("nothing fits memory", "memory"), ("misses the SLO", "slo"),
             ("constraint:", "constraint"), ("constraint ", "constraint"), ("invalid design", "invalid"))
    counts: dict[str, int] = {}
    for r in infeasible:
        found = set()
        for reason in r["reasons"]:
            for needle, kind in kinds:
                if needle in reason:
                    found.add(kind)
                    break
            else:
                found.add("other")
        for k in found:
            counts[k] = counts.get(k, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _study_info(o: SearchOutcome) -> dict:
    return {"name": o.study_name, "storage": o.storage, "sampler": o.sampler, "seed": o.seed,
            "trials": len(o.trials), "evaluated": o.evaluated, "reused": len(o.trials) - o.resumed_from - o.evaluated,
            "resumed_from": o.resumed_from, "recovered": o.recovered, "executor": o.executor, "workers": o.workers,
            "batch": o.batch, "seconds": o.seconds, "objectives": list(o.objectives),
            "max_chips": o.context.max_chips, "fidelity": o.context.fidelity,
            "screen": {"points": o.screened, "seeded_trials": o.screen_seeded, "seconds": o.screen_seconds,
                       "fidelity": "screen (explore.screen: tiles chosen per core geometry, reduced mapping "
                                   "grid); every trial runs the full path"} if o.screened else None}


def moves(best: dict | None, other: dict | None, front: list[dict], other_front: list[dict]) -> dict:
    """How the best design (and the front's medians) move from one workload to its variant."""
    def fig(row, k):
        if row is None:
            return None
        return row["objectives"].get(k) if k in row["objectives"] else row["chip"].get(k)

    def median(rows, k):
        xs = [fig(r, k) for r in rows]
        xs = [x for x in xs if isinstance(x, (int, float)) and x is not None]
        return statistics.median(xs) if xs else None

    out = {}
    for k in MOVE_FIGURES:
        a, b = fig(best, k), fig(other, k)
        ratio = (b / a) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a else None
        ma, mb = median(front, k), median(other_front, k)
        out[k] = {"base": a, "variant": b, "ratio": ratio, "front_median_base": ma, "front_median_variant": mb}
    return out


def cross(base: dict, var: dict, name: str) -> dict:
    """Each best design on the other workload: what serving the variant costs on the chip made
    for the base, and what re-optimizing the chip for the variant gains."""
    from tokenfab.explore.evaluate import evaluate_point

    out: dict[str, Any] = {}
    if not (base.get("best") and var.get("best")):
        return out
    on_var = evaluate_point(base["best"]["params"], var["_ctx"])
    on_base = evaluate_point(var["best"]["params"], base["_ctx"])
    a = on_var["objectives"].get("usd_per_mtok") if on_var["feasible"] else None
    b = var["best"]["objectives"]["usd_per_mtok"]
    out = {"base_best_on_variant_usd_per_mtok": a, "base_best_on_variant_reasons": on_var["reasons"],
           "variant_best_on_base_usd_per_mtok": on_base["objectives"].get("usd_per_mtok") if on_base["feasible"]
           else None, "variant_best_on_base_reasons": on_base["reasons"]}
    if a is not None:
        out["text"] = (f"Variant {name} on the chip found for the base ({base['best']['design_id']}): ${a:.4f}/Mtok; "
                       f"on the chip found for the variant ({var['best']['design_id']}): ${b:.4f}/Mtok "
                       f"({(b / a - 1) * 100:+.0f}% from re-optimizing the chip).")
    else:
        out["text"] = (f"The chip found for the base ({base['best']['design_id']}) cannot serve variant {name}: "
                       f"{'; '.join(on_var['reasons'])[:200]}")
    return out


def design_study(workload: str | Path, space: str | Path | None = None, cfg: SearchConfig | None = None,
                 variant: str | None = None, with_sensitivity: bool = True, baseline: str | None = None,
                 progress: Callable[[str, dict], None] | None = None) -> dict:
    """Run the search on a workload (and on a variant of it) and assemble the report."""
    cfg = cfg or SearchConfig()
    wl, wl_path = load_workload(workload)
    space_name = space or wl.space
    if space_name is None:
        raise SpecError(f"workload {wl.name} names no default design space; pass --space SPACE.yaml")
    sp, sp_path = load_space(space_name, relative_to=wl_path.parent)
    base_design = load_base_design(sp, sp_path)
    from tokenfab.explore.designs import check_ranges
    check_ranges(base_design, sp)
    var = load_variant(wl, variant, relative_to=wl_path.parent) if variant else None
    from tokenfab.catalog import load_chip
    load_chip(baseline or wl.baseline)  # an unknown baseline: one line before the search, not after it
    ex = make_executor(cfg.executor, cfg.workers, cfg.ray_address)
    server = _server_usd(cfg)
    try:
        report = _one(wl, sp, base_design, cfg, ex, server, with_sensitivity, baseline or wl.baseline,
                      (lambda ev: progress(wl.name, ev)) if progress else None)
        if var is not None:
            vname, v = var
            vwl = wl.with_variant(vname, v)
            vcfg = replace(cfg, study_name=f"{cfg.study_name}-{vname}" if cfg.study_name else None)
            vrep = _one(vwl, sp, base_design, vcfg, ex, server, False, baseline or wl.baseline,
                        (lambda ev: progress(vwl.name, ev)) if progress else None)
            report["variant"] = {
                "name": vname, "description": v.description, "workload": vrep["workload"],
                "study": vrep["study"], "front": vrep["front"], "best": vrep["best"], "baseline": vrep["baseline"],
                "verdict": vrep["verdict"], "feasible_count": len(vrep["feasible"]),
                "moves": moves(report["best"], vrep["best"], report["front"], vrep["front"]),
                "cross": cross(report, vrep, vname),
            }
    finally:
        ex.close()
    report["space"] = {"name": sp.name, "file": str(sp_path), "base": sp.base, "fixed": sp.fixed,
                       "parameters": {k: p.model_dump(exclude_none=True) for k, p in sp.parameters.items()},
                       "constraints": sp.constraints.model_dump(exclude_none=True)}
    return report


def _one(wl: WorkloadSpec, sp: DesignSpace, base_design, cfg: SearchConfig, ex, server: float,
         with_sensitivity: bool, baseline_chip: str, progress) -> dict:
    outcome = run_search(wl, sp, base_design, cfg, progress=progress, executor=ex)
    ctx = outcome.context
    base_row = res.baseline_result(baseline_chip, ctx)
    base_row["usd_per_mtok_breakdown"] = res.usd_breakdown(base_row, server)
    ref_row = native_row = None
    if wl.reference_design:
        ref_row = res.reference_result(wl.reference_design, ctx)
        native_row = res.reference_result(wl.reference_design, ctx, own_vendor=True)
        for r in (ref_row, native_row):
            r["usd_per_mtok_breakdown"] = res.usd_breakdown(r, server)
    s = summarize(outcome, wl, base_row, server)
    verdict = res.verdict(s["front"], base_row, ref_row, server, wl.name, native_row)
    sens = None
    if with_sensitivity and s["best"] is not None:
        best = s["best"]
        center = next(r.result for r in outcome.trials if r.result.get("design_id") == best["design_id"])
        sens = sensitivity(best["params"], sp, ctx, ex, outcome.objectives[0], center=center)
    kinds = {r.name: r for r in ctx.scenarios}

    def scen_row(s_, w):
        r = kinds[s_.name]
        row = {"name": s_.name, "weight": w, "model": s_.model_id or s_.model,
               "model_overrides": s_.model_overrides, "precision": s_.precision}
        if r.kind != "llm":
            return {**row, "kind": r.kind, "unit": r.unit, "request": r.request.model_dump(mode="json"),
                    "baseline_usd_per_unit": dict(ctx.unit_refs).get(s_.name)}
        return {**row, "input_len": s_.input_len, "output_len": s_.output_len, "slo_ttft_ms": s_.slo_ttft_ms,
                "slo_tpot_ms": s_.slo_tpot_ms, "prefix_cache_hit": s_.prefix_cache_hit}

    mixed = ctx.token_rate is not None
    workload = {"name": wl.name, "title": wl.title,
                "weights_are": ("shares of work: tokens (input + output) for LLM scenarios, Mtok-equivalents "
                                "for the others" if mixed else "shares of tokens (input + output)"),
                "scenarios": [scen_row(s_, w) for s_, w in zip(wl.scenarios, wl.weights.values())]}
    if mixed:
        workload["objective"] = (
            f"usd_per_mtok is $/Mtok-equivalent: sum of weight x (LLM: $/Mtok; other: r x cost per unit / "
            f"the baseline {wl.baseline}'s cost per unit on that scenario), r = ${ctx.token_rate:.4g}/Mtok, "
            f"the baseline's $/Mtok on the LLM scenarios; tpot_ms and ttft_ms are means over the LLM scenarios")
        workload["token_rate_usd_per_mtok"] = ctx.token_rate
    return {
        "workload": workload,
        "study": _study_info(outcome),
        "objectives": list(outcome.objectives),
        "front": s["front"], "feasible": s["feasible"], "infeasible": s["infeasible"],
        "infeasible_reason_counts": s["reason_counts"], "best": s["best"],
        "baseline": base_row, "reference": ref_row, "reference_native": native_row, "verdict": verdict, "sensitivity": sens,
        "_base": ctx.base, "_ctx": ctx,
    }


def write_outputs(report: dict, out_dir: Path) -> dict[str, Any]:
    """Tables (feasible, front, infeasible; JSON/CSV/parquet), the front's design YAMLs, the
    sensitivity report and the full report JSON under `out_dir`. Returns what was written."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    files["feasible"] = res.write_table(report["feasible"], out_dir / "feasible")
    files["front"] = res.write_table(report["front"], out_dir / "front")
    files["infeasible"] = res.write_table([{**r, "feasible": False} for r in report["infeasible"]],
                                          out_dir / "infeasible")
    note = (f"Found by `tokenfab design {report['workload']['name']}` (study {report['study']['name']}, "
            f"seed {report['study']['seed']}).")
    files["designs"] = res.write_designs(report["front"], report["_base"], out_dir / "designs", note)
    for r in report["front"]:
        r["design_file"] = files["designs"].get(r["design_id"])
    if report.get("sensitivity"):
        p = out_dir / "sensitivity.json"
        p.write_text(json.dumps(res._clean(report["sensitivity"]), indent=1) + "\n")
        files["sensitivity"] = str(p)
    if report.get("variant"):
        v = report["variant"]
        vdir = out_dir / f"variant-{v['name']}"
        files["variant_front"] = res.write_table(v["front"], vdir / "front")
        files["variant_designs"] = res.write_designs(v["front"], report["_base"], vdir / "designs",
                                                     note.replace(report["workload"]["name"], v["workload"]["name"]))
    p = out_dir / "report.json"
    p.write_text(json.dumps(res._clean(public(report)), indent=1) + "\n")
    files["report"] = str(p)
    return files


def public(report: dict) -> dict:
    """The report without internal keys (what `--json` prints)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}
