"""A study's `training:` section: one cached section per (model, chip), the answer, the report."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tokenfab import catalog
from tokenfab.cli import app
from tokenfab.specs.study import StudySpec
from tokenfab.study import run_study
from tokenfab.study.training import training_row
from tokenfab.train import TrainingJob

DATA = Path(__file__).parent / "data"
TRAINING = {"tokens": 1.0e10, "chips_per_run": 8, "seq_len": 1024, "global_batch_tokens": 1048576}


def study(tmp_path: Path, **changes) -> Path:
    """The tiny fixtures (fast) at a flat $2/chip-hour rental, with a training section."""
    chip2 = tmp_path / "tiny-chip-2.yaml"
    if not chip2.exists():
        text = (DATA / "tiny-chip.yaml").read_text().replace("id: tiny-chip", "id: tiny-chip-2")
        chip2.write_text(text.replace("hbm_tb_s: 1.0", "hbm_tb_s: 2.0"))
    data = {
        "version": 1, "name": "tiny-train", "models": [str(DATA / "tiny-llama.json")],
        "chips": [str(DATA / "tiny-chip.yaml"), "tiny-chip-2.yaml"],
        "traffic": [{"name": "chat", "input_len": 256, "output_len": 64, "slo_ttft_ms": 2000, "slo_tpot_ms": 100}],
        "economics": {"overrides": {"rental_usd_per_chip_hour": 2.0}},
        "curve_batches": [1],
        "training": dict(TRAINING),
    }
    data.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_training_sections_are_the_train_estimate_priced_at_the_rental(tmp_path):
    out = run_study(study(tmp_path), tmp_path / "out")
    secs = {k: s for k, s in out.results["sections"].items() if s["kind"] == "training"}
    assert sorted(secs) == ["training/tiny-llama/tiny-chip", "training/tiny-llama/tiny-chip-2"]
    run = secs["training/tiny-llama/tiny-chip"]["run"]
    direct = training_row(catalog.load_model(str(DATA / "tiny-llama.json")),
                          catalog.load_chip(str(DATA / "tiny-chip.yaml")), 8,
                          TrainingJob(tokens=1e10, seq_len=1024, global_batch_tokens=2**20))
    assert run["step_time_s"] == pytest.approx(direct["step_time_s"]) and run["mapping"] == direct["mapping"]
    # $ = chip-hours × $2.00; per trillion tokens = $ / 0.01 T
    assert run["usd"] == pytest.approx(2.0 * run["chip_hours"], rel=1e-9)
    assert run["usd_per_trillion_tokens"] == pytest.approx(run["usd"] / 0.01, rel=1e-9)
    answers = [a for a in out.results["summary"]["answers"] if a["kind"] == "training"]
    assert len(answers) == 1 and "tiny-llama" in answers[0]["sentence"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="training"' in html and "Cost per trillion training tokens" in html and "Days of the run" in html


def test_training_sections_are_cached_by_their_inputs(tmp_path, monkeypatch):
    run_study(study(tmp_path), tmp_path / "out")
    again = run_study(study(tmp_path, training={**TRAINING, "tokens": 2.0e10}), tmp_path / "out")
    # only the training sections depend on the tokens: the two estimates are reused
    assert sorted(again.computed) == ["training/tiny-llama/tiny-chip", "training/tiny-llama/tiny-chip-2"]
    assert len(again.reused) == 2
    run = again.results["sections"]["training/tiny-llama/tiny-chip"]["run"]
    assert run["tokens"] == 2.0e10

    def boom(*a, **k):
        raise AssertionError("a cached training section must not run the search")

    monkeypatch.setattr("tokenfab.study.training.estimate_training", boom)
    third = run_study(study(tmp_path, training={**TRAINING, "tokens": 2.0e10}), tmp_path / "out")
    assert third.cached


def test_a_model_that_fits_no_chip_is_a_no_fit_section_not_a_failed_run(tmp_path):
    out = run_study(study(tmp_path, training={**TRAINING, "models": ["deepseek-v3"], "chips_per_run": 1}),
                    tmp_path / "out")
    secs = [s for s in out.results["sections"].values() if s["kind"] == "training"]
    assert {s["status"] for s in secs} == {"no-fit"} and "GiB" in secs[0]["error"]
    assert any("No training run fits" in a["sentence"] for a in out.results["summary"]["answers"])


@pytest.mark.parametrize("training, word", [
    ({"tokens": -1}, "training.tokens"),
    ({"tokens": 1e12, "precision": "int4"}, "training.precision"),
    ({"token": 1e12}, "did you mean 'tokens'"),
    ({"tokens": 1e12, "seq_len": 8192, "global_batch_tokens": 4096}, "less than one sequence"),
    ({"tokens": 1e12, "chips": ["no-such-chip"]}, "no-such-chip"),
])
def test_bad_training_sections_are_one_line_exit_2(tmp_path, training, word):
    res = CliRunner().invoke(app, ["run", str(study(tmp_path, training=training)), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]  # after the progress bar
    assert len(errors) == 1 and word in errors[0], res.output


def test_shipped_example_study_validates():
    from tokenfab.study.load import study_path

    spec = StudySpec.from_mapping(yaml.safe_load(study_path("train-and-serve").read_text()))
    assert spec.training is not None and spec.training.tokens == 14.8e12 and spec.training.precision == "fp8"


def test_json_results_hold_the_training_sections(tmp_path):
    res = CliRunner().invoke(app, ["run", str(study(tmp_path)), "--out", str(tmp_path / "o"), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert sum(s["kind"] == "training" for s in doc["sections"].values()) == 2
