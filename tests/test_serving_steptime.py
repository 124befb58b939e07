"""The adapter to the engine: tables reproduce the engine, and obey the physics."""

import numpy as np
import pytest

from tokenfab import catalog
from tokenfab.graph import StepShape, step_ops
from tokenfab.mapping.search import compute_precision, compute_tflops
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.perf.evaluate import Hardware, time_ops, total_seconds
from tokenfab.serving.steptime import EngineStepTime, Mapping, engine_step_time
from tokenfab.specs import SpecError, SystemSpec


@pytest.fixture(scope="module")
def llama8b():
    return catalog.load_model("llama-3.1-8b"), catalog.load_chip("h100-sxm")


def _engine(model, chip, phase, tokens, seqs, ctx, kv_len, mp: Mapping):
    system, eff = SystemSpec.for_chip(chip), efficiency_for(chip)
    hw = Hardware(gemm_tflops=compute_tflops(chip, mp.weight_precision), attention_tflops=chip.bf16_tflops,
                  hbm_tb_s=chip.hbm_tb_s, cores=chip.cores or 100, eff=eff, system=system,
                  gemm_frac=eff.gemm_frac(compute_precision(chip, mp.weight_precision)),
                  bf16_tflops=chip.bf16_tflops)
    s = StepShape(phase, tokens=np.float64(tokens), seqs=np.float64(seqs), ctx=np.float64(ctx),
                  kv_len=np.float64(kv_len), tp=np.float64(mp.tp), dp=np.float64(1), ep=np.float64(1),
                  w_bytes=np.float64(1.0 if mp.weight_precision == "fp8" else 2.0), a_bytes=2.0,
                  kv_bytes=np.float64(1.0 if mp.kv_precision == "fp8" else 2.0))
    return float(total_seconds(time_ops(step_ops(model, s), hw))) + eff.step_overhead_ms * 1e-3


def test_decode_and_prefill_tables_reproduce_the_engine(llama8b):
    model, chip = llama8b
    mp = Mapping(num_chips=1, tp=1, batch=64, weight_precision="fp8", kv_precision="fp8")
    st = EngineStepTime(model, chip, mp, max_ctx=4096, token_budget=2048)
    ctx = 4096 / 64 * 10  # a grid point
    assert st.decode(32, ctx)[0] == pytest.approx(_engine(model, chip, "decode", 32, 32, ctx, ctx, mp), rel=1e-9)
    # A lone prefill chunk of 1024 tokens (a grid point) after 0 cached tokens.
    full = _engine(model, chip, "prefill", 1024, 1, 512, 1024, mp)
    assert st.mixed(0, 0.0, [(1024, 0)]) == pytest.approx(full, rel=1e-9)


def test_physics_of_step_times(llama8b):
    model, chip = llama8b
    st = engine_step_time(model, chip, Mapping(num_chips=1, tp=1, batch=256, weight_precision="bf16"), 8192, 4096)
    t = [st.decode(b, 2000)[0] for b in (1, 8, 64, 256)]
    assert t == sorted(t)  # a bigger batch is never faster
    assert st.decode(64, 6000)[0] > st.decode(64, 1000)[0]  # a longer context is never faster
    assert st.decode(64, 1000)[1] > 0  # slope with context
    # Piggybacking decodes on a prefill chunk costs far less than a separate decode step.
    alone = st.mixed(0, 0.0, [(2048, 0)])
    both = st.mixed(64, 1000, [(2048, 0)])
    assert alone < both < alone + st.decode(64, 1000)[0]
    assert st.prefill_s(8000) > st.prefill_s(2000) > 0


def test_kv_capacity_and_transfer(llama8b):
    model, chip = llama8b
    st = engine_step_time(model, chip, Mapping(num_chips=1, tp=1, batch=64, weight_precision="fp8", kv_precision="fp8"),
                          8192, 2048)
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x (K + V) x 1 byte = 64 KiB per token.
    assert st.kv_bytes_per_token == 32 * 8 * 128 * 2 * 1
    assert 500_000 < st.kv_capacity_tokens < 1_200_000  # ~70 GB free on an 80 GB H100
    assert st.kv_transfer_s(2000) > st.kv_transfer_s(100) > 0


def test_a_model_that_does_not_fit_is_a_spec_error():
    model, chip = catalog.load_model("llama-3.1-70b"), catalog.load_chip("h100-sxm")
    with pytest.raises(SpecError, match="no HBM for the KV cache"):
        EngineStepTime(model, chip, Mapping(num_chips=1, tp=1, batch=8, weight_precision="bf16"), 4096, 2048)


def test_tables_are_cached(llama8b):
    model, chip = llama8b
    mp = Mapping(num_chips=1, tp=1, batch=32)
    assert engine_step_time(model, chip, mp, 3000, 1024) is engine_step_time(model, chip, mp, 3050, 1024)
