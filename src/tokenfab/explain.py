"""Why an estimate comes out as it does, and what more of each chip resource would buy.

**Binding constraint.** The search keeps, for every point, per-op seconds with what bounds each op
(compute, HBM, communication: `perf.evaluate.bound_shares`), the memory left free and the
TTFT/TPOT. For the chosen point this module asks two questions of what the search computed:

1. Would the next larger batch on the same mapping serve more per chip (by more than `GAIN_MIN`)?
   If so, whatever kept the search from taking it binds: `memory capacity` (it does not fit HBM),
   the `tpot slo` (in aggregated serving the prompts admitted between decode steps count in TPOT)
   or the `ttft slo`.
2. Otherwise (the largest batch tried, a batch the user fixed, or one past which throughput stops
   rising) the resource that takes the most chip time binds: `hbm bandwidth` (weights and KV
   cache streamed), `compute`, or `interconnect` (collectives). In aggregated serving the prefill's
   share of the chip time counts with its own mix.

A deployment that misses an SLO on every mapping is bound by that SLO. A disaggregated estimate
names its decode pool's binding and says the prefill pool's in the detail.

**What 10% more buys** (`resource_sensitivity`): the estimate re-run with one chip resource 10%
larger, everything else (the chip's price included) kept, as the change in output $/Mtok and
tok/s/chip. Whatever the cost model derives from the grown figure (a system priced by its link
bandwidth, say) moves with it.
`sram_sweep` re-derives a chip design at several shared-SRAM sizes, so area and cost move too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from tokenfab.perf.evaluate import bound_shares

Binding = Literal["memory capacity", "hbm bandwidth", "compute", "interconnect", "tpot slo", "ttft slo"]
BINDINGS: tuple[str, ...] = ("memory capacity", "hbm bandwidth", "compute", "interconnect", "tpot slo", "ttft slo")
"""The vocabulary of `Estimate.binding`: a capacity or SLO that stops the batch growing, or the
resource that takes most of the chip time."""
RESOURCE_OF_BOUND = ("compute", "hbm bandwidth", "interconnect")
"""`Binding` of each `perf.evaluate` bound index (0 compute, 1 memory, 2 communication)."""
_SHARE_WORDS = ("compute", "HBM streaming", "collectives")  # by bound index
_SHARE_ORDER = (1, 0, 2)  # printed memory first, as a decode step is usually read
GAIN_MIN = 0.01
"""Smallest gain in tok/s per chip from the next larger batch for the limit that stops it to count
as binding: past it throughput has saturated and the step's resources bind instead."""
MAPPING_KEYS = ("num_chips", "tp", "pp", "dp", "ep", "prec", "cp", "attention_chips", "expert_chips")
"""Grid arrays that name a mapping apart from its batch (those a grid has)."""


@dataclass(frozen=True)
class Explanation:
    """An estimate's binding constraint and one sentence with the numbers."""

    binding: str
    detail: str


@dataclass(frozen=True)
class Limit:
    """A latency SLO a point must meet: its name in `BINDINGS`, the grid's latency, the limit in ms."""

    name: str
    latency_ms: np.ndarray
    limit_ms: float | None


def resource_s(times, i: int) -> np.ndarray:
    """Seconds of point `i` by limiting resource: (compute, memory, communication)."""
    shares = np.asarray(bound_shares(times), float)
    return shares if shares.ndim == 1 else shares[:, i]


def next_batch(arrays: dict, i: int) -> int | None:
    """Index of the point with the same mapping as `i` and the next larger batch (None: none tried)."""
    same = arrays["batch"] > arrays["batch"][i]
    for k in MAPPING_KEYS:
        if k in arrays:
            same &= arrays[k] == arrays[k][i]
    idx = np.flatnonzero(same)
    return None if len(idx) == 0 else int(idx[np.argmin(arrays["batch"][idx])])


