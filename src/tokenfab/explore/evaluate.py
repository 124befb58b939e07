"""One trial: a design-space point → design → feasibility → best deployment per scenario → $/Mtok.

Pure and deterministic (what a worker runs; no I/O). A trial's result is a JSON-ready dict:

    feasible, reasons          why a design cannot be built or used (none when feasible)
    violation                  how far past its limits it is (0 when feasible; guides NSGA-II)
    objectives                 mix figures: usd_per_mtok, tpot_ms, ttft_ms, unit_cost_usd, ...
    chip                       derived datasheet, area, power, unit cost, price, area by part
    chip_hour                  $/chip-hour by part (capex, power, hosting, ops)
    scenarios                  per scenario: the best deployment and its $/Mtok

Stages, cheapest first: the design must validate; be buildable (reticle, power, shoreline,
interposer — `tokenfab.design.derive`); meet the space's constraints (area, TDP, unit cost,
node); then every scenario must fit in memory and meet its SLOs with the best mapping
(`api.estimate` on `to_chip_spec(design)`; diffusion and recommendation scenarios:
`api.estimate_any` with their request, costed per video / per million samples from the same
$/chip-hour and counted in $/Mtok-equivalents — see `WorkloadSpec`; training scenarios:
`tokenfab.train.estimate_training`, costed per trillion training tokens the same way). A design failing an earlier
stage is not run further. Scenario results are cached per (design, scenario) in the worker process.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from tokenfab.specs import ChipSpec, ModelSpec, SpecError, Traffic
from tokenfab.specs.economics import Economics
from tokenfab.specs.space import Constraints
from tokenfab.specs.workload import TrainingRun, WorkloadSpec

PENALTY = 1e12
"""Objective value told to optuna for a design with no figures (its violation ranks it)."""


@dataclass(frozen=True)
class ResolvedScenario:
    """A workload scenario with its model resolved (what a worker needs)."""

    name: str
    weight: float
    model: ModelSpec
    traffic: Traffic
    precision: str | None
    kv_precision: str | None
    key: str
    """Hash of everything that sets the scenario's deployment (cache key with the design)."""
    kind: str = "llm"
    """The model's kind: "llm" (tokens), "diffusion" ($ per video) or "recsys" ($ per million samples);
    "training" for an LLM pretrained ($ per trillion training tokens)."""
    request: Any = None
    """GenerationRequest / RecsysRequest of a non-LLM scenario, the `TrainingJob` of a training
    scenario (None for LLMs served)."""
    chips_per_run: int = 0
    """Chips of a training scenario's run (0: not training)."""

    @property
    def unit(self) -> str:
        """What the scenario's cost is per."""
        return UNITS[self.kind]


UNITS = {"llm": "Mtok", "diffusion": "video", "recsys": "million samples", "training": "trillion training tokens"}
UNIT_COST_KEYS = {"llm": "usd_per_mtok", "diffusion": "usd_per_video", "recsys": "usd_per_million_samples",
                  "training": "usd_per_trillion_tokens"}


@dataclass(frozen=True)
class EvalContext:
    """Everything a worker needs to evaluate points; picklable, sent once per worker."""

    base: dict
    """Base design mapping with the space's fixed values."""
    scenarios: tuple[ResolvedScenario, ...]
    constraints: Constraints
    max_chips: int
    fidelity: str
    economics: Economics | None = None
    allowed_nodes: tuple[str, ...] | None = None
    """Resolved node ids allowed by the constraints (None: any)."""
    token_rate: float | None = None
    """r: the baseline's $/Mtok on the LLM scenarios (1 when none), the exchange rate of
    non-token scenarios into $/Mtok-equivalents (None: the mix is all LLM)."""
    unit_refs: tuple[tuple[str, float], ...] = ()
    """(scenario, the baseline's cost per unit of its work) of each non-token scenario."""


