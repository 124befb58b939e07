"""Chip-hour cost and $/Mtoken: capital recovery, parts of the hourly cost, token split by hand."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.catalog import load_chip
from tokenfab.cost.tco import (
    HOURS_PER_YEAR, capital_recovery_factor, chip_hour_cost, default_economics, in_currency, lifetime_cost_usd,
    owned_chip_hour_cost, usd_per_mtok,
)
from tokenfab.specs import ChipSpec, SpecError
from tokenfab.specs.economics import Economics


def econ(**kw) -> Economics:
    """Round numbers so every part can be worked by hand."""
    base = dict(depreciation_years=5, cost_of_capital=0.0, server_and_network_usd_per_chip=0.0, spares_frac=0.0,
                electricity_usd_per_kwh=0.1, pue=1.2, avg_load_frac=0.5, server_power_multiplier=1.0,
                hosting_usd_per_kw_month=100.0, ops_usd_per_chip_year=876.0, cny_per_usd=7.0,
                sources={"default": "test"})
    return Economics(**{**base, **kw})


def chip(price=10_000.0, tdp=1000.0) -> ChipSpec:
    return ChipSpec(id="t", name="t", vendor="t", bf16_tflops=100, hbm_gb=80, hbm_tb_s=2, scaleup_gb_s=100,
                    tdp_w=tdp, price_usd=price, sources={"default": "test"})


def test_capital_recovery_factor_by_hand():
    assert capital_recovery_factor(0.10, 5) == pytest.approx(0.1 * 1.1 ** 5 / (1.1 ** 5 - 1))
    assert capital_recovery_factor(0.10, 5) == pytest.approx(0.263797, abs=1e-6)
    assert capital_recovery_factor(0.0, 5) == pytest.approx(0.2)


def test_owned_chip_hour_by_hand():
    c = owned_chip_hour_cost(10_000, 1000, econ())
    assert c.capex_usd_per_hour == pytest.approx(10_000 / 5 / 8760)     # 0.22831
    assert c.power_usd_per_hour == pytest.approx(1.0 * 0.5 * 1.2 * 0.1)  # 0.06
    assert c.hosting_usd_per_hour == pytest.approx(100 * 12 / 8760)     # 0.13699
    assert c.ops_usd_per_hour == pytest.approx(0.1)
    assert c.total_usd_per_hour == pytest.approx(0.525297, abs=1e-6)
    assert sum(c.parts().values()) == pytest.approx(c.total_usd_per_hour)


def test_capex_includes_server_share_spares_and_cost_of_capital():
    c = owned_chip_hour_cost(10_000, 1000, econ(server_and_network_usd_per_chip=5_000, spares_frac=0.1,
                                                cost_of_capital=0.1))
    assert c.capex_usd == pytest.approx(16_500)
    assert c.capex_usd_per_hour == pytest.approx(16_500 * 0.263797 / 8760, rel=1e-5)


def test_epoch_style_h100_reproduces_economics_table():
    # economics.md §7.4: $27.5k × 1.64 / 0.81 straight-line over 5 y; 1.8× server power, 75 %, PUE 1.25, $0.0826
    e = econ(server_and_network_usd_per_chip=27_500 * 1.64 / 0.81 - 27_500, electricity_usd_per_kwh=0.0826,
             pue=1.25, avg_load_frac=0.75, server_power_multiplier=1.8, hosting_usd_per_kw_month=0,
             ops_usd_per_chip_year=0)
    c = owned_chip_hour_cost(27_500, 700, e)
    assert c.capex_usd_per_hour == pytest.approx(1.27, abs=0.005)
    assert c.power_usd_per_hour == pytest.approx(0.099, abs=0.002)
    assert c.total_usd_per_hour == pytest.approx(1.37, abs=0.005)


def test_rental_replaces_owned_cost():
    c = chip_hour_cost(chip(), econ(rental_usd_per_chip_hour=2.5))
    assert c.basis == "rental" and c.total_usd_per_hour == 2.5 and c.parts() == {"rental": 2.5}


def test_chip_without_price_or_rental_names_the_missing_input():
    with pytest.raises(SpecError, match="price_usd is missing"):
        chip_hour_cost(chip(price=None), econ())


def test_negative_price_is_refused():
    with pytest.raises(SpecError):
        owned_chip_hour_cost(-1, 700, econ())


def test_lifetime_cost_is_hourly_cost_over_the_life():
    e = econ()
    assert lifetime_cost_usd(10_000, 1000, e) == pytest.approx(0.525297 * 5 * HOURS_PER_YEAR, rel=1e-6)
    assert lifetime_cost_usd(10_000, 1000, econ(rental_usd_per_chip_hour=2.0), owned=False) == pytest.approx(2 * 43_800)


def test_usd_per_mtok_by_hand():
    # $3.60/h = $1,000 per 1e6 chip-seconds; 1,000 input tok/s, 100 output tok/s, 25 % of time in prefill
    t = usd_per_mtok(3.6, 1000, 100, 0.25)
    assert t.input_usd_per_mtok == pytest.approx(0.25)
    assert t.output_usd_per_mtok == pytest.approx(7.5)
    assert t.blended_usd_per_mtok == pytest.approx(3.6e6 / 3600 / 1100)  # hourly cost / all tokens


def test_prefix_cache_hits_discount_the_input_price():
    t = usd_per_mtok(3.6, 1000, 100, 0.25, prefix_cache_hit=0.6)
    assert t.input_miss_usd_per_mtok == pytest.approx(0.25)
    assert t.input_usd_per_mtok == pytest.approx(0.1)
    assert t.output_usd_per_mtok == pytest.approx(7.5)


def test_economics_serving_bridge_example():
    # economics.md §9: 8 × H100 at $2.50/h, 10,000 output tok/s aggregate → ≈ $0.56 per M output tokens
    assert usd_per_mtok(2.5, 0, 10_000 / 8, 0.0).output_usd_per_mtok == pytest.approx(0.556, abs=1e-3)


def test_prices_times_tokens_recover_the_hourly_cost():
    t = usd_per_mtok(2.13, 3800, 960, 0.5)
    assert (t.input_usd_per_mtok * 3800 + t.output_usd_per_mtok * 960) * 3600 / 1e6 == pytest.approx(2.13)


def test_usd_per_mtok_rejects_bad_inputs():
    with pytest.raises(SpecError):
        usd_per_mtok(1.0, 100, 0, 0.5)
    with pytest.raises(SpecError):
        usd_per_mtok(1.0, 100, 100, 1.5)


def test_cny_conversion_renames_money_fields():
    out = in_currency({"total_usd_per_hour": 2.0, "basis": "owned"}, econ(currency="CNY"))
    assert out == {"total_cny_per_hour": 14.0, "basis": "owned"}


def test_default_economics_is_the_shipped_us_preset_and_prices_tokens():
    e = default_economics()
    assert e.region == "us" and e.currency == "USD"
    c = chip_hour_cost(load_chip("h100-sxm"), e)
    assert c.total_usd_per_hour > 0
    t = usd_per_mtok(c.total_usd_per_hour, 3800, 960, 0.5)
    # Half the chip-hour over 3,800 input tok/s, half over 960 output tok/s.
    assert t.input_usd_per_mtok == pytest.approx(c.total_usd_per_hour * 0.5 / (3800 * 3600) * 1e6)
    assert t.output_usd_per_mtok == pytest.approx(c.total_usd_per_hour * 0.5 / (960 * 3600) * 1e6)


# ---- laws -------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(h=st.floats(0.01, 100), i=st.floats(1, 1e5), o=st.floats(1, 1e5), s=st.floats(0.01, 0.99),
       k=st.floats(1.01, 10))
def test_more_throughput_means_cheaper_tokens(h, i, o, s, k):
    base = usd_per_mtok(h, i, o, s)
    faster = usd_per_mtok(h, i * k, o * k, s)
    assert faster.input_usd_per_mtok < base.input_usd_per_mtok
    assert faster.output_usd_per_mtok < base.output_usd_per_mtok
    assert faster.blended_usd_per_mtok < base.blended_usd_per_mtok


@settings(max_examples=200, deadline=None)
@given(price=st.floats(0, 1e6), tdp=st.floats(1, 5000), r=st.floats(0, 0.5), years=st.floats(0.5, 15),
       dp=st.floats(1, 1e4))
def test_hourly_cost_is_positive_and_grows_with_price(price, tdp, r, years, dp):
    e = econ(cost_of_capital=r, depreciation_years=years)
    a, b = owned_chip_hour_cost(price, tdp, e), owned_chip_hour_cost(price + dp, tdp, e)
    assert 0 < a.total_usd_per_hour < b.total_usd_per_hour


def test_catalog_chip_capex_carries_its_modeled_system_share():
    # chip_hour_cost prices the system from the chip's own needs: capex = (price + system) × (1 + spares)
    e = default_economics()
    h100 = chip_hour_cost(load_chip("h100-sxm"), e)
    assert h100.system is not None and h100.system.basis == "model"
    assert h100.capex_usd == pytest.approx((30_500 + h100.system_usd) * 1.03)
    assert h100.system_usd == pytest.approx(11_254.89, abs=0.01)  # worked in tests/test_system_cost.py
