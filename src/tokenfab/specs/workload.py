"""Workload mixes `tokenfab design` optimizes custom chips for (`WorkloadSpec`: weighted
model/traffic/SLO scenarios and their what-if variants)."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tokenfab.specs.base import Spec, SpecError
from tokenfab.specs.model import ModelSpec
from tokenfab.specs.precision import PRECISIONS
from tokenfab.specs.traffic import Traffic


# ---- workload mixes for chip design (`tokenfab design`) ---------------------------------------
# A workload mix is what `tokenfab design` optimizes a custom chip against: each scenario is one
# model served under one traffic pattern with its latency targets, and a weight — the share of
# all tokens (input + output) the fleet serves that belong to this scenario. The mix's $/Mtoken
# is then the weighted mean of the scenarios' $/Mtoken (total cost over total tokens).
#
# A scenario may also name a diffusion (video/image generation) or recommendation model: its
# request is `request:` (GenerationRequest / RecsysRequest fields) and its work is counted in
# token-equivalents at the baseline chip's exchange rate (see `WorkloadSpec`); LLM-only fields
# (lengths, TTFT/TPOT SLOs, kv_precision, ...) are rejected on it.
#
# A scenario of `kind: training` pretrains an LLM instead (`training:` holds the run: chips, tokens,
# sequence length, precision); its cost per trillion training tokens is counted in token-equivalents
# at the baseline chip's exchange rate, like the diffusion and recommendation scenarios.
#
# Variants (`variants:`) are what-ifs on the same mix: a variant replaces fields of named
# scenarios (another model, model fields such as the attention type, a weight precision), so a
# search can be run on both and the best designs compared (co-design).

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
_MODEL_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-+~*]*$"
_MODEL_FIELDS = tuple(f for f in ModelSpec.model_fields if f != "id")


def _check_model_overrides(value: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in value if k not in _MODEL_FIELDS]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, _MODEL_FIELDS, n=1)
            hints.append(f"unknown model field {k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError("; ".join(hints))
    return value


def _check_precision(value: str | None) -> str | None:
    if value is not None and value not in PRECISIONS:
        raise ValueError(f"unknown precision {value!r}; known: {', '.join(PRECISIONS)}")
    return value


class TrainingRun(Spec):
    """A training scenario's run: `tokenfab.train` finds its best mapping on the chip evaluated."""

    chips_per_run: int = Field(default=1024, ge=1, le=1_000_000)
    """Chips of one run (the mapping search may leave some idle), chips."""
    tokens: float = Field(default=1e12, gt=0, le=1e17)
    """Training tokens of the run, tokens (sets its length, hence its failures and checkpoints; the
    cost per trillion tokens hardly depends on it)."""
    seq_len: int = Field(default=4096, gt=0, le=10_000_000)
    """Tokens per training sequence, tokens."""
    global_batch_tokens: float = Field(default=16.0 * 2**20, gt=0, le=1e12)
    """Tokens per optimizer step, tokens (16M: Llama 3 405B's, arXiv 2407.21783 Table 4)."""
    precision: Literal["bf16", "fp8"] = "bf16"
    """GEMM format of the linear layers (a chip without FP8 math trains at bf16)."""

    @model_validator(mode="after")
    def _batch_holds_a_sequence(self) -> "TrainingRun":
        if self.global_batch_tokens < self.seq_len:
            raise ValueError(f"global_batch_tokens ({self.global_batch_tokens:g}) is less than one sequence "
                             f"({self.seq_len} tokens)")
        return self


