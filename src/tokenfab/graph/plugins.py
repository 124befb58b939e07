"""Operators users define, without touching tokenfab's code (docs/operators.md).

Three ways in, one representation (`OperatorSpec` formulas or a Python function):
- a Python function registered with `@register_operator(...)`, returning the cost of one
  occurrence as a dict (`flops`, `bytes`, `kind`, `count`, `group`, `unit`, `elements`,
  `ops_per_element`) or a list of `Op`s;
- a YAML file of formula operators: `load_operators(path)`, or every file named in the
  `TOKENFAB_OPERATORS` environment variable (`:`-separated), registered by `load_env_operators`
  at the edge (`tokenfab.api.ensure_env_operators`, on the first estimate and in `validate`; the engine
  never reads the environment);
- `_tokenfab.operators` in a model's config.json: formula operators of that model only.
An operator says which unit its work runs on (`unit`: matrix, vector, sfu, dma; see
`specs/operator.py`), and is timed against that unit's peak. `apply_operators` adds the matching
ones to every step `graph.step_ops` builds (removing the built-in ops a plugin `replaces`), so
they flow through estimate, compare, validate and serving.
Formulas are parsed with `ast` and evaluated with numpy over the names listed in
`specs/operator.py` — no `eval`, only arithmetic, comparisons and a few functions.
"""

from __future__ import annotations

import ast
import operator as _op
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tokenfab.graph.ops import Op, StepShape
from tokenfab.specs import ModelSpec, SpecError
from tokenfab.specs.operator import OperatorSpec

_KIND_TO_OP = {"compute": "fused", "attention": "attention", "stream": "stream", "allreduce": "allreduce",
               "alltoall": "alltoall", "allgather": "allgather"}


@dataclass(frozen=True)
class RegisteredOperator:
    spec: OperatorSpec
    fn: Callable[[ModelSpec, StepShape], Any] | None = None


_REGISTRY: list[RegisteredOperator] = []


def register_operator(name: str, families: tuple[str, ...] = (), models: tuple[str, ...] = (),
                      phases: tuple[str, ...] = ("prefill", "decode"), replaces: tuple[str, ...] = ()):
    """Decorator: `fn(model, shape)` gives one occurrence's cost (a dict with `flops`, `bytes` and
    optionally `kind`, `count`, `group`) or a list of `Op`s; it joins every matching step."""
    def deco(fn):
        spec = OperatorSpec(name=name, families=tuple(families), models=tuple(models), phases=tuple(phases),
                            replaces=tuple(replaces), source=f"python: {fn.__module__}.{fn.__qualname__}")
        unregister_operator(name)
        _REGISTRY.append(RegisteredOperator(spec, fn))
        return fn
    return deco


def add_operator(spec: OperatorSpec | dict) -> OperatorSpec:
    """Register a formula operator (an OperatorSpec or its mapping)."""
    spec = spec if isinstance(spec, OperatorSpec) else OperatorSpec.from_mapping(spec, origin="operator")
    unregister_operator(spec.name)
    _REGISTRY.append(RegisteredOperator(spec))
    return spec


def unregister_operator(name: str) -> None:
    _REGISTRY[:] = [r for r in _REGISTRY if r.spec.name != name]


def clear_operators() -> None:
    """Forget every registered operator (`load_env_operators` registers the environment's again)."""
    _REGISTRY.clear()


def registered_operators() -> list[OperatorSpec]:
    return [r.spec for r in _REGISTRY]


def load_env_operators(value: str | None = None) -> list[OperatorSpec]:
    """Register the operators of every file named in `value` (default: `$TOKENFAB_OPERATORS`,
    `:`-separated). Called at the edge (`tokenfab.api.ensure_env_operators`), so the engine itself reads no
    environment; a study hashes the same variable into its cache key (`study.cache.ENGINE_ENV`)."""
    value = os.environ.get("TOKENFAB_OPERATORS", "") if value is None else value
    return [add_operator(spec) for part in filter(None, value.split(os.pathsep)) for spec in read_operator_file(part)]


def read_operator_file(path: str | Path) -> list[OperatorSpec]:
    """Formula operators of a YAML file: a list, or a mapping with an `operators` list."""
    from tokenfab.specs.base import load_yaml

    path = Path(path)
    data = load_yaml(path)
    items = data.get("operators") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise SpecError(f"{path}: expected a list of operators (or `operators:` holding one)")
    return [OperatorSpec.from_mapping(item, origin=f"{path} operator {i + 1}") for i, item in enumerate(items)]


def load_operators(path: str | Path) -> list[OperatorSpec]:
    """Read a YAML file of formula operators and register them."""
    return [add_operator(spec) for spec in read_operator_file(path)]


def _applies(spec: OperatorSpec, model: ModelSpec, phase: str) -> bool:
    return (phase in spec.phases and (not spec.families or model.family in spec.families)
            and (not spec.models or model.id in spec.models))


def apply_operators(model: ModelSpec, s: StepShape, ops: list[Op]) -> list[Op]:
    """`ops` with the model's own and the registered operators that match this step added."""
    active = [RegisteredOperator(spec) for spec in model.operators]
    active += list(_REGISTRY)
    active = [r for r in active if _applies(r.spec, model, s.phase)]
    if not active:
        return ops
    replaced = {name for r in active for name in r.spec.replaces}
    out = [op for op in ops if op.name not in replaced]
    for r in active:
        out += _ops_of(r, model, s)
    return out