def resolve_scenarios(workload: WorkloadSpec, max_chips: int, fidelity: str) -> tuple[ResolvedScenario, ...]:
    """The workload's scenarios with models loaded (and overridden) and normalized weights.
    SpecError when a scenario sets a field its model's kind does not use (e.g. `input_len` on a
    diffusion model, `request` on an LLM)."""
    from tokenfab import catalog
    from tokenfab.specs.requests import GenerationRequest, RecsysRequest

    out = []
    weights = workload.weights
    models = {}
    for s in workload.scenarios:
        model = catalog.load_model(s.model)
        if s.model_overrides:
            data = {**model.model_dump(), **s.model_overrides, "id": s.model_id or f"{model.id}*"}
            model = ModelSpec.from_mapping(data, origin=f"scenario {s.name}: model_overrides")
        elif s.model_id:
            model = model.model_copy(update={"id": s.model_id})
        models[s.name] = model
    workload.check_kinds({n: m.kind for n, m in models.items()}, f"workload {workload.name}")
    for i, s in enumerate(workload.scenarios):
        model = models[s.name]
        traffic = s.traffic()
        if s.kind == "training":
            from tokenfab.train import TrainingJob

            run = s.training or TrainingRun()
            job = TrainingJob(tokens=run.tokens, seq_len=run.seq_len, global_batch_tokens=run.global_batch_tokens,
                              precision=run.precision)
            key = hashlib.sha256(json.dumps(
                ["training", model.model_dump(mode="json"), job.model_dump(mode="json"), run.chips_per_run],
                sort_keys=True).encode()).hexdigest()[:16]
            out.append(ResolvedScenario(s.name, weights[s.name], model, traffic, run.precision, None, key,
                                        kind="training", request=job, chips_per_run=run.chips_per_run))
            continue
        if model.kind == "llm":
            key = hashlib.sha256(json.dumps(
                [model.model_dump(mode="json"), traffic.model_dump(mode="json"), s.precision, s.kv_precision,
                 max_chips, fidelity], sort_keys=True).encode()).hexdigest()[:16]
            out.append(ResolvedScenario(s.name, weights[s.name], model, traffic, s.precision, s.kv_precision, key))
            continue
        cls = GenerationRequest if model.kind == "diffusion" else RecsysRequest
        request = cls.from_mapping(s.request, origin=f"workload {workload.name}: scenarios.{i} ({s.name}).request")
        key = hashlib.sha256(json.dumps(
            [model.model_dump(mode="json"), request.model_dump(mode="json"), s.precision, max_chips],
            sort_keys=True).encode()).hexdigest()[:16]
        out.append(ResolvedScenario(s.name, weights[s.name], model, traffic, s.precision, None, key,
                                    kind=model.kind, request=request))
    return tuple(out)


def unit_references(workload: WorkloadSpec, ctx: "EvalContext") -> "EvalContext":
    """The context with the exchange rate of non-token scenarios set from the workload's baseline
    chip (unchanged for an all-LLM mix). SpecError when the baseline cannot serve one of them."""
    from tokenfab import catalog

    if all(s.kind == "llm" for s in ctx.scenarios):
        return ctx
    chip = catalog.load_chip(workload.baseline)
    ran, _, _ = run_scenarios(chip, f"chip:{chip.id}:{chip.model_dump_json()}", ctx)
    rows = ran["scenarios"]
    refs = []
    for s in ctx.scenarios:
        if s.kind == "llm":
            continue
        row = rows[s.name]
        if "error" in row or not row.get("usd_per_unit"):
            raise SpecError(f"workload {workload.name}: the baseline {chip.id} cannot serve scenario {s.name} "
                            f"({s.model.id}), whose cost per {s.unit} on it is the unit the mix objective counts "
                            f"that scenario in: {row.get('error') or 'no cost'}")
        refs.append((s.name, row["usd_per_unit"]))
    tok = [(s.weight, rows[s.name]["usd_per_mtok"]) for s in ctx.scenarios
           if s.kind == "llm" and rows[s.name].get("usd_per_mtok") is not None]
    tw = sum(w for w, _ in tok)
    rate = sum(w * x for w, x in tok) / tw if tw > 0 else 1.0
    return replace(ctx, token_rate=rate, unit_refs=tuple(refs))


