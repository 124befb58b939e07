"""Running a study: compute (or reuse) each section, assemble results, write JSON, CSV and HTML.

A run with the same resolved inputs as the last one in the same folder loads `results.json`
and returns at once (`cached`). Otherwise each section is taken from `sections/` when its input
hash matches (resumed or unchanged) and computed when not, and each computed section is
written atomically as soon as it completes, so killing a run loses at most the section in
progress.
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import tokenfab
from tokenfab.study.cache import ResultStore, atomic_write_text, code_fingerprint, json_safe, stable_hash
from tokenfab.study.load import LoadedStudy, load_study, resolve_refs
from tokenfab.study.section import RunContext, Section
from tokenfab.study.sections import cost_inputs, describe_inputs, plan
from tokenfab.study.training import training_answer

RESULTS_SCHEMA = "tokenfab.study-results/1"
CSV_COLUMNS = (
    "model", "chip", "traffic", "status", "spec_confidence", "num_chips", "tp", "pp", "ep", "dp", "batch",
    "weight_precision", "kv_precision", "ttft_ms", "tpot_ms", "output_tok_s_per_chip", "meets_slo",
    "usd_per_chip_hour", "cost_basis", "usd_per_mtok_input", "usd_per_mtok_output", "usd_per_mtok_output_all_in",
    "chips_for_volume", "usd_per_day", "error", "study_hash", "tokenfab_version",
)

Progress = Callable[[str, Section, int, int], None]
"""Called as (event, section, index, total); event is `start`, `computed` or `reused`. A long section
(the design search) repeats `start` with its progress appended to the section's title."""


@dataclass
class RunOutcome:
    """What a run did and where it wrote."""

    results: dict
    out_dir: Path
    cached: bool
    seconds: float
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    @property
    def report_path(self) -> Path:
        return self.out_dir / "report.html"


def default_out_dir(study: LoadedStudy) -> Path:
    """`./<study name>-results` in the current folder."""
    return Path.cwd() / f"{study.spec.name}-results"


@dataclass(frozen=True)
class Prepared:
    """A study with its references resolved, its sections planned and its hash computed."""

    study: LoadedStudy
    sections: list[Section]
    inputs: dict
    hash: str


def prepare(study: LoadedStudy | str | Path) -> Prepared:
    """Resolve a study's inputs (models, chips, economics) and plan its sections; computes nothing."""
    study = study if isinstance(study, LoadedStudy) else load_study(study)
    refs = resolve_refs(study)
    ci = cost_inputs(study)
    sections = plan(study, refs, ci)
    inputs = describe_inputs(study, refs, ci)
    digest = stable_hash({"study": _study_meta(study), "volume": study.spec.volume,
                          "sections": [(s.key, s.hash) for s in sections]})
    return Prepared(study=study, sections=sections, inputs=inputs, hash=digest)


def study_hash(study: LoadedStudy | str | Path) -> str:
    """The hash of a study's resolved inputs and the tokenfab version (what `results.json` carries)."""
    return prepare(study).hash


