"""Honest calibration: fit a chip's Efficiency from microbenchmark rows only.

Rules:
- Only kernel-level rows (GEMM, attention kernels, HBM streams, collectives, single operators)
  enter a fit; end-to-end rows never do, so the end-to-end error stays an out-of-sample test.
- A parameter is fitted only where the chip's rows inform it (moving it ±10% changes some row's
  prediction by more than 0.5%); the others keep the vendor family default.
- Least squares on log error (log(predicted / measured)), plus a weak ridge toward the family
  default (weight `PRIOR_WEIGHT` on log(x / default)) so that weakly informed directions stay put.
  Parameters live inside physical bounds (`BOUNDS`) through a logistic transform.
- Deterministic: fixed start (the family default), fixed Levenberg-Marquardt schedule, rows in
  file order. Same inputs, same parameters.
- A kernel of an older hardware generation does not calibrate a newer chip: FlashAttention-2
  (written for Ampere, without Hopper's TMA / warp-group MMA) runs at about a third of H100/H200
  peak, while the serving stacks on those chips use Hopper-native attention (FlashAttention-3,
  TensorRT-LLM FMHA, FlashMLA: 58-67% of peak on H800, rows M0401-M0404). Such rows are still
  validated, just not fitted (`excluded_from_fit`).
- One model for both calibration stages: where a chip's kernel-table fit (`--source aiconfigurator`)
  set fields (GEMM curves, MoE terms, custom all-reduce), the microbenchmark fit holds them at those
  values, fits only the rest, and GEMM rows stop informing the fields whose GEMM term the tables
  own (`TABLE_OWNED_GEMM_TERMS`: a table's GEMM fixed cost is not a kernel launch). Fitting in the
  family-default model instead left H100's `kernel_launch_us` at 6.2 µs, the fixed cost of one
  1024^3 FP8 GEMM, charged to every norm and activation kernel (H200 measured: 2.0 µs per kernel
  in a CUDA graph, bench/gpu/README.md).
- Two all-reduce kernels, two sets of fields: rows timing a serving stack's custom/quick all-reduce
  (framework names vLLM, SGLang, TensorRT-LLM or a `custom` kernel) fit `allreduce_latency_us` and
  `allreduce_bw_frac` against that kernel alone; rccl-tests/nccl-tests rows fit NCCL's
  `comm_latency_us` and `comm_bw_frac`. A chip without custom all-reduce rows keeps None (NCCL only).
  Likewise expert dispatch/combine rows (`alltoall`: DeepEP and its ports) fit the dispatch kernels'
  own `alltoall_latency_us` (a flat per-call cost) and `alltoall_bw_frac`, not NCCL's fields.
- Rows of a chip that takes another chip's calibration (`ChipSpec.calibration`: a 910C package of
  two 910B-class dies) fit that calibration too, each predicted on its own chip's links.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from tokenfab import catalog
from tokenfab.perf import comm
from tokenfab.perf.efficiency import MOE_COMPUTE_SCALE_MAX, Efficiency, calibration_path, family_default
from tokenfab.specs import SpecError
from tokenfab.validate.fit import levenberg_marquardt, to_bounded, to_unbounded
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate.micro import Unpredictable, is_block_scaled, is_custom_allreduce_row, predict_micro, system_for

BOUNDS: dict[str, tuple[float, float]] = {
    "gemm_compute_frac": (0.2, 1.0),
    "lowp_gemm_compute_frac": (0.2, 1.0),
    "fp4_gemm_compute_frac": (0.2, 1.0),
    # Block-scaled FP8 (per-128 scales applied outside the MMA on Hopper/CDNA3): measured as low as
    # ~0.25 of the FP8 peak for tuned kernels (aiter on MI300X), so a lower floor than the others.
    "block_gemm_compute_frac": (0.1, 1.0),
    # FP8 grouped expert GEMMs (fused-MoE kernels) as a share of the per-tensor dense FP8 fraction.
    "lowp_moe_gemm_compute_scale": (0.1, MOE_COMPUTE_SCALE_MAX),
    "attention_compute_frac": (0.1, 1.0),
    "hbm_frac": (0.3, 1.0),
    # Launch + prologue of a compiled or graph-replayed kernel is a few µs; eager-framework
    # dispatch overhead (tens of µs per op) is software, not a property of the chip.
    "kernel_launch_us": (0.5, 10.0),
    "comm_bw_frac": (0.2, 1.0),
    "comm_latency_us": (0.5, 50.0),
    "scaleout_latency_us": (1.0, 100.0),
    # The custom (one/two-shot) all-reduce of serving stacks: a flat latency of a few µs (one kernel,
    # peer flags over the fabric) and the share of the scale-up link its few thread blocks sustain.
    # Same ranges as the kernel-table fit (aic_fit.COMM_BOUNDS), latency floor as comm_latency_us.
    "allreduce_latency_us": (0.5, 50.0),
    "allreduce_bw_frac": (0.05, 1.0),
    # Expert dispatch/combine kernels (DeepEP and its ports): tens to a few hundred µs per call
    # (token layout, quantization, peer signalling), a share of each link like NCCL's.
    "alltoall_latency_us": (1.0, 500.0),
    "alltoall_bw_frac": (0.05, 1.0),
}
"""Fittable Efficiency fields and their physical ranges."""
CUSTOM_ALLREDUCE = ("allreduce_latency_us", "allreduce_bw_frac")
"""Fields only a serving stack's custom all-reduce rows inform (None in every family default): fitted
only for a chip that has such rows, started where the kernel-table fit starts them (2 x
comm_latency_us, comm_bw_frac), left None otherwise."""
ALLTOALL = ("alltoall_latency_us", "alltoall_bw_frac")
"""Fields only expert dispatch/combine rows inform (None in every family default): fitted only for a
chip that has such rows, started at NCCL's estimate (its collective steps' latency over the group,
`comm_bw_frac`), left None otherwise."""
MOE_FIT = ("lowp_moe_gemm_compute_scale",)
"""Fields FP8 fused-MoE layer rows inform (`scenario` moe) on a chip whose MoE terms no kernel-table fit
set (AMD: ROCm/aiter's tuned fused-MoE tables), kept only for a chip whose rows fit it (else None: the
grouped GEMM at the dense FP8 fraction)."""
MOE_SCALE_START = 0.5
"""Start of `lowp_moe_gemm_compute_scale`: at 1 a layer of few tokens per expert can be bound by its
weight stream and permutation passes, where the rows would show no slope and the sensitivity test
would call the field uninformed; at 0.5 the grouped GEMMs' compute binds in every shipped row."""
BLOCK = ("block_gemm_compute_frac",)
"""Fields only block-scaled FP8 GEMM rows inform (`micro.is_block_scaled`; None in every family default):
started at the per-tensor FP8 value, kept only for a chip whose rows fit it. Their fixed cost is not
fitted: the rows are large-M (compute-bound) kernels, which do not pin it down."""
SAME_SILICON: dict[str, str] = {
    "gb200": "b200",
    "h100-sxm": "h800-sxm",
    "h200-sxm": "h800-sxm",
    "gh200": "h800-sxm",
    "mi325x": "mi300x",
}
"""Chip -> chip with the same die and kernel libraries whose fitted kernel fractions stand in where
the chip's own rows say nothing. GB200 and B200 are the same Blackwell GPU (GB200 at a higher
power limit, which its higher catalog peaks already carry); H100 SXM, H200, GH200 and H800 are all
GH100 running the same Hopper kernels (H800 differs only in NVLink); MI325X is MI300X's CDNA3 compute
dies (304 CUs, the same peaks) with HBM3E. A kernel's achievable share
of the peak is a property of the die and the kernel, so it transfers; link figures do not."""
TRANSFERABLE = ("gemm_compute_frac", "lowp_gemm_compute_frac", "fp4_gemm_compute_frac", "block_gemm_compute_frac",
                "lowp_moe_gemm_compute_scale", "attention_compute_frac")
