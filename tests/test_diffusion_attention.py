"""Small-head-dim attention in the SDXL UNet (graph.diffusion.small_head_exps, issue 18).

FlashAttention-3's FP16 forward sweep on H100 SXM5 (arXiv 2407.08608, Figure 5, no causal mask,
16k tokens) measures 497 / 648 / 756 TFLOPS at head dim 64 / 128 / 256. Those three points fit
time per score = 4 d FLOPs at one MMA rate + one fixed term, i.e. the exponential adds to the MMAs;
a fraction calibrated at head dim 128 leaves (1 - d / 128) of that term untimed at head dim d."""

import numpy as np
import pytest

from tokenfab import catalog
from tokenfab.graph.diffusion import GenShape, unet_forward_ops
from tokenfab.graph.transformer import small_head_exps
from tokenfab.mapping import workloads
from tokenfab.specs.requests import GenerationRequest

FA3_TFLOPS = {64: 497.0, 128: 648.0, 256: 756.0}


def test_fa3_head_dim_sweep_is_mma_plus_a_fixed_exponential_per_score():
    # Per score a head-dim-d kernel does 4 d FLOPs (QK^T and PV, 2 each). From the 128 and 256 points:
    # t(128) = 512 / 648e12 = 0.790 ps, t(256) = 1024 / 756e12 = 1.354 ps;
    # MMA time per FLOP = (1.354 - 0.790) / 512 = 1.102e-15 s (907 TFLOPS, 92% of 989);
    # fixed term = 0.790 - 512 x 1.102e-3 ps = 0.226 ps (an exp at 3.86 T/s takes 0.26 ps).
    t = {d: 4 * d / (FA3_TFLOPS[d] * 1e12) for d in FA3_TFLOPS}
    per_flop = (t[256] - t[128]) / (4 * 256 - 4 * 128)
    fixed = t[128] - 4 * 128 * per_flop
    assert 1 / per_flop / 1e12 == pytest.approx(907, rel=0.01)
    assert fixed == pytest.approx(0.226e-12, rel=0.02)
    # ... and predict the third point: 256 x 1.102e-3 ps + 0.226 ps = 0.508 ps -> 504 TFLOPS vs 497.
    assert 256 / (4 * 64 * per_flop + fixed) / 1e12 == pytest.approx(FA3_TFLOPS[64], rel=0.02)


def test_small_head_exps_by_hand():
    # Head dim 64: half an exponential per score untimed by a head-dim-128 fraction; 128 and wider: none.
    assert float(small_head_exps(1000.0, 64)) == 500.0
    assert float(small_head_exps(1000.0, 128)) == 0.0
    assert float(small_head_exps(1000.0, 256)) == 0.0
    assert float(small_head_exps(1000.0, 32)) == 750.0


def test_head_dim_64_runs_at_about_fa3s_share_of_head_dim_128_on_h100():
    # At the chip's calibrated attention fraction f (0.57): head dim 128 runs 989 f TFLOPS; head dim 64
    # runs 256 / (256 / (989 f) + 0.5 / 3.86 T/s) per score, ~0.78 of it. FA3 measures 497 / 648 =
    # 0.77 at 16k tokens, 0.75 at 4k and 0.69 at 1k (the UNet's 4,096- and 1,024-pixel levels).
    m, chip = catalog.load_model("sdxl"), catalog.load_chip("h100-sxm")
    req = GenerationRequest(width_px=1024, height_px=1024, frames=1, steps=20, guidance=8, batch=8,
                            cfg_batched=True, attention_kernel="fa3", cuda_graphs=True)
    est = workloads.estimate_generation(m, chip, req, num_chips=1, precision="fp8", max_chips=1)
    bd = est.time_breakdown_ms
    g = GenShape(tokens=16384.0, ulysses=np.array([1.0]), ring=np.array([1.0]), w_bytes=np.array([1.0]), batch=16.0)
    ops = {op.name: op for op in unet_forward_ops(m, g)}
    mma = sum(bd[k] for k in bd if k.endswith("_self_attention") or k.endswith("_cross_attention"))
    exps = sum(bd[k] for k in bd if k.endswith("_attention_exps"))
    flops = sum(op.count * float(np.max(op.flops)) for k, op in ops.items() if k.endswith("_attention") and op.kind == "attention")
    share = (flops / (mma + exps)) / (flops / mma)
    assert 0.69 <= share <= 0.80
    # the exponentials are timed on the multi-function units, not on memory: no bytes, a real time
    assert all(ops[k].bytes == 0 for k in ops if k.endswith("_attention_exps")) and exps > 0


