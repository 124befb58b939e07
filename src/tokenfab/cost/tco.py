"""What an accelerator costs per hour, and what a token costs.

Owned chip-hour (all USD):

    capex      = (chip price + system share) × (1 + spares)
    capex / h  = capex × CRF(cost of capital, life) / 8760
    power / h  = TDP × server multiplier × average load × PUE × electricity price
    hosting / h= TDP × server multiplier (provisioned kW) × colocation $/kW-month × 12 / 8760
    ops / h    = ops per chip-year / 8760

CRF (capital recovery factor) = r(1+r)^n / ((1+r)^n − 1): the level annual payment that repays
one dollar over n years at rate r (1/n when r = 0). A rental price, when given, replaces all of it.
The system share (host, power delivery, cooling, networks) comes from `cost.system`: modeled from
what the chip needs, or the economics' flat `server_and_network_usd_per_chip` when set.

Token prices from a chip-hour cost H: see `usd_per_mtok`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from tokenfab.cost.system import SystemCost, SystemNeeds, system_cost
from tokenfab.specs.base import SpecError
from tokenfab.specs.economics import Economics

HOURS_PER_YEAR = 8760.0


def capital_recovery_factor(rate: Any, years: Any) -> Any:
    """Annual payment per dollar borrowed at `rate` for `years`: r(1+r)^n/((1+r)^n − 1); 1/n at r = 0."""
    r = np.asarray(rate, dtype=float)
    n = np.asarray(years, dtype=float)
    positive = r > 1e-12  # below this, 1/n is exact to double precision (and denormal r would divide by 0)
    safe = np.where(positive, r, 1.0)
    log_growth = n * np.log1p(safe)
    crf = np.where(positive, safe * np.exp(log_growth) / np.expm1(log_growth), 1.0 / n)
    return float(crf) if crf.ndim == 0 else crf


class ChipHourCost(BaseModel):
    """Cost of one chip for one hour of its life, by part (USD, USD/h, kW)."""

    model_config = ConfigDict(frozen=True)

    basis: str
    """`owned` (amortized capex plus running costs) or `rental`."""
    chip_price_usd: float | None
    system_usd: float = 0.0
    """The chip's share of host, power delivery, cooling and networks, USD (0 when rented)."""
    system: SystemCost | None = None
    """That share by part (None when rented)."""
    capex_usd: float
    crf: float
    wall_kw: float
    """Average power at the wall per chip (server share and PUE included), kW."""
    capex_usd_per_hour: float
    power_usd_per_hour: float
    hosting_usd_per_hour: float
    ops_usd_per_hour: float
    rental_usd_per_hour: float
    total_usd_per_hour: float

    def parts(self) -> dict[str, float]:
        """Additive parts of the hourly cost, in display order."""
        if self.basis == "rental":
            return {"rental": self.rental_usd_per_hour}
        return {"capex": self.capex_usd_per_hour, "power": self.power_usd_per_hour,
                "hosting": self.hosting_usd_per_hour, "ops": self.ops_usd_per_hour}


def owned_chip_hour_cost(price_usd: float, tdp_w: float, econ: Economics,
                         needs: SystemNeeds | None = None) -> ChipHourCost:
    """Hourly cost of owning and running one chip bought at `price_usd` drawing up to `tdp_w`.

    `needs` (scale-out and scale-up bandwidth, domain, fabric) prices the system share; its TDP is
    taken as `tdp_w`. None: a chip with one 400G NIC and no scale-up fabric.
    """
    if not (price_usd >= 0 and tdp_w > 0):
        raise SpecError(f"chip price must be ≥ 0 and TDP > 0 (got {price_usd} USD, {tdp_w} W)")
    needs = (needs or SystemNeeds(tdp_w=tdp_w)).model_copy(update={"tdp_w": float(tdp_w)})
    system = system_cost(needs, econ)
    capex = (price_usd + system.total_usd) * (1.0 + econ.spares_frac)
    crf = capital_recovery_factor(econ.cost_of_capital, econ.depreciation_years)
    it_kw = tdp_w / 1000.0 * econ.server_power_multiplier
    wall_kw = it_kw * econ.avg_load_frac * econ.pue
    capex_h = capex * crf / HOURS_PER_YEAR
    power_h = wall_kw * econ.electricity_usd_per_kwh
    hosting_h = it_kw * econ.hosting_usd_per_kw_month * 12.0 / HOURS_PER_YEAR
    ops_h = econ.ops_usd_per_chip_year / HOURS_PER_YEAR
    return ChipHourCost(
        basis="owned", chip_price_usd=price_usd, system_usd=system.total_usd, system=system,
        capex_usd=capex, crf=crf, wall_kw=wall_kw,
        capex_usd_per_hour=capex_h, power_usd_per_hour=power_h, hosting_usd_per_hour=hosting_h,
        ops_usd_per_hour=ops_h, rental_usd_per_hour=0.0,
        total_usd_per_hour=capex_h + power_h + hosting_h + ops_h,
    )


