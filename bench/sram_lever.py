"""On-chip memory as a lever (issue 16, item 3): throughput per chip against SRAM per core and
shared SRAM, in the SRAM-aware fidelity (`fidelity="tiled"`), on the H100 design with its SRAM
changed (`ChipDesign.model_copy`). Prints figures; asserts nothing.

Cases (each a fixed mapping, so only the chip changes):
- long prefill: Llama-3.1-70B, 32k-token prompts, TP8, BF16 — prefill tok/s per chip and the
  attention kernel's time per layer (FlashAttention tiles need SRAM per core);
- MLA decode: DeepSeek-V3.2, FP8, 16 chips with data-parallel attention (128 query heads per
  chip on one 576-wide latent, FlashMLA-style) and EP16, batch 32 — the latent needs big tiles;
- small-batch decode: Llama-3.1-8B, FP8, TP8, batch 1 — decode tok/s per chip;
- SRAM-resident deployment: Llama-3.1-8B, FP8, TP8, batch 8 — ~1.2 GB of weights per chip,
  resident once the shared SRAM holds them (2 GiB; the KV cache already at 50 MiB), the way an
  SRAM-only chip (Groq's LPU) spreads a model over enough chips for its SRAM. The decode GEMMs
  then read at the shared-SRAM bandwidth; per-kernel launch costs (the efficiency profile's
  `kernel_launch_us`) dominate what is left of the step;
- large-batch decode: Llama-3.1-70B, FP8, TP8, batch 256 — should not move.

Designs beyond the reticle are evaluated anyway (the engine below `api.estimate`, which refuses
them): the lever's physics, not its buildability. Run: `python3 bench/sram_lever.py`.
"""

from __future__ import annotations

import time

import numpy as np

from tokenfab.catalog import load_model
from tokenfab.design.catalog import load_design
from tokenfab.design.derive import to_chip_spec
from tokenfab.mapping import search
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.specs import SystemSpec, Traffic

BASE = load_design("h100-sxm-design")
CORE_KB = (16, 32, 64, 128, 256, 1024)
SHARED_MB = (16, 50, 134, 512, 2048)


def chip(core_kb: float | None = None, shared_mb: float | None = None):
    """The H100 design with `core_kb` KiB of SRAM per SM and `shared_mb` MiB of L2."""
    core = BASE.die.core.model_copy(update={"sram_kb": core_kb or BASE.die.core.sram_kb})
    die = BASE.die.model_copy(update={"core": core, "shared_sram_mb": shared_mb or BASE.die.shared_sram_mb})
    return to_chip_spec(BASE.model_copy(update={"die": die, "id": f"h100-sram-{core_kb or 0}k-{shared_mb or 0}m"}))


def run(model_id: str, c, traffic: Traffic, chips_tp, batch: int, precision: str, phase: str):
    """(tok/s per chip of the phase, its attention and GEMM seconds per step) of one fixed mapping
    (`chips_tp`: TP over all chips, or (chips, tp) with data-parallel attention and wide EP)."""
    model = load_model(model_id)
    chips, tp = chips_tp if isinstance(chips_tp, tuple) else (chips_tp, chips_tp)
    space = search.SearchSpace(num_chips=(chips,), tp=(tp,), pp=(1,), batch=(batch,), precisions=(precision,),
                               ep=(chips,) if model.is_moe else None)
    r = search.evaluate(model, c, SystemSpec.for_chip(c), efficiency_for(c), traffic, space, fidelity="tiled")
    i = 0
    a = r.arrays
    times = r.extras["decode_times" if phase == "decode" else "prefill_times"]
    attn = sum(float(np.ravel(t.seconds)[i]) for t in times if t.name.startswith("attention"))
    gemm_names = {"qkv_proj", "o_proj", "q_a_proj", "q_b_proj", "q_proj", "kv_a_proj", "kv_b_proj", "q_absorb",
                  "v_absorb", "mlp_up", "mlp_down", "router", "experts_up", "experts_down", "shared_up",
                  "shared_down", "lm_head", "indexer_q_proj", "indexer_k_proj", "indexer_weights_proj"}
    gemm = sum(float(np.ravel(t.seconds)[i]) for t in times if t.name in gemm_names)
    if phase == "decode":
        return a["batch"][i] * a["dp"][i] / (a["decode_step_ms"][i] / 1e3) / chips, attn, gemm
    tokens = a["prefill_prompts"][i] * traffic.input_len * a["dp"][i]
    return tokens / (a["prefill_ms"][i] / 1e3) / chips, attn, gemm


CASES = [
    ("long prefill llama-3.1-70b 32k TP8 bf16", "llama-3.1-70b", Traffic(input_len=32768, output_len=64), 8, 1,
     "bf16", "prefill"),
    ("MLA decode deepseek-v3.2 16 chips DP16/EP16 b32 fp8", "deepseek-v3.2", Traffic(input_len=4096, output_len=512),
     (16, 1), 32, "fp8", "decode"),
    ("small-batch decode llama-3.1-8b TP8 b1 fp8", "llama-3.1-8b", Traffic(input_len=1024, output_len=256), 8, 1,
     "fp8", "decode"),
    ("SRAM-resident llama-3.1-8b TP8 b8 fp8", "llama-3.1-8b", Traffic(input_len=512, output_len=256), 8, 8, "fp8",
     "decode"),
    ("large-batch decode llama-3.1-70b TP8 b256 fp8", "llama-3.1-70b", Traffic(input_len=1024, output_len=1024), 8, 256,
     "fp8", "decode"),
]


def main() -> None:
    t0 = time.perf_counter()
    for label, model_id, traffic, tp, batch, prec, phase in CASES:
        print(f"\n{label}: {phase} tok/s per chip (attention ms, GEMM ms per step)")
        for name, values, unit, make in (("SRAM per core", CORE_KB, "KiB", lambda v: chip(core_kb=v)),
                                         ("shared SRAM", SHARED_MB, "MiB", lambda v: chip(shared_mb=v))):
            print(f"  {name}:")
            for v in values:
                tok, attn, gemm = run(model_id, make(v), traffic, tp, batch, prec, phase)
                print(f"    {v:>5} {unit}: {tok:>9.1f}  ({attn * 1e3:8.3f} ms, {gemm * 1e3:8.3f} ms)")
    print(f"\n{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
