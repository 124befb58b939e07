"""ChipDesign: a chip that does not exist yet, described the way an architect draws it.

The hierarchy follows LLMCompass (system → chip → die → core → matrix/vector unit + SRAM):

    chip:  process node, clock, TDP target, cooling, compute dies (chiplets), optional IO dies and
           stacked SRAM dies, device memory (HBM, domestic HBM, LPDDR5X, GDDR7 or SRAM only), links
    die:   cores (enabled + spare: spares raise the sellable yield), shared SRAM (L2 / global
           buffer) and its bandwidth
    core:  matrix units (rows × cols × depth MACs, precisions with rate multipliers), vector
           unit (lanes), per-core SRAM (operand tiles) and register file

Everything else — peak TFLOPS, bandwidths, die area, power, unit cost, a `ChipSpec` — is
derived by `tokenfab.design`. A design YAML carries `kind: design` so `load_chip` can tell it
from a datasheet (`ChipSpec`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tokenfab.specs.base import Spec

MatrixPrecision = Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]
HbmGeneration = Literal["hbm2", "hbm2e", "hbm3", "hbm3e", "hbm4"]


class MatrixUnitDesign(Spec):
    """One matrix engine (systolic array or tensor core) in a core."""

    rows: int = Field(ge=1, le=1024)
    """Array rows. Output-stationary: output rows (M) per pass; weight-stationary: the K side."""
    cols: int = Field(ge=1, le=1024)
    """Array columns: output columns (N) per pass in both dataflows."""
    depth: int = Field(default=1, ge=1, le=64)
    """MACs along K per cell per cycle (dot-product tensor cores: 4-16; systolic arrays: 1)."""
    dataflow: Literal["output_stationary", "weight_stationary"] = "weight_stationary"
    """Which operand stays put: accumulators (GPU tensor cores) or weights (TPU MXU)."""
    precisions: dict[MatrixPrecision, float] = Field(default_factory=lambda: {"bf16": 1.0})
    """Supported input precisions → throughput relative to bf16 (fp8: 2, tf32: 0.5); bf16 is 1."""

    @model_validator(mode="after")
    def _bf16_is_reference(self) -> "MatrixUnitDesign":
        if self.precisions.get("bf16") != 1.0:
            raise ValueError("precisions must include bf16 with multiplier 1 (rates are relative to bf16)")
        bad = [p for p, v in self.precisions.items() if not (0 < v <= 16)]
        if bad:
            raise ValueError(f"rate multipliers must be in (0, 16]: {', '.join(bad)}")
        return self

    @property
    def macs_per_cycle(self) -> int:
        """bf16 multiply-accumulates per cycle of one unit."""
        return self.rows * self.cols * self.depth


class VectorUnitDesign(Spec):
    """SIMD/vector unit of a core (softmax, norms, activations, elementwise)."""

    lanes: int = Field(default=0, ge=0, le=65536)
    """FP32 FMA lanes per core."""
    fp64_lanes: int = Field(default=0, ge=0, le=65536)
    """FP64 FMA lanes per core (HPC parts; costs area, unused by inference)."""
    fp32_packed: bool = False
    """FP32 runs two-wide on the 64-bit FP64 lanes (packed FP32, AMD CDNA 2/3): the `lanes` FP32
    results per clock come from `fp64_lanes` = lanes / 2 physical lanes, the only vector datapath
    counted for area (AnandTech on CDNA 2: 4 SIMD16 per CU, ALUs 64-bit throughout, packed FP32
    256 FLOP/clk/CU)."""

    @model_validator(mode="after")
    def _packed(self) -> "VectorUnitDesign":
        if self.fp32_packed and self.lanes != 2 * self.fp64_lanes:
            raise ValueError(f"fp32_packed: lanes ({self.lanes}) must be twice fp64_lanes ({self.fp64_lanes})")
        return self


class CoreDesign(Spec):
    """One core: the unit a kernel's output tile is scheduled on (an SM, a TensorCore)."""

    matrix_unit: MatrixUnitDesign
    """The matrix engine."""
    matrix_units_per_core: int = Field(default=1, ge=1, le=64)
    """Matrix engines in the core; they split M (output-stationary) or N (weight-stationary)."""
    vector_unit: VectorUnitDesign = Field(default_factory=VectorUnitDesign)
    """The vector engine."""
    sram_kb: float = Field(ge=0, le=1048576)
    """Software-managed SRAM / L1 per core for operand tiles, KiB."""
    register_file_kb: float = Field(default=0.0, ge=0, le=65536)
    """Register file per core (holds accumulators on GPUs), KiB; 0 when accumulators live in SRAM."""
    control: Literal["simt", "simd", "dataflow"] = "dataflow"
    """Instruction issue style: `simt` (NVIDIA SM: per-thread-lane schedulers, LSUs), `simd` (AMD
    GCN/CDNA CU: wave64 on 16-wide SIMDs, control counted per physical SIMD lane with AMD's own
    constants; otherwise treated as a GPU core like `simt`) or `dataflow` (TPU/NPU)."""
    accumulator_buffer: bool = False
    """Dataflow output-stationary cores only: the matrix unit reads and writes its FP32 partial sums
    in a separate SRAM buffer (`register_file_kb`) every clock instead of holding them in the array
    (Ascend's cube and L0C); that traffic is counted in power. False: accumulators stay in the PEs."""
    issue_per_clock: int = Field(default=4, ge=1, le=16)
    """SIMT only: vector instructions the core issues per clock (NVIDIA SM: 4 warp schedulers; AMD CDNA
    CU: 1 — four SIMDs each issue a wave64 instruction every 4 clocks); sets the issue/control power."""

    @model_validator(mode="after")
    def _accumulator_buffer(self) -> "CoreDesign":
        if self.accumulator_buffer and (self.control != "dataflow" or self.register_file_kb <= 0
                                        or self.matrix_unit.dataflow != "output_stationary"):
            raise ValueError("accumulator_buffer needs control: dataflow, an output_stationary matrix unit and "
                             "register_file_kb > 0 (the buffer)")
        return self


