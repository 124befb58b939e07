"""Model + phase → the operators one chip runs per step. Pure functions over numpy arrays.

`step_ops` dispatches on the model's family (graph/registry.py): the decoder Transformer by
default; DeepSeek Sparse Attention (sparse_attention.py) and Gated DeltaNet hybrids
(linear_attention.py) by their config sections. Every family then gets the add-ons its spec and
step ask for: draft tokens (speculative.py), a vision encoder in prefill (vision.py) and
user-defined operators (plugins.py). Diffusion and recommendation models register families
without prefill/decode steps; their workloads live in graph/diffusion.py and graph/recsys.py.
"""

from tokenfab.graph.ops import Op, StepShape
from tokenfab.graph import transformer
from tokenfab.graph.registry import Family, family_of, register_family
from tokenfab.specs import ModelSpec, SpecError

register_family("transformer", default=True)(transformer.step_ops)

from tokenfab.graph import sparse_attention, linear_attention, vision, speculative, plugins  # noqa: E402,F401
from tokenfab.graph import diffusion, recsys  # noqa: E402,F401


def step_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """All operators of one step (prefill or decode) on one chip."""
    fam = family_of(model)
    if fam.step_ops is None:
        raise SpecError(f"{model.id} is a {fam.kind} model ({fam.name}): it has no prefill/decode steps; "
                        f"use tokenfab.mapping.workloads (or `tokenfab estimate`, which dispatches on the model kind)")
    ops = fam.step_ops(model, s)
    ops += speculative.draft_ops(model, s, step_ops)
    ops += vision.encoder_ops(model, s)
    return plugins.apply_operators(model, s, ops)


__all__ = ["Op", "StepShape", "step_ops", "family_of", "register_family", "Family"]
