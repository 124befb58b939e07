"""Achievable fractions of peak and fixed overheads, per chip family.

These are the only tuned numbers in the engine. Defaults are per vendor family with their
reasoning; `tokenfab calibrate` (issue 3) fits them from microbenchmark rows and writes
`catalog/calibration/<chip>.yaml`, which `efficiency_for` prefers when present.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import Field

from tokenfab.specs.base import Spec


MOE_COMPUTE_SCALE_MAX = 4.0
"""Largest accepted FP8 MoE compute scale: above 1 only where a chip's block-scaled dense GEMMs are slower
than its fused-MoE kernels (`Efficiency.for_block_scales` re-expresses the per-tensor scale against them)."""
MOE_STREAM_SCALE_MAX = 10.0
"""Largest accepted MoE weight-stream scale (a ratio to the dense GEMM's stream fraction; the fit
keeps the product under the copy fraction)."""


class Efficiency(Spec):
    """How close kernels on a chip get to its peaks, and what each launch costs."""

    gemm_compute_frac: float = Field(default=0.78, gt=0, le=1)
    """Fraction of dense peak a large, well-shaped GEMM sustains (clock throttling included)."""
    lowp_gemm_compute_frac: float | None = Field(default=None, gt=0, le=1)
    """Fraction of the FP8/FP4 dense peak a large GEMM sustains; None = `gemm_compute_frac`.
    Low-precision tensor paths double the math rate per clock but not the on-chip data movement,
    block-scale handling or epilogue per FLOP, so they reach a smaller share of their peak
    (H100: ~71% for FP8 against ~80% for BF16 in the same best-shape search, MAMF rows)."""
    fp4_gemm_compute_frac: float | None = Field(default=None, gt=0, le=1)
    """Fraction of the FP4 dense peak a large block-scaled FP4 GEMM (NVFP4/MXFP4) sustains; None =
    `lowp_gemm_compute_frac`. FP4 doubles the MMA rate over FP8 again, but each 16- or 32-element
    block carries a scale that must be loaded and applied, the operand bytes per FLOP halve so
    shared-memory/TMEM feeding becomes the limit, and the denser math pushes the chip into its power
    cap (lower sustained clock): measured block-scaled FP4 GEMMs on B200 reach ~45-55% of the FP4
    peak where FP8 GEMMs reach ~65-75% of theirs (rows M0468-M0471)."""
    gemm_hbm_frac: float | None = Field(default=None, gt=0, le=1)
    """Fraction of peak HBM bandwidth a BF16 GEMM sustains while streaming its weights (small M);
    None = `hbm_frac`. A GEMM's weight stream is split over output tiles and K slices and does not
    reach a plain copy's bandwidth (fitted from measured GEMM tables, `--source aiconfigurator`)."""
    lowp_gemm_hbm_frac: float | None = Field(default=None, gt=0, le=1)
    """Weight-streaming HBM fraction of FP8/INT8 GEMMs; None = `gemm_hbm_frac`."""
    fp4_gemm_hbm_frac: float | None = Field(default=None, gt=0, le=1)
    """Weight-streaming HBM fraction of 4-bit-weight GEMMs (block-scaled FP4, or weight-only kernels
    that dequantize to the compute format); None = `lowp_gemm_hbm_frac`."""
    gemm_fixed_us: float | None = Field(default=None, ge=0)
    """Fixed cost of one BF16 GEMM, µs (launch, prologue, epilogue); None = `kernel_launch_us`."""
    lowp_gemm_fixed_us: float | None = Field(default=None, ge=0)
    """Fixed cost of one FP8/INT8 GEMM, µs, including the activation quantization and scale
    handling the low-precision path adds; None = `gemm_fixed_us`."""
    fp4_gemm_fixed_us: float | None = Field(default=None, ge=0)
    """Fixed cost of one 4-bit-weight GEMM, µs (activation quantization and block-scale layout
    included); None = `lowp_gemm_fixed_us`."""
    lowp_act_quant_bytes: float | None = Field(default=None, ge=0, le=16)
    """Bytes per input activation element (M x K) the activation quantization of an FP8/INT8-compute
    GEMM moves as its own memory pass (amax, scale, quantize: 5 for a per-tensor dynamic scale read
    twice and written once in FP8, 3 for a one-pass static or per-token-group scale), charged at the
    copy fraction `hbm_frac`, in proportion to M x K rather than to the GEMM's FLOPs: what makes a
    small-N low-precision GEMM slower than its FLOPs say. Set where the compute fractions were
    fitted with that pass kept apart (`tokenfab calibrate --source aiconfigurator`: the value fitted
    on the chip's TensorRT-LLM table flow, which serving and Transformer Engine training run too);
    None: not charged (the fitted compute fraction absorbs it)."""
    fp4_act_quant_bytes: float | None = Field(default=None, ge=0, le=16)
    """`lowp_act_quant_bytes` of FP4-compute GEMMs (NVFP4/MXFP4 activations); None =
    `lowp_act_quant_bytes`. Weight-only kernels (4-bit weights, BF16 compute) quantize nothing."""
    dynamic_quant_in_gemm: bool = False
    """Charge the low-precision fixed costs as fitted. aiconfigurator's GEMM tables (the TensorRT-LLM
    PyTorch flow) time each FP8/FP4 GEMM together with a dynamic-scale activation quantization
    (amax reduction, scale, quantize: ~14-16 µs at small M on H100/B200), which is what the fit of
    `lowp_gemm_fixed_us` / `fp4_gemm_fixed_us` sees (the fit sets this True). Serving engines quantize
    activations in one kernel (static or per-token-group scales) or fuse it into the preceding
    norm, and pure FP8 kernels have no such floor (vLLM PRs #19566 / #20071: CUTLASS FP8 at M = 16 on
    B200 in ~6 µs), so by default (False) a low-precision GEMM's fixed cost is at most the bf16
    GEMM's plus one kernel launch (`gemm_fixed_s`). The quantization's memory pass, which grows with
    M x K, is charged apart where fitted (`lowp_act_quant_bytes`)."""
    block_gemm_compute_frac: float | None = Field(default=None, gt=0, le=1)
    """`lowp_gemm_compute_frac` of block-scaled FP8 GEMMs (DeepSeek-style fine-grained scales: one per
    1 x 128 group of activations, one per 128 x 128 block of weights; `ModelSpec.fp8_weight_block`). On
    matrix units without block-scaled MMA (Hopper, CDNA3) each 128-deep K slice is accumulated apart and
    rescaled in FP32 on the vector units (DeepGEMM's "promotion"), costing issue slots and registers a
    per-tensor kernel spends on MMAs: measured H100/H200 0.55-0.60 against 0.72 per-tensor (aiconfigurator
    fp8_block tables), MI300X ~0.28 against ~0.44 (aiter's tuned block-scale GEMMs). Blackwell's MMA
    takes the scales itself (B200 0.67 both). None = `lowp_gemm_compute_frac` (no difference)."""
    block_gemm_hbm_frac: float | None = Field(default=None, gt=0, le=1)
    """`lowp_gemm_hbm_frac` of block-scaled FP8 GEMMs (the scales are a second, strided stream);
    None = `lowp_gemm_hbm_frac`."""
    block_gemm_fixed_us: float | None = Field(default=None, ge=0)
    """`lowp_gemm_fixed_us` of block-scaled FP8 GEMMs; None = `lowp_gemm_fixed_us`."""
    block_act_quant_bytes: float | None = Field(default=None, ge=0, le=16)
    """`lowp_act_quant_bytes` of block-scaled FP8 GEMMs (per-token-group scales, one pass); None =
    `lowp_act_quant_bytes`."""
    moe_gemm_compute_scale: float | None = Field(default=None, gt=0, le=1)
    """Share of the dense BF16 GEMM compute fraction (`gemm_frac`) a grouped expert GEMM (MoE
    `ragged` GEMMs) sustains: ragged per-expert tiles, the grouped scheduler and per-group problem
    setup cost throughput a dense GEMM of the same FLOPs does not pay. Fitted on aiconfigurator's
    measured TensorRT-LLM fused-MoE tables (`tokenfab calibrate --source aiconfigurator`); None = 1
    (the grouped GEMM runs at the dense fraction, the engine as before)."""
    lowp_moe_gemm_compute_scale: float | None = Field(default=None, gt=0, le=MOE_COMPUTE_SCALE_MAX)
    """`moe_gemm_compute_scale` of FP8/INT8 expert GEMMs; None = `moe_gemm_compute_scale`."""
    fp4_moe_gemm_compute_scale: float | None = Field(default=None, gt=0, le=1)
    """`moe_gemm_compute_scale` of 4-bit-weight expert GEMMs; None = `lowp_moe_gemm_compute_scale`."""
    moe_gemm_stream_scale: float | None = Field(default=None, gt=0, le=MOE_STREAM_SCALE_MAX)
    """Ratio of a grouped expert GEMM's weight-stream fraction to the dense BF16 GEMM's
    (`gemm_stream_frac`); None = 1. Below 1 where each active expert's weights are a separate,
    smaller stream; above 1 where the dense tables' small-M kernels stream below a copy and the grouped
    kernel does not (the fit bounds it by the copy fraction, `validate.aic_moe.stream_scale_max`)."""
    lowp_moe_gemm_stream_scale: float | None = Field(default=None, gt=0, le=MOE_STREAM_SCALE_MAX)
    """`moe_gemm_stream_scale` of FP8/INT8 expert GEMMs; None = `moe_gemm_stream_scale`."""
    fp4_moe_gemm_stream_scale: float | None = Field(default=None, gt=0, le=MOE_STREAM_SCALE_MAX)
    """`moe_gemm_stream_scale` of 4-bit-weight expert GEMMs; None = `lowp_moe_gemm_stream_scale`."""
    moe_layer_fixed_us: float | None = Field(default=None, ge=0)
    """Fixed cost of one BF16 fused-MoE layer beyond its kernels' launches, µs (expert-offset scan,
    grouped-GEMM problem setup, the small routing kernels' serial latency), charged once per layer
    on the gate-up grouped GEMM; None = 0."""
    lowp_moe_layer_fixed_us: float | None = Field(default=None, ge=0)
    """`moe_layer_fixed_us` of an FP8/INT8 MoE layer (activation quantization included); None =
    `moe_layer_fixed_us`."""
    fp4_moe_layer_fixed_us: float | None = Field(default=None, ge=0)
    """`moe_layer_fixed_us` of a 4-bit-weight MoE layer; None = `lowp_moe_layer_fixed_us`."""
    block_moe_gemm_compute_scale: float | None = Field(default=None, gt=0, le=1)
    """`lowp_moe_gemm_compute_scale` of block-scaled FP8 expert GEMMs (a model with
    `ModelSpec.fp8_weight_block`), as a share of the per-tensor dense FP8 fraction; None =
    `lowp_moe_gemm_compute_scale`. On Hopper the block-scaled grouped GEMMs pay the same promotion as
    the dense ones: aiconfigurator's TensorRT-LLM fused-MoE tables fit 0.35 on H100/H200 against 0.64-0.72
    for per-tensor FP8 (0.66-0.69 against 0.54-0.58 on B200/B300, whose MMA takes the scales)."""
    block_moe_gemm_stream_scale: float | None = Field(default=None, gt=0, le=MOE_STREAM_SCALE_MAX)
    """`lowp_moe_gemm_stream_scale` of block-scaled FP8 expert GEMMs; None = `lowp_moe_gemm_stream_scale`."""
    block_moe_layer_fixed_us: float | None = Field(default=None, ge=0)
    """`lowp_moe_layer_fixed_us` of a block-scaled FP8 MoE layer; None = `lowp_moe_layer_fixed_us`."""
    attention_compute_frac: float = Field(default=0.60, gt=0, le=1)
    """Fraction of dense peak a fused (flash) attention kernel sustains in prefill."""
    scan_compute_frac: float = Field(default=0.05, gt=0, le=1)
    """Fraction of the BF16 peak a chunked linear-attention prefill kernel chain (Gated DeltaNet's
    `chunk_gated_delta_rule`: per-chunk K·K^T, triangular solve, WY transform, state passing, output)
    sustains over its many small per-chunk products when it has work for every core (`scan` ops,
    `perf.kinds`). Default: the median of the aiconfigurator kernel-table fits of TensorRT-LLM's (FLA's
    Triton) kernels on eight NVIDIA systems (0.0375-0.0975; `validate.aic_gdn`). A framework whose own
    kernels the tables time gets its own value under its profile (`framework_kernel_terms`: vLLM's
    FlashInfer kernel 0.20-0.36 on Hopper and Blackwell)."""
    scan_chunk_us: float = Field(default=4.0, ge=0, le=1000)
    """Time of one sequential chunk step of a chunked linear-attention prefill, µs: the recurrent state
    passes from chunk to chunk inside one core, so a prompt of n chunks takes at least n steps however
    many cores the chip has. Default: the median of the same fits (3.6-5.1 µs; L40S 0.5 µs, where its
    work term binds instead)."""
    hbm_frac: float = Field(default=0.85, gt=0, le=1)
    """Fraction of peak HBM bandwidth a streaming kernel sustains."""
    tile_m: int = Field(default=128, gt=0)
    """Output-tile rows of a GEMM kernel (M padding and wave quantization)."""
    tile_n: int = Field(default=128, gt=0)
    """Output-tile columns of a GEMM kernel."""
    min_tile_m: int = Field(default=64, gt=0)
    """Smallest M tile the matrix unit can issue (small-M GEMMs pad up to it)."""
    kernel_launch_us: float = Field(default=3.0, ge=0)
    """Fixed cost per kernel, µs (launch + prologue/epilogue; CUDA-graph replay in decode)."""
    comm_bw_frac: float = Field(default=0.80, gt=0, le=1)
    """Fraction of link bandwidth a collective achieves (bus bandwidth / link bandwidth)."""
    comm_latency_us: float = Field(default=4.0, ge=0)
    """Latency of one collective step inside the scale-up domain, µs."""
    allreduce_latency_us: float | None = Field(default=None, ge=0)
    """Latency of the custom (one/two-shot) all-reduce serving stacks run inside one scale-up domain,
    µs, flat in the group size; an all-reduce inside a domain takes the faster of it and the NCCL
    estimate (2·ceil(log2 p)·`comm_latency_us` + ring at `comm_bw_frac`). None = NCCL only."""
    allreduce_bw_frac: float | None = Field(default=None, gt=0, le=1)
    """Share of the scale-up link the custom all-reduce sustains (it runs with few thread blocks);
    None = `comm_bw_frac`."""
    scaleout_latency_us: float = Field(default=12.0, ge=0)
    """Latency of one collective step across the scale-out network, µs."""
    alltoall_latency_us: float | None = Field(default=None, ge=0)
    """Fixed time of one expert dispatch or combine call (DeepEP-style kernels: routing layout,
    quantization, peer signalling), µs, flat in the group size. None = the collective steps'
    latencies (ceil(log2 p) × `comm_latency_us` / `scaleout_latency_us`)."""
    alltoall_bw_frac: float | None = Field(default=None, gt=0, le=1)
    """Share of each link an expert dispatch or combine kernel sustains; None = `comm_bw_frac`."""
    step_overhead_ms: float = Field(default=0.3, ge=0)
    """Per engine step host overhead not hidden by overlap (scheduling, sampling), ms."""
    source: str = "family default"
    """Where these values come from (`calibrated: <file>` or a family default's reasoning)."""

    def gemm_frac(self, precision: str) -> float:
        """Achievable fraction of the dense peak for GEMMs computing in `precision`."""
        if precision == "fp4" and self.fp4_gemm_compute_frac is not None:
            return self.fp4_gemm_compute_frac
        if precision in LOW_PRECISION_COMPUTE and self.lowp_gemm_compute_frac is not None:
            return self.lowp_gemm_compute_frac
        return self.gemm_compute_frac

    def act_quant_bytes(self, kernel: str) -> float:
        """Activation-quantization bytes per M x K input element of a GEMM computing in kernel class
        `kernel` (lowp: FP8/INT8, fp4); bf16 and unfitted chips: 0."""
        lowp = self.lowp_act_quant_bytes or 0.0
        fp4 = lowp if self.fp4_act_quant_bytes is None else self.fp4_act_quant_bytes
        return {"bf16": 0.0, "lowp": lowp, "fp4": fp4}[kernel]

    def gemm_stream_frac(self, kernel: str) -> float:
        """HBM fraction a GEMM of kernel class `kernel` (bf16, lowp, fp4) sustains on its weights."""
        bf16 = self.hbm_frac if self.gemm_hbm_frac is None else self.gemm_hbm_frac
        lowp = bf16 if self.lowp_gemm_hbm_frac is None else self.lowp_gemm_hbm_frac
        return {"bf16": bf16, "lowp": lowp, "fp4": lowp if self.fp4_gemm_hbm_frac is None
                else self.fp4_gemm_hbm_frac}[kernel]

    def gemm_fixed_s(self, kernel: str, table_flow: bool | None = None) -> float:
        """Fixed seconds of one GEMM of kernel class `kernel` (bf16, lowp, fp4). Low-precision
        classes: as fitted where `table_flow` (default `dynamic_quant_in_gemm`), else at most the
        bf16 GEMM's fixed cost plus one kernel launch (its one activation-quantization kernel)."""
        bf16 = self.kernel_launch_us if self.gemm_fixed_us is None else self.gemm_fixed_us
        lowp = bf16 if self.lowp_gemm_fixed_us is None else self.lowp_gemm_fixed_us
        fp4 = lowp if self.fp4_gemm_fixed_us is None else self.fp4_gemm_fixed_us
        if not (self.dynamic_quant_in_gemm if table_flow is None else table_flow):
            cap = bf16 + self.kernel_launch_us
            lowp, fp4 = min(lowp, cap), min(fp4, cap)
        return {"bf16": bf16, "lowp": lowp, "fp4": fp4}[kernel] * 1e-6

    def for_block_scales(self) -> "Efficiency":
        """This Efficiency for a model whose FP8 weights carry block scales (`ModelSpec.fp8_weight_block`):
        the dense FP8/INT8 GEMM class takes the block-scaled kernels' fields where they are set; the
        4-bit class keeps its own values. Grouped expert GEMMs run the block-scaled fused-MoE kernels,
        whose terms are fitted apart as scales of the per-tensor dense fractions (`block_moe_*`: on
        NVIDIA on TensorRT-LLM's fp8_block MoE tables; where unset, `lowp_moe_*`: on AMD aiter's
        block-scaled fused-MoE tables): they take the FP8 MoE class's place, re-expressed against the
        block-scaled dense fractions, so the grouped GEMMs' fractions are the fit's. The block fields
        are consumed (None in the result), so a second swap changes nothing."""
        return _for_block_scales(self)  # cached: the engine asks once per chip, model and phase

    def _block_scaled(self) -> "Efficiency":
        """The uncached body of `for_block_scales`."""
        # Each block field's FP8/INT8 counterpart is its name with `lowp_` for `block_`.
        update = {block.replace("block_", "lowp_", 1): getattr(self, block) for block in BLOCK_GEMM_FIELDS
                  if getattr(self, block) is not None}
        block_moe = any(getattr(self, f) is not None for f in BLOCK_MOE_FIELDS)
        if not update and not block_moe:
            return self

        def first(*values):
            return next((v for v in values if v is not None), None)

        # The 4-bit class falls back to the FP8/INT8 one where unfitted: pin it at its own values first.
        update |= {"fp4_gemm_compute_frac": self.gemm_frac("fp4"), "fp4_gemm_hbm_frac": self.gemm_stream_frac("fp4"),
                   "fp4_gemm_fixed_us": first(self.fp4_gemm_fixed_us, self.lowp_gemm_fixed_us, self.gemm_fixed_us,
                                              self.kernel_launch_us),
                   "fp4_act_quant_bytes": first(self.fp4_act_quant_bytes, self.lowp_act_quant_bytes)}
        c4, h4, _ = self.moe_terms("fp4")
        update |= {"fp4_moe_gemm_compute_scale": c4, "fp4_moe_gemm_stream_scale": h4,
                   "fp4_moe_layer_fixed_us": first(self.fp4_moe_layer_fixed_us, self.lowp_moe_layer_fixed_us,
                                                   self.moe_layer_fixed_us, 0.0)}
        old_c, old_h = self.gemm_frac("fp8"), self.gemm_stream_frac("lowp")
        new_c = first(update.get("lowp_gemm_compute_frac"), old_c)
        new_h = first(update.get("lowp_gemm_hbm_frac"), old_h)
        if self.has_moe_fit:
            # The block-scaled fused-MoE terms (the FP8 ones where unfitted), fitted as scales of the
            # per-tensor dense values: re-expressed against the block-scaled dense values now in their
            # place. (Without a MoE fit the grouped GEMMs run at the dense block-scaled values, and no
            # fitted layer holds a quantization: `perf.evaluate.time_ops`.)
            c, h, f = self.moe_terms("block")
            update["lowp_moe_gemm_compute_scale"] = min(MOE_COMPUTE_SCALE_MAX, c * old_c / new_c)
            update["lowp_moe_gemm_stream_scale"] = min(MOE_STREAM_SCALE_MAX, h * old_h / new_h)
            update["lowp_moe_layer_fixed_us"] = f * 1e6
        # The block fields are consumed: they now sit in the FP8 class's, and a second swap finds none.
        update |= {f: None for f in BLOCK_GEMM_FIELDS + BLOCK_MOE_FIELDS}
        tag = "; block-scaled FP8 GEMM kernels"
        update["source"] = self.source if self.source.endswith(tag) else self.source + tag
        return self.model_copy(update=update)

    @property
    def has_moe_fit(self) -> bool:
        """Whether any grouped expert GEMM / MoE layer field is set (None everywhere: priced as before)."""
        return any(getattr(self, f) is not None for f in MOE_FIELDS)

    def moe_terms(self, kernel: str) -> tuple[float, float, float]:
        """(compute scale, weight-stream scale, fixed seconds per MoE layer) of grouped expert GEMMs of
        kernel class `kernel` (bf16, lowp, fp4; block: block-scaled FP8, as scales of the per-tensor
        dense values); unfitted: (1, 1, 0)."""
        out = []
        for stem, default in (("moe_gemm_compute_scale", 1.0), ("moe_gemm_stream_scale", 1.0),
                              ("moe_layer_fixed_us", 0.0)):
            bf16 = getattr(self, stem)
            bf16 = default if bf16 is None else bf16
            lowp = getattr(self, "lowp_" + stem)
            lowp = bf16 if lowp is None else lowp
            fp4 = getattr(self, "fp4_" + stem)
            fp4 = lowp if fp4 is None else fp4
            block = getattr(self, "block_" + stem)
            block = lowp if block is None else block
            out.append({"bf16": bf16, "lowp": lowp, "fp4": fp4, "block": block}[kernel])
        return out[0], out[1], out[2] * 1e-6


