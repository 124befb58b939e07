"""The engine's MoE layer scored against aiconfigurator's MoE kernel tables (validate/aic_moe.py): the
reader on a hand-made table in the package's layout (CSV), the row selection, the engine's charge for
one shape worked by hand, the ratios and bands, and (slow, needs the package) the shipped tables."""

import csv
import importlib.util

import numpy as np
import pytest

from tokenfab import catalog
from tokenfab.perf.efficiency import Efficiency
from tokenfab.validate import aic_moe
from tokenfab.validate import aiconfigurator as aic

COLS = ("kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts",
        "moe_tp_size", "moe_ep_size", "distribution", "latency")
# One small shape: hidden 1024, expert width 512, 8 experts, top-2, moe_tp 2 (ep 1), one token.
SHAPE = {"hidden_size": 1024, "inter_size": 512, "topk": 2, "num_experts": 8, "moe_tp_size": 2, "moe_ep_size": 1}
# Bytes the engine moves for it (bf16 weights and activations), worked from graph/transformer._moe_ops:
#   expert width per rank 512/2 = 256, gate+up n = 512; experts hit by 1 token with top-2: 8·(1-(1-2/8)^1) = 2,
#   token-expert pairs on the rank lam = 1·2/1 = 2 (one rank: no imbalance term), m = 2/2 = 1 row per expert.
#   experts_up   2·(512·1024·2 + 1·(1024+512)·2) = 2,103,296
#   experts_down 2·(1024·256·2 + 1·(256+1024)·2) = 1,053,696
#   experts_act  2·256·2·3                        =     3,072
#   moe_routing  1·8·4·2 + 2·8                    =        80
#   moe_permute  (1 + 2)·1024·2 (reads the token once, writes 2 copies) =  6,144
#   moe_unpermute 2·1024·2 + 1·1024·2             =     6,144
LAYER_BYTES = 2_103_296 + 1_053_696 + 3_072 + 80 + 6_144 + 6_144  # 3,172,432
EXPERT_BYTES = 2_103_296 + 1_053_696 + 3_072  # 3,160,064
# With every fixed cost 0 and streaming at the full HBM rate the time is bytes / bandwidth: the GEMMs are
# memory-bound (up: 2.1 MFLOP at 989 TFLOP/s x 0.78 x 1/33 tile use = 0.09 µs against 0.63 µs of bytes).
BARE = Efficiency(kernel_launch_us=0.0, gemm_fixed_us=0.0, hbm_frac=1.0, gemm_hbm_frac=1.0)