def make_context(workload: WorkloadSpec, base: dict, constraints: Constraints, max_chips: int, fidelity: str,
                 economics: Economics | None = None) -> EvalContext:
    """The evaluation context of a search (nodes in the constraints resolved through the fab data)."""
    allowed = None
    if constraints.nodes:
        from tokenfab.cost.data import shipped_cost_data
        from tokenfab.cost.fab import resolve_node

        fab = shipped_cost_data().fab
        allowed = tuple(sorted({resolve_node(n, fab).id for n in constraints.nodes}))
    ctx = EvalContext(base=base, scenarios=resolve_scenarios(workload, max_chips, fidelity),
                      constraints=constraints, max_chips=max_chips, fidelity=fidelity, economics=economics,
                      allowed_nodes=allowed)
    return unit_references(workload, ctx)


# ---- worker-side cache --------------------------------------------------------------------------

_CACHE: "OrderedDict[tuple[str, str], dict]" = OrderedDict()
_CACHE_SIZE = 20000
EVALUATIONS = {"designs": 0, "scenarios": 0}
"""Counters of this process (designs and scenario deployments actually computed)."""


def clear_cache() -> None:
    """Forget cached scenario results (tests)."""
    _CACHE.clear()


def _cached(key: tuple[str, str]) -> dict | None:
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
    return hit


def _store(key: tuple[str, str], value: dict) -> None:
    _CACHE[key] = value
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


# ---- scenarios --------------------------------------------------------------------------------

def deploy(chip: ChipSpec, scen: ResolvedScenario, max_chips: int, fidelity: str) -> dict:
    """The best deployment of a scenario on a chip (`api.estimate`; `api.estimate_any` for
    diffusion / recommendation), as a dict; raises SpecError when nothing fits in memory."""
    from tokenfab import api

    if scen.kind == "training":
        return deploy_training(chip, scen)
    if scen.kind != "llm":
        return deploy_other(chip, scen, max_chips)
    est = api.estimate(scen.model, chip, scen.traffic, precision=scen.precision, kv_precision=scen.kv_precision,
                       max_chips=max_chips, fidelity=fidelity)
    mem = est.memory_gb_per_chip
    return {
        "model": est.model, "num_chips": est.num_chips, "tp": est.tp, "pp": est.pp, "ep": est.ep, "dp": est.dp,
        "batch": est.batch, "weight_precision": est.weight_precision, "kv_precision": est.kv_precision,
        "ttft_ms": est.ttft_ms, "tpot_ms": est.tpot_ms, "meets_slo": est.meets_slo,
        "slo_ttft_ms": est.slo_ttft_ms, "slo_tpot_ms": est.slo_tpot_ms,
        "output_tok_s_per_chip": est.output_tok_s_per_chip, "input_tok_s_per_chip": est.input_tok_s_per_chip,
        "total_tok_s_per_chip": est.total_tok_s_per_chip, "prefill_time_share": est.prefill_time_share,
        "bound": dict(est.bound), "weights_gb": mem.weights, "kv_cache_gb": mem.kv_cache,
        "capacity_gb": mem.capacity, "efficiency_source": est.efficiency_source,
        "mode": est.mode, "pools": est.pools,
    }


def deploy_other(chip: ChipSpec, scen: ResolvedScenario, max_chips: int) -> dict:
    """The best deployment of a diffusion or recommendation scenario (`api.estimate_any`), with
    its throughput per chip and latency against its request's limit; `tp` is the parallel degree
    of one replica (Ulysses × ring; embedding shards)."""
    from tokenfab import api

    est = api.estimate_any(scen.model, chip, workload=scen.request, precision=scen.precision, max_chips=max_chips)
    common = {"kind": scen.kind, "unit": scen.unit, "model": est.model, "num_chips": est.num_chips, "ep": 1,
              "pp": 1, "dp": 1, "weight_precision": est.weight_precision, "meets_slo": est.meets_slo,
              "bound": est.bound, "memory_gb_per_chip": dict(est.memory_gb_per_chip),
              "efficiency_source": est.efficiency_source}
    if scen.kind == "diffusion":
        return {**common, "tp": est.ulysses * est.ring, "batch": 1, "latency_s": est.latency_s,
                "slo_latency_s": est.slo_latency_s, "videos_per_hour_per_chip": est.videos_per_hour_per_chip,
                "video_seconds": est.video_seconds, "width_px": est.width_px, "height_px": est.height_px,
                "frames": est.frames, "steps": est.steps}
    return {**common, "tp": est.shard, "batch": est.batch, "latency_ms": est.latency_ms,
            "slo_latency_ms": est.slo_latency_ms, "samples_s_per_chip": est.samples_s_per_chip}


