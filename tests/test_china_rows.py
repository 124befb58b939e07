"""The China-chip and SGLang rows added to deployments.csv for issue 14 (D0038-D0066): each row
says where it was read and what it states, unusable rows say why first, the published figures
reproduce from the run totals the source prints, and the rows are predicted at the operating
point they state."""

from __future__ import annotations

import re

import pytest

from tokenfab import catalog
from tokenfab.specs.measurement import load_measurements
from tokenfab.validate import validate_rows
from tokenfab.validate.datasets import measurements_dir

FIRST, LAST = 38, 66


@pytest.fixture(scope="module")
def rows():
    all_rows = load_measurements(measurements_dir() / "deployments.csv")
    return [r for r in all_rows if r.id.startswith("D") and FIRST <= int(r.id[1:]) <= LAST]


def test_ids_continue_the_d_series(rows):
    assert [r.id for r in rows] == [f"D{i:04d}" for i in range(FIRST, LAST + 1)]


def test_every_row_is_sourced_and_explained(rows):
    for r in rows:
        assert r.source and r.source_ref, r.id
        catalog.load_chip(r.hardware)  # a catalog chip
        if r.usable:
            assert r.notes.startswith("orig:"), r.id
        else:
            assert r.notes.startswith("UNUSABLE:"), r.id
        # Every end-to-end row states its layout and its load (concurrency, or why it is unusable).
        if not r.is_micro:
            assert r.tp or not r.usable, r.id
            assert r.batch or not r.usable, r.id


def test_published_figures_reproduce_from_run_totals(rows):
    by_id = {r.id: r for r in rows}
    # SGLang PR #7631 on 8xH20: 200 requests, 103005 input and 53590 generated tokens in 163.34 s.
    d38 = by_id["D0038"]
    assert 53590 / 163.34 == pytest.approx(d38.value, abs=0.02)  # 328.09 vs 328.08 printed
    assert d38.input_len == pytest.approx(103005 / 200, abs=0.05)  # 515.0 mean prompt tokens
    assert d38.output_len == pytest.approx(53590 / 200, abs=0.05)  # 268.0 mean output tokens
    # The untuned run of PR #6885: the same totals in 202.64 s.
    assert 53590 / 202.64 == pytest.approx(by_id["D0040"].value, abs=0.01)
    # SGLang issue #3361 on 2x8 H800: QPS x mean output length = output tok/s (2.45 x 253.47 = 621).
    for rid, qps in (("D0042", 2.45), ("D0043", 1.81), ("D0044", 1.05)):
        assert qps * 253.47 == pytest.approx(by_id[rid].value, rel=0.01)
    # FlashMLA on H20: 2 x 128 x s_q x 64 x 8192 x 1088 FLOPs / time = the printed TFLOPS.
    for rid, sq, ms in (("D0051", 3, 3.407), ("D0052", 4, 4.641), ("D0053", 6, 6.748)):
        assert 2 * 128 * sq * 64 * 8192 * 1088 / (ms * 1e-3) / 1e12 == pytest.approx(by_id[rid].value, rel=0.01)


def test_the_96gb_h20_cannot_hold_the_vllm_recipe_run():
    # Why D0041 is unusable: DeepSeek-V3.2 FP8 weights per GPU at TP8 plus 100 sequences of
    # 2048 + 1024 tokens of MLA latent (656 B per token per layer in vLLM's FP8 format, 61 layers,
    # replicated on every TP rank): 100 x 3072 x 656 x 61 = 12.3 GB on top of ~86 GB > 96 GB.
    kv_gb = 100 * 3072 * 656 * 61 / 1e9
    assert kv_gb == pytest.approx(12.29, abs=0.01)
    model = catalog.load_model("deepseek-v3.2")
    weights_gb_per_gpu = model.total_params() * 1.0 / 8 / 1e9  # 671.9B x 1 B / 8 = 84.0 GB
    # 84.0 + 12.3 = 96.3 GB > 96 GB before activations, CUDA graphs and the bf16 embedding/head.
    assert weights_gb_per_gpu + kv_gb > catalog.load_chip("h20").hbm_gb


def test_rows_are_predicted_at_their_stated_concurrency(rows):
    usable_e2e = [r for r in rows if r.usable and not r.is_micro and r.metric == "output_tok_s"]
    res = {r.id: r for r in validate_rows(usable_e2e)}
    for r in usable_e2e:
        got = res[r.id]
        assert got.error is not None, (r.id, got.skipped)
        assert re.search(rf"stated: concurrency {int(r.batch)}\b", got.detail), (r.id, got.detail)
        assert f"tp{int(r.tp)}" in got.detail
