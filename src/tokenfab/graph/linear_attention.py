"""Hybrid linear attention (Qwen3-Next): Gated DeltaNet layers beside gated full attention.

Qwen3-Next-80B-A3B has 48 layers: every 4th is gated softmax attention (GQA 16/2 heads of 256,
output gated by a sigmoid of a second query-sized projection), the other 36 are Gated DeltaNet.
A Gated DeltaNet layer keeps, per sequence, one dk x dv state matrix per value head (constant in
the context length: no KV cache) and a short convolution state. Per token and value head:
- decode (recurrent form): decay, S^T k, rank-1 delta update and S^T q — about 4 dk·dv
  multiply-adds, 8·dk·dv FLOPs — while reading and writing the whole state (memory-bound);
- prefill (chunked form, chunk C = 64, FLA's chunk_gated_delta_rule): intra-chunk products
  Q·K^T, K·K^T and A·V, 2·C·(2·dk + dv) FLOPs, plus the inter-chunk state terms, 6·dk·dv; a chain
  of `SCAN_KERNELS` kernels whose state-passing kernel walks each sequence's chunks one after
  another (a `scan` op: `perf.kinds`, timed against the kernels measured in aiconfigurator's
  `gdn_perf` tables, `validate.aic_gdn`).
Heads split over tp. The full-attention layers and the MoE come from the decoder Transformer.
"""

from __future__ import annotations

import numpy as np

from tokenfab.graph import transformer
from tokenfab.graph.ops import Op, StepShape
from tokenfab.graph.registry import register_family
from tokenfab.specs import ModelSpec

CONV_STATE_BYTES = 2.0  # bf16 convolution state
SCAN_KERNELS = 6.0
"""Kernels of FLA's chunked forward (`chunk_gated_delta_rule_fwd`): chunk-local cumsum of the gates,
K·K^T, triangular solve, WY recompute, state passing, output."""


def recurrent_state_bytes(model: ModelSpec, tp, seq_len):
    """Recurrent + convolution state of one sequence on one chip, all linear layers (constant
    in `seq_len`). Value heads split over tp (at least one per chip)."""
    la = model.linear_attention
    share = np.maximum(la.num_value_heads / np.asarray(tp, float), 1.0) / la.num_value_heads
    per_layer = la.state_elements * la.state_bytes + la.conv_state_elements * CONV_STATE_BYTES
    return la.num_layers * per_layer * share + 0.0 * np.asarray(seq_len, float)


@register_family("gated_deltanet", "qwen3_next", when=lambda m: m.linear_attention is not None,
                 state_bytes=recurrent_state_bytes)
def step_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """Decoder ops (softmax layers only) + output gate + Gated DeltaNet layers."""
    ops = transformer.step_ops(model, s)
    n_full = model.num_layers - model.num_linear_layers
    if model.attention_output_gate and n_full:
        hc = model.num_heads / s.tp
        ops.append(Op("attn_gate_proj", "gemm", n_full, m=s.tokens, n=hc * model.head_dim, k=model.hidden_size,
                      w_bytes=s.w_bytes, a_bytes=s.a_bytes))
        ops.append(Op("attn_gate", "stream", n_full, bytes_=s.tokens * hc * model.head_dim * s.a_bytes * 3))
    return ops + gated_deltanet_ops(model, s)


def gated_deltanet_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    la = model.linear_attention
    n, d, T = la.num_layers, model.hidden_size, s.tokens
    hk = np.maximum(la.num_key_heads / s.tp, 1.0)
    hv = np.maximum(la.num_value_heads / s.tp, 1.0)
    dk, dv, C = la.key_head_dim, la.value_head_dim, la.chunk_size
    qkv = (2 * hk * dk + hv * dv)
    state = s.seqs * hv * dk * dv * la.state_bytes
    conv_state = s.seqs * qkv * (la.conv_kernel - 1) * CONV_STATE_BYTES
    io = T * (qkv + hv * dv) * s.a_bytes  # q, k, v in; o out
    if s.phase == "decode":
        core = Op("gdn_core", "attention", n, flops_=8.0 * T * hv * dk * dv, bytes_=2 * state + io)
    else:
        per_seq = np.divide(T, s.seqs, out=np.zeros(np.broadcast(T, s.seqs).shape), where=np.asarray(s.seqs) > 0)
        core = Op("gdn_core", "scan", n, flops_=T * hv * (2.0 * C * (2 * dk + dv) + 6.0 * dk * dv),
                  bytes_=2 * state + io, kernels=SCAN_KERNELS, meta={"steps": np.ceil(per_seq / C)})
    return [
        Op("gdn_in_proj", "gemm", n, m=T, n=2 * hk * dk + 2 * hv * dv + 2 * hv, k=d, w_bytes=s.w_bytes,
           a_bytes=s.a_bytes),
        Op("gdn_conv", "stream", n, bytes_=2 * T * qkv * s.a_bytes + 2 * conv_state, kernels=1.0),
        core,
        Op("gdn_norm_gate", "stream", n, bytes_=3 * T * hv * dv * s.a_bytes),
        Op("gdn_out_proj", "gemm", n, m=T, n=d, k=hv * dv, w_bytes=s.w_bytes, a_bytes=s.a_bytes),
        Op("allreduce_gdn", "allreduce", n, bytes_=T * d * s.a_bytes, group=s.tp),
    ]
