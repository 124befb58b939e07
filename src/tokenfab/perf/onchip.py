"""What a deployment keeps resident in the chip's shared SRAM (L2 / global buffer) across steps.

A decode step reads the chip's whole weight shard and the KV cache of every sequence in flight,
once each. When a set of those bytes fits in the shared SRAM that the kernels' working
activations leave over, the runtime can keep it there for good (SRAM-only chips such as Groq's
LPU place everything statically; a GPU pins it with an L2 persisting-access window) and every
later step reads it at the shared-SRAM bandwidth instead of HBM's.

No partial credit: a set that does not fit whole gets nothing. Its bytes are streamed through the
cache once per step in the same order, so an LRU cache smaller than the set evicts each line
before its next use (~0 hits); only pinning a slice would help, and no deployment we model does.

Options: weights and KV cache both; else whichever of the two saves more bytes a decode step
reads (weights win a tie, prefill steps read them too); else nothing. More shared SRAM never
saves fewer bytes: the feasible options only grow. The kernels' own reuse windows (GEMM blocking,
attention K/V reuse) are not shrunk by the pinned bytes: an upper bound on that reuse, which keeps
"more SRAM is never slower" exact. Pure and vectorized over mapping points.

Sources: Abts et al., "Think Fast: A Tensor Streaming Processor" (ISCA 2020) — Groq's chip keeps
weights and activations in 220 MiB of compiler-scheduled SRAM, no DRAM; NVIDIA CUDA C++
Programming Guide, "L2 cache set-aside for persisting accesses" (cudaAccessPolicyWindow, Ampere
and later) — a window of global memory kept in L2 across kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Residency:
    """Per mapping point: which sets live in shared SRAM (booleans) and the bytes they take."""

    weights: np.ndarray
    """The chip's weight shard is resident (GEMMs read their weights from shared SRAM)."""
    kv: np.ndarray
    """The KV cache of every sequence in flight is resident (attention reads it from shared SRAM)."""
    pinned_bytes: np.ndarray
    """Shared-SRAM bytes the resident sets occupy."""
    saved_bytes: np.ndarray
    """HBM bytes a decode step no longer reads."""


def plan(shared_sram_bytes, weight_bytes, kv_bytes, activation_bytes, weight_read_bytes=None,
         kv_read_bytes=None) -> Residency:
    """Residency per point on a chip with `shared_sram_bytes` of shared SRAM, whose weight shard,
    KV cache (all sequences in flight) and working activations (one step's live tensors: they are
    placed first) take the given bytes; a decode step reads `weight_read_bytes` of the weights
    (default: all; an embedding table is held but only gathered from) and `kv_read_bytes` of the
    cache (default: all). All arguments broadcast (scalars or arrays per point)."""
    w_read = weight_bytes if weight_read_bytes is None else weight_read_bytes
    kv_read = kv_bytes if kv_read_bytes is None else kv_read_bytes
    shared, w, kv, act, w_read, kv_read = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (
        shared_sram_bytes, weight_bytes, kv_bytes, activation_bytes, w_read, kv_read)))
    room = np.where(shared > 0, shared - act, -1.0)
    both = w + kv <= room
    w_fits = w <= room
    kv_fits = kv <= room
    weights_alone = ~both & w_fits & (~kv_fits | (w_read >= kv_read))
    kv_alone = ~both & kv_fits & ~weights_alone
    res_w = both | weights_alone
    res_kv = both | kv_alone
    return Residency(weights=res_w, kv=res_kv,
                     pinned_bytes=np.where(res_w, w, 0.0) + np.where(res_kv, kv, 0.0),
                     saved_bytes=np.where(res_w, w_read, 0.0) + np.where(res_kv, kv_read, 0.0))
