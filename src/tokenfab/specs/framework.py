"""A serving framework's software profile: what the runtime adds to or takes from the kernels.

The engine's efficiencies (`perf.efficiency.Efficiency`) describe a chip running TensorRT-LLM-class
kernels (the calibration is TensorRT-LLM-like), so TensorRT-LLM is the reference profile and its
factors are 1. A profile is a property of the software, never a per-row knob: a few physical
parameters, each relative to that reference. `perf.framework.apply_profile` turns one into a
modified Efficiency; `catalog/frameworks.yaml` ships the fitted profiles.
"""

from __future__ import annotations

from pydantic import Field

from tokenfab.specs.base import Spec

QUALITY_MIN = 0.3
"""Smallest kernel-quality factor accepted: a runtime at under 30% of the reference kernels' speed
would be a broken install rather than a serving framework."""
QUALITY_MAX = 1.5
"""Largest kernel-quality factor accepted (a runtime 50% faster than the reference's kernels);
the resulting fractions of peak are still capped at 1."""


class FrameworkProfile(Spec):
    """How a serving runtime's kernels and host loop differ from the reference (TensorRT-LLM)."""

    id: str = Field(min_length=1)
    """Short name used on the command line and in the `framework` column (`vllm`, `sglang`)."""
    name: str = ""
    """Display name (`vLLM (CUDA)`)."""
    aliases: tuple[str, ...] = ()
    """Other spellings that resolve to this profile (`tensorrt-llm`, `trtllm`)."""
    vendor_variants: dict[str, str] = Field(default_factory=dict)
    """Chip vendor -> profile id used instead on that vendor's chips (vLLM on AMD runs the ROCm
    build and its kernels: `{AMD: vllm-rocm}`)."""
    step_overhead_ms: float | None = Field(default=None, ge=0, le=50)
    """Per engine step host time not hidden behind the GPU (scheduling, sampling, detokenization,
    Python), ms; replaces the chip efficiency's `step_overhead_ms`. None keeps the chip's value."""
    cuda_graphs: bool = True
    """Whether decode steps replay captured CUDA/HIP graphs. Without them every kernel pays the
    eager CPU launch cost (`perf.framework.EAGER_KERNEL_LAUNCH_US`), which dominates small batches."""
    gemm_quality: float = Field(default=1.0, ge=QUALITY_MIN, le=QUALITY_MAX)
    """Speed of the framework's dense GEMM kernels relative to the reference's at the same shape
    (multiplies the compute fractions of peak, every precision)."""
    attention_quality: float = Field(default=1.0, ge=QUALITY_MIN, le=QUALITY_MAX)
    """Speed of the framework's fused attention kernels relative to the reference's (multiplies
    the attention compute fraction)."""
    memory_quality: float = Field(default=1.0, ge=QUALITY_MIN, le=QUALITY_MAX)
    """Achieved HBM bandwidth of memory-bound kernels (decode GEMMs, KV reads, elementwise)
    relative to the reference's (multiplies the HBM fraction)."""
    moe_quality: float = Field(default=1.0, ge=QUALITY_MIN, le=QUALITY_MAX)
    """Speed of the fused-MoE (grouped GEMM) kernels relative to the reference's; applies on top of
    `gemm_quality` to the GEMM fractions of MoE models, whose expert GEMMs dominate GEMM time."""
    comm_quality: float = Field(default=1.0, ge=QUALITY_MIN, le=QUALITY_MAX)
    """Speed of the framework's collectives (custom all-reduce, all-to-all) relative to the
    reference's (multiplies the link-bandwidth fraction, divides the per-step latencies)."""
    comm_overlap_frac: float = Field(default=0.0, ge=0.0, le=0.9)
    """Share of collective time hidden behind compute beyond what the reference hides (the
    engine adds collective time to compute time). The Efficiency bounds the bandwidth fraction
    at 1, so the bandwidth part of the hiding is capped there."""
    act_quant_fused: bool = False
    """Whether the runtime fuses each low-precision GEMM's activation quantization into the kernel
    before it, so no separate memory pass is paid (TensorRT engines: Q/DQ layer fusion folds the
    quantize into the preceding normalization, activation or GEMM epilogue). PyTorch-based stacks
    (TensorRT-LLM's PyTorch flow, whose kernel tables fit the pass, vLLM, SGLang, Transformer Engine)
    run it as a kernel of its own (`Efficiency.lowp_act_quant_bytes`)."""
    request_overhead_ms: float = Field(default=0.0, ge=0, le=500)
    """Host time each request spends outside the engine's GPU steps on its way to the first token,
    ms: the API server's HTTP handling and chat template, scheduler admission, inter-process hops
    (a proxy in front of prefill/decode pools), the first token's detokenization and streaming.
    Added to TTFT (and E2E) at a stated concurrency; for the engine it acts as client think time.
    Does not change the Efficiency."""
    input_us_per_token: float = Field(default=0.0, ge=0, le=100)
    """Host time per prompt token on the way to the first token, µs: tokenizing the prompt text
    (once per server it passes through) and building the request. Added to TTFT as
    `input_us_per_token` × prompt tokens. Does not change the Efficiency."""
    pd_host_passes: int = Field(default=1, ge=1, le=4)
    """API-server passes a request makes one after the other before its first token when the
    framework serves prefill and decode on separate pools (each pass is a whole host path: HTTP
    handling, chat template, tokenizing the prompt). vLLM's disaggregated-serving proxy
    (vllm-project/vllm tests/v1/kv_connector/nixl_integration/toy_proxy_server.py,
    `_handle_completions`) sends the request to a prefill server with max_tokens=1, waits for its
    response, then sends it to a decode server: 2. SGLang's router (python/sglang/srt/disaggregation/
    mini_lb.py, `generate_stream`) posts to both servers at once (`asyncio.gather`): 1."""
    source: str = "neutral: the reference (TensorRT-LLM-like) calibration unchanged"
    """How these values were set: the fit (rows, sources, date) or the reasoning."""

    def request_host_s(self, input_len) -> float:
        """Seconds a request of `input_len` prompt tokens spends in the serving stack's host path
        before its first token, outside the engine's steps: `request_overhead_ms` plus
        `input_us_per_token` × `input_len` (0 for the neutral profile)."""
        return self.request_overhead_ms * 1e-3 + self.input_us_per_token * 1e-6 * float(input_len)

    @property
    def is_neutral(self) -> bool:
        """True when applying the profile changes no efficiency figure (the per-request host
        costs, `request_overhead_ms` and `input_us_per_token`, are not efficiency figures)."""
        return (self.step_overhead_ms is None and self.cuda_graphs and self.comm_overlap_frac == 0.0
                and not self.act_quant_fused
                and all(q == 1.0 for q in (self.gemm_quality, self.attention_quality, self.memory_quality,
                                           self.moe_quality, self.comm_quality)))
