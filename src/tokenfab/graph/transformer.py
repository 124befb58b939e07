"""Operators of a decoder-only Transformer step on one chip, for every mapping point at once.

Sharding: attention heads and dense MLPs split over `tp` (KV heads replicate when tp exceeds
them; MLA's latent cache replicates on every tp rank). MoE experts split over `ep` ranks of the
`tp × dp` group when ep > 1 (data-parallel attention, expert-parallel MoE, tokens dispatched by
all-to-all), or tensor-parallel over `tp` when ep = 1. Counts are per whole model: a pipeline of
`pp` stages runs the same per-layer ops, each stage a share of the layers.
"""

from __future__ import annotations

import numpy as np

from tokenfab.graph.ops import Op, StepShape
from tokenfab.specs.model import ModelSpec

HEAD_BYTES = 2.0  # embeddings, LM head, router and norms stay in bf16 in quantized deployments
BF16_GEMM = {"bf16_weights": True}
"""Op meta of GEMMs whose weights stay bf16: they run at the bf16 peak (perf.evaluate)."""

# Vector (FP32 FLOPs, an FMA = 2) and special-function (SFU results) work per element of the
# elementwise kernels, counted from the operations each performs; they are timed against the chip's
# vector and SFU peaks next to their bytes (perf.evaluate). Where a kernel's count is uncertain the
# count is the smallest that does the arithmetic, so the terms bind only where they surely do.
SOFTMAX_SFU_PER_SCORE = 1.0
"""One exponential per attention score (FlashAttention-3, arXiv 2407.08608, section 3.1: the exp of
the softmax runs on the multi-function units, 3.9 T/s on H100 SXM5 against 989 TFLOP/s of matmul)."""
SOFTMAX_FLOPS_PER_SCORE = 4.0
"""Per score: scale-and-subtract the running max (one FMA, 2), the row max (1) and row sum (1)."""
RMSNORM_FLOPS_PER_ELEMENT = 4.0
"""Square-accumulate (one FMA, 2), then scale by the row's rsqrt and the weight (2 multiplies)."""
RESIDUAL_FLOPS_PER_ELEMENT = 1.0
"""One add."""
ROPE_FLOPS_PER_ELEMENT = 3.0
"""A rotated pair takes 4 multiplies and 2 adds; cos/sin come from a precomputed cache (vLLM's
`cos_sin_cache`), so no special functions."""
SWIGLU_FLOPS_PER_OUTPUT = 4.0
"""silu(g)·u = g·u / (1 + exp(-g)): scale to base 2, add 1, two multiplies."""
SWIGLU_SFU_PER_OUTPUT = 2.0
"""exp2 and a reciprocal per output element (GELU-tanh of ungated MLPs: tanh and a reciprocal)."""
SAMPLING_FLOPS_PER_LOGIT = 5.0
"""Softmax over the vocabulary: temperature multiply, max, subtract, sum, normalize."""
SAMPLING_SFU_PER_LOGIT = 1.0
"""One exponential per logit."""


def step_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """All operators of one step (prefill or decode) on one chip."""
    ops = _attention_ops(model, s)
    ops += _norm_ops(model, s)
    n_dense = model.num_layers - model.num_moe_layers
    if n_dense:
        ops += _mlp_ops(model, s, n_dense)
    if model.num_moe_layers:
        ops += _moe_ops(model, s, model.num_moe_layers)
    ops += _head_ops(model, s)
    return ops


def _kv_heads_per_chip(model: ModelSpec, tp):
    return np.maximum(model.num_kv_heads / tp, 1.0)


CALIBRATED_ATTENTION_HEAD_DIM = 128.0
"""Head dimension the chips' attention fractions stand for: one softmax exponential per 4 x 128 = 512
matrix FLOPs, hidden inside the calibrated rate (FA3-class kernels at head dim 128)."""


