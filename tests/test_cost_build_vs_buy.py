"""NRE, equal-token fleets, break-even and the tornado."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.cost.build_vs_buy import (
    BuildVsBuyInputs, breakeven_fleet, fleet_costs_usd, nre_cost, savings_usd, sensitivity_range, tornado,
)
from tokenfab.cost.data import shipped_cost_data
from tokenfab.specs.economics import Economics, NreSpec, SensitivityRange


def free_running(**kw) -> Economics:
    """No capital cost, power, hosting or ops: a chip's lifetime cost is its price."""
    base = dict(depreciation_years=5, cost_of_capital=0.0, server_and_network_usd_per_chip=0.0, spares_frac=0.0,
                electricity_usd_per_kwh=0.0, pue=1.0, avg_load_frac=1.0, server_power_multiplier=1.0,
                hosting_usd_per_kw_month=0.0, ops_usd_per_chip_year=0.0, cny_per_usd=7.0,
                sources={"default": "test"})
    return Economics(**{**base, **kw})


def inputs(**kw) -> BuildVsBuyInputs:
    base = dict(nre_usd=150e6, custom_unit_usd=4000, vendor_price_usd=27_500, custom_tok_s_per_chip=1000,
                vendor_tok_s_per_chip=1000, custom_tdp_w=500, vendor_tdp_w=700, economics=free_running())
    return BuildVsBuyInputs(**{**base, **kw})


def test_nre_by_hand():
    spec = NreSpec(engineers=100, loaded_usd_per_engineer_year=200_000, design_years=2, mask_sets=1.5,
                   ip_licences_usd=3e6, eda_usd_per_year=1e6, software_stack_usd=20e6, tapeout_bringup_usd=4e6,
                   fab_latency_years=0.5, sources={"default": "test"})
    n = nre_cost(spec, mask_set_usd=18.1e6)
    assert n.team_usd == 40e6 and n.masks_usd == pytest.approx(27.15e6) and n.eda_usd == 2e6
    assert n.total_usd == pytest.approx(40e6 + 27.15e6 + 3e6 + 2e6 + 20e6 + 4e6)
    assert n.time_to_market_years == 2.5
    assert sum(n.parts().values()) == pytest.approx(n.total_usd)


def test_shipped_nre_sits_in_the_sourced_range_for_a_first_5nm_asic():
    d = shipped_cost_data()
    assert 80e6 <= nre_cost(d.nre, d.fab.nodes["tsmc-n5"].mask_set_usd).total_usd <= 250e6


def test_breakeven_reproduces_economics_example():
    # economics.md §10: NRE $150M, ASIC $4k vs H100 $27.5k, equal performance → N* ≈ 6,400
    assert breakeven_fleet(inputs()) == pytest.approx(150e6 / 23_500)


def test_half_the_throughput_needs_twice_the_chips():
    i = inputs(custom_tok_s_per_chip=500)
    assert i.chips_ratio == 2
    assert breakeven_fleet(i) == pytest.approx(150e6 / (27_500 - 2 * 4000))


def test_never_breaks_even_when_custom_tokens_cost_more():
    assert math.isinf(breakeven_fleet(inputs(custom_tok_s_per_chip=100)))


def test_fleet_costs_cross_at_breakeven():
    i = inputs()
    n = breakeven_fleet(i)
    build, buy = fleet_costs_usd(n, i)
    assert build == pytest.approx(buy)
    assert savings_usd(2 * n, i) > 0 > savings_usd(n / 2, i)


def test_fleet_costs_take_arrays():
    build, buy = fleet_costs_usd([0, 1000], inputs())
    assert build[0] == 150e6 and buy[0] == 0 and buy[1] == 27_500_000


def test_running_costs_count_over_the_life():
    e = free_running(electricity_usd_per_kwh=0.1)
    i = inputs(economics=e)
    custom, vendor = i.lifetimes_usd()
    assert custom == pytest.approx(4000 + 0.5 * 0.1 * 5 * 8760)
    assert vendor == pytest.approx(27_500 + 0.7 * 0.1 * 5 * 8760)


def test_rented_vendor_chip_costs_its_rent_over_the_life():
    i = inputs(economics=free_running(rental_usd_per_chip_hour=2.0))
    assert i.lifetimes_usd()[1] == pytest.approx(2.0 * 5 * 8760)


def test_tornado_uses_sourced_ranges_and_sorts_by_swing():
    ranges = {"nre_usd": SensitivityRange(low=80e6, high=250e6, source="EM §3")}
    bars = tornado(inputs(), ranges)
    nre = next(b for b in bars if b.input == "nre_usd")
    assert (nre.low_value, nre.high_value, nre.range_source) == (80e6, 250e6, "EM §3")
    assert nre.breakeven_at_low == pytest.approx(80e6 / 23_500)
    swings = [b.swing for b in bars]
    assert swings == sorted(swings, reverse=True)


def test_tornado_falls_back_to_25_percent_outside_the_sourced_range():
    r = {"nre_usd": SensitivityRange(low=80e6, high=250e6, source="EM §3")}
    assert sensitivity_range("nre_usd", 30e6, r)[:2] == pytest.approx((22.5e6, 37.5e6))


def test_tornado_for_a_rented_vendor_varies_the_rent_not_the_price():
    names = {b.input for b in tornado(inputs(economics=free_running(rental_usd_per_chip_hour=2.0)))}
    assert "rental_usd_per_chip_hour" in names and "vendor_price_usd" not in names


@settings(max_examples=100, deadline=None)
@given(nre=st.floats(1e6, 1e9), dn=st.floats(1e5, 1e8), vendor=st.floats(10_000, 60_000))
def test_breakeven_grows_with_nre_and_falls_with_vendor_price(nre, dn, vendor):
    assert breakeven_fleet(inputs(nre_usd=nre + dn, vendor_price_usd=vendor)) > \
        breakeven_fleet(inputs(nre_usd=nre, vendor_price_usd=vendor))
    assert breakeven_fleet(inputs(nre_usd=nre, vendor_price_usd=vendor + 1000)) < \
        breakeven_fleet(inputs(nre_usd=nre, vendor_price_usd=vendor))


def test_system_share_counts_in_each_chips_lifetime_and_in_the_tornado():
    from tokenfab.cost.system import SystemNeeds
    from tokenfab.cost.tco import default_economics

    e = default_economics().with_overrides(dict(cost_of_capital=0.0, spares_frac=0.0, electricity_usd_per_kwh=0.0,
                                                hosting_usd_per_kw_month=0.0, ops_usd_per_chip_year=0.0), "test")
    small = SystemNeeds(tdp_w=500, scaleout_gb_s=12.5)
    big = SystemNeeds(tdp_w=700, scaleout_gb_s=50, scaleup_gb_s=450, scaleup_domain=8)
    i = inputs(economics=e, custom_system=small, vendor_system=big)
    custom, vendor = i.lifetimes_usd()
    # With nothing but capex over the life, the lifetime is price plus system share.
    from tokenfab.cost.system import system_cost
    assert custom == pytest.approx(4000 + system_cost(small, e).total_usd)
    assert vendor == pytest.approx(27_500 + system_cost(big, e).total_usd)
    bar = next(b for b in tornado(i) if b.input == "system_cost_scale")
    assert (bar.low_value, bar.high_value) == pytest.approx((0.75, 1.25))
