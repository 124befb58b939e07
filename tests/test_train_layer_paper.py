"""The training engine's transformer layer against Korthikanti et al.'s measured layer and step times.

Korthikanti et al., "Reducing Activation Recomputation in Large Transformer Models" (arXiv 2205.05198),
on 80 GB A100 (Selene), mixed precision, sequence 2048, vocabulary 51,200:
- Table 3: 22B = 64 heads, hidden 6144, 48 layers, TP 8, PP 1, global batch 4, micro-batch 4;
  175B = 96 / 12288 / 96, TP 8, PP 8 (interleaved, 3 stages), 64 GPUs, batch 64, micro-batch 1;
  530B = 128 / 20480 / 105, TP 8, PP 35 (interleaved 3), 280 GPUs; 1T = 160 / 25600 / 128, TP 8, PP 64, 512 GPUs.
- Table 4 (22B, one layer, sequence parallelism, no recompute): forward 7.2 ms, backward 11.8 ms;
  selective recompute adds 1.3 ms to the backward (13.2 vs 11.9 without sequence parallelism).
- Table 5 (selective recompute + sequence parallelism): iteration 1.10 / 13.75 / 37.83 / 71.49 s.
The paper's Megatron-LM ran attention unfused (scores written, softmax, dropout, then the AV bmm):
the engine prices fused (Flash) attention, so its forward is short by that score traffic, worked by
hand below (`TrainingStack.fused_attention=False` prices it); everything else is the engine's own physics.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tokenfab import catalog
from tokenfab.graph import StepShape
from tokenfab.mapping.search import chip_hardware
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.specs import ModelSpec, SystemSpec
from tokenfab.train import TrainingJob, TrainingStack, estimate_training
from tokenfab.train import layer as L

SEQ, TP, MBS = 2048, 8, 4


def gpt(tmp_path, h, a, layers, name):
    cfg = {"model_type": "gpt2", "n_embd": h, "n_head": a, "n_layer": layers, "n_positions": SEQ, "vocab_size": 51200,
           "activation_function": "gelu_new", "tie_word_embeddings": True}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return ModelSpec.from_config_file(path, model_id=name)


@pytest.fixture(scope="module")
def a100():
    return catalog.load_chip("a100-sxm-80g")


@pytest.fixture(scope="module")
def m22(tmp_path_factory):
    return gpt(tmp_path_factory.mktemp("m"), 6144, 64, 48, "gpt-22b")


def layer_times(model, chip, unfused=False, frozen=False):
    hw = chip_hardware(model, chip, SystemSpec.for_chip(chip), efficiency_for(chip), ("bf16",), None, 0, "prefill",
                       None, "roofline")
    st = TrainingStack()
    one = np.array([1.0])
    return L.micro_batch_times(model, hw, SEQ, one * TP, one, one, one * MBS,
                               st.attention_backward_ratio / st.attention_backward_efficiency, 2.0, False,
                               frozen=frozen, unfused_attention=unfused)


def layer_ms(model, chip, unfused=False):
    """(forward, backward) ms of one layer as Megatron runs it without TE's overlap: forward
    collectives exposed, the backward's asynchronous column-parallel collectives beside its GEMMs."""
    t = layer_times(model, chip, unfused)
    n, f = model.num_layers, TrainingStack().comm_sm_frac
    fwd = float(t.fwd_compute[0] + t.fwd_comm[0]) / n * 1e3
    bwd = float(t.bwd_compute[0] + t.bwd_comm[0] - (1.0 - f) * t.tp_bwd_hidden[0]) / n * 1e3
    return fwd, bwd


def test_layer_gemm_flops_are_24_t_h2_over_tp_by_hand(m22):
    # A GPT layer with a 4h MLP: QKV 3h², O h², MLP 8h² -> 12h² weights, 2 FLOPs each per token:
    # 24·T·h² per layer, over TP 8 ranks. T = 4 x 2048 = 8192, h = 6144:
    # 24 x 8192 x 6144² / 8 = 9.277e11 FLOPs of forward GEMMs per GPU and layer.
    T = float(MBS * SEQ)
    one = np.array([1.0])
    shape = StepShape("prefill", tokens=one * T, seqs=one * MBS, ctx=one * SEQ / 2, kv_len=one * SEQ, tp=one * TP,
                      dp=one, ep=one, w_bytes=2.0, a_bytes=2.0, kv_bytes=2.0)
    ops = L.training_ops(m22, shape, 1.0, mtp=False)
    gemms = [op for op in ops if op.kind == "gemm" and op.name not in L.HEAD_OPS]
    fwd = sum(float(np.ravel(2.0 * np.asarray(op.m, float) * op.n * op.k * op.groups * op.count)[0]) for op in gemms)
    assert fwd / 48 == pytest.approx(24 * 8192 * 6144**2 / 8, rel=1e-3)
    # The backward's input- and weight-gradient GEMMs are twice the forward's FLOPs.
    bwd = sum(float(np.ravel(2.0 * np.asarray(b.m, float) * b.n * b.k * b.groups * b.count)[0])
              for op in gemms for b in L.backward_gemm_ops(op))
    assert bwd == pytest.approx(2.0 * fwd, rel=1e-9)


