"""Screening stage of the design search: score many design-space points at once, vectorized over
designs, and hand the best to the full per-design evaluation.

    scores = screen_points(points, ctx)          # dict of arrays, one element per point

A point goes through the same stages as `evaluate.evaluate_point`, each batched: the design is
built and validated (`designs.build_design`); derived for all points at once
(`design.evaluate_arrays`: datasheet, area, power, unit cost, feasibility); the space's
constraints are checked; then every LLM scenario's best deployment (aggregated, prefill/decode
or attention-FFN disaggregated) is found for all buildable designs together
(`mapping.batched.best`, screening kernels: `perf.screen`) and priced ($/chip-hour of each design
over its tokens, as `tco.price_deployment` does for pools of one chip type). The mix's $/Mtok,
TPOT and TTFT are weighted as `evaluate.mix_objectives`.

Fidelity: the screening kernels are the tiled model's SRAM physics with the core tile chosen
once per core geometry (per mapping point within 12% of `perf.tiled`, median < 2%, on H100,
TPU v5e and MI300X grids; tests/test_design_batch.py); the mapping grid is reduced
(`mapping.batched.SCREEN_SPACE`), so a screened $/Mtok is at or above what the full path finds
(1.00-1.23x, median 1.07, rank correlation 0.996 over 45 chat-mix designs). The search
(`explore.search`, `SearchConfig.screen`) enqueues the screened front as its first trials, which
the full path (tiled fidelity, all serving modes, full grid) then evaluates.
Workloads with non-LLM scenarios (images, video, recommendation, training) are not screened.
"""

from __future__ import annotations

import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from tokenfab.explore.evaluate import EvalContext
from tokenfab.specs.base import SpecError
from tokenfab.specs.chip import full_mesh_of

CHUNK = 1024
"""Designs evaluated together at most: larger batches amortize the per-batch costs (graph, grid,
tile candidates per core geometry) until their (designs × mapping points) arrays outgrow the caches."""
SCREENED = ("usd_per_mtok", "tpot_ms", "ttft_ms", "unit_cost_usd", "die_area_mm2", "power_w")
"""Objectives a screened point carries (the search's objectives are among them)."""


def screenable(ctx: EvalContext) -> bool:
    """True when every scenario is an LLM served (what the screening path models)."""
    return all(s.kind == "llm" for s in ctx.scenarios)


def chip_batch(designs: list, a, r: dict, sustained_mask: np.ndarray | None = None):
    """`mapping.batched.ChipBatch` of derived designs from their arrays (`DesignArrays`,
    `evaluate_arrays`), the same figures `to_chip_spec` + `ChipBatch.from_specs` give, without a
    `ChipSpec` per design. `sustained_mask`: designs whose power cap applies (False for designs
    naming a calibration, which was measured capped: `derive.microarch_of`)."""
    from tokenfab.design.datasheet import SPEC_FIELDS
    from tokenfab.mapping.batched import PRECISIONS, ChipBatch

    domains = {int(d.io.scaleup_domain) for d in designs}
    if len(domains) != 1:
        raise ValueError(f"a chip batch shares one scale-up domain size; got {sorted(domains)}")
    n = len(designs)
    peaks = {p: np.nan_to_num(np.asarray(r[SPEC_FIELDS[p]], dtype=float)) if p in SPEC_FIELDS else np.zeros(n)
             for p in PRECISIONS}
    hw = r["tiled_hw"]
    mask = np.ones(n, dtype=bool) if sustained_mask is None else np.asarray(sustained_mask, dtype=bool)
    sustained = {p: np.where(mask, np.clip(np.asarray(v, dtype=float).reshape(-1), 0.0, 1.0), 1.0).reshape(-1, 1)
                 for p, v in hw.sustained_frac.items()}
    vec = np.nan_to_num(np.asarray(r["fp32_tflops"], dtype=float))
    return ChipBatch(ids=tuple(d.id for d in designs), peaks=peaks, hbm_tb_s=np.asarray(r["hbm_tb_s"], dtype=float),
                     hbm_gb=np.asarray(r["hbm_gb"], dtype=float), cores=np.asarray(a.cores, dtype=float),
                     scaleup_gb_s=np.asarray(r["scaleup_gb_s"], dtype=float),
                     scaleout_gb_s=np.asarray(r["scaleout_gb_s"], dtype=float), scaleup_domain=domains.pop(),
                     scaleup_full_mesh=np.array([full_mesh_of(d.io.scaleup_interconnect) for d in designs], dtype=bool),
                     tiled=replace(hw, sustained_frac=sustained), vector_tflops=vec,
                     sfu_tops=vec / 2.0 * (16.0 / 128.0))


