"""Attention-FFN disaggregation of a MoE model's decode (ByteDance's MegaScale-Infer, arXiv:2504.02263).

The decode pool is split in two: **attention chips** (data-parallel attention, each holding the
attention and dense layers, the embeddings and its sequences' KV caches: memory-bandwidth work)
and **expert chips** (each holding E/ne of every MoE layer's experts plus the shared experts:
compute work once enough tokens gather). Every layer, each attention chip sends its tokens'
hidden states to the experts they are routed to and gets the results back (an M:N all-to-all
over the scale-out network). `MICRO_BATCHES` micro-batches ping-pong between the two sides so
both stay busy: in steady state a step takes `m × max(attention, experts, all-to-all)` of one
micro-batch (each micro-batch reads the expert weights again).

Every point is one (attention chips, expert chips, batch per attention chip, precision); the
arrays follow `search.GridResult` so `mapping.modes.choose_under` picks among them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tokenfab.graph import StepShape, step_ops
from tokenfab.mapping import memory
from tokenfab.mapping.search import (DEFAULT_BATCHES, GridResult, chip_hardware, compute_precision,
                                     default_precisions, kv_precision_for)
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.evaluate import Hardware, time_ops
from tokenfab.specs import ChipSpec, ModelSpec, SystemSpec, Traffic, bytes_per_element

MICRO_BATCHES = 3
"""Micro-batches in the ping-pong pipeline (MegaScale-Infer uses at least 3 so that the
all-to-all of one hides behind the compute of the others)."""
ATTENTION_CHIPS = (2, 4, 8, 16, 32, 64)
EXPERT_CHIPS = (2, 4, 8, 16, 32, 64)
EXPERT_OPS = {"router", "experts_up", "experts_act", "experts_down", "moe_routing", "moe_permute", "moe_unpermute",
              "shared_up", "shared_down"}
"""Ops that run on the expert chips; everything else of a step runs on the attention chips."""
COMM_OPS = {"moe_dispatch", "moe_combine", "allreduce_moe"}
"""Replaced by the attention-expert all-to-all between the two pools."""


def _hardware(model: ModelSpec, chip: ChipSpec, system: SystemSpec, eff: Efficiency, precisions, kv_names,
              prec_idx, attention_precision: str | None) -> Hardware:
    """A decode side's hardware: `mapping.search.chip_hardware` at the decode attention precision."""
    return chip_hardware(model, chip, system, eff, precisions, kv_names, prec_idx, "decode", attention_precision)


def _side_seconds(times, keep) -> np.ndarray:
    """Seconds of the ops `keep` selects (an MTP draft layer's ops go by their own kind)."""
    secs = np.broadcast_arrays(*[t.seconds for t in times])
    return sum((s for t, s in zip(times, secs) if keep(t.name.removeprefix("draft_"))), np.zeros_like(secs[0]))


