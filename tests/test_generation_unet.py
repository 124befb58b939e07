"""SDXL's UNet as NVIDIA's 8-bit engines and eager diffusers run it: which layers stay FP16, how
many HBM passes the unfused elementwise ops cost, and the softmax work of its head-dim-64 attention
(issue 18). Numbers worked by hand in the comments."""

import numpy as np
import pytest

from tokenfab.catalog import load_chip, load_model
from tokenfab.graph.diffusion import UNET_QUANT_LEVELS, GenShape, unet_forward_ops
from tokenfab.mapping.workloads import estimate_generation
from tokenfab.specs.requests import GenerationRequest


def ops_of(precision: str = "fp8", eager: bool = False, tokens: float = 16.0, batch: float = 1.0):
    g = GenShape(tokens=tokens, ulysses=np.array([1.0]), ring=np.array([1.0]), w_bytes=np.array([1.0]),
                 batch=batch, quant_level=UNET_QUANT_LEVELS.get(precision, 3.0), eager=eager)
    return {op.name: op for op in unet_forward_ops(load_model("sdxl"), g)}


def test_the_8bit_recipes_keep_their_fp16_layers():
    # ModelOpt's filter_func keeps conv_in, conv_out and the 1x1 shortcuts FP16 at every level.
    for p in ("int8", "fp8"):
        ops = ops_of(p)
        for name in ("unet_conv_in", "unet_conv_out", "unet_down1_res0_shortcut"):
            assert ops[name].meta.get("bf16_weights") and ops[name].w_bytes == 2.0
        assert ops["unet_down1_res0_conv1"].w_bytes[0] == 1.0 and not ops["unet_down1_res0_conv1"].meta
        assert ops["unet_down1_attn0_qkv"].w_bytes[0] == 1.0 and ops["unet_down1_attn0_ff_up"].w_bytes[0] == 1.0
    # Level 2.5 (MLPerf v4.0 int8): attention output projections and proj_in/out stay FP16 ...
    i8 = ops_of("int8")
    assert i8["unet_down1_attn0_o"].meta.get("bf16_weights") and i8["unet_down1_attn0_proj"].w_bytes == 2.0
    # ... level 3 (FP8) quantizes every linear layer.
    f8 = ops_of("fp8")
    assert f8["unet_down1_attn0_o"].w_bytes[0] == 1.0 and not f8["unet_down1_attn0_proj"].meta


def test_eager_elementwise_passes_by_hand():
    # A 4 x 4 latent (16 px), one sample, 2-byte activations.
    fused, eager = ops_of(eager=False), ops_of(eager=True)
    # down0_res0 (320 -> 320 at 16 px): fused 8 passes x 320 x 16 x 2 B = 81,920 B;
    # eager 5 x 320 (GroupNorm 3 + SiLU 2 on the input) + 12 x 320 (+temb 2, GroupNorm 3, SiLU 2,
    # residual add 3, / scale 2) = 5,440 x 16 x 2 B = 174,080 B.
    assert float(fused["unet_down0_res0_norm_act"].bytes) == 81_920
    assert float(eager["unet_down0_res0_norm_act"].bytes) == 174_080
    # down1_res0 widens 320 -> 640 at 4 px: eager (5 x 320 + 12 x 640) x 4 x 2 B = 74,240 B.
    assert float(eager["unet_down1_res0_norm_act"].bytes) == 74_240
    # A transformer block at c = 640 over 4 px: fused 18 c per token, eager 43 c (three LayerNorms 6,
    # two SDPA output copies 4, two rescales 4, three residual adds 9, GELU 8, gate multiply 12).
    assert float(fused["unet_down1_attn0_norms"].bytes) == 18 * 640 * 4 * 2
    assert float(eager["unet_down1_attn0_norms"].bytes) == 43 * 640 * 4 * 2
    # The Transformer2DModel wrapper: GroupNorm 3 + two permute copies 4 + residual add 3 = 10 c.
    assert float(eager["unet_down1_attn0_stack_eager"].bytes) == 10 * 640 * 4 * 2
    assert "unet_down1_attn0_stack_eager" not in fused
    # Matrix work is the same either way.
    for name in ("unet_down1_res0_conv1", "unet_down1_attn0_qkv", "unet_down1_attn0_self_attention"):
        assert float(np.max(fused[name].flops)) == float(np.max(eager[name].flops))


