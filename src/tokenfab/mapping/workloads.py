"""Estimates for workloads without prefill/decode steps: diffusion generation and recommendation.

`estimate_generation(model, chip, request)` — seconds and $ per generated image or video (any
DiffusionSpec denoiser: Wan/LTX/SANA cross-attention DiTs, SD3.5/FLUX/HunyuanVideo/Mochi/Open-Sora
MMDiTs, CogVideoX, SDXL's UNet): its text encoders, `steps x guidance-forwards` denoiser forwards
(classifier-free guidance sequential, batched or CFG-parallel on two chip groups; distilled
guidance in one forward), step caching (a share of the steps skipped), sequence parallelism
(Ulysses x ring, optional FSDP), VAE decode (tiled when the frame does not fit) — latency of a
batch, samples/hour per chip; searched over chip count, Ulysses/ring split, FSDP and CFG groups;
a size or length the model cannot take is a one-line SpecError.
`estimate_recsys(model, chip, request)` — samples/s and latency of a recommender (DLRM-v2, HSTU):
searched over chip count, table sharding, precision and batch, the batch never above what the
latency SLO allows; tables that do not fit HBM spill to host DRAM or SSD behind an HBM cache.
Both are vectorized over mapping points like `mapping.search`, and `api.estimate` / `compare`
dispatch to them by the model's kind, so `tokenfab estimate -m flux.1-dev -c h100-sxm` works.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tokenfab.graph.diffusion import (UNET_QUANT_LEVELS, GenShape, dit_forward_ops, forward_launches, text_encoder_launches, text_encoder_ops,
                                      vae_decode_launches, vae_decode_ops)
from tokenfab.graph.recsys import RecShape
from tokenfab.graph.recsys import step_ops as recsys_ops
from tokenfab.mapping import memory
from tokenfab.mapping.search import DEFAULT_CHIP_COUNTS, chip_hardware, compute_precision, compute_tflops
from tokenfab.perf.framework import EAGER_KERNEL_LAUNCH_US, efficiency_under
from tokenfab.perf.evaluate import Hardware, bound_shares, time_ops, total_seconds, unit_peaks
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, bytes_per_element
from tokenfab.specs.requests import GenerationRequest, RecsysRequest

BOUNDS = ("compute", "memory", "communication")
VAE_WORKSPACE_FRAMES = 4
"""Output frames the chunked causal VAE decoder holds feature maps for at once."""


class GenerationEstimate(BaseModel):
    """One deployment generating videos or images with a diffusion denoiser."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["diffusion"] = "diffusion"
    model: str
    chip: str
    num_chips: int
    ulysses: int
    ring: int
    fsdp: bool
    cfg_parallel: int = Field(description="chip groups the guidance branches run on (2: CFG parallel)")
    weight_precision: str
    width_px: int
    height_px: int
    frames: int
    steps: int
    batch: int = Field(description="samples generated together (latency is the whole batch's)")
    forwards_per_step: int
    cache_skip_rate: float
    latent_tokens: int
    video_seconds: float = Field(description="seconds of video per sample (0 for images)")
    text_encoder_s: float
    denoise_s: float
    vae_decode_s: float
    vae_tiled: bool
    latency_s: float = Field(description="seconds to generate the batch, prompt to decoded pixels")
    forward_ms: float
    launches_per_forward: float = Field(default=0.0, description="host kernel launches of one eager denoiser forward (0: CUDA graphs)")
    host_bound: bool = Field(default=False, description="the eager host launches, not the GPU, set the forward's time")
    videos_per_hour_per_chip: float = Field(description="samples (videos or images) per hour per chip")
    samples_s: float = Field(description="samples per second of the deployment")
    memory_gb_per_chip: dict[str, float]
    bound: str
    meets_slo: bool
    slo_latency_s: float | None
    spec_confidence: str
    efficiency_source: str
    time_breakdown_ms: dict[str, float] = Field(default_factory=dict)


