"""Predictions for microbenchmark rows: GEMMs, attention kernels, HBM streams, collectives and the
single operators of a Transformer layer, straight from the perf functions.

`predict_micro(row, chip, eff)` is a pure function of the Efficiency, so `tokenfab calibrate` can
call it with candidate parameters. It returns the prediction in the row's metric unit, or raises
`Unpredictable` with the reason when the row does not pin down what was measured.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from tokenfab import catalog
from tokenfab.perf import comm, roofline
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs import ChipSpec, SystemSpec, bytes_per_element


class Unpredictable(Exception):
    """The row cannot be predicted honestly; the message says why."""


# What each microbenchmark row informs (used by calibration to pick the rows for a parameter).
GEMM_METRICS = ("tflops", "latency_us", "tb_s")
BIG = 1 << 30  # 1 GiB: a message large enough that bandwidth, not latency, sets the time


def system_for(chip: ChipSpec, num_chips: int | None = None, rdma_only: bool = False) -> SystemSpec:
    """The chip's standard system; `rdma_only` routes every byte over the NICs (DeepEP LL kernels)."""
    s = SystemSpec.for_chip(chip)
    if rdma_only:
        return s.model_copy(update={"scaleup_domain": 1, "chips_per_node": 1})
    return s


def _precision(row) -> str:
    return row.weight_precision or row.activation_precision or "bf16"


def _peak(chip: ChipSpec, precision: str) -> float:
    peak = chip.peak_tflops(precision)
    if not peak:
        raise Unpredictable(f"{chip.id} has no {precision} matrix path in the catalog")
    return peak


def _gemm(chip: ChipSpec, eff: Efficiency, m, n, k, precision: str, groups=1.0):
    """(seconds, bytes moved) of `groups` GEMMs (M×K)·(K×N) in `precision` (fp8: fp8 inputs, bf16 out)."""
    w = bytes_per_element(precision)
    # fp8/int8/fp4 GEMMs take activations in their own format (NVFP4/MXFP4 quantize both operands);
    # int4 is weight-only (W4A8 at best).
    a_in = w if precision in ("fp8", "int8", "fp4") else (1.0 if precision == "int4" else w)
    out_b = 2.0 if w < 2 else w  # low-precision GEMMs write bf16
    # roofline charges m·(k+n)·a_bytes for input and output: the mean width of the two.
    a = (k * a_in + n * out_b) / (k + n)
    t, _ = roofline.gemm_time_s(m, n, k, _peak(chip, precision), chip.hbm_tb_s, w, a, chip.cores or 100, eff,
                                batch=groups, compute_frac=eff.gemm_frac(precision))
    bytes_ = groups * (n * k * w + m * k * a_in + m * n * out_b)
    return float(t), float(bytes_)


def is_block_scaled(row) -> bool:
    """A GEMM or MoE row of a model whose FP8 release is block-scaled (`ModelSpec.fp8_weight_block`)
    computing in FP8: it times the block-scaled kernels (`Efficiency.for_block_scales`). A model the
    catalog does not hold names no release: per-tensor."""
    if row.scenario not in ("gemm", "moe") or not row.model or _precision(row) != "fp8":
        return False
    return _release_block(row.model) is not None


@lru_cache(maxsize=None)
def _release_block(model_id: str):
    """The catalog model's `fp8_weight_block` (None for a model the catalog does not hold)."""
    return catalog.load_model(model_id).fp8_weight_block if model_id in catalog.model_ids() else None


def _gemm_row(row, chip: ChipSpec, eff: Efficiency) -> float:
    if not (row.gemm_m and row.gemm_n and row.gemm_k):
        raise Unpredictable("GEMM shape not stated")
    m, n, k = float(row.gemm_m), float(row.gemm_n), float(row.gemm_k)
    groups = float(row.batch or 1)
    if is_block_scaled(row):
        eff = eff.for_block_scales()  # a GEMM of a block-scaled FP8 release (its shapes and scales)
    t, bytes_ = _gemm(chip, eff, m, n, k, _precision(row), groups)
    if row.metric == "tflops":
        return 2.0 * m * n * k * groups / t / 1e12
    if row.metric == "latency_us":
        return t * 1e6
    if row.metric == "tb_s":
        return bytes_ / t / 1e12
    raise Unpredictable(f"gemm metric {row.metric} not modelled")


def _bandwidth_row(row, chip: ChipSpec, eff: Efficiency) -> float:
    if row.metric != "tb_s":
        raise Unpredictable(f"bandwidth metric {row.metric} not modelled")
    t = roofline.stream_time_s(float(BIG) * 4, chip.hbm_tb_s, eff)  # a 4 GiB stream: launch cost negligible
    return float(BIG) * 4 / float(t) / 1e12


_FA_HEAD_DIM = re.compile(r"head_dim\s*(\d+)")


