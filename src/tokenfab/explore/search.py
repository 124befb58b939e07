"""The design search: optuna ask/tell in batches, trials evaluated on an executor, every result
kept in the study's storage.

    outcome = run_search(workload, space, base_design, SearchConfig(trials=60, seed=1))

Loop: ask a batch of points (NSGA-II by default), evaluate the designs not seen before on the
executor (a design already evaluated in this study is answered from its stored result), then
tell optuna each trial's objectives — and, as a constraint, how far past its limits an
infeasible design is — in trial order. The full result of each trial is stored with the trial
(`user_attrs["result"]`), so the tables can be rebuilt from the storage alone.

Reproducible: the sampler is re-created before every batch with a seed derived from the search
seed and the number of trials so far, and batches do not depend on the executor, so a seed
gives the same trials inline, on a process pool or on Ray — and a killed search resumed from its
storage continues exactly as if it had not stopped. Trials a killed run had asked but not
told are evaluated with their stored parameters; finished trials are never recomputed.
"""

from __future__ import annotations

from contextlib import contextmanager

import hashlib
import os
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tokenfab.explore import objectives as obj_mod
from tokenfab.explore.designs import base_mapping, decode_choice, design_hash, design_mapping, distributions, grid_values
from tokenfab.explore.evaluate import EvalContext, make_context
from tokenfab.explore.executors import Executor, make_executor
from tokenfab.specs.base import SpecError
from tokenfab.specs.design import ChipDesign
from tokenfab.specs.economics import Economics
from tokenfab.specs.space import DesignSpace
from tokenfab.specs.workload import WorkloadSpec

SAMPLERS = ("nsga2", "tpe", "grid", "random")
MAX_GRID = 1_000_000
"""Largest grid `--sampler grid` enumerates (optuna's grid sampler holds every point in memory)."""
_FINGERPRINT = "tokenfab_fingerprint"


@dataclass
class SearchConfig:
    """How to run a search (None: the space's `search` settings)."""

    trials: int = 60
    seed: int = 0
    sampler: str | None = None
    population: int | None = None
    batch: int | None = None
    objectives: tuple[str, ...] | None = None
    max_chips: int | None = None
    fidelity: str | None = None
    executor: str = "inline"
    workers: int | None = None
    ray_address: str | None = None
    storage: str | None = None
    """SQLite file (`*.db`, `*.sqlite`), a database URL, or a journal file (anything else); None: memory."""
    study_name: str | None = None
    resume: bool = False
    economics: Economics | None = None
    screen: int | None = None
    """Design-space points scored by the screening stage (`explore.screen`) before the first batch;
    the best of them (their Pareto front on the objectives) are the first trials. None: `SCREEN_PER_TRIAL`
    × trials, at most `SCREEN_MAX`; 0: no screening. Only a new study of an all-LLM workload is
    screened, and never a grid search."""


SCREEN_PER_TRIAL = 32
SCREEN_MAX = 4096
"""Default screening: 32 points per trial asked for, at most 4,096 (a few seconds at the screen's
~1,000 designs/s per core, against ~0.5 s per trial for the full path: bench/design_batch_speed.py)."""


@dataclass
class TrialRecord:
    """One finished trial."""

    number: int
    params: dict[str, Any]
    result: dict
    cached: bool
    """Answered from an earlier trial of the same design (not evaluated again)."""


@dataclass
class SearchOutcome:
    """What a search produced (all trials so far in the study, this run's counts)."""

    study_name: str
    storage: str | None
    sampler: str
    seed: int
    objectives: tuple[str, ...]
    trials: list[TrialRecord]
    evaluated: int
    """Designs evaluated by this run (the rest came from the storage or from duplicates)."""
    resumed_from: int
    """Finished trials already in the storage when this run started."""
    recovered: int
    """Trials a killed run had asked but not finished, evaluated by this run."""
    seconds: float
    executor: str
    workers: int
    batch: int
    context: EvalContext
    evaluated_numbers: list[int] = field(default_factory=list)
    """Trial numbers whose design this run evaluated."""
    screened: int = 0
    """Points the screening stage scored in this run (0: none)."""
    screen_seconds: float = 0.0
    screen_seeded: int = 0
    """Screened points enqueued as the study's first trials."""


