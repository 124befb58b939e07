"""Training runs per (model, chip): the best training mapping of each pair and its cost.

Shared by `tokenfab compare --train` and a study's `training:` section. Each pair is one call to
`tokenfab.train.estimate_training` (its public API); a pair that fits no mapping, or a chip without
the asked precision, becomes a failure row with the one-line reason instead of stopping the rest.
"""

from __future__ import annotations

from typing import Callable, Iterable

from tokenfab.specs import ChipSpec, ModelSpec, SpecError
from tokenfab.train import TrainingJob, estimate_training

SUMMARY_KEYS = ("model", "chip", "chips", "chips_used", "tokens", "seq_len", "precision", "global_batch_tokens",
                "step_time_s", "mfu", "mfu_bf16_peak", "tokens_s", "tokens_s_per_chip", "goodput", "days",
                "chip_hours", "usd", "usd_per_trillion_tokens", "usd_per_chip_hour", "cost_basis", "cost_note",
                "mapping", "memory_gib_per_chip")
"""The figures a comparison keeps of each `estimate_training` row (the full row adds step parts)."""


def training_row(model: ModelSpec, chip: ChipSpec, chips_per_run: int, job: TrainingJob, economics=None,
                 market_rental: bool = False) -> dict:
    """The best training mapping of `model` on at most `chips_per_run` chips of `chip`, as the summary
    figures of `estimate_training` (`fits: True`); raises SpecError/ValueError when nothing fits.
    A chip without FP8 math asked for fp8 trains at bf16 (`precision` says so, `precision_asked` keeps
    the request): a buyer comparing chips would run it that way."""
    asked = job.precision
    if asked == "fp8" and not chip.fp8_tflops:
        job = job.model_copy(update={"precision": "bf16"})
    row = estimate_training(model, chip, chips_per_run, job, economics=economics, market_rental=market_rental)
    out = {k: row[k] for k in SUMMARY_KEYS if k in row}
    out["precision_asked"] = asked
    out["fits"] = True
    return out


def compare_training(models: Iterable[ModelSpec], chips: Iterable[ChipSpec], chips_per_run: int, job: TrainingJob,
                     economics=None, market_rental: bool = False,
                     progress: Callable[[str], None] = lambda note: None) -> tuple[list[dict], list[dict]]:
    """(rows, failures) over every (model, chip): rows as `training_row`, failures as
    `{model, chip, error}` with the one-line reason (no mapping fits, not an LLM)."""
    rows, failures = [], []
    models, chips = list(models), list(chips)
    n, i = len(models) * len(chips), 0
    for m in models:
        for c in chips:
            i += 1
            progress(f"{m.id} on {c.id} ({i}/{n})")
            try:
                rows.append(training_row(m, c, chips_per_run, job, economics, market_rental))
            except (SpecError, ValueError) as exc:
                failures.append({"model": m.id, "chip": c.id, "error": str(exc).splitlines()[0] if str(exc) else
                                 type(exc).__name__})
    return rows, failures


def cheapest(rows: list[dict]) -> dict[str, dict]:
    """Per model, the row with the lowest $ per trillion tokens (rows without a price left out)."""
    best: dict[str, dict] = {}
    for r in rows:
        u = r.get("usd_per_trillion_tokens")
        if u is None:
            continue
        if r["model"] not in best or u < best[r["model"]]["usd_per_trillion_tokens"]:
            best[r["model"]] = r
    return best


def training_section(model: ModelSpec, chip: ChipSpec, chips_per_run: int, job: TrainingJob, economics) -> dict:
    """A study's training section for one (model, chip): `status: ok` with the run's figures, or
    `status: no-fit` with the one-line reason."""
    try:
        return {"status": "ok", "run": training_row(model, chip, chips_per_run, job, economics)}
    except (SpecError, ValueError) as exc:
        return {"status": "no-fit", "error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}


def training_answer(sections: list[dict]) -> dict | None:
    """One sentence for a study's training runs: per model, the cheapest trillion tokens and the fastest run."""
    rows = [s["run"] for s in sections if s.get("status") == "ok"]
    if not sections:
        return None
    if not rows:
        return {"kind": "training", "sentence": "No training run fits: " + sections[0].get("error", "") + "."}
    parts = []
    for m in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == m]
        best = cheapest(rs).get(m)
        fastest = min(rs, key=lambda r: r["days"])
        s = f"Training {m} ({rs[0]['tokens'] / 1e12:g}T tokens on up to {rs[0]['chips']:,} chips): "
        if best is not None:
            s += f"cheapest on {best['chip']} (${best['usd_per_trillion_tokens']:,.0f} per trillion tokens), "
        s += f"fastest on {fastest['chip']} ({fastest['days']:,.1f} days)"
        parts.append(s + " (estimate).")
    return {"kind": "training", "sentence": " ".join(parts)}
