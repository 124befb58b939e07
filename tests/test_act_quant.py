"""The activation quantization before a low-precision GEMM: a memory pass over its M x K input.

Worked by hand on H100 SXM (3.35 TB/s): an FP8 GEMM of M = 4096, K = 8192 whose chip moves 6 bytes
per input element at a copy fraction of 0.8 pays 4096 x 8192 x 6 B / (3.35e12 x 0.8 B/s) = 75.1 µs
before the GEMM itself; a BF16 GEMM, a weight-only 4-bit GEMM computing in BF16, a GEMM whose
weights stay BF16 and a TensorRT engine (Q/DQ fusion) pay nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

from tokenfab import catalog
from tokenfab.graph.ops import Op
from tokenfab.mapping.search import chip_hardware
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.evaluate import time_ops
from tokenfab.perf.framework import apply_profile, load_framework
from tokenfab.specs import SystemSpec

H100 = catalog.load_chip("h100-sxm")
LLAMA = catalog.load_model("llama-3.1-8b")


def _seconds(eff: Efficiency, precision: str, w_bytes: float, meta=None) -> float:
    hw = chip_hardware(LLAMA, H100, SystemSpec.for_chip(H100), eff, (precision,), None, np.array([0]))
    op = Op("g", "gemm", 1, m=4096.0, n=8192.0, k=8192.0, w_bytes=w_bytes, a_bytes=1.0, meta=meta or {})
    return float(np.asarray(time_ops([op], hw)[0].seconds).ravel()[0])


def test_fp8_gemm_pays_the_quantization_pass_worked_by_hand():
    base = Efficiency(hbm_frac=0.8)
    with_pass = base.model_copy(update={"lowp_act_quant_bytes": 6.0})
    extra = _seconds(with_pass, "fp8", 1.0) - _seconds(base, "fp8", 1.0)
    assert extra * 1e6 == pytest.approx(4096 * 8192 * 6 / (3.35e12 * 0.8) * 1e6, rel=1e-6)
    assert extra * 1e6 == pytest.approx(75.1, abs=0.1)


def test_nothing_to_quantize_pays_nothing():
    base = Efficiency(hbm_frac=0.8)
    with_pass = base.model_copy(update={"lowp_act_quant_bytes": 6.0, "fp4_act_quant_bytes": 6.0})
    assert _seconds(with_pass, "bf16", 2.0) == _seconds(base, "bf16", 2.0)
    # H100 has no FP4 math: 4-bit weights compute in BF16 (weight-only), no activation to quantize
    assert _seconds(with_pass, "int4", 0.5625) == _seconds(base, "int4", 0.5625)
    assert _seconds(with_pass, "fp8", 2.0, {"bf16_weights": True}) == _seconds(base, "fp8", 2.0, {"bf16_weights": True})


def test_a_tensorrt_engine_fuses_the_pass_away():
    eff = Efficiency(hbm_frac=0.8, lowp_act_quant_bytes=6.0)
    fused = apply_profile(eff, load_framework("tensorrt"))
    assert fused.act_quant_bytes("lowp") == 0.0 and fused.act_quant_bytes("fp4") == 0.0
    assert _seconds(fused, "fp8", 1.0) == _seconds(Efficiency(hbm_frac=0.8), "fp8", 1.0)
    assert apply_profile(eff, load_framework("vllm")).act_quant_bytes("lowp") == 6.0


def test_a_fitted_fused_moe_layer_holds_its_own_quantization():
    """aiconfigurator's fused-MoE tables time the FP8 activation quantization inside the layer, and the
    MoE fit prices no pass of its own: a serving step charges none on the fitted expert GEMMs. Without
    a MoE fit, and in training (Transformer Engine quantizes apart: `quant_apart`), the pass is paid."""
    base = Efficiency(hbm_frac=0.8, lowp_act_quant_bytes=6.0)
    fitted = base.model_copy(update={"lowp_moe_gemm_compute_scale": 1.0, "lowp_moe_gemm_stream_scale": 1.0,
                                     "lowp_moe_layer_fixed_us": 0.0})
    ragged = {"ragged": True}
    no_pass = Efficiency(hbm_frac=0.8).model_copy(update={"lowp_moe_gemm_compute_scale": 1.0,
                                                          "lowp_moe_gemm_stream_scale": 1.0,
                                                          "lowp_moe_layer_fixed_us": 0.0})
    assert _seconds(fitted, "fp8", 1.0, ragged) == _seconds(no_pass, "fp8", 1.0, ragged)
    paid = _seconds(fitted, "fp8", 1.0, {**ragged, "quant_apart": True}) - _seconds(fitted, "fp8", 1.0, ragged)
    assert paid * 1e6 == pytest.approx(75.1, abs=0.1)
    unfitted = _seconds(base, "fp8", 1.0, ragged) - _seconds(Efficiency(hbm_frac=0.8), "fp8", 1.0, ragged)
    assert unfitted * 1e6 == pytest.approx(75.1, abs=0.1)


def test_more_quantization_bytes_never_make_a_gemm_faster():
    lo = Efficiency(hbm_frac=0.8, lowp_act_quant_bytes=1.0)
    hi = lo.model_copy(update={"lowp_act_quant_bytes": 9.0})
    assert _seconds(hi, "fp8", 1.0) > _seconds(lo, "fp8", 1.0)


def test_the_design_screen_charges_the_same_pass():
    """The design search's screening kernels (`perf.screen.time_ops`, per-design arrays) charge the
    pass as the per-design path does: the same 75.1 µs worked above, on a stacked H100 (CI once
    caught a screen 10% cheaper than the full path because it skipped it)."""
    from tokenfab.mapping import batched
    from tokenfab.perf import screen, tiled

    base = Efficiency(hbm_frac=0.8)
    with_pass = base.model_copy(update={"lowp_act_quant_bytes": 6.0})

    def screened(eff):
        hw = chip_hardware(LLAMA, H100, SystemSpec.for_chip(H100), eff, ("fp8",), None, np.array([0]))
        hw = hw.__class__(**{**hw.__dict__, "tiled": batched.stack_hw([tiled.tiled_hw_for(H100)]),
                             "gemm_tflops": np.array([[H100.fp8_tflops]]), "hbm_tb_s": np.array([[H100.hbm_tb_s]]),
                             "bf16_tflops": np.array([[H100.bf16_tflops]])})
        op = Op("g", "gemm", 1, m=np.array([4096.0]), n=np.array([8192.0]), k=np.array([8192.0]), w_bytes=1.0,
                a_bytes=1.0)
        return float(np.asarray(screen.time_ops([op], hw)[0].seconds).ravel()[0])

    assert (screened(with_pass) - screened(base)) * 1e6 == pytest.approx(75.1, abs=0.1)
