"""Predictions for rows of diffusion and recommendation models (not prefill/decode serving).

- `generation` rows (and the older `video_gen` / `image_gen`): the generation estimate at the
  row's chip count and precision (bf16 when not stated or `mixed`) for the request in the first
  field of the row's notes, `resolution=WxH;frames=F;steps=N` (frames 1 for images), or the older
  `gen=WxHxF steps=N`; optional `guidance=G`, `batch=B` (samples per forward), `cfg_batched`,
  `cfg_parallel`, `cache=S` (step-cache skip rate), `ulysses=U`, `t5_cpu`, `attention=fa2|fa3`,
  `fused_rope` (the eager pipeline rotates q/k with a fused kernel),
  `instances=K` (independent copies on the row's chips), `vae=fp32|fp16|bf16|int8|fp8` (the VAE
  decoder's precision when the pipeline runs it otherwise than the VAE's dtype: NVIDIA's MLPerf
  SDXL engines run it fp32 in v4.0 and INT8-FP32 in v4.1; the denoiser's is the row's
  weight_precision). Metrics: `latency_s`,
  `e2e_latency_ms_mean/p50/p90/p99` (one request's latency: the estimate is deterministic) and
  `samples_s` (batch / latency x instances).
- Recommendation rows (MLPerf DLRMv2 `offline` / `server`, metric `samples_s`): the recsys
  estimate at the row's chip count; Server rows bound the query latency by the scenario's limit
  (`latency_bound_ms=` in the notes, else MLPerf DLRMv2's 60 ms).
"""

from __future__ import annotations

import re

from tokenfab import catalog
from tokenfab.specs import SpecError
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.specs.requests import GenerationRequest, RecsysRequest
from tokenfab.validate.micro import Unpredictable
from tokenfab.mapping import workloads

_GEN = re.compile(r"gen=(\d+)x(\d+)x(\d+)")
_SHAPE = re.compile(r"^\s*resolution=(\d+)x(\d+);frames=(\d+);steps=(\d+)")
_NUM = {k: re.compile(rf"\b{k}=([0-9]+(?:\.[0-9]+)?)") for k in
        ("steps", "guidance", "ulysses", "latency_bound_ms", "batch", "cache", "instances")}
_ATTN = re.compile(r"\battention=(fa2|fa3)\b")
_FUSED_ROPE = re.compile(r"\bfused_rope\b")
_VAE = re.compile(r"\bvae=(fp32|fp16|bf16|int8|fp8)\b")
GEN_LATENCY = {"latency_s": 1.0, "e2e_latency_ms_mean": 1e3, "e2e_latency_ms_p50": 1e3,
               "e2e_latency_ms_p90": 1e3, "e2e_latency_ms_p99": 1e3}
"""Latency metrics of generation rows and their unit per second."""
DLRM_SERVER_LATENCY_MS = 60.0
"""MLPerf Inference DLRMv2 Server latency bound (p99)."""


_MEDIA = re.compile(r"\bimages=(\d+)")
_IMAGE_PX = re.compile(r"\bimage=(\d+)x(\d+)")
_VIDEO_FRAMES = re.compile(r"\bvideo_frames=(\d+)")


def with_row_media(traffic, notes: str):
    """A VLM serving row's traffic with the images / video its notes state (`images=N`,
    `image=WxH` per image or frame, `video_frames=F`), so its prompt carries their tokens by the
    model family's rules (graph.requests.request_shape). Rows without them are returned as is.
    (The LLM deployment path in validate/deployment.py can call this on each row's Traffic.)"""
    n, px, fr = _MEDIA.search(notes), _IMAGE_PX.search(notes), _VIDEO_FRAMES.search(notes)
    if not (n or fr):
        return traffic
    update = {"images": int(n.group(1)) if n else 0, "video_frames": int(fr.group(1)) if fr else 0}
    if px:
        update.update(image_width_px=int(px.group(1)), image_height_px=int(px.group(2)))
    return traffic.model_copy(update=update)


def _num(row: MeasurementRow, key: str) -> float | None:
    m = _NUM[key].search(row.notes)
    return float(m.group(1)) if m else None


