"""The serving framework as an input: load a software profile and apply it to a chip's Efficiency.

`load_framework(name)` reads `catalog/frameworks.yaml` (or a user's profile YAML);
`apply_profile(eff, profile)` returns the Efficiency the engine should use for that chip under that
framework. TensorRT-LLM is the reference (the calibration is TensorRT-LLM-like): its profile and
the `neutral` one leave the Efficiency unchanged. `profile_for(framework, vendor)` is what
`validate` uses for a measurement row's `framework` column: unknown harnesses get the neutral
profile rather than an error.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path

from tokenfab.perf.efficiency import Efficiency, efficiency_for
from tokenfab.specs.base import SpecError, load_yaml
from tokenfab.specs.framework import FrameworkProfile

NEUTRAL = "neutral"
"""Id of the profile that changes nothing (unknown harnesses and frameworks without data)."""

EAGER_KERNEL_LAUNCH_US = 10.0
"""Per-kernel cost when a step is launched eagerly rather than replayed from a CUDA graph, µs.
Estimate: PyTorch operator dispatch plus `cudaLaunchKernel` costs ~5-20 µs of CPU time per kernel,
which the GPU waits for once kernels are shorter than that (small decode batches). A cross-check:
an H100 Llama-3.1-8B decode step reported at 8.4 ms eager and 5.1 ms as a CUDA graph is ~3.3 ms
over roughly 400 kernels, ~8 µs each."""

_OVERRIDES: dict[str, FrameworkProfile] = {}


def frameworks_path() -> Path:
    """The shipped profile file, or `$TOKENFAB_FRAMEWORKS_FILE` (e.g. a held-out fit)."""
    override = os.environ.get("TOKENFAB_FRAMEWORKS_FILE")
    if override:
        return Path(override)
    return Path(str(resources.files("tokenfab.catalog").joinpath("frameworks.yaml")))


def _read(path: Path) -> dict[str, FrameworkProfile]:
    data = load_yaml(path)
    entries = data.get("frameworks") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise SpecError(f"{path}: expected a `frameworks:` list of profiles")
    out = {}
    for i, entry in enumerate(entries):
        prof = FrameworkProfile.from_mapping(entry, origin=f"{path}: frameworks[{i}]")
        out[prof.id] = prof
    return out


@lru_cache(maxsize=4)
def _catalog(path: str) -> dict[str, FrameworkProfile]:
    return _read(Path(path))


def _profiles() -> dict[str, FrameworkProfile]:
    profiles = dict(_catalog(str(frameworks_path())))
    profiles.update(_OVERRIDES)
    return profiles


def known_frameworks() -> list[str]:
    """Ids of the known profiles (shipped plus any overrides), sorted."""
    return sorted(_profiles())


def _resolve(name: str, profiles: dict[str, FrameworkProfile]) -> FrameworkProfile | None:
    """By id or alias; a name with a parenthesized qualifier (`vllm (MooncakeConnector)`, `sglang
    (PD, mooncake)`: the runtime with a KV connector or a deployment note) resolves to the runtime
    before it, whose kernels and host loop it runs."""
    key = name.strip().lower()
    if key in profiles:
        return profiles[key]
    for prof in profiles.values():
        if key in (a.lower() for a in prof.aliases):
            return prof
    base = key.split("(", 1)[0].strip()
    if base and base != key:
        return _resolve(base, profiles)
    return None


def load_framework(name: str, vendor: str | None = None) -> FrameworkProfile:
    """A profile by id or alias (case-insensitive), or from a YAML file holding one profile.

    `vendor` (a chip's vendor) switches to the profile's variant for that vendor (`vllm` on an AMD
    chip is `vllm-rocm`). An unknown name raises `SpecError` listing the known ones.
    """
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        data = load_yaml(Path(name))
        if isinstance(data, dict) and "frameworks" in data:
            raise SpecError(f"{name}: a profile file holds one profile (id, gemm_quality, ...), not a list")
        return FrameworkProfile.from_mapping(data, origin=name)
    profiles = _profiles()
    prof = _resolve(name, profiles)
    if prof is None:
        raise SpecError(f"unknown framework {name!r}; known: {', '.join(sorted(profiles))}")
    if vendor and vendor in prof.vendor_variants:
        variant = profiles.get(prof.vendor_variants[vendor])
        if variant is None:
            raise SpecError(f"framework {prof.id}: variant {prof.vendor_variants[vendor]!r} for {vendor} "
                            f"is not a known profile")
        return variant
    return prof


def profile_for(framework: str | None, vendor: str | None = None) -> FrameworkProfile:
    """The profile of a measurement row's `framework` column on a chip of `vendor`: the named
    profile when known, else the neutral one (benchmark harnesses, unlisted runtimes)."""
    if framework and framework.strip():
        try:
            return load_framework(framework, vendor)
        except SpecError:
            pass
    return load_framework(NEUTRAL)


def _capped(value: float, factor: float) -> float:
    return min(1.0, value * factor)


def apply_profile(eff: Efficiency, profile: FrameworkProfile, moe: bool = False) -> Efficiency:
    """The Efficiency a chip reaches under this framework: a modified copy of `eff`.

    - GEMM compute fractions (every precision) × `gemm_quality` (× `moe_quality` when `moe`, the
      deployment of an MoE model), attention fraction × `attention_quality`, HBM fraction ×
      `memory_quality`; each capped at 1.
    - Collectives (NCCL's and the expert dispatch kernels' fields): bandwidth fraction × `comm_quality`
      / (1 − `comm_overlap_frac`) (capped at 1), latencies × (1 − `comm_overlap_frac`) / `comm_quality`.
    - `act_quant_fused`: no separate activation-quantization pass (`Efficiency.lowp_act_quant_bytes`).
    - `step_overhead_ms` replaces the chip's when set; without CUDA graphs each kernel costs at
      least `EAGER_KERNEL_LAUNCH_US`.
    Fields the profile does not touch pass through unchanged (a neutral profile returns `eff`).
    """
    if profile.is_neutral:
        return eff
    gemm = profile.gemm_quality * (profile.moe_quality if moe else 1.0)
    update: dict[str, object] = {}
    for field in ("gemm_compute_frac", "lowp_gemm_compute_frac", "fp4_gemm_compute_frac", "block_gemm_compute_frac"):
        value = getattr(eff, field)
        if value is not None:
            update[field] = _capped(value, gemm)
    update["attention_compute_frac"] = _capped(eff.attention_compute_frac, profile.attention_quality)
    update["hbm_frac"] = _capped(eff.hbm_frac, profile.memory_quality)
    exposed = 1.0 - profile.comm_overlap_frac
    update["comm_bw_frac"] = _capped(eff.comm_bw_frac, profile.comm_quality / exposed)
    update["comm_latency_us"] = eff.comm_latency_us * exposed / profile.comm_quality
    update["scaleout_latency_us"] = eff.scaleout_latency_us * exposed / profile.comm_quality
    if eff.alltoall_bw_frac is not None:  # the expert dispatch kernels' own fields, where fitted
        update["alltoall_bw_frac"] = _capped(eff.alltoall_bw_frac, profile.comm_quality / exposed)
    if eff.alltoall_latency_us is not None:
        update["alltoall_latency_us"] = eff.alltoall_latency_us * exposed / profile.comm_quality
    if profile.step_overhead_ms is not None:
        update["step_overhead_ms"] = profile.step_overhead_ms
    if profile.act_quant_fused:
        update["lowp_act_quant_bytes"] = update["fp4_act_quant_bytes"] = update["block_act_quant_bytes"] = None
    if not profile.cuda_graphs:
        update["kernel_launch_us"] = max(eff.kernel_launch_us, EAGER_KERNEL_LAUNCH_US)
    update["source"] = f"{eff.source}; framework profile {profile.id}"
    return eff.model_copy(update=update)


def efficiency_under(chip, framework: str | None, moe: bool = False) -> Efficiency:
    """The chip's efficiency (`efficiency_for`, with the MoE terms of the framework's own kernels
    where its calibration fitted them) under the profile of `framework` as a measurement row names
    it (`profile_for`: unknown names are neutral); `moe`: the model is a mixture of experts."""
    profile = profile_for(framework, chip.vendor)
    return apply_profile(efficiency_for(chip, profile.id), profile, moe=moe)


@contextmanager
def override_profiles(profiles: dict[str, FrameworkProfile]):
    """Within the block, these profiles replace the shipped ones of the same id (or add to them):
    how `bench/fit_frameworks.py` tries candidate parameters and tests pin a profile."""
    saved = dict(_OVERRIDES)
    _OVERRIDES.update(profiles)
    try:
        yield
    finally:
        _OVERRIDES.clear()
        _OVERRIDES.update(saved)
