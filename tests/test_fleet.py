"""Fleet planning: the LP against brute force, caps never broken, a cheaper chip never costs more,
one-line infeasibility, the CLI's JSON."""

import itertools
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tokenfab.cli import app
from tokenfab.fleet.lp import Infeasible, PlanProblem, solve
from tokenfab.fleet.plan import build_problem, plan
from tokenfab.fleet.scenario import FleetScenario


def tiny(**kw) -> PlanProblem:
    """Two chips, one workload, two quarters. Chip a: prefill 100, decode 40 tok/s, $10k, 1 kW;
    chip b: prefill 300, decode 60 tok/s, $25k, 2 kW."""
    base = dict(chips=["a", "b"], workloads=["w"], periods=["2026Q1", "2026Q2"], period_years=0.25,
                cap=np.array([[[100.0, 40.0]], [[300.0, 60.0]]]),
                demand=np.array([[[400.0, 500.0], [200.0, 260.0]]]),
                capex_usd=np.array([[10e3, 10e3], [25e3, 25e3]]), opex_usd=np.array([300.0, 500.0]),
                kw=np.array([1.0, 2.0]), available=np.ones((2, 2), bool), life_years=4.0, discount_rate=0.10,
                integer_units=True)
    base.update(kw)
    return PlanProblem(**base)


def _servable(n, cap, dem_p, dem_d) -> bool:
    """Oracle: can n[c] units split between prefill and decode (continuously) meet both demands?
    Give decode to the chips with the highest decode/prefill ratio first (fractional knapsack),
    only as much as decode needs, and check what is left for prefill."""
    order = sorted(range(len(n)), key=lambda c: -cap[c, 1] / cap[c, 0])
    need_d, prefill = dem_d, 0.0
    for c in order:
        take = min(n[c], max(need_d, 0.0) / cap[c, 1])
        need_d -= take * cap[c, 1]
        prefill += (n[c] - take) * cap[c, 0]
    return need_d <= 1e-9 and prefill >= dem_p - 1e-9


def _pv_by_hand(p: PlanProblem, buy) -> float:
    """Present value of a purchase plan, written out: a unit bought in quarter τ costs its capex
    discounted to the start, less its straight-line book value left at the end of the 2-quarter
    horizon (life 4 y: bought at τ=0 it keeps 1 − 0.5/4 = 87.5 %, at τ=1 1 − 0.25/4 = 93.75 %)
    discounted from 0.5 y, plus its opex in every quarter from τ on."""
    d = lambda y: 1.10 ** -y  # noqa: E731
    book = {0: 0.875, 1: 0.9375}
    total = 0.0
    for c in range(2):
        for tau in range(2):
            unit = p.capex_usd[c, tau] * (d(0.25 * tau) - book[tau] * d(0.5))
            unit += sum(p.opex_usd[c] * d(0.25 * t) for t in range(tau, 2))
            total += buy[c][tau] * unit
    return total


def test_plan_matches_brute_force_on_a_tiny_case():
    p = tiny(power_cap_kw=np.array([30.0, 30.0]))
    best = None
    for b in itertools.product(range(0, 12), repeat=4):  # (a@0, a@1, b@0, b@1)
        buy = [[b[0], b[1]], [b[2], b[3]]]
        fleet = [[buy[c][0], buy[c][0] + buy[c][1]] for c in range(2)]
        ok = all(_servable([fleet[0][t], fleet[1][t]], p.cap[:, 0], p.demand[0, 0, t], p.demand[0, 1, t])
                 and fleet[0][t] * 1.0 + fleet[1][t] * 2.0 <= 30.0 for t in range(2))
        if ok:
            cost = _pv_by_hand(p, buy)
            if best is None or cost < best[0] - 1e-6:
                best = (cost, buy)
    sol = solve(p)
    assert sol.cost_pv_usd == pytest.approx(best[0], rel=1e-9)
    assert _pv_by_hand(p, sol.buy.tolist()) == pytest.approx(best[0], rel=1e-9)


