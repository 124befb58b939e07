"""What a training job asks for, and the few physical parameters of the training stack.

`TrainingJob` is the question (tokens, sequence length, global batch, precision, any parallel
degree the user fixes); `TrainingStack` holds the physical constants of a training software stack
and a cluster that the chip's datasheet and calibration do not carry. Each default is a published
figure, cited on its field; none is fitted to a validation row.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tokenfab.specs.base import Spec
from tokenfab.train import moe

SCHEDULES = ("1f1b", "interleaved", "zb-h1", "zb-h2", "dualpipe")
"""Pipeline schedules the search knows (`train.schedule`)."""
SOFTWARE_SCHEDULES = {
    "production": ("1f1b", "interleaved", "dualpipe"),
    "any": SCHEDULES,
    "megatron-core": ("1f1b", "interleaved"),
    "zero-bubble": ("1f1b", "interleaved", "zb-h1", "zb-h2"),
    "dualpipe": ("1f1b", "dualpipe"),
}
"""Pipeline schedules each training software implements (`--software`). Megatron-Core picks one of
three in `get_forward_backward_func` (NVIDIA/Megatron-LM megatron/core/pipeline_parallel/schedules.py:
`forward_backward_no_pipelining`, `..._without_interleaving` = 1F1B, `..._with_interleaving`); the
ZB-H1/H2 schedules ship in a Megatron-LM fork (sail-sg/zero-bubble-pipeline-parallelism, arXiv
2401.10241); DualPipe in deepseek-ai/DualPipe. `production` (the default, `DEFAULT_SOFTWARE`): the
schedules a published frontier-scale pretraining ran — interleaved 1F1B (Llama 3 405B on 16,384 H100,
arXiv 2407.21783 §3.3.2; NeMo/Megatron) and DualPipe (DeepSeek-V3 on 2,048 H800, arXiv 2412.19437
§3.2.1); the zero-bubble schedules are published at up to 32 GPUs (arXiv 2401.10241 §5), and ZB-H2 as
priced needs that fork's optimizer post-validation. `any`: every schedule the model knows, a bound."""
DEFAULT_SOFTWARE = "production"
"""Training software assumed when a question names none (`train`, `compare`'s training mode, studies,
mixes, validation rows whose framework is not one we know)."""


def default_software(schedule: str | None = None) -> str:
    """The software a question that names none gets: `DEFAULT_SOFTWARE`, or `any` when it fixes a
    schedule outside it (the default limits what the search picks, not what a user asks for)."""
    return "any" if schedule and schedule not in SOFTWARE_SCHEDULES[DEFAULT_SOFTWARE] else DEFAULT_SOFTWARE
RECOMPUTE = ("none", "selective", "full")
"""Activation recomputation: nothing, the cheap elementwise kernels (norms, SwiGLU), or whole layers."""


class TrainingJob(Spec):
    """One pretraining (or fine-tuning) run: how many tokens, in what shape, at what precision."""

    tokens: float = Field(gt=0, le=1e17)
    """Training tokens of the whole run."""
    seq_len: int = Field(default=4096, gt=0, le=10_000_000)
    """Tokens per training sequence (DeepSeek-V3 pretrained at 4K, Llama 3 at 8K)."""
    global_batch_tokens: float = Field(default=16.0 * 2**20, gt=0, le=1e12)
    """Tokens per optimizer step (Llama 3 405B: 16M tokens, arXiv 2407.21783 Table 4; DeepSeek-V3
    reached 15,360 sequences x 4K = 63M, arXiv 2412.19437 §4.2). A step trains whole sequences: the
    micro-batches round it up."""
    precision: Literal["bf16", "fp8"] = "bf16"
    """Format of the linear layers' GEMMs (forward, input-gradient and weight-gradient): fp8 runs
    them on the FP8 tensor path (DeepSeek-V3's fine-grained FP8); attention, embedding, LM head
    and the optimizer stay bf16/fp32."""
    tp: int | None = Field(default=None, ge=1, le=4096)
    """Tensor-parallel degree (None: searched)."""
    pp: int | None = Field(default=None, ge=1, le=4096)
    """Pipeline-parallel stages (None: searched)."""
    dp: int | None = Field(default=None, ge=1, le=10_000_000)
    """Data-parallel replicas (None: searched)."""
    cp: int | None = Field(default=None, ge=1, le=4096)
    """Context-parallel degree: each sequence split over `cp` ranks (None: searched)."""
    ep: int | None = Field(default=None, ge=1, le=1_000_000)
    """Expert-parallel degree of a MoE model (None: searched)."""
    zero: int | None = Field(default=None, ge=0, le=3)
    """ZeRO stage: 0 replicated, 1 optimizer states sharded over data parallel, 2 + gradients,
    3 + weights (FSDP); None: searched."""
    recompute: Literal["none", "selective", "full"] | None = None
    """Activation recomputation (None: searched)."""
    schedule: Literal["1f1b", "interleaved", "zb-h1", "zb-h2", "dualpipe"] | None = None
    """Pipeline schedule (None: searched)."""
    virtual_stages: int = Field(default=2, ge=2, le=128)
    """Model chunks per chip of the interleaved schedule (Megatron's virtual pipeline size, VP)."""
    micro_batch: int | None = Field(default=None, ge=1, le=65536)
    """Sequences per micro-batch (None: searched)."""
    lora: bool = False
    """Low-rank adapter fine-tuning (LoRA, arXiv 2106.09685): the base weights are frozen, so the
    backward computes input gradients only (one GEMM per linear layer instead of two), and a chip
    holds the working weights without gradients or optimizer states; the adapters' own GEMMs,
    gradients and states are a fraction of a percent and are left out."""
    mtp: bool = True
    """Train the model's multi-token-prediction modules when it ships them (DeepSeek-V3: one; each
    adds a decoder layer and an LM head pass per token)."""
    overlap: bool | None = None
    """Overlap of tensor/expert/context-parallel communication with computation (None: searched)."""

    @model_validator(mode="after")
    def _check(self) -> "TrainingJob":
        if self.global_batch_tokens < self.seq_len:
            raise ValueError(f"global_batch_tokens ({self.global_batch_tokens:g}) is less than one sequence "
                             f"({self.seq_len} tokens)")
        return self


