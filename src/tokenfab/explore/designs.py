"""From a point of a design space (parameter path → value) to a validated `ChipDesign`.

The base design's mapping gets the space's `fixed` values, then the point's values, at their
dotted paths. A design's identity is a hash of the resulting mapping (its id and names left
out), so two trials that land on the same chip share one evaluation and one id (`dse-<hash>`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from tokenfab.specs.base import SpecError
from tokenfab.specs.design import ChipDesign
from tokenfab.specs.space import DesignSpace, Parameter

_JSON = "json:"
_FILE_KEYS = ("id", "name", "notes", "sources", "estimated_fields", "published")


def encode_choice(value: Any) -> Any:
    """A choice as optuna stores it: primitives as they are, mappings/lists as a JSON label."""
    if isinstance(value, (dict, list, tuple)):
        return _JSON + json.dumps(value, sort_keys=True)
    return value


def decode_choice(value: Any) -> Any:
    """Inverse of `encode_choice`."""
    if isinstance(value, str) and value.startswith(_JSON):
        return json.loads(value[len(_JSON):])
    return value


def set_path(data: dict, path: str, value: Any) -> None:
    """Set `value` at the dotted `path` of a nested mapping (creating sections as needed)."""
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[keys[-1]] = value


def get_path(data: dict, path: str) -> Any:
    """The value at a dotted path (None where absent)."""
    node: Any = data
    for k in path.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def base_mapping(base: ChipDesign, space: DesignSpace) -> dict:
    """The base design as a mapping with the space's fixed values applied and file metadata
    (the base chip's published figures and sources) removed."""
    data = base.model_dump(mode="json")
    for k in ("published", "sources", "estimated_fields"):
        data.pop(k, None)
    for path, value in space.fixed.items():
        set_path(data, path, copy.deepcopy(value))
    return data


def design_hash(mapping: dict) -> str:
    """Stable hash of a design mapping, ignoring its id, names and notes."""
    core = {k: v for k, v in mapping.items() if k not in _FILE_KEYS}
    return hashlib.sha256(json.dumps(core, sort_keys=True, default=str).encode()).hexdigest()[:16]


_PATHS: dict[str, list[str]] = {}
"""Dotted parameter paths split once."""


def design_mapping(base: dict, params: dict[str, Any]) -> dict:
    """The base mapping with a point's (decoded) values set. Only the sections on a set path are
    copied (the rest is shared with `base`, never mutated here): a search builds thousands."""
    data = dict(base)
    fresh = {id(data)}  # sections already copied for this point
    for path, value in params.items():
        keys = _PATHS.get(path) or _PATHS.setdefault(path, path.split("."))
        node = data
        for k in keys[:-1]:
            child = node.get(k)
            if not isinstance(child, dict):
                child = {}
            if id(child) not in fresh:
                child = dict(child)
                fresh.add(id(child))
                node[k] = child
            node = child
        value = decode_choice(value)
        node[keys[-1]] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
    return data


def build_design(base: dict, params: dict[str, Any], label: str = "") -> tuple[ChipDesign | None, str, str | None]:
    """(design or None, hash, error): the validated design of a point; an invalid combination
    (e.g. fewer HBM PHYs than stacks) gives None and the validation message."""
    data = design_mapping(base, params)
    h = design_hash(data)
    data["id"] = f"dse-{h[:10]}"
    data["name"] = label or f"{data.get('name') or 'design-space point'} {h[:10]}"
    data["sources"] = {"default": "tokenfab design search (tokenfab.explore): parameters chosen by the search; "
                                  "figures derived by tokenfab.design"}
    try:
        return ChipDesign.from_mapping(data, origin=f"design {data['id']}"), h, None
    except SpecError as exc:
        return None, h, f"invalid design: {str(exc).split(': ', 1)[-1]}"


def distributions(space: DesignSpace) -> dict[str, Any]:
    """optuna distributions of the searched parameters, in the space's order."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for path, p in space.parameters.items():
        out[path] = _distribution(p, CategoricalDistribution, FloatDistribution, IntDistribution)
    return out


def _distribution(p: Parameter, cat, flt, integer):
    if p.is_choice:
        return cat([encode_choice(c) for c in p.choices])
    lo, hi = float(p.low), float(p.high)
    if p.step is not None:  # the largest grid point not above `high` (optuna warns otherwise)
        hi = lo + p.step * int((hi - lo) / p.step + 1e-9)
    if p.is_integer:
        return integer(int(lo), int(hi), step=int(p.step or 1), log=p.log)
    return flt(lo, hi, step=p.step, log=p.log)


def grid_values(space: DesignSpace) -> dict[str, list[Any]]:
    """Every value a grid search visits per parameter (encoded as optuna stores them)."""
    return {path: [encode_choice(v) for v in p.grid(space.search.grid_float_points)]
            for path, p in space.parameters.items()}


def neighbours(p: Parameter, value: Any) -> tuple[Any, Any]:
    """(one step down, one step up) from `value` inside the parameter's range (None past an end):
    the next choice, ± step, or ×/÷ 1.25 for a log or continuous range."""
    if p.is_choice:
        enc = [encode_choice(c) for c in p.choices]
        try:
            i = enc.index(encode_choice(value))
        except ValueError:
            return None, None
        return (p.choices[i - 1] if i > 0 else None), (p.choices[i + 1] if i + 1 < len(p.choices) else None)
    lo, hi, v = float(p.low), float(p.high), float(value)
    if p.step is not None:
        down, up = v - p.step, v + p.step
    elif p.log or not p.is_integer:
        down, up = v / 1.25, v * 1.25
    else:
        down, up = v - 1, v + 1
    if p.is_integer:
        down, up = float(round(down)), float(round(up))
        if down == v:
            down = v - 1
        if up == v:
            up = v + 1
    cast = (lambda x: int(x)) if p.is_integer else (lambda x: x)
    return (cast(down) if down >= lo - 1e-9 else None), (cast(up) if up <= hi + 1e-9 else None)


def check_ranges(base: ChipDesign, space: DesignSpace) -> None:
    """One line for a parameter no value of which the design schema takes: each of its end values
    (low and high, or every choice), set alone on the base with the fixed values, is rejected for
    that very field (e.g. `memory.hbm_stacks` from -4 to -1). A search over it could only return
    invalid designs. Values rejected for another field (an interaction: fewer PHYs than stacks) are
    left to the search, where another point may pair them validly."""
    data = base_mapping(base, space)
    for path, p in space.parameters.items():
        ends = list(p.choices) if p.is_choice else [p.low, p.high]
        leaf = path.split(".")[-1]
        errors = []
        for v in ends:
            if not p.is_choice and float(v).is_integer():
                v = int(v)
            design, _, err = build_design(data, {path: v})
            if design is not None or err is None or leaf not in err:
                break
            errors.append(err)
        else:
            raise SpecError(f"space {space.name}: parameter {path}: no value the design takes "
                            f"({errors[0].removeprefix('invalid design: ')})")
