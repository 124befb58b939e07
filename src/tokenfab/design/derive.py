"""From a `ChipDesign` to everything the rest of tokenfab consumes: datasheet, area, power, unit
cost, feasibility, a tiled-performance description and a `ChipSpec`.

`evaluate_arrays` does the work for many designs at once (numpy over designs); `derive` wraps it
for one design and returns a `DesignReport`; `to_chip_spec` turns a design into the datasheet
every command accepts.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from tokenfab.cost.data import shipped_cost_data
from tokenfab.cost.fab import (PackageCost, die_yield, good_die_cost_usd, package_cost, package_cost_arrays,
                               sellable_yield, vendor_price_usd)
from tokenfab.design import area as area_mod
from tokenfab.design import power as power_mod
from tokenfab.design.arrays import DesignArrays
from tokenfab.design.datasheet import SPEC_FIELDS, datasheet, hbm_tb_s, peak_tflops
from tokenfab.design.tech import DesignTech, shipped_tech
from tokenfab.perf import tiled
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs import ChipSpec, SpecError
from tokenfab.cost.fab import priced_memory
from tokenfab.specs.design import ChipDesign
from tokenfab.specs.economics import CostData, FabData, PackageSpec

REF_GEMM = 8192.0  # M = N = K of the GEMM whose blocking sets shared-SRAM and HBM traffic at TDP
MATRIX_PRECISIONS = ("bf16", "fp16", "tf32", "fp8", "int8", "fp4", "int4", "fp32", "fp64")
KIB = 1024.0
MIB = 1024.0 * 1024.0
POWER_MODEL_TOLERANCE = 0.20
"""A design is unbuildable at its TDP only when the modelled power exceeds it by more than the power
model's own error on the reference designs (±20%, tests/test_design_reference.py); within that band
it runs power-capped: every precision sustains `(TDP / need) ** (1 / throttle_exponent)` of its peak
(`design.power.sustained_fraction`), as real chips do under DVFS."""
SIMT_TILE_SRAM_FRAC = 228.0 / 256.0
"""Share of a SIMT core's unified L1/shared SRAM a GEMM's operand tiles can use (the rest stays L1
cache): NVIDIA Hopper tuning guide, 256 KB combined per SM with up to 228 KB shared memory (A100:
164 of 192 KB, 0.85)."""


# ---- tiled description ------------------------------------------------------------------------

def tiled_hw_arrays(a: DesignArrays, tech: DesignTech, sustained: dict[str, np.ndarray] | None = None,
                    column: bool = True) -> tiled.TiledHW:
    """`TiledHW` of N designs; with `column` every field has shape (N, 1) to broadcast against
    GEMM shapes of shape (S,), giving (N, S) results."""
    ws = a.weight_stationary
    sh = (lambda x: np.asarray(x, dtype=float).reshape(-1, 1)) if column else (lambda x: np.asarray(x, dtype=float))
    cores = np.where(ws, a.cores * a.units, a.cores)
    per_core_sram = np.where(ws, a.sram_kb * KIB / a.units,
                             a.sram_kb * KIB * np.where(a.simt, SIMT_TILE_SRAM_FRAC, 1.0))
    rows = np.where(ws, a.rows, a.rows * a.units)
    l2_default = a.cores * tech.c("shared_sram_bytes_per_clk_per_core") * a.clock_mhz * 1e6 / 1e12
    l2_bw = np.where(np.isnan(a.shared_sram_tb_s), l2_default, a.shared_sram_tb_s * a.dies)
    n = len(a.shared_sram_mb)
    extra_mb = lambda x: np.asarray(x, dtype=float) if len(x) == n else np.zeros(n)  # noqa: E731
    # Shared SRAM the cores reach: the dies' L2 plus SRAM on IO dies (MI300X's Infinity Cache) and
    # SRAM stacked on the compute dies; one level at the L2's bandwidth (the tiled model has one).
    shared = (a.dies * (a.shared_sram_mb + extra_mb(a.stacked_sram_mb))
              + extra_mb(a.io_dies) * extra_mb(a.io_sram_mb)) * MIB
    return tiled.TiledHW(
        cores=sh(cores), sram_per_core_bytes=sh(per_core_sram), shared_sram_bytes=sh(shared),
        array_rows=sh(rows), array_cols=sh(a.cols), clock_mhz=sh(a.clock_mhz),
        weight_stationary=np.asarray(ws).reshape(-1, 1) if column else np.asarray(ws),
        array_depth=sh(a.depth), m_granule=tech.c("ws_m_granule"),
        # GPUs keep accumulators in half the register file; systolic arrays accumulate into SRAM;
        # NPU cube cores (dataflow control) have a dedicated accumulator buffer (Ascend L0C).
        acc_bytes_per_core=sh(np.where(ws, 0.0, a.rf_kb * KIB * np.where(a.simt, 0.5, 1.0))),
        shared_sram_tb_s=sh(np.where(shared > 0, l2_bw, 0.0)), multicast=sh(a.multicast),
        dram_latency_us=tech.c("dram_latency_us"),
        sustained_frac={p: sh(v) for p, v in (sustained or {}).items()},
        source="derived from the design's cores, SRAM, array and clock (tokenfab.design)",
    )


def _scalar_hw(hw: tiled.TiledHW) -> tiled.TiledHW:
    """Collapse a one-design (1, 1) TiledHW to Python scalars."""
    def s(x):
        arr = np.asarray(x)
        return arr.reshape(-1)[0].item() if arr.size == 1 else x
    fields = {k: s(v) for k, v in hw.__dict__.items() if k not in ("sustained_frac", "source")}
    return tiled.TiledHW(**fields, sustained_frac={p: s(v) for p, v in hw.sustained_frac.items()}, source=hw.source)


# ---- evaluation of many designs ---------------------------------------------------------------

def evaluate_arrays(a: DesignArrays, tech: DesignTech | None = None, cost: CostData | None = None,
                    packaging: list[str | None] | None = None, with_cost: bool = True) -> dict[str, Any]:
    """Datasheet, area, power, sustained fractions, unit cost and feasibility of N designs (arrays)."""
    tech = tech or shipped_tech()
    cost = cost or shipped_cost_data()
    fab = cost.fab
    out: dict[str, Any] = dict(datasheet(a, tech.c("pcie_lane_gbps")))
    ar = area_mod.area_breakdown(a, tech)
    out["area_mm2_per_die"] = {p: ar[p] for p in area_mod.AREA_PARTS}
    out["die_mm2_each"] = ar["die_mm2"]
    out["die_area_mm2"] = ar["chip_mm2"]
    out["core_mm2"] = area_mod.core_mm2(a, tech, ar)
    out["die_yield"], out["sellable_yield"] = _yields(a, ar["die_mm2"], out["core_mm2"], fab)
    out["io_die_mm2_each"] = ar["io_die_mm2"]
    out["stacked_sram_die_mm2"] = ar["stacked_sram_die_mm2"]
    need, have = area_mod.shoreline_mm(a, tech, ar["die_mm2"], ar["io_die_mm2"])
    out["shoreline_needed_mm"], out["shoreline_available_mm"] = need, have

    # Traffic of the reference GEMM sets shared-SRAM and HBM bytes per FLOP at the TDP load.
    hw1 = tiled_hw_arrays(a, tech, column=False)
    bf16 = peak_tflops(a, "bf16")
    ref = tiled.gemm_detail(REF_GEMM, REF_GEMM, REF_GEMM, bf16, hbm_tb_s(a), 2.0, 2.0, hw1.cores, Efficiency(),
                            hw=hw1, precision="bf16")
    flops = 2.0 * REF_GEMM ** 3
    shared_bpf, hbm_bpf = ref["shared_bytes"] / flops, ref["hbm_bytes"] / flops
    other_leak = power_mod.other_dies_leakage_w(a, ar)
    gemm = power_mod.gemm_power(a, tech, ar["chip_mm2"], "bf16", shared_bpf, hbm_bpf, other_leak)
    stream = power_mod.stream_power(a, tech, ar["chip_mm2"], other_leak)
    out["power_w_breakdown"] = {p: gemm[p] for p in power_mod.POWER_PARTS}
    out["power_w_gemm_bf16"] = gemm["total_w"]
    out["power_w_stream"] = stream["total_w"]
    out["power_w"] = np.maximum(gemm["total_w"], stream["total_w"])
    # Heat through the compute dies: all but the DRAM's own power (HBM/LPDDR/GDDR devices) and the
    # IO/stacked dies' (which spread over their own, larger footprint).
    logic_w = np.maximum(gemm["total_w"] - gemm["hbm"] - gemm["io_dies"],
                         stream["total_w"] - stream["hbm"] - stream["io_dies"])
    out["power_density_w_per_mm2"] = logic_w / ar["chip_mm2"]
    out["max_w_per_mm2"] = power_mod.max_power_density(a, tech)
    gamma = tech.c("throttle_exponent")
    sustained = {}
    for p in MATRIX_PRECISIONS:
        supported = a.prec[p] > 0
        if not supported.any():
            continue
        pw = gemm if p == "bf16" else power_mod.gemm_power(a, tech, ar["chip_mm2"], p, shared_bpf, hbm_bpf, other_leak)
        sustained[p] = np.where(supported, power_mod.sustained_fraction(pw, a.tdp_w, gamma), 0.0)
    out["sustained_frac"] = sustained
    out["tiled_hw"] = tiled_hw_arrays(a, tech, sustained, column=True)

    reticle = fab.reticle_limit_mm2
    out["over_reticle"] = (ar["die_mm2"] > reticle) | (ar["io_die_mm2"] > reticle)
    out["over_shoreline"] = need > have
    out["over_power"] = out["power_w"] > a.tdp_w * (1.0 + POWER_MODEL_TOLERANCE)
    out["over_power_density"] = out["power_density_w_per_mm2"] > out["max_w_per_mm2"]
    if with_cost:
        out["other_dies"] = _other_dies(a, ar, fab)
        unit, pkg = _unit_cost_arrays(a, ar["chip_mm2"], fab, packaging, tech, out["die_yield"],
                                      out["sellable_yield"], out["other_dies"])
        out["unit_cost_usd"] = unit
        out["packaging"] = pkg
        out["over_interposer"] = ~np.isfinite(unit) & ~out["over_reticle"]
    else:
        out["over_interposer"] = np.zeros(len(a), dtype=bool)
    out["feasible"] = ~(out["over_reticle"] | out["over_shoreline"] | out["over_power"] | out["over_interposer"]
                        | out["over_power_density"])
    return out


def _yields(a: DesignArrays, die_mm2, core_mm2, fab: FabData) -> tuple[np.ndarray, np.ndarray]:
    """(die yield without harvesting, sellable yield with up to `spare_cores_per_die` bad cores fused
    off) per design, from its node's defect density and the fab data's yield model."""
    plain = np.ones(len(a))
    sell = np.ones(len(a))
    nodes = np.asarray(a.fab_node, dtype=object)
    for node_id in set(a.fab_node):
        ix = np.flatnonzero(nodes == node_id)
        node = fab.nodes[node_id]
        d0, alpha, model = node.defect_density_per_cm2, node.cluster_alpha, fab.yield_model
        plain[ix] = die_yield(die_mm2[ix], d0, model, alpha)
        sell[ix] = sellable_yield(die_mm2[ix], core_mm2[ix], a.built_cores_per_die[ix], a.spare_cores_per_die[ix],
                                  d0, model, alpha)
    return plain, sell


def _other_dies(a: DesignArrays, ar: dict, fab: FabData) -> dict[str, np.ndarray]:
    """IO dies and stacked SRAM dies: their known-good cost (USD), how many more parts are bonded,
    and the interposer area they add (side-by-side IO dies add theirs; compute dies stacked on IO
    dies stop needing their own)."""
    usd = np.zeros(len(a))
    io = a.has_io_dies
    stacked = a.stacked_sram_mb > 0
    for node_id in set(a.io_node):
        ix = np.flatnonzero(io & (np.asarray(a.io_node, dtype=object) == node_id))
        if len(ix):
            usd[ix] += a.io_dies[ix] * np.asarray(good_die_cost_usd(ar["io_die_mm2"][ix], fab.nodes[node_id], fab))
    for node_id in set(a.stacked_node):
        ix = np.flatnonzero(stacked & (np.asarray(a.stacked_node, dtype=object) == node_id))
        if len(ix):
            usd[ix] += a.dies[ix] * np.asarray(good_die_cost_usd(ar["stacked_sram_die_mm2"][ix], fab.nodes[node_id], fab))
    footprint = ar["io_dies_mm2"] - np.where(io & a.io_stacked, ar["chip_mm2"], 0.0)
    return {"usd": usd, "bonded": a.io_dies + np.where(stacked, a.dies, 0.0), "interposer_mm2": footprint}


def memory_price_id(gen: str, fab: FabData, tech: DesignTech | None = None) -> str | None:
    """The fab data's memory entry that prices a memory technology (its `priced_as`; None: SRAM only)."""
    priced = (tech or shipped_tech()).memory_tech(gen).priced_as
    return priced_memory(priced, fab)


