"""MLPerf Training's time to train (`validate.mlperf_training`): reference convergence points,
evaluations, the minutes of a toy run worked by hand, shipped rows, and bad input."""

import math

import pytest
from typer.testing import CliRunner

from tokenfab.cli import app
from tokenfab.specs import SpecError
from tokenfab.validate import metric_class
from tokenfab.validate.datasets import measurements_dir, read_measurements, shipped_csvs
from tokenfab.validate.mlperf_training import (MlperfTrainingBenchmark, benchmark, benchmark_for_row, evaluation_seconds,
                                               evaluations, predict_time_to_train, samples_to_converge, time_to_train)

LORA_RCP_128 = [11520, 13056, 10752, 12672, 12288, 11136, 10752, 13056, 10752, 9984,
                11136, 11136, 11136, 10752, 11520, 11136, 11136, 10752, 11136, 9984]
"""The 20 reference runs at batch 128 (mlcommons/logging training_5.0.0/rcps_llama2_70b_lora.json)."""


def _olympic_mean(xs):
    xs = sorted(xs)[1:-1]
    return sum(xs) / len(xs)


def test_the_stored_rcp_mean_is_the_checkers_olympic_mean_of_the_raw_runs():
    # Sorted, the fastest (9,984) and slowest (13,056) dropped: 202,752 / 18 = 11,264.
    assert _olympic_mean(LORA_RCP_128) == pytest.approx(11264.0)
    assert benchmark("llama2_70b_lora").rcp_samples_mean[128] == pytest.approx(_olympic_mean(LORA_RCP_128))


def test_rcp_interpolation_worked_by_hand():
    b = benchmark("llama2_70b_lora")  # RCP means: 8 -> 3,178.67; 16 -> 4,032; 32 -> 6,037.33; 128 -> 11,264
    # batch 64 lies halfway between 32 and 128 in log(batch): ln(64/32) / ln(128/32) = 1/2, so
    # 6,037.33 + (11,264 - 6,037.33) / 2 = 8,650.67.
    s, how = samples_to_converge(b, 64)
    assert s == pytest.approx(8650.6667, abs=1e-3) and "interpolated" in how
    assert samples_to_converge(b, 128) == (11264.0, "RCP at batch 128")
    # Outside the RCP batch sizes: the nearest, and the detail says so.
    low, how_low = samples_to_converge(b, 4)
    high, how_high = samples_to_converge(b, 1024)
    assert low == pytest.approx(3178.6667) and "below" in how_low
    assert high == 11264.0 and "above" in how_high


def test_interpolated_samples_grow_with_the_batch_between_reference_points():
    b = benchmark("gpt3")
    xs = [samples_to_converge(b, n)[0] for n in range(2048, 8193, 256)]
    assert all(x2 >= x1 for x1, x2 in zip(xs, xs[1:]))


def test_evaluations_follow_the_lora_skip_rule():
    b = benchmark("llama2_70b_lora")
    # Batch 128: every ceil(384 / 128) = 3 steps = 384 samples, FLOOR(0.125 x 128 + 2) = 18 skipped,
    # so the first counted evaluation is the 19th (7,296 samples, as NVIDIA's v4.0 log shows);
    # 11,264 samples -> 11,264 / 384 - 18 = 11.33 evaluations.
    assert b.skipped_evals(128) == 18
    n, trained = evaluations(b, 11264.0, 128)
    assert n == pytest.approx(11264 / 384 - 18) and trained == 11264.0
    # Batch 18: 384 / 18 rounds up to 22 steps = 396 samples; 4 skipped; a run that would converge
    # before the first counted evaluation still trains to it (5 x 396 = 1,980 samples).
    assert b.skipped_evals(18) == 4
    assert evaluations(b, 1000.0, 18) == (1.0, 1980.0)


