"""Build-vs-buy as a net present value under uncertainty: NRE by node, respins, time to market,
ramp, a vendor that keeps improving, vendor margin and ASIC-partner markup; seeded Monte Carlo.

The buyer adds `units_per_year` of capacity, counted in today's vendor chips (vendor-chip
equivalents), every year for `horizon_years`. Buying only, capacity added at time t costs

    V(t) = V0 · (1 − c)^t        per vendor-chip equivalent (lifetime cost: price, system, power, ...)

where c is the vendor's yearly fall in cost per unit of performance (its roadmap) and
V0 = a_v · price_v + b_v, price_v = vendor unit cost / (1 − vendor gross margin). Building, the
ASIC launches at L = design years + fab latency (+ respin delay when a respin is drawn) and its
supply ramps linearly over `ramp_years`; each vendor-chip equivalent it serves costs

    A = (a_c · unit_c · (1 + partner markup) + b_c) · (T_v / T_c) / perf

(a, b: the lifetime cost of one chip is affine in its price, `cost.tco.lifetime_cost_usd`;
T_v / T_c: custom chips per vendor chip for equal tokens; perf: the draw's factor on the custom
chip's throughput). Where the ASIC is available the buyer takes whichever is cheaper, so with
ramp share r(t) and discount factor d(t) = (1 + rate)^−t, on a grid of step Δ:

    S = Σ_k Δ · r(t_k) · max(V(t_k) − A, 0) · d(t_k)        (saving per unit/year of demand)
    C = NRE · mean d over [0, design years] + respin · respin_cost · d(design years)
        + Σ_{t_k ≥ L} Δ · software_usd_per_year · d(t_k)   (PV of building)
    NPV(N) = N · S − C;   break-even N* = C / S (units per year; ∞ when S = 0)

`break_even_units` report N* × horizon (vendor-chip equivalents bought over the horizon).
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tokenfab.specs.base import Spec, SpecError, load_yaml


class Tri(Spec):
    """A triangular distribution (low ≤ mode ≤ high); low = high is a fixed number."""

    low: float
    """Smallest value."""
    mode: float
    """Most likely value (used by the base case and the tornado)."""
    high: float
    """Largest value."""

    @model_validator(mode="after")
    def _ordered(self) -> "Tri":
        if not self.low <= self.mode <= self.high:
            raise ValueError(f"distribution needs low ≤ mode ≤ high, got {self.low}, {self.mode}, {self.high}")
        return self

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """`n` draws (the mode when the range is empty)."""
        if self.high - self.low <= 0:
            return np.full(n, self.mode)
        return rng.triangular(self.low, self.mode, self.high, size=n)


def fixed(v: float) -> Tri:
    """A number with no uncertainty."""
    return Tri(low=v, mode=v, high=v)


class NpvInputs(Spec):
    """What a build-vs-buy NPV rests on (money in USD)."""

    nre_usd: Tri
    """Design cost to first tape-out (team, verification, IP, masks, software, bring-up)."""
    design_years: Tri
    """Architecture to tape-out, years."""
    fab_latency_years: float = Field(default=0.5, ge=0, le=3)
    """Tape-out to parts (wafers + packaging), years."""
    respin_prob: float = Field(default=0.7, ge=0, le=1)
    """Probability that first silicon needs a respin."""
    respin_cost_usd: float = Field(default=0.0, ge=0)
    """Cost of a respin (a mask set, a fab run, bring-up again)."""
    respin_delay_years: float = Field(default=0.5, ge=0, le=3)
    """Delay a respin adds to the launch."""
    ramp_years: Tri
    """From launch to the ASIC supplying all new capacity, years (linear ramp)."""
    software_usd_per_year: float = Field(default=0.0, ge=0)
    """Sustaining compiler/runtime organisation after launch, per year."""
    custom_unit_usd: Tri
    """Manufacturing cost of one custom package (fab model), USD."""
    partner_markup_frac: float = Field(default=0.0, ge=0, le=3)
    """ASIC-partner (design services, supply chain) markup on the custom unit cost."""
    custom_perf: Tri
    """Factor on the custom chip's predicted throughput (1: as the engine predicts)."""
    chips_ratio: float = Field(gt=0)
    """Custom chips per vendor chip for equal tokens, T_v / T_c, at perf = 1."""
    vendor_unit_cost_usd: float = Field(gt=0)
    """Manufacturing cost of one vendor chip (fab model), USD."""
    vendor_margin: Tri
    """Vendor gross margin: price = unit cost / (1 − margin)."""
    vendor_cost_decline_per_year: Tri
    """Yearly fall in the vendor's cost per unit of performance (its roadmap), fraction."""
    a_custom: float = Field(ge=0)
    """Lifetime cost per USD of custom chip price (capex share × CRF × life)."""
    b_custom: float = Field(ge=0)
    """Lifetime cost of one custom chip at price 0 (system share, power, hosting, ops), USD."""
    a_vendor: float = Field(ge=0)
    """Lifetime cost per USD of vendor chip price."""
    b_vendor: float = Field(ge=0)
    """Lifetime cost of one vendor chip at price 0, USD."""
    discount_rate: float = Field(default=0.09, ge=0, le=1)
    """Annual discount rate."""
    horizon_years: float = Field(default=6.0, gt=0, le=30)
    """Years over which capacity is added."""
    units_per_year: float = Field(default=10000.0, ge=0)
    """Capacity added per year, vendor-chip equivalents (the fleet size asked about)."""
    step_years: float = Field(default=0.25, gt=0, le=1)
    """Time step of the sum."""