def _constraints(ctx: EvalContext, fig: dict[str, np.ndarray], nodes: list[str]) -> tuple[np.ndarray, list[list[str]]]:
    """Violation per point of the space's constraints and the reasons (as `evaluate._constraints`)."""
    from tokenfab.explore.evaluate import _constraints as one

    n = len(nodes)
    v = np.zeros(n)
    reasons: list[list[str]] = [[] for _ in range(n)]
    for i in range(n):
        row = {k: float(x[i]) for k, x in fig.items()}
        row["process_node"] = nodes[i]
        rs, vi = one(row, ctx.constraints, ctx.allowed_nodes)
        reasons[i], v[i] = rs, vi
    return v, reasons


def screen_points(points: list[dict[str, Any]], ctx: EvalContext) -> dict[str, Any]:
    """Screened figures of design-space points (see the module docstring), arrays with one element
    per point: feasible, violation, the `SCREENED` objectives (NaN where unknown), and per scenario
    its best deployment's output tok/s per chip, $/Mtok, chips, tp and batch; plus `reasons` (list
    per point) and `seconds`. SpecError when a scenario is not an LLM served (`screenable`)."""
    from tokenfab import api
    from tokenfab.cost import tco
    from tokenfab.cost.data import shipped_cost_data
    from tokenfab.design import evaluate_arrays, to_chip_spec
    from tokenfab.design.arrays import DesignArrays
    from tokenfab.design.tech import shipped_tech
    from tokenfab.explore.designs import build_design
    from tokenfab.mapping import batched

    if not screenable(ctx):
        raise SpecError("the screening stage models LLM scenarios only; this workload has "
                        + ", ".join(sorted({s.kind for s in ctx.scenarios if s.kind != 'llm'})) + " scenarios")
    t0 = time.perf_counter()
    n = len(points)
    out: dict[str, Any] = {k: np.full(n, np.nan) for k in SCREENED}
    out.update(feasible=np.zeros(n, dtype=bool), violation=np.zeros(n), reasons=[[] for _ in range(n)],
               scenarios={s.name: {"output_tok_s_per_chip": np.full(n, np.nan), "usd_per_mtok": np.full(n, np.nan),
                                   "num_chips": np.zeros(n), "tp": np.zeros(n), "batch": np.zeros(n)}
                          for s in ctx.scenarios})
    built = [build_design(ctx.base, p) for p in points]
    ok_idx = [i for i, (d, _, _) in enumerate(built) if d is not None]
    for i, (d, _, err) in enumerate(built):
        if d is None:
            out["reasons"][i] = [err]
            out["violation"][i] = 10.0
    if not ok_idx:
        out["seconds"] = time.perf_counter() - t0
        return out
    designs = [built[i][0] for i in ok_idx]
    tech, cost = shipped_tech(), shipped_cost_data()
    a = DesignArrays.from_designs(designs, tech, cost.fab)
    with np.errstate(all="ignore"):
        r = evaluate_arrays(a, tech, cost)
    idx = np.asarray(ok_idx)
    unit = np.asarray(r["unit_cost_usd"], dtype=float)
    fig = {"die_area_mm2": r["die_area_mm2"], "die_mm2_each": r["die_mm2_each"], "tdp_w": a.tdp_w,
           "power_w": r["power_w"], "unit_cost_usd": unit}
    out["unit_cost_usd"][idx] = unit
    out["die_area_mm2"][idx] = r["die_area_mm2"]
    out["power_w"][idx] = r["power_w"]
    physical = np.asarray(r["feasible"], dtype=bool) & np.isfinite(unit)
    v_c, why = _constraints(ctx, fig, list(a.node))
    for j, i in enumerate(idx):
        if not physical[j]:
            out["reasons"][i].append("not buildable (reticle, shoreline, power, power density or interposer)")
            out["violation"][i] += 1.0
        out["reasons"][i] += why[j]
        out["violation"][i] += v_c[j]
    go = np.flatnonzero(physical & (v_c == 0))
    if len(go) == 0:
        out["seconds"] = time.perf_counter() - t0
        return out
    price = unit * (1.0 + cost.fab.custom_markup_frac)
    econ = ctx.economics or tco.default_economics()
    # Groups that share a scale-up domain and an efficiency (calibration, stack, maturity).
    groups: dict[tuple, list[int]] = {}
    for j in go:
        d = designs[j]
        groups.setdefault((int(d.io.scaleup_domain), d.calibration, d.software, d.vendor, d.software_maturity),
                          []).append(int(j))
    mix = {k: np.zeros(n) for k in ("usd_per_mtok", "tpot_ms", "ttft_ms")}
    fits_all = np.zeros(n, dtype=bool)
    slo_v = np.zeros(n)
    chunks = [np.asarray(m[i:i + CHUNK]) for m in groups.values() for i in range(0, len(m), CHUNK)]
    for members in chunks:
        sub = [designs[j] for j in members]
        chips = chip_batch(sub, a.col(members), _rows(r, members, len(designs)),
                           np.array([d.calibration is None for d in sub]))
        rep = to_chip_spec(sub[0])
        hourly = _hourly(sub, members, price, r, econ)
        pts = idx[members]
        fits_all[pts] = True
        for scen in ctx.scenarios:
            eff = api.efficiency_of(rep, scen.model)
            traffic = api.with_mtp(scen.model, scen.traffic)
            space = replace(batched.SCREEN_SPACE, precisions=_precisions(scen, chips), kv_precision=scen.kv_precision)
            b = batched.best(scen.model, chips, eff, traffic, space, ctx.max_chips, "screen")
            tok = np.where(b["fits"], b["total_tok_s_per_chip"], np.nan)
            usd = hourly * 1e6 / 3600.0 / tok
            row = out["scenarios"][scen.name]
            row["output_tok_s_per_chip"][pts] = b["output_tok_s_per_chip"]
            row["usd_per_mtok"][pts] = usd
            for k_ in ("num_chips", "tp", "batch"):
                row[k_][pts] = b[k_]
            fits_all[pts] &= b["fits"]
            miss = np.zeros(len(pts))
            if scen.traffic.slo_tpot_ms:
                miss += np.maximum(b["tpot_ms"] / scen.traffic.slo_tpot_ms - 1.0, 0.0)
            if scen.traffic.slo_ttft_ms:
                miss += np.maximum(b["ttft_ms"] / scen.traffic.slo_ttft_ms - 1.0, 0.0)
            slo_v[pts] += np.where(b["fits"], np.where(b["meets_slo"], 0.0, np.maximum(miss, 1e-3)), 1.0)
            mix["usd_per_mtok"][pts] += scen.weight * usd
            mix["tpot_ms"][pts] += scen.weight * b["tpot_ms"]
            mix["ttft_ms"][pts] += scen.weight * b["ttft_ms"]
    live = idx[go]
    for k_ in mix:
        out[k_][live] = np.where(fits_all[live], mix[k_][live], np.nan)
    c = ctx.constraints
    if c.max_tpot_ms is not None:
        over = np.where(np.isfinite(out["tpot_ms"][live]), out["tpot_ms"][live] / c.max_tpot_ms - 1.0, 0.0)
        slo_v[live] += np.maximum(over, 0.0)
    out["violation"][live] += slo_v[live]
    out["feasible"][live] = fits_all[live] & (slo_v[live] == 0)
    for i in live:
        if not out["feasible"][i]:
            out["reasons"][i].append("nothing fits memory or misses an SLO with every screened mapping")
    out["seconds"] = time.perf_counter() - t0
    return out