class RecsysEstimate(BaseModel):
    """One deployment scoring recommendation requests."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["recsys"] = "recsys"
    model: str
    chip: str
    num_chips: int
    shard: int = Field(description="chips the embedding tables are sharded over (1: replicated)")
    weight_precision: str
    embedding_precision: str
    batch: int = Field(description="pairs (DLRM) or requests (HSTU) per chip per step")
    step_ms: float
    latency_ms: float
    pairs_s_per_chip: float
    samples_s_per_chip: float
    samples_s: float
    embedding_tier: str = Field(default="hbm", description="where the embedding rows live: hbm, dram or ssd (HBM then caches the hottest)")
    embedding_hit_rate: float = Field(default=1.0, description="share of lookups served from HBM")
    accuracy_target: float = 0.99
    memory_gb_per_chip: dict[str, float]
    bound: str
    meets_slo: bool
    slo_latency_ms: float | None
    spec_confidence: str
    efficiency_source: str
    time_breakdown_ms: dict[str, float] = Field(default_factory=dict)


def _precisions(chip: ChipSpec, precision: str | None) -> tuple[str, ...]:
    if precision:
        return (precision,)
    return ("bf16", "fp8") if chip.fp8_tflops else (("bf16", "int8") if chip.int8_tops else ("bf16",))


def _counts(chip: ChipSpec, num_chips: int | None, max_chips: int) -> list[int]:
    if num_chips:
        return [num_chips]
    return sorted({n for n in DEFAULT_CHIP_COUNTS if n <= min(max_chips, chip.scaleup_domain)})


def _hw(chip, eff, system, peak, frac) -> Hardware:
    """Hardware at an explicit peak: only the VAE decoder's convolutions (`vae_hardware`), whose
    precision no weight precision of the denoiser describes; everything else goes through
    `mapping.search.chip_hardware`."""
    return Hardware(gemm_tflops=peak, attention_tflops=chip.bf16_tflops, hbm_tb_s=chip.hbm_tb_s,
                    cores=chip.cores or 100, eff=eff, system=system, gemm_frac=frac, **unit_peaks(chip))


# ---- diffusion --------------------------------------------------------------------------------

def generation_grid(model: ModelSpec, chip: ChipSpec, counts, precisions, cfg_options=(1,)):
    """Valid (chips, ulysses, ring, fsdp, cfg groups, precision index) points as arrays. A UNet
    runs on one chip (no sequence parallelism); CFG parallelism takes 2 groups of chips."""
    rows = []
    unet = model.diffusion.block == "unet"
    for n in counts:
        for cfg in cfg_options:
            if n % cfg:
                continue
            sp = n // cfg
            if unet and sp > 1:
                continue
            for u in range(1, sp + 1):
                if sp % u or model.num_heads % u:
                    continue
                for fsdp in ((0, 1) if sp > 1 else (0,)):
                    for p in range(len(precisions)):
                        rows.append((n, u, sp // u, fsdp, cfg, p))
    if not rows:
        raise SpecError(f"no valid sequence-parallel layout of {model.id} on {list(counts)} chips")
    a = np.array(rows, dtype=float)
    return {k: a[:, i] for i, k in enumerate(("num_chips", "ulysses", "ring", "fsdp", "cfg", "prec"))}


FA2_HOPPER_FRAC = 0.35
"""Share of dense bf16 peak FlashAttention-2 reaches on H100: "FlashAttention-2 achieves only 35%
utilization on the H100 GPU" (Shah et al., FlashAttention-3, arXiv 2407.08608, abstract). FA2 does
not use Hopper's asynchronous tensor-core instructions, so the same cap holds on later CUDA chips."""


