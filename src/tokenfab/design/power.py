"""Power of designs: energy per operation × rate, per byte of traffic, plus leakage.

Two loads bound what a chip draws:

- `gemm`: a large GEMM with every matrix unit at its peak rate in one precision. Matrix energy is
  pJ/FLOP (node, precision) × rate; operands enter the arrays from core SRAM at the rate the array
  shape implies ((rows + cols) elements per rows × cols MACs), and a cube with a separate accumulator
  buffer (Ascend L0C) reads and writes its FP32 partial sums there (`accumulator_bytes_per_flop`); shared SRAM and HBM traffic per
  FLOP come from the tiled model's blocking of an 8192³ GEMM;
- `stream`: device memory at full bandwidth (decode), compute at 64 FLOP per byte (capped at
  the peak, which then caps the traffic: SRAM-only designs).

Both add link SerDes at `link_activity_at_tdp`, HBM background power, clock-tree/control power
(SIMT: per core and GHz of issue; dataflow: a fraction of the datapath power) and leakage. The TDP check uses the
larger of the bf16 GEMM and the stream load; a design above its TDP is infeasible, and so is one
whose compute dies carry more than the cooling's W/mm² (`max_power_density`; DRAM device power is
dissipated in the stacks/packages and not counted). Other
precisions may exceed the TDP at full clock: they then run power-capped at
`(budget / need) ** (1 / throttle_exponent)` of their peak (`sustained_frac`).
"""

from __future__ import annotations

import numpy as np

from tokenfab.design.arrays import DesignArrays
from tokenfab.design.datasheet import hbm_tb_s, peak_tflops, vector_fp32_tflops
from tokenfab.design.tech import DesignTech

POWER_PARTS = ("matrix_units", "vector_units", "core_sram", "shared_sram", "hbm", "links_and_io",
               "clock_and_control", "leakage", "io_dies")
"""`io_dies`: die-to-die traffic to IO dies (memory bytes cross once) plus the leakage of IO and
stacked SRAM dies; 0 for a design without them."""
_BYTES = {"fp64": 8.0, "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0,
          "fp4": 0.5, "int4": 0.5}
STREAM_FLOP_PER_BYTE = 64.0  # decode at batch 64 on bf16 weights


def core_sram_bytes_per_flop(a: DesignArrays, b: float) -> np.ndarray:
    """Operand bytes read per FLOP from core SRAM/registers into the matrix units.

    Output-stationary: each cycle a rows×cols×depth unit takes rows·depth + cols·depth inputs.
    Weight-stationary: rows inputs in and cols fp32 partial sums out (weights amortized).
    """
    flops = 2.0 * a.rows * a.cols
    os = (a.rows + a.cols) * b / flops
    ws = (a.rows * b + a.cols * 4.0) / flops
    return np.where(a.weight_stationary, ws, os)


def accumulator_bytes_per_flop(a: DesignArrays) -> np.ndarray:
    """FP32 accumulator bytes read and written per FLOP in a separate accumulator buffer.

    A dataflow output-stationary cube whose partial sums live in an SRAM buffer beside it
    (`core.accumulator_buffer`, the buffer being `register_file_kb`: Ascend's L0C, "the output of Cube
    instructions, which is also part of the input when accumulating", CANN Ascend C 'Storage Units')
    reads and writes every output once per clock, after reducing `depth` products: 2 x 4 B per
    rows x cols x depth MACs = 4 / depth B/FLOP. Output-stationary arrays otherwise hold their
    accumulators in the PEs; GPUs keep them in the register file (inside the calibrated SIMT issue
    power); weight-stationary arrays pass partial sums down the array (`core_sram_bytes_per_flop`)."""
    buffered = a.acc_buffer if len(a.acc_buffer) == len(a) else np.zeros(len(a), dtype=bool)
    return np.where(buffered, 4.0 / np.maximum(a.depth, 1.0), 0.0)


