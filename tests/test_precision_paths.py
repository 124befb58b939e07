"""Which peak and which achievable fraction a GEMM runs at: FP4 has its own fraction; GEMMs whose
weights stay bf16 run at the bf16 peak whatever the deployment's precision."""

import numpy as np
import pytest

from tokenfab.graph.ops import Op
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.evaluate import Hardware, time_ops
from tokenfab.specs import SystemSpec


def test_fp4_gemms_use_their_own_fraction_and_fall_back_to_the_low_precision_one():
    eff = Efficiency(gemm_compute_frac=0.8, lowp_gemm_compute_frac=0.7, fp4_gemm_compute_frac=0.5)
    assert eff.gemm_frac("fp4") == 0.5
    assert eff.gemm_frac("fp8") == 0.7
    assert eff.gemm_frac("bf16") == 0.8
    assert Efficiency(gemm_compute_frac=0.8, lowp_gemm_compute_frac=0.7).gemm_frac("fp4") == 0.7


def _hw(eff):
    return Hardware(gemm_tflops=np.array([2000.0]), attention_tflops=1000.0, hbm_tb_s=1e6, cores=100, eff=eff,
                    system=SystemSpec(scaleup_gb_s=450), gemm_frac=np.array([0.5]),
                    bf16_tflops=1000.0, bf16_frac=0.8)


def test_a_bf16_weight_gemm_runs_at_the_bf16_peak_in_an_fp8_deployment():
    # 2*4096^3 FLOPs = 137.4 GFLOP. Quantized path: 2000 TFLOP/s x 0.5 -> 137.4 us;
    # bf16 weights: 1000 x 0.8 -> 171.8 us (launch overhead 0, HBM unlimited).
    eff = Efficiency(kernel_launch_us=0.0)
    n = 4096.0
    quant = Op("mlp_up", "gemm", 1, m=n, n=n, k=n, w_bytes=1.0, a_bytes=2.0)
    head = Op("lm_head", "gemm", 1, m=n, n=n, k=n, w_bytes=2.0, a_bytes=2.0, meta={"bf16_weights": True})
    t_quant, t_head = (float(np.ravel(t.seconds)[0]) for t in time_ops([quant, head], _hw(eff)))
    assert t_quant == pytest.approx(2 * n ** 3 / (2000e12 * 0.5))
    assert t_head == pytest.approx(2 * n ** 3 / (1000e12 * 0.8))


def test_weight_only_4bit_formats_compute_in_bf16_without_4bit_math():
    # W4A16 (int4) everywhere and MXFP4 on Hopper: 4-bit weight bytes, bf16 math; NVFP4 on
    # Blackwell runs at the FP4 rate.
    from tokenfab.catalog import load_chip
    from tokenfab.mapping.search import compute_precision
    h100, b200 = load_chip("h100-sxm"), load_chip("b200")
    assert compute_precision(h100, "fp4") == "bf16"
    assert compute_precision(h100, "int4") == "bf16"
    assert compute_precision(b200, "fp4") == "fp4"
    assert compute_precision(h100, "fp8") == "fp8"
