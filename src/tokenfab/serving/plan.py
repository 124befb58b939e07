"""Capacity planning on the simulator: the highest request rate a deployment holds within SLOs,
the best mapping and serving mode, the fleet for a daily volume, and what it costs.

The candidates are the deployments `api.estimate` chooses for the traffic's mean request
(`serving.deployment.choose_estimate`): one pool at each tried chip count and chunk size, and the
estimate's disaggregated deployment (its own prefill and decode pools and balanced instance
counts, or the P:D counts given); `mode` restricts them as `estimate --mode` does.

The rate search simulates the same seeded workload at different rates (arrival times drawn once
at unit rate and divided by the rate: common random numbers), so latency grows smoothly with the
rate and a bisection is well defined. It first serves requests one at a time (1% load): if even
then the SLO percentile is missed, the SLO is below what one request alone takes (e.g. TTFT below a
single prefill) and no number of replicas helps; the search stops and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from tokenfab.serving.deployment import (
    DEFAULT_TOKEN_BUDGET,
    MODES,
    build_deployment,
    capacity_rps,
    choose_estimate,
    from_estimate,
)
from tokenfab.serving.metrics import percentile, request_latencies, summarize
from tokenfab.serving.simulator import Deployment, check_fits, simulate
from tokenfab.serving.steptime import Mapping
from tokenfab.serving.traffic import TrafficProfile, Workload, generate
from tokenfab.specs import ChipSpec, ModelSpec, SpecError

DEFAULT_DISAGG = None
"""Disaggregated instance counts tried by default: the estimate's balanced (P, D) only."""
DEFAULT_CHIP_COUNTS = (None, 1, 2, 4, 8)
DEFAULT_TOKEN_BUDGETS = (512, 2048, 8192)
SECONDS_PER_DAY = 86400.0
PROBE_LOAD = 0.001
"""Load of the feasibility probe (fraction of one request at a time per entry engine)."""


@dataclass
class RateSearch:
    """Result of `max_rate` for one deployment unit."""

    feasible: bool
    max_rate_rps: float | None
    """Highest arrival rate (requests/s) meeting the SLOs; None when infeasible."""
    reason: str | None = None
    metrics: dict = field(default_factory=dict)
    """`summarize` of the run at `max_rate_rps` (at the probe rate when infeasible)."""
    evaluations: int = 0
    failing_rate_rps: float | None = None
    """Lowest rate tried that missed the SLOs."""
    lone_ttft_ms: float | None = None
    """TTFT / TPOT at the percentile with requests served alone (set when infeasible)."""
    lone_tpot_ms: float | None = None


def slo_check(lat: dict[str, np.ndarray], slo_ttft_ms: float | None, slo_tpot_ms: float | None,
              pct: float) -> tuple[bool, float | None, float | None]:
    """(both SLOs met at percentile `pct`, TTFT at pct, TPOT at pct)."""
    ttft = percentile(lat["ttft"], pct)
    tpot = percentile(lat["tpot"], pct)
    ok = True
    if slo_ttft_ms and ttft is not None and ttft > slo_ttft_ms:
        ok = False
    if slo_tpot_ms and tpot is not None and tpot > slo_tpot_ms:
        ok = False
    return ok, ttft, tpot


def lone_request_s(deployment: Deployment, workload: Workload) -> float:
    """Seconds one mean request takes alone on an engine (prefill + decode at batch 1)."""
    st = deployment.steptime
    pst = deployment.prefill_pool.steptime if deployment.disagg else st
    mean_in, mean_out = workload.mean_lengths()
    pre = pst.mixed(0, 0.0, [(max(int(mean_in), 1), 0)])
    dec, _ = st.decode(1, mean_in + mean_out / 2.0)
    return pre + max(mean_out - 1.0, 0.0) * dec