def test_megatron_hides_two_thirds_of_the_backward_tp_collectives_by_hand(m22, a100):
    # Forward: an all-gather before each column-parallel GEMM and a reduce-scatter after each
    # row-parallel one, C seconds. Backward 1.5 C: the column-parallel input re-gathered (C/2, beside
    # its input-gradient GEMM), its input gradient reduce-scattered (C/2, beside its weight-gradient
    # GEMM), the row-parallel output gradient all-gathered (C/2, synchronous). The 22B layer's
    # gradient GEMMs outlast C/2, so exactly C is hidden.
    t = layer_times(m22, a100)
    assert float(t.bwd_comm[0]) == pytest.approx(1.5 * float(t.fwd_comm[0]), rel=1e-9)
    assert float(t.tp_bwd_hidden[0]) == pytest.approx(float(t.fwd_comm[0]), rel=1e-9)
    # Frozen weights (LoRA) have no weight-gradient GEMM: Megatron runs both synchronously.
    assert float(layer_times(m22, a100, frozen=True).tp_bwd_hidden[0]) == 0.0


def test_unfused_attention_adds_the_score_traffic_worked_by_hand(m22, a100):
    # 2022 Megatron wrote the attention scores and ran softmax and dropout on them: (64/8 heads) x
    # 2048² x 4 sequences = 134.2M elements per GPU, each moving 2 (scores written) + 2 + 2 (softmax
    # read/write) + 2 + 2 + 1 (dropout read/write, mask) + 2 (read by the AV bmm) = 13 bytes:
    # 1.745 GB at A100's calibrated 2.039 TB/s x 0.6608 = 1.347 TB/s -> 1.295 ms per layer, plus
    # four kernel launches; the backward moves 19 bytes per element (19/13 of it).
    eff = efficiency_for(a100)
    scores = (64 / 8) * 2048**2 * 4
    by_hand_ms = scores * 13.0 / (a100.hbm_tb_s * 1e12 * eff.hbm_frac) * 1e3
    assert by_hand_ms == pytest.approx(1.295, rel=0.01)
    fused, unfused = layer_times(m22, a100), layer_times(m22, a100, unfused=True)
    extra_fwd = float(unfused.fwd_compute[0] - fused.fwd_compute[0]) / 48 * 1e3
    extra_bwd = float(unfused.bwd_compute[0] - fused.bwd_compute[0]) / 48 * 1e3
    assert extra_fwd == pytest.approx(by_hand_ms + 4 * eff.kernel_launch_us * 1e-3, rel=0.02)
    assert extra_bwd == pytest.approx(extra_fwd * 19.0 / 13.0, rel=1e-9)
    # Selective recomputation re-runs it, as Korthikanti et al.'s does (their Table 4: +1.3 ms).
    assert float(unfused.cheap_fwd[0] - fused.cheap_fwd[0]) / 48 * 1e3 == pytest.approx(extra_fwd, rel=1e-9)


def test_layer_matches_korthikanti_table4(m22, a100):
    # Table 4, sequence parallelism, no recompute: forward 7.2 ms, backward 11.8 ms per layer.
    fwd, bwd = layer_ms(m22, a100, unfused=True)
    assert fwd == pytest.approx(7.2, rel=0.05)
    assert bwd == pytest.approx(11.8, rel=0.05)
    # With fused attention the same layer is short by the score traffic alone.
    fwd_fused, _ = layer_ms(m22, a100)
    assert 7.2 - fwd_fused == pytest.approx(1.255, rel=0.25)


TABLE5 = (("22B", 6144, 64, 48, 8, 1, 8, 4, 4, None, 1.10), ("175B", 12288, 96, 96, 8, 8, 64, 64, 1, 3, 13.75),
          ("530B", 20480, 128, 105, 8, 35, 280, 280, 1, 3, 37.83),
          ("1T", 25600, 160, 128, 8, 64, 512, 512, 1, None, 71.49))


def test_step_times_match_korthikanti_table5(tmp_path, a100):
    # Table 5 as the paper ran it: unfused attention, no forward TP overlap (the search is not given
    # overlap), selective recomputation, its mappings.
    stack = TrainingStack(fused_attention=False)
    errors = []
    for name, h, a, layers, tp, pp, n, gbs, mbs, v, sec in TABLE5:
        model = gpt(tmp_path, h, a, layers, name)
        kw = dict(tokens=1e11, seq_len=SEQ, global_batch_tokens=gbs * float(SEQ), tp=tp, pp=pp, dp=1, cp=1,
                  micro_batch=mbs, recompute="selective", zero=1, overlap=False)
        kw.update(schedule="interleaved", virtual_stages=v) if v else kw.update(schedule="1f1b")
        errors.append(estimate_training(model, a100, n, TrainingJob(**kw), stack)["step_time_s"] / sec - 1.0)
    assert all(abs(e) < 0.07 for e in errors), errors
