"""Requests of workloads that are not prefill/decode serving: video/image generation and
recommendation scoring. Every field has a default, so `tokenfab estimate` needs no flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tokenfab.specs.base import Spec


class GenerationRequest(Spec):
    """One video (or image: frames = 1) to generate; None takes the model's default."""

    width_px: int | None = Field(default=None, gt=0)
    height_px: int | None = Field(default=None, gt=0)
    frames: int | None = Field(default=None, gt=0)
    """Output frames (Wan: 81 = 5 s at 16 fps)."""
    steps: int | None = Field(default=None, gt=0)
    """Denoising steps (Wan T2V: 50)."""
    guidance: float | None = Field(default=None, ge=0)
    """Classifier-free guidance scale; above 1 each step runs a conditional and an unconditional
    forward (Wan T2V: 5.0)."""
    cfg_batched: bool = False
    """Run the guidance branches (two, or the model's `cfg_branches`) as one batched forward (Wan runs
    them one after the other; diffusers pipelines and Open-Sora batch them)."""
    t5_on_cpu: bool = False
    """Text encoder on the host (`--t5_cpu`): no GPU memory or time for it."""
    slo_latency_s: float | None = Field(default=None, gt=0)
    """Limit on the time to generate one video (or one batch of images), s."""
    batch: int = Field(default=1, gt=0, le=4096)
    """Samples generated together in each forward (throughput at a batch; latency is the batch's)."""
    cfg_parallel: bool | None = None
    """Run each guidance branch on its own group of chips (xDiT-style CFG parallelism: two groups,
    three for a three-branch model); None: searched where the model uses classifier-free guidance."""
    cache_skip_rate: float = Field(default=0.0, ge=0, lt=1)
    """Step caching (TeaCache / First-Block-Cache): fraction of denoising steps whose forward is
    skipped and its residual reused."""
    cache_kind: Literal["fbcache", "teacache"] = "fbcache"
    """`fbcache`: a skipped step still runs the first block (to decide); `teacache`: it runs nothing
    but the timestep-embedding check."""
    attention_kernel: Literal["pipeline", "fa2", "fa3"] = "pipeline"
    """Attention kernel: the model's reference pipeline's (`pipeline`), FlashAttention-2 class
    (PyTorch SDPA: 35% of peak on Hopper, FlashAttention-3 paper) or FlashAttention-3 /
    TensorRT class (the chip's calibrated attention efficiency)."""
    cuda_graphs: bool = False
    """The denoiser replays a CUDA graph or a compiled engine (torch.compile mode "reduce-overhead",
    TensorRT, as MLPerf's SDXL harness): no host launch floor. False (the default, as the reference
    diffusers / model-repo pipelines run): eager PyTorch, each kernel launch costs the host
    `perf.framework.EAGER_KERNEL_LAUNCH_US`, so a forward takes at least launches x that (at small
    batch the GPU waits for the CPU)."""
    vae_tiling: bool | None = None
    """Decode the VAE in overlapping tiles (less memory, more work); None: only when the untiled
    decode does not fit."""


class RecsysRequest(Spec):
    """Recommendation scoring traffic."""

    slo_latency_ms: float | None = Field(default=None, gt=0)
    """Limit on query latency (MLPerf DLRMv2 Server: 60 ms at p99); None: offline throughput."""
    batch: int | None = Field(default=None, gt=0)
    """Pairs (DLRM) or requests (HSTU) per chip per step; None: searched (never above what the
    latency SLO allows)."""
    history_len: int | None = Field(default=None, gt=0, le=1_000_000)
    """User-history tokens per HSTU request; None: the model's `max_seq_len`."""
    num_candidates: int | None = Field(default=None, gt=0, le=1_000_000)
    """Candidate items scored per HSTU request; None: the model's."""
    embedding_tier: Literal["auto", "hbm", "dram", "ssd"] = "auto"
    """Where embedding rows that do not fit HBM live (HBM then holds the hottest rows as a
    cache); `hbm`: every row in HBM (the tables must fit); `auto`: HBM if they fit, else host
    DRAM if it holds them, else SSD."""
    embedding_hit_rate: float | None = Field(default=None, ge=0, le=1)
    """Share of lookups the HBM cache serves when tables spill to DRAM/SSD; None: estimated for
    Zipf(1)-distributed item popularity from the cached share of rows."""
