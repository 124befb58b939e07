"""A build-vs-buy study from two chips and the engine's estimates for each.

Glue between the engine's `Estimate` (read by attribute: `output_tok_s_per_chip`,
`input_tok_s_per_chip`, `prefill_time_share`, ...) and the pure cost functions; it does no I/O.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from tokenfab.cost.build_vs_buy import (
    BuildVsBuyInputs, NreBreakdown, TornadoBar, breakeven_fleet, fleet_costs_usd, nre_cost, tornado,
)
from tokenfab.cost.fab import PackageCost, package_cost, package_spec_for_chip, resolve_node
from tokenfab.cost.system import SystemNeeds
from tokenfab.cost.tco import (
    HOURS_PER_YEAR, ChipHourCost, TokenCost, chip_hour_cost, owned_chip_hour_cost, usd_per_mtok,
)
from tokenfab.specs.base import SpecError
from tokenfab.specs.economics import CostData, Economics, PackageSpec

_ESTIMATE_FIELDS = ("num_chips", "tp", "pp", "ep", "dp", "batch", "weight_precision", "kv_precision",
                    "ttft_ms", "tpot_ms", "output_tok_s_per_chip", "input_tok_s_per_chip",
                    "total_tok_s_per_chip", "prefill_time_share", "spec_confidence")


class BuildVsBuyResult(BaseModel):
    """Everything `tokenfab build-vs-buy` reports; money in USD."""

    model_config = ConfigDict(frozen=True)

    model: str
    custom_chip: str
    vendor_chip: str
    vendor_basis: str
    """`owned` (bought at its price) or `rental`."""
    custom_estimate: dict[str, Any]
    vendor_estimate: dict[str, Any]
    custom_package: PackageCost
    nre: NreBreakdown
    inputs: BuildVsBuyInputs
    custom_chip_hour: ChipHourCost
    vendor_chip_hour: ChipHourCost
    custom_tokens: TokenCost
    """$/Mtok on custom chips without NRE."""
    custom_tokens_with_nre: TokenCost
    """$/Mtok on custom chips with NRE spread over the fleet at `fleet_vendor_equiv`."""
    vendor_tokens: TokenCost
    custom_lifetime_usd_per_chip: float
    vendor_lifetime_usd_per_chip: float
    chips_ratio: float
    """Custom chips per vendor chip for equal tokens."""
    breakeven_fleet: float
    """Break-even fleet in vendor-chip equivalents (∞: never)."""
    fleet_vendor_equiv: float
    custom_chips_at_fleet: int
    build_total_usd: float
    buy_total_usd: float
    savings_usd: float
    curve: dict[str, list[float]]
    """`fleet` (vendor-chip equivalents), `build_usd`, `buy_usd`."""
    tornado: list[TornadoBar]


def estimate_summary(est: Any) -> dict[str, Any]:
    """The fields of an engine estimate the report shows."""
    return {k: getattr(est, k) for k in _ESTIMATE_FIELDS}


def compare_build_vs_buy(custom_chip, vendor_chip, custom_est: Any, vendor_est: Any, data: CostData,
                         econ: Economics, fleet_vendor_equiv: float,
                         package: PackageSpec | None = None, model: str = "") -> BuildVsBuyResult:
    """Cost of building `custom_chip` against buying (or renting) `vendor_chip` for the same tokens.

    The custom chip's unit cost comes from `fab` (its die area, node and memory, or `package`),
    marked up by `fab.custom_markup_frac`; the vendor chip's from its catalog price.
    """
    if fleet_vendor_equiv <= 0:
        raise SpecError(f"fleet must be > 0 vendor chips, got {fleet_vendor_equiv}")
    fab = data.fab
    pkg_spec = package or package_spec_for_chip(custom_chip, fab)
    pkg = package_cost(pkg_spec, fab)
    node = resolve_node(pkg_spec.node, fab)
    nre = nre_cost(data.nre, node.mask_set_usd)
    custom_unit = pkg.unit_cost_usd * (1.0 + fab.custom_markup_frac)
    rented = econ.rental_usd_per_chip_hour is not None
    if vendor_chip.price_usd is None and not rented:
        raise SpecError(f"chip {vendor_chip.id}: price_usd is missing; give a rental price (--rental-usd-per-hour)")
    inputs = BuildVsBuyInputs(
        nre_usd=nre.total_usd, custom_unit_usd=custom_unit, vendor_price_usd=vendor_chip.price_usd or 0.0,
        custom_tok_s_per_chip=_throughput(custom_est, custom_chip.id),
        vendor_tok_s_per_chip=_throughput(vendor_est, vendor_chip.id),
        custom_tdp_w=custom_chip.tdp_w, vendor_tdp_w=vendor_chip.tdp_w, economics=econ,
        custom_system=SystemNeeds.of_chip(custom_chip), vendor_system=SystemNeeds.of_chip(vendor_chip),
    )
    custom_life, vendor_life = inputs.lifetimes_usd()
    n_star = breakeven_fleet(inputs)
    build, buy = fleet_costs_usd(fleet_vendor_equiv, inputs)
    custom_chips = fleet_vendor_equiv * inputs.chips_ratio

    custom_hour = owned_chip_hour_cost(custom_unit, custom_chip.tdp_w, econ, inputs.custom_system)
    vendor_hour = chip_hour_cost(vendor_chip, econ)
    nre_per_chip_hour = nre.total_usd / (custom_chips * econ.depreciation_years * HOURS_PER_YEAR)
    top = max(fleet_vendor_equiv, n_star if math.isfinite(n_star) else 0.0) * 2.0
    fleet_axis = np.linspace(0.0, top, 101)
    build_curve, buy_curve = fleet_costs_usd(fleet_axis, inputs)
    return BuildVsBuyResult(
        model=model, custom_chip=custom_chip.id, vendor_chip=vendor_chip.id,
        vendor_basis="rental" if rented else "owned",
        custom_estimate=estimate_summary(custom_est), vendor_estimate=estimate_summary(vendor_est),
        custom_package=pkg, nre=nre, inputs=inputs, custom_chip_hour=custom_hour, vendor_chip_hour=vendor_hour,
        custom_tokens=_tokens(custom_hour.total_usd_per_hour, custom_est),
        custom_tokens_with_nre=_tokens(custom_hour.total_usd_per_hour + nre_per_chip_hour, custom_est),
        vendor_tokens=_tokens(vendor_hour.total_usd_per_hour, vendor_est),
        custom_lifetime_usd_per_chip=custom_life, vendor_lifetime_usd_per_chip=vendor_life,
        chips_ratio=inputs.chips_ratio, breakeven_fleet=n_star, fleet_vendor_equiv=fleet_vendor_equiv,
        custom_chips_at_fleet=math.ceil(custom_chips - 1e-9), build_total_usd=build, buy_total_usd=buy,
        savings_usd=buy - build,
        curve={"fleet": fleet_axis.tolist(), "build_usd": build_curve.tolist(), "buy_usd": buy_curve.tolist()},
        tornado=tornado(inputs, data.sensitivity),
    )


def _throughput(est: Any, chip_id: str) -> float:
    value = est.output_tok_s_per_chip
    if not value > 0:
        raise SpecError(f"engine estimate for {chip_id} has no positive output_tok_s_per_chip")
    return float(value)


def _tokens(chip_hour_usd: float, est: Any) -> TokenCost:
    """$/Mtok from an engine estimate; no hit discount, as its prefill time already skips cached tokens."""
    return usd_per_mtok(chip_hour_usd, float(est.input_tok_s_per_chip), float(est.output_tok_s_per_chip),
                        float(est.prefill_time_share))