@lru_cache(maxsize=512)
def _for_block_scales(eff: Efficiency) -> Efficiency:
    return eff._block_scaled()


MOE_FIELDS = tuple(f"{p}{stem}" for stem in ("moe_gemm_compute_scale", "moe_gemm_stream_scale", "moe_layer_fixed_us")
                   for p in ("", "lowp_", "fp4_", "block_"))
"""The grouped expert GEMM / MoE layer fields (`Efficiency.moe_terms`)."""
BLOCK_MOE_FIELDS = tuple(f for f in MOE_FIELDS if f.startswith("block_"))
"""The block-scaled FP8 fused-MoE fields (`Efficiency.for_block_scales` swaps them in)."""
SCAN_FIELDS = ("scan_compute_frac", "scan_chunk_us")
"""The chunked linear-attention prefill fields (`perf.kinds` `scan` ops)."""


LOW_PRECISION_COMPUTE = ("fp8", "fp4", "int8", "int4")
"""Formats whose GEMMs run on the low-precision tensor path (`lowp_gemm_compute_frac`)."""


# Software-stack defaults: reasoning, not fits. CUDA: cuBLAS/CUTLASS large bf16 GEMMs sustain
# ~75-80% of dense peak on H100/A100 at boost-clock throttling; streaming kernels reach ~85-90%
# of HBM peak. ROCm on MI300X: hipBLASLt reaches a smaller fraction of its higher peak (~60-70%)
# and ~80% of HBM. XLA on TPU / CANN on Ascend: systolic arrays with 128x128 (TPU) or 16x16 cube
# tiles. Stacks without measurements here (Neuware, Neuron, SynapseAI, a new in-house stack)
# take the conservative default until `tokenfab calibrate` fits a chip of theirs.
_STACKS = {
    # Fixed costs, measured: a kernel 2.0 µs (2.04 µs per kernel for a chain of real small kernels
    # replayed as a CUDA graph on an H200, bench/gpu/decode_step.py, 2026-12-04; 1.6-2.6 µs for
    # aiconfigurator's one-kernel quantize on every NVIDIA system of its tables); a GEMM 3.5 µs (the
    # kernel tables' BF16 GEMM fits: H100 3.5, H200 3.9, B200 3.1, GB200 3.1, B300 2.9 µs).
    "cuda": Efficiency(kernel_launch_us=2.0, gemm_fixed_us=3.5,
                       source="stack default: CUDA (cuBLAS-class GEMM ~78% of dense peak, ~85% HBM; "
                              "2 us a kernel, 3.5 us a GEMM)"),
    "rocm": Efficiency(gemm_compute_frac=0.62, attention_compute_frac=0.45, hbm_frac=0.80, tile_n=256,
                       kernel_launch_us=5.0, source="stack default: ROCm (hipBLASLt ~62% of dense peak, ~80% HBM)"),
    "xla": Efficiency(gemm_compute_frac=0.80, attention_compute_frac=0.55, hbm_frac=0.85, tile_m=128,
                      tile_n=128, min_tile_m=8, kernel_launch_us=2.0,
                      source="stack default: XLA on TPU (fused, 128x128 MXU)"),
    "cann": Efficiency(gemm_compute_frac=0.65, attention_compute_frac=0.45, hbm_frac=0.75, tile_m=128,
                       tile_n=256, min_tile_m=16, kernel_launch_us=6.0, step_overhead_ms=1.0,
                       source="stack default: CANN on Ascend (~65% of cube peak, ~75% HBM) — estimate"),
}
_OTHER = Efficiency(gemm_compute_frac=0.65, attention_compute_frac=0.45, hbm_frac=0.75, kernel_launch_us=6.0,
                    step_overhead_ms=1.0, source="stack default: other stacks (conservative estimate)")

