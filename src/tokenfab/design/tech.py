"""Technology data a design is built from: `catalog/design_tech.yaml`, every number sourced.

Each number is a `Param`: its value, the range the sources allow, the source, and whether it
is an estimate. Three tables:

- `nodes`: per foundry node — achieved logic density, SRAM macro density, dynamic-energy scale
  relative to TSMC N5, leakage per mm²;
- `memory`: per memory technology (HBM generations, domestic HBM, LPDDR5X, GDDR7, SRAM only) —
  where it sits, which fab-data entry prices it, pin rate, width, device capacity, PHY area and die
  edge, energy, controller size, background power;
- `constants`: node-independent or N5-referenced numbers (MAC transistor counts, control
  overheads, SRAM integration overheads, SerDes/PCIe PHYs, energies at N5, ...).

`node_pricing` lists nodes with design data but no fab-data entry (GF 14LPP) and the fab node that
stands in for their wafer cost and yield.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from typing import Any, Literal

from pydantic import Field, model_validator

from tokenfab.cost.fab import resolve_node
from tokenfab.specs.base import Spec, SpecError

NODE_KEYS = ("logic_mtr_per_mm2", "sram_mbit_per_mm2", "energy_scale", "leakage_w_per_mm2")
MEMORY_KEYS = ("pin_gbps", "bits_per_device", "gb_per_device", "phy_mm2", "phy_edge_mm", "pj_per_bit",
               "controller_mtr", "background_w_per_device")
HBM_KEYS = MEMORY_KEYS  # older name
CONSTANT_KEYS = (
    "format_overhead_frac", "vector_lane_mtr", "fp64_lane_mtr", "simt_control_mtr_per_lane",
    "dataflow_control_frac", "core_noc_mtr", "scratchpad_overhead", "cache_overhead",
    "register_file_overhead", "bulk_sram_overhead", "misc_area_frac", "uncore_fixed_mtr", "d2d_area_frac",
    "usable_perimeter_frac", "serdes_lane_gbps", "serdes_mm2_per_lane", "serdes_edge_mm_per_lane",
    "serdes_pj_per_bit", "link_controller_mtr_per_lane", "pcie_lane_gbps", "pcie_mm2_per_lane",
    "pcie_edge_mm_per_lane", "pcie_pj_per_bit", "pcie_controller_mtr_per_lane",
    "bf16_pj_per_flop", "vector_pj_per_flop", "core_sram_pj_per_byte", "shared_sram_pj_per_byte",
    "simt_issue_w_per_slot_ghz", "clock_control_frac_dataflow", "vector_duty_in_gemm",
    "link_activity_at_tdp", "throttle_exponent", "shared_sram_bytes_per_clk_per_core",
    "ws_m_granule", "dram_latency_us", "max_w_per_mm2_air", "max_w_per_mm2_liquid",
    "d2d_mm2_per_tb_s", "d2d_pj_per_bit", "simd_control_mtr_per_lane", "simd_core_noc_mtr",
)
PRECISION_KEYS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4", "int4")


class Param(Spec):
    """One sourced number with the range its sources allow."""

    value: float
    """The value used."""
    low: float
    """Lowest value the sources support."""
    high: float
    """Highest value the sources support."""
    unit: str = ""
    """Unit of the value."""
    source: str
    """Where the value and the range come from."""
    estimate: bool = False
    """True when the value is our estimate or derivation, not a published figure."""

    @model_validator(mode="after")
    def _in_range(self) -> "Param":
        if not (self.low <= self.value <= self.high):
            raise ValueError(f"value {self.value} outside its range [{self.low}, {self.high}]")
        return self


MemoryPlacement = Literal["interposer", "package", "board", "none"]


class MemoryTechData(Spec):
    """One memory technology: where it sits, what prices it, and its MEMORY_KEYS parameters."""

    name: str
    """Human name."""
    placement: MemoryPlacement
    """`interposer`: stacks bonded beside the dies (HBM); `package`/`board`: DRAM packages on the
    substrate or the board (LPDDR, GDDR: no interposer); `none`: no external memory (SRAM only)."""
    priced_as: str | None = None
    """Entry of the fab data's `memory:` table (economics.yaml) holding its $/GB; None: nothing to buy."""
    params: dict[str, Param]
    """The MEMORY_KEYS parameters (given as siblings of `name` in the YAML)."""

    @model_validator(mode="before")
    @classmethod
    def _gather_params(cls, data: Any) -> Any:
        if isinstance(data, dict) and "params" not in data:
            meta = ("name", "placement", "priced_as")
            data = {**{k: data[k] for k in meta if k in data},
                    "params": {k: v for k, v in data.items() if k not in meta}}
        return data

    @model_validator(mode="after")
    def _complete(self) -> "MemoryTechData":
        missing = [k for k in MEMORY_KEYS if k not in self.params]
        extra = [k for k in self.params if k not in MEMORY_KEYS]
        if missing or extra:
            raise ValueError(f"missing {', '.join(missing) or '-'}; unknown {', '.join(extra) or '-'}")
        if (self.placement == "none") != (self.params["bits_per_device"].value == 0):
            raise ValueError("placement `none` exactly when there is no memory interface (bits_per_device 0)")
        return self


