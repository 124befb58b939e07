"""Workloads for the serving simulator: synthetic arrivals and lengths, built-in profiles, traces.

Arrival-interval generators and length generators are kept apart (as in Vidur): a
`TrafficProfile` names one of each plus SLOs, and `generate` draws a seeded `Workload` (arrays of
arrival times and token counts). `read_trace` replays a measured workload from CSV or JSONL.

Arrivals are drawn at unit rate and divided by the rate, so workloads at different rates with the
same seed share their random numbers (common random numbers): capacity searches then see a
workload that changes smoothly with the rate.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from tokenfab.specs.base import Spec, SpecError

TRACE_FIELDS = ("arrival_s", "input_tokens", "output_tokens")
OPTIONAL_TRACE_FIELDS = ("prefix_group", "prefix_tokens")


# ---------------------------------------------------------------------------------------------
# Specs of arrivals and lengths
# ---------------------------------------------------------------------------------------------

class ArrivalSpec(Spec):
    """How requests arrive: Poisson, gamma-distributed gaps with a burstiness CV, or a fixed pace."""

    process: Literal["poisson", "gamma", "constant"] = "poisson"
    """Inter-arrival law: exponential (`poisson`), gamma with coefficient of variation `cv`, or fixed."""
    cv: float = Field(default=1.0, gt=0)
    """Coefficient of variation of the gaps for `gamma` (1 = Poisson; > 1 bursty; < 1 smoother)."""
    source: str = ""
    """Where the choice of process comes from."""


class LengthSpec(Spec):
    """A distribution of token counts (prompt or output), clipped to [min, max] and rounded."""

    kind: Literal["fixed", "uniform", "lognormal", "empirical"]
    """`fixed` (value), `uniform` (low..high), `lognormal` (median, sigma) or `empirical` (values/bins + weights)."""
    value: int | None = Field(default=None, gt=0)
    """Length of every request for `fixed`, tokens."""
    low: int | None = Field(default=None, gt=0)
    """Smallest length for `uniform`, tokens."""
    high: int | None = Field(default=None, gt=0)
    """Largest length for `uniform`, tokens (inclusive)."""
    median: float | None = Field(default=None, gt=0)
    """Median of a `lognormal`, tokens (exp of the log-mean)."""
    sigma: float | None = Field(default=None, gt=0)
    """Standard deviation of ln(length) for `lognormal`."""
    values: list[float] | None = None
    """`empirical`: the lengths (discrete), or with `bins` omitted, the support points."""
    bins: list[float] | None = None
    """`empirical` histogram: bin edges (len(weights) + 1); lengths are uniform within a bin."""
    weights: list[float] | None = None
    """`empirical`: relative frequency of each value or bin."""
    min: int = Field(default=1, gt=0)
    """Lengths below are raised to this, tokens."""
    max: int = Field(default=131072, gt=0)
    """Lengths above are cut to this, tokens."""
    source: str = ""
    """Where these statistics come from."""

    @model_validator(mode="after")
    def _check(self) -> "LengthSpec":
        need = {"fixed": ("value",), "uniform": ("low", "high"), "lognormal": ("median", "sigma"),
                "empirical": ("weights",)}[self.kind]
        missing = [n for n in need if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.kind} lengths need {', '.join(missing)}")
        if self.kind == "uniform" and self.low > self.high:
            raise ValueError("uniform lengths need low <= high")
        if self.kind == "empirical":
            w = self.weights
            if self.bins is not None:
                if len(self.bins) != len(w) + 1 or any(b1 <= b0 for b0, b1 in zip(self.bins, self.bins[1:])):
                    raise ValueError("empirical bins must be increasing edges, one more than weights")
            elif self.values is None or len(self.values) != len(w):
                raise ValueError("empirical lengths need values (or bins) matching weights")
            if any(x < 0 for x in w) or sum(w) <= 0:
                raise ValueError("empirical weights must be >= 0 and not all zero")
        if self.min > self.max:
            raise ValueError("min must be <= max")
        return self

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n integer lengths, clipped to [min, max]."""
        if self.kind == "fixed":
            x = np.full(n, float(self.value))
        elif self.kind == "uniform":
            x = rng.integers(self.low, self.high + 1, size=n).astype(float)
        elif self.kind == "lognormal":
            x = np.exp(math.log(self.median) + self.sigma * rng.standard_normal(n))
        else:
            p = np.asarray(self.weights, float)
            p = p / p.sum()
            idx = rng.choice(len(p), size=n, p=p)
            if self.bins is not None:
                edges = np.asarray(self.bins, float)
                x = edges[idx] + rng.random(n) * (edges[idx + 1] - edges[idx])
            else:
                x = np.asarray(self.values, float)[idx]
        return np.clip(np.rint(x), self.min, self.max).astype(np.int64)

    def mean(self) -> float:
        """Mean length after clipping, tokens (exact for fixed/uniform, sampled otherwise)."""
        if self.kind == "fixed":
            return float(min(max(self.value, self.min), self.max))
        return float(self.sample(np.random.default_rng(12345), 200_000).mean())


