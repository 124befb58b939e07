"""Image/video generation beyond Wan: MMDiT and joint blocks, SDXL's UNet, guidance modes, CFG
parallelism, step caching, VAE tiling, per-model size limits and the $ per image / video-second."""

import numpy as np
import pytest
from typer.testing import CliRunner

from tokenfab import api
from tokenfab.catalog import load_chip, load_model
from tokenfab.cli import app
from tokenfab.graph.diffusion import GenShape, dit_forward_ops
from tokenfab.mapping.workloads import estimate_generation
from tokenfab.specs import ModelSpec, SpecError
from tokenfab.specs.requests import GenerationRequest

# A FLUX-shaped toy: 2 heads of 16 (d = 32, FFN 4d = 128), one dual-stream and one single-stream block,
# latents packed 2x2 (in_channels 64 = 16 channels x 4); 8 text tokens.
TINY_FLUX = {"_class_name": "FluxTransformer2DModel", "attention_head_dim": 16, "num_attention_heads": 2,
             "num_layers": 1, "num_single_layers": 1, "in_channels": 64, "joint_attention_dim": 64,
             "guidance_embeds": True, "_pipeline": {"text_len": 8}}


def ops_of(model, tokens, batch=1.0, u=1, r=1):
    g = GenShape(tokens=float(tokens), ulysses=np.array([float(u)]), ring=np.array([float(r)]),
                 w_bytes=np.array([2.0]), batch=batch)
    return {op.name: op for op in dit_forward_ops(model, g)}


def test_mmdit_flops_per_step_by_hand():
    m = ModelSpec.from_hf_config(TINY_FLUX, "tiny-flux")
    dz = m.diffusion
    # 64 x 64 px: VAE /8 -> 8 x 8 latents, patch 2x2 -> 16 image tokens; + 8 text tokens = 24.
    assert dz.tokens(64, 64, 1) == 16 and dz.block == "mmdit" and dz.guidance == "distilled"
    ops = ops_of(m, 16)
    f = {k: float(np.asarray(o.flops).ravel()[0]) * o.count for k, o in ops.items()}
    assert f["dit_qkv"] == 2 * 16 * 96 * 32            # image stream q, k, v
    assert f["dit_text_qkv"] == 2 * 8 * 96 * 32        # text stream, its own weights
    assert f["dit_self_attention"] == 4 * 24 * 24 * 32  # joint attention over 24 tokens
    assert f["dit_ffn_up"] == 2 * 16 * 128 * 32 and f["dit_text_ffn_down"] == 2 * 8 * 32 * 128
    assert f["dit_single_linear1"] == 2 * 24 * (3 * 32 + 128) * 32  # fused qkv + MLP in
    assert f["dit_single_linear2"] == 2 * 24 * 32 * (32 + 128)      # fused out over [attn, MLP]
    assert f["dit_single_attention"] == 4 * 24 * 24 * 32
    # The whole forward, summed by hand: dual block image 98,304 + 32,768 + 131,072 + 131,072; text
    # 49,152 + 16,384 + 65,536 + 65,536; attention 73,728 x 2 (dual, single); single 344,064 + 245,760;
    # modulation 2 x 384 x 32 + 2 x 96 x 32; embeddings: patch 2 x 16 x 32 x 64, text 2 x 8 x 32 x 64,
    # time 2 x (2 x 32 x 32); head 2 x 16 x 64 x 32.
    by_hand = (98_304 + 32_768 + 131_072 + 131_072 + 49_152 + 16_384 + 65_536 + 65_536 + 2 * 73_728
               + 344_064 + 245_760 + 2 * 384 * 32 + 2 * 96 * 32 + 2 * 16 * 32 * 64 + 2 * 8 * 32 * 64
               + 2 * 2 * 32 * 32 + 2 * 16 * 64 * 32)
    gemm_attn = sum(v for k, v in f.items() if ops[k].kind in ("gemm", "attention"))
    assert gemm_attn == by_hand


