"""DeepSeek Sparse Attention (DeepSeek-V3.2): a lightning indexer plus MLA over the top-k tokens.

Per layer and new token (DeepSeek-V3.2 report, section 2):
- the indexer projects an FP8 query of `index_heads x index_head_dim` from the query latent and
  one shared key of `index_head_dim` from the hidden state, scores *every* cached token
  (ReLU dot products weighted per head) and keeps the top `index_topk`. Its cost grows with the
  context, but at index_heads x index_head_dim per key, FP8, it is a small fraction of dense
  MLA's cost; it caches `index_key_bytes` (132 B) per token per layer;
- MLA then attends to min(context, index_topk) keys, so attention work per token is capped.
Decode uses MLA's absorbed (MQA) form as in DeepSeek-V3. Prefill picks, per point, the cheaper
of the MHA form (up-project every cached latent, attend over the selected keys) and the absorbed
form (attend to the selected latents directly), as DeepSeek's kernels switch from masked MHA on
short prompts to sparse MQA on long ones. The indexer weights are replicated on tp ranks.
"""

from __future__ import annotations

import numpy as np

from tokenfab.graph import transformer
from tokenfab.graph.ops import Op, StepShape
from tokenfab.graph.registry import register_family
from tokenfab.specs import ModelSpec

INDEX_Q_BYTES = 1.0  # FP8 indexer query and key (DeepSeek-V3.2)
LOGIT_BYTES = 4.0  # FP32 index scores written for the top-k selection
INDEX_FLOPS_PER_HEAD_SCORE = 3.0
"""Per (token, key, indexer head): ReLU (1) and the weighted sum over heads (one FMA, 2), on the
vector units after the FP8 dot products (DeepSeek-V3.2 report, eq. 1)."""
TOPK_RADIX_PASSES = 4.0
TOPK_OPS_PER_PASS = 4.0
"""Top-k of FP32 scores by radix select: 4 passes of 8-bit digits over the 32-bit keys, each
reading the key, extracting the digit, comparing with the selected prefix and counting it in a
histogram (4 integer ops per element and pass), i.e. 16 vector ops per score (an estimate of the
instruction count; the selection pass that writes the k indices is not counted)."""


def index_cache_bytes(model: ModelSpec, tp, seq_len):
    """Indexer-key bytes one sequence caches on a chip, all layers (replicated over tp)."""
    return model.num_layers * np.asarray(seq_len, float) * model.sparse_attention.index_key_bytes + 0.0 * tp


@register_family("dsa", "deepseek_v32", "glm_moe_dsa", when=lambda m: m.sparse_attention is not None,
                 state_bytes=index_cache_bytes)
def step_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """Decoder ops with the core attention capped at top-k keys, plus the indexer."""
    ops = transformer.step_ops(model, s)
    core = next(op for op in ops if op.name == "attention")
    ops = [op for op in ops if op.name != "attention"]
    if s.phase == "prefill":
        ops = _prefill_mode(model, s, ops)
    else:
        ops.append(_sparse_core_decode(model, s, core))
    return ops + indexer_ops(model, s)


def _keys(model: ModelSpec, s: StepShape):
    k = model.sparse_attention.index_topk
    return np.minimum(s.ctx, k), np.minimum(s.kv_len, k)


def _sparse_core_decode(model: ModelSpec, s: StepShape, dense: Op) -> Op:
    """Absorbed MLA over the selected latents: FLOPs and gathered-row bytes at min(ctx, k)."""
    hc = model.num_heads / s.tp
    lat, rope = model.kv_lora_rank, model.qk_rope_head_dim
    ctx, kv = _keys(model, s)
    flops = 2.0 * s.tokens * ctx * hc * (2 * lat + rope)
    new_kv = s.tokens * (lat + rope) * s.kv_bytes
    bytes_ = s.seqs * kv * (lat + rope) * s.kv_bytes + 2 * s.tokens * hc * (lat + rope) * s.a_bytes + new_kv
    geo = transformer.attention_geometry(s, hc, s.seqs, lat + rope, lat, s.kv_bytes, kv_shared=True)
    return Op("attention_sparse", "attention", dense.count, flops_=flops, bytes_=bytes_, meta=geo,
              **transformer.softmax_work(s.tokens * ctx * hc))