def settings(space: DesignSpace, cfg: SearchConfig) -> dict[str, Any]:
    """Effective search settings: the config's, falling back to the space's."""
    s = space.search
    sampler = cfg.sampler or s.sampler
    if sampler not in SAMPLERS:
        raise SpecError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    population = cfg.population or s.population
    objectives = tuple(cfg.objectives or s.objectives)
    bad = [o for o in objectives if o not in obj_mod.OBJECTIVES]
    if bad:
        raise SpecError(f"unknown objective(s) {', '.join(bad)}; known: {', '.join(obj_mod.OBJECTIVES)}")
    return {"sampler": sampler, "population": population, "batch": cfg.batch or s.batch or population,
            "objectives": objectives, "max_chips": cfg.max_chips or s.max_chips,
            "fidelity": cfg.fidelity or s.fidelity}


def fingerprint(workload: WorkloadSpec, space: DesignSpace, base: dict, st: dict, seed: int,
                economics: Economics | None) -> str:
    """Hash of everything that defines a study's trials (a resumed study must match it)."""
    wl = workload.model_dump(mode="json", exclude={"variants", "title", "description", "sources"})
    for sc in wl["scenarios"]:
        if not sc.get("request"):
            sc.pop("request", None)  # LLM scenarios: the same fingerprint as before `request` existed
    data = [wl,
            space.model_dump(mode="json", exclude={"description", "sources"}), base, st, seed,
            economics.model_dump(mode="json") if economics else None]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:12]


def check_storage(spec: str | None) -> None:
    """SpecError, before any work, for a storage that cannot be opened: a folder, or a database URL
    whose driver is missing or whose server does not answer."""
    if spec is not None:
        open_storage(spec)


def open_storage(spec: str | None) -> Any:
    """An optuna storage from a CLI string (None: in memory)."""
    if spec is None:
        return None
    if "://" in spec:
        from optuna.storages import RDBStorage
        try:
            return RDBStorage(spec)
        except Exception as exc:  # noqa: BLE001 - a missing driver or an unreachable server: one line
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise SpecError(f"cannot open storage {spec}: {first}") from None
    path = Path(spec)
    if path.is_dir():
        raise SpecError(f"--storage {spec} is a folder; give a file (study.db or study.journal)")
    if path.parent.exists() and not path.parent.is_dir():
        raise SpecError(f"--storage {spec}: {path.parent} is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{path.resolve()}"
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


@contextmanager
def storage_lock(spec: str | None):
    """Hold an exclusive lock on a file storage for the whole run: a second `design` run on the same
    `--storage` stops at once with one line instead of racing the first (optuna's journal and
    SQLite files take concurrent writers, but two runs would each recover the other's running
    trials). Database URLs are not locked (their server arbitrates; run one search per study)."""
    if spec is None or "://" in spec:
        yield
        return
    import fcntl

    lock_path = Path(spec).with_name(Path(spec).name + ".tokenfab-lock")  # `.lock` is optuna's journal lock
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise SpecError(f"storage {spec} is in use by another design run ({holder}); wait for it to finish "
                            f"or give another --storage") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _constraint(trial) -> list[float]:
    return list(trial.user_attrs.get("constraint", [0.0]))


def _trial_constraints() -> bool:
    """True when optuna takes constraints per trial (`Trial.set_constraint`, optuna ≥ 5) rather
    than through the sampler's `constraints_func` (deprecated there)."""
    from optuna.trial import Trial

    return hasattr(Trial, "set_constraint")


def make_sampler(kind: str, seed: int, population: int, space: DesignSpace):
    """A seeded optuna sampler that ranks infeasible trials by their constraint violation."""
    import optuna

    cons = {} if _trial_constraints() else {"constraints_func": _constraint}
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed, **cons)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=population, multivariate=True, **cons)
    if kind == "grid":
        return _grid_sampler(grid_values(space), seed)
    return optuna.samplers.RandomSampler(seed=seed)


def _grid_sampler(values: dict, seed: int):
    """optuna's grid sampler without its `study.stop()` once the grid is covered (which only
    works inside `study.optimize`; this loop asks at most the grid's size)."""
    import optuna

    class GridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            return None

    return GridSampler(values, seed=seed)


def grid_size(space: DesignSpace) -> int:
    """Points of the space's grid."""
    n = 1
    for values in grid_values(space).values():
        n *= len(values)
    return n


def _batch_seed(seed: int, n_trials: int) -> int:
    return (seed * 1_000_003 + n_trials * 7919 + 17) % (2 ** 32)


