"""The serving framework as an input: profiles, how they change an Efficiency, and the catalog."""

from __future__ import annotations

import pytest

from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.framework import (EAGER_KERNEL_LAUNCH_US, apply_profile, known_frameworks, load_framework,
                                     override_profiles, profile_for)
from tokenfab.specs import SpecError
from tokenfab.specs.framework import FrameworkProfile

BASE = Efficiency()  # gemm 0.78, attention 0.60, hbm 0.85, launch 3 µs, comm 0.80 / 4 µs / 12 µs, step 0.3 ms


def prof(**kw) -> FrameworkProfile:
    return FrameworkProfile(id="test", **kw)


def test_neutral_profile_returns_the_efficiency_unchanged():
    assert prof().is_neutral
    assert apply_profile(BASE, prof()) is BASE


def test_gemm_quality_scales_every_gemm_fraction_and_nothing_else():
    eff = BASE.model_copy(update={"lowp_gemm_compute_frac": 0.70, "fp4_gemm_compute_frac": 0.50})
    out = apply_profile(eff, prof(gemm_quality=0.75))
    assert out.gemm_compute_frac == pytest.approx(0.585)       # 0.78 × 0.75
    assert out.lowp_gemm_compute_frac == pytest.approx(0.525)  # 0.70 × 0.75
    assert out.fp4_gemm_compute_frac == pytest.approx(0.375)   # 0.50 × 0.75
    assert out.attention_compute_frac == pytest.approx(0.60)
    assert out.hbm_frac == pytest.approx(0.85)
    assert out.step_overhead_ms == pytest.approx(0.3)


def test_unset_low_precision_fractions_stay_unset():
    out = apply_profile(BASE, prof(gemm_quality=0.5))
    assert out.lowp_gemm_compute_frac is None and out.fp4_gemm_compute_frac is None


def test_attention_and_memory_quality_scale_their_fractions_capped_at_one():
    out = apply_profile(BASE, prof(attention_quality=0.9, memory_quality=1.2))
    assert out.attention_compute_frac == pytest.approx(0.54)  # 0.60 × 0.9
    assert out.hbm_frac == 1.0                                # 0.85 × 1.2 = 1.02, capped


def test_moe_quality_applies_only_to_moe_models():
    p = prof(gemm_quality=0.8, moe_quality=0.5)
    assert apply_profile(BASE, p, moe=True).gemm_compute_frac == pytest.approx(0.312)  # 0.78 × 0.8 × 0.5
    assert apply_profile(BASE, p, moe=False).gemm_compute_frac == pytest.approx(0.624)  # 0.78 × 0.8


def test_slower_collectives_lose_bandwidth_and_gain_latency():
    out = apply_profile(BASE, prof(comm_quality=0.5))
    assert out.comm_bw_frac == pytest.approx(0.40)         # 0.80 × 0.5
    assert out.comm_latency_us == pytest.approx(8.0)       # 4 / 0.5
    assert out.scaleout_latency_us == pytest.approx(24.0)  # 12 / 0.5


def test_overlap_hides_collective_time_up_to_the_bandwidth_cap():
    out = apply_profile(BASE, prof(comm_overlap_frac=0.2))
    assert out.comm_latency_us == pytest.approx(3.2)       # 4 × (1 − 0.2)
    assert out.scaleout_latency_us == pytest.approx(9.6)   # 12 × 0.8
    assert out.comm_bw_frac == pytest.approx(1.0)          # 0.80 / 0.8 = 1.0
    assert apply_profile(BASE, prof(comm_overlap_frac=0.5)).comm_bw_frac == 1.0  # 1.6, capped


def test_host_overhead_replaces_the_chip_value_when_set():
    assert apply_profile(BASE, prof(step_overhead_ms=2.0)).step_overhead_ms == 2.0
    assert apply_profile(BASE, prof(gemm_quality=0.9)).step_overhead_ms == 0.3


def test_eager_launch_without_cuda_graphs_raises_the_per_kernel_cost_only_upward():
    assert apply_profile(BASE, prof(cuda_graphs=False)).kernel_launch_us == EAGER_KERNEL_LAUNCH_US
    slow = BASE.model_copy(update={"kernel_launch_us": 12.0})
    assert apply_profile(slow, prof(cuda_graphs=False)).kernel_launch_us == 12.0


