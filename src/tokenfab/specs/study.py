"""StudySpec: a question asked of tokenfab as a file — models × chips × traffic, priced, sized.

A study names what to compare (models and chips by catalog id or path, including custom
design files), the traffic cases with their SLOs, overrides of the economics, and optional
sections: `volume` (tokens per day → chips and $/day), `serving` (the discrete-event
simulator at an arrival rate), `build_vs_buy` (a custom chip against a vendor chip), `design`
(a custom-chip design-space search for a workload mix: its Pareto front and verdict), `training`
(a training run of each model on each chip: mapping, days, chip-hours and $ per trillion tokens).
`tokenfab run STUDY.yaml` computes it; `tokenfab report STUDY.yaml` renders it.

Like every spec: frozen, unknown keys rejected with their field path, units in field names.
Paths in a study are relative to the study file (resolved by `tokenfab.study.load_study`).
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from tokenfab.specs.base import Spec, SpecError
from tokenfab.specs.economics import Economics
from tokenfab.specs.traffic import Traffic

STUDY_VERSION = 1
"""The study-file schema version this tokenfab reads."""

DEFAULT_CURVE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Batches (sequences in flight per data-parallel rank) sampled for throughput-vs-latency curves."""


class TrafficCase(Traffic):
    """A named traffic pattern: mean lengths, SLOs and prefix-cache hits (fields of `Traffic`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    """Short name used in tables and by other sections (`build_vs_buy.traffic`)."""
    description: str = ""
    """What this traffic stands for."""

    def traffic(self) -> Traffic:
        """The plain `Traffic` the engine takes."""
        return Traffic(**self.model_dump(exclude={"name", "description"}))


class StudyEconomics(Spec):
    """Where the economics come from: shipped preset, a user's economics file, field overrides."""

    preset: str | None = None
    """Operating preset of the shipped data (`us`, `china`); None: the shipped default."""
    file: str | None = None
    """Economics YAML (same format as `--economics`), relative to the study file."""
    overrides: dict[str, float | int | str | None] = Field(default_factory=dict)
    """`Economics` fields set by this study (e.g. `electricity_usd_per_kwh: 0.06`); sourced as the study."""
    market_rental: bool = False
    """Price chips at their dated market rental quote where the shipped data has one (others: owned cost)."""

    @field_validator("overrides")
    @classmethod
    def _known_fields(cls, value: dict) -> dict:
        unknown = [k for k in value if k not in Economics.model_fields or k in ("sources", "estimated_fields")]
        if unknown:
            hints = [_hint(k, list(Economics.model_fields)) for k in unknown]
            raise ValueError("; ".join(f"unknown economics field {k!r}{h}" for k, h in zip(unknown, hints)))
        return value


class VolumeSpec(Spec):
    """Demand to size a fleet for: tokens per day → chips and $/day for each option."""

    output_tokens_per_day: float | None = Field(default=None, gt=0)
    """Generated (output) tokens per day, tokens/day."""
    total_tokens_per_day: float | None = Field(default=None, gt=0)
    """Input + output tokens per day, tokens/day (split by each traffic case's ISL:OSL)."""
    headroom_frac: float = Field(default=0.0, ge=0, le=10)
    """Capacity kept above the average load for peaks, fraction (0.3 = 30 % more chips)."""

    @model_validator(mode="after")
    def _one_amount(self) -> "VolumeSpec":
        if (self.output_tokens_per_day is None) == (self.total_tokens_per_day is None):
            raise ValueError("give exactly one of output_tokens_per_day or total_tokens_per_day")
        return self

    def output_tokens_per_s(self, input_len: float, output_len: float) -> float:
        """Average output tokens/s the fleet must deliver (before headroom)."""
        per_day = self.output_tokens_per_day
        if per_day is None:
            per_day = self.total_tokens_per_day * output_len / (input_len + output_len)
        return per_day / 86400.0


class ServingSection(Spec):
    """Request-level simulation of one model on the study's chips (needs `tokenfab.serving`)."""

    model: str | None = None
    """Model to simulate (default: the study's first model)."""
    chips: list[str] | None = None
    """Chips to simulate (default: all of the study's chips)."""
    traffic: str | None = None
    """Traffic case whose SLOs and deployment apply (default: the first)."""
    profile: str | None = None
    """Serving traffic profile id or YAML / trace path (default: lengths of the traffic case)."""
    rate_per_s: float = Field(gt=0)
    """Mean request arrival rate offered to the whole deployment, requests/s."""
    replicas: int = Field(default=1, ge=1, le=4096)
    """Copies of the engine's best deployment serving the requests, replicas."""
    requests: int = Field(default=2000, gt=0, le=1_000_000)
    """Requests drawn for the simulation."""
    seed: int = 0
    """Random seed of the drawn workload."""