def small_head_exps(scores, head_dim: float):
    """Softmax exponentials of a head-dim-`head_dim` attention that do not hide under its matrix work.

    FlashAttention-3's forward sweep on H100 SXM5 (Shah et al., arXiv 2407.08608, Figure 5, FP16,
    no causal mask, 16k tokens: 497 / 648 / 756 TFLOPS at head dim 64 / 128 / 256) fits time per
    score = 4 d FLOPs at 907 TFLOPS (92% of the 989 peak) + 0.23 ps, within 1.4% at all three: the
    MMAs and the exponential (3.86 T/s on the multi-function units: 0.26 ps) add, they do not overlap.
    A fraction calibrated at head dim 128 folds that fixed term into a per-FLOP rate (one exponential
    per 512 FLOPs); applied to a head-dim-d kernel's 4 d FLOPs per score it charges only d / 128 of the
    exponential, so the other (1 - d / 128) per score is timed here, on the multi-function units
    (an estimate: FA3's fit; aiconfigurator's TensorRT-LLM context-attention tables at prompts of 8K and more
    agree: head dim 64 reaches 0.82 of head dim 128's rate on H100/H200, 0.79 on B200): at d = 64,
    256 FLOPs at 563 (0.57 x 989) + 0.5 / 3.86 T/s = 438 TFLOPS, 0.78 of head dim 128's rate, where
    FA3 measures 497 / 648 = 0.77 (16k tokens), 476 / 638 = 0.75 (4k), 392 / 565 = 0.69 (1k)."""
    return np.asarray(scores, float) * max(0.0, 1.0 - head_dim / CALIBRATED_ATTENTION_HEAD_DIM)


def _attention_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    # Softmax-attention layers only: a hybrid model's linear-attention layers are added by its
    # family module (graph/linear_attention.py).
    L = model.num_layers - model.num_linear_layers
    d, T = model.hidden_size, s.tokens
    hc = model.num_heads / s.tp
    ops: list[Op] = []
    if model.attention == "mla":
        ops += _mla_projection_ops(model, s, hc)
    else:
        kvc = _kv_heads_per_chip(model, s.tp)
        ops.append(Op("qkv_proj", "gemm", L, m=T, n=hc * model.head_dim + kvc * (model.head_dim + model.v_head_dim),
                      k=d, w_bytes=s.w_bytes, a_bytes=s.a_bytes))
        ops.append(Op("o_proj", "gemm", L, m=T, n=d, k=hc * model.v_head_dim, w_bytes=s.w_bytes, a_bytes=s.a_bytes))
    n_sliding = model.num_sliding_layers
    cores = []
    if L - n_sliding:
        cores.append(_attention_core(model, s, hc, L - n_sliding, window=None))
    if n_sliding:
        cores.append(_attention_core(model, s, hc, n_sliding, window=model.sliding_window))
    ops += cores
    if s.phase == "prefill" and model.attention != "mla" and model.head_dim < CALIBRATED_ATTENTION_HEAD_DIM:
        # A small head dim's softmax exponentials the head-dim-128 fraction leaves out, serialized with
        # the MMAs (`small_head_exps`; gpt-oss attends at head dim 64), as the diffusion graphs charge them.
        exps = sum(c.count * small_head_exps(np.asarray(c.sfu_ops) / SOFTMAX_SFU_PER_SCORE, model.head_dim)
                   for c in cores)
        ops.append(Op("attention_exps", "stream", 1, bytes_=0.0, kernels=0.0, sfu_ops=exps))
    ops.append(Op("allreduce_attn", "allreduce", L, bytes_=T * d * s.a_bytes, group=s.tp))
    return ops


def _mla_projection_ops(model: ModelSpec, s: StepShape, hc) -> list[Op]:
    """MLA linear layers. Decode absorbs W_UK/W_UV into per-head batched GEMMs on the latent."""
    L, d, T = model.num_layers, model.hidden_size, s.tokens
    qk, rope, lat, vd = model.head_dim, model.qk_rope_head_dim, model.kv_lora_rank, model.v_head_dim
    nope = qk - rope
    w, a = s.w_bytes, s.a_bytes
    ops = []
    if model.q_lora_rank:
        ops.append(Op("q_a_proj", "gemm", L, m=T, n=model.q_lora_rank, k=d, w_bytes=w, a_bytes=a))
        ops.append(Op("q_b_proj", "gemm", L, m=T, n=hc * qk, k=model.q_lora_rank, w_bytes=w, a_bytes=a))
    else:
        ops.append(Op("q_proj", "gemm", L, m=T, n=hc * qk, k=d, w_bytes=w, a_bytes=a))
    ops.append(Op("kv_a_proj", "gemm", L, m=T, n=lat + rope, k=d, w_bytes=w, a_bytes=a))
    if s.phase == "decode":
        ops.append(Op("q_absorb", "gemm", L, m=T, n=lat, k=nope, groups=hc, w_bytes=HEAD_BYTES, a_bytes=a,
                      meta=BF16_GEMM))
        ops.append(Op("v_absorb", "gemm", L, m=T, n=vd, k=lat, groups=hc, w_bytes=HEAD_BYTES, a_bytes=a,
                      meta=BF16_GEMM))
    else:
        # Up-project every cached and new latent to per-head keys and values.
        ops.append(Op("kv_b_proj", "gemm", L, m=s.seqs * s.kv_len, n=hc * (nope + vd), k=lat, w_bytes=w, a_bytes=a))
    ops.append(Op("o_proj", "gemm", L, m=T, n=d, k=hc * vd, w_bytes=w, a_bytes=a))
    return ops


