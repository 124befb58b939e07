"""A training row is predicted with what its source states: the settings its notes carry reach the job
and the stack, an MFU row is predicted in the FLOP count its source uses, and a Megatron fork on Ascend
runs Megatron's pipeline schedules (validate.training)."""

import pytest

from tokenfab import catalog
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.train.flops import attention_flops_per_token, model_flops_per_token
from tokenfab.validate.datasets import measurements_dir, read_measurements
from tokenfab.validate.micro import Unpredictable
from tokenfab.validate.training import (full_attention_flops_per_token, predict_training, row_software,
                                        source_flops_ratio, training_job, training_stack)


def _row(notes: str = "", framework: str = "Meta in-house (PyTorch)", metric: str = "mfu") -> MeasurementRow:
    # Llama 3.1 8B on 8 H100 at 8,192 tokens, the mapping fixed (TP 1, PP 1, DP 8, one sequence per micro-batch).
    return MeasurementRow(id="T9999", source="test", hardware="h100-sxm", num_chips=8, model="llama-3.1-8b",
                          framework=framework, scenario="training", input_len=8192, batch=64, tp=1, pp=1, dp=8,
                          metric=metric, per="chip", value=0.4, notes=f"cp=1 mbs=1 zero=1 {notes}")


def _shipped() -> dict[str, MeasurementRow]:
    rows, bad = read_measurements(measurements_dir() / "training.csv", strict=True)
    assert not bad
    return {r.id: r for r in rows}


def test_full_attention_is_palms_twelve_l_h_q_t():
    # Llama 3.1 405B: L 126, H 128, Q 128. At S = 131,072 PaLM's 12·L·H·Q·T =
    # 12 x 126 x 128 x 128 x 131,072 = 24,772,608 x 131,072 = 3.2470e12 FLOPs per token,
    # twice the causal count (a token meets S/2 keys on average) of the engine.
    m = catalog.load_model("llama-3.1-405b")
    full = full_attention_flops_per_token(m, 131072)
    assert full == pytest.approx(24_772_608 * 131_072)
    assert full == pytest.approx(2.0 * float(attention_flops_per_token(m, 131072)))


def test_attention_flops_full_scales_the_predicted_mfu_by_the_sources_flop_count():
    # Llama 3.1 8B at 8,192 tokens: 6N = 6 x 7,504,658,432 = 45.03 GFLOP; causal attention
    # 6 x L x H x 2Q x S/2 = 6 x 32 x 32 x 256 x 4,096 = 6.44 GFLOP; PaLM's count doubles the latter:
    # ratio (45.03 + 12.88) / (45.03 + 6.44) = 57.91 / 51.47 = 1.125.
    m = catalog.load_model("llama-3.1-8b")
    job = training_job(_row())
    causal = 6 * 32 * 32 * 256 * 4096
    assert float(attention_flops_per_token(m, 8192)) == pytest.approx(causal)
    expected = (6 * 7_504_658_432 + 2 * causal) / (6 * 7_504_658_432 + causal)
    assert expected == pytest.approx(1.125, abs=1e-3)
    assert source_flops_ratio(_row("attention_flops=full"), m, job) == pytest.approx(expected)
    assert source_flops_ratio(_row(), m, job) == 1.0
    assert source_flops_ratio(_row("attention_flops=causal"), m, job) == 1.0
    plain, full = predict_training(_row())[0], predict_training(_row("attention_flops=full"))
    assert full[0] == pytest.approx(plain * expected)
    assert "source's FLOPs" in full[1]
    # The convention changes an MFU, never a throughput.
    tok = _row("attention_flops=full", metric="tokens_s")
    assert predict_training(tok)[0] == pytest.approx(predict_training(_row(metric="tokens_s"))[0])
    # LoRA's numerator is 4N + attention: the ratio is taken on that count.
    lora = training_job(_row("lora=1"))
    n4 = float(model_flops_per_token(m, 8192, True)) - causal
    assert source_flops_ratio(_row("lora=1 attention_flops=full"), m, lora) == pytest.approx(
        (n4 + 2 * causal) / (n4 + causal))


def test_an_unknown_attention_convention_is_one_line_unpredictable():
    with pytest.raises(Unpredictable, match="attention_flops=half is not one of causal, full"):
        predict_training(_row("attention_flops=half"))


def test_megatron_forks_on_ascend_run_megatrons_schedules():
    for fw in ("ModelLink + DeepLink torch_dipu", "AscendSpeed"):
        assert row_software(_row(framework=fw)) == "megatron-core"
        assert training_stack(_row(framework=fw)).schedules == ("1f1b", "interleaved")


def test_shipped_rows_carry_the_settings_their_launch_scripts_state():
    rows = _shipped()
    # FlagPerf Megatron-DeepSpeed Llama-2-7B: ZERO_STAGE=1, 'overlap_comm': false, bf16 gradient
    # accumulation, and '--recompute-activations' commented out.
    job, stack = training_job(rows["T0095"]), training_stack(rows["T0095"])
    assert (job.zero, job.overlap, job.recompute, stack.grad_bytes) == (1, False, "none", 2.0)
    # FlagScale Llama-2-70B on 32 H800: distributed optimizer, no tensor-parallel overlap (no TE).
    for rid in ("T0096", "T0097"):
        job = training_job(rows[rid])
        assert (job.zero, job.overlap, job.schedule) == (1, False, "1f1b")
    # ModelLink on 1,024 Ascend 910B: Megatron-LM 285068c without overlap, Megatron's schedules.
    assert training_job(rows["T0042"]).overlap is False
    assert training_stack(rows["T0042"]).schedules == ("1f1b", "interleaved")
    # Llama 3 405B at 128K: MFU in PaLM's count.
    assert "attention_flops=full" in rows["T0004"].notes


def test_the_stated_overlap_reaches_the_prediction():
    rows = _shipped()
    for rid in ("T0095", "T0096", "T0097", "T0042"):
        assert "overlap False" in predict_training(rows[rid])[1]
