"""What `tokenfab chip` shows: a design's full report, or a catalog chip's datasheet and unit cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenfab import catalog
from tokenfab.cost.data import shipped_cost_data
from tokenfab.cost.fab import package_cost, package_spec_for_chip
from tokenfab.design.catalog import designs_dir, is_design_mapping
from tokenfab.design.derive import derive, to_chip_spec
from tokenfab.specs import ChipSpec
from tokenfab.specs.base import SpecError, load_yaml
from tokenfab.specs.design import ChipDesign


def _as_design(name: str) -> ChipDesign | None:
    """The design `name` names (a design file, or a shipped design id), else None."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        data = load_yaml(path)
        return ChipDesign.from_mapping(data, origin=str(path)) if is_design_mapping(data) else None
    shipped = designs_dir() / f"{name}.yaml"
    if shipped.exists() and name not in catalog.chip_ids():
        return ChipDesign.from_mapping(load_yaml(shipped), origin=str(shipped))
    return None


def chip_and_design(name: str) -> tuple[ChipSpec, ChipDesign | None]:
    """The ChipSpec `name` gives (a design's derived one) and the design, None for a datasheet chip:
    what `tokenfab chip --model` estimates on and, for a design, re-derives at other SRAM sizes."""
    design = _as_design(name)
    if design is not None:
        return to_chip_spec(design), design
    return catalog.load_chip(name), None


def chip_summary(name: str) -> dict[str, Any]:
    """JSON-ready summary of a chip id/file: for a design, everything derived (area, power, cost,
    feasibility); for a datasheet chip, its figures and the fab model's unit cost (no breakdowns)."""
    design = _as_design(name)
    if design is not None:
        rep = derive(design)
        spec = to_chip_spec(design)
        return {"kind": "design", **rep.model_dump(), "chip_spec": spec.model_dump()}
    spec = catalog.load_chip(name)
    unit, pkg, note = None, None, None
    try:
        pc = package_cost(package_spec_for_chip(spec, shipped_cost_data().fab), shipped_cost_data().fab)
        unit, pkg = pc.unit_cost_usd, {**pc.model_dump(), "parts": pc.parts()}
    except SpecError as exc:
        note = f"no unit cost: {exc}"
    return {
        "kind": "chip", "id": spec.id, "name": spec.name, "process_node": spec.process_node,
        "die_area_mm2": spec.die_area_mm2, "tdp_w": spec.tdp_w, "bf16_tflops": spec.bf16_tflops,
        "feasible": None, "infeasible_reasons": [], "area_mm2_breakdown": None, "power_w_breakdown": None,
        "unit_cost_usd": unit, "package_cost": pkg, "chip_spec": spec.model_dump(),
        "note": note or "a datasheet chip: area and power breakdowns need a design (see catalog/designs/)",
    }
