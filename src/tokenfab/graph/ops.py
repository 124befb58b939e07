"""Operator records and the shape of one engine step, both vectorized over mapping points."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

OpKind = Literal["gemm", "attention", "stream", "allreduce", "alltoall", "fused", "allgather", "scan"]
"""`fused`: a kernel given by FLOPs and bytes that computes on the linear layers' tensor path (its
precision and achievable fraction), e.g. DSA's FP8 indexer; `allgather`: `bytes` is the gathered
result per rank (nccl-tests size). Both are timed by `perf.kinds`."""


@dataclass(frozen=True)
class StepShape:
    """One engine step on one data-parallel rank; every field is a scalar or numpy array.

    Token counts are per data-parallel rank (one attention replica of `tp` chips).
    """

    phase: Literal["prefill", "decode"]
    tokens: np.ndarray
    """New tokens processed in this step (T)."""
    seqs: np.ndarray
    """Sequences in the step (decode: T; prefill: sequences whose prompts are processed)."""
    ctx: np.ndarray
    """Mean number of keys each new token attends to (causal prefill: past + T/2 per sequence)."""
    kv_len: np.ndarray
    """KV-cache tokens per sequence after the step (read by attention)."""
    tp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray
    w_bytes: np.ndarray
    """Bytes per weight element (expert and dense linear layers)."""
    a_bytes: np.ndarray
    """Bytes per activation element moved between kernels."""
    kv_bytes: np.ndarray
    """Bytes per KV-cache element."""
    draft_tokens: np.ndarray | float = 0.0
    """Speculative decoding: draft tokens proposed per sequence this step (`tokens` includes
    them, as the target model verifies them all)."""
    vision_items: np.ndarray | float = 0.0
    """Images / video clips whose vision encoder runs in this step (prefill of a VLM)."""
    vision_patches: np.ndarray | float = 0.0
    """ViT patches per item (an item attends within itself)."""
    moe_routing: Literal["random", "balanced"] = "random"
    """How tokens pick experts (`graph.transformer._moe_ops`): "random", as a served router does (experts
    hit at random, the busiest EP rank above the mean), or "balanced", as aiconfigurator's kernel
    collectors force it (every expert and EP rank an equal share: what their MoE tables time)."""


@dataclass(frozen=True)
class Op:
    """One operator on one chip, repeated `count` times per step (e.g. once per layer).

    GEMMs carry m, n, k and `groups` (independent GEMMs of that shape, e.g. active experts);
    attention and stream ops carry FLOPs and bytes directly; collectives carry `bytes` per
    rank and the `group` size they span. Attention, stream and fused ops may also carry the work
    they put on the vector and special-function units (`vector_flops`, `sfu_ops`).
    """

    name: str
    kind: OpKind
    count: float
    m: np.ndarray | float = 0.0
    n: np.ndarray | float = 0.0
    k: np.ndarray | float = 0.0
    groups: np.ndarray | float = 1.0
    w_bytes: np.ndarray | float = 0.0
    a_bytes: np.ndarray | float = 2.0
    flops_: np.ndarray | float = 0.0
    bytes_: np.ndarray | float = 0.0
    group: np.ndarray | float = 1.0
    kernels: float = 1.0
    meta: dict = field(default_factory=dict)
    vector_flops: np.ndarray | float = 0.0
    """FP32 vector-unit FLOPs per occurrence besides the matrix work (norms, activations, RoPE,
    the softmax's scale/max/sum, selection passes): timed against the chip's vector peak."""
    sfu_ops: np.ndarray | float = 0.0
    """Special-function results per occurrence (exp, rsqrt, reciprocal, sin/cos): timed against
    the chip's special-function throughput (`perf.evaluate`)."""

    @property
    def flops(self):
        """Floating-point operations per occurrence (multiply-add = 2)."""
        if self.kind == "gemm":
            return 2.0 * np.asarray(self.m, float) * self.n * self.k * self.groups
        return np.asarray(self.flops_, float)

    @property
    def bytes(self):
        """Bytes moved to/from device memory per occurrence (per rank for collectives)."""
        if self.kind == "gemm":
            return self.groups * (np.asarray(self.n, float) * self.k * self.w_bytes
                                  + np.asarray(self.m, float) * (self.k + self.n) * self.a_bytes)
        return np.asarray(self.bytes_, float)
