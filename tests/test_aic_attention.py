"""The engine's attention kernel scored against aiconfigurator's attention tables (validate/aic_attention.py):
the reader keeps the rows the engine prices, and a long causal prefill is priced as its FLOPs at the
calibrated fraction of the BF16 peak plus one launch, worked by hand."""

import numpy as np
import pytest
from conftest import write_aic_table

from tokenfab import catalog
from tokenfab.perf.efficiency import Efficiency
from tokenfab.validate import aic_attention

COLS = ("batch_size", "isl", "step", "num_heads", "num_key_value_heads", "head_dim", "window_size", "beam_width",
        "attn_dtype", "kv_cache_dtype", "latency")
ROW = {"batch_size": 1, "isl": 8192, "step": 0, "num_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
       "window_size": 0, "beam_width": 1, "attn_dtype": "bfloat16", "kv_cache_dtype": "bfloat16", "latency": 1.0}


def _write(root, rows, table="context_attention_perf"):
    write_aic_table(root, "h100_sxm", "attention", "trtllm", "1.3.0", table, [{c: r[c] for c in COLS} for r in rows])


def test_rows_the_engine_prices_are_kept(tmp_path):
    _write(tmp_path, [ROW, {**ROW, "window_size": 128}, {**ROW, "beam_width": 4}, {**ROW, "attn_dtype": "fp8"}])
    rows = aic_attention.load_rows(tmp_path, "h100_sxm", "context_attention_perf")
    assert rows.rows == 1 and rows.phase == "prefill" and not rows.mla
    assert rows.columns["latency_s"][0] == pytest.approx(1e-3) and rows.columns["kv"][0] == "bf16"


def test_a_long_causal_prefill_is_its_flops_at_the_fraction_plus_a_launch(tmp_path):
    _write(tmp_path, [ROW])
    rows = aic_attention.load_rows(tmp_path, "h100_sxm", "context_attention_perf")
    chip = catalog.load_chip("h100-sxm")
    eff = Efficiency(attention_compute_frac=0.5, kernel_launch_us=2.0, hbm_frac=1.0)
    # Causal: 8,192 tokens attend to 4,096 keys on average; 2 x T x ctx x 32 heads x (128 + 128).
    flops = 2 * 8192 * 4096 * 32 * 256
    got = aic_attention.predict(rows, chip, eff)
    assert got[0] == pytest.approx(flops / (chip.bf16_tflops * 1e12 * 0.5) + 2e-6, rel=1e-6)
    s = aic_attention.summarize(rows, got)
    assert s["rows"] == 1 and s["signed_median"] == pytest.approx(got[0] / 1e-3 - 1)
    assert set(s["signed_median_by_length"]) == {"1k-8k"} and np.isfinite(s["median_ape_long"])
