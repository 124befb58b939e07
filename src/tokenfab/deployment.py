"""Disaggregated deployments as `api.Estimate`s: the best prefill pool and decode pool for a
traffic (on one chip type or two), balanced, with TTFT including the KV-cache transfer.

The engine half (pool grids, the P:D balance, the whole-instance unit) is `mapping.modes`; this
module picks the points and reports them as pools. It sits beside `api` (it builds its types).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tokenfab import explain
from tokenfab.perf.evaluate import op_unit_names
from tokenfab.api import (BOUND_NAMES, WIDE_EP_MAX_CHIPS, Estimate, MemoryBreakdown, efficiency_of, efficiency_source,
                          traffic_fields)
from tokenfab.mapping import memory, modes
from tokenfab.mapping.search import SearchSpace
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, Traffic
from tokenfab.specs.cache import KV_TIERS

PREFILL_MAX_CHIPS = 64
"""Largest prefill instance the search tries (DeepSeek's prefill unit: 32 H800s, EP32)."""


@dataclass(frozen=True)
class DecodeSide:
    """The chosen decode side of a disaggregated deployment, as `_assemble` combines it with the
    prefill pool: its rate per chip, chips per instance, step, and what the Estimate reports."""

    rate: float
    """Output tokens/s per chip of the decode side."""
    chips: int
    """Chips of one decode-side instance."""
    step_ms: float
    tpot_ms: float
    meets_slo: bool
    pools: Callable[[int, float], list[dict]]
    """(instances, decode-side share of the chips) -> the pool entries."""
    mapping: dict
    """Estimate fields: tp, pp, ep, dp, batch, concurrency, weight_precision, kv_precision."""
    memory: MemoryBreakdown
    bound: str
    breakdown_ms: dict[str, float]
    chip_ids: tuple[str, ...]
    spec_confidence: str
    efficiency_source: str
    why: explain.Explanation | None = None
    """The decode side's binding constraint (`explain`)."""
    units: tuple[dict, dict] = ({}, {})
    """(ms by bounding unit, op -> bounding unit) of a decode step (`perf.evaluate.op_unit_names`)."""


def disaggregated(m: ModelSpec, prefill_chip: ChipSpec, decode_chip: ChipSpec, traffic: Traffic,
                  space: SearchSpace, max_chips: int | None, fidelity: str, kv_tier: str = "ssd",
                  system: SystemSpec | None = None, ffn_chip: ChipSpec | None = None,
                  framework: str | None = None) -> Estimate:
    """The best disaggregated deployment; `space` fixes the decode pool's mapping where set (its
    precision applies to both pools). With `ffn_chip`, the decode pool is split into attention
    chips (`decode_chip`) and expert chips (`ffn_chip`): attention-FFN disaggregation
    (`mapping.af`). Raises SpecError when either pool cannot hold the model."""
    if ffn_chip is not None:
        side = _af_side(m, decode_chip, ffn_chip, traffic, space, framework)
        link_chip, mode = decode_chip, "af-disaggregated"
    else:
        side = _decode_side(m, decode_chip, traffic, space, max_chips, fidelity, system, framework)
        link_chip, mode = decode_chip, "disaggregated"
    tier = KV_TIERS[kv_tier]
    link_gb_s = min(prefill_chip.scaleout_gb_s, link_chip.scaleout_gb_s)
    pre, pc, p_eff = _prefill(m, prefill_chip, traffic, space, max_chips, fidelity, tier, system, link_gb_s,
                              side.step_ms, framework)
    pp_ = pre.point(pc.index)
    P = float(pp_["input_tok_s_per_chip"])
    isl, osl = float(traffic.input_len), float(traffic.output_len)
    ratio, out_per_chip = modes.balance(isl, osl, P, side.rate)
    n_p, n_d, _ = modes.integer_unit(ratio, pp_["num_chips"], side.chips)
    share = ratio / (1 + ratio)
    ids = tuple(dict.fromkeys((prefill_chip.id,) + side.chip_ids))
    p_source = efficiency_source(p_eff, m, prefill_chip, pre.precisions[int(pp_["prec"])])
    same_source = p_source == side.efficiency_source
    why = explain.disaggregated(side.why, explain.prefill_pool(pre, pc.index, pc.meets_slo,
                                                               pp_["ttft_ms"] + side.step_ms, traffic.slo_ttft_ms))
    pre_units = op_unit_names(pre.extras["prefill_times"], pc.index)
    return Estimate(
        model=m.id, chip="+".join(ids), num_chips=n_p * pp_["num_chips"] + n_d * side.chips, **side.mapping,
        input_len=traffic.input_len, output_len=traffic.output_len,
        ttft_ms=pp_["ttft_ms"] + side.step_ms, tpot_ms=side.tpot_ms, decode_step_ms=side.step_ms,
        prefill_ms=pp_["prefill_ms"], output_tok_s_per_chip=out_per_chip,
        input_tok_s_per_chip=out_per_chip * isl / osl, total_tok_s_per_chip=out_per_chip * (1 + isl / osl),
        prefill_time_share=share, memory_gb_per_chip=side.memory,
        bound={"prefill": BOUND_NAMES[pp_["bound"]], "decode": side.bound},
        meets_slo=pc.meets_slo and side.meets_slo, slo_ttft_ms=traffic.slo_ttft_ms, slo_tpot_ms=traffic.slo_tpot_ms,
        spec_confidence=_worst(prefill_chip.spec_confidence, side.spec_confidence),
        efficiency_source=side.efficiency_source if same_source
        else f"prefill: {p_source}; decode: {side.efficiency_source}",
        fidelity=fidelity, time_breakdown_ms={"decode": side.breakdown_ms, "prefill": _ms(pre.extras["prefill_times"],
                                                                                          pc.index)},
        unit_breakdown_ms={"decode": side.units[0], "prefill": pre_units[0]},
        op_units={"decode": side.units[1], "prefill": pre_units[1]},
        mode=mode, pools=[_prefill_entry(pre, pp_, prefill_chip, n_p, P, share)] + side.pools(n_d, 1 - share),
        pd_ratio=ratio, kv_transfer_ms=pp_["kv_transfer_ms"], binding=why.binding, binding_detail=why.detail,
        **traffic_fields(m, traffic, side.mapping["kv_precision"], tier.name),
    )


def _decode_side(m, chip, traffic, space, max_chips, fidelity, system, framework) -> DecodeSide:
    """The best decode pool (`mapping.modes.decode_pool`) under the TPOT limit."""
    eff = efficiency_of(chip, m, framework)
    d_max = max_chips or (WIDE_EP_MAX_CHIPS if m.is_moe else 64)
    dec = modes.decode_pool(m, chip, system or SystemSpec.for_chip(chip), eff, traffic, space, d_max, fidelity)
    dc = modes.choose_under(dec.arrays, "output_tok_s_per_chip", dec.arrays["tpot_ms"], traffic.slo_tpot_ms)
    if dc.index is None:
        raise _no_fit(m, chip, dec, "decode")
    d = dec.point(dc.index)
    prec, kv = dec.precisions[d["prec"]], dec.kv_precisions[d["prec"]]
    rate, step = float(d["output_tok_s_per_chip"]), float(d["decode_step_ms"])
    used = d["weights_gb"] + d["kv_cache_gb"] + d["activations_gb"] + d["free_gb"]

    def pools(n_d: int, share: float) -> list[dict]:
        return [{"role": "decode", "chip": chip.id, "num_chips": d["num_chips"], "instances": n_d,
                 "tp": d["tp"], "pp": d["pp"], "ep": d["ep"], "dp": d["dp"], "batch": d["batch"],
                 "weight_precision": prec, "kv_precision": kv, "output_tok_s_per_chip": rate,
                 "decode_step_ms": step, "chip_share": share, "bound": BOUND_NAMES[d["bound"]],
                 "weights_gb": d["weights_gb"]}]

    return DecodeSide(
        rate=rate, chips=d["num_chips"], step_ms=step, tpot_ms=d["tpot_ms"], meets_slo=dc.meets_slo, pools=pools,
        mapping={"tp": d["tp"], "pp": d["pp"], "ep": d["ep"], "dp": d["dp"], "batch": d["batch"],
                 "concurrency": d["batch"] * d["dp"], "weight_precision": prec, "kv_precision": kv},
        memory=MemoryBreakdown(weights=d["weights_gb"], kv_cache=d["kv_cache_gb"], activations=d["activations_gb"],
                               reserve=memory.capacity_gb(chip.hbm_gb) - used, free=d["free_gb"], capacity=memory.capacity_gb(chip.hbm_gb)),
        bound=BOUND_NAMES[d["bound"]], breakdown_ms=_ms(dec.extras["decode_times"], dc.index), chip_ids=(chip.id,),
        spec_confidence=chip.spec_confidence, efficiency_source=efficiency_source(eff, m, chip, prec),
        why=explain.decode_pool(dec, dc.index, dc.meets_slo, traffic.slo_tpot_ms),
        units=op_unit_names(dec.extras["decode_times"], dc.index))


def _af_side(m, attn_chip, ffn_chip, traffic, space, framework) -> DecodeSide:
    """The best attention-FFN split decode (`mapping.af`) under the TPOT limit."""
    from tokenfab.mapping import af
    if not m.is_moe:
        raise SpecError(f"{m.id} has no experts: attention-FFN disaggregation needs a MoE model")
    a_eff, f_eff = efficiency_of(attn_chip, m, framework), efficiency_of(ffn_chip, m, framework)
    dec = af.af_decode(m, attn_chip, ffn_chip, traffic, a_eff, f_eff, precisions=space.precisions,
                       kv_precision=space.kv_precision, batches=space.batch,
                       latency_us=a_eff.scaleout_latency_us, attention_precision=space.attention_precision)
    dc = modes.choose_under(dec.arrays, "output_tok_s_per_chip", dec.arrays["tpot_ms"], traffic.slo_tpot_ms)
    if dc.index is None:
        raise SpecError(f"{m.id} does not fit attention-FFN pools of {attn_chip.id} and {ffn_chip.id}")
    d = dec.point(dc.index)
    prec, kv = dec.precisions[d["prec"]], dec.kv_precisions[d["prec"]]
    rate, step = float(d["output_tok_s_per_chip"]), float(d["decode_step_ms"])
    sides = {"memory": d["attention_ms"], "compute": d["experts_ms"], "communication": d["alltoall_ms"]}

    def pools(n_d: int, share: float) -> list[dict]:
        a_share = share * d["attention_share"]
        common = {"instances": n_d, "tp": 1, "pp": 1, "weight_precision": prec, "kv_precision": kv,
                  "output_tok_s_per_chip": rate, "decode_step_ms": step}
        return [{"role": "attention", "chip": attn_chip.id, "num_chips": d["attention_chips"], "ep": 1,
                 "dp": d["attention_chips"], "batch": d["batch"], "chip_share": a_share, "step_ms": d["attention_ms"],
                 "weights_gb": d["weights_gb"], **common},
                {"role": "ffn", "chip": ffn_chip.id, "num_chips": d["expert_chips"], "ep": d["expert_chips"], "dp": 1,
                 "batch": d["batch"] * d["attention_chips"], "chip_share": share - a_share, "step_ms": d["experts_ms"],
                 "alltoall_ms": d["alltoall_ms"], "weights_gb": d["expert_weights_gb"], **common}]

    cap = memory.capacity_gb(attn_chip.hbm_gb)
    return DecodeSide(
        rate=rate, chips=d["num_chips"], step_ms=step, tpot_ms=d["tpot_ms"], meets_slo=dc.meets_slo, pools=pools,
        mapping={"tp": 1, "pp": 1, "ep": d["expert_chips"], "dp": d["attention_chips"], "batch": d["batch"],
                 "concurrency": d["batch"] * d["attention_chips"], "weight_precision": prec, "kv_precision": kv},
        memory=MemoryBreakdown(weights=d["weights_gb"], kv_cache=d["kv_cache_gb"], activations=0.0,
                               reserve=cap - d["weights_gb"] - d["kv_cache_gb"] - d["free_gb"], free=d["free_gb"],
                               capacity=cap),
        bound=max(sides, key=sides.get),
        breakdown_ms={"attention_side": d["attention_ms"], "expert_side": d["experts_ms"],
                      "attention_expert_alltoall": d["alltoall_ms"]},
        chip_ids=(attn_chip.id, ffn_chip.id),
        spec_confidence=_worst(attn_chip.spec_confidence, ffn_chip.spec_confidence),
        efficiency_source=efficiency_source(a_eff, m, attn_chip, prec),
        why=explain.af_decode(dec, dc.index, dc.meets_slo, traffic.slo_tpot_ms))


def _prefill(m, prefill_chip, traffic, space, max_chips, fidelity, tier, system, link_gb_s, d_step_ms, framework=None):
    """(prefill grid, its chosen point, efficiency) for a decode step of `d_step_ms` after the prefill."""
    p_sys = system or SystemSpec.for_chip(prefill_chip)
    p_eff = efficiency_of(prefill_chip, m, framework)
    p_max = min(max_chips or PREFILL_MAX_CHIPS, PREFILL_MAX_CHIPS)
    p_space = SearchSpace(precisions=space.precisions, kv_precision=space.kv_precision,
                          attention_precision=space.attention_precision, overlap=space.overlap,
                          prefill_chunk_tokens=space.prefill_chunk_tokens)
    pre = modes.prefill_pool(m, prefill_chip, p_sys, p_eff, traffic, p_space, p_max, tier, link_gb_s, fidelity)
    pc = modes.choose_under(pre.arrays, "input_tok_s_per_chip", pre.arrays["ttft_ms"] + d_step_ms, traffic.slo_ttft_ms)
    if pc.index is None:
        raise _no_fit(m, prefill_chip, pre, "prefill")
    return pre, pc, p_eff


def _prefill_entry(pre, pp_, chip, n_p, P, share) -> dict:
    return {"role": "prefill", "chip": chip.id, "num_chips": pp_["num_chips"], "instances": n_p,
            "tp": pp_["tp"], "pp": pp_["pp"], "ep": pp_["ep"], "dp": pp_["dp"], "cp": pp_["cp"], "batch": pp_["batch"],
            "weight_precision": pre.precisions[pp_["prec"]], "kv_precision": pre.kv_precisions[pp_["prec"]],
            "input_tok_s_per_chip": P, "prefill_ms": pp_["prefill_ms"], "cache_read_ms": pp_["cache_read_ms"],
            "chip_share": share, "bound": BOUND_NAMES[pp_["bound"]], "weights_gb": pp_["weights_gb"]}


def _ms(times, i: int) -> dict[str, float]:
    return {t.name: float(np.asarray(t.seconds)[i] if np.ndim(t.seconds) else t.seconds) * 1e3 for t in times}


def _worst(a: str, b: str) -> str:
    return a if a != "datasheet" else b


def _no_fit(m: ModelSpec, chip: ChipSpec, result, role: str) -> SpecError:
    a = result.arrays
    if len(a["tp"]) == 0:
        return SpecError(f"no valid {role} mapping of {m.id} on {chip.id} with the given tp/pp/ep")
    i = int((-a["free_gb"]).argmin())
    return SpecError(f"{m.id} does not fit a {role} pool of {chip.id}: the best mapping tried "
                     f"({int(a['num_chips'][i])} chips, tp={int(a['tp'][i])}) needs {-a['free_gb'][i]:.1f} GB more "
                     f"per chip than the {chip.hbm_gb:g} GB chip leaves free for one prompt")