class DieDesign(Spec):
    """One compute die (chiplet): its cores and shared SRAM."""

    cores_per_die: int = Field(ge=1, le=16384)
    """Cores enabled per die (what software sees)."""
    spare_cores_per_die: int = Field(default=0, ge=0, le=4096)
    """Extra cores built for yield harvesting (H100: 144 built, 132 sold): they cost area and leakage,
    and raise the sellable yield (a die sells with up to this many defective cores, `cost.fab.sellable_yield`)."""
    shared_sram_mb: float = Field(default=0.0, ge=0, le=4096)
    """Shared on-die SRAM (L2 / global buffer) enabled, MiB per die."""
    spare_shared_sram_mb: float = Field(default=0.0, ge=0, le=4096)
    """Shared SRAM built but fused off (H100: 60 MB built, 50 enabled), MiB per die: area only."""
    shared_sram_tb_s: float | None = Field(default=None, gt=0, le=1000)
    """Bandwidth from shared SRAM to the die's cores, TB/s (None: derived from the tech data)."""
    cluster_multicast: int = Field(default=1, ge=1, le=16)
    """Cores that share one load of a common operand tile from shared SRAM (Hopper TMA multicast: 2)."""
    core: CoreDesign
    """The core, replicated `cores_per_die + spare_cores_per_die` times."""


