"""The engine's MoE layer against aiconfigurator's measured MoE kernel tables (issue 14): figures only.

For every aiconfigurator system with a catalog chip, every framework (trtllm, sglang, vllm) and kernel
source, and every dtype the engine prices (bfloat16 -> bf16, fp8 and fp8_block -> fp8, nvfp4 -> fp4,
w4a16_mxfp4 and int4_wo -> the weight-only 4-bit path), the balanced-routing rows of
`<system>/moe/<framework>/<version>/moe_perf.parquet` (newest version per key) are priced by the
engine's own MoE ops (`validate.aic_moe.MOE_KERNEL_OPS`: routing, permute, gate-up and down grouped
GEMMs, activation, un-permute; the chip's calibrated Efficiency under the framework's profile).
Printed: median predicted/measured per (system, framework, kernel, dtype) and per num_tokens band
(< 1: the engine is faster than measured, i.e. optimistic), the same for the expert GEMMs alone, the
measured latency of SGLang's and vLLM's fastest kernel over TensorRT-LLM's on the same keys, and
worked shapes (Qwen3-235B-A22B TP8, DeepSeek-V3 TP8 and EP8, gpt-oss-120b TP1). Nothing is fitted or
written. Needs `pip install 'tokenfab[aic]'`.

Run: python bench/aic_moe_check.py [--systems h200_sxm,b200_sxm] [--frameworks trtllm] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

WORKED_LAYOUTS = {"qwen3-235b-a22b": ((8, 1),), "deepseek-v3": ((8, 1), (1, 8)), "gpt-oss-120b": ((1, 1),)}
"""(moe_tp, moe_ep) of each worked shape."""
WORKED_SYSTEMS = ("h200_sxm", "b200_sxm")
FRAMEWORKS = ("trtllm", "sglang", "vllm")


def run(systems: list[str] | None, frameworks: list[str], progress) -> dict:
    from tokenfab import catalog
    from tokenfab.perf.framework import efficiency_under
    from tokenfab.validate import aic_moe
    from tokenfab.validate import aiconfigurator as aic

    root = aic.data_root()
    out = {"package": "aiconfigurator-core", "package_version": aic.package_version(), "groups": [],
           "fastest": [], "framework_speed": [], "worked": [], "skipped": {}, "tables": []}
    for system, chip_id in aic.SYSTEMS.items():
        if systems and system not in systems:
            continue
        try:
            chip = catalog.load_chip(chip_id)
        except Exception as e:  # a SYSTEMS chip missing from this catalog: say so, go on
            out["skipped"][system] = f"chip {chip_id}: {e}"
            continue
        by_fw = {}
        for fw in frameworks:
            t0 = time.perf_counter()
            rows = aic_moe.load_rows(root, system, fw)
            if rows is None or rows.rows == 0:
                continue
            eff = efficiency_under(chip, aic_moe.FRAMEWORK_PROFILE[fw], moe=True)
            pred = aic_moe.predict(rows, chip, eff)
            by_fw[fw] = rows
            out["groups"] += [{"chip": chip_id, **g} for g in aic_moe.summarize(rows, pred)]
            out["fastest"] += [{"chip": chip_id, **g} for g in aic_moe.summarize(*aic_moe.fastest_rows(rows, pred))]
            out["tables"] += rows.tables
            out["skipped"][f"{system}/{fw}"] = rows.skipped
            if system in WORKED_SYSTEMS:
                for name, shape in aic_moe.WORKED_SHAPES.items():
                    for tp, ep in WORKED_LAYOUTS[name]:
                        for w in aic_moe.worked(rows, pred, shape, tp, ep):
                            out["worked"].append({"system": system, "framework": fw, "model": name,
                                                  "moe_tp": tp, "moe_ep": ep, **w})
            progress(f"{system}/{fw}: {rows.rows} rows priced in {time.perf_counter() - t0:.1f} s")
        out["framework_speed"] += aic_moe.framework_speed(by_fw)
    out["by_framework_dtype"] = pooled(out["fastest"])
    return out


def pooled(groups: list[dict]) -> list[dict]:
    """Median over systems of each (framework, dtype)'s per-system medians (fastest kernel per key),
    per band: a summary line per framework and dtype (each system weighs once)."""
    from tokenfab.validate.aic_moe import TOKEN_BANDS

    keys = sorted({(g["framework"], g["moe_dtype"]) for g in groups})
    out = []
    for fw, dt in keys:
        gs = [g for g in groups if g["framework"] == fw and g["moe_dtype"] == dt]
        bands = {}
        for label, _, _ in TOKEN_BANDS:
            v = [g["by_tokens"][label]["median_ratio"] for g in gs if label in g["by_tokens"]]
            if v:
                bands[label] = round(float(np.median(v)), 3)
        out.append({"framework": fw, "moe_dtype": dt, "groups": len(gs), "rows": sum(g["rows"] for g in gs),
                    "median_ratio": round(float(np.median([g["median_ratio"] for g in gs])), 3), "by_tokens": bands})
    return out


def _fmt(x) -> str:
    return "    -" if x is None else f"{x:5.2f}"


def show(res: dict) -> None:
    from tokenfab.validate.aic_moe import SHARD_BANDS, TOKEN_BANDS

    labels = [b[0] for b in TOKEN_BANDS]
    shard_labels = [b[0] for b in SHARD_BANDS]
    print(f"aiconfigurator-core {res['package_version']}: engine MoE layer / measured (balanced routing); "
          "< 1 = engine faster than measured (optimistic)")
    head = " ".join(f"{b:>8s}" for b in labels)
    for title, groups in (("Per kernel", res["groups"]), ("Fastest kernel per key (what a deployment runs)",
                                                           res["fastest"])):
        print(f"\n{title}: median ratio, layer / experts only / by num_tokens band (layer)\n"
              f"{'system':10s} {'fw':7s} {'dtype':12s} {'rows':>6s} {'layer':>6s} {'exp':>6s} {head} "
              f"{'ep=1':>6s} {'ep>1':>6s}  kernel_source")
        for g in groups:
            bands = " ".join(f"{_fmt(g['by_tokens'].get(b, {}).get('median_ratio')):>8s}" for b in labels)
            print(f"{g['system']:10.10s} {g['framework']:7s} {g['moe_dtype']:12s} {g['rows']:6d} "
                  f"{_fmt(g['median_ratio']):>6s} {_fmt(g['median_ratio_experts_only']):>6s} {bands} "
                  f"{_fmt(g['by_layout']['ep=1']):>6s} {_fmt(g['by_layout']['ep>1']):>6s}  {g['kernel_source']}")
    print(f"\nFastest kernel per key by a rank's expert width (moe_intermediate / moe_tp; the down projection's "
          f"K): median ratio (layer)\n{'system':10s} {'fw':7s} {'dtype':12s} "
          + " ".join(f"{'w ' + b:>9s}" for b in shard_labels))
    for g in res["fastest"]:
        print(f"{g['system']:10.10s} {g['framework']:7s} {g['moe_dtype']:12s} "
              + " ".join(f"{_fmt(g.get('by_shard', {}).get(b)):>9s}" for b in shard_labels))
    print(f"\nPooled over systems (median of per-system medians, fastest kernel per key):\n"
          f"{'fw':7s} {'dtype':12s} {'systems':>7s} {'rows':>7s} {'all':>6s} {head}")
    for p in res["by_framework_dtype"]:
        bands = " ".join(f"{_fmt(p['by_tokens'].get(b)):>8s}" for b in labels)
        print(f"{p['framework']:7s} {p['moe_dtype']:12s} {p['groups']:7d} {p['rows']:7d} "
              f"{_fmt(p['median_ratio']):>6s} {bands}")
    print(f"\nMeasured latency of the framework's fastest kernel / TensorRT-LLM's, same system, dtype, shape, "
          f"layout, tokens (> 1: slower)\n{'system':10s} {'fw':7s} {'dtype':12s} {'keys':>6s} {'all':>6s} {head}")
    for f in res["framework_speed"]:
        bands = " ".join(f"{_fmt(f['by_tokens'].get(b)):>8s}" for b in labels)
        print(f"{f['system']:10.10s} {f['framework']:7s} {f['moe_dtype']:12s} {f['rows']:6d} "
              f"{_fmt(f['median_latency_ratio']):>6s} {bands}")
    print(f"\nWorked shapes (µs; engine layer = routing + permute + experts + un-permute):\n"
          f"{'system':9s} {'fw':7s} {'model':16s} {'tp':>3s} {'ep':>3s} {'kernel_source':32s} {'dtype':12s} "
          f"{'tokens':>6s} {'meas':>8s} {'layer':>8s} {'experts':>8s} {'ratio':>6s}")
    for w in res["worked"]:
        print(f"{w['system']:9.9s} {w['framework']:7s} {w['model']:16s} {w['moe_tp']:3d} {w['moe_ep']:3d} "
              f"{w['kernel_source'][:32]:32s} {w['moe_dtype']:12s} {w['num_tokens']:6d} {w['measured_us']:8.1f} "
              f"{w['engine_layer_us']:8.1f} {w['engine_experts_us']:8.1f} {w['ratio']:6.2f}")
    if any(v for v in res["skipped"].values()):
        print("\nRows not scored:")
        for k, v in res["skipped"].items():
            print(f"  {k}: {v}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", default="", help="comma-separated aiconfigurator systems (default: all with a chip)")
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS), help="comma-separated: trtllm, sglang, vllm")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    a = ap.parse_args(argv)
    from tokenfab.validate import aiconfigurator as aic

    fws = [f for f in a.frameworks.split(",") if f]
    bad = [f for f in fws if f not in FRAMEWORKS]
    systems = [s for s in a.systems.split(",") if s]
    unknown = [s for s in systems if s not in aic.SYSTEMS]
    if bad or unknown:
        print(f"error: unknown {'framework' if bad else 'system'} {', '.join(bad or unknown)} "
              f"(known: {', '.join(FRAMEWORKS if bad else aic.SYSTEMS)})", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        res = run(systems or None, fws, lambda msg: print(msg, file=sys.stderr, flush=True))
    except aic.AiconfiguratorMissing as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res["seconds"] = round(time.perf_counter() - t0, 1)
    if a.json:
        print(json.dumps(res, indent=1))
    else:
        show(res)
        print(f"\n{sum(g['rows'] for g in res['groups'])} rows in {res['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
