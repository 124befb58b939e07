"""The sections of a study: what each computes and which inputs its result depends on.

A `Section` pairs a key (`estimate/<model>/<chip>/<traffic>`, `serving/<chip>`, `build_vs_buy`,
`design`, `training/<model>/<chip>`) with the resolved inputs its result depends on (hashed for the
cache) and a function that computes the result as a JSON-able dict. `plan` lists them in run order.
Volume sizing and the summary are cheap pure functions of the section results (see `run`).
"""

from __future__ import annotations

from typing import Any

from tokenfab import api
from tokenfab.cost import tco
from tokenfab.cost.data import CostInputs, resolve
from tokenfab.specs import ChipSpec, ModelSpec, SpecError
from tokenfab.specs.economics import Economics, RentalQuote
from tokenfab.specs.study import TrafficCase
from tokenfab.study.load import LoadedStudy, Refs, load_chip_ref, load_model_ref
from tokenfab.study.design import design_section
from tokenfab.study.section import Section
from tokenfab.study.training import training_section
from tokenfab.train import TrainingJob


# ---- economics ------------------------------------------------------------------------------

def cost_inputs(study: LoadedStudy) -> CostInputs:
    """Shipped cost data, then the study's economics file and preset, then its overrides."""
    e = study.spec.economics
    file = study.resolve_path(e.file) if e.file else None
    try:
        ci = resolve(file, preset=e.preset)
    except SpecError as exc:
        raise SpecError(f"{study.path.name}: economics: {exc}") from None
    if e.overrides:
        try:
            econ = ci.economics.with_overrides(dict(e.overrides), origin=f"study {study.path.name}")
        except SpecError as exc:
            raise SpecError(f"{study.path.name}: economics.overrides: {str(exc).split(': ', 1)[-1]}") from None
        ci = CostInputs(data=ci.data, economics=econ)
    return ci


def rental_quote(ci: CostInputs, chip: ChipSpec, market_rental: bool) -> RentalQuote | None:
    """The chip's market rental quote when the study prices at market rental and one exists."""
    return ci.data.market_rental.get(chip.id) if market_rental else None


def economics_for(econ: Economics, quote: RentalQuote | None) -> Economics:
    return econ if quote is None else tco.at_rental_quote(econ, quote)


# ---- estimate -------------------------------------------------------------------------------

def price(chip: ChipSpec, est: api.Estimate, econ: Economics) -> dict:
    """$/Mtoken of an estimate and the chip-hour cost by part; `available: False` says why not."""
    pools = [(p["role"], chip, p["chip_share"]) for p in est.pools] or [("aggregated", chip, 1.0)]
    try:  # the study's chip in every pool: its estimates run on one chip
        priced = tco.price_deployment(pools, est.input_tok_s_per_chip, est.output_tok_s_per_chip,
                                      est.prefill_time_share, econ)
    except (SpecError, ValueError) as exc:
        return {"available": False, "reason": str(exc)}
    split, hourly = priced.tokens, next(iter(priced.hours.values()))
    per_mtok_out = hourly.total_usd_per_hour * 1e6 / 3600.0 / est.output_tok_s_per_chip
    total = hourly.total_usd_per_hour or 1.0
    return {
        "available": True, "basis": hourly.basis,
        "basis_source": econ.source_of("rental_usd_per_chip_hour") if hourly.basis == "rental" else chip.source_of("price_usd"),
        "usd_per_chip_hour": hourly.total_usd_per_hour, "chip_hour": hourly.model_dump(mode="json"),
        "usd_per_mtok_input": split.input_usd_per_mtok, "usd_per_mtok_output": split.output_usd_per_mtok,
        "usd_per_mtok_output_all_in": per_mtok_out,
        "all_in_parts_usd_per_mtok": {k: v / total * per_mtok_out for k, v in hourly.parts().items()},
    }


def throughput_curve(model: ModelSpec, chip: ChipSpec, case: TrafficCase, max_chips: int,
                     batches: list[int]) -> list[dict]:
    """Best deployment at each batch with the SLOs lifted: TPOT, TTFT and tok/s/chip per point."""
    traffic = case.traffic().model_copy(update={"slo_ttft_ms": None, "slo_tpot_ms": None})
    points = []
    for b in batches:
        try:
            e = api.estimate(model, chip, traffic, batch=b, max_chips=max_chips)
        except SpecError:
            continue  # this batch fits on no deployment: the curve ends there
        meets = ((case.slo_ttft_ms is None or e.ttft_ms <= case.slo_ttft_ms)
                 and (case.slo_tpot_ms is None or e.tpot_ms <= case.slo_tpot_ms))
        points.append({"batch": b, "num_chips": e.num_chips, "tp": e.tp, "pp": e.pp, "ep": e.ep, "dp": e.dp,
                       "precision": e.weight_precision, "ttft_ms": e.ttft_ms, "tpot_ms": e.tpot_ms,
                       "output_tok_s_per_chip": e.output_tok_s_per_chip, "meets_slo": meets})
    return points