def test_fields_the_profile_does_not_touch_pass_through():
    eff = BASE.model_copy(update={"tile_m": 256, "min_tile_m": 16, "source": "calibrated: x"})
    out = apply_profile(eff, prof(gemm_quality=0.9, step_overhead_ms=1.0))
    assert (out.tile_m, out.min_tile_m, out.tile_n) == (256, 16, 128)
    assert out.source.startswith("calibrated: x") and "framework profile test" in out.source


def test_quality_factors_are_physically_bounded():
    with pytest.raises(SpecError, match="gemm_quality"):
        FrameworkProfile.from_mapping({"id": "x", "gemm_quality": 0.1})
    with pytest.raises(SpecError, match="comm_overlap_frac"):
        FrameworkProfile.from_mapping({"id": "x", "comm_overlap_frac": 1.0})
    with pytest.raises(SpecError, match="unknown field"):
        FrameworkProfile.from_mapping({"id": "x", "speedup": 2})


def test_catalog_has_the_issue_frameworks_and_the_reference_is_neutral():
    names = known_frameworks()
    for name in ("neutral", "trt-llm", "vllm", "sglang", "vllm-rocm", "mindie", "deepseek-inhouse"):
        assert name in names
    assert load_framework("neutral").is_neutral
    assert load_framework("trt-llm").is_neutral
    for name in names:
        assert load_framework(name).source


def test_fitted_profiles_say_how_they_were_fitted():
    for name in known_frameworks():
        p = load_framework(name)
        if not p.model_copy(update={"act_quant_fused": False}).is_neutral:
            assert "fit_frameworks.py" in p.source and "leave-one-source-out" in p.source
        elif p.act_quant_fused:  # a property of the software, not a fit: it says where it is documented
            assert "fusion" in p.source.lower()


def test_names_resolve_case_insensitively_through_aliases_and_vendor_variants():
    assert load_framework("TensorRT-LLM").id == "trt-llm"
    assert load_framework("vllm").id == "vllm"
    assert load_framework("vllm", vendor="AMD").id == "vllm-rocm"
    assert load_framework("vllm", vendor="NVIDIA").id == "vllm"


def test_unknown_framework_error_lists_the_known_names():
    with pytest.raises(SpecError) as exc:
        load_framework("tgi")
    msg = str(exc.value)
    assert "unknown framework 'tgi'" in msg and "sglang" in msg and "trt-llm" in msg and "\n" not in msg


def test_measurement_rows_without_a_profile_are_predicted_neutrally():
    assert profile_for("tgi-gaudi", "Intel").id == "neutral"
    assert profile_for("", "NVIDIA").id == "neutral"
    assert profile_for("vllm", "AMD").id == "vllm-rocm"


def test_a_users_profile_file_loads(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("id: mine\ngemm_quality: 0.9\nstep_overhead_ms: 1.5\n")
    p = load_framework(str(path))
    assert (p.id, p.gemm_quality, p.step_overhead_ms) == ("mine", 0.9, 1.5)
    bad = tmp_path / "list.yaml"
    bad.write_text("frameworks: []\n")
    with pytest.raises(SpecError, match="one profile"):
        load_framework(str(bad))


def test_override_replaces_a_profile_only_inside_the_block():
    shipped = load_framework("sglang")
    with override_profiles({"sglang": FrameworkProfile(id="sglang", gemm_quality=0.5)}):
        assert load_framework("sglang").gemm_quality == 0.5
    assert load_framework("sglang") == shipped


def test_validate_applies_the_row_framework_profile():
    """A vLLM-on-MI300X MLPerf server row: with kernels at half the reference's speed (GEMM,
    attention and HBM fractions halved) every step takes about twice as long, so the throughput
    meeting the same latency limits falls well below three quarters of the neutral prediction."""
    from tokenfab.specs.measurement import load_measurements
    from tokenfab.validate.datasets import public_csv
    from tokenfab.validate.deployment import predict_deployment

    row = next(r for r in load_measurements(public_csv()) if r.id == "M0134")
    assert (row.framework, row.hardware, row.scenario) == ("vllm", "mi300x", "server")
    with override_profiles({"vllm-rocm": FrameworkProfile(id="vllm-rocm")}):
        neutral = predict_deployment(row).value
    half = FrameworkProfile(id="vllm-rocm", gemm_quality=0.5, attention_quality=0.5, memory_quality=0.5)
    with override_profiles({"vllm-rocm": half}):
        slow = predict_deployment(row).value
    assert slow < 0.75 * neutral
