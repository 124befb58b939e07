"""Stable hashes of resolved inputs, and a results folder written one atomic file at a time.

A hash is SHA-256 over canonical JSON (sorted keys, no whitespace, floats as `repr`, non-finite
numbers as strings) of the inputs plus the tokenfab version and a fingerprint of tokenfab's own
code and shipped data (the engine, its calibration tables, the report), so it is the same on
every machine and run with the same tokenfab, and changes when any input that reaches a result
changes — including an edit to the engine between releases, which would otherwise serve stale
cached results.

The folder holds `sections/<key>.json` (one per completed section, each with the hash of its
own inputs), then `results.json`, `results.csv` and `report.html`. Every file is written to a
temporary name and renamed, so a run killed at any moment leaves only whole files behind, and
the next run resumes from the sections already written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import tokenfab
from tokenfab.jsonsafe import json_safe

HASH_CHARS = 16
"""Hex characters kept of the SHA-256 (64 bits)."""


def canonical(obj: Any) -> Any:
    """A JSON-safe, order-stable copy: models dumped, tuples as lists, paths as text, ∞/NaN as text."""
    if hasattr(obj, "model_dump"):
        return canonical(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    if hasattr(obj, "item"):  # numpy scalar
        return canonical(obj.item())
    return obj


_FINGERPRINT_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".csv", ".css")
_FINGERPRINT_SKIP = ("cli", "__pycache__", "studies")  # command-line wiring and example studies change no result


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 (hex, `HASH_CHARS` long) of tokenfab's source and shipped data files, by relative path."""
    root = Path(tokenfab.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix in _FINGERPRINT_SUFFIXES and not set(rel.parts[:-1]) & set(_FINGERPRINT_SKIP) \
                and path.is_file():
            digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:HASH_CHARS]


ENGINE_ENV = ("TOKENFAB_CALIBRATION_DIR", "TOKENFAB_OPERATORS")
"""Environment variables whose files the engine reads (a calibration folder, operator plug-ins)."""


def environment_fingerprint() -> str:
    """SHA-256 (hex, `HASH_CHARS` long) of the files named by `ENGINE_ENV` as they are now: a study
    cached under one calibration folder or operator plug-in is not served under another."""
    digest = hashlib.sha256()
    for var in ENGINE_ENV:
        value = os.environ.get(var, "")
        digest.update(var.encode() + b"=" + value.encode() + b"\0")
        for part in filter(None, value.split(os.pathsep)):
            root = Path(part)
            files = sorted(root.rglob("*")) if root.is_dir() else [root]
            for path in files:
                if path.is_file():
                    digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:HASH_CHARS]


def stable_hash(obj: Any, version: str | None = None) -> str:
    """Hash of `obj`, the tokenfab version, `code_fingerprint()` and `environment_fingerprint()`
    (hex, `HASH_CHARS` long)."""
    payload = {"tokenfab_version": version or tokenfab.__version__, "code": code_fingerprint(),
               "inputs": canonical(obj)}
    env = environment_fingerprint()
    if any(os.environ.get(v) for v in ENGINE_ENV):
        payload["environment"] = env
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, obj: Any) -> None:
    """Standard JSON (∞/NaN as null), indented, written atomically."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=1, allow_nan=False) + "\n")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or unreadable: recomputed, never trusted


def section_filename(key: str) -> str:
    """A file name for a section key (`estimate/deepseek-v3/h100-sxm/chat` → `estimate__deepseek-v3__...json`)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", key.replace("/", "__")) + ".json"


class ResultStore:
    """The results folder of one study: completed sections and the assembled results."""

    def __init__(self, out_dir: Path):
        self.dir = Path(out_dir)
        self.sections_dir = self.dir / "sections"
        self.results_path = self.dir / "results.json"
        self.csv_path = self.dir / "results.csv"
        self.report_path = self.dir / "report.html"

    def load_section(self, key: str, input_hash: str) -> dict | None:
        """A completed section's result when its stored hash matches `input_hash`, else None."""
        doc = _read_json(self.sections_dir / section_filename(key))
        if isinstance(doc, dict) and doc.get("key") == key and doc.get("hash") == input_hash:
            return doc.get("result")
        return None

    def save_section(self, key: str, input_hash: str, result: dict) -> None:
        atomic_write_json(self.sections_dir / section_filename(key),
                          {"key": key, "hash": input_hash, "tokenfab_version": tokenfab.__version__,
                           "result": result})

    def load_results(self, study_hash: str) -> dict | None:
        """The assembled results when they were made from inputs with `study_hash`."""
        doc = _read_json(self.results_path)
        return doc if isinstance(doc, dict) and doc.get("hash") == study_hash else None

    def save_results(self, results: dict) -> None:
        atomic_write_json(self.results_path, results)