def run_search(workload: WorkloadSpec, space: DesignSpace, base_design: ChipDesign, cfg: SearchConfig,
               progress: Callable[[dict], None] | None = None,
               on_told: Callable[[int, dict, bool], None] | None = None,
               executor: Executor | None = None) -> SearchOutcome:
    """Run (or resume) a search until the study holds `cfg.trials` finished trials (no more: a
    killed run's unfinished trials are recovered only up to that number), holding the storage's
    lock (`storage_lock`) throughout."""
    with storage_lock(cfg.storage):
        return _run_search(workload, space, base_design, cfg, progress, on_told, executor)


def _run_search(workload, space, base_design, cfg, progress, on_told, executor) -> SearchOutcome:
    import optuna
    from optuna.trial import Trial, TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    t0 = time.perf_counter()
    st = settings(space, cfg)
    base = base_mapping(base_design, space)
    total = cfg.trials
    if st["sampler"] == "grid":
        n_grid = grid_size(space)
        if n_grid > MAX_GRID:
            raise SpecError(f"the grid of space {space.name} has {n_grid:,} points (more than {MAX_GRID:,}); "
                            f"narrow its ranges (steps, fewer choices) or use --sampler nsga2")
        total = min(total, n_grid)
    fp = fingerprint(workload, space, base, st, cfg.seed, cfg.economics)
    name = cfg.study_name or f"{workload.name}-{space.name}-{fp}"
    storage = open_storage(cfg.storage)
    if cfg.resume and storage is None:
        raise SpecError("--resume needs --storage (the file the interrupted search wrote)")
    exists = storage is not None and name in optuna.study.get_all_study_names(storage)
    if exists and not cfg.resume:
        raise SpecError(f"study {name!r} already exists in {cfg.storage}; pass --resume to continue it "
                        f"or --study-name for a new one")
    directions = ["minimize"] * len(st["objectives"])
    study = optuna.create_study(storage=storage, study_name=name, directions=directions, load_if_exists=True,
                                sampler=make_sampler(st["sampler"], cfg.seed, st["population"], space))
    stored = study.user_attrs.get(_FINGERPRINT)
    if stored is None:
        study.set_user_attr(_FINGERPRINT, fp)
        study.set_user_attr("tokenfab", {"workload": workload.name, "space": space.name, "seed": cfg.seed, **st,
                                         "objectives": list(st["objectives"])})
    elif stored != fp:
        raise SpecError(f"study {name!r} in {cfg.storage} was made with a different workload, space or settings "
                        f"(fingerprint {stored} != {fp}); resume it with the same inputs or use another --study-name")

    dists = distributions(space)
    per_trial_constraints = _trial_constraints()
    ctx = make_context(workload, base, space.constraints, st["max_chips"], st["fidelity"], cfg.economics)
    known: dict[str, dict] = {}
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    for t in finished:
        if "result" in t.user_attrs:
            known.setdefault(t.user_attrs["design_hash"], t.user_attrs["result"])
    resumed_from = len(finished)
    state = {"done": resumed_from, "evaluated": 0, "best": None, "feasible": 0, "numbers": []}
    for t in finished:
        r = t.user_attrs.get("result", {})
        state["feasible"] += bool(r.get("feasible"))
        v = r.get("objectives", {}).get(st["objectives"][0]) if r.get("feasible") else None
        if v is not None and (state["best"] is None or v < state["best"]):
            state["best"] = v

    own = executor is None
    ex = executor or make_executor(cfg.executor, cfg.workers, cfg.ray_address)

    def report() -> None:
        if progress:
            progress({"done": state["done"], "total": total, "best": state["best"], "feasible": state["feasible"],
                      "evaluated": state["evaluated"], "objective": st["objectives"][0]})

    def run_batch(trials: list[tuple[Trial, dict]]) -> None:
        hashes = [design_hash(design_mapping(base, params)) for _, params in trials]
        todo: dict[str, dict] = {}
        for h, (_, params) in zip(hashes, trials):
            if h not in known and h not in todo:
                todo[h] = params
        results = dict(ex.map(list(todo.items()), ctx)) if todo else {}
        state["evaluated"] += len(todo)
        for h, (trial, params) in zip(hashes, trials):
            cached = h in known  # an earlier trial (or an earlier one in this batch) had this design
            result = known[h] if cached else results[h]
            if not cached:
                state["numbers"].append(trial.number)
                known[h] = result
            trial.set_user_attr("design_hash", h)
            trial.set_user_attr("cached", cached)
            violation = 0.0 if result["feasible"] else max(result["violation"], 1e-6)
            trial.set_user_attr("constraint", [violation])
            if per_trial_constraints:
                with warnings.catch_warnings():  # a resumed trial may carry it already
                    warnings.simplefilter("ignore")
                    trial.set_constraint("violation", violation)
            trial.set_user_attr("result", result)
            study.tell(trial, obj_mod.told_values(result, st["objectives"]))
            state["done"] += 1
            if result["feasible"]:
                state["feasible"] += 1
                v = result["objectives"].get(st["objectives"][0])
                if v is not None and (state["best"] is None or v < state["best"]):
                    state["best"] = v
            if on_told:
                on_told(trial.number, result, cached)
            report()

    try:
        report()
        # Trials a killed run asked but never told: evaluate them with their stored parameters.
        pending = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        partial = [t for t in pending if set(t.params) != set(dists)]  # killed while being asked
        for t in partial:
            study.tell(t.number, state=TrialState.FAIL)
        pending = [t for t in pending if t not in partial]
        for t in pending[max(0, total - state["done"]):]:  # beyond the target: not run
            study.tell(t.number, state=TrialState.FAIL)
        pending = pending[:max(0, total - state["done"])]
        recovered = len(pending)
        for i in range(0, len(pending), st["batch"]):
            part = pending[i:i + st["batch"]]
            run_batch([(Trial(study, t._trial_id), dict(t.params)) for t in part])
        if not study.get_trials(deepcopy=False):
            state.update(_screen(study, space, st, cfg, ctx, total))
        while state["done"] < total:
            k = min(st["batch"], total - state["done"])
            n_so_far = len(study.get_trials(deepcopy=False))
            # The grid sampler's shuffle (grid id → point) must stay the same for the whole study.
            seed = cfg.seed if st["sampler"] == "grid" else _batch_seed(cfg.seed, n_so_far)
            study.sampler = make_sampler(st["sampler"], seed, st["population"], space)
            asked = []
            for _ in range(k):
                trial = study.ask(dists)
                asked.append((trial, dict(trial.params)))
            run_batch(asked)
    finally:
        if own:
            ex.close()

    records = [TrialRecord(t.number, {p: decode_choice(v) for p, v in t.params.items()}, t.user_attrs["result"],
                           bool(t.user_attrs.get("cached")))
               for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "result" in t.user_attrs]
    return SearchOutcome(study_name=name, storage=cfg.storage, sampler=st["sampler"], seed=cfg.seed,
                         objectives=st["objectives"], trials=sorted(records, key=lambda r: r.number),
                         evaluated=state["evaluated"], resumed_from=resumed_from, recovered=recovered,
                         seconds=time.perf_counter() - t0, executor=ex.name, workers=ex.workers,
                         batch=st["batch"], context=ctx, evaluated_numbers=sorted(state["numbers"]),
                         screened=state.get("screened", 0), screen_seconds=state.get("screen_seconds", 0.0),
                         screen_seeded=state.get("screen_seeded", 0))


