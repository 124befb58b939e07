"""The shipped fleet scenarios load, cite their figures, and plan within their caps; the HTML report."""

import numpy as np
import pytest

from tokenfab.catalog import load_chip
from tokenfab.fleet.plan import build_problem, plan
from tokenfab.fleet.scenario import FleetScenario, load_scenario, shipped_scenarios


def test_both_scenarios_ship():
    assert {"cn-hyperscaler-2026", "us-neocloud-2026"} <= set(shipped_scenarios())


@pytest.mark.parametrize("name", ["cn-hyperscaler-2026", "us-neocloud-2026"])
def test_scenario_loads_and_cites_its_figures(name):
    sc, base = load_scenario(name)
    for fc in sc.chips:
        path = str(base / fc.chip) if fc.chip.endswith(".yaml") else fc.chip
        load_chip(path)
    cited = " ".join(sc.sources)
    for field in ("workloads.tokens_per_day", "depreciation_years", "discount_rate"):
        assert field in cited, field
    if sc.budget_by_period or sc.budget_per_period:
        assert "budget" in cited
    if sc.power_cap_mw or sc.power_cap_mw_by_period:
        assert "power_cap" in cited


def test_cn_budget_is_the_seeds_half_of_rmb_160_billion():
    sc, _ = load_scenario("cn-hyperscaler-2026")
    assert sc.currency == "CNY"
    assert sc.budget_by_period["2026"] == pytest.approx(160e9 / 2)
    assert "issue 17 seeds" in sc.sources["budget_by_period"]


def test_unknown_scenario_names_the_shipped_ones():
    with pytest.raises(ValueError, match="shipped: cn-hyperscaler-2026"):
        load_scenario("no-such-scenario")


@pytest.mark.slow
def test_cn_hyperscaler_plan_keeps_its_caps():
    sc, base = load_scenario("cn-hyperscaler-2026")
    p, _ = build_problem(sc, base)
    r = plan(sc, base)
    for t, q in enumerate(r["periods"]):
        assert q["capex_usd"] <= p.budget_usd[t] * (1 + 1e-6)
        assert q["power_mw"] <= p.power_cap_kw[t] / 1000 * (1 + 1e-6)
        assert q["purchases"].get("h20", 0) <= 20000 * (1 + 1e-9)
    # nothing is bought before it is available
    assert "inhouse-gen1" not in r["periods"][5]["purchases"]  # 2027Q2, before its 2027Q3 launch


def test_fleet_html_has_the_figures():
    from tokenfab.fleet.plan import report
    from tokenfab.fleet.lp import solve

    sc = FleetScenario.from_mapping({
        "start": "2027Q1", "periods": 3, "workloads": [{"id": "w", "model": "llama-3.1-8b", "tokens_per_day": 8.64e10}],
        "chips": [{"chip": "h20", "available_from": "2027Q1", "prefill_tok_s_per_chip": {"w": 100.0},
                   "decode_tok_s_per_chip": {"w": 50.0}}]})
    p, extra = build_problem(sc)
    r = report(sc, p, solve(p), extra)
    from tokenfab.report.fleet_html import fleet_html

    page = fleet_html(r)
    assert page.startswith("<!DOCTYPE html>") and page.count("plotly") > 3
    for title in ("Purchases per period", "Installed fleet", "cost per million tokens", "per MW of facility power"):
        assert title in page
    assert np.isfinite(r["npv_usd"])
