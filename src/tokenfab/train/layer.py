"""Forward and backward seconds of one micro-batch through the whole model on one chip's shard.

The forward is the inference engine's prefill graph (`graph.step_ops`: GEMMs, attention incl.
MLA, MoE routing/experts/all-to-all, norms, tensor-parallel all-reduces) over a micro-batch of
whole sequences — except that training runs the LM head on every token and a cross-entropy
instead of sampling, and trains the model's multi-token-prediction modules (one more decoder
layer and LM head each). The backward repeats each kernel class at its FLOP ratio: GEMMs twice
(input and weight gradients), fused attention `attention_backward_ratio` times, elementwise
kernels twice (they read the saved input and the incoming gradient, write one gradient), and every
collective once (Megatron's conjugate all-reduce / reduce-scatter; the all-to-all dispatch and
combine run reversed). Context parallelism adds the ring exchange of K/V (forward) and of K/V and
their gradients (backward). Vectorized over (tp, cp, ep, micro-batch) points.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from tokenfab.graph import StepShape, step_ops
from tokenfab.graph.ops import Op
from tokenfab.graph.transformer import SAMPLING_FLOPS_PER_LOGIT, _kv_elements_per_chip
from tokenfab.perf.evaluate import time_ops
from tokenfab.train.collectives import members_per_domain, ring_seconds
from tokenfab.train.routing import alltoall_seconds

HEAD_OPS = ("embedding", "lm_head", "cross_entropy")
COMM_KINDS = ("allreduce", "alltoall", "allgather")
BACKWARD_FACTOR = {"gemm": 2.0, "stream": 2.0, "fused": 2.0}
"""Backward over forward of each kernel class (attention: `TrainingStack.attention_backward_ratio`)."""
CHEAP_OPS = ("norms_residual_rope", "mlp_act", "experts_act")
"""Elementwise kernels selective recomputation runs again in the backward."""


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


def micro_batch_times(model, hw, seq_len: int, tp, cp, ep, mbs, attention_backward_ratio: float,
                      w_bytes: float = 2.0, mtp: bool = True, frozen: bool = False) -> MicroBatchTimes:
    """Per-part seconds of one micro-batch of `mbs` sequences of `seq_len` tokens (see module);
    `w_bytes` per weight element the GEMMs read (1 on the FP8 path); `frozen` base weights (LoRA)
    need no weight-gradient GEMMs, so a GEMM's backward is one GEMM."""
    tp, cp, ep, mbs = (np.asarray(x, dtype=float) for x in (tp, cp, ep, mbs))
    S = float(seq_len)
    tokens = mbs * S / cp
    shape = StepShape("prefill", tokens=tokens, seqs=mbs / cp, ctx=np.full_like(tp, S / 2.0),
                      kv_len=np.full_like(tp, S), tp=tp, dp=np.where(ep > 1, ep / tp, 1.0), ep=ep,
                      w_bytes=w_bytes, a_bytes=2.0, kv_bytes=2.0)
    ops = training_ops(model, shape, cp, fp8=w_bytes < 2.0, mtp=mtp, lora=frozen)
    times = time_ops(ops, hw)
    z = np.zeros_like(tp)
    parts = {k: z.copy() for k in ("fc", "fm", "bc", "bm", "cheap", "hf", "hb", "attn")}
    for op, t in zip(ops, times):
        sec = np.broadcast_to(np.asarray(t.seconds, float), tp.shape)
        gemm_bwd = 1.0 if frozen else 2.0
        if op.name in HEAD_OPS:
            parts["hf"] += sec
            parts["hb"] += sec * (gemm_bwd if op.kind == "gemm" else BACKWARD_FACTOR.get(op.kind, 1.0))
        elif op.name in ("moe_dispatch", "moe_combine"):
            continue  # priced below with DeepEP's node deduplication
        elif op.kind in COMM_KINDS:
            parts["fm"] += sec
            parts["bm"] += sec
        elif op.kind == "attention":
            parts["fc"] += sec
            parts["bc"] += sec * attention_backward_ratio
            parts["attn"] += sec
        elif op.name.startswith(QUANTIZE_PREFIX):
            parts["fc"] += sec
            parts["bc"] += sec * np.asarray(op.meta["backward_bytes"], float) / np.maximum(op.bytes, 1.0)
        else:
            parts["fc"] += sec
            parts["bc"] += sec * (gemm_bwd if op.kind == "gemm" else BACKWARD_FACTOR.get(op.kind, 2.0))
            if op.name in CHEAP_OPS:
                parts["cheap"] += sec
    cp_fwd = context_parallel_seconds(model, hw, tokens * cp, tp, cp)
    if model.num_moe_layers:
        # Dispatch in the GEMMs' format (FP8 in FP8 training, as DeepSeek-V3 §3.3.2), combine and
        # both backward passes in bf16; each rank sends its 1/tp share of the tokens.
        moe_layers = model.num_moe_layers + (model.mtp_layers if mtp else 0)
        a2a = lambda b: alltoall_seconds(model, tokens / tp, ep, b, hw.system, hw.eff) * moe_layers  # noqa: E731
        on = (ep > tp)  # ep = tp: every chip already holds its tokens' experts
        parts["fm"] += np.where(on, a2a(w_bytes) + a2a(2.0), 0.0)
        parts["bm"] += np.where(on, 2.0 * a2a(2.0), 0.0)
    return MicroBatchTimes(fwd_compute=parts["fc"], fwd_comm=parts["fm"] + cp_fwd, bwd_compute=parts["bc"],
                           bwd_comm=parts["bm"] + 2.0 * cp_fwd, cheap_fwd=parts["cheap"], head_fwd=parts["hf"],
                           head_bwd=parts["hb"], attention_fwd=parts["attn"])


def context_parallel_seconds(model, hw, seq_tokens, tp, cp) -> np.ndarray:
    """Forward seconds of the K/V ring exchange of context parallelism over all layers: each rank
    gathers the other ranks' K/V of the micro-batch's sequences (MLA: the compressed latent), one
    all-gather per full-attention layer over the cp ranks (strided by tp)."""
    kv = np.asarray(_kv_elements_per_chip(model, tp), float)
    bytes_total = np.asarray(seq_tokens, float) * kv * 2.0
    per_layer = ring_seconds(bytes_total, cp, members_per_domain(tp, hw.system), hw.system, hw.eff)
    return per_layer * model.num_full_layers