def test_time_to_train_of_a_toy_benchmark_worked_by_hand():
    toy = MlperfTrainingBenchmark(name="toy", seq_len=1000, eval_interval_samples=100, eval_samples=10, eval_skip=0,
                                  rcp_samples_mean={10: 500.0, 40: 1000.0})
    # Batch 20: halfway in log(batch) between 10 and 40 -> 750 samples; 750 x 1,000 tokens / 1,000 tok/s
    # = 750 s = 12.5 min of training; 750 / 100 = 7.5 evaluations x 4 s = 30 s = 0.5 min; 13.0 min in all.
    t = time_to_train(toy, 20, tokens_s=1000.0, eval_s=4.0)
    assert t["samples_to_converge"] == pytest.approx(750.0)
    assert t["train_min"] == pytest.approx(12.5) and t["eval_min"] == pytest.approx(0.5)
    assert t["minutes"] == pytest.approx(13.0)
    # Twice the throughput halves the training part, not the evaluations.
    assert time_to_train(toy, 20, 2000.0, 4.0)["minutes"] == pytest.approx(6.25 + 0.5)


def test_an_evaluation_costs_about_twice_as_much_for_twice_the_eval_set():
    from tokenfab import catalog
    from tokenfab.train import TrainingJob, TrainingStack

    model, chip = catalog.load_model("llama-2-70b"), catalog.load_chip("h100-sxm")
    job = TrainingJob(tokens=1e9, seq_len=8192, precision="fp8", lora=True)
    mapping = {"tp": 4, "cp": 1, "ep": 1, "micro_batch": 1, "pp": 1, "dp": 2}
    one, two = (evaluation_seconds(model, chip, job, TrainingStack(), mapping, n) for n in (172, 344))
    # 86 then 172 micro-batches per data-parallel rank, one stage: exactly twice.
    assert two == pytest.approx(2 * one, rel=1e-9) and one > 0


def test_a_bad_benchmark_name_is_one_line():
    with pytest.raises(SpecError) as err:
        benchmark("resnet")
    assert "\n" not in str(err.value) and "llama31_405b" in str(err.value)
    r = CliRunner().invoke(app, ["train", "-m", "llama-2-70b", "-c", "h100-sxm", "--chips", "8", "--mlperf", "resnet"])
    assert r.exit_code == 2 and "unknown MLPerf Training benchmark" in r.output
    assert "Traceback" not in r.output


def test_the_cli_predicts_minutes_as_json():
    import json

    r = CliRunner().invoke(app, ["train", "-m", "llama-2-70b", "-c", "h200-sxm", "--chips", "8", "--mlperf",
                                 "llama2_70b_lora", "--precision", "fp8", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["benchmark"] == "llama2_70b_lora" and out["global_batch"] == 8
    assert out["minutes"] == pytest.approx(out["train_min"] + out["eval_min"])
    assert math.isfinite(out["minutes"]) and out["minutes"] > 0


def _rows():
    rows, bad = read_measurements(measurements_dir() / "mlperf_training.csv")
    assert not bad
    return {r.id: r for r in rows}


def test_the_rows_are_scored_as_training_and_shipped():
    rows = _rows()
    assert len(rows) >= 10 and all(r.metric == "time_to_train_min" and r.scenario == "training" for r in rows.values())
    assert metric_class("time_to_train_min") == "training"
    assert measurements_dir() / "mlperf_training.csv" in shipped_csvs()
    assert {benchmark_for_row(r).name for r in rows.values()} == {"llama2_70b_lora", "gpt3", "llama31_405b"}


def test_a_row_prediction_adds_training_and_evaluations():
    row = _rows()["TM0003"]  # 8 x H200, Llama-2-70B LoRA, batch 8, TP 2
    minutes, detail = predict_time_to_train(row)
    assert math.isfinite(minutes) and minutes > 0
    assert "3,179 samples to converge at batch 8" in detail and "evals" in detail


@pytest.mark.slow
def test_every_shipped_row_is_predicted_within_a_factor_of_two():
    for row in _rows().values():
        minutes, _ = predict_time_to_train(row)
        assert 0.5 < minutes / row.value < 2.0, row.id