class Scenario(Traffic):
    """One model served under one traffic pattern (lengths, SLOs; fields of `Traffic`), or trained."""

    name: str = Field(pattern=_NAME)
    """Short name used in tables and by variants."""
    description: str = ""
    """What this scenario stands for."""
    weight: float = Field(gt=0)
    """Share of the mix's tokens (input + output) served in this scenario; normalized to sum 1."""
    model: str
    """Model: catalog id or config.json path."""
    model_id: str | None = Field(default=None, pattern=_MODEL_ID)
    """Id shown for the model after `model_overrides` (default: `<model>*`)."""
    model_overrides: dict[str, Any] = Field(default_factory=dict)
    """`ModelSpec` fields replaced (e.g. `attention: gqa`, `num_kv_heads: 8`); validated with the model."""
    precision: str | None = None
    """Weight precision the deployment must use (None: the mapping search chooses)."""
    kv_precision: str | None = None
    """KV-cache precision (None: follows the weights, as `tokenfab estimate`)."""
    request: dict[str, Any] = Field(default_factory=dict)
    """Diffusion / recommendation models only: fields of their request (`GenerationRequest`:
    width_px, height_px, frames, steps, guidance, slo_latency_s, ...; `RecsysRequest`:
    slo_latency_ms, batch); unset fields take the model's defaults."""
    kind: Literal["serving", "training"] = "serving"
    """`serving`: the model answers requests; `training`: the model is pretrained (`training:`), its
    cost per trillion training tokens counted in $/Mtok-equivalents at the baseline's rate."""
    training: TrainingRun | None = None
    """The run of a `kind: training` scenario (None: `TrainingRun`'s defaults)."""

    @field_validator("model_overrides")
    @classmethod
    def _known_model_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_model_overrides(value)

    @model_validator(mode="after")
    def _training_fields(self) -> "Scenario":
        if self.kind == "serving":
            if self.training is not None:
                raise ValueError(f"training: only on a `kind: training` scenario ({self.name} serves)")
            return self
        bad = [f for f in (*LLM_ONLY_FIELDS, "precision", "request") if f in self.model_fields_set]
        if bad:
            what = ("set its format as training.precision" if bad[0] == "precision"
                    else "a training scenario has no requests; set its run under training:")
            raise ValueError(f"{bad[0]}: not a field of a training scenario ({self.name}); {what}")
        return self

    def llm_only_fields(self) -> list[str]:
        """The fields set on this scenario that only an LLM (prefill/decode) scenario uses."""
        return [f for f in LLM_ONLY_FIELDS if f in self.model_fields_set]

    def check_kind(self, kind: str, where: str) -> None:
        """SpecError (one line, naming the field) when the scenario's fields do not suit a model
        of `kind` ("llm", "diffusion", "recsys"); `where` is the scenario's path."""
        if self.kind == "training":
            if kind != "llm":
                raise SpecError(f"{where}.kind: training covers LLMs; {self.model} is a {kind} model")
            return
        if kind == "llm":
            if self.request:
                raise SpecError(f"{where}.request: only for diffusion / recommendation models; {self.model} is "
                                f"an LLM (set its traffic with input_len, output_len, slo_ttft_ms, ...)")
            return
        bad = self.llm_only_fields()
        if bad:
            req = "GenerationRequest" if kind == "diffusion" else "RecsysRequest"
            raise SpecError(f"{where}.{bad[0]}: LLM-only field; {self.model} is a {kind} model — set its work "
                            f"under request: ({req} fields: {', '.join(_request_fields(kind))})")

    @field_validator("precision", "kv_precision")
    @classmethod
    def _known_precision(cls, value: str | None) -> str | None:
        return _check_precision(value)

    def traffic(self) -> Traffic:
        """The plain `Traffic` the engine takes."""
        return Traffic(**{k: getattr(self, k) for k in Traffic.model_fields})


LLM_ONLY_FIELDS = tuple(Traffic.model_fields) + ("kv_precision",)
"""Scenario fields that mean nothing for a diffusion or recommendation model."""


def _request_fields(kind: str) -> tuple[str, ...]:
    from tokenfab.specs.requests import GenerationRequest, RecsysRequest

    return tuple((GenerationRequest if kind == "diffusion" else RecsysRequest).model_fields)


class ScenarioChange(Spec):
    """Fields a variant replaces in one scenario (all optional)."""

    weight: float | None = Field(default=None, gt=0)
    """New weight (share of tokens)."""
    model: str | None = None
    """Another model (catalog id or config.json path)."""
    model_id: str | None = Field(default=None, pattern=_MODEL_ID)
    """Id shown for the changed model."""
    model_overrides: dict[str, Any] | None = None
    """`ModelSpec` fields replaced (replaces the scenario's own overrides)."""
    precision: str | None = None
    """Weight precision the deployment must use."""
    kv_precision: str | None = None
    """KV-cache precision."""
    input_len: int | None = Field(default=None, gt=0)
    """Mean prompt length, tokens."""
    output_len: int | None = Field(default=None, gt=0)
    """Mean generated length, tokens."""
    slo_ttft_ms: float | None = Field(default=None, gt=0)
    """TTFT limit, ms."""
    slo_tpot_ms: float | None = Field(default=None, gt=0)
    """TPOT limit, ms."""
    request: dict[str, Any] | None = None
    """Request fields of a diffusion / recommendation scenario (replaces the scenario's own)."""

    @field_validator("model_overrides")
    @classmethod
    def _known_model_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return value if value is None else _check_model_overrides(value)

    @field_validator("precision", "kv_precision")
    @classmethod
    def _known_precision(cls, value: str | None) -> str | None:
        return _check_precision(value)


class Variant(Spec):
    """A what-if on a workload mix: replaced fields per scenario name."""

    description: str = ""
    """What changes and why it matters for the chip."""
    scenarios: dict[str, ScenarioChange] = Field(min_length=1)
    """Scenario name → fields replaced."""


