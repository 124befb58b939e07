"""Microarchitecture: what the SRAM-aware (tiled) model needs to know about a chip, as data.

Catalog chips carry it in their YAML (`microarch:`, every number with a source); a chip design's
ChipSpec carries the one derived from the design (`tokenfab.design.derive.to_chip_spec`), so a
chip survives a JSON round trip into process or Ray workers with its microarchitecture. The
engine reads only this block (`perf.tiled.tiled_hw_for`): no table matched by chip id, no
registry of designs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tokenfab.specs.base import Spec


class Microarch(Spec):
    """Cores, matrix units and on-chip memory of one chip (one package)."""

    tile_units: float = Field(gt=0, le=1e6)
    """Units that GEMM output tiles are scheduled on in parallel (SMs, CUs; TPU MXUs; Gaudi MMEs)."""
    sram_per_core_kib: float = Field(ge=0, le=1e6)
    """SRAM a tile unit can use for operand tiles (shared memory / scratchpad / its VMEM slice), KiB."""
    accumulator_kib_per_core: float = Field(default=0.0, ge=0, le=1e6)
    """Register file or tensor memory available to fp32 accumulators, KiB; 0: accumulators live in
    `sram_per_core_kib` (systolic arrays)."""
    shared_sram_mib: float = Field(default=0.0, ge=0, le=1e6)
    """Shared on-chip SRAM (L2 / global buffer / Infinity Cache) of the package, MiB; 0: none."""
    shared_sram_tb_s: float = Field(default=0.0, ge=0, le=1e5)
    """Bandwidth from the shared SRAM to all tile units together, TB/s (0: no shared level)."""
    matrix_rows: float = Field(gt=0, le=4096)
    """Matrix-unit rows of one tile unit: the M granule (output-stationary) or K granule
    (weight-stationary)."""
    matrix_cols: float = Field(gt=0, le=4096)
    """Matrix-unit columns: the N granule."""
    matrix_depth: float = Field(default=1.0, gt=0, le=256)
    """K granule of output-stationary units at 2-byte inputs (tensor-core k-depth)."""
    dataflow: Literal["output_stationary", "weight_stationary"] = "output_stationary"
    """Which operand stays in the array: accumulators (GPU tensor cores) or weights (TPU MXU)."""
    m_granule: float = Field(default=8.0, gt=0, le=4096)
    """M granule of weight-stationary arrays (rows streamed per pass)."""
    multicast: float = Field(default=1.0, ge=1, le=64)
    """Tile units sharing one load of a common operand (Hopper cluster TMA multicast: 2)."""
    dram_latency_us: float = Field(default=0.7, ge=0, le=100)
    """First-load latency from device memory not hidden by the pipeline, µs."""
    sustained_frac: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    """Precision → fraction of its peak the chip sustains under its power cap, from a design's power
    model (absent: 1). Catalog chips leave it empty: their measured efficiency includes throttling."""
    training_sustained_frac: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(default_factory=dict)
    """Precision → fraction of its calibrated rate a long training run sustains (absent: 1), on top
    of `sustained_frac`: a training step overlaps tensor-, data- and expert-parallel communication
    with the GEMMs for hours, and the chip's power limit then holds its clocks below the ones its
    kernel tables were timed at. Fitted on published training runs (its source says which)."""
    training_sustained_source: str = ""
    """Where `training_sustained_frac` comes from."""
    vector_tflops: float | None = Field(default=None, gt=0, le=1e5)
    """FP32 vector (CUDA-core / SIMD) peak of the package, TFLOP/s (an FMA is 2 FLOPs): what norms,
    activations, RoPE and the softmax's adds and maxima run on. None: the chip's `fp32_tflops`
    stands in (`perf.evaluate.unit_peaks`); neither: vector work is not timed."""
    sfu_tops: float | None = Field(default=None, gt=0, le=1e5)
    """Special-function throughput of the package (exp2, rsqrt, rcp, sin/cos: one result each),
    tera-ops/s, e.g. NVIDIA SM: 16 per clock (CUDA C++ Programming Guide, arithmetic-instruction
    throughput table) x SMs x clock. None: special functions are not timed."""
    units_source: str = ""
    """Where `vector_tflops` and `sfu_tops` come from (datasheet, programming guide, derivation)."""
    units_estimated: bool = False
    """True when `vector_tflops` or `sfu_tops` is an estimate rather than a published figure."""
    source: str
    """Where these figures come from (whitepaper, tuning guide, derivation, or `derived from design`)."""
    estimated: bool = False
    """True when any figure here is an estimate rather than a published value."""