def max_rate(deployment: Deployment, unit_workload: Workload, slo_ttft_ms: float | None, slo_tpot_ms: float | None,
             pct: float = 99.0, rel_tol: float = 0.02, max_evals: int = 40, min_requests: int = 1500,
             span_lifetimes: float = 10.0) -> RateSearch:
    """Highest rate at which `deployment` serves `unit_workload` (arrivals drawn at 1 request/s)
    within the SLOs at percentile `pct`, to a relative tolerance `rel_tol`.

    Each run simulates the first `max(min_requests, rate × span)` requests of `unit_workload`,
    where span is `span_lifetimes` times the longest lifetime the SLOs allow a mean request
    (TTFT SLO + mean output × TPOT SLO): short bursts would never reach steady state at high
    rates. `unit_workload` must be long enough for the highest rate tried (it is cut, never
    extended)."""
    if not (slo_ttft_ms or slo_tpot_ms):
        raise SpecError("capacity planning needs at least one SLO (--slo-ttft-ms or --slo-tpot-ms)")
    units = deployment.entry_engines
    lone = lone_request_s(deployment, unit_workload)
    mean_out = unit_workload.mean_lengths()[1]
    lifetime = max((slo_ttft_ms or 0.0) / 1e3 + mean_out * (slo_tpot_ms or 0.0) / 1e3, lone)
    span = span_lifetimes * lifetime
    evals = 0

    def run(rate: float):
        nonlocal evals
        evals += 1
        n = min(len(unit_workload), max(min_requests, int(math.ceil(rate * span))))
        wl = unit_workload.head(n)
        res = simulate(replace(wl, arrival_s=wl.arrival_s / rate), deployment)
        ok, ttft, tpot = slo_check(request_latencies(res), slo_ttft_ms, slo_tpot_ms, pct)
        return ok, res, ttft, tpot

    # 0.1% load: requests practically never overlap, so the percentile is that of lone requests.
    lo = PROBE_LOAD * units / lone
    ok, res, ttft, tpot = run(lo)
    if not ok:
        return RateSearch(False, None, _infeasible_reason(ttft, tpot, slo_ttft_ms, slo_tpot_ms, pct),
                          summarize(res, slo_ttft_ms, slo_tpot_ms, (50, 90, 99, pct)), evals, lo,
                          lone_ttft_ms=ttft, lone_tpot_ms=tpot)
    best = res
    hi = None
    rate = lo
    while evals < max_evals:
        rate *= 4.0
        ok, res, _, _ = run(rate)
        if not ok:
            hi = rate
            break
        lo, best = rate, res
    if hi is None:
        raise SpecError(f"no SLO miss found up to {lo:.3g} requests/s; the SLOs may not constrain this workload")
    while hi / lo > 1.0 + rel_tol and evals < max_evals:
        mid = math.sqrt(lo * hi)
        ok, res, _, _ = run(mid)
        if ok:
            lo, best = mid, res
        else:
            hi = mid
    return RateSearch(True, lo, None, summarize(best, slo_ttft_ms, slo_tpot_ms, (50, 90, 99, pct)), evals, hi)


def _infeasible_reason(ttft, tpot, slo_ttft_ms, slo_tpot_ms, pct) -> str:
    parts = []
    if slo_ttft_ms and ttft is not None and ttft > slo_ttft_ms:
        parts.append(f"TTFT p{pct:g} is {ttft:,.0f} ms with requests served one at a time (a lone prefill), "
                     f"above the {slo_ttft_ms:g} ms SLO")
    if slo_tpot_ms and tpot is not None and tpot > slo_tpot_ms:
        parts.append(f"TPOT p{pct:g} is {tpot:,.1f} ms at batch 1, above the {slo_tpot_ms:g} ms SLO")
    if not parts:
        parts.append("the SLOs are missed even with requests served one at a time")
    return "; ".join(parts) + ": no number of replicas can meet it (use a faster chip, more chips per replica " \
                              "or a lower precision)"


# ---------------------------------------------------------------------------------------------
# Cost
# ---------------------------------------------------------------------------------------------

def chip_hour_usd(chip: ChipSpec, pools: list[dict] | None = None) -> tuple[float | None, str]:
    """(USD per chip-hour, basis or why none) at the shipped economics, through the one pricing path
    (`tco.price_deployment`): one pool of `chip`, or a unit's `pools`, each on its own chip's price,
    weighted by its chips."""
    from tokenfab.cost import tco
    from tokenfab.serving.deployment import _chip

    if pools:
        total = sum(p["chips"] for p in pools)
        entries = [(p["role"], chip if p["chip"] == chip.id else _chip(p["chip"]), p["chips"] / total) for p in pools]
    else:
        entries = [("aggregated", chip, 1.0)]
    try:
        priced = tco.price_deployment(entries, None, None, 0.0)
    except (SpecError, ValueError) as exc:
        return None, f"no cost: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return priced.usd_per_chip_hour, f"{priced.basis} chip-hour from tokenfab.cost.tco"