UNCERTAIN = ("nre_usd", "design_years", "ramp_years", "custom_unit_usd", "custom_perf", "vendor_margin",
             "vendor_cost_decline_per_year")
"""Inputs drawn in the Monte Carlo (and varied by the tornado)."""


def npv_arrays(x: NpvInputs, draws: dict[str, np.ndarray], respin: np.ndarray) -> dict[str, np.ndarray]:
    """Saving per unit/year S, building cost C, launch L, A and V0 for arrays of draws (see module doc)."""
    n = len(respin)
    t = (np.arange(int(round(x.horizon_years / x.step_years))) + 0.5) * x.step_years  # [K]
    d = (1.0 + x.discount_rate) ** -t
    launch = draws["design_years"] + x.fab_latency_years + respin * x.respin_delay_years  # [n]
    ramp = draws["ramp_years"]
    since = t[None, :] - launch[:, None]
    share = np.where(ramp[:, None] > 0, np.clip(since / np.maximum(ramp[:, None], 1e-12), 0, 1),
                     (since >= 0).astype(float))
    vendor_price = x.vendor_unit_cost_usd / (1.0 - draws["vendor_margin"])
    v0 = x.a_vendor * vendor_price + x.b_vendor
    vt = v0[:, None] * (1.0 - draws["vendor_cost_decline_per_year"][:, None]) ** t[None, :]
    a = ((x.a_custom * draws["custom_unit_usd"] * (1 + x.partner_markup_frac) + x.b_custom)
         * x.chips_ratio / draws["custom_perf"])
    saving = (x.step_years * share * np.maximum(vt - a[:, None], 0.0) * d[None, :]).sum(axis=1)
    dy = draws["design_years"]
    if x.discount_rate > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_d = np.where(dy > 0, (1 - (1 + x.discount_rate) ** -dy) / (np.log1p(x.discount_rate) * dy), 1.0)
    else:
        mean_d = np.ones_like(dy)
    sw = (x.step_years * (since >= 0) * d[None, :]).sum(axis=1) * x.software_usd_per_year
    build = draws["nre_usd"] * mean_d + respin * x.respin_cost_usd * (1 + x.discount_rate) ** -dy + sw
    return {"saving_per_unit_year": saving, "build_cost_pv": build, "launch_years": launch,
            "custom_cost_per_equiv": a, "vendor_cost_per_equiv_now": v0, "vendor_price": vendor_price,
            "vendor_cost_per_equiv_at_launch": v0 * (1.0 - draws["vendor_cost_decline_per_year"]) ** launch,
            "n": np.full(n, x.units_per_year)}


