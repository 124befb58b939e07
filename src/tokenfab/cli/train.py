"""`tokenfab train`: step time, MFU, days, chip-hours and cost of a training run on a chip."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from tokenfab.cli import options as o
from tokenfab.cli.common import UserError, console, emit, err_console, handle_errors, print_json, reject_empty


def register(app: typer.Typer) -> None:
    app.command("train")(train)


@handle_errors
def train(
    model: str = typer.Option(..., "--model", "-m", help="Model id or config.json path."),
    chip: str = typer.Option(..., "--chip", "-c", help="Chip id or chip YAML path."),
    chips: int = typer.Option(..., "--chips", min=1, max=o.MAX_CHIP_COUNT, help="Chips available (the search may leave some idle)."),
    tokens: Optional[float] = typer.Option(None, "--tokens", help="Training tokens of the run (e.g. 14.8e12); "
                                           "required unless --rl."),
    seq_len: int = typer.Option(4096, "--seq-len", min=1, help="Tokens per training sequence."),
    global_batch_tokens: Optional[float] = typer.Option(None, "--global-batch-tokens",
                                                        help="Tokens per optimizer step (default 16M = 2^24)."),
    precision: str = typer.Option("bf16", "--precision", help="GEMM format: bf16 or fp8."),
    tp: Optional[int] = typer.Option(None, "--tp", min=1, help="Tensor parallelism (searched)."),
    pp: Optional[int] = typer.Option(None, "--pp", min=1, help="Pipeline stages (searched)."),
    dp: Optional[int] = typer.Option(None, "--dp", min=1, help="Data parallelism (searched)."),
    cp: Optional[int] = typer.Option(None, "--cp", min=1, help="Context parallelism (searched)."),
    ep: Optional[int] = typer.Option(None, "--ep", min=1, help="Expert parallelism of a MoE model (searched)."),
    zero: Optional[int] = typer.Option(None, "--zero", min=0, max=3, help="ZeRO stage 0-3 (searched)."),
    recompute: Optional[str] = typer.Option(None, "--recompute", help="none, selective or full (searched)."),
    schedule: Optional[str] = typer.Option(None, "--schedule",
                                           help="Pipeline schedule: 1f1b, interleaved, zb-h1, zb-h2, dualpipe (searched)."),
    micro_batch: Optional[int] = typer.Option(None, "--micro-batch", min=1, help="Sequences per micro-batch (searched)."),
    lora: bool = typer.Option(False, "--lora", help="LoRA fine-tuning: base weights frozen (no weight gradients, "
                              "no optimizer states for them)."),
    overlap: Optional[bool] = typer.Option(None, "--overlap/--no-overlap",
                                           help="Overlap TP/EP/CP communication with compute (searched)."),
    ep_overlap: bool = typer.Option(False, "--ep-overlap/--no-ep-overlap", help="The software overlaps the expert "
                                    "all-to-all with compute (Megatron's overlap_moe_expert_parallel_comm); "
                                    "default: on the critical path, as Megatron-Core runs it (DualPipe always hides it)."),
    moe_host_ms: Optional[float] = typer.Option(None, "--moe-host-ms", help="Host ms a dropless MoE layer exposes per "
                                                "micro-batch (default: Megatron-Core's, fitted; 0: the layer in a "
                                                "full CUDA graph)."),
    software: Optional[str] = typer.Option(None, "--software", help="Training software whose pipeline schedules the "
                                           "search may use: production (the default: 1F1B, interleaved, DualPipe, "
                                           "what published frontier runs used), any (+ ZB-H1/H2), megatron-core "
                                           "(1F1B, interleaved), zero-bubble (+ ZB-H1/H2), dualpipe (1F1B, DualPipe). "
                                           "Without it a --schedule outside the default is taken as asked."),
    rl: bool = typer.Option(False, "--rl", help="One RL post-training step instead of a pretraining run: "
                            "rollout (inference engine) + reward + log-probs + training + weight sync."),
    rl_prompts: int = typer.Option(256, "--rl-prompts", min=1, help="RL: prompts per step."),
    samples_per_prompt: int = typer.Option(8, "--samples-per-prompt", min=1, help="RL: rollouts per prompt."),
    rollout_isl: int = typer.Option(1024, "--rollout-isl", min=1, help="RL: prompt tokens of a rollout."),
    rollout_osl: int = typer.Option(4096, "--rollout-osl", min=1, help="RL: generated tokens of a rollout."),
    logprob_passes: int = typer.Option(1, "--logprob-passes", min=0, help="RL: forward passes for log-probs "
                                       "(reference / old policy)."),
    reward_model: Optional[str] = typer.Option(None, "--reward-model", help="RL: reward model id (default: a "
                                               "rule-based reward, free)."),
    economics: Optional[Path] = o.EconomicsFile,
    rental_usd_per_hour: Optional[float] = o.Rental,
    market_rental: bool = o.MarketRental,
    html: Optional[Path] = typer.Option(None, "--html", help="Write a self-contained plotly report: the step split, "
                                        "MFU and days against chip count, the fastest mappings."),
    mlperf: Optional[str] = typer.Option(None, "--mlperf", help="Predict MLPerf Training's time to train of this "
                                         "benchmark instead (llama31_405b, llama2_70b_lora, gpt3): its sequence "
                                         "length, samples to converge and evaluations, a searched mapping."),
    mlperf_batch: Optional[int] = typer.Option(None, "--mlperf-batch", help="--mlperf: global batch in sequences "
                                               "(default: the smallest reference-convergence batch)."),
    json_out: bool = o.Json,
) -> None:
    """Train MODEL on CHIP: the fastest mapping (TP, PP and schedule, DP with ZeRO, EP, CP,
    recomputation, overlap) that fits memory, its step time, MFU, tokens/s, days, chip-hours and $."""
    from tokenfab import catalog
    from tokenfab.specs import SpecError
    from tokenfab.train import TrainingJob, TrainingStack, estimate_training
    from tokenfab.train.search import NoMapping
    from tokenfab.train.stack import SOFTWARE_SCHEDULES, default_software

    reject_empty(**{"--precision": precision, "--recompute": recompute, "--schedule": schedule,
                    "--reward-model": reward_model, "--software": software})
    if software is None:
        software = default_software(schedule)
    if software not in SOFTWARE_SCHEDULES:
        raise UserError(f"--software must be one of {', '.join(SOFTWARE_SCHEDULES)}, got {software!r}")
    if moe_host_ms is not None and not (0.0 <= moe_host_ms <= 1000.0):
        raise UserError(f"--moe-host-ms must be between 0 and 1000, got {moe_host_ms:g}")
    extra = {} if moe_host_ms is None else {"moe_host_s_per_layer": moe_host_ms * 1e-3}
    stack = TrainingStack(schedules=SOFTWARE_SCHEDULES[software], ep_comm_overlap=ep_overlap, **extra)
    if mlperf is not None:
        _mlperf(mlperf, mlperf_batch, model, chip, chips, precision, stack, json_out)
        return
    if rl:
        if html is not None:
            raise UserError("--html reports a pretraining run; it does not apply with --rl")
        _rl(model, chip, chips, precision, rl_prompts, samples_per_prompt, rollout_isl, rollout_osl, logprob_passes,
            reward_model, economics, rental_usd_per_hour, market_rental, json_out)
        return
    check_run(tokens, global_batch_tokens, precision, "unless --rl")
    spec_model, spec_chip = catalog.load_model(model), catalog.load_chip(chip)
    if precision == "fp8" and not spec_chip.fp8_tflops:
        raise UserError(f"{spec_chip.id} has no FP8 math; use --precision bf16")
    fields = dict(tokens=tokens, seq_len=seq_len, precision=precision, tp=tp, pp=pp, dp=dp, cp=cp, ep=ep, zero=zero,
                  recompute=recompute, schedule=schedule, micro_batch=micro_batch, overlap=overlap,
                  lora=lora or None)
    if global_batch_tokens is not None:
        fields["global_batch_tokens"] = global_batch_tokens
    job = TrainingJob.from_mapping({k: v for k, v in fields.items() if v is not None}, origin="training job")
    econ = o.economics_from(economics, rental_usd_per_hour)
    try:
        row = _searching(json_out, "searching training mappings…",
                         lambda: estimate_training(spec_model, spec_chip, chips, job, stack, economics=econ,
                                                   market_rental=market_rental))
    except NoMapping as exc:
        raise UserError(str(exc)) from None
    except SpecError:
        raise
    row["software"] = software
    if html is not None:
        _write_html(html, row, spec_model, spec_chip, chips, job, stack, json_out)
    emit(row, json_out, lambda: _print(row), html)


def _write_html(path: Path, row: dict, model, chip, chips: int, job, stack, json_out: bool) -> None:
    """The report: best mapping at each chip count of a halving sweep (progress on stderr), the
    fastest mappings at the chips given, the step split."""
    from tokenfab.report.train_html import train_run_html
    from tokenfab.train import estimate_training
    from tokenfab.train.estimate import chip_sweep, top_mappings
    from tokenfab.train.search import NoMapping

    counts = [n for n in chip_sweep(chips) if n != chips]
    sweep = []
    status = None if json_out else err_console.status("")
    if status is not None:
        status.start()
    try:
        for i, n in enumerate(counts, 1):
            if status is not None:
                status.update(f"report: best mapping on {n:,} chips ({i}/{len(counts)})…")
            try:
                r = estimate_training(model, chip, n, job, stack)
            except (NoMapping, ValueError):
                continue  # too few chips to hold the model, or the fixed degrees do not divide them
            sweep.append({"chips": n, "mfu": r["mfu"], "days": r["days"], "mapping": r["mapping"]})
        sweep.append({"chips": chips, "mfu": row["mfu"], "days": row["days"], "mapping": row["mapping"]})
        if status is not None:
            status.update("report: fastest mappings…")
        top = top_mappings(model, chip, chips, job, stack)
    finally:
        if status is not None:
            status.stop()
    path.write_text(train_run_html(row, sweep, top))


def check_run(tokens: float | None, global_batch_tokens: float | None, precision: str, unless: str = "") -> None:
    """One line for a training run's bad numbers (`train` and `compare --train` alike)."""
    if tokens is None:
        raise UserError(f"--tokens is required (training tokens of the run, e.g. 15e12){', ' + unless if unless else ''}")
    if not tokens > 0:
        raise UserError(f"--tokens must be a positive number of tokens, got {tokens:g}")
    if global_batch_tokens is not None and not global_batch_tokens > 0:
        raise UserError(f"--global-batch-tokens must be positive, got {global_batch_tokens:g}")
    if precision not in ("bf16", "fp8"):
        raise UserError(f"--precision must be bf16 or fp8, got {precision!r}")


