"""ChipSpec: an accelerator as a datasheet — dense peaks, memory, interconnect, power, cost.

Every number carries a source: `sources` maps a field name to where it came from (a URL,
document or derivation); the key `default` covers fields without their own entry. Fields in
`estimated_fields` are estimates, not datasheet values, and are shown as such.
Sparse-only figures never stand in for dense ones: every `*_tflops` field is dense.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tokenfab.specs.base import Spec, SpecError
from tokenfab.specs.microarch import Microarch

_COMPUTE_FIELDS = {
    "fp32": "fp32_tflops", "tf32": "tf32_tflops", "bf16": "bf16_tflops", "fp16": "fp16_tflops",
    "fp8": "fp8_tflops", "int8": "int8_tops", "fp4": "fp4_tflops",
}

# Fields whose estimation makes a performance prediction an estimate too.
PERF_FIELDS = (
    "bf16_tflops", "fp8_tflops", "fp4_tflops", "int8_tops", "hbm_gb", "hbm_tb_s",
    "scaleup_gb_s", "scaleout_gb_s",
)

# Words of a `scaleup_interconnect` naming a full mesh of direct links; a switch ("non-blocking
# all-to-all" through switch chips) is not one.
_FULL_MESH = ("full mesh", "fully connected", "all-to-all")
_SWITCHED_WORDS = ("switch", "non-blocking")


def full_mesh_of(interconnect: str) -> bool:
    """Whether a `scaleup_interconnect` text names a full mesh of point-to-point links ("7 links,
    8-GPU full mesh", "21 ports all-to-all"), not a switched fabric."""
    text = (interconnect or "").lower()
    return any(w in text for w in _FULL_MESH) and not any(w in text for w in _SWITCHED_WORDS)


class ChipSpec(Spec):
    """One accelerator package (what a server counts as one GPU/NPU)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    """Catalog id, lower-case with dashes (e.g. `h100-sxm`)."""
    name: str
    """Marketing name and silicon (e.g. `H100 SXM5 80GB (GH100, Hopper)`)."""
    vendor: str
    """Company that sells the chip."""
    form_factor: str = ""
    """Module or card form (SXM5, OAM, PCIe, ...)."""
    launch_year: int | None = Field(default=None, ge=2010, le=2035)
    """Year of general availability."""

    fp32_tflops: float | None = Field(default=None, gt=0)
    """Dense FP32 (non-tensor) peak, TFLOP/s."""
    tf32_tflops: float | None = Field(default=None, gt=0)
    """Dense TF32 matrix peak, TFLOP/s."""
    bf16_tflops: float = Field(gt=0)
    """Dense BF16 matrix peak, TFLOP/s (no 2:4 sparsity)."""
    fp16_tflops: float | None = Field(default=None, gt=0)
    """Dense FP16 matrix peak, TFLOP/s."""
    fp8_tflops: float | None = Field(default=None, gt=0)
    """Dense FP8 matrix peak, TFLOP/s; None when the chip has no FP8 matrix path."""
    int8_tops: float | None = Field(default=None, gt=0)
    """Dense INT8 matrix peak, TOP/s."""
    fp4_tflops: float | None = Field(default=None, gt=0)
    """Dense FP4 matrix peak, TFLOP/s; None when the chip has no FP4 matrix path."""

    hbm_gb: float = Field(gt=0)
    """Device memory capacity, GB (decimal, as datasheets quote it)."""
    hbm_tb_s: float = Field(gt=0)
    """Peak device-memory bandwidth, TB/s."""
    memory_type: str = ""
    """Memory technology and stack count (e.g. `HBM3 (5 stacks)`)."""
    sram_mb: float | None = Field(default=None, gt=0)
    """On-chip SRAM usable as cache/buffer (L2 or equivalent), MB."""
    cores: int | None = Field(default=None, gt=0)
    """Compute units (SMs, CUs, AI cores, TensorCores) that run kernels in parallel."""
    core_type: str = ""
    """What a core is on this chip (SM, CU, AI Core, MXU...)."""
    clock_mhz: float | None = Field(default=None, gt=0)
    """Boost clock, MHz."""

    scaleup_gb_s: float = Field(gt=0)
    """Scale-up (NVLink/xGMI/ICI/HCCS) bandwidth per chip, GB/s in ONE direction."""
    scaleup_domain: int = Field(default=8, ge=1)
    """Chips in one scale-up domain in the chip's standard system (8 for HGX, 72 for NVL72)."""
    scaleup_interconnect: str = ""
    """Name of the scale-up fabric."""
    scaleup_fabric: Literal["switched", "direct", "none"] | None = None
    """How the scale-up domain is wired, for the system cost: `switched` (NVSwitch-class), `direct`
    (mesh, torus, bridge) or `none` (PCIe through the host); None: read from `scaleup_interconnect`."""
    scaleup_full_mesh: bool | None = None
    """True when the scale-up domain is a full mesh of point-to-point links, the chip's
    `scaleup_gb_s` split evenly over its `scaleup_domain` − 1 peers (AMD Infinity Fabric, Ascend
    910B HCCS, Gaudi's on-chip RoCE ports): a group of p chips inside the domain reaches only p − 1
    of them, (p − 1)/(domain − 1) of the bandwidth (`perf.comm.scaleup_share`). None: read from
    `scaleup_interconnect` (`full_mesh_of`)."""
    scaleout_gb_s: float = Field(default=50.0, gt=0)
    """Scale-out (NIC) bandwidth per chip, GB/s in one direction (400 Gb/s = 50 GB/s)."""

    tdp_w: float = Field(gt=0)
    """Board/module power limit, W."""
    process_node: str = ""
    """Foundry and node of the compute die(s) (e.g. `TSMC 4N`)."""
    die_area_mm2: float | None = Field(default=None, gt=0)
    """Total compute-die area, mm² (sum over compute dies)."""
    price_usd: float | None = Field(default=None, gt=0, le=1e9)
    """Typical purchase price per chip, USD (midpoint of the sourced range)."""
    price_includes_system: bool = False
    """True when `price_usd` is a share of a whole system (a GB200 NVL72 rack / 72: host CPUs, NICs,
    scale-up switches, rack, power and cooling), so no server share is added on top; the
    cluster's scale-out switches and optics are still added (`cost/system.py`)."""

    microarch: Microarch | None = None
    """Cores, matrix units and on-chip memory for the SRAM-aware model (None: a generic GPU-like
    description from `cores`, `sram_mb` and `clock_mhz`, marked as such)."""
    software: str = Field(default="", pattern=r"^[a-z0-9\-]*$")
    """Software stack the kernels come from (`cuda`, `rocm`, `cann`, `neuware`, `xla`, `neuron`,
    `synapse`, `in-house`); empty: the vendor's usual stack (`perf.efficiency.STACK_OF_VENDOR`)."""
    software_maturity: float = Field(default=1.0, gt=0, le=1)
    """Share of a mature stack's kernel efficiency the chip's software reaches now (1: a shipping
    vendor stack, as calibrated; an in-house stack at first silicon is below 1 and ramps up,
    `perf.efficiency.maturity_at`). Scales every achievable fraction; fixed costs grow by its inverse."""
    calibration: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    """Calibrated efficiency this silicon and stack run at (`catalog/calibration/<name>.yaml`, fitted by
    `tokenfab calibrate`); None: the chip's own calibration file if there is one, else the stack's
    default. A copied chip YAML keeps it; a design of the same silicon names it."""
    infeasible_reasons: list[str] = Field(default_factory=list)
    """Why the chip cannot be built as described (designs only); pricing commands refuse such a chip."""

    sources: dict[str, str]
    """Field name → source; key `default` covers fields without their own entry."""
    estimated_fields: list[str] = Field(default_factory=list)
    """Fields whose values are estimates rather than published figures."""
    notes: str = ""
    """Free text: caveats, variants, derivations."""

    @model_validator(mode="after")
    def _check_sources(self) -> "ChipSpec":
        numeric = [n for n, f in type(self).model_fields.items()
                   if f.annotation in (float, int, float | None, int | None)
                   and getattr(self, n) is not None]
        if "default" not in self.sources:
            missing = [n for n in numeric if n not in self.sources]
            if missing:
                raise ValueError(f"no source for {', '.join(missing)} (add sources.default or per-field)")
        unknown = [f for f in self.estimated_fields if f not in type(self).model_fields]
        if unknown:
            raise ValueError(f"estimated_fields names unknown fields: {', '.join(unknown)}")
        return self

    def peak_tflops(self, precision: str) -> float | None:
        """Dense matrix peak for `precision`, TFLOP/s, or None if the chip has no such path."""
        if precision in ("int4",):
            return self.int8_tops  # int4 weight-only paths compute at int8/bf16 at best
        name = _COMPUTE_FIELDS.get(precision)
        return getattr(self, name) if name else None

    def require_buildable(self) -> "ChipSpec":
        """The chip itself; SpecError naming the first reason when it cannot be built as described
        (what pricing commands call before quoting anything)."""
        if self.infeasible_reasons:
            more = f" (and {len(self.infeasible_reasons) - 1} more)" if len(self.infeasible_reasons) > 1 else ""
            raise SpecError(f"{self.id} cannot be built, so it is not priced: {self.infeasible_reasons[0]}{more}; "
                            f"`tokenfab chip {self.id}` shows its figures")
        return self

    def source_of(self, field: str) -> str:
        """Where the value of `field` comes from."""
        return self.sources.get(field, self.sources.get("default", ""))

    @property
    def is_full_mesh(self) -> bool:
        """Whether the scale-up domain is a full mesh (`scaleup_full_mesh`, else read from the text)."""
        if self.scaleup_full_mesh is not None:
            return self.scaleup_full_mesh
        return full_mesh_of(self.scaleup_interconnect)

    @property
    def spec_confidence(self) -> Literal["datasheet", "partly-estimated"]:
        """`partly-estimated` when any performance-relevant field is an estimate."""
        return "partly-estimated" if any(f in PERF_FIELDS for f in self.estimated_fields) else "datasheet"
