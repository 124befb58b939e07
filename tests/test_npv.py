"""Build-vs-buy NPV under uncertainty: worked by hand, one Monte Carlo draw by hand, seeds, NRE by node."""

import json
import math

import pytest
from typer.testing import CliRunner

from tokenfab.cli import app
from tokenfab.cost.npv import NpvInputs, Tri, fixed, monte_carlo, nre_by_node


def simple(**kw) -> NpvInputs:
    """Yearly steps over 3 years; design 1 y, no fab latency, no ramp, no respin; vendor costs
    $1,000 to make at 50 % margin (price $2,000, lifetime = price), falling 50 %/y; the ASIC costs
    $100, 2 ASICs per vendor chip (A = $200 per vendor-chip equivalent); NRE $1,000; 10 units/y."""
    base = dict(nre_usd=fixed(1000.0), design_years=fixed(1.0), fab_latency_years=0.0, respin_prob=0.0,
                ramp_years=fixed(0.0), custom_unit_usd=fixed(100.0), custom_perf=fixed(1.0), chips_ratio=2.0,
                vendor_unit_cost_usd=1000.0, vendor_margin=fixed(0.5), vendor_cost_decline_per_year=fixed(0.5),
                a_custom=1.0, b_custom=0.0, a_vendor=1.0, b_vendor=0.0, discount_rate=0.10, horizon_years=3.0,
                units_per_year=10.0, step_years=1.0)
    base.update(kw)
    return NpvInputs(**base)


def test_npv_worked_by_hand():
    r = monte_carlo(simple(), draws=1, seed=0)
    # purchases at t = 0.5, 1.5, 2.5; the ASIC launches at 1.0, so it serves the last two.
    v15, v25 = 2000 * 0.5 ** 1.5, 2000 * 0.5 ** 2.5          # 707.11, 353.55
    saving = (v15 - 200) * 1.1 ** -1.5 + (v25 - 200) * 1.1 ** -2.5   # 439.54 + 121.70 = 561.25 per unit/y
    nre = 1000 * (1 - 1 / 1.1) / math.log(1.1)               # spent evenly over year 1: 953.82
    assert r.npv_usd == pytest.approx(10 * saving - nre, rel=1e-12)   # 4,658.7
    assert r.base_npv_usd == pytest.approx(10 * saving - nre, rel=1e-12)
    # break-even: 953.82 / 561.25 = 1.699 units per year → 5.10 over the 3 years
    assert r.base_break_even_units == pytest.approx(nre / saving * 3, rel=1e-12)
    # unit compute cost at launch (t = 1): 200 / (2000 × 0.5) = 20 %
    assert r.unit_compute_cost_ratio == pytest.approx(0.2)


def test_the_asic_is_not_used_where_the_vendor_is_cheaper():
    # vendor falls 90 %/y: at t = 1.5 it costs 2000 × 0.1^1.5 = 63 < 200, so nothing is saved
    r = monte_carlo(simple(vendor_cost_decline_per_year=fixed(0.9)), draws=1)
    assert r.npv_usd == pytest.approx(-1000 * (1 - 1 / 1.1) / math.log(1.1))
    assert math.isinf(r.base_break_even_units) and r.p_build_wins == 0.0


def _npv_by_hand(x: NpvInputs, d: dict) -> float:
    """One draw written out with loops (no arrays): the module docstring's sums."""
    launch = d["design_years"] + x.fab_latency_years + d["respin"] * x.respin_delay_years
    price_v = x.vendor_unit_cost_usd / (1 - d["vendor_margin"])
    v0 = x.a_vendor * price_v + x.b_vendor
    a = (x.a_custom * d["custom_unit_usd"] * (1 + x.partner_markup_frac) + x.b_custom) * x.chips_ratio / d["custom_perf"]
    saving, software = 0.0, 0.0
    k = 0
    while (k + 0.5) * x.step_years < x.horizon_years:
        t = (k + 0.5) * x.step_years
        disc = (1 + x.discount_rate) ** -t
        share = min(max((t - launch) / d["ramp_years"], 0.0), 1.0)
        saving += x.step_years * share * max(v0 * (1 - d["vendor_cost_decline_per_year"]) ** t - a, 0.0) * disc
        if t >= launch:
            software += x.step_years * x.software_usd_per_year * disc
        k += 1
    dy = d["design_years"]
    nre = d["nre_usd"] * (1 - (1 + x.discount_rate) ** -dy) / (math.log(1 + x.discount_rate) * dy)
    build = nre + d["respin"] * x.respin_cost_usd * (1 + x.discount_rate) ** -dy + software
    return x.units_per_year * saving - build