STACK_OF_VENDOR = {"NVIDIA": "cuda", "AMD": "rocm", "Google": "xla", "Huawei": "cann", "Cambricon": "neuware",
                   "AWS": "neuron", "Intel": "synapse"}
"""The stack a vendor's chips run when a chip does not name one (`ChipSpec.software`)."""


def _calibration_dir() -> Path:
    """The shipped calibration folder, or `$TOKENFAB_CALIBRATION_DIR` (e.g. a held-out fit from
    `tokenfab calibrate --out DIR`; call `efficiency_for.cache_clear()` after changing it). An
    override that is not a folder is a one-line `SpecError`: a typo must not price every chip at its
    stack's default."""
    override = os.environ.get("TOKENFAB_CALIBRATION_DIR")
    if override:
        if not Path(override).is_dir():
            from tokenfab.specs.base import SpecError

            raise SpecError(f"TOKENFAB_CALIBRATION_DIR={override}: not a folder (a `tokenfab calibrate --out` folder)")
        return Path(override)
    return Path(str(resources.files("tokenfab.catalog").joinpath("calibration")))


def stack_of(chip) -> str:
    """The software stack of a chip: its own `software`, else its vendor's usual stack."""
    return getattr(chip, "software", "") or _vendor_stack(chip.vendor)