def attention_efficiency(eff, chip: ChipSpec, requested: str, pipeline: str):
    """The chip's efficiency with the attention fraction of the kernel the pipeline calls: FA2-class
    kernels on CUDA chips with FP8 tensor cores (Hopper and later) run at FA2_HOPPER_FRAC; FA3 /
    TensorRT kernels and other chips keep the calibrated fraction."""
    kernel = pipeline if requested == "pipeline" else requested
    if kernel == "fa2" and chip.software == "cuda" and chip.fp8_tflops:
        return eff.model_copy(update={"attention_compute_frac": min(eff.attention_compute_frac, FA2_HOPPER_FRAC)})
    return eff


def _gen_precisions(model: ModelSpec, chip: ChipSpec, precision: str | None) -> tuple[str, ...]:
    """The stated precision, else the one the model is released / run in (bf16 for most DiTs,
    fp16 for SDXL), computed at the bf16 rate."""
    if precision:
        return (precision,)
    return (model.diffusion.precision if model.diffusion.precision in ("bf16", "fp16") else "bf16",)


VAE_PRECISIONS = ("fp32", "fp16", "bf16", "int8", "fp8")
"""Precisions a VAE decoder may be stated to run in (`estimate_generation(vae_precision=)`)."""


def vae_hardware(chip: ChipSpec, eff, system: SystemSpec, vae_dtype_bytes: float,
                 precision: str | None = None) -> tuple[Hardware, float]:
    """(hardware, bytes per feature-map element) of the VAE decoder.

    None: the VAE's own dtype; fp32 computes on TF32 tensor cores (PyTorch's cuDNN default, and
    TensorRT's `tf32` builder flag on an fp32 engine: NVIDIA's MLPerf v4.0 SDXL VAE), 2 bytes at
    the bf16 peak. `fp32` / `fp16` / `bf16`: that dtype for the convolutions and the maps. `int8` /
    `fp8`: the convolutions at the chip's 8-bit peak and achievable fraction (`compute_tflops`,
    `Efficiency.gemm_frac`, as the denoiser's quantized layers), the maps still in the VAE's own
    dtype, because a ModelOpt-quantized VAE quantizes only its convolutions and keeps the norms,
    activations and residuals unquantized (NVIDIA MLPerf v4.1, closed/NVIDIA/code/stable-diffusion-xl/
    tensorrt/README.md: "VAE is quantized to INT8-FP32"). The middle block's attention (6% of the
    SDXL VAE's FLOPs at 1024 px) is timed at the same rate: an estimate."""
    if precision is not None and precision not in VAE_PRECISIONS:
        raise SpecError(f"VAE precision {precision!r} is not one of {', '.join(VAE_PRECISIONS)}")
    if precision is None:
        precision = "fp32" if vae_dtype_bytes >= 4 else "bf16"
    if precision == "fp32":
        peak = chip.peak_tflops("tf32") or chip.peak_tflops("fp32") or chip.bf16_tflops / 2
        return _hw(chip, eff, system, peak, eff.gemm_compute_frac), 4.0
    if precision in ("fp16", "bf16"):
        return _hw(chip, eff, system, chip.bf16_tflops, eff.gemm_compute_frac), 2.0
    kernel = compute_precision(chip, precision)
    return _hw(chip, eff, system, compute_tflops(chip, precision), eff.gemm_frac(kernel)), vae_dtype_bytes


