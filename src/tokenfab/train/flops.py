"""Model FLOPs of training: 6N per token for the matmul weights plus causal attention.

A token's forward pass multiplies each of the N matmul weights it touches once (2 FLOPs: multiply
and add) and the backward twice (input gradient and weight gradient): 6N. Attention adds the
score and value matmuls that have no weights: forward 2 x heads x (qk_dim + v_dim) per key, and a
causal token at position i sees i keys, on average S/2 over a sequence of S; training is three
times the forward, so 3 x layers x heads x (qk_dim + v_dim) x S per token. N counts the weights a
token touches: attention, dense MLP or its top-k routed and shared experts, and the LM head; the
input embedding is a lookup, not a matmul (Megatron-LM, arXiv 2104.04473 §5.1; Chinchilla,
arXiv 2203.15556 Appendix F count the same terms).
"""

from __future__ import annotations

import numpy as np

from tokenfab.specs.model import ModelSpec


def matmul_params(model: ModelSpec) -> int:
    """Weights one token multiplies (top-k routed experts, shared experts, the LM head)."""
    return model.active_params()


def attention_flops_per_token(model: ModelSpec, seq_len) -> np.ndarray:
    """Training FLOPs of the score and value matmuls per token: 3 x forward, forward =
    2 x heads x (qk_dim + v_dim) x mean keys seen (S/2 causal; at most the window on sliding layers)."""
    s = np.asarray(seq_len, dtype=float)
    per_key = 2.0 * model.num_heads * (model.head_dim + model.v_head_dim)
    window = model.sliding_window or 0
    keys = model.num_full_layers * s / 2.0 + model.num_sliding_layers * np.minimum(s / 2.0, window)
    return 3.0 * per_key * keys


def model_flops_per_token(model: ModelSpec, seq_len, lora: bool = False) -> np.ndarray:
    """Training FLOPs per token the model needs (no recomputation): 6N + attention (`MFU`'s numerator);
    with frozen base weights (LoRA) no weight gradients: 4N + attention."""
    return (4.0 if lora else 6.0) * matmul_params(model) + attention_flops_per_token(model, seq_len)
