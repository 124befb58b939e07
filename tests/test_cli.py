"""The command line through typer's runner, plus one real subprocess."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tokenfab.cli import app

runner = CliRunner()
ESTIMATE_FIELDS = {"model", "chip", "num_chips", "tp", "pp", "ep", "dp", "batch", "weight_precision", "kv_precision",
                   "ttft_ms", "tpot_ms", "output_tok_s_per_chip", "total_tok_s_per_chip", "memory_gb_per_chip",
                   "bound", "spec_confidence", "usd_per_mtok_input", "usd_per_mtok_output"}


def invoke(*args):
    return runner.invoke(app, list(args))


def test_estimate_json_has_the_documented_fields():
    r = invoke("estimate", "--model", "llama-3.1-70b", "--chip", "h100-sxm", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert ESTIMATE_FIELDS <= out.keys()
    assert {"weights", "kv_cache", "activations", "free"} <= out["memory_gb_per_chip"].keys()
    assert set(out["bound"]) == {"prefill", "decode"}
    assert out["meets_slo"] is True and out["tpot_ms"] <= 50


def test_estimate_honours_fixed_mapping():
    r = invoke("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", "2", "--tp", "2", "--batch", "16",
               "--precision", "bf16", "--isl", "512", "--osl", "128", "--json")
    out = json.loads(r.stdout)
    assert (out["num_chips"], out["tp"], out["batch"], out["weight_precision"]) == (2, 2, 16, "bf16")


@pytest.mark.slow
def test_compare_default_scenario_covers_required_chips():
    r = invoke("compare", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    pairs = {(x["model"], x["chip"]) for x in rows}
    for model in ("deepseek-v3", "llama-3.1-70b"):
        for chip in ("h100-sxm", "h200-sxm", "h20", "b200", "mi300x", "ascend-910b", "ascend-910c", "mlu590"):
            assert (model, chip) in pairs
    assert any(x.get("spec_confidence") == "partly-estimated" for x in rows)


def test_compare_writes_html(tmp_path):
    out = tmp_path / "r.html"
    r = invoke("compare", "--models", "llama-3.1-8b", "--chips", "h100-sxm,h200-sxm", "--html", str(out))
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "plotly" in text and "h200-sxm" in text
    # issue 15 item 10: the answer first, $/Mtok and the binding in the table, plotly.js once.
    assert "llama-3.1-8b: the cheapest output token meeting the SLOs is on" in text
    assert "<th>$/M output</th>" in text and "<th>binding</th>" in text
    assert text.count("plotly.js v") == 1


def test_compare_answer_names_the_cheapest_chip_that_meets_the_slos():
    from tokenfab.report.compare_html import answers
    row = dict(model="m", meets_slo=True, output_tok_s_per_chip=100.0, mode="aggregated")
    rows = [{**row, "chip": "a", "usd_per_mtok_output": 0.30}, {**row, "chip": "b", "usd_per_mtok_output": 0.10},
            {**row, "chip": "c", "usd_per_mtok_output": 0.05, "meets_slo": False}]
    (sentence,) = answers(rows)
    assert "is on b, $0.100 per million" in sentence and "3.00× cheaper than a" in sentence


@pytest.mark.parametrize("args, needle", [
    (("estimate", "-m", "llama-3.1-70b", "-c", "h100-sx"), "closest: h100-sxm"),
    (("estimate", "-m", "lama-3.1-70b", "-c", "h100-sxm"), "closest: llama-3.1-70b"),
    (("estimate", "-m", "llama-3.1-405b", "-c", "h100-sxm", "--chips", "1"), "GB more"),
    (("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--precision", "fp7"), "not a precision"),
    (("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--prefix-hit", "1.5"), "prefix_cache_hit"),
    (("estimate", "-m", "llama-2-7b", "-c", "h100-sxm", "--isl", "8000"), "exceed llama-2-7b's context of 4096"),
    (("compare", "--chips", "h100-sxm,nope"), "unknown chip 'nope'"),
    (("estimate", "-m", "sdxl", "-c", "h100-sxm", "--framework", "tensorrtt"), "unknown framework 'tensorrtt'"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, needle):
    r = invoke(*args)
    assert r.exit_code == 2
    assert needle in r.output
    assert "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_bad_chip_yaml_names_the_field(tmp_path):
    bad = tmp_path / "chip.yaml"
    bad.write_text("id: x\nname: x\nvendor: x\nbf16_tflops: -5\nhbm_gb: 80\nhbm_tb_s: 3\nscaleup_gb_s: 100\n"
                   "tdp_w: 500\nsources: {default: me}\n")
    r = invoke("estimate", "-m", "llama-3.1-8b", "-c", str(bad))
    assert r.exit_code == 2 and "bf16_tflops" in r.output and "greater than 0" in r.output


def test_invalid_yaml_reports_line(tmp_path):
    bad = tmp_path / "chip.yaml"
    bad.write_text("id: x\nname: [unclosed\n")
    r = invoke("estimate", "-m", "llama-3.1-8b", "-c", str(bad))
    assert r.exit_code == 2 and "invalid YAML" in r.output


def test_catalog_lists_chips_with_sources():
    r = invoke("catalog", "chips", "--json")
    chips = json.loads(r.stdout)
    ids = {c["id"] for c in chips}
    assert {"h100-sxm", "ascend-910c", "mlu590", "tpu-v5e"} <= ids
    assert all(c["sources"] for c in chips)


def test_catalog_lists_models():
    r = invoke("catalog", "models", "--json")
    assert {"deepseek-v3", "gpt-oss-120b"} <= {m["id"] for m in json.loads(r.stdout)}


@pytest.mark.slow
def test_console_script_runs_in_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "tokenfab", "estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["chip"] == "h100-sxm"


def test_estimate_prices_tokens_at_owned_tco_and_market_rental():
    owned = json.loads(invoke("estimate", "-m", "llama-3.1-70b", "-c", "h100-sxm", "--json").stdout)
    rented = json.loads(invoke("estimate", "-m", "llama-3.1-70b", "-c", "h100-sxm", "--market-rental", "--json").stdout)
    assert owned["cost_basis"] == "owned" and rented["cost_basis"] == "rental"
    assert 0 < owned["usd_per_mtok_output"] < rented["usd_per_mtok_output"]  # $2.13/h owned < $2.95/h rented
    # Output tokens cost more than input tokens: decode is memory-bound, prefill compute-bound.
    assert rented["usd_per_mtok_output"] > rented["usd_per_mtok_input"]


def test_chip_without_price_has_null_cost_and_says_why():
    r = json.loads(invoke("estimate", "-m", "llama-3.1-8b", "-c", "mlu590", "--json").stdout)
    assert r["usd_per_mtok_output"] is None and "price_usd" in r["cost_basis"]


def test_chip_given_as_a_path_is_priced(tmp_path):
    path = tmp_path / "my-chip.yaml"
    path.write_text("id: my-chip\nname: Mine\nvendor: Me\nbf16_tflops: 500\nfp8_tflops: 1000\nhbm_gb: 96\n"
                    "hbm_tb_s: 4\nscaleup_gb_s: 200\ntdp_w: 500\nprice_usd: 10000\nsources: {default: test}\n")
    r = invoke("estimate", "-m", "llama-3.1-8b", "-c", str(path), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["usd_per_mtok_output"] > 0


def test_tiled_fidelity_agrees_with_roofline_where_shapes_are_regular():
    base = ["estimate", "-m", "llama-3.1-70b", "-c", "h100-sxm", "--chips", "2", "--tp", "2", "--batch", "64",
            "--precision", "fp8", "--json"]
    roof = json.loads(invoke(*base).stdout)
    tiled = json.loads(invoke(*base, "--fidelity", "tiled").stdout)
    assert roof["fidelity"] == "roofline" and tiled["fidelity"] == "tiled"
    assert tiled["tpot_ms"] == pytest.approx(roof["tpot_ms"], rel=0.15)


def test_design_file_estimates_like_a_chip():
    r = invoke("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm-design", "--fidelity", "tiled", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["chip"] == "h100-sxm-design" and out["output_tok_s_per_chip"] > 0
