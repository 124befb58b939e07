"""Model families: which module builds a model's step operators, and the state it keeps.

A family module registers its builder with `@register_family(...)`, naming the config
`model_type`s it owns and/or a predicate on the ModelSpec (e.g. "has a sparse_attention
section"), as aiconfigurator registers model families. `family_of(model)` picks, in order: the
exact model_type, the first predicate that matches, else the decoder Transformer. `step_ops`
(graph/__init__) dispatches through it, so a new family never grows transformer.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tokenfab.specs import ModelSpec, SpecError

StepBuilder = Callable[..., list]
StateBytes = Callable[..., object]


@dataclass(frozen=True)
class Family:
    """A registered model family."""

    name: str
    step_ops: StepBuilder | None
    """(model, StepShape) -> list[Op] for prefill/decode families; None for workloads with their
    own entry point (diffusion, recommendation: see tokenfab.mapping.workloads)."""
    kind: str = "llm"
    state_bytes: StateBytes | None = None
    """(model, tp, seq_len) -> bytes per sequence per chip kept beside the KV cache (recurrent
    state, indexer keys), summed over layers before pipeline division; None: nothing extra."""
    model_types: tuple[str, ...] = ()
    when: Callable[[ModelSpec], bool] | None = None


_BY_TYPE: dict[str, Family] = {}
_BY_FEATURE: list[Family] = []
_DEFAULT: list[Family] = []


def register_family(name: str, *model_types: str, when: Callable[[ModelSpec], bool] | None = None,
                    kind: str = "llm", state_bytes: StateBytes | None = None, default: bool = False):
    """Decorator registering `fn(model, shape)` as the step builder of a family."""
    def deco(fn: StepBuilder | None):
        fam = Family(name, fn, kind, state_bytes, tuple(model_types), when)
        for t in model_types:
            _BY_TYPE[t] = fam
        if when is not None:
            _BY_FEATURE.append(fam)
        if default:
            _DEFAULT[:] = [fam]
        return fn
    return deco


def family_of(model: ModelSpec) -> Family:
    """The family that builds `model`'s operators."""
    fam = _BY_TYPE.get(model.family)
    if fam is not None and (fam.when is None or fam.when(model)):
        return fam
    for fam in _BY_FEATURE:
        if fam.when(model):
            return fam
    if model.kind != "llm":
        raise SpecError(f"{model.id}: no registered family builds {model.kind} model_type {model.family!r}; "
                        f"known: {', '.join(sorted(_BY_TYPE))}")
    return _DEFAULT[0]


def families() -> list[Family]:
    """Every registered family (for listings and tests)."""
    seen, out = set(), []
    for fam in list(_BY_TYPE.values()) + _BY_FEATURE + _DEFAULT:
        if fam.name not in seen:
            seen.add(fam.name)
            out.append(fam)
    return out
