"""VLM image tokens by each family's rules (Qwen2.5-VL: 14 px patches; Qwen3-VL: 16 px patches; both
merge 2x2 and resize into the processor's pixel limits), counted in input_len, TTFT and $."""

import pytest

from tokenfab import api
from tokenfab.catalog import load_model
from tokenfab.graph import StepShape, step_ops
from tokenfab.specs import Traffic


def test_qwen2_5_vl_tokens_by_hand():
    v = load_model("qwen2.5-vl-7b").vision
    # 1080 x 1920: sides round to multiples of 28 px: 39 x 28 = 1092, 69 x 28 = 1932 (2.1 MP, inside
    # [3136, 12845056]); 78 x 138 patches of 14 px = 10,764; 2x2 merge -> 2,691 LLM tokens.
    assert v.grid(1080, 1920) == (1, 78, 138) and v.llm_tokens(1080, 1920) == 2691
    # 3000 x 4000: 107 x 28 = 2996, 143 x 28 = 4004 -> 12.0 MP, below max_pixels: 214 x 286 patches.
    assert v.patches(3000, 4000) == 214 * 286 and v.llm_tokens(3000, 4000) == 214 * 286 // 4
    # 40 x 40: 28 x 28 = 784 px is below min_pixels 3136 = 56 x 56: scaled up by sqrt(3136/1600) = 1.4
    # to ceil(56/28) x 28 = 56 px a side: 4 x 4 patches -> 4 tokens.
    assert v.resized(40, 40) == (56, 56) and v.llm_tokens(40, 40) == 4


def test_qwen3_vl_tokens_by_hand():
    v = load_model("qwen3-vl-235b-a22b").vision
    assert v.patch_size == 16 and v.pixel_limits == (65536, 16777216)
    # 1024 x 1024: 32 px units -> 64 x 64 patches of 16 px = 4,096 -> 1,024 tokens (Qwen2.5-VL: 1,369).
    assert v.llm_tokens(1024, 1024) == 1024
    assert load_model("qwen2.5-vl-7b").vision.llm_tokens(1024, 1024) == 37 * 37
    # 1080 x 1920: round(1080/32) = 34 -> 1088, 1920/32 = 60 -> 68 x 120 patches -> 2,040 tokens.
    assert v.llm_tokens(1080, 1920) == 2040
    # 200 x 200: 192 x 192 = 36,864 px < 65,536: scaled by sqrt(65536/40000) = 1.28 to 256 px a side.
    assert v.resized(200, 200) == (256, 256) and v.llm_tokens(200, 200) == 64


def test_qwen3_vl_encoder_is_full_attention_with_deepstack_mergers():
    m = load_model("qwen3-vl-235b-a22b")
    v = m.vision
    assert not v.gated_mlp and v.window_size == 0 and v.deepstack_layers == 3
    s = StepShape("prefill", tokens=1100.0, seqs=1.0, ctx=550.0, kv_len=1100.0, tp=1.0, dp=1.0, ep=1.0, w_bytes=2.0,
                  a_bytes=2.0, kv_bytes=2.0, vision_items=1.0, vision_patches=4096.0)
    ops = {op.name: op for op in step_ops(m, s)}
    assert ops["vit_attention_full"].count == 27 and "vit_attention_window" not in ops
    assert ops["vit_merger_fc1"].count == 4  # the final merger and one per DeepStack layer
    # non-gated MLP: 2 x 4096 patches x 4304 x 1152 FLOPs up
    assert float(ops["vit_mlp_up"].flops) == 2 * 4096 * 4304 * 1152


def test_image_tokens_are_in_input_len_ttft_and_price_per_image():
    text = Traffic(input_len=64, output_len=128, slo_ttft_ms=3000, slo_tpot_ms=50)
    img = text.model_copy(update={"images": 1, "image_height_px": 1024, "image_width_px": 1024})
    a = api.estimate("qwen2.5-vl-7b", "h100-sxm", text, num_chips=1)
    b = api.estimate("qwen2.5-vl-7b", "h100-sxm", img, num_chips=1)
    assert a.input_len == 64 and a.media_tokens == 0
    assert b.input_len == 64 + 1369 and b.media_tokens == 1369 and b.images == 1
    assert b.ttft_ms > a.ttft_ms
    row = api.with_cost(b)
    per_request = (b.input_len * row["usd_per_mtok_input"] + b.output_len * row["usd_per_mtok_output"]) / 1e6
    assert row["usd_per_image"] == pytest.approx(per_request)
    assert "usd_per_image" not in api.with_cost(a)


def test_vlm_rows_state_their_images_in_notes():
    from tokenfab.graph.requests import request_shape
    from tokenfab.validate.workloads import with_row_media
    t = with_row_media(Traffic(input_len=100, output_len=10), "images=2 image=1920x1080; other notes")
    assert (t.images, t.image_width_px, t.image_height_px) == (2, 1920, 1080)
    # two 1080p images on Qwen2.5-VL: 2 x 2,691 tokens on top of the 100 text tokens
    assert request_shape(load_model("qwen2.5-vl-7b"), t).input_len == 100 + 2 * 2691
    plain = Traffic(input_len=100, output_len=10)
    assert with_row_media(plain, "no media here") is plain
