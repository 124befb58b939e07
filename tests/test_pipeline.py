"""Pipeline parallelism: the slowest stage sets the pace; micro-batches carry unequal prefill."""

import numpy as np
import pytest

from tokenfab.mapping.pipeline import expected_max_poisson, pipelined_seconds, prefill_straggler_factor
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


def test_expected_max_of_poisson_counts_worked_by_hand():
    # Poisson(1), two draws: sum over k of 1 - F(k)^2 = 0.8647 + 0.4586 + 0.1542 + 0.0377 + 0.0073 + ...
    assert expected_max_poisson(1.0, 2) == pytest.approx(1.5239, abs=2e-3)
    assert expected_max_poisson(3.0, 1) == pytest.approx(3.0)


def test_expected_max_of_poisson_counts_matches_sampling_across_both_regimes():
    """Oracle: the mean of the max of n sampled Poisson(mu) counts, for many (mu, n) at once (the
    exact sum below mu = 400, the normal limit above), within 3 standard errors."""
    rng = np.random.default_rng(3)
    mu = np.array([0.3, 2.0, 17.0, 150.0, 399.0, 900.0])
    n = np.array([2.0, 8.0, 3.0, 16.0, 4.0, 8.0])
    got = expected_max_poisson(mu, n)
    for m, k, g in zip(mu, n, got):
        draws = rng.poisson(m, size=(20000, int(k))).max(axis=1)
        assert abs(g - draws.mean()) < 3 * draws.std() / np.sqrt(draws.size) + 0.02 * np.sqrt(m), (m, k)


def test_no_straggler_without_a_pipeline_and_chunking_smooths_it():
    assert prefill_straggler_factor(512, 1, 300) == pytest.approx(1.0)
    one_chunk = prefill_straggler_factor(512, 4, 300)
    four_chunks = prefill_straggler_factor(512, 4, 300, 4.0)
    assert one_chunk > four_chunks > 1.0


def test_more_prompts_per_round_means_a_smaller_relative_straggler():
    f = prefill_straggler_factor(np.array([64, 512, 4096]), 4, 100)
    assert f[0] > f[1] > f[2] > 1.0
