"""The grouped expert GEMM / MoE layer fit (issue 14): fused MoE data movement, recovery of known
parameters from a synthetic table, and dense models untouched."""

import numpy as np
import pytest

from tokenfab import catalog
from tokenfab.graph.ops import StepShape
from tokenfab.graph.transformer import step_ops
from tokenfab.mapping.search import chip_hardware
from tokenfab.perf.efficiency import MOE_FIELDS, Efficiency
from tokenfab.perf.evaluate import time_ops, total_seconds
from tokenfab.specs import SystemSpec
from tokenfab.validate import aic_moe


def _shape(tokens, tp=1.0, ep=1.0, dp=1.0, w=2.0):
    t = np.asarray(tokens, float)
    one = np.ones_like(t)
    return StepShape(phase="decode", tokens=t, seqs=t, ctx=one, kv_len=one, tp=tp * one, dp=dp * one, ep=ep * one,
                     w_bytes=w * one, a_bytes=2.0 * one, kv_bytes=2.0 * one)


def test_fused_moe_layer_bytes_by_hand():
    """Mixtral-like layer (d = 4096, 8 experts, top-2), 16 tokens, one rank, bf16: 32 token-expert rows.
    Permute (expandInputRows): reads the 16 tokens once, writes 32 copies: (16 + 32) x 4096 x 2 B = 393,216 B
    (the unfused charge was 2 x 32 x 4096 x 2 = 524,288 B). Finalize: reads the 32 bf16 expert outputs,
    writes 16 tokens: (32 + 16) x 4096 x 2 B = 393,216 B."""
    model = aic_moe.moe_model(4096, 14336, 8, 2)
    ops = {op.name: op for op in step_ops(model, _shape([16.0]))}
    assert float(ops["moe_permute"].bytes[0]) == 393_216
    assert float(ops["moe_unpermute"].bytes[0]) == 393_216
    # With an all-to-all (dp > 1, ep > 1) the arriving rows are already one per copy: read = write.
    ops = {op.name: op for op in step_ops(model, _shape([16.0], tp=1.0, ep=8.0, dp=8.0))}
    rows = float(ops["moe_permute"].bytes[0]) / (4096 * 2 * 2)
    assert rows == pytest.approx(float(np.asarray(ops["experts_up"].m * ops["experts_up"].groups).ravel()[0]))


def _synthetic(chip, truth):
    """A synthetic moe_perf table: two shapes, three layouts, tokens 1..8192, bf16, timed by the engine with
    the `truth` MoE terms."""
    tok = 2.0 ** np.arange(0, 14)
    cols = {k: [] for k in ("kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk",
                            "num_experts", "moe_tp_size", "moe_ep_size", "latency_s")}
    for h, i, e, k in ((4096, 1536, 128, 8), (2880, 2880, 128, 4)):
        for tp, ep in ((1, 1), (8, 1), (1, 8)):
            n = tok.size
            cols["kernel_source"] += ["synthetic"] * n
            cols["moe_dtype"] += ["bfloat16"] * n
            cols["num_tokens"] += list(tok)
            for name, v in (("hidden_size", h), ("inter_size", i), ("topk", k), ("num_experts", e),
                            ("moe_tp_size", tp), ("moe_ep_size", ep)):
                cols[name] += [float(v)] * n
            cols["latency_s"] += [0.0] * n
    cols = {k: np.array(v) for k, v in cols.items()}
    cols["latency_s"] = aic_moe.predict(cols, chip, truth)["layer_s"]
    return cols


