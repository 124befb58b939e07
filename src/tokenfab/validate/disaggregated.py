"""Rows measured on separate prefill and decode pools at a stated concurrency, and rows with MTP.

What a row states in its notes (machine-readable phrases, as `deployments.csv` writes them):
- the pools: `prefill pool N GPUs` and `decode pool M GPUs` (optionally `with EP=E`: decode
  instances of E chips, data-parallel attention over them; otherwise one instance of M chips);
- MTP / speculative decoding: `MTP=K` or `num_nextn_predict_layers K` (K draft tokens),
  `MTP on` (draft length not stated: one draft token, DeepSeek's own setting), `MTP off`;
  the acceptance as `mean acceptance X tokens/step` (tokens a step emits) — else the default
  per-draft acceptance (`api.DEFAULT_MTP_ACCEPTANCE`, DeepSeek-V3 report), said in the detail.

At a concurrency C on P prefill chips and D decode chips, requests flow at
X = min(prefill capacity, C / (TTFT + osl × TPOT)): the decode pool holds the C sequences spread
over its data-parallel ranks, its TPOT is its pure decode step at that batch (no prompt shares a
decode step) over the tokens a step emits; the prefill pool's capacity is its chips' input
tokens/s over the prompt length (`mapping.modes`). TTFT is one prompt's prefill (latency) plus
the KV transfer and one decode step, plus the framework profile's host path (API server, proxy,
tokenization: `validate.operating_point.host_path_s`) once per API server the request passes
through in turn (`FrameworkProfile.pd_host_passes`).
"""

from __future__ import annotations

import re

import numpy as np

from tokenfab.graph.speculative import tokens_per_step
from tokenfab.mapping import modes
from tokenfab.mapping.search import SearchSpace
from tokenfab.perf.framework import profile_for
from tokenfab.specs import SystemSpec, Traffic
from tokenfab.validate.micro import Unpredictable
from tokenfab.validate.operating_point import host_note, host_path_s

_PREFILL = re.compile(r"prefill pool (\d+) (?:GPUs?|NPUs?|chips?)", re.I)
_DECODE = re.compile(r"decode pool (\d+) (?:GPUs?|NPUs?|chips?)(?: with EP ?= ?(\d+))?", re.I)
_MTP_K = re.compile(r"(?:\bMTP ?= ?|num_nextn_predict_layers )(\d+)", re.I)
_MTP_ON = re.compile(r"\bMTP on\b", re.I)
_MTP_OFF = re.compile(r"\bMTP (?:off|=0)\b", re.I)
_ACCEPT = re.compile(r"mean acceptance ([0-9.]+) tokens/step", re.I)


def acceptance_for(tokens_per_step: float, draft_tokens: int) -> float:
    """Per-draft acceptance a whose 1 + a + ... + a^k equals the stated tokens per step (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        a = (lo + hi) / 2
        if sum(a ** i for i in range(draft_tokens + 1)) < tokens_per_step:
            lo = a
        else:
            hi = a
    return (lo + hi) / 2


def mtp_from_notes(notes: str) -> tuple[int, float, str]:
    """(draft tokens, per-draft acceptance, how it was read) from a row's notes; (0, 0, '') if none."""
    from tokenfab.api import DEFAULT_MTP_ACCEPTANCE
    text = notes or ""
    if _MTP_OFF.search(text) or re.search(r"\b(?:without|no) MTP\b", text, re.I):
        return 0, 0.0, "MTP off"
    m = _MTP_K.search(text)
    if m and int(m.group(1)) > 0:
        k = int(m.group(1))
    elif _MTP_ON.search(text):
        k = 1
    else:
        return 0, 0.0, ""
    acc = _ACCEPT.search(text)
    if acc:
        a = acceptance_for(float(acc.group(1)), k)
        return k, a, f"MTP {k} draft(s), stated {float(acc.group(1)):g} tokens/step (a={a:.2f})"
    guessed = "" if m else " (draft length not stated: 1 assumed)"
    return k, DEFAULT_MTP_ACCEPTANCE, f"MTP {k} draft(s){guessed}, acceptance {DEFAULT_MTP_ACCEPTANCE:g} assumed"


def with_row_mtp(traffic: Traffic, notes: str) -> tuple[Traffic, str]:
    """The traffic with the row's MTP setting, and a phrase for the detail."""
    k, a, how = mtp_from_notes(notes)
    if not k:
        return traffic, how
    return traffic.model_copy(update={"draft_tokens": k, "draft_acceptance": a}), how


def pools_from_notes(notes: str) -> tuple[int, int, int | None] | None:
    """(prefill chips, decode chips, decode EP) a row states, or None."""
    p, d = _PREFILL.search(notes or ""), _DECODE.search(notes or "")
    if not (p and d):
        return None
    return int(p.group(1)), int(d.group(1)), (int(d.group(2)) if d.group(2) else None)


