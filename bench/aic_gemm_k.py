"""The engine's GEMM time against aiconfigurator's measured GEMM tables by K (issue 14): figures only.

    python3 bench/aic_gemm_k.py [--systems h200_sxm,b200_sxm] [--min-m 2048] [--json]

For each system and GEMM dtype of its TensorRT-LLM table (newest version), the median of engine /
measured over the compute-bound rows (M >= --min-m, N >= 1024), per K: < 1 means the engine is
faster than measured (optimistic). The engine prices a GEMM's compute with one fraction per kernel
class, whatever K; the tables show the short-K GEMMs (a TP-sharded expert's down projection has
K = moe_intermediate / tp) running well below it on Hopper, most for block-scaled FP8.

Measured 2026-12-06 (aiconfigurator-core 0.12.0, shipped calibration), H200 block-scaled FP8:
K = 256 0.60, K = 1024 0.87, K >= 4096 1.12-1.17; BF16 K = 256 0.73, K >= 2048 1.01-1.04; B200 NVFP4
the other way (K = 128 1.35, K = 2048 0.95). A per-class K-loop overhead, compute x (1 + K_o / K),
fitted with the compute fractions (H100/H200 K_o ~130 BF16, ~300 FP8, ~630 block-scaled FP8) moved
the end-to-end rows the wrong way (latency 18.3% -> 19.7%, throughput 12.7% -> 13.9%: SGLang's
DeepGEMM-run DeepSeek on H200 is not the CUTLASS kernel these tables time) and was not shipped.
Needs `pip install 'tokenfab[aic]'`; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

K_BANDS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
"""Ks shown (the tables sweep these among others)."""


def run(systems: list[str] | None, min_m: int) -> list[dict]:
    from tokenfab import catalog
    from tokenfab.perf.efficiency import efficiency_for
    from tokenfab.validate import aic_fit
    from tokenfab.validate import aiconfigurator as aic

    root = aic.data_root()
    out = []
    for system, chip_id in aic.SYSTEMS.items():
        if systems and system not in systems:
            continue
        t = aic.load(root, system, "gemm_perf", "trtllm")
        if t is None:
            continue
        chip = catalog.load_chip(chip_id)
        base = efficiency_for(chip)
        c = t.columns
        for dtype, prec in aic.GEMM_DTYPES.items():
            if prec in aic_fit.WEIGHT_ONLY or not chip.peak_tflops(aic_fit.PEAK_PRECISION[prec]):
                continue
            sel = (c["gemm_dtype"] == dtype) & (c["m"] >= min_m) & (c["n"] >= 1024)
            if not sel.any():
                continue
            eff = base.for_block_scales() if prec == "fp8_block" else base
            cls = "bf16" if prec == "bf16" else ("fp4" if prec == "fp4" else "lowp")
            params = {**aic_fit.current_gemm_params(eff, prec), "quant_bytes": eff.act_quant_bytes(cls)}
            m, n, k = (np.asarray(c[x][sel], float) for x in ("m", "n", "k"))
            ratio = aic_fit.gemm_seconds(m, n, k, prec, chip, eff, params) / c["latency_s"][sel]
            by_k = {int(kk): round(float(np.median(ratio[k == kk])), 3) for kk in K_BANDS if (k == kk).any()}
            out.append({"system": system, "chip": chip_id, "version": t.version, "dtype": dtype, "rows": int(sel.sum()),
                        "median_ratio": round(float(np.median(ratio)), 3), "by_k": by_k})
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        print(f"aic_gemm_k: {message}", file=sys.stderr)
        raise SystemExit(2)


def main(argv=None) -> int:
    ap = _Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", help="comma-separated aiconfigurator systems (default: all with a chip)")
    ap.add_argument("--min-m", type=int, default=2048, help="smallest M scored (compute-bound rows; default 2048)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)
    if args.min_m < 1:
        ap.error("--min-m must be at least 1")
    try:
        from tokenfab.validate import aiconfigurator as aic
        aic.data_root()
    except Exception as e:  # the optional package is missing
        print(f"aic_gemm_k: {e}", file=sys.stderr)
        return 2
    systems = args.systems.split(",") if args.systems else None
    unknown = sorted(set(systems or []) - set(aic.SYSTEMS))
    if unknown:
        ap.error(f"unknown system {', '.join(unknown)}; known: {', '.join(aic.SYSTEMS)}")
    t0 = time.perf_counter()
    res = run(systems, args.min_m)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"engine / measured GEMM time, M >= {args.min_m}, N >= 1024, by K (< 1: engine optimistic); "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"{'system':10s} {'dtype':10s} {'rows':>6s} {'all':>6s} " + " ".join(f"{'K' + str(k):>7s}" for k in K_BANDS))
    for r in res:
        print(f"{r['system']:10.10s} {r['dtype']:10s} {r['rows']:6d} {r['median_ratio']:6.2f} "
              + " ".join(f"{r['by_k'][k]:7.2f}" if k in r["by_k"] else f"{'-':>7s}" for k in K_BANDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