def test_parts_reproduce_the_engine_and_the_fit_recovers_known_terms():
    chip = catalog.load_chip("h200-sxm")
    eff = Efficiency(gemm_compute_frac=0.8, gemm_hbm_frac=0.8, gemm_fixed_us=4.0)
    truth = eff.model_copy(update={"moe_gemm_compute_scale": 0.7, "moe_gemm_stream_scale": 0.85,
                                   "moe_layer_fixed_us": 12.0})
    cols = _synthetic(chip, truth)
    pt = aic_moe.parts(cols, chip, eff)
    # Oracle: the closed form of `parts` is what time_ops charges with the MoE fields set.
    np.testing.assert_allclose(aic_moe.layer_seconds(pt, 0.7, 0.85, 12.0), cols["latency_s"], rtol=1e-12)
    np.testing.assert_allclose(aic_moe.layer_seconds(pt, 1.0, 1.0, 0.0),
                               aic_moe.predict(cols, chip, eff)["layer_s"], rtol=1e-12)
    fit = aic_moe.fit_class(pt, cols["latency_s"], cols["num_tokens"], "bf16")
    assert fit.params["compute_scale"] == pytest.approx(0.7, rel=0.01)
    assert fit.params["stream_scale"] == pytest.approx(0.85, rel=0.01)
    assert fit.params["fixed_us"] == pytest.approx(12.0, rel=0.02)
    assert fit.median_ape_after < 0.005 < 0.05 < fit.median_ape_before


def test_a_grouped_kernel_may_stream_faster_than_the_dense_tables_but_not_than_a_copy():
    """The dense tables' small-M GEMMs stream weights at 0.4 of HBM here, a copy at 0.85: a grouped
    kernel streaming its experts at 0.68 (scale 1.7) is recovered, because the stream scale may go
    up to 0.85 / 0.4 = 2.125; one at 0.95 (scale 2.375, faster than a copy) is held at that bound."""
    chip = catalog.load_chip("h200-sxm")
    eff = Efficiency(gemm_compute_frac=0.8, gemm_hbm_frac=0.4, hbm_frac=0.85, gemm_fixed_us=4.0)
    assert aic_moe.stream_scale_max(eff, "bf16") == pytest.approx(2.125)
    assert aic_moe.stream_scale_max(Efficiency(gemm_hbm_frac=0.9, hbm_frac=0.85), "bf16") == 1.0
    for scale, expected in ((1.7, 1.7), (2.375, 2.125)):
        truth = eff.model_copy(update={"moe_gemm_compute_scale": 0.7, "moe_gemm_stream_scale": scale,
                                       "moe_layer_fixed_us": 12.0})
        cols = _synthetic(chip, truth)
        pt = aic_moe.parts(cols, chip, eff)
        capped = aic_moe.fit_class(pt, cols["latency_s"], cols["num_tokens"], "bf16")
        fit = aic_moe.fit_class(pt, cols["latency_s"], cols["num_tokens"], "bf16",
                                stream_max=aic_moe.stream_scale_max(eff, "bf16"))
        assert capped.params["stream_scale"] == pytest.approx(1.0, abs=1e-3)  # the old bound binds
        assert fit.params["stream_scale"] == pytest.approx(expected, rel=0.02)
        assert fit.median_ape_after < capped.median_ape_after


def test_fit_chip_applies_only_classes_that_help_and_pins_the_others():
    """bf16 rows from known terms are fitted and applied; fp8 rows timed by the unfitted engine cannot be
    improved, so the low-precision class is pinned at (1, 1, 0) instead of inheriting bf16's values."""
    chip = catalog.load_chip("h200-sxm")
    eff = Efficiency(gemm_compute_frac=0.8, gemm_hbm_frac=0.8, gemm_fixed_us=4.0)
    truth = eff.model_copy(update={"moe_gemm_compute_scale": 0.6, "moe_gemm_stream_scale": 0.9,
                                   "moe_layer_fixed_us": 8.0})
    bf16 = _synthetic(chip, truth)
    fp8 = {k: v.copy() for k, v in bf16.items()}
    fp8["moe_dtype"] = np.array(["fp8"] * fp8["latency_s"].size)
    fp8["latency_s"] = aic_moe.predict(fp8, chip, eff)["layer_s"]
    cols = {k: np.concatenate([bf16[k], fp8[k]]) for k in bf16}
    rows = aic_moe.MoeRows("h200_sxm", "trtllm", cols)
    fits, applied = aic_moe.fit_chip(rows, chip, eff)
    assert {f.kernel_class for f in fits} == {"bf16", "lowp"}
    assert applied["moe_gemm_compute_scale"] == pytest.approx(0.6, rel=0.01)
    assert (applied["lowp_moe_gemm_compute_scale"], applied["lowp_moe_gemm_stream_scale"],
            applied["lowp_moe_layer_fixed_us"]) == (1.0, 1.0, 0.0)
    assert "fp4_moe_gemm_compute_scale" not in applied  # no rows: not fitted


