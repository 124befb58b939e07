"""A training run on a chip: the best mapping, its step time, MFU, days, chip-hours and cost."""

from __future__ import annotations

from tokenfab.perf.efficiency import efficiency_for
from tokenfab.specs import SpecError, SystemSpec
from tokenfab.train.flops import attention_flops_per_token, matmul_params, model_flops_per_token
from tokenfab.train.search import prepare, search, top_points
from tokenfab.train.stack import (RECOMPUTE, SCHEDULES, SOFTWARE_SCHEDULES, TrainingJob, TrainingStack,
                                  default_software)


def default_stack(job: TrainingJob) -> TrainingStack:
    """The stack of a question that names no software (`stack.default_software` for its schedule)."""
    return TrainingStack(schedules=SOFTWARE_SCHEDULES[default_software(job.schedule)])


def check_schedule(job: TrainingJob, stack: TrainingStack) -> None:
    """A fixed schedule must be one the training software implements: one line otherwise."""
    if job.schedule and job.schedule not in stack.schedules:
        raise SpecError(f"schedule {job.schedule} is not implemented by the training software given "
                        f"(its schedules: {', '.join(stack.schedules)})")


def check_degrees(job: TrainingJob, num_chips: int) -> None:
    """Fixed parallel degrees must divide the chips: one line naming them otherwise."""
    given = {k: getattr(job, k) for k in ("tp", "pp", "cp", "dp") if getattr(job, k)}
    prod = 1
    for v in given.values():
        prod *= v
    if given and num_chips % prod:
        names = " × ".join(f"{k} {v}" for k, v in given.items())
        raise SpecError(f"--chips {num_chips} does not divide into the parallel degrees ({names} = {prod})")
    if job.ep and num_chips % job.ep:
        raise SpecError(f"--chips {num_chips} does not divide into ep {job.ep}")


def estimate_training(model, chip, num_chips: int, job: TrainingJob, stack: TrainingStack | None = None,
                      economics=None, market_rental: bool = False) -> dict:
    """The shortest run of `job` on at most `num_chips` chips of `chip` (specs), as a JSON-ready dict:
    step_time_s, mfu, tokens_s, days, chip_hours, usd, usd_per_trillion_tokens, mapping, memory."""
    if num_chips < 1:
        raise SpecError(f"--chips must be ≥ 1, got {num_chips}")
    if model.kind != "llm":
        raise SpecError(f"{model.id} is a {model.kind} model; training estimates cover LLMs")
    stack = stack or default_stack(job)
    check_degrees(job, num_chips)
    check_schedule(job, stack)
    system = SystemSpec.for_chip(chip)
    ctx = prepare(model, chip, system, efficiency_for(chip), job, stack, num_chips)
    best = search(ctx)
    v = best.values
    point = ctx.base.take([best.index]).a
    mapping = {k: int(point[k][0]) for k in ("tp", "pp", "cp", "ep", "dp")}
    mapping.update(micro_batch=int(point["mbs"][0]), schedule=SCHEDULES[int(point["schedule"][0])],
                   zero=best.zero, recompute=RECOMPUTE[best.recompute], overlap=bool(best.overlap),
                   micro_batches=int(v["micro_batches"]))
    chips_used = int(v["chips_used"])
    days = v["run_s"] / 86400.0
    chip_hours = v["run_s"] / 3600.0 * chips_used
    out = {
        "model": model.id, "chip": chip.id, "chips": num_chips, "chips_used": chips_used,
        "tokens": job.tokens, "seq_len": job.seq_len, "precision": job.precision,
        "global_batch_tokens": v["tokens_per_step"],
        "step_time_s": v["step_time_s"], "tokens_s": v["tokens_s"],
        "tokens_s_per_chip": v["tokens_s"] / chips_used, "mfu": v["mfu"], "mfu_bf16_peak": v["mfu_bf16"],
        "goodput": v["goodput"], "days": days, "chip_hours": chip_hours,
        "mapping": mapping,
        "memory_gib_per_chip": v["memory_bytes"] / 2**30,
        "memory_parts_gib": {"weights_grads_optimizer": v["state_bytes"] / 2**30,
                             "activations": v["activation_bytes"] / 2**30},
        "step_parts_s": {k: v[k + "_s"] for k in ("compute", "recompute", "comm", "bubble", "p2p", "dp_sync",
                                                  "optimizer")},
        "flops_per_token": float(model_flops_per_token(model, job.seq_len)),
        "matmul_params": matmul_params(model),
        "attention_flops_per_token": float(attention_flops_per_token(model, job.seq_len)),
        "evaluations": best.evaluations,
        "efficiency_source": ctx.eff.source,
    }
    out.update(_cost(chip, chip_hours, job.tokens, economics, market_rental))
    return out


def _cost(chip, chip_hours: float, tokens: float, economics, market_rental: bool) -> dict:
    """$ of the run at the chip-hour price (owned TCO, a rental, or the market quote)."""
    from tokenfab.cost.tco import chip_hour_cost_for

    try:
        hour = chip_hour_cost_for(chip, economics, market_rental)
    except (SpecError, ValueError) as exc:
        return {"usd": None, "usd_per_trillion_tokens": None, "usd_per_chip_hour": None, "cost_note": str(exc)}
    usd = chip_hours * hour.total_usd_per_hour
    return {"usd": usd, "usd_per_trillion_tokens": usd / (tokens / 1e12), "usd_per_chip_hour": hour.total_usd_per_hour,
            "cost_basis": hour.basis}


def top_mappings(model, chip, num_chips: int, job: TrainingJob, stack: TrainingStack | None = None,
                 k: int = 10) -> list[dict]:
    """The `k` fastest fitting mappings of `job` on at most `num_chips` chips, best first: degrees,
    schedule, ZeRO stage, recomputation, overlap, chips used, step time, MFU, days and GiB per chip."""
    stack = stack or default_stack(job)
    check_degrees(job, num_chips)
    check_schedule(job, stack)
    ctx = prepare(model, chip, SystemSpec.for_chip(chip), efficiency_for(chip), job, stack, num_chips)
    keep = ("tp", "pp", "cp", "ep", "dp", "micro_batch", "schedule", "zero", "recompute", "overlap")
    return [{**{key: p[key] for key in keep}, "chips_used": int(p["chips_used"]), "step_time_s": p["step_time_s"],
             "mfu": p["mfu"], "days": p["run_s"] / 86400.0, "memory_gib_per_chip": p["memory_bytes"] / 2**30}
            for p in top_points(ctx, k)]


def chip_sweep(num_chips: int, points: int = 6) -> list[int]:
    """Chip counts for a scaling sweep: `num_chips` halved `points - 1` times (ascending, at least 1)."""
    return sorted({max(num_chips // 2**i, 1) for i in range(points)})