def _random_problem(seed: int, n_chips: int = 4, T: int = 6) -> PlanProblem:
    rng = np.random.default_rng(seed)
    cap = rng.uniform(50, 500, size=(n_chips, 2, 2))
    cap[rng.uniform(size=(n_chips, 2)) < 0.2] = 0.0  # some chips cannot serve some workloads
    cap[0] = rng.uniform(50, 500, size=(2, 2))  # one chip serves everything
    avail = np.ones((n_chips, T), bool)
    avail[1:, :2] = rng.uniform(size=(n_chips - 1, 2)) < 0.5
    return PlanProblem(
        chips=[f"c{i}" for i in range(n_chips)], workloads=["w0", "w1"], periods=[f"P{t}" for t in range(T)],
        period_years=0.25, cap=cap, demand=rng.uniform(1e3, 5e3, size=(2, 2, T)) * (1.1 ** np.arange(T)),
        capex_usd=rng.uniform(5e3, 40e3, size=(n_chips, 1)) * np.ones((1, T)),
        opex_usd=rng.uniform(100, 900, size=n_chips), kw=rng.uniform(0.5, 2.0, size=n_chips), available=avail,
        life_years=1.0, discount_rate=0.08, buy_cap=np.where(rng.uniform(size=(n_chips, T)) < 0.3, 30.0, np.inf),
        vendor_caps=[("v", [0, 1], np.full(T, 60.0))], power_cap_kw=np.full(T, 400.0),
        budget_usd=np.full(T, 3e6))


@pytest.mark.parametrize("seed", range(8))
def test_a_plan_never_breaks_a_cap(seed):
    p = _random_problem(seed)
    try:
        sol = solve(p)
    except Infeasible:
        pytest.skip("this draw has no plan")
    tol = 1e-6
    assert (sol.buy >= -tol).all()
    assert (sol.buy[~p.available] <= tol).all(), "bought before it was available"
    assert (sol.buy <= p.buy_cap + tol).all()
    assert (sol.buy[[0, 1]].sum(axis=0) <= 60 + tol).all()
    assert (sol.fleet.T @ p.kw <= 400 * (1 + 1e-9) + tol).all()
    assert ((sol.buy * p.capex_usd).sum(axis=0) <= 3e6 * (1 + 1e-9)).all()
    assert (sol.alloc.sum(axis=(1, 2)) <= sol.fleet * (1 + 1e-9) + tol).all()
    served = np.einsum("cwp,cwpt->wpt", p.cap, sol.alloc)
    assert (served >= p.demand * (1 - 1e-7)).all()
    # life 1 y = 4 quarters: a unit bought in P0 is gone in P4
    assert sol.fleet[:, 4] == pytest.approx(sol.buy[:, 1:5].sum(axis=1))


@pytest.mark.parametrize("seed", range(8))
def test_adding_a_cheaper_chip_never_raises_the_optimal_cost(seed):
    p = _random_problem(seed)
    try:
        before = solve(p).cost_pv_usd
    except Infeasible:
        pytest.skip("this draw has no plan")
    rng = np.random.default_rng(100 + seed)
    k = int(rng.integers(len(p.chips)))
    grow = lambda a: np.concatenate([a, a[k:k + 1]])  # noqa: E731
    cheaper = PlanProblem(**{**p.__dict__, "chips": p.chips + ["new"], "cap": grow(p.cap),
                             "capex_usd": grow(p.capex_usd) * np.r_[np.ones(len(p.chips)), 0.8][:, None],
                             "opex_usd": grow(p.opex_usd), "kw": grow(p.kw), "available": grow(p.available),
                             "buy_cap": grow(p.buy_cap)})
    assert solve(cheaper).cost_pv_usd <= before * (1 + 1e-9)


def _scenario(**kw) -> dict:
    """H20 with given capacity: prefill 100, decode 50 tok/s per chip; demand 2e6 tok/s on average
    (1e6 prompt, 1e6 generated: lengths 1000/1000) → 10,000 + 20,000 = 30,000 chips."""
    base = {
        "id": "hand", "start": "2027Q1", "periods": 2, "economics_preset": "us",
        "workloads": [{"id": "w", "model": "llama-3.1-8b", "input_len": 1000, "output_len": 1000,
                       "tokens_per_day": 86400 * 2e6}],
        "chips": [{"chip": "h20", "available_from": "2027Q1",
                   "prefill_tok_s_per_chip": {"w": 100.0}, "decode_tok_s_per_chip": {"w": 50.0}}],
    }
    base.update(kw)
    return base


def test_given_capacity_sizes_the_fleet_by_hand():
    sc = FleetScenario.from_mapping(_scenario())
    r = plan(sc)
    assert r["periods"][0]["purchases"]["h20"] == pytest.approx(30000, rel=1e-6)
    assert r["periods"][1].get("purchases", {}).get("h20", 0) == pytest.approx(0, abs=1e-6)
    # H20: 400 W × 1.8 server multiplier × PUE 1.25 = 0.9 kW per chip → 27 MW
    assert r["periods"][0]["power_mw"] == pytest.approx(27.0, rel=1e-9)
    assert r["periods"][0]["served_tok_s"] == pytest.approx(2e6)


