"""Estimates for workloads without prefill/decode steps: diffusion generation and recommendation.

`estimate_generation(model, chip)` — seconds and $ per generated video (Wan2.1-class DiT): text
encoder, `steps x guidance-forwards` DiT forwards under sequence parallelism (Ulysses x ring,
optional FSDP), VAE decode; searched over chip count, Ulysses/ring split, FSDP and precision.
`estimate_recsys(model, chip)` — samples/s and latency of a recommender (DLRM-v2, HSTU):
searched over chip count, table sharding, precision and batch.
Both are vectorized over mapping points like `mapping.search`, and `api.estimate` / `compare`
dispatch to them by the model's kind, so `tokenfab estimate -m wan2.1-t2v-14b -c h100-sxm` works.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tokenfab.graph.diffusion import GenShape, dit_forward_ops, text_encoder_ops, vae_decode_ops
from tokenfab.graph.recsys import RecShape
from tokenfab.graph.recsys import step_ops as recsys_ops
from tokenfab.mapping import memory
from tokenfab.mapping.search import DEFAULT_CHIP_COUNTS, chip_hardware
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.perf.evaluate import Hardware, bound_shares, time_ops, total_seconds, unit_peaks
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, bytes_per_element
from tokenfab.specs.requests import GenerationRequest, RecsysRequest

BOUNDS = ("compute", "memory", "communication")
VAE_WORKSPACE_FRAMES = 4
"""Output frames the chunked causal VAE decoder holds feature maps for at once."""


class GenerationEstimate(BaseModel):
    """One deployment generating videos (or images) with a diffusion transformer."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["diffusion"] = "diffusion"
    model: str
    chip: str
    num_chips: int
    ulysses: int
    ring: int
    fsdp: bool
    weight_precision: str
    width_px: int
    height_px: int
    frames: int
    steps: int
    forwards_per_step: int
    latent_tokens: int
    video_seconds: float
    text_encoder_s: float
    denoise_s: float
    vae_decode_s: float
    latency_s: float = Field(description="seconds to generate one video, prompt to decoded frames")
    forward_ms: float
    videos_per_hour_per_chip: float
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
    """Hardware at an explicit peak: only the VAE's fp32/TF32 convolutions, which no weight
    precision describes; everything else goes through `mapping.search.chip_hardware`."""
    return Hardware(gemm_tflops=peak, attention_tflops=chip.bf16_tflops, hbm_tb_s=chip.hbm_tb_s,
                    cores=chip.cores or 100, eff=eff, system=system, gemm_frac=frac, **unit_peaks(chip))


# ---- diffusion --------------------------------------------------------------------------------

