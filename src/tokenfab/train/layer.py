"""Forward and backward seconds of one micro-batch through the whole model on one chip's shard.

The forward is the inference engine's prefill graph (`graph.step_ops`: GEMMs, attention incl.
MLA, MoE routing/experts/all-to-all, norms, tensor-parallel all-reduces) over a micro-batch of
whole sequences — except that training runs the LM head on every token and a cross-entropy
instead of sampling, and trains the model's multi-token-prediction modules (one more decoder
layer and LM head each). The backward prices each GEMM's two gradient GEMMs at their own shapes
(`backward_gemm_ops`: the input gradient M x N x K -> M x K, and the weight gradient, whose
reduction runs over the micro-batch's tokens and whose fp32 output is read and written into the
gradient buffer), fused attention at `attention_backward_ratio` times its forward, elementwise
kernels twice (they read the saved input and the incoming gradient, write one gradient), each
tensor-parallel collective 1.5 times (`SP_BACKWARD_COMM`) and every other collective once (the
all-to-all dispatch and combine run reversed). The weight-gradient GEMMs are kept apart (`wgrad`):
they are the W pass the zero-bubble schedules move into the bubbles (`train.schedule`). Without TE's
overlap, Megatron still runs two of a column-parallel layer's three backward collectives beside its
gradient GEMMs (`tp_bwd_hidden`, `BACKWARD_ASYNC_SHARE`); a stack without fused attention adds the
score traffic (`unfused_score_op`). Context parallelism adds the ring exchange of K/V (forward) and of K/V and
their gradients (backward). A dropless MoE layer adds the host time its dispatcher's
device-to-host sync exposes (`train.moe`). Vectorized over (tp, cp, ep, micro-batch) points.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from tokenfab.graph import StepShape, step_ops
from tokenfab.graph.ops import Op
from tokenfab.graph.transformer import (RESIDUAL_FLOPS_PER_ELEMENT, RMSNORM_FLOPS_PER_ELEMENT, ROPE_FLOPS_PER_ELEMENT,
                                        SAMPLING_FLOPS_PER_LOGIT, _kv_elements_per_chip)
from tokenfab.perf.evaluate import time_ops
from tokenfab.train.collectives import members_per_domain, ring_seconds
from tokenfab.train.moe import moe_host_seconds
from tokenfab.train.routing import alltoall_seconds

HEAD_OPS = ("embedding", "lm_head", "cross_entropy")
COMM_KINDS = ("allreduce", "alltoall", "allgather")
BACKWARD_FACTOR = {"stream": 2.0, "fused": 2.0}
"""Backward over forward of the non-GEMM kernel classes (GEMMs: `backward_gemm_ops`; attention:
`TrainingStack.attention_backward_ratio`)."""
CHEAP_OPS = ("norms_residual_rope", "mlp_act", "experts_act")
"""Elementwise kernels selective recomputation runs again in the backward."""
TP_COMM_OPS = ("allreduce_attn", "allreduce_mlp", "allreduce_moe", "allreduce_gdn")
"""Tensor-parallel collectives of the forward graph: with sequence parallelism each is the
all-gather before a column-parallel GEMM and the reduce-scatter after the row-parallel one."""
SP_BACKWARD_COMM = 1.5
"""Backward bytes of a tensor-parallel collective over its forward's, with sequence parallelism:
the conjugates (reduce-scatter of the column-parallel GEMM's input gradient, all-gather of the
row-parallel GEMM's output gradient) move the forward's bytes, and the column-parallel layer
all-gathers its sequence-sharded input once more for its weight gradient — the forward does not
keep the gathered copy (NVIDIA/Megatron-LM megatron/core/tensor_parallel/layers.py,
`LinearWithGradAccumulationAndAsyncCommunication.backward`: "if ctx.sequence_parallel ...
dist_all_gather_func(all_gather_buffer, input, ...)" before the wgrad GEMM). All-gather plus
reduce-scatter forward (1 all-reduce of bytes), conjugates (1) + re-gather (1/2) backward: 1.5."""
COLUMN_PARALLEL = ("qkv_proj", "q_proj", "q_b_proj", "kv_b_proj", "mlp_up", "shared_up")
"""Column-parallel GEMMs of the forward graph: their input is the sequence-parallel all-gather, so
their backward runs the two collectives Megatron overlaps (`BACKWARD_ASYNC_SHARE`)."""
BACKWARD_ASYNC_SHARE = 1.0 / 3.0
"""Share of a tensor-parallel collective's backward bytes (`SP_BACKWARD_COMM` = 1.5 forward units)
that each of Megatron's two asynchronous backward collectives moves, without TE's userbuffer
overlap: a column-parallel layer launches the re-gather of its input with `async_op=True` before
its input-gradient GEMM and the reduce-scatter of that gradient with `async_op=True` before its
weight-gradient GEMM ("Here we rely on CUDA_DEVICE_MAX_CONNECTIONS=1 to ensure that the reduce
scatter is scheduled before the weight gradient computation", NVIDIA/Megatron-LM
megatron/core/tensor_parallel/layers.py, `LinearWithGradAccumulationAndAsyncCommunication.backward`),
0.5 unit each; the row-parallel layer's all-gather of its output gradient (the conjugate of the
forward reduce-scatter, `_ReduceScatterToSequenceParallelRegion.backward`) is synchronous. Korthikanti
et al. (arXiv 2205.05198 §6.2) credit this overlap for full recomputation costing 39% rather than 33%."""
UNFUSED_SCORE_BYTES = (13.0, 19.0)
"""Bytes per attention-score element (per head, query and key) that unfused attention moves in the
forward and the backward (Megatron-LM before fused attention, megatron/model/transformer.py
`CoreAttention`: `torch.baddbmm` writes the bf16 scores (2), `FusedScaleMaskSoftmax` reads and
writes them (4), the attention dropout reads and writes them and keeps a 1-byte mask (5), and the
AV `torch.bmm` reads the probabilities (2): 13. Backward: the AV bmm writes the probability
gradient and the dV bmm reads the probabilities (4), dropout backward reads gradient and mask and
writes (5), softmax backward reads output and gradient and writes (6), the QK^T bmm's two gradients
read the score gradient (4): 19). Korthikanti et al. (arXiv 2205.05198 §5) count the same tensors
(the 5as/h term of their activation memory: scores, softmax output, dropout mask and output)."""
MAIN_GRAD_BYTES = 8.0
"""Bytes per weight-gradient element a weight-gradient GEMM moves: it accumulates into the fp32
gradient buffer in its epilogue, reading and writing 4 bytes each (Megatron's
`gradient_accumulation_fusion`: `fused_weight_gradient_mlp_cuda.wgrad_gemm_accum_fp32(total_input,
grad_output, weight.main_grad)`, NVIDIA/Megatron-LM megatron/core/tensor_parallel/layers.py;
Transformer Engine's `accumulate_into_main_grad`)."""


@dataclass(frozen=True)
class MicroBatchTimes:
    """Seconds of one micro-batch through all layers of a chip's shard (per point), by part."""

    fwd_compute: np.ndarray
    fwd_comm: np.ndarray
    bwd_compute: np.ndarray
    bwd_comm: np.ndarray
    cheap_fwd: np.ndarray
    """Forward seconds of the elementwise kernels selective recomputation repeats."""
    head_fwd: np.ndarray
    head_bwd: np.ndarray
    attention_fwd: np.ndarray
    wgrad: np.ndarray
    """Seconds of the layers' weight-gradient GEMMs (part of `bwd_compute`): the zero-bubble W pass."""
    head_wgrad: np.ndarray
    """Seconds of the LM head's weight-gradient GEMM (part of `head_bwd`)."""
    ep_fwd: np.ndarray
    """Seconds of the forward's expert all-to-all (dispatch and combine over all MoE layers; part
    of `fwd_comm`): on the critical path unless the stack overlaps it (`TrainingStack.ep_comm_overlap`)."""
    ep_bwd: np.ndarray
    """Seconds of the backward's expert all-to-all (part of `bwd_comm`)."""
    tp_bwd_hidden: np.ndarray
    """Seconds of the backward tensor-parallel collectives (part of `bwd_comm`) that Megatron's
    asynchronous column-parallel backward runs beside GEMMs without TE's overlap: the re-gather of
    the input beside the input-gradient GEMMs and the input-gradient reduce-scatter beside the
    weight-gradient GEMMs, each at most as long as those GEMMs (`BACKWARD_ASYNC_SHARE`); 0 for
    frozen weights (no weight gradient: Megatron runs them synchronously)."""


def training_ops(model, shape: StepShape, cp=1.0, fp8: bool = False, mtp: bool = True,
                 lora: bool = False) -> list[Op]:
    """The forward operators of a training micro-batch (see the module docstring). With context
    parallelism MLA ranks exchange the compressed latent (`context_parallel_seconds`), so each
    up-projects the keys and values of the whole sequence (`kv_b_proj` over cp x its tokens). In FP8
    training every linear layer's input is quantized first (`fp8_quantize_ops`)."""
    ops = []
    T = np.asarray(shape.tokens, float)
    mtp = float(model.mtp_layers) if mtp else 0.0
    layer_scale = (model.num_layers + mtp) / model.num_layers
    for op in step_ops(model, shape):
        if op.name == "norms_residual_rope":
            op = sequence_parallel_norms(model, shape, op)
        if op.name == "kv_b_proj":
            op = dataclasses.replace(op, m=np.asarray(op.m, float) * cp)
        if fp8 and op.kind == "gemm" and not op.meta.get("bf16_weights") and op.name not in HEAD_OPS:
            ops.append(fp8_quantize_op(op, layer_scale))
        if lora and op.kind == "gemm" and not op.meta.get("bf16_weights") and op.name not in HEAD_OPS:
            ops.append(lora_adapter_op(op, layer_scale))
        if op.name == "sampling":
            logits = T * model.vocab_size / shape.tp
            ops.append(Op("cross_entropy", "stream", 1.0 + mtp, bytes_=logits * 4.0 * 3.0, kernels=2.0,
                          vector_flops=SAMPLING_FLOPS_PER_LOGIT * logits, sfu_ops=logits))
        elif op.name == "lm_head":
            ops.append(dataclasses.replace(op, m=T, count=op.count * (1.0 + mtp)))
        elif op.name == "embedding":
            ops.append(op)
        else:
            ops.append(dataclasses.replace(op, count=op.count * layer_scale))
    return ops


def sequence_parallel_norms(model, shape: StepShape, op: Op) -> Op:
    """The norms, residual adds and RoPE of a layer under sequence parallelism: training shards
    the residual stream over the tensor-parallel ranks along the sequence (Korthikanti et al.,
    arXiv 2205.05198 §4.2.2: "the layer-norm and dropout ... are independent along the sequence
    dimension", so each rank runs them on T/tp tokens), where inference replicates them on all T.
    RoPE runs inside attention on the rank's own heads and all its tokens, as in the inference
    graph. Same per-element bytes and FLOPs as `graph.transformer._norm_ops`."""
    T = np.asarray(shape.tokens, float)
    tp = np.asarray(shape.tp, float)
    d, a = model.hidden_size, shape.a_bytes
    rope = T * (model.num_heads / tp) * model.head_dim
    norm_tokens = T / tp
    return dataclasses.replace(
        op, bytes_=norm_tokens * d * a * 10 + rope * a * 2,
        vector_flops=norm_tokens * d * 2 * (RMSNORM_FLOPS_PER_ELEMENT + RESIDUAL_FLOPS_PER_ELEMENT)
        + rope * ROPE_FLOPS_PER_ELEMENT, sfu_ops=2.0 * norm_tokens)


QUANTIZE_PREFIX = "fp8_quantize:"


def fp8_quantize_op(op: Op, layer_scale: float) -> Op:
    """The FP8 cast of a GEMM's input in training: read bf16, write FP8 (3 bytes per element of the
    m x k input; the per-tile scales are 1/128 of that). The backward casts the output gradient
    (m x n) twice, row-wise for the input gradient and transposed for the weight gradient, and the
    input again transposed (DeepSeek-V3 §3.3: 1x128 tiles, 128x1 for the transposed pass): its
    bytes are `backward_bytes` in `meta`."""
    m = np.asarray(op.m, float) * op.groups
    fwd = 3.0 * m * op.k
    bwd = 2.0 * 3.0 * m * op.n + 3.0 * m * op.k
    return Op(QUANTIZE_PREFIX + op.name, "stream", op.count * layer_scale, bytes_=fwd, kernels=1.0,
              meta={"backward_bytes": bwd})


LORA_PREFIX = "lora:"


def lora_adapter_op(op: Op, layer_scale: float) -> Op:
    """The low-rank adapter beside a frozen linear layer (LoRA on every linear layer): two skinny
    GEMMs (m x k x r, m x r x n) whose FLOPs are negligible at small rank but which read the layer's
    input again and read and write its output to add their result: (m·k + 2·m·n) bf16 elements, a
    memory-bound pass (its backward, counted as an elementwise kernel's, moves twice that)."""
    m = np.asarray(op.m, float) * op.groups
    return Op(LORA_PREFIX + op.name, "stream", op.count * layer_scale, bytes_=(m * op.k + 2.0 * m * op.n) * 2.0,
              kernels=2.0)


DGRAD, WGRAD = ":dgrad", ":wgrad"


def backward_gemm_ops(op: Op, frozen: bool = False) -> list[Op]:
    """The gradient GEMMs of a forward GEMM `op` (M x K input, K x N weight, `groups` of them):

    - input gradient dX = dY · W^T: M x N x K -> an M x K output, reading the weight again;
    - weight gradient dW = X^T · dY: a K x N output reduced over the M tokens of the micro-batch,
      accumulated into the fp32 gradient buffer (`MAIN_GRAD_BYTES` per element read and written),
      with X (K x M) and dY (M x N) as its operands. Its reduction depth is the micro-batch's tokens:
      a short micro-batch (small mbs, many context-parallel ranks, few tokens per expert) turns it
      memory-bound on the fp32 buffer.

    Both run in the forward's format (FP8 training quantizes dY for both, DeepSeek-V3 §3.3). The
    roofline prices a GEMM's bytes as N·K·w + M·(K+N)·a; the weight gradient's operands are dY
    (its "weight", N x M at the forward's w) and X plus the fp32 output (its "activations"), so its
    `a_bytes` is the bytes-weighted mean (M·x + N·8)/(M + N) that makes K·(M + N)·a equal
    K·M·x + K·N·8. Frozen weights (LoRA) have no weight gradient."""
    m = np.asarray(op.m, float)
    x = float(np.max(op.w_bytes)) if np.ndim(op.w_bytes) else float(op.w_bytes)
    x = min(x, float(np.max(op.a_bytes)))  # activations are never wider than the GEMM's operands
    dgrad = dataclasses.replace(op, name=op.name + DGRAD, m=m, n=op.k, k=op.n)
    if frozen:
        return [dgrad]
    n = np.asarray(op.n, float)
    a_w = (m * x + n * MAIN_GRAD_BYTES) / np.maximum(m + n, 1.0)
    wgrad = dataclasses.replace(op, name=op.name + WGRAD, m=np.broadcast_to(np.asarray(op.k, float), m.shape),
                                n=op.n, k=m, a_bytes=a_w, meta={k: v for k, v in op.meta.items() if k != "ragged"})
    return [dgrad, wgrad]


def micro_batch_times(model, hw, seq_len: int, tp, cp, ep, mbs, attention_backward_ratio: float,
                      w_bytes: float = 2.0, mtp: bool = True, frozen: bool = False,
                      unfused_attention: bool = False, moe_host_s_per_layer: float | None = None) -> MicroBatchTimes:
    """Per-part seconds of one micro-batch of `mbs` sequences of `seq_len` tokens (see module);
    `w_bytes` per weight element the GEMMs read (1 on the FP8 path); `frozen` base weights (LoRA)
    need no weight-gradient GEMMs, so a GEMM's backward is its input-gradient GEMM;
    `unfused_attention` adds the score traffic of attention run as separate kernels
    (`UNFUSED_SCORE_BYTES`, `unfused_score_op`), which selective recomputation re-runs as
    Korthikanti et al.'s does."""
    tp, cp, ep, mbs = (np.asarray(x, dtype=float) for x in (tp, cp, ep, mbs))
    S = float(seq_len)
    tokens = mbs * S / cp
    shape = StepShape("prefill", tokens=tokens, seqs=mbs / cp, ctx=np.full_like(tp, S / 2.0),
                      kv_len=np.full_like(tp, S), tp=tp, dp=np.where(ep > 1, ep / tp, 1.0), ep=ep,
                      w_bytes=w_bytes, a_bytes=2.0, kv_bytes=2.0)
    ops = training_ops(model, shape, cp, fp8=w_bytes < 2.0, mtp=mtp, lora=frozen)
    # Transformer Engine quantizes each GEMM's inputs in a pass of its own, fused-MoE layers included
    # (`perf.evaluate.time_ops`: an inference MoE fit holds its quantization inside the layer).
    ops = [dataclasses.replace(op, meta={**op.meta, "quant_apart": True}) if op.kind == "gemm" else op for op in ops]
    bwd = [b for op in ops if op.kind == "gemm" for b in backward_gemm_ops(op, frozen)]
    if unfused_attention:
        ops = ops + [unfused_score_op(model, shape, cp, mtp)]
    times = time_ops(ops + bwd, hw)
    z = np.zeros_like(tp)
    parts = {k: z.copy() for k in ("fc", "fm", "bc", "bm", "cheap", "hf", "hb", "attn", "w", "hw", "tpb", "cd", "cw",
                                   "ef", "eb")}
    for op, t in zip(ops + bwd, times):
        sec = np.broadcast_to(np.asarray(t.seconds, float), tp.shape)
        base, _, grad = op.name.partition(":") if op.name.endswith((DGRAD, WGRAD)) else (op.name, "", "")
        if grad:  # a gradient GEMM: backward only
            head = base in HEAD_OPS
            parts["hb" if head else "bc"] += sec
            if grad == WGRAD[1:]:
                parts["hw" if head else "w"] += sec
            if base in COLUMN_PARALLEL:
                parts["cw" if grad == WGRAD[1:] else "cd"] += sec
        elif op.name in HEAD_OPS:
            parts["hf"] += sec
            if op.kind != "gemm":
                parts["hb"] += sec * BACKWARD_FACTOR.get(op.kind, 1.0)
        elif op.name in ("moe_dispatch", "moe_combine"):
            continue  # priced below with DeepEP's node deduplication
        elif op.kind in COMM_KINDS:
            parts["fm"] += sec
            parts["bm"] += sec * (SP_BACKWARD_COMM if op.name in TP_COMM_OPS and not frozen else 1.0)
            if op.name in TP_COMM_OPS and not frozen:
                parts["tpb"] += sec * SP_BACKWARD_COMM
        elif op.kind == "attention":
            parts["fc"] += sec
            parts["bc"] += sec * attention_backward_ratio
            parts["attn"] += sec
        elif op.name == UNFUSED_SCORES:
            parts["fc"] += sec
            parts["bc"] += sec * UNFUSED_SCORE_BYTES[1] / UNFUSED_SCORE_BYTES[0]
            parts["cheap"] += sec
        elif op.name.startswith(QUANTIZE_PREFIX):
            parts["fc"] += sec
            parts["bc"] += sec * np.asarray(op.meta["backward_bytes"], float) / np.maximum(op.bytes, 1.0)
        else:
            parts["fc"] += sec
            if op.kind != "gemm":
                parts["bc"] += sec * BACKWARD_FACTOR.get(op.kind, 2.0)
            if op.name in CHEAP_OPS:
                parts["cheap"] += sec
    cp_fwd = context_parallel_seconds(model, hw, tokens * cp, tp, cp)
    if model.num_moe_layers:
        # Dispatch in the GEMMs' format (FP8 in FP8 training, as DeepSeek-V3 §3.3.2), combine and
        # both backward passes in bf16; each rank sends its 1/tp share of the tokens.
        moe_layers = model.num_moe_layers + (model.mtp_layers if mtp else 0)
        a2a = lambda b: alltoall_seconds(model, tokens / tp, ep, b, hw.system, hw.eff) * moe_layers  # noqa: E731
        on = (ep > tp)  # ep = tp: every chip already holds its tokens' experts
        ep_f, ep_b = np.where(on, a2a(w_bytes) + a2a(2.0), 0.0), np.where(on, 2.0 * a2a(2.0), 0.0)
        parts["fm"] += ep_f
        parts["bm"] += ep_b
        parts["ef"] += ep_f
        parts["eb"] += ep_b
        # The host time the dispatcher's device-to-host sync exposes per MoE layer (train.moe).
        host_f, host_b = moe_host_seconds(model, mtp, moe_host_s_per_layer)
        parts["fc"] += host_f
        parts["bc"] += host_b
    return MicroBatchTimes(fwd_compute=parts["fc"], fwd_comm=parts["fm"] + cp_fwd, bwd_compute=parts["bc"],
                           bwd_comm=parts["bm"] + 2.0 * cp_fwd, cheap_fwd=parts["cheap"], head_fwd=parts["hf"],
                           head_bwd=parts["hb"], attention_fwd=parts["attn"], wgrad=parts["w"],
                           head_wgrad=parts["hw"], ep_fwd=parts["ef"], ep_bwd=parts["eb"],
                           tp_bwd_hidden=np.minimum(BACKWARD_ASYNC_SHARE * parts["tpb"], parts["cd"])
                           + np.minimum(BACKWARD_ASYNC_SHARE * parts["tpb"], parts["cw"]))


UNFUSED_SCORES = "attention_scores"


def unfused_score_op(model, shape: StepShape, cp, mtp: bool) -> Op:
    """Forward score traffic of unfused attention over the full-attention layers (MTP layers
    included): each rank's heads (num_heads / tp) x its queries (tokens) x the keys of the whole
    sequence (a context-parallel rank's queries still meet every key), the full s x s matrix the
    causal mask is applied to, at `UNFUSED_SCORE_BYTES[0]` bytes each. The QK^T and AV matmuls stay priced as the attention op."""
    T = np.asarray(shape.tokens, float)
    keys = T / np.maximum(np.asarray(shape.seqs, float), 1e-30)  # tokens per sequence: the whole sequence
    elements = (model.num_heads / np.asarray(shape.tp, float)) * T * keys
    layers = model.num_full_layers + (model.mtp_layers if mtp else 0)
    return Op(UNFUSED_SCORES, "stream", float(layers), bytes_=elements * UNFUSED_SCORE_BYTES[0], kernels=4.0)


def context_parallel_seconds(model, hw, seq_tokens, tp, cp) -> np.ndarray:
    """Forward seconds of the K/V ring exchange of context parallelism over all layers: each rank
    gathers the other ranks' K/V of the micro-batch's sequences (MLA: the compressed latent), one
    all-gather per full-attention layer over the cp ranks (strided by tp)."""
    kv = np.asarray(_kv_elements_per_chip(model, tp), float)
    bytes_total = np.asarray(seq_tokens, float) * kv * 2.0
    per_layer = ring_seconds(bytes_total, cp, members_per_domain(tp, hw.system), hw.system, hw.eff)
    return per_layer * model.num_full_layers
