"""The design section: a custom-chip design-space search (`tokenfab design`) run inside a study.

The search is `tokenfab.explore.design_study` on the study's workload and space, evaluated
inline, priced with the study's economics (owned chips: a study-wide rental override is not
applied to chips that do not exist yet). Its optuna storage is a SQLite file under
`<results>/design/`, named by the section's input hash, so a killed run resumes the search
from its finished trials and a changed input starts a fresh one. The section keeps the front,
the feasible designs (for the plot), the baseline and references, the verdict and the
infeasible designs counted by reason; sensitivity is left to `tokenfab design`.
"""

from __future__ import annotations

from pathlib import Path

from tokenfab.cost.data import CostInputs
from tokenfab.specs import SpecError
from tokenfab.specs.economics import Economics
from tokenfab.study.load import LoadedStudy, _is_path
from tokenfab.study.section import RunContext, Section

KEY = "design"
INFEASIBLE_EXAMPLES = 5
"""Infeasible designs kept with their reasons (the rest are counted only)."""
_KEEP = ("workload", "study", "objectives", "front", "best", "baseline", "reference", "reference_native", "verdict",
         "infeasible_reason_counts")


def _ref(study: LoadedStudy, ref: str) -> str:
    """A catalog id as written, a path made absolute against the study's folder."""
    return str(study.resolve_path(ref)) if _is_path(ref) else ref


def design_economics(econ: Economics) -> Economics:
    """The study's economics for designed chips: owned, so without a flat rental price."""
    if econ.rental_usd_per_chip_hour is None:
        return econ
    return econ.model_copy(update={"rental_usd_per_chip_hour": None})


def design_section(study: LoadedStudy, ci: CostInputs) -> Section:
    """The planned design section; resolves the workload, space and base design (errors name the field)."""
    from tokenfab.explore.catalog import load_base_design, load_space, load_workload

    d = study.spec.design
    where = study.path.name
    workload_ref = _ref(study, d.workload)
    try:
        wl, wl_path = load_workload(workload_ref)
    except SpecError as exc:
        raise SpecError(f"{where}: design.workload: {exc}") from None
    if d.space is not None:
        space_ref, field, relative_to = _ref(study, d.space), "design.space", None
    elif wl.space is not None:
        space_ref, field, relative_to = wl.space, "design.workload", wl_path.parent
    else:
        raise SpecError(f"{where}: design.space: workload {wl.name} names no default design space; give one")
    try:
        sp, sp_path = load_space(space_ref, relative_to=relative_to)
        base = load_base_design(sp, sp_path)
    except SpecError as exc:
        raise SpecError(f"{where}: {field}: {exc}") from None
    econ = design_economics(ci.economics)
    space_arg = str(sp_path)
    inputs = {"design": d, "workload": wl, "space": sp, "base_design": base,
              "economics": econ.model_dump(mode="json")}
    return Section(key=KEY, kind="design", title=f"design search on {wl.name} ({d.trials} trials)", inputs=inputs,
                   compute=lambda ctx: run_design(workload_ref, space_arg, d, econ, ctx), takes_context=True,
                   persist=lambda r: r.get("status") in ("ok", "error"))


def run_design(workload: str, space: str, d, econ: Economics, ctx: RunContext) -> dict:
    """Run (or resume) the search; the result as the study keeps it."""
    try:
        from tokenfab.explore import SearchConfig, design_study
    except ImportError as exc:
        return {"status": "unavailable", "reason": f"the design search (tokenfab.explore) is not available ({exc})"}
    storage = ctx.work_dir / f"search-{ctx.input_hash}.db"
    cfg = SearchConfig(trials=d.trials, seed=d.seed, sampler=d.sampler, executor=d.executor, storage=str(storage),
                       resume=True, economics=econ)

    def progress(name: str, ev: dict) -> None:
        best = ev.get("best")
        ctx.status(f"trial {ev['done']}/{ev['total']}, "
                   + (f"best {ev['objective']} {best:.4f}" if best is not None else "no feasible design yet"))

    try:
        report = design_study(workload, space, cfg, with_sensitivity=False, progress=progress)
    except ImportError as exc:  # optuna missing
        return {"status": "unavailable", "reason": f"the design search needs optuna ({exc})"}
    except SpecError as exc:
        return {"status": "error", "error": str(exc)}
    _drop_stale(ctx.work_dir, storage)
    out = {"status": "ok", **{k: report.get(k) for k in _KEEP}}
    out["feasible"] = [{k: v for k, v in r.items() if k != "scenarios"} for r in report["feasible"]]
    out["infeasible_count"] = len(report["infeasible"])
    out["infeasible_examples"] = [{"design_id": r["design_id"], "reasons": r["reasons"]}
                                  for r in report["infeasible"][:INFEASIBLE_EXAMPLES]]
    out["space"] = {"name": (report.get("space") or {}).get("name"), "file": (report.get("space") or {}).get("file")}
    out["settings"] = d.model_dump(mode="json")
    return out


def _drop_stale(folder: Path, keep: Path) -> None:
    """Remove searches of earlier inputs (their results can no longer be asked for)."""
    for p in folder.glob("search-*.db"):
        if p != keep:
            p.unlink(missing_ok=True)