def predict_pools_at_concurrency(row, model, chip, traffic: Traffic, concurrency: int, precisions, eff,
                                 mtp_note: str) -> tuple[dict, str]:
    """System throughput (req/s, tokens/s) and mean TTFT/TPOT (ms) of the row's stated pools."""
    pools = pools_from_notes(row.notes)
    if pools is None:
        raise Unpredictable("disaggregated row without its pools ('prefill pool N GPUs', 'decode pool M GPUs')")
    n_p, n_d, ep = pools
    inst = ep or n_d
    if n_d % inst:
        raise Unpredictable(f"decode pool of {n_d} chips is not whole instances of EP{inst}")
    system = SystemSpec.for_chip(chip)
    isl, osl = float(traffic.input_len), float(traffic.output_len)
    # Decode: each instance holds its share of the sequences, data-parallel attention over its chips.
    per_chip = concurrency / n_d
    # Per-rank batches around the stated load for each TP degree a rank may span.
    batches = tuple(sorted({max(int(f(per_chip * t)), 1) for t in (1, 2, 4, 8) for f in (np.floor, np.ceil)}))
    d_space = SearchSpace(num_chips=(inst,), tp=(row.tp,) if row.tp else None, ep=(inst,) if model.is_moe and inst > 1
                          else None, batch=batches, precisions=tuple(precisions), kv_precision=row.kv_precision)
    dec = modes.decode_pool(model, chip, system, eff, traffic, d_space, inst)
    a = dec.arrays
    ok = a["fits"]
    if not ok.any():
        raise Unpredictable(f"no decode instance of {inst} chips holds {per_chip:.0f} sequences per chip")
    # Interpolate the step time at the exact per-rank batch, per layout; take the fastest layout.
    best = None
    for key in {(int(a["tp"][i]), int(a["pp"][i]), int(a["prec"][i])) for i in np.flatnonzero(ok)}:
        sel = np.flatnonzero(ok & (a["tp"] == key[0]) & (a["pp"] == key[1]) & (a["prec"] == key[2]))
        b = a["batch"][sel].astype(float) * a["dp"][sel] / inst  # sequences per chip
        order = np.argsort(b)
        step = float(np.interp(per_chip, b[order], a["decode_step_ms"][sel][order]))
        if best is None or step < best[0]:
            best = (float(step), key, int(sel[0]))
    step_ms, (tp, pp, prec), i = best
    tpot_ms = step_ms / tokens_per_step(traffic.draft_tokens, traffic.draft_acceptance)
    # Prefill: the best pool point on the stated chips (capacity; one prompt's latency).
    from tokenfab.specs.cache import KV_TIERS
    # A forward holds at most the prompts in flight; a stated TP applies to the prefill pool too.
    prompts = tuple(k for k in modes.PROMPTS_PER_FORWARD if k <= max(concurrency, 1))
    p_space = SearchSpace(num_chips=(n_p,), tp=(row.tp,) if row.tp and n_p % row.tp == 0 else None, batch=prompts,
                          precisions=tuple(precisions), kv_precision=row.kv_precision)
    pre = modes.prefill_pool(model, chip, system, eff, traffic, p_space, n_p, KV_TIERS["ssd"], chip.scaleout_gb_s)
    pa = pre.arrays
    if not pa["fits"].any():
        raise Unpredictable(f"the model does not fit a prefill pool of {n_p} chips")
    j = int(np.argmax(np.where(pa["fits"], pa["input_tok_s_per_chip"], -np.inf)))
    p_cap = float(pa["input_tok_s_per_chip"][j]) * n_p / isl  # requests/s
    # API server, proxy, tokenization: outside both pools, once per server the request passes
    # through in turn (the framework's `pd_host_passes`: vLLM's proxy asks prefill, then decode).
    host_s = host_path_s(row, chip, isl) * profile_for(row.framework, chip.vendor).pd_host_passes
    ttft_ms = float(pa["ttft_ms"][j]) + step_ms + host_s * 1e3
    x_decode = concurrency / (ttft_ms * 1e-3 + osl * tpot_ms * 1e-3)
    x = min(p_cap, x_decode)
    if x < x_decode:  # prefill-bound: the extra sequences wait for their prompts
        ttft_ms = concurrency / x * 1e3 - osl * tpot_ms
    values = {"requests_s": x, "output_tok_s": x * osl, "input_tok_s": x * isl, "total_tok_s": x * (isl + osl),
              "ttft": ttft_ms, "tpot": tpot_ms, "e2e": ttft_ms + (osl - 1) * tpot_ms}
    detail = (f"stated: concurrency {concurrency}, prefill pool {n_p} chips, decode pool {n_d} chips"
              f"{f' (EP{ep} instances)' if ep else ''}{'; ' + mtp_note if mtp_note else ''}; searched: prefill "
              f"tp{int(pa['tp'][j])} ep{int(pa['ep'][j])} dp{int(pa['dp'][j])}, decode {dec.precisions[prec]} tp{tp} pp{pp}; "
              f"{x:.3g} req/s ({'prefill' if x < x_decode else 'decode'}-bound), TTFT {ttft_ms:.0f} ms{host_note(host_s)}, TPOT {tpot_ms:.1f} ms")
    return values, detail
