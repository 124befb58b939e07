"""Per-layer forward/backward of the training engine against Korthikanti et al.'s measured layer times.

Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models" (arXiv
2205.05198, MLSys 2023), Table 4: one transformer layer of a 22B GPT (a = 64 heads, h = 6144,
48 layers, TP 8, sequence 2048, micro-batch 4, vocabulary 51,200; Table 3) on 80 GB A100 (Selene),
mixed precision: forward 7.7 ms and backward 11.9 ms without sequence parallelism, 7.2 ms and
11.8 ms with it (no recomputation); Table 5: iteration 1.10 s at MFU 41.5% for the 22B model
(selective recompute + SP, one micro-batch of 4 per iteration, PP 1), 13.75 s at MFU 51.4% for
GPT-3 175B (TP 8, PP 8, interleaved 3 chunks, global batch 64, micro-batch 1).

Prints the engine's per-op seconds of one layer (forward, and the backward it prices) so the op
classes that are missing or too fast can be read off, the layer with 2022 Megatron's unfused
attention (`TrainingStack.fused_attention=False`) and its asynchronous column-parallel backward
(`train.layer.BACKWARD_ASYNC_SHARE`), and Table 5's iterations at the paper's mappings; `--all` adds
GPT-3 175B at TP 8 on A100 and H100 (where Megatron-LM's README reports 47% MFU end to end).
Run: python bench/train_layer_breakdown.py [--all]   (prints figures; asserts nothing)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from tokenfab import catalog  # noqa: E402
from tokenfab.mapping.search import chip_hardware  # noqa: E402
from tokenfab.perf.efficiency import efficiency_for  # noqa: E402
from tokenfab.perf.evaluate import time_ops  # noqa: E402
from tokenfab.specs import ModelSpec, SystemSpec  # noqa: E402
from tokenfab.train import layer as L  # noqa: E402
from tokenfab.train.stack import TrainingStack  # noqa: E402
from tokenfab.graph import StepShape  # noqa: E402

GPT_22B = {"model_type": "gpt2", "n_embd": 6144, "n_head": 64, "n_layer": 48, "n_positions": 2048,
           "vocab_size": 51200, "activation_function": "gelu_new", "tie_word_embeddings": True}
"""Korthikanti et al. Table 3's 22B model as a GPT-2-style config.json."""
MEASURED_22B_MS = {"forward (SP)": 7.2, "backward (SP)": 11.8, "forward (no SP)": 7.7, "backward (no SP)": 11.9}


