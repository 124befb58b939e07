"""`tokenfab compare --train`: one best training run per (model, chip), its days, chip-hours and $."""

import json

from typer.testing import CliRunner

from tokenfab.cli import app

runner = CliRunner()
SMALL = ["--models", "llama-3.2-1b", "--chips", "h100-sxm,ascend-910b", "--chips-per-run", "16", "--tokens", "2e11"]


def invoke(*args):
    return runner.invoke(app, ["compare", "--train", *args])


def test_rows_agree_with_train_and_the_cost_is_chip_hours_times_the_rental():
    r = invoke(*SMALL, "--rental-usd-per-hour", "2.5", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [(x["model"], x["chip"]) for x in rows] == [("llama-3.2-1b", "h100-sxm"), ("llama-3.2-1b", "ascend-910b")]
    for x in rows:
        assert x["fits"] and x["chips_used"] <= 16
        # chip-hours = days × 24 h × chips used; $ = chip-hours × $2.50; per trillion = $ / 0.2 T.
        assert abs(x["chip_hours"] - x["days"] * 24 * x["chips_used"]) < 1e-6 * x["chip_hours"]
        assert abs(x["usd"] - 2.5 * x["chip_hours"]) < 1e-6 * x["usd"]
        assert abs(x["usd_per_trillion_tokens"] - x["usd"] / 0.2) < 1e-6 * x["usd"]
        # the run lasts tokens / (tokens/s): goodput ≤ 1 only lengthens it
        assert x["days"] * 86400 >= 2e11 / x["tokens_s"] * 0.999
        assert 0 < x["mfu"] < 1
    one = runner.invoke(app, ["train", "-m", "llama-3.2-1b", "-c", "ascend-910b", "--chips", "16", "--tokens", "2e11",
                              "--rental-usd-per-hour", "2.5", "--json"])
    t = json.loads(one.output)
    assert rows[1]["step_time_s"] == t["step_time_s"] and rows[1]["mapping"] == t["mapping"]


def test_a_pair_that_fits_nothing_is_a_failure_row_not_an_error():
    r = invoke("--models", "llama-3.2-1b,deepseek-v3", "--chips", "h100-sxm", "--chips-per-run", "8",
               "--tokens", "1e11", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    bad = [x for x in rows if not x["fits"]]
    assert [x["model"] for x in bad] == ["deepseek-v3"] and "GiB" in bad[0]["error"]


def test_table_and_html(tmp_path):
    out = tmp_path / "t.html"
    r = invoke(*SMALL, "--html", str(out))
    assert r.exit_code == 0, r.output
    assert "llama-3.2-1b" in r.output and "ascend-910b" in r.output
    doc = out.read_text()
    assert "per trillion tokens" in doc and "Days of the run" in doc and "<script" in doc


def test_bad_input_is_one_line_exit_2():
    for args, word in [(["--models", "llama-3.2-1b", "--chips", "h100-sxm"], "--tokens"),
                       ([*SMALL[:-1], "0"], "--tokens"),
                       ([*SMALL, "--precision", "int4"], "bf16 or fp8"),
                       ([*SMALL, "--global-batch-tokens", "-5"], "--global-batch-tokens"),
                       ([*SMALL, "--seq-len", "8192", "--global-batch-tokens", "4096"], "global_batch_tokens"),
                       (["--models", "nope-model", "--chips", "h100-sxm", "--tokens", "1e9"], "nope-model"),
                       ([*SMALL, "--pairs"], "--pairs"),
                       ([*SMALL[:6], "--chips-per-run", "0", *SMALL[8:]], "--chips-per-run")]:
        r = invoke(*args)
        assert r.exit_code == 2, (args, r.output)
        assert word in r.output and len(r.output.strip().splitlines()) == 1, r.output
