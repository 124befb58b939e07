"""Validation: the measurement schema, the arithmetic of errors and coverage, skipping with a reason,
and the CLI's JSON and HTML. A tiny hand-made CSV (tests/data/measurements_tiny.csv) drives most."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tokenfab import catalog
from tokenfab.cli import app
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.specs import SpecError
from tokenfab.specs.measurement import COLUMNS, load_measurements, parse_measurements
from tokenfab.validate import RowResult, summarize, validate_rows
from tokenfab.validate.datasets import lengths_for, public_csv
from tokenfab.validate.micro import predict_micro

TINY = Path(__file__).parent / "data" / "measurements_tiny.csv"
HEADER = ",".join(COLUMNS)


def _csv(*lines: str) -> str:
    return "\n".join((HEADER,) + lines) + "\n"


def _row(rid="X1", **kw) -> str:
    cells = dict(id=rid, hardware="h100-sxm", num_chips="1", scenario="bandwidth", metric="tb_s", value="2.9",
                 usable="1")
    cells.update(kw)
    return ",".join(str(cells.get(c, "")) for c in COLUMNS)


# --- schema -------------------------------------------------------------------------------------

def test_shipped_public_set_loads_and_most_rows_are_usable():
    rows = load_measurements(public_csv())
    assert len(rows) >= 292  # 288 checked rows + FP4 GEMM rows M0468-M0471 (issue 3), plus later additions
    assert sum(r.usable for r in rows) >= 250


def test_a_bad_value_is_reported_with_its_line_number_and_id():
    text = _csv(_row("A1"), _row("A2", value="fast"))
    with pytest.raises(SpecError, match=r"line 3 \(id A2\): value"):
        parse_measurements(text, "mine.csv")


def test_an_unknown_scenario_is_reported_with_its_line_number():
    with pytest.raises(SpecError, match=r"line 2 .*scenario"):
        parse_measurements(_csv(_row("A1", scenario="benchmarking")), "mine.csv")


def test_duplicate_ids_are_rejected():
    with pytest.raises(SpecError, match="duplicate id A1"):
        parse_measurements(_csv(_row("A1"), _row("A1")), "mine.csv")


def test_unknown_columns_are_rejected_on_the_header_line():
    with pytest.raises(SpecError, match="line 1: unknown column"):
        parse_measurements("id,hardware,scenario,metric,value,usable,colour\n", "mine.csv")


def test_a_usable_row_needs_a_hardware_id_but_an_unusable_one_does_not():
    with pytest.raises(SpecError, match="hardware"):
        parse_measurements(_csv(_row("A1", hardware="")), "mine.csv")
    rows = parse_measurements(_csv(_row("A1", hardware="", usable="0")), "mine.csv")
    assert rows[0].usable is False and rows[0].line == 2


def test_mlperf_rows_take_their_input_length_from_the_dataset_table():
    row = {r.id: r for r in load_measurements(public_csv())}["M0103"]
    assert row.input_len is None
    lengths = lengths_for(row)
    assert lengths.input_len == 222 and "llama2-70b" in lengths.input_source
    assert lengths.output_len == pytest.approx(290.3)  # the run's own tokens/sample win over the reference


# --- arithmetic -----------------------------------------------------------------------------------

def _result(rid, measured, predicted, skipped=None, scenario="gemm", metric="tflops"):
    err = None if predicted is None else (predicted - measured) / measured
    return RowResult(rid, scenario, metric, "h100-sxm", None, "chip", measured, predicted, err, skipped)


def test_summary_arithmetic_worked_by_hand():
    # errors +10%, -20%, +30%; one skipped -> coverage 3/4, median 20%, mean 20%,
    # within 10%: 1/3 (the +10% row), within 25%: 2/3.
    results = [_result("a", 100, 110), _result("b", 100, 80), _result("c", 100, 130),
               _result("d", 100, None, skipped="no shape")]
    s = summarize(results)["summary"]
    assert s["coverage"] == pytest.approx(0.75)
    assert s["n_predicted"] == 3
    assert s["median_ape"] == pytest.approx(0.20)
    assert s["mape"] == pytest.approx(0.20)
    assert s["within_10"] == pytest.approx(1 / 3)
    assert s["within_25"] == pytest.approx(2 / 3)
    assert s["by_scenario"]["gemm"]["n"] == 4


def test_summary_has_exactly_the_documented_keys():
    s = summarize([_result("a", 100, 110)])
    assert set(s) == {"rows", "summary"}
    assert set(s["summary"]) == {"coverage", "n_predicted", "median_ape", "mape", "within_10", "within_25",
                                 "by_class", "by_scenario", "by_chip", "by_metric", "by_framework",
                                 "median_error", "skip_reasons"}


def test_summary_reports_throughput_latency_and_micro_rows_separately():
    s = summarize([_result("a", 100, 110)])["summary"]
    assert set(s["by_class"]) == {"micro"}
    assert s["by_class"]["micro"]["median_ape"] == pytest.approx(0.10)


def test_errors_are_signed_fractions_of_the_measurement():
    rows = load_measurements(TINY)
    results = {r.id: r for r in validate_rows(rows)}
    gemm = results["T01"]
    chip = catalog.load_chip("h100-sxm")
    expected = predict_micro(rows[0], chip, efficiency_for(chip))
    assert gemm.predicted == pytest.approx(expected)
    assert gemm.error == pytest.approx((expected - 700) / 700)


def test_unusable_rows_are_left_out_and_unpredictable_ones_skipped_with_a_reason():
    results = {r.id: r for r in validate_rows(load_measurements(TINY))}
    assert "T08" not in results  # usable = 0
    assert "not in the catalog" in results["T04"].skipped
    assert "shape not stated" in results["T05"].skipped
    assert "p50/p90" in results["T06"].skipped
    for rid in ("T04", "T05", "T06"):
        assert results[rid].predicted is None and results[rid].error is None
    for rid in ("T01", "T02", "T03", "T07"):
        assert results[rid].skipped is None and results[rid].predicted > 0
    s = summarize(list(results.values()))["summary"]
    assert s["coverage"] == pytest.approx(4 / 7)


# --- CLI ------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_json_on_a_user_file():
    r = runner.invoke(app, ["validate", "--data", str(TINY), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert len(out["rows"]) == 7
    assert out["summary"]["n_predicted"] == 4


def test_cli_bad_file_is_one_line_with_exit_code_2_under_strict(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(_csv(_row("A1", value="-3")))
    r = runner.invoke(app, ["validate", "--data", str(bad), "--strict"])
    assert r.exit_code == 2
    assert "line 2" in r.output
    # Without --strict the row is skipped with its reason (issue 14).
    r = runner.invoke(app, ["validate", "--data", str(bad), "--json"])
    assert r.exit_code == 0
    assert "line 2" in json.loads(r.stdout)["rows"][0]["skipped"]


def test_cli_bad_header_is_one_line_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,hardware,scenario,metric,value,usable,colour\n")
    r = runner.invoke(app, ["validate", "--data", str(bad)])
    assert r.exit_code == 2 and "line 1" in r.output


def test_cli_html_is_self_contained(tmp_path):
    out = tmp_path / "v.html"
    r = runner.invoke(app, ["validate", "--data", str(TINY), "--html", str(out), "--show", "none"])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "plotly" in text.lower() and "±25%" in text


def test_a_moe_layer_kernel_row_is_the_engines_moe_layer_on_the_stated_shard():
    """A `moe` row times one rank's fused MoE layer (aiter's tuned fused-MoE kernel here): `gemm_m`
    tokens, experts of intermediate size `gemm_n` (the rank's shard) on hidden size `gemm_k`, and
    `experts=E;topk=k` in notes. It is predicted by the same engine ops as aiconfigurator's MoE rows.
    An FP8 row fits the chip's FP8 grouped-GEMM compute scale where no kernel-table fit holds it
    (`calibrate.MOE_FIT`); rows in other formats are scored, not fitted."""
    import numpy as np

    from tokenfab.validate import aic_moe
    from tokenfab.validate.calibrate import excluded_from_fit
    from tokenfab.validate.micro import Unpredictable

    line = _row("K1", hardware="mi355x", scenario="moe", metric="latency_us", per="chip", value="1342.45",
                weight_precision="fp8", activation_precision="fp8", gemm_m="8192", gemm_n="256", gemm_k="7168",
                notes="experts=257;topk=9; aiter ASM 1-stage")
    row, bare = parse_measurements(_csv(line, line.replace("K1", "K2").replace("experts=257;topk=9; ", "")), "k.csv")
    chip = catalog.load_chip("mi355x")
    eff = efficiency_for(chip)
    want = aic_moe.engine_seconds(chip, eff, aic_moe.moe_model(7168, 256, 257, 9), "fp8", np.array([8192.0]), 1, 1)
    assert predict_micro(row, chip, eff) == pytest.approx(float(want[0]) * 1e6)
    assert row.is_micro and excluded_from_fit(row, chip) is None
    bf16 = row.model_copy(update={"weight_precision": "bf16", "activation_precision": "bf16"})
    assert "scored, not fitted" in excluded_from_fit(bf16, chip)
    with pytest.raises(Unpredictable, match="MoE shape"):
        predict_micro(bare, chip, eff)
