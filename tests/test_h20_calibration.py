"""H20 as an architect sees it: a GH100 die whose tensor rate is cut to 15% of H800's while its HBM
stays at 4.0 TB/s. The spec, the regime each MLA decode layout falls in, and the kernel fractions
it runs at (measured on H20 itself, not borrowed from H800).

Sources of the numbers worked below: NVIDIA's H20 datasheet figures in `catalog/chips/h20.yaml`
(148 TFLOPS BF16 and 296 FP8 dense, 4.0 TB/s); FlashMLA on H20, deepseek-ai/FlashMLA issue #30
(rows D0051-D0053 of deployments.csv); FlashAttention-3 on H20, Dao-AILab/flash-attention issue
#1310 (row D0054); FlashMLA on H800, its README (rows M0401-M0402 of public.csv).
"""

from __future__ import annotations

import pytest

from tokenfab import catalog
from tokenfab.graph.ops import StepShape
from tokenfab.graph.transformer import step_ops
from tokenfab.perf import roofline
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.specs.measurement import load_measurements
from tokenfab.validate import validate_rows
from tokenfab.validate.datasets import measurements_dir


@pytest.fixture(scope="module")
def h20():
    return catalog.load_chip("h20")


def test_h20_spec_is_the_datasheet(h20):
    # Dense peaks: FP8 doubles BF16 (296 = 2 x 148); 148 TFLOPS is 15% of H800's 989.4.
    assert h20.bf16_tflops == 148 and h20.fp8_tflops == 296
    assert h20.hbm_tb_s == 4.0 and h20.hbm_gb == 96
    h800 = catalog.load_chip("h800-sxm")
    assert h20.bf16_tflops / h800.bf16_tflops == pytest.approx(0.1496, abs=1e-3)
    # Ridge point of the FP8 roofline: 296e12 / 4.0e12 = 74 FLOP per byte (H800: 1979/3.35 = 591).
    assert h20.fp8_tflops / h20.hbm_tb_s == pytest.approx(74.0)


def _attention_regime(model, tp, dp, batch, ctx, kv_bytes=1.0):
    """FLOP per byte of the fused MLA decode attention op of one step on one chip."""
    s = StepShape(phase="decode", tp=tp, ep=1, dp=dp, seqs=batch, tokens=batch, kv_len=ctx, ctx=ctx,
                  w_bytes=1.0, a_bytes=1.0, kv_bytes=kv_bytes)
    op = next(o for o in step_ops(model, s) if o.name == "attention")
    return float(op.flops) / float(op.bytes)


def test_mla_decode_attention_regime_on_h20():
    # An MLA decode score costs 2 x (576 + 512) = 2176 FLOPs (QK^T over the 576-wide latent+rope,
    # PV over the 512-wide latent) and every head of a chip shares the latent read once: 576 B per
    # KV token at FP8. FLOP per byte = 2176 x heads / 576:
    #   TP8 (16 heads per chip): 2176 x 16 / 576 = 60.4  < 74 -> memory-bound on H20
    #   DP attention (128 heads): 2176 x 128 / 576 = 483.6 > 74 -> compute-bound on H20
    # (on H800, ridge 591, both are memory-bound: why H20 decode is an attention-compute problem).
    # A long context (32k) makes the per-token Q/O traffic (2 x heads x 576 B per sequence) negligible.
    m = catalog.load_model("deepseek-v3")
    tp8 = _attention_regime(m, tp=8, dp=1, batch=64, ctx=32768)
    dp = _attention_regime(m, tp=1, dp=8, batch=64, ctx=32768)
    assert tp8 == pytest.approx(2176 * 16 / 576, rel=0.02)
    assert dp == pytest.approx(2176 * 128 / 576, rel=0.02)
    assert tp8 < 74.0 < dp < 591.0


def test_h20_runs_its_own_measured_attention_fraction(h20):
    # The FlashMLA and FA3 rows on H20 run at 126-130 TFLOPS of 148: (129 + 126 + 130 + 126.2) / 4
    # / 148 = 0.864. H800's FlashMLA reaches 660 of 989 (0.67): the same die with a 6.7x faster
    # tensor path leaves more of each kernel's non-MMA work exposed, so the fraction does not
    # transfer and H20 keeps its own fit (a chip with no calibration would run at the CUDA default 0.60).
    eff = efficiency_for(h20)
    assert h20.calibration == "h20"
    assert eff.attention_compute_frac == pytest.approx((129 + 126 + 130 + 126.2) / 4 / 148, abs=0.005)
    assert eff.attention_compute_frac > efficiency_for(catalog.load_chip("h800-sxm")).attention_compute_frac


def test_flashmla_compute_bound_shape_on_h20(h20):
    # b=128, s_q=3, mean_sk=8192, h_q=64: FLOPs = 2 x 128 x 3 x 64 x 8192 x 1088 = 0.438 TFLOP; BF16
    # KV read 128 x 8192 x 576 x 2 B = 1.21 GB (0.35 ms at 3.4 TB/s) against 3.4 ms measured: compute-bound.
    # Predicted: 148 x 0.864 = 127.9 TFLOPS, so 0.438 TFLOP takes 3.43 ms (measured 3.407 ms, 129 TFLOPS).
    eff = efficiency_for(h20)
    flops = 2 * 128 * 3 * 64 * 8192 * (576 + 512)
    bytes_ = 128 * 8192 * 576 * 2
    t, compute_bound = roofline.attention_time_s(flops, bytes_, h20.bf16_tflops, h20.hbm_tb_s, eff)
    assert bool(compute_bound)
    assert flops / float(t) / 1e12 == pytest.approx(129.0, rel=0.03)
    assert float(t) * 1e3 == pytest.approx(3.407, rel=0.03)


def test_h20_kernel_rows_validate_within_two_percent():
    rows = [r for r in load_measurements(measurements_dir() / "deployments.csv")
            if r.id in ("D0051", "D0052", "D0053", "D0054")]
    assert len(rows) == 4 and all(r.hardware == "h20" and r.scenario == "attention" for r in rows)
    res = validate_rows(rows)
    assert all(r.error is not None and abs(r.error) < 0.02 for r in res), [(r.id, r.error) for r in res]