def _write(root, system, framework, version, rows):
    d = root / system / "moe" / framework / version
    d.mkdir(parents=True, exist_ok=True)
    with (d / "moe_perf.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLS)
        w.writeheader()
        for r in rows:
            w.writerow(r)


def _row(tokens=1, latency_ms=0.01, dtype="bfloat16", dist="balanced", kernel="moe_torch_flow_cutlass", **kw):
    return {**SHAPE, "kernel_source": kernel, "moe_dtype": dtype, "num_tokens": tokens, "distribution": dist,
            "latency": latency_ms, **kw}


def test_moe_table_is_a_kernel_table_read_in_seconds(tmp_path):
    _write(tmp_path, "h100_sxm", "trtllm", "1.0.0", [_row(latency_ms=0.025)])
    fw, ver, path = aic.pick_table(tmp_path, "h100_sxm", "moe_perf", "trtllm")
    t = aic.read_table(path, "moe_perf", "h100_sxm", fw, ver)
    # 0.025 ms -> 25 µs; text columns stay text, shapes are numbers.
    assert t.columns["latency_s"][0] == pytest.approx(25e-6)
    assert t.columns["kernel_source"][0] == "moe_torch_flow_cutlass" and t.columns["num_experts"][0] == 8


def test_balanced_priced_rows_are_kept_and_the_newest_version_wins(tmp_path):
    _write(tmp_path, "h100_sxm", "trtllm", "1.2.0", [
        _row(tokens=1, latency_ms=0.030),                        # supersedes 1.0.0's row with the same key
        _row(tokens=1, dist="power_law_1.2"),                   # skewed routing: not scored
        _row(tokens=1, dtype="w4a8_mxfp4_mxfp8")])              # no engine path: not scored
    _write(tmp_path, "h100_sxm", "trtllm", "1.0.0", [_row(tokens=1, latency_ms=0.050), _row(tokens=2)])
    rows = aic_moe.load_rows(tmp_path, "h100_sxm", "trtllm")
    c = rows.columns
    assert rows.rows == 2
    assert dict(zip(c["num_tokens"].tolist(), c["version"].tolist())) == {1.0: "1.2.0", 2.0: "1.0.0"}
    assert c["latency_s"][c["num_tokens"] == 1][0] == pytest.approx(30e-6)
    assert rows.skipped == {"power_law_1.2 distribution": 1, "dtype w4a8_mxfp4_mxfp8 (no engine path)": 1,
                            "older version of a newer row": 1}
    assert aic_moe.load_rows(tmp_path, "h100_sxm", "vllm") is None


def test_engine_charge_of_one_small_shape_is_its_bytes_at_the_hbm_rate():
    chip = catalog.load_chip("h100-sxm")
    model = aic_moe.moe_model(1024, 512, 8, 2)
    layer = aic_moe.engine_seconds(chip, BARE, model, "bf16", [1.0], 2, 1)
    experts = aic_moe.engine_seconds(chip, BARE, model, "bf16", [1.0], 2, 1, ops=aic_moe.EXPERT_OPS)
    hbm = chip.hbm_tb_s * 1e12
    assert layer[0] == pytest.approx(LAYER_BYTES / hbm, rel=1e-9)
    assert experts[0] == pytest.approx(EXPERT_BYTES / hbm, rel=1e-9)


def test_expert_parallel_layout_is_the_engines_tp_times_ep_group():
    # moe_tp 1 x moe_ep 2 is the engine's tp 2, ep 2, dp 1: each rank holds 8/2 = 4 whole experts (width 512,
    # gate+up n 1024). One token's 2 pairs under the tables' balanced routing: m = 1·2/2 = 1 row on each
    # rank (no busiest rank), on min(4, 1) = 1 expert. Bytes:
    #   up 1024·1024·2 + m·2048·2, down 1024·512·2 + m·1536·2, act m·512·2·3, routing 8·8 + 8m,
    #   permute (1 + m)·1024·2, unpermute m·1024·2 + 1024·2  =  3,149,888 + 14,344·m
    # (the serving graph's random routing charges the busiest of 2 ranks, m = 1 + sqrt(2·1·ln 2)).
    chip = catalog.load_chip("h100-sxm")
    model = aic_moe.moe_model(1024, 512, 8, 2)
    ep2 = aic_moe.engine_seconds(chip, BARE, model, "bf16", [1.0], 1, 2)
    assert ep2[0] == pytest.approx((3_149_888 + 14_344 * 1.0) / (chip.hbm_tb_s * 1e12), rel=1e-9)


def test_ratio_bands_and_layouts_of_a_table_measured_at_twice_the_engine_time(tmp_path):
    chip = catalog.load_chip("h100-sxm")
    model = aic_moe.moe_model(1024, 512, 8, 2)
    tokens = [1, 8, 64, 4096]
    t = aic_moe.engine_seconds(chip, BARE, model, "bf16", tokens, 2, 1)
    _write(tmp_path, "h100_sxm", "trtllm", "1.0.0", [_row(tokens=n, latency_ms=2e3 * s) for n, s in zip(tokens, t)])
    rows = aic_moe.load_rows(tmp_path, "h100_sxm", "trtllm")
    (g,) = aic_moe.summarize(rows, aic_moe.predict(rows, chip, BARE))
    assert g["median_ratio"] == pytest.approx(0.5, abs=1e-4)
    assert {k: v["rows"] for k, v in g["by_tokens"].items()} == {"1-8": 2, "16-128": 1, ">=3072": 1}
    assert g["by_tokens"][">=3072"]["median_ratio"] == pytest.approx(0.5, abs=1e-4)
    assert g["by_layout"] == {"ep=1": pytest.approx(0.5, abs=1e-4), "ep>1": None}
    assert g["by_shard"] == {"<=256": pytest.approx(0.5, abs=1e-4)}  # 512 wide, moe_tp 2: 256 per rank
    assert g["median_ratio_experts_only"] < g["median_ratio"]  # routing and permutes are part of the layer


def test_token_bands_cover_the_table_sweep():
    sweep = [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048,
             3072, 4096, 6144, 8192, 12288, 16384]
    bands = aic_moe.band_of(sweep)
    assert "" not in set(bands)
    assert list(bands[[0, 4, 11, 21]]) == ["1-8", "16-128", "160-2048", ">=3072"]


def test_nemotron_shapes_are_non_gated():
    assert not aic_moe.is_gated("moe_torch_flow", 2688, 512, 22)        # Nemotron-3 Super
    assert not aic_moe.is_gated("moe_torch_flow_nongated", 1536, 128, 8)  # the kernel says so
    assert aic_moe.is_gated("sglang_fused_moe_triton", 2048, 256, 8)     # DeepSeek-V3


def test_fastest_kernel_per_key_and_framework_speed(tmp_path):
    chip = catalog.load_chip("h100-sxm")
    _write(tmp_path, "h100_sxm", "trtllm", "1.0.0", [_row(tokens=1, latency_ms=0.020)])
    _write(tmp_path, "h100_sxm", "vllm", "0.1.0", [_row(tokens=1, latency_ms=0.030, kernel="a"),
                                                    _row(tokens=1, latency_ms=0.090, kernel="b")])
    by_fw = {fw: aic_moe.load_rows(tmp_path, "h100_sxm", fw) for fw in ("trtllm", "vllm")}
    fast, pred = aic_moe.fastest_rows(by_fw["vllm"], aic_moe.predict(by_fw["vllm"], chip, BARE))
    assert fast.rows == 1 and fast.columns["latency_s"][0] == pytest.approx(30e-6)
    assert fast.columns["kernel_source"][0] == aic_moe.FASTEST and pred["layer_s"].shape == (1,)
    (s,) = aic_moe.framework_speed(by_fw)
    # vLLM's quickest kernel (30 µs) against TensorRT-LLM's (20 µs) on the same key: 1.5x slower.
    assert (s["framework"], s["moe_dtype"], s["rows"], s["median_latency_ratio"]) == ("vllm", "bfloat16", 1, 1.5)


@pytest.mark.slow  # reads the shipped parquet tables (pyarrow import ~2 s)
@pytest.mark.skipif(importlib.util.find_spec("aiconfigurator_core") is None, reason="aiconfigurator not installed")
def test_shipped_h200_tables_score_qwen3_tp8_within_a_factor_of_two():
    from tokenfab.perf.framework import efficiency_under

    rows = aic_moe.load_rows(aic.data_root(), "h200_sxm", "trtllm")
    chip = catalog.load_chip("h200-sxm")
    pred = aic_moe.predict(rows, chip, efficiency_under(chip, "trt-llm", moe=True))
    w = aic_moe.worked(rows, pred, aic_moe.WORKED_SHAPES["qwen3-235b-a22b"], 8, 1)
    bf16 = [r for r in w if r["moe_dtype"] == "bfloat16"]
    assert {r["num_tokens"] for r in bf16} == {1, 8, 64, 512, 4096}
    assert all(0.5 < r["ratio"] < 2.0 for r in bf16)
    assert np.all(np.isfinite(pred["layer_s"])) and np.all(pred["layer_s"] > 0)


def test_gemm_k_bench_refuses_bad_arguments_in_one_line(capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("aic_gemm_k", Path(__file__).parents[1] / "bench" / "aic_gemm_k.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for argv in (["--min-m", "0"], ["--min-m", "many"], ["--bogus"]):
        with pytest.raises(SystemExit) as e:
            bench.main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("aic_gemm_k: ") and "\n" not in err


def test_the_tables_balanced_routing_hits_every_expert_once_tokens_times_top_k_reach_them():
    """aiconfigurator's `balanced_logits` sends token i to experts (i + j * 32) mod 256 (DeepSeek-V3:
    256 experts, top-8, stride 32): at 32 tokens all 256 experts get one row, at 8 tokens 64 experts do,
    and 8 EP ranks share them evenly. A served router's random routing hits 256 (1 - (1 - 8/256)^32) =
    163 experts at 32 tokens and loads the busiest EP rank above the mean."""
    from tokenfab.graph.ops import StepShape
    from tokenfab.graph.transformer import step_ops

    model = aic_moe.moe_model(7168, 2048, 256, 8)

    def up(tokens, ep, routing):
        one = np.ones(1)
        s = StepShape(phase="decode", tokens=tokens * one, seqs=tokens * one, ctx=one, kv_len=one, tp=8 * one,
                      dp=one, ep=ep * one, w_bytes=one, a_bytes=2 * one, kv_bytes=2 * one, moe_routing=routing)
        op = {o.name: o for o in step_ops(model, s)}["experts_up"]
        return float(np.ravel(op.groups)[0]), float(np.ravel(op.m)[0])

    served = up(32, 1, "random")
    assert served[0] == pytest.approx(256 * (1 - (1 - 8 / 256) ** 32), rel=1e-9)  # ~163 experts
    assert served[0] * served[1] == pytest.approx(32 * 8)  # every row still lands somewhere
    assert up(32, 1, "balanced") == (256.0, 1.0)
    assert up(8, 1, "balanced") == (64.0, 1.0)
    assert up(64, 8, "balanced") == (32.0, 2.0)  # 512 pairs over 8 ranks: 64 rows on each rank's 32 experts
    busiest = up(64, 8, "random")
    assert busiest[0] * busiest[1] > 64.0  # the busiest rank carries more than the mean