"""Efficiency fields that may transfer between SAME_SILICON chips (kernel fractions, not links)."""
PRIOR_WEIGHT = 0.1
SENSITIVITY = 0.005
_LOWP = ("fp8", "fp4", "int8", "int4")


@dataclass
class ChipFit:
    """A chip's calibration: the fitted Efficiency and the record of how it was obtained."""

    chip: str
    efficiency: Efficiency
    fitted: list[str]
    kept_default: list[str]
    rows: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    before_median_ape: float | None = None
    after_median_ape: float | None = None
    transferred: dict = field(default_factory=dict)
    """Fields taken from a SAME_SILICON chip's fit: {field: {value, from}}."""


def _start(vendor: str) -> Efficiency:
    base = family_default(vendor)
    if base.lowp_gemm_compute_frac is None:
        base = base.model_copy(update={"lowp_gemm_compute_frac": base.gemm_compute_frac})
    if base.fp4_gemm_compute_frac is None:
        base = base.model_copy(update={"fp4_gemm_compute_frac": base.lowp_gemm_compute_frac})
    if base.block_gemm_compute_frac is None:  # started at the per-tensor value; kept only where rows fit it
        base = base.model_copy(update={"block_gemm_compute_frac": base.lowp_gemm_compute_frac})
    return base


