"""Diffusion denoisers: one denoising forward, the text encoders and the VAE decoder.

Block kinds (`DiffusionSpec.block`): `cross` (Wan, LTX-Video, SANA: self-attention over the latent
tokens, cross-attention to the text), `mmdit` (SD3.5, FLUX.1, HunyuanVideo, Mochi, Open-Sora 2.0:
text and latent tokens attend jointly, each stream with its own weights, then FLUX-style
single-stream blocks over the joined sequence), `joint` (CogVideoX: one joint sequence, shared
weights) and `unet` (SDXL: `unet_forward_ops`). The Wan description below is the `cross` case.

A video of W x H pixels and F frames is encoded by the VAE to a latent of
(1 + (F-1)/4) x H/8 x W/8 x 16 and patched 1x2x2 into N tokens (1280x720x81: 21 x 45 x 80 =
75,600). Each of the `steps` sampling steps runs the DiT once per guidance branch
(classifier-free guidance: conditional + unconditional, two forwards), each forward:
per block, full bidirectional self-attention over all N tokens (4·N²·d FLOPs), cross-attention
to the 512 text tokens, a GELU FFN, adaLN modulation. The umT5-XXL text encoder runs once per
prompt (and once for the negative prompt); the VAE decoder once at the end.

Sequence parallelism (xDiT USP, as Wan's multi-GPU scripts use): `sp = ulysses x ring` chips
share one video; each holds N/sp tokens for the linear layers. Ulysses all-to-alls swap the
sequence split for a head split around self-attention (q, k, v in; output back), so heads must
divide by `ulysses`; ring attention passes K/V blocks around `ring` chips (timed as an
all-gather of K and V). With FSDP (`--dit_fsdp`) each chip stores 1/sp of the weights and
all-gathers every block's weights per forward. The VAE decodes on one chip (Wan's rank 0).

Step-Video-T2V is a `cross` DiT too; its VAE works in chunks of 17 frames, 3 latent frames each
(`DiffusionSpec.frame_chunk`): 992x544x204 -> 36 x 34 x 62 = 75,888 tokens per sample.

Softmax attention below head dim 128 (SDXL's UNet, CogVideoX, SD3.5 and LTX-Video at 64) also pays the
exponentials the chips' head-dim-128 attention fractions leave out, serialized with the MMAs as
FlashAttention-3's head-dim sweep shows (`small_head_exps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenfab.graph.ops import Op
from tokenfab.graph.transformer import BF16_GEMM, SOFTMAX_FLOPS_PER_SCORE, SOFTMAX_SFU_PER_SCORE, small_head_exps
from tokenfab.graph.registry import register_family
from tokenfab.specs import ModelSpec

register_family("wan", "wan", "t2v", "i2v", when=lambda m: m.kind == "diffusion", kind="diffusion")(None)


@dataclass(frozen=True)
class GenShape:
    """One DiT forward on one chip, vectorized over mapping points."""

    tokens: float
    """Latent tokens of the whole video (N)."""
    ulysses: np.ndarray
    ring: np.ndarray
    w_bytes: np.ndarray
    a_bytes: float = 2.0
    fsdp: np.ndarray | float = 0.0
    """1 where the DiT weights are sharded over the sp chips (gathered per forward)."""
    batch: float = 1.0
    """Latents per forward (samples of a batch, x2 when both guidance branches run as one batch)."""
    cfg_parallel: np.ndarray | float = 1.0
    """2 where the two guidance branches run on two groups of chips (their noise predictions are
    gathered once per step), 1 otherwise."""
    quant_level: float = 3.0
    """UNet only: which layers an 8-bit UNet quantizes (`UNET_QUANT_LEVELS`); unused at 16 bits."""
    eager: bool = False
    """Every elementwise op is its own kernel with its own HBM round trip (eager PyTorch: the UNet's
    `UNET_EAGER_*`, the DiT blocks' `EAGER_*_PASSES`), instead of the fused norms and epilogues of
    TensorRT / torch.compile."""
    fused_rope: bool = False
    """The eager pipeline rotates q and k with one fused kernel (Liger's RoPE in Open-Sora 2.0) instead
    of `apply_rotary_emb`'s fp32 chain (`FUSED_ROPE_PASSES`)."""

    @property
    def sp(self):
        return self.ulysses * self.ring


def dit_block_params(model: ModelSpec) -> int:
    """Weights of one main DiT block (self- and cross-attention or both streams, FFN, modulation)."""
    return model.diffusion.block_params(model.hidden_size, model.intermediate_size)[0]


def dit_forward_ops(model: ModelSpec, g: GenShape) -> list[Op]:
    """Per-chip operators of one denoiser forward over the whole latent video or image batch."""
    block = model.diffusion.block
    if block == "unet":
        return unet_forward_ops(model, g)
    if block in ("mmdit", "joint"):
        return joint_forward_ops(model, g)
    return cross_forward_ops(model, g)


def cross_forward_ops(model: ModelSpec, g: GenShape) -> list[Op]:
    """Wan-style blocks: self-attention over the latent tokens, cross-attention to the text."""
    dz = model.diffusion
    L, d, F = model.num_layers, model.hidden_size, model.intermediate_size
    N = g.tokens * g.batch
    n = N / g.sp
    w, a = g.w_bytes, g.a_bytes
    text = dz.text_len * g.batch
    patch = dz.latent_channels * int(np.prod(dz.patch))
    ops = [
        Op("dit_patch_embed", "gemm", 1, m=n, n=d, k=patch, w_bytes=w, a_bytes=a),
        Op("dit_time_embed", "gemm", 1, m=g.batch, n=6 * d, k=d, w_bytes=w, a_bytes=a),
        Op("dit_text_embed", "gemm", 2, m=text, n=d, k=max(dz.text_dim, d), w_bytes=w, a_bytes=a),
        Op("dit_self_qkv", "gemm", L, m=n, n=3 * d, k=d, w_bytes=w, a_bytes=a),
        Op("dit_ulysses_a2a_in", "alltoall", L, bytes_=3 * n * d * a, group=g.ulysses),
        Op("dit_ring_kv", "allgather", L, bytes_=2 * (N / g.ulysses) * d * a / 1.0 * (g.ring > 1), group=g.ring),
        _self_attention(model, g, N, g.tokens, L),
        _attention_exps(model, g, N, g.tokens, L),
        Op("dit_ulysses_a2a_out", "alltoall", L, bytes_=n * d * a, group=g.ulysses),
        Op("dit_self_o", "gemm", L, m=n, n=d, k=d, w_bytes=w, a_bytes=a),
        Op("dit_ffn_up", "gemm", L, m=n, n=(2 if dz.gated_ffn else 1) * F, k=d, w_bytes=w, a_bytes=a),
        Op("dit_ffn_act", "stream", L, bytes_=(3 if dz.gated_ffn else 2) * n * F * a),
        Op("dit_ffn_down", "gemm", L, m=n, n=d, k=F, w_bytes=w, a_bytes=a),
        Op("dit_norms_modulation", "stream", L, bytes_=16 * n * d * a, kernels=6.0),
        Op("dit_fsdp_allgather", "allgather", L, bytes_=dit_block_params(model) * w * g.fsdp, group=g.sp),
        Op("dit_cfg_gather", "allgather", 1, bytes_=N * patch * a * (g.cfg_parallel > 1), group=g.cfg_parallel),
        Op("dit_head", "gemm", 1, m=n, n=patch, k=d, w_bytes=w, a_bytes=a),
        Op("dit_gather_output", "allgather", 1, bytes_=N * patch * a, group=g.sp),
    ]
    if g.eager:
        ops.append(Op("dit_eager_elementwise", "stream", L, bytes_=eager_block_passes(model, g.fused_rope)[0] * (n + text / g.sp) * d * a,
                      kernels=eager_block_kernels(model)[0]))
    if dz.cross_attention:
        ops += [
            Op("dit_cross_q", "gemm", L, m=n, n=d, k=d, w_bytes=w, a_bytes=a),
            Op("dit_cross_kv", "gemm", L, m=text, n=2 * d, k=d, w_bytes=w, a_bytes=a),
            Op("dit_cross_attention", "attention", L, flops_=4.0 * n * dz.text_len * d,
               bytes_=(2 * n + 2 * text) * d * a),
            Op("dit_cross_o", "gemm", L, m=n, n=d, k=d, w_bytes=w, a_bytes=a),
        ]
    if dz.linear_attention:  # Mix-FFN: 3x3 depthwise convolution over the (gated) hidden width
        ops.append(Op("dit_ffn_depthwise_conv", "stream", L, flops_=2.0 * 9 * n * 2 * F, bytes_=4 * n * F * a))
    return ops


def _self_attention(model: ModelSpec, g: GenShape, N, per_sample, count, name: str = "dit_self_attention") -> Op:
    """Self-attention of the chip's share: softmax attention (4 x tokens x keys x width, keys of
    one sample) split by Ulysses over heads and by ring over queries; or SANA's linear attention
    (a head_dim x head_dim key-value state per head: 4 x tokens x width x head_dim)."""
    d, a = model.hidden_size, g.a_bytes
    if model.diffusion.linear_attention:
        return Op(name, "attention", count, flops_=4.0 * (N / g.sp) * d * model.head_dim,
                  bytes_=4.0 * (N / g.sp) * d * a)
    return Op(name, "attention", count, flops_=4.0 * (N / g.ring) * per_sample * d / g.ulysses,
              bytes_=(2 * N / g.ring + 2 * N) * d / g.ulysses * a)


def _attention_exps(model: ModelSpec, g: GenShape, N, per_sample, count, name: str = "dit_self_attention") -> Op:
    """The softmax exponentials of `_self_attention` that a head-dim-128 fraction leaves out at the
    model's head dim (`small_head_exps`: CogVideoX, SD3.5 and LTX-Video attend at head dim 64), on the
    chip's share of the scores (queries / ring x keys x heads / ulysses); none for linear attention."""
    scores = (N / g.ring) * per_sample * model.num_heads / g.ulysses
    exps = 0.0 if model.diffusion.linear_attention else small_head_exps(scores, model.head_dim)
    return Op(f"{name}_exps", "stream", count, bytes_=0.0, kernels=0.0, sfu_ops=exps)


def joint_forward_ops(model: ModelSpec, g: GenShape) -> list[Op]:
    """MMDiT (`mmdit`: per-stream weights, then single-stream blocks) and CogVideoX (`joint`:
    shared weights) forwards: the latent tokens and the `text_len` text tokens of each sample
    form one sequence that every block attends over; Ulysses/ring split the whole sequence."""
    dz = model.diffusion
    L, Ls, d, F = model.num_layers, dz.num_single_layers, model.hidden_size, model.intermediate_size
    w, a, B = g.w_bytes, g.a_bytes, g.batch
    S1 = g.tokens + dz.text_len  # one sample's joint sequence
    N, T = g.tokens * B, dz.text_len * B
    n, t = N / g.sp, T / g.sp
    s = n + t
    up = (2 if dz.gated_ffn else 1) * F
    patch = dz.latent_channels * int(np.prod(dz.patch))
    main = n if dz.block == "mmdit" else s  # tokens through the latent stream's linear layers
    ops = [
        Op("dit_patch_embed", "gemm", 1, m=n, n=d, k=patch, w_bytes=w, a_bytes=a),
        Op("dit_text_embed", "gemm", 1, m=t, n=dz.text_hidden_size or d, k=dz.text_dim, w_bytes=w, a_bytes=a),
        Op("dit_time_embed", "gemm", 2, m=B, n=d, k=d, w_bytes=w, a_bytes=a),
        Op("dit_modulation", "gemm", L, m=B, n=(12 if dz.block == "mmdit" else 6) * d, k=d, w_bytes=w, a_bytes=a),
        Op("dit_qkv", "gemm", L, m=main, n=3 * d, k=d, w_bytes=w, a_bytes=a),
        Op("dit_ulysses_a2a_in", "alltoall", L + Ls, bytes_=3 * s * d * a, group=g.ulysses),
        Op("dit_ring_kv", "allgather", L + Ls, bytes_=2 * ((N + T) / g.ulysses) * d * a * (g.ring > 1), group=g.ring),
        _self_attention(model, g, N + T, S1, L),
        _attention_exps(model, g, N + T, S1, L),
        Op("dit_ulysses_a2a_out", "alltoall", L + Ls, bytes_=s * d * a, group=g.ulysses),
        Op("dit_o", "gemm", L, m=main, n=d, k=d, w_bytes=w, a_bytes=a),
        Op("dit_ffn_up", "gemm", L, m=main, n=up, k=d, w_bytes=w, a_bytes=a),
        Op("dit_ffn_act", "stream", L, bytes_=(3 if dz.gated_ffn else 2) * main * F * a),
        Op("dit_ffn_down", "gemm", L, m=main, n=d, k=F, w_bytes=w, a_bytes=a),
        Op("dit_norms_modulation", "stream", L, bytes_=16 * s * d * a, kernels=6.0),
        Op("dit_fsdp_allgather", "allgather", L, bytes_=dit_block_params(model) * w * g.fsdp, group=g.sp),
        Op("dit_head", "gemm", 1, m=n, n=patch, k=d, w_bytes=w, a_bytes=a),
        Op("dit_gather_output", "allgather", 1, bytes_=N * patch * a, group=g.sp),
        Op("dit_cfg_gather", "allgather", 1, bytes_=N * patch * a * (g.cfg_parallel > 1), group=g.cfg_parallel),
    ]
    if dz.block == "mmdit":
        dt = dz.text_hidden_size or d
        ft = F * dt // d
        ops += [
            Op("dit_text_qkv", "gemm", L, m=t, n=3 * d, k=dt, w_bytes=w, a_bytes=a),
            Op("dit_text_o", "gemm", L, m=t, n=dt, k=d, w_bytes=w, a_bytes=a),
            Op("dit_text_ffn_up", "gemm", L, m=t, n=(2 if dz.gated_ffn else 1) * ft, k=dt, w_bytes=w, a_bytes=a),
            Op("dit_text_ffn_down", "gemm", L, m=t, n=dt, k=ft, w_bytes=w, a_bytes=a),
        ]
    if g.eager:
        main_p, single_p = eager_block_passes(model, g.fused_rope)
        main_k, single_k = eager_block_kernels(model)
        ops.append(Op("dit_eager_elementwise", "stream", L, bytes_=main_p * s * d * a, kernels=main_k))
        if Ls:
            ops.append(Op("dit_single_eager_elementwise", "stream", Ls, bytes_=single_p * s * d * a, kernels=single_k))
    if Ls:
        _, single = dz.block_params(d, F)
        ops += [
            Op("dit_single_modulation", "gemm", Ls, m=B, n=3 * d, k=d, w_bytes=w, a_bytes=a),
            Op("dit_single_linear1", "gemm", Ls, m=s, n=3 * d + F, k=d, w_bytes=w, a_bytes=a),
            _self_attention(model, g, N + T, S1, Ls, "dit_single_attention"),
            _attention_exps(model, g, N + T, S1, Ls, "dit_single_attention"),
            Op("dit_single_act", "stream", Ls, bytes_=2 * s * F * a),
            Op("dit_single_linear2", "gemm", Ls, m=s, n=d, k=d + F, w_bytes=w, a_bytes=a),
            Op("dit_single_norms", "stream", Ls, bytes_=8 * s * d * a, kernels=3.0),
            Op("dit_single_fsdp_allgather", "allgather", Ls, bytes_=single * w * g.fsdp, group=g.sp),
        ]
    return ops


UNET_QUANT_LEVELS = {"int8": 2.5, "fp8": 3.0}
"""Layers NVIDIA's 8-bit SDXL UNets quantize, as ModelOpt's `quantize_lvl` levels ("0: None, 1: CNN,
2: CNN+FFN, 2.5: CNN+FFN+QKV, 3: CNN+FC, 4: CNN+FC+fMHA", the `--quant-level` help of ModelOpt's
diffusers example). INT8 (MLPerf v4.0, closed/NVIDIA/code/stable-diffusion-xl/tensorrt/
download_model.sh: `quantize_sdxl ... --quant-level 2.5`): convolutions, the GEGLU FFN and the
attention q/k/v in int8; the attention output projections and the stacks' proj_in/proj_out stay
FP16. FP8 (MLPerf v4.1, whose README says "UNet is quantized to FP8-FP16"; ModelOpt's README runs
SDXL FP8 at `--quant-level {3.0|4.0}`): level 3, every convolution and linear layer; attention stays
FP16 below level 4. At every level ModelOpt's `filter_func` keeps conv_in, conv_out, conv_shortcut,
time_emb_proj and add_embedding in FP16."""



UNET_FP16_CONVS = ("conv_in", "conv_out", "shortcut")
"""Convolutions `filter_func` leaves unquantized (`unet_conv_in`, `unet_conv_out`, `*_shortcut`)."""

UNET_SHORT_K_STORES = True
"""A UNet GEMM's output stores are charged on top of its matrix time (`unet_gemm_output_stores`): a
GEMM tile writes its C tile after its K loop, and at the UNet's short K (c = 640 or 1280 for the
transformer projections, 9 c for 3x3 convolutions) that store is not hidden behind compute. DeepGEMM's
FP8 table on H800 (deepseek-ai/DeepGEMM README, initial release; public.csv M0390-M0392) shows it:
M x N x K = 4096 x 32768 x 512 runs at 590 TFLOPS against 1304-1358 at K = 7168-16384, which is
compute at the long-K rate (99 us) plus the 268 MB bf16 C store at HBM speed (94 us): 711 TFLOPS
predicted, where compute alone gives 1385. At the LLM and DiT shapes the calibrated GEMM fractions
were fit on (K >= 3072) the store is a few percent and sits inside those fractions."""

UNET_EAGER_RESNET_IN_PASSES = 5.0
"""Eager `ResnetBlock2D` passes over its input feature map (element read or written = 1): GroupNorm
(PyTorch's kernel reads x for the group statistics, then reads x and writes y: 3), SiLU (2)."""
UNET_EAGER_RESNET_OUT_PASSES = 12.0
"""...and over its output width: `+ temb` (2), GroupNorm (3), SiLU (2), the residual add (read both,
write: 3), `/ output_scale_factor` (2) (op order as in RESNET_LAUNCHES)."""
UNET_FUSED_RESNET_PASSES = 8.0
"""Passes the fused (TensorRT / torch.compile) ResNet spends outside its convolutions, over the
output width: GroupNorm + SiLU as one kernel twice (stats read, then read + write: 3 each) and the
residual read in conv2's epilogue (1), about 8 with the input GroupNorm's."""
UNET_EAGER_BLOCK_PASSES = 43.0
"""Eager `BasicTransformerBlock` passes, in units of the block's width per token: three LayerNorms
(read + write: 6), two contiguous copies after SDPA (4), two `/ rescale_output_factor` (4), three
residual adds (9), GEGLU's GELU of the 4c gate (8) and gate multiply (read 4c + 4c, write 4c: 12)."""
UNET_FUSED_BLOCK_PASSES = 18.0
"""The same block fused: LayerNorms (6) and the GEGLU activation (12); copies, rescales and residual
adds ride in GEMM epilogues."""
UNET_EAGER_STACK_PASSES = 10.0
"""Eager `Transformer2DModel` around its blocks: GroupNorm (3), the permute-reshape copies in and
out (2 + 2), the residual add (3)."""


# ---- eager DiT blocks: HBM passes of their unfused elementwise ops -------------------------------
# Counted op by op from the same diffusers code as the *_LAUNCHES constants below, in passes of the
# block's width per token (a bf16 element read or written = 1, an fp32 one = 2). Estimates: what a
# fused engine keeps (the `dit_norms_modulation` 16 passes and the FFN activation) is subtracted.
EAGER_RMSNORM_PASSES = 16.0
"""diffusers `RMSNorm`: cast to fp32 (read 1, write 2), pow (2 + 2), mean (2), x * rsqrt (1 + 2),
cast to the weight dtype (2 + 1), x weight (1 + 1) = 17; 16 taking the weight multiply in place."""
EAGER_ROTARY_PASSES = 26.0
"""`apply_rotary_emb` (use_real, unbind -1) on one tensor: neg of the odd half (1), stack (2), two fp32
casts (3 + 3), two multiplies by cos / sin (4 + 4), add (6), cast back (3)."""
EAGER_ADALN_PASSES = 6.0
"""`AdaLayerNormZero`: LayerNorm (2), x * (1 + scale) (2), + shift (2)."""
EAGER_MMDIT_BLOCK_PASSES = EAGER_ADALN_PASSES + 2 * EAGER_RMSNORM_PASSES + 6 + 2 * EAGER_ROTARY_PASSES + 2 + 24
"""`FluxTransformerBlock` per token of either stream (122): norm1 (6); q and k RMS norms (32); the
text+image cat of q, k, v (6); rotary on q and k (52); the contiguous copy after SDPA (2); after
attention: gate mul (2), residual add (3), LayerNorm (2), modulate (4), GELU of the 4d hidden (8),
gate mul (2), residual add (3) = 24."""
EAGER_SINGLE_BLOCK_PASSES = EAGER_ADALN_PASSES + 8 + 2 * EAGER_RMSNORM_PASSES + 2 * EAGER_ROTARY_PASSES + 2 + 10 + 5
"""`FluxSingleTransformerBlock` (115): AdaLayerNormZeroSingle (6), GELU of proj_mlp's 4d (8), q/k RMS
norms (32), rotary (52), the copy after SDPA (2), cat of the d attention and 4d MLP outputs (10),
gate mul and residual add (5)."""
EAGER_JOINT_BLOCK_PASSES = 2 * 6 + 2 + 4 + 2 * EAGER_ROTARY_PASSES + 4 + 2 + 10 + 2 + 8
"""`CogVideoXBlock` (96): two `CogVideoXLayerNormZero` (LayerNorm + modulate: 6 each); cat of text and
video (2); LayerNorm of q and k (4); rotary on q and k (52); cat back (4); the copy after SDPA (2);
gate mul + residual add after attention and after the FFN (10); the cat before the FFN (2); GELU (8)."""
EAGER_LINEAR_CROSS_BLOCK_PASSES = 25 + 26 + 2 + 32.5
"""`SanaTransformerBlock` (85.5, width d, FFN 2.5 d gated): two LayerNorms with modulation (12), two
gate-mul + residual adds (10) and the cross-attention residual (3) = 25; `SanaLinearAttnProcessor2_0`:
ReLU of q and k (4), fp32 casts of q, k, v (9), pad of v (4), the normaliser division (4), cast back
(3), fp16 clip (2) = 26; the cross-attention copy (2); `GLUMBConv`: SiLU of the 5d inverted output
(10), the depthwise conv's read and write (10), SiLU of the gate (5), gate multiply (7.5) = 32.5."""
EAGER_SOFTMAX_CROSS_BLOCK_PASSES = 25 + 2 * EAGER_RMSNORM_PASSES + 2 * EAGER_ROTARY_PASSES + 2 + 2 + 8
"""A Wan / LTX-style block (121): norms, modulation and residuals as SANA's (25), q/k RMS norms (32),
rotary (52), copies after both SDPAs (4), GELU (8)."""
FUSED_ROPE_PASSES = 2.0
"""A fused rotary kernel reads and writes its tensor once (Liger-Kernel's `liger_rotary_pos_emb`)."""
FUSED_BLOCK_PASSES = 24.0
"""What the fused block model already charges per token (16 norm/modulation passes and the 4d GELU's 8)."""


def eager_block_kernels(model: ModelSpec) -> tuple[float, float]:
    """(main, single) blocks' eager elementwise kernels beyond the fused model's, from the *_LAUNCHES
    counts: a block's launches less its matrix kernels (GEMMs, SDPA) and the kernels the fused ops
    already charge (norm/modulation 6 or 3, activation 1, SANA's depthwise conv 1). Each pays the
    chip's per-kernel cost (`Efficiency.kernel_launch_us`) on the GPU like every other stream op."""
    dz = model.diffusion
    single = SINGLE_BLOCK_LAUNCHES - 6 - 4  # proj_mlp, q/k/v, SDPA, proj_out; norms 3 + act 1
    if dz.block == "mmdit":  # 6 projections, SDPA, to_out, to_add_out, 2 x 2 FFN linears; norms 6 + act 1
        return MMDIT_BLOCK_LAUNCHES - 13 - 7, single
    if dz.block == "joint":  # 2 norm linears, q/k/v, SDPA, to_out, 2 FFN linears; norms 6 + act 1
        return JOINT_BLOCK_LAUNCHES - 9 - 7, single
    attn = LINEAR_ATTENTION_LAUNCHES if dz.linear_attention else SOFTMAX_SELF_ATTENTION_LAUNCHES
    ffn = GLUMBCONV_LAUNCHES if dz.linear_attention else MLP_LAUNCHES
    cross = SDPA_ATTENTION_LAUNCHES if dz.cross_attention else 0
    fused = 8 if dz.linear_attention else 7  # norms 6 + act 1 (+ SANA's depthwise conv)
    return CROSS_BLOCK_BASE_LAUNCHES + attn + cross + ffn - 12 - fused, single


def eager_block_passes(model: ModelSpec, fused_rope: bool = False) -> tuple[float, float]:
    """(main, single) blocks' extra eager passes per token in units of the width, beyond FUSED_BLOCK_PASSES
    (`fused_rope`: q and k rotated by one fused kernel each)."""
    dz = model.diffusion
    rope_saving = 2 * (EAGER_ROTARY_PASSES - FUSED_ROPE_PASSES) if fused_rope and not dz.linear_attention else 0.0
    if dz.block == "mmdit":
        main = EAGER_MMDIT_BLOCK_PASSES
    elif dz.block == "joint":
        main = EAGER_JOINT_BLOCK_PASSES
    elif dz.linear_attention:
        main = EAGER_LINEAR_CROSS_BLOCK_PASSES
    else:
        main = EAGER_SOFTMAX_CROSS_BLOCK_PASSES
    return main - FUSED_BLOCK_PASSES - rope_saving, EAGER_SINGLE_BLOCK_PASSES - FUSED_BLOCK_PASSES - rope_saving


def unet_forward_ops(model: ModelSpec, g: GenShape) -> list[Op]:
    """SDXL-style UNet forward over `batch` latents of `tokens` pixels each, on one chip.

    Convolutions are implicit GEMMs (M = output pixels, N = out channels, K = 9 x in channels)
    at the weight precision; a level's transformer stack has proj_in/out around `depth` blocks of
    self-attention (its pixels attend to each other), cross-attention to `text_len` tokens and a
    GEGLU FFN (c -> 2 x 4c -> c). Down levels run `layers_per_block` ResNets, up levels one more
    over the concatenated skip; the middle block two ResNets around its stack. An 8-bit UNet keeps
    the layers of `UNET_QUANT_LEVELS` in FP16 (timed on the 16-bit path); an eager forward
    (`g.eager`) pays every elementwise op's HBM round trip (`UNET_EAGER_*`). Attention carries one
    exponential per score for the special-function units (head dim 64: as many exps per matmul
    FLOP as FlashAttention-3's section 3.1 warns of), and the half exponential per score that a
    fraction calibrated at head dim 128 leaves out is charged serially (`small_head_exps`)."""
    dz = model.diffusion
    u, B, w, a = dz.unet, g.batch, g.w_bytes, g.a_bytes
    T, ctx = dz.text_len, u.cross_attention_dim
    level = g.quant_level
    ops: list[Op] = []
    fp16 = {"w_bytes": 2.0, "a_bytes": a, "meta": BF16_GEMM}  # a layer the 8-bit recipe leaves in FP16
    low = {"w_bytes": w, "a_bytes": a}

    def conv(name, px, cin, cout, k=9):
        keep = any(t in name for t in UNET_FP16_CONVS)
        ops.append(Op(name, "gemm", 1, m=B * px, n=cout, k=k * cin, **(fp16 if keep else low)))

    def resnet(tag, px, cin, cout):
        conv(f"{tag}_conv1", px, cin, cout)
        conv(f"{tag}_conv2", px, cout, cout)
        if cin != cout:
            conv(f"{tag}_shortcut", px, cin, cout, k=1)
        passes = (UNET_EAGER_RESNET_IN_PASSES * cin + UNET_EAGER_RESNET_OUT_PASSES * cout) if g.eager \
            else UNET_FUSED_RESNET_PASSES * cout
        ops.append(Op(f"{tag}_norm_act", "stream", 1, bytes_=passes * B * px * a,
                      kernels=(9.0 if g.eager else 4.0)))

    def stack(tag, px, c, depth, heads):
        if not depth:
            return
        m = B * px
        out = low if level >= 3 else fp16  # to_out and proj_in/out: quantized from level 3
        scores = m * px * heads
        x_scores = m * T * heads
        block_passes = UNET_EAGER_BLOCK_PASSES if g.eager else UNET_FUSED_BLOCK_PASSES
        ops.extend([
            Op(f"{tag}_proj", "gemm", 2, m=m, n=c, k=c, **out),
            Op(f"{tag}_qkv", "gemm", depth, m=m, n=3 * c, k=c, **low),
            Op(f"{tag}_self_attention", "attention", depth, flops_=4.0 * m * px * c, bytes_=4.0 * m * c * a,
               vector_flops=SOFTMAX_FLOPS_PER_SCORE * scores, sfu_ops=SOFTMAX_SFU_PER_SCORE * scores),
            Op(f"{tag}_o", "gemm", 2 * depth, m=m, n=c, k=c, **out),
            Op(f"{tag}_cross_q", "gemm", depth, m=m, n=c, k=c, **low),
            Op(f"{tag}_cross_kv", "gemm", depth, m=B * T, n=2 * c, k=ctx, **low),
            Op(f"{tag}_cross_attention", "attention", depth, flops_=4.0 * m * T * c, bytes_=(2 * m + 2 * B * T) * c * a,
               vector_flops=SOFTMAX_FLOPS_PER_SCORE * x_scores, sfu_ops=SOFTMAX_SFU_PER_SCORE * x_scores),
            Op(f"{tag}_ff_up", "gemm", depth, m=m, n=8 * c, k=c, **low),
            Op(f"{tag}_ff_down", "gemm", depth, m=m, n=c, k=4 * c, **low),
            Op(f"{tag}_norms", "stream", depth, bytes_=block_passes * c * m * a, kernels=(12.0 if g.eager else 4.0)),
            # Head dim c / heads = 64 in every SDXL level: the exponentials the calibrated fraction
            # does not carry, serialized with the MMAs (`small_head_exps`).
            Op(f"{tag}_attention_exps", "stream", depth, bytes_=0.0, kernels=0.0,
               sfu_ops=small_head_exps(scores + x_scores, c / heads)),
        ])
        if g.eager:
            ops.append(Op(f"{tag}_stack_eager", "stream", 1, bytes_=UNET_EAGER_STACK_PASSES * c * m * a, kernels=5.0))

    ch, px0 = u.block_out_channels, g.tokens
    conv("unet_conv_in", px0, u.in_channels, ch[0])
    prev = ch[0]
    for i, c in enumerate(ch):
        px = px0 / 4 ** i
        for j in range(u.layers_per_block):
            resnet(f"unet_down{i}_res{j}", px, prev, c)
            stack(f"unet_down{i}_attn{j}", px, c, u.transformer_layers[i], u.heads[i])
            prev = c
        if i < len(ch) - 1:
            conv(f"unet_down{i}_downsample", px / 4, c, c)
    px = px0 / 4 ** (len(ch) - 1)
    resnet("unet_mid_res0", px, prev, prev)
    stack("unet_mid_attn", px, prev, u.mid_transformer_layers, u.heads[-1])
    resnet("unet_mid_res1", px, prev, prev)
    for i in reversed(range(len(ch))):
        c, px = ch[i], px0 / 4 ** i
        for j in range(u.layers_per_block + 1):
            resnet(f"unet_up{i}_res{j}", px, prev + c, c)
            stack(f"unet_up{i}_attn{j}", px, c, u.transformer_layers[i], u.heads[i])
            prev = c
        if i > 0:
            conv(f"unet_up{i}_upsample", px * 4, c, c)
    conv("unet_conv_out", px0, ch[0], u.in_channels)
    # The output tiles' stores, serialized after each tile's short mainloop (UNET_SHORT_K_STORES).
    stores = sum(op.count * np.asarray(op.m, float) * op.n * a for op in ops if op.kind == "gemm")
    ops.append(Op("unet_gemm_output_stores", "stream", 1, bytes_=stores, kernels=0.0))
    return ops


def text_encoder_ops(model: ModelSpec, prompts: float, a_bytes: float = 2.0) -> list[Op]:
    """Every text encoder of the pipeline over `prompts` prompts, each padded to the encoder's
    `max_tokens`, bf16, on one chip (Wan: umT5-XXL over 512 tokens; FLUX: CLIP-L 77 + T5-XXL 512)."""
    ops: list[Op] = []
    for te in model.diffusion.encoders():
        tag, L, S = (te.name or "text").replace("-", "_"), te.num_layers, te.max_tokens
        T = prompts * S
        inner, w = te.num_heads * te.head_dim, 2.0
        up = (2 if te.gated_ffn else 1) * te.d_ff
        ops += [
            Op(f"{tag}_embedding", "stream", 1, bytes_=T * te.d_model * 2 * a_bytes),
            Op(f"{tag}_qkv", "gemm", L, m=T, n=3 * inner, k=te.d_model, w_bytes=w, a_bytes=a_bytes),
            Op(f"{tag}_attention", "attention", L, flops_=4.0 * T * S * inner, bytes_=4 * T * inner * a_bytes),
            Op(f"{tag}_o", "gemm", L, m=T, n=te.d_model, k=inner, w_bytes=w, a_bytes=a_bytes),
            Op(f"{tag}_ffn_up", "gemm", L, m=T, n=up, k=te.d_model, w_bytes=w, a_bytes=a_bytes),
            Op(f"{tag}_ffn_down", "gemm", L, m=T, n=te.d_model, k=te.d_ff, w_bytes=w, a_bytes=a_bytes),
            Op(f"{tag}_norms", "stream", L, bytes_=T * (6 * te.d_model + 2 * te.d_ff) * a_bytes, kernels=4.0),
        ]
    return ops


def vae_tile_factor(model: ModelSpec, height_px: int, width_px: int) -> float:
    """Work multiplier of tiled decoding: overlapping tiles decode each output pixel about
    1/(1-overlap)^2 times (only when the frame is larger than one tile)."""
    vae = model.diffusion.vae
    if not vae.tile_px or max(height_px, width_px) <= vae.tile_px:
        return 1.0
    return 1.0 / (1.0 - vae.tile_overlap) ** 2


def vae_decode_ops(model: ModelSpec, height_px: int, width_px: int, frames: int, samples: float = 1.0,
                   tiled: bool = False, map_bytes: float | None = None) -> list[Op]:
    """VAE decoder: 3x3x3 (video) or 3x3 (image) convolutions over every output pixel-frame
    (FLOPs per output pixel from the decoder's stages and upsample convolutions) plus the middle
    block's attention, in the VAE's dtype; each conv's feature map is read and written by the conv,
    its GroupNorm and its SiLU. `tiled`: overlapping tiles (more work, a tile-sized workspace).
    `map_bytes`: bytes per feature-map element when the decoder runs in another dtype than its
    own (a 16-bit engine of an fp32 VAE: 2); None: the VAE's dtype."""
    vae, dz = model.diffusion.vae, model.diffusion
    factor = vae_tile_factor(model, height_px, width_px) if tiled else 1.0
    px = float(height_px) * width_px * frames * samples * factor
    flops = vae.decode_flops_per_output_px(vae.decode_temporal_stride or dz.vae_stride[0]) * px
    # Middle-block attention over each latent frame (in one tile when tiled).
    lt, lh, lw = dz.latent_grid(height_px, width_px, frames)
    lat_px = float(lh * lw) if not tiled or not vae.tile_px else min(float(lh * lw), (vae.tile_px / dz.vae_stride[1]) ** 2)
    flops += vae.mid_attention_flops(lat_px, lt * samples * (lh * lw / lat_px))
    chans = [vae.base_dim * m for m in reversed(vae.dim_mult)]
    convs = 2 * (vae.num_res_blocks + 1)
    # Each convolution reads and writes its feature map, and its GroupNorm and SiLU each read and
    # write it once more (separate kernels in the eager PyTorch decoders): 6 passes per conv.
    fmap_bytes = sum(convs * 6 * c * px / 4 ** (len(chans) - 1 - i) for i, c in enumerate(chans)) * (
        vae.dtype_bytes if map_bytes is None else map_bytes)
    return [Op("vae_decode", "fused", 1, flops_=flops, bytes_=fmap_bytes, kernels=float(3 * convs * len(chans) + 4))]


# ---- host kernel launches of an eager forward ---------------------------------------------------
# Counted op by op from the reference PyTorch code (diffusers, read at huggingface/diffusers
# src/diffusers/models/...): each tensor op that is not a view (linear, norm, activation, element-
# wise add/mul, cat, SDPA, a copy to make a transposed tensor contiguous) is one kernel launch; a
# dtype cast of an fp32 intermediate is one; views (reshape of contiguous, chunk, split, transpose
# before SDPA) are none. Estimates: the sub-counts below are those of the code read, the whole-
# model count ignores the few launches outside the blocks (timestep embedding, patch embedding,
# output head: ~20).

ADALN_LAUNCHES = 6
"""`normalization.AdaLayerNormZero` / `AdaLayerNormZeroSingle`: SiLU(emb), Linear, LayerNorm, then
`x * (1 + scale) + shift` (add, mul, add)."""
RMSNORM_LAUNCHES = 7
"""`normalization.RMSNorm` in eager mode: cast to fp32, pow, mean, + eps, rsqrt, mul, x weight
(cast back folded into the weight multiply)."""
ROTARY_LAUNCHES = 8
"""`embeddings.apply_rotary_emb` (use_real, unbind_dim -1) on one tensor: neg and stack for the
rotated half, two fp32 casts, two multiplies (cos, sin), add, cast back."""
SDPA_ATTENTION_LAUNCHES = 6
"""`AttnProcessor2_0` without norms or rotary: to_q, to_k, to_v, `F.scaled_dot_product_attention`,
the copy making `transpose(1, 2).reshape(...)` contiguous, to_out[0]."""
MMDIT_BLOCK_LAUNCHES = 2 * ADALN_LAUNCHES + (6 + 4 * RMSNORM_LAUNCHES + 3 + 2 * ROTARY_LAUNCHES + 1 + 1 + 2) + 2 * 11
"""`transformer_flux.FluxTransformerBlock` (91): norm1 and norm1_context (2 x 6); the joint
attention `FluxAttnProcessor2_0` (6 projections, 4 RMS q/k norms, 3 cats of text+image q/k/v, rotary
on q and k, SDPA, contiguous copy, to_out and to_add_out: 57); per stream after attention 11 (gate
mul, residual add, norm2 LayerNorm, modulate add/mul/add, FeedForward Linear/GELU/Linear, gate mul,
residual add)."""
SINGLE_BLOCK_LAUNCHES = ADALN_LAUNCHES + 2 + (3 + 2 * RMSNORM_LAUNCHES + 2 * ROTARY_LAUNCHES + 1 + 1) + 4
"""`transformer_flux.FluxSingleTransformerBlock` (47): AdaLayerNormZeroSingle (6), proj_mlp and
GELU (2), attention without the text projections (q/k/v, 2 RMS norms, 2 rotaries, SDPA, copy: 35),
cat, proj_out, gate mul, residual add (4)."""
CROSS_BLOCK_BASE_LAUNCHES = 14
"""`sana_transformer.SanaTransformerBlock` outside its attentions and FFN: scale_shift_table +
timestep add (1), norm1 and norm2 LayerNorm (2), two `x * (1 + scale) + shift` (6), two gate-mul +
residual adds (4), the cross-attention residual add (1)."""
LINEAR_ATTENTION_LAUNCHES = 16
"""`SanaLinearAttnProcessor2_0`: to_q/k/v (3), ReLU kernel on q and k (2), fp32 casts of q, k, v
(3), `F.pad(value, value=1)` (1), two matmuls (2), `x[:, :, :-1] / (x[:, :, -1:] + eps)` (2), cast
back (1), to_out (1), fp16 clip (1)."""
SOFTMAX_SELF_ATTENTION_LAUNCHES = SDPA_ATTENTION_LAUNCHES + 2 * RMSNORM_LAUNCHES + 2 * ROTARY_LAUNCHES
"""Self-attention of a rotary DiT with q/k RMS norms (Wan / LTX-Video style): 36."""
GLUMBCONV_LAUNCHES = 6
"""SANA's `GLUMBConv` FFN: conv_inverted (1x1), SiLU, depthwise conv, SiLU of the gate, gate mul,
conv_point."""
MLP_LAUNCHES = 3
"""`attention.FeedForward`: Linear, GELU, Linear."""
JOINT_BLOCK_LAUNCHES = 2 * 10 + (1 + 3 + 2 + 2 * ROTARY_LAUNCHES + 2 + 1 + 1 + 1) + 4 + 1 + MLP_LAUNCHES + 4
"""`cogvideox_transformer_3d.CogVideoXBlock` (59): two `CogVideoXLayerNormZero` (SiLU, Linear,
LayerNorm of each stream, modulate add/mul/add of each: 10 each); `CogVideoXAttnProcessor2_0` (cat
text+video, q/k/v, LayerNorm q/k, rotary on the video part of q and k, cat back q and k, SDPA,
contiguous copy, to_out: 27); gate-mul + residual-add of both streams after attention (4) and after
the FFN (4); the cat before the FFN (1); FeedForward (3)."""
RESNET_LAUNCHES = 11
"""`resnet.ResnetBlock2D`: GroupNorm, SiLU, conv1, SiLU(temb), time_emb_proj Linear, + temb,
GroupNorm, SiLU, conv2, residual add, / output_scale_factor (a 1x1 shortcut conv adds one)."""
BASIC_TRANSFORMER_LAUNCHES = 1 + (SDPA_ATTENTION_LAUNCHES + 1) + 1 + 1 + (SDPA_ATTENTION_LAUNCHES + 1) + 1 + 1 + 4 + 1
"""`attention.BasicTransformerBlock` (SDXL, 24): LayerNorm, self-attention (AttnProcessor2_0 plus its
/ rescale_output_factor: 7), residual add, LayerNorm, cross-attention (7), add, LayerNorm, GEGLU
FeedForward (Linear, GELU of the gate, mul, Linear: 4), add."""
TRANSFORMER_2D_LAUNCHES = 6
"""`transformer_2d.Transformer2DModel` around its blocks: GroupNorm, the permute-reshape copy,
proj_in, proj_out, the reshape-permute copy back, residual add."""


def _unet_launches(u) -> float:
    """UNet2DConditionModel (SDXL): ResNets, transformer stacks, skip cats, down/upsamplers."""
    n = len(u.block_out_channels)
    stacks = lambda depth: TRANSFORMER_2D_LAUNCHES + depth * BASIC_TRANSFORMER_LAUNCHES if depth else 0  # noqa: E731
    total = 1.0 + 3  # conv_in; conv_norm_out GroupNorm + SiLU + conv_out
    prev = u.block_out_channels[0]
    for i, c in enumerate(u.block_out_channels):
        for _ in range(u.layers_per_block):
            total += RESNET_LAUNCHES + (prev != c) + stacks(u.transformer_layers[i])
            prev = c
        total += i < n - 1  # downsample conv
    total += 2 * RESNET_LAUNCHES + stacks(u.mid_transformer_layers)
    for i in reversed(range(n)):
        c = u.block_out_channels[i]
        for _ in range(u.layers_per_block + 1):
            total += 1 + RESNET_LAUNCHES + 1 + stacks(u.transformer_layers[i])  # skip cat, 1x1 shortcut (cat widens)
        total += 2 * (i > 0)  # nearest interpolate + conv
    return total


def forward_launches(model: ModelSpec) -> float:
    """Kernel launches of one eager denoiser forward (see the *_LAUNCHES constants): what the host
    must issue whatever the batch, so an eager step takes at least launches x per-launch CPU time.
    Sequence-parallel collectives add a few more per block; they are not counted."""
    dz = model.diffusion
    if dz.block == "unet":
        return _unet_launches(dz.unet)
    if dz.block == "mmdit":
        return model.num_layers * MMDIT_BLOCK_LAUNCHES + dz.num_single_layers * SINGLE_BLOCK_LAUNCHES
    if dz.block == "joint":
        return model.num_layers * JOINT_BLOCK_LAUNCHES + dz.num_single_layers * SINGLE_BLOCK_LAUNCHES
    attn = LINEAR_ATTENTION_LAUNCHES if dz.linear_attention else SOFTMAX_SELF_ATTENTION_LAUNCHES
    cross = SDPA_ATTENTION_LAUNCHES if dz.cross_attention else 0
    ffn = GLUMBCONV_LAUNCHES if dz.linear_attention else MLP_LAUNCHES
    return model.num_layers * (CROSS_BLOCK_BASE_LAUNCHES + attn + cross + ffn)


T5_LAYER_LAUNCHES = 2 * RMSNORM_LAUNCHES + 11 + 2 + 5
"""transformers `T5Block` (gated-GELU T5 v1.1 / umT5, 32): two T5LayerNorms (RMS, 7 each); self-
attention q/k/v, scores matmul, + position bias, softmax in fp32 (cast, softmax, cast back),
matmul, contiguous copy, o (11); two residual adds; DenseGatedActDense wi_0, GELU, wi_1, mul, wo
(5). Gated decoder-LLM encoders (Gemma, LLaVA-Llama) are taken at the same count (estimate)."""
CLIP_LAYER_LAUNCHES = 15
"""transformers `CLIPEncoderLayer` (SDPA attention): LayerNorm, q/k/v, SDPA, contiguous copy,
out_proj, residual add, LayerNorm, fc1, quick_gelu (x * sigmoid(1.702 x): mul, sigmoid, mul), fc2,
residual add."""
VAE_RESNET_LAUNCHES = 8
"""A VAE decoder `ResnetBlock2D` without a time embedding: GroupNorm, SiLU, conv1, GroupNorm,
SiLU, conv2, residual add, / output_scale_factor."""


def text_encoder_launches(model: ModelSpec) -> float:
    """Kernel launches of one eager call of every text encoder of the pipeline."""
    return float(sum(te.num_layers * (T5_LAYER_LAUNCHES if te.gated_ffn else CLIP_LAYER_LAUNCHES)
                     for te in model.diffusion.encoders()))


def vae_decode_launches(model: ModelSpec, height_px: int, width_px: int, frames: int) -> float:
    """Kernel launches of one eager VAE decode: per stage `num_res_blocks + 1` ResNets and an
    upsampler (interpolate + conv), the middle block's two ResNets and attention (GroupNorm, q/k/v,
    SDPA, out, add: 7), conv_in, norm_out, SiLU, conv_out. Causal video decoders run the decoder once
    per latent frame (Wan's `for i in range(iter_)` loop; an estimate for the others)."""
    vae, dz = model.diffusion.vae, model.diffusion
    stages = len(vae.dim_mult)
    once = stages * (vae.num_res_blocks + 1) * VAE_RESNET_LAUNCHES + 2 * (stages - 1) + 2 * VAE_RESNET_LAUNCHES + 7 + 4
    latent_frames = dz.latent_grid(height_px, width_px, frames)[0] if dz.is_video else 1
    return float(once * latent_frames)
