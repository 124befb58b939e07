"""US export-control screen of a chip: ECCN 3A090 (advanced computing ICs) and its HBM paragraph.

The rule (Commerce Control List, 15 CFR 774 supp. 1, ECCN 3A090, as written by BIS's interim
final rules of 25 Oct 2023, 88 FR 73458, "Implementation of Additional Export Controls: Certain
Advanced Computing Items; Supercomputer and Semiconductor End Use", and of 5 Dec 2024, 89 FR
96790, which added 3A090.c for high-bandwidth memory):

- 'total processing performance' TPP = 2 × MacTOPS × bit length of the operation, taken at the
  precision that gives the largest value (dense rates: tokenfab's catalog holds no sparse peak).
  A MAC is two operations, so with a datasheet's dense TOPS/TFLOPS at b bits, TPP = TOPS × b.
- 'performance density' PD = TPP / applicable die area (mm²).
- 3A090.a: TPP ≥ 4800, or TPP ≥ 1600 and PD ≥ 5.92.
- 3A090.b: TPP ≥ 2400 and < 4800 with PD ≥ 1.6 and < 5.92, or TPP ≥ 1600 with PD ≥ 3.2 and
  < 5.92. 3A090.a.2 and 3A090.b apply to ICs designed or marketed for data centers; a chip not
  so designed (a consumer card) is caught by TPP ≥ 4800 alone (what this screen applies).
- 3A090.c (Dec 2024): high-bandwidth memory with a 'memory bandwidth density' above 2 GB/s per
  mm² of stack (package) area; BIS notes that every HBM stack in production exceeds it. A chip
  carrying such stacks is flagged `hbm_3a090c` (the stacks themselves are controlled when sold
  separately; a packaged 3A090.a/.b IC is controlled as such).

Computers and servers containing 3A090 ICs fall under 4A090. This is an engineering screen of
datasheet numbers, not a legal classification.

Sources read for the thresholds: eccnfinder.com/eccn/3a090 and lenzo.ai/eccn/3a090 (CCL text of
3A090.a), chipclaims.com (3A090.a/.b structure and the 3A090.c memory bandwidth density > 2 GB/s/mm²
technical note), akingump.com (Dec 2024 rule: "all HBM stacks currently in production" exceed it),
govinfo.gov FR Doc 2025-02655 (3A090 corrections, Feb 2025).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

TPP_A = 4800.0
"""3A090.a.1: TPP at or above this is controlled whatever its density."""
TPP_A2 = 1600.0
PD_A2 = 5.92
"""3A090.a.2: TPP ≥ 1600 and performance density ≥ 5.92."""
TPP_B1 = 2400.0
PD_B1 = 1.6
"""3A090.b.1: 2400 ≤ TPP < 4800 and 1.6 ≤ PD < 5.92."""
PD_B2 = 3.2
"""3A090.b.2: TPP ≥ 1600 and 3.2 ≤ PD < 5.92."""
HBM_GB_S_PER_MM2 = 2.0
"""3A090.c: memory bandwidth density above this (GB/s per mm² of stack) is controlled HBM."""

RULE_SOURCES = {
    "3A090.a/.b": "BIS IFR 25 Oct 2023, 88 FR 73458 (ECCN 3A090; CCL text as on eccnfinder.com/eccn/3a090)",
    "3A090.c": "BIS IFR 5 Dec 2024, 89 FR 96790 (HBM, memory bandwidth density > 2 GB/s/mm2; "
               "chipclaims.com, akingump.com summaries)",
}

_BITS = {"fp8_tflops": 8, "int8_tops": 8, "fp4_tflops": 4, "bf16_tflops": 16, "fp16_tflops": 16,
         "tf32_tflops": 32, "fp32_tflops": 32}
"""Bit length of each datasheet rate (TF32 operands are stored and counted as 32-bit words)."""

_HBM = (("hbm4", "hbm4"), ("hbm3e", "hbm3e"), ("hbm3", "hbm3"), ("hbm2e", "hbm2e"), ("hbm2", "hbm2e"),
        ("hibl", "hbm2e"), ("hbm", "hbm2e"))
"""Memory-type text → memory technology whose stack footprint and capacity the screen uses."""


class ExportScreen(BaseModel):
    """A chip's numbers against ECCN 3A090."""

    model_config = ConfigDict(frozen=True)

    tpp: float | None
    """'total processing performance' (max over precisions of 2 × MacTOPS × bits)."""
    tpp_precision: str | None
    """The rate that gives it (e.g. `fp8_tflops`)."""
    performance_density: float | None
    """TPP per mm² of die (None when the die area is not known)."""
    datacenter: bool
    """Designed or marketed for data centers (False for a consumer card)."""
    classification: str
    """`3A090.a`, `3A090.b`, `not 3A090.a/.b`, or `unknown` (no rates)."""
    reason: str
    """The threshold that decides it, with the numbers."""
    memory_bandwidth_density_gb_s_mm2: float | None = None
    """Bandwidth of one memory stack over its footprint (HBM only), GB/s per mm²."""
    hbm_3a090c: bool = False
    """Carries HBM above the 3A090.c density (controlled as stacks since Dec 2024)."""
    rule: str = RULE_SOURCES["3A090.a/.b"]


