"""Die area of designs from per-node densities (LLMCompass's method, our sourced numbers).

Per die, built cores (enabled + spare) carry matrix units, vector units, control, a network
port, SRAM and a register file; the die adds shared SRAM, HBM PHYs and controllers, SerDes for
scale-up links (and an integrated NIC), host PCIe, fixed uncore logic, die-to-die PHYs when there
are several dies, and a routing/whitespace allowance:

    logic mm²  = transistors / achieved logic density (MTr/mm²)
    SRAM mm²   = bits / macro density (Mibit/mm²) × integration overhead (scratchpad, cache, RF)
    PHY mm²    = count × fixed mm² per interface (PHYs do not shrink with the node)

IO dies (MI300X-style): the PHYs, controllers, SerDes, PCIe and uncore sit on IO dies of their own
node with any IO-die cache; compute dies keep cores and shared SRAM plus die-to-die PHYs sized by
their bandwidth to the IO dies (`d2d_mm2_per_tb_s`). A stacked SRAM die adds capacity on its own die.

Core control: `simt` (NVIDIA SM) per FP32 thread lane at LLMCompass's NVIDIA count; `simd` (AMD CU)
per physical SIMD lane at its AMD count, with AMD's per-CU crossbar; `dataflow` a fraction of the
datapath. Packed FP32 (`vector_unit.fp32_packed`) counts only the 64-bit lanes.

Shoreline: the PHYs need die edge (HBM stack width, SerDes and PCIe lanes); a square die offers
4·√A of perimeter, of which `usable_perimeter_frac` can host PHYs.
"""

from __future__ import annotations

import numpy as np

from tokenfab.design.arrays import PRECISIONS, DesignArrays
from tokenfab.design.tech import DesignTech

AREA_PARTS = ("matrix_units", "vector_units", "core_control", "core_noc", "core_sram", "register_files",
              "shared_sram", "hbm_phy", "hbm_controllers", "scaleup_serdes", "link_controllers", "host_pcie",
              "nic_serdes", "uncore", "die_to_die", "routing_and_misc")


def mac_mtr(a: DesignArrays, tech: DesignTech) -> np.ndarray:
    """Million transistors per bf16-rate MAC slot: the widest format's datapath (rate × MAC size),
    shared by the narrower formats, plus a muxing overhead per extra format."""
    widest = np.zeros(len(a))
    formats = np.zeros(len(a))
    for p in PRECISIONS:
        mult = a.prec[p]
        widest = np.maximum(widest, mult * tech.mac_mtr[p].value)
        formats += mult > 0
    return widest * (1.0 + tech.c("format_overhead_frac") * np.maximum(formats - 1.0, 0.0))


def scaleup_lanes(a: DesignArrays, tech: DesignTech) -> np.ndarray:
    """SerDes lanes (TX+RX pairs) for the scale-up links of the chip."""
    return a.links * np.ceil(a.gb_s_per_link * 8.0 / tech.c("serdes_lane_gbps"))


def nic_lanes(a: DesignArrays, tech: DesignTech) -> np.ndarray:
    """Ethernet SerDes lanes of an integrated NIC (0 for an external NIC)."""
    return np.where(a.nic_integrated, np.ceil(a.nic_gbps / tech.c("serdes_lane_gbps")), 0.0)


def _sram_mm2(mib, density_mbit, overhead):
    return mib * 8.0 / density_mbit * overhead


def _io_parts(a: DesignArrays, tech: DesignTech, dens, per: np.ndarray) -> dict[str, np.ndarray]:
    """Memory PHYs/controllers, SerDes, PCIe and uncore, split over `per` dies at logic density `dens`."""
    c = tech.c
    up_lanes = scaleup_lanes(a, tech) / per
    nic = nic_lanes(a, tech) / per
    phys = a.hbm_phys / per
    return {
        "hbm_phy": phys * a.th["phy_mm2"],
        "hbm_controllers": phys * a.th["controller_mtr"] / dens,
        "scaleup_serdes": up_lanes * c("serdes_mm2_per_lane"),
        "link_controllers": (up_lanes + nic) * c("link_controller_mtr_per_lane") / dens,
        "host_pcie": a.pcie_lanes / per * (c("pcie_mm2_per_lane") + c("pcie_controller_mtr_per_lane") / dens),
        "nic_serdes": nic * c("serdes_mm2_per_lane"),
        "uncore": np.full(len(a), c("uncore_fixed_mtr")) / dens,
    }


