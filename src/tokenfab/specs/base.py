"""Base class for specs and the one error type users see for bad spec input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class SpecError(ValueError):
    """Bad user input for a spec: one line that names the field path and what was expected."""


class Spec(BaseModel):
    """Frozen pydantic model that rejects unknown fields and non-finite numbers (inf, nan: no spec
    field means "unbounded" by infinity); every field carries a docstring."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    @classmethod
    def from_mapping(cls, data: Any, origin: str = "<input>"):
        """Validate a mapping; convert pydantic errors to a one-line `SpecError`."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SpecError(f"{origin}: {format_validation_error(exc)}") from None

    @classmethod
    def from_yaml(cls, path: str | Path):
        """Load and validate a YAML file."""
        path = Path(path)
        data = load_yaml(path)
        return cls.from_mapping(data, origin=str(path))


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (~10x faster on the calibration files)."""


def load_yaml(path: Path) -> Any:
    """Read YAML, turning I/O and syntax errors into `SpecError`."""
    if not str(path).strip() or str(path) == ".":
        raise SpecError("an empty name where a file or id goes")
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a text (YAML) file") from None
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader (libyaml's when built)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from None


def format_validation_error(exc: ValidationError) -> str:
    """One line: `field.path: message; other.path: message` (first three errors)."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field missing"
        parts.append(f"{loc}: {msg}")
    more = len(exc.errors()) - 3
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)