def _attention_row(row, chip: ChipSpec, eff: Efficiency) -> float:
    """Fused attention kernels quoted at their asymptote: a long sequence (compute-bound TFLOPS) or a
    memory-bound decode (TB/s). Shapes not stated in the source leave only the asymptote to predict."""
    peak = chip.bf16_tflops
    if row.metric == "tb_s":
        t, _ = roofline.attention_time_s(0.0, float(BIG) * 4, peak, chip.hbm_tb_s, eff)
        return float(BIG) * 4 / float(t) / 1e12
    if row.metric != "tflops":
        raise Unpredictable(f"attention metric {row.metric} not modelled")
    # FlashAttention-2 benchmark shape when stated (batch, seq, head_dim; model dim 2048 as in the FA2
    # benchmark script), else a long compute-bound case: TFLOPS is then peak × attention efficiency.
    m = _FA_HEAD_DIM.search(row.notes)
    hd = float(m.group(1)) if m else 128.0
    seq = float(row.input_len or 8192)
    b = float(row.batch or 2)
    heads = 2048.0 / hd
    flops = 4.0 * b * heads * seq * seq * hd
    bytes_ = 4.0 * b * seq * heads * hd * 2.0
    t, _ = roofline.attention_time_s(flops, bytes_, peak, chip.hbm_tb_s, eff)
    return flops / float(t) / 1e12


def _group_bytes(row) -> float:
    return float(row.message_bytes) if row.message_bytes else float(BIG)


def _collective_row(row, chip: ChipSpec, eff: Efficiency) -> float:
    p = float(row.num_chips or 1)
    if row.scenario == "alltoall":
        p = float(row.ep or row.num_chips or 1)
    if p < 2:
        raise Unpredictable(f"a {row.scenario} row needs its group size (num_chips ≥ 2)")
    rdma_only = "pure rdma" in row.notes.lower()
    system = system_for(chip, int(p), rdma_only=rdma_only)
    b = _group_bytes(row)
    if row.scenario == "allreduce":
        if row.metric == "gb_s_busbw":
            t = float(comm.allreduce_time_s(b, p, system, eff))
            return 2.0 * (p - 1.0) / p * b / t / 1e9
        if row.metric == "latency_us":
            if not row.message_bytes:
                raise Unpredictable("all-reduce latency without a message size")
            return float(comm.allreduce_time_s(b, p, system, eff)) * 1e6
    if row.scenario in ("allgather", "reducescatter") and row.metric == "gb_s_busbw":
        fn = comm.allgather_time_s if row.scenario == "allgather" else comm.reducescatter_time_s
        t = float(fn(b, p, system, eff))
        return (p - 1.0) / p * b / t / 1e9
    if row.scenario == "alltoall":
        if not row.message_bytes:
            raise Unpredictable("all-to-all without a message size")
        t = float(comm.alltoall_time_s(b, p, system, eff))
        if row.metric == "latency_us":
            return t * 1e6
        if row.metric == "gb_s_algbw":
            # DeepEP's "bottleneck bandwidth": bytes through the slower link class / kernel time.
            inside, outside = comm.alltoall_split(b, p, system)
            through = float(outside) if float(outside) > 0 else float(inside)
            return through / t / 1e9
    if row.scenario == "p2p" and row.metric == "gb_s_algbw":
        t = float(comm.p2p_time_s(b, False, system, eff))
        factor = 2.0 if "bidirectional total" in row.notes.lower() else 1.0  # both directions summed
        return factor * b / t / 1e9
    raise Unpredictable(f"{row.scenario} metric {row.metric} not modelled")


# LLMCompass real-hardware transformer-layer timings (one GPU's shard of a GPT-3 175B layer at TP4).
_OP_NAME = re.compile(r"op latency(?: \(one decode step\))?: (\w+)")


