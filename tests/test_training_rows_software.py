"""A training row is predicted with the software it names: its framework's pipeline schedules and
the overlap / fused-attention settings its notes state (validate.training)."""

from tokenfab.specs.measurement import MeasurementRow
from tokenfab.train.stack import SOFTWARE_SCHEDULES
from tokenfab.validate.training import row_software, training_job, training_stack


def _row(framework: str, notes: str = "") -> MeasurementRow:
    return MeasurementRow(id="T9999", source="test", hardware="h100-sxm", num_chips=64, model="llama-3.1-70b",
                          framework=framework, scenario="training", input_len=8192, batch=128,
                          metric="tokens_s", per="chip", value=1000.0, notes=notes)


def test_megatron_and_nemo_rows_get_megatron_cores_schedules():
    for fw in ("megatron-bridge", "megatron-core 0.6.0", "megatron-lm (2022)", "nemo (MLPerf)"):
        assert row_software(_row(fw)) == "megatron-core"
        assert training_stack(_row(fw)).schedules == SOFTWARE_SCHEDULES["megatron-core"] == ("1f1b", "interleaved")
    # A stack the table does not know gets the default: the schedules published frontier runs used.
    assert row_software(_row("Meta in-house (PyTorch)")) == "production"
    assert training_stack(_row("Meta in-house (PyTorch)")).schedules == ("1f1b", "interleaved", "dualpipe")
    # The zero-bubble fork runs its own schedules; DeepSeek's HAI-LLM runs DualPipe.
    assert training_stack(_row("zero-bubble (sail-sg/zero-bubble-pipeline-parallelism)")).schedules \
        == SOFTWARE_SCHEDULES["zero-bubble"] == ("1f1b", "interleaved", "zb-h1", "zb-h2")
    assert row_software(_row("HAI-LLM (DeepSeek in-house)")) == "dualpipe"


def test_overlap_and_fused_attention_come_from_the_notes():
    row = _row("megatron-lm (2022)", "cp=1 mbs=1 overlap=0 fused_attention=0")
    assert training_job(row).overlap is False
    assert training_stack(row).fused_attention is False
    plain = _row("megatron-core")
    assert training_job(plain).overlap is None and training_stack(plain).fused_attention is True
