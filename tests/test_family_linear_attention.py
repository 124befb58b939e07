"""Gated DeltaNet hybrids (Qwen3-Next): constant recurrent state, linear cost. Small config by hand."""

import numpy as np
import pytest

from tokenfab.graph import StepShape, family_of, step_ops
from tokenfab.mapping import memory
from tokenfab.specs import ModelSpec

CONFIG = {"model_type": "qwen3_next", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
          "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "vocab_size": 100,
          "full_attention_interval": 4, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
          "linear_key_head_dim": 8, "linear_value_head_dim": 8, "linear_conv_kernel_dim": 4,
          "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
          "shared_expert_intermediate_size": 32}


@pytest.fixture
def hybrid():
    return ModelSpec.from_hf_config(CONFIG, "tiny-next")


def shape(phase, T, seqs, ctx, kv):
    one = np.ones(1)
    return StepShape(phase, tokens=T * one, seqs=seqs * one, ctx=ctx * one, kv_len=kv * one, tp=one, dp=one, ep=one,
                     w_bytes=2 * one, a_bytes=2.0, kv_bytes=2 * one)


def test_every_fourth_layer_is_full_attention(hybrid):
    assert hybrid.num_linear_layers == 3 and hybrid.num_full_layers == 1
    assert hybrid.attention_output_gate and family_of(hybrid).name == "gated_deltanet"


def test_kv_cache_is_one_layer_plus_constant_state(hybrid):
    kv = lambda n: float(memory.kv_bytes_per_sequence(hybrid, np.array([1.0]), np.array([1.0]), n,  # noqa: E731
                                                      np.array([2.0]))[0])
    # Full layer: 2 KV heads x (16 + 16) x 2 B = 128 B per token. Linear layers: state 4 value
    # heads x 8 x 8 x 4 B (fp32) = 1,024 B and conv state (2 x 16 + 32) x 3 x 2 B = 384 B each.
    state = 3 * (4 * 8 * 8 * 4 + (2 * 16 + 32) * 3 * 2)
    assert kv(1000) == 128 * 1000 + state
    assert kv(2000) - kv(1000) == 128 * 1000  # only the full-attention layer grows


def test_decode_core_is_4_multiply_adds_per_state_element(hybrid):
    ops = {op.name: op for op in step_ops(hybrid, shape("decode", 2, 2, 100, 100))}
    core = ops["gdn_core"]
    assert core.count == 3
    assert float(core.flops[0]) == 8 * 2 * 4 * 8 * 8
    # Reads and writes each sequence's state: 2 x 2 seqs x 1,024 B, plus q,k,v in and o out.
    assert float(core.bytes[0]) == 2 * 2 * 1024 + 2 * (2 * 16 + 32 + 32) * 2
    assert ops["attention"].count == 1 and ops["attn_gate_proj"].count == 1


def test_prefill_cost_is_linear_in_prompt_length(hybrid):
    f = lambda T: float({op.name: op for op in step_ops(hybrid, shape("prefill", T, 1, T / 2, T))}["gdn_core"].flops[0])  # noqa: E731
    assert f(2000) == pytest.approx(2 * f(1000))
    # Chunked form, C = 64: 2 C (2 dk + dv) + 6 dk dv per token and value head.
    assert f(1000) == 1000 * 4 * (2 * 64 * (16 + 8) + 6 * 64)


def test_catalog_qwen3_next_sizes():
    from tokenfab.catalog import load_model
    m = load_model("qwen3-next-80b-a3b")
    assert (m.num_linear_layers, m.num_full_layers) == (36, 12)
    assert m.total_params() / 1e9 == pytest.approx(80, rel=0.015)  # Qwen: 80B total


def _scan_seconds(op, **eff_fields):
    """One `scan` op timed on an H100-like chip: 989 TFLOP/s BF16, 3.35 TB/s, 2 µs a kernel."""
    from tokenfab.perf.efficiency import Efficiency
    from tokenfab.perf.evaluate import Hardware
    from tokenfab.perf.kinds import extra_kind_time
    from tokenfab.specs import SystemSpec

    eff = Efficiency(kernel_launch_us=2.0, hbm_frac=1.0, **eff_fields)
    hw = Hardware(gemm_tflops=989.0, attention_tflops=989.0, hbm_tb_s=3.35, cores=132, eff=eff,
                  system=SystemSpec(scaleup_gb_s=450.0), bf16_tflops=989.0)
    t, bound = extra_kind_time(op, hw)
    return float(np.asarray(t).ravel()[0]), int(np.asarray(bound).ravel()[0])


def test_prefill_core_is_a_scan_walking_each_prompts_chunks_in_turn(hybrid):
    # One prompt of 8,192 tokens: 128 chunks of 64, one after another; 8 prompts of 1,024: 16 each.
    one = {op.name: op for op in step_ops(hybrid, shape("prefill", 8192, 1, 4096, 8192))}["gdn_core"]
    eight = {op.name: op for op in step_ops(hybrid, shape("prefill", 8192, 8, 512, 1024))}["gdn_core"]
    assert one.kind == "scan" and one.kernels == 6
    assert float(one.meta["steps"][0]) == 128 and float(eight.meta["steps"][0]) == 16
    assert float(one.flops[0]) == float(eight.flops[0])  # the same work, split differently
    # Decode stays the recurrent kernel: a state read and write per token (memory-bound attention op).
    assert {op.name: op for op in step_ops(hybrid, shape("decode", 8, 8, 100, 100))}["gdn_core"].kind == "attention"


def test_scan_time_is_its_slowest_bound_plus_its_launches(hybrid):
    from tokenfab.graph.ops import Op

    # Worked by hand: 128 chunks x 3 µs = 384 µs; work 1e11 FLOP / (989e12 x 0.05) = 2,022 µs;
    # bytes 1e8 / 3.35e12 = 29.9 µs; launches 6 x 2 µs = 12 µs.
    op = Op("gdn_core", "scan", 1, flops_=1e11, bytes_=1e8, kernels=6, meta={"steps": 128.0})
    t, bound = _scan_seconds(op, scan_compute_frac=0.05, scan_chunk_us=3.0)
    assert t == pytest.approx(1e11 / (989e12 * 0.05) + 12e-6) and bound == 0
    # Little work: the chunk chain binds (a faster chip with more cores would not shorten it).
    small = Op("gdn_core", "scan", 1, flops_=1e9, bytes_=1e6, kernels=6, meta={"steps": 128.0})
    t, bound = _scan_seconds(small, scan_compute_frac=0.05, scan_chunk_us=3.0)
    assert t == pytest.approx(128 * 3e-6 + 12e-6) and bound == 0
    # Bytes alone bind: memory.
    heavy = Op("gdn_core", "scan", 1, flops_=1e6, bytes_=1e10, kernels=6, meta={"steps": 1.0})
    t, bound = _scan_seconds(heavy, scan_compute_frac=0.05, scan_chunk_us=3.0)
    assert t == pytest.approx(1e10 / 3.35e12 + 12e-6) and bound == 1


def test_a_longer_prompt_never_prefills_faster(hybrid):
    times = []
    for T in (64, 512, 4096, 32768):
        op = {o.name: o for o in step_ops(hybrid, shape("prefill", T, 1, T / 2, T))}["gdn_core"]
        times.append(_scan_seconds(op, scan_compute_frac=0.05, scan_chunk_us=2.0)[0])
    assert times == sorted(times) and times[-1] > times[0]