def batch_cap(arrays: dict, i: int, throughput: str, limits: list[Limit]) -> tuple[str | None, str]:
    """(what stops the batch growing, a clause saying so); None when nothing binds the batch (no
    larger batch tried, or it would add less than `GAIN_MIN` per chip)."""
    b = int(arrays["batch"][i])
    j = next_batch(arrays, i)
    if j is None:
        return None, f"batch {b} is the largest tried"
    gain = float(arrays[throughput][j] / arrays[throughput][i] - 1.0)
    if not gain > GAIN_MIN:
        return None, f"batch {int(arrays['batch'][j])} would add {gain:+.1%} per chip"
    nb = int(arrays["batch"][j])
    if float(arrays["free_gb"][j]) < 0:
        return "memory capacity", (f"batch {b} limited by HBM capacity (batch {nb}, {gain:+.0%} tok/s/chip, needs "
                                   f"{_gb(-float(arrays['free_gb'][j]))} more per chip; "
                                   f"{_gb(float(arrays['free_gb'][i]))} free)")
    for lim in limits:
        if lim.limit_ms and float(lim.latency_ms[j]) > lim.limit_ms:
            what = lim.name.split()[0].upper()
            return lim.name, (f"batch {b} limited by the {lim.limit_ms:g} ms {what} SLO ({what} "
                              f"{float(lim.latency_ms[i]):,.1f} ms; batch {nb}: {float(lim.latency_ms[j]):,.1f} ms, "
                              f"{gain:+.0%} tok/s/chip)")
    return None, f"batch {b}"  # a token budget or the choice's tie-break, not a limit


def _gb(x: float) -> str:
    return f"{x:.1f} GB" if abs(x) >= 0.1 else f"{x * 1e3:.0f} MB"


def mix(seconds: np.ndarray) -> str:
    """'71% HBM streaming, 18% compute, 11% collectives' (shares under 0.5% left out)."""
    total = float(np.sum(seconds))
    if total <= 0:
        return "no op time"
    parts = [f"{seconds[k] / total:.0%} {_SHARE_WORDS[k]}" for k in _SHARE_ORDER if seconds[k] / total >= 0.005]
    return ", ".join(parts)


def _dominant(seconds: np.ndarray) -> str:
    return RESOURCE_OF_BOUND[int(np.argmax(seconds))]


def _missed(values: dict[str, float], limits: dict[str, float | None]) -> str | None:
    """The SLO a point misses most (ratio to its limit), or None."""
    worst, name = 1.0, None
    for key, lim in limits.items():
        if lim and values[key] / lim > worst:
            worst, name = values[key] / lim, key
    return name


def aggregated(result, i: int, meets_slo: bool, slo_ttft_ms: float | None, slo_tpot_ms: float | None) -> Explanation:
    """The binding of point `i` of an aggregated grid (`mapping.search.evaluate`)."""
    a = result.arrays
    dec = resource_s(result.extras["decode_times"], i)
    pre = resource_s(result.extras["prefill_times"], i)
    share = float(a["prefill_time_share"][i])
    cycle = (1 - share) * dec / max(float(dec.sum()), 1e-30) + share * pre / max(float(pre.sum()), 1e-30)
    text = (f"decode step {float(a['decode_step_ms'][i]):,.1f} ms: {mix(dec)}; prefill {share:.0%} of chip time"
            f" ({mix(pre)})")
    if not meets_slo:
        return _slo_missed(a, i, text, slo_ttft_ms, slo_tpot_ms)
    cap, clause = batch_cap(a, i, "output_tok_s_per_chip", [Limit("tpot slo", a["tpot_ms"], slo_tpot_ms),
                                                             Limit("ttft slo", a["ttft_ms"], slo_ttft_ms)])
    if cap is not None:
        return Explanation(cap, f"{text}; {clause}")
    binding = _dominant(cycle)
    return Explanation(binding, f"{text}; {clause}, so {binding} binds ({cycle[RESOURCE_OF_BOUND.index(binding)]:.0%} "
                                f"of chip time)")


def _slo_missed(a: dict, i: int, text: str, slo_ttft_ms, slo_tpot_ms) -> Explanation:
    vals = {"ttft slo": float(a["ttft_ms"][i]) if "ttft_ms" in a else 0.0,
            "tpot slo": float(a["tpot_ms"][i]) if "tpot_ms" in a else 0.0}
    name = _missed(vals, {"ttft slo": slo_ttft_ms, "tpot slo": slo_tpot_ms}) or "tpot slo"
    lim = slo_ttft_ms if name == "ttft slo" else slo_tpot_ms
    what = name.split()[0].upper()
    return Explanation(name, f"{text}; no mapping meets the {lim:g} ms {what} SLO: the closest has {what} "
                             f"{vals[name]:,.1f} ms")


def decode_pool(result, i: int, meets_slo: bool, slo_tpot_ms: float | None) -> Explanation:
    """The binding of point `i` of a disaggregated decode grid (`mapping.modes.decode_pool`)."""
    a = result.arrays
    dec = resource_s(result.extras["decode_times"], i)
    text = f"decode step {float(a['decode_step_ms'][i]):,.1f} ms: {mix(dec)}"
    return _decode_binding(a, i, text, dec, meets_slo, slo_tpot_ms)


