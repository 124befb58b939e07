"""Memory per chip in training: weights, gradients, optimizer states and saved activations.

Parameters split into two data-parallel groups: the dense ones (attention, dense MLPs, shared
experts, router, embeddings) replicate over the `dp x cp` ranks of a stage, the routed experts over
the `dp x cp x tp / ep` ranks that hold the same experts (Megatron's expert-data-parallel group).
ZeRO stage 1 shards the optimizer states over that group, 2 also the gradients, 3 also the weights
(ZeRO, arXiv 1910.02054 §5). Activations saved for the backward are counted per token and layer
from the tensors a layer keeps (Korthikanti et al., arXiv 2205.05198 §4: 34·s·b·h bytes for a GPT
layer with a 4h MLP, which the terms below reproduce without dropout masks), sharded over tp by
sequence parallelism and over cp by context parallelism. Vectorized over mapping points.
"""

from __future__ import annotations

import numpy as np

from tokenfab.mapping.memory import device_bytes
from tokenfab.specs.model import ModelSpec

ACT_BYTES = 2.0
"""Saved activations are bf16."""
TRAIN_RESERVE_GIB = 2.0
"""Memory a training process cannot give to tensors, GiB: the CUDA context (~0.5 GiB), NCCL's
communicator buffers and cuBLAS workspaces, and the caching allocator's slack — an estimate consistent
with the largest allocations reported before an out-of-memory error on 80 GB H100s (76.5-76.9 GiB
"allocated by PyTorch" of 79.11). Training keeps no serving engine's KV-cache headroom (the
inference reserve, `mapping.memory.RESERVE_FRAC`, is vLLM's utilisation default)."""


def usable_bytes(hbm_gb: float) -> float:
    """Bytes a training process can hold in tensors on a chip rated `hbm_gb` GB: 80 -> 79.11 - 2 =
    77.11 GiB = 82.8e9 bytes (`mapping.memory.device_bytes`, `TRAIN_RESERVE_GIB`)."""
    return max(float(device_bytes(hbm_gb)) - TRAIN_RESERVE_GIB * 2**30, 0.0)


LOGIT_BYTES = 4.0
"""Logits and their gradient in FP32 on the last stage (cross-entropy)."""


def params_per_chip(model: ModelSpec, tp, pp, ep, schedule_copies=1.0) -> tuple[np.ndarray, np.ndarray]:
    """(dense, expert) parameters held by the busiest chip: its stage's layers sharded over tp
    (routed experts over ep instead), plus the embedding and LM head (vocab-parallel over tp) on the
    end stages. `schedule_copies`: 2 for DualPipe, which keeps two stages' weights on each chip."""
    tp, pp, ep = (np.asarray(x, dtype=float) for x in (tp, pp, ep))
    L = model.num_layers
    layers = np.ceil(L / pp)
    n_dense = L - model.num_moe_layers
    attn = model.attention_params()
    dense_layer = attn + model.mlp_params(model.intermediate_size)
    moe_dense = attn + model.num_shared_experts * model.mlp_params(model.shared_intermediate_size) \
        + model.hidden_size * model.num_experts
    experts = model.num_experts * model.mlp_params(model.moe_intermediate_size) if model.is_moe else 0
    frac_dense = n_dense / L
    dense = layers * (frac_dense * dense_layer + (1 - frac_dense) * moe_dense) / tp
    expert = layers * (1 - frac_dense) * experts / np.maximum(ep, 1.0)
    expert = np.where(ep > 1, expert, expert / tp)  # ep = 1: experts tensor-parallel over tp
    tables = np.where((pp == 1) & (not model.tie_embeddings), 2.0, 1.0)
    dense = dense + tables * model.vocab_size * model.hidden_size / tp
    return dense * schedule_copies, expert * schedule_copies


def state_bytes(params, group, zero, weight_bytes: float, grad_bytes: float, optimizer_bytes: float) -> np.ndarray:
    """Weights, gradients and optimizer states of `params` parameters replicated over `group`
    data-parallel ranks, at ZeRO stage `zero`."""
    params, group, zero = (np.asarray(x, dtype=float) for x in (params, group, zero))
    shard = lambda stage: np.where(zero >= stage, 1.0 / np.maximum(group, 1.0), 1.0)  # noqa: E731
    return params * (weight_bytes * shard(3) + grad_bytes * shard(2) + optimizer_bytes * shard(1))


def activation_elements_per_token(model: ModelSpec) -> dict[str, float]:
    """Elements one layer saves per token for its backward, by what recomputation drops:
    `input` (the layer input, kept always), `cheap` (norm outputs and activation-function outputs,
    dropped by selective recomputation), `rest` (everything else, dropped by full recomputation)."""
    d, h = model.hidden_size, model.num_heads
    if model.attention == "mla":
        q = h * model.head_dim
        kv = (model.kv_lora_rank + model.qk_rope_head_dim) + h * (model.head_dim - model.qk_rope_head_dim
                                                                 + model.v_head_dim)
        low = (model.q_lora_rank or 0)
    else:
        q = h * model.head_dim
        kv = model.num_kv_heads * (model.head_dim + model.v_head_dim)
        low = 0
    attn_out = h * model.v_head_dim
    gate = 2 if model.gated_mlp else 1
    if model.is_moe:
        f = model.experts_per_token * model.moe_intermediate_size \
            + model.num_shared_experts * model.shared_intermediate_size
        routed_in = model.experts_per_token * d  # the permuted token copies entering the experts
    else:
        f = model.intermediate_size
        routed_in = 0.0
    # input: residual into the layer; cheap: 2 norm outputs + SwiGLU output; rest: q, k, v (and
    # MLA's low-rank latents), attention output, the residual after attention, MLP gate/up outputs.
    return {"input": float(d), "cheap": float(2 * d + f),
            "rest": float(q + kv + low + attn_out + d + gate * f + routed_in)}


def activation_bytes(model: ModelSpec, mb_tokens, tp, cp, pp, recompute, inflight, v=1.0) -> np.ndarray:
    """Saved activations on the first stage (the one holding the most micro-batches): `inflight`
    micro-batches of `mb_tokens` tokens through its ceil(L/pp) layers, sharded over tp (sequence
    parallel) and cp; plus, under recomputation, the working set of the one layer being recomputed.
    `recompute`: 0 none, 1 selective, 2 full."""
    e = activation_elements_per_token(model)
    mb_tokens, tp, cp, pp, recompute = (np.asarray(x, dtype=float) for x in (mb_tokens, tp, cp, pp, recompute))
    full_layer = e["input"] + e["cheap"] + e["rest"]
    kept = np.where(recompute == 0, full_layer, np.where(recompute == 1, e["input"] + e["rest"], e["input"]))
    per_layer = mb_tokens / (tp * cp) * ACT_BYTES
    layers = np.ceil(model.num_layers / pp)
    saved = inflight * layers * kept * per_layer
    working = np.where(recompute > 0, full_layer * per_layer, 0.0)
    return saved + working


def logits_bytes(model: ModelSpec, mb_tokens, tp, cp) -> np.ndarray:
    """Logits and their gradient of one micro-batch on the last stage (vocab-parallel over tp)."""
    return 2.0 * np.asarray(mb_tokens, float) / np.asarray(cp, float) * model.vocab_size / np.asarray(tp, float) \
        * LOGIT_BYTES