def _unit_cost_arrays(a: DesignArrays, chip_mm2, fab: FabData, packaging: list[str | None] | None,
                      tech: DesignTech, die_yield_plain, sellable, other: dict[str, np.ndarray]):
    """Unit cost per design: `package_cost_arrays` per (node, memory, packaging) group, with the
    compute dies' cost moved from the plain die yield to the sellable (harvested) yield. Without a
    packaging choice: CoWoS-S when its interposer fits, else CoWoS-L (as `cost.fab` chooses);
    organic substrate when no memory sits on an interposer. IO and stacked SRAM dies add their cost,
    interposer area and bonding yield (`_other_dies`)."""
    n = len(a)
    unit = np.full(n, np.nan)
    pkg = np.empty(n, dtype=object)
    gb = a.hbm_stacks * a.hbm_gb_per_stack
    nodes = np.asarray(a.fab_node, dtype=object)
    priced = {g: memory_price_id(g, fab, tech) or "" for g in set(a.hbm_gen)}
    mems = np.asarray([priced[g] for g in a.hbm_gen], dtype=object)
    for mem_id in set(mems):
        in_mem = mems == mem_id
        mem = fab.memory.get(mem_id)
        if mem is None or not mem.on_package:
            pkg[in_mem] = "organic"
            continue
        cs = fab.packaging["cowos-s"]
        interposer = ((chip_mm2 + other["interposer_mm2"] + a.hbm_stacks * mem.stack_footprint_mm2)
                      * (1 + cs.interposer_area_overhead_frac))
        fits_s = np.ones(n, dtype=bool) if cs.max_interposer_mm2 is None else interposer <= cs.max_interposer_mm2
        pkg[in_mem] = np.where(fits_s[in_mem], "cowos-s", "cowos-l")
    if packaging:
        chosen = np.array([p is not None for p in packaging])
        pkg[chosen] = np.asarray(packaging, dtype=object)[chosen]
    for node_id in set(nodes):
        for mem_id in set(mems):
            for pkg_id in set(pkg):
                ix = np.flatnonzero((nodes == node_id) & (mems == mem_id) & (pkg == pkg_id))
                if not len(ix):
                    continue
                r = package_cost_arrays(chip_mm2[ix], a.dies[ix], gb[ix], a.hbm_stacks[ix], node=fab.nodes[node_id],
                                        memory=fab.memory.get(mem_id), packaging=fab.packaging[pkg_id], fab=fab)
                pk = fab.packaging[pkg_id]
                extra_mm2 = other["interposer_mm2"][ix] * (1 + pk.interposer_area_overhead_frac)
                with np.errstate(invalid="ignore"):  # unbuildable designs (inf die cost) stay NaN
                    harvest = r["compute_dies_usd"] * (die_yield_plain[ix] / sellable[ix] - 1.0)
                    parts = (r["parts_usd"] + harvest + other["usd"][ix]
                             + np.where(pk.interposer_usd_per_mm2 > 0, extra_mm2 * pk.interposer_usd_per_mm2, 0.0))
                pkg_yield = r["package_yield"] * pk.bond_yield_per_die ** other["bonded"][ix]
                unit[ix] = np.where(np.isfinite(r["unit_cost_usd"]), parts / pkg_yield, np.nan)
    return unit, list(pkg)