def model_from(cfg: dict, name: str) -> ModelSpec:
    """A ModelSpec from a config.json dict (written to a temporary file the loader reads)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.json")
        with open(path, "w") as fh:
            json.dump(cfg, fh)
        return ModelSpec.from_config_file(path, model_id=name)


def breakdown(model, chip_id: str, seq: int, tp: int, mbs: int, precision: str = "bf16",
              unfused: bool = False) -> None:
    """Per-layer parts and per-op seconds of one micro-batch of `mbs` sequences at TP `tp`."""
    chip = catalog.load_chip(chip_id)
    system, eff = SystemSpec.for_chip(chip), efficiency_for(chip)
    hw = chip_hardware(model, chip, system, eff, (precision,), None, 0, "prefill", None, "roofline")
    st = TrainingStack()
    w = 1.0 if precision == "fp8" else 2.0
    tpa = np.array([float(tp)])
    mbt = L.micro_batch_times(model, hw, seq, tpa, np.array([1.0]), np.array([1.0]), np.array([float(mbs)]),
                              st.attention_backward_ratio / st.attention_backward_efficiency, w, False,
                              unfused_attention=unfused)
    n = model.num_layers
    print(f"\n{model.id} on {chip_id}, TP {tp}, seq {seq}, micro-batch {mbs}, {precision}"
          f"{', unfused attention' if unfused else ''}: per layer (ms)")
    f_ms = 1e3 * float(mbt.fwd_compute[0] + mbt.fwd_comm[0]) / n
    b_ms = 1e3 * float(mbt.bwd_compute[0] + mbt.bwd_comm[0]) / n
    b_async = b_ms - 1e3 * (1.0 - st.comm_sm_frac) * float(mbt.tp_bwd_hidden[0]) / n
    print(f"  forward {f_ms:.2f}, backward {b_ms:.2f} (TP collectives exposed) / {b_async:.2f} (Megatron's "
          f"asynchronous column-parallel backward)")
    for k in ("fwd_compute", "fwd_comm", "bwd_compute", "bwd_comm", "cheap_fwd", "attention_fwd", "wgrad",
              "tp_bwd_hidden"):
        print(f"  {k:<14} {1e3 * float(getattr(mbt, k)[0]) / n:8.3f}")
    head = f"{1e3 * float(mbt.head_fwd[0]):8.3f} / {1e3 * float(mbt.head_bwd[0]):.3f}"
    print(f"  {'head fwd/bwd':<14} {head} (whole head)")
    tokens = mbs * seq
    shape = StepShape("prefill", tokens=np.array([float(tokens)]), seqs=np.array([float(mbs)]),
                      ctx=np.array([seq / 2.0]), kv_len=np.array([float(seq)]), tp=tpa, dp=np.array([1.0]),
                      ep=np.array([1.0]), w_bytes=w, a_bytes=2.0, kv_bytes=2.0)
    ops = L.training_ops(model, shape, 1.0, fp8=precision == "fp8", mtp=False)
    bwd = [b for op in ops if op.kind == "gemm" for b in L.backward_gemm_ops(op)]
    times = time_ops(ops + bwd, hw)
    peak = chip.peak_tflops(precision) * 1e12
    layer_flops = 3.0 * sum(float(np.ravel(2.0 * np.asarray(op.m, float) * op.n * op.k * op.groups * op.count)[0])
                            if op.kind == "gemm" else float(np.ravel(np.asarray(op.flops, float))[0]) * op.count
                            for op in ops if op.kind in ("gemm", "attention") and op.name not in L.HEAD_OPS) / n
    mfu_exposed = layer_flops / (f_ms + b_ms) / peak * 1e3
    mfu_async = layer_flops / (f_ms + b_async) / peak * 1e3
    print(f"  layer MFU (3x forward GEMM + attention FLOPs over fwd+bwd time): {mfu_exposed:.1%} exposed, "
          f"{mfu_async:.1%} asynchronous backward")
    print(f"  {'op':<28} {'kind':<10} {'ms/layer':>9} {'TFLOP/s':>9} {'% peak':>7}")
    for op, t in zip(ops + bwd, times):
        sec = float(np.asarray(t.seconds).ravel()[0])
        per = sec / (1.0 if op.name in L.HEAD_OPS or op.name.split(":")[0] in L.HEAD_OPS else n)
        fl = 0.0
        if op.kind == "gemm":
            fl = float(np.asarray(2.0 * np.asarray(op.m, float) * op.n * op.k * op.groups * op.count).ravel()[0])
        elif op.kind == "attention":
            fl = float(np.asarray(op.flops, float).ravel()[0]) * op.count
        rate = fl / sec / 1e12 if sec > 0 and fl else 0.0
        print(f"  {op.name:<28} {op.kind:<10} {1e3 * per:9.3f} {rate:9.0f} {100 * rate * 1e12 / peak:7.1f}")


TABLE5 = (  # name, hidden, heads, layers, TP, PP, GPUs, global batch, micro-batch, interleave, seconds, MFU
    ("22B", 6144, 64, 48, 8, 1, 8, 4, 4, None, 1.10, 0.415),
    ("175B", 12288, 96, 96, 8, 8, 64, 64, 1, 3, 13.75, 0.514),
    ("530B", 20480, 128, 105, 8, 35, 280, 280, 1, 3, 37.83, 0.560),
    ("1T", 25600, 160, 128, 8, 64, 512, 512, 1, None, 71.49, 0.563),
)
"""Korthikanti et al. Tables 3 and 5 (selective recompute + sequence parallelism, no data parallelism;
§6: "interleaving schedule with three interleaving stages (m = 3) for the 175B and 530B models")."""


def table5(chip_id: str = "a100-sxm-80g") -> None:
    """Iteration time at the paper's mappings: as the paper ran (unfused attention, no overlap of the
    forward tensor-parallel communication), with fused attention, and with the engine's overlap."""
    from tokenfab.train import TrainingJob
    from tokenfab.train.estimate import estimate_training

    chip = catalog.load_chip(chip_id)
    print(f"\nKorthikanti Table 5 on {chip_id}: iteration seconds, engine vs paper")
    unfused = TrainingStack(fused_attention=False)
    for name, h, a, layers, tp, pp, n, gbs, mbs, v, sec, mfu in TABLE5:
        cfg = dict(GPT_22B, n_embd=h, n_head=a, n_layer=layers)
        model = model_from(cfg, f"gpt-{name.lower()}")
        out = []
        for stack, overlap, label in ((unfused, False, "unfused, no overlap"), (None, False, "fused, no overlap"),
                                      (None, True, "fused, overlap")):
            kw = dict(tokens=1e11, seq_len=2048, global_batch_tokens=gbs * 2048.0, tp=tp, pp=pp, dp=1, cp=1,
                      micro_batch=mbs, recompute="selective", zero=1, overlap=overlap)
            kw.update(schedule="interleaved", virtual_stages=v) if v else kw.update(schedule="1f1b")
            r = estimate_training(model, chip, n, TrainingJob(**kw), stack)
            out.append(f"{label} {r['step_time_s']:6.2f} s ({r['step_time_s'] / sec - 1:+.0%})")
        print(f"  {name:<5} paper {sec:6.2f} s (MFU {mfu:.1%}) | " + " | ".join(out))


def main() -> None:
    m22 = model_from(GPT_22B, "gpt-22b")
    breakdown(m22, "a100-sxm-80g", 2048, 8, 4)
    breakdown(m22, "a100-sxm-80g", 2048, 8, 4, unfused=True)
    print("  measured (Korthikanti Table 4):", MEASURED_22B_MS)
    table5()
    if "--all" in sys.argv:
        breakdown(catalog.load_model("gpt-3-175b"), "a100-sxm-80g", 2048, 8, 1)
        breakdown(catalog.load_model("gpt-3-175b"), "h100-sxm", 4096, 8, 1)


if __name__ == "__main__":
    main()
