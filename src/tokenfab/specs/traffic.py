"""Traffic: request lengths, load and latency targets (SLOs)."""

from __future__ import annotations

from pydantic import Field

from tokenfab.specs.base import Spec


class Traffic(Spec):
    """Steady traffic of requests with mean input/output lengths and optional SLOs."""

    input_len: int = Field(default=1024, gt=0)
    """Mean prompt length, tokens (ISL)."""
    output_len: int = Field(default=256, gt=0)
    """Mean generated length, tokens (OSL)."""
    concurrency: int | None = Field(default=None, gt=0)
    """Requests in flight per model replica (None: the mapping search chooses the batch)."""
    request_rate_s: float | None = Field(default=None, gt=0)
    """Arrival rate, requests/s (used by the serving simulator and capacity planning)."""
    slo_ttft_ms: float | None = Field(default=None, gt=0)
    """Limit on time to first token, ms."""
    slo_tpot_ms: float | None = Field(default=None, gt=0)
    """Limit on time per output token (inter-token latency), ms."""
    prefix_cache_hit: float = Field(default=0.0, ge=0, lt=1)
    """Fraction of input tokens served from a prefix cache (not recomputed)."""
    draft_tokens: int = Field(default=0, ge=0, le=16)
    """Speculative decoding / MTP: draft tokens proposed per decode step (0: off)."""
    draft_acceptance: float = Field(default=0.0, ge=0, le=1)
    """Probability that each draft token is accepted given the earlier ones were; a step then
    emits 1 + a + ... + a^k tokens on average (DeepSeek reports 85-90% for its one MTP token)."""
    images: int = Field(default=0, ge=0)
    """Images per request (VLMs): each adds its merged patches to the prompt and runs the
    vision encoder in prefill."""
    video_frames: int = Field(default=0, ge=0)
    """Sampled frames of one video per request (VLMs; 0: no video)."""
    image_height_px: int = Field(default=448, gt=0)
    """Height of each image / video frame given to the model, pixels."""
    image_width_px: int = Field(default=448, gt=0)
    """Width of each image / video frame, pixels."""


CHAT = Traffic(input_len=2048, output_len=512, slo_ttft_ms=2000, slo_tpot_ms=50)
"""The built-in default scenario of estimate/compare: fixed chat-like lengths (every request 2,048
tokens in, 512 out) with a 2 s TTFT and 50 ms TPOT (20 tok/s per user). Not the `chat` traffic
profile of simulate/plan (catalog/traffic/chat.yaml), whose lengths are drawn per request from the
Azure conversation trace's distribution and have other means."""
DEFAULT_SCENARIO = "fixed chat-like lengths"
"""How the CLI names `CHAT` (help texts): never plain "chat", which is the traffic profile."""