def deploy_training(chip: ChipSpec, scen: ResolvedScenario) -> dict:
    """The best training mapping of a training scenario on a chip (`tokenfab.train.estimate_training`),
    with the tokens/s one chip trains over the run (failures and checkpoints included); a chip
    without FP8 math trains at bf16. SpecError when no mapping fits memory."""
    from tokenfab.train import estimate_training

    job = scen.request
    if job.precision == "fp8" and not chip.fp8_tflops:
        job = job.model_copy(update={"precision": "bf16"})
    try:
        r = estimate_training(scen.model, chip, scen.chips_per_run, job)
    except ValueError as exc:  # no mapping fits (the message says how much memory is missing)
        raise SpecError(str(exc).splitlines()[0]) from None
    mp = r["mapping"]
    return {"kind": "training", "unit": UNITS["training"], "model": r["model"], "num_chips": r["chips_used"],
            "tp": mp["tp"], "pp": mp["pp"], "ep": mp["ep"], "dp": mp["dp"], "batch": mp["micro_batch"],
            "mapping": mp, "weight_precision": r["precision"], "meets_slo": True, "step_time_s": r["step_time_s"],
            "mfu": r["mfu"], "days": r["days"], "chip_hours": r["chip_hours"], "tokens": r["tokens"],
            "total_tok_s_per_chip": r["tokens"] / r["chip_hours"] / 3600.0,
            "memory_gib_per_chip": r["memory_gib_per_chip"], "efficiency_source": r["efficiency_source"]}


def price_other(dep: dict, chip_hour_usd: float, ctx: "EvalContext", name: str) -> dict:
    """A non-token deployment's cost per unit of its work (as `workloads.with_cost`: $ per video
    = $/chip-hour × chips × latency; $ per million samples = $/chip-hour over samples per
    chip-hour; $ per trillion training tokens = $/chip-hour × chip-hours of the run / its trillions
    of tokens) and its $/Mtok-equivalent r · cost / baseline cost (see `WorkloadSpec`)."""
    from tokenfab.cost import tco
    if dep["kind"] == "training":
        unit_usd = chip_hour_usd * dep["chip_hours"] / (dep["tokens"] / 1e12)
    elif dep["kind"] == "diffusion":
        unit_usd = tco.usd_per_video(chip_hour_usd, dep["num_chips"], dep["latency_s"])
    else:
        unit_usd = tco.usd_per_million_samples(chip_hour_usd, dep["samples_s_per_chip"])
    ref = dict(ctx.unit_refs).get(name)
    equiv = ctx.token_rate * unit_usd / ref if (ref and ctx.token_rate is not None) else None
    return {**dep, "usd_per_chip_hour": chip_hour_usd, "usd_per_unit": unit_usd,
            UNIT_COST_KEYS[dep["kind"]]: unit_usd, "baseline_usd_per_unit": ref, "usd_per_mtok": equiv}


def price(dep: dict, chip: ChipSpec, econ: Economics | None) -> dict:
    """A deployment's $/Mtok through the one pricing path (`tco.price_deployment`, every pool on
    the design): blended over input + output tokens, and split by phase."""
    from tokenfab.cost import tco

    pools = [(p["role"], chip, p["chip_share"]) for p in dep.get("pools") or []] or [("aggregated", chip, 1.0)]
    priced = tco.price_deployment(pools, dep["input_tok_s_per_chip"], dep["output_tok_s_per_chip"],
                                  dep["prefill_time_share"], econ or tco.default_economics())
    split = priced.tokens
    return {**dep, "usd_per_chip_hour": priced.usd_per_chip_hour, "usd_per_mtok": split.blended_usd_per_mtok,
            "usd_per_mtok_input": split.input_usd_per_mtok, "usd_per_mtok_output": split.output_usd_per_mtok}