def _with(eff: Efficiency, values: dict[str, float]) -> Efficiency:
    return eff.model_copy(update=values)


def _chips(rows, chip) -> list:
    """Each row's own chip (`chip` where it is that chip; rows of chips sharing its calibration)."""
    return [chip if r.hardware == chip.id else catalog.load_chip(r.hardware) for r in rows]


def _predict(rows, chip, eff) -> np.ndarray:
    return np.array([predict_micro(r, c, eff) for r, c in zip(rows, _chips(rows, chip))], dtype=float)


def _fit_value(row, chip, eff) -> float:
    """What a row measures, as the fit sees it: a custom all-reduce row times the custom kernel alone.
    (The engine takes the faster of it and NCCL's estimate; fitting that minimum would let the custom
    kernel's rows drag NCCL's `comm_latency_us` and `comm_bw_frac` wherever NCCL's estimate happens
    to be the lower one during the search.)"""
    if eff.allreduce_latency_us is not None and is_custom_allreduce_row(row) and row.metric == "latency_us" \
            and row.message_bytes and row.num_chips and row.num_chips <= chip.scaleup_domain:
        system = system_for(chip, row.num_chips)
        return float(comm.custom_allreduce_time_s(row.message_bytes, row.num_chips, system, eff)) * 1e6
    return predict_micro(row, chip, eff)


def _fit_predict(rows, chip, eff) -> np.ndarray:
    return np.array([_fit_value(r, c, eff) for r, c in zip(rows, _chips(rows, chip))], dtype=float)


def _stage(row) -> int:
    """Which fit stage a row belongs to: 0 the chip's plain kernels and links, 1 block-scaled FP8 GEMMs
    (`BLOCK`), 2 fused-MoE layers (`MOE_FIT`). Rows of stages 1 and 2 inform only their stage's fields."""
    return 2 if row.scenario == "moe" else (1 if is_block_scaled(row) else 0)


STAGE_FIELDS = {1: BLOCK, 2: MOE_FIT}


def _with_custom_start(base: Efficiency, rows) -> Efficiency:
    """`base` with the custom all-reduce fields started (when some row measures that kernel)."""
    if any(r.scenario == "moe" for r in rows) and base.lowp_moe_gemm_compute_scale is None:
        base = _with(base, {"lowp_moe_gemm_compute_scale": MOE_SCALE_START})
    if any(r.scenario == "alltoall" for r in rows):
        # NCCL's estimate for the rows' typical group (8 ranks: 3 steps) as the start.
        base = _with(base, {"alltoall_latency_us": 3.0 * base.comm_latency_us, "alltoall_bw_frac": base.comm_bw_frac})
    if not any(is_custom_allreduce_row(r) for r in rows):
        return base
    return _with(base, {"allreduce_latency_us": 2.0 * base.comm_latency_us, "allreduce_bw_frac": base.comm_bw_frac})


TABLE_OWNED_GEMM_TERMS = {"kernel_launch_us": "gemm_fixed_us", "hbm_frac": "gemm_hbm_frac"}
"""A field a GEMM row informs only through a GEMM term a kernel-table fit can set instead: where that
fit set the term (it is held), GEMM rows no longer inform the field. A GEMM's fixed cost from the
tables is not a kernel launch (`kernel_launch_us` prices the non-GEMM kernels), nor is a GEMM's
weight-streaming fraction the copy bandwidth of elementwise kernels."""


