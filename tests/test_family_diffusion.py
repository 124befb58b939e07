"""Diffusion transformers (Wan2.1): latent tokens, one forward's FLOPs, sequence parallelism."""

import numpy as np
import pytest

from tokenfab.catalog import load_chip, load_model
from tokenfab.graph.diffusion import GenShape, dit_forward_ops
from tokenfab.specs import ModelSpec, SpecError
from tokenfab.specs.requests import GenerationRequest
from tokenfab.mapping.workloads import estimate_generation

TINY = {"_class_name": "WanModel", "dim": 64, "ffn_dim": 128, "num_heads": 4, "num_layers": 2, "in_dim": 16,
        "out_dim": 16, "text_len": 512, "freq_dim": 256, "model_type": "t2v"}


@pytest.fixture
def dit():
    return ModelSpec.from_hf_config(TINY, "tiny-wan")


def test_latent_tokens_from_resolution_frames_vae_and_patch():
    wan = load_model("wan2.1-t2v-14b").diffusion
    # 1280x720x81: VAE (4, 8, 8) -> 21 x 90 x 160; patch (1, 2, 2) -> 21 x 45 x 80 = 75,600.
    assert wan.tokens(720, 1280, 81) == 75_600
    assert wan.tokens(480, 832, 81) == 32_760
    assert wan.tokens(1024, 1024, 1) == 64 * 64  # one image: one latent frame


def test_wan_parameter_counts():
    assert load_model("wan2.1-t2v-14b").total_params() / 1e9 == pytest.approx(14.0, rel=0.03)
    assert load_model("wan2.1-t2v-1.3b").total_params() / 1e9 == pytest.approx(1.3, rel=0.1)
    assert load_model("wan2.1-t2v-14b").kind == "diffusion"


def _ops(dit, u, r, tokens=32.0):
    g = GenShape(tokens=tokens, ulysses=np.array([float(u)]), ring=np.array([float(r)]), w_bytes=np.array([2.0]))
    return {op.name: op for op in dit_forward_ops(dit, g)}


def test_forward_flops_by_hand(dit):
    ops = _ops(dit, 1, 1)
    # 64x64x5 video -> 2 x 4 x 4 = 32 tokens. Self-attention: 4 x 32 x 32 x 64; QKV: 2 x 32 x 192 x 64.
    assert dit.diffusion.tokens(64, 64, 5) == 32
    assert float(ops["dit_self_attention"].flops[0]) == 4 * 32 * 32 * 64
    assert float(ops["dit_self_qkv"].flops[0]) == 2 * 32 * 192 * 64
    assert float(ops["dit_cross_attention"].flops[0]) == 4 * 32 * 512 * 64
    assert ops["dit_self_attention"].count == 2


def test_ulysses_splits_tokens_and_heads_with_all_to_alls(dit):
    one, two = _ops(dit, 1, 1), _ops(dit, 2, 1)
    assert float(two["dit_self_attention"].flops[0]) == float(one["dit_self_attention"].flops[0]) / 2
    assert float(two["dit_self_qkv"].flops[0]) == float(one["dit_self_qkv"].flops[0]) / 2
    # q, k, v of the chip's 16 tokens in (bf16), across the 2-chip group.
    assert float(two["dit_ulysses_a2a_in"].bytes[0]) == 3 * 16 * 64 * 2
    ring = _ops(dit, 1, 2)
    assert float(ring["dit_self_attention"].flops[0]) == float(two["dit_self_attention"].flops[0])
    assert float(ring["dit_ring_kv"].bytes[0]) == 2 * 32 * 64 * 2


def test_estimate_prices_a_video_and_guidance_doubles_denoising():
    m, c = load_model("wan2.1-t2v-1.3b"), load_chip("h100-sxm")
    cfg = estimate_generation(m, c, GenerationRequest(steps=10), num_chips=1, precision="bf16")
    plain = estimate_generation(m, c, GenerationRequest(steps=10, guidance=1.0), num_chips=1, precision="bf16")
    assert cfg.forwards_per_step == 2 and plain.forwards_per_step == 1
    assert cfg.denoise_s == pytest.approx(2 * plain.denoise_s)
    assert cfg.latency_s == pytest.approx(cfg.text_encoder_s + cfg.denoise_s + cfg.vae_decode_s)
    assert cfg.video_seconds == pytest.approx(81 / 16)