def test_softmax_work_of_head_dim_64_attention():
    # down1: 640 channels in 10 heads of 64; 4 px attend to 4 px: 4 x 4 x 10 = 160 exponentials
    # against 4 x 4 x 4 x 640 = 40,960 matmul FLOPs: 256 FLOPs per exp = 4 x head dim.
    op = ops_of()["unet_down1_attn0_self_attention"]
    assert float(op.sfu_ops) == 160 and float(op.flops) == 40_960
    assert float(op.flops) / float(op.sfu_ops) == 4 * 64
    assert float(op.vector_flops) == 4 * 160  # running max, sum, scale-and-subtract per score


def test_eager_is_never_faster_and_fp16_layers_slow_an_8bit_unet():
    sdxl, c = load_model("sdxl"), load_chip("a100-sxm-80g")
    req = GenerationRequest(width_px=1024, height_px=1024, steps=30, guidance=5.0, cfg_batched=True)
    eager = estimate_generation(sdxl, c, req, num_chips=1, precision="bf16")
    graphs = estimate_generation(sdxl, c, req.model_copy(update={"cuda_graphs": True}), num_chips=1, precision="bf16")
    assert eager.latency_s > graphs.latency_s
    # H100 int8 (level 2.5) keeps more layers FP16 than fp8 (level 3): at the same 8-bit peak it is slower.
    h = load_chip("h100-sxm")
    big = GenerationRequest(width_px=1024, height_px=1024, steps=20, guidance=8.0, batch=8, cfg_batched=True,
                            cuda_graphs=True)
    # TensorRT engines (as NVIDIA's harness builds them) fuse the activation quantization.
    i8 = estimate_generation(sdxl, h, big, num_chips=1, precision="int8", framework="tensorrt")
    f8 = estimate_generation(sdxl, h, big, num_chips=1, precision="fp8", framework="tensorrt")
    assert h.peak_tflops("int8") == pytest.approx(h.peak_tflops("fp8"))
    assert i8.forward_ms > f8.forward_ms


def test_eager_dit_block_passes_by_hand():
    from tokenfab.graph.diffusion import dit_forward_ops, eager_block_passes
    flux = load_model("flux.1-dev")
    # FLUX double block per token: AdaLN 6 + q/k RMS norms 2 x 16 + q/k/v cats 6 + rotary 2 x 26 + copy 2
    # + post-attention 24 = 122; the fused model already charges 24: 98 more. Single block: 6 + 8 + 32
    # + 52 + 2 + 10 + 5 = 115 -> 91 more.
    assert eager_block_passes(flux) == (98.0, 91.0)
    # Liger's fused RoPE (Open-Sora 2.0) reads and writes q and k once: 2 x (26 - 2) = 48 fewer.
    assert eager_block_passes(flux, fused_rope=True) == (50.0, 43.0)
    one = np.array([1.0])
    g = dict(tokens=4096.0, ulysses=one, ring=one, w_bytes=one * 2)
    eager = {op.name: op for op in dit_forward_ops(flux, GenShape(**g, eager=True))}
    fused = {op.name: op for op in dit_forward_ops(flux, GenShape(**g))}
    s, d = 4096 + flux.diffusion.text_len, flux.hidden_size
    assert float(np.max(eager["dit_eager_elementwise"].bytes)) == 98 * s * d * 2
    assert eager["dit_eager_elementwise"].count == flux.num_layers
    assert "dit_eager_elementwise" not in fused
    # Kernels: FLUX dual block 91 launches less 13 matrix kernels (6 projections, SDPA, 2 outputs, 4 FFN
    # linears) less the fused model's 7 (norms 6, GELU 1) = 71; single block 47 - 6 - 4 = 37.
    from tokenfab.graph.diffusion import eager_block_kernels
    assert eager_block_kernels(flux) == (71, 37)
    assert eager["dit_eager_elementwise"].kernels == 71


@pytest.mark.parametrize("model", ["flux.1-schnell", "sana-1.6b", "cogvideox-2b"])
def test_unfused_elementwise_only_slows_an_eager_dit(model):
    m, c = load_model(model), load_chip("h100-sxm")
    req = GenerationRequest(steps=2)
    eager = estimate_generation(m, c, req, num_chips=1, precision="bf16")
    fused = estimate_generation(m, c, req, num_chips=1, precision="bf16", eager_elementwise=False)
    rope = estimate_generation(m, c, req, num_chips=1, precision="bf16", fused_rope=True)
    assert fused.latency_s < rope.latency_s <= eager.latency_s
