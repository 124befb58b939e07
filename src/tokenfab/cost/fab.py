"""What a chip costs to make: dies per wafer, die yield, known-good dies, memory, packaging.

The core formulas take numpy arrays (design search evaluates many candidates at once) and
scalars alike. Areas are mm² at the interface; yield formulas use cm² as the literature does.

Unit cost of a package (economics.md §4.3):

    unit = (Σ KGD + memory + interposer + assembly + test) / (Y_bond^(dies + stacks) × Y_test)

A bonding failure scraps everything already bonded, HBM included, which is why every part is
divided by the package yield. Vendor price = unit cost / (1 − gross margin).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from tokenfab.specs.base import SpecError
from tokenfab.specs.economics import (
    MAX_MEMORY_STACKS, YIELD_MODELS, FabData, MemoryTech, PackageSpec, PackagingTech, ProcessNode,
)

ArrayLike = Any  # float or numpy array


# ---- dies per wafer -------------------------------------------------------------------------

def gross_dies_per_wafer(die_mm2: ArrayLike, wafer_diameter_mm: float = 300.0,
                         edge_exclusion_mm: float = 3.0, scribe_mm: float = 0.1) -> ArrayLike:
    """Candidate dies on a wafer (standard approximation, not rounded down).

    DPW = π r² / A_eff − π · 2r / √(2 A_eff), with r = wafer radius − edge exclusion and
    A_eff = (√A + scribe)² the die plus its share of scribe lines. Continuous in A so that a
    search can move smoothly; floor it for a physical count.
    """
    area = np.asarray(die_mm2, dtype=float)
    r = wafer_diameter_mm / 2.0 - edge_exclusion_mm
    a_eff = (np.sqrt(area) + scribe_mm) ** 2
    dpw = np.pi * r * r / a_eff - np.pi * 2.0 * r / np.sqrt(2.0 * a_eff)
    return _out(np.maximum(dpw, 0.0))


# ---- die yield (A in mm², D0 in defects/cm²) --------------------------------------------------

def poisson_yield(die_mm2: ArrayLike, d0_per_cm2: ArrayLike) -> ArrayLike:
    """Y = exp(−A·D0): defects independent and uniform (most pessimistic for big dies)."""
    return _out(np.exp(-_ad(die_mm2, d0_per_cm2)))


def murphy_yield(die_mm2: ArrayLike, d0_per_cm2: ArrayLike) -> ArrayLike:
    """Y = ((1 − exp(−A·D0)) / (A·D0))² (Murphy's triangular defect distribution)."""
    x = _ad(die_mm2, d0_per_cm2)
    safe = np.where(x > 0, x, 1.0)
    return _out(np.where(x > 0, (-np.expm1(-safe) / safe) ** 2, 1.0))


def seeds_yield(die_mm2: ArrayLike, d0_per_cm2: ArrayLike) -> ArrayLike:
    """Y = 1 / (1 + A·D0) (Seeds; the most optimistic)."""
    return _out(1.0 / (1.0 + _ad(die_mm2, d0_per_cm2)))


def negative_binomial_yield(die_mm2: ArrayLike, d0_per_cm2: ArrayLike, alpha: ArrayLike = 3.0) -> ArrayLike:
    """Y = (1 + A·D0/α)^(−α) (Stapper): α→∞ gives Poisson, α = 1 gives Seeds."""
    return _out((1.0 + _ad(die_mm2, d0_per_cm2) / np.asarray(alpha, dtype=float)) ** (-np.asarray(alpha, dtype=float)))


def die_yield(die_mm2: ArrayLike, d0_per_cm2: ArrayLike, model: str = "negative_binomial",
              alpha: ArrayLike = 3.0) -> ArrayLike:
    """Fraction of dies free of killer defects under `model` (poisson, murphy, seeds, negative_binomial)."""
    if model == "negative_binomial":
        return negative_binomial_yield(die_mm2, d0_per_cm2, alpha)
    if model == "poisson":
        return poisson_yield(die_mm2, d0_per_cm2)
    if model == "murphy":
        return murphy_yield(die_mm2, d0_per_cm2)
    if model == "seeds":
        return seeds_yield(die_mm2, d0_per_cm2)
    raise SpecError(f"unknown yield model {model!r}; expected one of {', '.join(YIELD_MODELS)}")


def defect_density_quadrature(model: str, alpha: float = 3.0, points: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(t, w): nodes and weights with Σ w·g(t) ≈ E[g(D/D0)] for the defect-density spread of `model`.

    Each yield model is a Poisson yield averaged over how the defect density D varies from die to
    die (mean D0): `Y(A) = E[exp(−A·D)]`. Poisson: D = D0 exactly; negative binomial: D ~ Gamma with
    shape α (Stapper); Seeds: Gamma with α = 1; Murphy: triangular on [0, 2·D0]. Gamma nodes are
    generalized Gauss–Laguerre (Golub–Welsch), triangular nodes Gauss–Legendre on each half.
    """
    return _quadrature(model, float(alpha), int(points))


@lru_cache(maxsize=64)
def _quadrature(model: str, alpha: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    if model == "poisson":
        return np.array([1.0]), np.array([1.0])
    if model in ("negative_binomial", "seeds"):
        a = 1.0 if model == "seeds" else float(alpha)
        k = np.arange(points, dtype=float)
        off = np.sqrt(k[1:] * (k[1:] + a - 1.0))
        jac = np.diag(2.0 * k + a) + np.diag(off, 1) + np.diag(off, -1)  # weight x^(a-1) e^(-x)
        x, vec = np.linalg.eigh(jac)
        w = vec[0] ** 2  # Γ(a) · v0² / Γ(a): the weights of a probability density
        return x / a, w / w.sum()
    if model == "murphy":
        x, w = np.polynomial.legendre.leggauss(points // 2)
        lo, hi = (x + 1.0) / 2.0, (x + 1.0) / 2.0 + 1.0  # [0, 1] and [1, 2]
        t = np.concatenate([lo, hi])
        wt = np.concatenate([w / 2.0 * lo, w / 2.0 * (2.0 - hi)])  # triangular density t, 2 − t
        return t, wt / wt.sum()
    raise SpecError(f"unknown yield model {model!r}; expected one of {', '.join(YIELD_MODELS)}")


def sellable_yield(die_mm2: ArrayLike, core_mm2: ArrayLike, cores_built: ArrayLike, spare_cores: ArrayLike,
                   d0_per_cm2: ArrayLike, model: str = "negative_binomial", alpha: float = 3.0) -> ArrayLike:
    """Fraction of dies that can be sold when up to `spare_cores` of the `cores_built` identical cores
    (each `core_mm2`) may be defective and fused off; the rest of the die must be defect-free.

    For one defect density D a core is good with q = exp(−a·D) and the die sells with probability
    exp(−A_rest·D) · P(Binomial(n, 1 − q) ≤ s). Averaged over D as the yield model does (see
    `defect_density_quadrature`):

        Y = die_yield(A) + E_D[ exp(−A_rest·D) · Σ_{k=1..s} C(n,k) (1 − q)^k q^(n−k) ]

    With no spares it is `die_yield` exactly; every spare adds a non-negative term.
    """
    area = np.asarray(die_mm2, dtype=float)
    a = np.asarray(core_mm2, dtype=float)
    n = np.asarray(cores_built, dtype=float)
    s = np.asarray(spare_cores, dtype=float)
    d0 = np.asarray(d0_per_cm2, dtype=float)
    plain = np.asarray(die_yield(area, d0, model, alpha), dtype=float)
    shape = np.broadcast(area, a, n, s, d0).shape
    out = np.array(np.broadcast_to(plain, shape), dtype=float)
    harvest = np.broadcast_to(s, shape) > 0
    if not np.any(harvest):
        return _out(out)
    area, a, n, s, d0 = (np.broadcast_to(x, shape)[harvest][:, None] for x in (area, a, n, s, d0))
    shape = s.shape[:1]
    t, w = defect_density_quadrature(model, float(np.mean(alpha)))
    lam = d0 * t / 100.0  # defects per mm² at each node, shape (..., Q)
    rest = np.maximum(area - n * a, 0.0)
    with np.errstate(divide="ignore"):
        log_q = -a * lam
        log_p = np.log(-np.expm1(log_q))  # log(1 − q); −inf where a core cannot fail
    extra = np.zeros(np.broadcast(lam, a).shape)
    log_c = np.zeros(shape + (1,))
    for k in range(1, int(np.max(s)) + 1):
        log_c = log_c + np.log(np.maximum(n - k + 1.0, 1e-300)) - math.log(k)
        with np.errstate(invalid="ignore"):
            term = np.exp(log_c + k * log_p + (n - k) * log_q)
        extra += np.where((k <= s) & (k <= n), np.nan_to_num(term), 0.0)
    gain = np.sum(w * np.exp(-rest * lam) * extra, axis=-1)
    out[harvest] = np.minimum(out[harvest] + gain, 1.0)
    return _out(out)


def good_die_cost_usd(die_mm2: ArrayLike, node: ProcessNode, fab: FabData,
                      model: str | None = None) -> ArrayLike:
    """Known-good-die cost: (wafer price / DPW + wafer sort) / die yield, USD."""
    dpw = gross_dies_per_wafer(die_mm2, fab.wafer_diameter_mm, fab.edge_exclusion_mm, fab.scribe_mm)
    y = die_yield(die_mm2, node.defect_density_per_cm2, model or fab.yield_model, node.cluster_alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out((node.wafer_usd / np.asarray(dpw) + fab.wafer_sort_usd_per_die) / np.asarray(y))


def vendor_price_usd(unit_cost_usd: ArrayLike, gross_margin: ArrayLike) -> ArrayLike:
    """Selling price that earns `gross_margin` on `unit_cost_usd`: cost / (1 − margin)."""
    m = np.asarray(gross_margin, dtype=float)
    if np.any((m < 0) | (m >= 1)):
        raise SpecError(f"gross margin must be in [0, 1), got {gross_margin}")
    return _out(np.asarray(unit_cost_usd, dtype=float) / (1.0 - m))


# ---- the package ----------------------------------------------------------------------------

def package_cost_arrays(die_mm2: ArrayLike, chiplets: ArrayLike, memory_gb: ArrayLike,
                        memory_stacks: ArrayLike, *, node: ProcessNode, memory: MemoryTech | None,
                        packaging: PackagingTech, fab: FabData, yield_model: str | None = None,
                        chiplet_area_overhead_frac: float = 0.0) -> dict[str, np.ndarray]:
    """Unit cost of packages and its parts, element-wise over arrays of designs.

    `die_mm2` is the total compute area, split over `chiplets` dies (each grown by
    `chiplet_area_overhead_frac` when there is more than one). Designs that cannot be built
    (a die over the reticle, an interposer over the packaging's limit) get `nan` unit cost.
    """
    total = np.asarray(die_mm2, dtype=float)
    n_dies = np.asarray(chiplets, dtype=float)
    gb = np.asarray(memory_gb, dtype=float)
    stacks = np.asarray(memory_stacks, dtype=float)
    each = total / n_dies * np.where(n_dies > 1, 1.0 + chiplet_area_overhead_frac, 1.0)

    dpw = np.asarray(gross_dies_per_wafer(each, fab.wafer_diameter_mm, fab.edge_exclusion_mm, fab.scribe_mm))
    y_die = np.asarray(die_yield(each, node.defect_density_per_cm2, yield_model or fab.yield_model, node.cluster_alpha))
    die_usd = np.asarray(good_die_cost_usd(each, node, fab, yield_model))
    compute_usd = die_usd * n_dies

    mem_usd = gb * (memory.usd_per_gb if memory else 0.0)
    on_pkg = bool(memory and memory.on_package)
    bonded_stacks = stacks if on_pkg else np.zeros_like(stacks)
    footprint = memory.stack_footprint_mm2 if on_pkg else 0.0
    has_interposer = packaging.interposer_usd_per_mm2 > 0
    interposer_mm2 = ((each * n_dies + bonded_stacks * footprint) * (1.0 + packaging.interposer_area_overhead_frac)
                      if has_interposer else np.zeros_like(each))
    interposer_usd = interposer_mm2 * packaging.interposer_usd_per_mm2

    bond_yield = packaging.bond_yield_per_die ** (n_dies + bonded_stacks)
    pkg_yield = bond_yield * packaging.final_test_yield
    parts = compute_usd + mem_usd + interposer_usd + packaging.assembly_usd + packaging.test_usd
    unit = parts / pkg_yield

    feasible = each <= fab.reticle_limit_mm2
    if packaging.max_interposer_mm2 is not None:
        feasible &= interposer_mm2 <= packaging.max_interposer_mm2
    unit = np.where(feasible, unit, np.nan)
    shape = np.broadcast(total, n_dies, gb, stacks).shape
    b = lambda x: np.broadcast_to(np.asarray(x, dtype=float), shape)  # noqa: E731
    return {
        "die_mm2_each": b(each), "gross_dies_per_wafer": b(dpw), "die_yield": b(y_die),
        "good_die_usd": b(die_usd), "compute_dies_usd": b(compute_usd), "memory_usd": b(mem_usd),
        "interposer_mm2": b(interposer_mm2), "interposer_usd": b(interposer_usd),
        "assembly_usd": b(packaging.assembly_usd), "test_usd": b(packaging.test_usd),
        "bonded_parts": b(n_dies + bonded_stacks), "package_yield": b(pkg_yield),
        "parts_usd": b(parts), "unit_cost_usd": b(unit),
    }


class PackageCost(BaseModel):
    """Breakdown of one package's unit cost (USD) and the vendor price it implies.

    compute_dies_usd + memory_usd + interposer_usd + assembly_usd + test_usd + yield_loss_usd
    = unit_cost_usd.
    """

    model_config = ConfigDict(frozen=True)

    node: str
    memory: str | None
    packaging: str
    yield_model: str
    chiplets: int
    die_mm2_each: float
    gross_dies_per_wafer: float
    die_yield: float
    wafer_usd: float
    good_die_usd: float
    memory_gb: float
    memory_stacks: int
    interposer_mm2: float
    package_yield: float
    compute_dies_usd: float
    memory_usd: float
    interposer_usd: float
    assembly_usd: float
    test_usd: float
    yield_loss_usd: float
    unit_cost_usd: float
    gross_margin: float
    vendor_price_usd: float

    def parts(self) -> dict[str, float]:
        """The additive parts of the unit cost, in display order."""
        return {"compute dies": self.compute_dies_usd, "memory": self.memory_usd,
                "interposer": self.interposer_usd, "assembly": self.assembly_usd,
                "final test": self.test_usd, "packaging yield loss": self.yield_loss_usd}


def package_cost(spec: PackageSpec, fab: FabData, *, yield_model: str | None = None,
                 margin: float | None = None) -> PackageCost:
    """Unit cost of one package with its breakdown; raises `SpecError` for a design that cannot be built."""
    node = resolve_node(spec.node, fab)
    memory = _lookup(fab.memory, spec.memory, "memory") if spec.memory else None
    gb, stacks = _memory_amount(spec, memory)
    each = spec.compute_die_mm2 / spec.chiplets * (1 + spec.chiplet_area_overhead_frac if spec.chiplets > 1 else 1)
    if each > fab.reticle_limit_mm2:
        need = math.ceil(spec.compute_die_mm2 / fab.reticle_limit_mm2)
        raise SpecError(f"die of {each:.0f} mm² exceeds the reticle limit of {fab.reticle_limit_mm2:.0f} mm²; "
                        f"split it into chiplets (at least {need})")
    packaging = (_lookup(fab.packaging, spec.packaging, "packaging") if spec.packaging
                 else _auto_packaging(each * spec.chiplets, stacks, memory, fab))
    model = yield_model or fab.yield_model
    if model not in YIELD_MODELS:
        raise SpecError(f"unknown yield model {model!r}; expected one of {', '.join(YIELD_MODELS)}")
    margin = fab.vendor_gross_margin if margin is None else margin
    r = package_cost_arrays(spec.compute_die_mm2, spec.chiplets, gb, stacks, node=node, memory=memory,
                            packaging=packaging, fab=fab, yield_model=model,
                            chiplet_area_overhead_frac=spec.chiplet_area_overhead_frac)
    s = {k: float(v) for k, v in r.items()}
    if not math.isfinite(s["unit_cost_usd"]):
        raise SpecError(f"interposer of {s['interposer_mm2']:.0f} mm² exceeds {packaging.id}'s limit of "
                        f"{packaging.max_interposer_mm2:.0f} mm²; choose another packaging")
    unit = s["unit_cost_usd"]
    return PackageCost(
        node=node.id, memory=memory.id if memory else None, packaging=packaging.id, yield_model=model,
        chiplets=spec.chiplets, die_mm2_each=s["die_mm2_each"], gross_dies_per_wafer=s["gross_dies_per_wafer"],
        die_yield=s["die_yield"], wafer_usd=node.wafer_usd, good_die_usd=s["good_die_usd"], memory_gb=gb,
        memory_stacks=stacks, interposer_mm2=s["interposer_mm2"], package_yield=s["package_yield"],
        compute_dies_usd=s["compute_dies_usd"], memory_usd=s["memory_usd"], interposer_usd=s["interposer_usd"],
        assembly_usd=s["assembly_usd"], test_usd=s["test_usd"], yield_loss_usd=unit - s["parts_usd"],
        unit_cost_usd=unit, gross_margin=margin, vendor_price_usd=float(vendor_price_usd(unit, margin)),
    )


# ---- lookups ----------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def resolve_node(name: str, fab: FabData) -> ProcessNode:
    """A node by id or alias; free text such as `SMIC N+1 (7nm-class)` or `TSMC N5 (8 XCD) + N6` works.

    Text in parentheses and anything after `;`, `,`, `/` or ` + ` is ignored; spaces do not matter.
    """
    key = _norm(re.split(r"[;,/]|\s\+\s", re.sub(r"\(.*?\)", " ", name))[0])
    squeezed = key.replace(" ", "")
    for node in fab.nodes.values():
        names = [node.id, *node.aliases]
        if any(_norm(n) == key or _norm(n).replace(" ", "") == squeezed for n in names):
            return node
    raise SpecError(f"unknown process node {name!r}; known: {', '.join(fab.nodes)}")


def _lookup(table: dict, key: str, kind: str):
    try:
        return table[key.lower()]
    except KeyError:
        raise SpecError(f"unknown {kind} {key!r}; known: {', '.join(table)}") from None


def _memory_amount(spec: PackageSpec, memory: MemoryTech | None) -> tuple[float, int]:
    """Capacity bought (GB) and bonded stacks, filling whichever the spec left out.

    When both are given, the package carries at least stacks × GB per stack even if less is
    usable (B200: 8 × 24 GB bonded, 180 GB exposed), and that is what is paid for.
    """
    if memory is None:
        if spec.memory_stacks or spec.memory_gb:
            raise SpecError("memory_stacks/memory_gb given without a memory technology (--hbm-gen)")
        return 0.0, 0
    if spec.memory_gb is not None and spec.memory_gb <= 0:
        raise SpecError(f"{memory.id}: memory capacity must be above 0 GB, got {spec.memory_gb:g} "
                        "(a package without memory takes no memory technology)")
    if not memory.on_package:
        return float(spec.memory_gb or 0.0), 0
    per_stack = memory.gb_per_stack or 0.0
    stacks, gb = spec.memory_stacks, spec.memory_gb
    if gb is None:
        if not stacks:
            raise SpecError(f"{memory.id}: give the number of stacks (--hbm-stacks) or the capacity")
        gb = stacks * per_stack
    elif not stacks:
        stacks = math.ceil(gb / per_stack) if per_stack else 0
    else:
        gb = max(gb, stacks * per_stack)
    if stacks > MAX_MEMORY_STACKS:
        raise SpecError(f"{gb:g} GB of {memory.id} takes {stacks} stacks of {per_stack:g} GB: a package bonds at most "
                        f"{MAX_MEMORY_STACKS}")
    return float(gb), int(stacks)


def _auto_packaging(silicon_mm2: float, stacks: int, memory: MemoryTech | None, fab: FabData) -> PackagingTech:
    """Organic substrate without stacked memory; otherwise the first interposer package that fits."""
    if not (memory and memory.on_package and stacks):
        return _lookup(fab.packaging, "organic", "packaging")
    for pid in ("cowos-s", "cowos-l"):
        p = fab.packaging.get(pid)
        if p is None:
            continue
        area = (silicon_mm2 + stacks * memory.stack_footprint_mm2) * (1 + p.interposer_area_overhead_frac)
        if p.max_interposer_mm2 is None or area <= p.max_interposer_mm2:
            return p
    raise SpecError("no packaging in the fab data fits this package (--packaging)")


MEMORY_PRICED_AS = {"hbm2": "hbm2e", "hbm4": "hbm3e"}
"""Memory generations without their own cost entry yet, priced as the nearest one (an estimate:
HBM4 will cost more per GB than HBM3e, so its packages come out optimistic)."""


def priced_memory(memory: str | None, fab: FabData) -> str | None:
    """The fab data's memory entry that prices `memory` (itself, or its stand-in)."""
    if memory is None or memory in fab.memory:
        return memory
    return MEMORY_PRICED_AS.get(memory, memory)


def package_spec_for_chip(chip, fab: FabData, **changes: Any) -> PackageSpec:
    """A `PackageSpec` from a `ChipSpec`: die area, node, memory type/stacks/capacity.

    Compute area over the reticle is split into the fewest dies that fit; `changes`
    (e.g. chiplets=4, memory='hbm3e') replace what is read from the chip.
    """
    if chip.die_area_mm2 is None and "compute_die_mm2" not in changes:
        raise SpecError(f"chip {chip.id}: die_area_mm2 is missing; fab needs the compute-die area (--die-mm2)")
    if not chip.process_node and "node" not in changes:
        raise SpecError(f"chip {chip.id}: process_node is missing (--node)")
    mem_text = chip.memory_type.lower()
    gen = re.search(r"hbm\s*(\d)\s*(e?)", mem_text)
    stacks = re.search(r"(\d+)\s*stacks?", mem_text)
    if gen:
        memory = f"hbm{gen.group(1)}{gen.group(2)}"
    elif any(t in mem_text for t in ("gddr", "lpddr", "ddr")):
        memory = "dram"
    else:
        memory = None
    memory = priced_memory(memory, fab)
    area = changes.get("compute_die_mm2", chip.die_area_mm2)
    data: dict[str, Any] = {
        "compute_die_mm2": area, "node": chip.process_node,
        "chiplets": max(1, math.ceil(area / fab.reticle_limit_mm2)),
        "memory": memory, "memory_gb": chip.hbm_gb if memory else None,
        "memory_stacks": int(stacks.group(1)) if (stacks and memory) else 0,
    }
    if memory is None and "memory" not in changes:
        raise SpecError(f"chip {chip.id}: memory type {chip.memory_type!r} is not in the fab data "
                        f"(known: {', '.join(fab.memory)})")
    data.update(changes)
    return PackageSpec.from_mapping(data, origin=f"chip {chip.id}")


def _ad(die_mm2: ArrayLike, d0_per_cm2: ArrayLike) -> np.ndarray:
    return np.asarray(die_mm2, dtype=float) / 100.0 * np.asarray(d0_per_cm2, dtype=float)


def _out(x: np.ndarray) -> ArrayLike:
    """A 0-d result as a Python float; arrays unchanged."""
    return float(x) if np.ndim(x) == 0 else x