def _vendor_stack(vendor: str) -> str:
    """`STACK_OF_VENDOR` by the vendor's first word (`Huawei (HiSilicon)` → cann)."""
    return STACK_OF_VENDOR.get(vendor, STACK_OF_VENDOR.get(vendor.split(" ")[0] if vendor else "", "in-house"))


def stack_default(stack: str) -> Efficiency:
    """A software stack's default efficiency (reasoning, not a fit)."""
    return _STACKS.get(stack, _OTHER)


def family_default(vendor: str) -> Efficiency:
    """The default efficiency of the stack a vendor's chips run (reasoning, not a fit)."""
    return stack_default(_vendor_stack(vendor))


def calibration_path(chip_id: str) -> Path:
    """Where `tokenfab calibrate` writes (and `efficiency_for` reads) a chip's fitted efficiency."""
    return _calibration_dir() / f"{chip_id}.yaml"


@lru_cache(maxsize=128)
def _calibration_doc(path: str, mtime_ns: int, size: int):
    """A calibration file parsed once per version (path, modification time, size): `validate` reads
    each chip's file for its efficiency and for every framework section (~100 reads, 12 ms each)."""
    from tokenfab.specs.base import load_yaml

    return load_yaml(Path(path))


def calibration_doc(path: Path):
    """The parsed YAML of calibration file `path` (cached per file version; read-only: callers never
    modify it). A missing or unreadable file raises `load_yaml`'s one-line `SpecError`."""
    from tokenfab.specs.base import load_yaml

    try:
        st = path.stat()
    except OSError:
        return load_yaml(path)
    return _calibration_doc(str(path), st.st_mtime_ns, st.st_size)


