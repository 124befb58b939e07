"""Economics specs: owning and running accelerators, making them (fab), and designing them (NRE).

Every default value lives in `catalog/economics.yaml` with a source; these classes hold the
constraints and the meaning of each number. Each sourced spec carries `sources` (field name →
where the value came from; key `default` covers the rest) and `estimated_fields` (values that
are analyst estimates or our own derivations, not published figures).

Money is USD throughout (`*_usd`); `Economics.currency` only chooses how results are shown.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from tokenfab.specs.base import Spec, SpecError

YieldModel = Literal["poisson", "murphy", "seeds", "negative_binomial"]
YIELD_MODELS: tuple[str, ...] = ("poisson", "murphy", "seeds", "negative_binomial")
ScaleupFabric = Literal["switched", "direct", "none"]
SCALEUP_FABRICS: tuple[str, ...] = ("switched", "direct", "none")


class Sourced(Spec):
    """A spec whose numbers each name their source."""

    sources: dict[str, str] = Field(default_factory=dict)
    """Field name → source (URL, document, derivation); key `default` covers the rest."""
    estimated_fields: list[str] = Field(default_factory=list)
    """Fields whose values are estimates or derivations rather than published figures."""

    @model_validator(mode="after")
    def _check_sources(self):
        # Every number given in data names its source; code defaults are structural (0, 300 mm).
        fields = type(self).model_fields
        if "default" not in self.sources:
            missing = [n for n, f in fields.items()
                       if f.annotation in (float, int, float | None, int | None)
                       and n in self.model_fields_set and getattr(self, n) is not None
                       and n not in self.sources]
            if missing:
                raise ValueError(f"no source for {', '.join(missing)} (add sources.default or per-field)")
        unknown = [f for f in self.estimated_fields if f not in fields]
        if unknown:
            raise ValueError(f"estimated_fields names unknown fields: {', '.join(unknown)}")
        return self

    def source_of(self, field: str) -> str:
        """Where the value of `field` comes from."""
        return self.sources.get(field, self.sources.get("default", ""))

    def is_estimate(self, field: str) -> bool:
        """True when `field` is an estimate or derivation."""
        return field in self.estimated_fields

    def with_overrides(self, changes: dict[str, Any], origin: str = "override"):
        """A validated copy with `changes` applied; their sources become `origin`.

        Raises `SpecError` (one line naming the field) when a value breaks a constraint.
        """
        if not changes:
            return self
        data = self.model_dump(exclude_unset=True)  # code defaults stay defaults, not sourced data
        data.update(changes)
        data["sources"] = {**self.sources, **{k: origin for k in changes}}
        data["estimated_fields"] = [f for f in self.estimated_fields if f not in changes]
        label = getattr(self, "id", None) or type(self).__name__
        return type(self).from_mapping(data, origin=str(label))


class SystemCostSpec(Sourced):
    """What the system around one chip costs: its share of host, power delivery, cooling and networks.

    Priced per chip by `cost.system.system_cost` from the chip's TDP, scale-out and scale-up
    bandwidth and scale-up domain. Money is USD at the price a buyer pays.
    """

    host_usd_per_server: float = Field(ge=0)
    """Host part of one server: CPUs, DRAM, storage, motherboard, chassis, assembly, USD per server."""
    chips_per_host: int = Field(ge=1, le=64)
    """Accelerators sharing one host (8 on an HGX/DGX server)."""
    power_delivery_usd_per_w: float = Field(ge=0)
    """Power supplies, voltage regulators and rack power distribution per watt of chip TDP, USD/W."""
    air_cooling_usd_per_w: float = Field(ge=0)
    """Heat sinks and fans per watt of chip TDP for an air-cooled chip, USD/W."""
    liquid_cooling_usd_per_w: float = Field(ge=0)
    """Cold plates, manifolds and in-rack plumbing per watt of chip TDP for a liquid-cooled chip, USD/W."""
    liquid_cooling_above_w: float = Field(gt=0)
    """Chips with a TDP above this are liquid-cooled, W."""
    nic_usd_per_gb_s: float = Field(ge=0)
    """Network adapters per GB/s of scale-out bandwidth, USD/(GB/s)."""
    scaleout_switch_port_usd_per_gb_s: float = Field(ge=0)
    """One scale-out switch port per GB/s of its bandwidth, USD/(GB/s)."""
    scaleout_switch_ports_per_endpoint: float = Field(ge=0, le=10)
    """Switch ports the fabric uses per chip-side port (3 in a two-tier non-blocking fat tree)."""
    scaleout_optics_usd_per_gb_s: float = Field(ge=0)
    """Transceivers and cables of the scale-out fabric per GB/s of chip bandwidth, USD/(GB/s)."""
    scaleup_switched_usd_per_gb_s: float = Field(ge=0)
    """Switched scale-up fabric (NVSwitch-class chips and their board) per GB/s of chip scale-up
    bandwidth inside one board, USD/(GB/s)."""
    scaleup_direct_usd_per_gb_s: float = Field(ge=0)
    """Switchless scale-up fabric (mesh, torus, bridge: board traces, connectors) per GB/s inside one
    board, USD/(GB/s)."""
    scaleup_board_chips: int = Field(ge=1)
    """Largest scale-up domain that fits on one baseboard (8 on HGX)."""
    scaleup_rack_chips: int = Field(ge=1)
    """Largest scale-up domain wired within one rack over copper (72 in NVL72)."""
    scaleup_rack_factor: float = Field(ge=1)
    """Scale-up cost per GB/s of a rack-wide domain relative to a one-board domain."""
    scaleup_multirack_factor: float = Field(ge=1)
    """Scale-up cost per GB/s of a domain spanning racks relative to a one-board domain."""
    integration_markup_frac: float = Field(ge=0, le=3)
    """Server maker's margin, warranty and integration on the host, power, cooling and NIC parts, fraction."""

    @model_validator(mode="after")
    def _ordered(self) -> "SystemCostSpec":
        # Orderings that keep the cost from falling as a chip needs more power, reach or bandwidth.
        if self.liquid_cooling_usd_per_w < self.air_cooling_usd_per_w:
            raise ValueError("liquid_cooling_usd_per_w must be ≥ air_cooling_usd_per_w")
        if self.scaleup_direct_usd_per_gb_s > self.scaleup_switched_usd_per_gb_s:
            raise ValueError("scaleup_direct_usd_per_gb_s must be ≤ scaleup_switched_usd_per_gb_s")
        if self.scaleup_rack_chips < self.scaleup_board_chips:
            raise ValueError("scaleup_rack_chips must be ≥ scaleup_board_chips")
        if self.scaleup_multirack_factor < self.scaleup_rack_factor:
            raise ValueError("scaleup_multirack_factor must be ≥ scaleup_rack_factor")
        return self