def _attention_core(model: ModelSpec, s: StepShape, hc, count: int, window: int | None) -> Op:
    """Fused attention: QK^T and PV FLOPs; bytes for the KV cache read and Q/O/new KV."""
    T = s.tokens
    ctx = s.ctx if window is None else np.minimum(s.ctx, window)
    kv_len = s.kv_len if window is None else np.minimum(s.kv_len, window)
    new_kv = T * _kv_elements_per_chip(model, s.tp) * s.kv_bytes
    if model.attention == "mla" and s.phase == "decode":
        lat, rope = model.kv_lora_rank, model.qk_rope_head_dim
        flops = 2.0 * T * ctx * hc * (2 * lat + rope)
        bytes_ = s.seqs * kv_len * (lat + rope) * s.kv_bytes + 2 * T * hc * (lat + rope) * s.a_bytes
        geo = attention_geometry(s, hc, s.seqs, lat + rope, lat, s.kv_bytes, kv_shared=True)
    elif model.attention == "mla":
        qk, vd = model.head_dim, model.v_head_dim
        flops = 2.0 * T * ctx * hc * (qk + vd)
        bytes_ = (s.seqs * kv_len + T) * hc * (qk + vd) * s.a_bytes
        geo = attention_geometry(s, 1.0, s.seqs * hc, qk, vd, s.a_bytes)
    else:
        hd, vd = model.head_dim, model.v_head_dim
        kvc = _kv_heads_per_chip(model, s.tp)
        flops = 2.0 * T * ctx * hc * (hd + vd)
        bytes_ = s.seqs * kv_len * kvc * (hd + vd) * s.kv_bytes + T * hc * (hd + vd) * s.a_bytes
        geo = attention_geometry(s, hc / kvc, s.seqs * kvc, hd, vd, s.kv_bytes)
    name = "attention" if window is None else "attention_sliding"
    scores = T * ctx * hc
    return Op(name, "attention", count, flops_=flops, bytes_=bytes_ + new_kv, meta=geo,
              **softmax_work(scores))


def softmax_work(scores) -> dict:
    """`Op` fields of a fused attention kernel's softmax over `scores` score elements."""
    scores = np.asarray(scores, dtype=float)
    return {"vector_flops": SOFTMAX_FLOPS_PER_SCORE * scores, "sfu_ops": SOFTMAX_SFU_PER_SCORE * scores}


def attention_geometry(s: StepShape, heads_per_group, kv_groups, head_dim, v_head_dim, kv_bytes,
                       kv_shared=False) -> dict:
    """Op meta of a fused attention kernel for the SRAM-aware model (`perf.tiled.attention_detail`):
    query rows per (sequence, KV head) group (the step's tokens per sequence × the query heads
    sharing a KV head), groups on the chip, K and V widths, bytes per K/V element, and whether V is
    a slice of K (MLA's absorbed latent)."""
    seqs = np.asarray(s.seqs, dtype=float)
    per_seq = np.divide(s.tokens, seqs, out=np.zeros(np.broadcast(s.tokens, seqs).shape), where=seqs > 0)
    return {"q_rows": per_seq * heads_per_group, "kv_groups": kv_groups, "head_dim": head_dim,
            "v_head_dim": v_head_dim, "kv_bytes": kv_bytes, "kv_shared": kv_shared}


def _kv_elements_per_chip(model: ModelSpec, tp):
    """KV-cache elements per token per layer held on one chip."""
    if model.attention == "mla":
        return model.kv_lora_rank + model.qk_rope_head_dim
    return _kv_heads_per_chip(model, tp) * (model.head_dim + model.v_head_dim)