def test_a_framework_keeps_its_own_terms_only_where_they_describe_its_kernels_much_better():
    """A framework whose kernels run known terms (compute 0.6, stream 0.9, 30 µs a layer) against a
    reference fitted elsewhere (1, 1, 0): its own fit recovers them and applies; a framework whose
    rows the reference already describes keeps the reference (nothing applied, record kept)."""
    chip = catalog.load_chip("h200-sxm")
    eff = Efficiency(gemm_compute_frac=0.8, gemm_hbm_frac=0.8, gemm_fixed_us=4.0)
    own = eff.model_copy(update={"moe_gemm_compute_scale": 0.6, "moe_gemm_stream_scale": 0.9,
                                 "moe_layer_fixed_us": 30.0})
    reference = eff.model_copy(update={"moe_gemm_compute_scale": 1.0, "moe_gemm_stream_scale": 1.0,
                                       "moe_layer_fixed_us": 0.0})
    records, applied = aic_moe.fit_framework(aic_moe.MoeRows("h200_sxm", "vllm", _synthetic(chip, own)), chip,
                                             reference)
    assert [r["kernel_class"] for r in records] == ["bf16"] and records[0]["applied"]
    assert applied["moe_layer_fixed_us"] == pytest.approx(30.0, rel=0.02)
    assert records[0]["median_ape_own"] < (1 - aic_moe.OWN_TERMS_MIN_GAIN) * records[0]["median_ape_reference"]
    same = aic_moe.MoeRows("h200_sxm", "sglang", _synthetic(chip, reference))
    records, applied = aic_moe.fit_framework(same, chip, reference)
    assert applied == {} and records[0]["median_ape_reference"] < 1e-9 and not records[0]["applied"]


@pytest.mark.parametrize("model_id", ["llama-3.1-8b", "llama-3.1-70b"])
def test_dense_models_are_priced_exactly_as_before(model_id):
    """Property: the MoE terms touch only grouped (ragged) expert GEMMs, so a dense model's step costs the
    same with any values of them."""
    chip = catalog.load_chip("h200-sxm")
    model = catalog.load_model(model_id)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 8192, size=16).astype(float)
    shape = _shape(tokens, tp=2.0)
    eff = Efficiency()
    moe = eff.model_copy(update={f: v for f, v in zip(MOE_FIELDS, rng.uniform(0.2, 1.0, len(MOE_FIELDS)))})
    t = [total_seconds(time_ops(step_ops(model, shape),
                                chip_hardware(model, chip, SystemSpec.for_chip(chip), e, ["bf16"], phase="decode")))
         for e in (eff, moe)]
    np.testing.assert_array_equal(t[0], t[1])


def test_unfitted_values_are_the_engine_as_before():
    """(1, 1, 0) set explicitly prices an MoE layer exactly as None does."""
    chip = catalog.load_chip("b200")
    model = aic_moe.moe_model(7168, 2048, 256, 8)
    eff = Efficiency()
    neutral = eff.model_copy(update={f: (0.0 if f.endswith("_us") else 1.0) for f in MOE_FIELDS})
    tok = np.array([1.0, 64.0, 4096.0])
    a = aic_moe.engine_seconds(chip, eff, model, "fp8", tok, 1, 8)
    b = aic_moe.engine_seconds(chip, neutral, model, "fp8", tok, 1, 8)
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_framework_fit_run_to_both_its_compute_floor_and_its_fixed_ceiling_is_not_applied():
    assert aic_moe.at_bounds({"compute_scale": 0.1, "stream_scale": 1.07, "fixed_us": 100.0})
    assert not aic_moe.at_bounds({"compute_scale": 0.1, "stream_scale": 1.07, "fixed_us": 40.0})
    assert not aic_moe.at_bounds({"compute_scale": 0.5, "stream_scale": 1.0, "fixed_us": 100.0})