def load_calibration(path: Path) -> Efficiency:
    """The Efficiency of a calibration file: its `efficiency` mapping (the `fit` record is metadata)."""
    data = calibration_doc(path)
    if isinstance(data, dict) and "efficiency" in data:
        data = data["efficiency"]
    return Efficiency.from_mapping(data, origin=str(path))


def efficiency_for(chip, framework: str | None = None) -> Efficiency:
    """The efficiency a chip's kernels reach: the calibration it names (`ChipSpec.calibration`), else
    its own calibration file when `tokenfab calibrate` wrote one, else its stack's default; then
    scaled by the chip's `software_maturity` (`with_maturity`). It depends on the chip's data only,
    so a copied YAML or a design naming the same calibration and stack gets the same answer.
    `framework`: a framework profile id; where that calibration fitted the framework's own MoE or
    Gated DeltaNet kernels (`framework_kernel_terms`), their terms replace the reference framework's."""
    name = chip.calibration or ""
    eff = _efficiency(name, chip.id, stack_of(chip))
    if framework:
        eff = _under_framework(eff, name or chip.id, framework)
    return with_maturity(eff, getattr(chip, "software_maturity", 1.0))


FRAMEWORK_SECTIONS = {"framework_moe": "MoE layer", "framework_gdn": "Gated DeltaNet prefill",
                      "framework_gemm": "block-scaled FP8 GEMM"}