def _modes(x: NpvInputs, n: int = 1) -> dict[str, np.ndarray]:
    return {k: np.full(n, getattr(x, k).mode) for k in UNCERTAIN}


class TornadoRow(BaseModel):
    """NPV at the fleet size when one input sits at its low and its high end (others at mode)."""

    model_config = ConfigDict(frozen=True)

    input: str
    low: float
    high: float
    npv_at_low_usd: float
    npv_at_high_usd: float

    @property
    def swing(self) -> float:
        return abs(self.npv_at_high_usd - self.npv_at_low_usd)


class NpvResult(BaseModel):
    """The Monte Carlo answer."""

    model_config = ConfigDict(frozen=True)

    seed: int
    draws: int
    units_per_year: float
    horizon_years: float
    npv_usd: float
    """Mean NPV of building (buy cost − build cost, present value) at `units_per_year`."""
    npv_p10_usd: float
    npv_p50_usd: float
    npv_p90_usd: float
    p_build_wins: float
    """Share of draws where building has the higher NPV at this fleet size."""
    break_even_units_p10: float
    break_even_units_p50: float
    break_even_units_p90: float
    """Break-even purchases over the horizon (vendor-chip equivalents) by percentile (∞: never)."""
    base_npv_usd: float
    """NPV with every input at its mode and no respin."""
    base_break_even_units: float
    unit_compute_cost_ratio: float
    """Custom over vendor cost per unit of capacity at the ASIC's launch (modes; no NRE): < 0.5 is
    the seeds' "50%+ cheaper unit compute"."""
    unit_compute_cost_ratio_with_nre: float
    """The same with the build cost spread over the ASIC's share of the purchases (modes)."""
    launch_years_p50: float
    tornado: list[TornadoRow]
    break_even_samples: list[float]
    """Break-even units of up to 2,000 draws (∞ as None in JSON), for the distribution plot."""
    first_draw: dict[str, float]
    """The inputs of draw 0 and its NPV (to check one draw by hand)."""


def monte_carlo(x: NpvInputs, draws: int = 10000, seed: int = 0) -> NpvResult:
    """Seeded Monte Carlo of the NPV of building; the same seed gives the same numbers."""
    if draws < 1:
        raise SpecError("draws must be ≥ 1")
    rng = np.random.default_rng(seed)
    sampled = {k: getattr(x, k).draw(rng, draws) for k in UNCERTAIN}
    respin = (rng.uniform(size=draws) < x.respin_prob).astype(float)
    r = npv_arrays(x, sampled, respin)
    npv = x.units_per_year * r["saving_per_unit_year"] - r["build_cost_pv"]
    with np.errstate(divide="ignore"):
        be = np.where(r["saving_per_unit_year"] > 0, r["build_cost_pv"] / r["saving_per_unit_year"], np.inf)
    be_units = be * x.horizon_years
    with np.errstate(invalid="ignore"):  # ∞ (never breaks even) ranks last; no interpolation across it
        p10, p50, p90 = np.percentile(be_units, [10, 50, 90], method="inverted_cdf")
    base = npv_arrays(x, _modes(x), np.zeros(1))
    base_npv = float(x.units_per_year * base["saving_per_unit_year"][0] - base["build_cost_pv"][0])
    s0 = base["saving_per_unit_year"][0]
    base_be = float(base["build_cost_pv"][0] / s0 * x.horizon_years) if s0 > 0 else math.inf
    ratio = float(base["custom_cost_per_equiv"][0] / base["vendor_cost_per_equiv_at_launch"][0])
    asic_units = x.units_per_year * max(x.horizon_years - base["launch_years"][0], 0.0)
    nre_per = base["build_cost_pv"][0] / asic_units if asic_units > 0 else math.inf
    ratio_nre = float((base["custom_cost_per_equiv"][0] + nre_per) / base["vendor_cost_per_equiv_at_launch"][0])
    rows = []
    for k in UNCERTAIN:
        dist = getattr(x, k)
        ends = []
        for v in (dist.low, dist.high):
            m = _modes(x)
            m[k] = np.array([v])
            rr = npv_arrays(x, m, np.zeros(1))
            ends.append(float(x.units_per_year * rr["saving_per_unit_year"][0] - rr["build_cost_pv"][0]))
        rows.append(TornadoRow(input=k, low=dist.low, high=dist.high, npv_at_low_usd=ends[0], npv_at_high_usd=ends[1]))
    rows.append(_respin_row(x))
    rows.sort(key=lambda row: -row.swing)
    first = {k: float(v[0]) for k, v in sampled.items()}
    first["respin"] = float(respin[0])
    first["npv_usd"] = float(npv[0])
    return NpvResult(
        seed=seed, draws=draws, units_per_year=x.units_per_year, horizon_years=x.horizon_years,
        npv_usd=float(npv.mean()), npv_p10_usd=float(np.percentile(npv, 10)),
        npv_p50_usd=float(np.percentile(npv, 50)), npv_p90_usd=float(np.percentile(npv, 90)),
        p_build_wins=float((npv > 0).mean()), break_even_units_p10=float(p10), break_even_units_p50=float(p50),
        break_even_units_p90=float(p90), base_npv_usd=base_npv, base_break_even_units=base_be,
        unit_compute_cost_ratio=ratio, unit_compute_cost_ratio_with_nre=ratio_nre,
        launch_years_p50=float(np.median(r["launch_years"])), tornado=rows,
        break_even_samples=[float(v) for v in be_units[:2000]], first_draw=first)