def test_more_chips_generate_faster():
    m, c = load_model("wan2.1-t2v-14b"), load_chip("h100-sxm")
    req = GenerationRequest(steps=5)
    one = estimate_generation(m, c, req, num_chips=1, precision="bf16")
    eight = estimate_generation(m, c, req, num_chips=8, precision="bf16")
    assert eight.denoise_s < one.denoise_s / 5
    with pytest.raises(SpecError, match="ulysses"):
        estimate_generation(load_model("wan2.1-t2v-1.3b"), c, req, num_chips=8, ulysses=8)


def test_estimate_cli_dispatches_on_model_kind():
    from typer.testing import CliRunner

    from tokenfab.cli import app
    out = CliRunner().invoke(app, ["estimate", "-m", "wan2.1-t2v-1.3b", "-c", "h100-sxm", "--chips", "1",
                                   "--set", "steps=5", "--json"])
    assert out.exit_code == 0, out.output
    assert '"usd_per_video"' in out.output and '"latency_s"' in out.output


def test_eager_launch_floor_of_a_tiny_dit_by_hand(dit):
    from tokenfab.graph.diffusion import forward_launches
    from tokenfab.perf.framework import EAGER_KERNEL_LAUNCH_US
    # A Wan-style block launches 14 (modulation, 2 LayerNorms, 2 modulates, gates, residual adds)
    # + 36 (q/k/v, 2 RMS norms x 7, 2 rotaries x 8, SDPA, copy, o) + 6 (cross-attention) + 3 (FFN)
    # = 59 kernels; 2 blocks -> 118 per forward.
    assert forward_launches(dit) == 118
    # 2 steps x 2 guidance forwards (sequential CFG) x 118 launches x 10 us = 4.72 ms: the toy's GPU
    # work (~0.4 ms a forward) is far below the host's 1.18 ms, so the host sets the pace.
    c = load_chip("h100-sxm")
    req = GenerationRequest(width_px=64, height_px=64, frames=5, steps=2, guidance=5.0, cfg_parallel=False)
    eager = estimate_generation(dit, c, req, num_chips=1, precision="bf16")
    assert EAGER_KERNEL_LAUNCH_US == 10.0
    assert eager.host_bound and eager.launches_per_forward == 118
    assert eager.denoise_s == pytest.approx(2 * 2 * 118 * 10e-6)
    graphs = estimate_generation(dit, c, req.model_copy(update={"cuda_graphs": True}), num_chips=1, precision="bf16")
    assert not graphs.host_bound and graphs.launches_per_forward == 0
    assert graphs.denoise_s < eager.denoise_s / 2


def test_text_encoder_and_vae_launches_by_hand():
    from tokenfab.graph.diffusion import text_encoder_launches, vae_decode_launches
    flux, wan = load_model("flux.1-dev"), load_model("wan2.1-t2v-14b")
    # T5-XXL 24 layers x 32 (2 RMS norms x 7 + attention 11 + 2 adds + gated FFN 5) + CLIP-L 12 x 15.
    assert text_encoder_launches(flux) == 24 * 32 + 12 * 15 == 948
    # SD/FLUX VAE decoder: 4 stages x 3 ResNets x 8 + 3 upsamplers x 2 + mid (2 ResNets x 8 + attention 7)
    # + conv_in / norm_out / SiLU / conv_out 4 = 129; Wan's causal decoder runs per latent frame (81 -> 21).
    assert vae_decode_launches(flux, 1024, 1024, 1) == 96 + 6 + 16 + 7 + 4 == 129
    assert vae_decode_launches(wan, 480, 832, 81) == 21 * 129
