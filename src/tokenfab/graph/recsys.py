"""Recommendation models: DLRM-v2 (embeddings + DCNv2) and HSTU generative recommenders.

DLRM-v2 (MLPerf DCNv2), per scored user-item pair: 26 sparse features look up 214 rows in
total (multi-hot) of 128-wide tables (random row reads, sum-pooled), a bottom MLP 13-512-256-128
embeds the dense features, the 27 x 128 = 3456-wide concatenation passes 3 low-rank (512) DCNv2
cross layers, x_{l+1} = x_0 * (U (V x_l) + b) + x_l, then the top MLP 3456-1024-1024-512-256-1:
about 16M multiply-adds. Tables are either replicated on every chip (data parallel) or sharded
row-wise over `shard` chips, whose pooled vectors return by an all-to-all (TorchRec's layout).

HSTU (Zhai et al. 2024, "Actions Speak Louder than Words"): a stack of sequential-transduction
layers over a user's history of L items: U, V, Q, K = SiLU(f1(x)); A = SiLU(Q K^T + rab) V
(pointwise, no softmax); y = f2(norm(A) * U). Candidates are scored M-FALCON style: each
attends to the whole history. Embedding-table lookups as above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenfab.graph.ops import Op
from tokenfab.graph.registry import register_family
from tokenfab.graph.transformer import BF16_GEMM
from tokenfab.specs import ModelSpec

register_family("dlrm", "dlrm_v2", "dlrm", when=lambda m: m.kind == "recsys", kind="recsys")(None)
register_family("hstu", "hstu", kind="recsys")(None)


@dataclass(frozen=True)
class RecShape:
    """One batch on one chip, vectorized over mapping points."""

    batch: np.ndarray
    """Pairs (DLRM) or requests (HSTU) this chip scores per step."""
    shard: np.ndarray
    """Chips the embedding tables are sharded over (1: replicated)."""
    w_bytes: np.ndarray
    """Bytes per MLP weight (fp16/bf16 2, fp8/int8 1)."""
    emb_bytes: np.ndarray
    """Bytes per embedding element."""
    a_bytes: np.ndarray | float = 2.0
    """Bytes per activation element between layers (DLRM: at most the engine's GEMM precision)."""


def step_ops(model: ModelSpec, r: RecShape) -> list[Op]:
    """Per-chip operators of one scoring step."""
    return hstu_ops(model, r) if model.recsys.variant == "hstu" else dlrm_ops(model, r)


def _embedding_ops(model: ModelSpec, r: RecShape, rows_per_item: float, items) -> list[Op]:
    rec = model.recsys
    dim, a = rec.embedding_dim, r.a_bytes
    # A row-wise shard serves its share of every group member's lookups: balanced, B x lookups.
    lookups = items * rows_per_item
    pooled = items * rec.num_sparse * dim
    return [
        Op("embedding_gather", "stream", 1, bytes_=lookups * (dim * r.emb_bytes + 4.0) + pooled * a, kernels=2.0),
        Op("embedding_alltoall", "alltoall", 1, bytes_=np.where(r.shard > 1, pooled * a, 0.0), group=r.shard),
    ]


DCN_POINTWISE_PASSES = 4.0
"""HBM passes of the interaction-wide rows per DCN layer outside its GEMMs: read U(Vx) + b, x0 and
x_l, write x_{l+1} (one unfused PointWise kernel; see `dlrm_ops`)."""

HIGH_ACCURACY = 0.999
"""MLPerf's high-accuracy target: from here the DCN interaction runs in fp16 (RecsysSpec.accuracy_target)."""


def dlrm_ops(model: ModelSpec, r: RecShape) -> list[Op]:
    """DLRM-v2 as NVIDIA's TensorRT engine runs it (MLPerf Inference v4.x
    closed/NVIDIA/code/dlrm-v2/tensorrt/builder.py): every layer computes at the deployment's
    precision and hands its output to the next in that precision (an int8 engine's activations are
    1 byte; the embedding plugin writes the pooled rows int8). At the 99.9% target only the DCN
    (`interaction_op_precision = 'fp16'`) runs in fp16: its GEMMs at the fp16 rate, its
    activations and x0 * (.) + x_l epilogue 2 bytes wide, and TensorRT reformats its 3456-wide
    input int8 -> fp16 and its output fp16 -> int8 for the top MLP (read 1 + write 2 bytes, then
    read 2 + write 1, per element)."""
    rec, B, w = model.recsys, r.batch, r.w_bytes
    a = np.minimum(w, r.a_bytes)  # activations at the engine's precision (int8/fp8: 1 byte)
    ops = _embedding_ops(model, RecShape(batch=B, shard=r.shard, w_bytes=w, emb_bytes=r.emb_bytes, a_bytes=a),
                         rec.lookups_per_sample, B)
    n_bottom = len(rec.bottom_mlp)
    n_dcn = rec.dcn_layers * (2 if rec.dcn_rank else 1)
    fp16_dcn = rec.accuracy_target >= HIGH_ACCURACY - 1e-12
    a_dcn = np.maximum(a, 2.0) if fp16_dcn else a
    for i, (k, n) in enumerate(rec.mlp_layers()):
        if fp16_dcn and n_bottom <= i < n_bottom + n_dcn:  # interaction at fp16: the bf16 path
            ops.append(Op(f"dense_{i}", "gemm", 1, m=B, n=n, k=k, w_bytes=2.0, a_bytes=a_dcn, meta=BF16_GEMM))
            continue
        ops.append(Op(f"dense_{i}", "gemm", 1, m=B, n=n, k=k, w_bytes=w, a_bytes=a))
    # Inference engines (TensorRT) write pooled rows straight into the interaction buffer and
    # fuse bias + ReLU into the GEMM epilogues. A DCN layer's x0 * (.) + x_l is not fused into its
    # GEMM: NVIDIA builds the cross layer as 1x1 convolutions followed by an ElementWise PROD
    # (with x0) and an ElementWise SUM (with x_l) (`_build_interaction_op`, use_conv=True, in
    # closed/NVIDIA/code/dlrm-v2/tensorrt/builder.py of MLPerf Inference v4.x), and TensorRT merges
    # into a convolution only a following sum, min or max ElementWise layer (TensorRT Layer Fusion
    # Catalog, "Convolution and ElementWise Operation"), while adjacent pointwise layers fuse into
    # one PointWise kernel. So per layer the convolution writes U(Vx) + b and one pointwise kernel
    # reads it, x0 and x_l and writes x_{l+1}: DCN_POINTWISE_PASSES passes of the 3456-wide rows.
    X = rec.interaction_dim
    ops.append(Op("dcn_epilogue", "stream", rec.dcn_layers, bytes_=DCN_POINTWISE_PASSES * B * X * a_dcn, kernels=1.0))
    if fp16_dcn:  # precision boundaries around the fp16 DCN in a lower-precision engine
        ops.append(Op("dcn_reformat", "stream", 2, bytes_=B * X * (a + a_dcn) * (a_dcn > a), kernels=1.0))
    return ops


def hstu_ops(model: ModelSpec, r: RecShape) -> list[Op]:
    rec, B, a, w = model.recsys, r.batch, r.a_bytes, r.w_bytes
    d, H = rec.embedding_dim, rec.hstu_heads
    da, dl = rec.hstu_attention_dim, rec.hstu_linear_dim
    Lh, M = rec.history_len, rec.num_candidates
    tokens = B * (Lh + M)
    # Keys per token: history is causal (L/2 on average); each candidate sees the whole history.
    ctx = (Lh * Lh / 2.0 + M * Lh) / max(Lh + M, 1)
    ops = _embedding_ops(model, r, 1.0, B * (Lh + M))
    ops += [
        Op("hstu_f1", "gemm", rec.hstu_layers, m=tokens, n=H * (2 * dl + 2 * da), k=d, w_bytes=w, a_bytes=a),
        Op("hstu_attention", "attention", rec.hstu_layers, flops_=2.0 * tokens * ctx * H * (da + dl),
           bytes_=tokens * H * (2 * da + 2 * dl) * a),
        Op("hstu_norm_gate", "stream", rec.hstu_layers, bytes_=4 * tokens * H * dl * a),
        Op("hstu_f2", "gemm", rec.hstu_layers, m=tokens, n=d, k=H * dl, w_bytes=w, a_bytes=a),
    ]
    prev = d
    for i, n in enumerate(rec.top_mlp):
        ops.append(Op(f"head_{i}", "gemm", 1, m=B * M, n=n, k=prev, w_bytes=w, a_bytes=a))
        prev = n
    return ops
