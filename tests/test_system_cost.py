"""Each chip's system share: host, power delivery, cooling, scale-out and scale-up networks."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.catalog import load_chip
from tokenfab.cost.data import resolve
from tokenfab.cost.system import (
    SystemNeeds, chip_system_cost, scale_system, scaleup_fabric_of, system_cost, system_parts_usd,
)
from tokenfab.cost.tco import chip_hour_cost, default_economics, owned_chip_hour_cost
from tokenfab.specs import SpecError
from tokenfab.specs.economics import Economics, SystemCostSpec


def spec(**kw) -> SystemCostSpec:
    """Round coefficients so every part can be worked by hand."""
    base = dict(host_usd_per_server=16_000, chips_per_host=8, power_delivery_usd_per_w=0.5,
                air_cooling_usd_per_w=0.1, liquid_cooling_usd_per_w=0.5, liquid_cooling_above_w=1000,
                nic_usd_per_gb_s=20, scaleout_switch_port_usd_per_gb_s=10, scaleout_switch_ports_per_endpoint=3,
                scaleout_optics_usd_per_gb_s=50, scaleup_switched_usd_per_gb_s=4, scaleup_direct_usd_per_gb_s=1,
                scaleup_board_chips=8, scaleup_rack_chips=72, scaleup_rack_factor=1.5, scaleup_multirack_factor=3,
                integration_markup_frac=0.25, sources={"default": "test"})
    return SystemCostSpec(**{**base, **kw})


def econ(**kw) -> Economics:
    base = dict(depreciation_years=5, cost_of_capital=0.0, spares_frac=0.0, electricity_usd_per_kwh=0.1, pue=1.2,
                avg_load_frac=0.5, server_power_multiplier=1.0, hosting_usd_per_kw_month=100.0,
                ops_usd_per_chip_year=876.0, cny_per_usd=7.0, system=spec(), sources={"default": "test"})
    return Economics(**{**base, **kw})


def test_parts_by_hand():
    # 700 W air-cooled chip, 50 GB/s scale-out, 400 GB/s switched scale-up in an 8-chip board
    p = system_parts_usd(spec(), 700, 50, 400, 8, "switched")
    assert p["host"] == 2000                       # 16,000 / 8
    assert p["power_delivery"] == pytest.approx(350)  # 700 × 0.5
    assert p["cooling"] == pytest.approx(70)       # 700 × 0.1 (air)
    assert p["nic"] == 1000                        # 50 × 20
    assert p["integration"] == pytest.approx(855)  # 0.25 × (2000 + 350 + 70 + 1000)
    assert p["scaleout_network"] == 4000           # 50 × (3 × 10 + 50)
    assert p["scaleup_fabric"] == 1600             # 400 × 4 × 1
    assert p["total"] == pytest.approx(9875)        # 2,000 + 350 + 70 + 1,000 + 855 + 4,000 + 1,600
    assert not p["liquid"]


def test_liquid_cooling_rack_domain_and_direct_fabric_by_hand():
    p = system_parts_usd(spec(), 1200, 50, 900, 72, "switched")
    assert p["liquid"] and p["cooling"] == pytest.approx(600)        # 1,200 × 0.5
    assert p["scaleup_fabric"] == pytest.approx(900 * 4 * 1.5)       # rack-wide: × 1.5
    assert system_parts_usd(spec(), 700, 50, 400, 256, "direct")["scaleup_fabric"] == pytest.approx(400 * 1 * 3)
    assert system_parts_usd(spec(), 700, 50, 400, 2, "switched")["scaleup_fabric"] == pytest.approx(400)  # a pair
    assert system_parts_usd(spec(), 700, 50, 400, 1, "switched")["scaleup_fabric"] == 0               # alone
    assert system_parts_usd(spec(), 700, 50, 32, 8, "none")["scaleup_fabric"] == 0                    # PCIe card


def test_parts_take_arrays():
    p = system_parts_usd(spec(), [500, 1500], 50, 0, 1)
    assert p["cooling"].tolist() == pytest.approx([50, 750])


def test_shipped_hgx_h100_by_hand():
    # host 19,439/8 = 2,429.9; power 700 × 0.45 = 315; air 700 × 0.15 = 105; NIC 50 × 27.27 = 1,363.5;
    # integration 0.3 × 4,213.4 = 1,264.0; network 50 × (3 × 11.25 + 51.2) = 4,247.5; NVSwitch 450 × 3.4 = 1,530
    s = chip_system_cost(load_chip("h100-sxm"), default_economics())
    assert (s.basis, s.cooling, s.scaleup_fabric) == ("model", "air", "switched")
    assert s.integration_usd == pytest.approx(1264.01, abs=0.01)
    assert s.total_usd == pytest.approx(11_254.89, abs=0.01)
    assert sum(s.parts().values()) == pytest.approx(s.total_usd)
    # The cluster cost sheet (EM §7.3), 8,192-GPU row without its facility column: node $300k/8 +
    # switches and cables $4,247.5 per GPU, less the catalog price $30.5k = $11,247.5.
    assert s.total_usd == pytest.approx(300_000 / 8 + 4_247.5 - 30_500, rel=0.10)


def test_low_power_card_system_is_well_below_an_h100s():
    e = default_economics()
    card = SystemNeeds(tdp_w=75, scaleout_gb_s=12.5, scaleup_gb_s=32, scaleup_domain=8, scaleup_fabric="none")
    h100 = chip_system_cost(load_chip("h100-sxm"), e).total_usd
    assert system_cost(card, e).total_usd < 0.5 * h100
    assert chip_system_cost(load_chip("l4"), e).total_usd < 0.6 * h100


def test_nvl72_costs_more_per_chip_than_hgx():
    e = default_economics()
    # GB200 as a bare chip (its catalog price is a rack share that already holds the system).
    bare = load_chip("gb200").model_copy(update={"price_includes_system": False})
    gb200, h100 = chip_system_cost(bare, e), chip_system_cost(load_chip("h100-sxm"), e)
    assert gb200.cooling == "liquid" and gb200.scaleup_fabric_usd > 2 * h100.scaleup_fabric_usd
    assert gb200.total_usd > h100.total_usd


def test_flat_override_is_respected():
    e = econ(server_and_network_usd_per_chip=21_500)
    s = system_cost(SystemNeeds(tdp_w=75), e)
    assert (s.basis, s.total_usd, s.parts()) == ("flat", 21_500, {"flat": 21_500})
    c = owned_chip_hour_cost(10_000, 1000, e)
    assert c.capex_usd == 31_500 and c.system_usd == 21_500


def test_user_file_with_a_flat_number_still_prices_flat(tmp_path):
    f = tmp_path / "econ.yaml"
    f.write_text("server_and_network_usd_per_chip: 21500\n")
    e = resolve(f).economics
    h100, l4 = (chip_hour_cost(load_chip(c), e).system_usd for c in ("h100-sxm", "l4"))
    assert h100 == l4 == 21_500


def test_user_file_merges_system_coefficients(tmp_path):
    f = tmp_path / "econ.yaml"
    f.write_text("system:\n  chips_per_host: 4\n")
    e = resolve(f).economics
    assert e.system.chips_per_host == 4 and e.system.source_of("chips_per_host") == str(f)
    assert e.system.host_usd_per_server == default_economics().system.host_usd_per_server


def test_economics_without_any_system_price_is_refused():
    with pytest.raises(SpecError):
        Economics.from_mapping(dict(depreciation_years=5, cost_of_capital=0, spares_frac=0, electricity_usd_per_kwh=0.1,
                                    pue=1.2, avg_load_frac=0.5, server_power_multiplier=1, hosting_usd_per_kw_month=0,
                                    ops_usd_per_chip_year=0, cny_per_usd=7, sources={"default": "t"}))


def test_orderings_that_keep_the_cost_monotonic_are_enforced():
    with pytest.raises(ValueError):
        spec(liquid_cooling_usd_per_w=0.05)
    with pytest.raises(ValueError):
        spec(scaleup_direct_usd_per_gb_s=5)
    with pytest.raises(ValueError):
        spec(scaleup_multirack_factor=1.2)


def test_bad_needs_are_refused():
    with pytest.raises(SpecError):
        system_parts_usd(spec(), 0, 50, 0, 1)
    with pytest.raises(SpecError):
        system_parts_usd(spec(), 100, 50, 0, 1, "optical")


def test_fabric_read_from_catalog_interconnect_text():
    kinds = {c: chip_system_cost(load_chip(c), default_economics()).scaleup_fabric
             for c in ("h100-sxm", "gb200", "mi300x", "tpu-v5e", "l4", "h100-nvl", "ascend-910c")}
    assert kinds == {"h100-sxm": "switched", "gb200": "switched", "mi300x": "direct", "tpu-v5e": "direct",
                     "l4": "none", "h100-nvl": "direct", "ascend-910c": "switched"}
    assert scaleup_fabric_of("") == "switched"


def test_scaling_the_system_scales_every_part():
    e = default_economics()
    base, double = (chip_system_cost(load_chip("gb200"), scale_system(e, k)) for k in (1.0, 2.0))
    assert double.total_usd == pytest.approx(2 * base.total_usd)
    assert scale_system(econ(server_and_network_usd_per_chip=1000), 1.5).server_and_network_usd_per_chip == 1500


# ---- laws -------------------------------------------------------------------------------------

_fabric = st.sampled_from(["switched", "direct", "none"])


@settings(max_examples=300, deadline=None)
@given(tdp=st.floats(1, 3000), dt=st.floats(0.1, 1000), out=st.floats(0, 200), up=st.floats(0, 2000),
       dom=st.integers(1, 10_000), fab=_fabric)
def test_system_cost_never_falls_as_tdp_rises(tdp, dt, out, up, dom, fab):
    s = default_economics().system
    a = system_parts_usd(s, tdp, out, up, dom, fab)["total"]
    b = system_parts_usd(s, tdp + dt, out, up, dom, fab)["total"]
    assert b > a


@settings(max_examples=300, deadline=None)
@given(tdp=st.floats(1, 3000), out=st.floats(0, 200), d_out=st.floats(0.1, 200), up=st.floats(0, 2000),
       d_up=st.floats(0.1, 2000), dom=st.integers(1, 10_000), d_dom=st.integers(0, 10_000), fab=_fabric)
def test_system_cost_never_falls_with_more_bandwidth_or_a_larger_domain(tdp, out, d_out, up, d_up, dom, d_dom, fab):
    s = default_economics().system
    base = system_parts_usd(s, tdp, out, up, dom, fab)["total"]
    assert system_parts_usd(s, tdp, out + d_out, up, dom, fab)["total"] > base
    assert system_parts_usd(s, tdp, out, up + d_up, dom, fab)["total"] >= base
    assert system_parts_usd(s, tdp, out, up, dom + d_dom, fab)["total"] >= base
    if fab != "none" and dom > 1:
        assert system_parts_usd(s, tdp, out, up + d_up, dom, fab)["total"] > base


@settings(max_examples=200, deadline=None)
@given(tdp=st.floats(1, 3000), out=st.floats(0, 200), up=st.floats(0, 2000), dom=st.integers(1, 10_000))
def test_a_switched_fabric_costs_at_least_a_direct_one(tdp, out, up, dom):
    s = default_economics().system
    switched, direct, none = (system_parts_usd(s, tdp, out, up, dom, f)["total"] for f in ("switched", "direct", "none"))
    assert switched >= direct >= none
