"""The serving framework as an input: profiles, how they change an Efficiency, and the catalog."""

from __future__ import annotations

import pytest

from tokenfab.perf.efficiency import SCAN_FIELDS, Efficiency
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
    # The expert dispatch kernels' own fields, where a calibration fitted them, slow alike.
    ep = apply_profile(BASE.model_copy(update={"alltoall_latency_us": 50.0, "alltoall_bw_frac": 0.4}),
                       prof(comm_quality=0.5))
    assert (ep.alltoall_latency_us, ep.alltoall_bw_frac) == (pytest.approx(100.0), pytest.approx(0.2))
    assert out.alltoall_latency_us is None and out.alltoall_bw_frac is None  # unfitted: NCCL's fields


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
            assert "fit_frameworks.py" in p.source
            assert "leave-one-source-out" in p.source or "leave-one-model-out (one source" in p.source
        elif p.act_quant_fused:  # a property of the software, not a fit: it says where it is documented
            assert "fusion" in p.source.lower()


def test_names_resolve_case_insensitively_through_aliases_and_vendor_variants():
    assert load_framework("TensorRT-LLM").id == "trt-llm"
    assert load_framework("vllm").id == "vllm"
    assert load_framework("vllm", vendor="AMD").id == "vllm-rocm"
    assert load_framework("vllm", vendor="NVIDIA").id == "vllm"
    assert load_framework("sglang", vendor="Huawei (HiSilicon)").id == "sglang-ascend"
    assert load_framework("sglang", vendor="NVIDIA").id == "sglang"


def test_sglang_on_ascend_keeps_sglangs_front_end_and_slows_only_its_kernels():
    """The Ascend backend runs SGLang's API server and scheduler (same host path) with its own
    kernels: memory-bound kernels slower than GEMMs (fitted 0.4 and 0.6 of the calibration)."""
    base, npu = load_framework("sglang"), load_framework("sglang-ascend")
    assert (npu.request_overhead_ms, npu.input_us_per_token) == (base.request_overhead_ms, base.input_us_per_token)
    assert npu.memory_quality == npu.attention_quality < npu.gemm_quality < 1.0


