"""The engine's decode step against `decode_step.py`'s measured one (plain PyTorch kernels, CUDA graph).

For each measured case (Llama-3.1-8B geometry, one chip, bf16 weights and KV, `batch` sequences at
`context` tokens) prints the engine's step time without its host/scheduler overhead
(`step_overhead_ms`: a graph replay has none), the measured graph replay, the error, and the
engine's share of the step in attention. The measured kernels are not a serving stack's (18
kernels per layer, unfused; PyTorch SDPA's flash decode): read the error as a check of the
engine's memory and per-kernel terms, not as a framework's TPOT.

    python bench/gpu/decode_step_vs_engine.py [RESULTS.json ...] [--chip h200-sxm] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
DEFAULT = sorted((HERE / "results").glob("*/decode_step_*.json"))


def engine_step_ms(chip_id: str, model_id: str, batch: int, context: int) -> tuple[float, float]:
    """(engine decode step ms without step overhead, attention share of it) at tp 1, bf16."""
    from tokenfab import catalog
    from tokenfab.mapping.search import SearchSpace, decode_step, prepare
    from tokenfab.perf.efficiency import efficiency_for
    from tokenfab.specs.traffic import Traffic
    from tokenfab.validate.micro import system_for

    chip, model = catalog.load_chip(chip_id), catalog.load_model(model_id)
    eff = efficiency_for(chip, None)
    space = SearchSpace(num_chips=(1,), tp=(1,), pp=(1,), ep=(1,), batch=(batch,), precisions=("bf16",),
                        kv_precision="bf16")
    # decode_step reads the context at the prompt plus half the output: output 1 keeps it at `context`.
    p = prepare(model, chip, system_for(chip, 1), eff, Traffic(input_len=context, output_len=1), space)
    t, times = decode_step(p)
    step = float(np.ravel(t)[0]) - eff.step_overhead_ms * 1e-3
    attn = sum(float(np.ravel(o.seconds)[0]) for o in times if "attention" in o.name)
    return step * 1e3, attn * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", type=Path, help="decode_step.py outputs (default: results/*/decode_step_*.json)")
    ap.add_argument("--chip", default="h200-sxm")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    files = a.results or DEFAULT
    from tokenfab import catalog
    from tokenfab.specs import SpecError

    try:
        catalog.load_chip(a.chip)
    except SpecError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    out = []
    for f in files:
        try:
            cases = json.loads(f.read_text())["cases"]
        except (OSError, ValueError, KeyError) as e:
            print(f"error: {f}: not a decode_step.py result ({type(e).__name__})", file=sys.stderr)
            return 2
        for c in cases:
            if c["model"] != "llama-3.1-8b":
                continue
            pred, attn = engine_step_ms(a.chip, c["model"], c["batch"], c["context"])
            out.append(dict(file=f.name, batch=c["batch"], context=c["context"], kernels=c["kernels_per_step"],
                            measured_ms=c["graph_ms"], engine_ms=round(pred, 4), engine_attention_ms=round(attn, 4),
                            error=round(pred / c["graph_ms"] - 1.0, 4)))
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{'batch':>5} {'context':>7} {'kernels':>7} {'measured ms':>11} {'engine ms':>9} {'error':>7} {'engine attn ms':>14}")
    for r in out:
        print(f"{r['batch']:>5} {r['context']:>7} {r['kernels']:>7} {r['measured_ms']:>11.3f} {r['engine_ms']:>9.3f} "
              f"{r['error']:>+7.1%} {r['engine_attention_ms']:>14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