def _shared_pj_per_byte(a: DesignArrays, tech: DesignTech) -> np.ndarray:
    """Energy per byte of shared-SRAM traffic at N5: across the on-die network, or, for SRAM-only
    designs, from SRAM banks beside the functional units (scratchpad energy)."""
    return np.where(a.sram_only, tech.c("core_sram_pj_per_byte"), tech.c("shared_sram_pj_per_byte"))


def _fixed_w(a: DesignArrays, tech: DesignTech, chip_mm2: np.ndarray, other_leak_w=0.0) -> dict[str, np.ndarray]:
    """Power that does not scale with the clock: leakage, HBM background, SerDes and PCIe."""
    c = tech.c
    act = c("link_activity_at_tdp")
    links = a.links * a.gb_s_per_link * 2.0 * 8e9 * c("serdes_pj_per_bit") * 1e-12
    nic = np.where(a.nic_integrated, a.nic_gbps * 2.0 * 1e9 * c("serdes_pj_per_bit") * 1e-12, 0.0)
    pcie = a.pcie_lanes * c("pcie_lane_gbps") * 2.0 * 1e9 * c("pcie_pj_per_bit") * 1e-12
    return {"links_and_io": act * (links + nic + pcie),
            "hbm_background": a.hbm_phys * a.th["background_w_per_device"],
            "leakage": chip_mm2 * a.tn["leakage_w_per_mm2"], "other_leakage": np.asarray(other_leak_w)}


def other_dies_leakage_w(a: DesignArrays, area: dict) -> np.ndarray:
    """Leakage of IO dies and stacked SRAM dies, W (area × their node's W/mm²)."""
    return (area["io_dies_mm2"] * a.tio["leakage_w_per_mm2"]
            + a.dies * area["stacked_sram_die_mm2"] * a.tst["leakage_w_per_mm2"])


def _d2d_w(a: DesignArrays, tech: DesignTech, bytes_s) -> np.ndarray:
    """Die-to-die power of memory traffic crossing from IO dies to compute dies, W."""
    return np.where(a.has_io_dies, bytes_s * 8.0 * tech.c("d2d_pj_per_bit") * 1e-12, 0.0)


def gemm_power(a: DesignArrays, tech: DesignTech, chip_mm2, precision: str, shared_bpf, hbm_bpf,
               other_leak_w=0.0) -> dict:
    """Watts by part with every matrix unit at its `precision` peak; `shared_bpf`/`hbm_bpf` are the
    bf16 reference GEMM's shared-SRAM and HBM bytes per FLOP (scaled by the element size)."""
    c = tech.c
    scale = a.tn["energy_scale"]
    b = _BYTES[precision]
    rate = peak_tflops(a, precision) * 1e12
    matrix = rate * c("bf16_pj_per_flop") * tech.energy_rel[precision].value * scale * 1e-12
    vector = vector_fp32_tflops(a) * 1e12 * c("vector_duty_in_gemm") * c("vector_pj_per_flop") * scale * 1e-12
    core_sram = (rate * (core_sram_bytes_per_flop(a, b) + accumulator_bytes_per_flop(a))
                 * c("core_sram_pj_per_byte") * scale * 1e-12)
    shared = rate * shared_bpf * (b / 2.0) * _shared_pj_per_byte(a, tech) * scale * 1e-12
    fixed = _fixed_w(a, tech, chip_mm2, other_leak_w)
    mem_bytes_s = rate * hbm_bpf * (b / 2.0)
    hbm = mem_bytes_s * 8.0 * a.th["pj_per_bit"] * 1e-12 + fixed["hbm_background"]
    return _assemble(a, tech, matrix, vector, core_sram, shared, hbm, fixed, 1.0, _d2d_w(a, tech, mem_bytes_s))


