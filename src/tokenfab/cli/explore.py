"""`tokenfab design WORKLOAD`: search a custom inference chip's design space for a workload mix."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tokenfab.cli import options as o
from tokenfab.cli.common import UserError, console, err_console, handle_errors, print_json, reject_empty
from tokenfab.specs import SpecError


def register(app: typer.Typer) -> None:
    """Add `design` to the app."""
    app.command("design")(design)


@handle_errors
def design(
    workload: str = typer.Argument(..., help="Workload mix: shipped id (chat-mix) or a workload YAML."),
    space: Optional[str] = typer.Option(None, "--space", help="Design space: shipped id or YAML (default: the "
                                                              "workload's)."),
    trials: int = typer.Option(60, "--trials", help="Finished trials the study should hold."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same study on any executor."),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="nsga2 (default), tpe, grid or random."),
    population: Optional[int] = typer.Option(None, "--population", help="NSGA-II population (default: the space's)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Trials asked and evaluated at once (default: the "
                                                              "population)."),
    executor: str = typer.Option("inline", "--executor", help="inline, process (local pool) or ray."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Workers of the process/ray executor "
                                                                  "(default: CPUs)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (default: a "
                                                                          "local Ray instance)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="optuna storage: a .db/.sqlite file, a "
                                                                  "database URL, or a journal file (default: "
                                                                  "memory, nothing kept)."),
    study_name: Optional[str] = typer.Option(None, "--study-name", help="Study name in the storage (default: "
                                                                        "from the inputs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the study in --storage (a killed search loses "
                                                        "nothing)."),
    max_chips: Optional[int] = typer.Option(None, "--max-chips", help="Largest deployment per scenario tried per "
                                                                      "trial."),
    fidelity: Optional[str] = typer.Option(None, "--fidelity", help="tiled (SRAM-aware, default) or roofline "
                                                                    "(faster)."),
    screen: Optional[int] = typer.Option(None, "--screen", help="Design points the vectorized screen scores "
                                                                "before the first trials (default 32 per trial, "
                                                                "at most 4,096; 0: none)."),
    variant: Optional[str] = typer.Option(None, "--variant", help="Also search a variant of the workload (a name "
                                                                  "in it, or a variant YAML) and show how the best "
                                                                  "design moves."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Chip to compare with (default: the "
                                                                    "workload's, h100-sxm)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write tables (JSON/CSV/parquet), the front's design "
                                                           "YAMLs and the sensitivity report here."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write the front as an interactive page."),
    no_sensitivity: bool = typer.Option(False, "--no-sensitivity", help="Skip the sensitivity report."),
    economics: Optional[Path] = o.EconomicsFile,
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    json_out: bool = o.Json,
) -> None:
    """Search a custom chip's design space for a workload mix: Pareto front of $/Mtok, TPOT and
    unit cost; infeasible designs with reasons; the baseline chip on the same mix; sensitivity."""
    from tokenfab.explore import SearchConfig, design_study, write_outputs
    from tokenfab.explore.executors import EXECUTORS
    from tokenfab.explore.run import public

    reject_empty(**{"--space": space, "--sampler": sampler, "--ray-address": ray_address, "--storage": storage,
                    "--study-name": study_name, "--variant": variant, "--baseline": baseline})
    if trials < 1:
        raise UserError("--trials must be at least 1")
    if executor not in EXECUTORS:
        raise UserError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if fidelity is not None and fidelity not in ("tiled", "roofline"):
        raise UserError(f"--fidelity must be tiled or roofline, got {fidelity!r}")
    for name, value in (("--batch", batch), ("--workers", workers), ("--max-chips", max_chips)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be at least 1")
    if population is not None and population < 2:
        raise UserError(f"--population must be at least 2 (NSGA-II breeds pairs), got {population}")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}")
    from tokenfab.explore.search import SCREEN_MAX
    if screen is not None and not 0 <= screen <= SCREEN_MAX:
        raise UserError(f"--screen must be between 0 and {SCREEN_MAX}, got {screen}")
    if ray_address and executor != "ray":
        raise UserError("--ray-address needs --executor ray")
    from tokenfab.explore.search import check_storage
    check_storage(storage)  # a folder or an unreachable database: one line before any work
    econ = o.economics_from(economics, None)
    cfg = SearchConfig(trials=trials, seed=seed, sampler=sampler, population=population, batch=batch,
                       max_chips=max_chips, fidelity=fidelity, executor=executor, workers=workers,
                       ray_address=ray_address, storage=storage, study_name=study_name, resume=resume,
                       economics=econ, screen=screen)
    new_storage = storage is not None and "://" not in storage and not Path(storage).exists()
    done = []  # trials finished: a storage holding any is kept whatever follows

    def update(name: str, ev: dict) -> None:
        if ev.get("done"):
            done.append(ev["done"])
        bar.update(name, ev)

    try:
        with _Progress(enabled=not quiet) as bar:
            report = design_study(workload, space, cfg, variant=variant, with_sensitivity=not no_sensitivity,
                                  baseline=baseline, progress=update)
    except (SpecError, UserError, ValueError):
        if new_storage and not done:  # rejected input: leave no storage behind that this run created
            for leftover in (Path(storage), Path(storage + ".tokenfab-lock"), Path(storage + ".lock")):
                leftover.unlink(missing_ok=True)
        raise
    except KeyboardInterrupt:
        hint = (f"finished trials are kept in {storage}: run the same command with --resume to continue"
                if storage else "nothing was kept (no --storage)")
        err_console.print(f"[bold red]interrupted:[/] {hint}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    files = {}
    if out is not None:
        files = write_outputs(report, out)
    if html is not None:
        from tokenfab.report.explore_plots import front_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(front_html(report))
        files["html"] = str(html)
    report["files"] = files
    if json_out:
        print_json(public(report))
        return
    _print(report)


class _Progress:
    """A rich progress bar on stderr with the best value so far (one task per search)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=err_console,
                               transient=False)
            self._p.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._p.__exit__(*exc)
        return False

    def update(self, name: str, ev: dict) -> None:
        if not self.enabled:
            return
        best = ev["best"]
        status = (f"best {ev['objective']} {best:.4f}" if best is not None else "no feasible design yet") + \
                 f", {ev['feasible']} feasible, {ev['evaluated']} evaluated"
        if name not in self._tasks:
            self._tasks[name] = self._p.add_task(f"design {name}", total=ev["total"], status=status)
        self._p.update(self._tasks[name], completed=ev["done"], total=ev["total"], status=status)