def run_study(study: LoadedStudy | str | Path, out_dir: Path | None = None, *, use_cache: bool = True,
              progress: Progress | None = None, write_report: bool = True) -> RunOutcome:
    """Run every section of `study` into `out_dir` (reusing what is cached there) and write the results."""
    t0 = time.perf_counter()
    prep = prepare(study)
    study, sections, inputs, study_hash = prep.study, prep.sections, prep.inputs, prep.hash
    out = Path(out_dir) if out_dir is not None else default_out_dir(study)
    store = ResultStore(out)
    if use_cache:
        cached = store.load_results(study_hash)
        if cached is not None and (store.report_path.is_file() or not write_report):
            return RunOutcome(results=cached, out_dir=out, cached=True, seconds=time.perf_counter() - t0,
                              reused=[s.key for s in sections])
    outcome = RunOutcome(results={}, out_dir=out, cached=False, seconds=0.0)
    results: dict[str, dict] = {}
    for i, sec in enumerate(sections):
        h = sec.hash
        got = store.load_section(sec.key, h) if use_cache else None
        if got is not None:
            results[sec.key] = got
            outcome.reused.append(sec.key)
            _tell(progress, "reused", sec, i, len(sections))
            continue
        _tell(progress, "start", sec, i, len(sections))
        got = json_safe(_compute(sec, h, store, progress, i, len(sections)))  # as read back from disk (∞ → None)
        if sec.persist(got):
            store.save_section(sec.key, h, got)
        results[sec.key] = got
        outcome.computed.append(sec.key)
        _tell(progress, "computed", sec, i, len(sections))
    doc = assemble(study, sections, results, inputs, study_hash)
    store.save_results(doc)
    atomic_write_text(store.csv_path, results_csv(doc))
    if write_report:
        from tokenfab.report.study_html import render_study_html
        atomic_write_text(store.report_path, render_study_html(doc))
    outcome.results = doc
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _compute(sec: Section, h: str, store: ResultStore, progress: Progress | None, i: int, n: int) -> dict:
    if not sec.takes_context:
        return sec.compute()

    def status(note: str) -> None:
        _tell(progress, "start", replace(sec, title=f"{sec.title}: {note}"), i, n)

    return sec.compute(RunContext(work_dir=store.dir / sec.kind, input_hash=h, status=status))


def _tell(progress: Progress | None, event: str, sec: Section, i: int, n: int) -> None:
    if progress is not None:
        progress(event, sec, i, n)


def _study_meta(study: LoadedStudy) -> dict:
    s = study.spec
    return {"name": s.name, "title": s.title, "description": s.description, "version": s.version}


# ---- assembling -------------------------------------------------------------------------------

def assemble(study: LoadedStudy, sections: list[Section], results: dict[str, dict], inputs: dict,
             study_hash: str) -> dict:
    """The results document: rows per (model, chip, traffic), sections, summary, inputs, hash."""
    spec = study.spec
    rows = []
    for sec in sections:
        if sec.kind != "estimate":
            continue
        _, model, chip, traffic = sec.key.split("/", 3)
        rows.append(_row(model, chip, traffic, results[sec.key], spec, inputs))
    doc = {
        "schema": RESULTS_SCHEMA,
        "study": {**_study_meta(study), "file": str(study.path), "spec": spec.model_dump(mode="json")},
        "hash": study_hash, "tokenfab_version": tokenfab.__version__, "code_fingerprint": code_fingerprint(),
        "generated_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "inputs": inputs,
        "rows": rows,
        "sections": {s.key: {"kind": s.kind, "title": s.title, "hash": s.hash, **results[s.key]} for s in sections},
    }
    doc["summary"] = summarize(doc, spec)
    return doc


def _row(model: str, chip: str, traffic: str, res: dict, spec, inputs: dict) -> dict:
    row = {"model": model, "chip": chip, "traffic": traffic, "status": res.get("status"),
           "spec_confidence": inputs["chips"].get(chip, {}).get("spec_confidence")}
    if res.get("status") != "ok":
        row["error"] = res.get("error", "")
        return row
    e, c = res["estimate"], res["cost"]
    row.update({k: e[k] for k in ("num_chips", "tp", "pp", "ep", "dp", "batch", "weight_precision", "kv_precision",
                                  "ttft_ms", "tpot_ms", "output_tok_s_per_chip", "meets_slo")})
    if c.get("available"):
        row.update({"usd_per_chip_hour": c["usd_per_chip_hour"], "cost_basis": c["basis"],
                    "usd_per_mtok_input": c["usd_per_mtok_input"], "usd_per_mtok_output": c["usd_per_mtok_output"],
                    "usd_per_mtok_output_all_in": c["usd_per_mtok_output_all_in"]})
    else:
        row["cost_basis"] = f"no cost: {c.get('reason', '')}"
    if spec.volume is not None:
        row.update(size_fleet(spec, traffic, e, c))
    return row