def uncertain() -> NpvInputs:
    return NpvInputs(
        nre_usd=Tri(low=150e6, mode=540e6, high=680e6), design_years=Tri(low=2.0, mode=2.5, high=3.75),
        fab_latency_years=0.5, respin_prob=0.76, respin_cost_usd=25e6, respin_delay_years=0.75,
        ramp_years=Tri(low=0.5, mode=1.0, high=2.0), software_usd_per_year=20e6,
        custom_unit_usd=Tri(low=3500, mode=4200, high=5500), partner_markup_frac=0.2,
        custom_perf=Tri(low=0.6, mode=0.9, high=1.05), chips_ratio=0.25, vendor_unit_cost_usd=3700,
        vendor_margin=Tri(low=0.6, mode=0.7, high=0.75), vendor_cost_decline_per_year=Tri(low=0.0, mode=0.1, high=0.3),
        a_custom=1.3, b_custom=28000, a_vendor=1.3, b_vendor=26000, discount_rate=0.09, horizon_years=6,
        units_per_year=20000)


def test_one_monte_carlo_draw_by_hand():
    x = uncertain()
    r = monte_carlo(x, draws=500, seed=7)
    d = r.first_draw
    assert d["npv_usd"] == pytest.approx(_npv_by_hand(x, d), rel=1e-9)


def test_same_seed_same_numbers_and_another_seed_differs():
    a = monte_carlo(uncertain(), draws=2000, seed=3).model_dump()
    b = monte_carlo(uncertain(), draws=2000, seed=3).model_dump()
    c = monte_carlo(uncertain(), draws=2000, seed=4).model_dump()
    assert a == b
    assert a["npv_usd"] != c["npv_usd"]
    assert a["break_even_units_p10"] <= a["break_even_units_p50"] <= a["break_even_units_p90"]


def test_npv_is_zero_at_the_base_break_even():
    x = uncertain()
    r = monte_carlo(x, draws=1, seed=0)
    at_be = monte_carlo(x.model_copy(update={"units_per_year": r.base_break_even_units / x.horizon_years}), draws=1)
    assert at_be.base_npv_usd == pytest.approx(0.0, abs=1e-3 * abs(r.base_npv_usd))


def test_more_purchases_never_lower_p_build_wins():
    ps = [monte_carlo(uncertain().model_copy(update={"units_per_year": n}), draws=3000, seed=1).p_build_wins
          for n in (1e3, 1e4, 5e4, 2e5)]
    assert ps == sorted(ps)


def test_nre_by_node_is_ibs_with_its_software_share():
    n2 = nre_by_node("tsmc-n2", mask_set_usd=50e6)
    assert n2["total"] == pytest.approx(725e6)
    assert n2["software"] == pytest.approx(0.433 * 725e6)  # IBS: $314M of $725M
    assert n2["verification"] == pytest.approx(0.212 * 725e6)  # IBS: $154M
    n5 = nre_by_node("tsmc-n5", mask_set_usd=18.1e6, software_reuse_frac=0.5)
    assert n5["masks"] == 18.1e6
    assert n5["total"] == pytest.approx(542.2e6 - 0.5 * 0.433 * 542.2e6)


def test_build_vs_buy_npv_json():
    res = CliRunner().invoke(app, ["build-vs-buy", "--design", "src/tokenfab/catalog/studies/designs/tf-infer-1.yaml",
                                   "--versus", "h100-sxm", "--model", "llama-3.1-8b", "--npv", "--draws", "500",
                                   "--json"])
    assert res.exit_code == 0, res.output
    npv = json.loads(res.stdout)["npv"]
    for k in ("npv_usd", "p_build_wins", "break_even_units_p10", "break_even_units_p50", "break_even_units_p90",
              "tornado"):
        assert k in npv
    assert 0.0 <= npv["p_build_wins"] <= 1.0