def chip_hour(chip: ChipSpec, econ: Economics | None) -> dict:
    """$/chip-hour of a chip and its parts (owned TCO at its price, or the economics' rental)."""
    from tokenfab.cost import tco

    cost = tco.chip_hour_cost(chip, econ or tco.default_economics())
    return {"basis": cost.basis, "price_usd": cost.chip_price_usd, "system_usd": cost.system_usd,
            "total": cost.total_usd_per_hour, **{k: v for k, v in cost.parts().items()}}


def run_scenarios(chip: ChipSpec, ident: str, ctx: EvalContext) -> tuple[dict, list[str], float]:
    """(per-scenario results, reasons, violation) of a chip on the context's scenarios."""
    hourly = chip_hour(chip, ctx.economics)
    scenarios: dict[str, dict] = {}
    reasons: list[str] = []
    violation = 0.0
    for scen in ctx.scenarios:
        key = (ident, scen.key)
        dep = _cached(key)
        if dep is None:
            try:
                dep = deploy(chip, scen, ctx.max_chips, ctx.fidelity)
            except SpecError as exc:
                dep = {"error": str(exc)}
            EVALUATIONS["scenarios"] += 1
            _store(key, dep)
        if "error" in dep:
            reasons.append(f"nothing fits memory for {scen.name} ({scen.model.id}): {dep['error']}")
            violation += 1.0
            scenarios[scen.name] = {"weight": scen.weight, "error": dep["error"]}
            continue
        if scen.kind != "llm":
            scenarios[scen.name] = {"weight": scen.weight, **price_other(dep, hourly["total"], ctx, scen.name)}
            if not dep["meets_slo"]:
                lat, lim, unit = ((dep["latency_s"], dep["slo_latency_s"], "s") if scen.kind == "diffusion"
                                  else (dep["latency_ms"], dep["slo_latency_ms"], "ms"))
                reasons.append(f"misses the SLO of {scen.name} ({scen.model.id}) with every mapping: best latency "
                               f"{lat:.3g} > {lim:g} {unit}")
                violation = max(violation + lat / lim - 1.0, 1e-3)
            continue
        row = {"weight": scen.weight, **price(dep, chip, ctx.economics)}
        scenarios[scen.name] = row
        if not dep["meets_slo"]:
            miss = []
            if dep["slo_tpot_ms"] and dep["tpot_ms"] > dep["slo_tpot_ms"]:
                miss.append(f"TPOT {dep['tpot_ms']:.1f} > {dep['slo_tpot_ms']:g} ms")
                violation += dep["tpot_ms"] / dep["slo_tpot_ms"] - 1.0
            if dep["slo_ttft_ms"] and dep["ttft_ms"] > dep["slo_ttft_ms"]:
                miss.append(f"TTFT {dep['ttft_ms']:.0f} > {dep['slo_ttft_ms']:g} ms")
                violation += dep["ttft_ms"] / dep["slo_ttft_ms"] - 1.0
            reasons.append(f"misses the SLO of {scen.name} ({scen.model.id}) with every mapping: "
                           f"best {', '.join(miss) or 'point misses a limit'}")
            violation = max(violation, 1e-3)
    return {"scenarios": scenarios, "chip_hour": hourly}, reasons, violation


def mix_objectives(scenarios: dict[str, dict]) -> dict[str, float]:
    """Weighted mix figures: $/Mtok (total cost over total tokens; non-token scenarios in
    $/Mtok-equivalents, see `WorkloadSpec`), mean TPOT and TTFT over the LLM scenarios."""
    rows = [r for r in scenarios.values() if "error" not in r]
    tok = [r for r in rows if "tpot_ms" in r]
    other = len(tok) < len(rows)
    tw = sum(r["weight"] for r in tok) if other else 1.0  # all LLM: the weights already sum to 1
    usd = [r["usd_per_mtok"] for r in rows]
    return {
        "usd_per_mtok": (sum(r["weight"] * r["usd_per_mtok"] for r in rows) if all(x is not None for x in usd)
                         else float("nan")),
        "tpot_ms": sum(r["weight"] * r["tpot_ms"] for r in tok) / tw if tw > 0 else 0.0,
        "ttft_ms": sum(r["weight"] * r["ttft_ms"] for r in tok) / tw if tw > 0 else 0.0,
    }