# ---------------------------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------------------------

def _candidate_mappings(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit, chip_counts, precision,
                        mtp=None, mtp_acceptance=None):
    """One-pool mappings `api.estimate` picks at each chip count. Without expert parallelism the
    data-parallel ranks of a mapping are independent replicas, so a mapping is reduced to one
    rank (tp × pp chips): the fleet step adds replicas, and the simulated unit stays small."""
    seen: dict[Mapping, None] = {}

    def pick(n, tp=None) -> Mapping:
        return Mapping.from_estimate(choose_estimate(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit,
                                                     num_chips=n, tp=tp, precision=precision, max_chips=64,
                                                     mode="aggregated", mtp=mtp, mtp_acceptance=mtp_acceptance))

    for n in chip_counts:
        try:
            m = pick(n)
            if n is not None and m.ep == 1 and m.dp > 1:
                # The best use of n chips is n / (tp × pp) independent replicas, which the fleet step
                # adds anyway: a replica of n chips is the one sharded over all n (tensor parallel).
                m = pick(n, tp=n)
        except SpecError:
            continue
        if m.ep == 1 and m.dp > 1:
            m = replace(m, num_chips=m.tp * m.pp, dp=1)
        seen.setdefault(m, None)
    if not seen:
        raise SpecError(f"{model.id} fits on no tried number of {chip.id} chips ({', '.join(str(c) for c in chip_counts if c)})")
    return list(seen)


