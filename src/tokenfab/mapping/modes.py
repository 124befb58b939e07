"""Deployment modes: prefill/decode disaggregation, on one chip type or two.

Aggregated serving (`search.evaluate`) runs prefill and decode on the same chips, so every
decode step shares its chip with the prompts being admitted. A disaggregated deployment runs
two pools, each with its own parallelism, batch and precision:

- the **prefill pool** runs forwards of `k` prompts' uncached tokens (prefix-cache hits are read
  from a KV tier below HBM, `specs.cache.KVTier`, and attended to, not recomputed) and sends
  each prompt's KV cache to the decode pool over the network between them;
- the **decode pool** runs decode steps only (with speculative decoding / MTP and the
  two-micro-batch overlap of wide expert parallelism where the search picks them).

Per request, the fleet spends `isl / P` prefill-chip-seconds and `osl / D` decode-chip-seconds,
with P the prefill pool's input tokens/s per chip (cache hits included) and D the decode pool's
output tokens/s per chip. The P:D chip ratio that balances the two pools is their quotient, and
the fleet's output tokens/s per chip of any kind is `osl / (isl/P + osl/D)`. Both are monotone
in P and D, so the best pair is the best prefill point under the TTFT limit with the best decode
point under the TPOT limit, chosen independently. TTFT = the prompt's prefill (latency through
its chunk) + the cache tier read of its hits + the KV transfer + one decode step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import numpy as np

from tokenfab.mapping import memory
from tokenfab.mapping.search import GridResult, Prepared, SearchSpace, decode_step, prefill_chunk, prepare
from tokenfab.perf import comm
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.evaluate import bound_shares
from tokenfab.specs import ChipSpec, ModelSpec, SystemSpec, Traffic
from tokenfab.specs.cache import KVTier

PROMPTS_PER_FORWARD = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
"""Prompts one prefill forward may hold (the pool's batch axis); a forward holds as many as fit
its token budget (`memory.PREFILL_CHUNK_TOKENS`), a prompt longer than it runs alone."""


@dataclass(frozen=True)
class Choice:
    index: int | None
    meets_slo: bool


def kv_transfer_s(model: ModelSpec, tokens, kv_bytes, senders, gb_s: float, latency_us: float) -> np.ndarray:
    """Seconds to send one request's KV cache of `tokens` tokens (all layers; MLA's latent once,
    GQA's KV heads once) from the prefill pool to the decode pool: `senders` chips send their
    shares in parallel, each over its own link of `gb_s` GB/s; plus one network latency.
    (Sending layer by layer while the prefill runs would hide most of it: this is the upper bound
    a request waits with no overlap.)"""
    total = memory.kv_bytes_per_sequence(model, 1.0, 1.0, np.asarray(tokens, float), kv_bytes)
    return latency_us * 1e-6 + total / (np.asarray(senders, float) * gb_s * 1e9)


CP_DEGREES = (1, 2, 4, 8, 16)
"""Context-parallel degrees a prompt longer than one forward's token budget may be split over."""


def prefill_pool(model: ModelSpec, chip: ChipSpec, system: SystemSpec, eff: Efficiency, traffic: Traffic,
                 space: SearchSpace, max_chip_count: int, tier: KVTier, link_gb_s: float,
                 fidelity: str = "roofline") -> GridResult:
    """Every prefill-pool point: input tokens/s per chip (cache hits included), prompt latency
    and memory. The batch axis is the number of prompts per forward; a prompt longer than the
    token budget may also be split over `cp` of the data-parallel ranks (context parallelism:
    1/cp of the tokens each, the prompt's KV all-gathered among them layer by layer), which cuts
    its TTFT at some cost in throughput (the `cp` array says which)."""
    space = replace(space, batch=space.batch or PROMPTS_PER_FORWARD)
    p = prepare(model, chip, system, eff, traffic, space, max_chip_count, fidelity)
    budget = space.prefill_chunk_tokens or memory.PREFILL_CHUNK_TOKENS
    new = max(p.isl * (1 - traffic.prefix_cache_hit), 1.0)
    degrees = [cp for cp in CP_DEGREES if cp == 1 or new > budget]
    parts = [_prefill_points(p, chip, traffic, tier, link_gb_s, budget, new, cp) for cp in degrees]
    arrays = {key: np.concatenate([a[key] for a, _ in parts]) for key in parts[0][0]}
    def joined(i: int, field: str):
        return np.concatenate([np.broadcast_to(getattr(ts[i], field), a["tp"].shape) for a, ts in parts])

    # Every per-point field joins the context-parallel parts (the unit codes too: a part's own array
    # alone would no longer line up with the joined seconds).
    times = [dataclasses.replace(t, seconds=joined(i, "seconds"), bound=joined(i, "bound"),
                                 unit=None if t.unit is None else joined(i, "units"))
             for i, t in enumerate(parts[0][1])]
    out = GridResult(arrays, p.precisions, p.kv_names)
    out.extras = {"prefill_times": times}
    return out


def _prefill_points(p: Prepared, chip: ChipSpec, traffic: Traffic, tier: KVTier, link_gb_s: float, budget: float,
                    new: float, cp: int) -> tuple[dict, list]:
    model, eff = p.model, p.eff
    k = p.batch
    t_chunk, t_pipe, times = prefill_chunk(p, new, k, cp)
    valid = (k == 1) | (k * new <= budget)  # a forward holds what its budget admits; a long prompt runs alone
    if cp > 1:
        # Each rank gathers the others' share of the prompt's KV for every layer (ring attention
        # would hide part of it behind the attention compute: counted in full here).
        per_layer = p.isl * memory.kv_bytes_per_sequence(model, p.tp, 1.0, 1.0, p.kv_bytes) / model.num_layers
        gather = model.num_layers / p.pp * comm.allgather_time_s(per_layer, cp, p.system, eff)
        t_chunk, t_pipe = t_chunk + gather, t_pipe + gather
        valid &= (k == 1) & (p.dp % cp == 0)
    # Cache hits come from the tier into HBM while the forward runs (overlapped across forwards).
    hit_bytes = k * memory.kv_bytes_per_sequence(model, p.tp, p.pp, p.isl - new, p.kv_bytes) * (p.isl > new) / cp
    t_load = hit_bytes / (tier.read_gb_s_per_chip * 1e9)
    t_cycle = np.maximum(t_pipe, t_load)
    weights = memory.weight_bytes_per_chip(model, p.tp, p.pp, p.ep, p.dp, p.w_bytes)
    kv = k * memory.kv_bytes_per_sequence(model, p.tp, p.pp, p.isl, p.kv_bytes)
    act = memory.activation_bytes(model, p.tp, k, p.isl, p.a_bytes, usable=memory.usable_bytes(chip.hbm_gb))
    free = memory.usable_bytes(chip.hbm_gb) - weights - kv - act
    transfer = kv_transfer_s(model, p.isl, p.kv_bytes, p.tp * p.pp * cp, link_gb_s, eff.scaleout_latency_us)
    n = p.grid["num_chips"].astype(float)
    arrays = dict(p.grid)
    arrays.update(
        cp=np.full_like(p.grid["tp"], cp),
        weights_gb=weights / 1e9, kv_cache_gb=kv / 1e9, activations_gb=act / 1e9, free_gb=free / 1e9,
        fits=(free >= 0) & valid,
        prefill_ms=t_chunk * 1e3, cache_read_ms=t_load / np.maximum(k, 1.0) * 1e3, kv_transfer_ms=transfer * 1e3,
        ttft_ms=(t_chunk + t_load / np.maximum(k, 1.0) + transfer) * 1e3,
        input_tok_s_per_chip=p.dp / cp * k * p.isl / t_cycle / n,
        bound=np.argmax(bound_shares(times), axis=0),
    )
    return arrays, times


def decode_pool(model: ModelSpec, chip: ChipSpec, system: SystemSpec, eff: Efficiency, traffic: Traffic,
                space: SearchSpace, max_chip_count: int, fidelity: str = "roofline") -> GridResult:
    """Every decode-pool point: output tokens/s per chip, TPOT and memory (no prefill on these
    chips: the prompts' KV caches arrive from the prefill pool)."""
    p = prepare(model, chip, system, eff, traffic, space, max_chip_count, fidelity)
    t_dec, times = decode_step(p)
    weights = memory.weight_bytes_per_chip(model, p.tp, p.pp, p.ep, p.dp, p.w_bytes)
    kv = p.batch * memory.kv_bytes_per_sequence(model, p.tp, p.pp, p.isl + p.osl, p.kv_bytes)
    act = p.batch * model.vocab_size / p.tp * 4.0  # logits; no prefill chunk on a decode chip
    free = memory.usable_bytes(chip.hbm_gb) - weights - kv - act
    n = p.grid["num_chips"].astype(float)
    arrays = dict(p.grid)
    arrays.update(
        weights_gb=weights / 1e9, kv_cache_gb=kv / 1e9, activations_gb=act / 1e9, free_gb=free / 1e9,
        fits=free >= 0, decode_step_ms=t_dec * 1e3, tpot_ms=t_dec / p.tokens_per_step * 1e3,
        output_tok_s_per_chip=p.dp * p.batch * p.tokens_per_step / t_dec / n,
        bound=np.argmax(bound_shares(times), axis=0),
    )
    out = GridResult(arrays, p.precisions, p.kv_names)
    out.extras = {"decode_times": times}
    return out


def choose_under(arrays: dict, throughput: str, latency, limit: float | None, slack: float = 1.05) -> Choice:
    """The fitting point with the highest `throughput` whose `latency` is within `limit`. When no
    point meets the limit (a 128k prompt cannot prefill in 2 s on any mapping), the limit is
    relaxed to `slack` × the fastest point's latency and the best throughput under it is taken,
    flagged as missing the SLO — never the slowest-throughput point that misses least."""
    fits = arrays["fits"]
    if not fits.any():
        return Choice(None, False)
    lat = np.asarray(latency, float)
    ok_all = True
    if limit:
        ok = fits & (lat <= limit)
        if not ok.any():
            ok = fits & (lat <= lat[fits].min() * slack)
            ok_all = False
    else:
        ok = fits
    score = np.where(ok, arrays[throughput], -np.inf)
    best = np.flatnonzero(score >= score.max() * (1 - 1e-9))
    best = best[np.lexsort((arrays["batch"][best], arrays["num_chips"][best]))]
    return Choice(int(best[0]), ok_all)


def balance(isl: float, osl: float, p_tok_s: float, d_tok_s: float) -> tuple[float, float]:
    """(prefill chips per decode chip, output tokens/s per chip of either pool) for requests of
    `isl` input and `osl` output tokens, with the pools' per-chip rates P and D."""
    prefill_s, decode_s = isl / p_tok_s, osl / d_tok_s
    return prefill_s / decode_s, osl / (prefill_s + decode_s)


def integer_unit(ratio: float, prefill_chips: int, decode_chips: int, max_instances: int = 16,
                 tolerance: float = 0.05) -> tuple[int, int, float]:
    """The smallest whole deployment (prefill instances, decode instances) whose pools are
    balanced within `tolerance`, and its efficiency (the share of its chips' capacity the
    slower pool lets it use); the best one found when none is within tolerance."""
    best = (1, 1, 0.0)
    for n_d in range(1, max_instances + 1):
        n_p = max(1, round(ratio * n_d * decode_chips / prefill_chips))
        p_cap = n_p * prefill_chips / ratio  # decode-chip equivalents the prefill instances feed
        d_cap = n_d * decode_chips
        used = min(p_cap, d_cap)
        eff = used * (1 + ratio) / (n_p * prefill_chips + n_d * decode_chips)
        if eff > best[2] + 1e-12:
            best = (n_p, n_d, eff)
        if eff >= 1 - tolerance:
            return n_p, n_d, eff
    return best
