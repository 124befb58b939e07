"""Build a custom chip or buy a merchant one: NRE, fleet cost for equal tokens, break-even, tornado.

Fleets are sized in vendor-chip equivalents N (the number of vendor chips that would serve the
load). With throughputs T_v and T_c per chip, the custom fleet that delivers the same tokens is
N_c = N · T_v / T_c (continuous; round up for a purchase order). With L_v and L_c the lifetime
cost of one chip (price, system share, spares, capital, power, hosting, ops over its life):

    buy    = N · L_v
    build  = NRE + N · (T_v / T_c) · L_c
    N*     = NRE / (L_v − (T_v / T_c) · L_c)        (break-even; ∞ when the bracket is ≤ 0)

Pure functions of numbers: the throughputs come from the engine, the unit cost from `fab`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tokenfab.cost.system import SystemNeeds, scale_system
from tokenfab.cost.tco import lifetime_cost_usd
from tokenfab.specs.base import SpecError
from tokenfab.specs.economics import Economics, NreSpec, SensitivityRange

DEFAULT_SWING = 0.25
"""Relative range (±) for tornado inputs without a sourced range."""


class NreBreakdown(BaseModel):
    """Non-recurring cost of a chip programme by part (USD) and its time to market (years)."""

    model_config = ConfigDict(frozen=True)

    team_usd: float
    masks_usd: float
    ip_usd: float
    eda_usd: float
    software_usd: float
    tapeout_bringup_usd: float
    total_usd: float
    time_to_market_years: float

    def parts(self) -> dict[str, float]:
        """Additive parts of the total, in display order."""
        return {"design team": self.team_usd, "mask sets": self.masks_usd, "IP licences": self.ip_usd,
                "EDA": self.eda_usd, "software stack": self.software_usd,
                "tape-out & bring-up": self.tapeout_bringup_usd}


def nre_cost(nre: NreSpec, mask_set_usd: float) -> NreBreakdown:
    """NRE = team × loaded cost × years + mask sets × mask price + IP + EDA × years + software + bring-up."""
    team = nre.engineers * nre.loaded_usd_per_engineer_year * nre.design_years
    masks = nre.mask_sets * mask_set_usd
    eda = nre.eda_usd_per_year * nre.design_years
    total = team + masks + nre.ip_licences_usd + eda + nre.software_stack_usd + nre.tapeout_bringup_usd
    return NreBreakdown(team_usd=team, masks_usd=masks, ip_usd=nre.ip_licences_usd, eda_usd=eda,
                        software_usd=nre.software_stack_usd, tapeout_bringup_usd=nre.tapeout_bringup_usd,
                        total_usd=total, time_to_market_years=nre.design_years + nre.fab_latency_years)


class BuildVsBuyInputs(BaseModel):
    """The numbers a build-vs-buy decision rests on."""

    model_config = ConfigDict(frozen=True)

    nre_usd: float = Field(ge=0)
    """Design cost of the custom chip, USD."""
    custom_unit_usd: float = Field(ge=0)
    """Cost of one custom package as bought (unit cost plus any markup), USD."""
    vendor_price_usd: float = Field(ge=0)
    """Price of one vendor chip, USD (ignored when `economics` rents the vendor chip)."""
    custom_tok_s_per_chip: float = Field(gt=0)
    """Custom chip throughput on the workload, tokens/s per chip."""
    vendor_tok_s_per_chip: float = Field(gt=0)
    """Vendor chip throughput on the same workload, tokens/s per chip."""
    custom_tdp_w: float = Field(gt=0)
    """Custom chip power limit, W."""
    vendor_tdp_w: float = Field(gt=0)
    """Vendor chip power limit, W."""
    economics: Economics
    """Owning and running costs (a rental price in it applies to the vendor chip only)."""
    custom_system: SystemNeeds | None = None
    """What the custom chip asks of its system (bandwidths, scale-up domain) for its system share;
    None: one 400G NIC and no scale-up fabric. Its TDP is `custom_tdp_w`."""
    vendor_system: SystemNeeds | None = None
    """The same for the vendor chip (TDP `vendor_tdp_w`)."""
    system_cost_scale: float = Field(default=1.0, ge=0)
    """Multiplier on both chips' system share (1: as priced; varied by the tornado)."""

    @property
    def chips_ratio(self) -> float:
        """Custom chips per vendor chip for equal tokens: T_v / T_c."""
        return self.vendor_tok_s_per_chip / self.custom_tok_s_per_chip

    def lifetimes_usd(self) -> tuple[float, float]:
        """(custom, vendor) lifetime cost of one chip, USD."""
        econ = scale_system(self.economics, self.system_cost_scale)
        custom = lifetime_cost_usd(self.custom_unit_usd, self.custom_tdp_w, econ, needs=self.custom_system)
        vendor = lifetime_cost_usd(self.vendor_price_usd, self.vendor_tdp_w, econ, owned=False,
                                   needs=self.vendor_system)
        return custom, vendor

    def varied(self, name: str, value: float) -> "BuildVsBuyInputs":
        """A copy with one input (own field or an `Economics` field) set to `value`, validated."""
        if name in type(self).model_fields and name != "economics":
            data = self.model_dump()
            data[name] = value
            return type(self).model_validate(data)
        if name in Economics.model_fields:
            return self.model_copy(update={"economics": self.economics.with_overrides({name: value}, "sensitivity")})
        raise SpecError(f"unknown build-vs-buy input {name!r}")

    def value_of(self, name: str) -> float:
        """Current value of an input (own field or `Economics` field)."""
        return getattr(self, name) if name in type(self).model_fields else getattr(self.economics, name)


