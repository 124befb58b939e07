"""Shipped measurement data: the public CSV and the MLPerf dataset-length table."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from tokenfab.specs import SpecError
from tokenfab.specs.measurement import MeasurementRow


def measurements_dir() -> Path:
    """Folder of the shipped measurement files."""
    return Path(str(resources.files("tokenfab.catalog").joinpath("measurements")))


def shipped_csvs() -> list[Path]:
    """What `tokenfab validate` scores by default: the public measurement set, the modern
    deployments set (disaggregated pools, wide EP, MTP: `deployments.csv`) and the image/video
    generation and recommendation set (`generation.csv`), published training runs
    (`training.csv`, scenario `training`: `validate.training`; MLPerf Training time-to-train results,
    `mlperf_training.csv`) and VLM serving runs (`vlm.csv`:
    image requests, `images=N image=WxH` in the notes, their tokens counted by the model's rules)."""
    return [public_csv(), measurements_dir() / "deployments.csv"] + [
        p for p in (measurements_dir() / "generation.csv", measurements_dir() / "training.csv",
                    measurements_dir() / "mlperf_training.csv", measurements_dir() / "vlm.csv") if p.exists()]


def public_csv() -> Path:
    """The shipped, checked public measurement set."""
    return measurements_dir() / "public.csv"


@lru_cache(maxsize=1)
def mlperf_benchmarks() -> dict:
    """`benchmarks` of catalog/measurements/mlperf_datasets.yaml, keyed by MLPerf benchmark name."""
    path = measurements_dir() / "mlperf_datasets.yaml"
    return yaml.safe_load(path.read_text())["benchmarks"]


def mlperf_benchmark_for(model: str | None) -> tuple[str, dict] | tuple[None, None]:
    """(benchmark name, entry) of the MLPerf benchmark that uses `model`, or (None, None)."""
    for name, entry in mlperf_benchmarks().items():
        if model in entry.get("models", []):
            return name, entry
    return None, None


def is_mlperf(row: MeasurementRow) -> bool:
    """True for MLPerf Inference results (their lengths and latency limits come from the
    benchmark): the source names MLPerf or MLCommons, or the scenario is MLPerf's `interactive`.
    A `server` or `offline` row from another benchmark is not one (it must not get MLPerf's
    dataset lengths and limits)."""
    src = f"{row.source} {row.source_ref}".lower()
    return "mlperf" in src or "mlcommons" in src or row.scenario == "interactive"


@dataclass(frozen=True)
class Unreadable:
    """A row of a measurement file that does not parse: what is known of it and why."""

    id: str
    line: int
    reason: str
    cells: dict


def read_measurements(path: str | Path, strict: bool = False) -> tuple[list[MeasurementRow], list[Unreadable]]:
    """Rows of a measurement CSV and the rows that could not be read (each with its reason).

    A file whose header is wrong, or that cannot be read, raises SpecError. `strict`: the first
    unreadable row raises SpecError (line and id) instead of being set aside."""
    from tokenfab.specs.measurement import parse_measurements

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    try:
        return parse_measurements(text, origin=str(path)), []
    except SpecError:
        if strict:
            raise
    # Row by row: a row's problem is reported on its own, the others are kept.
    header = text.splitlines()[0] + "\n" if text.strip() else ""
    parse_measurements(header, origin=str(path))  # header problems fail the whole file
    rows: list[MeasurementRow] = []
    bad: list[Unreadable] = []
    seen: set[str] = set()
    reader = csv.DictReader(io.StringIO(text))
    for rec in reader:
        line = reader.line_num
        cells = {k: (v or "") for k, v in rec.items() if k is not None}
        rid = cells.get("id") or f"line {line}"
        one = header + _csv_line(reader.fieldnames, cells)
        try:
            row = parse_measurements(one, origin=str(path))[0]
        except SpecError as exc:
            reason = str(exc).split(": ", 1)[-1]
            bad.append(Unreadable(rid, line, f"unreadable row (line {line}): {reason}", cells))
            continue
        if row.id in seen:
            bad.append(Unreadable(rid, line, f"unreadable row (line {line}): duplicate id {row.id}", cells))
            continue
        seen.add(row.id)
        rows.append(row.model_copy(update={"line": line}))
    return rows, bad


def _csv_line(fields, cells: dict) -> str:
    buf = io.StringIO()
    csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore").writerow(cells)
    return buf.getvalue()


@dataclass(frozen=True)
class Lengths:
    """Mean input/output tokens of a row and where each came from."""

    input_len: float | None
    output_len: float | None
    input_source: str
    output_source: str
    beams: int = 1


def lengths_for(row: MeasurementRow) -> Lengths:
    """The row's own lengths; for MLPerf rows without them, the benchmark's dataset statistics."""
    beams = 1
    isl, osl = row.input_len, row.output_len
    isrc = "row" if isl else ""
    osrc = "row" if osl else ""
    if is_mlperf(row):
        name, entry = mlperf_benchmark_for(row.model)
        if entry:
            beams = int(entry.get("beams", 1))
            if isl is None and entry.get("input_tokens_mean"):
                isl, isrc = float(entry["input_tokens_mean"]), f"mlperf_datasets.yaml:{name}"
            if osl is None and entry.get("output_tokens_ref"):
                osl, osrc = float(entry["output_tokens_ref"]), f"mlperf_datasets.yaml:{name} (reference)"
    return Lengths(isl, osl, isrc, osrc, beams)


_TARGET_QPS = re.compile(r"target_qps\s*=\s*([0-9]+(?:\.[0-9]+)?)")


def target_qps(row: MeasurementRow) -> float | None:
    """The offered load (MLPerf server `target_qps`, samples/s) stated in the row's notes."""
    m = _TARGET_QPS.search(row.notes)
    return float(m.group(1)) if m else None
