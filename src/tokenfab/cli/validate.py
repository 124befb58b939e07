"""`tokenfab validate` (predict published measurements, report the error) and `tokenfab calibrate`
(fit chip efficiencies from microbenchmark rows only)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tokenfab.cli import options as o
from tokenfab.cli.common import UserError, console, handle_errors, id_list, print_json


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("calibrate")(calibrate)


def _load(data: Optional[list[Path]]):
    """Rows for calibration: the microbenchmarks live in public.csv (deployments.csv has none)."""
    from tokenfab.specs.measurement import load_measurements
    from tokenfab.validate.datasets import public_csv

    paths = [Path(p) for p in data] if data else [public_csv()]
    rows = []
    for p in paths:
        rows.extend(load_measurements(p))
    return paths, rows


def _load_for_validate(data: Optional[list[Path]], strict: bool):
    """(paths, rows, unreadable rows): a row that does not parse is set aside with its reason
    (`strict`: it fails the command instead)."""
    from tokenfab.validate.datasets import read_measurements, shipped_csvs

    paths = [Path(p) for p in data] if data else shipped_csvs()
    rows, bad = [], []
    for p in paths:
        r, b = read_measurements(p, strict=strict)
        rows.extend(r)
        bad.extend(b)
    return paths, rows, bad


def _label(path: Path) -> str:
    """How a data file is named in reports and calibration sources (shipped file: catalog path)."""
    from tokenfab.validate.datasets import measurements_dir

    try:
        return "catalog/measurements/" + str(Path(path).resolve().relative_to(measurements_dir().resolve()))
    except ValueError:
        return str(path)


class _Progress:
    """`LABEL: 12/40 rows, 23 s elapsed` on stderr (stdout, --json included, stays
    clean): one line rewritten in place on a terminal, otherwise a line at the start, every tenth
    of the rows and at the end."""

    def __init__(self, label: str, stream=None):
        self.label, self.stream = label, stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start, self.open = time.monotonic(), False

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.start
        line = f"{self.label}: {done}/{total} rows, {elapsed:.0f} s elapsed"
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
            self.open = True
            if done == total:
                self.close()
        elif done in (0, total) or done % max(1, -(-total // 10)) == 0:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End an in-place line (after the last row, or before an error message)."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


@handle_errors
def validate(
    data: Optional[list[Path]] = typer.Option(None, "--data", help="Measurement CSV(s) in the shipped schema "
                                              "[the shipped public set]. Repeat for several files."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained plotly report to this file."),
    show: str = typer.Option("worst", "--show", help="Rows in the table: worst (20 largest errors), all, none."),
    server_sim: bool = typer.Option(False, "--server-sim", help="MLPerf server throughput by discrete-event "
                                    "simulation of the chosen mapping (p99 TTFT/TPOT limits; seconds per row) "
                                    "instead of the steady-state queueing estimate."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 2) on the first row that does not parse, "
                                "instead of skipping it with its reason."),
    json_out: bool = o.Json,
) -> None:
    """Predict every usable measurement and report the error: (predicted - measured) / measured."""
    from tokenfab.api import ensure_env_operators
    from tokenfab.validate import class_stats, summarize, validate_rows

    ensure_env_operators()  # $TOKENFAB_OPERATORS applies to every predicted row, read here at the edge
    if show not in ("worst", "all", "none"):
        raise ValueError(f"--show must be worst, all or none, got {show!r}")
    paths, rows, unreadable = _load_for_validate(data, strict)
    progress = _Progress("validate --server-sim") if server_sim else None  # seconds a row: say how far it is
    try:
        results = validate_rows(rows, server_sim=server_sim, unreadable=unreadable, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    report = summarize(results)
    if html:
        from tokenfab.report.validate_html import write_validate_html
        write_validate_html(report, html, [_label(p) for p in paths])
    if json_out:
        print_json(report)
        return
    _print(report, class_stats(results), show, [_label(p) for p in paths])
    if html:
        console.print(f"report written to {html}")


def _print(report: dict, classes: dict, show: str, sources: list[str]) -> None:
    rows = report["rows"]
    predicted = [r for r in rows if r["predicted"] is not None]
    if show != "none":
        picked = predicted if show == "all" else sorted(predicted, key=lambda r: -abs(r["error"]))[:20]
        t = Table(title="Largest errors" if show != "all" else "Predicted rows", title_justify="left")
        for col, just in [("id", "left"), ("chip", "left"), ("model", "left"), ("scenario", "left"),
                          ("metric", "left"), ("measured", "right"), ("predicted", "right"), ("error", "right"),
                          ("deployment / detail", "left")]:
            t.add_column(col, justify=just)
        for r in picked:
            style = None if abs(r["error"]) <= 0.25 else "red"
            t.add_row(r["id"], r["hardware"], r["model"] or "—", r["scenario"], r["metric"], f"{r['measured']:,.4g}",
                      f"{r['predicted']:,.4g}", f"{r['error']:+.1%}", r["detail"][:110], style=style)
        console.print(t)
    s = report["summary"]
    g = Table(title=f"Accuracy on {', '.join(sources)}", title_justify="left")
    for col in ("group", "rows", "predicted", "median |err|", "mean |err|", "within ±10%", "within ±25%"):
        g.add_column(col, justify="left" if col == "group" else "right")
    g.add_row("all", str(len(rows)), str(s["n_predicted"]), _pct(s["median_ape"]), _pct(s["mape"]),
              _pct(s["within_10"]), _pct(s["within_25"]), style="bold")
    for name, v in classes.items():
        g.add_row(f"{name} rows", str(v["n"]), str(v["n_predicted"]), _pct(v["median_ape"]), _pct(v["mape"]),
                  _pct(v["within_10"]), _pct(v["within_25"]))
    for name, v in s["by_scenario"].items():
        g.add_row(f"  {name}", str(v["n"]), str(v["n_predicted"]), _pct(v["median_ape"]), _pct(v["mape"]),
                  _pct(v["within_10"]), _pct(v["within_25"]))
    from tokenfab.validate import metric_class
    serving = {r.get("framework") or "(not stated)" for r in rows if metric_class(r["metric"]) != "micro"}
    for name, v in s.get("by_framework", {}).items():
        if name not in serving:  # kernel harnesses are in --json
            continue
        g.add_row(f"  framework {name}", str(v["n"]), str(v["n_predicted"]), _pct(v["median_ape"]), _pct(v["mape"]),
                  _pct(v["within_10"]), _pct(v["within_25"]))
    console.print(g)
    signed = s.get("median_error")
    console.print(f"coverage {_pct(s['coverage'])} of usable rows; signed median error "
                  f"{'—' if signed is None else f'{signed:+.1%}'}; skipped: {sum(1 for r in rows if r['skipped'])}")
    reasons = s.get("skip_reasons") or {}
    if reasons:
        t = Table(title="Skipped rows by reason", title_justify="left")
        t.add_column("rows", justify="right")
        t.add_column("reason")
        for reason, count in reasons.items():
            t.add_row(str(count), reason)
        console.print(t)


@handle_errors
def calibrate(
    data: Optional[list[Path]] = typer.Option(None, "--data", help="Measurement CSV(s) [the shipped public set]."),
    chips: Optional[list[str]] = typer.Option(None, "--chip", help="Only these chip ids (comma-separated)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write calibration files here [the package's "
                                       "catalog/calibration, versioned data]."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Fit and print; write nothing."),
    source: str = typer.Option("microbench", "--source", help="microbench (rows of the measurement CSVs) or "
                               "aiconfigurator (the measured kernel tables of the installed aiconfigurator "
                               "package: GEMM curves by precision and shape, all-reduce alpha/beta)."),
    aic_data: Optional[Path] = typer.Option(None, "--aic-data", help="aiconfigurator kernel-table folder "
                                            "(<system>/<op>/<framework>/<version>/) [the installed package's]."),
    aic_framework: str = typer.Option("trtllm", "--aic-framework", help="Whose kernels to fit from the "
                                      "aiconfigurator tables: trtllm, vllm or sglang."),
    gemm_compute: str = typer.Option("fit", "--gemm-compute", help="With --source aiconfigurator: fit the GEMM "
                                     "compute fractions on the tables too (fit), or keep those fitted on "
                                     "best-shape microbenchmarks and fit only the small-M terms (keep)."),
    json_out: bool = o.Json,
) -> None:
    """Fit chip efficiencies (GEMM, attention, HBM, launch, collectives) from microbenchmark rows
    only; end-to-end rows never enter the fit. Chips without microbenchmarks keep their family default.
    `--source aiconfigurator` fits GEMM curves and all-reduce from measured kernel tables instead."""
    from tokenfab import catalog
    from tokenfab.perf.efficiency import efficiency_for

    chip_ids = id_list(chips, "--chip")
    for cid in chip_ids or []:
        catalog.check_chip_id(cid)
    if source == "aiconfigurator" and data:
        raise ValueError("--data is for --source microbench: the aiconfigurator fit reads kernel tables (--aic-data)")
    if source == "microbench":
        given = [name for name, on in (("--aic-data", aic_data is not None), ("--aic-framework", aic_framework != "trtllm"),
                                       ("--gemm-compute", gemm_compute != "fit")) if on]
        if given:
            raise ValueError(f"{', '.join(given)} only with --source aiconfigurator")
    if source == "aiconfigurator":
        if gemm_compute not in ("keep", "fit"):
            raise ValueError(f"--gemm-compute {gemm_compute!r} is not one of keep, fit")
        _calibrate_aic(chip_ids, out, dry_run, aic_data, aic_framework, gemm_compute == "fit",
                       json_out)
        return
    if source != "microbench":
        raise ValueError(f"--source {source!r} is not one of microbench, aiconfigurator")
    from tokenfab.validate.calibrate import calibrate as fit_all
    from tokenfab.validate.calibrate import input_digest, write_calibration

    paths, rows = _load(data)
    label = " + ".join(_label(p) for p in paths)
    with_rows = sorted({r.hardware for r in rows if r.usable and r.is_micro and r.hardware})
    missing = [c for c in chip_ids or [] if c not in with_rows]
    if missing:
        raise UserError(f"--chip {', '.join(missing)}: no usable microbenchmark rows in {label} "
                        f"(chips with rows: {', '.join(with_rows) or 'none'})")
    fits = fit_all(rows, label, chip_ids, out)
    digest = input_digest(paths)
    written = []
    if not dry_run:
        for f in fits:
            # A chip whose rows inform nothing is written too (its file then holds today's family
            # default under any kernel-table fit, not a default copied there before).
            if f.fitted or f.transferred or f.rows:
                written.append(str(write_calibration(f, label, digest, out)))
        efficiency_for.cache_clear()
    result = [{"chip": f.chip, "fitted": {n: getattr(f.efficiency, n) for n in f.fitted},
               "transferred_same_silicon": f.transferred,
               "kept_family_default": f.kept_default, "rows": [r["id"] for r in f.rows],
               "median_ape_before": f.before_median_ape, "median_ape_after": f.after_median_ape,
               "source": f.efficiency.source if (f.fitted or f.transferred)
               else "family default (no informative microbenchmark rows)"}
              for f in fits]
    if json_out:
        print_json({"input": label, "input_sha256": digest, "written": written, "chips": result})
        return
    t = Table(title=f"Calibration from microbenchmark rows of {label}", title_justify="left")
    for col in ("chip", "rows", "fitted parameters", "median |err| before → after"):
        t.add_column(col)
    for r in result:
        params = ", ".join(f"{k}={v:g}" for k, v in r["fitted"].items()) or "— (family default)"
        t.add_row(r["chip"], str(len(r["rows"])), params,
                  f"{_pct(r['median_ape_before'])} → {_pct(r['median_ape_after'])}")
    console.print(t)
    if written:
        console.print(f"wrote {len(written)} file(s) under {Path(written[0]).parent}")
    elif dry_run:
        console.print("dry run: nothing written")


def _calibrate_aic(chips, out, dry_run: bool, root, framework: str, fit_compute: bool, json_out: bool) -> None:
    import time

    from tokenfab import catalog
    from tokenfab.perf.efficiency import efficiency_for
    from tokenfab.validate import aic_fit
    from tokenfab.validate import aiconfigurator as aic
    from tokenfab.validate.calibrate import write_aiconfigurator

    if framework not in ("trtllm", "vllm", "sglang"):
        raise ValueError(f"--aic-framework {framework!r} is not one of trtllm, vllm, sglang")
    if root is not None and not Path(root).is_dir():
        raise ValueError(f"--aic-data {root}: no such folder")
    t0 = time.perf_counter()
    root = aic.data_root() if root is None else Path(root)
    version = aic.package_version()
    fits = aic_fit.fit_all(root, chips, framework, out, fit_compute)
    if not fits:
        which = f" for {', '.join(chips)}" if chips else ""
        raise ValueError(f"no aiconfigurator {framework} kernel tables{which} under {root} "
                         f"(<system>/gemm/{framework}/<version>/gemm_perf.parquet or .csv)")
    written = []
    records = []
    for f in fits:
        rec = aic_fit.record(f, version, framework, fit_compute)
        records.append({"chip": f.chip, **rec})
        if not dry_run and f.applied:
            vendor = catalog.load_chip(f.chip).vendor
            written.append(str(write_aiconfigurator(f.chip, vendor, f.applied, rec, out)))
    efficiency_for.cache_clear()
    seconds = time.perf_counter() - t0
    if json_out:
        print_json({"source": "aiconfigurator", "package_version": version, "root": str(root),
                    "seconds": round(seconds, 2), "written": written, "chips": records})
        return
    t = Table(title=f"Kernel-table calibration from aiconfigurator-core {version} ({framework}), {seconds:.1f} s",
              title_justify="left")
    for col in ("chip", "table", "rows", "fitted", "median |err| before → after", "signed median after"):
        t.add_column(col)
    for f in fits:
        for g in f.gemm:
            t.add_row(f.chip, f"gemm {g.precision}", str(g.rows),
                      ", ".join(f"{k}={v:g}" for k, v in g.params.items()),
                      f"{_pct(g.median_ape_before)} → {_pct(g.median_ape_after)}", f"{g.signed_median_after:+.1%}")
        for c in (f.allreduce, f.nccl_allreduce):
            if c is not None:
                t.add_row(f.chip, c.table, str(c.rows), ", ".join(f"{k}={v:g}" for k, v in c.params.items())
                          or "(scored, not fitted)", f"{_pct(c.median_ape_before)} → {_pct(c.median_ape_after)}",
                          "—" if c.small_msg_signed_after is None else f"{c.small_msg_signed_after:+.1%} (<64 KiB)")
        params = lambda m: ", ".join(f"{k}={v:g}" for k, v in m["params"].items())  # noqa: E731
        for m in (f.moe or {}).get("fits", []):
            kept = bool(f.moe.get("applied")) and m["median_ape_after"] < m["median_ape_before"]
            t.add_row(f.chip, f"moe {m['kernel_class']}", str(m["rows"]), params(m) if kept else "(not applied)",
                      f"{_pct(m['median_ape_before'])} → {_pct(m['median_ape_after'])}",
                      f"{m['signed_median_after']:+.1%}")
        if f.gdn is not None:  # the Gated DeltaNet prefill (scan) fit
            g = f.gdn
            t.add_row(f.chip, "gdn prefill", str(g["rows_fitted"]),
                      (f"scan_compute_frac={g['scan_compute_frac']:g}, scan_chunk_us={g['scan_chunk_us']:g}"
                       if g["applied"] else "(not applied)"),
                      f"{_pct(g['median_ape_before'])} → {_pct(g['median_ape_after'])}", f"{g['signed_median_after']:+.1%}")
        for pid, g in (f.framework_gdn or {}).items():  # a framework's own Gated DeltaNet kernels
            t.add_row(f.chip, f"gdn prefill under {pid}", str(g["rows_fitted"]),
                      (f"scan_compute_frac={g['scan_compute_frac']:g}, scan_chunk_us={g['scan_chunk_us']:g}"
                       if g["applied"] else "(the reference's kept)"),
                      f"{_pct(g['median_ape_before'])} → {_pct(g['median_ape_after'])}", f"{g['signed_median_after']:+.1%}")
        for pid, sec in (f.framework_gemm or {}).items():  # a framework's own block-scaled FP8 GEMMs
            for m in sec["fits"]:
                t.add_row(f.chip, f"gemm {m['precision']} under {pid}", str(m["rows"]),
                          params(m) if m["applied"] else "(the reference's kept)",
                          f"{_pct(m['median_ape_reference'])} → {_pct(m['median_ape_own'])}",
                          f"{m['signed_median_own']:+.1%}")
        for pid, sec in (f.framework_moe or {}).items():  # a framework's own MoE kernels
            for m in sec["fits"]:
                t.add_row(f.chip, f"moe {m['kernel_class']} under {pid}", str(m["rows"]),
                          params(m) if m["applied"] else "(the reference's kept)",
                          f"{_pct(m['median_ape_reference'])} → {_pct(m['median_ape_own'])}",
                          f"{m['signed_median_own'] if m['applied'] else m['signed_median_reference']:+.1%}")
    console.print(t)
    if written:
        console.print(f"wrote {len(written)} file(s) under {Path(written[0]).parent}")
    elif dry_run:
        console.print("dry run: nothing written")