class Economics(Sourced):
    """What one accelerator costs to own and run, per hour of its life."""

    region: str = ""
    """Label of the scenario (e.g. `us`, `china`)."""
    depreciation_years: float = Field(gt=0, le=15)
    """Economic life over which capex is recovered, years."""
    cost_of_capital: float = Field(ge=0, le=1)
    """Annual cost of capital (WACC) used in the capital recovery factor, fraction per year."""
    server_and_network_usd_per_chip: float | None = Field(default=None, ge=0)
    """Flat system share per chip (server, network, cooling), USD; when set it replaces the system
    model for every chip (a user's override; None: priced by `system`)."""
    system: SystemCostSpec | None = None
    """System cost model: each chip's share of host, power, cooling and networks from what it needs."""
    spares_frac: float = Field(ge=0, le=1)
    """Spare hardware bought on top of the fleet, fraction of capex."""
    electricity_usd_per_kwh: float = Field(ge=0)
    """Electricity price, USD/kWh."""
    pue: float = Field(ge=1, le=3)
    """Power usage effectiveness: facility power ÷ IT power."""
    avg_load_frac: float = Field(gt=0, le=1)
    """Average IT power draw as a fraction of its peak (TDP-based) power."""
    server_power_multiplier: float = Field(ge=1, le=5)
    """Server power per chip ÷ chip TDP (adds CPUs, NICs, fans, switches)."""
    hosting_usd_per_kw_month: float = Field(ge=0)
    """Colocation (space, cooling, power delivery) per kW of provisioned IT power, USD/month."""
    ops_usd_per_chip_year: float = Field(ge=0)
    """Operations (staff, maintenance, support contracts) per chip, USD/year."""
    rental_usd_per_chip_hour: float | None = Field(default=None, gt=0, le=1e6)
    """Rental price per chip-hour; when set it replaces the owned cost, USD/h."""
    currency: Literal["USD", "CNY"] = "USD"
    """Currency in which results are shown (inputs stay in USD)."""
    cny_per_usd: float = Field(gt=0)
    """Exchange rate used to show CNY, yuan per dollar."""
    fx_date: str = ""
    """Date (or period) of the exchange rate."""

    @model_validator(mode="after")
    def _system_priced(self) -> "Economics":
        if self.server_and_network_usd_per_chip is None and self.system is None:
            raise ValueError("give server_and_network_usd_per_chip (flat) or a system: cost model")
        return self

    @property
    def fx(self) -> float:
        """Multiplier from USD to the display currency."""
        return self.cny_per_usd if self.currency == "CNY" else 1.0