def chip_hour_cost(chip, econ: Economics, price_usd: float | None = None) -> ChipHourCost:
    """Hourly cost of `chip` (a ChipSpec): the rental price if `econ` sets one, else owned cost.

    `price_usd` replaces the chip's catalog price. Raises `SpecError` naming the missing input
    when there is neither a price nor a rental, and for a design that cannot be built.
    """
    if hasattr(chip, "require_buildable"):
        chip.require_buildable()
    if econ.rental_usd_per_chip_hour is not None:
        rent = econ.rental_usd_per_chip_hour
        return ChipHourCost(
            basis="rental", chip_price_usd=price_usd if price_usd is not None else chip.price_usd,
            capex_usd=0.0, crf=0.0, wall_kw=0.0, capex_usd_per_hour=0.0, power_usd_per_hour=0.0,
            hosting_usd_per_hour=0.0, ops_usd_per_hour=0.0, rental_usd_per_hour=rent, total_usd_per_hour=rent,
        )
    price = price_usd if price_usd is not None else chip.price_usd
    if price is None:
        raise SpecError(f"chip {chip.id}: price_usd is missing; give --price-usd or --rental-usd-per-hour")
    return owned_chip_hour_cost(price, chip.tdp_w, econ, SystemNeeds.of_chip(chip))


def lifetime_cost_usd(price_usd: float, tdp_w: float, econ: Economics, owned: bool = True,
                      needs: SystemNeeds | None = None) -> float:
    """Everything one chip costs over the economic life: hourly cost × hours of life, USD.

    Capex enters through the capital recovery factor, so the cost of capital is included.
    With `owned=False` and a rental price in `econ`, the rental over the same life.
    """
    hours = econ.depreciation_years * HOURS_PER_YEAR
    if not owned and econ.rental_usd_per_chip_hour is not None:
        return econ.rental_usd_per_chip_hour * hours
    return owned_chip_hour_cost(price_usd, tdp_w, econ, needs).total_usd_per_hour * hours


class TokenCost(BaseModel):
    """Cost per million tokens (USD/Mtok) from a chip-hour cost and throughputs."""

    model_config = ConfigDict(frozen=True)

    input_miss_usd_per_mtok: float
    """Per prompt token computed in prefill (no prefix-cache discount)."""
    input_usd_per_mtok: float
    """Per prompt token served: (1 − hit) × the computed price; cache hits are free."""
    output_usd_per_mtok: float
    """Per generated token."""
    blended_usd_per_mtok: float
    """Average over served tokens at this mix: (input · I + output · O) / (I + O)."""
    prefix_cache_hit: float
    """Hit fraction applied as the discount."""


def usd_per_mtok(chip_hour_usd: float, input_tok_s_per_chip: float, output_tok_s_per_chip: float,
                 prefill_time_share: float, prefix_cache_hit: float = 0.0) -> TokenCost:
    """Split a chip-hour's cost between prompt and generated tokens.

    With H the chip-hour cost, s the share of chip time spent in prefill, I the prompt tokens
    and O the generated tokens per second per chip (both averaged over the whole hour):

        input (computed) $/Mtok = H · s / (3600 · I) · 1e6
        output $/Mtok           = H · (1 − s) / (3600 · O) · 1e6
        input $/Mtok            = (1 − h) · input (computed)
        blended $/Mtok          = (input · I + output · O) / (I + O)

    h is the prefix-cache hit fraction: a hit is not recomputed, so it costs nothing and the
    input price falls by the hit fraction. Use it with throughputs for a run where every prompt
    token is computed. tokenfab's engine already prefills only the missed tokens (its
    `prefill_time_share` shrinks with hits), so pass h = 0 (the default) for its estimates, or
    the hits would be discounted twice. With h = 0, input · I + output · O = H exactly.
    """
    for name, v in (("chip_hour_usd", chip_hour_usd), ("input_tok_s_per_chip", input_tok_s_per_chip),
                    ("output_tok_s_per_chip", output_tok_s_per_chip)):
        if not v >= 0:
            raise SpecError(f"{name} must be ≥ 0, got {v}")
    if not 0 <= prefill_time_share <= 1:
        raise SpecError(f"prefill_time_share must be in [0, 1], got {prefill_time_share}")
    if not 0 <= prefix_cache_hit < 1:
        raise SpecError(f"prefix_cache_hit must be in [0, 1), got {prefix_cache_hit}")
    if output_tok_s_per_chip <= 0 or (input_tok_s_per_chip <= 0 and prefill_time_share > 0):
        raise SpecError("throughput must be > 0 tokens/s per chip to price tokens")
    per_hour = chip_hour_usd * 1e6 / 3600.0
    miss = per_hour * prefill_time_share / input_tok_s_per_chip if prefill_time_share > 0 else 0.0
    inp = (1.0 - prefix_cache_hit) * miss
    out = per_hour * (1.0 - prefill_time_share) / output_tok_s_per_chip
    i, o = input_tok_s_per_chip, output_tok_s_per_chip
    blended = (inp * i + out * o) / (i + o)
    return TokenCost(input_miss_usd_per_mtok=miss, input_usd_per_mtok=inp, output_usd_per_mtok=out,
                     blended_usd_per_mtok=blended, prefix_cache_hit=prefix_cache_hit)