def estimate_generation(model: ModelSpec, chip: ChipSpec, request: GenerationRequest = GenerationRequest(),
                        num_chips: int | None = None, precision: str | None = None, system: SystemSpec | None = None,
                        max_chips: int = 64, ulysses: int | None = None, eager_elementwise: bool | None = None,
                        fused_rope: bool = False, vae_precision: str | None = None,
                        framework: str | None = None) -> GenerationEstimate:
    """Fastest-per-chip deployment generating one request (highest samples/hour/chip meeting the
    latency SLO; ties: lower latency, fewer chips). Raises a one-line SpecError for a size or
    length the model cannot take and when nothing fits memory. `eager_elementwise`: the pipeline's
    elementwise ops run unfused, each with its own HBM round trip (default: without CUDA graphs, as
    diffusers runs them); `fused_rope`: its eager blocks rotate q/k with one fused kernel;
    `vae_precision`: the VAE decoder's own precision when the pipeline runs it in another than the
    VAE's dtype (`vae_hardware`; the denoiser's is `precision`); `framework`: the serving software's
    profile (`perf.framework.profile_for`; None: neutral)."""
    if model.kind != "diffusion":
        raise SpecError(f"{model.id} is not a diffusion model")
    dz = model.diffusion
    W, H = request.width_px or dz.default_width_px, request.height_px or dz.default_height_px
    frames, steps = request.frames or dz.default_frames, request.steps or dz.default_steps
    if request.frames is None and not dz.is_video:
        frames = 1
    dz.check_request(model.id, W, H, frames)
    guidance = dz.default_guidance if request.guidance is None else request.guidance
    cfg = dz.guidance == "cfg" and guidance > 1.0
    B = float(request.batch)
    branches = dz.cfg_branches if cfg else 1  # guidance forwards per step (Open-Sora 2.0: 3)
    cfg_options = (1,) if not cfg else ((branches,) if request.cfg_parallel else (1,) if request.cfg_parallel is False
                                        else (1, branches))
    system = system or SystemSpec.for_chip(chip)
    eff = attention_efficiency(efficiency_under(chip, framework), chip, request.attention_kernel, dz.attention_kernel)
    precisions = _gen_precisions(model, chip, precision)
    g = generation_grid(model, chip, _counts(chip, num_chips, max_chips), precisions, cfg_options)
    if ulysses:
        keep = g["ulysses"] == ulysses
        g = {k: v[keep] for k, v in g.items()}
        if not keep.any():
            raise SpecError(f"ulysses {ulysses} does not divide {model.num_heads} heads and the chip count")
    cfgp = g["cfg"]
    # Guidance branches (2, or 3 with image guidance): one forward at batch branches x B (batched),
    # that many forwards of B one after the other, or (CFG parallel) one forward of B on each of
    # `branches` chip groups.
    if not cfg:
        forwards, fwd_batch = 1, np.full_like(cfgp, B)
    elif request.cfg_batched:
        forwards, fwd_batch = 1, np.where(cfgp > 1, B, branches * B)
    else:
        forwards, fwd_batch = branches, np.full_like(cfgp, B)
    fwd_count = np.where(cfgp > 1, 1.0, float(forwards))
    prec = g["prec"].astype(int)
    w_bytes = np.array([bytes_per_element(p) for p in precisions])[prec]
    hw = chip_hardware(model, chip, system, eff, precisions, None, prec)
    N = dz.tokens(H, W, frames)
    shape = GenShape(tokens=float(N), ulysses=g["ulysses"], ring=g["ring"], w_bytes=w_bytes, fsdp=g["fsdp"],
                     batch=fwd_batch, cfg_parallel=cfgp, quant_level=UNET_QUANT_LEVELS.get(precisions[0], 3.0),
                     eager=(not request.cuda_graphs) if eager_elementwise is None else eager_elementwise,
                     fused_rope=fused_rope)
    fwd = time_ops(dit_forward_ops(model, shape), hw)
    t_gpu = total_seconds(fwd) + eff.step_overhead_ms * 1e-3
    # Eager pipelines: the host issues every kernel of the forward at EAGER_KERNEL_LAUNCH_US each;
    # a forward takes the longer of the GPU's work and the host's launches (CUDA graphs: the GPU's).
    launches = 0.0 if request.cuda_graphs else forward_launches(model)
    t_host = launches * EAGER_KERNEL_LAUNCH_US * 1e-6
    t_fwd = np.maximum(t_gpu, t_host)
    # Step caching: a skipped step reuses the cached residual (FBCache still runs the first block).
    probe = 1.0 / (model.num_layers + dz.num_single_layers) if request.cache_kind == "fbcache" else 0.0
    step_share = 1.0 - request.cache_skip_rate * (1.0 - probe)
    hw16 = chip_hardware(model, chip, system, eff, ("bf16",))
    prompts = B * branches  # each branch's prompt (the negative one for unconditional branches)
    t_text = 0.0 if request.t5_on_cpu else float(total_seconds(time_ops(text_encoder_ops(model, prompts), hw16)))
    if not request.cuda_graphs and not request.t5_on_cpu:  # diffusers encodes each branch's prompts in its own call
        t_text = max(t_text, branches * text_encoder_launches(model) * EAGER_KERNEL_LAUNCH_US * 1e-6)
    # Memory per chip (before the VAE, whose tiling depends on what is left).
    sp = g["ulysses"] * g["ring"]
    shard = np.where(g["fsdp"] > 0, sp, 1.0)
    weights = model.total_params() * w_bytes / shard
    enc_params = sum(e.params() for e in dz.encoders())
    off = dz.encoders_off_chip  # text encoders and VAE on their own server GPU (Step-Video)
    t5 = 0.0 if request.t5_on_cpu or off else enc_params * 2.0 / shard
    vae_w = 0.0 if off else dz.vae.params_count * dz.vae.dtype_bytes
    a = 2.0
    width = model.hidden_size if dz.block != "unet" else dz.unet.block_out_channels[0]
    seq = (N + (dz.text_len if dz.block in ("mmdit", "joint") else 0)) * fwd_batch
    dit_act = (seq / sp) * (6 * width + model.intermediate_size) * a + 2 * seq * width / g["ulysses"] * a
    ws_frames = min(frames, VAE_WORKSPACE_FRAMES) * (B if not dz.is_video else 1.0)
    untiled_ws = 3.0 * dz.vae.base_dim * W * H * ws_frames * dz.vae.dtype_bytes
    tile = dz.vae.tile_px
    tiled_ws = 3.0 * dz.vae.base_dim * tile * tile * min(frames, VAE_WORKSPACE_FRAMES) * dz.vae.dtype_bytes if tile else untiled_ws
    usable = memory.usable_bytes(chip.hbm_gb)
    base = weights + t5 + vae_w
    if request.vae_tiling is None:
        tiled = bool(tile) and bool(np.all(usable - base - np.maximum(dit_act, untiled_ws) < 0)) and bool(
            np.any(usable - base - np.maximum(dit_act, tiled_ws) >= 0))
    else:
        tiled = bool(request.vae_tiling) and bool(tile)
    vae_ws = 0.0 if off else (tiled_ws if tiled else untiled_ws)
    # The VAE runs in its dtype (fp32: TF32 convolutions, PyTorch's cuDNN default) unless the
    # pipeline states another for it (`vae_hardware`).
    hw_vae, map_bytes = vae_hardware(chip, eff, system, dz.vae.dtype_bytes, vae_precision)
    t_vae = float(total_seconds(time_ops(vae_decode_ops(model, H, W, frames, B, tiled, map_bytes=map_bytes), hw_vae)))
    if not request.cuda_graphs:
        t_vae = max(t_vae, vae_decode_launches(model, H, W, frames) * EAGER_KERNEL_LAUNCH_US * 1e-6)
    denoise = steps * fwd_count * t_fwd * step_share
    latency = t_text + denoise + t_vae
    n = g["num_chips"]
    act = np.maximum(dit_act, vae_ws)
    free = usable - base - act
    fits = free >= 0
    if not fits.any():
        i = int(np.argmax(free))
        raise SpecError(f"{model.id} does not fit on {chip.id}: best layout tried needs {float(weights[i] + np.broadcast_to(t5, weights.shape)[i] + vae_w) / 1e9:.1f} GB "
                        f"weights + {act[i] / 1e9:.1f} GB activations per chip; use more chips (--chips), fp8 or a smaller batch")
    vph = 3600.0 * B / (latency * n)
    ok = fits & ((latency <= request.slo_latency_s) if request.slo_latency_s else True)
    if ok.any():
        score = np.where(ok, vph, -np.inf)
        cand = np.flatnonzero(score >= score.max() * (1 - 1e-9))
        i = int(cand[np.lexsort((n[cand], latency[cand]))][0])
        met = True
    else:
        i, met = int(np.argmin(np.where(fits, latency, np.inf))), False
    shares = bound_shares(fwd)[:, i]
    return GenerationEstimate(
        model=model.id, chip=chip.id, num_chips=int(n[i]), ulysses=int(g["ulysses"][i]), ring=int(g["ring"][i]),
        fsdp=bool(g["fsdp"][i]), cfg_parallel=int(cfgp[i]), weight_precision=precisions[prec[i]], width_px=W, height_px=H,
        frames=frames, steps=steps, batch=int(B), forwards_per_step=int(fwd_count[i]) if cfg else 1,
        cache_skip_rate=request.cache_skip_rate, latent_tokens=N,
        video_seconds=frames / dz.fps if dz.is_video else 0.0,
        text_encoder_s=t_text, denoise_s=float(denoise[i]), vae_decode_s=t_vae, vae_tiled=tiled, latency_s=float(latency[i]),
        forward_ms=float(t_fwd[i]) * 1e3, launches_per_forward=launches, host_bound=bool(t_host > t_gpu[i]), videos_per_hour_per_chip=float(vph[i]), samples_s=float(B / latency[i]),
        memory_gb_per_chip={"weights": float(weights[i]) / 1e9, "text_encoder": float(np.broadcast_to(t5, n.shape)[i]) / 1e9,
                            "vae": vae_w / 1e9, "activations": float(act[i]) / 1e9, "free": float(free[i]) / 1e9,
                            "capacity": memory.capacity_gb(chip.hbm_gb)},
        bound=BOUNDS[int(np.argmax(shares))], meets_slo=met, slo_latency_s=request.slo_latency_s,
        spec_confidence=chip.spec_confidence, efficiency_source=eff.source,
        time_breakdown_ms={t.name: float(np.broadcast_to(t.seconds, n.shape)[i]) * 1e3 for t in fwd},
    )