def _fit_script():
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("fit_frameworks", Path(__file__).parents[1] / "bench" / "fit_frameworks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_profile_fits_hold_out_sources_or_with_one_source_its_models():
    """>= 8 rows: folds are the sources; one source of >= 3 models: leave-one-model-out; one source
    of 2 models, or fewer than 8 rows: no fit."""
    from types import SimpleNamespace as R
    fit = _fit_script()
    rows = lambda srcs, models: [(R(source=s, model=m), None) for s, m in zip(srcs, models)]  # noqa: E731
    groups, kind = fit.folds_of(rows(["a"] * 4 + ["b"] * 4, ["m"] * 8))
    assert kind == "leave-one-source-out" and sorted(set(groups)) == ["a", "b"]
    groups, kind = fit.folds_of(rows(["a"] * 9, ["x", "y", "z"] * 3))
    assert kind.startswith("leave-one-model-out") and sorted(set(groups)) == ["x", "y", "z"]
    assert fit.folds_of(rows(["a"] * 9, ["x", "y"] * 4 + ["x"])) is None
    assert fit.folds_of(rows(["a", "b"] * 3, ["x", "y", "z"] * 2)) is None


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


# ---- a framework's own MoE kernels (calibration `aiconfigurator.framework_moe`) -------------------

def test_vllm_on_h100_prices_its_own_4bit_moe_kernels_and_trt_llm_keeps_its_own():
    """H100's shipped calibration fits TensorRT-LLM's W4A16 MoE kernels with ~86 µs of fixed work per
    layer beyond the engine's routing and permute kernels (2 µs each), about twice what vLLM's
    Triton MXFP4 kernel runs (41 µs; gpt-oss-120b at TP 8, one token: 39 µs measured per layer in
    aiconfigurator's vLLM table); the file's vLLM terms apply under vLLM only."""
    from tokenfab import catalog
    from tokenfab.perf.efficiency import efficiency_for, framework_moe_terms
    from tokenfab.perf.framework import efficiency_under

    h100 = catalog.load_chip("h100-sxm")
    own = framework_moe_terms("h100-sxm", "vllm")
    assert set(own) == {"fp4_moe_gemm_compute_scale", "fp4_moe_gemm_stream_scale", "fp4_moe_layer_fixed_us"}
    trt = efficiency_under(h100, "trt-llm", moe=True).moe_terms("fp4")
    vllm = efficiency_under(h100, "vllm", moe=True).moe_terms("fp4")
    assert trt[2] * 1e6 > 40.0 and vllm[2] * 1e6 == pytest.approx(own["fp4_moe_layer_fixed_us"])
    assert vllm[2] < trt[2] / 2
    # Everything but the MoE terms is the chip's calibration; without a framework nothing changes.
    base, under = efficiency_for(h100), efficiency_for(h100, "vllm")
    assert under.gemm_compute_frac == base.gemm_compute_frac and under.moe_terms("lowp") == base.moe_terms("lowp")
    # No SGLang MoE terms cleared the bar on H100; its Gated DeltaNet prefill terms did (below), and its
    # block-scaled FP8 GEMMs (DeepGEMM: the next test).
    from tokenfab.perf.efficiency import BLOCK_GEMM_FIELDS

    sglang = efficiency_for(h100, "sglang")
    assert sglang.model_copy(update={f: getattr(base, f) for f in SCAN_FIELDS + BLOCK_GEMM_FIELDS}) == base.model_copy(
        update={"source": sglang.source})
    # A copied chip that names the calibration gets the same framework terms.
    copy = h100.model_copy(update={"id": "my-h100", "calibration": "h100-sxm"})
    assert efficiency_for(copy, "vllm").moe_terms("fp4") == under.moe_terms("fp4")


def test_each_framework_prices_gated_deltanet_prefill_with_its_own_measured_kernels():
    """H100's shipped calibration: TensorRT-LLM's (FLA's Triton) chunked Gated DeltaNet prefill is
    the reference; vLLM's FlashInfer kernel sustains several times its share of the BF16 peak, and the
    file's terms apply under vLLM only (aiconfigurator `gdn_perf`, `validate.aic_gdn`)."""
    from tokenfab import catalog
    from tokenfab.perf.efficiency import efficiency_for, framework_kernel_terms

    h100 = catalog.load_chip("h100-sxm")
    base = efficiency_for(h100)
    own = framework_kernel_terms("h100-sxm", "vllm", "framework_gdn")
    assert set(own) == set(SCAN_FIELDS)
    vllm = efficiency_for(h100, "vllm")
    assert vllm.scan_compute_frac == own["scan_compute_frac"] > 4 * base.scan_compute_frac
    assert efficiency_for(h100, "trt-llm").scan_compute_frac == base.scan_compute_frac
    assert "Gated DeltaNet prefill" in vllm.source and "MoE layer" in vllm.source


def test_sglang_prices_block_scaled_fp8_with_its_own_hopper_kernels_and_the_moe_layer_keeps_its_fit():
    """H200's shipped calibration: SGLang's block-scaled FP8 GEMMs on Hopper (DeepGEMM) run ~13% faster
    than TensorRT-LLM's at M >= 4096 in aiconfigurator's tables, so its own fit applies under SGLang
    (`aiconfigurator.framework_gemm`); the fused-MoE terms are re-expressed against whichever block
    fraction applies, so the grouped expert GEMMs price the same under both."""
    from tokenfab import catalog
    from tokenfab.perf.efficiency import BLOCK_GEMM_FIELDS, efficiency_for, framework_kernel_terms

    h200 = catalog.load_chip("h200-sxm")
    own = framework_kernel_terms("h200-sxm", "sglang", "framework_gemm")
    assert set(own) <= set(BLOCK_GEMM_FIELDS) and "block_gemm_compute_frac" in own
    ref, sgl = efficiency_for(h200), efficiency_for(h200, "sglang")
    assert sgl.block_gemm_compute_frac == own["block_gemm_compute_frac"] > ref.block_gemm_compute_frac
    assert sgl.lowp_gemm_compute_frac == ref.lowp_gemm_compute_frac  # per-tensor FP8 untouched
    assert "block-scaled FP8 GEMM" in sgl.source
    for e in (ref, sgl):  # grouped expert GEMMs: block fraction x re-expressed scale = the block MoE fit's product
        b = e.for_block_scales()
        assert b.gemm_frac("fp8") * b.moe_terms("lowp")[0] == pytest.approx(e.gemm_frac("fp8") * e.moe_terms("block")[0])


@pytest.fixture
def calibration_dir(tmp_path, monkeypatch):
    """A calibration folder of the test's own (`TOKENFAB_CALIBRATION_DIR`), caches cleared around it."""
    from tokenfab.perf.efficiency import efficiency_for

    monkeypatch.setenv("TOKENFAB_CALIBRATION_DIR", str(tmp_path))
    efficiency_for.cache_clear()
    yield tmp_path
    monkeypatch.delenv("TOKENFAB_CALIBRATION_DIR")
    efficiency_for.cache_clear()


def test_framework_gdn_terms_accept_only_scan_fields(calibration_dir):
    from tokenfab.perf.efficiency import framework_kernel_terms

    (calibration_dir / "x.yaml").write_text("efficiency: {}\naiconfigurator:\n  framework_gdn:\n    vllm:\n"
                                            "      applied: {moe_layer_fixed_us: 3.0}\n")
    with pytest.raises(ValueError, match="not Gated DeltaNet prefill fields"):
        framework_kernel_terms("x", "vllm", "framework_gdn")
    assert framework_kernel_terms("x", "vllm", "framework_moe") == {}


def test_framework_moe_terms_accept_only_moe_layer_fields(calibration_dir):
    from tokenfab.perf.efficiency import framework_moe_terms

    (calibration_dir / "x.yaml").write_text("efficiency: {}\naiconfigurator:\n  framework_moe:\n    vllm:\n"
                                            "      applied: {gemm_compute_frac: 0.9}\n")
    with pytest.raises(ValueError, match="not MoE layer fields"):
        framework_moe_terms("x", "vllm")
    assert framework_moe_terms("x", "sglang") == {} and framework_moe_terms("absent", "vllm") == {}
    for value, says in (("fast", "valid number"), ("-3", "greater than or equal to 0")):
        (calibration_dir / "y.yaml").write_text("efficiency: {}\naiconfigurator:\n  framework_moe:\n    vllm:\n"
                                                f"      applied: {{fp4_moe_layer_fixed_us: {value}}}\n")
        with pytest.raises(SpecError, match=f"y.yaml: framework_moe.vllm: fp4_moe_layer_fixed_us: .*{says}"):
            framework_moe_terms("y", "vllm")


def test_a_young_stack_pays_its_maturity_on_the_frameworks_own_moe_terms_too():
    """Maturity applies after the framework's own terms: fixed costs / m, fractions x m (here the
    4-bit MoE layer's fixed cost of vLLM's kernels on H100 silicon at maturity 0.5)."""
    from tokenfab import catalog
    from tokenfab.perf.efficiency import efficiency_for, framework_moe_terms

    young = catalog.load_chip("h100-sxm").model_copy(update={"id": "young-h100", "calibration": "h100-sxm",
                                                               "software_maturity": 0.5})
    own = framework_moe_terms("h100-sxm", "vllm")
    eff = efficiency_for(young, "vllm")
    assert eff.fp4_moe_layer_fixed_us == pytest.approx(own["fp4_moe_layer_fixed_us"] / 0.5)
    assert eff.moe_terms("fp4")[0] == pytest.approx(own["fp4_moe_gemm_compute_scale"])  # a scale, not a fraction


def test_framework_gemm_terms_accept_only_block_scaled_gemm_fields(calibration_dir):
    from tokenfab.perf.efficiency import framework_kernel_terms

    (calibration_dir / "x.yaml").write_text("efficiency: {}\naiconfigurator:\n  framework_gemm:\n    sglang:\n"
                                            "      applied: {lowp_gemm_compute_frac: 0.9}\n")
    with pytest.raises(ValueError, match="not block-scaled FP8 GEMM fields"):
        framework_kernel_terms("x", "sglang", "framework_gemm")
    (calibration_dir / "y.yaml").write_text("efficiency: {}\naiconfigurator:\n  framework_gemm:\n    sglang:\n"
                                            "      applied: {block_gemm_compute_frac: 0.61}\n")
    assert framework_kernel_terms("y", "sglang", "framework_gemm") == {"block_gemm_compute_frac": 0.61}
    assert framework_kernel_terms("y", "vllm", "framework_gemm") == {}
