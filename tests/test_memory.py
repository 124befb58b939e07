"""Memory fit: weights, KV cache and what is left on a chip."""

import numpy as np
import pytest

from tokenfab.catalog import load_model
from tokenfab.mapping import memory


def test_unsharded_bf16_weights_equal_two_bytes_per_parameter():
    m = load_model("llama-3.1-70b")
    w = memory.weight_bytes_per_chip(m, tp=np.array([1]), pp=np.array([1]), ep=np.array([1]), dp=np.array([1]),
                                     w_bytes=np.array([2.0]))
    assert float(w[0]) == pytest.approx(m.total_params() * 2, rel=1e-9)


def test_tensor_parallel_divides_weights():
    m = load_model("llama-3.1-70b")
    args = dict(pp=np.array([1]), ep=np.array([1]), dp=np.array([1]), w_bytes=np.array([1.0]))
    w1 = memory.weight_bytes_per_chip(m, tp=np.array([1]), **args)
    w8 = memory.weight_bytes_per_chip(m, tp=np.array([8]), **args)
    # Linear layers halve to fp8 (1 B) but embeddings stay bf16: TP8 divides everything by 8.
    assert float(w8[0]) == pytest.approx(float(w1[0]) / 8, rel=1e-9)


def test_expert_parallel_spreads_experts_over_all_chips():
    m = load_model("deepseek-v3")
    common = dict(tp=np.array([1]), pp=np.array([1]), w_bytes=np.array([1.0]))
    ep32 = memory.weight_bytes_per_chip(m, ep=np.array([32]), dp=np.array([32]), **common)
    # 256 routed experts x 58 MoE layers x 3*7168*2048 weights, fp8, over 32 chips = 20.4 GB,
    # plus replicated attention/shared/dense parts (~16 GB) and bf16 tables.
    routed = 256 * 58 * 3 * 7168 * 2048 / 32
    assert routed / 1e9 == pytest.approx(20.43, abs=0.01)
    assert 30e9 < float(ep32[0]) < 45e9


def test_kv_cache_per_sequence_llama70b_by_hand():
    m = load_model("llama-3.1-70b")
    # 80 layers x 8 KV heads x (128 K + 128 V) x 2 B = 327,680 B per token; 1000 tokens.
    kv = memory.kv_bytes_per_sequence(m, tp=np.array([1]), pp=np.array([1]), seq_len=1000, kv_bytes=np.array([2.0]))
    assert float(kv[0]) == 327_680 * 1000


def test_kv_heads_replicate_beyond_their_count():
    m = load_model("llama-3.1-70b")  # 8 KV heads: TP16 cannot split them further
    kv8 = memory.kv_bytes_per_sequence(m, tp=np.array([8]), pp=np.array([1]), seq_len=100, kv_bytes=np.array([2.0]))
    kv16 = memory.kv_bytes_per_sequence(m, tp=np.array([16]), pp=np.array([1]), seq_len=100, kv_bytes=np.array([2.0]))
    assert float(kv16[0]) == float(kv8[0])


def test_sliding_window_layers_cap_their_cache():
    m = load_model("gpt-oss-120b")  # 18 of 36 layers slide over 128 tokens
    kv = memory.kv_bytes_per_sequence(m, tp=np.array([1]), pp=np.array([1]), seq_len=10_000, kv_bytes=np.array([1.0]))
    per_token_layer = 8 * (64 + 64)
    assert float(kv[0]) == per_token_layer * (18 * 10_000 + 18 * 128)


def test_usable_memory_keeps_a_reserve_of_what_software_sees():
    # An "80 GB" H100 is 79.11 GiB to PyTorch (84.94e9 bytes); 8% and 1 GB of it stay with the runtime.
    assert memory.device_bytes(80) == pytest.approx(79.11 * 2**30)
    assert memory.usable_bytes(80) == pytest.approx(79.11 * 2**30 * 0.92 - 1e9)