def plan(model: ModelSpec, chip: ChipSpec, profile: TrafficProfile, slo_ttft_ms: float | None = None,
         slo_tpot_ms: float | None = None, pct: float = 99.0, tokens_per_day: float | None = None,
         requests: int = 1500, seed: int = 0, chip_counts=DEFAULT_CHIP_COUNTS, disagg_ratios=DEFAULT_DISAGG,
         token_budgets=DEFAULT_TOKEN_BUDGETS,
         precision: str | None = None, rel_tol: float = 0.02, max_requests: int = 100_000,
         progress: Callable[[str], None] | None = None, mode: str = "auto", prefill_chip: ChipSpec | None = None,
         decode_chip: ChipSpec | None = None, mtp: bool | None = None, mtp_acceptance: float | None = None) -> dict:
    """Best deployment (one pool, or separate prefill and decode pools) by requests/s per chip
    within the SLOs, and the fleet and cost for `tokens_per_day` (prompt + output tokens).

    Candidates (module docstring): `mode` `aggregated` keeps the one-pool ones, `disaggregated`
    (or a `prefill_chip`/`decode_chip`) the estimate's separate pools, `auto` both.
    `disagg_ratios`: the (P, D) instance counts of the disaggregated candidates (None: the
    estimate's balanced counts; empty: no disaggregated candidate). MTP as in `api.estimate`
    (`mtp=None`: on for models that ship it). The result's `estimate` is what `api.estimate`
    chooses in `mode` for the mean request. Each simulation runs at least `requests` requests and
    at most `max_requests` (see `max_rate` for how the count follows the rate)."""
    if mode not in MODES:
        raise SpecError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    hetero = prefill_chip is not None or decode_chip is not None
    if hetero and mode == "aggregated":
        raise SpecError("--prefill-chip / --decode-chip need separate pools: drop --mode aggregated")
    if disagg_ratios and mode == "aggregated":
        raise SpecError("--disagg P:D runs separate pools: drop --mode aggregated")
    slo_ttft_ms = slo_ttft_ms if slo_ttft_ms is not None else profile.slo_ttft_ms
    slo_tpot_ms = slo_tpot_ms if slo_tpot_ms is not None else profile.slo_tpot_ms
    unit = generate(profile, 1.0, max_requests, seed)
    mean_in, mean_out = unit.head(requests).mean_lengths()
    hit = float(unit.prefix_tokens.mean()) / mean_in
    one_pool = mode in ("auto", "aggregated") and not hetero
    pools = (mode in ("auto", "disaggregated") or hetero) and disagg_ratios != ()
    kw = dict(mtp=mtp, mtp_acceptance=mtp_acceptance)
    chosen = None
    if one_pool and pools:
        chosen = choose_estimate(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit, precision=precision,
                                 mode="auto", **kw)
    options = []  # (mapping or estimate, disagg, token budget)
    if one_pool:
        mappings = _candidate_mappings(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit, chip_counts,
                                       precision, **kw)
        # Aggregated serving trades TTFT for TPOT through the chunk size (a smaller budget stalls
        # decodes less); prefill and decode pools of a disaggregated unit do not interfere.
        options += [(mp, None, b) for mp in mappings for b in token_budgets]
    if pools:
        try:
            est = choose_estimate(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit, precision=precision,
                                  mode="disaggregated", prefill_chip=prefill_chip, decode_chip=decode_chip, **kw)
        except SpecError:
            if not one_pool:
                raise
            est = None
        if est is not None:
            chosen = chosen or est
            if disagg_ratios:
                ratios = [tuple(r) for r in disagg_ratios]
            else:
                inst = {p["role"]: int(p["instances"]) for p in est.pools}
                ratios = [(inst["prefill"], inst["decode"])]
            options += [(est, tuple(r), DEFAULT_TOKEN_BUDGET) for r in ratios]
    if chosen is None and one_pool:
        chosen = choose_estimate(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit, precision=precision,
                                 mode="aggregated", **kw)
    rows, unfit = [], []
    for what, disagg, budget in options:
        if isinstance(what, Mapping):
            d = build_deployment(model, chip, unit, mapping=what, disagg=disagg, token_budget=budget)
        else:
            d = from_estimate(model, what, unit, disagg=disagg, token_budget=budget)
        try:  # a candidate whose engine cannot hold the workload's longest request could never serve it
            check_fits(unit, d)
        except SpecError as e:
            unfit.append(f"{d.label}: {e}")
            continue
        if progress:
            progress(f"{d.label}, chunk {budget} tokens")
        s = max_rate(d, unit, slo_ttft_ms, slo_tpot_ms, pct, rel_tol, min_requests=requests)
        rows.append(_row(d, s, mean_in, mean_out, pct))
    if not rows:
        raise SpecError(f"no candidate deployment holds the workload's longest request ({unfit[0]})")
    feasible = [r for r in rows if r["feasible"]]
    best = max(feasible, key=lambda r: (r["rate_per_chip_rps"], -r["chips_per_unit"])) if feasible else None
    best_agg = max((r for r in feasible if r["mode"] == "aggregated"), key=lambda r: r["rate_per_chip_rps"], default=None)
    usd_h, basis = chip_hour_usd(chip, best["pools"] if best is not None and best["mode"] != "aggregated" else None)
    out = dict(model=model.id, chip=chip.id, traffic=profile.name, slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms,
               percentile=pct, mean_input_tokens=mean_in, mean_output_tokens=mean_out, requests_per_run=requests,
               feasible=best is not None, reason=None if best else _why_none(rows, slo_ttft_ms, slo_tpot_ms, pct),
               candidates=rows, best=best, mode=best["mode"] if best else None,
               pools=best["pools"] if best else None, estimate=_estimate_row(chosen),
               best_aggregated=best_agg, usd_per_chip_hour=usd_h, cost_basis=basis)
    out.update(_fleet(best, tokens_per_day, mean_in, mean_out, usd_h))
    return out


def _estimate_row(est) -> dict | None:
    """What `tokenfab estimate` chose for the mean request: mode, pools, TPOT/TTFT, capacity."""
    if est is None:
        return None
    pools = [dict(role=p["role"], chip=p["chip"], instances=p["instances"], chips_per_instance=p["num_chips"],
                  chips=p["instances"] * p["num_chips"], tp=p["tp"], pp=p["pp"], ep=p["ep"], dp=p["dp"],
                  batch=p["batch"], weight_precision=p["weight_precision"]) for p in est.pools]
    return dict(mode=est.mode, pools=pools, num_chips=est.num_chips, tpot_ms=est.tpot_ms, ttft_ms=est.ttft_ms,
                output_tok_s_per_chip=est.output_tok_s_per_chip, capacity_rps=capacity_rps(est),
                draft_tokens=est.draft_tokens, draft_acceptance=est.draft_acceptance, meets_slo=est.meets_slo)