# ---- one design -------------------------------------------------------------------------------

class DesignReport(BaseModel):
    """Everything derived from one design (JSON-ready; `None` where not applicable)."""

    model_config = ConfigDict(frozen=True)
    id: str
    name: str
    process_node: str
    clock_mhz: float
    compute_dies: int
    cores: int
    tdp_w: float
    bf16_tflops: float
    datasheet: dict[str, float | None]
    die_area_mm2: float
    die_area_mm2_each: float
    reticle_limit_mm2: float
    area_mm2_breakdown: dict[str, float]
    shoreline_needed_mm: float
    shoreline_available_mm: float
    power_w: float
    power_w_gemm_bf16: float
    power_w_stream: float
    power_w_breakdown: dict[str, float]
    io_die_mm2_each: float = 0.0
    io_dies_mm2: float = 0.0
    stacked_sram_die_mm2_each: float = 0.0
    power_density_w_per_mm2: float = 0.0
    max_w_per_mm2: float = 0.0
    memory: str = ""
    fab_node: str = ""
    """Fab-data node that priced it (differs from `process_node` for a node priced as a stand-in)."""
    core_mm2: float = 0.0
    die_yield: float = 1.0
    sellable_yield: float = 1.0
    sustained_frac: dict[str, float]
    unit_cost_usd: float | None
    package_cost: dict[str, Any] | None
    feasible: bool
    infeasible_reasons: list[str]
    published: dict[str, float]
    vs_published: dict[str, dict[str, float]]
    tiled: dict[str, Any]
    tech_source: str


