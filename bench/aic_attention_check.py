"""The engine's fused attention kernel against aiconfigurator's measured attention tables (issue 14): figures only.

For every aiconfigurator system with a catalog chip, the newest TensorRT-LLM (or `--framework`) tables of
context and generation attention (MHA/GQA) and MLA (`validate.aic_attention`) are priced by the engine's own
attention op on the chip's calibrated efficiency under the framework's profile. Printed per table: rows,
median |error| and signed median (engine / measured - 1; < 0: the engine is faster than measured), the same on
the rows measured at >= 100 µs, and the signed median by context length. Nothing is fitted or written.
Needs `pip install 'tokenfab[aic]'`.

Run: python bench/aic_attention_check.py [--systems h200_sxm,b200_sxm] [--framework trtllm] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    from tokenfab import catalog
    from tokenfab.perf.framework import efficiency_under
    from tokenfab.validate import aic_attention
    from tokenfab.validate import aiconfigurator as aic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", default="", help="comma-separated aiconfigurator systems (default: all)")
    ap.add_argument("--framework", default="trtllm", help="trtllm, sglang or vllm")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    unknown = [s for s in systems if s not in aic.SYSTEMS]
    if unknown or args.framework not in ("trtllm", "sglang", "vllm"):
        bad = (f"unknown system(s) {', '.join(unknown)}; known: {', '.join(aic.SYSTEMS)}" if unknown
               else f"--framework {args.framework!r} is not one of trtllm, sglang, vllm")
        print(f"error: {bad}", file=sys.stderr)
        raise SystemExit(2)
    profile = {"trtllm": "trt-llm"}.get(args.framework, args.framework)
    root, t0, out = aic.data_root(), time.perf_counter(), []
    for system, cid in aic.SYSTEMS.items():
        if systems and system not in systems:
            continue
        chip = catalog.load_chip(cid)
        for s in aic_attention.score_system(root, system, chip, efficiency_under(chip, profile), args.framework):
            out.append({"system": system, "chip": cid, **s})
    if args.json:
        print(json.dumps({"package_version": aic.package_version(), "scores": out}, indent=1))
        return
    pct = lambda x: "   -  " if x is None else f"{x:+6.1%}"  # noqa: E731
    print(f"aiconfigurator-core {aic.package_version()}: engine attention / measured - 1 "
          f"({time.perf_counter() - t0:.1f} s)")
    print(f"{'system':20s} {'table':26s} {'rows':>6s} {'|err|':>6s} {'signed':>7s} {'>=100us':>8s} "
          f"{'<=1k':>7s} {'1k-8k':>7s} {'>8k':>7s}")
    for s in out:
        b = s["signed_median_by_length"]
        print(f"{s['system']:20s} {s['table']:26s} {s['rows']:6d} {s['median_ape']:6.1%} {pct(s['signed_median'])} "
              f"{pct(s['signed_median_long']):>8s} {pct(b.get('<=1k'))} {pct(b.get('1k-8k'))} {pct(b.get('>8k'))}")


if __name__ == "__main__":
    main()
