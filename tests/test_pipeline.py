"""Pipeline parallelism: the slowest stage sets the pace; micro-batches carry unequal prefill."""

import numpy as np
import pytest

from tokenfab.mapping.pipeline import expected_busiest_count, pipelined_seconds, prefill_straggler_factor
from tokenfab.perf.evaluate import OpTime


def _times(layers_s, head_s, emb_s=0.0):
    z = np.zeros(1)
    return [OpTime("mlp_up", np.array([layers_s]), z), OpTime("lm_head", np.array([head_s]), z),
            OpTime("embedding", np.array([emb_s]), z)]


def test_one_stage_is_the_plain_sum():
    assert pipelined_seconds(_times(8.0, 1.0, 0.5), 80, 1) == pytest.approx(9.5)


def test_even_stages_pay_the_last_stage_head_on_every_tick():
    # 80 layers on 4 stages: 20 each; each tick lasts 20 layers (2 s) + LM head (1 s); 4 ticks.
    assert pipelined_seconds(_times(8.0, 1.0), 80, 4) == pytest.approx(4 * (2.0 + 1.0))


def test_uneven_layer_split_runs_at_the_fullest_stage():
    # 126 layers on 8 stages: the fullest holds 16, so a pass costs 8 x 16/126 of the layer work.
    assert pipelined_seconds(_times(126.0, 0.0), 126, 8) == pytest.approx(8 * 16.0)


def test_busiest_micro_batch_count_worked_by_hand():
    # Poisson(1) arrivals dealt over two micro-batches: E[ceil(C/2)] = P(C>0) + P(C>2) + P(C>4) + ...
    # = (1 - 1/e) + (1 - 2.5/e) + (1 - 2.7083/e) + ... = 0.63212 + 0.08030 + 0.00366 + 0.00008.
    assert expected_busiest_count(1.0, 2) == pytest.approx(0.71616, abs=1e-4)
    assert expected_busiest_count(3.0, 1) == pytest.approx(3.0)  # one micro-batch takes them all
    assert expected_busiest_count(0.0, 4) == 0.0


def test_busiest_micro_batch_count_matches_sampling_across_both_regimes():
    """Oracle: the mean of ceil(C/n) over sampled Poisson(mu) counts C, for many (mu, n) at once
    (the exact tail sum to mu = 400, mean plus the uniform remainder above), within 3 standard
    errors."""
    rng = np.random.default_rng(3)
    mu = np.array([0.3, 2.0, 17.0, 150.0, 399.0, 900.0])
    n = np.array([2.0, 8.0, 3.0, 16.0, 4.0, 8.0])
    got = expected_busiest_count(mu, n)
    for m, k, g in zip(mu, n, got):
        draws = np.ceil(rng.poisson(m, size=40000) / k)
        assert abs(g - draws.mean()) < 3 * draws.std() / np.sqrt(draws.size) + 1e-3, (m, k)


def test_prompts_are_dealt_to_micro_batches_not_pinned_to_one():
    """TensorRT-LLM forms each micro-batch from every request not in flight, so a round's prompts
    spread over the micro-batches: MLPerf Llama-2-70B at PP 2 (1,024 sequences, 294 output tokens,
    ~3.5 prompts a round) waits for 1.14x the mean prefill, not the 1.33x of two independent
    counts; rare long prompts (405B: 0.2 a round) still leave one micro-batch with the work."""
    assert prefill_straggler_factor(1024, 2, 294) == pytest.approx(1.143, abs=2e-3)
    rare = float(prefill_straggler_factor(128, 2, 650))
    assert 1.8 < rare < 2.0


def test_no_straggler_without_a_pipeline_and_chunking_smooths_it():
    assert prefill_straggler_factor(512, 1, 300) == pytest.approx(1.0)
    one_chunk = prefill_straggler_factor(512, 4, 300)
    four_chunks = prefill_straggler_factor(512, 4, 300, 4.0)
    assert one_chunk > four_chunks > 1.0


def test_more_prompts_per_round_means_a_smaller_relative_straggler():
    f = prefill_straggler_factor(np.array([64, 512, 4096]), 4, 100)
    assert f[0] > f[1] > f[2] > 1.0


def test_a_smaller_token_budget_lets_a_pipeline_straggle_less_and_the_cli_takes_it():
    """Long prompts in 1,024-token chunks are spread over more rounds than in the default 8,192-token
    forwards, so the round waits less for the micro-batch carrying them: at PP 2 the deployment
    serves more; at PP 1 there is no straggler and the budget changes little."""
    import json

    from conftest import cli_invoke

    from tokenfab import api
    from tokenfab.specs import Traffic

    long = Traffic(input_len=9400, output_len=650, slo_ttft_ms=None, slo_tpot_ms=None)
    kw = dict(num_chips=4, tp=2, pp=2, precision="fp4")
    wide, narrow = (api.estimate("llama-3.1-405b", "b200", long, prefill_chunk_tokens=b, **kw) for b in (8192, 1024))
    assert narrow.output_tok_s_per_chip > 1.2 * wide.output_tok_s_per_chip
    r = cli_invoke("estimate", "-m", "llama-3.1-405b", "-c", "b200", "--tp", "2", "--pp", "2", "--chips", "4",
                   "--precision", "fp4", "--isl", "9400", "--osl", "650", "--slo-ttft-ms", "0", "--slo-tpot-ms", "0",
                   "--token-budget", "1024", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["output_tok_s_per_chip"] == pytest.approx(narrow.output_tok_s_per_chip, rel=1e-6)