def estimate_section(model: ModelSpec, chip: ChipSpec, case: TrafficCase, econ: Economics, max_chips: int,
                     batches: list[int]) -> dict:
    """The best deployment meeting the SLOs (or the reason none fits), priced, with its curve."""
    try:
        est = api.estimate(model, chip, case.traffic(), max_chips=max_chips)
    except SpecError as exc:
        return {"status": "no-fit", "error": str(exc)}
    return {"status": "ok", "estimate": est.model_dump(mode="json"), "cost": price(chip, est, econ),
            "curve": throughput_curve(model, chip, case, max_chips, batches)}


# ---- build vs buy ---------------------------------------------------------------------------

def build_vs_buy_section(custom: ChipSpec, vendor: ChipSpec, model: ModelSpec, case: TrafficCase,
                         ci: CostInputs, fleet: float, max_chips: int) -> dict:
    """NRE, fleet costs, break-even and tornado of building `custom` against buying `vendor`."""
    from tokenfab.cost.compare import compare_build_vs_buy

    try:
        est_c = api.estimate(model, custom, case.traffic(), max_chips=max_chips)
        est_v = api.estimate(model, vendor, case.traffic(), max_chips=max_chips)
        result = compare_build_vs_buy(custom, vendor, est_c, est_v, ci.data, ci.economics, fleet, model=model.id)
    except SpecError as exc:
        return {"status": "error", "error": str(exc)}
    return {"status": "ok", "result": result.model_dump(mode="python")}


# ---- plan -----------------------------------------------------------------------------------

def plan(study: LoadedStudy, refs: Refs, ci: CostInputs) -> list[Section]:
    """Every section of the study in run order, with the inputs each depends on."""
    spec = study.spec
    econ_dump = ci.economics.model_dump(mode="json")
    sections: list[Section] = []
    for model in refs.models.values():
        for chip in refs.chips.values():
            quote = rental_quote(ci, chip, spec.economics.market_rental)
            econ = economics_for(ci.economics, quote)
            for case in spec.traffic:
                inputs = {"model": model, "chip": chip, "traffic": case, "economics": econ_dump,
                          "rental_quote": quote, "max_chips": spec.max_chips, "curve_batches": spec.curve_batches}
                sections.append(Section(
                    key=f"estimate/{model.id}/{chip.id}/{case.name}", kind="estimate",
                    title=f"{model.id} on {chip.id} ({case.name})", inputs=inputs,
                    compute=lambda m=model, c=chip, t=case, e=econ: estimate_section(
                        m, c, t, e, spec.max_chips, spec.curve_batches)))
    if spec.serving is not None:
        sections.extend(_serving_sections(study, refs, ci))
    if spec.build_vs_buy is not None:
        b = spec.build_vs_buy
        custom = load_chip_ref(study, b.custom_chip, "build_vs_buy.custom_chip")
        vendor = load_chip_ref(study, b.vendor_chip, "build_vs_buy.vendor_chip")
        model = load_model_ref(study, b.model, "build_vs_buy.model")
        case = spec.traffic_case(b.traffic)
        inputs = {"custom": custom, "vendor": vendor, "model": model, "traffic": case, "fleet": b.fleet_vendor_equiv,
                  "economics": econ_dump, "fab": ci.data.fab, "nre": ci.data.nre, "sensitivity": ci.data.sensitivity,
                  "max_chips": spec.max_chips}
        sections.append(Section(
            key="build_vs_buy", kind="build_vs_buy", title=f"build {custom.id} vs buy {vendor.id}", inputs=inputs,
            compute=lambda: build_vs_buy_section(custom, vendor, model, case, ci, b.fleet_vendor_equiv,
                                                 spec.max_chips)))
    if spec.design is not None:
        sections.append(_design_section(study, ci))
    if spec.training is not None:
        sections.extend(training_sections(study, refs, ci))
    return sections


def training_sections(study: LoadedStudy, refs: Refs, ci: CostInputs) -> list[Section]:
    """One `training/<model>/<chip>` section per (model, chip) of the study's training section."""
    spec, t = study.spec, study.spec.training
    models = ([load_model_ref(study, m, f"training.models.{i}") for i, m in enumerate(t.models)] if t.models
              else list(refs.models.values()))
    chips = ([load_chip_ref(study, c, f"training.chips.{i}") for i, c in enumerate(t.chips)] if t.chips
             else list(refs.chips.values()))
    job = TrainingJob(tokens=t.tokens, seq_len=t.seq_len, global_batch_tokens=t.global_batch_tokens,
                      precision=t.precision)
    econ_dump = ci.economics.model_dump(mode="json")
    out = []
    for model in models:
        for chip in chips:
            quote = rental_quote(ci, chip, spec.economics.market_rental)
            econ = economics_for(ci.economics, quote)
            inputs = {"model": model, "chip": chip, "job": job, "chips_per_run": t.chips_per_run,
                      "economics": econ_dump, "rental_quote": quote}
            out.append(Section(key=f"training/{model.id}/{chip.id}", kind="training",
                               title=f"training {model.id} on {chip.id}", inputs=inputs,
                               compute=lambda m=model, c=chip, e=econ: training_section(m, c, t.chips_per_run, job, e)))
    return out