def af_decode(result, i: int, meets_slo: bool, slo_tpot_ms: float | None) -> Explanation:
    """The binding of point `i` of an attention-FFN split decode grid (`mapping.af`): a step is
    3 × the slowest of the attention side (KV streaming), the expert side and the all-to-all."""
    a = result.arrays
    sides = np.array([float(a["experts_ms"][i]), float(a["attention_ms"][i]), float(a["alltoall_ms"][i])])
    text = (f"decode step {float(a['decode_step_ms'][i]):,.1f} ms, set by the slowest of attention side "
            f"{sides[1]:,.1f} ms, expert side {sides[0]:,.1f} ms, all-to-all {sides[2]:,.1f} ms")
    return _decode_binding(a, i, text, sides, meets_slo, slo_tpot_ms)


def _decode_binding(a, i: int, text: str, parts, meets_slo: bool, slo_tpot_ms: float | None) -> Explanation:
    """A decode pool's binding: a missed SLO, else what capped its batch, else its dominant part."""
    if not meets_slo:
        return _slo_missed(a, i, text, None, slo_tpot_ms)
    cap, clause = batch_cap(a, i, "output_tok_s_per_chip", [Limit("tpot slo", a["tpot_ms"], slo_tpot_ms)])
    return Explanation(cap if cap is not None else _dominant(parts), f"{text}; {clause}")


def prefill_pool(result, i: int, meets_slo: bool, ttft_ms: float, slo_ttft_ms: float | None) -> Explanation:
    """The binding of point `i` of a prefill grid (`mapping.modes.prefill_pool`); its batch is the
    prompts per forward, bounded by the token budget, so only its resources and TTFT bind."""
    a = result.arrays
    pre = resource_s(result.extras["prefill_times"], i)
    text = (f"prefill pool {int(a['batch'][i])} prompt(s) per forward, {float(a['prefill_ms'][i]):,.1f} ms: "
            f"{mix(pre)}; TTFT {ttft_ms:,.1f} ms" + (f" (SLO {slo_ttft_ms:g})" if slo_ttft_ms else ""))
    if not meets_slo:
        return Explanation("ttft slo", f"{text}, missed on every prefill mapping")
    return Explanation(_dominant(pre), text)


def disaggregated(decode: Explanation, prefill: Explanation) -> Explanation:
    """The decode pool's binding (the prefill pool's TTFT SLO where that one is missed), with the
    prefill pool's in the detail."""
    if prefill.binding == "ttft slo" and decode.binding not in ("tpot slo",):
        return Explanation("ttft slo", f"{prefill.detail}; decode pool: {decode.detail}")
    return Explanation(decode.binding, f"decode pool: {decode.detail}; {prefill.detail}, {prefill.binding}-bound")


# ---- what 10% more of each resource buys -------------------------------------------------------------

RESOURCES: tuple[tuple[str, str], ...] = (
    ("bf16 compute", "bf16_tflops"), ("fp8 compute", "fp8_tflops"), ("int8 compute", "int8_tops"),
    ("fp4 compute", "fp4_tflops"), ("HBM bandwidth", "hbm_tb_s"), ("HBM capacity", "hbm_gb"),
    ("scale-up bandwidth", "scaleup_gb_s"), ("scale-out bandwidth", "scaleout_gb_s"), ("shared SRAM", "sram"),
)
"""(label, ChipSpec field) of the resources `resource_sensitivity` grows; `sram` is the shared
SRAM: `sram_mb` and the `microarch` block's `shared_sram_mib` together. INT8 only on chips
without FP8 (their native 8-bit path)."""


def shared_sram_mb(chip) -> float:
    """The chip's shared on-chip SRAM, MB as its spec gives it (microarch first), 0 if none."""
    m = getattr(chip, "microarch", None)
    if m is not None and m.shared_sram_mib > 0:
        return float(m.shared_sram_mib)
    return float(chip.sram_mb or 0.0)


def grown(chip, field: str, factor: float):
    """`chip` with one resource multiplied by `factor`, every other figure (its price included) kept."""
    if field == "sram":
        update = {}
        if chip.sram_mb:
            update["sram_mb"] = chip.sram_mb * factor
        m = getattr(chip, "microarch", None)
        if m is not None and m.shared_sram_mib > 0:
            update["microarch"] = m.model_copy(update={"shared_sram_mib": m.shared_sram_mib * factor})
        return chip.model_copy(update=update)
    return chip.model_copy(update={field: getattr(chip, field) * factor})


def present_resources(chip) -> list[tuple[str, str]]:
    """The resources of `RESOURCES` the chip has."""
    out = []
    for label, field in RESOURCES:
        if field == "sram":
            if shared_sram_mb(chip) > 0:
                out.append((label, field))
        elif field == "int8_tops":
            if chip.int8_tops and not chip.fp8_tflops:
                out.append((label, field))
        elif getattr(chip, field, None):
            out.append((label, field))
    return out