class NodePricing(Spec):
    """A node the design data describes but the fab data has no entry for: the fab node that stands
    in for its wafer cost, defect density and mask set."""

    priced_as: str
    """Fab-data node id used for cost and yield."""
    aliases: list[str] = Field(default_factory=list)
    """Other spellings a design's `process_node` may use (matched case-insensitively, parentheses
    and text after `;`, `,`, `/` or ` + ` ignored, as the fab data's aliases)."""
    source: str
    """Why that fab node stands in."""


class DesignTech(Spec):
    """All technology data the design derivations read."""

    nodes: dict[str, dict[str, Param]]
    """Per foundry node id (as in the fab data): the NODE_KEYS parameters."""
    memory: dict[str, MemoryTechData]
    """Per memory technology id (HBM generations, LPDDR5X, GDDR7, SRAM only, ...)."""
    mac_mtr: dict[str, Param]
    """Million transistors of one MAC (multiplier + accumulator) per input precision."""
    energy_rel: dict[str, Param]
    """Matrix energy per FLOP relative to bf16, per input precision."""
    constants: dict[str, Param]
    """The CONSTANT_KEYS parameters."""
    node_pricing: dict[str, NodePricing] = Field(default_factory=dict)
    """Nodes of `nodes` without a fab-data entry, each with the fab node that prices it."""
    notes: str = ""
    """How the table was assembled."""
    calibration: dict[str, float] = Field(default_factory=dict)
    """Reference-design results recorded when the constants were chosen (documentation)."""

    @model_validator(mode="after")
    def _complete(self) -> "DesignTech":
        for name, table, keys in [(f"nodes.{k}", v, NODE_KEYS) for k, v in self.nodes.items()] + \
                [("constants", self.constants, CONSTANT_KEYS), ("mac_mtr", self.mac_mtr, PRECISION_KEYS),
                 ("energy_rel", self.energy_rel, PRECISION_KEYS)]:
            missing = [k for k in keys if k not in table]
            if missing:
                raise ValueError(f"{name}: missing {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _priced_nodes_have_data(self) -> "DesignTech":
        missing = [k for k in self.node_pricing if k not in self.nodes]
        if missing:
            raise ValueError(f"node_pricing: no node data for {', '.join(missing)}")
        return self

    def resolve_node(self, name: str, fab) -> tuple[str, str]:
        """(design-data node id, fab-data node id) of a design's `process_node`: a node of
        `node_pricing` by id or alias (priced as its stand-in), else the fab data's node."""
        key = re.sub(r"\s+", " ", re.split(r"[;,/]|\s\+\s", re.sub(r"\(.*?\)", " ", name))[0].lower()).strip()
        for node_id, pricing in self.node_pricing.items():
            if any(re.sub(r"\s+", "", n.lower()) == key.replace(" ", "") for n in (node_id, *pricing.aliases)):
                return node_id, pricing.priced_as
        fab_id = resolve_node(name, fab).id
        return fab_id, fab_id

    def c(self, key: str) -> float:
        """Value of a constant."""
        return self.constants[key].value

    def node(self, node_id: str) -> dict[str, float]:
        """Values of one node's parameters; SpecError when the node has no design data."""
        try:
            return {k: p.value for k, p in self.nodes[node_id].items()}
        except KeyError:
            raise SpecError(f"no design technology data for node {node_id!r}; "
                            f"known: {', '.join(self.nodes)}") from None

    def memory_tech(self, tech_id: str) -> MemoryTechData:
        """One memory technology; SpecError when there is no data for it."""
        try:
            return self.memory[tech_id]
        except KeyError:
            raise SpecError(f"no memory technology {tech_id!r} in the design data; "
                            f"known: {', '.join(self.memory)}") from None

    def memory_values(self, tech_id: str) -> dict[str, float]:
        """Values of one memory technology's parameters."""
        return {k: p.value for k, p in self.memory_tech(tech_id).params.items()}

    hbm_gen = memory_values  # older name

    def with_constants(self, **changes: float) -> "DesignTech":
        """A copy with some constants' values replaced (sensitivity studies; ranges not enforced)."""
        consts = dict(self.constants)
        for k, v in changes.items():
            if k not in consts:
                raise SpecError(f"unknown design constant {k!r}")
            p = consts[k]
            consts[k] = p.model_copy(update={"value": float(v), "low": min(p.low, v), "high": max(p.high, v)})
        return self.model_copy(update={"constants": consts})


def shipped_tech_path() -> Path:
    """Path of the shipped design technology YAML."""
    return Path(str(resources.files("tokenfab.catalog").joinpath("design_tech.yaml")))


@lru_cache(maxsize=None)
def shipped_tech() -> DesignTech:
    """The shipped design technology data, validated."""
    return DesignTech.from_yaml(shipped_tech_path())