def _precisions(scen, chips) -> tuple[str, ...] | None:
    """Weight formats screened for a scenario: the one it states; else FP8 where every chip of the
    batch has FP8 math (the full path also tries BF16, and chose FP8 for all 45 × 3 chat-mix
    design-scenarios of tests/test_design_batch.py's oracle: half the bytes at twice the rate);
    else the full path's defaults."""
    if scen.precision:
        return (scen.precision,)
    return ("fp8",) if bool(np.all(chips.peak("fp8") > 0)) else None


def _rows(r: dict, members: np.ndarray, n: int) -> dict:
    """`evaluate_arrays` results restricted to some designs (arrays of length n; the tiled
    description's (n, 1) columns)."""
    from tokenfab.perf import tiled

    out = {}
    for k, v in r.items():
        if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == n:
            out[k] = v[members]
    hw = r["tiled_hw"]
    fields = {}
    for k, v in hw.__dict__.items():
        if k == "sustained_frac":
            fields[k] = {p: np.asarray(x)[members] for p, x in v.items()}
        elif isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n:
            fields[k] = v[members]
        else:
            fields[k] = v
    out["tiled_hw"] = tiled.TiledHW(**fields)
    return out


def _hourly(designs: list, members: np.ndarray, price: np.ndarray, r: dict, econ) -> np.ndarray:
    """$/chip-hour of each design (`tco.chip_hour_cost` of its ChipSpec). The cost is affine in the
    chip's price (capex = (price + system) × (1 + spares), recovered over its life), so it is
    computed at prices 0 and 1 once per distinct system (TDP, links, domain) and interpolated."""
    from tokenfab.cost import tco

    out = np.empty(len(members))
    memo: dict[tuple, tuple[float, float]] = {}
    for i, (d, j) in enumerate(zip(designs, members)):
        duck = _duck(d, 0.0, r, j)
        key = (duck.tdp_w, duck.scaleout_gb_s, duck.scaleup_gb_s, duck.scaleup_domain, duck.scaleup_interconnect)
        if key not in memo:
            at0 = tco.chip_hour_cost(duck, econ).total_usd_per_hour
            duck.price_usd = 1.0
            memo[key] = (at0, tco.chip_hour_cost(duck, econ).total_usd_per_hour - at0)
        base, slope = memo[key]
        out[i] = base + slope * float(price[j])
    return out