def _informed(rows, chip, base: Efficiency, held=frozenset()) -> list[str]:
    """Parameters some row's prediction is sensitive to (±10% moves a prediction > 0.5%), GEMM rows
    left out for the fields whose GEMM term is `held` (`TABLE_OWNED_GEMM_TERMS`); block-scaled GEMM rows
    and fused-MoE rows (`_stage`) inform only their kernels' own fields (`BLOCK`, `MOE_FIT`): their
    prologue and scale traffic are their own, not the chip's kernel launch or copy bandwidth."""
    p0 = _fit_predict(rows, chip, base)
    out = []
    for name, (lo, hi) in BOUNDS.items():
        x = getattr(base, name)
        if x is None or name in held:  # None: a custom all-reduce field on a chip without such rows
            continue
        judge = np.array([not (r.scenario == "gemm" and TABLE_OWNED_GEMM_TERMS.get(name) in held)
                          and (_stage(r) == 0 or name in STAGE_FIELDS[_stage(r)]) for r in rows])
        for f in (0.9, 1.1):
            v = min(max(x * f, lo), hi)
            p = _fit_predict(rows, chip, _with(base, {name: v}))
            if np.any((np.abs(p / p0 - 1.0) > SENSITIVITY) & judge):
                out.append(name)
                break
    return out


def _residuals(z, names, rows, chip, base, meas, x0) -> np.ndarray:
    vals = {n: float(to_bounded(zi, *BOUNDS[n])) for n, zi in zip(names, z)}
    pred = _fit_predict(rows, chip, _with(base, vals))
    r_data = np.log(pred / meas)
    r_prior = PRIOR_WEIGHT * np.log(np.array([vals[n] for n in names]) / x0)
    return np.concatenate([r_data, r_prior])


def excluded_from_fit(row: MeasurementRow, chip) -> str | None:
    """Why a microbenchmark row must not calibrate `chip` (None: it may)."""
    fa2 = "flashattention 2" in row.framework.lower() or "flashattention-2" in row.notes.lower()
    hopper_or_later = chip.vendor == "NVIDIA" and chip.fp8_tflops is not None and (chip.launch_year or 0) >= 2022 \
        and chip.scaleup_gb_s >= 200
    if row.scenario == "attention" and fa2 and hopper_or_later:
        return "FlashAttention-2 is a pre-Hopper kernel; not representative of this chip's serving attention"
    if row.scenario == "moe" and (row.weight_precision or row.activation_precision) != "fp8":
        return "only FP8 MoE layer rows fit (lowp_moe_gemm_compute_scale); others are scored, not fitted"
    return None


def calibration_file(chip_id: str, out_dir: Path | None = None) -> Path:
    """Where the chip's calibration is written: `out_dir`/<chip>.yaml, or the package's file."""
    return (Path(out_dir) / f"{chip_id}.yaml") if out_dir else calibration_path(chip_id)


def existing_doc(chip_id: str, out_dir: Path | None = None) -> tuple[dict | None, Path]:
    """(the chip's calibration document, its path): the one in `out_dir` where it exists, else the
    package's (what a write to `out_dir` starts from); (None, package path) where neither exists."""
    path = calibration_file(chip_id, out_dir)
    if not path.exists():
        path = calibration_path(chip_id)
    return _read_doc(path), path


def kernel_table_fields(chip_id: str, out_dir: Path | None = None) -> dict:
    """The Efficiency fields the chip's kernel-table fit applied (its calibration file's
    `aiconfigurator.applied`; empty without one). The microbenchmark fit holds them at these values
    and does not fit them: the engine prices with them on top, so the rows must be explained in
    that same model (a GEMM fixed cost the tables set is not a kernel launch to be fitted)."""
    doc, _ = existing_doc(chip_id, out_dir)
    sec = (doc or {}).get("aiconfigurator") or {}
    return dict(sec.get("applied") or {})


