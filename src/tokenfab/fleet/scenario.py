"""A fleet scenario: periods, demand per workload, candidate chips, supply, budget, power, money.

A scenario file (YAML) or a shipped id (`catalog/fleet/<id>.yaml`) validates into `FleetScenario`.
Money in the file is in the scenario's `currency` (USD or CNY, converted with `cny_per_usd`);
the planner works in USD internally and shows the scenario's currency. Every figure in a shipped
scenario carries its source in `sources` (field path → where it came from).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tokenfab.specs.base import Spec, SpecError, load_yaml

_PERIOD = re.compile(r"^(\d{4})(?:Q([1-4]))?$")


def period_year(label: str) -> float:
    """Start of a period label as a fractional year: `2027Q3` → 2027.5, `2027` → 2027.0."""
    m = _PERIOD.match(str(label))
    if not m:
        raise SpecError(f"period {label!r} is not YYYY or YYYYQn")
    return int(m.group(1)) + (int(m.group(2)) - 1) / 4.0 if m.group(2) else float(m.group(1))


class Workload(Spec):
    """One model serving one traffic pattern, or training, with its demand over time."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    """Short name of the workload."""
    model: str
    """Model id or config.json path (capacity per chip comes from tokenfab's estimate)."""
    kind: Literal["serving", "training"] = "serving"
    """`serving`: requests (prefill + decode) at `tokens_per_day`; `training`: pretraining the model
    on `training_tokens_per_year`, each chip training at the rate `tokenfab.train.estimate_training`
    finds for a run on `chips_per_run` chips."""
    input_len: int = Field(default=2048, gt=0)
    """Mean prompt length, tokens."""
    output_len: int = Field(default=512, gt=0)
    """Mean generated length, tokens."""
    slo_ttft_ms: float | None = Field(default=2000.0, gt=0)
    """Time-to-first-token limit, ms (None: none)."""
    slo_tpot_ms: float | None = Field(default=50.0, gt=0)
    """Time-per-output-token limit, ms (None: none)."""
    prefix_cache_hit: float = Field(default=0.0, ge=0, lt=1)
    """Fraction of prompt tokens served from the prefix cache."""
    tokens_per_day: float | None = Field(default=None, gt=0)
    """Serving: average tokens a day (prompt + generated) in the first period (required)."""
    growth_per_year: float = Field(default=0.0, ge=-0.9, le=20)
    """Demand growth per year, fraction (1.0 doubles it every year), compounded per period."""
    peak_to_average: float = Field(default=1.0, ge=1, le=10)
    """Provisioned peak over the daily average: the fleet is sized for the peak (training runs
    steadily: leave it at 1)."""
    min_served_frac: float = Field(default=0.0, ge=0, le=1)
    """Least fraction of this workload's demand a `max_tokens` plan must serve in every period (1: a
    commitment, e.g. a fixed pretraining plan, served before any other token); `min_cost` serves all."""
    training_tokens_per_year: float | None = Field(default=None, gt=0, le=1e17)
    """Training: tokens trained a year in the first period (required); a period of Δ years trains
    Δ × this, spread evenly over the period."""
    chips_per_run: int = Field(default=1024, ge=1, le=1_000_000)
    """Training: chips of one run; a chip's training rate is its share of such a run's tokens/s
    (after failures and checkpoints)."""
    precision: Literal["bf16", "fp8"] = "bf16"
    """Training: GEMM format; a chip without FP8 math trains at bf16."""
    seq_len: int = Field(default=4096, gt=0, le=1_000_000)
    """Training: tokens per training sequence."""

    @model_validator(mode="after")
    def _check_kind(self) -> "Workload":
        if self.kind == "serving" and self.tokens_per_day is None:
            raise ValueError(f"workload {self.id}: a serving workload needs tokens_per_day")
        if self.kind == "training" and self.training_tokens_per_year is None:
            raise ValueError(f"workload {self.id}: a training workload needs training_tokens_per_year")
        return self


class FleetChip(Spec):
    """A chip the planner may buy."""

    chip: str
    """Catalog chip id, design id, or a chip YAML path (relative to the scenario file)."""
    label: str | None = None
    """Name in the plan (default: the chip id); lets one chip appear twice (two prices, two sources)."""
    vendor: str | None = None
    """Supplier for supply caps (default: the chip's vendor)."""
    available_from: str
    """First period it can be bought (YYYY or YYYYQn)."""
    available_until: str | None = None
    """Last period it can be bought (None: to the end)."""
    price: float | None = Field(default=None, gt=0)
    """Unit price in the first period it is available, in the scenario's currency (None: the chip's
    catalog `price_usd`, converted)."""
    price_decline_per_year: float | None = Field(default=None, ge=0, lt=1)
    """Price decline per year after it becomes available (None: the scenario's)."""
    max_units_per_period: float | None = Field(default=None, ge=0)
    """Most units buyable in one period (None: no chip-level cap)."""
    maturity_periods: int = Field(default=0, ge=0, le=40)
    """Periods after `available_from` until it serves at full speed (a new chip's software ramp,
    `perf.efficiency.MaturityRamp`): throughput rises linearly from `maturity_start_frac` to 1 over
    them (throughput taken as proportional to the stack's `software_maturity`)."""
    maturity_start_frac: float = Field(default=1.0, gt=0, le=1)
    """Throughput in its first period as a fraction of full speed."""
    memory: str | None = None
    """Memory technology its stacks are (an id of the cost data's memory table, e.g. `cxmt-hbm2e`):
    ties its purchases to that memory's `memory_supply` and to the memory's first year of volume
    supply (`MemoryTech.available_from_year`). None: not supply-limited by memory."""
    memory_stacks: int = Field(default=0, ge=0, le=64)
    """Memory stacks one unit carries (counted against `memory_supply`)."""
    packaging: str | None = None
    """Packaging technology it is assembled with (an id of the cost data's packaging table, e.g.
    `domestic-2.5d`): ties its purchases to that packaging's `packaging_supply` and first volume year.
    None: not supply-limited by packaging."""
    prefill_tok_s_per_chip: dict[str, float] | None = None
    """Workload id → prompt tok/s one chip prefills (replaces the estimate; for tests and what-ifs);
    for a training workload, the tokens/s one chip trains."""
    decode_tok_s_per_chip: dict[str, float] | None = None
    """Workload id → generated tok/s one chip decodes (replaces the estimate)."""

    @property
    def name(self) -> str:
        """Label in the plan."""
        return self.label or Path(self.chip).stem


class SupplyCap(Spec):
    """Most units of one vendor's chips buyable in a period."""

    vendor: str
    """Vendor name as in the chips (case-insensitive)."""
    units_per_period: float = Field(ge=0)
    """Cap in every period not listed in `by_period`."""
    by_period: dict[str, float] = Field(default_factory=dict)
    """Period label (YYYY: every quarter of that year) → cap in that period."""


class MemorySupply(Spec):
    """Most stacks of one memory technology the buyer gets in a period (domestic HBM for chips that
    cannot import it): every unit bought of a chip made with it uses its `memory_stacks`."""

    memory: str
    """Memory id, as in the chips' `memory` (`cxmt-hbm2e`)."""
    stacks_per_period: float = Field(ge=0)
    """Cap in every period not listed in `by_period`, stacks."""
    by_period: dict[str, float] = Field(default_factory=dict)
    """Period label (YYYY: every quarter of that year) → cap in that period, stacks."""


class PackagingSupply(Spec):
    """Most packages of one packaging technology the buyer gets in a period (domestic 2.5D
    interposers for chips that cannot use CoWoS): every unit of a chip assembled with it takes one."""

    packaging: str
    """Packaging id, as in the chips' `packaging` (`domestic-2.5d`)."""
    units_per_period: float = Field(ge=0)
    """Cap in every period not listed in `by_period`, packages."""
    by_period: dict[str, float] = Field(default_factory=dict)
    """Period label (YYYY: every quarter of that year) → cap in that period, packages."""


US_ORIGIN_VENDORS = ("NVIDIA", "AMD", "Intel", "Google", "AWS", "Qualcomm", "Groq", "Cerebras", "Tenstorrent")
"""Vendors whose accelerators are US exports (a chip's first vendor word is matched)."""


class ExportPolicy(Spec):
    """Export controls on the buyer's side: which chips it may buy (`cost.export_control` screens
    each against ECCN 3A090 from its datasheet)."""

    destination: str
    """Where the fleet is installed, as a word for the plan (`china`): a destination under the US
    advanced-computing rules (Country Group D:5 and Macau)."""
    controlled: Literal["exclude", "cap"] = "exclude"
    """What happens to a US-origin chip the screen classifies 3A090.a or .b: `exclude` (no license),
    or `cap` (licensed up to `licensed_units_per_period` units of all such chips together)."""
    licensed_units_per_period: float = Field(default=0.0, ge=0)
    """With `cap`: licensed units of controlled chips per period, all of them together."""
    us_origin_vendors: tuple[str, ...] = US_ORIGIN_VENDORS
    """Vendors whose chips the rules reach (domestic chips are not US exports, whatever their TPP)."""


class InitialFleet(Spec):
    """Chips already installed at the start."""

    chip: str
    """Label of a chip in `chips`."""
    units: float = Field(ge=0)
    """Installed units."""
    age_years: float = Field(default=0.0, ge=0)
    """Age at the start: it retires when it reaches `depreciation_years`."""


class FleetScenario(Spec):
    """Everything a multi-period fleet plan needs."""

    id: str = ""
    """Scenario name."""
    description: str = ""
    """What the scenario represents."""
    start: str
    """First period (YYYY or YYYYQn)."""
    periods: int = Field(gt=0, le=200)
    """Number of periods."""
    period: Literal["quarter", "year"] = "quarter"
    """Length of a period."""
    objective: Literal["min_cost", "max_tokens"] = "min_cost"
    """`min_cost`: meet every period's peak demand at the least discounted cost; `max_tokens`: serve
    as many tokens as budget, power and supply allow (discounted), never more than the demand."""
    integer_units: bool = False
    """Buy whole chips (a MILP); False solves the LP (fleets of thousands round harmlessly)."""
    currency: Literal["USD", "CNY"] = "USD"
    """Currency of the money in this file and of the plan shown."""
    cny_per_usd: float = Field(default=7.27, gt=0)
    """Exchange rate, yuan per dollar."""
    economics_preset: str = "us"
    """Operating preset (`catalog/economics.yaml`) for electricity, hosting, operations, system share."""
    pue: float | None = Field(default=None, ge=1, le=3)
    """Facility power over IT power (None: the preset's)."""
    power_cap_mw: float | None = Field(default=None, gt=0)
    """Facility power available (IT × PUE), MW, every period not in `power_cap_mw_by_period`."""
    power_cap_mw_by_period: dict[str, float] = Field(default_factory=dict)
    """Period label (YYYY: its quarters) → power cap, MW."""
    budget_per_period: float | None = Field(default=None, gt=0)
    """Capital spending on chips and their systems allowed per period, scenario currency (None: none)."""
    budget_by_period: dict[str, float] = Field(default_factory=dict)
    """Period label (YYYY: spread evenly over its quarters) → capital budget, scenario currency."""
    depreciation_years: float = Field(default=5.0, gt=0, le=15)
    """Life of a chip: it retires after this; at the horizon a chip is worth its straight-line book value."""
    discount_rate: float = Field(default=0.09, ge=0, le=1)
    """Annual discount rate for the present value."""
    price_decline_per_year: float = Field(default=0.0, ge=0, lt=1)
    """Default yearly price decline of a chip after it becomes available."""
    include_system: bool = True
    """Add each chip's system share (host, power, cooling, network; `cost.system`) to its unit capex."""
    workloads: list[Workload] = Field(min_length=1)
    """What the fleet serves."""
    chips: list[FleetChip] = Field(min_length=1)
    """What the planner may buy."""
    supply_caps: list[SupplyCap] = Field(default_factory=list)
    """Vendor supply caps per period."""
    memory_supply: list[MemorySupply] = Field(default_factory=list)
    """Memory stacks available per period, by memory technology (chips name theirs in `memory`)."""
    packaging_supply: list[PackagingSupply] = Field(default_factory=list)
    """Packages available per period, by packaging technology (chips name theirs in `packaging`)."""
    export_controls: ExportPolicy | None = None
    """Export controls on the chips the buyer may get (None: none: a US buyer)."""
    initial_fleet: list[InitialFleet] = Field(default_factory=list)
    """Chips installed at the start."""
    sources: dict[str, str] = Field(default_factory=dict)
    """Field path → source of the figure (URL, document, 'issue 17 seeds', 'est.: ...')."""

    @model_validator(mode="after")
    def _check(self) -> "FleetScenario":
        period_year(self.start)
        if self.period == "quarter" and "Q" not in self.start:
            raise ValueError("start must be YYYYQn for quarterly periods")
        names = [c.name for c in self.chips]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"chips: duplicate label {sorted(dup)[0]!r} (give `label`)")
        wids = [w.id for w in self.workloads]
        if len(set(wids)) != len(wids):
            raise ValueError("workloads: duplicate id")
        for c in self.chips:
            period_year(c.available_from)
            if c.available_until:
                period_year(c.available_until)
            for table in (c.prefill_tok_s_per_chip, c.decode_tok_s_per_chip):
                bad = set(table or {}) - set(wids)
                if bad:
                    raise ValueError(f"chips.{c.name}: unknown workload {sorted(bad)[0]!r}")
                if table and any(not v >= 0 for v in table.values()):
                    raise ValueError(f"chips.{c.name}: throughputs must be ≥ 0")
        supplies = [("memory_supply", ms.memory, ms.by_period, "memory with memory_stacks > 0",
                     any(c.memory == ms.memory and c.memory_stacks > 0 for c in self.chips)) for ms in self.memory_supply]
        supplies += [("packaging_supply", ps.packaging, ps.by_period, "packaging",
                      any(c.packaging == ps.packaging for c in self.chips)) for ps in self.packaging_supply]
        for field_name, part, by_period, what, used in supplies:
            if not used:
                raise ValueError(f"{field_name} {part!r}: no chip names that {what}")
            for k, v in by_period.items():
                period_year(k)
                if not v >= 0:
                    raise ValueError(f"{field_name} {part!r}: {k}: must be ≥ 0")
        for f in self.initial_fleet:
            if f.chip not in names:
                raise ValueError(f"initial_fleet: unknown chip label {f.chip!r}")
        for table in (self.power_cap_mw_by_period, self.budget_by_period):
            for k, v in table.items():
                period_year(k)
                if not v > 0:
                    raise ValueError(f"{k}: must be > 0")
        return self

    @property
    def fx(self) -> float:
        """Scenario currency per USD."""
        return self.cny_per_usd if self.currency == "CNY" else 1.0

    @property
    def period_years(self) -> float:
        """Length of one period, years."""
        return 0.25 if self.period == "quarter" else 1.0

    def labels(self) -> list[str]:
        """Period labels, first to last."""
        y0 = period_year(self.start)
        out = []
        for t in range(self.periods):
            y = y0 + t * self.period_years
            year = int(y + 1e-9)
            out.append(f"{year}Q{int(round((y - year) * 4)) + 1}" if self.period == "quarter" else str(year))
        return out


SHIPPED_DIR = Path(__file__).resolve().parents[1] / "catalog" / "fleet"


def shipped_scenarios() -> list[str]:
    """Ids of the shipped scenarios."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def load_scenario(name: str | Path) -> tuple[FleetScenario, Path]:
    """A scenario by shipped id or YAML path → (scenario, folder its relative chip paths resolve from)."""
    path = Path(name)
    if not path.suffix and not path.exists():
        path = SHIPPED_DIR / f"{name}.yaml"
        if not path.exists():
            raise SpecError(f"unknown fleet scenario {str(name)!r}; shipped: {', '.join(shipped_scenarios())}")
    if path.is_dir():
        raise SpecError(f"{path} is a folder; give a scenario YAML file")
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a scenario is a mapping of fields")
    return FleetScenario.from_mapping(data, origin=str(path)), path.parent