def size_fleet(spec, traffic: str, est: dict, cost: dict) -> dict:
    """Chips (whole replicas of the chosen deployment) for the volume, and what they cost per day.

    chips = ⌈need / (tok/s per chip × chips per replica)⌉ × chips per replica, with need the
    average output tokens/s × (1 + headroom); $/day = chips × $/chip-hour × 24.
    """
    case = spec.traffic_case(traffic)
    need = spec.volume.output_tokens_per_s(case.input_len, case.output_len) * (1 + spec.volume.headroom_frac)
    per_replica = est["output_tok_s_per_chip"] * est["num_chips"]
    replicas = math.ceil(need / per_replica - 1e-9) if per_replica > 0 else 0
    chips = replicas * est["num_chips"]
    out = {"output_tok_s_needed": need, "replicas_for_volume": replicas, "chips_for_volume": chips}
    if cost.get("available"):
        per_day = chips * cost["usd_per_chip_hour"] * 24.0
        served = spec.volume.output_tokens_per_s(case.input_len, case.output_len) * 86400.0
        out.update(usd_per_day=per_day, usd_per_mtok_output_at_volume=per_day / (served / 1e6))
    return out


def _money(x: float) -> str:
    if abs(x) >= 1e9:
        return f"${x / 1e9:,.3g} billion"
    if abs(x) >= 1e6:
        return f"${x / 1e6:,.3g} million"
    return f"${x:,.0f}" if x >= 100 else f"${x:,.2f}" if x >= 0.1 else f"${x:,.3f}"


def _count(x: float) -> str:
    if x >= 1e12:
        return f"{x / 1e12:,.3g} trillion"
    if x >= 1e9:
        return f"{x / 1e9:,.3g} billion"
    if x >= 1e6:
        return f"{x / 1e6:,.3g} million"
    return f"{x:,.0f}"


def summarize(doc: dict, spec) -> dict:
    """The answer: per (model, traffic), the cheapest option meeting the SLOs, as one sentence each."""
    answers = []
    for model in dict.fromkeys(r["model"] for r in doc["rows"]):
        for case in spec.traffic:
            rows = [r for r in doc["rows"] if r["model"] == model and r["traffic"] == case.name]
            answers.append(_answer(model, case, rows, spec))
    bvb = doc["sections"].get("build_vs_buy")
    if bvb is not None:
        answers.append(_bvb_answer(bvb))
    design = doc["sections"].get("design")
    if design is not None:
        answers.append(_design_answer(design))
    training = training_answer([s for s in doc["sections"].values() if s["kind"] == "training"])
    if training is not None:
        answers.append(training)
    serving = [s for s in doc["sections"].values() if s["kind"] == "serving"]
    if serving and all(s.get("status") == "unavailable" for s in serving):
        answers.append({"kind": "serving", "sentence": "The serving simulation did not run: "
                        + serving[0].get("reason", "unavailable") + "."})
    return {"answers": answers, "sentence": " ".join(a["sentence"] for a in answers[:1]),
            "estimate_note": "All figures are first-principles estimates, not measurements."}


def _key(r: dict, by_day: bool) -> float:
    return r.get("usd_per_day") if by_day else r.get("usd_per_mtok_output_all_in")


def _answer(model: str, case, rows: list[dict], spec) -> dict:
    slo = ([f"TTFT ≤ {case.slo_ttft_ms:,g} ms"] if case.slo_ttft_ms else []) + \
          ([f"TPOT ≤ {case.slo_tpot_ms:,g} ms"] if case.slo_tpot_ms else [])
    what = f"{model} on {case.name} traffic ({case.input_len:,} → {case.output_len:,} tokens" + \
           (f", {', '.join(slo)}" if slo else "") + ")"
    by_day = spec.volume is not None
    priced = [r for r in rows if r.get("status") == "ok" and _key(r, by_day) is not None]
    ok = [r for r in priced if r.get("meets_slo")]
    base = {"kind": "choice", "model": model, "traffic": case.name, "ranked": [r["chip"] for r in sorted(
        ok, key=lambda r: _key(r, by_day))]}
    if not ok:
        fits = [r["chip"] for r in rows if r.get("status") == "ok"]
        why = ("none of the chips meets the SLOs" if fits and len(priced) == len(fits)
               else "no chip both meets the SLOs and has a price" if fits else "the model fits on none of the chips")
        return {**base, "best": None, "sentence": f"For {what}, {why} (estimate)."}
    best = min(ok, key=lambda r: _key(r, by_day))
    runner = sorted(ok, key=lambda r: _key(r, by_day))[1:2]
    vs = ""
    if runner:
        ratio = _key(runner[0], by_day) / _key(best, by_day)
        vs = f", {ratio:.2f}× cheaper than the next, {runner[0]['chip']}"
    if by_day:
        vol = spec.volume
        amount = (f"{_count(vol.output_tokens_per_day)} output tokens/day" if vol.output_tokens_per_day
                  else f"{_count(vol.total_tokens_per_day)} tokens/day")
        sentence = (f"For {what} at {amount}, the cheapest option that meets the SLOs is {best['chip']}: "
                    f"{best['chips_for_volume']:,} chips costing about {_money(best['usd_per_day'])}/day "
                    f"(≈ {_money(best['usd_per_mtok_output_at_volume'])} per million output tokens at that volume, headroom "
                    f"included){vs} — estimates.")
    else:
        sentence = (f"For {what}, the cheapest chip that meets the SLOs is {best['chip']} at about "
                    f"{_money(best['usd_per_mtok_output_all_in'])} per million output tokens, all chip time charged to "
                    f"output{vs} — an estimate; a design's price is its unit cost with markup, before NRE.")
    return {**base, "best": best["chip"], "sentence": sentence}