def generation_grid(model: ModelSpec, chip: ChipSpec, counts, precisions):
    """Valid (chips, ulysses, ring, fsdp, precision index) points as arrays."""
    rows = []
    for n in counts:
        for u in range(1, n + 1):
            if n % u or model.num_heads % u:
                continue
            for fsdp in ((0, 1) if n > 1 else (0,)):
                for p in range(len(precisions)):
                    rows.append((n, u, n // u, fsdp, p))
    if not rows:
        raise SpecError(f"no valid sequence-parallel layout of {model.id} on {list(counts)} chips")
    a = np.array(rows, dtype=float)
    return {k: a[:, i] for i, k in enumerate(("num_chips", "ulysses", "ring", "fsdp", "prec"))}


def estimate_generation(model: ModelSpec, chip: ChipSpec, request: GenerationRequest = GenerationRequest(),
                        num_chips: int | None = None, precision: str | None = None, system: SystemSpec | None = None,
                        max_chips: int = 64, ulysses: int | None = None) -> GenerationEstimate:
    """Fastest-per-chip deployment generating one video (highest videos/hour/chip meeting the
    latency SLO; ties: fewer chips). Raises SpecError when nothing fits memory."""
    if model.kind != "diffusion":
        raise SpecError(f"{model.id} is not a diffusion model")
    dz = model.diffusion
    W, H = request.width_px or dz.default_width_px, request.height_px or dz.default_height_px
    frames, steps = request.frames or dz.default_frames, request.steps or dz.default_steps
    guidance = dz.default_guidance if request.guidance is None else request.guidance
    cfg = guidance > 1.0
    forwards = 1 if (not cfg or request.cfg_batched) else 2
    batch = 2.0 if (cfg and request.cfg_batched) else 1.0
    system = system or SystemSpec.for_chip(chip)
    eff = efficiency_for(chip)
    precisions = _precisions(chip, precision)
    g = generation_grid(model, chip, _counts(chip, num_chips, max_chips), precisions)
    if ulysses:
        keep = g["ulysses"] == ulysses
        g = {k: v[keep] for k, v in g.items()}
        if not keep.any():
            raise SpecError(f"ulysses {ulysses} does not divide {model.num_heads} heads and the chip count")
    prec = g["prec"].astype(int)
    w_bytes = np.array([bytes_per_element(p) for p in precisions])[prec]
    hw = chip_hardware(model, chip, system, eff, precisions, None, prec)
    N = dz.tokens(H, W, frames)
    shape = GenShape(tokens=float(N), ulysses=g["ulysses"], ring=g["ring"], w_bytes=w_bytes, fsdp=g["fsdp"],
                     batch=batch)
    fwd = time_ops(dit_forward_ops(model, shape), hw)
    t_fwd = total_seconds(fwd) + eff.step_overhead_ms * 1e-3
    hw16 = chip_hardware(model, chip, system, eff, ("bf16",))
    t_text = 0.0 if request.t5_on_cpu else float(total_seconds(time_ops(text_encoder_ops(model, 2 if cfg else 1), hw16)))
    # The VAE runs in fp32; PyTorch lets cuDNN convolutions use TF32 tensor cores by default.
    vae_peak = chip.peak_tflops("tf32") or chip.peak_tflops("fp32") or chip.bf16_tflops / 2
    t_vae = float(total_seconds(time_ops(vae_decode_ops(model, H, W, frames), _hw(chip, eff, system, vae_peak,
                                                                                   eff.gemm_compute_frac))))
    denoise = steps * forwards * t_fwd
    latency = t_text + denoise + t_vae
    n = g["num_chips"]
    # Memory per chip.
    sp = g["ulysses"] * g["ring"]
    weights = model.total_params() * w_bytes / np.where(g["fsdp"] > 0, sp, 1.0)
    t5 = 0.0 if request.t5_on_cpu else dz.text_encoder.params() * 2.0 / np.where(g["fsdp"] > 0, sp, 1.0)
    vae = dz.vae.params_count * dz.vae.dtype_bytes
    a = 2.0
    dit_act = batch * (N / sp) * (6 * model.hidden_size + model.intermediate_size) * a + 2 * N * batch * model.hidden_size / g["ulysses"] * a
    vae_ws = 3.0 * dz.vae.base_dim * W * H * VAE_WORKSPACE_FRAMES * dz.vae.dtype_bytes
    act = np.maximum(dit_act, vae_ws)
    usable = memory.usable_bytes(chip.hbm_gb)
    free = usable - weights - t5 - vae - act
    fits = free >= 0
    if not fits.any():
        i = int(np.argmax(free))
        raise SpecError(f"{model.id} does not fit on {chip.id}: best layout tried needs {(weights[i] + t5 + vae) / 1e9:.1f} GB "
                        f"weights + {act[i] / 1e9:.1f} GB activations per chip; use more chips (--chips) or fp8")
    vph = 3600.0 / (latency * n)
    ok = fits & ((latency <= request.slo_latency_s) if request.slo_latency_s else True)
    if ok.any():
        score = np.where(ok, vph, -np.inf)
        cand = np.flatnonzero(score >= score.max() * (1 - 1e-9))
        i = int(cand[np.lexsort((latency[cand], n[cand]))][0])
        met = True
    else:
        i, met = int(np.argmin(np.where(fits, latency, np.inf))), False
    shares = bound_shares(fwd)[:, i]
    return GenerationEstimate(
        model=model.id, chip=chip.id, num_chips=int(n[i]), ulysses=int(g["ulysses"][i]), ring=int(g["ring"][i]),
        fsdp=bool(g["fsdp"][i]), weight_precision=precisions[prec[i]], width_px=W, height_px=H, frames=frames,
        steps=steps, forwards_per_step=forwards, latent_tokens=N, video_seconds=frames / dz.fps,
        text_encoder_s=t_text, denoise_s=float(denoise[i]), vae_decode_s=t_vae, latency_s=float(latency[i]),
        forward_ms=float(t_fwd[i]) * 1e3, videos_per_hour_per_chip=float(vph[i]),
        memory_gb_per_chip={"weights": float(weights[i]) / 1e9, "text_encoder": float(np.broadcast_to(t5, n.shape)[i]) / 1e9,
                            "vae": vae / 1e9, "activations": float(act[i]) / 1e9, "free": float(free[i]) / 1e9,
                            "capacity": chip.hbm_gb},
        bound=BOUNDS[int(np.argmax(shares))], meets_slo=met, slo_latency_s=request.slo_latency_s,
        spec_confidence=chip.spec_confidence, efficiency_source=eff.source,
        time_breakdown_ms={t.name: float(np.broadcast_to(t.seconds, n.shape)[i]) * 1e3 for t in fwd},
    )


# ---- recommendation -----------------------------------------------------------------------

RECSYS_BATCHES = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 51200, 65536, 102400, 131072, 204800)
EMB_PRECISION = {"bf16": "fp16", "fp16": "fp16", "fp8": "int8", "int8": "int8", "fp32": "fp32"}
"""Embedding-table format per MLP format: low-precision deployments store int8 rows (NVIDIA's
DLRMv2 harness), half-precision ones fp16."""


def estimate_recsys(model: ModelSpec, chip: ChipSpec, request: RecsysRequest = RecsysRequest(),
                    num_chips: int | None = None, precision: str | None = None, system: SystemSpec | None = None,
                    max_chips: int = 64) -> RecsysEstimate:
    """Highest samples/s per chip whose query latency (one step to fill the batch, one to
    compute it) meets the SLO; without an SLO, offline throughput."""
    if model.kind != "recsys":
        raise SpecError(f"{model.id} is not a recommendation model")
    rec = model.recsys
    system = system or SystemSpec.for_chip(chip)
    eff = efficiency_for(chip)
    precisions = _precisions(chip, precision)
    batches = (request.batch,) if request.batch else RECSYS_BATCHES
    rows = [(n, s, p, b) for n in _counts(chip, num_chips, max_chips) for s in sorted({1, n})
            for p in range(len(precisions)) for b in batches]
    a = np.array(rows, dtype=float)
    n, shard, prec, batch = a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3]
    w_bytes = np.array([bytes_per_element(p) for p in precisions])[prec]
    emb_names = [EMB_PRECISION.get(p, "fp16") for p in precisions]
    emb_bytes = np.array([bytes_per_element(e) for e in emb_names])[prec]
    hw = chip_hardware(model, chip, system, eff, precisions, None, prec)
    times = time_ops(recsys_ops(model, RecShape(batch=batch, shard=shard, w_bytes=w_bytes, emb_bytes=emb_bytes)), hw)
    step = total_seconds(times) + eff.step_overhead_ms * 1e-3
    latency = 2.0 * step  # a query waits up to one step for its batch, then one step to compute
    pairs = batch if rec.variant == "dlrm" else batch * max(rec.num_candidates, 1)
    per_sample = rec.samples_per_query if rec.variant == "dlrm" else 1.0
    samples_chip = pairs / step / per_sample
    tables = rec.embedding_params() * emb_bytes / shard
    dense = rec.dense_params() * w_bytes
    act = batch * (6 * max(rec.interaction_dim, rec.embedding_dim) + rec.lookups_per_sample * 4) * 2.0
    free = memory.usable_bytes(chip.hbm_gb) - tables - dense - act
    fits = free >= 0
    if not fits.any():
        raise SpecError(f"{model.id} does not fit on {chip.id}: {rec.embedding_params() / 1e9:.1f}B embedding "
                        f"parameters need sharding over more chips (--chips)")
    ok = fits & ((latency * 1e3 <= request.slo_latency_ms) if request.slo_latency_ms else True)
    met = bool(ok.any())
    pool = ok if met else fits
    score = np.where(pool, samples_chip, -np.inf) if met else np.where(pool, -latency, -np.inf)
    cand = np.flatnonzero(score >= score.max() - abs(score.max()) * 1e-9)
    i = int(cand[np.lexsort((batch[cand], n[cand]))][0])
    shares = bound_shares(times)[:, i]
    return RecsysEstimate(
        model=model.id, chip=chip.id, num_chips=int(n[i]), shard=int(shard[i]), weight_precision=precisions[prec[i]],
        embedding_precision=emb_names[prec[i]], batch=int(batch[i]), step_ms=float(step[i]) * 1e3,
        latency_ms=float(latency[i]) * 1e3, pairs_s_per_chip=float(pairs[i] / step[i]),
        samples_s_per_chip=float(samples_chip[i]), samples_s=float(samples_chip[i] * n[i]),
        memory_gb_per_chip={"embeddings": float(tables[i]) / 1e9, "dense": float(dense[i]) / 1e9,
                            "activations": float(act[i]) / 1e9, "free": float(free[i]) / 1e9, "capacity": chip.hbm_gb},
        bound=BOUNDS[int(np.argmax(shares))], meets_slo=met, slo_latency_ms=request.slo_latency_ms,
        spec_confidence=chip.spec_confidence, efficiency_source=eff.source,
        time_breakdown_ms={t.name: float(np.broadcast_to(t.seconds, n.shape)[i]) * 1e3 for t in times},
    )


