"""Designs as numpy arrays, one element per design, so every derivation runs on many at once.

`DesignArrays.from_designs` turns validated `ChipDesign`s into arrays and gathers the technology
numbers each design needs (its node's densities and energies, its memory technology's figures).
A design-space search can also build `DesignArrays` directly from sampled parameter arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from tokenfab.cost.fab import resolve_node
from tokenfab.design.tech import MEMORY_KEYS, NODE_KEYS, DesignTech
from tokenfab.specs.base import SpecError
from tokenfab.specs.design import ChipDesign
from tokenfab.specs.economics import FabData

PRECISIONS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4", "int4")
MIB = 1024.0 * 1024.0


@dataclass(frozen=True)
class DesignArrays:
    """N designs; every numeric attribute is a float array of shape (N,)."""

    node: list[str]
    """Resolved node id per design (design-data key; the fab-data key too unless `fab_node` differs)."""
    hbm_gen: list[str]
    """Memory technology id per design (`hbm3e`, `lpddr5x`, `sram-only`, ...)."""
    clock_mhz: np.ndarray
    tdp_w: np.ndarray
    dies: np.ndarray
    cores_per_die: np.ndarray
    spare_cores_per_die: np.ndarray
    shared_sram_mb: np.ndarray
    spare_shared_sram_mb: np.ndarray
    shared_sram_tb_s: np.ndarray
    """Per die; NaN = derive from the tech data."""
    multicast: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    depth: np.ndarray
    weight_stationary: np.ndarray
    units: np.ndarray
    lanes: np.ndarray
    fp64_lanes: np.ndarray
    sram_kb: np.ndarray
    rf_kb: np.ndarray
    simt: np.ndarray
    """True for GPU cores (`simt` and `simd` control)."""
    issue: np.ndarray
    """SIMT instructions issued per clock per core."""
    prec: dict[str, np.ndarray]
    """Precision → rate multiplier relative to bf16 (0: unsupported)."""
    hbm_stacks: np.ndarray
    """Memory devices (HBM stacks, LPDDR/GDDR packages; 0 for SRAM only)."""
    hbm_phys: np.ndarray
    hbm_pin_gbps: np.ndarray
    hbm_gb_per_stack: np.ndarray
    links: np.ndarray
    gb_s_per_link: np.ndarray
    nic_gbps: np.ndarray
    nic_integrated: np.ndarray
    pcie_lanes: np.ndarray
    tn: dict[str, np.ndarray] = field(default_factory=dict)
    """Gathered node technology values (NODE_KEYS) per design."""
    th: dict[str, np.ndarray] = field(default_factory=dict)
    """Gathered memory technology values (MEMORY_KEYS) per design."""
    l2_bytes_per_clk_per_core: float = 0.0
    """Shared-SRAM bytes per clock per core where a design gives no bandwidth (tech data)."""
    sram_only: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    liquid_cooled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """True where the design is liquid-cooled (sets the power-density limit); empty: all liquid."""
    io_dies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """IO/base dies per package (0: everything on the compute dies)."""
    io_node: list[str] = field(default_factory=list)
    """Resolved node of the IO dies (the compute node where there are none)."""
    io_stacked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """True where compute dies are 3D-stacked on the IO dies."""
    io_sram_mb: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Shared SRAM per IO die, MiB."""
    d2d_tb_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """Die-to-die bandwidth of each compute die to the IO dies, TB/s one way."""
    stacked_sram_mb: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """SRAM stacked on each compute die, MiB."""
    stacked_node: list[str] = field(default_factory=list)
    """Resolved node of the stacked SRAM dies (the compute node where there are none)."""
    tio: dict[str, np.ndarray] = field(default_factory=dict)
    """Gathered node values (NODE_KEYS) of the IO dies."""
    tst: dict[str, np.ndarray] = field(default_factory=dict)
    """Gathered node values (NODE_KEYS) of the stacked SRAM dies."""
    """True where the design has no external memory (capacity and bandwidth are the on-chip SRAM's)."""
    fab_node: list[str] = field(default_factory=list)
    """Fab-data node that prices each design (wafer cost, defect density); empty: `node`. Differs from
    `node` for design-data nodes without a fab entry (`design_tech.yaml` node_pricing: GF 14LPP)."""
    simd: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """True for AMD-style SIMD cores (`control: simd`); empty: none."""
    fp32_packed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """True where FP32 runs packed on the FP64 lanes (`vector_unit.fp32_packed`); empty: none."""
    acc_buffer: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """True where partial sums go to a separate accumulator buffer every clock (`core.accumulator_buffer`)."""

    def __len__(self) -> int:
        return len(self.node)

    @property
    def cores(self) -> np.ndarray:
        """Enabled cores per chip."""
        return self.dies * self.cores_per_die

    @property
    def has_io_dies(self) -> np.ndarray:
        """True where IO dies carry the memory PHYs, SerDes, PCIe and uncore."""
        return self.io_dies > 0

    @property
    def built_cores_per_die(self) -> np.ndarray:
        """Cores built per die (enabled + spare)."""
        return self.cores_per_die + self.spare_cores_per_die

    @staticmethod
    def from_designs(designs: list[ChipDesign], tech: DesignTech, fab: FabData) -> "DesignArrays":
        """Arrays from validated designs (nodes resolved through the fab data's aliases)."""
        f = lambda get: np.array([float(get(d)) for d in designs], dtype=float)  # noqa: E731
        memo: dict[str, tuple[str, str]] = {}  # a search's designs share a few node names
        resolved = [memo[d.process_node] if d.process_node in memo
                    else memo.setdefault(d.process_node, tech.resolve_node(d.process_node, fab)) for d in designs]
        nodes = [r[0] for r in resolved]
        memo_fab: dict[str, str] = {}
        gens = [d.memory.tech_id for d in designs]
        return DesignArrays(
            node=nodes, fab_node=[r[1] for r in resolved], hbm_gen=gens,
            clock_mhz=f(lambda d: d.clock_mhz), tdp_w=f(lambda d: d.tdp_w), dies=f(lambda d: d.compute_dies),
            cores_per_die=f(lambda d: d.die.cores_per_die), spare_cores_per_die=f(lambda d: d.die.spare_cores_per_die),
            shared_sram_mb=f(lambda d: d.die.shared_sram_mb),
            spare_shared_sram_mb=f(lambda d: d.die.spare_shared_sram_mb),
            shared_sram_tb_s=f(lambda d: d.die.shared_sram_tb_s if d.die.shared_sram_tb_s else np.nan),
            multicast=f(lambda d: d.die.cluster_multicast),
            rows=f(lambda d: d.die.core.matrix_unit.rows), cols=f(lambda d: d.die.core.matrix_unit.cols),
            depth=f(lambda d: d.die.core.matrix_unit.depth),
            weight_stationary=np.array([d.die.core.matrix_unit.dataflow == "weight_stationary" for d in designs]),
            units=f(lambda d: d.die.core.matrix_units_per_core),
            lanes=f(lambda d: d.die.core.vector_unit.lanes), fp64_lanes=f(lambda d: d.die.core.vector_unit.fp64_lanes),
            sram_kb=f(lambda d: d.die.core.sram_kb), rf_kb=f(lambda d: d.die.core.register_file_kb),
            simt=np.array([d.die.core.control in ("simt", "simd") for d in designs]),
            simd=np.array([d.die.core.control == "simd" for d in designs], dtype=bool),
            fp32_packed=np.array([d.die.core.vector_unit.fp32_packed for d in designs], dtype=bool),
            acc_buffer=np.array([d.die.core.accumulator_buffer for d in designs], dtype=bool),
            issue=f(lambda d: d.die.core.issue_per_clock),
            prec={p: f(lambda d, p=p: d.die.core.matrix_unit.precisions.get(p, 0.0)) for p in PRECISIONS},
            hbm_stacks=f(lambda d: d.memory.hbm_stacks),
            hbm_phys=f(lambda d: d.memory.hbm_phys or d.memory.hbm_stacks),  # 0 for SRAM only
            hbm_pin_gbps=f(lambda d: d.memory.hbm_pin_gbps or np.nan),
            hbm_gb_per_stack=f(lambda d: d.memory.hbm_gb_per_stack or np.nan),
            links=f(lambda d: d.io.scaleup_links), gb_s_per_link=f(lambda d: d.io.scaleup_gb_s_per_link),
            nic_gbps=f(lambda d: d.io.scaleout_nic_gbps),
            nic_integrated=np.array([d.io.scaleout_integrated for d in designs]),
            pcie_lanes=f(lambda d: d.io.host_pcie_lanes),
            liquid_cooled=np.array([d.cooling == "liquid" for d in designs], dtype=bool),
            io_dies=f(lambda d: d.io_dies.count if d.io_dies else 0),
            io_node=[_node_id(d.io_dies.process_node, fab, memo_fab) if d.io_dies else n for d, n in zip(designs, nodes)],
            io_stacked=np.array([bool(d.io_dies and d.io_dies.stacked) for d in designs], dtype=bool),
            io_sram_mb=f(lambda d: d.io_dies.shared_sram_mb if d.io_dies else 0.0),
            d2d_tb_s=f(lambda d: d.io_dies.d2d_tb_s_per_compute_die if d.io_dies else 0.0),
            stacked_sram_mb=f(lambda d: d.stacked_sram.mb_per_compute_die if d.stacked_sram else 0.0),
            stacked_node=[_node_id(d.stacked_sram.process_node, fab, memo_fab) if d.stacked_sram else n
                          for d, n in zip(designs, nodes)],
        ).with_tech(tech)

    def with_tech(self, tech: DesignTech) -> "DesignArrays":
        """A copy with node and memory technology values gathered per design (defaults filled);
        SpecError for an unknown technology or a device count that does not fit it."""
        n = len(self.node)
        zeros = np.zeros(n)
        io_dies = self.io_dies if len(self.io_dies) == n else zeros
        io_node = self.io_node if len(self.io_node) == n else list(self.node)
        stacked_node = self.stacked_node if len(self.stacked_node) == n else list(self.node)
        extra = dict(io_dies=io_dies, io_node=io_node, stacked_node=stacked_node,
                     fab_node=self.fab_node if len(self.fab_node) == n else list(self.node),
                     io_stacked=self.io_stacked if len(self.io_stacked) == n else np.zeros(n, dtype=bool),
                     io_sram_mb=self.io_sram_mb if len(self.io_sram_mb) == n else zeros,
                     d2d_tb_s=self.d2d_tb_s if len(self.d2d_tb_s) == n else zeros,
                     stacked_sram_mb=self.stacked_sram_mb if len(self.stacked_sram_mb) == n else zeros,
                     liquid_cooled=self.liquid_cooled if len(self.liquid_cooled) == n else np.ones(n, dtype=bool),
                     simd=self.simd if len(self.simd) == n else np.zeros(n, dtype=bool),
                     fp32_packed=self.fp32_packed if len(self.fp32_packed) == n else np.zeros(n, dtype=bool),
                     acc_buffer=self.acc_buffer if len(self.acc_buffer) == n else np.zeros(n, dtype=bool))
        node_vals = {nid: tech.node(nid) for nid in set(self.node) | set(io_node) | set(stacked_node)}
        extra["tio"] = {k: np.array([node_vals[nid][k] for nid in io_node]) for k in NODE_KEYS}
        extra["tst"] = {k: np.array([node_vals[nid][k] for nid in stacked_node]) for k in NODE_KEYS}
        mem_vals = {g: tech.memory_values(g) for g in set(self.hbm_gen)}
        none = {g for g in mem_vals if tech.memory_tech(g).placement == "none"}
        tn = {k: np.array([node_vals[nid][k] for nid in self.node]) for k in NODE_KEYS}
        th = {k: np.array([mem_vals[g][k] for g in self.hbm_gen]) for k in MEMORY_KEYS}
        sram_only = np.array([g in none for g in self.hbm_gen], dtype=bool)
        bad = sram_only != (self.hbm_stacks == 0)
        if np.any(bad):
            g = self.hbm_gen[int(np.flatnonzero(bad)[0])]
            raise SpecError(f"memory {g}: " + ("an SRAM-only design has no memory devices (hbm_stacks: 0)"
                                               if g in none else "needs at least one device (hbm_stacks >= 1)"))
        pin = np.where(np.isnan(self.hbm_pin_gbps), th["pin_gbps"], self.hbm_pin_gbps)
        gb = np.where(np.isnan(self.hbm_gb_per_stack), th["gb_per_device"], self.hbm_gb_per_stack)
        return replace(self, **extra, tn=tn, th=th, sram_only=sram_only,
                       l2_bytes_per_clk_per_core=tech.c("shared_sram_bytes_per_clk_per_core"), hbm_pin_gbps=np.where(sram_only, 0.0, pin),
                       hbm_gb_per_stack=np.where(sram_only, 0.0, gb))

    def col(self, i: np.ndarray | slice) -> "DesignArrays":
        """A subset of the designs."""
        idx = np.arange(len(self))[i]
        out = {}
        for name, value in self.__dict__.items():
            if isinstance(value, np.ndarray) and value.ndim == 1 and len(value) == len(self):
                out[name] = value[idx]
            elif isinstance(value, list) and len(value) == len(self):
                out[name] = [value[j] for j in idx]
            elif isinstance(value, dict) and all(np.ndim(v) == 1 and len(v) == len(self) for v in value.values()):
                out[name] = {k: v[idx] for k, v in value.items()}
        return replace(self, **out)


def _node_id(name: str, fab: FabData, memo: dict[str, str]) -> str:
    """`resolve_node(name, fab).id`, remembered per name."""
    if name not in memo:
        memo[name] = resolve_node(name, fab).id
    return memo[name]