def test_flux_parameters_and_a_step_costs_steps_times_forwards():
    assert load_model("flux.1-dev").total_params() / 1e9 == pytest.approx(12.0, rel=0.03)
    assert load_model("sd3.5-large").total_params() / 1e9 == pytest.approx(8.1, rel=0.03)
    assert load_model("sdxl").total_params() / 1e9 == pytest.approx(2.567, rel=0.03)
    assert load_model("hunyuanvideo-13b").total_params() / 1e9 == pytest.approx(13.0, rel=0.05)
    assert load_model("sana-1.6b").total_params() / 1e9 == pytest.approx(1.6, rel=0.03)
    c = load_chip("h100-sxm")
    dev = estimate_generation(load_model("flux.1-dev"), c, GenerationRequest(steps=10), num_chips=1)
    assert dev.forwards_per_step == 1  # guidance distilled into one forward
    sd3 = estimate_generation(load_model("sd3.5-large"), c, GenerationRequest(steps=10), num_chips=1)
    assert sd3.forwards_per_step == 2 and sd3.denoise_s == pytest.approx(10 * 2 * sd3.forward_ms / 1e3)


def test_unet_conv_in_and_attention_by_hand():
    m = load_model("sdxl")
    ops = ops_of(m, 128 * 128)  # 1024 px: 128 x 128 latents
    # conv_in: 3x3 over 4 channels to 320 at 16,384 pixels: 2 x 16384 x 320 x 36.
    assert float(ops["unet_conv_in"].flops) == 2 * 16384 * 320 * 36
    # level 2 (32 x 32 = 1,024 px, 1280 channels): 10 blocks of self-attention, 4 x 1024^2 x 1280 each.
    assert ops["unet_down2_attn0_self_attention"].count == 10
    assert float(ops["unet_down2_attn0_self_attention"].flops) == 4 * 1024 * 1024 * 1280
    assert "unet_down0_attn0_qkv" not in ops  # the first level has no attention in SDXL


def test_cfg_batched_parallel_and_step_cache():
    m, c = load_model("sd3.5-large"), load_chip("h100-sxm")
    seq = estimate_generation(m, c, GenerationRequest(steps=8, cfg_parallel=False), num_chips=1)
    par = estimate_generation(m, c, GenerationRequest(steps=8, cfg_parallel=True), num_chips=2)
    assert par.cfg_parallel == 2 and par.forwards_per_step == 1
    assert par.denoise_s < 0.55 * seq.denoise_s  # half the forwards, a small gather per step
    bat = estimate_generation(m, c, GenerationRequest(steps=8, cfg_batched=True, cfg_parallel=False), num_chips=1)
    assert bat.forwards_per_step == 1 and bat.denoise_s <= seq.denoise_s * 1.001
    # FBCache skipping half the steps still runs the first of 38 blocks: 1 - 0.5 x (1 - 1/38).
    cached = estimate_generation(m, c, GenerationRequest(steps=8, cfg_parallel=False, cache_skip_rate=0.5,
                                                         cache_kind="fbcache"), num_chips=1)
    assert cached.denoise_s == pytest.approx(seq.denoise_s * (1 - 0.5 * (1 - 1 / 38)))
    tea = estimate_generation(m, c, GenerationRequest(steps=8, cfg_parallel=False, cache_skip_rate=0.5,
                                                      cache_kind="teacache"), num_chips=1)
    assert tea.denoise_s == pytest.approx(seq.denoise_s / 2)


def test_open_sora_runs_three_guidance_branches_per_step():
    """Open-Sora 2.0's I2V denoiser (opensora/utils/sampling.py) evaluates the conditional, the
    text-unconditional and the image-unconditional branch every step: 3 forwards (or one of batch 3),
    3 prompts through the text encoders, and CFG parallelism over 3 chip groups."""
    m, c = load_model("open-sora-2.0-11b"), load_chip("h100-sxm")
    assert m.diffusion.cfg_branches == 3 and load_model("sd3.5-large").diffusion.cfg_branches == 2
    req = dict(width_px=256, height_px=256, frames=33, steps=4)
    seq = estimate_generation(m, c, GenerationRequest(**req, cfg_parallel=False), num_chips=1)
    # No step caching: denoise = steps x 3 forwards x one forward's time.
    assert seq.forwards_per_step == 3
    assert seq.denoise_s == pytest.approx(4 * 3 * seq.forward_ms / 1e3)
    bat = estimate_generation(m, c, GenerationRequest(**req, cfg_batched=True, cfg_parallel=False), num_chips=1)
    assert bat.forwards_per_step == 1 and bat.denoise_s <= seq.denoise_s * 1.001
    # One forward carries 3 latents: about 3x the work, the weights read once instead of 3 times.
    assert 2.5 * seq.forward_ms < bat.forward_ms <= 3.0 * seq.forward_ms
    par = estimate_generation(m, c, GenerationRequest(**req, cfg_parallel=True), num_chips=3)
    assert par.cfg_parallel == 3 and par.forwards_per_step == 1
    # T5-XXL + CLIP-L encode 3 prompts (the prompt and two negatives): as 3 unguided samples' prompts.
    # (The GPU's work: with CUDA graphs, so the eager launch floor does not mask it.)
    g = dict(req, cuda_graphs=True)
    seq_g = estimate_generation(m, c, GenerationRequest(**g, cfg_parallel=False), num_chips=1)
    three = estimate_generation(m, c, GenerationRequest(**g, guidance=1.0, batch=3), num_chips=1)
    one = estimate_generation(m, c, GenerationRequest(**g, guidance=1.0), num_chips=1)
    assert seq_g.text_encoder_s == pytest.approx(three.text_encoder_s) and seq_g.text_encoder_s > 2 * one.text_encoder_s