class BuildVsBuySection(Spec):
    """Build a custom chip (a design file or catalog chip) or buy a vendor chip for one model."""

    custom_chip: str
    """Custom chip: ChipSpec / design YAML path (relative to the study) or catalog id."""
    vendor_chip: str = "h100-sxm"
    """Vendor chip bought (or rented, when the economics set a rental price) instead."""
    model: str
    """Model served by both fleets (id or config.json path)."""
    traffic: str | None = None
    """Traffic case both fleets serve (default: the study's first)."""
    fleet_vendor_equiv: float = Field(default=10000, gt=0)
    """Fleet size asked about, in vendor-chip equivalents, chips."""


class DesignSection(Spec):
    """A custom-chip design-space search for a workload mix (`tokenfab design`), run inside the study."""

    workload: str
    """Workload mix: shipped id (`chat-mix`) or workload YAML path, relative to the study."""
    space: str | None = None
    """Design space: shipped id or YAML path, relative to the study (default: the workload's own space)."""
    trials: int = Field(default=60, ge=1, le=100_000)
    """Finished trials the search should hold, trials."""
    seed: int = Field(default=0, ge=0)
    """Search seed: the same seed gives the same trials."""
    sampler: Literal["nsga2", "tpe", "grid", "random"] = "nsga2"
    """optuna sampler: `nsga2` (multi-objective genetic search), `tpe`, `grid` or `random`."""
    executor: Literal["inline"] = "inline"
    """Where trials are evaluated: studies run the search in-process (`inline`) only."""


class TrainingSection(Spec):
    """Training runs (`tokenfab train`) of models on chips: best mapping, days and $ of each (model, chip)."""

    models: list[str] | None = Field(default=None, min_length=1)
    """Models to train: catalog ids or config.json paths (default: the study's models)."""
    chips: list[str] | None = Field(default=None, min_length=1)
    """Chips to train on: catalog ids or ChipSpec / design YAML paths (default: the study's chips)."""
    chips_per_run: int = Field(default=1024, ge=1, le=1_000_000)
    """Chips of each run (the mapping search may leave some idle), chips."""
    tokens: float = Field(gt=0, le=1e17)
    """Training tokens of each run, tokens."""
    seq_len: int = Field(default=4096, gt=0, le=10_000_000)
    """Tokens per training sequence, tokens."""
    global_batch_tokens: float = Field(default=16.0 * 2**20, gt=0, le=1e12)
    """Tokens per optimizer step, tokens (16M: Llama 3 405B's, arXiv 2407.21783 Table 4)."""
    precision: Literal["bf16", "fp8"] = "bf16"
    """GEMM format of the linear layers: bf16 or fp8 (a chip without FP8 math trains at bf16)."""

    @model_validator(mode="after")
    def _batch_holds_a_sequence(self) -> "TrainingSection":
        if self.global_batch_tokens < self.seq_len:
            raise ValueError(f"global_batch_tokens ({self.global_batch_tokens:g}) is less than one sequence "
                             f"({self.seq_len} tokens)")
        return self


class StudySpec(Spec):
    """A study: what to compare, under which traffic and economics, and which sections to run."""

    version: Literal[1]
    """Study-file schema version (this tokenfab reads 1)."""
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    """Study id: lower-case letters, digits, `-`, `_` (names the results folder)."""
    title: str = ""
    """One-line title shown at the top of the report."""
    description: str = ""
    """The question the study answers."""
    models: list[str] = Field(min_length=1)
    """Models: catalog ids or config.json paths."""
    chips: list[str] = Field(min_length=1)
    """Chips: catalog ids or ChipSpec / design YAML paths."""
    traffic: list[TrafficCase] = Field(min_length=1)
    """Traffic cases (lengths and SLOs); every model is estimated on every chip for each."""
    economics: StudyEconomics = StudyEconomics()
    """Operating economics behind $/Mtoken (shipped data unless overridden)."""
    max_chips: int = Field(default=64, ge=1, le=4096)
    """Largest deployment (chips per model replica) the mapping search tries, chips."""
    curve_batches: list[int] = Field(default_factory=lambda: list(DEFAULT_CURVE_BATCHES), min_length=1)
    """Batches per data-parallel rank sampled for the throughput-vs-latency curves, sequences."""
    volume: VolumeSpec | None = None
    """Demand to size fleets for (optional)."""
    serving: ServingSection | None = None
    """Serving simulation (optional)."""
    build_vs_buy: BuildVsBuySection | None = None
    """Build-vs-buy comparison (optional)."""
    design: DesignSection | None = None
    """Custom-chip design-space search for a workload mix, with its Pareto front (optional)."""
    training: TrainingSection | None = None
    """Training runs of models on chips: best training mapping, days, chip-hours, $ (optional)."""

    @field_validator("curve_batches")
    @classmethod
    def _positive_batches(cls, value: list[int]) -> list[int]:
        if any(b < 1 for b in value):
            raise ValueError("batches must be ≥ 1 sequence")
        return sorted(set(value))

    @model_validator(mode="after")
    def _cross_references(self) -> "StudySpec":
        names = [t.name for t in self.traffic]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"traffic: names must be unique, repeated: {', '.join(dup)}")
        for section in ("serving", "build_vs_buy"):
            ref = getattr(getattr(self, section), "traffic", None)
            if ref is not None and ref not in names:
                raise ValueError(f"{section}.traffic: {ref!r} is not a traffic case; known: {', '.join(names)}")
        return self

    def traffic_case(self, name: str | None) -> TrafficCase:
        """The named traffic case (the first when `name` is None)."""
        if name is None:
            return self.traffic[0]
        return next(t for t in self.traffic if t.name == name)

    @classmethod
    def from_mapping(cls, data: Any, origin: str = "<input>") -> "StudySpec":
        """Validate a mapping; errors name the field path and what was expected (units included)."""
        if not isinstance(data, dict):
            raise SpecError(f"{origin}: expected a mapping of study fields (version, name, models, chips, traffic, ...)")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(f"{origin}: {format_study_error(exc)}") from None


