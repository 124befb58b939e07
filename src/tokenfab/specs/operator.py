"""OperatorSpec: an operator a user defines as formulas of the step shape (see docs/operators.md).

A formula is an arithmetic expression (numbers, + - * / ** //, parentheses, min, max, ceil,
floor, sqrt, log2, where(cond, a, b), comparisons) over the names of the step shape
(`tokens`, `seqs`, `ctx`, `kv_len`, `tp`, `dp`, `ep`, `w_bytes`, `a_bytes`, `kv_bytes`,
`prefill`, `decode` — 1.0 in that phase, else 0.0) and of the model (`hidden_size`,
`num_layers`, `num_heads`, `num_kv_heads`, `head_dim`, `v_head_dim`, `intermediate_size`,
`vocab_size`, `num_experts`, `experts_per_token`, ...) and the operator's own `params`.
The engine evaluates them with numpy, vectorized over mapping points.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tokenfab.specs.base import Spec

OperatorKind = Literal["compute", "attention", "stream", "allreduce", "alltoall", "allgather"]
OperatorUnit = Literal["matrix", "vector", "sfu", "dma"]


class OperatorSpec(Spec):
    """One user-defined operator: its cost per occurrence as formulas of the step shape."""

    name: str = Field(min_length=1)
    """Name shown in time breakdowns (unique per model)."""
    kind: OperatorKind = "compute"
    """`compute`: FLOPs at the linear layers' peak and bytes from memory (roofline);
    `attention`: the same at the attention (bf16) peak; `stream`: bytes only;
    `allreduce` / `alltoall` / `allgather`: a collective of `bytes` per rank over `group` chips."""
    count: str | float = "num_layers"
    """Occurrences per step (a formula; default once per layer)."""
    flops: str | float = 0.0
    """FLOPs per occurrence on one chip."""
    bytes: str | float = 0.0
    """Bytes moved per occurrence on one chip (per rank for collectives)."""
    unit: OperatorUnit | None = None
    """Hardware unit the operator's work runs on: `matrix` (FLOPs on the linear layers' tensor path,
    as kind `compute`), `vector` (FP32 vector-unit FLOPs: norms, activations, selection), `sfu`
    (special-function results: exp, rsqrt, sin/cos) or `dma` (bytes only: copies, gathers). Each
    is timed against that unit's peak next to the bytes. None: `matrix` for kinds `compute` and
    `attention`, `dma` for `stream`. `vector`, `sfu` and `dma` need kind `compute` or `stream`."""
    elements: str | float = 0.0
    """Elements the operator works on per occurrence (a formula, e.g. `tokens * hidden_size`; `tokens`
    to count per token)."""
    ops_per_element: str | float = 0.0
    """Operations per element on `unit` (vector FLOPs, SFU results, matrix FLOPs); the unit's work
    per occurrence is `flops` + `elements` x `ops_per_element`."""
    group: str | float = "tp"
    """Chips a collective spans."""
    phases: tuple[Literal["prefill", "decode"], ...] = ("prefill", "decode")
    """Phases the operator runs in."""
    families: tuple[str, ...] = ()
    """Model families (config `model_type`) it applies to; empty: every family."""
    models: tuple[str, ...] = ()
    """Model ids it applies to; empty: every model (of the families above)."""
    params: dict[str, float] = Field(default_factory=dict)
    """Named constants the formulas may use (e.g. `heads: 64`)."""
    replaces: tuple[str, ...] = ()
    """Built-in operators (by name) this one replaces in the step, e.g. `attention`."""
    source: str = ""
    """Where the formulas come from."""


    @model_validator(mode="after")
    def _check_unit(self) -> "OperatorSpec":
        if self.unit in ("vector", "sfu", "dma") and self.kind not in ("compute", "stream"):
            raise ValueError(f"operator {self.name}: unit {self.unit!r} needs kind compute or stream, "
                             f"not {self.kind!r}")
        if self.unit == "dma" and (self.flops not in (0, 0.0, "0") or self.ops_per_element not in (0, 0.0, "0")):
            raise ValueError(f"operator {self.name}: unit 'dma' moves bytes only; drop flops / ops_per_element")
        return self

    @property
    def resolved_unit(self) -> OperatorUnit:
        """The unit its work runs on (`unit`, or the kind's default)."""
        if self.unit is not None:
            return self.unit
        return "dma" if self.kind == "stream" else "matrix"