def _why_none(rows: list[dict], slo_ttft_ms, slo_tpot_ms, pct) -> str:
    """One line: the best latency any candidate reaches with requests served alone."""
    lone = [r for r in rows if r["lone_ttft_ms"] is not None or r["lone_tpot_ms"] is not None]
    if not lone:
        return "no candidate meets the SLOs"
    parts = []
    ttfts = [r for r in lone if r["lone_ttft_ms"] is not None]
    tpots = [r for r in lone if r["lone_tpot_ms"] is not None]
    if slo_ttft_ms and ttfts:
        b = min(ttfts, key=lambda r: r["lone_ttft_ms"])
        if b["lone_ttft_ms"] > slo_ttft_ms:
            parts.append(f"the lowest TTFT p{pct:g} of a lone request is {b['lone_ttft_ms']:,.0f} ms ({b['label']}), "
                         f"above the {slo_ttft_ms:g} ms SLO")
    if slo_tpot_ms and tpots:
        b = min(tpots, key=lambda r: r["lone_tpot_ms"])
        if b["lone_tpot_ms"] > slo_tpot_ms:
            parts.append(f"the lowest TPOT p{pct:g} at batch 1 is {b['lone_tpot_ms']:,.1f} ms ({b['label']}), "
                         f"above the {slo_tpot_ms:g} ms SLO")
    if not parts:
        return "no candidate meets both SLOs together even with requests served alone"
    return "; ".join(parts) + ": no number of replicas can meet it"


def _row(d: Deployment, s: RateSearch, mean_in: float, mean_out: float, pct: float) -> dict:
    chips = d.total_chips
    m = s.metrics
    rate = s.max_rate_rps
    return dict(mode="disaggregated" if d.disagg else "aggregated", pools=d.info["pools"],
                mapping=d.info["mapping"], token_budget=d.engine.token_budget,
                label=d.label + f", chunk {d.engine.token_budget} tokens", chips_per_unit=chips,
                disagg=d.info["disagg"], feasible=s.feasible, reason=s.reason, max_rate_rps=rate,
                rate_per_chip_rps=(rate / chips) if rate else 0.0,
                output_tok_s_per_chip=(rate * mean_out / chips) if rate else 0.0,
                total_tok_s_per_chip=(rate * (mean_in + mean_out) / chips) if rate else 0.0,
                ttft_ms=m.get(f"ttft_ms_p{pct:g}"), tpot_ms=m.get(f"tpot_ms_p{pct:g}"),
                ttft_ms_p50=m.get("ttft_ms_p50"), tpot_ms_p50=m.get("tpot_ms_p50"),
                batch_mean=m.get("batch_mean"), failing_rate_rps=s.failing_rate_rps, evaluations=s.evaluations,
                lone_ttft_ms=s.lone_ttft_ms, lone_tpot_ms=s.lone_tpot_ms)


def _fleet(best: dict | None, tokens_per_day: float | None, mean_in: float, mean_out: float,
           usd_h: float | None) -> dict:
    out = dict(tokens_per_day=tokens_per_day, required_rps=None, units=None, num_chips=None, usd_per_day=None,
               usd_per_mtok=None, usd_per_mtok_output_at_max_rate=None, usd_per_mtok_at_max_rate=None)
    if best is None:
        return out
    per_req = mean_in + mean_out
    if usd_h is not None:
        tok_h = best["max_rate_rps"] * 3600.0
        unit_usd_h = usd_h * best["chips_per_unit"]
        out["usd_per_mtok_at_max_rate"] = unit_usd_h / (tok_h * per_req) * 1e6
        out["usd_per_mtok_output_at_max_rate"] = unit_usd_h / (tok_h * mean_out) * 1e6
    if tokens_per_day:
        rps = tokens_per_day / SECONDS_PER_DAY / per_req
        units = max(1, math.ceil(rps / best["max_rate_rps"] - 1e-9))
        chips = units * best["chips_per_unit"]
        out.update(required_rps=rps, units=units, num_chips=chips)
        if usd_h is not None:
            out["usd_per_day"] = chips * usd_h * 24.0
            out["usd_per_mtok"] = out["usd_per_day"] / (tokens_per_day / 1e6)
    return out