"""Sections of a calibration file's `aiconfigurator` block holding a serving framework's own kernel
terms (fitted on that framework's measured tables), and what they describe."""
BLOCK_GEMM_FIELDS = ("block_gemm_compute_frac", "block_gemm_hbm_frac", "block_gemm_fixed_us", "block_act_quant_bytes")
"""The block-scaled FP8 GEMM class's fields (`Efficiency.for_block_scales`)."""


def _section_fields(section: str) -> tuple[str, ...]:
    return {"framework_moe": MOE_FIELDS, "framework_gdn": SCAN_FIELDS, "framework_gemm": BLOCK_GEMM_FIELDS}[section]


@lru_cache(maxsize=None)
def framework_kernel_terms(calibration: str, framework: str, section: str) -> dict[str, float]:
    """The fields calibration file `calibration` fitted on framework `framework`'s own measured
    kernels in `section` (`FRAMEWORK_SECTIONS`: `aiconfigurator.<section>.<framework>.applied`, written by
    `tokenfab calibrate --source aiconfigurator`); {} where it has none. A section may set only its
    own fields (`MOE_FIELDS`, `SCAN_FIELDS`)."""
    path = calibration_path(calibration)
    if not path.exists():
        return {}
    doc = calibration_doc(path)
    sec = ((doc.get("aiconfigurator") or {}).get(section) or {}) if isinstance(doc, dict) else {}
    applied = (sec.get(framework) or {}).get("applied") or {}
    bad = set(applied) - set(_section_fields(section))
    if bad:
        raise ValueError(f"{path}: {section}.{framework} sets {sorted(bad)}, not "
                         f"{FRAMEWORK_SECTIONS[section]} fields")
    checked = Efficiency.from_mapping(applied, origin=f"{path}: {section}.{framework}")  # types, bounds
    return {k: float(getattr(checked, k)) for k in applied}


