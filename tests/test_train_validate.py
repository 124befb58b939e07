"""Published training runs (`validate.training`): notes parsing, the `training` class, rows."""

from __future__ import annotations

import pytest

from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate import metric_class
from tokenfab.validate.training import notes_fields, predict_training, training_job, training_stack


def _row(**kw) -> MeasurementRow:
    base = dict(id="X1", hardware="h100-sxm", num_chips=64, model="llama-3.1-70b", weight_precision="fp8",
                activation_precision="fp8", scenario="training", input_len=8192, batch=128, tp=4, pp=8,
                metric="tokens_s", per="chip", value=1602.0, notes="cp=1 mbs=1 vp=5 zero=1 grad_bytes=2; text")
    base.update(kw)
    return MeasurementRow.model_validate(base)


def test_notes_give_the_degrees_the_schema_has_no_column_for():
    assert notes_fields("cp=2 mbs=1 vp=8 fsdp=1 grad_bytes=2; row 'X' of ...") == \
        {"cp": "2", "mbs": "1", "vp": "8", "fsdp": "1", "grad_bytes": "2"}
    job = training_job(_row())
    # dp = 64 / (tp 4 x pp 8 x cp 1); a virtual pipeline of 5 is the interleaved schedule.
    assert (job.tp, job.pp, job.cp, job.dp, job.micro_batch, job.zero) == (4, 8, 1, 2, 1, 1)
    assert (job.schedule, job.virtual_stages, job.precision) == ("interleaved", 5, "fp8")
    assert job.global_batch_tokens == 128 * 8192
    assert training_stack(_row()).grad_bytes == 2.0
    assert training_job(_row(notes="fsdp=1 lora=1 mtp=0")).zero == 3
    assert training_job(_row(notes="lora=1")).lora and not training_job(_row(notes="mtp=0")).mtp


def test_training_metrics_form_their_own_class():
    for m in ("tokens_s", "mfu", "step_time_s", "chip_hours"):
        assert metric_class(m) == "training"


def test_a_row_is_predicted_at_its_stated_mapping():
    value, detail = predict_training(_row())
    assert value > 0 and "tp 4 pp 8 (interleaved)" in detail and "dp 2" in detail


@pytest.mark.slow
def test_deepseek_v3_row_within_25_percent():
    """DeepSeek-V3's 2.664M H800 GPU-hours at its stated mapping (TP 1, PP 16 DualPipe, EP 64, DP 128),
    within issue 19's ±25% (+18% with the MoE host time and the training clocks of Hopper's 16-bit work;
    the free search, `test_train.py`, lands within 6%)."""
    row = _row(id="T", hardware="h800-sxm", num_chips=2048, model="deepseek-v3", input_len=4096, batch=15360, tp=1,
               pp=16, ep=64, dp=128, metric="chip_hours", per="system", value=2.664e6,
               notes="tokens=14.8e12 schedule=dualpipe zero=1")
    value, _ = predict_training(row)
    assert value / 2.664e6 == pytest.approx(1.0, abs=0.25)
