"""Mapping search: memory fit, SLOs, overrides, and physical monotonicity."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tokenfab import api
from tokenfab.catalog import load_model
from tokenfab.mapping.search import SearchSpace, choose, evaluate, meets_slo
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs import SpecError, SystemSpec, Traffic

EFF = Efficiency()


def run(model, chip, traffic, **space):
    return evaluate(model, chip, SystemSpec.for_chip(chip), EFF, traffic, SearchSpace(**space))


def test_choice_is_the_best_fitting_point_that_meets_the_slos(tiny_model, tiny_chip):
    traffic = Traffic(input_len=256, output_len=64, slo_ttft_ms=50, slo_tpot_ms=5)
    res = run(tiny_model, tiny_chip, traffic)
    idx, ok = choose(res, traffic)
    a = res.arrays
    # Brute force over every point.
    best = max((i for i in range(len(res)) if a["fits"][i] and meets_slo(a, traffic)[i]),
               key=lambda i: a["output_tok_s_per_chip"][i])
    assert ok
    assert a["output_tok_s_per_chip"][idx] == pytest.approx(a["output_tok_s_per_chip"][best])


def test_overrides_fix_the_mapping(tiny_chip):
    est = api.estimate("llama-3.1-8b", tiny_chip.model_copy(update={"hbm_gb": 80.0}), Traffic(), num_chips=4, tp=2,
                       pp=2, batch=8, precision="bf16")
    assert (est.num_chips, est.tp, est.pp, est.dp, est.batch, est.weight_precision) == (4, 2, 2, 1, 8, "bf16")


def test_model_that_fits_nowhere_says_how_much_memory_is_missing(tiny_chip):
    with pytest.raises(SpecError, match=r"does not fit on tiny-chip.*GB more"):
        api.estimate("llama-3.1-405b", tiny_chip, Traffic(), num_chips=1)


def test_unmet_slo_returns_closest_mapping_flagged(tiny_chip):
    est = api.estimate("llama-3.1-8b", tiny_chip.model_copy(update={"hbm_gb": 80.0}),
                       Traffic(input_len=1024, output_len=128, slo_tpot_ms=0.01))
    assert est.meets_slo is False
    assert est.tpot_ms > 0.01


def test_longer_outputs_need_more_kv_memory(tiny_model, tiny_chip):
    short = run(tiny_model, tiny_chip, Traffic(input_len=128, output_len=128), batch=(64,), tp=(1,), pp=(1,), num_chips=(1,))
    long = run(tiny_model, tiny_chip, Traffic(input_len=128, output_len=4096), batch=(64,), tp=(1,), pp=(1,), num_chips=(1,))
    assert long.arrays["kv_cache_gb"][0] > short.arrays["kv_cache_gb"][0]


def test_all_outputs_are_finite_and_positive():
    from tokenfab.catalog import load_chip
    for model in ("llama-3.1-70b", "deepseek-v3", "gpt-oss-120b", "mixtral-8x7b"):
        res = run(load_model(model), load_chip("h100-sxm"), Traffic())
        for key in ("ttft_ms", "tpot_ms", "output_tok_s_per_chip", "weights_gb", "kv_cache_gb"):
            v = res.arrays[key]
            assert np.all(np.isfinite(v)) and np.all(v > 0), (model, key)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(factor=st.floats(min_value=1.01, max_value=4.0), batch=st.sampled_from([1, 8, 64, 256]))
def test_more_bandwidth_is_never_slower(tiny_chip, factor, batch):
    model = load_model("llama-3.1-8b")
    chip = tiny_chip.model_copy(update={"hbm_gb": 80.0})
    faster = chip.model_copy(update={"hbm_tb_s": chip.hbm_tb_s * factor})
    kw = dict(batch=(batch,), tp=(1, 2), pp=(1,), num_chips=(2,))
    a = run(model, chip, Traffic(), **kw).arrays
    b = run(model, faster, Traffic(), **kw).arrays
    assert np.all(b["tpot_ms"] <= a["tpot_ms"] + 1e-12)
    assert np.all(b["ttft_ms"] <= a["ttft_ms"] + 1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(factor=st.floats(min_value=1.01, max_value=4.0))
def test_more_compute_is_never_slower(tiny_chip, factor):
    model = load_model("llama-3.1-8b")
    chip = tiny_chip.model_copy(update={"hbm_gb": 80.0})
    faster = chip.model_copy(update={"bf16_tflops": chip.bf16_tflops * factor, "fp8_tflops": chip.fp8_tflops * factor})
    a = run(model, chip, Traffic(), num_chips=(1,)).arrays
    b = run(model, faster, Traffic(), num_chips=(1,)).arrays
    assert np.all(b["ttft_ms"] <= a["ttft_ms"] + 1e-12)
    assert np.all(b["output_tok_s_per_chip"] >= a["output_tok_s_per_chip"] - 1e-9)


def test_bigger_batch_raises_throughput_and_tpot_until_memory_runs_out(tiny_chip):
    model = load_model("llama-3.1-8b")
    chip = tiny_chip.model_copy(update={"hbm_gb": 80.0})
    a = run(model, chip, Traffic(input_len=512, output_len=256), num_chips=(1,), batch=(1, 8, 64)).arrays
    sel = a["prec"] == 0
    tput, tpot = a["output_tok_s_per_chip"][sel], a["tpot_ms"][sel]
    assert np.all(np.diff(tput) > 0) and np.all(np.diff(tpot) > 0)


def test_a_chip_too_small_for_the_model_on_64_chips_searches_more_chips_and_deeper_pipelines():
    # An SRAM-only design (~230 MB per chip) holds an 8B model only across hundreds of chips,
    # pipelined (Groq-style); a GPU's grid is unchanged.
    from tokenfab.catalog import load_chip, load_model
    from tokenfab.mapping.search import SMALL_MEMORY_COUNTS, _small_memory
    m = load_model("llama-3.1-8b")
    assert _small_memory(m, load_chip("h100-sxm"), 4096) == ()
    assert _small_memory(m, load_chip("sram-lpu-design"), 1024) == tuple(n for n in SMALL_MEMORY_COUNTS if n <= 1024)
    from tokenfab import api
    est = api.estimate("llama-3.1-8b", "sram-lpu-design", max_chips=1024)
    assert est.num_chips > 64 and est.pp >= 8


def test_a_small_memory_prefills_in_smaller_chunks_instead_of_not_fitting():
    from tokenfab.catalog import load_model
    from tokenfab.mapping import memory
    m = load_model("llama-3.1-8b")
    big = memory.activation_bytes(m, 1, 1, 8192, 2.0, usable=80e9)
    assert big == memory.activation_bytes(m, 1, 1, 8192, 2.0)  # GPU memories never bind
    per_token = (6 * m.hidden_size + 3 * m.intermediate_size) * 2.0
    small = memory.activation_bytes(m, 1, 1, 8192, 2.0, usable=0.2e9)
    assert small == pytest.approx(max(64, 0.25 * 0.2e9 // per_token) * per_token + m.vocab_size * 4.0)