class MemoryDesign(Spec):
    """Device memory: stacked DRAM (HBM), board/package DRAM (LPDDR, GDDR) or none (SRAM only)."""

    technology: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    """Memory technology id in `catalog/design_tech.yaml` `memory:` (`hbm3e`, `lpddr5x`, `gddr7`,
    `cxmt-hbm2e`, `sram-only`, ...); sets pin rate, width, device capacity, PHY, energy and price."""
    hbm_generation: HbmGeneration | None = None
    """Older spelling of `technology` for HBM (kept for existing designs); give one of the two."""
    hbm_stacks: int = Field(ge=0, le=64)
    """Memory devices populated and enabled: HBM stacks, LPDDR/GDDR packages (0 only for `sram-only`)."""
    hbm_phys: int | None = Field(default=None, ge=1, le=64)
    """Memory PHY sites on the dies (≥ devices; H100 builds 6, enables 5); None = devices."""
    hbm_pin_gbps: float | None = Field(default=None, gt=0, le=64)
    """Data rate per pin, Gb/s (None: the technology's nominal rate)."""
    hbm_gb_per_stack: float | None = Field(default=None, gt=0, le=128)
    """Capacity per device, GB (None: the technology's typical device)."""

    @model_validator(mode="after")
    def _one_technology(self) -> "MemoryDesign":
        if self.technology is None and self.hbm_generation is None:
            raise ValueError("give memory.technology (or the older memory.hbm_generation)")
        if self.technology and self.hbm_generation and self.technology != self.hbm_generation:
            raise ValueError(f"memory.technology ({self.technology}) and memory.hbm_generation "
                             f"({self.hbm_generation}) disagree; give one of them")
        return self

    @model_validator(mode="after")
    def _phys_cover_stacks(self) -> "MemoryDesign":
        if self.hbm_phys is not None and self.hbm_phys < self.hbm_stacks:
            raise ValueError(f"hbm_phys ({self.hbm_phys}) must be at least hbm_stacks ({self.hbm_stacks})")
        return self

    @property
    def tech_id(self) -> str:
        """The memory technology id (`technology`, else `hbm_generation`)."""
        return self.technology or self.hbm_generation or ""

    @property
    def label(self) -> str:
        """Human description, e.g. `HBM3 (5 stacks)`, `LPDDR5X (8 devices)`, `on-chip SRAM only`."""
        tid = self.tech_id
        if not self.hbm_stacks:
            return "on-chip SRAM only"
        unit = "stacks" if "hbm" in tid else "devices"
        return f"{tid.upper()} ({self.hbm_stacks} {unit})"


class IODesign(Spec):
    """Scale-up links, scale-out NIC and host interface."""

    scaleup_links: int = Field(default=0, ge=0, le=512)
    """Scale-up (NVLink/ICI-class) links per chip."""
    scaleup_gb_s_per_link: float = Field(default=0.0, ge=0, le=10000)
    """Bandwidth of one link in ONE direction, GB/s."""
    scaleup_domain: int = Field(default=8, ge=1, le=100000)
    """Chips in one scale-up domain of the standard system."""
    scaleup_interconnect: str = ""
    """Name of the scale-up fabric."""
    scaleout_nic_gbps: float = Field(default=400.0, gt=0, le=100000)
    """Scale-out network bandwidth per chip, Gb/s in one direction."""
    scaleout_integrated: bool = False
    """True: Ethernet SerDes for the NIC are on the die; False: an external NIC over host PCIe."""
    host_pcie_lanes: int = Field(default=16, ge=0, le=128)
    """PCIe Gen5 lanes to the host (and to an external NIC)."""

    @model_validator(mode="after")
    def _links_have_bandwidth(self) -> "IODesign":
        if self.scaleup_links and self.scaleup_gb_s_per_link <= 0:
            raise ValueError("scaleup_gb_s_per_link must be > 0 when scaleup_links > 0")
        if not self.scaleup_links and not self.host_pcie_lanes:
            raise ValueError("a chip needs scale-up links or host PCIe lanes to talk to anything")
        return self


class IODieDesign(Spec):
    """IO (base) dies that carry what need not be on the compute node: memory PHYs and controllers,
    SerDes, host PCIe, the fixed uncore, and optionally a shared cache (AMD MI300X: 4 IODs on N6 under
    8 XCDs on N5, 256 MB Infinity Cache). The compute dies then hold cores, their shared SRAM and
    die-to-die PHYs only."""

    count: int = Field(ge=1, le=16)
    """IO dies in the package."""
    process_node: str
    """Their foundry node (often older and cheaper than the compute dies')."""
    stacked: bool = True
    """True: the compute dies are 3D-stacked on the IO dies (hybrid bonding; no footprint of their
    own); False: side by side on the interposer (2.5D)."""
    shared_sram_mb: float = Field(default=0.0, ge=0, le=8192)
    """Shared SRAM (last-level / Infinity Cache) per IO die, MiB."""
    d2d_tb_s_per_compute_die: float = Field(gt=0, le=100)
    """Die-to-die bandwidth between each compute die and the IO dies, TB/s in one direction
    (sets the PHY area on both sides and the energy of the traffic that crosses)."""