def test_the_exponentials_slow_the_unet_and_never_speed_it(monkeypatch):
    # Property: charging work never makes a forward faster; on chips that time their multi-function
    # units (H100, A100, L40S all state sfu_tops) it makes it strictly slower.
    import tokenfab.graph.diffusion as dz

    m = catalog.load_model("sdxl")
    req = GenerationRequest(width_px=1024, height_px=1024, frames=1, steps=20, batch=1, cfg_batched=True,
                            cuda_graphs=True)
    for chip_id in ("h100-sxm", "a100-sxm-80g", "l40s"):
        chip = catalog.load_chip(chip_id)
        with_exps = workloads.estimate_generation(m, chip, req, num_chips=1, precision="bf16", max_chips=1)
        with monkeypatch.context() as mp:
            mp.setattr(dz, "small_head_exps", lambda scores, head_dim: np.zeros_like(np.asarray(scores, float)))
            without = workloads.estimate_generation(m, chip, req, num_chips=1, precision="bf16", max_chips=1)
        assert with_exps.forward_ms > without.forward_ms
        # ... by what the exps op itself reports
        exps = sum(v for k, v in with_exps.time_breakdown_ms.items() if k.endswith("_attention_exps"))
        assert with_exps.forward_ms - without.forward_ms == pytest.approx(exps, rel=1e-6)


@pytest.mark.parametrize("model_id,head_dim,expect_exps", [
    ("cogvideox-5b", 64, True),   # 3072 / 48 heads
    ("sd3.5-large", 64, True),    # 2432 / 38
    ("flux.1-dev", 128, False),   # 3072 / 24: what the fraction was calibrated at
    ("sana-1.6b", 32, False),     # linear attention: no softmax, no exponentials
])
def test_dit_attention_exps_follow_the_head_dim(model_id, head_dim, expect_exps):
    from tokenfab.graph.diffusion import dit_forward_ops

    m = catalog.load_model(model_id)
    assert m.head_dim == head_dim
    g = GenShape(tokens=4096.0, ulysses=np.array([2.0]), ring=np.array([1.0]), w_bytes=np.array([2.0]), batch=2.0)
    exps = [op for op in dit_forward_ops(m, g) if op.name.endswith("_attention_exps")]
    assert exps, "every softmax-attention block list carries its exponentials op"
    total = sum(op.count * float(np.max(op.sfu_ops)) for op in exps)
    if expect_exps:
        # main blocks: (N + text) queries x (N + text) keys x heads / ulysses 2, half an exp each
        op = exps[0]
        n = float(np.max(op.sfu_ops)) * 2 / 0.5 / m.num_heads
        assert n > 4096.0 ** 2  # at least the latent tokens attend to each other
        assert total > 0
    else:
        assert total == 0


def test_an_llm_attending_at_head_dim_64_pays_the_unhidden_exponentials_in_prefill_only():
    """gpt-oss attends at head dim 64: its prefill charges (1 - 64/128) of an exponential per score on
    the multi-function units, as the diffusion graphs do (aiconfigurator's context-attention tables:
    head dim 64 runs at 0.82 of head dim 128's rate on H100/H200); head dim 128 and decode pay none."""
    import numpy as np

    from tokenfab import catalog
    from tokenfab.graph.ops import StepShape
    from tokenfab.graph.transformer import step_ops

    def shape(phase, tokens):
        one = np.ones(1)
        return StepShape(phase=phase, tokens=tokens * one, seqs=one, ctx=(tokens / 2) * one, kv_len=tokens * one,
                         tp=one, dp=one, ep=one, w_bytes=2 * one, a_bytes=2 * one, kv_bytes=2 * one)

    oss = catalog.load_model("gpt-oss-20b")
    ops = {o.name: o for o in step_ops(oss, shape("prefill", 1024.0))}
    cores = [o for o in ops.values() if o.kind == "attention"]
    scores = sum(o.count * float(np.ravel(o.sfu_ops)[0]) for o in cores)
    assert float(np.ravel(ops["attention_exps"].sfu_ops)[0]) == pytest.approx(scores * (1 - 64 / 128))
    assert "attention_exps" not in {o.name for o in step_ops(oss, shape("decode", 1.0))}
    llama = catalog.load_model("llama-3.1-8b")
    assert "attention_exps" not in {o.name for o in step_ops(llama, shape("prefill", 1024.0))}