class WorkloadSpec(Spec):
    """A weighted mix of scenarios, the chip designs are compared with, and the default space.

    Objective (`usd_per_mtok`, "$/Mtok-equivalent"): Σᵢ wᵢ · xᵢ over the normalized weights, where
    an LLM scenario's xᵢ is its $/Mtok (tokens in + out), so an all-LLM mix's figure is its total
    cost over its total tokens, exactly as before. A scenario whose work is not tokens (diffusion:
    $ per video; recommendation: $ per million samples) is converted to token-equivalents at the
    baseline chip's exchange rate: xᵢ = r · cᵢ / bᵢ, with cᵢ the design's cost per unit of work,
    bᵢ the baseline's on the same scenario and r the baseline's $/Mtok on the LLM scenarios (their
    weighted mean; r = 1 when the mix has none, making the objective the weighted cost ratio to
    the baseline). One video is thus worth bᵢ / r Mtok of work, and such a scenario's weight is its
    share of the mix's work in those token-equivalents; on the baseline every scenario costs r per
    Mtok-equivalent. Costs all come from the same $/chip-hour of the chip being evaluated.
    The latency objectives (`tpot_ms`, `ttft_ms`) are means over the LLM scenarios only (weights
    renormalized over them; 0 when there are none); other scenarios' latency limits
    (`request.slo_latency_s`, `slo_latency_ms`) are feasibility constraints.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    """Workload id (lower-case, `-`, `_`)."""
    title: str = ""
    """One-line title."""
    description: str = ""
    """What the mix stands for."""
    scenarios: list[Scenario] = Field(min_length=1)
    """The scenarios; weights are shares of tokens and are normalized to sum to 1."""
    baseline: str = "h100-sxm"
    """Catalog chip (or chip/design YAML) the designs are compared with on the same mix."""
    reference_design: str | None = "h100-sxm-design"
    """A design of the baseline's silicon (catalog/designs id or path), priced at unit cost with the
    space's software assumptions: separates what the architecture gains from what the margin does."""
    space: str | None = None
    """Default design space (catalog/spaces id or YAML path) for `tokenfab design`."""
    variants: dict[str, Variant] = Field(default_factory=dict)
    """Named what-ifs (`tokenfab design WORKLOAD --variant NAME`)."""
    sources: dict[str, str] = Field(default_factory=dict)
    """Where the scenario figures come from (`default` covers the rest)."""

    @model_validator(mode="after")
    def _check(self) -> "WorkloadSpec":
        names = [s.name for s in self.scenarios]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"scenarios: names must be unique, repeated: {', '.join(dup)}")
        for vname, var in self.variants.items():
            unknown = [n for n in var.scenarios if n not in names]
            if unknown:
                raise ValueError(f"variants.{vname}.scenarios: {', '.join(unknown)} not a scenario; "
                                 f"known: {', '.join(names)}")
        total = sum(s.weight for s in self.scenarios)
        if not math.isfinite(total) or total <= 0:
            raise ValueError("scenario weights must sum to a positive number")
        return self

    @property
    def weights(self) -> dict[str, float]:
        """Scenario name → normalized weight (sums to 1)."""
        total = sum(s.weight for s in self.scenarios)
        return {s.name: s.weight / total for s in self.scenarios}

    def check_kinds(self, kinds: dict[str, str], origin: str) -> None:
        """SpecError naming the first field that does not suit its scenario's model kind
        (`kinds`: scenario name → "llm" / "diffusion" / "recsys")."""
        for i, s in enumerate(self.scenarios):
            s.check_kind(kinds[s.name], f"{origin}: scenarios.{i} ({s.name})")

    def with_variant(self, name: str, variant: Variant) -> "WorkloadSpec":
        """The workload with `variant` applied (named `<name>-<variant>`)."""
        scenarios = []
        for s in self.scenarios:
            change = variant.scenarios.get(s.name)
            if change is None:
                scenarios.append(s)
                continue
            upd = change.model_dump(exclude_none=True)
            if "model" in upd and "model_overrides" not in upd:
                upd["model_overrides"] = {}
            if ("model" in upd or "model_overrides" in upd) and "model_id" not in upd:
                upd["model_id"] = None
            # exclude_unset: the fields a scenario sets stay told apart from defaults (check_kind)
            scenarios.append(Scenario.from_mapping({**s.model_dump(exclude_unset=True), **upd},
                                                   origin=f"variant {name}: {s.name}"))
        vid = re.sub(r"[^a-z0-9_\-]+", "-", f"{self.name}-{name}".lower())
        return self.model_copy(update={"name": vid, "title": f"{self.title or self.name} — variant {name}",
                                       "scenarios": scenarios, "variants": {}})

    def variant(self, name: str) -> Variant:
        """The named variant (SpecError listing the known ones)."""
        if name not in self.variants:
            known = ", ".join(self.variants) or "none"
            raise SpecError(f"workload {self.name} has no variant {name!r}; known: {known}")
        return self.variants[name]
