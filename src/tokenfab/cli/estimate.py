"""`tokenfab estimate` (one deployment) and `tokenfab compare` (best deployment per model × chip)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from tokenfab import api
from tokenfab.cli import options as o
from tokenfab.cli.common import console, fitted_table, handle_errors, id_list, print_json


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate)
    app.command("compare")(compare)


@handle_errors
def estimate(
    ctx: typer.Context,
    model: str = typer.Option(..., "--model", "-m", help="Model id (see `tokenfab catalog models`) or config.json path."),
    chip: str = typer.Option(..., "--chip", "-c", help="Chip id (see `tokenfab catalog chips`) or chip YAML path."),
    chips: Optional[int] = typer.Option(None, "--chips", min=1, max=o.MAX_CHIP_COUNT, help="Number of chips (searched)."),
    tp: Optional[int] = typer.Option(None, "--tp", min=1, help="Tensor parallelism (searched)."),
    pp: Optional[int] = typer.Option(None, "--pp", min=1, help="Pipeline parallelism (searched)."),
    ep: Optional[int] = typer.Option(None, "--ep", min=1, help="Expert parallelism: 1, dp or tp×dp (searched)."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Sequences in flight per data-parallel rank (searched)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Weight precision: bf16, fp8, int8, int4, fp4 (searched: bf16, fp8)."),
    kv_precision: Optional[str] = typer.Option(None, "--kv-precision", help="KV-cache precision (fp8 with fp8/fp4 weights, else bf16)."),
    isl: Optional[int] = o.Isl, osl: Optional[int] = o.Osl,
    slo_ttft_ms: Optional[float] = o.SloTtft, slo_tpot_ms: Optional[float] = o.SloTpot,
    prefix_hit: float = o.PrefixHit,
    max_chips: Optional[int] = typer.Option(None, "--max-chips", min=1, max=o.MAX_CHIP_COUNT, help="Largest chip count the search tries (besides the chip's scale-up domain) [64; 4,096 for a chip that cannot hold the model on 64, such as an SRAM-only design]."),
    fidelity: o.Fidelity = o.FidelityOpt,
    economics: Optional[Path] = o.EconomicsFile, rental_usd_per_hour: Optional[float] = o.Rental,
    market_rental: bool = o.MarketRental,
    settings: Optional[list[str]] = o.Settings,
    mode: str = o.Mode,
    prefill_chip: Optional[str] = typer.Option(None, "--prefill-chip", help="Chip of the prefill pool (disaggregated; default: --chip)."),
    decode_chip: Optional[str] = typer.Option(None, "--decode-chip", help="Chip of the decode pool (disaggregated; default: --chip)."),
    ffn_chip: Optional[str] = typer.Option(None, "--ffn-chip", help="Chip of the expert side of an attention-FFN split "
                                           "decode pool (MoE; implies --mode af-disaggregated)."),
    mtp: Optional[bool] = o.Mtp, mtp_acceptance: Optional[float] = o.MtpAcceptance,
    attention_precision: Optional[str] = o.AttentionPrecision, kv_tier: str = o.KvTier, overlap: bool = o.Overlap,
    framework: Optional[str] = o.Framework,
    token_budget: Optional[int] = typer.Option(None, "--token-budget", min=1, max=1_048_576,
                                               help="Tokens one forward of the server runs at most (TensorRT-LLM's "
                                               "max_num_tokens, vLLM's max_num_batched_tokens, SGLang's chunked-"
                                               "prefill size) [8,192]."),
    tokens_per_day: Optional[float] = typer.Option(None, "--tokens-per-day", help="Output tokens per day to serve: "
                                                   "adds the fleet (chips per pool) and $/day."),
    json_out: bool = o.Json,
) -> None:
    """Predict one deployment; what you leave out, the mapping search chooses. Diffusion and
    recommendation models get their own estimate (seconds and $ per video; samples/s)."""
    _check_precision(precision, kv_precision)
    _check_precision(attention_precision, None, "--attention-precision")
    o.check_rental(rental_usd_per_hour, market_rental)
    if chips is not None and max_chips is not None and chips > max_chips:
        raise ValueError(f"--chips {chips} is more than --max-chips {max_chips}: give one, or a larger --max-chips")
    if tokens_per_day is not None and not tokens_per_day > 0:  # checked before the search runs
        raise ValueError(f"--tokens-per-day must be a positive number of output tokens, got {tokens_per_day:g}")
    _check_llm_only(ctx, model)
    traffic, workload = _requests(model, o.traffic_from(isl, osl, slo_ttft_ms, slo_tpot_ms, prefix_hit), settings)
    est = api.estimate_any(model, chip, traffic, workload=workload, num_chips=chips, tp=tp, pp=pp, ep=ep,
                           batch=batch, precision=precision, kv_precision=kv_precision, max_chips=max_chips,
                           fidelity=fidelity.value, **_deployment_kwargs(mode, mtp, mtp_acceptance, attention_precision,
                                                                         kv_tier, overlap, prefill_chip, decode_chip,
                                                                         ffn_chip, framework),
                           prefill_chunk_tokens=token_budget)
    if getattr(est, "kind", "llm") != "llm":
        row = api.with_cost(est, o.economics_from(economics, rental_usd_per_hour), market_rental)
    else:
        row = api.with_cost(est, o.economics_from(economics, rental_usd_per_hour), market_rental,
                            output_tokens_per_day=tokens_per_day)
    if json_out:
        print_json(row)
        return
    if row.get("kind", "llm") != "llm":
        _print_workloads([row])
        return
    _print_estimate(row)


@handle_errors
def compare(
    models: Optional[list[str]] = typer.Option(None, "--models", help=f"Model ids or paths, comma-separated ({', '.join(api.DEFAULT_MODELS)})."),
    chips: Optional[list[str]] = typer.Option(None, "--chips", help=f"Chip ids or paths, comma-separated ({', '.join(api.DEFAULT_CHIPS)})."),
    isl: Optional[int] = o.Isl, osl: Optional[int] = o.Osl,
    slo_ttft_ms: Optional[float] = o.SloTtft, slo_tpot_ms: Optional[float] = o.SloTpot,
    prefix_hit: float = o.PrefixHit,
    precision: Optional[str] = typer.Option(None, "--precision", help="Fix the weight precision (searched: bf16, fp8)."),
    max_chips: Optional[int] = typer.Option(None, "--max-chips", min=1, max=o.MAX_CHIP_COUNT, help="Largest chip count the search tries [64; 4,096 for a chip that cannot hold the model on 64]."),
    fidelity: o.Fidelity = o.FidelityOpt,
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained plotly report to this file."),
    economics: Optional[Path] = o.EconomicsFile, rental_usd_per_hour: Optional[float] = o.Rental,
    market_rental: bool = o.MarketRental,
    settings: Optional[list[str]] = o.Settings,
    mode: str = o.Mode,
    pairs: bool = typer.Option(False, "--pairs", help="Rank (prefill chip, decode chip) pairs of the --chips: every "
                               "ordered pair as separate pools, cheapest output token first."),
    mtp: Optional[bool] = o.Mtp, mtp_acceptance: Optional[float] = o.MtpAcceptance, kv_tier: str = o.KvTier,
    overlap: bool = o.Overlap, framework: Optional[str] = o.Framework,
    train: bool = typer.Option(False, "--train", help="Training mode: the best training mapping per (model, chip) "
                               "for a run of --tokens on --chips-per-run chips (step time, MFU, days, $/run)."),
    chips_per_run: int = typer.Option(1024, "--chips-per-run", min=1, help="--train: chips of the run (the search "
                                      "may leave some idle)."),
    tokens: Optional[float] = typer.Option(None, "--tokens", help="--train: training tokens of the run (e.g. 15e12)."),
    seq_len: int = typer.Option(4096, "--seq-len", min=1, help="--train: tokens per training sequence."),
    global_batch_tokens: Optional[float] = typer.Option(None, "--global-batch-tokens",
                                                        help="--train: tokens per optimizer step (default 16M)."),
    json_out: bool = o.Json,
) -> None:
    """Best deployment per (model, chip) under the SLOs. No arguments: the default scenario, fixed
    chat-like lengths (--isl, --osl; not `simulate --traffic chat`, whose lengths vary per request).
    Diffusion and recommendation models get their own tables (per video; samples/s). With --train:
    the best training mapping per (model, chip), its days, chip-hours and $ per trillion tokens."""
    ids, chip_ids = id_list(models, "--models"), id_list(chips, "--chips")
    o.check_rental(rental_usd_per_hour, market_rental)
    if train:
        if pairs:
            raise ValueError("--pairs ranks serving pools; it does not go with --train")
        _compare_training(ids, chip_ids, chips_per_run, tokens, seq_len, global_batch_tokens, precision or "bf16",
                          html, economics, rental_usd_per_hour, market_rental, json_out)
        return
    _check_precision(precision, None)
    traffic, workload = _requests(ids[0] if ids else None, o.traffic_from(isl, osl, slo_ttft_ms, slo_tpot_ms, prefix_hit),
                                  settings)
    kw = _deployment_kwargs(mode, mtp, mtp_acceptance, None, kv_tier, overlap, framework=framework)
    if pairs:
        estimates, failures = api.compare_pairs(ids, chip_ids, traffic, precision=precision,
                                                max_chips=max_chips, fidelity=fidelity.value, **kw)
    else:
        estimates, failures = api.compare(ids, chip_ids, traffic, precision=precision,
                                          max_chips=max_chips, fidelity=fidelity.value, workload=workload, **kw)
    if failures and not estimates:  # nothing to compare: one line (the first reason), no report
        f = failures[0]
        more = f" (and {len(failures) - 1} more pairs)" if len(failures) > 1 else ""
        raise ValueError(f"no pair could be estimated: {f['model']} on {f['chip']}: {f['error']}{more}")
    econ = o.economics_from(economics, rental_usd_per_hour)
    rows = [api.with_cost(e, econ, market_rental) for e in estimates]
    if pairs:
        rows.sort(key=lambda r: (r.get("usd_per_mtok_output") is None, r.get("usd_per_mtok_output") or 0.0))
    llm_rows = [r for r in rows if r.get("kind", "llm") == "llm"]
    other = [r for r in rows if r.get("kind", "llm") != "llm"]
    if html:
        from tokenfab.report.compare_html import write_compare_html
        write_compare_html(llm_rows, failures, traffic, html)
    if json_out:
        print_json(rows + [dict(f, fits=False) for f in failures])
        return
    if other:
        _print_workloads(other)
    if llm_rows or not other:
        _print_compare(llm_rows, failures, traffic)
    else:
        for f in failures:
            console.print(f"[red]{f['model']} on {f['chip']}:[/] {f['error']}")
    if html:
        console.print(f"report written to {html}")


def _compare_training(ids, chip_ids, chips_per_run, tokens, seq_len, global_batch_tokens, precision, html,
                      economics, rental_usd_per_hour, market_rental, json_out) -> None:
    """`compare --train`: one training run per (model, chip) at the same job and chip count."""
    from tokenfab import catalog
    from tokenfab.specs import SpecError
    from tokenfab.study.training import compare_training
    from tokenfab.train import TrainingJob

    from tokenfab.cli.train import check_run

    check_run(tokens, global_batch_tokens, precision, "with --train")
    fields = dict(tokens=tokens, seq_len=seq_len, precision=precision)
    if global_batch_tokens is not None:
        fields["global_batch_tokens"] = global_batch_tokens
    try:
        job = TrainingJob.from_mapping(fields, origin="--train")
    except SpecError as exc:
        raise ValueError(str(exc)) from None
    ms = [catalog.load_model(m) for m in (ids or api.DEFAULT_MODELS)]
    cs = [catalog.load_chip(c) for c in (chip_ids or api.DEFAULT_CHIPS)]
    econ = o.economics_from(economics, rental_usd_per_hour)
    if json_out:
        rows, failures = compare_training(ms, cs, chips_per_run, job, econ, market_rental)
    else:
        from tokenfab.cli.common import err_console
        with err_console.status("searching training mappings…") as status:
            rows, failures = compare_training(ms, cs, chips_per_run, job, econ, market_rental,
                                              progress=lambda note: status.update(f"training mappings: {note}"))
    if html:
        from tokenfab.report.train_html import write_train_compare_html
        write_train_compare_html(rows, failures, job, chips_per_run, html)
    if json_out:
        print_json(rows + [dict(f, fits=False) for f in failures])
        return
    _print_train_compare(rows, failures, job, chips_per_run)
    if html:
        console.print(f"report written to {html}")


def _print_train_compare(rows: list[dict], failures: list[dict], job, chips_per_run: int) -> None:
    title = (f"Best training mapping per model × chip — {job.tokens / 1e12:g}T tokens at {job.seq_len:,}, "
             f"{job.precision}, up to {chips_per_run:,} chips")
    columns = [("model", "left"), ("chip", "left"), ("chips\nused", "right"), ("TP/PP/CP/\nEP/DP", "left"),
               ("sched", "left"), ("prec", "left"), ("step\ns", "right"), ("MFU", "right"), ("days", "right"),
               ("chip-hours", "right"), ("$/run", "right"), ("$/T tok", "right"), ("GiB/\nchip", "right")]
    cells = []
    for r in rows:
        mp = r["mapping"]
        cells.append(([escape(r["model"]), escape(r["chip"]), f"{r['chips_used']:,}",
                       f"{mp['tp']}/{mp['pp']}/{mp['cp']}/{mp['ep']}/{mp['dp']}", mp["schedule"], r["precision"],
                       f"{r['step_time_s']:,.2f}", f"{r['mfu']:.1%}", f"{r['days']:,.1f}", f"{r['chip_hours']:,.0f}",
                       "—" if r.get("usd") is None else f"${r['usd']:,.0f}",
                       "—" if r.get("usd_per_trillion_tokens") is None else f"${r['usd_per_trillion_tokens']:,.0f}",
                       f"{r['memory_gib_per_chip']:.0f}"], None))
    t, hidden = fitted_table(title, columns, cells, console.width,
                             drop_order=["sched", "prec", "GiB/\nchip", "TP/PP/CP/\nEP/DP", "step\ns", "chips\nused"])
    console.print(t)
    if hidden:
        console.print(f"not shown at this width: {', '.join(hidden)} (a wider terminal or --json shows them)",
                      highlight=False)
    bases = sorted({r["cost_basis"] for r in rows if r.get("cost_basis")})
    if bases:
        console.print(f"$: {', '.join(bases)} cost per chip-hour (see `tokenfab tco --chip ID`); "
                      "--rental-usd-per-hour or --economics FILE to change it. MFU of the chosen precision's peak.",
                      highlight=False)
    for chip in sorted({r["chip"] for r in rows if r["precision"] != r.get("precision_asked", r["precision"])}):
        console.print(f"{chip} has no FP8 math: its runs are at bf16.", highlight=False)
    for chip, note in {r["chip"]: r["cost_note"] for r in rows if r.get("usd") is None and r.get("cost_note")}.items():
        console.print(f"$ for {chip}: {note}", highlight=False)
    for f in failures:
        console.print(f"[red]{escape(f['model'])} on {escape(f['chip'])}:[/] {escape(f['error'])}")


WORKLOAD_OPTIONS = {"model", "chip", "chips", "precision", "max_chips", "framework", "economics",
                    "rental_usd_per_hour", "market_rental", "settings", "json_out"}
"""`estimate` options a diffusion or recommendation model takes: the model and chip, the arguments
its estimate reads (`api.WORKLOAD_ARGS`), its request (--set) and the pricing and output. Every other
option describes an LLM deployment."""


def _check_llm_only(ctx: typer.Context, model_id) -> None:
    """Refuse, in one line, LLM-only options typed for a diffusion or recommendation model: its
    estimate has no such knob, and the option would be dropped without a word."""
    typed = [p.opts[0] for p in ctx.command.params if p.name not in WORKLOAD_OPTIONS
             and getattr(ctx.get_parameter_source(p.name), "name", None) == "COMMANDLINE"]
    if not typed:
        return
    kind = api.resolve_model(model_id).kind
    if kind != "llm":
        from tokenfab.specs.requests import GenerationRequest, RecsysRequest
        target = GenerationRequest if kind == "diffusion" else RecsysRequest
        raise ValueError(f"{', '.join(typed)} only for LLMs: {model_id} is a {kind} model (its request: "
                         f"--set KEY=VALUE with {', '.join(target.model_fields)})")


def _requests(model_id, traffic, settings):
    """(Traffic, workload request) with the --set fields applied to the one the model uses."""
    from tokenfab.specs import SpecError, Traffic
    from tokenfab.specs.requests import GenerationRequest, RecsysRequest

    if not settings:
        return traffic, None
    pairs = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--set {item!r}: expected KEY=VALUE")
        pairs[key.strip()] = value.strip()
    kind = api.resolve_model(model_id).kind if model_id else "llm"
    target = {"llm": Traffic, "diffusion": GenerationRequest, "recsys": RecsysRequest}[kind]
    unknown = sorted(set(pairs) - set(target.model_fields))
    if unknown:
        raise SpecError(f"--set: {', '.join(unknown)} is not a field of {target.__name__} "
                        f"({', '.join(target.model_fields)})")
    if kind == "llm":
        return Traffic.from_mapping({**traffic.model_dump(), **pairs}, origin="--set"), None
    return traffic, target.from_mapping(pairs, origin="--set")


def _print_workloads(rows: list[dict]) -> None:
    """Tables for diffusion (per video) and recommendation (samples/s) estimates."""
    gen = [r for r in rows if r["kind"] == "diffusion"]
    rec = [r for r in rows if r["kind"] == "recsys"]
    if gen:
        t = Table(title="Video/image generation: one request at a time per deployment", title_justify="left")
        for col in ("model", "chip", "chips", "SP u x r", "prec", "request", "latency s", "text/denoise/VAE s",
                    "samples/h/chip", "$/image", "$/video", "$/video-s", "bound"):
            t.add_column(col)
        for r in gen:
            cfg = " cfg-par" if r.get("cfg_parallel", 1) > 1 else ""
            t.add_row(r["model"], r["chip"], str(r["num_chips"]),
                      f"{r['ulysses']}x{r['ring']}" + (" fsdp" if r["fsdp"] else "") + cfg, r["weight_precision"],
                      f"{r['width_px']}x{r['height_px']}x{r['frames']}, {r['steps']} steps x{r['forwards_per_step']}"
                      + (f", batch {r['batch']}" if r.get("batch", 1) > 1 else ""),
                      f"{r['latency_s']:,.1f}", f"{r['text_encoder_s']:.1f}/{r['denoise_s']:,.1f}/{r['vae_decode_s']:.1f}",
                      f"{r['videos_per_hour_per_chip']:,.2f}", _fmt_usd4(r.get("usd_per_image")),
                      _fmt_usd3(r.get("usd_per_video") if r.get("usd_per_image") is None else None),
                      _fmt_usd3(r.get("usd_per_video_second")), r["bound"], style=None if r["meets_slo"] else "red")
        console.print(t)
    if rec:
        t = Table(title="Recommendation scoring", title_justify="left")
        for col in ("model", "chip", "chips", "tables", "prec mlp/emb", "batch", "step ms", "latency ms",
                    "samples/s/chip", "$/M samples", "bound"):
            t.add_column(col)
        for r in rec:
            t.add_row(r["model"], r["chip"], str(r["num_chips"]),
                      ("replicated" if r["shard"] == 1 else f"sharded/{r['shard']}")
                      + ("" if r.get("embedding_tier", "hbm") == "hbm"
                         else f", {r['embedding_tier']} ({r['embedding_hit_rate']:.0%} in HBM)"),
                      f"{r['weight_precision']}/{r['embedding_precision']}", f"{r['batch']:,}", f"{r['step_ms']:.2f}",
                      f"{r['latency_ms']:.1f}", f"{r['samples_s_per_chip']:,.0f}",
                      _fmt_usd(r.get("usd_per_million_samples")), r["bound"], style=None if r["meets_slo"] else "red")
        console.print(t)
    for r in rows:
        if not r["meets_slo"]:
            limit = (f"{r['slo_latency_s']:g} s" if r["kind"] == "diffusion" else f"{r['slo_latency_ms']:g} ms")
            got = (f"{r['latency_s']:,.2f} s" if r["kind"] == "diffusion" else f"{r['latency_ms']:,.2f} ms")
            console.print(f"[red]{escape(r['model'])} on {escape(r['chip'])}: no deployment meets the {limit} latency "
                          f"SLO[/]; the row shows the fastest ({got}).", highlight=False)


def _deployment_kwargs(mode, mtp, mtp_acceptance, attention_precision, kv_tier, overlap,
                       prefill_chip=None, decode_chip=None, ffn_chip=None, framework=None) -> dict:
    """LLM deployment options as `api.estimate` keywords (only those set, so other kinds ignore them)."""
    if mode not in api.MODES:
        raise ValueError(f"--mode {mode!r} is not one of {', '.join(api.MODES)}")
    kw = {"mode": mode, "kv_tier": kv_tier, "overlap": overlap}
    for key, value in (("mtp", mtp), ("mtp_acceptance", mtp_acceptance), ("attention_precision", attention_precision),
                       ("prefill_chip", prefill_chip), ("decode_chip", decode_chip), ("ffn_chip", ffn_chip),
                       ("framework", framework)):
        if value is not None:
            kw[key] = value
    return kw


def _check_precision(precision, kv_precision, first="--precision"):
    from tokenfab.specs import PRECISIONS
    for name, value in ((first, precision), ("--kv-precision", kv_precision)):
        if value is not None and value not in PRECISIONS:
            raise ValueError(f"{name} {value!r} is not a precision; expected one of {', '.join(PRECISIONS)}")


def _fmt_usd(v) -> str:
    return "—" if v is None else f"{v:,.2f}"


def _fmt_usd3(v) -> str:
    return "—" if v is None else f"{v:,.3f}"


def _fmt_usd4(v) -> str:
    return "—" if v is None else f"{v:,.4f}"


def _pool_line(p: dict) -> str:
    rate = (f"{p['input_tok_s_per_chip']:,.0f} input tok/s/chip" if p["role"] == "prefill"
            else f"{p['output_tok_s_per_chip']:,.0f} output tok/s/chip")
    per = {"prefill": "prompts per forward", "ffn": "seqs routed per step"}.get(p["role"], "seqs per DP rank")
    cp = f" · CP {p['cp']}" if p.get("cp", 1) > 1 else ""
    tail = f"; {p['bound']}-bound" if "bound" in p else (f"; {p['step_ms']:,.1f} ms a step on this side"
                                                          if "step_ms" in p else "")
    return (f"{p['instances']} × {p['num_chips']} {p['chip']}: TP {p['tp']} · PP {p['pp']} · EP {p['ep']} · DP {p['dp']}{cp}, "
            f"{p['batch']} {per}, {p['weight_precision']}/{p['kv_precision']}; {rate}{tail}")


def _print_compare(rows: list[dict], failures: list[dict], traffic) -> None:
    slo = []
    if traffic.slo_ttft_ms:
        slo.append(f"TTFT ≤ {traffic.slo_ttft_ms:g} ms")
    if traffic.slo_tpot_ms:
        slo.append(f"TPOT ≤ {traffic.slo_tpot_ms:g} ms")
    title = f"Best deployment per model × chip — ISL {traffic.input_len}, OSL {traffic.output_len}" + (
        f", {', '.join(slo)}" if slo else "")
    columns = [("model", "left"), ("chip", "left"), ("mode", "left"), ("chips", "right"), ("TP/PP/\nEP/DP", "left"),
               ("batch", "right"), ("prec\nw/kv", "left"), ("TTFT\nms", "right"), ("TPOT\nms", "right"),
               ("out\ntok/s/chip", "right"), ("$/Mtok\nin", "right"), ("$/Mtok\nout", "right"), ("bound\np/d", "left")]
    cells = []
    for r in rows:
        chip = escape(r["chip"]) + (" [yellow]*[/]" if r["spec_confidence"] != "datasheet" else "")
        mode = {"aggregated": "agg", "disaggregated": "P/D", "af-disaggregated": "P/A/F"}.get(r.get("mode"), "agg")
        cells.append(([escape(r["model"]), chip, mode, str(r["num_chips"]), f"{r['tp']}/{r['pp']}/{r['ep']}/{r['dp']}",
                       str(r["batch"]), f"{r['weight_precision']}/{r['kv_precision']}", f"{r['ttft_ms']:,.0f}",
                       f"{r['tpot_ms']:,.1f}", f"{r['output_tok_s_per_chip']:,.0f}",
                       _fmt_usd(r.get("usd_per_mtok_input")), _fmt_usd(r.get("usd_per_mtok_output")),
                       f"{r['bound']['prefill'][:4]}/{r['bound']['decode'][:4]}"],
                      None if r["meets_slo"] else "red"))
    t, hidden = fitted_table(title, columns, cells, console.width,
                             drop_order=["bound\np/d", "TP/PP/\nEP/DP", "prec\nw/kv", "mode", "batch",
                                         "$/Mtok\nin", "chips", "TTFT\nms"])
    console.print(t)
    if hidden:
        console.print(f"not shown at this width: {', '.join(hidden)} (a wider terminal or --json shows them)",
                      highlight=False)
    if any(r["spec_confidence"] != "datasheet" for r in rows):
        console.print("[yellow]*[/] chip specs partly estimated (see `tokenfab catalog chips`): treat as estimates.")
    if any(not r["meets_slo"] for r in rows):
        console.print("[red]red[/]: no mapping meets the SLOs; the row shows the one that misses them least.")
    bases = sorted({r["cost_basis"] for r in rows if r.get("usd_per_mtok_output") is not None})
    if bases:
        console.print(f"$/Mtok: {', '.join(bases)} cost per chip-hour (see `tokenfab tco --chip ID`); "
                      "--rental-usd-per-hour or --economics FILE to change it.")
    for chip in sorted({r["chip"] for r in rows if r.get("usd_per_mtok_output") is None and r.get("cost_basis")}):
        console.print(f"$/Mtok for {chip}: no catalog price; price it with --rental-usd-per-hour, "
                      "or give a chip YAML with price_usd.")
    for f in failures:
        console.print(f"[red]{f['model']} on {f['chip']}:[/] {f['error']}")


def _print_estimate(r: dict) -> None:
    t = Table(title=f"{r['model']} on {r['num_chips']} × {r['chip']}", show_header=False, title_justify="left")
    t.add_column("", style="bold")
    t.add_column("")
    mem = r["memory_gb_per_chip"]
    rows = [
        ("mode", r.get("mode", "aggregated") + (f"; {r['pd_ratio']:.2f} prefill chips per decode-side chip, KV transfer "
                                                  f"{r['kv_transfer_ms']:.1f} ms" if r.get("pd_ratio") else "")),
        *[(f"{p['role']} pool", _pool_line(p)) for p in r.get("pools", []) if p["role"] != "aggregated"],
        ("mapping", f"TP {r['tp']} · PP {r['pp']} · EP {r['ep']} · DP {r['dp']}; batch {r['batch']} per DP rank "
                    f"(concurrency {r['concurrency']})" + (" — decode pool" if r.get("mode") != "aggregated" else "")),
        ("MTP", f"{r['draft_tokens']} draft token(s), acceptance {r['draft_acceptance']:.2f}" if r.get("draft_tokens")
                else "off"),
        ("precision", f"weights {r['weight_precision']}, KV cache {r['kv_precision']}"),
        ("traffic", f"ISL {r['input_len']}, OSL {r['output_len']}"),
        ("TTFT", f"{r['ttft_ms']:,.1f} ms" + (f" (SLO {r['slo_ttft_ms']:g})" if r["slo_ttft_ms"] else "")),
        ("TPOT", f"{r['tpot_ms']:,.2f} ms" + (f" (SLO {r['slo_tpot_ms']:g})" if r["slo_tpot_ms"] else "")
                 + f"; decode step {r['decode_step_ms']:,.2f} ms"),
        ("meets SLO", "yes" if r["meets_slo"] else "[red]no — closest mapping shown[/]"),
        ("throughput/chip", f"{r['output_tok_s_per_chip']:,.0f} output tok/s, {r['total_tok_s_per_chip']:,.0f} total tok/s"),
        ("memory/chip", f"weights {mem['weights']:.1f} + KV {mem['kv_cache']:.1f} + act {mem['activations']:.1f} "
                        f"+ reserve {mem['reserve']:.1f} + free {mem['free']:.1f} = {mem['capacity']:g} GB"),
        ("bound", f"prefill {r['bound']['prefill']}, decode {r['bound']['decode']}"),
        *([("binding", f"[bold]{escape(r['binding'])}[/]: {escape(r.get('binding_detail') or '')}")]
          if r.get("binding") else []),
        ("$/Mtok", f"input {_fmt_usd(r.get('usd_per_mtok_input'))}, cached input "
                   f"{_fmt_usd3(r.get('usd_per_mtok_cached_input'))}, output {_fmt_usd(r.get('usd_per_mtok_output'))}"
                   + (f" ({r['cost_basis']})" if r.get("cost_basis") else "")),
        *([("fleet", ", ".join(f"{k} {v:,.0f} chips" for k, v in r["fleet_chips"].items())
            + (f"; ${r['usd_per_day']:,.0f}/day" if r.get("usd_per_day") is not None else ""))] if r.get("fleet_chips") else []),
        ("spec", r["spec_confidence"] + ("" if r["spec_confidence"] == "datasheet" else " [yellow](estimate)[/]")),
        ("efficiency", r["efficiency_source"]),
    ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    top = sorted(r["time_breakdown_ms"]["decode"].items(), key=lambda kv: -kv[1])[:6]
    console.print("decode step, largest ops (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in top))