def area_breakdown(a: DesignArrays, tech: DesignTech) -> dict[str, np.ndarray]:
    """mm² per compute die for each part in AREA_PARTS, plus `die_mm2` (one die) and `chip_mm2` (all
    compute dies). With IO dies, the I/O parts and the uncore move there (`io_die_mm2`, per IO die)
    and the compute die gets die-to-die PHYs sized by its bandwidth; `stacked_sram_die_mm2` is the
    SRAM die stacked on each compute die (0 without)."""
    c = tech.c
    dens = a.tn["logic_mtr_per_mm2"]
    sram_d = a.tn["sram_mbit_per_mm2"]
    cb = a.built_cores_per_die
    dies = a.dies
    io = a.has_io_dies
    on_compute = np.where(io, 0.0, 1.0)
    matrix_mtr = a.units * a.rows * a.cols * a.depth * mac_mtr(a, tech)
    # Packed FP32 (AMD CDNA 2/3): the FP32 results come from the 64-bit lanes, counted once.
    vector_mtr = (np.where(a.fp32_packed, 0.0, a.lanes * c("vector_lane_mtr"))
                  + a.fp64_lanes * c("fp64_lane_mtr"))
    simd_lanes = np.where(a.fp32_packed, a.fp64_lanes, a.lanes)  # physical SIMD lanes
    control_mtr = np.where(a.simd, simd_lanes * c("simd_control_mtr_per_lane"),
                           np.where(a.simt, a.lanes * c("simt_control_mtr_per_lane"),
                                    c("dataflow_control_frac") * (matrix_mtr + vector_mtr)))
    noc_mtr = np.where(a.simd, c("simd_core_noc_mtr"), c("core_noc_mtr"))
    parts = {
        "matrix_units": cb * matrix_mtr / dens,
        "vector_units": cb * vector_mtr / dens,
        "core_control": cb * control_mtr / dens,
        "core_noc": cb * noc_mtr / dens,
        "core_sram": cb * _sram_mm2(a.sram_kb / 1024.0, sram_d, c("scratchpad_overhead")),
        "register_files": cb * _sram_mm2(a.rf_kb / 1024.0, sram_d, c("register_file_overhead")),
        "shared_sram": _sram_mm2(a.shared_sram_mb + a.spare_shared_sram_mb, sram_d,
                                 np.where(a.sram_only, c("bulk_sram_overhead"), c("cache_overhead"))),
        **{k: v * on_compute for k, v in _io_parts(a, tech, dens, dies).items()},
    }
    base = sum(parts.values())
    d2d_io = a.d2d_tb_s * c("d2d_mm2_per_tb_s")
    parts["die_to_die"] = np.where(io, d2d_io, np.where(dies > 1, c("d2d_area_frac") * base, 0.0))
    parts["routing_and_misc"] = c("misc_area_frac") * (base + parts["die_to_die"])
    die = sum(parts[p] for p in AREA_PARTS)
    out = {**parts, "die_mm2": die, "chip_mm2": die * dies}

    # IO dies: the I/O parts of the whole chip, shared SRAM, and the PHYs facing the compute dies.
    count = np.maximum(a.io_dies, 1.0)
    io_dens = a.tio["logic_mtr_per_mm2"]
    io_parts = _io_parts(a, tech, io_dens, count)
    io_parts["shared_sram"] = _sram_mm2(a.io_sram_mb, a.tio["sram_mbit_per_mm2"], c("cache_overhead"))
    io_parts["die_to_die"] = dies / count * d2d_io
    io_base = sum(io_parts.values())
    out["io_die_mm2"] = np.where(io, io_base * (1.0 + c("misc_area_frac")), 0.0)
    out["io_dies_mm2"] = out["io_die_mm2"] * a.io_dies
    out["stacked_sram_die_mm2"] = (_sram_mm2(a.stacked_sram_mb, a.tst["sram_mbit_per_mm2"], c("bulk_sram_overhead"))
                                   * (1.0 + c("misc_area_frac")))
    return out


CORE_PARTS = ("matrix_units", "vector_units", "core_control", "core_noc", "core_sram", "register_files")


def core_mm2(a: DesignArrays, tech: DesignTech, parts: dict[str, np.ndarray]) -> np.ndarray:
    """Area of one built core with its share of routing and whitespace, mm²: the unit a defect
    disables and a spare core replaces (`cost.fab.sellable_yield`)."""
    core = sum(parts[p] for p in CORE_PARTS) / a.built_cores_per_die
    return core * (1.0 + tech.c("misc_area_frac"))


def shoreline_mm(a: DesignArrays, tech: DesignTech, die_mm2: np.ndarray,
                 io_die_mm2: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(die edge the PHYs of one die need, usable die edge of a square die), mm: of a compute die,
    or of an IO die where IO dies carry the PHYs."""
    c = tech.c
    io = a.has_io_dies
    per = np.where(io, np.maximum(a.io_dies, 1.0), a.dies)
    need = (np.ceil(a.hbm_phys / per) * a.th["phy_edge_mm"]
            + (scaleup_lanes(a, tech) + nic_lanes(a, tech)) / per * c("serdes_edge_mm_per_lane")
            + a.pcie_lanes / per * c("pcie_edge_mm_per_lane"))
    holder = die_mm2 if io_die_mm2 is None else np.where(io, io_die_mm2, die_mm2)
    have = 4.0 * np.sqrt(holder) * c("usable_perimeter_frac")
    return need, have