# ---- recommendation -----------------------------------------------------------------------

RECSYS_BATCHES = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 51200, 65536, 102400, 131072, 204800)
HSTU_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
"""Requests per step searched for HSTU (each request is a whole user history plus its candidates)."""
EMB_PRECISION = {"bf16": "fp16", "fp16": "fp16", "fp8": "int8", "int8": "int8", "fp32": "fp32"}
"""Embedding-table format per MLP format: low-precision deployments store int8 rows (NVIDIA's
DLRMv2 harness), half-precision ones fp16."""
SSD_PAGE_BYTES = 4096.0
"""A lookup that misses to SSD reads one 4 KiB page (NVMe random-read granularity)."""


def zipf_hit_rate(cached_share: float, rows: float) -> float:
    """Share of lookups served by caching the hottest `cached_share` of `rows` items when item
    popularity is Zipf with exponent 1: H(cached rows) / H(rows) ~ ln(1 + c R) / ln(1 + R).
    An estimate (no published trace of the model's own traffic is used)."""
    if cached_share >= 1.0:
        return 1.0
    if cached_share <= 0.0:
        return 0.0
    return float(np.log1p(cached_share * rows) / np.log1p(rows))


def _hstu_activation_bytes(rec, a_bytes: float = 2.0) -> float:
    """Live activations of one HSTU request in a layer: the tokens' input, U/V/Q/K projections,
    attention output and gate (the attention itself is fused, no L x L scores stored), twice for
    the layer being written while the previous one is read."""
    tokens = rec.history_len + rec.num_candidates
    per_token = rec.embedding_dim + rec.hstu_heads * (3 * rec.hstu_linear_dim + 2 * rec.hstu_attention_dim)
    return 2.0 * tokens * per_token * a_bytes


