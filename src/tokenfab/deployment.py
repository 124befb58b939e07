"""Disaggregated deployments as `api.Estimate`s: the best prefill pool and decode pool for a
traffic (on one chip type or two), balanced, with TTFT including the KV-cache transfer.

The engine half (pool grids, the P:D balance, the whole-instance unit) is `mapping.modes`; this
module picks the points and reports them as pools. It sits beside `api` (it builds its types).
"""

from __future__ import annotations

import numpy as np

from tokenfab.api import BOUND_NAMES, Estimate, MemoryBreakdown, efficiency_of, traffic_fields
from tokenfab.mapping import modes
from tokenfab.mapping.search import SearchSpace
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, Traffic
from tokenfab.specs.cache import KV_TIERS

PREFILL_MAX_CHIPS = 64
"""Largest prefill instance the search tries (DeepSeek's prefill unit: 32 H800s, EP32)."""


def disaggregated(m: ModelSpec, prefill_chip: ChipSpec, decode_chip: ChipSpec, traffic: Traffic,
                  space: SearchSpace, max_chips: int | None, fidelity: str, kv_tier: str = "ssd",
                  system: SystemSpec | None = None, ffn_chip: ChipSpec | None = None,
                  framework: str | None = None) -> Estimate:
    """The best disaggregated deployment; `space` fixes the decode pool's mapping where set (its
    precision applies to both pools). With `ffn_chip`, the decode pool is split into attention
    chips (`decode_chip`) and expert chips (`ffn_chip`): attention-FFN disaggregation
    (`mapping.af`). Raises SpecError when either pool cannot hold the model."""
    if ffn_chip is not None:
        return _af(m, prefill_chip, decode_chip, ffn_chip, traffic, space, max_chips, fidelity, kv_tier, system,
                   framework)
    tier = KV_TIERS[kv_tier]
    d_sys = system or SystemSpec.for_chip(decode_chip)
    d_eff = efficiency_of(decode_chip, m, framework)
    d_max = max_chips or (modes_wide_max() if m.is_moe else 64)
    dec = modes.decode_pool(m, decode_chip, d_sys, d_eff, traffic, space, d_max, fidelity)
    dc = modes.choose_under(dec.arrays, "output_tok_s_per_chip", dec.arrays["tpot_ms"], traffic.slo_tpot_ms)
    if dc.index is None:
        raise _no_fit(m, decode_chip, dec, "decode")
    di = dc.index
    d_step_ms = float(dec.arrays["decode_step_ms"][di])
    link_gb_s = min(prefill_chip.scaleout_gb_s, decode_chip.scaleout_gb_s)
    pre, pc, p_eff = _prefill(m, prefill_chip, traffic, space, max_chips, fidelity, tier, system, link_gb_s, d_step_ms,
                              framework)
    pi = pc.index
    P, D = float(pre.arrays["input_tok_s_per_chip"][pi]), float(dec.arrays["output_tok_s_per_chip"][di])
    isl, osl = float(traffic.input_len), float(traffic.output_len)
    ratio, out_per_chip = modes.balance(isl, osl, P, D)
    pp_, dp_ = pre.point(pi), dec.point(di)
    n_p, n_d, unit_eff = modes.integer_unit(ratio, pp_["num_chips"], dp_["num_chips"])
    share = ratio / (1 + ratio)
    pools = [
        _prefill_entry(pre, pp_, prefill_chip, n_p, P, share),
        {"role": "decode", "chip": decode_chip.id, "num_chips": dp_["num_chips"], "instances": n_d,
         "tp": dp_["tp"], "pp": dp_["pp"], "ep": dp_["ep"], "dp": dp_["dp"], "batch": dp_["batch"],
         "weight_precision": dec.precisions[dp_["prec"]], "kv_precision": dec.kv_precisions[dp_["prec"]],
         "output_tok_s_per_chip": D, "decode_step_ms": d_step_ms, "chip_share": 1 - share,
         "bound": BOUND_NAMES[dp_["bound"]], "weights_gb": dp_["weights_gb"]},
    ]
    cap = decode_chip.hbm_gb
    used = dp_["weights_gb"] + dp_["kv_cache_gb"] + dp_["activations_gb"] + dp_["free_gb"]
    breakdown = {"decode": _ms(dec.extras["decode_times"], di), "prefill": _ms(pre.extras["prefill_times"], pi)}
    kv_name = dec.kv_precisions[dp_["prec"]]
    return Estimate(
        model=m.id, chip=decode_chip.id if decode_chip.id == prefill_chip.id else f"{prefill_chip.id}+{decode_chip.id}",
        num_chips=n_p * pp_["num_chips"] + n_d * dp_["num_chips"], tp=dp_["tp"], pp=dp_["pp"], ep=dp_["ep"],
        dp=dp_["dp"], batch=dp_["batch"], concurrency=dp_["batch"] * dp_["dp"],
        weight_precision=dec.precisions[dp_["prec"]], kv_precision=kv_name,
        input_len=traffic.input_len, output_len=traffic.output_len,
        ttft_ms=pp_["ttft_ms"] + d_step_ms, tpot_ms=dp_["tpot_ms"], decode_step_ms=d_step_ms,
        prefill_ms=pp_["prefill_ms"], output_tok_s_per_chip=out_per_chip,
        input_tok_s_per_chip=out_per_chip * isl / osl, total_tok_s_per_chip=out_per_chip * (1 + isl / osl),
        prefill_time_share=share,
        memory_gb_per_chip=MemoryBreakdown(weights=dp_["weights_gb"], kv_cache=dp_["kv_cache_gb"],
                                           activations=dp_["activations_gb"], reserve=cap - used,
                                           free=dp_["free_gb"], capacity=cap),
        bound={"prefill": BOUND_NAMES[pp_["bound"]], "decode": BOUND_NAMES[dp_["bound"]]},
        meets_slo=pc.meets_slo and dc.meets_slo, slo_ttft_ms=traffic.slo_ttft_ms, slo_tpot_ms=traffic.slo_tpot_ms,
        spec_confidence=_worst(prefill_chip.spec_confidence, decode_chip.spec_confidence),
        efficiency_source=d_eff.source if prefill_chip.id == decode_chip.id
        else f"prefill: {p_eff.source}; decode: {d_eff.source}",
        fidelity=fidelity, time_breakdown_ms=breakdown, mode="disaggregated", pools=pools, pd_ratio=ratio,
        kv_transfer_ms=pp_["kv_transfer_ms"], **traffic_fields(m, traffic, kv_name, tier.name),
    )