class PrefixSpec(Spec):
    """Shared prompt prefixes (system prompts, RAG instructions) a prefix cache can reuse."""

    groups: int = Field(default=0, ge=0)
    """Number of distinct shared prefixes; 0 = none. Each request draws one uniformly."""
    tokens: int = Field(default=0, ge=0)
    """Length of each shared prefix, tokens (capped below each request's prompt)."""
    share: float = Field(default=1.0, ge=0, le=1)
    """Fraction of requests that carry a shared prefix."""
    source: str = ""


class TrafficProfile(Spec):
    """A named workload: arrivals, prompt and output lengths, shared prefixes and SLOs."""

    name: str
    description: str = ""
    arrival: ArrivalSpec = ArrivalSpec()
    input: LengthSpec
    output: LengthSpec
    prefix: PrefixSpec = PrefixSpec()
    slo_ttft_ms: float | None = Field(default=None, gt=0)
    """Time-to-first-token target, ms."""
    slo_tpot_ms: float | None = Field(default=None, gt=0)
    """Time-per-output-token target, ms."""
    slo_source: str = ""
    """Where the SLO values come from."""
    notes: str = ""

    def mean_lengths(self) -> tuple[float, float]:
        """(mean prompt, mean output) tokens."""
        return self.input.mean(), self.output.mean()


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """Requests to serve, sorted by arrival: arrays of equal length (seconds and tokens).

    `prefix_group` is -1 for requests without a shared prefix; `prefix_tokens` is the length of
    the shared prefix a cache hit skips.
    """

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    prefix_group: np.ndarray
    prefix_tokens: np.ndarray
    name: str = "workload"

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def rate(self) -> float:
        """Mean arrival rate, requests/s (n-1 gaps over the span)."""
        n = len(self)
        span = float(self.arrival_s[-1] - self.arrival_s[0]) if n > 1 else 0.0
        return (n - 1) / span if span > 0 else float("inf")

    def at_rate(self, rate: float) -> "Workload":
        """The same requests with arrival times rescaled to mean rate `rate` (burstiness kept)."""
        if rate <= 0:
            raise SpecError(f"rate must be > 0 requests/s, got {rate}")
        current = self.rate
        if not math.isfinite(current):
            return self
        t0 = self.arrival_s[0]
        return replace(self, arrival_s=(self.arrival_s - t0) * (current / rate))

    def head(self, n: int) -> "Workload":
        """The first n requests."""
        return Workload(self.arrival_s[:n], self.input_tokens[:n], self.output_tokens[:n],
                        self.prefix_group[:n], self.prefix_tokens[:n], self.name)

    def mean_lengths(self) -> tuple[float, float]:
        return float(self.input_tokens.mean()), float(self.output_tokens.mean())