def fit_chip(chip_id: str, rows: list[MeasurementRow], label: str, held: dict | None = None) -> ChipFit:
    """Fit `chip_id`'s Efficiency from its usable microbenchmark rows in `rows`, with the fields
    in `held` (default: `kernel_table_fields`) fixed at their values and left out of the fit."""
    chip = catalog.load_chip(chip_id)
    held = kernel_table_fields(chip_id) if held is None else held
    plain = _start(chip.vendor)
    base = _with(plain, held) if held else plain
    usable, skipped = [], []
    for r in rows:
        if not r.usable or not r.is_micro or chip_id not in (r.hardware, _calibration_target(r.hardware or "")):
            continue
        own = chip if r.hardware == chip_id else catalog.load_chip(r.hardware)
        why = excluded_from_fit(r, own)
        if why:
            skipped.append({"id": r.id, "reason": why})
            continue
        try:
            v = predict_micro(r, own, base)
        except Unpredictable as exc:
            skipped.append({"id": r.id, "reason": str(exc)})
            continue
        if np.isfinite(v) and v > 0:
            usable.append(r)
    if not usable:
        return ChipFit(chip_id, family_default(chip.vendor), [], [n for n in BOUNDS if getattr(base, n) is not None],
                       [], skipped)
    meas = np.array([r.value for r in usable], dtype=float)
    before = _predict(usable, chip, base)
    start = _with_custom_start(base, usable)
    names = _informed(usable, chip, start, frozenset(held))
    # In stages (`_stage`): block-scaled GEMM rows and fused-MoE rows inform only their kernels' own fields
    # (`STAGE_FIELDS`), so those are fitted on them alone after the rest, which the other rows fit as if
    # those rows were absent.
    fitted: dict[str, float] = {}
    own = {n for fields in STAGE_FIELDS.values() for n in fields}
    for stage in (0, 1, 2):
        sel = [i for i, r in enumerate(usable) if _stage(r) == stage]
        stage_names = [n for n in names if (n in STAGE_FIELDS[stage] if stage else n not in own)]
        if not sel or not stage_names:
            continue
        rows_s, meas_s, base_s = [usable[i] for i in sel], meas[sel], _with(start, fitted)
        x0 = np.array([getattr(base_s, n) for n in stage_names], dtype=float)
        z0 = np.array([to_unbounded(x, *BOUNDS[n]) for n, x in zip(stage_names, x0)])
        z = levenberg_marquardt(lambda zz: _residuals(zz, stage_names, rows_s, chip, base_s, meas_s, x0), z0)
        fitted |= {n: float(np.round(to_bounded(zi, *BOUNDS[n]), 4)) for n, zi in zip(stage_names, z)}
    ids = ",".join(r.id for r in usable)
    values = dict(fitted)
    if "lowp_gemm_compute_frac" not in values:
        values["lowp_gemm_compute_frac"] = family_default(chip.vendor).lowp_gemm_compute_frac
    if "fp4_gemm_compute_frac" not in values:
        values["fp4_gemm_compute_frac"] = family_default(chip.vendor).fp4_gemm_compute_frac
    for n in CUSTOM_ALLREDUCE + ALLTOALL + BLOCK + MOE_FIT:
        # a start value no row informed is not a measurement: back to the default (NCCL's; per-tensor FP8's)
        if n not in values:
            values[n] = getattr(family_default(chip.vendor), n)
    if "lowp_moe_gemm_compute_scale" in fitted and chip.fp4_tflops and plain.fp4_moe_gemm_compute_scale is None:
        # FP8 fused-MoE rows say nothing of the 4-bit kernels (MXFP4/NVFP4 scales are native to the MMA):
        # they keep the dense 4-bit fraction, as before, instead of falling back to the FP8 scale.
        values["fp4_moe_gemm_compute_scale"] = 1.0
    values["source"] = f"calibrated: {label} rows {ids}"
    # The file's efficiency holds this fit alone: the kernel-table fit is applied on top when written
    # (`write_calibration`), and its `replaced` values must be this fit's, not its own.
    eff = _with(plain, values)
    after = _predict(usable, chip, _with(eff, held) if held else eff)
    fam = family_default(chip.vendor)
    kept = [n for n in BOUNDS if n not in fitted and n not in held and getattr(base, n) is not None]
    row_log = [{"id": r.id, "scenario": r.scenario, "metric": r.metric, "measured": float(m),
                "before": float(round(b, 6)), "after": float(round(a, 6)),
                "error_before": float(round((b - m) / m, 4)), "error_after": float(round((a - m) / m, 4))}
               for r, m, b, a in zip(usable, meas, before, after)]
    fit = ChipFit(chip_id, eff, list(fitted), kept, row_log, skipped,
                  float(np.median(np.abs(before / meas - 1))), float(np.median(np.abs(after / meas - 1))))
    fit.family_default = fam  # type: ignore[attr-defined]
    return fit