def _prefill(m, prefill_chip, traffic, space, max_chips, fidelity, tier, system, link_gb_s, d_step_ms, framework=None):
    """(prefill grid, its chosen point) for a decode step of `d_step_ms` after the prefill."""
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


def _af(m, prefill_chip, attn_chip, ffn_chip, traffic, space, max_chips, fidelity, kv_tier, system,
        framework=None) -> Estimate:
    """Prefill pool + attention-FFN disaggregated decode (`mapping.af`)."""
    from tokenfab.mapping import af
    tier = KV_TIERS[kv_tier]
    a_eff = efficiency_of(attn_chip, m, framework)
    f_eff = efficiency_of(ffn_chip, m, framework)
    if not m.is_moe:
        raise SpecError(f"{m.id} has no experts: attention-FFN disaggregation needs a MoE model")
    dec = af.af_decode(m, attn_chip, ffn_chip, traffic, a_eff, f_eff, precisions=space.precisions,
                       kv_precision=space.kv_precision, batches=space.batch,
                       latency_us=a_eff.scaleout_latency_us, attention_precision=space.attention_precision)
    dc = modes.choose_under(dec.arrays, "output_tok_s_per_chip", dec.arrays["tpot_ms"], traffic.slo_tpot_ms)
    if dc.index is None:
        raise SpecError(f"{m.id} does not fit attention-FFN pools of {attn_chip.id} and {ffn_chip.id}")
    dp_ = dec.point(dc.index)
    d_step_ms = dp_["decode_step_ms"]
    link = min(prefill_chip.scaleout_gb_s, attn_chip.scaleout_gb_s)
    pre, pc, p_eff = _prefill(m, prefill_chip, traffic, space, max_chips, fidelity, tier, system, link, d_step_ms,
                              framework)
    pp_ = pre.point(pc.index)
    P, D = pp_["input_tok_s_per_chip"], dp_["output_tok_s_per_chip"]
    isl, osl = float(traffic.input_len), float(traffic.output_len)
    ratio, out_per_chip = modes.balance(isl, osl, P, D)
    n_p, n_d, _ = modes.integer_unit(ratio, pp_["num_chips"], dp_["num_chips"])
    share = ratio / (1 + ratio)
    prec, kv_name = dec.precisions[dp_["prec"]], dec.kv_precisions[dp_["prec"]]
    a_share = (1 - share) * dp_["attention_share"]
    pools = [
        _prefill_entry(pre, pp_, prefill_chip, n_p, P, share),
        {"role": "attention", "chip": attn_chip.id, "num_chips": dp_["attention_chips"], "instances": n_d,
         "tp": 1, "pp": 1, "ep": 1, "dp": dp_["attention_chips"], "batch": dp_["batch"], "weight_precision": prec,
         "kv_precision": kv_name, "output_tok_s_per_chip": D, "decode_step_ms": d_step_ms, "chip_share": a_share,
         "step_ms": dp_["attention_ms"], "weights_gb": dp_["weights_gb"]},
        {"role": "ffn", "chip": ffn_chip.id, "num_chips": dp_["expert_chips"], "instances": n_d, "tp": 1, "pp": 1,
         "ep": dp_["expert_chips"], "dp": 1, "batch": dp_["batch"] * dp_["attention_chips"], "weight_precision": prec,
         "kv_precision": kv_name, "output_tok_s_per_chip": D, "decode_step_ms": d_step_ms,
         "chip_share": (1 - share) - a_share, "step_ms": dp_["experts_ms"], "alltoall_ms": dp_["alltoall_ms"],
         "weights_gb": dp_["expert_weights_gb"]},
    ]
    cap = attn_chip.hbm_gb
    names = {attn_chip.id, ffn_chip.id, prefill_chip.id}
    return Estimate(
        model=m.id, chip="+".join(dict.fromkeys((prefill_chip.id, attn_chip.id, ffn_chip.id))) if len(names) > 1
        else attn_chip.id,
        num_chips=n_p * pp_["num_chips"] + n_d * dp_["num_chips"], tp=1, pp=1, ep=dp_["expert_chips"],
        dp=dp_["attention_chips"], batch=dp_["batch"], concurrency=dp_["batch"] * dp_["attention_chips"],
        weight_precision=prec, kv_precision=kv_name, input_len=traffic.input_len, output_len=traffic.output_len,
        ttft_ms=pp_["ttft_ms"] + d_step_ms, tpot_ms=dp_["tpot_ms"], decode_step_ms=d_step_ms,
        prefill_ms=pp_["prefill_ms"], output_tok_s_per_chip=out_per_chip, input_tok_s_per_chip=out_per_chip * isl / osl,
        total_tok_s_per_chip=out_per_chip * (1 + isl / osl), prefill_time_share=share,
        memory_gb_per_chip=MemoryBreakdown(weights=dp_["weights_gb"], kv_cache=dp_["kv_cache_gb"], activations=0.0,
                                           reserve=cap - dp_["weights_gb"] - dp_["kv_cache_gb"] - dp_["free_gb"],
                                           free=dp_["free_gb"], capacity=cap),
        bound={"prefill": BOUND_NAMES[pp_["bound"]], "decode": "memory" if dp_["attention_ms"] >= max(
            dp_["experts_ms"], dp_["alltoall_ms"]) else ("compute" if dp_["experts_ms"] >= dp_["alltoall_ms"]
                                                         else "communication")},
        meets_slo=pc.meets_slo and dc.meets_slo, slo_ttft_ms=traffic.slo_ttft_ms, slo_tpot_ms=traffic.slo_tpot_ms,
        spec_confidence=_worst(_worst(prefill_chip.spec_confidence, attn_chip.spec_confidence), ffn_chip.spec_confidence),
        efficiency_source=a_eff.source, fidelity=fidelity,
        time_breakdown_ms={"prefill": _ms(pre.extras["prefill_times"], pc.index),
                           "decode": {"attention_side": dp_["attention_ms"], "expert_side": dp_["experts_ms"],
                                      "attention_expert_alltoall": dp_["alltoall_ms"]}},
        mode="af-disaggregated", pools=pools, pd_ratio=ratio, kv_transfer_ms=pp_["kv_transfer_ms"],
        **traffic_fields(m, traffic, kv_name, tier.name))


def _prefill_entry(pre, pp_, chip, n_p, P, share) -> dict:
    return {"role": "prefill", "chip": chip.id, "num_chips": pp_["num_chips"], "instances": n_p,
            "tp": pp_["tp"], "pp": pp_["pp"], "ep": pp_["ep"], "dp": pp_["dp"], "cp": pp_["cp"], "batch": pp_["batch"],
            "weight_precision": pre.precisions[pp_["prec"]], "kv_precision": pre.kv_precisions[pp_["prec"]],
            "input_tok_s_per_chip": P, "prefill_ms": pp_["prefill_ms"], "cache_read_ms": pp_["cache_read_ms"],
            "chip_share": share, "bound": BOUND_NAMES[pp_["bound"]], "weights_gb": pp_["weights_gb"]}


def modes_wide_max() -> int:
    from tokenfab.api import WIDE_EP_MAX_CHIPS
    return WIDE_EP_MAX_CHIPS


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
