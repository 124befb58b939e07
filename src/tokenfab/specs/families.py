"""Optional ModelSpec sections for architectures beyond the plain decoder LLM, and the readers
that turn their published config files into ModelSpec fields.

Sections (all sizes are element counts; the engine applies precisions):
- `SparseAttentionSpec`: DeepSeek Sparse Attention (DeepSeek-V3.2) — a lightning indexer scores
  every cached token, MLA attends to the top-k.
- `LinearAttentionSpec`: Gated DeltaNet linear-attention layers (Qwen3-Next) with a constant
  recurrent state instead of a KV cache.
- `VisionSpec`: the ViT encoder and patch merger of a vision-language model (Qwen2.5-VL, Qwen3-VL),
  with Qwen's smart-resize of an image into the processor's pixel limits.
- `DiffusionSpec`: an image/video diffusion denoiser (cross-attention DiT, MMDiT, joint blocks or a
  `UNetSpec`) with its text encoders, VAE (`VaeSpec`), sampler defaults and size limits; readers
  for Wan's and diffusers' transformer/unet configs (`wan_fields`).
- `RecsysSpec`: recommendation models — DLRM-v2 (DCNv2) and HSTU generative recommenders.

Specs import no numerics: these are data with constraints and closed-form sizes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tokenfab.specs.base import Spec, SpecError


class SparseAttentionSpec(Spec):
    """DeepSeek Sparse Attention: indexer heads score all cached tokens; attention reads top-k."""

    index_heads: int = Field(gt=0)
    """Lightning-indexer heads (DeepSeek-V3.2: 64)."""
    index_head_dim: int = Field(gt=0)
    """Indexer query/key dimension (128)."""
    index_topk: int = Field(gt=0)
    """Tokens each query attends to after selection (2048)."""
    index_key_bytes: float = Field(default=132.0, gt=0)
    """Bytes cached per token per layer for the indexer key: FP8 key plus one FP32 scale per
    128 values (vLLM/SGLang's 132-byte indexer cache entry)."""

    def params(self, hidden_size: int, q_lora_rank: int | None) -> int:
        """Indexer weights of one layer: query from the q latent, one shared key, head weights."""
        q_in = q_lora_rank or hidden_size
        return (q_in * self.index_heads * self.index_head_dim + hidden_size * self.index_head_dim
                + hidden_size * self.index_heads)


class LinearAttentionSpec(Spec):
    """Gated DeltaNet layers (the layers that are not full attention in a hybrid model)."""

    num_layers: int = Field(ge=0)
    """Linear-attention layers (Qwen3-Next-80B: 36 of 48)."""
    num_key_heads: int = Field(gt=0)
    """Query/key heads (16)."""
    num_value_heads: int = Field(gt=0)
    """Value heads, each with its own recurrent state (32)."""
    key_head_dim: int = Field(gt=0)
    value_head_dim: int = Field(gt=0)
    conv_kernel: int = Field(default=4, gt=0)
    """Depthwise causal convolution width over q, k, v."""
    chunk_size: int = Field(default=64, gt=0)
    """Chunk length of the chunked (prefill) form of the delta rule (FLA kernels: 64)."""
    state_bytes: float = Field(default=4.0, gt=0)
    """Bytes per recurrent-state element (SGLang keeps the SSM state in fp32 by default)."""

    @property
    def key_dim(self) -> int:
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.num_value_heads * self.value_head_dim

    @property
    def state_elements(self) -> int:
        """Recurrent-state elements of one sequence in one layer: a dk x dv matrix per value head."""
        return self.num_value_heads * self.key_head_dim * self.value_head_dim

    @property
    def conv_state_elements(self) -> int:
        """Convolution-state elements of one sequence in one layer (last kernel-1 inputs)."""
        return (2 * self.key_dim + self.value_dim) * (self.conv_kernel - 1)

    def params(self, hidden_size: int) -> int:
        """Weights of one Gated DeltaNet layer: q,k,v,z and b,a projections, conv, out projection."""
        in_proj = hidden_size * (2 * self.key_dim + 2 * self.value_dim) + hidden_size * 2 * self.num_value_heads
        conv = (2 * self.key_dim + self.value_dim) * self.conv_kernel
        return in_proj + conv + self.value_dim * hidden_size + 2 * self.num_value_heads


QWEN_PIXEL_LIMITS = {14: (3136, 12845056), 16: (65536, 16777216)}
"""(min_pixels, max_pixels) of Qwen's image processors by patch size: Qwen2-VL/Qwen2.5-VL
preprocessor_config.json (patch 14: min_pixels 3136 = 56 x 56, max_pixels 12845056) and Qwen3-VL's
(patch 16: size.shortest_edge 65536 = 256 x 256, size.longest_edge 16777216 = 4096 x 4096)."""


class VisionSpec(Spec):
    """A ViT encoder with 2x2 patch merger (Qwen2-VL / Qwen2.5-VL with 14 px patches and window
    attention; Qwen3-VL with 16 px patches, full attention and DeepStack mergers)."""

    depth: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    patch_size: int = Field(gt=0)
    """Pixels per patch side (14)."""
    temporal_patch_size: int = Field(default=2, gt=0)
    """Frames per patch (an image is repeated to fill it)."""
    spatial_merge_size: int = Field(default=2, gt=0)
    """Patches merged per side into one LLM token (2 -> 4 patches per token)."""
    window_size: int = Field(default=0, ge=0)
    """Window-attention side in pixels (Qwen2.5-VL: 112); 0 = every layer attends to the whole item."""
    num_full_attention_layers: int = Field(default=0, ge=0)
    """Layers with full attention over the item when the others use windows (Qwen2.5-VL: 4)."""
    out_hidden_size: int = Field(gt=0)
    """Width of the merged tokens (the LLM's hidden size)."""
    in_channels: int = Field(default=3, gt=0)
    gated_mlp: bool = True
    deepstack_layers: int = Field(default=0, ge=0)
    """Intermediate ViT layers whose features get their own merger and are added to early LLM
    layers (Qwen3-VL DeepStack: 3)."""
    min_pixels: int | None = Field(default=None, gt=0)
    """Smallest image area the processor resizes to (None: Qwen's default for the patch size)."""
    max_pixels: int | None = Field(default=None, gt=0)
    """Largest image area the processor resizes to (None: Qwen's default for the patch size)."""

    @property
    def pixel_limits(self) -> tuple[int, int]:
        lo, hi = QWEN_PIXEL_LIMITS.get(self.patch_size, (4 * self.patch_size ** 2, 16384 * self.patch_size ** 2))
        return self.min_pixels or lo, self.max_pixels or hi

    def params(self) -> int:
        """Patch embedding, blocks (with biases) and merger."""
        h, i = self.hidden_size, self.intermediate_size
        embed = self.in_channels * self.temporal_patch_size * self.patch_size ** 2 * h
        mlp = (3 if self.gated_mlp else 2) * h * i + (2 if self.gated_mlp else 1) * i + h
        block = 4 * h * h + 4 * h + mlp
        m = h * self.spatial_merge_size ** 2
        merger = m * m + m + m * self.out_hidden_size + self.out_hidden_size
        return embed + self.depth * block + merger * (1 + self.deepstack_layers)

    def resized(self, height_px: int, width_px: int) -> tuple[int, int]:
        """Qwen's `smart_resize`: each side rounded to a multiple of patch x merge pixels, then the
        area scaled (keeping the aspect ratio) into [min_pixels, max_pixels]."""
        import math
        f = self.patch_size * self.spatial_merge_size
        lo, hi = self.pixel_limits
        h = max(f, round(height_px / f) * f)
        w = max(f, round(width_px / f) * f)
        if h * w > hi:
            beta = math.sqrt(height_px * width_px / hi)
            h = max(f, math.floor(height_px / beta / f) * f)
            w = max(f, math.floor(width_px / beta / f) * f)
        elif h * w < lo:
            beta = math.sqrt(lo / (height_px * width_px))
            h = math.ceil(height_px * beta / f) * f
            w = math.ceil(width_px * beta / f) * f
        return h, w

    def grid(self, height_px: int, width_px: int, frames: int = 1) -> tuple[int, int, int]:
        """(t, h, w) patch grid of the resized item (`resized`); frames padded to the temporal patch."""
        h, w = self.resized(height_px, width_px)
        t = max(1, -(-frames // self.temporal_patch_size))
        return t, h // self.patch_size, w // self.patch_size

    def patches(self, height_px: int, width_px: int, frames: int = 1) -> int:
        """ViT sequence length of one image (frames=1) or one video clip."""
        t, hp, wp = self.grid(height_px, width_px, frames)
        return t * hp * wp

    def llm_tokens(self, height_px: int, width_px: int, frames: int = 1) -> int:
        """Tokens the merged item adds to the LLM prompt."""
        return self.patches(height_px, width_px, frames) // self.spatial_merge_size ** 2

    @property
    def window_patches(self) -> int:
        """Patches in one attention window (0 when there are no windows)."""
        return (self.window_size // self.patch_size) ** 2 if self.window_size else 0


class TextEncoderSpec(Spec):
    """A text transformer that conditions a diffusion model (T5 / umT5 encoders, CLIP text
    towers, or a decoder LLM used as an encoder: Gemma-2, LLaVA-Llama-3)."""

    name: str = ""
    """Which encoder (for listings)."""
    num_layers: int = Field(gt=0)
    d_model: int = Field(gt=0)
    d_ff: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    gated_ffn: bool = True
    max_tokens: int = Field(default=512, gt=0)
    """Tokens each prompt is padded to (what the pipeline feeds the encoder)."""

    def params(self) -> int:
        attn = 4 * self.d_model * self.num_heads * self.head_dim
        ffn = (3 if self.gated_ffn else 2) * self.d_model * self.d_ff
        return self.num_layers * (attn + ffn) + self.vocab_size * self.d_model


class VaeSpec(Spec):
    """A 3D-convolutional video VAE decoder described by its stages (Wan-VAE)."""

    base_dim: int = Field(default=96, gt=0)
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = Field(default=2, ge=0)
    z_dim: int = Field(default=16, gt=0)
    params_count: int = Field(default=127_000_000, gt=0)
    """Decoder + encoder weights (Wan-VAE: 127M)."""
    dtype_bytes: float = Field(default=4.0, gt=0)
    """Wan runs its VAE in fp32."""
    conv_kernel_volume: int = Field(default=27, gt=0)
    """Taps per convolution: 27 for 3x3x3 video VAEs, 9 for 3x3 image VAEs."""
    tile_px: int = Field(default=0, ge=0)
    """Side of a decoding tile in output pixels when tiling is on (diffusers: 512 for image
    VAEs, 256 for HunyuanVideo/CogVideoX-style video VAEs); 0: the VAE does not tile."""
    tile_overlap: float = Field(default=0.25, ge=0, lt=1)
    """Fraction of a tile shared with its neighbour (diffusers' tile_overlap_factor 0.25): every
    output pixel is decoded 1/(1-overlap)^2 times on average."""

    upsample_conv: bool = True
    """A 3x3(x3) convolution at the new resolution after each spatial upsample (diffusers'
    Upsample2D, Wan's Resample), on the stage's channels."""
    mid_attention: bool = False
    """A single-head self-attention block in the decoder's middle block over each latent frame's
    pixels (SD/FLUX AutoencoderKL, HunyuanVideo's VAE, Wan-VAE)."""
    decode_temporal_stride: int = Field(default=0, ge=0)
    """Frame-rate divisor at the decoder's deepest stage when it differs from the VAE's temporal
    compression (Step-Video's VAE: 4, its pixel-shuffle unpatchify doubles the frames of the 8x
    latent before the middle block); 0: the VAE's temporal stride."""

    def decode_flops_per_output_px(self, temporal_stride: int) -> float:
        """FLOPs per output pixel-frame of the decoder's convolutions at each scale.

        Stages run from the latent scale up: the middle block (2 residual blocks = 4 convs) and
        `num_res_blocks + 1` residual blocks (2 convs each) per stage, at the stage's channels,
        then the upsample convolution at the next stage's resolution; frames double at each
        temporal upsample until they reach the output rate. (SD's AutoencoderKL at 1024 px: about
        10 TFLOP of convolutions, ~9.6 MFLOP per output pixel.)"""
        chans = [self.base_dim * m for m in reversed(self.dim_mult)]  # 384, 384, 192, 96
        n = len(chans)
        convs = 2 * (self.num_res_blocks + 1)
        total = 0.0
        frames = 1.0 / temporal_stride
        for i, c in enumerate(chans):
            area = 1.0 / 4 ** (n - 1 - i)
            k = convs + (4 if i == 0 else 0)
            total += k * self.conv_kernel_volume * c * c * area * min(frames, 1.0)
            if self.upsample_conv and i < n - 1:  # at the next stage's (4x larger) area
                total += self.conv_kernel_volume * c * c * area * 4 * min(2 * frames, 1.0)
            frames *= 2.0
        return 2.0 * total

    def mid_attention_flops(self, latent_pixels: float, latent_frames: float) -> float:
        """FLOPs of the middle block's attention: per latent frame, q/k/v/o projections
        (4 x pixels x c^2) and the scores and weighted sum (4 x pixels^2 x c), c the deepest width."""
        if not self.mid_attention:
            return 0.0
        c = self.base_dim * self.dim_mult[-1]
        return latent_frames * 2.0 * (4.0 * latent_pixels * c * c + 2.0 * latent_pixels ** 2 * c)


class UNetSpec(Spec):
    """A latent-diffusion UNet (SDXL's `UNet2DConditionModel`): levels of ResNet blocks (two 3x3
    convolutions each) and, where a level has attention, stacks of transformer blocks
    (self-attention over the level's pixels, cross-attention to the text, GEGLU FFN)."""

    block_out_channels: tuple[int, ...]
    """Channels per level (SDXL: 320, 640, 1280)."""
    layers_per_block: int = Field(default=2, gt=0)
    """ResNet blocks per down level (up levels have one more)."""
    transformer_layers: tuple[int, ...]
    """Transformer blocks after each ResNet block, per level (SDXL: 0, 2, 10; 0 = no attention)."""
    heads: tuple[int, ...]
    """Attention heads per level (diffusers' `attention_head_dim` list, which counts heads)."""
    mid_transformer_layers: int = Field(default=1, ge=0)
    """Transformer blocks in the middle block (SDXL: 10)."""
    cross_attention_dim: int = Field(gt=0)
    """Width of the text embeddings the cross-attention reads (SDXL: 2048)."""
    in_channels: int = Field(default=4, gt=0)

    @model_validator(mode="after")
    def _check(self) -> "UNetSpec":
        n = len(self.block_out_channels)
        if len(self.transformer_layers) != n or len(self.heads) != n:
            raise ValueError("transformer_layers and heads need one entry per level of block_out_channels")
        return self

    def transformer_params(self, c: int) -> int:
        """One BasicTransformerBlock at width c: self q,k,v,o; cross q,o (+ k,v from the text); GEGLU."""
        return 4 * c * c + 2 * c * c + 2 * self.cross_attention_dim * c + 12 * c * c

    def params(self) -> int:
        """ResNets, transformer stacks (with proj_in/out), down/up-sampling convolutions."""
        ch = self.block_out_channels
        total = 9 * self.in_channels * ch[0] + 9 * ch[0] * self.in_channels
        prev = ch[0]
        for i, c in enumerate(ch):  # down
            for _ in range(self.layers_per_block):
                total += 9 * prev * c + 9 * c * c + (prev * c if prev != c else 0)
                total += self.transformer_layers[i] * self.transformer_params(c) + (2 * c * c if self.transformer_layers[i] else 0)
                prev = c
            if i < len(ch) - 1:
                total += 9 * c * c
        c = ch[-1]
        total += 2 * 18 * c * c + self.mid_transformer_layers * self.transformer_params(c) + 2 * c * c
        for i in reversed(range(len(ch))):  # up: one more block per level, skip channels concatenated
            c = ch[i]
            for _ in range(self.layers_per_block + 1):
                cin = prev + c
                total += 9 * cin * c + 9 * c * c + cin * c
                total += self.transformer_layers[i] * self.transformer_params(c) + (2 * c * c if self.transformer_layers[i] else 0)
                prev = c
            if i > 0:
                total += 9 * c * c
        return total


DitBlock = Literal["cross", "mmdit", "joint", "unet"]
"""How a denoiser mixes text and image tokens: `cross` (self-attention over the latent tokens,
cross-attention to the text: Wan, LTX-Video, SANA, Step-Video), `mmdit` (text and latent tokens in
one joint attention, each with its own weights — SD3, FLUX and HunyuanVideo dual-stream blocks,
Mochi), `joint` (one joint attention with shared weights: CogVideoX's expert blocks), `unet`."""

GuidanceKind = Literal["cfg", "distilled", "none"]
"""`cfg`: classifier-free guidance, a conditional and an unconditional forward per step (when the
scale is above 1); `distilled`: the scale is an input of one forward (FLUX.1-dev, HunyuanVideo);
`none`: no guidance (timestep-distilled FLUX.1-schnell)."""


class DiffusionSpec(Spec):
    """A diffusion denoiser over VAE latents (a DiT, or SDXL's UNet), its text encoders, VAE and
    sampler defaults, and the request sizes it accepts."""

    patch: tuple[int, int, int] = (1, 2, 2)
    """Latent patch (t, h, w) per token."""
    vae_stride: tuple[int, int, int] = (4, 8, 8)
    """VAE compression (t, h, w): latent frames = 1 + (frames - 1) / 4."""
    latent_channels: int = Field(default=16, gt=0)
    text_len: int = Field(default=512, gt=0)
    """Text tokens the denoiser attends to (cross-attention keys, or tokens joined to the latent
    sequence in `mmdit`/`joint` blocks)."""
    text_dim: int = Field(default=4096, gt=0)
    freq_dim: int = Field(default=256, gt=0)
    cross_attention: bool = True
    text_encoder: TextEncoderSpec
    extra_text_encoders: tuple[TextEncoderSpec, ...] = ()
    """Further encoders run once per prompt (CLIP towers beside T5, ...)."""
    vae: VaeSpec = VaeSpec()
    default_width_px: int = Field(default=1280, gt=0)
    default_height_px: int = Field(default=720, gt=0)
    default_frames: int = Field(default=81, gt=0)
    default_steps: int = Field(default=50, gt=0)
    default_guidance: float = Field(default=5.0, ge=0)
    fps: float = Field(default=16.0, gt=0)
    """Frames per second of the generated video (Wan2.1: 16)."""
    block: DitBlock = "cross"
    num_single_layers: int = Field(default=0, ge=0)
    """Single-stream blocks after the dual-stream ones (FLUX.1: 38, HunyuanVideo: 40)."""
    linear_attention: bool = False
    """Self-attention is linear in the tokens (SANA's ReLU linear attention) and the FFN is a
    gated Mix-FFN with a 3x3 depthwise convolution."""
    gated_ffn: bool = False
    """FFN with a gate (SwiGLU/GEGLU: three matrices, or the up matrix twice as wide)."""
    text_hidden_size: int = Field(default=0, ge=0)
    """Width of the text stream in `mmdit` blocks when it differs from the latent stream (Mochi:
    1536); 0: same width."""
    guidance: GuidanceKind = "cfg"
    cfg_branches: int = Field(default=2, ge=2, le=3)
    """Denoiser forwards per step under `cfg` guidance: 2 (conditional and unconditional), 3 for
    Open-Sora 2.0, whose I2V denoiser (the t2i2v/768px pipelines' default) runs the conditional,
    the text-unconditional and the image-unconditional branch as one batch of 3 every step
    (hpcaitech/Open-Sora opensora/utils/sampling.py, `I2VDenoiser.denoise`)."""
    experts: int = Field(default=1, gt=0)
    """Denoisers held in memory, one used per step (Wan2.2-A14B: a high-noise and a low-noise expert)."""
    max_frames: int = Field(default=1, gt=0)
    """Most output frames the model takes (1: an image model)."""
    max_side_px: int = Field(default=4096, gt=0)
    """Largest width or height the model takes (position-embedding range or published limit)."""
    fixed_size_px: tuple[int, int] | None = None
    """(width, height) when the model takes one size only (CogVideoX-5B: 720 x 480)."""
    precision: str = "bf16"
    """Weights as released / as the reference pipeline runs them."""
    attention_kernel: Literal["fa2", "fa3"] = "fa2"
    """Attention kernel the reference pipeline calls: `fa2` (PyTorch SDPA / flash-attn 2, what
    diffusers and most model repos run) or `fa3` (Wan's code uses FlashAttention-3 when installed)."""
    unet: UNetSpec | None = None
    encoders_off_chip: bool = False
    """The reference deployment runs the text encoders and the VAE on a separate GPU (Step-Video's
    decoupled caption/VAE server, README section 4.3 and api/call_remote_server.py): their weights
    and workspace are not on the denoiser's chips; their time still adds to the latency."""
    frame_chunk: int = Field(default=0, ge=0)
    """Frames the VAE encodes and decodes as one chunk when it works chunk by chunk (Step-Video:
    17); 0: a causal VAE over the whole video (latent frames = 1 + (frames - 1) / stride)."""
    chunk_latent_frames: int = Field(default=0, ge=0)
    """Latent frames per `frame_chunk` (Step-Video: 3, so 204 frames -> 12 chunks -> 36 latent
    frames; stepvideo/vae/vae.py AutoencoderKL frame_len 17, latent_len 3)."""

    def latent_grid(self, height_px: int, width_px: int, frames: int) -> tuple[int, int, int]:
        st, sh, sw = self.vae_stride
        if self.frame_chunk:
            return (max(frames // self.frame_chunk * self.chunk_latent_frames, 1), height_px // sh, width_px // sw)
        return (1 + (max(frames, 1) - 1) // st, height_px // sh, width_px // sw)

    def tokens(self, height_px: int, width_px: int, frames: int) -> int:
        """DiT sequence length: latent grid divided by the patch (Wan 1280x720x81: 75,600)."""
        t, h, w = self.latent_grid(height_px, width_px, frames)
        pt, ph, pw = self.patch
        return -(-t // pt) * (h // ph) * (w // pw)

    @property
    def side_multiple_px(self) -> int:
        """Width and height must be multiples of this: VAE stride x patch (16 for most DiTs)."""
        return max(self.vae_stride[1] * self.patch[1], self.vae_stride[2] * self.patch[2])

    @property
    def is_video(self) -> bool:
        return self.max_frames > 1

    def check_request(self, model_id: str, width_px: int, height_px: int, frames: int) -> None:
        """Raise a one-line SpecError when the model cannot generate this size or length."""
        unit = self.side_multiple_px
        if self.fixed_size_px and (width_px, height_px) != tuple(self.fixed_size_px):
            w, h = self.fixed_size_px
            raise SpecError(f"{model_id} generates {w}x{h} only; {width_px}x{height_px} was asked")
        for name, v in (("width", width_px), ("height", height_px)):
            if v % unit:
                raise SpecError(f"{model_id}: {name} {v} px is not a multiple of {unit} px "
                                f"(VAE {self.vae_stride[1]}x x patch {self.patch[1]})")
            if v > self.max_side_px:
                raise SpecError(f"{model_id}: {name} {v} px is above the {self.max_side_px} px the model takes")
        if frames > self.max_frames:
            what = "an image model: frames must be 1" if not self.is_video else f"at most {self.max_frames} frames"
            raise SpecError(f"{model_id}: {frames} frames asked; {what}")
        st = self.vae_stride[0]
        if self.is_video and self.frame_chunk:
            if frames % self.frame_chunk:
                raise SpecError(f"{model_id}: {frames} frames is not a multiple of {self.frame_chunk} "
                                f"(the VAE works in chunks of {self.frame_chunk} frames)")
        elif self.is_video and st > 1 and (frames - 1) % st:
            raise SpecError(f"{model_id}: {frames} frames is not 1 + a multiple of {st} (the VAE's temporal stride)")

    def block_params(self, d: int, ffn: int) -> tuple[int, int]:
        """(weights of one main block, of one single-stream block) at width d and FFN width ffn."""
        up = 2 * ffn if self.gated_ffn else ffn
        mlp = d * up + ffn * d
        if self.block == "cross":
            cross = 4 * d * d if self.cross_attention else 0
            conv = 9 * ffn if self.linear_attention else 0
            return 4 * d * d + cross + mlp + conv + 6 * d, 0
        if self.block == "joint":
            return 4 * d * d + mlp + 2 * 6 * d * 512, 0
        dt = self.text_hidden_size or d
        ffn_t = ffn * dt // d
        text = 3 * dt * d + d * dt + dt * (2 * ffn_t if self.gated_ffn else ffn_t) + ffn_t * dt + 6 * dt * d
        image = 4 * d * d + mlp + 6 * d * d
        single = d * (3 * d + ffn) + (d + ffn) * d + 3 * d * d
        return image + text, single

    def dit_params(self, d: int, ffn: int, layers: int) -> int:
        """Denoiser weights: blocks, patch/text/time embeddings, head (one expert)."""
        if self.block == "unet":
            return self.unet.params()
        main, single = self.block_params(d, ffn)
        patch = self.latent_channels * self.patch[0] * self.patch[1] * self.patch[2]
        embeds = patch * d + self.text_dim * d + d * d + self.freq_dim * d + d * d + d * 6 * d
        return layers * main + self.num_single_layers * single + embeds + d * patch

    def encoders(self) -> tuple[TextEncoderSpec, ...]:
        return (self.text_encoder,) + tuple(self.extra_text_encoders)


class RecsysSpec(Spec):
    """A recommendation model: `dlrm` (embeddings + bottom MLP + DCNv2 + top MLP) or `hstu`."""

    variant: Literal["dlrm", "hstu"]
    embedding_dim: int = Field(gt=0)
    table_rows: tuple[int, ...] = ()
    """Rows of each sparse feature's embedding table."""
    pooling: tuple[int, ...] = ()
    """Lookups per sample for each feature (multi-hot sizes; one-hot = 1)."""
    num_dense_features: int = Field(default=0, ge=0)
    bottom_mlp: tuple[int, ...] = ()
    top_mlp: tuple[int, ...] = ()
    dcn_layers: int = Field(default=0, ge=0)
    dcn_rank: int = Field(default=0, ge=0)
    """Low-rank size of the DCNv2 cross layers (0: full rank)."""
    # HSTU
    hstu_layers: int = Field(default=0, ge=0)
    hstu_heads: int = Field(default=1, gt=0)
    hstu_attention_dim: int = Field(default=0, ge=0)
    """Query/key dimension per head (HSTU `attention_dim`)."""
    hstu_linear_dim: int = Field(default=0, ge=0)
    """Value/gate dimension per head (HSTU `linear_dim`)."""
    history_len: int = Field(default=0, ge=0)
    """User-history tokens per request (HSTU)."""
    num_candidates: int = Field(default=0, ge=0)
    """Candidate items scored per request (HSTU M-FALCON ranking)."""
    samples_per_query: float = Field(default=1.0, gt=0)
    """Scored pairs per loadgen sample (MLPerf DLRMv2 aggregates several user-item pairs)."""
    accuracy_target: float = Field(default=0.99, ge=0.5, lt=1)
    """Share of the fp32 reference's quality the deployment must keep (MLPerf DLRMv2: 0.99 or
    0.999 of AUC). At 0.999 the DCN interaction runs in fp16 (NVIDIA's v4.1 DLRMv2 configs set
    `interaction_op_precision = 'fp16'` for every High_Accuracy system); embeddings and the other
    MLPs keep the deployment's precision."""
    embedding_bytes: float | None = Field(default=None, gt=0)
    """Bytes per embedding element when the tables are stored at a fixed precision (HSTU/DLRMv3:
    fp16 tables, 2); None: follows the deployment's precision."""

    @model_validator(mode="after")
    def _check(self) -> "RecsysSpec":
        if len(self.table_rows) != len(self.pooling):
            raise ValueError("table_rows and pooling need one entry per sparse feature")
        if self.variant == "hstu" and not (self.hstu_layers and self.hstu_attention_dim and self.hstu_linear_dim):
            raise ValueError("hstu needs hstu_layers, hstu_attention_dim and hstu_linear_dim")
        return self

    @property
    def num_sparse(self) -> int:
        return len(self.table_rows)

    @property
    def lookups_per_sample(self) -> int:
        return sum(self.pooling)

    @property
    def interaction_dim(self) -> int:
        """Width of the concatenated dense + pooled sparse features (DLRM-v2: 27 x 128)."""
        return (self.num_sparse + (1 if self.bottom_mlp else 0)) * self.embedding_dim

    def mlp_layers(self) -> list[tuple[int, int]]:
        """(in, out) of every dense layer: bottom MLP, DCN (U and V), top MLP."""
        layers = []
        prev = self.num_dense_features
        for w in self.bottom_mlp:
            layers.append((prev, w))
            prev = w
        x = self.interaction_dim
        for _ in range(self.dcn_layers):
            if self.dcn_rank:
                layers += [(x, self.dcn_rank), (self.dcn_rank, x)]
            else:
                layers.append((x, x))
        prev = x
        for w in self.top_mlp:
            layers.append((prev, w))
            prev = w
        return layers

    def dense_params(self) -> int:
        """MLP / DCN / HSTU weights."""
        if self.variant == "hstu":
            d = self.embedding_dim
            h = self.hstu_heads
            f1 = d * h * (2 * self.hstu_linear_dim + 2 * self.hstu_attention_dim)
            f2 = h * self.hstu_linear_dim * d
            return self.hstu_layers * (f1 + f2)
        return sum(i * o + o for i, o in self.mlp_layers())

    def embedding_params(self) -> int:
        return sum(self.table_rows) * self.embedding_dim


# ---- readers for config files that are not decoder-LLM configs --------------------------

DIT_CLASSES = ("WanModel", "WanTransformer3DModel", "FluxTransformer2DModel", "SD3Transformer2DModel",
               "UNet2DConditionModel", "SanaTransformer2DModel", "HunyuanVideoTransformer3DModel",
               "CogVideoXTransformer3DModel", "MochiTransformer3DModel", "LTXVideoTransformer3DModel",
               "OpenSoraMMDiT", "StepVideoModel")
"""Diffusers `_class_name`s (and Open-Sora's MMDiT) whose config files tokenfab reads."""


def is_wan_config(config: dict[str, Any]) -> bool:
    """True for a diffusion denoiser's config: Wan's, or any class in DIT_CLASSES."""
    return config.get("_class_name") in DIT_CLASSES or (
        config.get("model_type") in ("t2v", "i2v", "ti2v") and "dim" in config and "num_layers" in config)


# ---- text encoders and VAEs the shipped pipelines use (each from its published config) -------
# umT5-XXL encoder (google/umt5-xxl config: d_model 4096, d_ff 10240, 24 layers, 64 heads of 64,
# gated-gelu FFN, vocab 256384); Wan2.1 conditions both sizes on it (wan/configs/shared_config.py).
UMT5_XXL = TextEncoderSpec(name="umt5-xxl", num_layers=24, d_model=4096, d_ff=10240, num_heads=64, head_dim=64,
                           vocab_size=256384)
# T5 v1.1 XXL encoder (google/t5-v1_1-xxl config: d_model 4096, d_ff 10240, 24 layers, 64 x 64 heads,
# gated-gelu, vocab 32128): text_encoder_3 of SD3.5, text_encoder_2 of FLUX.1, CogVideoX, Mochi, LTX.
T5_XXL = TextEncoderSpec(name="t5-v1_1-xxl", num_layers=24, d_model=4096, d_ff=10240, num_heads=64, head_dim=64,
                         vocab_size=32128, max_tokens=512)
# CLIP ViT-L/14 text tower (openai/clip-vit-large-patch14 text_config: 12 layers, 768 wide, 3072 MLP,
# 12 heads, vocab 49408, 77 positions).
CLIP_L = TextEncoderSpec(name="clip-vit-l-14", num_layers=12, d_model=768, d_ff=3072, num_heads=12, head_dim=64,
                         vocab_size=49408, gated_ffn=False, max_tokens=77)
# OpenCLIP ViT-bigG/14 text tower (SDXL text_encoder_2 config: 32 layers, 1280 wide, 5120 MLP, 20 heads).
CLIP_G = TextEncoderSpec(name="openclip-vit-bigg-14", num_layers=32, d_model=1280, d_ff=5120, num_heads=20,
                         head_dim=64, vocab_size=49408, gated_ffn=False, max_tokens=77)
# Gemma-2-2B (google/gemma-2-2b-it config: 26 layers, 2304 wide, 9216 gated MLP, 8 heads of 256,
# vocab 256000); SANA feeds it 300 tokens (Sana configs: model_max_length 300).
GEMMA2_2B = TextEncoderSpec(name="gemma-2-2b-it", num_layers=26, d_model=2304, d_ff=9216, num_heads=8, head_dim=256,
                            vocab_size=256000, max_tokens=300)
# LLaVA-Llama-3-8B used as HunyuanVideo's text encoder (Llama-3-8B: 32 layers, 4096 wide, 14336 gated
# MLP, 32 heads of 128, vocab 128256); 256 tokens (HunyuanVideo text_len 256).
LLAVA_LLAMA3_8B = TextEncoderSpec(name="llava-llama-3-8b", num_layers=32, d_model=4096, d_ff=14336, num_heads=32,
                                  head_dim=128, vocab_size=128256, max_tokens=256)
# Step-Video-T2V's two bilingual encoders (stepfun-ai/Step-Video-T2V). Step-LLM
# (stepvideo/text_encoder/stepllm.py STEP1TextEncoder: 320 tokens padded, SwiGLU FFN, multi-query
# attention; width 6144 = StepVideoModel caption_channels[0]). Its layer count, head count and FFN
# width are in the released step_llm/config.json, which was not read: 48 layers of 48 x 128 heads
# and FFN 4 x 6144 are ESTIMATES (they only change the once-per-prompt text time and the memory).
STEP_LLM = TextEncoderSpec(name="step-llm", num_layers=48, d_model=6144, d_ff=24576, num_heads=48, head_dim=128,
                           vocab_size=65536, max_tokens=320)
# Hunyuan-CLIP (hunyuan_clip/clip_text_encoder: HunyuanDiT's Chinese CLIP text tower, a BERT-large
# shape: 24 layers, 1024 wide = StepVideoModel caption_channels[1], 16 heads, FFN 4096, 77 tokens);
# the layer count and vocab are ESTIMATES from the BERT-large shape.
HUNYUAN_CLIP = TextEncoderSpec(name="hunyuan-clip", num_layers=24, d_model=1024, d_ff=4096, num_heads=16, head_dim=64,
                               vocab_size=47020, gated_ffn=False, max_tokens=77)
TEXT_ENCODERS = {e.name: e for e in (UMT5_XXL, T5_XXL, CLIP_L, CLIP_G, GEMMA2_2B, LLAVA_LLAMA3_8B, STEP_LLM,
                                     HUNYUAN_CLIP)}

# SD/FLUX AutoencoderKL (vae/config.json: block_out_channels [128, 256, 512, 512], layers_per_block 2);
# 83.7M weights; 2D 3x3 convolutions; diffusers tiles at 512 px with overlap 0.25.
SD_VAE = VaeSpec(base_dim=128, dim_mult=(1, 2, 4, 4), num_res_blocks=2, z_dim=16, params_count=83_700_000,
                 dtype_bytes=2.0, conv_kernel_volume=9, tile_px=512, mid_attention=True)
# HunyuanVideo causal 3D VAE (block_out_channels [128, 256, 512, 512], layers_per_block 2, latent 16,
# 4x temporal / 8x spatial); weights ~246M (estimated from its blocks); diffusers tiles at 256 px.
HUNYUAN_VAE = VaeSpec(base_dim=128, dim_mult=(1, 2, 4, 4), num_res_blocks=2, z_dim=16, params_count=246_000_000,
                      dtype_bytes=2.0, tile_px=256, mid_attention=True)
# CogVideoX 3D VAE (block_out_channels [128, 256, 256, 512], layers_per_block 3); ~215M (estimated);
# tiles of 240x360 px with overlaps 1/6 and 1/5 (diffusers AutoencoderKLCogVideoX).
COGVIDEOX_VAE = VaeSpec(base_dim=128, dim_mult=(1, 2, 2, 4), num_res_blocks=3, z_dim=16, params_count=215_000_000,
                        dtype_bytes=2.0, tile_px=256, tile_overlap=0.2)
# Mochi asymmetric VAE decoder (base 128, channel multipliers 1, 2, 4, 6; 3 residual blocks per stage;
# 6x temporal / 8x spatial, 12 latent channels; 362M weights per the Mochi README).
MOCHI_VAE = VaeSpec(base_dim=128, dim_mult=(1, 2, 4, 6), num_res_blocks=3, z_dim=12, params_count=362_000_000,
                    dtype_bytes=2.0, tile_px=256)
# LTX-Video VAE (32x32 spatial, 8x temporal, 128 latent channels; decoder block_out_channels
# 128, 256, 512, 512): FLOPs per output pixel estimated with the same stage rule as the others.
LTX_VAE = VaeSpec(base_dim=128, dim_mult=(1, 2, 4, 4), num_res_blocks=3, z_dim=128, params_count=419_000_000,
                  dtype_bytes=2.0, tile_px=0)
# SANA's DC-AE f32c32 (32x spatial, 32 latent channels; decoder widths 128-1024): estimated stages.
DC_AE = VaeSpec(base_dim=128, dim_mult=(1, 2, 4, 4, 8, 8), num_res_blocks=2, z_dim=32, params_count=323_000_000,
                dtype_bytes=2.0, conv_kernel_volume=9, tile_px=0)
# Step-Video Video-VAE v2 decoder (stepvideo/vae/vae.py VideoDecoder: ch 128, ch_mult (1, 2, 4, 4),
# num_res_blocks 2, 3x3x3 causal convs, mid-block attention; z 64 channels unpatchified 2x in time and
# space by a pixel shuffle, then temporal upsamples at the two deepest levels: the deepest stage runs
# at 1/4 of the frame rate and 1/8 of the side). Decodes chunks of 3 latent frames into 17 frames,
# bf16 (the DiT pipeline's dtype). Weights ~0.5B ESTIMATED from the stages (the unpatchify convs,
# 64->2048->4096 channels at the latent size, are left out of the FLOPs: ~0.3 MFLOP per output px).
STEPVIDEO_VAE = VaeSpec(base_dim=128, dim_mult=(1, 2, 4, 4), num_res_blocks=2, z_dim=64, params_count=500_000_000,
                        dtype_bytes=2.0, tile_px=0, mid_attention=True, decode_temporal_stride=4)
VAES = {"wan-vae": VaeSpec(mid_attention=True), "stepvideo-vae": STEPVIDEO_VAE, "sd-vae": SD_VAE, "hunyuanvideo-vae": HUNYUAN_VAE, "cogvideox-vae": COGVIDEOX_VAE,
        "mochi-vae": MOCHI_VAE, "ltx-video-vae": LTX_VAE, "dc-ae-f32c32": DC_AE}


def wan_fields(config: dict[str, Any]) -> dict[str, Any]:
    """ModelSpec fields of a diffusion denoiser config: Wan's own (`WanModel`) or a diffusers
    `transformer/config.json` / `unet/config.json` of a class in DIT_CLASSES. What the config
    does not say (text encoders, VAE, sampler defaults, size limits) comes from the class's
    pipeline defaults below, and a `_pipeline` object in the file overrides any DiffusionSpec
    field (text encoders and VAE by name: TEXT_ENCODERS, VAES)."""
    cls = config.get("_class_name", "WanModel")
    try:
        fields = (_wan(config) if cls in ("WanModel",) or "dim" in config else _DIFFUSERS[cls](config))
    except KeyError as exc:
        raise SpecError(f"{exc.args[0]}: required field missing ({cls} config)") from None
    pipe = config.get("_pipeline") or {}
    if not isinstance(pipe, dict):
        raise SpecError("_pipeline: expected an object")
    dz = dict(fields.pop("diffusion"))
    for key, value in pipe.items():
        if key in ("text_encoder", "extra_text_encoders"):
            names = [value] if isinstance(value, str) else list(value)
            encs = []
            for n in names:
                name, _, tokens = str(n).partition(":")
                if name not in TEXT_ENCODERS:
                    raise SpecError(f"_pipeline.{key}: unknown text encoder {name!r}; known: {', '.join(TEXT_ENCODERS)}")
                enc = TEXT_ENCODERS[name]
                encs.append(enc.model_copy(update={"max_tokens": int(tokens)}) if tokens else enc)
            dz[key] = encs[0] if key == "text_encoder" else tuple(encs)
        elif key == "vae":
            if value not in VAES:
                raise SpecError(f"_pipeline.vae: unknown VAE {value!r}; known: {', '.join(VAES)}")
            dz["vae"] = VAES[value]
        elif key not in DiffusionSpec.model_fields:
            raise SpecError(f"_pipeline.{key}: not a DiffusionSpec field")
        else:
            dz[key] = value
    try:
        fields["diffusion"] = DiffusionSpec.model_validate(dz)
    except ValueError as exc:
        raise SpecError(f"_pipeline: {exc}") from None
    return fields


def _spec_fields(family: str, d: int, layers: int, heads: int, ffn: int, vocab: int, dz: dict) -> dict[str, Any]:
    return dict(family=family, kind="diffusion", hidden_size=d, num_layers=layers, num_heads=heads,
                num_kv_heads=heads, head_dim=d // heads, v_head_dim=d // heads, intermediate_size=ffn,
                gated_mlp=bool(dz.get("gated_ffn", False)), vocab_size=vocab, attention_bias=True, max_context=10**7,
                diffusion=dz)


def _wan(config: dict[str, Any]) -> dict[str, Any]:
    """Wan2.1/2.2 DiT (Wan-AI/Wan2.x-T2V-*/config.json). Defaults not in the file come from the
    Wan code: patch (1,2,2), VAE stride (4,8,8), text_dim 4096 (wan/modules/model.py,
    wan/configs/*). The 14B model samples 1280x720, the 1.3B 832x480; both 81 frames, 50 steps,
    guidance 5 (T2V), 16 fps."""
    d, ffn = int(config["dim"]), int(config["ffn_dim"])
    heads, layers = int(config["num_heads"]), int(config["num_layers"])
    small = d < 3072
    dz = dict(patch=tuple(config.get("patch_size", (1, 2, 2))), latent_channels=int(config.get("in_dim", 16)),
              text_len=int(config.get("text_len", 512)), text_dim=int(config.get("text_dim", 4096)),
              freq_dim=int(config.get("freq_dim", 256)), text_encoder=UMT5_XXL, vae=VaeSpec(mid_attention=True),
              default_width_px=832 if small else 1280, default_height_px=480 if small else 720,
              max_frames=81, max_side_px=1280, attention_kernel="fa3")
    return _spec_fields("wan", d, layers, heads, ffn, UMT5_XXL.vocab_size, dz)


def _heads(c: dict[str, Any]) -> tuple[int, int]:
    heads, hd = int(c["num_attention_heads"]), int(c["attention_head_dim"])
    return heads, heads * hd


def _flux(c: dict[str, Any]) -> dict[str, Any]:
    """FLUX.1 (black-forest-labs/FLUX.1-*/transformer/config.json): 19 dual-stream + 38 single-stream
    blocks of 24 x 128; latents packed 2x2 (in_channels 64 = 16 x 4); CLIP-L (pooled) + T5-XXL
    (512 tokens for dev, 256 for schnell: FluxPipeline max_sequence_length); 1024 px, 50 steps and
    guidance 3.5 in one forward (the model card's example)."""
    heads, d = _heads(c)
    latent = int(c.get("in_channels", 64)) // 4
    guided = bool(c.get("guidance_embeds", True))
    dz = dict(block="mmdit", patch=(1, 2, 2), vae_stride=(1, 8, 8), latent_channels=latent, text_len=512 if guided else 256,
              text_dim=int(c.get("joint_attention_dim", 4096)), text_encoder=T5_XXL.model_copy(update={"max_tokens": 512 if guided else 256}),
              extra_text_encoders=(CLIP_L,), vae=SD_VAE, num_single_layers=int(c.get("num_single_layers", 38)),
              guidance="distilled" if guided else "none", default_guidance=3.5 if guided else 0.0,
              default_width_px=1024, default_height_px=1024, default_frames=1, default_steps=50 if guided else 4,
              max_frames=1, max_side_px=2048, fps=1.0)
    return _spec_fields("flux", d, int(c["num_layers"]), heads, 4 * d, T5_XXL.vocab_size, dz)


def _sd3(c: dict[str, Any]) -> dict[str, Any]:
    """SD3/SD3.5 MMDiT (stabilityai/stable-diffusion-3.5-large/transformer/config.json): 38 blocks of
    38 x 64; patch 2; joint sequence = 77 CLIP + 256 T5 tokens (StableDiffusion3Pipeline); CLIP-L,
    CLIP-G, T5-XXL; 1024 px, 28 steps, guidance 3.5 (model card); positions up to
    pos_embed_max_size x 2 x 8 px."""
    heads, d = _heads(c)
    p = int(c.get("patch_size", 2))
    dz = dict(block="mmdit", patch=(1, p, p), vae_stride=(1, 8, 8), latent_channels=int(c.get("in_channels", 16)),
              text_len=77 + 256, text_dim=int(c.get("joint_attention_dim", 4096)),
              text_encoder=T5_XXL.model_copy(update={"max_tokens": 256}), extra_text_encoders=(CLIP_L, CLIP_G),
              vae=SD_VAE, guidance="cfg", default_guidance=3.5, default_width_px=1024, default_height_px=1024,
              default_frames=1, default_steps=28, max_frames=1,
              max_side_px=int(c.get("pos_embed_max_size", 192)) * p * 8, fps=1.0)
    return _spec_fields("sd3", d, int(c["num_layers"]), heads, 4 * d, T5_XXL.vocab_size, dz)


def _unet(c: dict[str, Any]) -> dict[str, Any]:
    """SDXL UNet (stabilityai/stable-diffusion-xl-base-1.0/unet/config.json): levels 320/640/1280,
    transformer depth 0/2/10 ([1, 2, 10] in the file; the first level is a plain DownBlock2D), heads
    5/10/20, cross-attention to 2048-wide CLIP-L + CLIP-G embeddings of 77 tokens; VAE in fp32
    (force_upcast); 1024 px, 50 steps, guidance 5 (StableDiffusionXLPipeline defaults)."""
    ch = tuple(int(x) for x in c["block_out_channels"])
    depth = c.get("transformer_layers_per_block", 1)
    depth = [int(depth)] * len(ch) if isinstance(depth, int) else [int(x) for x in depth]
    down = c.get("down_block_types", ["CrossAttnDownBlock2D"] * len(ch))
    depth = [dp if "CrossAttn" in t else 0 for dp, t in zip(depth, down)]
    heads = c.get("attention_head_dim", 8)
    heads = [int(heads)] * len(ch) if isinstance(heads, int) else [int(x) for x in heads]
    unet = UNetSpec(block_out_channels=ch, layers_per_block=int(c.get("layers_per_block", 2)), transformer_layers=tuple(depth),
                    heads=tuple(heads), mid_transformer_layers=depth[-1] or 1,
                    cross_attention_dim=int(c["cross_attention_dim"]), in_channels=int(c.get("in_channels", 4)))
    vae = SD_VAE.model_copy(update={"z_dim": 4, "dtype_bytes": 4.0})
    dz = dict(block="unet", unet=unet, patch=(1, 1, 1), vae_stride=(1, 8, 8), latent_channels=unet.in_channels, text_len=77,
              text_dim=unet.cross_attention_dim, text_encoder=CLIP_G, extra_text_encoders=(CLIP_L,), vae=vae,
              guidance="cfg", default_guidance=5.0, default_width_px=1024, default_height_px=1024, default_frames=1,
              default_steps=50, max_frames=1, max_side_px=2048, fps=1.0, precision="fp16")
    layers = sum(t * (unet.layers_per_block * 2 + 1) for t in depth) + unet.mid_transformer_layers
    return _spec_fields("sdxl-unet", ch[-1], max(layers, 1), heads[-1], 4 * ch[-1], CLIP_L.vocab_size, dz)


def _sana(c: dict[str, Any]) -> dict[str, Any]:
    """SANA (Efficient-Large-Model/Sana_1600M_1024px_diffusers/transformer/config.json): 20 blocks
    of 70 x 32 linear-attention heads, cross-attention to 300 Gemma-2-2B tokens, gated Mix-FFN
    (mlp_ratio 2.5) with a 3x3 depthwise conv; DC-AE 32x, 32 latent channels, patch 1; 1024 px,
    20 steps, guidance 4.5 (model card)."""
    heads, d = _heads(c)
    ffn = int(round(float(c.get("mlp_ratio", 2.5)) * d))
    dz = dict(block="cross", linear_attention=True, gated_ffn=True, patch=(1, 1, 1), vae_stride=(1, 32, 32),
              latent_channels=int(c.get("in_channels", 32)), text_len=300, text_dim=int(c.get("caption_channels", 2304)),
              text_encoder=GEMMA2_2B, vae=DC_AE, guidance="cfg", default_guidance=4.5, default_width_px=1024,
              default_height_px=1024, default_frames=1, default_steps=20, max_frames=1, max_side_px=4096, fps=1.0)
    return _spec_fields("sana", d, int(c["num_layers"]), heads, ffn, GEMMA2_2B.vocab_size, dz)


def _hunyuan(c: dict[str, Any]) -> dict[str, Any]:
    """HunyuanVideo (hunyuanvideo-community/HunyuanVideo/transformer/config.json): 20 dual-stream +
    40 single-stream blocks of 24 x 128, mlp_ratio 4; patch 1x2x2; 256 LLaVA-Llama-3 tokens + CLIP-L;
    embedded guidance 6 in one forward; 1280x720, 129 frames, 50 steps, 24 fps (README)."""
    heads, d = _heads(c)
    p, pt = int(c.get("patch_size", 2)), int(c.get("patch_size_t", 1))
    dz = dict(block="mmdit", patch=(pt, p, p), vae_stride=(4, 8, 8), latent_channels=int(c.get("in_channels", 16)),
              text_len=256, text_dim=int(c.get("text_embed_dim", 4096)), text_encoder=LLAVA_LLAMA3_8B,
              extra_text_encoders=(CLIP_L,), vae=HUNYUAN_VAE, num_single_layers=int(c.get("num_single_layers", 40)),
              guidance="distilled", default_guidance=6.0, default_width_px=1280, default_height_px=720,
              default_frames=129, default_steps=50, max_frames=129, max_side_px=1280, fps=24.0)
    return _spec_fields("hunyuanvideo", d, int(c["num_layers"]), heads, int(float(c.get("mlp_ratio", 4.0)) * d),
                        LLAVA_LLAMA3_8B.vocab_size, dz)


def _cogvideox(c: dict[str, Any]) -> dict[str, Any]:
    """CogVideoX (THUDM/CogVideoX-5b/transformer/config.json): 42 expert blocks of 48 x 64 over the
    joint text + video sequence (226 T5 tokens); patch 2; 720x480 only (sample_width/height 90/60
    latents), 49 frames (sample_frames), 50 steps, guidance 6, 8 fps (README)."""
    heads, d = _heads(c)
    p = int(c.get("patch_size", 2))
    pt = int(c.get("patch_size_t") or 1)
    w, h = int(c.get("sample_width", 90)) * 8, int(c.get("sample_height", 60)) * 8
    dz = dict(block="joint", patch=(pt, p, p), vae_stride=(int(c.get("temporal_compression_ratio", 4)), 8, 8),
              latent_channels=int(c.get("in_channels", 16)), text_len=int(c.get("max_text_seq_length", 226)),
              text_dim=int(c.get("text_embed_dim", 4096)), text_encoder=T5_XXL.model_copy(update={"max_tokens": 226}),
              vae=COGVIDEOX_VAE, guidance="cfg", default_guidance=6.0, default_width_px=w, default_height_px=h,
              default_frames=int(c.get("sample_frames", 49)), default_steps=50, max_frames=int(c.get("sample_frames", 49)),
              fixed_size_px=(w, h) if pt == 1 else None, max_side_px=max(w, h) if pt == 1 else 1360, fps=8.0)
    return _spec_fields("cogvideox", d, int(c["num_layers"]), heads, 4 * d, T5_XXL.vocab_size, dz)


def _mochi(c: dict[str, Any]) -> dict[str, Any]:
    """Mochi 1 (genmo/mochi-1-preview/transformer/config.json): 48 asymmetric MMDiT blocks, visual
    stream 24 x 128 = 3072 wide, text stream 1536 (pooled_projection_dim), SwiGLU FFN (4 x 2/3 x d);
    256 T5 tokens; 12 latent channels, 6x temporal / 8x spatial VAE; 848x480, 163 frames (5.4 s at
    30 fps), 64 steps, guidance 4.5 (MochiPipeline)."""
    heads, d = _heads(c)
    p = int(c.get("patch_size", 2))
    dz = dict(block="mmdit", gated_ffn=True, text_hidden_size=int(c.get("pooled_projection_dim", 1536)), patch=(1, p, p),
              vae_stride=(6, 8, 8), latent_channels=int(c.get("in_channels", 12)), text_len=int(c.get("max_sequence_length", 256)),
              text_dim=int(c.get("text_embed_dim", 4096)), text_encoder=T5_XXL.model_copy(update={"max_tokens": 256}),
              vae=MOCHI_VAE, guidance="cfg", default_guidance=4.5, default_width_px=848, default_height_px=480,
              default_frames=163, default_steps=64, max_frames=163, max_side_px=848, fps=30.0)
    return _spec_fields("mochi", d, int(c["num_layers"]), heads, int(4 * d * 2 / 3), T5_XXL.vocab_size, dz)


def _ltx(c: dict[str, Any]) -> dict[str, Any]:
    """LTX-Video (Lightricks/LTX-Video/transformer/config.json): 28 blocks of 32 x 64 with
    cross-attention to 128 T5 tokens; 128 latent channels, patch 1, VAE 32x32 spatial / 8x temporal;
    704x480, 161 frames, 50 steps, guidance 3, 24 fps (LTXPipeline); sides up to 1280 px and fewer
    than 257 frames (README)."""
    heads, d = _heads(c)
    dz = dict(block="cross", patch=(int(c.get("patch_size_t", 1)), int(c.get("patch_size", 1)), int(c.get("patch_size", 1))),
              vae_stride=(8, 32, 32), latent_channels=int(c.get("in_channels", 128)), text_len=128,
              text_dim=int(c.get("caption_channels", 4096)), text_encoder=T5_XXL.model_copy(update={"max_tokens": 128}),
              vae=LTX_VAE, guidance="cfg", default_guidance=3.0, default_width_px=704, default_height_px=480,
              default_frames=161, default_steps=50, max_frames=257, max_side_px=1280, fps=24.0)
    return _spec_fields("ltx-video", d, int(c["num_layers"]), heads, 4 * d, T5_XXL.vocab_size, dz)


def _opensora(c: dict[str, Any]) -> dict[str, Any]:
    """Open-Sora 2.0 MMDiT (hpcaitech/Open-Sora configs/diffusion/inference: FLUX-style, 19 double +
    38 single blocks, hidden 3072, 24 heads, in_channels 64 = 16 latent channels x 2x2 patch) over the
    HunyuanVideo VAE; T5-XXL (512) + CLIP-L; 768x768, 129 frames, 50 steps, guidance 7.5, 24 fps;
    three guidance branches per step (text and image guidance, `DiffusionSpec.cfg_branches`)."""
    d, heads = int(c["hidden_size"]), int(c["num_heads"])
    dz = dict(block="mmdit", patch=(1, 2, 2), vae_stride=(4, 8, 8), latent_channels=int(c.get("in_channels", 64)) // 4,
              text_len=512, text_dim=int(c.get("context_in_dim", 4096)), text_encoder=T5_XXL, extra_text_encoders=(CLIP_L,),
              vae=HUNYUAN_VAE, num_single_layers=int(c.get("depth_single_blocks", 38)), guidance="cfg",
              cfg_branches=3, default_guidance=7.5, default_width_px=768, default_height_px=768, default_frames=129,
              default_steps=50,
              max_frames=129, max_side_px=1280, fps=24.0)
    return _spec_fields("open-sora", d, int(c["depth"]), heads, int(float(c.get("mlp_ratio", 4.0)) * d),
                        T5_XXL.vocab_size, dz)


def _stepvideo(c: dict[str, Any]) -> dict[str, Any]:
    """Step-Video-T2V (stepfun-ai/Step-Video-T2V stepvideo/modules/model.py StepVideoModel: 48 blocks
    of 48 x 128 heads; each block self-attention with QK-norm and 3D RoPE, cross-attention to the
    text, GELU-tanh FFN 4 x d, AdaLN-single; in_channels 64, patch 1; caption_channels [6144, 1024]:
    Step-LLM's 320 tokens joined by Hunyuan-CLIP's 77). Video-VAE 16x16 spatial; frames in chunks of
    17, each 3 latent frames (stepvideo/diffusion/video_pipeline.py: latent frames =
    num_frames // 17 * 3; vae.py frame_len 17, latent_len 3). Pipeline defaults: 992x544, 204
    frames, 50 steps, guidance 9 (both branches as one batch: torch.cat([latents] * 2)), saved at
    25 fps (utils/video_process.py); the README tests up to 204 frames at 992x544 and 768x768."""
    heads, d = _heads(c)
    p = int(c.get("patch_size", 1))
    cap = c.get("caption_channels", [6144, 1024])
    cap = int(cap[0] if isinstance(cap, (list, tuple)) else cap)
    dz = dict(block="cross", patch=(1, p, p), vae_stride=(8, 16, 16), frame_chunk=17, chunk_latent_frames=3,
              latent_channels=int(c.get("in_channels", 64)), text_len=STEP_LLM.max_tokens + HUNYUAN_CLIP.max_tokens,
              text_dim=cap, text_encoder=STEP_LLM, extra_text_encoders=(HUNYUAN_CLIP,), vae=STEPVIDEO_VAE,
              guidance="cfg", default_guidance=9.0, default_width_px=992, default_height_px=544, default_frames=204,
              default_steps=50, max_frames=204, max_side_px=992, fps=25.0, encoders_off_chip=True)
    return _spec_fields("step-video", d, int(c["num_layers"]), heads, 4 * d, STEP_LLM.vocab_size, dz)


_DIFFUSERS = {"FluxTransformer2DModel": _flux, "StepVideoModel": _stepvideo, "SD3Transformer2DModel": _sd3, "UNet2DConditionModel": _unet,
              "SanaTransformer2DModel": _sana, "HunyuanVideoTransformer3DModel": _hunyuan,
              "CogVideoXTransformer3DModel": _cogvideox, "MochiTransformer3DModel": _mochi,
              "LTXVideoTransformer3DModel": _ltx, "OpenSoraMMDiT": _opensora,
              "WanTransformer3DModel": lambda c: _wan({"dim": c["num_attention_heads"] * c["attention_head_dim"],
                                                         "ffn_dim": c["ffn_dim"], "num_heads": c["num_attention_heads"],
                                                         "num_layers": c["num_layers"], "in_dim": c.get("in_channels", 16),
                                                         "text_dim": c.get("text_dim", 4096), "freq_dim": c.get("freq_dim", 256)})}


RECSYS_TYPES = ("dlrm_v2", "dlrm", "hstu")


def recsys_fields(config: dict[str, Any]) -> dict[str, Any]:
    """ModelSpec fields of a recommendation-model config (tokenfab's JSON, TorchRec argument names).

    DLRM: `embedding_dim`, `num_embeddings_per_feature`, `multi_hot_sizes`, `dense_arch_layer_sizes`,
    `over_arch_layer_sizes`, `dcn_num_layers`, `dcn_low_rank_dim`, `num_dense_features`.
    HSTU: `embedding_dim`, `num_blocks`, `num_heads`, `attention_dim`, `linear_dim`,
    `max_seq_len`, `num_candidates`, `num_items` (item table rows)."""
    mt = config.get("model_type")
    try:
        if mt == "hstu":
            users = int(config.get("num_users", 0))
            rec = RecsysSpec(
                variant="hstu", embedding_dim=config["embedding_dim"],
                table_rows=(int(config["num_items"]),) + ((users,) if users else ()),
                pooling=(1,) + ((0,) if users else ()), hstu_layers=config["num_blocks"], hstu_heads=config["num_heads"],
                hstu_attention_dim=config["attention_dim"], hstu_linear_dim=config["linear_dim"],
                history_len=config["max_seq_len"], num_candidates=config.get("num_candidates", 0),
                top_mlp=tuple(config.get("over_arch_layer_sizes", ())),
                embedding_bytes=config.get("embedding_bytes"),
            )
            layers, width = rec.hstu_layers, rec.hstu_heads * rec.hstu_linear_dim
            heads, hd = rec.hstu_heads, rec.hstu_attention_dim
        else:
            rows = tuple(int(r) for r in config["num_embeddings_per_feature"])
            rec = RecsysSpec(
                variant="dlrm", embedding_dim=config["embedding_dim"], table_rows=rows,
                pooling=tuple(int(p) for p in config.get("multi_hot_sizes", [1] * len(rows))),
                num_dense_features=config.get("num_dense_features", 13),
                bottom_mlp=tuple(config["dense_arch_layer_sizes"]), top_mlp=tuple(config["over_arch_layer_sizes"]),
                dcn_layers=config.get("dcn_num_layers", 0), dcn_rank=config.get("dcn_low_rank_dim", 0),
                samples_per_query=config.get("pairs_per_sample", 1.0),
                accuracy_target=config.get("accuracy_target", 0.99),
            )
            layers = len(rec.bottom_mlp) + len(rec.top_mlp) + rec.dcn_layers
            width = max(rec.bottom_mlp + rec.top_mlp)
            heads, hd = 1, rec.embedding_dim
    except KeyError as exc:
        raise SpecError(f"{exc.args[0]}: required field missing ({mt} config)") from None
    except ValueError as exc:
        raise SpecError(f"{mt} config: {exc}") from None
    return dict(family=mt, kind="recsys", hidden_size=rec.embedding_dim, num_layers=max(layers, 1),
                num_heads=heads, num_kv_heads=heads, head_dim=hd, v_head_dim=hd, intermediate_size=max(width, 1),
                vocab_size=max(sum(rec.table_rows), 1), max_context=max(rec.history_len + rec.num_candidates, 1),
                recsys=rec)