def _duck(design, price_usd: float, r: dict, j: int) -> SimpleNamespace:
    """What `tco.chip_hour_cost` reads of a design's ChipSpec (`to_chip_spec`): price, TDP, links."""
    links = design.io.scaleup_links
    return SimpleNamespace(id=design.id, price_usd=float(price_usd), tdp_w=float(design.tdp_w),
                           scaleout_gb_s=float(r["scaleout_gb_s"][j]), scaleup_gb_s=float(r["scaleup_gb_s"][j]),
                           scaleup_domain=int(design.io.scaleup_domain), scaleup_fabric=None,
                           scaleup_interconnect=design.io.scaleup_interconnect or
                           (f"{links} links" if links else "host PCIe"), price_includes_system=False)


def pick(scores: dict[str, Any], objectives: tuple[str, ...], k: int) -> list[int]:
    """Indices of up to `k` screened points to evaluate in full: feasible ones by non-dominated
    rank on the objectives (front first, each front by its first objective), then the least
    violating infeasible ones."""
    from tokenfab.explore.pareto import front_order, pareto_mask

    feas = np.flatnonzero(scores["feasible"])
    vals = np.stack([np.asarray(scores[o], dtype=float) for o in objectives], axis=1) if objectives else None
    chosen: list[int] = []
    left = feas.copy()
    while len(chosen) < k and len(left):
        mask = pareto_mask(vals[left])
        if not mask.any():
            break
        order = left[front_order(vals[left], mask)]
        chosen += [int(i) for i in order[: k - len(chosen)]]
        left = left[~mask]
    if len(chosen) < k:
        rest = [int(i) for i in np.argsort(scores["violation"], kind="stable") if int(i) not in set(chosen)
                and not scores["feasible"][i]]
        chosen += rest[: k - len(chosen)]
    return chosen


def sample_points(space, n: int, seed: int) -> list[dict[str, Any]]:
    """`n` points drawn uniformly from a design space (log ranges on a log scale, steps kept), in
    the form optuna stores them (`designs.encode_choice`), so they can be enqueued as trials.
    Seeded numpy draws: optuna's own sampler costs ~3 ms per point, more than screening one."""
    from tokenfab.explore.designs import distributions, encode_choice

    rng = np.random.default_rng(seed)
    dists = distributions(space)
    cols: dict[str, list] = {}
    for path, p in space.parameters.items():
        d = dists[path]
        if p.is_choice:
            enc = [encode_choice(c) for c in p.choices]
            cols[path] = [enc[i] for i in rng.integers(0, len(enc), n)]
            continue
        lo, hi = float(d.low), float(d.high)
        step = getattr(d, "step", None)
        if p.log:
            x = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
        elif step:
            x = lo + step * rng.integers(0, int(round((hi - lo) / step)) + 1, n)
        else:
            x = rng.uniform(lo, hi, n)
        if p.is_integer:
            x = np.clip(np.round(x), lo, hi)
            cols[path] = [int(v) for v in x]
        else:
            cols[path] = [float(min(max(v, lo), hi)) for v in x]
    return [{path: cols[path][i] for path in cols} for i in range(n)]
