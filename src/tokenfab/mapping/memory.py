"""Per-chip memory: weights, KV cache, activations and the runtime reserve. Vectorized.

Sizes are in bytes unless a name says GB (decimal, 1e9 bytes, as datasheets quote capacity).
"""

from __future__ import annotations

import numpy as np

from tokenfab.graph.registry import family_of
from tokenfab.graph.transformer import HEAD_BYTES, _kv_elements_per_chip
from tokenfab.specs.model import ModelSpec

CAPACITY_GIB_PER_GB = 79.11 / 80.0
"""What software sees of a chip's rated memory, GiB per rated GB: vendors rate HBM in binary units,
so PyTorch reports an "80 GB" H100 as "a total capacity of 79.11 GiB" (its CUDA out-of-memory
message; A100 80 GB: 79.15 GiB) and nvidia-smi lists 81,559 MiB; an "141 GB" H200 143,771 MiB and an
"180 GB" B200 183,359 MiB (deployments.csv D0128-D0143, printed by the benchmark). The rated GB
count as GiB less the driver's ~1% carve-out: 80 -> 85.0e9 bytes, not 80e9."""


def device_bytes(hbm_gb):
    """Bytes of device memory software can allocate on a chip rated `hbm_gb` GB
    (`CAPACITY_GIB_PER_GB`)."""
    return np.asarray(hbm_gb, dtype=float) * CAPACITY_GIB_PER_GB * 2**30


def capacity_gb(hbm_gb: float) -> float:
    """Decimal GB of memory software sees on a chip rated `hbm_gb` GB (`device_bytes`), as the
    estimates report it: an "80 GB" H100 84.9 GB."""
    return float(device_bytes(hbm_gb)) / 1e9


RESERVE_FRAC = 0.08
"""Share of HBM the runtime keeps (allocator fragmentation, CUDA graphs, workspaces): vLLM's
default gpu_memory_utilization of 0.9 leaves 10%; we take 8% plus a fixed context below."""
RESERVE_FIXED_GB = 1.0
"""Driver/runtime context per chip, GB; at most `RESERVE_FIXED_MAX_FRAC` of a small memory (a chip
with a few hundred MB of statically compiled SRAM, such as an LPU, carries no GB-sized context)."""
RESERVE_FIXED_MAX_FRAC = 0.10
PREFILL_CHUNK_TOKENS = 8192
"""Largest prefill chunk whose activations must fit next to the KV cache."""


def weight_bytes_per_chip(model: ModelSpec, tp, pp, ep, dp, w_bytes):
    """Bytes of weights on the busiest chip: its share of the layers plus the embedding table
    and/or LM head it holds (vocab-parallel over tp, kept in bf16)."""
    layers_per_stage = np.ceil(model.num_layers / pp)
    attn = model.attention_params() / tp
    n_dense = model.num_layers - model.num_moe_layers
    per_layer_dense = attn + model.mlp_params(model.intermediate_size) / tp
    if model.num_moe_layers:
        # ep > 1: each chip holds ceil(E / ep) whole experts (redundant copies fill the rest);
        # ep = 1: every expert is split over the tp chips.
        # ep > 1 with ep < tp × dp: each expert also split over tp × dp / ep chips.
        etp = np.maximum(tp * dp / np.maximum(ep, 1), 1.0)
        experts_per_chip = np.where(ep > 1, np.ceil(model.num_experts / np.maximum(ep, 1)) / etp, model.num_experts / tp)
        moe = (experts_per_chip * model.mlp_params(model.moe_intermediate_size)
               + model.num_shared_experts * model.mlp_params(model.shared_intermediate_size) / tp)
        per_layer_moe = attn + moe
        frac_dense = n_dense / model.num_layers
        per_layer = frac_dense * per_layer_dense + (1 - frac_dense) * per_layer_moe
        router = model.hidden_size * model.num_experts * HEAD_BYTES * (1 - frac_dense)
    else:
        per_layer = per_layer_dense
        router = 0.0
    # With one stage the chip holds the embedding table and the LM head (one table if tied);
    # with several, the first stage holds one and the last the other.
    tables = np.where((pp == 1) & (not model.tie_embeddings), 2.0, 1.0)
    head = tables * model.vocab_size * model.hidden_size / tp * HEAD_BYTES
    encoder = model.encoder_params() / tp * HEAD_BYTES  # a VLM's vision encoder (first stage), bf16
    return layers_per_stage * (per_layer * w_bytes + router) + head + encoder


def kv_bytes_per_sequence(model: ModelSpec, tp, pp, seq_len, kv_bytes):
    """KV-cache bytes one sequence of `seq_len` tokens holds on one chip: full-attention layers
    cache every token, sliding layers their window, plus what the model's family keeps beside
    (Gated DeltaNet recurrent state, DSA indexer keys: `graph.registry.Family.state_bytes`)."""
    per_token_layer = _kv_elements_per_chip(model, tp) * kv_bytes
    full = model.num_full_layers
    sliding_len = np.minimum(seq_len, model.sliding_window or 0)
    tokens_layers = full * seq_len + model.num_sliding_layers * sliding_len
    state = family_of(model).state_bytes
    extra = state(model, tp, seq_len) if state is not None else 0.0
    return (per_token_layer * tokens_layers + extra) / pp


CHUNK_MEMORY_FRAC = 0.25
"""Most of a chip's usable memory one prefill chunk's activations may take: a chip with little
memory (SRAM-only designs) prefills in smaller chunks instead of not fitting."""


def activation_bytes(model: ModelSpec, tp, batch, input_len, a_bytes, usable: float | None = None):
    """Working activations: one prefill chunk through a layer, plus decode logits. With `usable`
    (bytes) the chunk shrinks below `PREFILL_CHUNK_TOKENS` to keep its activations within
    `CHUNK_MEMORY_FRAC` of it (never below 64 tokens); on GPU-sized memories it never binds."""
    width = max(model.intermediate_size, model.experts_per_token * model.moe_intermediate_size)
    per_token = (6 * model.hidden_size + 3 * width / tp) * a_bytes
    cap = PREFILL_CHUNK_TOKENS if usable is None else \
        np.clip(np.floor(CHUNK_MEMORY_FRAC * usable / per_token), 64, PREFILL_CHUNK_TOKENS)
    chunk = np.minimum(input_len, cap)
    prefill = chunk * per_token
    logits = batch * model.vocab_size / tp * 4.0
    return prefill + logits


def usable_bytes(hbm_gb: float) -> float:
    """HBM left for weights, KV cache and activations after the runtime reserve, of the memory
    software sees (`device_bytes`): an "80 GB" H100 85.0e9 x 0.92 - 1e9 = 77.2e9 bytes (vLLM's 0.9
    utilisation of it: 76.5e9)."""
    return float(device_bytes(hbm_gb)) * (1 - RESERVE_FRAC) - min(RESERVE_FIXED_GB, RESERVE_FIXED_MAX_FRAC * hbm_gb) * 1e9