def _f(x) -> float:
    return float(np.asarray(x).reshape(-1)[0])


@lru_cache(maxsize=256)
def _derive_json(design_json: str) -> DesignReport:
    return _derive(ChipDesign.model_validate_json(design_json), shipped_tech(), shipped_cost_data())


def derive(design: ChipDesign, tech: DesignTech | None = None, cost: CostData | None = None) -> DesignReport:
    """The full report of one design (cached for the shipped tech and cost data)."""
    if tech is None and cost is None:
        return _derive_json(design.model_dump_json())
    return _derive(design, tech or shipped_tech(), cost or shipped_cost_data())


def _derive(design: ChipDesign, tech: DesignTech, cost: CostData) -> DesignReport:
    fab = cost.fab
    a = DesignArrays.from_designs([design], tech, fab)
    r = evaluate_arrays(a, tech, cost, with_cost=True)  # its packaging choice sees IO-die footprints
    total = _f(r["die_area_mm2"])
    each = _f(r["die_mm2_each"])
    dies = design.compute_dies
    reasons: list[str] = []
    io_each = _f(r["io_die_mm2_each"])
    if io_each > fab.reticle_limit_mm2:
        reasons.append(f"IO die of {io_each:.0f} mm² exceeds the reticle limit of {fab.reticle_limit_mm2:.0f} mm²; "
                       f"use more io_dies or move shared SRAM to the compute dies")
    if each > fab.reticle_limit_mm2:
        reasons.append(f"die of {each:.0f} mm² exceeds the reticle limit of {fab.reticle_limit_mm2:.0f} mm²; "
                       f"split it over more compute_dies (at least {math.ceil(total / fab.reticle_limit_mm2)}) "
                       f"or shrink SRAM/cores")
    if r["over_shoreline"][0]:
        reasons.append(f"HBM and SerDes PHYs need {_f(r['shoreline_needed_mm']):.0f} mm of die edge per die; a "
                       f"{each:.0f} mm² die offers {_f(r['shoreline_available_mm']):.0f} mm usable; use fewer "
                       f"HBM stacks/links per die or more dies")
    if r["over_power"][0]:
        which = "bf16 GEMM" if _f(r["power_w_gemm_bf16"]) >= _f(r["power_w_stream"]) else "memory-streaming"
        reasons.append(f"estimated power {_f(r['power_w']):.0f} W at the {which} load exceeds the TDP of "
                       f"{design.tdp_w:.0f} W by more than the power model's {POWER_MODEL_TOLERANCE:.0%} error "
                       f"band; lower the clock or cores, or raise tdp_w")
    if r["over_power_density"][0]:
        reasons.append(f"power density {_f(r['power_density_w_per_mm2']):.2f} W/mm² over {total:.0f} mm² of compute "
                       f"die exceeds the {design.cooling}-cooling limit of {_f(r['max_w_per_mm2']):.2f} W/mm²; "
                       f"lower the clock, spread the power over more silicon"
                       + (" or use liquid cooling" if design.cooling == "air" else ""))
    pkg: dict[str, Any] | None = None
    unit: float | None = None
    if not r["over_reticle"][0]:
        tech_id = design.memory.tech_id
        mem = memory_price_id(tech_id, fab, tech)
        on_interposer = tech.memory_tech(tech_id).placement == "interposer"
        spec = PackageSpec(compute_die_mm2=total, chiplets=dies, node=a.fab_node[0], memory=mem,
                           memory_stacks=design.memory.hbm_stacks if (mem and on_interposer) else 0,
                           memory_gb=_f(r["hbm_gb"]) if mem else None,
                           packaging=design.packaging or r["packaging"][0])
        try:
            pc = _harvested(package_cost(spec, fab), _f(r["sellable_yield"]))
            other = _other_dies(a, {"io_die_mm2": r["io_die_mm2_each"], "io_dies_mm2": r["io_die_mm2_each"] * a.io_dies,
                                    "stacked_sram_die_mm2": r["stacked_sram_die_mm2"], "chip_mm2": r["die_area_mm2"]}, fab)
            pc = _with_other_dies(pc, _f(other["usd"]), _f(other["bonded"]), _f(other["interposer_mm2"]), fab)
            unit = pc.unit_cost_usd
            pkg = {**pc.model_dump(), "parts": pc.parts()}
            if mem and mem != tech_id:
                pkg["note"] = f"{tech_id} priced as {mem} (design_tech.yaml memory.{tech_id}.priced_as)"
        except SpecError as exc:
            reasons.append(str(exc))
    ds = {field: (_f(r[field]) or None) for field in SPEC_FIELDS.values()}
    for k in ("fp32_tflops", "hbm_tb_s", "hbm_gb", "scaleup_gb_s", "scaleout_gb_s", "sram_mb"):
        ds[k] = _f(r[k])
    derived_for = {**ds, "die_area_mm2": total, "tdp_w": _f(r["power_w"])}
    vs = {k: {"published": v, "derived": derived_for[k],
              "error": (derived_for[k] / v - 1.0) if derived_for.get(k) else float("nan")}
          for k, v in design.published.items() if k in derived_for and derived_for[k] is not None}
    hw = _scalar_hw(r["tiled_hw"])
    return DesignReport(
        id=design.id, name=design.name or design.id, process_node=a.node[0], clock_mhz=design.clock_mhz,
        compute_dies=dies, cores=design.cores, tdp_w=design.tdp_w, bf16_tflops=ds["bf16_tflops"] or 0.0,
        datasheet=ds, die_area_mm2=total, die_area_mm2_each=each, reticle_limit_mm2=fab.reticle_limit_mm2,
        area_mm2_breakdown={p: _f(v) * dies for p, v in r["area_mm2_per_die"].items()},
        shoreline_needed_mm=_f(r["shoreline_needed_mm"]), shoreline_available_mm=_f(r["shoreline_available_mm"]),
        power_w=_f(r["power_w"]), power_w_gemm_bf16=_f(r["power_w_gemm_bf16"]),
        power_w_stream=_f(r["power_w_stream"]),
        power_w_breakdown={p: _f(v) for p, v in r["power_w_breakdown"].items()},
        io_die_mm2_each=io_each, io_dies_mm2=io_each * (design.io_dies.count if design.io_dies else 0),
        stacked_sram_die_mm2_each=_f(r["stacked_sram_die_mm2"]) if design.stacked_sram else 0.0,
        power_density_w_per_mm2=_f(r["power_density_w_per_mm2"]), max_w_per_mm2=_f(r["max_w_per_mm2"]),
        memory=design.memory.label, fab_node=a.fab_node[0], core_mm2=_f(r["core_mm2"]), die_yield=_f(r["die_yield"]),
        sellable_yield=_f(r["sellable_yield"]),
        sustained_frac={p: _f(v) for p, v in r["sustained_frac"].items()},
        unit_cost_usd=unit, package_cost=pkg, feasible=not reasons, infeasible_reasons=reasons,
        published=dict(design.published), vs_published=vs,
        tiled={k: v for k, v in hw.__dict__.items() if k != "sustained_frac"},
        tech_source="catalog/design_tech.yaml (tokenfab.design.tech)",
    )


