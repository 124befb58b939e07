"""Vision encoder of a VLM (Qwen2-VL / Qwen2.5-VL / Qwen3-VL): ViT over patches, window attention, merger.

An image of H x W pixels is resized by Qwen's smart_resize (sides rounded to multiples of patch x
merge = 28 px for 14 px patches, 32 px for Qwen3-VL's 16 px patches; area kept between the
processor's min_pixels and max_pixels) and becomes a grid of (H/patch) x (W/patch) patches; a video
clip of F frames adds F/2 temporal patches. Qwen3-VL attends over the whole item in all 27 layers
and merges three intermediate layers' features too (DeepStack: one more merger each). The ViT runs over
every patch of an item (Qwen2.5-VL: 32 layers of width 1280; 28 layers attend inside 112-px
windows of 8x8 = 64 patches, 4 attend over the whole item), then the merger concatenates 2x2
neighbours and projects them to the LLM width, so the LLM sees patches / 4 tokens per item.
The encoder runs in the prefill step of the prompts it belongs to (its time is in TTFT),
tensor-parallel over tp like the LLM, in bf16 (encoders stay bf16 in quantized deployments).
"""

from __future__ import annotations

import numpy as np

from tokenfab.graph.ops import Op, StepShape
from tokenfab.graph.transformer import HEAD_BYTES
from tokenfab.specs import ModelSpec


def has_vision_work(s: StepShape) -> bool:
    return bool(np.any(np.asarray(s.vision_items, float) > 0))


def encoder_ops(model: ModelSpec, s: StepShape) -> list[Op]:
    """Vision-encoder ops for the items encoded in this step (none in decode or text-only steps)."""
    v = model.vision
    if v is None or not has_vision_work(s):
        return []
    items = np.asarray(s.vision_items, float)
    P = np.asarray(s.vision_patches, float)
    Np = items * P
    h, I, a, w = v.hidden_size, v.intermediate_size, s.a_bytes, HEAD_BYTES
    tp = s.tp
    n_full = v.num_full_attention_layers if v.window_size else v.depth
    n_win = v.depth - n_full
    up = (2 if v.gated_mlp else 1) * I / tp
    merged = Np / v.spatial_merge_size ** 2
    mw = h * v.spatial_merge_size ** 2
    mergers = 1 + v.deepstack_layers  # Qwen3-VL: the final merger and one per DeepStack layer
    ops = [
        Op("vit_patch_embed", "gemm", 1, m=Np, n=h, k=v.in_channels * v.temporal_patch_size * v.patch_size ** 2,
           w_bytes=w, a_bytes=a),
        Op("vit_qkv", "gemm", v.depth, m=Np, n=3 * h / tp, k=h, w_bytes=w, a_bytes=a),
        Op("vit_proj", "gemm", v.depth, m=Np, n=h, k=h / tp, w_bytes=w, a_bytes=a),
        Op("vit_mlp_up", "gemm", v.depth, m=Np, n=up, k=h, w_bytes=w, a_bytes=a),
        Op("vit_mlp_down", "gemm", v.depth, m=Np, n=h, k=I / tp, w_bytes=w, a_bytes=a),
        Op("vit_norms_act", "stream", v.depth, bytes_=Np * (8 * h + 3 * I / tp) * a, kernels=4.0),
        Op("vit_allreduce", "allreduce", 2 * v.depth, bytes_=Np * h * a, group=tp),
        Op("vit_merger_fc1", "gemm", mergers, m=merged, n=mw / tp, k=mw, w_bytes=w, a_bytes=a),
        Op("vit_merger_fc2", "gemm", mergers, m=merged, n=v.out_hidden_size, k=mw / tp, w_bytes=w, a_bytes=a),
        Op("vit_merger_allreduce", "allreduce", mergers, bytes_=merged * v.out_hidden_size * a, group=tp),
    ]
    # Attention: 2 (QK^T) + 2 (PV) FLOPs per key per head-dim element; heads split over tp.
    if n_full:
        ops.append(Op("vit_attention_full", "attention", n_full, flops_=4.0 * Np * P * h / tp,
                      bytes_=4.0 * Np * h / tp * a))
    if n_win:
        keys = np.minimum(P, v.window_patches)
        ops.append(Op("vit_attention_window", "attention", n_win, flops_=4.0 * Np * keys * h / tp,
                      bytes_=4.0 * Np * h / tp * a))
    return ops