class DeploymentPrice(BaseModel):
    """What a deployment's chip time costs and how it splits over its tokens (`price_deployment`)."""

    model_config = ConfigDict(frozen=True)

    usd_per_chip_hour: float
    """Mean $/chip-hour over the deployment's chips (each pool at its own chip's price, by chip share)."""
    hours: dict[str, ChipHourCost]
    """The chip-hour cost of each pool's chip, by pool role (`aggregated`, `prefill`, `decode`)."""
    prefill_cost_share: float
    """Share of chip cost spent on prompts: the prefill time share of one pool, or the prefill pool's
    share of the cost of separate pools."""
    tokens: TokenCost | None
    """$/Mtok by token kind at that split (None when no throughput was given: the chip-hour alone)."""
    basis: str
    """How the chip-hours are priced (`owned`, `rental`, both joined with `+` when pools differ)."""


def price_deployment(pools: list[tuple[str, Any, float]], input_tok_s_per_chip: float | None,
                     output_tok_s_per_chip: float | None, prefill_time_share: float, economics: Economics | None = None,
                     market_rental: bool = False) -> DeploymentPrice:
    """The one pricing path of a token deployment: `pools` as (role, ChipSpec, chip share) — one
    `aggregated` pool, or `prefill` and `decode` pools whose shares sum to 1 — and the per-chip
    throughputs averaged over all its chips. Each pool's chip is priced by `chip_hour_cost_for`; the
    chip-hour is their share-weighted mean; prompt tokens carry the prefill share of that cost (one
    pool: its `prefill_time_share`; separate pools: the prefill pool's share of the cost). Without
    throughputs (None) only the chip-hour is priced. Raises ValueError/SpecError naming what is
    missing (no price, no quote, no throughput)."""
    if not pools:
        raise SpecError("a deployment to price needs at least one pool")
    hours = {role: chip_hour_cost_for(chip, economics, market_rental) for role, chip, _ in pools}
    hourly = sum(share * hours[role].total_usd_per_hour for role, _, share in pools)
    if len(pools) == 1 or "prefill" not in hours:
        prefill_cost_share = prefill_time_share
    else:
        share = next(s for role, _, s in pools if role == "prefill")
        prefill_cost_share = share * hours["prefill"].total_usd_per_hour / hourly if hourly > 0 else 0.0
    tokens = (None if output_tok_s_per_chip is None else
              usd_per_mtok(hourly, input_tok_s_per_chip or 0.0, output_tok_s_per_chip, prefill_cost_share))
    return DeploymentPrice(usd_per_chip_hour=hourly, hours=hours, prefill_cost_share=prefill_cost_share,
                           tokens=tokens, basis=" + ".join(sorted({h.basis for h in hours.values()})))


def usd_per_video(chip_hour_usd: float, num_chips: int, latency_s: float) -> float:
    """Cost of one generated video: every chip of the deployment for its latency, $/chip-hour × chips
    × latency / 3600."""
    return chip_hour_usd * num_chips * latency_s / 3600.0


def usd_per_million_samples(chip_hour_usd: float, samples_s_per_chip: float) -> float:
    """Cost of a million recommendation samples: $/chip-hour over the samples a chip scores per hour."""
    if not samples_s_per_chip > 0:
        raise SpecError("throughput must be > 0 samples/s per chip to price samples")
    return chip_hour_usd / 3600.0 / samples_s_per_chip * 1e6


def default_economics(preset: str | None = None) -> Economics:
    """The shipped operating economics (`catalog/economics.yaml`), preset `us` unless named."""
    from tokenfab.cost.data import shipped_cost_data  # data loading stays out of the formulas

    return shipped_cost_data().economics(preset)


def chip_hour_cost_for(chip, economics: Economics | None = None, market_rental: bool = False) -> ChipHourCost:
    """Chip-hour cost under `economics` (shipped defaults when None); with `market_rental`, the
    chip's dated market rental quote from the shipped cost data. Raises ValueError/SpecError
    naming what is missing (no price, no quote)."""
    econ = economics or default_economics()
    if market_rental:
        from tokenfab.cost.data import shipped_cost_data

        quote = shipped_cost_data().market_rental.get(chip.id)
        if quote is None:
            raise ValueError(f"no market rental quote for {chip.id} in the shipped cost data")
        econ = at_rental_quote(econ, quote)
    return chip_hour_cost(chip, econ)


def at_rental_quote(econ: Economics, quote) -> Economics:
    """`econ` renting at a dated market quote (`RentalQuote`), the quote recorded as the source."""
    return econ.with_overrides({"rental_usd_per_chip_hour": quote.usd_per_hour}, origin=f"{quote.source}, {quote.date}")


def in_currency(values: dict[str, Any], econ: Economics) -> dict[str, Any]:
    """Money fields (`*usd*` keys) converted to the display currency, keys renamed (`usd` → `cny`)."""
    if econ.currency == "USD":
        return dict(values)
    out: dict[str, Any] = {}
    for k, v in values.items():
        if "usd" in k and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k.replace("usd", econ.currency.lower())] = v * econ.fx
        else:
            out[k] = v
    return out