def _with_other_dies(pc: PackageCost, usd: float, bonded: float, interposer_mm2: float, fab: FabData) -> PackageCost:
    """The package cost with IO / stacked SRAM dies added: their silicon joins the compute dies'
    cost, their footprint the interposer, their bonds the package yield."""
    if not bonded:
        return pc
    pk = fab.packaging[pc.packaging]
    add_mm2 = interposer_mm2 * (1 + pk.interposer_area_overhead_frac) if pk.interposer_usd_per_mm2 > 0 else 0.0
    compute = pc.compute_dies_usd + usd
    inter_usd = pc.interposer_usd + add_mm2 * pk.interposer_usd_per_mm2
    pkg_yield = pc.package_yield * pk.bond_yield_per_die ** bonded
    parts = compute + pc.memory_usd + inter_usd + pc.assembly_usd + pc.test_usd
    unit = parts / pkg_yield
    return pc.model_copy(update={
        "compute_dies_usd": compute, "interposer_mm2": pc.interposer_mm2 + add_mm2, "interposer_usd": inter_usd,
        "package_yield": pkg_yield, "unit_cost_usd": unit, "yield_loss_usd": unit - parts,
        "vendor_price_usd": float(vendor_price_usd(unit, pc.gross_margin))})


def _harvested(pc: PackageCost, sellable: float) -> PackageCost:
    """The package cost with known-good compute dies bought at the sellable (harvested) yield
    instead of the defect-free die yield; every other part unchanged."""
    if sellable <= pc.die_yield:
        return pc
    ratio = pc.die_yield / sellable
    compute = pc.compute_dies_usd * ratio
    unit = pc.unit_cost_usd + (compute - pc.compute_dies_usd) / pc.package_yield
    parts = compute + pc.memory_usd + pc.interposer_usd + pc.assembly_usd + pc.test_usd
    return pc.model_copy(update={
        "die_yield": sellable, "good_die_usd": pc.good_die_usd * ratio, "compute_dies_usd": compute,
        "unit_cost_usd": unit, "yield_loss_usd": unit - parts,
        "vendor_price_usd": float(vendor_price_usd(unit, pc.gross_margin))})


