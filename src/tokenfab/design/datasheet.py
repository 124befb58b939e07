"""Datasheet figures of designs: peaks per precision, memory, links. Exact arithmetic, vectorized.

    peak TFLOPS(p) = cores × matrix units × rows × cols × depth × 2 × clock × multiplier(p)
    memory TB/s    = devices × bits per device × Gb/s per pin / 8
    memory GB      = devices × GB per device
    (SRAM only: the on-chip SRAM's bandwidth and capacity instead)
    scale-up GB/s  = links × GB/s per link (one direction)
"""

from __future__ import annotations

import numpy as np

from tokenfab.design.arrays import MIB, DesignArrays

# ChipSpec field for each matrix precision (fp32 on ChipSpec is the vector peak).
SPEC_FIELDS = {"bf16": "bf16_tflops", "fp16": "fp16_tflops", "tf32": "tf32_tflops", "fp8": "fp8_tflops",
               "int8": "int8_tops", "fp4": "fp4_tflops"}


def macs_per_cycle(a: DesignArrays) -> np.ndarray:
    """bf16 MACs per cycle of the whole chip (enabled cores)."""
    return a.cores * a.units * a.rows * a.cols * a.depth


def peak_tflops(a: DesignArrays, precision: str = "bf16") -> np.ndarray:
    """Dense matrix peak in `precision`, TFLOP/s (0 where the matrix unit lacks the format)."""
    return macs_per_cycle(a) * 2.0 * a.clock_mhz * 1e6 * a.prec[precision] / 1e12


def vector_fp32_tflops(a: DesignArrays) -> np.ndarray:
    """Vector-unit FP32 FMA peak, TFLOP/s."""
    return a.cores * a.lanes * 2.0 * a.clock_mhz * 1e6 / 1e12


def shared_sram_chip_tb_s(a: DesignArrays) -> np.ndarray:
    """Bandwidth of the shared SRAM of all dies to their cores, TB/s (given per die, or the tech
    data's bytes per clock per core)."""
    default = a.cores * a.l2_bytes_per_clk_per_core * a.clock_mhz * 1e6 / 1e12
    return np.where(np.isnan(a.shared_sram_tb_s), default, a.shared_sram_tb_s * a.dies)


def onchip_sram_gb(a: DesignArrays) -> np.ndarray:
    """All enabled on-chip SRAM (shared + per-core scratchpads), GB (MiB × 2^20 / 10^9)."""
    mib = a.dies * (a.shared_sram_mb + a.stacked_sram_mb + a.cores_per_die * a.sram_kb / 1024.0) + a.io_dies * a.io_sram_mb
    return mib * MIB / 1e9


def hbm_tb_s(a: DesignArrays) -> np.ndarray:
    """Peak device-memory bandwidth, TB/s (SRAM only: the shared SRAM's bandwidth)."""
    ext = a.hbm_stacks * a.th["bits_per_device"] * a.hbm_pin_gbps / 8.0 / 1e3
    return np.where(a.sram_only, shared_sram_chip_tb_s(a), ext) if a.sram_only.any() else ext


def hbm_gb(a: DesignArrays) -> np.ndarray:
    """Device-memory capacity, GB (SRAM only: the on-chip SRAM)."""
    ext = a.hbm_stacks * a.hbm_gb_per_stack
    return np.where(a.sram_only, onchip_sram_gb(a), ext) if a.sram_only.any() else ext


def pcie_gb_s(a: DesignArrays, lane_gbps: float) -> np.ndarray:
    """Host PCIe bandwidth per direction, GB/s (128b/130b encoding)."""
    return a.pcie_lanes * lane_gbps * (128.0 / 130.0) / 8.0


def scaleup_gb_s(a: DesignArrays, lane_gbps: float) -> np.ndarray:
    """Scale-up bandwidth per direction, GB/s; chips without links talk over host PCIe."""
    links = a.links * a.gb_s_per_link
    return np.where(links > 0, links, pcie_gb_s(a, lane_gbps))


def datasheet(a: DesignArrays, pcie_lane_gbps: float) -> dict[str, np.ndarray]:
    """ChipSpec-named figures (None-able peaks are 0 where unsupported)."""
    out = {field: peak_tflops(a, p) for p, field in SPEC_FIELDS.items()}
    out["fp32_tflops"] = vector_fp32_tflops(a)
    out["hbm_tb_s"] = hbm_tb_s(a)
    out["hbm_gb"] = hbm_gb(a)
    out["scaleup_gb_s"] = scaleup_gb_s(a, pcie_lane_gbps)
    out["scaleout_gb_s"] = a.nic_gbps / 8.0
    # datasheets quote MiB as "MB" (A100 40 MB = 41,943,040 B); IO-die caches and stacked SRAM count
    out["sram_mb"] = a.dies * (a.shared_sram_mb + a.stacked_sram_mb) + a.io_dies * a.io_sram_mb
    out["cores"] = a.cores
    return out
