"""`tokenfab simulate` (serve a workload, report latency percentiles) and `tokenfab plan`
(highest rate within SLOs, best mapping and mode, fleet size and cost)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from tokenfab.cli.common import (
    console,
    err_console,
    handle_errors,
    print_json,
    split_csv,
)
from tokenfab.cli.options import MAX_CHIP_COUNT
from tokenfab.specs.traffic import CHAT

_PROFILES_HELP = ("Built-in profile (chat, code, rag, summarization: lengths drawn per request, so chat "
                  f"is not compare's fixed {CHAT.input_len:,}/{CHAT.output_len} lengths)")
_TRAFFIC_HELP = f"{_PROFILES_HELP}, a profile YAML, or a trace .csv/.jsonl."
_MODE_HELP = ("Deployment mode, as `tokenfab estimate` chooses it: auto (the better of one pool and separate "
              "prefill/decode pools), aggregated, disaggregated.")
_PREFILL_CHIP_HELP = "Chip of the prefill pool (separate pools; default: --chip)."
_DECODE_CHIP_HELP = "Chip of the decode pool (separate pools; default: --chip)."
_MTP_HELP = "Multi-token prediction (default: on for models that ship an MTP module, at 85% acceptance)."
_MTP_ACC_HELP = "Acceptance rate of each MTP draft token (default 0.85)."


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("plan")(plan)


def _slo(value: Optional[float], default: Optional[float]) -> Optional[float]:
    """CLI SLO: None keeps the profile's, 0 removes it."""
    if value is None:
        return default
    return value or None


# Bounds that keep `simulate` within a few GB (measured: 100,000 requests ~170 MB and 4 s; a
# 1,048,576-token step budget ~600 MB of step tables); a larger value is a one-line error.
MAX_SIM_REQUESTS = 1_000_000
MAX_CHUNK_TOKENS = 262_144