def _respin_row(x: NpvInputs) -> TornadoRow:
    ends = []
    for respin in (0.0, 1.0):
        rr = npv_arrays(x, _modes(x), np.array([respin]))
        ends.append(float(x.units_per_year * rr["saving_per_unit_year"][0] - rr["build_cost_pv"][0]))
    return TornadoRow(input="respin", low=0.0, high=1.0, npv_at_low_usd=ends[0], npv_at_high_usd=ends[1])


# ---- NRE by node ------------------------------------------------------------------------------

class NreByNode(Spec):
    """IBS-anchored design cost by node and its split (`catalog/fleet/data/nre_by_node.yaml`)."""

    totals_usd: dict[str, float]
    """Node id → full design cost of a new large chip, USD."""
    shares: dict[str, float]
    """Part → share of the total (masks priced from the node and taken from physical design)."""
    mask_sets: float = Field(gt=0)
    """Mask sets in the NRE (respins drawn separately)."""


@lru_cache(maxsize=None)
def nre_table() -> NreByNode:
    """The shipped NRE-by-node table."""
    path = Path(str(resources.files("tokenfab.catalog").joinpath("fleet", "data", "nre_by_node.yaml")))
    return NreByNode.from_mapping(load_yaml(path), origin=str(path))


def nre_by_node(node_id: str, mask_set_usd: float, software_reuse_frac: float = 0.0) -> dict[str, float]:
    """Design cost by part for a node (USD): IBS total × shares, masks from the node's mask set;
    `software_reuse_frac` of the software part is saved by a generation that reuses the stack."""
    table = nre_table()
    if node_id not in table.totals_usd:
        raise SpecError(f"no IBS design cost for node {node_id!r}; known: {', '.join(sorted(table.totals_usd))}")
    if not 0 <= software_reuse_frac <= 1:
        raise SpecError(f"software reuse must be in [0, 1], got {software_reuse_frac}")
    total = table.totals_usd[node_id]
    parts = {k: total * s for k, s in table.shares.items()}
    masks = mask_set_usd * table.mask_sets
    parts["physical_design"] = max(parts["physical_design"] - masks, 0.0)
    parts["masks"] = masks
    parts["software"] *= 1.0 - software_reuse_frac
    parts["total"] = sum(v for k, v in parts.items())
    return parts


# ---- from a build-vs-buy comparison ----------------------------------------------------------

RESPIN_PROB = 0.76
"""Probability of a respin: 24% of IC/ASIC projects reached first-silicon success in the 2022 Wilson
Research Group study (blogs.sw.siemens.com/verificationhorizons, 2023-01-09; ~30% historically,
14% in 2024)."""
SCHEDULE_SLIP_HIGH = 1.5
"""High end of design time over plan: 66% of IC/ASIC projects finished behind schedule (same study);
1.5x is est."""
VENDOR_COST_DECLINE = 0.30
"""Hardware at a fixed performance becomes ~30% cheaper each year (Epoch AI, Machine Learning
Hardware data insights, epoch.ai/data/machine-learning-hardware)."""