def predict_workload(row: MeasurementRow) -> tuple[float, str] | None:
    """(predicted value, detail) for a diffusion / recommendation row; None for other models."""
    if not row.model:
        return None
    try:
        model = catalog.load_model(row.model)
    except SpecError:
        return None
    if model.kind == "llm":
        return None
    try:
        chip = catalog.load_chip(row.hardware)
    except SpecError:
        raise Unpredictable(f"chip {row.hardware} is not in the catalog") from None
    n = row.num_chips or 1
    try:
        if model.kind == "diffusion":
            return _generation(row, model, chip, n)
        return _recsys(row, model, chip, n)
    except SpecError as exc:
        raise Unpredictable(str(exc)) from None


def generation_request(row: MeasurementRow) -> tuple[GenerationRequest, int]:
    """(request, instances) stated by a generation row's notes."""
    shape = _SHAPE.search(row.notes)
    if shape:
        w, h, frames, steps = (int(x) for x in shape.groups())
    else:
        m = _GEN.search(row.notes)
        if not m:
            raise Unpredictable("generation request not stated (notes must start resolution=WxH;frames=F;steps=N)")
        w, h, frames = (int(x) for x in m.groups())
        st = _num(row, "steps")
        steps = int(st) if st else None
    guidance, batch, cache, inst = _num(row, "guidance"), _num(row, "batch"), _num(row, "cache"), _num(row, "instances")
    attn = _ATTN.search(row.notes)
    req = GenerationRequest(width_px=w, height_px=h, frames=frames, steps=steps, guidance=guidance,
                            t5_on_cpu="t5_cpu" in row.notes, batch=int(batch) if batch else 1,
                            cfg_batched="cfg_batched" in row.notes,
                            cfg_parallel=True if "cfg_parallel" in row.notes else False,
                            cache_skip_rate=cache or 0.0, attention_kernel=attn.group(1) if attn else "pipeline",
                            # compiled engines replay whole graphs: no eager per-kernel launch floor
                            cuda_graphs=any(k in (row.framework or "") for k in ("TensorRT", "torch.compile")))
    return req, int(inst) if inst else 1


def _generation(row, model, chip, n):
    req, instances = generation_request(row)
    if n % instances:
        raise Unpredictable(f"instances={instances} does not divide the row's {n} chips")
    per = n // instances
    u = _num(row, "ulysses")
    prec = row.weight_precision if row.weight_precision not in (None, "mixed") else "bf16"
    vae = _VAE.search(row.notes)
    est = workloads.estimate_generation(model, chip, req, num_chips=per, precision=prec, max_chips=per,
                                        ulysses=int(u) if u else None, fused_rope=bool(_FUSED_ROPE.search(row.notes)),
                                        vae_precision=vae.group(1) if vae else None, framework=row.framework)
    if row.metric in GEN_LATENCY:
        value = est.latency_s * GEN_LATENCY[row.metric]
    elif row.metric == "samples_s":
        value = est.samples_s * instances / (n if row.per == "chip" else 1)
    else:
        raise Unpredictable(f"metric {row.metric} not modelled for generation rows")
    return value, (f"{est.weight_precision} ulysses {est.ulysses} x ring {est.ring}{' fsdp' if est.fsdp else ''}"
                   f"{' cfg-parallel' if est.cfg_parallel > 1 else ''}; batch {est.batch}; {est.latent_tokens} tokens; "
                   f"text {est.text_encoder_s:.2f} s + denoise {est.denoise_s:.2f} s + VAE{' ' + vae.group(1) if vae else ''} {est.vae_decode_s:.2f} s")


def _recsys(row, model, chip, n):
    if row.metric != "samples_s":
        raise Unpredictable(f"metric {row.metric} not modelled for recommendation rows")
    slo = None
    if row.scenario == "server":
        slo = _num(row, "latency_bound_ms") or DLRM_SERVER_LATENCY_MS
    est = workloads.estimate_recsys(model, chip, RecsysRequest(slo_latency_ms=slo), num_chips=n,
                                    precision=row.weight_precision, max_chips=n, framework=row.framework)
    value = est.samples_s_per_chip * (1.0 if row.per == "chip" else n)
    return value, (f"{est.weight_precision}/{est.embedding_precision} batch {est.batch} pairs/chip, step "
                   f"{est.step_ms:.1f} ms, latency {est.latency_ms:.1f} ms, tables "
                   f"{'replicated' if est.shard == 1 else 'sharded/' + str(est.shard)}")