def test_vae_tiling_costs_work_and_saves_memory():
    m, c = load_model("flux.1-dev"), load_chip("h100-sxm")
    plain = estimate_generation(m, c, GenerationRequest(steps=4, vae_tiling=False), num_chips=1)
    tiled = estimate_generation(m, c, GenerationRequest(steps=4, vae_tiling=True), num_chips=1)
    assert tiled.vae_tiled and not plain.vae_tiled and tiled.vae_decode_s > plain.vae_decode_s
    from tokenfab.graph.diffusion import vae_decode_ops
    # 512 px tiles overlapping by 0.25: each output pixel's convolutions run 1 / 0.75^2 times on
    # average (the middle block's attention, left out here, spans a tile instead of the frame).
    dz = m.diffusion
    convs_only = m.model_copy(update={"diffusion": dz.model_copy(update={
        "vae": dz.vae.model_copy(update={"mid_attention": False})})})
    work = [float(vae_decode_ops(convs_only, 1024, 1024, 1, 1.0, t)[0].flops) for t in (False, True)]
    assert work[1] == pytest.approx(work[0] / 0.75 ** 2)
    # Hand count of diffusers' Decoder at 1024 px (latent 128^2), 3x3 convs in multiply-adds: middle
    # 4 x 9 x 512^2 x 128^2 = 155 G; stage 512 @128^2 6 convs 232 G + upsample @256^2 155 G; stage 512
    # @256^2 928 G + upsample @512^2 619 G; stage 256 @512^2 309 + 773 + 34 (1x1) G + upsample @1024^2
    # 619 G; stage 128 @1024^2 309 + 773 + 34 G; conv_out 4 G: 4.94 T MACs = 9.9 TFLOP. The stage rule
    # (every conv at the stage's own width) comes within 10%.
    assert work[0] / 1e12 == pytest.approx(9.9, rel=0.10)
    # a video VAE: the tiled workspace is a 256 px tile's, not the frame's
    v = load_model("hunyuanvideo-13b")
    big = estimate_generation(v, c, GenerationRequest(steps=1, frames=33, vae_tiling=False), num_chips=8)
    small = estimate_generation(v, c, GenerationRequest(steps=1, frames=33, vae_tiling=True), num_chips=8)
    assert small.memory_gb_per_chip["activations"] <= big.memory_gb_per_chip["activations"]


def test_throughput_at_a_batch_and_prices():
    m, c = load_model("flux.1-dev"), load_chip("h100-sxm")
    one = estimate_generation(m, c, GenerationRequest(steps=4), num_chips=1)
    four = estimate_generation(m, c, GenerationRequest(steps=4, batch=4), num_chips=1)
    assert four.batch == 4 and four.latency_s > one.latency_s
    assert four.samples_s == pytest.approx(4 / four.latency_s)
    row = api.with_cost(four, chip_specs={c.id: c})
    assert row["usd_per_image"] == pytest.approx(row["usd_per_chip_hour"] * four.latency_s / 3600 / 4)
    assert row["usd_per_video_second"] is None
    video = estimate_generation(load_model("cogvideox-2b"), c, GenerationRequest(steps=2), num_chips=1)
    vrow = api.with_cost(video, chip_specs={c.id: c})
    assert video.video_seconds == pytest.approx(49 / 8)
    assert vrow["usd_per_video_second"] == pytest.approx(vrow["usd_per_video"] / (49 / 8))


