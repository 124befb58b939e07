"""MoE layer operators: routing work around the expert GEMMs, and when tokens cross chips."""

import numpy as np

from tokenfab import catalog
from tokenfab.graph import StepShape, step_ops


def _shape(tokens, tp, dp, ep):
    one = np.ones(1)
    return StepShape("decode", tokens=tokens * one, seqs=tokens * one, ctx=100 * one, kv_len=100 * one,
                     tp=tp * one, dp=dp * one, ep=ep * one, w_bytes=one, a_bytes=2.0, kv_bytes=one)


def _ops(model, s):
    return {op.name: op for op in step_ops(model, s)}


def test_permutation_moves_each_token_copy_in_and_out():
    # Mixtral on one chip, 64 tokens, top-2: 128 copies of 4096-wide rows; permute reads the 64 tokens
    # once and writes the 128 copies (2 B each, TensorRT-LLM's expandInputRows), un-permute reads 128
    # bf16 rows and writes 64.
    m = catalog.load_model("mixtral-8x7b")
    ops = _ops(m, _shape(64, 1, 1, 1))
    assert float(ops["moe_permute"].bytes[0]) == (64 + 128) * 4096 * 2
    assert float(ops["moe_unpermute"].bytes[0]) == 128 * 4096 * 2 + 64 * 4096 * 2
    assert ops["moe_routing"].kernels == 2.0


def test_expert_parallel_over_the_tp_group_needs_no_all_to_all():
    # ep = tp with one data-parallel rank: every chip holds every token; the TP all-reduce combines.
    m = catalog.load_model("qwen3-235b-a22b")
    ops = _ops(m, _shape(256, 8, 1, 8))
    assert float(ops["moe_dispatch"].bytes[0]) == 0.0
    assert float(ops["allreduce_moe"].bytes[0]) > 0.0
    wide = _ops(m, _shape(256, 1, 8, 8))  # data-parallel attention: tokens differ per chip
    assert float(wide["moe_dispatch"].bytes[0]) > 0.0


def test_expert_groups_across_replicas_split_each_expert_over_the_replica_tp():
    # DeepSeek-V3, tp 2 × dp 4 with ep = dp = 4: each of the 4 expert groups holds 64 experts, each
    # expert split over the group's 2 chips (width 2048 / 2 = 1024); a token's hidden state goes to
    # both shards of each of its 8 experts: 16 tokens/rank / tp 2 × 8 × 7168 × 2 shards × 2 bytes.
    m = catalog.load_model("deepseek-v3")
    ops = _ops(m, _shape(16, 2, 4, 4))
    assert float(np.asarray(ops["experts_down"].k).ravel()[0]) == 1024
    assert float(np.asarray(ops["moe_dispatch"].bytes).ravel()[0]) == 16 / 2 * 8 * 7168 * 2 * 2
    from tokenfab.mapping import memory
    w = memory.weight_bytes_per_chip(m, np.array([2.0]), np.array([1.0]), np.array([4.0]), np.array([4.0]), 1.0)
    whole = memory.weight_bytes_per_chip(m, np.array([2.0]), np.array([1.0]), np.array([8.0]), np.array([4.0]), 1.0)
    # 64 half-experts per chip weigh the same as 32 whole ones: ep = tp × dp = 8 holds 32 whole.
    assert float(w[0]) == float(whole[0])