def _norm_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """RMSNorms, residual adds and rotary embedding: memory-bound, about five kernels a layer."""
    d, T = model.hidden_size, s.tokens
    rope_elements = T * (model.num_heads / s.tp) * model.head_dim
    per_layer = T * d * s.a_bytes * 10 + rope_elements * s.a_bytes * 2
    # Two RMSNorms and two residual adds over T x d, RoPE on the query heads; one rsqrt per norm row.
    vector = (T * d * 2 * (RMSNORM_FLOPS_PER_ELEMENT + RESIDUAL_FLOPS_PER_ELEMENT)
              + rope_elements * ROPE_FLOPS_PER_ELEMENT)
    return [Op("norms_residual_rope", "stream", model.num_layers, bytes_=per_layer, kernels=5.0,
               vector_flops=vector, sfu_ops=2.0 * np.asarray(T, float))]


def activation_work(outputs) -> dict:
    """`Op` fields of a SwiGLU (or GELU) activation producing `outputs` elements."""
    outputs = np.asarray(outputs, dtype=float)
    return {"vector_flops": SWIGLU_FLOPS_PER_OUTPUT * outputs, "sfu_ops": SWIGLU_SFU_PER_OUTPUT * outputs}


def _mlp_ops(model: ModelSpec, s: StepShape, count: int) -> list[Op]:
    d, T, w, a = model.hidden_size, s.tokens, s.w_bytes, s.a_bytes
    width = model.intermediate_size / s.tp
    up = 2 * width if model.gated_mlp else width
    return [
        Op("mlp_up", "gemm", count, m=T, n=up, k=d, w_bytes=w, a_bytes=a),
        Op("mlp_act", "stream", count, bytes_=T * width * a * 3, kernels=1.0, **activation_work(T * width)),
        Op("mlp_down", "gemm", count, m=T, n=d, k=width, w_bytes=w, a_bytes=a),
        Op("allreduce_mlp", "allreduce", count, bytes_=T * d * a, group=s.tp),
    ]


def moe_layout(model: ModelSpec, s: StepShape):
    """(tokens entering the chip's expert group, experts per chip, expert TP degree)."""
    ep_on = s.ep > 1
    group_tokens = np.where(ep_on, s.tokens * s.dp, s.tokens)
    experts_per_chip = np.where(ep_on, np.ceil(model.num_experts / s.ep), model.num_experts)
    etp = np.where(ep_on, s.tp * s.dp / s.ep, s.tp)
    return group_tokens, experts_per_chip, etp