class ProcessNode(Sourced):
    """A foundry process: what a wafer costs and how clean it is."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    """Node id (e.g. `tsmc-n5`)."""
    name: str = ""
    """Foundry and node name as commonly written."""
    aliases: list[str] = Field(default_factory=list)
    """Other spellings that name this node (`TSMC 4N`, `N4P`, ...), matched case-insensitively."""
    wafer_usd: float = Field(gt=0)
    """Price of one processed 300 mm wafer, USD."""
    defect_density_per_cm2: float = Field(ge=0, le=5)
    """Killer defect density D0, defects/cm²."""
    cluster_alpha: float = Field(gt=0)
    """Defect clustering parameter α of the negative-binomial yield model."""
    mask_set_usd: float = Field(gt=0)
    """One full mask set, USD."""


class MemoryTech(Sourced):
    """A memory technology: price per GB and, for stacked memory, its footprint."""

    id: str
    """Memory id (e.g. `hbm3e`)."""
    name: str = ""
    """Human name."""
    usd_per_gb: float = Field(gt=0)
    """Price per GB of memory, USD/GB."""
    gb_per_stack: float | None = Field(default=None, gt=0)
    """Capacity of one stack, GB (None for memory not made of stacks)."""
    stack_footprint_mm2: float = Field(default=0.0, ge=0)
    """Area a stack takes on the interposer, mm² (0: off-package memory)."""
    on_package: bool = True
    """True when the memory sits in the package (bonded next to the dies, e.g. HBM)."""
    available_from_year: float | None = Field(default=None, ge=1990, le=2100)
    """First year of volume supply (None: long available). A fleet plan buys no chip made with it
    before then."""
    supply_stacks_per_year: float | None = Field(default=None, ge=0)
    """Stacks the whole market can get per year, for scenarios' `memory_supply` (None: not known)."""


class PackagingTech(Sourced):
    """A packaging technology: interposer cost by area, assembly, test and their yields."""

    id: str
    """Packaging id (e.g. `cowos-s`)."""
    name: str = ""
    """Human name."""
    interposer_usd_per_mm2: float = Field(ge=0)
    """Interposer (or bridge + RDL) cost per mm² of its area, USD/mm² (0: no interposer)."""
    interposer_area_overhead_frac: float = Field(default=0.0, ge=0, le=2)
    """Interposer area beyond the dies and stacks it carries (spacing, routing), fraction."""
    max_interposer_mm2: float | None = Field(default=None, gt=0)
    """Largest interposer this technology makes, mm² (None: no limit)."""
    assembly_usd: float = Field(ge=0)
    """Substrate, bonding and assembly per package, USD."""
    test_usd: float = Field(ge=0)
    """Final test and burn-in per package, USD."""
    bond_yield_per_die: float = Field(gt=0, le=1)
    """Probability that bonding one die or stack succeeds."""
    final_test_yield: float = Field(gt=0, le=1)
    """Fraction of assembled packages that pass final test."""
    available_from_year: float | None = Field(default=None, ge=1990, le=2100)
    """First year of volume production (None: long available). A fleet plan buys no chip assembled
    with it before then."""
    supply_units_per_year: float | None = Field(default=None, ge=0)
    """Packages the whole market can get per year, for scenarios' `packaging_supply` (None: not known)."""


class FabData(Sourced):
    """Wafer geometry, yield model choice, and the node, memory and packaging tables."""

    wafer_diameter_mm: float = Field(default=300.0, gt=0)
    """Wafer diameter, mm."""
    edge_exclusion_mm: float = Field(default=3.0, ge=0)
    """Unusable ring at the wafer edge, mm."""
    scribe_mm: float = Field(default=0.1, ge=0)
    """Scribe line (saw street) width between dies, mm."""
    reticle_limit_mm2: float = Field(gt=0)
    """Largest die one lithography exposure field can print, mm²."""
    yield_model: YieldModel = "negative_binomial"
    """Die-yield model used by default."""
    wafer_sort_usd_per_die: float = Field(default=0.0, ge=0)
    """Wafer-sort (probe) cost per die, USD."""
    vendor_gross_margin: float = Field(ge=0, lt=1)
    """Gross margin of a merchant chip vendor: price = unit cost ÷ (1 − margin)."""
    custom_markup_frac: float = Field(default=0.0, ge=0)
    """Markup on unit cost for a custom chip (ASIC partner, OSAT), fraction."""
    nodes: dict[str, ProcessNode]
    """Process nodes by id."""
    memory: dict[str, MemoryTech]
    """Memory technologies by id."""
    packaging: dict[str, PackagingTech]
    """Packaging technologies by id."""

    @model_validator(mode="after")
    def _check_ids(self) -> "FabData":
        if self.edge_exclusion_mm >= self.wafer_diameter_mm / 2:
            raise ValueError(f"edge_exclusion_mm {self.edge_exclusion_mm:g} leaves nothing of a "
                             f"{self.wafer_diameter_mm:g} mm wafer (it must be under the radius)")
        for kind, table in (("nodes", self.nodes), ("memory", self.memory), ("packaging", self.packaging)):
            for key, item in table.items():
                if item.id != key:
                    raise ValueError(f"{kind}.{key}: id is {item.id!r}, expected {key!r}")
        return self