# ---- cost ---------------------------------------------------------------------------------

def with_cost(est: GenerationEstimate | RecsysEstimate, chip: ChipSpec, economics=None,
              market_rental: bool = False) -> dict:
    """The estimate as a dict with $ per video / per video-second (generation) or $ per million
    samples (recommendation) from the chip-hour cost of `tokenfab.cost.tco`."""
    row = est.model_dump(mode="json")
    keys = (("usd_per_video", "usd_per_video_second") if isinstance(est, GenerationEstimate)
            else ("usd_per_million_samples",))
    row.update({k: None for k in keys}, usd_per_chip_hour=None, cost_basis=None)
    try:
        from tokenfab.cost import tco
        hourly = tco.chip_hour_cost_for(chip, economics, market_rental)
    except (SpecError, ValueError) as exc:
        row["cost_basis"] = f"no cost: {exc}"
        return row
    usd_h = hourly.total_usd_per_hour
    if isinstance(est, GenerationEstimate):
        per_video = tco.usd_per_video(usd_h, est.num_chips, est.latency_s)
        row.update(usd_per_video=per_video, usd_per_video_second=per_video / est.video_seconds)
    else:
        row["usd_per_million_samples"] = tco.usd_per_million_samples(usd_h, est.samples_s_per_chip)
    row.update(usd_per_chip_hour=usd_h, cost_basis=hourly.basis)
    return row