@handle_errors
def simulate(
    model: str = typer.Option(..., "--model", "-m", help="Model id or config.json path."),
    chip: str = typer.Option(..., "--chip", "-c", help="Chip id or chip YAML path."),
    traffic: str = typer.Option("chat", "--traffic", "-t", help=_TRAFFIC_HELP),
    rate: Optional[float] = typer.Option(None, "--rate", "-r", help="Arrival rate, requests/s (required for a profile; rescales a trace)."),
    requests: Optional[int] = typer.Option(None, "--requests", "-n", min=1, max=MAX_SIM_REQUESTS,
                                           help="Requests to simulate (2000; a trace: all; at most 1,000,000, "
                                                "~1.7 GB of memory)."),
    replicas: int = typer.Option(1, "--replicas", min=1, help="Copies of the deployment behind the router (at most 10,000)."),
    mode: str = typer.Option("auto", "--mode", help=_MODE_HELP),
    prefill_chip: Optional[str] = typer.Option(None, "--prefill-chip", help=_PREFILL_CHIP_HELP),
    decode_chip: Optional[str] = typer.Option(None, "--decode-chip", help=_DECODE_CHIP_HELP),
    mtp: Optional[bool] = typer.Option(None, "--mtp/--no-mtp", help=_MTP_HELP),
    mtp_acceptance: Optional[float] = typer.Option(None, "--mtp-acceptance", min=0.0, max=1.0, help=_MTP_ACC_HELP),
    disagg: Optional[str] = typer.Option(None, "--disagg", help="Separate pools with P:D prefill and decode instances "
                                         "per replica (e.g. 1:2), overriding the estimate's balanced counts; implies "
                                         "--mode disaggregated (conflicts with --mode aggregated)."),
    router: str = typer.Option("least_outstanding", "--router", help="least_outstanding or round_robin."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the synthetic workload."),
    chips: Optional[int] = typer.Option(None, "--chips", min=1, max=MAX_CHIP_COUNT, help="Chips per replica (chosen by the mapping search)."),
    tp: Optional[int] = typer.Option(None, "--tp", min=1, help="Tensor parallelism (searched)."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="Max sequences running per engine (the mapping's batch)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Weight precision (searched)."),
    chunk_tokens: int = typer.Option(8192, "--chunk-tokens", min=16, max=MAX_CHUNK_TOKENS,
                                     help="Token budget per step (chunked prefill; at most 262,144, ~150 MB)."),
    slo_ttft_ms: Optional[float] = typer.Option(None, "--slo-ttft-ms", help="TTFT SLO for goodput, ms (profile's; 0 = none)."),
    slo_tpot_ms: Optional[float] = typer.Option(None, "--slo-tpot-ms", help="TPOT SLO for goodput, ms (profile's; 0 = none)."),
    no_prefix_cache: bool = typer.Option(False, "--no-prefix-cache", help="Disable prefix caching."),
    prefill_first: bool = typer.Option(False, "--prefill-first",
                                       help="SGLang's scheduler: waiting prompts are prefilled in steps of their own "
                                            "before decoding resumes (default: prompt chunks ride on decode steps, vLLM)."),
    poll_steps: int = typer.Option(1, "--poll-steps", min=1, max=10_000,
                                   help="Decode steps between the scheduler's reads of new requests while busy "
                                        "(SGLang's --scheduler-recv-interval; default 1: every step)."),
    batch_wait_steps: int = typer.Option(0, "--batch-wait-steps", min=0, max=10_000,
                                         help="Decode steps new prompts are held back to be batched while sequences "
                                              "decode (TensorRT-LLM's batch_wait_timeout_iters; default 0: none)."),
    batch_wait_tokens: int = typer.Option(0, "--batch-wait-tokens", min=0, max=10_000_000,
                                          help="Waiting prompt tokens plus decode tokens that release held prompts "
                                               "early (TensorRT-LLM's batch_wait_max_tokens_ratio x max_num_tokens)."),
    chrome_trace: Optional[Path] = typer.Option(None, "--chrome-trace", help="Write a Chrome/Perfetto trace JSON of engine steps."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained plotly report (latency CDFs, time series)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON for scripts instead of tables."),
) -> None:
    """Simulate serving a workload on the deployment `tokenfab estimate` chooses for its mean
    request (mode, pools, MTP): continuous batching, chunked prefill, KV cache, replicas.

    Precedence: --disagg P:D forces separate pools (the estimate's disaggregated pools, P:D
    instances); otherwise --mode decides, and a mapping flag (--chips, --tp, --batch) fixes one
    pool under auto (the decode pool under disaggregated), as in `tokenfab estimate`."""
    from tokenfab import api
    from tokenfab.serving import deployment as dep
    from tokenfab.serving import metrics
    from tokenfab.serving import traffic as tr
    from tokenfab.serving.simulator import simulate as run

    if rate is not None and not rate > 0:
        raise ValueError(f"--rate must be a positive number of requests/s, got {rate:g}")
    pd = dep.parse_disagg(disagg)
    if replicas > dep.MAX_INSTANCES:
        raise ValueError(f"--replicas takes at most {dep.MAX_INSTANCES:,} copies, got {replicas}")
    _check_mode(mode, pd, prefill_chip, decode_chip)
    m, c = api.resolve_model(model), api.resolve_chip(chip)
    pc = api.resolve_chip(prefill_chip) if prefill_chip is not None else None
    dc = api.resolve_chip(decode_chip) if decode_chip is not None else None
    if tr.is_trace_path(traffic):
        wl = tr.read_trace(traffic)
        if requests:
            wl = wl.head(requests)
        if rate is not None:
            wl = wl.at_rate(rate)
        prof_ttft = prof_tpot = None
    else:
        prof = tr.load_profile(traffic)
        if rate is None:
            raise ValueError(f"--rate is required with a traffic profile ({traffic})")
        wl = tr.generate(prof, rate, requests or 2000, seed)
        prof_ttft, prof_tpot = prof.slo_ttft_ms, prof.slo_tpot_ms
    ttft, tpot = _slo(slo_ttft_ms, prof_ttft), _slo(slo_tpot_ms, prof_tpot)
    d = dep.build_deployment(m, c, wl, replicas=replicas, disagg=pd, router=router,
                             slo_ttft_ms=ttft, slo_tpot_ms=tpot, token_budget=chunk_tokens, max_num_seqs=batch,
                             prefix_caching=not no_prefix_cache, num_chips=chips, tp=tp, precision=precision,
                             mode=mode, prefill_chip=pc, decode_chip=dc, mtp=mtp, mtp_acceptance=mtp_acceptance,
                             prefill_first=prefill_first, poll_steps=poll_steps)
    d = dep.with_batch_wait(d, batch_wait_steps, batch_wait_tokens)
    res = run(wl, d, record_trace=chrome_trace is not None)
    summary = metrics.summarize(res, ttft, tpot)
    mean_in, mean_out = wl.mean_lengths()  # of the requests simulated: with the profile's name, its lengths
    summary = dict(summary, deployment=d.label, traffic=traffic, mean_input_tokens=mean_in, mean_output_tokens=mean_out,
                   seed=seed, **{"config": d.info})
    if chrome_trace:
        chrome_trace.write_text(json.dumps(metrics.chrome_trace(res)))
    if html:
        from tokenfab.report.serving_plots import write_simulation_html
        write_simulation_html(summary, res, html, title=f"tokenfab simulate — {traffic} on {d.label}")
    if json_out:
        print_json(summary)
        return
    _print_simulation(summary)
    for path, what in ((chrome_trace, "Chrome trace"), (html, "report")):
        if path:
            console.print(f"{what} written to {path}")


@handle_errors
def plan(
    model: str = typer.Option(..., "--model", "-m", help="Model id or config.json path."),
    chip: str = typer.Option(..., "--chip", "-c", help="Chip id or chip YAML path."),
    traffic: str = typer.Option("chat", "--traffic", "-t", help=f"{_PROFILES_HELP} or a profile YAML."),
    slo_ttft_ms: Optional[float] = typer.Option(None, "--slo-ttft-ms", help="TTFT SLO, ms (the profile's; 0 = none)."),
    slo_tpot_ms: Optional[float] = typer.Option(None, "--slo-tpot-ms", help="TPOT SLO, ms (the profile's; 0 = none)."),
    percentile: float = typer.Option(99.0, "--percentile", "-p", min=1.0, max=100.0, help="Percentile the SLOs apply to."),
    tokens_per_day: Optional[float] = typer.Option(None, "--tokens-per-day", min=0.0, help="Volume to serve, prompt + output tokens per day."),
    requests: int = typer.Option(1500, "--requests", "-n", min=100, max=MAX_SIM_REQUESTS,
                                 help="Fewest requests per simulation (more at high rates; at most 1,000,000)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the workload."),
    chips: Optional[list[str]] = typer.Option(None, "--chips", help="Chip counts per replica to try, comma-separated (best, 1, 2, 4, 8)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Weight precision (searched)."),
    mode: str = typer.Option("auto", "--mode", help=_MODE_HELP),
    prefill_chip: Optional[str] = typer.Option(None, "--prefill-chip", help=_PREFILL_CHIP_HELP),
    decode_chip: Optional[str] = typer.Option(None, "--decode-chip", help=_DECODE_CHIP_HELP),
    mtp: Optional[bool] = typer.Option(None, "--mtp/--no-mtp", help=_MTP_HELP),
    mtp_acceptance: Optional[float] = typer.Option(None, "--mtp-acceptance", min=0.0, max=1.0, help=_MTP_ACC_HELP),
    disagg: Optional[list[str]] = typer.Option(None, "--disagg", help="P:D prefill and decode instances of the "
                                               "separate-pool candidates, comma-separated (default: the estimate's "
                                               "balanced counts); conflicts with --mode aggregated."),
    no_disagg: bool = typer.Option(False, "--no-disagg", help="Only consider one pool (= --mode aggregated)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON for scripts instead of tables."),
) -> None:
    """Capacity plan: highest rate per replica within the SLOs of the deployments `tokenfab
    estimate` chooses (one pool per chip count and chunk size, its separate prefill/decode pools),
    the best mode and its pools, chips for a daily volume and its cost."""
    from tokenfab import api
    from tokenfab.serving import deployment as dep
    from tokenfab.serving import plan as pl
    from tokenfab.serving import traffic as tr

    if disagg is not None and not split_csv(disagg):
        raise ValueError("--disagg is empty: give P:D instance ratios such as 1:3")
    ratios = tuple(dep.parse_disagg(x) for x in split_csv(disagg)) or None
    if no_disagg:
        if mode not in ("auto", "aggregated") or ratios or prefill_chip or decode_chip:
            raise ValueError("--no-disagg means one pool: drop --mode disaggregated, --disagg, --prefill-chip "
                             "and --decode-chip")
        mode = "aggregated"
    _check_mode(mode, ratios, prefill_chip, decode_chip)

    if tr.is_trace_path(traffic):
        raise ValueError("plan takes a traffic profile (chat, code, rag, summarization or a .yaml); "
                         "replay traces with `tokenfab simulate`")
    m, c = api.resolve_model(model), api.resolve_chip(chip)
    prof = tr.load_profile(traffic)
    ttft, tpot = _slo(slo_ttft_ms, prof.slo_ttft_ms), _slo(slo_tpot_ms, prof.slo_tpot_ms)
    if not (ttft or tpot):
        raise ValueError("plan needs an SLO: give --slo-ttft-ms and/or --slo-tpot-ms")
    counts = pl.DEFAULT_CHIP_COUNTS
    if chips is not None:
        if not split_csv(chips):
            raise ValueError("--chips is empty: give chip counts such as 8,16")
        try:
            counts = tuple(int(x) for x in split_csv(chips))
        except ValueError:
            raise ValueError(f"--chips expects whole numbers, got {','.join(chips)}") from None
        if any(n < 1 or n > MAX_CHIP_COUNT for n in counts):
            raise ValueError(f"--chips takes chip counts per replica from 1 to {MAX_CHIP_COUNT}, got {','.join(chips)}")
    progress = None if json_out else (lambda label: err_console.print(f"[dim]searching {label}[/]", highlight=False))
    pc = api.resolve_chip(prefill_chip) if prefill_chip is not None else None
    dc = api.resolve_chip(decode_chip) if decode_chip is not None else None
    out = pl.plan(m, c, prof, ttft, tpot, percentile, tokens_per_day, requests=requests, seed=seed,
                  chip_counts=counts, disagg_ratios=ratios, precision=precision, progress=progress, mode=mode,
                  prefill_chip=pc, decode_chip=dc, mtp=mtp, mtp_acceptance=mtp_acceptance)
    if json_out:
        print_json(out)
        return
    _print_plan(out)


def _check_mode(mode: str, disagg, prefill_chip, decode_chip) -> None:
    """One line for a mode that contradicts the other deployment flags."""
    from tokenfab.serving.deployment import MODES
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "aggregated" and disagg:
        raise ValueError("--disagg P:D runs separate prefill and decode pools: drop --mode aggregated")
    if mode == "aggregated" and (prefill_chip or decode_chip):
        raise ValueError("--prefill-chip / --decode-chip need separate pools: drop --mode aggregated")


def _pools_text(pools: list[dict] | None) -> str:
    """'prefill 5 × 1 h100-sxm TP1 (5 chips) · decode 2 × 2 h100-sxm TP1 PP2 (4 chips)'."""
    parts = []
    for p in pools or []:
        par = " ".join(f"{k.upper()}{p[k]}" for k in ("tp", "pp", "ep", "dp") if p.get(k, 1) != 1) or "TP1"
        parts.append(f"{p['role']} {p['instances']} × {p.get('chips_per_instance', p.get('num_chips'))} {p['chip']} "
                     f"{par} b{p['batch']} ({p['chips']} chips)")
    return " · ".join(parts)


def _f(v, fmt=",.1f", none="—") -> str:
    return none if v is None else format(v, fmt)


def _print_simulation(s: dict) -> None:
    console.print(f"[bold]{s['deployment']}[/]", highlight=False)
    console.print(f"{s['requests']} requests of {escape(s['traffic'])} traffic (mean {s['mean_input_tokens']:,.0f} in"
                  f" / {s['mean_output_tokens']:,.0f} out), offered {_f(s['offered_rps'], ',.2f')} req/s, "
                  f"simulated {s['duration_s']:,.1f} s "
                  f"in {s['wall_s']:.2f} s wall ({_f(s['sim_requests_per_wall_s'], ',.0f')} requests/s)", highlight=False)
    t = Table(title="Latency, ms", title_justify="left")
    t.add_column("metric")
    for col in ("mean", "p50", "p90", "p99"):
        t.add_column(col, justify="right")
    for name, key in (("TTFT", "ttft"), ("TPOT", "tpot"), ("ITL", "itl"), ("E2E", "e2e"), ("queueing", "queue")):
        t.add_row(name, *(_f(s.get(f"{key}_ms_{c}")) for c in ("mean", "p50", "p90", "p99")))
    console.print(t)
    slo = ", ".join(x for x in (f"TTFT ≤ {s['slo_ttft_ms']:g} ms" if s["slo_ttft_ms"] else "",
                                 f"TPOT ≤ {s['slo_tpot_ms']:g} ms" if s["slo_tpot_ms"] else "") if x)
    rows = [
        ("throughput", f"{s['throughput_tok_s']:,.0f} output tok/s ({_f(s['output_tok_s_per_chip'], ',.0f')} per chip), "
                       f"{s['total_tok_s']:,.0f} total tok/s, {s['throughput_rps']:,.2f} req/s"),
        ("goodput", f"{s['goodput_rps']:,.2f} req/s meet {slo or 'no SLO'} ({s['slo_attainment']:.1%})"),
        ("batch", f"{s['batch_mean']:,.1f} running per engine on average; {s['engines']} engines on {s['chips']} chips"),
        ("KV cache", f"{s['kv_util_mean']:.1%} used on average, {s['kv_util_max']:.1%} peak; {s['preemptions']} preemptions"),
        ("prefix cache", f"{s['prefix_cached_tokens']:,} prompt tokens reused"),
    ]
    cfg = s.get("config") or {}
    if cfg.get("pools"):
        mtp = cfg["pools"][-1].get("draft_tokens")
        rows.insert(0, ("deployment", f"{cfg.get('mode')}: {_pools_text(cfg['pools'])}" +
                        (f", MTP {mtp} draft @ {cfg['pools'][-1]['draft_acceptance']:.0%}" if mtp else "")))
    est = cfg.get("estimate")
    if est:
        load = s["offered_rps"] / est["capacity_rps"] if s.get("offered_rps") and est["capacity_rps"] else None
        rows.insert(1, ("estimate", f"{est['mode']}: TPOT {est['tpot_ms']:,.1f} ms, TTFT {est['ttft_ms']:,.0f} ms at "
                                    f"its batch; capacity {est['capacity_rps']:,.2f} req/s"
                                    + (f" (offered load {load:.0%})" if load else "")))
    if s["kv_transfers"]:
        rows.append(("KV transfers", f"{s['kv_transfers']:,}, {_f(s['kv_transfer_ms_mean'], ',.2f')} ms each on average"))
    t2 = Table(show_header=False)
    t2.add_column("", style="bold")
    t2.add_column("")
    for k, v in rows:
        t2.add_row(k, v)
    console.print(t2)


def _print_plan(p: dict) -> None:
    slo = ", ".join(x for x in (f"TTFT ≤ {p['slo_ttft_ms']:g} ms" if p["slo_ttft_ms"] else "",
                                 f"TPOT ≤ {p['slo_tpot_ms']:g} ms" if p["slo_tpot_ms"] else "") if x)
    title = (f"{p['model']} on {p['chip']}, {p['traffic']} traffic (mean {p['mean_input_tokens']:,.0f} in / "
             f"{p['mean_output_tokens']:,.0f} out), {slo} at p{p['percentile']:g}")
    t = Table(title=title, title_justify="left")
    for col, just in (("mode", "left"), ("pools", "left"), ("chunk", "right"), ("chips", "right"),
                      ("max req/s", "right"), ("req/s/chip", "right"), ("out tok/s/chip", "right"),
                      ("TTFT ms", "right"), ("TPOT ms", "right")):
        t.add_column(col, justify=just)
    best = p["best"]
    for r in sorted(p["candidates"], key=lambda r: -r["rate_per_chip_rps"]):
        mp = r["mapping"]
        style = "bold green" if best is not None and r is best else (None if r["feasible"] else "red")
        pools = (f"TP{mp['tp']} PP{mp['pp']} EP{mp['ep']} DP{mp['dp']} b{mp['batch']} {mp['weight_precision']}"
                 if r["mode"] == "aggregated" else _pools_text(r["pools"]))
        t.add_row(r["mode"], pools,
                  str(r["token_budget"]), str(r["chips_per_unit"]), _f(r["max_rate_rps"], ",.2f"),
                  _f(r["rate_per_chip_rps"], ",.3f"), _f(r["output_tok_s_per_chip"], ",.0f"), _f(r["ttft_ms"], ",.0f"),
                  _f(r["tpot_ms"], ",.1f"), style=style)
    console.print(t)
    est = p.get("estimate")
    if est:
        console.print(f"estimate chooses {est['mode']}: {_pools_text(est['pools'])}; TPOT {est['tpot_ms']:,.1f} ms, "
                      f"{est['capacity_rps']:,.2f} req/s per unit at its batch", highlight=False, soft_wrap=True)
    if not p["feasible"]:
        console.print(f"[red]infeasible:[/] {p['reason']}", highlight=False, soft_wrap=True)
        return
    console.print(f"best: [bold]{best['mode']}[/], {_pools_text(best['pools'])} — {best['max_rate_rps']:,.2f} req/s "
                  f"per unit of {best['chips_per_unit']} chips (chunk {best['token_budget']} tokens)",
                  highlight=False, soft_wrap=True)
    if p["tokens_per_day"]:
        console.print(f"volume {p['tokens_per_day']:,.0f} tokens/day = {p['required_rps']:,.2f} req/s → "
                      f"{p['units']} unit(s), [bold]{p['num_chips']} chips[/]", highlight=False)
    if p["usd_per_chip_hour"] is None:
        console.print(f"cost: none ({p['cost_basis']})", highlight=False)
        return
    line = f"cost: ${p['usd_per_chip_hour']:,.2f}/chip-hour ({p['cost_basis']})"
    if p["usd_per_day"] is not None:
        line += f"; ${p['usd_per_day']:,.0f}/day, ${p['usd_per_mtok']:,.3f}/Mtoken"
    line += (f"; at the maximum rate ${p['usd_per_mtok_at_max_rate']:,.3f}/Mtoken (prompt + output), "
             f"${p['usd_per_mtok_output_at_max_rate']:,.3f}/M output tokens")
    console.print(line, highlight=False)
