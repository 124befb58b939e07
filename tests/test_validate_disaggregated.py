"""Rows on separate prefill/decode pools at a stated concurrency, and rows with MTP (issue 13/14)."""

import pytest

from tokenfab.graph.speculative import tokens_per_step
from tokenfab.validate.disaggregated import acceptance_for, mtp_from_notes, pools_from_notes


def test_pools_are_read_from_the_notes():
    notes = "layout: disaggregated, prefill pool 12 GPUs (TP12), decode pool 20 GPUs with EP=4 (instances not stated)"
    assert pools_from_notes(notes) == (12, 20, 4)
    assert pools_from_notes("prefill pool 8 GPUs, decode pool 8 GPUs (one node each)") == (8, 8, None)
    # Ascend pools are NPUs (a 910C package counted as one chip): the same grammar in chips or NPUs.
    assert pools_from_notes("prefill pool 16 chips, decode pool 16 chips with EP=16") == (16, 16, 16)
    assert pools_from_notes("prefill pool 8 NPUs, decode pool 16 NPUs") == (8, 16, None)
    assert pools_from_notes("disaggregated 1P1D") is None


def test_mtp_is_read_from_the_notes():
    # MTP=3 with a stated mean of 2.82 tokens a step: 1 + a + a² + a³ = 2.82 gives a ≈ 0.713.
    k, a, how = mtp_from_notes("with MTP=3 (strict acceptance), mean acceptance 2.82 tokens/step")
    assert k == 3 and tokens_per_step(3, a) == pytest.approx(2.82, abs=1e-6)
    assert "stated" in how
    assert mtp_from_notes("MTP num_nextn_predict_layers 1 (acceptance not stated)")[:2] == (1, 0.85)
    assert mtp_from_notes("Dynamo + TensorRT-LLM with MTP on (draft length not stated)")[:2] == (1, 0.85)
    assert mtp_from_notes("MTP off ('Without MTP' baseline of the MTP=3 row)")[:2] == (0, 0.0)
    assert mtp_from_notes("no speculative decoding mentioned")[:2] == (0, 0.0)


def test_acceptance_for_inverts_tokens_per_step():
    for k, a in ((1, 0.85), (3, 0.6), (2, 0.0)):
        assert acceptance_for(tokens_per_step(k, a), k) == pytest.approx(a, abs=1e-6)


def test_a_pool_row_is_predicted_at_its_stated_pools():
    # 4 prefill + 32 decode GB200s (EP32), 180 concurrent requests: the detail names what was stated.
    from tokenfab.specs.measurement import load_measurements
    from tokenfab.validate import predict_row
    from tokenfab.validate.datasets import measurements_dir
    row = next(r for r in load_measurements(measurements_dir() / "deployments.csv") if r.id == "D0011")
    value, detail = predict_row(row)
    assert value > 0
    assert "prefill pool 4 chips, decode pool 32 chips (EP32 instances)" in detail
    assert "concurrency 180" in detail and "MTP 1 draft" in detail