def test_two_experts_double_memory_not_compute():
    c = load_chip("h200-sxm")
    a14 = load_model("wan2.2-t2v-a14b")
    w21 = load_model("wan2.1-t2v-14b")
    assert a14.total_params() == 2 * w21.total_params() and a14.active_params() == w21.active_params()
    req = GenerationRequest(steps=2)
    e22 = estimate_generation(a14, c, req, num_chips=2)
    e21 = estimate_generation(w21, c, req, num_chips=2)
    assert e22.forward_ms == pytest.approx(e21.forward_ms)
    assert e22.memory_gb_per_chip["weights"] > 1.9 * e21.memory_gb_per_chip["weights"]


@pytest.mark.parametrize("args, message", [
    (["-m", "cogvideox-5b", "--set", "width_px=1280", "--set", "height_px=720"], "generates 720x480 only"),
    (["-m", "flux.1-dev", "--set", "frames=5"], "an image model"),
    (["-m", "wan2.1-t2v-14b", "--set", "frames=80"], "not 1 + a multiple of 4"),
    (["-m", "wan2.1-t2v-14b", "--set", "frames=161"], "at most 81 frames"),
    (["-m", "sd3.5-large", "--set", "width_px=1000"], "not a multiple of 16 px"),
    (["-m", "sd3.5-large", "--set", "width_px=4096"], "above the 3072 px"),
    (["-m", "step-video-t2v-30b", "--set", "frames=100"], "not a multiple of 17"),
    (["-m", "step-video-t2v-30b", "--set", "frames=221"], "at most 204 frames"),
    (["-m", "step-video-t2v-30b", "--set", "width_px=1000"], "not a multiple of 16 px"),
])
def test_sizes_the_model_cannot_take_fail_in_one_line(args, message):
    out = CliRunner().invoke(app, ["estimate", *args, "-c", "h100-sxm", "--chips", "1"])
    assert out.exit_code == 2, out.output
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.output


def test_request_checks_raise_spec_errors():
    with pytest.raises(SpecError, match="frames must be 1"):
        estimate_generation(load_model("sana-1.6b"), load_chip("h100-sxm"), GenerationRequest(frames=9))


def test_step_video_tokens_per_step_by_hand():
    m = load_model("step-video-t2v-30b")
    dz = m.diffusion
    # 48 blocks of 48 heads x 128 = 6144 wide (README 2.2); ~30B weights ("30 billion parameters"):
    # per block 4d^2 self + 4d^2 cross + 2 x d x 4d FFN = 16 x 6144^2 = 604M; x 48 = 29.0B + embeddings.
    assert (m.num_layers, m.num_heads, m.hidden_size) == (48, 48, 6144)
    assert m.total_params() / 1e9 == pytest.approx(29.3, abs=0.1)
    # 992x544x204: 204 frames = 12 VAE chunks of 17, 3 latent frames each -> 36; 16x16 spatial ->
    # 34 x 62; patch 1 -> 36 x 34 x 62 = 75,888 tokens per sample (the README's 8x temporal ratio
    # would give 25.5 latent frames: the code's chunking, not the ratio, sets the count).
    assert dz.latent_grid(544, 992, 204) == (36, 34, 62)
    assert dz.tokens(544, 992, 204) == 36 * 34 * 62 == 75_888
    assert dz.tokens(544, 992, 136) == 8 * 3 * 34 * 62 == 50_592
    assert dz.tokens(768, 768, 204) == 36 * 48 * 48 == 82_944
    # One step at guidance 9 runs both branches as one batch of 2 (torch.cat([latents] * 2)):
    # 151,776 tokens per forward; self-attention 4 x N x N_sample x d per sample per block.
    ops = ops_of(m, 75_888, batch=2.0)
    assert float(ops["dit_self_attention"].flops[0]) == 4.0 * 151_776 * 75_888 * 6144
    assert float(ops["dit_self_qkv"].flops[0]) == 2.0 * 151_776 * 3 * 6144 * 6144
    # Text keys: Step-LLM's 320 + Hunyuan-CLIP's 77 tokens per sample.
    assert float(ops["dit_cross_attention"].flops[0]) == 4.0 * 151_776 * 397 * 6144
    est = estimate_generation(m, load_chip("h200-sxm"), GenerationRequest(steps=2, cfg_batched=True), num_chips=1)
    assert est.latent_tokens == 75_888 and est.forwards_per_step == 1
    assert est.memory_gb_per_chip["text_encoder"] == 0.0 and est.memory_gb_per_chip["vae"] == 0.0  # own GPU
    assert est.video_seconds == pytest.approx(204 / 25)