def _calibration_target(hardware: str) -> str | None:
    """The calibration a row of `hardware` fits: the chip's `calibration`, else its own (None for an
    unknown chip)."""
    try:
        chip = catalog.load_chip(hardware)
    except SpecError:
        return None
    return chip.calibration or chip.id


def calibrate(rows: list[MeasurementRow], label: str, chips: list[str] | None = None,
              out_dir: Path | None = None) -> list[ChipFit]:
    """Fits for every chip with usable microbenchmark rows (or the given chips), in id order, each
    holding the kernel-table fields of the calibration file it will be written over (`out_dir`)."""
    present = sorted({_calibration_target(r.hardware) for r in rows if r.usable and r.is_micro and r.hardware}
                     - {None})
    targets = [c for c in present if not chips or c in chips]
    out = []
    for cid in targets:
        out.append(fit_chip(cid, rows, label, held=kernel_table_fields(cid, out_dir)))
    return transfer_same_silicon(out)


def transfer_same_silicon(fits: list[ChipFit]) -> list[ChipFit]:
    """Give each chip the kernel fractions (`TRANSFERABLE`) its own rows leave unfitted from its
    SAME_SILICON donor's fit, when the donor's rows fitted them. Deterministic: donors are read as
    fitted from their own rows only (no chains)."""
    by_chip = {f.chip: f for f in fits}
    for f in fits:
        donor = by_chip.get(SAME_SILICON.get(f.chip, ""))
        if donor is None:
            continue
        take = {n: getattr(donor.efficiency, n) for n in TRANSFERABLE if n in donor.fitted and n not in f.fitted}
        if not take:
            continue
        src = f.efficiency.source if f.fitted else f"calibrated: {f.efficiency.source}"
        src += f"; {', '.join(sorted(take))} from {donor.chip} (same silicon)"
        f.efficiency = f.efficiency.model_copy(update={**take, "source": src})
        f.transferred = {n: {"value": v, "from": donor.chip} for n, v in take.items()}
        f.kept_default = [n for n in f.kept_default if n not in take]
    return fits