def _screen(study, space: DesignSpace, st: dict, cfg: SearchConfig, ctx: EvalContext, total: int) -> dict:
    """Screen points of a new study and enqueue the best as its first trials (`SearchConfig.screen`).
    Returns the counts for the outcome."""
    from tokenfab.explore import screen

    n = cfg.screen if cfg.screen is not None else min(SCREEN_PER_TRIAL * total, SCREEN_MAX)
    if n <= 0 or st["sampler"] == "grid" or not screen.screenable(ctx):
        return {}
    points = screen.sample_points(space, n, _batch_seed(cfg.seed, -1))
    try:
        scores = screen.screen_points(points, ctx)
    except (SpecError, ValueError) as exc:  # a space the batch path cannot take: the sampler starts alone
        study.set_user_attr("screen", {"points": n, "seeded": 0, "error": str(exc).splitlines()[0]})
        return {}
    objectives = tuple(o for o in st["objectives"] if o in screen.SCREENED) or ("usd_per_mtok",)
    chosen = [i for i in screen.pick(scores, objectives, min(st["batch"], total)) if scores["feasible"][i]]
    for i in chosen:
        study.enqueue_trial(points[i], skip_if_exists=True)
    study.set_user_attr("screen", {"points": n, "seeded": len(chosen), "seconds": scores["seconds"],
                                   "feasible": int(np.sum(scores["feasible"])), "fidelity": "screen"})
    return {"screened": n, "screen_seconds": scores["seconds"], "screen_seeded": len(chosen)}
