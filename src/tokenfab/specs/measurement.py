"""MeasurementRow: one published performance number, in the shared measurement CSV schema.

The schema is the one of `catalog/measurements/public.csv` (documented in the package's
measurement README): any user file with the same header can be validated against tokenfab with
`tokenfab validate --data FILE`. Empty cells are None. A bad row is reported with its line number.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from tokenfab.specs.base import Spec, SpecError, format_validation_error

Scenario = Literal[
    "offline", "server", "interactive", "throughput", "prefill", "decode",
    "gemm", "attention", "bandwidth", "allreduce", "allgather", "reducescatter", "alltoall", "p2p", "op", "moe",
    "video_gen", "image_gen", "generation", "training",
]
Metric = Literal[
    "output_tok_s", "total_tok_s", "input_tok_s",
    "ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99",
    "tpot_ms_mean", "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p99",
    "e2e_latency_ms_mean", "tflops", "tb_s", "gb_s_busbw", "gb_s_algbw", "latency_us", "requests_s",
    "samples_s", "latency_s", "e2e_latency_ms_p50", "e2e_latency_ms_p90", "e2e_latency_ms_p99",
    "tokens_s", "mfu", "step_time_s", "chip_hours", "time_to_train_min",
]
MeasPrecision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4", "mixed"]

END_TO_END_SCENARIOS = ("offline", "server", "interactive", "throughput", "prefill", "decode", "video_gen",
                        "image_gen", "generation", "training")
"""Scenarios that describe a whole deployment (a model served on chips, or trained: `training`, whose
metrics are `tokens_s` trained, `mfu`, `step_time_s` and `chip_hours` of a run)."""
MICRO_SCENARIOS = ("gemm", "attention", "bandwidth", "allreduce", "allgather", "reducescatter", "alltoall",
                   "p2p", "op", "moe")
"""Scenarios that time one kernel, one operator or one collective (calibration may use these; `moe`,
one MoE layer's fused kernels on one rank, is scored only: the MoE terms come from kernel tables)."""

COLUMNS = (
    "id", "source", "source_ref", "hardware", "num_chips", "model", "weight_precision", "activation_precision",
    "kv_precision", "framework", "scenario", "input_len", "output_len", "batch", "tp", "pp", "ep", "dp",
    "gemm_m", "gemm_n", "gemm_k", "message_bytes", "metric", "per", "value", "slo_ttft_ms", "slo_tpot_ms",
    "usable", "notes",
)
REQUIRED_COLUMNS = ("id", "hardware", "scenario", "metric", "value", "usable")


class MeasurementRow(Spec):
    """One measured number and the deployment or kernel it was measured on."""

    id: str = Field(min_length=1)
    """Row id, unique in its file (e.g. `M0103`)."""
    source: str = ""
    """Who published the number (benchmark round, blog, README)."""
    source_ref: str = ""
    """URL or repository path where the number is read."""
    hardware: str | None = None
    """Chip id (catalog id); None when the measured chip is unknown (such rows are not usable)."""
    num_chips: int | None = Field(default=None, ge=1, le=1_000_000)
    """Accelerators in the measured system."""
    model: str | None = None
    """Model id (catalog id); None for microbenchmarks."""
    weight_precision: MeasPrecision | None = None
    """Weight format; None when not stated."""
    activation_precision: MeasPrecision | None = None
    """Activation / compute format; None when not stated."""
    kv_precision: MeasPrecision | None = None
    """KV-cache format; None when not stated."""
    framework: str = ""
    """Serving framework or benchmark harness."""
    scenario: Scenario
    """What kind of measurement this is (MLPerf scenario, fixed-length throughput, kernel, collective)."""
    input_len: float | None = Field(default=None, gt=0, le=1e+09)
    """Mean input tokens (None for MLPerf rows: the dataset table supplies it)."""
    output_len: float | None = Field(default=None, gt=0, le=1e+09)
    """Mean output tokens."""
    batch: int | None = Field(default=None, ge=1, le=100_000_000)
    """Concurrent requests or batch size (for grouped GEMMs: the number of groups)."""
    tp: int | None = Field(default=None, ge=1, le=1_000_000)
    pp: int | None = Field(default=None, ge=1, le=1_000_000)
    ep: int | None = Field(default=None, ge=1, le=1_000_000)
    dp: int | None = Field(default=None, ge=1, le=1_000_000)
    gemm_m: int | None = Field(default=None, ge=1, le=1_000_000_000)
    gemm_n: int | None = Field(default=None, ge=1, le=1_000_000_000)
    gemm_k: int | None = Field(default=None, ge=1, le=1_000_000_000)
    message_bytes: float | None = Field(default=None, gt=0, le=1e+15)
    """Bytes per rank of a collective (nccl-tests size)."""
    metric: Metric | None = None
    """What `value` measures (required for usable rows)."""
    per: Literal["chip", "system"] | None = None
    """Whether `value` is per accelerator or for the whole measured system."""
    value: float | None = Field(default=None, gt=0)
    """The measured number, in the metric's unit (required for usable rows)."""
    slo_ttft_ms: float | None = Field(default=None, gt=0)
    """The scenario's TTFT limit, ms."""
    slo_tpot_ms: float | None = Field(default=None, gt=0)
    """The scenario's TPOT limit, ms."""
    usable: bool = True
    """False where the row cannot be predicted honestly (the reason starts `notes`)."""
    notes: str = ""
    """Original value and unit, where it was read, derivations, caveats."""
    line: int = Field(default=0, ge=0)
    """Line of the row in its CSV file (1 = header), for error messages."""

    @field_validator("hardware", "model", "weight_precision", "activation_precision", "kv_precision", "per",
                     "metric", mode="before")
    @classmethod
    def _empty_is_none(cls, v):
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _check(self) -> "MeasurementRow":
        if self.usable and (self.metric is None or self.value is None):
            raise ValueError("usable row needs a metric and a value")
        if self.usable and self.hardware is None:
            raise ValueError("usable row needs a hardware id")
        if self.usable and self.scenario in END_TO_END_SCENARIOS and self.model is None:
            raise ValueError(f"usable {self.scenario} row needs a model id")
        return self

    @property
    def is_end_to_end(self) -> bool:
        """True for rows describing a whole deployment, False for kernel/collective rows."""
        return self.scenario in END_TO_END_SCENARIOS

    @property
    def is_micro(self) -> bool:
        """True for microbenchmark rows (GEMM, attention, bandwidth, collectives, single operators)."""
        return self.scenario in MICRO_SCENARIOS


_INT_FIELDS = {"num_chips", "batch", "tp", "pp", "ep", "dp", "gemm_m", "gemm_n", "gemm_k"}
_FLOAT_FIELDS = {"input_len", "output_len", "message_bytes", "value", "slo_ttft_ms", "slo_tpot_ms"}


def _cell(name: str, raw: str):
    """One CSV cell converted for pydantic; empty → None; `1.0` accepted for integer columns."""
    raw = (raw or "").strip()
    if name == "usable":
        return raw not in ("0", "false", "False", "no")  # empty counts as usable
    if raw == "":
        return None if name not in ("source", "source_ref", "framework", "notes") else ""
    if name in _INT_FIELDS:
        try:
            f = float(raw)
        except ValueError:
            return raw  # let pydantic name the problem
        return int(f) if f.is_integer() else raw
    if name in _FLOAT_FIELDS:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def parse_measurements(text: str, origin: str = "<input>") -> list[MeasurementRow]:
    """Rows of a measurement CSV. Raises SpecError naming the line and field of the first bad row,
    a missing required column, or a duplicated id."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise SpecError(f"{origin}: missing column(s) {', '.join(missing)} (header line 1)")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise SpecError(f"{origin} line 1: unknown column(s) {', '.join(unknown)}; expected the columns of "
                        f"the measurement schema ({', '.join(COLUMNS)})")
    rows: list[MeasurementRow] = []
    seen: dict[str, int] = {}
    for rec in reader:
        line = reader.line_num
        data = {k: _cell(k, v) for k, v in rec.items() if k is not None}
        data["line"] = line
        try:
            row = MeasurementRow.model_validate(data)
        except ValidationError as exc:
            rid = rec.get("id") or "?"
            raise SpecError(f"{origin} line {line} (id {rid}): {format_validation_error(exc)}") from None
        if row.id in seen:
            raise SpecError(f"{origin} line {line}: duplicate id {row.id} (first on line {seen[row.id]})")
        seen[row.id] = line
        rows.append(row)
    return rows


def load_measurements(path: str | Path) -> list[MeasurementRow]:
    """Read and validate a measurement CSV file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_measurements(text, origin=str(path))
