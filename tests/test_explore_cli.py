"""`tokenfab design`: registered on a fresh typer app (the lead adds it to the main app)."""

import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from tokenfab.cli import explore

WORKLOAD = {"name": "tiny-mix", "scenarios": [
    {"name": "chat", "weight": 3, "model": "llama-3.2-1b", "input_len": 512, "output_len": 128,
     "slo_ttft_ms": 2000, "slo_tpot_ms": 50},
    {"name": "batch", "weight": 1, "model": "llama-3.1-8b", "input_len": 1024, "output_len": 128}],
    "variants": {"bf16": {"scenarios": {"batch": {"precision": "bf16"}}}}}
SPACE = {"name": "tiny", "base": "h100-sxm-design",
         "fixed": {"vendor": "custom", "memory.hbm_phys": None, "memory.hbm_pin_gbps": None,
                   "memory.hbm_gb_per_stack": None, "die.spare_cores_per_die": 0},
         "parameters": {"die.cores_per_die": {"low": 32, "high": 160, "step": 64},
                        "memory.hbm_stacks": {"low": 1, "high": 5, "step": 2},
                        "clock_mhz": {"choices": [1200, 1800]}},
         "constraints": {"max_die_area_mm2": 700},
         "search": {"population": 4, "max_chips": 4, "fidelity": "roofline"}}


def app():
    a = typer.Typer()
    explore.register(a)
    a.command("noop")(lambda: None)  # a second command keeps `design` a named subcommand
    return a


def run(*args):
    return CliRunner().invoke(app(), list(args))


def inputs(tmp_path):
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(WORKLOAD))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPACE))
    return str(tmp_path / "w.yaml"), str(tmp_path / "s.yaml")


def test_design_json_has_front_feasible_infeasible_best_baseline(tmp_path):
    w, s = inputs(tmp_path)
    r = run("design", w, "--space", s, "--trials", "12", "--seed", "1", "--json", "--quiet")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"front", "feasible", "infeasible", "best", "baseline", "verdict", "sensitivity", "study"} <= out.keys()
    assert out["study"]["trials"] == 12 and out["baseline"]["design_id"] == "h100-sxm"
    assert all(x["reasons"] for x in out["infeasible"])
    assert {x["design_id"] for x in out["front"]} <= {x["design_id"] for x in out["feasible"]}


@pytest.mark.slow
def test_design_table_writes_files_and_resumes(tmp_path):
    w, s = inputs(tmp_path)
    db = str(tmp_path / "study.db")
    args = ["design", w, "--space", s, "--seed", "2", "--storage", db, "--quiet"]
    r = run(*args, "--trials", "6")
    assert r.exit_code == 0, r.output
    assert "Pareto front" in r.stdout and "verdict" in r.stdout
    r = run(*args, "--trials", "10")
    assert r.exit_code == 2 and "--resume" in r.output
    r = run(*args, "--trials", "10", "--resume", "--out", str(tmp_path / "out"), "--html", str(tmp_path / "f.html"),
            "--variant", "bf16", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["study"]["resumed_from"] == 6 and out["study"]["trials"] == 10
    assert out["variant"]["name"] == "bf16" and out["variant"]["moves"]
    assert (tmp_path / "out" / "front.csv").exists() and (tmp_path / "out" / "sensitivity.json").exists()
    assert "plotly" in (tmp_path / "f.html").read_text()
    for path in out["files"]["designs"].values():
        assert yaml.safe_load(open(path))["kind"] == "design"


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    w, s = inputs(tmp_path)
    for args in (["design", "no-such-mix"], ["design", w, "--space", s, "--executor", "mpi"],
                 ["design", w, "--space", s, "--variant", "nope"], ["design", w, "--space", s, "--resume"]):
        r = run(*args, "--trials", "2", "--quiet")
        assert r.exit_code == 2, (args, r.output)
        assert r.output.strip().startswith("error:") and len(r.output.strip().splitlines()) == 1