def af_decode(model: ModelSpec, attn_chip: ChipSpec, ffn_chip: ChipSpec, traffic: Traffic,
              attn_eff: Efficiency, ffn_eff: Efficiency, precisions: tuple[str, ...] | None = None,
              kv_precision: str | None = None, batches: tuple[int, ...] | None = None,
              link_gb_s: float | None = None, latency_us: float = 12.0,
              attention_precision: str | None = None) -> GridResult:
    """Every AF-disaggregated decode point: output tokens/s per chip (of both sides), TPOT and
    whether each side fits its chip's memory."""
    if not model.is_moe:
        raise ValueError(f"{model.id} has no experts to separate from attention")
    precs = tuple(precisions or tuple(p for p in default_precisions(attn_chip) if ffn_chip.peak_tflops(
        compute_precision(ffn_chip, p))))
    na, ne, b, pr = np.meshgrid(np.array(ATTENTION_CHIPS, float), np.array(EXPERT_CHIPS, float),
                                np.array(batches or DEFAULT_BATCHES, float), np.arange(len(precs)), indexing="ij")
    na, ne, b, pr = (a.ravel() for a in (na, ne, b, pr))
    w_bytes = np.array([bytes_per_element(p) for p in precs])[pr]
    kv_names = tuple(kv_precision_for(attn_chip, p, kv_precision) for p in precs)
    kv_bytes = np.array([bytes_per_element(k) for k in kv_names])[pr]
    from tokenfab.graph.requests import request_shape
    rq = request_shape(model, traffic)
    isl, osl, d = float(rq.input_len), float(traffic.output_len), float(rq.draft_tokens)
    ctx = isl + osl / 2.0
    micro = b / MICRO_BATCHES  # sequences per attention chip per micro-batch
    one = np.ones_like(b)
    # Attention side: one data-parallel rank per attention chip.
    a_shape = StepShape("decode", tokens=micro * (1 + d), seqs=micro, ctx=ctx * one, kv_len=ctx * one, tp=one,
                        dp=na, ep=one, w_bytes=w_bytes, a_bytes=2.0, kv_bytes=kv_bytes, draft_tokens=d)
    a_sys, f_sys = SystemSpec.for_chip(attn_chip), SystemSpec.for_chip(ffn_chip)
    t_attn = _side_seconds(time_ops(step_ops(model, a_shape), _hardware(model, attn_chip, a_sys, attn_eff, precs, kv_names, pr,
                                                                            attention_precision)),
                           lambda n: n not in EXPERT_OPS and n not in COMM_OPS)
    # Expert side: the micro-batch's tokens of all attention chips, spread over ne expert chips.
    f_tokens = micro * (1 + d) * na / ne
    f_shape = dataclasses.replace(a_shape, tokens=f_tokens, seqs=micro * na / ne, dp=ne, ep=ne)
    t_ffn = _side_seconds(time_ops(step_ops(model, f_shape), _hardware(model, ffn_chip, f_sys, ffn_eff, precs, kv_names, pr,
                                                                          attention_precision)),
                          lambda n: n in EXPERT_OPS)
    # The all-to-all: each attention chip sends k copies of its tokens (activation precision) and
    # gets k bf16 results back; each expert chip receives its share. The busier side's NIC sets it.
    k = model.experts_per_token
    bw = (link_gb_s or min(attn_chip.scaleout_gb_s, ffn_chip.scaleout_gb_s)) * 1e9 * attn_eff.comm_bw_frac
    per_attn = micro * (1 + d) * k * model.hidden_size * (w_bytes.clip(max=2.0) + 2.0)
    per_ffn = per_attn * na / ne
    t_comm = model.num_moe_layers * (2 * latency_us * 1e-6 + np.maximum(per_attn, per_ffn) / bw)
    step = MICRO_BATCHES * np.maximum(np.maximum(t_attn, t_ffn), t_comm) + attn_eff.step_overhead_ms * 1e-3
    tps = rq.tokens_per_step
    # Memory per side.
    n_dense = model.num_layers - model.num_moe_layers
    attn_w = (model.num_layers * model.attention_params() + n_dense * model.mlp_params(model.intermediate_size)) * w_bytes \
        + model.embedding_params() * 2.0
    kv = b * memory.kv_bytes_per_sequence(model, 1.0, 1.0, isl + osl, kv_bytes)
    a_free = memory.usable_bytes(attn_chip.hbm_gb) - attn_w - kv - b * model.vocab_size * 4.0
    expert_w = model.num_moe_layers * (np.ceil(model.num_experts / ne) * model.mlp_params(model.moe_intermediate_size)
                                      + model.num_shared_experts * model.mlp_params(model.shared_intermediate_size)) * w_bytes
    f_free = memory.usable_bytes(ffn_chip.hbm_gb) - expert_w
    arrays = {
        "attention_chips": na.astype(int), "expert_chips": ne.astype(int), "num_chips": (na + ne).astype(int),
        "batch": b.astype(int), "prec": pr.astype(int), "tp": np.ones_like(b, dtype=int),
        "fits": (a_free >= 0) & (f_free >= 0) & (ne <= model.num_experts),
        "free_gb": np.minimum(a_free, f_free) / 1e9, "weights_gb": attn_w / 1e9, "expert_weights_gb": expert_w / 1e9,
        "kv_cache_gb": kv / 1e9, "decode_step_ms": step * 1e3, "tpot_ms": step / tps * 1e3,
        "attention_ms": t_attn * MICRO_BATCHES * 1e3, "experts_ms": t_ffn * MICRO_BATCHES * 1e3,
        "alltoall_ms": t_comm * MICRO_BATCHES * 1e3,
        "output_tok_s_per_chip": na * b * tps / step / (na + ne),
        "attention_share": na / (na + ne),
    }
    return GridResult(arrays, precs, kv_names)