def affine_lifetime(lifetime) -> tuple[float, float]:
    """(a, b) with lifetime(price) = a·price + b, read from two prices of a lifetime-cost function."""
    b = lifetime(0.0)
    return lifetime(1000.0) / 1000.0 - b / 1000.0, b


def inputs_from_build_vs_buy(result, data, econ, node_id: str, vendor_unit_cost_usd: float,
                             fleet_vendor_equiv: float, horizon_years: float = 6.0,
                             nre_basis: str = "ibs", vendor_margin: float | None = None,
                             vendor_decline: float = VENDOR_COST_DECLINE, partner_markup: float | None = None,
                             software_reuse_frac: float = 0.0) -> tuple[NpvInputs, dict]:
    """NpvInputs around a build-vs-buy result (`cost.compare.BuildVsBuyResult`), with the default
    ranges (est. unless a constant above cites them); also the NRE breakdown by node used."""
    from tokenfab.cost.tco import lifetime_cost_usd

    bvb = result.inputs
    node = data.fab.nodes[node_id]
    parts = nre_by_node(node_id if node_id in nre_table().totals_usd else "tsmc-n5", node.mask_set_usd,
                        software_reuse_frac)
    team = result.nre.total_usd
    if nre_basis == "ibs":
        nre = Tri(low=min(team, parts["total"]), mode=parts["total"], high=parts["total"] * 1.25)
    elif nre_basis == "team":
        nre = Tri(low=team * 0.75, mode=team, high=max(parts["total"], team))
    else:
        raise SpecError(f"NRE basis must be ibs or team, got {nre_basis!r}")
    margin = vendor_margin if vendor_margin is not None else 1.0 - vendor_unit_cost_usd / bvb.vendor_price_usd
    if not 0 <= margin < 0.95:
        raise SpecError(f"vendor margin must be in [0, 0.95), got {margin:.3f}")
    a_c, b_c = affine_lifetime(lambda p: lifetime_cost_usd(p, bvb.custom_tdp_w, econ, needs=bvb.custom_system))
    a_v, b_v = affine_lifetime(lambda p: lifetime_cost_usd(p, bvb.vendor_tdp_w, econ, needs=bvb.vendor_system))
    markup = data.fab.custom_markup_frac if partner_markup is None else partner_markup
    unit = bvb.custom_unit_usd / (1.0 + data.fab.custom_markup_frac)  # fab cost before any markup
    dy = data.nre.design_years
    x = NpvInputs(
        nre_usd=nre, design_years=Tri(low=dy * 0.9, mode=dy, high=dy * SCHEDULE_SLIP_HIGH),
        fab_latency_years=data.nre.fab_latency_years, respin_prob=RESPIN_PROB,
        respin_cost_usd=node.mask_set_usd + 0.25 * parts["bringup_validation"],
        respin_delay_years=data.nre.fab_latency_years + 0.25,
        ramp_years=Tri(low=0.5, mode=1.0, high=2.0), software_usd_per_year=0.25 * parts["software"] / max(dy, 1e-9),
        custom_unit_usd=Tri(low=unit * 0.85, mode=unit, high=unit * 1.3), partner_markup_frac=markup,
        custom_perf=Tri(low=0.6, mode=0.9, high=1.05), chips_ratio=bvb.chips_ratio,
        vendor_unit_cost_usd=vendor_unit_cost_usd,
        vendor_margin=Tri(low=max(margin - 0.10, 0.0), mode=margin, high=min(margin + 0.05, 0.9)),
        vendor_cost_decline_per_year=Tri(low=vendor_decline * 0.5, mode=vendor_decline,
                                         high=min(vendor_decline * 1.3, 0.9)),
        a_custom=a_c, b_custom=b_c, a_vendor=a_v, b_vendor=b_v, discount_rate=econ.cost_of_capital,
        horizon_years=horizon_years, units_per_year=fleet_vendor_equiv / horizon_years)
    return x, parts