def fleet_costs_usd(fleet: Any, inputs: BuildVsBuyInputs) -> tuple[Any, Any]:
    """(build, buy) total cost of fleets of `fleet` vendor-chip equivalents (scalar or array), USD."""
    n = np.asarray(fleet, dtype=float)
    custom, vendor = inputs.lifetimes_usd()
    build = inputs.nre_usd + n * inputs.chips_ratio * custom
    buy = n * vendor
    if build.ndim == 0:
        return float(build), float(buy)
    return build, buy


def breakeven_fleet(inputs: BuildVsBuyInputs) -> float:
    """Fleet size (vendor-chip equivalents) at which building costs as much as buying; ∞ if never."""
    custom, vendor = inputs.lifetimes_usd()
    saving_per_chip = vendor - inputs.chips_ratio * custom
    if saving_per_chip <= 0:
        return math.inf
    return inputs.nre_usd / saving_per_chip


def savings_usd(fleet: float, inputs: BuildVsBuyInputs) -> float:
    """Buy minus build at `fleet` vendor-chip equivalents, USD (positive: building saves)."""
    build, buy = fleet_costs_usd(fleet, inputs)
    return buy - build


class TornadoBar(BaseModel):
    """Break-even fleet when one input moves to the low and the high end of its range."""

    model_config = ConfigDict(frozen=True)

    input: str
    base_value: float
    low_value: float
    high_value: float
    breakeven_at_low: float
    breakeven_at_high: float
    range_source: str

    @property
    def swing(self) -> float:
        """Spread of the break-even across the range (∞ when either end never breaks even)."""
        return abs(self.breakeven_at_high - self.breakeven_at_low)


TORNADO_INPUTS = (
    "nre_usd", "custom_unit_usd", "vendor_price_usd", "custom_tok_s_per_chip", "vendor_tok_s_per_chip",
    "custom_tdp_w", "depreciation_years", "cost_of_capital", "system_cost_scale",
    "electricity_usd_per_kwh", "pue", "hosting_usd_per_kw_month",
)


def sensitivity_range(name: str, base: float, ranges: dict[str, SensitivityRange]) -> tuple[float, float, str]:
    """(low, high, source): the sourced range when it contains `base`, else base × (1 ± 25 %)."""
    r = ranges.get(name)
    if r is not None and r.low <= base <= r.high:
        return r.low, r.high, r.source
    return base * (1 - DEFAULT_SWING), base * (1 + DEFAULT_SWING), f"±{DEFAULT_SWING:.0%} (no sourced range)"


def tornado(inputs: BuildVsBuyInputs, ranges: dict[str, SensitivityRange] | None = None,
            names: tuple[str, ...] = TORNADO_INPUTS) -> list[TornadoBar]:
    """Break-even sensitivity to each input over its range, widest swing first.

    Inputs that do not apply (the vendor price when the vendor chip is rented) and ends that
    break a constraint (a PUE below 1) are left out or clipped to the valid side.
    """
    ranges = ranges or {}
    names = tuple(n for n in names if not (n == "vendor_price_usd" and inputs.economics.rental_usd_per_chip_hour))
    if inputs.economics.rental_usd_per_chip_hour and "rental_usd_per_chip_hour" not in names:
        names = names + ("rental_usd_per_chip_hour",)
    bars = []
    for name in names:
        base = float(inputs.value_of(name))
        low, high, source = sensitivity_range(name, base, ranges)
        ends = []
        for v in (low, high):
            try:
                ends.append((v, breakeven_fleet(inputs.varied(name, v))))
            except (SpecError, ValueError):  # outside the input's constraints: hold at base
                ends.append((base, breakeven_fleet(inputs)))
        bars.append(TornadoBar(input=name, base_value=base, low_value=ends[0][0], high_value=ends[1][0],
                               breakeven_at_low=ends[0][1], breakeven_at_high=ends[1][1], range_source=source))
    return sorted(bars, key=lambda b: (-b.swing if math.isfinite(b.swing) else -math.inf, b.input))