def framework_moe_terms(calibration: str, framework: str) -> dict[str, float]:
    """`framework_kernel_terms` of the MoE layer (`aiconfigurator.framework_moe`)."""
    return framework_kernel_terms(calibration, framework, "framework_moe")


@lru_cache(maxsize=None)
def _under_framework(eff: Efficiency, calibration: str, framework: str) -> Efficiency:
    update, what = {}, []
    for section, label in FRAMEWORK_SECTIONS.items():
        terms = framework_kernel_terms(calibration, framework, section)
        if terms:
            update |= terms
            what.append(label)
    if not update:
        return eff
    return eff.model_copy(update={**update, "source": f"{eff.source}; {' and '.join(what)} terms of {framework}'s own "
                                                      "kernels"})


_FRACTIONS = ("gemm_compute_frac", "lowp_gemm_compute_frac", "fp4_gemm_compute_frac", "block_gemm_compute_frac",
              "gemm_hbm_frac", "lowp_gemm_hbm_frac", "fp4_gemm_hbm_frac", "block_gemm_hbm_frac",
              "attention_compute_frac", "scan_compute_frac", "hbm_frac", "comm_bw_frac", "allreduce_bw_frac",
              "alltoall_bw_frac")
_FIXED_COSTS = ("gemm_fixed_us", "lowp_gemm_fixed_us", "fp4_gemm_fixed_us", "block_gemm_fixed_us", "kernel_launch_us",
                "comm_latency_us", "allreduce_latency_us", "alltoall_latency_us", "scaleout_latency_us",
                "step_overhead_ms",
                "moe_layer_fixed_us", "lowp_moe_layer_fixed_us", "fp4_moe_layer_fixed_us", "block_moe_layer_fixed_us",
                "scan_chunk_us")


