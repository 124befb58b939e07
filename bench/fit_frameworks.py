"""Fit the serving-framework profiles on the shipped end-to-end rows, with leave-one-source-out CV.

    python3 bench/fit_frameworks.py [--data CSV ...] [--only vllm-rocm] [--stage all|kernels|host]
                                    [--us-per-token U]

Rows: usable end-to-end LLM rows of the measurement CSV (default: the shipped public.csv) that the
engine predicts, grouped by the profile their `framework` column resolves to on their chip
(`perf.framework.profile_for`: vLLM on an AMD chip is `vllm-rocm`; harnesses without a profile are
listed and left out). A source is the `source` column.

Parameters (1 or 2 per framework, physical and bounded): `kernel_quality`, one factor on the
GEMM, attention and HBM fractions (the framework's kernel library relative to TensorRT-LLM's,
0.3-1.2), and optionally `step_overhead_ms`, the per-step host time not hidden behind the GPU (the
chip's own value, or 1-8 ms); or the kernel quality split in two, `gemm_quality` (compute-bound
GEMMs) and `memory_quality` (memory-bound kernels: HBM streams and the attention kernels, which read
the KV cache), 0.3-1.2 each. The nested models are compared by held-out error and the simpler wins
a tie. Loss: mean |log(predicted / measured)| over the training rows; grid
search, ties to the neutral end. Candidates are applied to every chip's Efficiency through a calibration directory
(`TOKENFAB_CALIBRATION_DIR`), so rows predicted through `api.estimate` see them too, while the
shipped profiles are held neutral (no double application).

Printed per framework: the in-sample fit, its median |error| and signed median with and without
the profile, and the same for leave-one-source-out (each source predicted by a fit on the others).
A framework needs >= 8 rows from >= 2 sources, else it keeps the neutral profile; except that
rows of one source covering >= 3 models are cross-validated leave-one-model-out instead (each
model's rows predicted by a fit on the others': a weaker check, since the rows share one harness
and one author, and the proposal says so). TensorRT-LLM is
the reference: its kernel fit is printed as a check of "the calibration is TensorRT-LLM-like" and
its kernel factors stay neutral (its host path is fitted like any other, below). A fitted profile
is proposed for shipping only if its LOSO median |error| beats the neutral one. Prints the YAML to paste into catalog/frameworks.yaml.

Host path (second stage, on the TTFT rows at a stated concurrency only): `request_overhead_ms`
(per request: API server, chat template, admission, proxy hops, first-token streaming) and
`input_us_per_token` (per prompt token: tokenization), added to TTFT outside the engine's steps
(`validate.operating_point.host_path_s`), once per API server a disaggregated request passes
through in turn (the shipped `pd_host_passes`, kept). Fitted per profile on its rows at up to
`HOST_FIT_MAX_CLIENTS` clients (`--max-clients`; the closed-loop model prices their little queueing,
so the gap is mostly the host path and the prefill; rows with more clients also carry the engine's
queueing and step-time errors and are scored, not fitted), on the same >= 8 rows from >= 2 sources
rule, leave-one-source-out, grid `HOST_OVERHEADS_MS` x `HOST_US_PER_TOKEN` (or the per-token part pinned by `--us-per-token`, one parameter left), loss as
above; proposed only if its LOSO median |error| beats zero host path.
With fewer rows or one source the in-sample fit is printed for information and the profile keeps 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from tokenfab import catalog
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.perf.framework import (NEUTRAL, apply_profile, known_frameworks, load_framework, override_profiles,
                                     profile_for)
from tokenfab.specs import SpecError
from tokenfab.specs.framework import FrameworkProfile
from tokenfab.specs.measurement import load_measurements
from tokenfab.validate import metric_class, predict_row
from tokenfab.validate.datasets import public_csv
from tokenfab.validate.micro import Unpredictable

REFERENCE = "trt-llm"
MIN_ROWS, MIN_SOURCES = 8, 2
HOST_FIT_MAX_CLIENTS = 4
"""Most clients a TTFT row may have to fit the host path (`--max-clients`). Up to 4 (2026-12-06), not
1 as before: SGLang's rows then come from 21 sources instead of 13 and its leave-one-source-out error
falls (32.2% -> 25.0%), and trtllm-serve's from two sources (TensorRT-LLM issue #5929 and InferenceX's
TensorRT-LLM sweep) instead of one."""
MIN_MODELS = 3
"""Models a one-source group needs for leave-one-model-out cross-validation."""
QUALITIES = tuple(np.round(np.arange(0.30, 1.2001, 0.05), 2))
SPLIT_QUALITIES = tuple(np.round(np.arange(0.30, 1.2001, 0.10), 2))
"""Grid of each of `gemm_quality` and `memory_quality` in the split model (coarser: it is 2-D)."""
OVERHEADS = (None, 1.0, 2.0, 4.0, 8.0)
REF_QUALITIES = tuple(np.round(np.arange(0.80, 1.1001, 0.05), 2))
REF_OVERHEADS = (None, 1.0, 2.0)
HOST_OVERHEADS_MS = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 50.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0)
HOST_US_PER_TOKEN = (0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0)
MISS = math.log(10.0)
"""Loss of a row the candidate cannot predict (a factor of 10)."""


HOST_FIELDS = ("request_overhead_ms", "input_us_per_token")
"""The host-path stage's fields; every other fitted field is the kernel stage's."""


def _neutral_everywhere() -> dict[str, FrameworkProfile]:
    """Every profile neutral, keeping its structure, which is read from the software, not fitted:
    the API-server passes of a disaggregated request and the vendor variants (vLLM on an AMD chip
    is the vllm-rocm profile)."""
    shipped = {pid: load_framework(pid) for pid in known_frameworks()}
    return {pid: FrameworkProfile(id=pid, pd_host_passes=p.pd_host_passes, vendor_variants=p.vendor_variants)
            for pid, p in shipped.items()}


def _other_stage_shipped(stage: str) -> dict[str, FrameworkProfile]:
    """Every profile as shipped in the stage that is not being fitted, neutral in `stage` (coordinate
    descent: the kernel fit sees the shipped host paths, so a TTFT row is not asked to explain its
    host path with kernel speed; the host fit sees the shipped kernel factors)."""
    out = {}
    for pid, neutral in _neutral_everywhere().items():
        shipped = load_framework(pid)
        if stage == "kernels":
            out[pid] = neutral.model_copy(update={f: getattr(shipped, f) for f in HOST_FIELDS})
        else:
            out[pid] = shipped.model_copy(update={f: 0.0 for f in HOST_FIELDS})
    return out


def _e2e_rows(paths):
    rows = []
    for p in paths:
        rows.extend(load_measurements(p))
    out = []
    for r in rows:
        if not r.usable or r.is_micro or not r.model:
            continue
        try:
            chip = catalog.load_chip(r.hardware)
            model = catalog.load_model(r.model)
        except SpecError:
            continue
        if model.kind != "llm":
            continue
        out.append((r, chip))
    return out


def _predict(rows) -> np.ndarray:
    vals = []
    for r, _ in rows:
        try:
            v, _ = predict_row(r)
        except (Unpredictable, SpecError):
            v = float("nan")
        vals.append(v if (v is not None and np.isfinite(v) and v > 0) else float("nan"))
    return np.array(vals)


def _candidate(qg: float, qm: float, overhead: float | None, pid: str) -> FrameworkProfile:
    """GEMM quality `qg`; memory-bound and attention kernels `qm` (tied models: qg == qm)."""
    return FrameworkProfile(id=pid, gemm_quality=qg, attention_quality=qm, memory_quality=qm, step_overhead_ms=overhead)


def _predict_with(rows, prof: FrameworkProfile, tmp: Path) -> np.ndarray:
    """Predictions of `rows` with `prof` applied to the Efficiency of every chip they use."""
    os.environ.pop("TOKENFAB_CALIBRATION_DIR", None)
    efficiency_for.cache_clear()
    for chip in {c.id: c for _, c in rows}.values():
        eff = apply_profile(efficiency_for(chip), prof)
        data = {"efficiency": eff.model_dump(mode="json")}
        (tmp / f"{chip.id}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    os.environ["TOKENFAB_CALIBRATION_DIR"] = str(tmp)
    efficiency_for.cache_clear()
    try:
        return _predict(rows)
    finally:
        os.environ.pop("TOKENFAB_CALIBRATION_DIR", None)
        efficiency_for.cache_clear()


def _log_err(pred, meas):
    return np.where(np.isfinite(pred), np.log(pred / meas), np.nan)


def _loss(logerr, mask) -> float:
    e = np.abs(logerr[mask])
    return float(np.mean(np.where(np.isfinite(e), e, MISS))) if e.size else float("inf")


def _pick(table, mask, allowed) -> int:
    """Index (among `allowed`) with the smallest training loss; the grid starts at the neutral end,
    so ties keep the profile closest to neutral."""
    losses = [_loss(table[i][1], mask) for i in allowed]
    return allowed[int(np.argmin(losses))]


def _stats(err) -> tuple[float, float, int]:
    e = err[np.isfinite(err)]
    if not e.size:
        return float("nan"), float("nan"), 0
    return float(np.median(np.abs(e))), float(np.median(e)), int(e.size)


def _fmt(st) -> str:
    if not st[2]:
        return "no rows (n=0)"
    return f"median |err| {100 * st[0]:5.1f}%  signed {100 * st[1]:+6.1f}%  (n={st[2]})"


def _describe(prof: FrameworkProfile) -> str:
    oh = "chip's" if prof.step_overhead_ms is None else f"{prof.step_overhead_ms:g} ms"
    if prof.gemm_quality != prof.memory_quality:
        return f"gemm_quality {prof.gemm_quality:.2f}, memory_quality {prof.memory_quality:.2f}, step_overhead {oh}"
    return f"kernel_quality {prof.gemm_quality:.2f}, step_overhead {oh}"


def _tied(prof: FrameworkProfile) -> bool:
    return prof.gemm_quality == prof.memory_quality


PARAMETER_SETS = {
    "kernel_quality": lambda prof: _tied(prof) and prof.step_overhead_ms is None,
    "step_overhead_ms": lambda prof: prof.gemm_quality == prof.memory_quality == 1.0,
    "kernel_quality + step_overhead_ms": _tied,
    "gemm_quality + memory_quality": lambda prof: prof.step_overhead_ms is None,
}
"""Nested models compared by leave-one-source-out; the simpler one wins a tie."""


def _assess(table, rows, sources, neutral_err, allowed) -> dict:
    uniq = sorted(set(sources))
    all_rows = np.ones(len(rows), bool)
    i_all = _pick(table, all_rows, allowed)
    loso = np.full(len(rows), np.nan)
    folds = []
    for s in uniq:
        test = sources == s
        i = _pick(table, ~test, allowed)
        loso[test] = np.expm1(table[i][1])[test]
        folds.append((s, table[i][0]))
    classes = np.array([metric_class(r.metric) for r, _ in rows])
    by_class = {c: (_stats(np.where(classes == c, neutral_err, np.nan)), _stats(np.where(classes == c, loso, np.nan)))
                for c in sorted(set(classes))}
    return dict(best=table[i_all][0], insample=_stats(np.expm1(table[i_all][1])), loso=_stats(loso),
                loso_neutral=_stats(np.where(np.isfinite(loso), neutral_err, np.nan)), folds=folds, by_class=by_class)


def folds_of(rows) -> tuple[np.ndarray, str] | None:
    """The held-out groups of a profile's rows: its sources (leave-one-source-out); with one source,
    its models (leave-one-model-out) when there are >= MIN_MODELS; None when neither allows a fit."""
    sources = np.array([r.source for r, _ in rows])
    if len(rows) < MIN_ROWS:
        return None
    if len(set(sources)) >= MIN_SOURCES:
        return sources, "leave-one-source-out"
    models = np.array([r.model for r, _ in rows])
    if len(set(models)) >= MIN_MODELS:
        return models, "leave-one-model-out (one source)"
    return None


def fit_group(pid: str, rows, meas, tmp: Path, groups: np.ndarray | None = None) -> dict:
    """Grid fit of profile `pid` on `rows`, cross-validated over `groups` (default: the sources)."""
    sources = np.array([r.source for r, _ in rows]) if groups is None else np.asarray(groups)
    ref = pid == REFERENCE
    quals, overheads = (REF_QUALITIES, REF_OVERHEADS) if ref else (QUALITIES, OVERHEADS)
    by_neutral = lambda x: abs(x - 1.0)  # noqa: E731
    grid = [(q, q, o) for o in overheads for q in sorted(quals, key=by_neutral)]
    if not ref:  # the split model (no step overhead): GEMMs and memory-bound kernels apart
        grid += [(g, m, None) for g in sorted(SPLIT_QUALITIES, key=by_neutral)
                 for m in sorted(SPLIT_QUALITIES, key=by_neutral) if g != m]
    t0 = time.time()
    table = []
    for qg, qm, o in grid:
        prof = _candidate(qg, qm, o, pid)
        table.append((prof, _log_err(_predict_with(rows, prof, tmp), meas)))
    neutral_err = np.expm1(table[grid.index((1.0, 1.0, None))][1])
    fits = {name: _assess(table, rows, sources, neutral_err, [i for i, (p, _) in enumerate(table) if keep(p)])
            for name, keep in PARAMETER_SETS.items()}
    return dict(pid=pid, n=len(rows), sources=sorted(set(sources)), neutral=_stats(neutral_err), fits=fits,
                seconds=time.time() - t0, grid=len(grid))


def _ttft_at_concurrency(rows) -> list:
    """The rows whose TTFT is predicted in a closed loop at a stated concurrency (where the host
    path applies)."""
    from tokenfab.validate.operating_point import CLOSED_LOOP_SCENARIOS, operating_point
    return [(r, c) for r, c in rows if r.metric.startswith("ttft") and r.scenario in CLOSED_LOOP_SCENARIOS
            and operating_point(r).concurrency]


def host_families(pids) -> dict[str, list[str]]:
    """Profile ids grouped by their front end: a vendor variant (vllm-rocm, vLLM's kernels on AMD)
    runs its base profile's API server, tokenizer and scheduler, so it shares that host path."""
    base = {}
    for pid in known_frameworks():
        for variant in load_framework(pid).vendor_variants.values():
            base[variant] = pid
    families: dict[str, list[str]] = {}
    for pid in sorted(pids):
        families.setdefault(base.get(pid, pid), []).append(pid)
    return families


def fit_host_path(pid: str, rows, pids=None, us_per_token: float | None = None,
                  max_clients: int = HOST_FIT_MAX_CLIENTS) -> dict:
    """Grid fit of the host path (`request_overhead_ms`, `input_us_per_token`) of profile `pid` on
    its TTFT rows at up to `max_clients` clients (mostly the host path and the prefill), in sample
    and leave-one-source-out when they allow (>= MIN_ROWS from >= MIN_SOURCES sources); its rows with
    more clients are scored with the same values. The shipped kernel factors are kept (the stages
    alternate). `us_per_token` pins the per-token part (one parameter left: the per-request overhead)."""
    from tokenfab.validate.operating_point import operating_point

    meas = np.array([r.value for r, _ in rows])
    sources = np.array([r.source for r, _ in rows])
    one = np.array([operating_point(r).concurrency <= max_clients for r, _ in rows])
    per_token = HOST_US_PER_TOKEN if us_per_token is None else (us_per_token,)
    # The grid's first point is always no host path at all, the reference every fit is judged
    # against; with the per-token part pinned, only the points carrying it are candidates.
    grid = [(0.0, 0.0)] + [(o, u) for o in HOST_OVERHEADS_MS for u in per_token if (o, u) != (0.0, 0.0)]
    # The flow's structure and kernel factors are the shipped profile's (API-server passes of a
    # disaggregated request, vendor variants).
    # The stage's starting point: each profile's shipped kernel factors, no host path; one host path
    # for every profile of the family (`host_families`).
    bases = {p: load_framework(p) for p in (pids or [pid])}
    table = []
    for o, u in grid:
        cand = {p: b.model_copy(update={"request_overhead_ms": o, "input_us_per_token": u}) for p, b in bases.items()}
        with override_profiles(cand):
            table.append((cand[pid] if pid in cand else next(iter(cand.values())), _log_err(_predict(rows), meas)))
    allowed = [i for i, (_, u) in enumerate(grid) if u in per_token]
    neutral_err = np.expm1(table[0][1])
    i_all = _pick(table, one, allowed)
    fitted = np.expm1(table[i_all][1])
    out = dict(n=int(one.sum()), sources=sorted(set(sources[one])), neutral=_stats(neutral_err[one]),
               best=table[i_all][0], insample=_stats(fitted[one]), loso=None, folds=[],
               many_neutral=_stats(neutral_err[~one]), many_scored=_stats(fitted[~one]))
    if one.sum() >= MIN_ROWS and len(set(sources[one])) >= MIN_SOURCES:
        loso = np.full(len(rows), np.nan)
        for s in sorted(set(sources[one])):
            test = sources == s
            i = _pick(table, one & ~test, allowed)
            loso[test] = np.expm1(table[i][1])[test]
            out["folds"].append((s, table[i][0]))
        out["loso"] = _stats(loso[one])
    return out


def _describe_host(prof: FrameworkProfile) -> str:
    return f"request_overhead {prof.request_overhead_ms:g} ms, {prof.input_us_per_token:g} us/prompt token"


def report_host_paths(groups: dict, only, us_per_token: float | None = None,
                      max_clients: int = HOST_FIT_MAX_CLIENTS) -> dict:
    """Print the host-path fit of every profile with TTFT rows at a stated concurrency; returns the
    proposals (profile id -> fit) whose LOSO beats a zero host path."""
    proposals = {}
    for pid, members in host_families(groups).items():
        if only and not set(members) & set(only):
            continue
        rows = [rc for m in members for rc in _ttft_at_concurrency(groups[m])]
        if not rows:
            continue
        res = fit_host_path(pid, rows, members, us_per_token, max_clients)
        label = pid + (f" (with {', '.join(m for m in members if m != pid)}: the same front end)" if len(members) > 1
                       else "")
        print(f"\n{label} host path: {res['n']} TTFT rows at <= {max_clients} clients from {len(res['sources'])} "
              f"sources (fitted), {len(rows) - res['n']} with more clients (scored)")
        print(f"  without host path:   {_fmt(res['neutral'])}")
        print(f"  in-sample fit:       {_describe_host(res['best'])}: {_fmt(res['insample'])}")
        print(f"  more clients:        {_fmt(res['many_neutral'])} -> with the fit {_fmt(res['many_scored'])}")
        if res["loso"] is None:
            print(f"  -> keeps 0 (too few to fit: >= {MIN_ROWS} rows from >= {MIN_SOURCES} sources needed)")
            continue
        print(f"  LOSO with host path: {_fmt(res['loso'])}")
        for s, p in res["folds"]:
            print(f"      held out {s[:66]:66s} -> {_describe_host(p)}")
        if res["loso"][0] < res["neutral"][0]:
            proposals[pid] = res
            print(f"  -> proposed for {', '.join(members)}: request_overhead_ms: {res['best'].request_overhead_ms:g}, "
                  f"input_us_per_token: {res['best'].input_us_per_token:g}")
        else:
            print("  -> keeps 0 (LOSO does not beat it)")
    return proposals


class _Parser(argparse.ArgumentParser):
    """Bad arguments as one line (`error: ...`, exit 2), like every other input error here."""

    def error(self, message):
        raise SpecError(message)


def main(argv=None) -> int:
    ap = _Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", type=Path, help="measurement CSV (default: the shipped public.csv)")
    ap.add_argument("--only", action="append", help="fit only these profile ids")
    ap.add_argument("--stage", choices=("all", "kernels", "host"), default="all",
                    help="kernel factors, the host path on TTFT rows at a stated concurrency, or both")
    ap.add_argument("--us-per-token", type=float, default=None,
                    help="pin the host path's per-prompt-token part (us) and fit only the per-request overhead")
    ap.add_argument("--max-clients", type=int, default=HOST_FIT_MAX_CLIENTS,
                    help=f"most clients of a TTFT row the host path is fitted on (default {HOST_FIT_MAX_CLIENTS})")
    args = ap.parse_args(argv)
    if not 1 <= args.max_clients <= 1024:
        raise SpecError(f"--max-clients must be between 1 and 1024, got {args.max_clients}")
    unknown = sorted(set(args.only or ()) - set(known_frameworks()))
    if unknown:
        raise SpecError(f"--only: unknown profile {', '.join(unknown)}; known: {', '.join(known_frameworks())}")
    if args.us_per_token is not None and not 0.0 <= args.us_per_token <= 1000.0:
        raise SpecError(f"--us-per-token must be between 0 and 1000 us, got {args.us_per_token:g}")
    paths = args.data or [public_csv()]
    with override_profiles(_neutral_everywhere()):
        rows = _e2e_rows(paths)
        base = _predict(rows)
    groups: dict[str, list] = {}
    unprofiled: dict[str, int] = {}
    for (r, chip), v in zip(rows, base):
        if not np.isfinite(v):
            continue
        prof = profile_for(r.framework, chip.vendor)
        if prof.id == NEUTRAL:
            unprofiled[r.framework or "(empty)"] = unprofiled.get(r.framework or "(empty)", 0) + 1
            continue
        groups.setdefault(prof.id, []).append((r, chip))
    print(f"rows: {len(rows)} usable end-to-end LLM rows in {', '.join(str(p) for p in paths)}; "
          f"{int(np.isfinite(base).sum())} predicted")
    if unprofiled:
        print("no profile (kept neutral): " + ", ".join(f"{k} {v}" for k, v in sorted(unprofiled.items())))
    results, proposals = [], {}
    with tempfile.TemporaryDirectory() as d, override_profiles(_other_stage_shipped("kernels")):
        for pid in known_frameworks():
            if pid == NEUTRAL or (args.only and pid not in args.only) or args.stage == "host":
                continue
            grp = groups.get(pid, [])
            nsrc = len({r.source for r, _ in grp})
            cv = folds_of(grp)
            if cv is None:
                print(f"\n{pid}: {len(grp)} rows from {nsrc} sources: too few to fit (>= {MIN_ROWS} rows from "
                      f">= {MIN_SOURCES} sources, or of >= {MIN_MODELS} models from one), keeps the neutral profile")
                continue
            meas = np.array([r.value for r, _ in grp])
            res = fit_group(pid, grp, meas, Path(d), groups=cv[0])
            res.update(cv=cv[1], n_sources=nsrc)
            results.append(res)
            print(f"\n{pid}: {res['n']} rows from {nsrc} source(s), held out {cv[1]} "
                  f"({res['grid']} grid points, {res['seconds']:.0f} s)")
            print(f"  without profile, all rows:  {_fmt(res['neutral'])}")
            chosen = None
            for name, fit in res["fits"].items():
                print(f"  parameters: {name}")
                print(f"    fitted (all rows): {_describe(fit['best'])}")
                print(f"    in-sample with profile:     {_fmt(fit['insample'])}")
                print(f"    held out without profile:   {_fmt(fit['loso_neutral'])}")
                print(f"    held out with profile:      {_fmt(fit['loso'])}")
                for c, (neu, lo) in fit["by_class"].items():
                    print(f"      {c:10s} held out without {_fmt(neu)}\n      {'':10s} held out with    {_fmt(lo)}")
                for s, p in fit["folds"]:
                    print(f"      held out {s[:66]:66s} -> {_describe(p)}")
                if chosen is None or fit["loso"][0] < chosen[1]["loso"][0]:
                    chosen = (name, fit)
            name, fit = chosen
            ship = pid != REFERENCE and fit["loso"][0] < fit["loso_neutral"][0]
            verdict = ("reference: stays neutral (fit printed as a check)" if pid == REFERENCE else
                       f"proposed for shipping: {name} (held-out error beats neutral)" if ship else
                       "keeps neutral (held-out error does not beat it)")
            print(f"  -> {verdict}")
            if ship:
                proposals[pid] = dict(res, **fit)
    if args.stage != "kernels":
        with override_profiles(_other_stage_shipped("host")):
            report_host_paths(groups, args.only, args.us_per_token, args.max_clients)
    today = dt.date.today().isoformat()
    if proposals:
        print("\n# YAML for catalog/frameworks.yaml (fitted fields and source):")
    for pid, res in proposals.items():
        b = res["best"]
        src = (f"fitted {today} by bench/fit_frameworks.py on {res['n']} shipped end-to-end rows from "
               f"{res['n_sources']} source(s); in-sample median |err| {100 * res['neutral'][0]:.1f}% -> "
               f"{100 * res['insample'][0]:.1f}%, {res['cv']} {100 * res['loso_neutral'][0]:.1f}% -> "
               f"{100 * res['loso'][0]:.1f}%")
        print(f"  - id: {pid}\n    gemm_quality: {b.gemm_quality}\n    attention_quality: {b.attention_quality}\n"
              f"    memory_quality: {b.memory_quality}\n    step_overhead_ms: "
              f"{'null' if b.step_overhead_ms is None else b.step_overhead_ms}\n    source: \"{src}\"")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