class NreSpec(Sourced):
    """Non-recurring cost of designing a chip, and how long it takes."""

    engineers: float = Field(gt=0)
    """Hardware design and verification engineers on the programme."""
    loaded_usd_per_engineer_year: float = Field(gt=0)
    """Fully loaded cost of one engineer for a year, USD."""
    design_years: float = Field(gt=0, le=10)
    """Architecture to tape-out, years."""
    mask_sets: float = Field(gt=0, le=10)
    """Mask sets bought, counting expected respins."""
    ip_licences_usd: float = Field(ge=0)
    """Third-party IP (HBM PHY, SerDes, PCIe, ...), USD."""
    eda_usd_per_year: float = Field(ge=0)
    """EDA tool licences per year of design, USD/year."""
    software_stack_usd: float = Field(ge=0)
    """Compiler, kernels, runtime and framework integration, USD."""
    tapeout_bringup_usd: float = Field(ge=0)
    """Package design, boards, bring-up and qualification, USD."""
    fab_latency_years: float = Field(ge=0, le=3)
    """Wafer fabrication plus assembly from tape-out to parts, years."""


class RentalQuote(Spec):
    """A published rental price for one chip."""

    usd_per_hour: float = Field(gt=0)
    """Price per chip-hour, USD."""
    date: str
    """When the price was published."""
    source: str
    """Where it was published."""


class SensitivityRange(Spec):
    """Low and high values of one input for a sensitivity (tornado) analysis."""

    low: float
    """Low end of the range (in the input's unit)."""
    high: float
    """High end of the range."""
    source: str
    """Where the range comes from."""

    @model_validator(mode="after")
    def _ordered(self) -> "SensitivityRange":
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


class CostData(Spec):
    """Everything the cost layer reads: operating presets, fab tables, NRE, market prices."""

    default_preset: str
    """Preset used when none is named."""
    presets: dict[str, Economics]
    """Operating scenarios by name (e.g. `us`, `china`)."""
    fab: FabData
    """Wafer, memory and packaging data."""
    nre: NreSpec
    """Design-cost defaults."""
    market_rental: dict[str, RentalQuote] = Field(default_factory=dict)
    """Published rental prices by chip id (shown next to owned cost; not used unless asked)."""
    sensitivity: dict[str, SensitivityRange] = Field(default_factory=dict)
    """Sourced ranges for the tornado; inputs not listed vary by ±25 %."""

    @model_validator(mode="after")
    def _check_preset(self) -> "CostData":
        if self.default_preset not in self.presets:
            raise ValueError(f"default_preset {self.default_preset!r} is not in presets")
        return self

    def economics(self, preset: str | None = None) -> Economics:
        """The named operating preset (default: `default_preset`)."""
        name = preset or self.default_preset
        try:
            return self.presets[name]
        except KeyError:
            raise SpecError(f"unknown economics preset {name!r}; known: {', '.join(sorted(self.presets))}") from None


MAX_MEMORY_STACKS = 32
"""Most memory stacks a package bonds (four times B200's eight: past any interposer built)."""


class PackageSpec(Spec):
    """One accelerator package to be costed: compute silicon, memory and packaging."""

    compute_die_mm2: float = Field(gt=0, le=20000)
    """Total compute-die area, mm² (split evenly over `chiplets` dies)."""
    chiplets: int = Field(default=1, ge=1, le=64)
    """Compute dies in the package."""
    chiplet_area_overhead_frac: float = Field(default=0.0, ge=0, le=1)
    """Extra area per die for die-to-die interfaces when `chiplets` > 1, fraction."""
    node: str
    """Process node id or alias (e.g. `tsmc-n5`, `TSMC 4N`)."""
    memory: str | None = None
    """Memory technology id (e.g. `hbm3`); None for a package without memory."""
    memory_stacks: int = Field(default=0, ge=0, le=MAX_MEMORY_STACKS)
    """Memory stacks bonded in the package (HBM); also the bound on stacks a `memory_gb` implies."""
    memory_gb: float | None = Field(default=None, ge=0)
    """Memory capacity, GB (None: stacks × GB per stack)."""
    packaging: str | None = None
    """Packaging technology id (None: chosen from the memory and interposer size)."""
