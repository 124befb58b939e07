"""Fit a chip's GEMM curves and collective alpha/beta from aiconfigurator's measured kernel tables.

Physical and small, per chip:
- GEMM, per kernel precision (bf16, fp8 per-tensor, fp8 block-scaled, nvfp4): four numbers in the
  engine's own roofline (`perf.roofline.gemm_time_s`, tile padding of M and N included):
  the compute fraction a large GEMM sustains, the HBM fraction the weight stream sustains (what
  sets small-M, decode-sized GEMMs), a fixed cost per GEMM (launch, prologue/epilogue, scale
  handling) and, for the low-precision paths, the bytes per input element of the activation
  quantization the table times with each GEMM (a memory pass over M x K, `QUANT_BYTES_START`):
  fitted apart, it leaves the compute fraction what the GEMM sustains (H100 FP8 0.52 -> 0.72 of peak,
  table error 8.7% -> 4.1%, no N dependence left).
- All-reduce inside the scale-up domain: `allreduce_latency_us` (alpha, flat in the group size) and
  `allreduce_bw_frac` (beta: the share of the link its ring/two-shot phase sustains), in the
  engine's `perf.comm.allreduce_time_s`,
  fitted on the custom all-reduce table (what tensor-parallel serving runs).
- The chip's NCCL collectives, `comm_latency_us` (alpha per ring/tree step) and `comm_bw_frac` (the
  share of the link a ring sustains), fitted on the NCCL all-reduce table for PCIe-only chips
  (`pcie_only`) where the chip's microbenchmark rows (nccl-tests) do not fit them
  (`microbench_fitted`): the link datasheet overstates what a ring gets through PCIe switches and
  host bridges (RTX PRO 6000, 4 GPUs, 8M half elements = 16 MiB: 2.02 ms measured, 0.51 ms at 80% of
  PCIe Gen5 x16). Otherwise the NCCL table is scored with the fitted values (reported, not fitted).
Least squares on log(predicted / measured), logistic bounds, deterministic Levenberg-Marquardt from
the current calibration (same inputs, same numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tokenfab.perf import comm, roofline
from tokenfab.perf.efficiency import BLOCK_GEMM_FIELDS, Efficiency
from tokenfab.specs import ChipSpec, SystemSpec
from tokenfab.validate import aiconfigurator as aic
from tokenfab.validate.fit import levenberg_marquardt, to_bounded, to_unbounded

GEMM_BOUNDS = {"compute_frac": (0.05, 1.0), "hbm_frac": (0.1, 1.0), "fixed_us": (0.2, 60.0),
               "quant_bytes": (0.0, 12.0)}
"""Physical ranges of the per-precision GEMM parameters."""
QUANT_BYTES_START = {"fp8": 5.0, "fp8_block": 3.0, "fp4": 3.0, "int8": 3.0}
"""Activation bytes per input element (M x K) that the tables' quantization moves before a low-precision
GEMM, where the fit starts: a per-tensor dynamic scale takes an amax pass (read bf16, 2 B) and a
quantize pass (read 2 B, write 1 B) = 5; per-token-group (fp8_block), NVFP4 and SmoothQuant scales
quantize in one pass (read 2, write 1 or less) = 3. The fit then finds what the tables' flow moves
(PyTorch's abs-then-max amax materializes the absolute values: up to 9). This memory pass is part of
what the table times, not of the GEMM: fitted as a compute fraction it makes every large low-precision
GEMM slower and every small-N one faster than measured (H100 FP8, M >= 1024: N = 512 -48%,
N = 16384 +25% with the pass left out). Serving engines fuse the quantization into the preceding norm
or activation kernel (`Efficiency.dynamic_quant_in_gemm`), so the engine does not charge it."""
COMM_BOUNDS = {"allreduce_latency_us": (0.2, 50.0), "allreduce_bw_frac": (0.05, 1.0)}
NCCL_BOUNDS = {"comm_latency_us": (0.5, 50.0), "comm_bw_frac": (0.02, 1.0)}
"""Physical ranges of the NCCL collective parameters (`fit_nccl_allreduce`)."""
"""Physical ranges of the collective parameters. The other collectives' share of the link
(`comm_bw_frac`, fitted on large-message nccl-tests rows) is not touched."""
PEAK_PRECISION = {"bf16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "fp4": "fp4", "int8": "int8",
                  "w4a16": "bf16", "w8a16": "bf16"}
"""The matrix path each kernel precision computes on (weight-only kernels: BF16)."""
WEIGHT_ONLY = ("w4a16", "w8a16")
"""Weight-only kernels: their compute fraction is BF16's (kept); the fit sets their weight stream and
fixed cost, which include dequantizing the weights to the compute format."""
WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0 + 4.0 / (128 * 128), "fp4": 4.5 / 8, "int8": 1.0,
                "w4a16": 4.5 / 8, "w8a16": 1.0}
"""Stored weight bytes per element of each kernel precision (block scales included)."""
ACT_IN_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp8_block": 1.0 + 4.0 / 128, "fp4": 4.5 / 8, "int8": 1.0,
                "w4a16": 2.0, "w8a16": 2.0}
EFFICIENCY_FIELDS = {
    "bf16": ("gemm_compute_frac", "gemm_hbm_frac", "gemm_fixed_us", None),
    "fp8": ("lowp_gemm_compute_frac", "lowp_gemm_hbm_frac", "lowp_gemm_fixed_us", "lowp_act_quant_bytes"),
    "int8": ("lowp_gemm_compute_frac", "lowp_gemm_hbm_frac", "lowp_gemm_fixed_us", "lowp_act_quant_bytes"),
    "fp4": ("fp4_gemm_compute_frac", "fp4_gemm_hbm_frac", "fp4_gemm_fixed_us", "fp4_act_quant_bytes"),
    "fp8_block": BLOCK_GEMM_FIELDS,
    "w4a16": (None, "fp4_gemm_hbm_frac", "fp4_gemm_fixed_us", None),
}
"""Which Efficiency fields each fitted precision sets. fp8_block sets the block-scaled FP8 class that a
model with a block-scaled FP8 release runs (`Efficiency.for_block_scales`); w8a16 is recorded, not used
(the engine's int8 is W8A8). int8 (SmoothQuant) sets the low-precision class only
on chips without FP8; w4a16 sets the 4-bit class only on chips without FP4 math."""
GEMM_PARAMS = ("compute_frac", "hbm_frac", "fixed_us", "quant_bytes")
"""The fitted GEMM parameters, in the order of each `EFFICIENCY_FIELDS` entry."""
MIN_DIM = 512
"""GEMMs with N or K below this are left out of the fit: no LLM linear layer has them (the tables
sweep N, K down to 32), and their launch-bound kernels would drag the curve away from real shapes."""
SERVING_M = (256, 1024)
"""Rows fitted: M ≤ 256 (decode batches per rank) or M ≥ 1024 (prefill chunks). The band between
is where the tables' kernel choice (tile shape, split-K heuristics) varies most from shape to shape;
it is scored, not fitted."""
M_BINS = ((1, 16), (17, 64), (65, 256), (257, 1024), (1025, 4096), (4097, 1 << 40))


@dataclass
class GemmFit:
    precision: str
    rows: int
    params: dict
    median_ape_before: float
    median_ape_after: float
    signed_median_before: float
    signed_median_after: float
    by_m_after: dict = field(default_factory=dict)
    """Signed median error per M bin after the fit ('1-16': -0.03, ...)."""
    by_m_before: dict = field(default_factory=dict)
    """Signed median error per M bin with the values the engine had before the fit."""


@dataclass
class CommFit:
    table: str
    rows: int
    params: dict
    median_ape_before: float
    median_ape_after: float
    small_msg_signed_before: float | None
    small_msg_signed_after: float | None
    """Signed median error on messages under 64 KiB."""


def gemm_seconds(m, n, k, precision: str, chip: ChipSpec, eff: Efficiency, params: dict) -> np.ndarray:
    """The engine's roofline time of GEMMs in `precision` with the given (compute, hbm, fixed) values."""
    w = WEIGHT_BYTES[precision]
    a_in, out_b = ACT_IN_BYTES[precision], 2.0
    a = (k * a_in + n * out_b) / (k + n)  # roofline charges m·(k+n)·a: mean of input and output widths
    cls = str(roofline.kernel_class(w))
    # The tables time the PyTorch flow's dynamic activation quantization with each FP8/FP4 GEMM
    # (`Efficiency.dynamic_quant_in_gemm`): fit the fixed cost as the tables see it.
    e = eff.model_copy(update={
        "dynamic_quant_in_gemm": True,
        {"bf16": "gemm_hbm_frac", "lowp": "lowp_gemm_hbm_frac", "fp4": "fp4_gemm_hbm_frac"}[cls]: params["hbm_frac"],
        {"bf16": "gemm_fixed_us", "lowp": "lowp_gemm_fixed_us", "fp4": "fp4_gemm_fixed_us"}[cls]: params["fixed_us"]})
    t, _ = roofline.gemm_time_s(m, n, k, chip.peak_tflops(PEAK_PRECISION[precision]), chip.hbm_tb_s, w, a,
                                chip.cores or 100, e, compute_frac=params["compute_frac"])
    # The activation quantization the table times with the GEMM: a memory pass over the M x K input.
    quant = np.asarray(m, dtype=float) * k * params.get("quant_bytes", 0.0) / (chip.hbm_tb_s * 1e12 * eff.hbm_frac)
    return np.asarray(t, dtype=float) + quant


def current_gemm_params(eff: Efficiency, precision: str) -> dict:
    """The (compute, hbm, fixed) values the engine uses now for `precision`."""
    p = PEAK_PRECISION[precision]
    cls = str(roofline.kernel_class(WEIGHT_BYTES[precision]))
    return {"compute_frac": eff.gemm_frac(p), "hbm_frac": eff.gemm_stream_frac(cls),
            "fixed_us": eff.gemm_fixed_s(cls, table_flow=True) * 1e6}


def _m_bins(m, err) -> dict:
    out = {}
    for lo, hi in M_BINS:
        sel = (m >= lo) & (m <= hi)
        if sel.any():
            out[f"{lo}-{hi}" if hi < (1 << 40) else f">{lo - 1}"] = round(float(np.median(err[sel])), 4)
    return out


def gemm_rows(table: aic.Table, dtype: str, min_dim: int = MIN_DIM):
    """(mask, m, n, k, measured seconds) of the table's `dtype` rows with N, K >= `min_dim`: the rows
    a GEMM fit scores (`fit_gemm`, `fit_framework_gemm`)."""
    c = table.columns
    sel = (c["gemm_dtype"] == dtype) & (c["n"] >= min_dim) & (c["k"] >= min_dim)
    m, n, k = (np.asarray(c[x][sel], float) for x in ("m", "n", "k"))
    return sel, m, n, k, c["latency_s"][sel]


def fit_gemm(table: aic.Table, chip: ChipSpec, eff: Efficiency, fit_compute: bool = True,
             min_dim: int = MIN_DIM) -> list[GemmFit]:
    """One GemmFit per precision of the table that the chip has a matrix path for.

    `fit_compute=False` keeps the compute fraction the chip has now (e.g. fitted on best-shape
    microbenchmarks) and fits only the weight-streaming fraction and the fixed cost: the small-M,
    decode-sized regime."""
    out = []
    for dtype, prec in aic.GEMM_DTYPES.items():
        sel, m, n, k, meas = gemm_rows(table, dtype, min_dim)
        if not sel.any() or not chip.peak_tflops(PEAK_PRECISION[prec]):
            continue
        fit_rows = (m <= SERVING_M[0]) | (m >= SERVING_M[1])
        start = current_gemm_params(eff, prec)  # the engine now: no quantization pass (quant_bytes 0)
        names = [nm for nm in GEMM_BOUNDS if ((fit_compute and prec not in WEIGHT_ONLY) or nm != "compute_frac")
                 and (nm != "quant_bytes" or (fit_compute and prec in QUANT_BYTES_START))]
        init = {**start, "quant_bytes": QUANT_BYTES_START.get(prec, 0.0) if fit_compute else 0.0}

        fm, fn, fk, fmeas = m[fit_rows], n[fit_rows], k[fit_rows], meas[fit_rows]

        def residuals(z, m=fm, n=fn, k=fk, meas=fmeas, prec=prec, names=names, start=init):
            vals = {**start, **{nm: float(to_bounded(zi, *GEMM_BOUNDS[nm])) for nm, zi in zip(names, z)}}
            return np.log(gemm_seconds(m, n, k, prec, chip, eff, vals) / meas)

        z0 = np.array([to_unbounded(min(max(init[nm], GEMM_BOUNDS[nm][0] * 1.01), GEMM_BOUNDS[nm][1] * 0.99),
                             *GEMM_BOUNDS[nm]) for nm in names])
        z = levenberg_marquardt(residuals, z0, iters=80)
        params = {**{nm: float(np.round(v, 4)) for nm, v in init.items()},
                  **{nm: float(np.round(to_bounded(zi, *GEMM_BOUNDS[nm]), 4)) for nm, zi in zip(names, z)}}
        before = gemm_seconds(m, n, k, prec, chip, eff, start) / meas - 1.0
        after = gemm_seconds(m, n, k, prec, chip, eff, params) / meas - 1.0
        out.append(GemmFit(prec, int(sel.sum()), params, float(np.median(np.abs(before))),
                           float(np.median(np.abs(after))), float(np.median(before)), float(np.median(after)),
                           _m_bins(m, after), _m_bins(m, before)))
    return out


def _allreduce(table: aic.Table, system: SystemSpec, dtype_col: str, op: str | None = None):
    c = table.columns
    sel = c["num_gpus"] <= system.scaleup_domain
    if op is not None:
        sel &= c["op_name"] == op
    b = aic.message_bytes(c[dtype_col][sel], c["message_size"][sel])
    ok = np.isfinite(b)
    return b[ok], c["num_gpus"][sel][ok], c["latency_s"][sel][ok]


def _score(b, p, meas, system, eff):
    err = np.asarray(comm.allreduce_time_s(b, p, system, eff), float) / meas - 1.0
    small = b < 64 * 1024
    return err, (float(np.median(err[small])) if small.any() else None)


def fit_allreduce(table: aic.Table, system: SystemSpec, eff: Efficiency) -> CommFit | None:
    """Fit alpha (`comm_latency_us`) and beta (`comm_bw_frac`) on a custom all-reduce table."""
    b, p, meas = _allreduce(table, system, "allreduce_dtype")
    keep = p > 1
    b, p, meas = b[keep], p[keep], meas[keep]
    if b.size < 4:
        return None
    names = list(COMM_BOUNDS)

    def residuals(z):
        e = eff.model_copy(update={nm: float(to_bounded(zi, *COMM_BOUNDS[nm])) for nm, zi in zip(names, z)})
        return np.log(np.asarray(comm.custom_allreduce_time_s(b, p, system, e), float) / meas)

    start = {"allreduce_latency_us": 2.0 * eff.comm_latency_us, "allreduce_bw_frac": eff.comm_bw_frac}
    z0 = np.array([to_unbounded(min(max(start[nm], COMM_BOUNDS[nm][0] * 1.01), COMM_BOUNDS[nm][1] * 0.99),
                         *COMM_BOUNDS[nm]) for nm in names])
    z = levenberg_marquardt(residuals, z0, iters=80)
    params = {nm: float(np.round(to_bounded(zi, *COMM_BOUNDS[nm]), 4)) for nm, zi in zip(names, z)}
    e_before, s_before = _score(b, p, meas, system, eff)
    e_after, s_after = _score(b, p, meas, system, eff.model_copy(update=params))  # as the engine runs it
    return CommFit(table.name, int(b.size), params, float(np.median(np.abs(e_before))),
                   float(np.median(np.abs(e_after))), s_before, s_after)


LATENCY_MSG_BYTES = 64 * 1024
"""All-reduces under this size are latency-bound: they fit the NCCL alpha (`comm_latency_us`)."""
BANDWIDTH_MSG_BYTES = 16 * 2**20
"""All-reduces of at least this size are bandwidth-bound: they fit the NCCL beta (`comm_bw_frac`)."""


def fit_nccl_allreduce(table: aic.Table, system: SystemSpec, eff: Efficiency, names) -> CommFit | None:
    """Fit the NCCL alpha/beta fields `names` (of `NCCL_BOUNDS`) on a NCCL all-reduce table with the
    engine's ring (`comm.allreduce_time_s` without the custom all-reduce), each in its own regime:
    alpha on messages under `LATENCY_MSG_BYTES`, beta on messages of `BANDWIDTH_MSG_BYTES` or more
    (the classic alpha-beta split: between them both matter and the ring is least exact), every
    group size inside the scale-up domain, alternating three times. Scored over all rows as the
    engine runs it (the faster of custom and NCCL)."""
    names = [n for n in NCCL_BOUNDS if n in names]
    b, p, meas = _allreduce(table, system, "nccl_dtype", op="all_reduce")
    keep = p > 1
    b, p, meas = b[keep], p[keep], meas[keep]
    regime = {"comm_latency_us": b < LATENCY_MSG_BYTES, "comm_bw_frac": b >= BANDWIDTH_MSG_BYTES}
    names = [n for n in names if regime[n].sum() >= 2]
    if not names:
        return None
    vals = {nm: getattr(eff, nm) for nm in NCCL_BOUNDS}
    ring = eff.model_copy(update={"allreduce_latency_us": None, "allreduce_bw_frac": None})
    for _ in range(3):
        for nm in names:
            sel = regime[nm]

            def residuals(z, nm=nm, sel=sel):
                e = ring.model_copy(update={**vals, nm: float(to_bounded(z[0], *NCCL_BOUNDS[nm]))})
                return np.log(np.asarray(comm.allreduce_time_s(b[sel], p[sel], system, e), float) / meas[sel])

            lo, hi = NCCL_BOUNDS[nm]
            z = levenberg_marquardt(residuals, np.array([to_unbounded(min(max(vals[nm], lo * 1.01), hi * 0.99), lo, hi)]),
                                    iters=80)
            vals[nm] = float(to_bounded(z[0], lo, hi))
    params = {nm: float(np.round(vals[nm], 4)) for nm in names}
    e_before, s_before = _score(b, p, meas, system, eff)
    e_after, s_after = _score(b, p, meas, system, eff.model_copy(update=params))
    return CommFit(table.name, int(b.size), params, float(np.median(np.abs(e_before))),
                   float(np.median(np.abs(e_after))), s_before, s_after)


def score_nccl_allreduce(table: aic.Table, system: SystemSpec, eff: Efficiency, fitted: dict) -> CommFit | None:
    """Score (not fit) the NCCL all-reduce table with the current and the fitted collective values."""
    b, p, meas = _allreduce(table, system, "nccl_dtype", op="all_reduce")
    keep = p > 1
    b, p, meas = b[keep], p[keep], meas[keep]
    if b.size == 0:
        return None
    e_before, s_before = _score(b, p, meas, system, eff)
    e_after, s_after = _score(b, p, meas, system, eff.model_copy(update=fitted))
    return CommFit(table.name, int(b.size), {}, float(np.median(np.abs(e_before))),
                   float(np.median(np.abs(e_after))), s_before, s_after)


@dataclass
class AicChipFit:
    """One chip's fit from the kernel tables: the Efficiency fields it sets and the record."""

    chip: str
    system: str
    applied: dict
    """Efficiency field -> fitted value (only where the fit lowers the table's median error)."""
    gemm: list
    allreduce: CommFit | None
    nccl_allreduce: CommFit | None
    tables: list
    """Provenance of every table read: path under the package's data folder, framework, version, rows."""
    transfer: str = ""
    """How a chip without a system of its own got its values (`SAME_DIE_GEMM`, `SAME_MEMORY_PATH`)."""
    nccl_fitted: CommFit | None = None
    """The NCCL alpha/beta fit when applied (chips whose microbenchmarks do not fit them)."""
    moe: dict | None = None
    """The MoE layer fit's record (`validate.aic_moe.fit_record`); None: no MoE table."""
    gdn: dict | None = None
    """The Gated DeltaNet prefill fit's record (`validate.aic_gdn.fit_record`); None: no `gdn_perf` table."""
    framework_gdn: dict | None = None
    """Per serving framework with its own `gdn_perf` table: the record of `fit_framework_gdn` and the
    Gated DeltaNet prefill fields it applies under that framework's profile."""
    framework_moe: dict | None = None
    """Per serving framework with its own MoE kernel tables (`aic_moe.OWN_KERNEL_FRAMEWORKS`): the
    record of `aic_moe.fit_framework` and the MoE fields it applies under that framework's profile."""
    framework_gemm: dict | None = None
    """Per serving framework with its own GEMM tables: the record of `fit_framework_gemm` and the
    block-scaled FP8 GEMM fields it applies under that framework's profile."""


def fit_system(root, system: str, framework: str = "trtllm", out_dir=None,
               fit_compute: bool = True, chip_id: str | None = None) -> AicChipFit | None:
    """Fit the catalog chip of aiconfigurator system `system` from its kernel tables (None: no chip).
    With `chip_id` (a `SAME_DIE_GEMM` chip), fit that chip on the system's GEMM tables only."""
    from tokenfab import catalog
    from tokenfab.validate.calibrate import base_efficiency
    from tokenfab.validate.micro import system_for

    cid = chip_id or aic.SYSTEMS.get(system)
    if cid is None:
        return None
    chip = catalog.load_chip(cid)
    eff = base_efficiency(cid, chip.vendor, out_dir)
    applied, tables, gemm, ar, nccl = {}, [], [], None, None
    t = aic.load(root, system, "gemm_perf", framework)
    if t is not None:
        tables.append(t.provenance(root))
        gemm = fit_gemm(t, chip, eff, fit_compute)
        for g in gemm:
            if g.precision not in EFFICIENCY_FIELDS or g.median_ape_after >= g.median_ape_before:
                continue
            if (g.precision == "int8" and chip.fp8_tflops) or (g.precision == "w4a16" and chip.fp4_tflops):
                continue
            fields = dict(zip(GEMM_PARAMS, EFFICIENCY_FIELDS[g.precision]))
            applied.update({f: g.params[nm] for nm, f in fields.items()
                            if f is not None and (fit_compute or nm not in ("compute_frac", "quant_bytes"))})
    if chip_id is not None:  # same die, other links: GEMM curves and the MoE layer, no collectives
        if not tables:
            return None
        moe = fit_moe(root, system, framework, chip, eff, applied)  # on-die kernels, this chip's peaks
        if moe is not None:
            applied.update(moe[1])
        gdn = fit_gdn(root, system, framework, chip, eff, applied)
        return AicChipFit(cid, system, applied, gemm, None, None, tables,
                          f"GEMM curves, MoE layer and Gated DeltaNet prefill fitted on {system}'s tables (same die: "
                          "SAME_DIE_GEMM)", moe=None if moe is None else moe[0], gdn=gdn)
    sysm = system_for(chip)
    t = aic.load(root, system, "custom_allreduce_perf", framework)
    if t is not None:
        tables.append(t.provenance(root))
        ar = fit_allreduce(t, sysm, eff)
        if ar is not None and ar.median_ape_after < ar.median_ape_before:
            applied.update(ar.params)
    hit = aic.pick_table(root, system, "nccl_perf", "nccl")
    nccl_fit = None
    if hit is not None:
        t = aic.read_table(hit[2], "nccl_perf", system, hit[0], hit[1])
        tables.append(t.provenance(root))
        free = ([n for n in NCCL_BOUNDS if n not in microbench_fitted(cid, out_dir)]
                if pcie_only(chip) else [])
        ar_eff = eff.model_copy(update={k: v for k, v in applied.items() if k in COMM_BOUNDS})
        nccl_fit = fit_nccl_allreduce(t, sysm, ar_eff, free)
        if nccl_fit is not None and nccl_fit.median_ape_after < nccl_fit.median_ape_before:
            applied.update(nccl_fit.params)
        else:
            nccl_fit = None
        nccl = score_nccl_allreduce(t, sysm, eff, {k: v for k, v in applied.items() if k in COMM_BOUNDS
                                                    or k in NCCL_BOUNDS})
    moe = fit_moe(root, system, framework, chip, eff, applied)
    if moe is not None:
        applied.update(moe[1])
    gdn = fit_gdn(root, system, framework, chip, eff, applied)
    if not tables:
        return None
    return AicChipFit(cid, system, applied, gemm, ar, nccl, tables, nccl_fitted=nccl_fit,
                      moe=None if moe is None else moe[0], gdn=gdn,
                      framework_moe=fit_framework_moe(root, system, chip, eff, applied) or None,
                      framework_gemm=fit_framework_gemm(root, system, chip, eff, applied) or None,
                      framework_gdn=fit_framework_gdn(root, system, chip, eff, applied) or None)


def fit_framework_moe(root, system: str, chip: ChipSpec, eff: Efficiency, applied: dict) -> dict:
    """{framework profile id: {applied, tables, fits}} of `aic_moe.fit_framework` for every framework
    in `aic_moe.OWN_KERNEL_FRAMEWORKS` with a `moe_perf` table on this system, from the chip's
    efficiency with the reference fit `applied` (MoE terms included) under that framework's profile."""
    from tokenfab.perf.framework import apply_profile, profile_for
    from tokenfab.validate import aic_moe

    out = {}
    for fw in aic_moe.OWN_KERNEL_FRAMEWORKS:
        rows = aic_moe.load_rows(root, system, fw)
        if rows is None or rows.rows == 0:
            continue
        pid = aic_moe.FRAMEWORK_PROFILE[fw]
        under = apply_profile(eff.model_copy(update=applied), profile_for(pid, chip.vendor), moe=True)
        records, fields = aic_moe.fit_framework(rows, chip, under)
        if records:
            out[pid] = {"applied": fields, "tables": rows.tables, "fits": records}
    return out


FRAMEWORK_GEMM_PRECISIONS = ("fp8_block",)
"""Dense GEMM precisions a serving framework may price with its own kernels (`fit_framework_gemm`): the
block-scaled FP8 class only. Its fields reach nothing else (`Efficiency.for_block_scales` re-expresses
the fused-MoE scales against them, so the expert GEMMs keep the MoE fit), where a framework's own
per-tensor or BF16 fraction would move its MoE layer too."""


def fit_framework_gemm(root, system: str, chip: ChipSpec, eff: Efficiency, applied: dict) -> dict:
    """{framework profile id: {applied, tables, fits}} for every framework in
    `aic_moe.OWN_KERNEL_FRAMEWORKS` with its own `gemm_perf` table on this system: per
    `FRAMEWORK_GEMM_PRECISIONS` precision, the reference's fitted values (in `applied`) against a fit
    of the framework's own rows (`fit_gemm`), the own values kept only where they cut the median
    |error| of those rows by `aic_moe.OWN_TERMS_MIN_GAIN` or more. Physical, not a per-row knob:
    SGLang runs DeepGEMM for block-scaled FP8 on Hopper (H200: 0.87x TensorRT-LLM's latency at
    M >= 4096), vLLM 0.24 a kernel 3.5x slower than TensorRT-LLM's at M <= 256."""
    from tokenfab.validate import aic_moe

    ref = eff.model_copy(update=applied)
    out = {}
    for fw in aic_moe.OWN_KERNEL_FRAMEWORKS:
        t = aic.load(root, system, "gemm_perf", fw)
        if t is None:
            continue
        fields, records = {}, []
        for g in fit_gemm(t, chip, ref):
            if g.precision not in FRAMEWORK_GEMM_PRECISIONS:
                continue
            names = dict(zip(GEMM_PARAMS, EFFICIENCY_FIELDS[g.precision]))
            block = ref.for_block_scales()  # the reference's block-scaled values in the FP8 class's fields
            theirs = {**current_gemm_params(block, "fp8"), "quant_bytes": block.act_quant_bytes("lowp")}
            _, m, n, k, meas = gemm_rows(t, "fp8_block")
            ref_err = gemm_seconds(m, n, k, g.precision, chip, ref, theirs) / meas - 1.0
            ref_ape = float(np.median(np.abs(ref_err)))
            # A value at its bound absorbs what the class cannot describe (vLLM 0.24's block-scaled kernel
            # on Blackwell, 0.54-0.70 off even fitted, runs its fixed cost to 60 us): not kept.
            # (No quantization pass, quant_bytes 0, is a fused kernel, not a bound.)
            bounded = any(v >= GEMM_BOUNDS[nm][1] * 0.99 or (nm != "quant_bytes" and v <= GEMM_BOUNDS[nm][0] * 1.01)
                          for nm, v in g.params.items() if nm in GEMM_BOUNDS)
            keep = g.median_ape_after < (1.0 - aic_moe.OWN_TERMS_MIN_GAIN) * ref_ape and not bounded
            if keep:
                fields.update({f: g.params[nm] for nm, f in names.items() if f is not None})
            records.append({"precision": g.precision, "rows": g.rows, "params": g.params, "applied": keep,
                            "at_bound": bounded,
                            "median_ape_reference": round(ref_ape, 4), "median_ape_own": round(g.median_ape_after, 4),
                            "signed_median_reference": round(float(np.median(ref_err)), 4),
                            "signed_median_own": round(g.signed_median_after, 4)})
        if records:
            out[aic_moe.FRAMEWORK_PROFILE[fw]] = {"applied": fields, "tables": [t.provenance(root)], "fits": records}
    return out


def fit_framework_gdn(root, system: str, chip: ChipSpec, eff: Efficiency, applied: dict) -> dict:
    """{framework profile id: {applied, ...record}} for every framework in `aic_moe.OWN_KERNEL_FRAMEWORKS`
    with a `gdn_perf` table on this system: its own Gated DeltaNet prefill terms against the reference's
    (in `applied`), kept only where they cut the median |error| of its rows by
    `aic_moe.OWN_TERMS_MIN_GAIN` or more (vLLM's FlashInfer kernel sustains 4-5x FLA's rate)."""
    from tokenfab.perf.framework import apply_profile, profile_for
    from tokenfab.validate import aic_gdn, aic_moe

    out = {}
    for fw in aic_moe.OWN_KERNEL_FRAMEWORKS:
        pid = aic_moe.FRAMEWORK_PROFILE[fw]
        under = apply_profile(eff.model_copy(update=applied), profile_for(pid, chip.vendor))
        fit = aic_gdn.fit_chip(root, system, chip, under, fw)
        if fit is None:
            continue
        keep = fit.after < (1.0 - aic_moe.OWN_TERMS_MIN_GAIN) * fit.before
        # `applied`: the fields this framework's profile takes ({}: the reference's kept).
        out[pid] = {**aic_gdn.fit_record(fit, keep),
                    "applied": {"scan_compute_frac": fit.scan_compute_frac, "scan_chunk_us": fit.scan_chunk_us}
                    if keep else {}}
    return out


def fit_gdn(root, system: str, framework: str, chip: ChipSpec, eff: Efficiency, applied: dict) -> dict | None:
    """The record of the Gated DeltaNet prefill fit on the system's `gdn_perf` table
    (`validate.aic_gdn.fit_chip`), from the chip's efficiency with `applied` under the framework's
    profile; its two fields join `applied` (in place) where the fit lowers the rows' median |error|.
    None without a table."""
    from tokenfab.perf.framework import apply_profile, profile_for
    from tokenfab.validate import aic_gdn
    from tokenfab.validate.aic_moe import FRAMEWORK_PROFILE

    under = apply_profile(eff.model_copy(update=applied), profile_for(FRAMEWORK_PROFILE[framework], chip.vendor))
    fit = aic_gdn.fit_chip(root, system, chip, under, framework)
    if fit is None:
        return None
    if fit.improves:
        applied.update({"scan_compute_frac": fit.scan_compute_frac, "scan_chunk_us": fit.scan_chunk_us})
    return aic_gdn.fit_record(fit, fit.improves)


def fit_moe(root, system: str, framework: str, chip: ChipSpec, eff: Efficiency, applied: dict):
    """(record, Efficiency fields) of the grouped expert GEMMs / MoE layer fit on the system's
    `moe_perf` table (`validate.aic_moe.fit_chip`), from the chip's efficiency with the dense fit
    `applied` under the framework's profile; None without a table."""
    from tokenfab.perf.framework import apply_profile, profile_for
    from tokenfab.validate import aic_moe

    rows = aic_moe.load_rows(root, system, framework)
    if rows is None or rows.rows == 0:
        return None
    dense = apply_profile(eff.model_copy(update=applied), profile_for(aic_moe.FRAMEWORK_PROFILE[framework],
                                                                      chip.vendor), moe=True)
    fits, fields = aic_moe.fit_chip(rows, chip, dense)
    return ({**aic_moe.fit_record(fits, rows), "applied": fields}, fields) if fits else None


def pcie_only(chip: ChipSpec) -> bool:
    """True for a chip whose scale-up is PCIe through the host (no NVLink-class fabric): its NCCL ring
    runs through PCIe switches and host bridges, so the link datasheet overstates it and the NCCL
    table sets its collectives. On NVLink-class fabrics NCCL's large-message bus bandwidth is the
    link's (the microbenchmark default stands) and serving runs the custom all-reduce (fitted)."""
    from tokenfab.cost.system import scaleup_fabric_of

    return (chip.scaleup_fabric or scaleup_fabric_of(chip.scaleup_interconnect)) == "none"


def microbench_fitted(chip_id: str, out_dir=None) -> set[str]:
    """Efficiency fields the chip's microbenchmark fit (`validate.calibrate`, the `fit` section of
    its calibration file) set from its own rows: the kernel-table fit leaves those alone."""
    from tokenfab.validate.calibrate import existing_doc

    doc, _ = existing_doc(chip_id, out_dir)
    fit = doc.get("fit") if isinstance(doc, dict) else None
    return set((fit or {}).get("fitted") or ())


def fit_all(root=None, chips: list[str] | None = None, framework: str = "trtllm", out_dir=None,
            fit_compute: bool = True) -> list[AicChipFit]:
    """Fits for every aiconfigurator system with a catalog chip (or only `chips`), in system order."""
    from pathlib import Path

    root = aic.data_root() if root is None else Path(root)
    out = []
    for system, cid in aic.SYSTEMS.items():
        if chips and cid not in chips:
            continue
        f = fit_system(root, system, framework, out_dir, fit_compute)
        if f is not None:
            out.append(f)
    for cid, system in aic.SAME_DIE_GEMM.items():
        if chips and cid not in chips:
            continue
        f = fit_system(root, system, framework, out_dir, fit_compute, chip_id=cid)
        if f is not None:
            out.append(f)
    for cid, system in aic.SAME_MEMORY_PATH.items():
        if chips and cid not in chips:
            continue
        donor = next((f for f in out if f.system == system and f.chip == aic.SYSTEMS.get(system)), None)
        donor = donor or fit_system(root, system, framework, out_dir, fit_compute)
        if donor is not None:
            out.append(memory_side_of(donor, cid))
    return out


MEMORY_SIDE = ("gemm_hbm_frac", "lowp_gemm_hbm_frac", "fp4_gemm_hbm_frac", "block_gemm_hbm_frac", "gemm_fixed_us",
               "lowp_gemm_fixed_us", "fp4_gemm_fixed_us", "block_gemm_fixed_us", "allreduce_latency_us",
               "allreduce_bw_frac", "moe_gemm_stream_scale", "lowp_moe_gemm_stream_scale", "fp4_moe_gemm_stream_scale",
               "block_moe_gemm_stream_scale", "moe_layer_fixed_us", "lowp_moe_layer_fixed_us", "fp4_moe_layer_fixed_us",
               "block_moe_layer_fixed_us")
"""Efficiency fields a chip takes from a `SAME_MEMORY_PATH` system's fit: what a small-M GEMM's weight
stream and fixed cost and a custom all-reduce depend on (the die's memory path, launch, links), and the
same two sides of a fused-MoE layer: its grouped GEMMs' weight-stream scales and the layer's fixed cost
(routing kernels' serial latency, expert-offset scan, grouped-GEMM setup). The MoE compute scales stay
unset: they are shares of a compute fraction, which the cut tensor path changes."""


def memory_side_of(donor: AicChipFit, chip_id: str) -> AicChipFit:
    """`chip_id`'s fit: the memory-side fields of `donor`'s applied values (the precisions the chip has)."""
    from tokenfab import catalog

    chip = catalog.load_chip(chip_id)
    has = {"lowp": bool(chip.fp8_tflops or chip.int8_tops), "fp4": bool(chip.fp4_tflops)}
    keep = {k: v for k, v in donor.applied.items() if k in MEMORY_SIDE
            and not (k.startswith(("lowp", "block")) and not has["lowp"])
            and not (k.startswith("fp4") and not has["fp4"])}
    return AicChipFit(chip_id, donor.system, keep, [], None, None, donor.tables,
                      f"memory-side terms of {donor.chip}'s fit (SAME_MEMORY_PATH: {', '.join(MEMORY_SIDE)})")


def record(fit: AicChipFit, version: str | None, framework: str, fit_compute: bool = True) -> dict:
    """The `aiconfigurator` section of a calibration file (provenance and fit errors)."""
    def comm_rec(c):
        if c is None:
            return None
        return {"table": c.table, "rows": c.rows, "params": c.params,
                "median_ape_before": round(c.median_ape_before, 4), "median_ape_after": round(c.median_ape_after, 4),
                "small_msg_signed_median_before": None if c.small_msg_signed_before is None
                else round(c.small_msg_signed_before, 4),
                "small_msg_signed_median_after": None if c.small_msg_signed_after is None
                else round(c.small_msg_signed_after, 4)}
    return {
        "package": "aiconfigurator-core", "package_version": version, "framework": framework,
        "system": fit.system, **({"transfer": fit.transfer} if fit.transfer else {}), "tables": fit.tables,
        "gemm_min_n_k": MIN_DIM,
        "gemm_compute_frac": "fitted" if fit_compute else "kept (microbenchmark fit)",
        "method": ("least squares on log(predicted/measured) in the engine's own roofline (GEMM rows with N, K >= "
                   f"{MIN_DIM} and M <= {SERVING_M[0]} or M >= {SERVING_M[1]}; errors reported over all rows with "
                   f"N, K >= {MIN_DIM}) and custom all-reduce formula (all rows within the scale-up domain); "
                   "logistic bounds; deterministic Levenberg-Marquardt from the current calibration; a value is "
                   "applied only where it lowers the table's median |error| (all-reduce scored as the engine "
                   "runs it: the faster of custom and NCCL)"),
        "applied": fit.applied,
        "gemm": [{"precision": g.precision, "rows": g.rows, "params": g.params,
                  "median_ape_before": round(g.median_ape_before, 4), "median_ape_after": round(g.median_ape_after, 4),
                  "signed_median_before": round(g.signed_median_before, 4),
                  "signed_median_after": round(g.signed_median_after, 4), "signed_median_by_m_before": g.by_m_before,
                  "signed_median_by_m_after": g.by_m_after}
                 for g in fit.gemm],
        "allreduce": comm_rec(fit.allreduce),
        **({"nccl_allreduce_fitted": {
            **comm_rec(fit.nccl_fitted),
            "method": ("comm_latency_us on messages < 64 KiB and comm_bw_frac on messages >= 16 MiB (those the "
                       "chip's microbenchmark rows do not fit), least squares on log(predicted/measured) of the "
                       "engine's NCCL ring (perf.comm.allreduce_time_s, no custom all-reduce), every group size "
                       "within the scale-up domain; errors over all rows")}}
           if fit.nccl_fitted is not None else {}),
        "nccl_allreduce_scored_not_fitted": comm_rec(fit.nccl_allreduce),
        **({"moe": fit.moe} if fit.moe is not None else {}),
        **({"gdn": fit.gdn} if fit.gdn is not None else {}),
        **({"framework_gdn": {
            "method": ("per serving framework with its own measured Gated DeltaNet kernels: its fit (as `gdn`) "
                       "against the reference's terms; applied under that framework's profile only where it "
                       "lowers the median |error| of its rows by a fifth or more (efficiency.framework_kernel_terms)"),
            **fit.framework_gdn}} if fit.framework_gdn else {}),
        **({"framework_gemm": {
            "method": ("per serving framework with its own measured GEMM tables: the block-scaled FP8 class "
                       "(FRAMEWORK_GEMM_PRECISIONS) fitted on its rows as the reference's is (fit_gemm), against "
                       "the reference's values on the same rows; the own values apply under that framework's "
                       "profile only where they lower the median |error| of its rows by a fifth or more "
                       "(aic_moe.OWN_TERMS_MIN_GAIN; efficiency.framework_kernel_terms)"),
            **fit.framework_gemm}} if fit.framework_gemm else {}),
        **({"framework_moe": {
            "method": ("per serving framework with its own measured MoE kernels: on its fastest measured "
                       "kernel per key, the reference's MoE terms against a fit of its own (as `moe`); the own "
                       "terms apply under that framework's profile only where they lower the median |error| "
                       "of its rows by a fifth or more (aic_moe.OWN_TERMS_MIN_GAIN; efficiency.framework_moe_terms)"),
            **fit.framework_moe}} if fit.framework_moe else {}),
    }