def _design_section(study: LoadedStudy, ci: CostInputs) -> Section:
    return design_section(study, ci)


def _serving_sections(study: LoadedStudy, refs: Refs, ci: CostInputs) -> list[Section]:
    from tokenfab.study.serving import profile_fingerprint, run_serving

    spec, s = study.spec, study.spec.serving
    model = (load_model_ref(study, s.model, "serving.model") if s.model else next(iter(refs.models.values())))
    chips = ([load_chip_ref(study, c, f"serving.chips.{i}") for i, c in enumerate(s.chips)] if s.chips
             else list(refs.chips.values()))
    case = spec.traffic_case(s.traffic)
    try:
        fingerprint = profile_fingerprint(s, case, study.resolve_path)
    except SpecError as exc:
        raise SpecError(f"{study.path.name}: serving.profile: {exc}") from None
    out = []
    for chip in chips:
        inputs = {"model": model, "chip": chip, "traffic": case, "serving": s, "workload": fingerprint,
                  "max_chips": spec.max_chips}

        def compute(c=chip) -> dict:
            try:
                est = api.estimate(model, c, case.traffic(), max_chips=spec.max_chips)
            except SpecError as exc:
                return {"status": "no-fit", "reason": str(exc)}
            return {**run_serving(model, c, case, s, est, study.resolve_path), "model": model.id, "chip": c.id,
                    "traffic": case.name}

        out.append(Section(key=f"serving/{model.id}/{chip.id}/{case.name}", kind="serving",
                           title=f"serving {model.id} on {chip.id}", inputs=inputs, compute=compute,
                           persist=lambda r: r.get("status") in ("ok", "no-fit", "error")))
    return out


def describe_inputs(study: LoadedStudy, refs: Refs, ci: CostInputs) -> dict:
    """What the report lists as inputs and sources: chips, models, economics, traffic, volume."""
    spec = study.spec
    chips: dict[str, Any] = {}
    extra_chips = []
    if spec.build_vs_buy is not None:
        extra_chips = [(spec.build_vs_buy.custom_chip, load_chip_ref(study, spec.build_vs_buy.custom_chip, "")),
                       (spec.build_vs_buy.vendor_chip, load_chip_ref(study, spec.build_vs_buy.vendor_chip, ""))]
    if spec.training is not None and spec.training.chips:  # chips trained on but not served: sourced too
        extra_chips += [(ref, load_chip_ref(study, ref, "")) for ref in spec.training.chips]
    for ref, c in [*refs.chips.items(), *extra_chips]:
        values = {k: v for k, v in c.model_dump(mode="json").items()
                  if k not in ("sources", "estimated_fields", "notes", "id", "microarch") and v not in (None, "", [])}
        if c.microarch is not None:
            values["microarch"] = microarch_summary(c.microarch)
        chips[c.id] = {"ref": ref, "name": c.name, "vendor": c.vendor, "spec_confidence": c.spec_confidence,
                       "estimated_fields": list(c.estimated_fields), "sources": dict(c.sources), "values": values,
                       "notes": c.notes}
    models = {}
    for ref, m in refs.models.items():
        models[m.id] = {"ref": ref, "family": m.family, "source": getattr(m, "source", ""),
                        "total_params_b": m.total_params() / 1e9, "active_params_b": m.active_params() / 1e9}
    econ = ci.economics
    econ_values = econ.model_dump(mode="json", exclude={"sources", "estimated_fields"})
    return {
        "chips": chips, "models": models,
        "economics": {"preset": spec.economics.preset or ci.data.default_preset, "file": spec.economics.file,
                      "market_rental": spec.economics.market_rental, "overrides": dict(spec.economics.overrides),
                      "values": econ_values, "sources": {k: econ.source_of(k) for k in econ_values},
                      "estimated_fields": list(econ.estimated_fields),
                      "market_quotes": {c: q.model_dump(mode="json") for c, q in ci.data.market_rental.items()
                                        if c in chips} if spec.economics.market_rental else {}},
        "traffic": [t.model_dump(mode="json") for t in spec.traffic],
        "volume": spec.volume.model_dump(mode="json") if spec.volume else None,
    }


def microarch_summary(m) -> str:
    """One line for a chip's microarchitecture block (its source is in the chip's sources)."""
    shared = f", {m.shared_sram_mib:g} MiB shared at {m.shared_sram_tb_s:g} TB/s" if m.shared_sram_mib else ""
    sfu = f", SFU {m.sfu_tops:g} T/s" if getattr(m, "sfu_tops", None) else ""
    return (f"{m.tile_units:g} tile units, {m.sram_per_core_kib:g} KiB SRAM each{shared}, "
            f"{m.matrix_rows:g}×{m.matrix_cols:g}×{m.matrix_depth:g} {m.dataflow.replace('_', '-')}{sfu}")
