"""Loading cost data: the shipped `catalog/economics.yaml`, a user's override file, CLI flags.

A user file (`--economics FILE`) is partial: any `Economics` field at the top level (a `system:`
mapping is merged key by key onto the preset's system cost model), plus optional
`preset: <name>` and sections `fab:`, `nre:`, `market_rental:`, `sensitivity:` merged key by key
onto the shipped data. A flat `server_and_network_usd_per_chip` replaces the system model for
every chip. Overrides may name a system coefficient as `system.<field>`. Every value a user sets
has its source recorded as the file (or `command line`), so a report can tell shipped data from
overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from tokenfab.specs.base import SpecError, load_yaml
from tokenfab.specs.economics import CostData, Economics

_SECTIONS = ("fab", "nre", "market_rental", "sensitivity", "presets", "default_preset")


def shipped_path() -> Path:
    """Path of the shipped economics YAML."""
    return Path(str(resources.files("tokenfab.catalog").joinpath("economics.yaml")))


@lru_cache(maxsize=None)
def shipped_cost_data() -> CostData:
    """The shipped cost data, validated."""
    return CostData.from_yaml(shipped_path())


@dataclass(frozen=True)
class CostInputs:
    """Cost data and the operating economics chosen for one run."""

    data: CostData
    economics: Economics


def resolve(economics_file: str | Path | None = None, preset: str | None = None,
            overrides: dict[str, Any] | None = None) -> CostInputs:
    """Shipped data, then the user's file, then `overrides` (CLI flags; None values skipped)."""
    data = shipped_cost_data()
    econ_changes: dict[str, Any] = {}
    file_preset = None
    if economics_file is not None:
        raw = load_yaml(Path(economics_file)) or {}
        if not isinstance(raw, dict):
            raise SpecError(f"{economics_file}: expected a mapping of economics fields")
        raw = dict(raw)
        file_preset = raw.pop("preset", None)
        sections = {k: raw.pop(k) for k in _SECTIONS if k in raw}
        econ_changes = raw
        if sections:
            merged = _merge(data.model_dump(exclude_unset=True), sections, origin=str(economics_file))
            data = CostData.from_mapping(merged, origin=str(economics_file))
    econ = data.economics(preset or file_preset)
    if econ_changes:
        econ = apply_economics(econ, econ_changes, origin=str(economics_file))
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    if flags:
        econ = apply_economics(econ, flags, origin="command line")
    return CostInputs(data=data, economics=econ)


def apply_economics(econ: Economics, changes: dict[str, Any], origin: str) -> Economics:
    """`econ` with `changes` applied and validated: `system:` mappings and `system.<field>` keys
    are merged onto its system cost model, other keys replace Economics fields."""
    changes = dict(changes)
    system_changes: dict[str, Any] = {}
    nested = changes.pop("system", None)
    if nested is not None:
        if not isinstance(nested, dict):
            raise SpecError(f"{origin}: system must be a mapping of system cost fields")
        system_changes.update(nested)
    for key in [k for k in changes if k.startswith("system.")]:
        system_changes[key.split(".", 1)[1]] = changes.pop(key)
    if system_changes:
        if econ.system is None:
            raise SpecError(f"{origin}: these economics have no system cost model to change")
        try:
            econ = econ.model_copy(update={"system": econ.system.with_overrides(system_changes, origin)})
        except SpecError as exc:
            raise SpecError(f"system: {str(exc).split(': ', 1)[-1]}") from None
    return econ.with_overrides(changes, origin=origin) if changes else econ


def _merge(base: dict, over: dict, origin: str) -> dict:
    """Deep-merge `over` onto `base`; scalars set in a sourced mapping get `origin` as their source."""
    out = dict(base)
    sourced = "sources" in base
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value, origin)
        elif isinstance(value, dict) and key not in base and isinstance(base, dict) and _is_table(base):
            out[key] = {"sources": {"default": origin}, **value}  # a new node/memory/packaging entry
        else:
            out[key] = value
        if sourced and key not in ("sources", "estimated_fields") and not isinstance(value, dict):
            out["sources"] = {**out.get("sources", {}), key: origin}
            out["estimated_fields"] = [f for f in out.get("estimated_fields", []) if f != key]
    return out


def _is_table(mapping: dict) -> bool:
    """True for an id-keyed table (nodes, memory, packaging), whose values are sourced mappings."""
    return bool(mapping) and all(isinstance(v, dict) and "sources" in v for v in mapping.values())