@lru_cache(maxsize=256)
def with_maturity(eff: Efficiency, maturity: float) -> Efficiency:
    """`eff` as a stack that reaches `maturity` (0 < m ≤ 1) of it: every achievable fraction (GEMM,
    attention, HBM streaming, collective bandwidth) times m, every fixed cost (launch, GEMM
    prologue, collective latency, host step) divided by m. A young stack's kernels pick worse tiles,
    pipeline less and fuse less; its runtime schedules more slowly. m = 1 returns `eff` itself."""
    if not 0 < maturity <= 1:
        raise ValueError(f"software maturity {maturity} is outside (0, 1]")
    if maturity == 1.0:
        return eff
    update = {f: getattr(eff, f) * maturity for f in _FRACTIONS if getattr(eff, f) is not None}
    update |= {f: getattr(eff, f) / maturity for f in _FIXED_COSTS if getattr(eff, f) is not None}
    update["source"] = f"{eff.source}; software maturity {maturity:g} (fractions x{maturity:g}, fixed costs /{maturity:g})"
    return eff.model_copy(update=update)


class MaturityRamp(Spec):
    """How a new software stack's kernel efficiency grows after first silicon (an estimate: no
    public series separates a stack's maturity from its hardware; set your own in a chip or design
    file)."""

    at_launch: float = Field(default=0.6, gt=0, le=1)
    """Share of a mature stack's efficiency at first production (estimate: tokenfab's own ROCm and
    CANN stack defaults sit at ~0.8 of CUDA's GEMM fraction after years of work; a first in-house
    stack is taken lower)."""
    months_to_mature: float = Field(default=24.0, gt=0)
    """Months from launch to a mature stack (estimate: about one vendor hardware generation)."""

    def at(self, months_since_launch: float) -> float:
        """Maturity `months_since_launch` after launch: linear from `at_launch` to 1, then 1."""
        t = min(max(months_since_launch, 0.0) / self.months_to_mature, 1.0)
        return self.at_launch + (1.0 - self.at_launch) * t


IN_HOUSE_RAMP = MaturityRamp()
"""The default ramp of a new in-house stack (estimates, marked as such in `MaturityRamp`)."""


def maturity_at(months_since_launch: float, ramp: MaturityRamp = IN_HOUSE_RAMP) -> float:
    """A stack's `software_maturity` `months_since_launch` after first production on `ramp`."""
    return ramp.at(months_since_launch)


@lru_cache(maxsize=None)
def _efficiency(calibration: str, chip_id: str, stack: str) -> Efficiency:
    from tokenfab.specs.base import SpecError

    if calibration:
        path = calibration_path(calibration)
        if path.exists():
            return load_calibration(path)
        if os.environ.get("TOKENFAB_CALIBRATION_DIR"):  # a held-out fit that did not refit this chip
            return stack_default(stack).model_copy(update={
                "source": f"{stack_default(stack).source} (calibration {calibration!r} not in $TOKENFAB_CALIBRATION_DIR)"})
        raise SpecError(f"chip {chip_id}: calibration {calibration!r} not found ({path})")
    path = calibration_path(chip_id)
    if path.exists():
        return load_calibration(path)
    return stack_default(stack)


def _clear_caches() -> None:
    _efficiency.cache_clear()
    _calibration_doc.cache_clear()
    framework_kernel_terms.cache_clear()
    _under_framework.cache_clear()


efficiency_for.cache_clear = _clear_caches  # type: ignore[attr-defined]