# ---- tables -----------------------------------------------------------------------------------

def _money(x, digits=0):
    return "-" if x is None else f"${x:,.{digits}f}"


def _num(x, fmt="{:,.0f}"):
    return "-" if x is None else fmt.format(x)


def _design_table(title: str, rows: list[dict], extra: list[dict]) -> Table:
    t = Table(title=title)
    for col, just in (("design", "left"), ("node", "left"), ("dies", "right"), ("mm²", "right"),
                      ("TDP W", "right"), ("bf16 TF", "right"), ("HBM", "left"), ("TB/s", "right"),
                      ("GB", "right"), ("SRAM MB", "right"), ("unit $", "right"), ("$/Mtok", "right"),
                      ("TPOT ms", "right"), ("vs base", "right")):
        t.add_column(col, justify=just)
    for r in list(rows) + extra:
        c, ob = r["chip"], r["objectives"]
        gen = c.get("hbm_generation") or ""
        hbm = f"{gen}×{c['hbm_stacks']}" if c.get("hbm_stacks") else str(gen)
        vs = r.get("vs_baseline_usd_per_mtok")
        mark = "*" if r.get("comparable_to_baseline") else ""
        t.add_row(f"{r['design_id']}{mark}", str(c.get("process_node") or ""), _num(c.get("compute_dies"), "{}"),
                  _num(c.get("die_area_mm2")), _num(c.get("tdp_w")), _num(c.get("bf16_tflops")), hbm,
                  _num(c.get("hbm_tb_s"), "{:.2f}"), _num(c.get("hbm_gb")), _num(c.get("sram_mb_total")),
                  _money(ob.get("unit_cost_usd")), _num(ob.get("usd_per_mtok"), "{:.4f}"),
                  _num(ob.get("tpot_ms"), "{:.1f}"), "" if vs is None else f"{vs * 100:+.0f}%")
    return t