def tiled_hw_from_design(design: ChipDesign, tech: DesignTech | None = None) -> tiled.TiledHW:
    """The exact `TiledHW` of a design, with power-capped sustained fractions per precision."""
    rep = derive(design, tech)
    return tiled.TiledHW(**{k: v for k, v in rep.tiled.items()}, sustained_frac=dict(rep.sustained_frac))


# ---- ChipSpec ---------------------------------------------------------------------------------

def microarch_of(rep: "DesignReport", calibrated: bool = False):
    """The `Microarch` block a design's ChipSpec carries (exactly the design's tiled description and
    power-capped sustained fractions), so the chip needs no registry to be evaluated anywhere.
    `calibrated`: the design runs at a measured efficiency (`ChipDesign.calibration`), which already
    includes the silicon's throttling under its power cap, so the modelled cap is not applied again."""
    from tokenfab.specs.microarch import Microarch

    # Special-function results per FP32 vector lane and clock: an NVIDIA Hopper/Ada/Blackwell SM
    # has 128 FP32 lanes (H100 whitepaper) and 16 SFU results per clock (CUDA C++ Programming
    # Guide, arithmetic-instruction throughput table), 1/8. An estimate for other cores: GA100's SM
    # has the same 16 for 64 lanes (2x more per lane), CDNA3's CU 16 for 64 (quarter-rate VALU).
    sfu_per_lane = 16.0 / 128.0
    t = rep.tiled
    ws = bool(t["weight_stationary"])
    vec = float(rep.datasheet.get("fp32_tflops") or 0.0)  # cores x lanes x 2 FLOPs x clock
    return Microarch(
        tile_units=float(t["cores"]), sram_per_core_kib=float(t["sram_per_core_bytes"]) / KIB,
        accumulator_kib_per_core=float(t["acc_bytes_per_core"]) / KIB,
        shared_sram_mib=float(t["shared_sram_bytes"]) / MIB, shared_sram_tb_s=float(t["shared_sram_tb_s"]),
        matrix_rows=float(t["array_rows"]), matrix_cols=float(t["array_cols"]),
        matrix_depth=float(t["array_depth"]), dataflow="weight_stationary" if ws else "output_stationary",
        m_granule=float(t["m_granule"]), multicast=float(t["multicast"]),
        dram_latency_us=float(t["dram_latency_us"]),
        sustained_frac={} if calibrated else {p: min(1.0, max(0.0, float(v)))
                                              for p, v in rep.sustained_frac.items()},
        vector_tflops=vec if vec > 0 else None,
        sfu_tops=vec / 2.0 * sfu_per_lane if vec > 0 else None,
        units_source=(f"derived from design {rep.id}: vector = cores x vector_unit.lanes x 2 x clock; sfu = "
                      f"cores x lanes x clock / 8 (NVIDIA SM: 16 SFU results per 128 FP32 lanes, CUDA C++ "
                      f"Programming Guide)"),
        units_estimated=True,
        source=f"derived from design {rep.id} (tokenfab.design: cores, SRAM, matrix units, clock, power model)",
        estimated=True)


