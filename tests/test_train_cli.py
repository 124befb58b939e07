"""`tokenfab train` through typer's runner: JSON keys, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokenfab.cli import app

runner = CliRunner()
KEYS = {"step_time_s", "mfu", "tokens_s", "days", "chip_hours", "usd", "usd_per_trillion_tokens", "mapping",
        "memory_gib_per_chip", "goodput", "chips_used"}
BASE = ("train", "-m", "llama-3.2-1b", "-c", "h100-sxm", "--seq-len", "2048", "--global-batch-tokens", "1048576")


def invoke(*args):
    return runner.invoke(app, list(args))


def test_json_has_the_issue_keys_and_a_priced_run():
    r = invoke(*BASE, "--chips", "16", "--tokens", "1e11", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert KEYS <= out.keys()
    assert {"tp", "pp", "dp", "cp", "ep", "zero", "recompute", "schedule", "overlap"} <= out["mapping"].keys()
    # $ = chip-hours x $/chip-hour; per trillion tokens = $ / 0.1 T.
    assert out["usd"] == pytest.approx(out["chip_hours"] * out["usd_per_chip_hour"])
    assert out["usd_per_trillion_tokens"] == pytest.approx(out["usd"] / 0.1)


def test_rental_price_sets_the_chip_hour():
    out = json.loads(invoke(*BASE, "--chips", "8", "--tokens", "1e10", "--rental-usd-per-hour", "2", "--json").stdout)
    assert out["usd"] == pytest.approx(2.0 * out["chip_hours"])


def test_table_output():
    r = invoke(*BASE, "--chips", "8", "--tokens", "1e10")
    assert r.exit_code == 0, r.output
    assert "MFU" in r.stdout and "chip-hours" in r.stdout


@pytest.mark.parametrize("args, message", [
    (("--chips", "8", "--tokens", "0"), "--tokens must be a positive"),
    (("--chips", "8", "--tokens", "-5"), "--tokens must be a positive"),
    (("--chips", "100", "--tokens", "1e10", "--tp", "8"), "does not divide into the parallel degrees"),
    (("--chips", "8", "--tokens", "1e10", "--precision", "fp4"), "--precision must be bf16 or fp8"),
    (("--chips", "8", "--tokens", "1e10", "--schedule", "gpipe"), "schedule"),
    (("--chips", "0", "--tokens", "1e10"), "--chips"),
    (("--chips", "8", "--tokens", "nan"), "finite"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = invoke(*BASE, *args)
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_model_that_fits_no_mapping_says_the_missing_memory():
    r = invoke("train", "-m", "llama-3.1-405b", "-c", "h100-sxm", "--chips", "8", "--tokens", "1e12")
    assert r.exit_code == 2
    assert "fits no mapping: needs" in r.stderr and "GiB per chip, has 77.1" in r.stderr


def test_html_report_has_the_step_split_the_chip_sweep_and_the_top_mappings(tmp_path):
    path = tmp_path / "train.html"
    r = invoke(*BASE, "--chips", "16", "--tokens", "1e10", "--json", "--html", str(path))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["html"] == str(path)
    page = path.read_text()
    assert page.startswith("<!doctype html>") and "plotly" in page  # plotly.js embedded: opens offline
    # The chosen mapping is row 1 of the top-mappings table, at the MFU the run reports.
    mp = out["mapping"]
    first = f"<tr><td>1</td><td>{mp['tp']}/{mp['pp']}/{mp['cp']}/{mp['ep']}/{mp['dp']}</td>"
    assert first in page and f"{out['mfu']:.1%}" in page
    assert "Where a training step goes" in page and "MFU and days against chip count" in page


@pytest.mark.parametrize("target", ["missing_folder/x.html", "."])
def test_html_path_is_checked_before_the_search(tmp_path, target):
    r = invoke(*BASE, "--chips", "16", "--tokens", "1e10", "--html", str(tmp_path / target))
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "--html" in r.stderr


def test_html_does_not_apply_to_an_rl_step(tmp_path):
    r = invoke("train", "-m", "llama-3.2-1b", "-c", "h100-sxm", "--chips", "16", "--rl",
               "--html", str(tmp_path / "x.html"))
    assert r.exit_code == 2 and "--html reports a pretraining run" in r.stderr


@pytest.mark.parametrize("args, message", [
    (("--software", "nemo"), "--software must be one of"),
    (("--software", "megatron-core", "--schedule", "zb-h1"), "zb-h1 is not implemented"),
])
def test_software_errors_are_one_line(args, message):
    r = invoke(*BASE, "--chips", "16", "--tokens", "1e10", *args)
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr


def test_the_default_software_limits_the_search_not_a_schedule_the_user_fixes():
    searched = json.loads(invoke(*BASE, "--chips", "16", "--tokens", "1e10", "--json").stdout)
    assert searched["mapping"]["schedule"] in ("1f1b", "interleaved", "dualpipe")  # `production`
    fixed = invoke(*BASE, "--chips", "16", "--tokens", "1e10", "--pp", "4", "--schedule", "zb-h2", "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["mapping"]["schedule"] == "zb-h2"


def test_the_moe_stack_options_move_a_moe_run_and_refuse_bad_values():
    # Qwen3-30B-A3B on 8 B200 at EP 8: overlapping the expert all-to-all, or a full CUDA graph of the
    # MoE layer (no host sync), each make the run faster than Megatron-Core's defaults.
    base = ["train", "-m", "qwen3-30b-a3b", "-c", "b200", "--chips", "8", "--tokens", "1e12", "--tp", "1", "--pp", "1",
            "--ep", "8", "--micro-batch", "1", "--json"]
    rate = lambda *extra: json.loads(invoke(*base, *extra).stdout)["tokens_s_per_chip"]  # noqa: E731
    default = rate()
    assert rate("--ep-overlap") > default
    assert rate("--moe-host-ms", "0") > default
    r = invoke(*base, "--moe-host-ms", "-1")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "--moe-host-ms" in r.stderr
