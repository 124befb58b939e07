"""Shipped data: chips (YAML), models (Hugging Face config.json), measurements (CSV).

Lookups accept a catalog id or a path to a user's own file. Unknown ids raise `SpecError`
with the closest ids, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tokenfab.specs import ChipSpec, ModelSpec, SpecError

_ROOT = resources.files("tokenfab.catalog")


def _dir(name: str) -> Path:
    return Path(str(_ROOT.joinpath(name)))


def chip_ids() -> list[str]:
    """Ids of the shipped chips, sorted."""
    return sorted(p.stem for p in _dir("chips").glob("*.yaml"))


def model_ids() -> list[str]:
    """Ids of the shipped models, sorted."""
    return sorted(p.stem for p in _dir("models").glob("*.json"))


def _unknown(kind: str, name: str, known: list[str]) -> SpecError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.3)
    hint = f"; closest: {', '.join(close)}" if close else f"; known: {', '.join(known[:8])}..."
    return SpecError(f"unknown {kind} {name!r}{hint}")


def check_chip_id(name: str) -> str:
    """`name` if it is a shipped chip id (not a design or a file), else SpecError with the closest ids."""
    known = chip_ids()
    if name not in known:
        raise _unknown("chip", name, known)
    return name


def _is_path(name: str) -> bool:
    return any(sep in name for sep in ("/", "\\")) or name.endswith((".yaml", ".yml", ".json"))


@lru_cache(maxsize=None)
def load_chip(name: str) -> ChipSpec:
    """A chip by catalog id or YAML path.

    A chip design (`kind: design`, or design keys such as `die`/`compute_dies`) — a file, or an id
    in `catalog/designs/` — loads as the ChipSpec derived from it (`tokenfab.design.to_chip_spec`).
    """
    if _is_path(name):
        return _chip_from_file(Path(name))
    path = _dir("chips") / f"{name}.yaml"
    if path.exists():
        return ChipSpec.from_yaml(path)
    design = _dir("designs") / f"{name}.yaml"
    if design.exists():
        return _chip_from_file(design)
    raise _unknown("chip", name, chip_ids() + _design_ids())


def _design_ids() -> list[str]:
    return sorted(p.stem for p in _dir("designs").glob("*.yaml"))


def _chip_from_file(path: Path) -> ChipSpec:
    """A ChipSpec file as is; a ChipDesign file through the design derivations."""
    from tokenfab.specs.base import load_yaml

    data = load_yaml(path)
    from tokenfab.design.catalog import is_design_mapping

    if is_design_mapping(data):
        from tokenfab.design import to_chip_spec
        from tokenfab.specs.design import ChipDesign

        return to_chip_spec(ChipDesign.from_mapping(data, origin=str(path)))
    return ChipSpec.from_mapping(data, origin=str(path))


@lru_cache(maxsize=None)
def load_model(name: str) -> ModelSpec:
    """A model by catalog id or config.json path (file or folder)."""
    if not str(name).strip():  # "" is the current folder to Path: never a model
        raise _unknown("model", name, model_ids())
    if _is_path(name) or Path(name).is_dir():
        return ModelSpec.from_config_file(name)
    path = _dir("models") / f"{name}.json"
    if not path.exists():
        raise _unknown("model", name, model_ids())
    spec = ModelSpec.from_config_file(path, model_id=name)
    origin = _model_sources().get(name, {})
    if origin.get("hf_repo"):
        note = "" if origin.get("verbatim", True) else " (reconstructed, see sources.yaml)"
        spec = spec.model_copy(update={"source": f"hf:{origin['hf_repo']}{note}"})
    if origin.get("fp8_weight_block") is not None:  # the FP8 release's scales, where the config is the BF16 one
        spec = ModelSpec.from_mapping(spec.model_dump() | {"fp8_weight_block": origin["fp8_weight_block"]},
                                      origin=f"models/sources.yaml: {name}")
    return spec


@lru_cache(maxsize=1)
def _model_sources() -> dict:
    import yaml

    path = _dir("models") / "sources.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}
