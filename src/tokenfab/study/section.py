"""A study section and what it may use while it runs (the unit `study.run` caches and resumes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tokenfab.study.cache import stable_hash


@dataclass(frozen=True)
class Section:
    """One unit of work whose result is cached on its own."""

    key: str
    kind: str
    title: str
    inputs: dict
    compute: Callable[[], dict]
    persist: Callable[[dict], bool] = lambda result: True
    """Whether a result is kept for later runs (an unavailable simulator is retried next run)."""
    takes_context: bool = False
    """`compute` is called with a `RunContext` (results folder, progress notes) instead of no arguments."""

    @property
    def hash(self) -> str:
        return stable_hash({"section": self.kind, **self.inputs})


@dataclass(frozen=True)
class RunContext:
    """What a long section may use while it runs: its own folder for resumable state, a status line."""

    work_dir: Path
    """Folder of this section's own state inside the results folder (created on demand)."""
    input_hash: str
    """Hash of the section's inputs (names state that belongs to exactly these inputs)."""
    status: Callable[[str], None] = lambda note: None
    """Shows a short progress note (e.g. `trial 8/24`) next to the section's title."""