def priced(model, chip, traffic, **kwargs) -> dict:
    """An estimate as `api.with_cost`'s row (output $/Mtok, tok/s/chip, binding)."""
    from tokenfab import api  # api imports this module at its top

    economics = kwargs.pop("economics", None)
    return api.with_cost(api.estimate(model, chip, traffic, **kwargs), economics, chip_specs={chip.id: chip})


def _row(base: dict, row: dict) -> dict:
    def change(key):
        b, n = base.get(key), row.get(key)
        return None if b is None or n is None or b == 0 else n / b - 1.0
    return {"usd_per_mtok_output": row.get("usd_per_mtok_output"),
            "output_tok_s_per_chip": row["output_tok_s_per_chip"],
            "usd_per_mtok_output_change": change("usd_per_mtok_output"),
            "output_tok_s_per_chip_change": change("output_tok_s_per_chip"), "binding": row.get("binding")}


def resource_sensitivity(model, chip, traffic, factor: float = 1.1,
                         progress: Callable[[str], None] | None = None, **kwargs) -> dict:
    """The estimate, and per resource the chip has (`present_resources`), the same estimate with
    that one resource × `factor`: {base, rows}; rows are sorted by the change in output $/Mtok
    (largest saving first; the change in tok/s/chip where there is no price). `kwargs` go to
    `api.estimate` (`economics` to `api.with_cost`)."""
    from tokenfab import api

    model, chip = api.resolve_model(model), api.resolve_chip(chip)
    base = priced(model, chip, traffic, **dict(kwargs))
    rows = []
    for label, field in present_resources(chip):
        if progress:
            progress(f"+{factor - 1:.0%} {label}")
        row = priced(model, grown(chip, field, factor), traffic, **dict(kwargs))
        rows.append({"resource": label, "field": field, **_row(base, row)})
    api.resolve_chip(chip)  # later lookups of this id (api.with_cost without `chip_specs`) find the chip as given

    def key(r):
        c = r["usd_per_mtok_output_change"]
        return (c if c is not None else -(r["output_tok_s_per_chip_change"] or 0.0), r["resource"])
    rows.sort(key=key)
    return {"factor": factor, "base": {"usd_per_mtok_output": base.get("usd_per_mtok_output"),
                                       "output_tok_s_per_chip": base["output_tok_s_per_chip"],
                                       "binding": base.get("binding"), "binding_detail": base.get("binding_detail"),
                                       "mode": base.get("mode"), "fidelity": base.get("fidelity")},
            "rows": rows}


SRAM_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Multiples of a design's shared SRAM per die `sram_sweep` tries."""


def sram_sweep(model, design, traffic, scales: tuple[float, ...] = SRAM_SCALES,
               progress: Callable[[str], None] | None = None, **kwargs) -> list[dict]:
    """Output $/Mtok and tok/s/chip of a `ChipDesign` at each multiple of its `die.shared_sram_mb`,
    each re-derived (`design.derive.to_chip_spec`: area, power, unit cost and price move with the
    SRAM) and estimated at `fidelity="tiled"` (the SRAM-aware model; roofline ignores SRAM).
    An infeasible variant (too large for the reticle, say) is a row with its reasons, unpriced."""
    from tokenfab.design.derive import derive, to_chip_spec
    from tokenfab.specs import SpecError

    kwargs = {**kwargs, "fidelity": "tiled"}
    mb = float(design.die.shared_sram_mb)
    out = []
    for s in scales:
        if progress:
            progress(f"shared SRAM {s:g}x ({mb * s:g} MB per die)")
        d = design.model_copy(update={"die": design.die.model_copy(update={"shared_sram_mb": mb * s})})
        rep = derive(d)
        row = {"scale": s, "shared_sram_mb_per_die": mb * s, "die_area_mm2": rep.die_area_mm2,
               "unit_cost_usd": rep.unit_cost_usd, "feasible": rep.feasible,
               "infeasible_reasons": list(rep.infeasible_reasons), "usd_per_mtok_output": None,
               "output_tok_s_per_chip": None, "binding": None, "error": None}
        try:
            est = priced(model, to_chip_spec(d), traffic, **dict(kwargs))
            row.update(usd_per_mtok_output=est.get("usd_per_mtok_output"),
                       output_tok_s_per_chip=est["output_tok_s_per_chip"], binding=est.get("binding"))
        except (SpecError, ValueError) as exc:
            row["error"] = str(exc)
        out.append(row)
    return out