def unit_gaps(arrival: ArrivalSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """n inter-arrival gaps with mean 1 (divide by the rate for seconds)."""
    if arrival.process == "poisson":
        return rng.exponential(1.0, n)
    if arrival.process == "gamma":
        shape = 1.0 / arrival.cv ** 2
        return rng.gamma(shape, 1.0 / shape, n)
    return np.ones(n)


def generate(profile: TrafficProfile, rate: float, n: int, seed: int = 0) -> Workload:
    """n requests of `profile` arriving at `rate` requests/s, reproducible from `seed`.

    The first request arrives at t = 0 (constant pace) or after one gap (random processes).
    """
    if rate <= 0:
        raise SpecError(f"rate must be > 0 requests/s, got {rate}")
    if n <= 0:
        raise SpecError(f"number of requests must be > 0, got {n}")
    rng = np.random.default_rng(seed)
    # Independent streams per quantity, so changing one law leaves the others' draws unchanged.
    r_arr, r_in, r_out, r_pre = (np.random.default_rng(s) for s in rng.integers(0, 2**63, 4))
    gaps = unit_gaps(profile.arrival, r_arr, n)
    if profile.arrival.process == "constant":
        gaps[0] = 0.0
    arrival = np.cumsum(gaps) / rate
    inp = profile.input.sample(r_in, n)
    out = profile.output.sample(r_out, n)
    group = np.full(n, -1, dtype=np.int64)
    ptok = np.zeros(n, dtype=np.int64)
    p = profile.prefix
    if p.groups > 0 and p.tokens > 0:
        has = r_pre.random(n) < p.share
        group = np.where(has, r_pre.integers(0, p.groups, n), -1)
        ptok = np.where(has, np.minimum(p.tokens, inp - 1), 0)
    return Workload(arrival, inp, out, group, ptok, name=profile.name)


# ---------------------------------------------------------------------------------------------
# Built-in profiles
# ---------------------------------------------------------------------------------------------

def _profile_dir() -> Path:
    return Path(str(resources.files("tokenfab.catalog").joinpath("traffic")))


def profile_ids() -> list[str]:
    """Names of the shipped traffic profiles."""
    return sorted(p.stem for p in _profile_dir().glob("*.yaml"))


def load_profile(name: str) -> TrafficProfile:
    """A shipped profile by name, or a profile YAML by path."""
    path = Path(name)
    if not (name.endswith((".yaml", ".yml")) or path.is_file()):
        path = _profile_dir() / f"{name}.yaml"
        if not path.exists():
            raise SpecError(f"unknown traffic profile {name!r}; built-in: {', '.join(profile_ids())} "
                            "(or give a trace .csv/.jsonl or a profile .yaml)")
    return TrafficProfile.from_yaml(path)


def is_trace_path(name: str) -> bool:
    """True when `name` names a trace file (CSV or JSONL) rather than a profile."""
    return name.lower().endswith((".csv", ".jsonl", ".ndjson"))


# ---------------------------------------------------------------------------------------------
# Trace replay
# ---------------------------------------------------------------------------------------------

def read_trace(path: str | Path) -> Workload:
    """A workload from a CSV (header row) or JSONL file with columns `arrival_s`, `input_tokens`,
    `output_tokens` and optionally `prefix_group` (any label) and `prefix_tokens`.

    Rows are sorted by arrival. A group without `prefix_tokens` shares the shortest prompt of the
    group less one token. Any malformed row raises `SpecError` naming the file, line and problem.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read trace ({exc.strerror})") from None
    if path.suffix.lower() == ".csv":
        rows = _csv_rows(path, text)
    else:
        rows = _jsonl_rows(path, text)
    if not rows:
        raise SpecError(f"{path}: trace has no requests")
    return _to_workload(path, rows)


def _csv_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    lines = text.splitlines()
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise SpecError(f"{path}: empty trace") from None
    missing = [f for f in TRACE_FIELDS if f not in header]
    if missing:
        raise SpecError(f"{path}:1: header lacks column(s) {', '.join(missing)} "
                        f"(need {', '.join(TRACE_FIELDS)}; optional {', '.join(OPTIONAL_TRACE_FIELDS)})")
    rows = []
    for lineno, cells in enumerate(reader, start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise SpecError(f"{path}:{lineno}: expected {len(header)} fields, found {len(cells)}")
        rows.append((lineno, {h: c.strip() for h, c in zip(header, cells)}))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, dict]]:
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise SpecError(f"{path}:{lineno}: expected a JSON object per line")
        rows.append((lineno, obj))
    return rows


def _number(path: Path, lineno: int, row: dict, field: str, integer: bool, minimum: float) -> float:
    if field not in row or row[field] in ("", None):
        raise SpecError(f"{path}:{lineno}: missing {field}")
    raw = row[field]
    if isinstance(raw, bool):  # JSON true/false: float() would read them as 1 and 0
        raise SpecError(f"{path}:{lineno}: {field} {json.dumps(raw)} is not a number")
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise SpecError(f"{path}:{lineno}: {field} {raw!r} is not a number") from None
    if not math.isfinite(v):
        raise SpecError(f"{path}:{lineno}: {field} must be finite, got {raw!r}")
    if integer and v != int(v):
        raise SpecError(f"{path}:{lineno}: {field} must be a whole number of tokens, got {raw!r}")
    if v < minimum:
        raise SpecError(f"{path}:{lineno}: {field} must be >= {minimum:g}, got {raw!r}")
    return v


def _to_workload(path: Path, rows: list[tuple[int, dict]]) -> Workload:
    n = len(rows)
    arr = np.empty(n)
    inp = np.empty(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    ptok = np.full(n, -1, dtype=np.int64)
    labels: list[str | None] = []
    for i, (lineno, row) in enumerate(rows):
        arr[i] = _number(path, lineno, row, "arrival_s", False, 0.0)
        inp[i] = int(_number(path, lineno, row, "input_tokens", True, 1))
        out[i] = int(_number(path, lineno, row, "output_tokens", True, 1))
        g = row.get("prefix_group")
        labels.append(None if g in (None, "") else str(g))
        if row.get("prefix_tokens") not in (None, ""):
            ptok[i] = int(_number(path, lineno, row, "prefix_tokens", True, 0))
            if ptok[i] >= inp[i]:
                raise SpecError(f"{path}:{lineno}: prefix_tokens ({ptok[i]}) must be below input_tokens ({inp[i]})")
    ids: dict[str, int] = {}
    group = np.array([-1 if g is None else ids.setdefault(g, len(ids)) for g in labels], dtype=np.int64)
    # Groups without explicit prefix lengths share their shortest prompt less one token.
    for gid in range(len(ids)):
        sel = group == gid
        unknown = sel & (ptok < 0)
        if unknown.any():
            ptok[unknown] = max(int(inp[sel].min()) - 1, 0)
    ptok = np.where(group < 0, 0, np.maximum(ptok, 0))
    order = np.argsort(arr, kind="stable")
    return Workload(arr[order] - 0.0, inp[order], out[order], group[order], ptok[order], name=path.name)


def workload_for(traffic: str, rate: float | None, n: int | None, seed: int) -> Workload:
    """A profile name/YAML drawn at `rate`, or a trace file (rescaled to `rate` when given,
    cut to the first `n` requests when given)."""
    if is_trace_path(traffic):
        wl = read_trace(traffic)
        if n:
            wl = wl.head(n)
        return wl.at_rate(rate) if rate else wl
    if not rate:
        raise SpecError(f"--rate is required with a traffic profile ({traffic})")
    return generate(load_profile(traffic), rate, n or 2000, seed)
