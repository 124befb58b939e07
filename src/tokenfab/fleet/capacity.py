"""What one chip serves of one workload, per phase, from tokenfab's own estimate — cached.

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
    key = _key(model, chip, traffic)
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
    cap = _estimate(model, chip, traffic)
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