def _bvb_answer(sec: dict) -> dict:
    if sec.get("status") != "ok":
        return {"kind": "build_vs_buy", "sentence": f"Build vs buy could not be computed: {sec.get('error', '')}."}
    r = sec["result"]
    n = r.get("breakeven_fleet")
    verb = "rent" if r["vendor_basis"] == "rental" else "buy"
    if n is None:
        s = (f"Building {r['custom_chip']} never pays off against {verb}ing {r['vendor_chip']} for {r['model']}: "
             f"each custom chip's tokens cost more over its life (estimate).")
    else:
        s = (f"Building {r['custom_chip']} instead of {verb}ing {r['vendor_chip']} for {r['model']} breaks even at "
             f"about {n:,.0f} {r['vendor_chip']}-equivalents (NRE {_money(r['nre']['total_usd'])}); at "
             f"{r['fleet_vendor_equiv']:,.0f} it {'saves' if r['savings_usd'] >= 0 else 'costs an extra'} "
             f"{_money(abs(r['savings_usd']))} over the fleet's life (estimates).")
    return {"kind": "build_vs_buy", "sentence": s}


def _design_answer(sec: dict) -> dict:
    """One sentence: the search's front, its best design's $/Mtok, and whether it beats the baseline."""
    if sec.get("status") != "ok":
        return {"kind": "design", "sentence": f"The design search did not run: "
                f"{sec.get('error') or sec.get('reason') or sec.get('status')}."}
    wl, st, best, base = sec["workload"]["name"], sec["study"], sec.get("best"), sec.get("baseline") or {}
    head = (f"The design search on {wl} ({st['trials']} trials, seed {st['seed']}) found {len(sec['front'])} "
            f"designs on the Pareto front of {len(sec['feasible'])} feasible ({sec['infeasible_count']} infeasible)")
    if best is None:
        return {"kind": "design", "sentence": head + " — no feasible design (estimate)."}
    b = (base.get("objectives") or {}).get("usd_per_mtok")
    d = best["objectives"].get("usd_per_mtok")
    vs = f" vs {_money(b)} on {base.get('design_id')}" if b else ""
    beats = (sec.get("verdict") or {}).get("beats_baseline")
    judged = {True: f"; a front design of comparable node and area beats {base.get('design_id')}",
              False: f"; no front design of comparable node and area beats {base.get('design_id')}"}.get(beats, "")
    return {"kind": "design", "best": best["design_id"],
            "sentence": f"{head}; the cheapest, {best['design_id']}, serves the mix at about {_money(d)} per million "
                        f"tokens{vs}{judged} (estimates)."}


def results_csv(doc: dict) -> str:
    """One row per (model, chip, traffic), with the study hash and tokenfab version on each."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in doc["rows"]:
        w.writerow({**{k: ("" if v is None else v) for k, v in r.items()}, "study_hash": doc["hash"],
                    "tokenfab_version": doc["tokenfab_version"]})
    return buf.getvalue()