def test_step_video_vae_decodes_its_deepest_stage_at_a_quarter_of_the_frames():
    from tokenfab.graph.diffusion import vae_decode_ops
    vae = load_model("step-video-t2v-30b").diffusion.vae
    # Stages 512, 512, 256, 128 channels (ch 128 x (4, 4, 2, 1)), 6 convs each (+4 middle-block convs
    # at the deepest), 27 taps; the deepest stage at 1/64 of the pixels and 1/4 of the frames
    # (the 2x unpatchify already doubled the 8x latent's frames), frames doubling at the next two:
    #   10*27*512^2/64/4 + 27*512^2/64*4/2      (deepest stage + its upsample conv)
    # + 6*27*512^2/16/2  + 27*512^2/16*4        (second)
    # + 6*27*256^2/4     + 27*256^2/4*4 + 6*27*128^2  -> x 2 FLOPs = 21,344,256 per output px-frame.
    assert vae.decode_temporal_stride == 4
    assert vae.decode_flops_per_output_px(vae.decode_temporal_stride) == 21_344_256
    m = load_model("step-video-t2v-30b")
    op = vae_decode_ops(m, 544, 992, 204)[0]
    # 544 x 992 x 204 output px-frames x 21.34 MFLOP + mid-block attention over 36 latent frames of
    # 34 x 62 px at 512 channels: 36 x 2 x (4 x 2108 x 512^2 + 2 x 2108^2 x 512).
    conv = 544 * 992 * 204 * 21_344_256
    attn = 36 * 2.0 * (4.0 * 2108 * 512 ** 2 + 2.0 * 2108 ** 2 * 512)
    assert float(op.flops) == pytest.approx(conv + attn)


def test_sdxl_unet_launches_by_hand_and_the_floor_only_binds_at_small_batch():
    from tokenfab.graph.diffusion import forward_launches
    sdxl = load_model("sdxl")
    # UNet2DConditionModel (SDXL): 70 BasicTransformerBlocks x 24 + 11 Transformer2DModel wrappers x 6
    # + down ResNets 68 (6 x 11, two 1x1 shortcuts) + 2 downsamplers + mid ResNets 22 + up ResNets
    # 9 x (cat + 11 + shortcut) = 117 + 2 upsamplers x 2 + conv_in / norm_out / SiLU / conv_out 4.
    assert forward_launches(sdxl) == 70 * 24 + 11 * 6 + 68 + 2 + 22 + 117 + 4 + 4 == 1963
    c = load_chip("h100-sxm")
    # MLPerf-style batch 32 (both guidance branches batched: 64 latents a forward): GPU-bound, the eager
    # launch floor (19.6 ms) does not bind; eager is slower only by its unfused elementwise passes.
    big = GenerationRequest(steps=2, batch=32, cfg_batched=True)
    eager = estimate_generation(sdxl, c, big, num_chips=1, precision="fp8")
    graphs = estimate_generation(sdxl, c, big.model_copy(update={"cuda_graphs": True}), num_chips=1, precision="fp8")
    assert not eager.host_bound and eager.latency_s > graphs.latency_s
    unfused = sum(v for k, v in eager.time_breakdown_ms.items() if k.endswith(("_norm_act", "_norms", "_stack_eager")))
    fused = sum(v for k, v in graphs.time_breakdown_ms.items() if k.endswith(("_norm_act", "_norms", "_stack_eager")))
    assert eager.forward_ms - graphs.forward_ms == pytest.approx(unfused - fused, rel=1e-9)


@pytest.mark.parametrize("model", ["flux.1-schnell", "sana-1.6b", "cogvideox-2b", "sdxl"])
def test_eager_launches_never_make_a_step_faster(model):
    m, c = load_model(model), load_chip("a100-sxm-80g")
    for size in (256, 512):
        req = GenerationRequest(width_px=size, height_px=size, frames=None, steps=2)
        if m.diffusion.is_video:
            req = req.model_copy(update={"width_px": None, "height_px": None, "frames": 9})
        eager = estimate_generation(m, c, req, num_chips=1)
        graphs = estimate_generation(m, c, req.model_copy(update={"cuda_graphs": True}), num_chips=1)
        assert eager.forward_ms >= graphs.forward_ms
        assert eager.forward_ms >= eager.launches_per_forward * 10e-3 * (1 - 1e-9)
