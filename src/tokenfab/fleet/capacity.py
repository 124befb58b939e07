"""What one chip serves of one workload, per phase, from tokenfab's own estimate — cached.

A training workload has one figure, the tokens/s a chip trains (`training_capacity`); the plan
puts it in the first phase and demands nothing of the second.

For a (model, chip, traffic) the engine's best deployment gives prompt tokens/s and generated
tokens/s per chip averaged over the whole deployment, and the share s of chip time (or chip
cost) spent in prefill. A chip given wholly to one phase then serves

    prefill:  P = input_tok_s_per_chip / s          (prompt tokens/s per chip)
    decode:   D = output_tok_s_per_chip / (1 − s)   (generated tokens/s per chip)

which, for separate pools, are exactly each pool's rate (s is the prefill pool's chip share), and
for one pool splits its chip time as the engine does. A chip that cannot serve the workload (the
model does not fit, or no deployment meets the SLOs) serves 0 of it.

Estimates are cached in memory and on disk (`$TOKENFAB_CACHE`, default `~/.cache/tokenfab`),
keyed by a hash of the model, the chip's full spec, the traffic and tokenfab's version, so a plan
re-run (or a 4-year plan with the same chips) solves without the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

import tokenfab
from tokenfab.specs import SpecError
from tokenfab.specs.traffic import Traffic


class PhaseCapacity(BaseModel):
    """Tokens/s one chip serves of a workload in each phase (0: cannot serve it)."""

    model_config = ConfigDict(frozen=True)

    prefill_tok_s_per_chip: float
    decode_tok_s_per_chip: float
    source: str
    """`estimate (mode)`, `given`, or why the chip cannot serve the workload."""


_MEMO: dict[str, PhaseCapacity] = {}


def cache_dir() -> Path:
    """Where estimates are cached on disk."""
    return Path(os.environ.get("TOKENFAB_CACHE", Path.home() / ".cache" / "tokenfab")) / "fleet"


def _key(model: str, chip, traffic: Traffic) -> str:
    blob = json.dumps([tokenfab.__version__, model, chip.model_dump(mode="json"), traffic.model_dump(mode="json")],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def phase_capacity(model: str, chip, traffic: Traffic, use_disk: bool = True) -> PhaseCapacity:
    """Prefill and decode tokens/s per chip of `model` on `chip` (a ChipSpec) under `traffic`."""
    from tokenfab.catalog import load_model

    if load_model(model).kind != "llm":  # an unknown model is the user's error, never "cannot serve"
        raise SpecError(f"workload model {model}: fleet plans serve LLMs (prefill and decode)")
    return _cached(_key(model, chip, traffic), lambda: _estimate(model, chip, traffic), use_disk)


def training_capacity(model: str, chip, chips_per_run: int, precision: str, seq_len: int,
                      tokens: float, use_disk: bool = True) -> PhaseCapacity:
    """Tokens/s one chip of `chip` trains of `model`, as its share of the best run on `chips_per_run`
    chips (`tokenfab.train.estimate_training`: tokens / run seconds / chips used, so failures and
    checkpoints count); both phase figures carry it. A chip without FP8 math trains at bf16; a
    model that fits no mapping trains 0."""
    from tokenfab.catalog import load_model

    if load_model(model).kind != "llm":
        raise SpecError(f"workload model {model}: training demand covers LLMs")
    if precision == "fp8" and not chip.fp8_tflops:
        precision = "bf16"
    blob = json.dumps([tokenfab.__version__, "training", model, chip.model_dump(mode="json"), chips_per_run,
                       precision, seq_len, tokens], sort_keys=True, default=str)
    key = hashlib.sha256(blob.encode()).hexdigest()[:32]
    return _cached(key, lambda: _train(model, chip, chips_per_run, precision, seq_len, tokens), use_disk)


def _train(model: str, chip, chips_per_run: int, precision: str, seq_len: int, tokens: float) -> PhaseCapacity:
    from tokenfab.catalog import load_model
    from tokenfab.train import TrainingJob, estimate_training

    try:
        job = TrainingJob(tokens=tokens, seq_len=seq_len, precision=precision,
                          global_batch_tokens=max(16.0 * 2**20, float(seq_len)))
        r = estimate_training(load_model(model), chip, chips_per_run, job)
    except (SpecError, ValueError) as exc:
        return PhaseCapacity(prefill_tok_s_per_chip=0.0, decode_tok_s_per_chip=0.0,
                             source=f"cannot train: {str(exc).splitlines()[0]}")
    rate = r["tokens"] / (r["days"] * 86400.0) / r["chips_used"]
    m = r["mapping"]
    return PhaseCapacity(prefill_tok_s_per_chip=rate, decode_tok_s_per_chip=rate,
                         source=(f"training estimate ({precision}, {r['chips_used']} chips, tp {m['tp']} pp {m['pp']} "
                                 f"ep {m['ep']} dp {m['dp']}, MFU {r['mfu']:.1%})"))


def _cached(key: str, compute, use_disk: bool) -> PhaseCapacity:
    """`compute()` once per key: in memory, then on disk."""
    if key in _MEMO:
        return _MEMO[key]
    path = cache_dir() / f"{key}.json"
    if use_disk and path.exists():
        try:
            cap = PhaseCapacity.model_validate_json(path.read_text())
            _MEMO[key] = cap
            return cap
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed
    cap = compute()
    _MEMO[key] = cap
    if use_disk:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(cap.model_dump_json())
            tmp.replace(path)
        except OSError:
            pass  # a read-only home still plans, only slower
    return cap


def _estimate(model: str, chip, traffic: Traffic) -> PhaseCapacity:
    from tokenfab import api

    try:
        est = api.estimate(model, chip, traffic)
    except SpecError as exc:
        return PhaseCapacity(prefill_tok_s_per_chip=0.0, decode_tok_s_per_chip=0.0,
                             source=f"cannot serve: {str(exc).splitlines()[0]}")
    if not est.meets_slo:
        return PhaseCapacity(prefill_tok_s_per_chip=0.0, decode_tok_s_per_chip=0.0,
                             source="cannot serve: no deployment meets the SLOs")
    s = min(max(est.prefill_time_share, 1e-9), 1 - 1e-9)
    return PhaseCapacity(prefill_tok_s_per_chip=est.input_tok_s_per_chip / s,
                         decode_tok_s_per_chip=est.output_tok_s_per_chip / (1 - s),
                         source=f"estimate ({est.mode})")
