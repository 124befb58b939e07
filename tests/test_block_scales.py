"""Block-scaled FP8 (issue 14): DeepSeek-V3/R1, Kimi-K2, MiniMax-M2 and Qwen's FP8 releases scale
weights per 128 x 128 block and activations per 1 x 128 group. On matrix units without block-scaled
MMA (Hopper, CDNA3) the kernels rescale each 128-deep K slice in FP32 outside the MMA, so the same
FP8 GEMM reaches a smaller share of the peak than a per-tensor one: H200 0.545 against 0.722 in
aiconfigurator's measured fp8_block and fp8 tables; on B200 both 0.67. A model's release decides
which kernels it runs (`ModelSpec.fp8_weight_block`, `Efficiency.for_block_scales`)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenfab import catalog
from tokenfab.mapping.search import chip_hardware
from tokenfab.perf import roofline
from tokenfab.perf.efficiency import Efficiency, efficiency_for, with_maturity
from tokenfab.perf.framework import apply_profile
from tokenfab.specs import SystemSpec
from tokenfab.specs.framework import FrameworkProfile
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.specs.model import ModelSpec
from tokenfab.validate.micro import predict_micro

EFF = Efficiency(gemm_compute_frac=0.8, lowp_gemm_compute_frac=0.72, lowp_gemm_hbm_frac=0.8, lowp_gemm_fixed_us=5.0,
                 block_gemm_compute_frac=0.54, block_gemm_hbm_frac=0.64, block_gemm_fixed_us=4.0)
CONFIG = {"model_type": "llama", "hidden_size": 1024, "num_hidden_layers": 2, "num_attention_heads": 8,
          "intermediate_size": 4096, "vocab_size": 32000}


def test_the_release_config_names_its_weight_block():
    block = ModelSpec.from_hf_config(CONFIG | {"quantization_config": {
        "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}}, "m")
    per_tensor = ModelSpec.from_hf_config(CONFIG | {"quantization_config": {"quant_method": "fp8"}}, "m")
    mxfp4 = ModelSpec.from_hf_config(CONFIG | {"quantization_config": {"quant_method": "mxfp4"}}, "m")
    assert block.fp8_weight_block == (128, 128)
    assert per_tensor.fp8_weight_block is None and mxfp4.fp8_weight_block is None


def test_catalog_models_carry_their_fp8_release():
    for mid in ("deepseek-r1", "deepseek-v3", "kimi-k2", "minimax-m2"):  # from their own config.json
        assert catalog.load_model(mid).fp8_weight_block == (128, 128), mid
    for mid in ("qwen3-235b-a22b", "qwen3.5-397b-a17b", "qwen3-32b"):  # BF16 configs; the FP8 release in sources.yaml
        assert catalog.load_model(mid).fp8_weight_block == (128, 128), mid
    for mid in ("llama-3.1-70b", "gpt-oss-120b", "mixtral-8x7b"):
        assert catalog.load_model(mid).fp8_weight_block is None, mid


def test_a_bad_block_is_refused_in_one_line():
    with pytest.raises(Exception, match="fp8_weight_block"):
        ModelSpec.model_validate(catalog.load_model("llama-3.1-8b").model_dump() | {"fp8_weight_block": (0, 128)})


def test_block_kernels_replace_the_fp8_class_only():
    b = EFF.for_block_scales()
    assert (b.gemm_frac("fp8"), b.gemm_stream_frac("lowp"), b.gemm_fixed_s("lowp", table_flow=True)) == \
        pytest.approx((0.54, 0.64, 4e-6))
    assert b.gemm_frac("bf16") == 0.8
    # The 4-bit class (unfitted here: it falls back to the FP8 class) keeps the per-tensor values.
    assert (b.gemm_frac("fp4"), b.gemm_stream_frac("fp4"), b.gemm_fixed_s("fp4")) == \
        (EFF.gemm_frac("fp4"), EFF.gemm_stream_frac("fp4"), EFF.gemm_fixed_s("fp4"))
    plain = Efficiency()
    assert plain.for_block_scales() == plain  # no block fields: nothing changes


def test_a_compute_bound_fp8_gemm_slows_by_the_ratio_of_the_fractions():
    # 8192^3 FP8 on a 1000 TFLOPS peak: 2 * 8192^3 / (1e15 * 0.72) = 1.527 ms per-tensor,
    # / 0.54 = 2.036 ms block-scaled; plus the class's fixed cost (5 and 4 us).
    m = 8192.0
    t_tensor, _ = roofline.gemm_time_s(m, m, m, 1000.0, 3.0, 1.0, 1.0, 132, EFF.model_copy(update={
        "dynamic_quant_in_gemm": True}), compute_frac=EFF.gemm_frac("fp8"))
    blk = EFF.for_block_scales().model_copy(update={"dynamic_quant_in_gemm": True})
    t_block, _ = roofline.gemm_time_s(m, m, m, 1000.0, 3.0, 1.0, 1.0, 132, blk, compute_frac=blk.gemm_frac("fp8"))
    assert float(t_tensor) == pytest.approx(2 * m ** 3 / 0.72e15 + 5e-6)
    assert float(t_block) == pytest.approx(2 * m ** 3 / 0.54e15 + 4e-6)


def test_the_swap_is_idempotent():
    # chip_hardware applies it to whatever Efficiency it is given, which may already be swapped.
    eff = efficiency_for(catalog.load_chip("h200-sxm"))
    once = eff.for_block_scales()
    assert once.for_block_scales() == once and once != eff
    assert once.source.count("block-scaled") == 1


def test_an_estimate_says_which_fp8_kernels_priced_it():
    from tokenfab.api import estimate

    r1 = estimate("deepseek-r1", "h200-sxm", precision="fp8", num_chips=8)
    llama = estimate("llama-3.1-70b", "h200-sxm", precision="fp8", num_chips=8)
    assert "block-scaled FP8 GEMM kernels" in r1.efficiency_source
    assert "block-scaled" not in llama.efficiency_source


def test_fitted_moe_fractions_are_kept_as_fitted():
    # The MoE scales are fitted against the per-tensor dense fractions: re-expressed against the block
    # ones, the grouped GEMM's fractions are the fit's. Without block-scaled MoE terms (AMD: aiter's
    # block-scaled fused-MoE rows fit the FP8 class) the FP8 ones serve.
    eff = EFF.model_copy(update={"lowp_moe_gemm_compute_scale": 0.5, "lowp_moe_gemm_stream_scale": 0.9})
    b = eff.for_block_scales()
    c, h, _ = b.moe_terms("lowp")
    assert c == pytest.approx(0.5 * 0.72 / 0.54) and h == pytest.approx(0.9 * 0.8 / 0.64)
    assert b.gemm_frac("fp8") * c == pytest.approx(0.72 * 0.5)
    assert b.gemm_stream_frac("lowp") * h == pytest.approx(0.8 * 0.9)
    # With them (NVIDIA: TensorRT-LLM's fp8_block fused-MoE rows, fitted apart since 2026-12-06), theirs.
    blk = eff.model_copy(update={"block_moe_gemm_compute_scale": 0.35, "block_moe_gemm_stream_scale": 0.95,
                                 "block_moe_layer_fixed_us": 5.0})
    b = blk.for_block_scales()
    c, h, f = b.moe_terms("lowp")
    assert b.gemm_frac("fp8") * c == pytest.approx(0.72 * 0.35)
    assert b.gemm_stream_frac("lowp") * h == pytest.approx(0.8 * 0.95) and f == pytest.approx(5e-6)
    assert blk.moe_terms("lowp")[0] == 0.5  # a per-tensor FP8 model keeps the FP8 fit
    assert b.for_block_scales() == b and b.block_moe_gemm_compute_scale is None  # consumed: idempotent


@given(st.floats(0.1, 1.0), st.floats(0.1, 1.0), st.booleans(), st.booleans())
def test_the_bf16_and_4_bit_classes_never_move(block, lowp, fitted_fp4, moe):
    eff = Efficiency(lowp_gemm_compute_frac=lowp, block_gemm_compute_frac=block, lowp_act_quant_bytes=5.0,
                     fp4_gemm_compute_frac=0.5 if fitted_fp4 else None,
                     lowp_moe_gemm_compute_scale=0.6 if moe else None)
    b = eff.for_block_scales()
    for kernel, prec in (("bf16", "bf16"), ("fp4", "fp4")):
        assert b.gemm_frac(prec) == pytest.approx(eff.gemm_frac(prec))
        assert b.gemm_stream_frac(kernel) == pytest.approx(eff.gemm_stream_frac(kernel))
        assert b.gemm_fixed_s(kernel) == pytest.approx(eff.gemm_fixed_s(kernel))
        assert b.act_quant_bytes(kernel) == pytest.approx(eff.act_quant_bytes(kernel))
        assert b.moe_terms(kernel) == pytest.approx(eff.moe_terms(kernel))


@given(st.floats(0.3, 1.0))
def test_maturity_and_framework_profiles_scale_the_block_fraction_too(m):
    assert with_maturity(EFF, m).for_block_scales().gemm_frac("fp8") == pytest.approx(0.54 * m)
    prof = FrameworkProfile(id="slow", name="slow", gemm_quality=m)
    assert apply_profile(EFF, prof).for_block_scales().gemm_frac("fp8") == pytest.approx(0.54 * m)


def test_chip_hardware_runs_a_block_release_on_the_block_kernels():
    chip = catalog.load_chip("h200-sxm")
    eff = efficiency_for(chip)
    assert eff.block_gemm_compute_frac is not None and eff.block_gemm_compute_frac < eff.lowp_gemm_compute_frac
    system = SystemSpec.for_chip(chip)
    r1, llama = catalog.load_model("deepseek-r1"), catalog.load_model("llama-3.1-70b")
    assert chip_hardware(r1, chip, system, eff, ["fp8"]).gemm_frac == pytest.approx(eff.block_gemm_compute_frac)
    assert chip_hardware(llama, chip, system, eff, ["fp8"]).gemm_frac == pytest.approx(eff.lowp_gemm_compute_frac)
    # bf16 points of a block release are untouched; training runs its own recipe.
    assert chip_hardware(r1, chip, system, eff, ["bf16"]).gemm_frac == pytest.approx(eff.gemm_compute_frac)
    assert chip_hardware(r1, chip, system, eff, ["fp8"], checkpoint_scales=False).gemm_frac == \
        pytest.approx(eff.lowp_gemm_compute_frac)


def test_a_gemm_row_of_a_block_release_is_priced_on_the_block_kernels():
    chip = catalog.load_chip("h200-sxm")
    eff = efficiency_for(chip)
    row = dict(id="X1", source="test", source_ref="test", hardware="h200-sxm", num_chips=1, weight_precision="fp8",
               activation_precision="fp8", framework="test", scenario="gemm", gemm_m=16384, gemm_n=7168, gemm_k=2048,
               metric="tflops", per="chip", value=1.0)
    tensor = predict_micro(MeasurementRow.model_validate(row), chip, eff)
    block = predict_micro(MeasurementRow.model_validate(row | {"model": "deepseek-v3"}), chip, eff)
    assert block / tensor == pytest.approx(eff.block_gemm_compute_frac / eff.lowp_gemm_compute_frac, rel=0.05)


def _public_rows():
    from importlib import resources

    from tokenfab.specs.measurement import load_measurements
    return load_measurements(resources.files("tokenfab") / "catalog/measurements/public.csv")


def test_block_and_moe_kernel_rows_fit_only_their_own_fields():
    """ROCm/aiter's tuned block-scale GEMMs (M0787-M0810) and fused-MoE layers (M0767-M0786) fit the
    block-scaled FP8 fraction and the FP8 MoE compute scale of MI355X; every other field comes out as the
    fit of the chip's other rows alone (the stages do not leak into each other)."""
    from tokenfab.validate.calibrate import _stage, fit_chip

    rows = _public_rows()
    full = fit_chip("mi355x", rows, "test", held={})
    plain = fit_chip("mi355x", [r for r in rows if _stage(r) == 0], "test", held={})
    assert set(full.fitted) - set(plain.fitted) == {"block_gemm_compute_frac", "lowp_moe_gemm_compute_scale"}
    for name in plain.fitted:
        assert getattr(full.efficiency, name) == getattr(plain.efficiency, name), name
    # The fitted block fraction sits well under the per-tensor one (aiter: ~1,000 of 5,033 FP8 TFLOPS on
    # DeepSeek-V3 shapes at 4K-16K tokens, against 2,750-3,130 for hipBLASLt's per-tensor GEMMs).
    assert 0.1 < full.efficiency.block_gemm_compute_frac < 0.5 * full.efficiency.lowp_gemm_compute_frac
    # The FP8 fused-MoE rows say nothing of MXFP4's kernels: those keep the dense 4-bit fraction.
    assert full.efficiency.fp4_moe_gemm_compute_scale == 1.0 and plain.efficiency.fp4_moe_gemm_compute_scale is None
    errs = [abs(r["error_after"]) for r in full.rows if r["id"] >= "M0787"]
    assert len(errs) == 10 and sorted(errs)[len(errs) // 2] < 0.10


def test_a_kernel_row_of_a_model_outside_the_catalog_is_per_tensor():
    from tokenfab.validate.micro import is_block_scaled

    base = dict(id="X2", source="test", source_ref="test", hardware="h200-sxm", num_chips=1, weight_precision="fp8",
                activation_precision="fp8", framework="test", scenario="gemm", gemm_m=4096, gemm_n=4096, gemm_k=4096,
                metric="tflops", per="chip", value=1.0)
    assert is_block_scaled(MeasurementRow.model_validate(base | {"model": "deepseek-v3"}))
    assert not is_block_scaled(MeasurementRow.model_validate(base | {"model": "my-inhouse-7b"}))
    assert not is_block_scaled(MeasurementRow.model_validate(base | {"model": "deepseek-v3", "weight_precision": "bf16",
                                                                     "activation_precision": "bf16"}))
    assert not is_block_scaled(MeasurementRow.model_validate(base | {"model": "deepseek-v3", "scenario": "alltoall",
                                                                     "metric": "latency_us", "message_bytes": 1e6}))


def test_the_batched_search_prices_a_block_release_on_the_block_kernels():
    """The design search's batched path (`mapping.batched`) swaps in the block-scaled kernels as
    `chip_hardware` does: DeepSeek-R1's FP8 points on H200 run at the block fraction, Llama's at the
    per-tensor one."""
    import numpy as np

    from tokenfab.mapping import batched

    chip = catalog.load_chip("h200-sxm")
    eff = efficiency_for(chip)
    cb = batched.ChipBatch.from_specs([chip])
    system = batched.batch_system(cb)
    for mid, want in (("deepseek-r1", eff.block_gemm_compute_frac), ("llama-3.1-70b", eff.lowp_gemm_compute_frac)):
        hw = batched._hardware(catalog.load_model(mid), cb, system, eff, ("fp8",), ("fp8",), np.zeros(1, int),
                               "prefill", None, roofline=True)
        assert float(np.asarray(hw.gemm_frac).ravel()[0]) == pytest.approx(want), mid


def test_the_batched_search_gives_a_block_release_what_the_scalar_search_gives_it():
    """One H200 in a batch, DeepSeek-R1 without MTP: the batched path's best deployment is
    `api.estimate`'s, to the last digit (both price its FP8 GEMMs on the block-scaled kernels)."""
    from tokenfab import api
    from tokenfab.mapping import batched
    from tokenfab.specs.traffic import Traffic

    chip = catalog.load_chip("h200-sxm")
    model = catalog.load_model("deepseek-r1")
    traffic = Traffic(input_len=1024, output_len=256, slo_ttft_ms=5000, slo_tpot_ms=100)
    b = batched.best(model, batched.ChipBatch.from_specs([chip]), efficiency_for(chip), traffic,
                     kernels="tiled", modes=("aggregated",))
    e = api.estimate(model, chip, traffic, mode="aggregated", fidelity="tiled", mtp=False)
    assert b["output_tok_s_per_chip"][0] == pytest.approx(e.output_tok_s_per_chip, rel=1e-9)
    per_tensor = api.estimate(model.model_copy(update={"fp8_weight_block": None}), chip, traffic,
                              mode="aggregated", fidelity="tiled", mtp=False)
    assert e.output_tok_s_per_chip < per_tensor.output_tok_s_per_chip  # H200's block kernels are slower


def test_int8_points_of_a_block_release_keep_the_per_tensor_kernels():
    """W8A8 INT8 (per-channel scales) is not block-scaled: a block release served in INT8 on a chip with
    block-scaled FP8 kernels (MI300X) keeps the FP8/INT8 class's per-tensor terms; in a grid holding
    both, the FP8 points still take the block compute fraction."""
    from tokenfab.mapping.search import block_scaled_eff

    chip = catalog.load_chip("mi300x")
    eff = efficiency_for(chip)
    system = SystemSpec.for_chip(chip)
    model = catalog.load_model("qwen3-235b-a22b")
    assert eff.block_gemm_compute_frac < eff.lowp_gemm_compute_frac
    assert chip_hardware(model, chip, system, eff, ["int8"]).gemm_frac == pytest.approx(eff.gemm_frac("int8"))
    both = chip_hardware(model, chip, system, eff, ["fp8", "int8"], prec_idx=[0, 1])
    assert list(both.gemm_frac) == pytest.approx([eff.block_gemm_compute_frac, eff.gemm_frac("int8")])
    shared, _ = block_scaled_eff(model, eff, {"fp8": "fp8", "int8": "int8"})
    assert shared == eff


def test_an_int8_estimate_of_a_block_release_is_the_per_tensor_one():
    from tokenfab import api

    model = catalog.load_model("qwen3-235b-a22b")
    block = api.estimate(model, "mi300x", precision="int8", num_chips=8)
    plain = api.estimate(model.model_copy(update={"fp8_weight_block": None}), "mi300x", precision="int8", num_chips=8)
    assert block.output_tok_s_per_chip == pytest.approx(plain.output_tok_s_per_chip, rel=1e-12)
    assert "block-scaled" not in block.efficiency_source