def test_infeasible_scenario_is_one_line_naming_the_power_cap_and_exit_2(tmp_path):
    import yaml

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(_scenario(power_cap_mw=20.0)))
    res = CliRunner().invoke(app, ["fleet", str(f)])  # in process: `python -m tokenfab` is tests/test_cli.py's
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    # 30,000 chips × 0.9 kW = 27 MW against a 20 MW cap: 7 MW short, in the first quarter
    assert "demand in 2027Q1 exceeds the power cap by 7.0 MW" in lines[0]


def test_budget_shortfall_is_named_with_its_amount():
    sc = FleetScenario.from_mapping(_scenario(budget_per_period=1e6))
    with pytest.raises(ValueError, match="demand in 2027Q1 exceeds the capital budget by"):
        plan(sc)


def test_max_tokens_within_a_budget_serves_what_the_budget_buys():
    sc = FleetScenario.from_mapping(_scenario(objective="max_tokens", power_cap_mw=9.0))
    r = plan(sc)
    # 9 MW / 0.9 kW = 10,000 chips of the 30,000 needed: a third of the demand
    assert r["periods"][0]["served_tok_s"] == pytest.approx(2e6 / 3, rel=1e-6)
    assert r["binding"][0]["constraint"] == "power"


def test_cli_json_has_the_keys_the_issue_lists(tmp_path):
    import yaml

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(_scenario(power_cap_mw=30.0)))
    res = CliRunner().invoke(app, ["fleet", str(f), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in ("periods", "npv_usd", "usd_per_mtok", "tok_s_per_mw", "binding"):
        assert key in out
    for key in ("purchases", "fleet", "power_mw", "capex_usd", "opex_usd", "demand_tok_s", "served_tok_s"):
        assert key in out["periods"][0]


def test_supply_cap_binds_and_has_a_shadow_price():
    sc = FleetScenario.from_mapping(_scenario(
        chips=[{"chip": "h20", "available_from": "2027Q1", "max_units_per_period": 20000,
                "prefill_tok_s_per_chip": {"w": 100.0}, "decode_tok_s_per_chip": {"w": 50.0}},
               {"chip": "b200", "available_from": "2027Q1",
                "prefill_tok_s_per_chip": {"w": 200.0}, "decode_tok_s_per_chip": {"w": 60.0}}]))
    p, _ = build_problem(sc)
    sol = solve(p)
    assert sol.buy[0, 0] == pytest.approx(20000)  # all the (cheaper per token) H20s there are
    assert any(b["constraint"] == "chip supply" and b["name"] == "h20" and b["shadow_price"] > 0 for b in sol.binding)


def test_domestic_memory_supply_caps_the_chips_made_with_it():
    """A chip made with domestic HBM (6 stacks a unit) can be bought only as far as the stacks go:
    120,000 stacks a quarter / 6 = 20,000 units; the other 10,000 of the 30,000 needed come from a
    chip without that memory, and the memory's shadow price is reported."""
    h20 = {"prefill_tok_s_per_chip": {"w": 100.0}, "decode_tok_s_per_chip": {"w": 50.0}}
    sc = FleetScenario.from_mapping(_scenario(
        chips=[{"chip": "h20", "label": "domestic", "available_from": "2027Q1", "memory": "cxmt-hbm2e",
                "memory_stacks": 6, **h20},
               {"chip": "h20", "label": "imported", "available_from": "2027Q1", "price": 40000.0, **h20}],
        memory_supply=[{"memory": "cxmt-hbm2e", "stacks_per_period": 120000}]))
    p, _ = build_problem(sc)
    sol = solve(p)
    assert sol.buy[0, 0] == pytest.approx(20000) and sol.buy[1, 0] == pytest.approx(10000)
    assert 6 * sol.buy[0].max() <= 120000 * (1 + 1e-9)
    assert any(b["constraint"] == "memory supply" and b["name"] == "cxmt-hbm2e" and b["shadow_price"] > 0
               for b in sol.binding)


def test_memory_shortfall_is_named_in_one_line():
    sc = FleetScenario.from_mapping(_scenario(
        chips=[{"chip": "h20", "available_from": "2027Q1", "memory": "cxmt-hbm2e", "memory_stacks": 6,
                "prefill_tok_s_per_chip": {"w": 100.0}, "decode_tok_s_per_chip": {"w": 50.0}}],
        memory_supply=[{"memory": "cxmt-hbm2e", "stacks_per_period": 120000}]))
    # 30,000 units x 6 stacks = 180,000 stacks against 120,000: 60,000 short in the first quarter
    with pytest.raises(ValueError, match="demand in 2027Q1 exceeds the cxmt-hbm2e memory supply by 60,000 stacks"):
        plan(sc)


def test_no_chip_before_its_memory_is_made_in_volume():
    """cxmt-hbm2e is in volume from mid-2024 (economics.yaml): a plan starting in 2024Q1 cannot buy
    a chip made with it until 2024Q3."""
    sc = FleetScenario.from_mapping(_scenario(
        start="2024Q1", periods=4,
        chips=[{"chip": "h20", "available_from": "2024Q1", "memory": "cxmt-hbm2e", "memory_stacks": 6,
                "prefill_tok_s_per_chip": {"w": 100.0}, "decode_tok_s_per_chip": {"w": 50.0}},
               {"chip": "b200", "available_from": "2024Q1",
                "prefill_tok_s_per_chip": {"w": 100.0}, "decode_tok_s_per_chip": {"w": 50.0}}]))
    p, _ = build_problem(sc)
    assert p.available[0].tolist() == [False, False, True, True] and p.available[1].all()


def test_memory_supply_must_name_a_chip_memory():
    with pytest.raises(Exception, match="no chip names that memory"):
        FleetScenario.from_mapping(_scenario(memory_supply=[{"memory": "cxmt-hbm2e", "stacks_per_period": 1}]))


def test_domestic_packaging_supply_caps_the_chips_assembled_with_it():
    """25,000 domestic 2.5D packages a quarter: at most 25,000 units of the chip assembled with
    them; the other 5,000 of the 30,000 needed come from a chip without that packaging; a plan
    with no other chip is short by 5,000 packages, named in one line."""
    h20 = {"prefill_tok_s_per_chip": {"w": 100.0}, "decode_tok_s_per_chip": {"w": 50.0}}
    domestic = {"chip": "h20", "label": "domestic", "available_from": "2027Q1", "packaging": "domestic-2.5d", **h20}
    supply = [{"packaging": "domestic-2.5d", "units_per_period": 25000}]
    sc = FleetScenario.from_mapping(_scenario(
        chips=[domestic, {"chip": "h20", "label": "other", "available_from": "2027Q1", "price": 40000.0, **h20}],
        packaging_supply=supply))
    sol = solve(build_problem(sc)[0])
    assert sol.buy[0, 0] == pytest.approx(25000) and sol.buy[1, 0] == pytest.approx(5000)
    with pytest.raises(ValueError, match="exceeds the domestic-2.5d packaging supply by 5,000 packages"):
        plan(FleetScenario.from_mapping(_scenario(chips=[domestic], packaging_supply=supply)))


def test_export_controls_keep_controlled_us_chips_out_of_a_china_plan():
    """B200 screens 3A090.a (TPP far above 4,800) and is a US export: excluded for China, so the
    plan buys the H20 (below 3A090.a/.b) although the B200 would serve cheaper; with 8,000 licensed
    units a period the B200 comes back, never past the licence."""
    h20 = {"chip": "h20", "available_from": "2027Q1", "prefill_tok_s_per_chip": {"w": 100.0},
           "decode_tok_s_per_chip": {"w": 50.0}}
    b200 = {"chip": "b200", "available_from": "2027Q1", "price": 1000.0, "prefill_tok_s_per_chip": {"w": 1000.0},
            "decode_tok_s_per_chip": {"w": 500.0}}
    out = plan(FleetScenario.from_mapping(_scenario(chips=[h20, b200], export_controls={"destination": "china"})))
    assert out["periods"][0]["purchases"].get("b200", 0) == pytest.approx(0, abs=1e-6)
    assert out["periods"][0]["purchases"]["h20"] == pytest.approx(30000, rel=1e-6)
    assert out["chips"]["b200"]["restricted"].startswith("3A090.a: excluded") and out["chips"]["h20"]["restricted"] is None
    capped = FleetScenario.from_mapping(_scenario(chips=[h20, b200], export_controls={
        "destination": "china", "controlled": "cap", "licensed_units_per_period": 8000}))
    sol = solve(build_problem(capped)[0])
    assert 0 < sol.buy[1, 0] <= 8000 * (1 + 1e-9)
    # a domestic chip is no US export, whatever its TPP: Ascend 910C stays buyable
    ascend = {**h20, "chip": "ascend-910c"}
    p, _ = build_problem(FleetScenario.from_mapping(_scenario(chips=[ascend], export_controls={"destination": "china"})))
    assert p.available.all()