def stream_power(a: DesignArrays, tech: DesignTech, chip_mm2, other_leak_w=0.0) -> dict:
    """Watts by part with HBM streaming at full bandwidth (memory-bound decode)."""
    c = tech.c
    scale = a.tn["energy_scale"]
    # Memory at full bandwidth unless the compute saturates first (SRAM-only designs): at 64 FLOP
    # per byte the chip moves no more than peak / 64 bytes per second.
    peak = peak_tflops(a, "bf16") * 1e12
    bytes_s = np.minimum(hbm_tb_s(a) * 1e12, peak / STREAM_FLOP_PER_BYTE)
    rate = np.minimum(bytes_s * STREAM_FLOP_PER_BYTE, peak)
    matrix = rate * c("bf16_pj_per_flop") * scale * 1e-12
    vector = vector_fp32_tflops(a) * 1e12 * c("vector_duty_in_gemm") * c("vector_pj_per_flop") * scale * 1e-12
    core_sram = (rate * (core_sram_bytes_per_flop(a, 2.0) + accumulator_bytes_per_flop(a))
                 * c("core_sram_pj_per_byte") * scale * 1e-12)
    # Streamed data passes through on-chip SRAM; SRAM-only designs stream from SRAM banks beside the
    # functional units (scratchpad energy, no on-die network).
    shared = bytes_s * _shared_pj_per_byte(a, tech) * scale * 1e-12
    fixed = _fixed_w(a, tech, chip_mm2, other_leak_w)
    hbm = bytes_s * 8.0 * a.th["pj_per_bit"] * 1e-12 + fixed["hbm_background"]
    activity = rate / np.maximum(peak_tflops(a, "bf16") * 1e12, 1e-9)
    return _assemble(a, tech, matrix, vector, core_sram, shared, hbm, fixed, activity, _d2d_w(a, tech, bytes_s))


def _assemble(a, tech, matrix, vector, core_sram, shared, hbm, fixed, activity=1.0, d2d=0.0) -> dict:
    # SIMT: issue/scheduling power per issue slot and GHz (times the load's matrix activity); dataflow
    # designs: a fraction of the datapath they sequence.
    simt = (tech.c("simt_issue_w_per_slot_ghz") * a.issue * a.cores * a.clock_mhz / 1e3 * a.tn["energy_scale"]
            * np.asarray(activity))
    dataflow = tech.c("clock_control_frac_dataflow") * (matrix + vector + core_sram + shared)
    control = np.where(a.simt, simt, dataflow)
    parts = {"matrix_units": matrix, "vector_units": vector, "core_sram": core_sram, "shared_sram": shared,
             "hbm": hbm, "links_and_io": fixed["links_and_io"], "clock_and_control": control,
             "leakage": fixed["leakage"], "io_dies": d2d + fixed["other_leakage"]}
    total = sum(parts[p] for p in POWER_PARTS)
    nonscaling = fixed["links_and_io"] + fixed["hbm_background"] + fixed["leakage"] + fixed["other_leakage"]
    return {**parts, "total_w": total, "nonscaling_w": nonscaling}


def max_power_density(a: DesignArrays, tech: DesignTech) -> np.ndarray:
    """Power-density limit of the compute dies, W/mm², by cooling (design_tech.yaml)."""
    liquid = a.liquid_cooled if len(a.liquid_cooled) == len(a) else np.ones(len(a), dtype=bool)
    return np.where(liquid, tech.c("max_w_per_mm2_liquid"), tech.c("max_w_per_mm2_air"))


MIN_SUSTAINED = 0.01  # floor: a chip whose leakage and I/O alone exceed its TDP still gets finite times


def sustained_fraction(power: dict, tdp_w, exponent: float) -> np.ndarray:
    """Fraction of a load's peak rate that fits the TDP: 1 below it, (budget/need)^(1/exponent) above
    (never below MIN_SUSTAINED; such a design is infeasible anyway)."""
    dynamic = np.maximum(power["total_w"] - power["nonscaling_w"], 1e-9)
    budget = np.maximum(np.asarray(tdp_w) - power["nonscaling_w"], 0.0)
    return np.clip(np.clip(budget / dynamic, 0.0, 1.0) ** (1.0 / exponent), MIN_SUSTAINED, 1.0)