def _searching(json_out: bool, note: str, run):
    """`run()`, with a status line on stderr unless the output is JSON."""
    if json_out:
        return run()
    with err_console.status(note):
        return run()


def _mlperf(bench: str, batch: int | None, model: str, chip: str, chips: int, precision: str, stack,
            json_out: bool) -> None:
    """`--mlperf BENCH`: predicted minutes to train an MLPerf Training benchmark (`validate.mlperf_training`)."""
    from tokenfab import catalog
    from tokenfab.train.search import NoMapping
    from tokenfab.validate.mlperf_training import benchmark, benchmark_minutes

    reject_empty(**{"--mlperf": bench})
    if precision not in ("bf16", "fp8"):
        raise UserError(f"--precision must be bf16 or fp8, got {precision!r}")
    if batch is not None and batch < 1:
        raise UserError(f"--mlperf-batch must be ≥ 1 sequence, got {batch}")
    benchmark(bench)  # an unknown name: one line naming the known ones
    spec_model, spec_chip = catalog.load_model(model), catalog.load_chip(chip)
    if precision == "fp8" and not spec_chip.fp8_tflops:
        raise UserError(f"{spec_chip.id} has no FP8 math; use --precision bf16")
    try:
        r = _searching(json_out, "searching training mappings…",
                       lambda: benchmark_minutes(bench, spec_model, spec_chip, chips, batch, precision, stack))
    except NoMapping as exc:
        raise UserError(str(exc)) from None
    if json_out:
        print_json(r)
        return
    mp = r["mapping"]
    t = Table(title=f"MLPerf Training {r['benchmark']}: {r['model']} on {chips:,} × {r['chip']} "
                    f"(global batch {r['global_batch']:,})", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in [
        ("time to train", f"{r['minutes']:,.1f} min"),
        ("samples to converge", f"{r['samples_to_converge']:,.0f} ({r['rcp']})"),
        ("training", f"{r['train_min']:,.1f} min at {r['tokens_s']:,.0f} tok/s (MFU {r['mfu']:.1%})"),
        ("evaluations", f"{r['evaluations']:.1f} × {r['eval_s']:.1f} s = {r['eval_min']:,.1f} min"),
        ("mapping", f"tp {mp['tp']} pp {mp['pp']} ({mp['schedule']}) cp {mp['cp']} dp {mp['dp']} "
                    f"mbs {mp['micro_batch']}, zero {mp['zero']}, recompute {mp['recompute']}"),
    ]:
        t.add_row(k, v)
    console.print(t)


def _rl(model, chip, chips, precision, prompts, samples, isl, osl, passes, reward_model, economics, rental, market,
        json_out) -> None:
    from tokenfab import catalog
    from tokenfab.train.rl import RLStep, estimate_rl_step
    from tokenfab.train.search import NoMapping

    if precision not in ("bf16", "fp8"):
        raise UserError(f"--precision must be bf16 or fp8, got {precision!r}")
    m, c = catalog.load_model(model), catalog.load_chip(chip)
    step = RLStep(prompts=prompts, samples_per_prompt=samples, isl=isl, osl=osl, precision=precision,
                  logprob_passes=passes, reward_model=catalog.load_model(reward_model) if reward_model else None)
    econ = o.economics_from(economics, rental)
    try:
        r = _searching(json_out, "searching rollout and training placements…",
                       lambda: estimate_rl_step(m, c, chips, step, economics=econ, market_rental=market))
    except NoMapping as exc:
        raise UserError(str(exc)) from None
    if json_out:
        print_json(r)
        return
    t = Table(title=f"RL step: {r['model']} on {chips:,} × {r['chip']} ({r['sequences']:,} rollouts of "
                    f"{isl:,} + {osl:,} tokens)", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    rm, tm = r["rollout_mapping"], r["train_mapping"]
    usd = r.get("usd_per_step")
    for k, v in [
        ("placement", f"{r['placement']}: {r['rollout_chips']:,} rollout / {r['train_chips']:,} training chips"),
        ("rollout", f"{r['rollout_s']:.1f} s ({r['rollout_instances']} × tp {rm['tp']} pp {rm['pp']} ep {rm['ep']} "
                    f"dp {rm['dp']}, batch {rm['batch']}; {r['rollout_tok_s_per_chip']:,.0f} tok/s/chip)"),
        ("reward", f"{r['reward_s']:.1f} s"), ("log-probs", f"{r['logprob_s']:.1f} s"),
        ("training", f"{r['train_s']:.1f} s (tp {tm['tp']} pp {tm['pp']} dp {tm['dp']}, MFU {r['train_mfu']:.1%})"),
        ("weight sync", f"{r['weight_sync_s']:.2f} s"),
        ("step", f"{r['step_s']:.1f} s ({r['chip_hours_per_step']:.2f} chip-hours)"),
        ("cost per step", f"${usd:,.2f}" if usd is not None else r.get("cost_note", "-")),
    ]:
        t.add_row(k, v)
    console.print(t)


def _print(r: dict) -> None:
    mp = r["mapping"]
    t = Table(title=f"train {r['model']} on {r['chips_used']:,} × {r['chip']} ({r['precision']}, "
                    f"{r['tokens'] / 1e12:g}T tokens at {r['seq_len']:,})", title_justify="left")
    t.add_column("figure")
    t.add_column("value", justify="right")
    usd = r.get("usd")
    rows = [
        ("mapping", f"tp {mp['tp']} · pp {mp['pp']} ({mp['schedule']}) · cp {mp['cp']} · ep {mp['ep']} · dp {mp['dp']}"),
        ("micro-batch × count", f"{mp['micro_batch']} seq × {mp['micro_batches']}"),
        ("ZeRO / recompute / overlap", f"{mp['zero']} / {mp['recompute']} / {'on' if mp['overlap'] else 'off'}"),
        ("step time", f"{r['step_time_s']:.2f} s ({r['global_batch_tokens'] / 2**20:.1f}M tokens)"),
        ("MFU", f"{r['mfu']:.1%} of {r['precision']} peak ({r['mfu_bf16_peak']:.1%} of bf16)"),
        ("tokens/s", f"{r['tokens_s']:,.0f} ({r['tokens_s_per_chip']:,.0f} per chip)"),
        ("goodput (failures, checkpoints)", f"{r['goodput']:.1%}"),
        ("days", f"{r['days']:.1f}"),
        ("chip-hours", f"{r['chip_hours']:,.0f}"),
        ("cost", f"${usd:,.0f} (${r['usd_per_trillion_tokens']:,.0f} per T tokens)" if usd is not None
         else r.get("cost_note", "-")),
        ("memory per chip", f"{r['memory_gib_per_chip']:.1f} GiB"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