def _ops_of(r: RegisteredOperator, model: ModelSpec, s: StepShape) -> list[Op]:
    if r.fn is not None:
        result = r.fn(model, s)
        if isinstance(result, Op):
            return [result]
        if isinstance(result, list) and all(isinstance(x, Op) for x in result):
            return result
        if isinstance(result, dict):
            spec = r.spec.model_copy(update={k: v for k, v in result.items() if k in ("kind", "unit")})
            return [_op_from_values(spec, model, s, result)]
        raise SpecError(f"operator {r.spec.name}: the function must return an Op, a list of Ops or a dict")
    names = formula_names(model, s, r.spec.params)
    values = {f: evaluate(getattr(r.spec, f), names, f"{r.spec.name}.{f}")
              for f in ("count", "flops", "bytes", "group", "elements", "ops_per_element")}
    return [_op_from_values(r.spec, model, s, values)]


def _op_from_values(spec: OperatorSpec, model: ModelSpec, s: StepShape, v: dict) -> Op:
    count = np.asarray(v.get("count", model.num_layers), float)
    flops = np.asarray(v.get("flops", 0.0), float)
    bytes_ = np.asarray(v.get("bytes", 0.0), float)
    group = np.asarray(v.get("group", s.tp), float)
    kind_name = v.get("kind", spec.kind)
    kind = _KIND_TO_OP[kind_name]
    unit = spec.unit or ("dma" if kind_name == "stream" else "matrix")
    work = flops + np.asarray(v.get("elements", 0.0), float) * np.asarray(v.get("ops_per_element", 0.0), float)
    # Op.count is a scalar; a count that varies by point is folded into FLOPs and bytes.
    if count.ndim == 0:
        c, scale = float(count), 1.0
    else:
        c, scale = 1.0, count
    meta = {"plugin": spec.source or "formula", "unit": unit}
    if unit in ("vector", "sfu") or spec.unit == "dma":
        # Work off the matrix units: a stream op whose bytes and unit work are timed side by side.
        if unit == "dma" and np.any(work != 0):
            raise SpecError(f"operator {spec.name}: unit 'dma' moves bytes only (its flops evaluate to non-zero)")
        return Op(spec.name, "stream", c, bytes_=bytes_ * scale, group=group, meta=meta,
                  vector_flops=work * scale if unit == "vector" else 0.0,
                  sfu_ops=work * scale if unit == "sfu" else 0.0)
    return Op(spec.name, kind, c, flops_=work * scale, bytes_=bytes_ * scale, group=group, meta=meta)


# ---- formulas -------------------------------------------------------------------------------

_BINOPS = {ast.Add: _op.add, ast.Sub: _op.sub, ast.Mult: _op.mul, ast.Div: _op.truediv, ast.Pow: _op.pow,
           ast.FloorDiv: np.floor_divide, ast.Mod: np.mod}
_CMPOPS = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
           ast.Eq: np.equal, ast.NotEq: np.not_equal}
_FUNCS = {"min": np.minimum, "max": np.maximum, "ceil": np.ceil, "floor": np.floor, "sqrt": np.sqrt,
          "log2": lambda x: np.log2(np.maximum(x, 1e-300)), "abs": np.abs,
          "where": lambda c, a, b: np.where(np.asarray(c, float) != 0, a, b)}

_SHAPE_NAMES = ("tokens", "seqs", "ctx", "kv_len", "tp", "dp", "ep", "w_bytes", "a_bytes", "kv_bytes",
                "draft_tokens", "vision_items", "vision_patches")


def formula_names(model: ModelSpec, s: StepShape, params: dict | None = None) -> dict[str, Any]:
    """Names a formula may use: the step shape, the model's numeric fields (sections as
    `<section>_<field>`, e.g. `sparse_attention_index_topk`) and the operator's params."""
    names: dict[str, Any] = {n: np.asarray(getattr(s, n), float) for n in _SHAPE_NAMES}
    names["prefill"] = 1.0 if s.phase == "prefill" else 0.0
    names["decode"] = 1.0 - names["prefill"]
    for key, value in model.__dict__.items():
        if isinstance(value, (bool, int, float)) and value is not None:
            names[key] = float(value)
        elif hasattr(value, "__dict__") and value is not None:
            for sub, v in value.__dict__.items():
                if isinstance(v, (bool, int, float)):
                    names[f"{key}_{sub}"] = float(v)
    for prop in ("num_linear_layers", "num_full_layers", "num_moe_layers"):
        names[prop] = float(getattr(model, prop))
    names.update({k: float(v) for k, v in (params or {}).items()})
    return names


def evaluate(expr: str | float, names: dict[str, Any], where: str = "formula"):
    """Value of a formula (numbers pass through); SpecError names the formula and the problem."""
    if isinstance(expr, (int, float)):
        return float(expr)
    try:
        tree = ast.parse(str(expr), mode="eval")
    except SyntaxError as exc:
        raise SpecError(f"{where}: cannot parse {expr!r} ({exc.msg})") from None
    return _eval(tree.body, names, where, expr)


def _eval(node, names, where, expr):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise SpecError(f"{where}: unknown name {node.id!r} in {expr!r}")
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, names, where, expr), _eval(node.right, names, where, expr))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand, names, where, expr)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
        left = _eval(node.left, names, where, expr)
        right = _eval(node.comparators[0], names, where, expr)
        return _CMPOPS[type(node.ops[0])](left, right).astype(float)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        return _FUNCS[node.func.id](*[_eval(a, names, where, expr) for a in node.args])
    raise SpecError(f"{where}: {ast.dump(node)[:40]}... is not allowed in {expr!r} (arithmetic, comparisons, "
                    f"{', '.join(sorted(_FUNCS))})")