class StackedSramDesign(Spec):
    """An SRAM die 3D-stacked on each compute die (AMD 3D V-Cache style): capacity without compute-die area."""

    mb_per_compute_die: float = Field(gt=0, le=4096)
    """SRAM per compute die on its stacked die, MiB (adds to the die's shared SRAM)."""
    process_node: str
    """Node of the SRAM die."""


class ChipDesign(Spec):
    """A chip to be built: architecture parameters only; every figure of merit is derived."""

    kind: Literal["design"] = "design"
    """Marks the file as a design (not a datasheet) for `load_chip`."""
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    """Design id, lower-case with dashes (e.g. `my-npu-n3`)."""
    name: str = ""
    """Human name."""
    vendor: str = "custom"
    """Who builds it (a family name such as NVIDIA picks that family's kernel efficiencies)."""
    form_factor: str = ""
    """Module or card form."""
    launch_year: int | None = Field(default=None, ge=2010, le=2040)
    """Target year of availability."""
    process_node: str
    """Foundry node id or alias (`tsmc-n5`, `TSMC 4N`, `N3E`)."""
    clock_mhz: float = Field(gt=0, le=6000)
    """Clock of the matrix units under load, MHz."""
    tdp_w: float = Field(gt=0, le=20000)
    """Power limit the design must fit, W."""
    compute_dies: int = Field(default=1, ge=1, le=64)
    """Compute dies (chiplets) in the package, each one `die`."""
    die: DieDesign
    """The compute die."""
    io_dies: IODieDesign | None = None
    """IO/base dies carrying the memory PHYs, SerDes, PCIe and uncore (None: all on the compute dies)."""
    stacked_sram: StackedSramDesign | None = None
    """SRAM dies stacked on the compute dies (None: none)."""
    memory: MemoryDesign
    """Device memory."""
    io: IODesign = Field(default_factory=IODesign)
    """Links and host interface."""
    cooling: Literal["air", "liquid"] = "liquid"
    """How the package is cooled; sets the power-density limit of the compute dies (design_tech.yaml
    `max_w_per_mm2_air` / `max_w_per_mm2_liquid`)."""
    software: str = Field(default="", pattern=r"^[a-z0-9\-]*$")
    """Software stack its kernels come from (`cuda`, `rocm`, `cann`, ..., `in-house`); empty: the
    vendor's usual stack, `in-house` for a new vendor (`perf.efficiency.STACK_OF_VENDOR`)."""
    software_maturity: float = Field(default=1.0, gt=0, le=1)
    """Share of a mature stack's kernel efficiency the design's software reaches (1: mature; a new
    in-house stack at first silicon: `perf.efficiency.IN_HOUSE_RAMP`, ramping with
    `maturity_at`). Carried into the ChipSpec."""
    calibration: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    """Calibrated efficiency profile the design runs at (`catalog/calibration/<name>.yaml`): name the
    catalog chip of the same silicon and stack (a design of H100 on CUDA: `h100-sxm`); None: the
    stack's default efficiency."""
    packaging: str | None = None
    """Packaging id from the fab data (`cowos-s`, `cowos-l`, `organic`); None chooses one."""
    published: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    """Published figures of a real chip this design describes (ChipSpec field names), for checks."""
    sources: dict[str, str] = Field(default_factory=dict)
    """Parameter path (e.g. `die.core.sram_kb`) → source; `default` covers the rest."""
    estimated_fields: list[str] = Field(default_factory=list)
    """Parameter paths that are estimates rather than published facts."""
    notes: str = ""
    """Free text."""

    @property
    def cores(self) -> int:
        """Enabled cores on the chip."""
        return self.compute_dies * self.die.cores_per_die
