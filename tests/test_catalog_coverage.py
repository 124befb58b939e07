"""Catalog coverage (issue #14, part 8): the chips, models and MLPerf dataset statistics added for
the independent-data rows. Each expected number is worked by hand from the cited figure.

Published parameter counts (ModelSpec leaves out norms, MTP modules and biases other than QKV):

- Kimi K2: 1.04T total (Moonshot tech report, arXiv 2507.20534); 32B activated (model card). Moonshot
  counts the LM head but not the input table as active, as DeepSeek does.
- GLM-4.5: 355B total, 32B activated (zai-org/GLM-4.5 README; transformers docs glm4_moe). GLM's 32B is
  the non-embedding count: neither the input table nor the LM head.
- Qwen3-30B-A3B: 30.5B / 3.3B; Qwen3.5-397B-A17B: 397B / 17B (Qwen model cards). Qwen counts the input
  table as active.
- MiniMax-M2: 230B total, 10B activated (transformers docs minimax_m2; a rounded figure, not tested).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tokenfab import api
from tokenfab.catalog import chip_ids, load_chip, load_model, model_ids
from tokenfab.specs import ModelSpec, SpecError
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate.datasets import lengths_for, mlperf_benchmarks

ROOT = Path(__file__).resolve().parents[1] / "src" / "tokenfab" / "catalog"
NEW_CHIPS = ["gb300", "rtx-pro-6000", "h100-nvl", "h200-nvl", "gh200-96gb", "l4"]
NEW_MODELS = ["kimi-k2", "glm-4.5", "qwen3-30b-a3b", "qwen3.5-397b-a17b", "minimax-m2"]
TOL = 0.02


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


# ---- chips ----------------------------------------------------------------------------------------
def test_new_chips_are_in_the_catalog():
    assert set(NEW_CHIPS) <= set(chip_ids())


@pytest.mark.parametrize("chip_id", NEW_CHIPS)
def test_estimated_sources_are_listed_as_estimates(chip_id):
    # A source text that says "est." must have its field in estimated_fields, and vice versa.
    c = load_chip(chip_id)
    for field, text in c.sources.items():
        if text.startswith("est."):
            assert field in c.estimated_fields, field
    for field in c.estimated_fields:
        assert field in c.sources, f"{field} is an estimate without its own source entry"


def test_gb300_is_the_nvl72_rack_divided_by_72():
    c = load_chip("gb300")
    assert c.fp4_tflops == pytest.approx(1_080_000 / 72)   # 1,080 PF dense FP4 per rack
    assert c.bf16_tflops == pytest.approx(360_000 / 72 / 2)  # 360 PF sparse BF16 per rack, dense = half
    assert c.fp8_tflops == pytest.approx(720_000 / 72 / 2)   # 720 PF sparse FP8 per rack
    assert c.hbm_tb_s == pytest.approx(576 / 72)            # 576 TB/s per rack
    assert c.scaleup_gb_s == pytest.approx(1800 / 2)         # NVLink 5, 1.8 TB/s bidirectional
    assert (c.scaleup_domain, c.tdp_w, c.int8_tops) == (72, 1400, None)
    # Blackwell Ultra in the NVL72 rack is faster than the HGX B300 part.
    assert c.fp4_tflops > load_chip("b300").fp4_tflops
    assert c.price_usd == pytest.approx((3e6 / 72 + 4e6 / 72) / 2, rel=0.01)  # $3-4M per rack


def test_rtx_pro_6000_datasheet_and_derived_values():
    c = load_chip("rtx-pro-6000")
    assert c.fp4_tflops == pytest.approx(4000 / 2)           # 4,000 AI TOPS FP4 sparse
    assert c.fp8_tflops == pytest.approx(c.fp4_tflops / 2)   # Blackwell ratio, an estimate
    assert c.bf16_tflops == pytest.approx(c.fp4_tflops / 4)
    assert c.hbm_tb_s == pytest.approx(512 * 28 / 8 / 1000)  # 512-bit GDDR7 at 28 Gbps
    assert c.scaleup_gb_s == pytest.approx(128 / 2)          # PCIe Gen5 x16, no NVLink
    assert c.spec_confidence == "partly-estimated"
    assert "bf16_tflops" in c.estimated_fields and "fp4_tflops" not in c.estimated_fields


def test_nvl_cards_have_the_same_hopper_compute_at_a_lower_clock():
    h100_nvl, h200_nvl, sxm = load_chip("h100-nvl"), load_chip("h200-nvl"), load_chip("h100-sxm")
    assert h100_nvl.fp8_tflops == pytest.approx(3341 / 2)    # 3,341 TFLOPS FP8 sparse
    assert h100_nvl.bf16_tflops == pytest.approx(1671 / 2)
    assert (h100_nvl.hbm_gb, h100_nvl.hbm_tb_s) == (94, pytest.approx(3.9))
    assert h100_nvl.scaleup_gb_s == pytest.approx(600 / 2)   # NVLink bridge pair
    assert h200_nvl.bf16_tflops == h100_nvl.bf16_tflops
    h200 = load_chip("h200-sxm")
    assert (h200_nvl.hbm_gb, h200_nvl.hbm_tb_s) == (h200.hbm_gb, h200.hbm_tb_s)
    assert h200_nvl.scaleup_gb_s == pytest.approx(900 / 2)   # 4-way NVLink bridge
    assert (h200_nvl.tdp_w, h200_nvl.scaleup_domain) == (600, 4)
    assert h100_nvl.bf16_tflops / sxm.bf16_tflops == pytest.approx(0.844, abs=0.002)


def test_gh200_96gb_differs_from_the_144gb_part_only_in_memory():
    small, big = load_chip("gh200-96gb"), load_chip("gh200")
    assert (small.hbm_gb, small.hbm_tb_s) == (96, pytest.approx(4.0))
    assert (big.hbm_gb, big.hbm_tb_s) == (144, pytest.approx(4.9))
    for f in ("bf16_tflops", "fp8_tflops", "int8_tops", "tdp_w"):
        assert getattr(small, f) == getattr(big, f), f
    assert small.price_usd is None  # no price sourced, as for gh200


def test_l4_datasheet_values():
    c = load_chip("l4")
    assert c.bf16_tflops == pytest.approx(242 / 2)
    assert c.fp8_tflops == pytest.approx(485 / 2) == c.int8_tops
    assert (c.hbm_gb, c.hbm_tb_s, c.tdp_w) == (24, pytest.approx(0.3), 72)
    assert c.fp4_tflops is None  # Ada has no FP4 path


@pytest.mark.parametrize("chip_id", [c for c in NEW_CHIPS if c != "gh200-96gb"])
def test_new_chips_have_a_price(chip_id):
    assert load_chip(chip_id).price_usd is not None


# ---- models ---------------------------------------------------------------------------------------
# id -> published total parameters
PUBLISHED_TOTAL = {
    "kimi-k2": 1.04e12,
    "glm-4.5": 355e9,
    "qwen3-30b-a3b": 30.5e9,
    "qwen3.5-397b-a17b": 397e9,
    "minimax-m2": 230e9,
}

# id -> (published active, which embedding tables the vendor counts: "lm_head", "both" or "neither")
PUBLISHED_ACTIVE = {
    "kimi-k2": (32e9, "lm_head"),
    "glm-4.5": (32e9, "neither"),
    "qwen3-30b-a3b": (3.3e9, "both"),
    "qwen3.5-397b-a17b": (17e9, "both"),
}


def test_new_models_are_in_the_catalog_with_sources():
    assert set(NEW_MODELS) <= set(model_ids())
    sources = yaml.safe_load((ROOT / "models" / "sources.yaml").read_text())
    for mid in NEW_MODELS:
        assert sources[mid]["hf_repo"] and sources[mid]["found_at"].strip(), mid


@pytest.mark.parametrize("mid", NEW_MODELS)
def test_new_model_files_are_plain_hf_configs(mid):
    data = json.loads((ROOT / "models" / f"{mid}.json").read_text())
    assert "_tokenfab" not in data and "model_type" in data


@pytest.mark.parametrize("mid", sorted(PUBLISHED_TOTAL))
def test_total_params_match_published(mid):
    spec = load_model(mid)
    assert _rel(spec.total_params(), PUBLISHED_TOTAL[mid]) < TOL, (mid, spec.total_params() / 1e9)


@pytest.mark.parametrize("mid", sorted(PUBLISHED_ACTIVE))
def test_active_params_match_published(mid):
    spec = load_model(mid)
    published, tables = PUBLISHED_ACTIVE[mid]
    table = spec.vocab_size * spec.hidden_size
    active = spec.active_params()  # counts the LM head, not the input table
    active += {"lm_head": 0, "both": table, "neither": -table}[tables]
    assert _rel(active, published) < TOL, (mid, active / 1e9)


def test_minimax_m2_params_by_hand():
    m = load_model("minimax-m2")
    d, heads, kv, hd, experts, width, layers, vocab = 3072, 48, 8, 128, 256, 1536, 62, 200064
    attention = d * heads * hd + d * kv * 2 * hd + heads * hd * d  # q, k+v, o
    moe = experts * 3 * d * width + d * experts                     # SwiGLU experts + router
    assert attention == 44_040_192 and moe == 3_624_665_088
    assert m.total_params() == layers * (attention + moe) + 2 * vocab * d == 228_688_920_576
    assert (m.num_experts, m.experts_per_token, m.num_shared_experts, m.num_dense_layers) == (256, 8, 0, 0)


def test_kimi_k2_is_deepseek_v3_with_384_experts_and_64_heads():
    k, ds = load_model("kimi-k2"), load_model("deepseek-v3")
    assert k.attention == "mla" and k.kv_elements_per_token_layer == 512 + 64
    assert (k.num_heads, ds.num_heads) == (64, 128)
    assert (k.num_experts, k.num_shared_experts, k.num_dense_layers) == (384, 1, 1)
    assert k.mtp_layers == 0
    # Same layer count and widths: the difference in routed experts alone is
    # 60 MoE layers x 384 vs 58 x 256 experts of 3 x 7168 x 2048.
    expert = 3 * 7168 * 2048
    assert k.total_params() - ds.total_params() > (60 * 384 - 58 * 256) * expert * 0.95


def test_glm_4_5_gqa_with_three_dense_layers():
    g = load_model("glm-4.5")
    assert g.kv_elements_per_token_layer == 8 * 128 * 2 == 2048
    assert (g.num_layers, g.num_dense_layers, g.num_moe_layers) == (92, 3, 89)
    assert (g.num_experts, g.experts_per_token, g.num_shared_experts) == (160, 8, 1)
    assert g.attention_bias and g.intermediate_size == 12288 and g.mtp_layers == 1


def test_qwen3_5_hybrid_layout():
    q = load_model("qwen3.5-397b-a17b")
    assert (q.num_layers, q.num_linear_layers, q.num_full_layers) == (60, 45, 15)
    assert q.attention_output_gate and q.vision is not None
    assert (q.num_experts, q.experts_per_token, q.moe_intermediate_size) == (512, 10, 1024)
    assert (q.num_shared_experts, q.shared_intermediate_size) == (1, 1024)
    assert q.kv_elements_per_token_layer == 2 * 256 * 2  # only the 15 full layers cache K/V


def test_qwen3_5_output_gate_weights_by_hand(tmp_path):
    data = json.loads((ROOT / "models" / "qwen3.5-397b-a17b.json").read_text())
    data["text_config"]["attn_output_gate"] = False
    path = tmp_path / "ungated.json"
    path.write_text(json.dumps(data))
    ungated = ModelSpec.from_config_file(path)
    gated = load_model("qwen3.5-397b-a17b")
    # one hidden x (heads x head_dim) gate projection per full-attention layer (mean over layers rounds)
    assert gated.total_params() - ungated.total_params() == pytest.approx(15 * 4096 * 32 * 256, abs=60)


def test_all_moe_config_without_intermediate_size(tmp_path):
    # Qwen3.5-MoE states no dense MLP width; the expert width stands in and no layer uses it.
    q = load_model("qwen3.5-397b-a17b")
    assert q.intermediate_size == q.moe_intermediate_size == 1024 and q.num_dense_layers == 0
    # A dense config without it still fails, naming the field.
    data = json.loads((ROOT / "models" / "llama-3.1-8b.json").read_text())
    del data["intermediate_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match="intermediate_size"):
        ModelSpec.from_config_file(path)


@pytest.mark.parametrize("mid", ["glm-4.5", "qwen3-30b-a3b", "qwen3.5-397b-a17b", "minimax-m2"])
def test_estimate_on_8_h200(mid):
    est = api.estimate(mid, "h200-sxm", num_chips=8, mode="aggregated")
    assert est.num_chips == 8


def test_kimi_k2_fp8_barely_fits_8_h200_and_not_8_h100():
    """~1.03 TB of FP8 weights, 128.9 GB per chip at TP8. A "141 GB" H200 is 141 x 79.11 / 80 GiB =
    149.7e9 bytes to software, 149.7 x 0.92 - 1 = 136.7 GB usable: ~6 GB a chip left for the KV cache
    (Moonshot deploys it on 16 GPUs for 128K contexts). An "80 GB" H100 leaves 77.1 GB: no fit."""
    est = api.estimate("kimi-k2", "h200-sxm", num_chips=8, precision="fp8", mode="aggregated")
    mem = est.memory_gb_per_chip
    assert mem.weights == pytest.approx(128.9, abs=0.1) and mem.kv_cache < 10.0
    assert mem.capacity == pytest.approx(149.7, abs=0.1)
    with pytest.raises(SpecError, match="does not fit"):
        api.estimate("kimi-k2", "h100-sxm", num_chips=8, precision="fp8", mode="aggregated")
    assert api.estimate("kimi-k2", "h200-sxm", num_chips=8, precision="int4", mode="aggregated").num_chips == 8


# ---- MLPerf dataset statistics ---------------------------------------------------------------------
def test_deepseek_r1_dataset_lengths_and_slos():
    entry = mlperf_benchmarks()["deepseek-r1"]
    assert entry["input_tokens_mean"] == 798 and entry["output_tokens_ref"] == pytest.approx(4043.45)
    assert "deepseek-r1.csv" in entry["input_tokens_source"]
    # the sample's standard error is small against the mean
    assert entry["input_tokens_se"] / entry["input_tokens_mean"] < 0.03
    assert entry["slo_ms"]["server"] == {"ttft": 2000, "tpot": 80}
    assert entry["slo_ms"]["interactive"] == {"ttft": 1500, "tpot": 15}
    row = MeasurementRow(id="T1", source="MLPerf Inference (test)", model="deepseek-r1", scenario="offline", hardware="b200", num_chips=8,
                         metric="output_tok_s", per="system", value=1000.0)
    lengths = lengths_for(row)
    assert (lengths.input_len, lengths.output_len) == (798, pytest.approx(4043.45))
    assert lengths.input_source == "mlperf_datasets.yaml:deepseek-r1"


def test_llama3_1_slos_from_mlperf_conf():
    b = mlperf_benchmarks()
    assert b["llama3.1-8b"]["slo_ms"] == {"server": {"ttft": 2000, "tpot": 100},
                                          "interactive": {"ttft": 500, "tpot": 30}}
    assert b["llama3.1-405b"]["slo_ms"]["interactive"] == {"ttft": 4500, "tpot": 80}


def test_market_rental_quotes_for_new_chips():
    from tokenfab.cost.data import shipped_cost_data

    quotes = shipped_cost_data().market_rental
    assert quotes["h100-nvl"].usd_per_hour == pytest.approx(6.98)           # Azure, Epoch
    assert quotes["l4"].usd_per_hour == pytest.approx((0.40 + 0.55) / 2, abs=0.01)
    assert set(quotes) <= set(chip_ids())
