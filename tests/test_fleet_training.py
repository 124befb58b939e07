"""Training demand in a fleet plan: chips = tokens trained per second / tokens/s a chip trains."""

import json

import pytest
from typer.testing import CliRunner

from tokenfab.catalog import load_chip
from tokenfab.cli import app
from tokenfab.fleet.capacity import training_capacity
from tokenfab.fleet.plan import plan
from tokenfab.fleet.scenario import FleetScenario
from tokenfab.train import TrainingJob, estimate_training

YEAR_S = 8760 * 3600.0


def _scenario(**kw) -> dict:
    """One training workload, its rate per chip given: 1,000 tok/s per H20. Training 8760 × 3600 × 1e6
    tokens a year = 1e6 tokens/s → 1e6 / 1,000 = 1,000 chips."""
    base = {
        "id": "train-hand", "start": "2027Q1", "periods": 2, "economics_preset": "us",
        "workloads": [{"id": "pretrain", "kind": "training", "model": "llama-3.1-8b",
                       "training_tokens_per_year": YEAR_S * 1e6}],
        "chips": [{"chip": "h20", "available_from": "2027Q1", "prefill_tok_s_per_chip": {"pretrain": 1000.0}}],
    }
    base.update(kw)
    return base


def test_training_demand_over_capacity_is_the_chips_bought():
    r = plan(FleetScenario.from_mapping(_scenario()))
    assert r["periods"][0]["purchases"]["h20"] == pytest.approx(1000, rel=1e-6)
    assert r["periods"][0]["serving"]["h20"]["pretrain"] == {"training": pytest.approx(1000, rel=1e-6)}
    # H20: 400 W × 1.8 server multiplier × PUE 1.25 = 0.9 kW per chip → 0.9 MW
    assert r["periods"][0]["power_mw"] == pytest.approx(0.9, rel=1e-9)


def test_training_and_serving_share_a_fleet_additively():
    """Serving alone (prefill 100, decode 50 tok/s/chip; 1e6 + 1e6 tok/s) needs 10,000 + 20,000 chips;
    adding the 1,000-chip training workload buys 31,000."""
    sc = _scenario()
    sc["workloads"].append({"id": "chat", "model": "llama-3.1-8b", "input_len": 1000, "output_len": 1000,
                            "tokens_per_day": 86400 * 2e6})
    sc["chips"][0].update(prefill_tok_s_per_chip={"pretrain": 1000.0, "chat": 100.0},
                          decode_tok_s_per_chip={"chat": 50.0})
    r = plan(FleetScenario.from_mapping(sc))
    assert r["periods"][0]["purchases"]["h20"] == pytest.approx(31000, rel=1e-6)


def test_growth_and_max_tokens_with_a_power_cap():
    # growth 1.0 a year: 2027Q2 trains 2^0.25 × as much → 1000 × 1.189 = 1,189 chips
    r = plan(FleetScenario.from_mapping(_scenario(workloads=[
        {"id": "pretrain", "kind": "training", "model": "llama-3.1-8b", "training_tokens_per_year": YEAR_S * 1e6,
         "growth_per_year": 1.0}])))
    assert r["periods"][1]["fleet"]["h20"] == pytest.approx(1000 * 2 ** 0.25, rel=1e-6)
    # 0.45 MW / 0.9 kW = 500 chips: half the training demand
    r = plan(FleetScenario.from_mapping(_scenario(objective="max_tokens", power_cap_mw=0.45)))
    assert r["periods"][0]["served_tok_s"] == pytest.approx(0.5e6, rel=1e-6)


def test_capacity_is_the_run_rate_of_estimate_training_per_chip_used():
    chip = load_chip("h100-sxm")
    cap = training_capacity("llama-3.2-1b", chip, 16, "bf16", 4096, 1e11, use_disk=False)
    r = estimate_training(__import__("tokenfab.catalog", fromlist=["x"]).load_model("llama-3.2-1b"), chip, 16,
                          TrainingJob(tokens=1e11))
    assert cap.prefill_tok_s_per_chip == pytest.approx(1e11 / (r["days"] * 86400) / r["chips_used"], rel=1e-9)
    assert cap.prefill_tok_s_per_chip <= r["tokens_s_per_chip"] * (1 + 1e-9)  # goodput only slows it
    assert "training estimate" in cap.source


def test_a_model_that_fits_no_chip_is_named_as_unservable():
    sc = _scenario(workloads=[{"id": "big", "kind": "training", "model": "deepseek-v3",
                               "training_tokens_per_year": 1e12, "chips_per_run": 1}],
                   chips=[{"chip": "l4", "available_from": "2027Q1"}])
    with pytest.raises(ValueError, match="big"):
        plan(FleetScenario.from_mapping(sc))


def test_bad_training_workloads_are_one_line_exit_2(tmp_path):
    import yaml

    for wl, word in [({"id": "t", "kind": "training", "model": "llama-3.1-8b"}, "training_tokens_per_year"),
                     ({"id": "t", "kind": "training", "model": "llama-3.1-8b", "training_tokens_per_year": -1},
                      "training_tokens_per_year"),
                     ({"id": "t", "kind": "training", "model": "llama-3.1-8b", "training_tokens_per_year": 1e12,
                       "precision": "int4"}, "precision"),
                     ({"id": "t", "model": "llama-3.1-8b"}, "tokens_per_day")]:
        f = tmp_path / "s.yaml"
        f.write_text(yaml.safe_dump(_scenario(workloads=[wl])))
        res = CliRunner().invoke(app, ["fleet", str(f), "--json"])
        assert res.exit_code == 2, res.output
        assert word in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_cli_json_names_the_training_phase(tmp_path):
    import yaml

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(_scenario()))
    res = CliRunner().invoke(app, ["fleet", str(f), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["capacity_tok_s_per_chip"]["h20"]["pretrain"]["training_tok_s_per_chip"] == 1000.0


def test_min_served_frac_commits_the_training_plan_under_max_tokens():
    """Training 1e5 tok/s at 10 tok/s per chip = 10,000 chips; chat (prefill 100, decode 50; 1e6 + 1e6 tok/s)
    needs 30,000, i.e. 66.7 tok/s per chip. An 18 MW cap buys 20,000 H20 (0.9 kW each). Maximizing tokens
    alone gives them all to chat (2/3 of it: 1.333e6 tok/s); committing the training plan leaves chat
    10,000 chips (1/3: 0.667e6) plus training's 1e5."""
    def sc(frac):
        s = _scenario(objective="max_tokens", power_cap_mw=18.0, workloads=[
            {"id": "pretrain", "kind": "training", "model": "llama-3.1-8b", "training_tokens_per_year": YEAR_S * 1e5,
             "min_served_frac": frac},
            {"id": "chat", "model": "llama-3.1-8b", "input_len": 1000, "output_len": 1000,
             "tokens_per_day": 86400 * 2e6}])
        s["chips"][0].update(prefill_tok_s_per_chip={"pretrain": 10.0, "chat": 100.0},
                             decode_tok_s_per_chip={"chat": 50.0})
        return plan(FleetScenario.from_mapping(s))["periods"][0]

    free, committed = sc(0.0), sc(1.0)
    assert free["served_tok_s"] == pytest.approx(2e6 * 2 / 3, rel=1e-6)
    assert "pretrain" not in free["serving"].get("h20", {})
    assert committed["served_tok_s"] == pytest.approx(2e6 / 3 + 1e5, rel=1e-6)
    assert committed["serving"]["h20"]["pretrain"]["training"] == pytest.approx(10000, rel=1e-6)