def tpp_of(chip: Any) -> tuple[float | None, str | None]:
    """(TPP, the rate that gives it): max over the chip's dense rates of TOPS × bit length."""
    best: tuple[float | None, str | None] = (None, None)
    for field, bits in _BITS.items():
        v = getattr(chip, field, None)
        if v:
            tpp = float(v) * bits  # 2 × (TOPS / 2 MACs) × bits
            if best[0] is None or tpp > best[0]:
                best = (tpp, field)
    return best


def classify(tpp: float | None, pd: float | None, datacenter: bool = True) -> tuple[str, str]:
    """(classification, reason) from TPP and performance density, as ECCN 3A090 reads."""
    if tpp is None:
        return "unknown", "no compute rate"
    if tpp >= TPP_A:
        return "3A090.a", f"TPP {tpp:,.0f} ≥ {TPP_A:,.0f} (3A090.a.1)"
    if not datacenter:
        return "not 3A090.a/.b", f"TPP {tpp:,.0f} < {TPP_A:,.0f}; not a data-center part (a.2 and .b do not apply)"
    if pd is None:
        if tpp >= TPP_A2:
            return "unknown", f"TPP {tpp:,.0f} ≥ {TPP_A2:,.0f} but die area unknown (density decides)"
        return "not 3A090.a/.b", f"TPP {tpp:,.0f} < {TPP_A2:,.0f}"
    if tpp >= TPP_A2 and pd >= PD_A2:
        return "3A090.a", f"TPP {tpp:,.0f} ≥ {TPP_A2:,.0f} and density {pd:.2f} ≥ {PD_A2} (3A090.a.2)"
    if TPP_B1 <= tpp < TPP_A and PD_B1 <= pd < PD_A2:
        return "3A090.b", f"TPP {tpp:,.0f} in [{TPP_B1:,.0f}, {TPP_A:,.0f}) and density {pd:.2f} in [{PD_B1}, {PD_A2}) (3A090.b.1)"
    if tpp >= TPP_A2 and PD_B2 <= pd < PD_A2:
        return "3A090.b", f"TPP {tpp:,.0f} ≥ {TPP_A2:,.0f} and density {pd:.2f} in [{PD_B2}, {PD_A2}) (3A090.b.2)"
    return "not 3A090.a/.b", f"TPP {tpp:,.0f} < {TPP_A:,.0f} and density {pd:.2f}: below 3A090.a and .b"


def _stacks(memory_type: str) -> int | None:
    m = re.search(r"(\d+)\s*stacks?", memory_type.lower())
    return int(m.group(1)) if m else None


def memory_bandwidth_density(chip: Any, memory_table: dict | None = None) -> float | None:
    """GB/s per mm² of one HBM stack: chip bandwidth / stacks / stack footprint; None for non-HBM."""
    text = (getattr(chip, "memory_type", "") or "").lower()
    tech = next((t for key, t in _HBM if key in text), None)
    if tech is None:
        return None
    if memory_table is None:
        from tokenfab.cost.data import shipped_cost_data

        memory_table = shipped_cost_data().fab.memory
    mem = memory_table.get(tech)
    if mem is None or not mem.stack_footprint_mm2 or not mem.gb_per_stack:
        return None
    stacks = _stacks(text) or max(1, round(chip.hbm_gb / mem.gb_per_stack))
    return chip.hbm_tb_s * 1000.0 / stacks / mem.stack_footprint_mm2


def screen(chip: Any) -> ExportScreen:
    """The 3A090 screen of a ChipSpec (catalog chip or a design's derived datasheet)."""
    tpp, field = tpp_of(chip)
    area = getattr(chip, "die_area_mm2", None)
    pd = tpp / area if tpp is not None and area else None
    datacenter = "consumer" not in (getattr(chip, "form_factor", "") or "").lower()
    cls, reason = classify(tpp, pd, datacenter)
    mbd = memory_bandwidth_density(chip)
    return ExportScreen(tpp=tpp, tpp_precision=field, performance_density=pd, datacenter=datacenter,
                        classification=cls, reason=reason, memory_bandwidth_density_gb_s_mm2=mbd,
                        hbm_3a090c=bool(mbd is not None and mbd > HBM_GB_S_PER_MM2),
                        rule=RULE_SOURCES["3A090.a/.b"] + ("; " + RULE_SOURCES["3A090.c"] if mbd else ""))


def export_control(chip: Any) -> dict:
    """The JSON block `export_control`: tpp, performance_density, classification and the rest."""
    return screen(chip).model_dump()