def estimate_recsys(model: ModelSpec, chip: ChipSpec, request: RecsysRequest = RecsysRequest(),
                    num_chips: int | None = None, precision: str | None = None, system: SystemSpec | None = None,
                    max_chips: int = 64, framework: str | None = None) -> RecsysEstimate:
    """Highest samples/s per chip whose query latency (one step to fill the batch, one to
    compute it) meets the SLO — the batch is never above what the SLO allows; without an SLO,
    offline throughput within memory. Embedding tables that do not fit HBM spill to host DRAM or
    SSD with an HBM cache of the hottest rows; the misses are read over that tier's link.
    `framework`: the serving software's profile (`perf.framework.profile_for`; None: neutral)."""
    if model.kind != "recsys":
        raise SpecError(f"{model.id} is not a recommendation model")
    rec = model.recsys
    if rec.variant == "hstu" and (request.history_len or request.num_candidates):
        rec = rec.model_copy(update={"history_len": request.history_len or rec.history_len,
                                     "num_candidates": request.num_candidates or rec.num_candidates})
        model = model.model_copy(update={"recsys": rec})
    system = system or SystemSpec.for_chip(chip)
    eff = efficiency_under(chip, framework)
    precisions = _precisions(chip, precision)
    hstu = rec.variant == "hstu"
    batches = (request.batch,) if request.batch else (HSTU_BATCHES if hstu else RECSYS_BATCHES)
    rows = [(n, s, p, b) for n in _counts(chip, num_chips, max_chips) for s in sorted({1, n})
            for p in range(len(precisions)) for b in batches]
    a = np.array(rows, dtype=float)
    n, shard, prec, batch = a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3]
    w_bytes = np.array([bytes_per_element(p) for p in precisions])[prec]
    # Tables stored at a fixed precision (HSTU's fp16) keep it; DLRM's follow the deployment.
    emb_names = ["fp16" if rec.embedding_bytes == 2 else EMB_PRECISION.get(p, "fp16") for p in precisions]
    emb_bytes = np.array([rec.embedding_bytes or bytes_per_element(e) for e in emb_names])[prec]
    hw = chip_hardware(model, chip, system, eff, precisions, None, prec)
    times = time_ops(recsys_ops(model, RecShape(batch=batch, shard=shard, w_bytes=w_bytes, emb_bytes=emb_bytes)), hw)
    compute = total_seconds(times) + eff.step_overhead_ms * 1e-3
    pairs = batch if rec.variant == "dlrm" else batch * max(rec.num_candidates, 1)
    per_sample = rec.samples_per_query if rec.variant == "dlrm" else 1.0
    # Memory: dense weights, activations, then embedding tables (or an HBM cache of them).
    tables = rec.embedding_params() * emb_bytes / shard
    dense = rec.dense_params() * w_bytes
    if hstu:
        act = batch * _hstu_activation_bytes(rec)
    else:
        act = batch * (6 * max(rec.interaction_dim, rec.embedding_dim) + rec.lookups_per_sample * 4) * 2.0
    room = memory.usable_bytes(chip.hbm_gb) - dense - act
    in_hbm = tables <= room
    from tokenfab.specs.cache import KV_TIERS
    per_chip_dram = KV_TIERS["dram"].capacity_tb_per_node * 1e12 / system.chips_per_node
    if request.embedding_tier == "auto":  # per point: host DRAM when it holds the chip's share, else SSD
        use_dram = tables <= per_chip_dram
    else:
        use_dram = np.full(n.shape, request.embedding_tier == "dram")
    tier_ok = (request.embedding_tier != "hbm") & (use_dram | (request.embedding_tier in ("auto", "ssd")))
    offload = ~in_hbm & tier_ok & (room > 0)
    cached = np.clip(np.where(in_hbm, 1.0, np.maximum(room, 0.0) / tables), 0.0, 1.0)
    total_rows = float(sum(rec.table_rows))
    hit = np.where(in_hbm, 1.0, request.embedding_hit_rate if request.embedding_hit_rate is not None
                   else np.array([zipf_hit_rate(float(c), total_rows) for c in cached]))
    # A row-wise shard serves its share of every group member's lookups: balanced, batch x lookups.
    lookups = batch * (rec.lookups_per_sample if not hstu else rec.history_len + rec.num_candidates)
    row_bytes = rec.embedding_dim * emb_bytes
    # A miss to DRAM reads its row over the host link (64-byte granularity), to SSD a 4 KiB page.
    miss_dram = lookups * (1.0 - hit) * np.maximum(row_bytes, 64.0) / (KV_TIERS["dram"].read_gb_s_per_chip * 1e9)
    miss_ssd = lookups * (1.0 - hit) * np.maximum(row_bytes, SSD_PAGE_BYTES) / (KV_TIERS["ssd"].read_gb_s_per_chip * 1e9)
    t_miss = np.where(offload, np.where(use_dram, miss_dram, miss_ssd), 0.0)
    tier_names = np.where(in_hbm, "hbm", np.where(use_dram, "dram", "ssd"))
    step = compute + t_miss
    latency = 2.0 * step  # a query waits up to one step for its batch, then one step to compute
    samples_chip = pairs / step / per_sample
    fits = in_hbm | offload
    if not fits.any():
        raise SpecError(f"{model.id} does not fit on {chip.id}: {rec.embedding_params() / 1e9:.1f}B embedding "
                        f"parameters need sharding over more chips (--chips) or a DRAM/SSD tier (--set embedding_tier=dram)")
    ok = fits & ((latency * 1e3 <= request.slo_latency_ms) if request.slo_latency_ms else True)
    met = bool(ok.any())
    pool = ok if met else fits
    score = np.where(pool, samples_chip, -np.inf) if met else np.where(pool, -latency, -np.inf)
    cand = np.flatnonzero(score >= score.max() - abs(score.max()) * 1e-9)
    i = int(cand[np.lexsort((batch[cand], n[cand]))][0])
    shares = bound_shares(times)[:, i]
    breakdown = {t.name: float(np.broadcast_to(t.seconds, n.shape)[i]) * 1e3 for t in times}
    if offload[i]:
        breakdown["embedding_tier_misses"] = float(np.broadcast_to(t_miss, n.shape)[i]) * 1e3
    return RecsysEstimate(
        model=model.id, chip=chip.id, num_chips=int(n[i]), shard=int(shard[i]), weight_precision=precisions[prec[i]],
        embedding_precision=emb_names[prec[i]], batch=int(batch[i]), step_ms=float(step[i]) * 1e3,
        latency_ms=float(latency[i]) * 1e3, pairs_s_per_chip=float(pairs[i] / step[i]),
        samples_s_per_chip=float(samples_chip[i]), samples_s=float(samples_chip[i] * n[i]),
        embedding_tier=str(tier_names[i]), embedding_hit_rate=float(hit[i]),
        accuracy_target=rec.accuracy_target,
        memory_gb_per_chip={"embeddings": float(min(tables[i], max(room[i], 0.0) if not in_hbm[i] else tables[i])) / 1e9,
                            "embeddings_total": float(tables[i]) / 1e9, "dense": float(dense[i]) / 1e9,
                            "activations": float(act[i]) / 1e9,
                            "free": float(max(room[i] - tables[i], 0.0)) / 1e9, "capacity": memory.capacity_gb(chip.hbm_gb)},
        bound=("embedding tier" if offload[i] and float(np.broadcast_to(t_miss, n.shape)[i]) > float(compute[i])
               else BOUNDS[int(np.argmax(shares))]),
        meets_slo=met, slo_latency_ms=request.slo_latency_ms,
        spec_confidence=chip.spec_confidence, efficiency_source=eff.source, time_breakdown_ms=breakdown,
    )


# ---- cost ---------------------------------------------------------------------------------