class TrainingStack(Spec):
    """Physical constants of a training stack and cluster (not the chip's datasheet)."""

    comm_sm_frac: float = Field(default=20.0 / 132.0, ge=0, lt=1)
    """Share of a chip's compute that overlapped communication takes from the GEMMs: DeepSeek-V3
    dedicates 20 of H800's 132 SMs to all-to-all kernels while computing (arXiv 2412.19437 §3.2.2)."""
    attention_backward_ratio: float = Field(default=2.5, gt=0)
    """Backward FLOPs of fused attention over its forward: FlashAttention's backward runs five
    matmuls (QK^T recomputed, dV, dP, dQ, dK) against the forward's two (arXiv 2205.14135 §3.1;
    arXiv 2307.08691 Algorithm 2)."""
    attention_backward_efficiency: float = Field(default=1000.0 / 1460.0, gt=0, le=1)
    """FLOP rate of the fused attention backward over its forward's: FlashMLA's dense MHA kernels
    on B200 reach 1460 TFLOP/s forward and 1000 backward (deepseek-ai/FlashMLA README, "Test &
    benchmark MHA prefill (Dense)": "as reported by NVIDIA") = 0.685; the backward's extra
    recomputation and atomic dQ accumulation run below the forward's rate."""
    fused_attention: bool = True
    """Attention runs as one fused kernel (FlashAttention, cuDNN/TE fused attention: the scores never
    reach HBM). False: the pre-fusion path of 2022 Megatron-LM, whose score traffic
    (`train.layer.UNFUSED_SCORE_BYTES`) reproduces Korthikanti et al.'s measured A100 layers
    (`bench/train_layer_breakdown.py`); the scores' activation memory is not added."""
    grad_bytes: float = Field(default=4.0, gt=0)
    """Bytes per gradient element held and reduce-scattered: FP32 accumulation and reduction
    (Llama 3: "accumulate gradients during backward in FP32 and reduce-scatter in FP32", arXiv
    2407.21783 §3.3.4; Megatron's default main-grad buffer)."""
    weight_bytes: float = Field(default=2.0, gt=0)
    """Bytes per working weight (bf16)."""
    optimizer_bytes: float = Field(default=12.0, ge=0)
    """Optimizer bytes per parameter: FP32 master weight, Adam first and second moments (ZeRO,
    arXiv 1910.02054 §3.1: K = 12)."""
    failures_per_chip_hour: float = Field(default=419.0 / (54 * 24 * 16384), ge=0)
    """Job-interrupting failures per chip-hour: 419 unexpected interruptions in 54 days on 16,384
    H100 (Llama 3 405B pretraining, arXiv 2407.21783 §3.3.4 / Table 5) = 1.97e-5."""
    checkpoint_gb_s_per_chip: float = Field(default=2000.0 / 16384, gt=0)
    """Checkpoint write bandwidth per chip, GB/s: Meta's Tectonic sustained 2 TB/s for 16,384 GPUs
    (arXiv 2407.21783 §3.3.1) = 0.122 GB/s."""
    restart_s: float = Field(default=600.0, ge=0)
    """Seconds from a failure to training again (detect, reschedule, reload the checkpoint) — an
    estimate: Llama 3 reports the interruptions, not the restart time."""
    max_goodput_loss: float = Field(default=0.95, gt=0, lt=1)
    """Cap on the failure/checkpoint loss so a huge cluster's goodput stays finite and positive."""
    moe_host_s_per_layer: float = Field(default_factory=lambda: moe.MOE_HOST_S_PER_LAYER, ge=0, le=1)
    """Host seconds a dropless MoE layer exposes per micro-batch, forward and backward together:
    Megatron-Core's token dispatcher blocks the host on the tokens-per-expert copy once per forward
    and the kernels after it reach the GPU only as fast as the host issues them (`train.moe`). 0 for
    a stack that captures the whole MoE layer in a CUDA graph with static expert buffers (no sync)."""
    ep_comm_overlap: bool = False
    """The expert all-to-all (dispatch and combine, forward and backward) runs beside computation:
    Megatron-Core's `overlap_moe_expert_parallel_comm` (the all-to-all of one micro-batch under
    another's compute). Megatron-Core's default runs it on the critical path even when tensor- and
    data-parallel communication overlap. DualPipe overlaps it whatever this says: its schedule pairs
    a forward and a backward chunk so that each one's all-to-all hides under the other's
    computation (DeepSeek-V3, arXiv 2412.19437 §3.2.1)."""
    schedules: tuple[Literal["1f1b", "interleaved", "zb-h1", "zb-h2", "dualpipe"], ...] = Field(
        default=SOFTWARE_SCHEDULES[DEFAULT_SOFTWARE], min_length=1)
    """Pipeline schedules the training software implements (`SOFTWARE_SCHEDULES`); the search uses
    no other. 1F1B is always among them: without pipelining a step is its plain forward/backward."""

    @model_validator(mode="after")
    def _has_1f1b(self) -> "TrainingStack":
        if "1f1b" not in self.schedules:
            raise ValueError(f"schedules {list(self.schedules)} lack 1f1b, which every pipeline stack runs")
        return self