def _moe_ops(model: ModelSpec, s: StepShape, count: int) -> list[Op]:
    """Router, routed experts on the busiest chip (statistical load imbalance), shared experts,
    and the dispatch/combine all-to-all (or the TP all-reduce when experts are TP-sharded)."""
    d, T, w, a = model.hidden_size, s.tokens, s.w_bytes, s.a_bytes
    E, k_top = model.num_experts, model.experts_per_token
    group_tokens, e_chip, etp = moe_layout(model, s)
    # Token-expert assignments landing on one EP rank: mean, and the busiest of `ep` ranks
    # (Gaussian approximation of the maximum of ep Poisson loads).
    lam = group_tokens * k_top / s.ep
    if s.moe_routing == "balanced":
        # aiconfigurator's `balanced_logits` (collector/{trtllm,sglang,vllm}/collect_moe.py): token i goes to
        # experts (i + j * stride) mod E, stride = ceil(E / k), spread evenly over [0, stride) below stride
        # tokens, so every expert gets tokens * k / E rows once tokens * k >= E, else tokens * k distinct
        # experts one each, and every EP rank an equal share.
        lam_max = lam
        active = np.minimum(e_chip, lam)
    else:
        lam_max = lam + np.sqrt(2.0 * lam * np.log(np.maximum(s.ep, 1.0)))
        # Experts on that chip that receive at least one token (their weights must be read).
        active = e_chip * (1.0 - (1.0 - k_top / E) ** group_tokens)
    active = np.maximum(active, 1.0)
    m = lam_max / active
    width = model.moe_intermediate_size / etp
    up = 2 * width if model.gated_mlp else width
    ops = [
        Op("router", "gemm", count, m=T, n=E, k=d, w_bytes=HEAD_BYTES, a_bytes=a, meta=BF16_GEMM),
        # Routed tokens per expert vary step to step: ragged groups (see roofline.tile_utilization).
        Op("experts_up", "gemm", count, m=m, n=up, k=d, groups=active, w_bytes=w, a_bytes=a,
           meta={"ragged": True, "moe_layer": True}),
        Op("experts_act", "stream", count, bytes_=lam_max * width * a * 3, **activation_work(lam_max * width)),
        Op("experts_down", "gemm", count, m=m, n=d, k=width, groups=active, w_bytes=w, a_bytes=a,
           meta={"ragged": True}),
        # The routing work around the expert GEMMs (TRT-LLM, vLLM and SGLang MoE layers alike):
        # softmax/top-k over the router logits and the sort of token-expert pairs by expert (two
        # small kernels), the permutation gathering each token's k copies into expert-contiguous
        # rows, and the un-permutation reading the experts' bf16 outputs back and summing each
        # token's k copies with its routing weights. Memory-bound copies, four kernels a layer.
        # As one fused MoE runs them (TensorRT-LLM CutlassMoeFCRunner::runMoe, mixtureOfExperts/
        # moe_kernels.cu: expandInputRowsKernel, then the grouped GEMMs, then
        # finalizeMoeRoutingKernel): the permute reads each source token once (its k - 1 further
        # copies come from L2 within the same thread block) and writes the k copies; the finalize
        # reads the k bf16 expert outputs and writes the token once. Rows arriving by all-to-all
        # are already expanded (one read per copy).
        Op("moe_routing", "stream", count, bytes_=T * E * 4.0 * 2 + lam_max * 8.0, kernels=2.0,
           **routing_work(T * E, E)),
        Op("moe_permute", "stream", count,
           bytes_=(np.where((s.ep > 1) & (s.dp > 1), lam_max, np.minimum(T, lam_max)) + lam_max) * d * a,
           kernels=1.0),
        Op("moe_unpermute", "stream", count, bytes_=lam_max * d * 2.0 + T * d * 2.0, kernels=1.0),
    ]
    if model.num_shared_experts:
        sw = model.num_shared_experts * model.shared_intermediate_size / s.tp
        ops += [
            Op("shared_up", "gemm", count, m=T, n=2 * sw if model.gated_mlp else sw, k=d, w_bytes=w, a_bytes=a),
            Op("shared_down", "gemm", count, m=T, n=d, k=sw, w_bytes=w, a_bytes=a),
        ]
    # Dispatch (activation precision) and combine (bf16) of each token's k expert copies; a tp
    # rank dispatches its 1/tp share of the rank's tokens to each of the etp shards of an expert
    # split over etp chips (etp = 1 in the wide-EP layout).
    per_rank = T / s.tp * k_top * d * etp
    # With one data-parallel rank (ep = tp) every chip already holds all the tokens: each picks
    # those routed to its own experts locally and the TP all-reduce below sums the expert outputs,
    # so there is nothing to dispatch or combine over an all-to-all.
    ep_on = (s.ep > 1) & (s.dp > 1)
    ops.append(Op("moe_dispatch", "alltoall", count, bytes_=np.where(ep_on, per_rank * a, 0.0), group=s.ep))
    ops.append(Op("moe_combine", "alltoall", count, bytes_=np.where(ep_on, per_rank * 2.0, 0.0), group=s.ep))
    ops.append(Op("allreduce_moe", "allreduce", count, bytes_=T * d * a, group=s.tp))
    return ops


def _head_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """Embedding lookup, final norm, LM head for the last token of each sequence, sampling."""
    d, V = model.hidden_size, model.vocab_size
    return [
        Op("embedding", "stream", 1, bytes_=s.tokens * d * (HEAD_BYTES + s.a_bytes)),
        Op("lm_head", "gemm", 1, m=s.seqs, n=V / s.tp, k=d, w_bytes=HEAD_BYTES, a_bytes=s.a_bytes, meta=BF16_GEMM),
        Op("sampling", "stream", 1, bytes_=s.seqs * V / s.tp * 4.0 * 2, kernels=3.0,
           vector_flops=SAMPLING_FLOPS_PER_LOGIT * s.seqs * V / s.tp,
           sfu_ops=SAMPLING_SFU_PER_LOGIT * np.asarray(s.seqs * V / s.tp, float)),
    ]


def routing_work(logits, experts: float) -> dict:
    """`Op` fields of MoE routing over `logits` router logits (`experts` per token): a softmax (or
    sigmoid: one exp, 4 FLOPs) and the top-k by a bitonic sort of each token's logits in registers,
    log2(E)·(log2(E)+1)/2 compare-exchange stages of 2 ops (min, max) per element."""
    logits = np.asarray(logits, dtype=float)
    lg = np.log2(max(float(experts), 2.0))
    return {"vector_flops": logits * (SOFTMAX_FLOPS_PER_SCORE + lg * (lg + 1.0)),
            "sfu_ops": logits * SOFTMAX_SFU_PER_SCORE}