# ---- error messages ---------------------------------------------------------------------------

_UNITS = (
    ("_usd_per_kwh", "USD per kWh"), ("_usd_per_kw_month", "USD per kW-month"), ("_usd_per_chip_year", "USD per chip-year"),
    ("_usd_per_chip_hour", "USD per chip-hour"), ("_tokens_per_day", "tokens per day"), ("_per_s", "per second"),
    ("_per_day", "per day"), ("_usd", "USD"), ("_ms", "milliseconds"), ("_s", "seconds"), ("_frac", "a fraction"),
    ("_gb", "GB"), ("_w", "watts"), ("_years", "years"), ("_len", "tokens"), ("_equiv", "chips"),
    ("_tokens", "tokens"),
)
_UNIT_RE = re.compile(r"_(ms|s|us|ns|min|h|hours?|days?|sec|seconds|usd|cny|eur|per_s|per_day|per_hour|"
                      r"per_min|tokens_per_day|tokens_per_s|tokens_per_hour|frac|pct|percent|gb|mb|tb|w|kw|years?)$")


def _unit_of(field: str) -> str | None:
    for suffix, words in _UNITS:
        if field.endswith(suffix):
            return words
    return None


def _stem(field: str) -> str:
    """A field name without its unit suffix (`slo_ttft_ms` → `slo_ttft`)."""
    prev = None
    while prev != field:
        prev, field = field, _UNIT_RE.sub("", field)
    return field


def _hint(key: str, known: list[str]) -> str:
    """`; did you mean X?` for a misspelled field or one with the wrong unit, else the known fields."""
    same_stem = [k for k in known if _stem(k) == _stem(key) and k != key]
    if same_stem:
        unit = _unit_of(same_stem[0])
        return f"; did you mean {same_stem[0]!r}? (units are in field names{': ' + unit if unit else ''})"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(known)}"


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the field at `loc` (a validation error location)."""
    model: Any = StudySpec
    for step in loc[:-1]:
        if isinstance(step, int):
            continue  # list index: the item type was unwrapped below
        field = model.model_fields.get(step) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """The model inside `X | None`, `list[X]`, `dict[str, X]`."""
    for arg in getattr(annotation, "__args__", ()) or ():
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def format_study_error(exc: ValidationError) -> str:
    """One line: `field.path: what was wrong and what was expected` for the first three errors."""
    parts = []
    errors = exc.errors()
    for err in errors[:3]:
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "(root)"
        kind, msg = err["type"], err["msg"]
        key = str(loc[-1]) if loc else ""
        model = _model_at(loc) if loc else None
        if kind == "extra_forbidden":
            known = list(model.model_fields) if model is not None else []
            msg = "unknown field" + (_hint(key, known) if known else "")
        elif kind == "missing":
            field = model.model_fields.get(key) if model is not None else None
            what = (field.description or "").split("\n")[0] if field is not None else ""
            msg = "required field missing" + (f" ({what.rstrip('.')})" if what else "")
        elif kind in ("float_parsing", "int_parsing", "float_type", "int_type", "int_from_float"):
            unit = _unit_of(key)
            expected = "a whole number" if kind.startswith("int") else "a number"
            msg = f"expected {expected}{' in ' + unit if unit else ''}, got {err.get('input')!r}"
            if isinstance(err.get("input"), str) and unit:
                msg += " (write the number only; the unit is in the field name)"
        elif kind == "literal_error" and key == "version":
            msg = f"unsupported study version {err.get('input')!r}; this tokenfab reads version: {STUDY_VERSION}"
        elif kind == "value_error":
            msg = msg.removeprefix("Value error, ")
        parts.append(f"{path}: {msg}" if loc else msg)
    if len(errors) > 3:
        parts.append(f"(+{len(errors) - 3} more)")
    return "; ".join(parts)