def to_chip_spec(design: ChipDesign, tech: DesignTech | None = None, cost: CostData | None = None) -> ChipSpec:
    """A `ChipSpec` so every command can run on the design. Peaks, memory and links are exact
    arithmetic on the design; area, power and price are model estimates (`estimated_fields`)."""
    rep = derive(design, tech, cost)
    ds = rep.datasheet
    mu = design.die.core.matrix_unit
    fab = (cost or shipped_cost_data()).fab
    price = rep.unit_cost_usd * (1.0 + fab.custom_markup_frac) if rep.unit_cost_usd else None
    data: dict[str, Any] = {
        "id": design.id, "name": design.name or design.id, "vendor": design.vendor,
        "form_factor": design.form_factor, "launch_year": design.launch_year,
        **{k: v for k, v in ds.items() if v},  # zero peaks/SRAM: the design has no such path
        "memory_type": design.memory.label,
        "cores": design.cores,
        "core_type": (f"core: {design.die.core.matrix_units_per_core} x {mu.rows}x{mu.cols}"
                      f"{'x' + str(mu.depth) if mu.depth > 1 else ''} {mu.dataflow.replace('_', '-')} matrix units"),
        "clock_mhz": design.clock_mhz,
        "scaleup_domain": design.io.scaleup_domain,
        "scaleup_interconnect": design.io.scaleup_interconnect or
                                (f"{design.io.scaleup_links} links" if design.io.scaleup_links else "host PCIe"),
        "tdp_w": design.tdp_w, "die_area_mm2": rep.die_area_mm2,
        # A node priced as a stand-in keeps its name in parentheses (the cost model reads the stand-in).
        "process_node": (design.process_node if rep.fab_node in ("", rep.process_node)
                         else f"{rep.fab_node} ({design.process_node}; priced as {rep.fab_node})"),
        "microarch": microarch_of(rep, calibrated=design.calibration is not None), "software": design.software,
        "software_maturity": design.software_maturity, "calibration": design.calibration,
        "infeasible_reasons": list(rep.infeasible_reasons),
    }
    if price:
        data["price_usd"] = price
    derived = [k for k in data if k in ChipSpec.model_fields and isinstance(data[k], (int, float))
               and k not in ("launch_year", "scaleup_domain", "cores", "clock_mhz", "tdp_w", "software_maturity")]
    feas = "feasible" if rep.feasible else "INFEASIBLE: " + "; ".join(rep.infeasible_reasons)
    data["sources"] = {
        "default": f"derived from design {design.id} (tokenfab.design; catalog/design_tech.yaml)",
        "tdp_w": f"design target; estimated power {rep.power_w:.0f} W",
        "die_area_mm2": f"derived from design {design.id}: area model (catalog/design_tech.yaml)",
    }
    if price:
        data["sources"]["price_usd"] = f"derived from design {design.id}: unit cost from the fab model " \
                                      f"(cost/fab.py) x (1 + custom_markup_frac {fab.custom_markup_frac:g})"
    data["estimated_fields"] = sorted(set(derived))
    data["notes"] = (f"Design {design.id}: {rep.cores} cores at {design.clock_mhz:g} MHz, "
                     f"{rep.die_area_mm2:.0f} mm² on {rep.process_node}, est. {rep.power_w:.0f} W "
                     f"(TDP {design.tdp_w:g} W), unit cost "
                     f"{'$' + format(rep.unit_cost_usd, ',.0f') if rep.unit_cost_usd else 'n/a'}; {feas}.")
    return ChipSpec.from_mapping(data, origin=f"design {design.id}")