def _op_row(row, chip: ChipSpec, eff: Efficiency) -> float:
    if row.metric != "latency_us":
        raise Unpredictable(f"op metric {row.metric} not modelled")
    m = _OP_NAME.search(row.notes)
    if not m or row.model != "gpt-3-175b":
        raise Unpredictable("operator shape not identifiable from the row")
    from tokenfab import catalog

    model = catalog.load_model(row.model)
    op = m.group(1)
    tp = float(row.tp or 1)
    b = float(row.batch or 1)
    decode = "phase=decode" in row.notes
    d, h = float(model.hidden_size), float(model.num_heads)
    hd = d / h
    ffn = float(model.intermediate_size)
    L = float(row.input_len or 1)  # prefill: sequence length; decode: KV length
    T = b if decode else b * L
    s_q = 1.0 if decode else L
    heads = b * h / tp
    prec = _precision(row)
    ab = bytes_per_element(prec)
    gemms = {
        "Q_K_V": (T, 3 * d / tp, d, 1.0),
        "Wo_proj": (T, d, d / tp, 1.0),
        "W1_proj": (T, ffn / tp, d, 1.0),
        "W2_proj": (T, d, ffn / tp, 1.0),
        # Batched attention matmuls (LLMCompass times torch.matmul per head, no fusion).
        "Q_mul_K": (s_q, L, hd, heads),
        "A_mul_V": (s_q, hd, L, heads),
    }
    if op in gemms:
        mm, nn, kk, g = gemms[op]
        if op in ("Q_mul_K", "A_mul_V"):
            # The K/V operand is per (sequence, head) activation data, read once per GEMM.
            t, _ = roofline.gemm_time_s(mm, nn, kk, _peak(chip, prec), chip.hbm_tb_s, ab, ab, chip.cores or 100, eff,
                                        batch=g)
            return float(t) * 1e6
        t, _ = _gemm(chip, eff, mm, nn, kk, prec)
        return t * 1e6
    streams = {  # bytes read + written by memory-bound kernels
        "Softmax": 2.0 * heads * s_q * L * ab,
        "LayerNorm_MHA": 2.0 * T * d * ab,
        "LayerNorm_FFN": 2.0 * T * d * ab,
        "GeLU": 2.0 * T * ffn / tp * ab,
    }
    if op in streams:
        return float(roofline.stream_time_s(streams[op], chip.hbm_tb_s, eff)) * 1e6
    raise Unpredictable(f"operator {op} not modelled")


_MOE_SHAPE = re.compile(r"\bexperts=(\d+);\s*topk=(\d+)\b")


def _moe_row(row, chip: ChipSpec, eff: Efficiency) -> float:
    """One rank's MoE layer (routing, permutation, expert GEMMs, un-permutation: `validate.aic_moe.
    MOE_KERNEL_OPS`, as for aiconfigurator's `moe_perf` rows) for `gemm_m` tokens, experts of
    intermediate size `gemm_n` (the rank's shard) on hidden size `gemm_k`, `experts=E;topk=k` in notes; a
    row naming its `model` runs that model's FP8 kernels (block-scaled where its release is)."""
    if row.metric != "latency_us":
        raise Unpredictable(f"moe metric {row.metric} not modelled")
    m = _MOE_SHAPE.search(row.notes or "")
    if not m or not (row.gemm_m and row.gemm_n and row.gemm_k):
        raise Unpredictable("MoE shape not stated (gemm_m tokens, gemm_n intermediate, gemm_k hidden, "
                            "'experts=E;topk=k' in notes)")
    from tokenfab.validate import aic_moe

    model = aic_moe.moe_model(int(row.gemm_k), int(row.gemm_n), int(m.group(1)), int(m.group(2)))
    if is_block_scaled(row):  # the layer of a named model whose FP8 release is block-scaled
        model = model.model_copy(update={"fp8_weight_block": _release_block(row.model)})
    # Priced under the kernel tables' balanced routing (`aic_moe.engine_seconds`). The shipped rows
    # (aiter's tuned fused-MoE configs, 4K-16K tokens on 128-256 experts) hit every expert with equal
    # loads under random routing too, so the two agree there.
    return float(aic_moe.engine_seconds(chip, eff, model, _precision(row), np.array([float(row.gemm_m)]), 1, 1)[0]) * 1e6


SERVING_ALLREDUCE = ("tensorrt", "trt-llm", "trtllm", "vllm", "sglang", "custom")
"""Framework names whose all-reduce rows time a serving stack's custom/quick all-reduce kernel (priced
with `allreduce_latency_us`); every other all-reduce row (nccl-tests, rccl-tests, PyTorch) times NCCL's."""


def is_custom_allreduce_row(row) -> bool:
    """An all-reduce row of a serving stack's custom kernel (`SERVING_ALLREDUCE`), not NCCL's."""
    return row.scenario == "allreduce" and any(s in row.framework.lower() for s in SERVING_ALLREDUCE)


def predict_micro(row, chip: ChipSpec, eff: Efficiency) -> float:
    """Predicted value of a microbenchmark row in its metric unit (raises Unpredictable)."""
    if eff.allreduce_latency_us is not None and not is_custom_allreduce_row(row):
        # nccl-tests / plain PyTorch measure NCCL's all-reduce, not a serving stack's custom kernel.
        eff = eff.model_copy(update={"allreduce_latency_us": None, "allreduce_bw_frac": None})
    if row.scenario == "gemm":
        return _gemm_row(row, chip, eff)
    if row.scenario == "bandwidth":
        return _bandwidth_row(row, chip, eff)
    if row.scenario == "attention":
        return _attention_row(row, chip, eff)
    if row.scenario in ("allreduce", "allgather", "reducescatter", "alltoall", "p2p"):
        return _collective_row(row, chip, eff)
    if row.scenario == "op":
        return _op_row(row, chip, eff)
    if row.scenario == "moe":
        return _moe_row(row, chip, eff)
    raise Unpredictable(f"scenario {row.scenario} is not a microbenchmark")


def is_finite(x) -> bool:
    return bool(np.isfinite(x)) and x > 0