def _print(rep: dict) -> None:
    st = rep["study"]
    console.print(f"[bold]{rep['workload']['title'] or rep['workload']['name']}[/] — study {st['name']}: "
                  f"{st['trials']} trials ({st['evaluated']} evaluated this run, {st['reused']} repeats of a design, "
                  f"{st['resumed_from']} from storage), {st['sampler']} seed {st['seed']}, {st['executor']} × "
                  f"{st['workers']}, {st['seconds']:.1f} s")
    extra = [r for r in (rep["baseline"], rep.get("reference_native"), rep.get("reference")) if r]
    console.print(_design_table(f"Pareto front ({len(rep['front'])} of {len(rep['feasible'])} feasible designs; "
                                f"* = same node as {rep['baseline']['design_id']}, area within ±20%), then the "
                                f"baseline and references", rep["front"], extra))
    best, base = rep.get("best"), rep["baseline"]
    if best:
        t = Table(title=f"$/Mtok of the mix by part: best design {best['design_id']} vs {base['design_id']}")
        t.add_column("part")
        t.add_column(best["design_id"], justify="right")
        t.add_column(base["design_id"], justify="right")
        bb, ba = best.get("usd_per_mtok_breakdown") or {}, base.get("usd_per_mtok_breakdown") or {}
        for k in dict.fromkeys(list(bb) + list(ba)):
            t.add_row(k.replace("_", " "), _num(bb.get(k), "{:.4f}"), _num(ba.get(k), "{:.4f}"))
        t.add_row("total", _num(best["objectives"].get("usd_per_mtok"), "{:.4f}"),
                  _num(base["objectives"].get("usd_per_mtok"), "{:.4f}"))
        console.print(t)
        t = Table(title="per scenario: best deployment on the best design | on the baseline")
        for col in ("scenario", "weight", "chips tp/ep batch", "tok/s/chip", "TPOT ms", "$/Mtok",
                    "base chips tp/ep batch", "base tok/s/chip", "base $/Mtok"):
            t.add_column(col, justify="left" if col == "scenario" else "right")
        for name, s in best["scenarios"].items():
            b = base["scenarios"].get(name, {})

            def dep(x):
                return "-" if "num_chips" not in x else f"{x['num_chips']} {x['tp']}/{x['ep']} {x['batch']}"
            t.add_row(name, f"{s['weight']:.0%}", dep(s), _num(s.get("total_tok_s_per_chip")),
                      _num(s.get("tpot_ms"), "{:.1f}"), _num(s.get("usd_per_mtok"), "{:.4f}"), dep(b),
                      _num(b.get("total_tok_s_per_chip")), _num(b.get("usd_per_mtok"), "{:.4f}"))
        console.print(t)
    console.print(f"[bold]verdict:[/] {rep['verdict']['text']}")
    if rep["infeasible"]:
        counts = ", ".join(f"{k} {v}" for k, v in rep["infeasible_reason_counts"].items())
        console.print(f"[bold]infeasible:[/] {len(rep['infeasible'])} designs ({counts}); e.g. "
                      f"{rep['infeasible'][0]['design_id']}: {rep['infeasible'][0]['reasons'][0]}")
    sens = rep.get("sensitivity")
    if sens and sens.get("text"):
        t = Table(title=f"sensitivity of {sens['objective']} around {best['design_id']} (one step each way)")
        for col in ("parameter", "value", "step down", "Δ", "step up", "Δ "):
            t.add_column(col, justify="left" if col in ("parameter", "value") else "right")
        for r in sens["parameters"][:8]:
            cells = [r["parameter"], str(r["value"])]
            for d in ("down", "up"):
                x = r[d]
                if x is None:
                    cells += ["-", ""]
                else:
                    cells += [str(x["value"]), f"{x['delta'] * 100:+.1f}%" if x["delta"] is not None else "infeasible"]
            t.add_row(*cells)
        console.print(t)
    var = rep.get("variant")
    if var:
        t = Table(title=f"variant {var['name']}: how the best design moves ({var['description'].strip()[:90]})")
        for col in ("figure", "base best", "variant best", "ratio", "front median base", "front median variant"):
            t.add_column(col, justify="left" if col == "figure" else "right")
        for k, m in var["moves"].items():
            def f(x):
                return "-" if x is None else (f"{x:,.4g}" if isinstance(x, (int, float)) else str(x))
            t.add_row(k, f(m["base"]), f(m["variant"]), "-" if m["ratio"] is None else f"×{m['ratio']:.2f}",
                      f(m["front_median_base"]), f(m["front_median_variant"]))
        console.print(t)
        if var.get("cross", {}).get("text"):
            console.print(f"[bold]co-design:[/] {var['cross']['text']}")
        console.print(f"[bold]variant verdict:[/] {var['verdict']['text']}")
    for k, v in (rep.get("files") or {}).items():
        if isinstance(v, dict):
            console.print(f"wrote {k}: {len(v)} files under {Path(next(iter(v.values()))).parent}" if v else "")
        elif isinstance(v, list):
            console.print(f"wrote {k}: {', '.join(v)}")
        else:
            console.print(f"wrote {k}: {v}")
