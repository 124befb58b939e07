"""`tokenfab chip` and the existing commands on a design file."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from tokenfab.cli import app
from tokenfab.design import load_design

runner = CliRunner()
KEYS = {"die_area_mm2", "tdp_w", "bf16_tflops", "feasible", "infeasible_reasons", "area_mm2_breakdown",
        "power_w_breakdown", "unit_cost_usd"}


def invoke(*args):
    return runner.invoke(app, list(args))


def test_chip_json_has_the_documented_keys():
    r = invoke("chip", "h100-sxm-design", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert KEYS <= out.keys()
    assert out["feasible"] is True and out["infeasible_reasons"] == []
    assert out["bf16_tflops"] > 989 and out["unit_cost_usd"] > 1000
    assert abs(sum(out["area_mm2_breakdown"].values()) - out["die_area_mm2"]) < 1e-6


def test_chip_table_and_html(tmp_path):
    page = tmp_path / "v5e.html"
    r = invoke("chip", "tpu-v5e-design", "--html", str(page))
    assert r.exit_code == 0, r.output
    assert "die area by part" in r.stdout and "feasible" in r.stdout
    text = page.read_text()
    assert "plotly" in text and "tpu-v5e-design" in text and "<script src=" not in text  # self-contained


def _write(tmp_path, design, **changes):
    data = design.model_dump(exclude_defaults=True)
    data.update(changes)
    path = tmp_path / f"{data['id']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_chip_reports_an_infeasible_design_file_with_reasons(tmp_path):
    path = _write(tmp_path, load_design("h100-sxm-design"), id="hot-h100", tdp_w=400)
    r = invoke("chip", str(path), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["feasible"] is False
    assert any("TDP of 400 W" in x for x in out["infeasible_reasons"])


def test_chip_accepts_a_datasheet_chip_without_breakdowns():
    out = json.loads(invoke("chip", "h100-sxm", "--json").stdout)
    assert out["kind"] == "chip" and out["area_mm2_breakdown"] is None and out["unit_cost_usd"] > 0


def test_estimate_runs_on_a_design_file(tmp_path):
    path = _write(tmp_path, load_design("tpu-v5e-design"), id="my-v5e")
    r = invoke("estimate", "-m", "llama-3.1-8b", "-c", str(path), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["chip"] == "my-v5e" and out["spec_confidence"] == "partly-estimated"


def test_unknown_chip_suggests_designs_too():
    r = invoke("chip", "h100-sxm-desgn")
    assert r.exit_code == 2 and "h100-sxm-design" in r.output


@pytest.mark.slow
def test_chip_with_a_model_sweeps_a_designs_shared_sram():
    # Each SRAM size is re-derived: area and unit cost grow with the SRAM (until the die passes the
    # reticle and the variant is refused, unpriced); the 1x row is the design itself, so it equals
    # the resource table's base estimate (same tiled fidelity, same derived price).
    r = invoke("chip", "h100-sxm-design", "-m", "llama-3.1-8b", "--osl", "128", "--json")
    assert r.exit_code == 0, r.output
    w = json.loads(r.stdout)["workload"]
    sweep = w["sram_sweep"]
    assert [row["scale"] for row in sweep] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert [row["shared_sram_mb_per_die"] for row in sweep] == [12.5, 25.0, 50.0, 100.0, 200.0]
    areas = [row["die_area_mm2"] for row in sweep]
    assert areas == sorted(areas) and areas[0] < areas[-1]
    priced = [row for row in sweep if row["feasible"]]
    costs = [row["unit_cost_usd"] for row in priced]
    assert costs == sorted(costs)
    for row in sweep:
        assert (row["usd_per_mtok_output"] is None) == (not row["feasible"])
    one = next(row for row in sweep if row["scale"] == 1.0)
    assert w["fidelity"] == "tiled"
    assert one["usd_per_mtok_output"] == w["resources"]["base"]["usd_per_mtok_output"]
    assert one["output_tok_s_per_chip"] == w["resources"]["base"]["output_tok_s_per_chip"]


@pytest.mark.slow
def test_chip_html_with_a_model_plots_cost_against_sram(tmp_path):
    page = tmp_path / "h100.html"
    r = invoke("chip", "h100-sxm-design", "-m", "llama-3.1-8b", "--osl", "128", "--html", str(page))
    assert r.exit_code == 0, r.output
    assert "what 10% more of each resource buys" in r.stdout and "against shared SRAM" in r.stdout
    text = page.read_text()
    assert "cost per token against shared SRAM" in text and "from 10% more of one resource" in text