def input_digest(paths: list[Path]) -> str:
    """sha256 of the input files' bytes (in order), recorded with a fit."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def calibration_yaml(fit: ChipFit, label: str, digest: str) -> str:
    """The calibration file: `efficiency` (what efficiency_for loads) and the `fit` record."""
    eff = fit.efficiency.model_dump(mode="json", exclude_none=True)
    fam = getattr(fit, "family_default", None)
    doc = {
        "chip": fit.chip,
        "efficiency": eff,
        "fit": {
            "input": label,
            "input_sha256": digest,
            "method": ("least squares on log(predicted/measured) over microbenchmark rows only, ridge "
                       f"{PRIOR_WEIGHT} x log(x/family default), logistic bounds, Levenberg-Marquardt from "
                       "the family default (deterministic)"
                       + ("; the custom all-reduce fields (rows whose framework is a serving stack) start, and "
                          "are pulled, at 2 x comm_latency_us and comm_bw_frac of the family default"
                          if set(CUSTOM_ALLREDUCE) & set(fit.fitted) else "")),
            "fitted": fit.fitted,
            "transferred_same_silicon": fit.transferred,
            "kept_family_default": fit.kept_default,
            "bounds": {n: list(BOUNDS[n]) for n in fit.fitted},
            "family_default": fam.model_dump(mode="json", exclude_none=True) if fam else None,
            "median_ape_before": fit.before_median_ape,
            "median_ape_after": fit.after_median_ape,
            "rows": fit.rows,
            "rows_skipped": fit.skipped,
        },
    }
    header = (f"# {fit.chip}: Efficiency fitted by `tokenfab calibrate` from microbenchmark rows only.\n"
              "# Versioned data: re-run `tokenfab calibrate` to refresh; do not edit by hand.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, width=110, allow_unicode=True)


def write_calibration(fit: ChipFit, label: str, digest: str, out_dir: Path | None = None) -> Path:
    """Write the chip's calibration file (default: the package's catalog/calibration/<chip>.yaml)."""
    path = calibration_file(fit.chip, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = calibration_yaml(fit, label, digest)
    old, _ = existing_doc(fit.chip, out_dir)
    if old and old.get("aiconfigurator"):  # keep the kernel-table fit on top of the refreshed one
        doc = yaml.safe_load(text)
        sec = old["aiconfigurator"]
        doc["efficiency"], doc["aiconfigurator"] = _apply_aic(doc["efficiency"], sec.get("applied") or {}, sec)
        text = AIC_HEADER.format(chip=fit.chip) + yaml.safe_dump(doc, sort_keys=False, width=110, allow_unicode=True)
    path.write_text(text)
    return path


# --- Kernel-table calibration (`tokenfab calibrate --source aiconfigurator`) ------------------------
# The microbenchmark fit above owns the `fit` section of a calibration file; the kernel-table fit
# (validate/aic_fit.py) owns an `aiconfigurator` section: the Efficiency fields it applied and the
# values they replaced. Each writer keeps the other's section, so either may be re-run alone.

AIC_HEADER = ("# {chip}: Efficiency fitted by `tokenfab calibrate` from microbenchmark rows and/or measured kernel\n"
              "# tables (aiconfigurator). Versioned data: re-run `tokenfab calibrate` to refresh;\n"
              "# do not edit by hand.\n")


def _read_doc(path: Path) -> dict | None:
    from tokenfab.specs.base import load_yaml

    if not Path(path).exists():
        return None
    doc = load_yaml(Path(path))
    return doc if isinstance(doc, dict) else None


def _strip_aic(eff_map: dict, section: dict | None) -> dict:
    """The efficiency mapping with the kernel-table fit's values put back to what they replaced."""
    out = dict(eff_map)
    for k, v in ((section or {}).get("replaced") or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    if section and "source_before" in section:
        out["source"] = section["source_before"]
    return out


def base_efficiency(chip_id: str, vendor: str, out_dir: Path | None = None) -> Efficiency:
    """The chip's efficiency without the kernel-table fit (where that fit starts: reruns are idempotent)."""
    doc, path = existing_doc(chip_id, out_dir)
    if doc is None or "efficiency" not in doc or "fit" not in doc:
        # No microbenchmark fit owns the file's efficiency: under the kernel-table fit it is the
        # family default as it stands today (not a copy taken when the file was first written).
        return family_default(vendor)
    return Efficiency.from_mapping(_strip_aic(doc["efficiency"], doc.get("aiconfigurator")), origin=str(path))


def _apply_aic(eff_map: dict, applied: dict, section: dict) -> tuple[dict, dict]:
    """(efficiency mapping with `applied` on top, section with `replaced` and `source_before`)."""
    out = dict(eff_map)
    section = dict(section)
    section["replaced"] = {k: out.get(k) for k in applied}
    section["source_before"] = out.get("source", "family default")
    out.update(applied)
    if applied:
        out["source"] = (f"{section['source_before']}; GEMM curves and all-reduce from aiconfigurator-core "
                         f"{section.get('package_version')} kernel tables ({section.get('framework')})")
    Efficiency.from_mapping(out, origin="aiconfigurator fit")  # validate before writing
    return out, section


def write_aiconfigurator(chip_id: str, vendor: str, applied: dict, section: dict,
                         out_dir: Path | None = None) -> Path:
    """Merge a kernel-table fit into the chip's calibration file (created from the family default)."""
    path = calibration_file(chip_id, out_dir)
    doc = existing_doc(chip_id, out_dir)[0] or {"chip": chip_id,
                                                "efficiency": family_default(vendor).model_dump(mode="json",
                                                                                                exclude_none=True)}
    base = (_strip_aic(doc["efficiency"], doc.get("aiconfigurator")) if "fit" in doc
            else family_default(vendor).model_dump(mode="json", exclude_none=True))
    eff_map, section = _apply_aic(base, applied, section)
    doc["efficiency"] = eff_map
    doc["aiconfigurator"] = section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(AIC_HEADER.format(chip=chip_id) + yaml.safe_dump(doc, sort_keys=False, width=110,
                                                                    allow_unicode=True))
    return path