def _prefill_mode(model: ModelSpec, s: StepShape, ops: list[Op]) -> list[Op]:
    """Choose MHA or absorbed form per point by FLOPs; zero the unused form's ops."""
    L, T = model.num_layers, s.tokens
    hc = model.num_heads / s.tp
    qk, rope, lat, vd = model.head_dim, model.qk_rope_head_dim, model.kv_lora_rank, model.v_head_dim
    nope = qk - rope
    ctx, kv = _keys(model, s)
    up = 2.0 * s.seqs * s.kv_len * lat * hc * (nope + vd)
    mha_flops = up + 2.0 * T * ctx * hc * (qk + vd)
    mqa_flops = 2.0 * T * hc * lat * (nope + vd) + 2.0 * T * ctx * hc * (2 * lat + rope)
    mha = mha_flops <= mqa_flops
    out = []
    for op in ops:
        if op.name == "kv_b_proj":
            op = Op(op.name, op.kind, op.count, m=op.m, n=op.n, k=op.k, groups=np.where(mha, 1.0, 0.0),
                    w_bytes=op.w_bytes, a_bytes=op.a_bytes)
        out.append(op)
    mqa = np.where(mha, 0.0, hc)
    out.append(Op("q_absorb", "gemm", L, m=T, n=lat, k=nope, groups=mqa, w_bytes=transformer.HEAD_BYTES, a_bytes=s.a_bytes,
                  meta=dict(getattr(transformer, "BF16_GEMM", {}))))
    out.append(Op("v_absorb", "gemm", L, m=T, n=vd, k=lat, groups=mqa, w_bytes=transformer.HEAD_BYTES, a_bytes=s.a_bytes,
                  meta=dict(getattr(transformer, "BF16_GEMM", {}))))
    new_kv = T * (lat + rope) * s.kv_bytes
    mha_bytes = (s.seqs * kv + T) * hc * (qk + vd) * s.a_bytes
    mqa_bytes = s.seqs * kv * (lat + rope) * s.kv_bytes + 2 * T * hc * (lat + rope) * s.a_bytes
    flops = np.where(mha, 2.0 * T * ctx * hc * (qk + vd), 2.0 * T * ctx * hc * (2 * lat + rope))
    geo = transformer.attention_geometry(s, np.where(mha, 1.0, hc), np.where(mha, s.seqs * hc, s.seqs),
                                         np.where(mha, qk, lat + rope), np.where(mha, vd, lat),
                                         np.where(mha, s.a_bytes, s.kv_bytes), kv_shared=~mha)
    out.append(Op("attention_sparse", "attention", L, flops_=flops,
                  bytes_=np.where(mha, mha_bytes, mqa_bytes) + new_kv, meta=geo,
                  **transformer.softmax_work(T * ctx * hc)))
    return out


def indexer_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """Lightning indexer: projections, FP8 scores over every cached token, top-k selection."""
    sa = model.sparse_attention
    L, d, T = model.num_layers, model.hidden_size, s.tokens
    H, dI = sa.index_heads, sa.index_head_dim
    q_in = model.q_lora_rank or d
    score_flops = 2.0 * T * s.ctx * H * dI
    score_bytes = (s.seqs * s.kv_len * sa.index_key_bytes + T * H * dI * INDEX_Q_BYTES
                   + T * s.ctx * LOGIT_BYTES + T * sa.index_key_bytes)
    return [
        Op("indexer_q_proj", "gemm", L, m=T, n=H * dI, k=q_in, w_bytes=s.w_bytes, a_bytes=s.a_bytes),
        Op("indexer_k_proj", "gemm", L, m=T, n=dI, k=d, w_bytes=s.w_bytes, a_bytes=s.a_bytes),
        Op("indexer_weights_proj", "gemm", L, m=T, n=H, k=d, w_bytes=transformer.HEAD_BYTES, a_bytes=s.a_bytes,
           meta=dict(getattr(transformer, "BF16_GEMM", {}))),
        Op("indexer_scores", "fused", L, flops_=score_flops, bytes_=score_bytes,
           vector_flops=INDEX_FLOPS_PER_HEAD_SCORE * T * s.ctx * H),
        Op("indexer_topk", "stream", L, bytes_=T * s.ctx * LOGIT_BYTES + T * sa.index_topk * 4.0,
           vector_flops=TOPK_RADIX_PASSES * TOPK_OPS_PER_PASS * T * s.ctx),
    ]
