"""Gated DeltaNet prefill kernels against aiconfigurator's `gdn_perf` tables (validate/aic_gdn.py): the
reader on a hand-made table in the package's layout (CSV), and the fit recovering the two parameters
of a table generated from the engine's own formula (a brute-force oracle of the grid search)."""

import importlib.util

import numpy as np
import pytest
from conftest import write_aic_table

from tokenfab import catalog
from tokenfab.perf.efficiency import Efficiency
from tokenfab.validate import aic_gdn
from tokenfab.validate import aiconfigurator as aic

COLS = ("kernel_source", "phase", "batch_size", "seq_len", "num_k_heads", "head_k_dim", "num_v_heads", "head_v_dim",
        "latency")


def _write(root, rows):
    write_aic_table(root, "h100_sxm", "linear_attention", "trtllm", "1.3.0", "gdn_perf",
                    [{c: r[c] for c in COLS} for r in rows])


def _grid():
    for b in (1, 4, 16):
        for s in (1024, 4096, 16384):
            for hv in (4, 16, 64):
                yield {"kernel_source": "chunk_gated_delta_rule", "phase": "context", "batch_size": b, "seq_len": s,
                       "num_k_heads": max(hv // 4, 1), "head_k_dim": 128, "num_v_heads": hv, "head_v_dim": 128}


def test_only_context_chunked_rows_are_read_in_seconds(tmp_path):
    rows = [dict(r, latency=0.5) for r in _grid()]
    rows.append({**rows[0], "kernel_source": "causal_conv1d_fn", "latency": 0.01})
    rows.append({**rows[0], "phase": "generation", "kernel_source": "fused_recurrent_gated_delta_rule",
                 "latency": 0.01})
    _write(tmp_path, rows)
    got = aic_gdn.load_rows(tmp_path, "h100_sxm")
    assert got.rows == 27 and np.all(got.columns["latency_s"] == pytest.approx(0.5e-3))


def test_the_fit_recovers_the_parameters_a_table_was_generated_with(tmp_path):
    chip = catalog.load_chip("h100-sxm")
    eff = Efficiency(kernel_launch_us=2.0)
    rows = [dict(r, latency=1.0) for r in _grid()]
    _write(tmp_path, rows)
    probe = aic_gdn.load_rows(tmp_path, "h100_sxm")
    ops = aic_gdn.core_ops(probe, aic_gdn._template_model())
    truth = eff.model_copy(update={"scan_compute_frac": 0.08, "scan_chunk_us": 3.0})
    seconds = aic_gdn.predict(ops, probe.rows, chip, truth)
    # Both bounds bind somewhere: one prompt with few heads walks its chunks, many prompts are work.
    assert len(rows) == seconds.size
    _write(tmp_path, [dict(r, latency=t * 1e3) for r, t in zip(rows, seconds)])
    fit = aic_gdn.fit_chip(tmp_path, "h100_sxm", chip, eff)
    assert fit.scan_compute_frac == pytest.approx(0.08) and fit.scan_chunk_us == pytest.approx(3.0)
    assert fit.after < 1e-9 < fit.before and fit.improves


@pytest.mark.slow  # reads the shipped parquet tables
@pytest.mark.skipif(importlib.util.find_spec("aiconfigurator_core") is None, reason="aiconfigurator not installed")
def test_shipped_h100_table_fits_within_ten_percent():
    from tokenfab.perf.efficiency import stack_default

    # From the CUDA stack's defaults (the shipped calibration already holds this fit).
    chip = catalog.load_chip("h100-sxm")
    fit = aic_gdn.fit_chip(aic.data_root(), "h100_sxm", chip, stack_default("cuda"))
    assert fit.rows > 100 and fit.after < 0.10 < fit.before
    assert 0.02 < fit.scan_compute_frac < 0.2 and 1.0 < fit.scan_chunk_us < 6.0