# ---- designs ----------------------------------------------------------------------------------

def chip_figures(rep: Any, spec: ChipSpec | None, design: Any) -> dict:
    """What a table shows of a derived design."""
    ds = rep.datasheet
    bf16 = ds.get("bf16_tflops") or 0.0
    hbm = ds.get("hbm_tb_s") or 0.0
    shared = design.compute_dies * design.die.shared_sram_mb
    core = design.cores * design.die.core.sram_kb / 1024.0
    return {
        "process_node": rep.process_node, "compute_dies": design.compute_dies, "cores": design.cores,
        "clock_mhz": design.clock_mhz, "tdp_w": design.tdp_w, "power_w": rep.power_w,
        "die_area_mm2": rep.die_area_mm2, "die_mm2_each": rep.die_area_mm2_each,
        "unit_cost_usd": rep.unit_cost_usd, "price_usd": spec.price_usd if spec is not None else None,
        "bf16_tflops": bf16, "fp8_tflops": ds.get("fp8_tflops") or 0.0, "hbm_tb_s": hbm,
        "hbm_gb": ds.get("hbm_gb") or 0.0, "hbm_generation": design.memory.tech_id,
        "hbm_stacks": design.memory.hbm_stacks, "shared_sram_mb": shared, "core_sram_mb": core,
        "sram_mb_total": shared + core, "scaleup_gb_s": ds.get("scaleup_gb_s") or 0.0,
        "flops_per_byte": bf16 / hbm if hbm else None,
        "sram_mb_per_bf16_pflops": (shared + core) / (bf16 / 1000.0) if bf16 else None,
        "area_mm2_breakdown": dict(rep.area_mm2_breakdown),
    }


def _physical(rep: Any, design: Any) -> tuple[list[str], float]:
    """Reasons and violation of the physical checks (`derive`)."""
    v = 0.0
    each = rep.die_area_mm2_each
    if each > rep.reticle_limit_mm2:
        v += each / rep.reticle_limit_mm2 - 1.0
    if rep.shoreline_needed_mm > rep.shoreline_available_mm:
        v += rep.shoreline_needed_mm / rep.shoreline_available_mm - 1.0
    if rep.power_w > design.tdp_w:
        v += rep.power_w / design.tdp_w - 1.0
    if rep.infeasible_reasons and v == 0.0:
        v = 1.0  # e.g. no packaging fits the interposer
    return list(rep.infeasible_reasons), v


def _constraints(fig: dict, c: Constraints, allowed_nodes: tuple[str, ...] | None) -> tuple[list[str], float]:
    """Reasons and violation of the space's constraints."""
    reasons, v = [], 0.0
    checks = (("max_die_area_mm2", "die_area_mm2", "total compute silicon {x:.0f} mm² exceeds {lim:g} mm²"),
              ("max_die_mm2_each", "die_mm2_each", "a compute die of {x:.0f} mm² exceeds {lim:g} mm²"),
              ("max_tdp_w", "tdp_w", "TDP {x:.0f} W exceeds {lim:g} W"),
              ("max_power_w", "power_w", "estimated power {x:.0f} W exceeds {lim:g} W"),
              ("max_unit_cost_usd", "unit_cost_usd", "unit cost ${x:,.0f} exceeds ${lim:,.0f}"))
    for limit, key, text in checks:
        lim = getattr(c, limit)
        x = fig.get(key)
        if lim is None:
            continue
        if x is None:
            reasons.append(f"constraint {limit}: {key} is unknown")
            v += 1.0
        elif x > lim:
            reasons.append("constraint: " + text.format(x=x, lim=lim))
            v += x / lim - 1.0
    if allowed_nodes is not None and fig["process_node"] not in allowed_nodes:
        reasons.append(f"constraint: node {fig['process_node']} is not one of {', '.join(allowed_nodes)}")
        v += 1.0
    return reasons, v


def evaluate_point(params: dict[str, Any], ctx: EvalContext) -> dict:
    """The result of one design-space point (see the module docstring)."""
    from tokenfab.design import derive, to_chip_spec
    from tokenfab.explore.designs import build_design

    t0 = time.perf_counter()
    design, h, error = build_design(ctx.base, params)
    out: dict[str, Any] = {"design_hash": h, "design_id": f"dse-{h[:10]}", "params": dict(params),
                           "feasible": False, "reasons": [], "violation": 0.0, "objectives": {},
                           "chip": {}, "chip_hour": {}, "scenarios": {}}
    if design is None:
        out.update(reasons=[error], violation=10.0, seconds=time.perf_counter() - t0)
        return out
    EVALUATIONS["designs"] += 1
    rep = derive(design)
    fig = chip_figures(rep, None, design)
    out["chip"] = fig
    reasons, violation = _physical(rep, design)
    more, v2 = _constraints(fig, ctx.constraints, ctx.allowed_nodes)
    reasons += more
    violation += v2
    out["objectives"] = {"unit_cost_usd": rep.unit_cost_usd, "die_area_mm2": rep.die_area_mm2,
                         "power_w": rep.power_w}
    if reasons:  # not buildable or not allowed: the scenarios are not run
        out.update(reasons=reasons, violation=violation, seconds=time.perf_counter() - t0)
        return out
    spec = to_chip_spec(design)
    fig["price_usd"] = spec.price_usd
    ran, sreasons, sv = run_scenarios(spec, h, ctx)
    out.update(ran)
    out["objectives"].update(mix_objectives(ran["scenarios"]) if not sreasons else {})
    c = ctx.constraints
    if not sreasons and c.max_tpot_ms is not None and out["objectives"]["tpot_ms"] > c.max_tpot_ms:
        sreasons.append(f"constraint: mix mean TPOT {out['objectives']['tpot_ms']:.1f} ms exceeds {c.max_tpot_ms:g} ms")
        sv += out["objectives"]["tpot_ms"] / c.max_tpot_ms - 1.0
    out.update(feasible=not sreasons, reasons=sreasons, violation=sv, seconds=time.perf_counter() - t0)
    return out


def evaluate_chip(chip: ChipSpec, ctx: EvalContext, unit_cost_usd: float | None = None) -> dict:
    """A catalog chip (the baseline) on the context's scenarios, in the shape of a trial result."""
    t0 = time.perf_counter()
    ran, reasons, violation = run_scenarios(chip, f"chip:{chip.id}:{chip.model_dump_json()}", ctx)
    bf16, hbm = chip.bf16_tflops or 0.0, chip.hbm_tb_s or 0.0
    fig = {"process_node": chip.process_node, "compute_dies": None, "cores": chip.cores,
           "clock_mhz": chip.clock_mhz, "tdp_w": chip.tdp_w, "power_w": None, "die_area_mm2": chip.die_area_mm2,
           "die_mm2_each": None, "unit_cost_usd": unit_cost_usd, "price_usd": chip.price_usd,
           "bf16_tflops": bf16, "fp8_tflops": chip.fp8_tflops or 0.0, "hbm_tb_s": hbm, "hbm_gb": chip.hbm_gb,
           "hbm_generation": chip.memory_type, "hbm_stacks": None, "shared_sram_mb": chip.sram_mb,
           "core_sram_mb": None, "sram_mb_total": chip.sram_mb, "scaleup_gb_s": chip.scaleup_gb_s,
           "flops_per_byte": bf16 / hbm if hbm else None, "sram_mb_per_bf16_pflops": None,
           "area_mm2_breakdown": None}
    objectives = mix_objectives(ran["scenarios"]) if not any("nothing fits" in r for r in reasons) else {}
    objectives.update(unit_cost_usd=unit_cost_usd, die_area_mm2=chip.die_area_mm2, power_w=chip.tdp_w)
    return {"design_id": chip.id, "design_hash": None, "params": {}, "feasible": not reasons, "reasons": reasons,
            "violation": violation, "objectives": objectives, "chip": fig, **ran,
            "seconds": time.perf_counter() - t0}


def evaluate_chunk(items: list[tuple[int, dict]], ctx: EvalContext) -> list[tuple[int, dict]]:
    """Evaluate (key, params) pairs in order: the unit of work an executor sends to a worker."""
    return [(key, evaluate_point(params, ctx)) for key, params in items]
