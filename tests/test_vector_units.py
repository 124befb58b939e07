"""Vector and special-function units as chip data, and the time of the work they do.

An op's time is max(matrix or memory time, vector FLOPs / vector peak + launch, SFU results /
SFU peak + launch): the units run beside the matrix units and the memory pipeline, so the
slowest one sets the pace (FlashAttention-3, arXiv 2407.08608, section 3.1).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.catalog import load_chip, load_model
from tokenfab.graph import StepShape, plugins, step_ops
from tokenfab.graph.ops import Op
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.evaluate import UNIT_NAMES, Hardware, time_ops, unit_peaks, unit_shares
from tokenfab.specs import SpecError, SystemSpec
from tokenfab.specs.operator import OperatorSpec

EFF = Efficiency()
LAUNCH_S = EFF.kernel_launch_us * 1e-6  # 3 µs


@pytest.fixture(autouse=True)
def clean():
    plugins.clear_operators()
    yield
    plugins.clear_operators()


def hardware(chip, **over) -> Hardware:
    """Roofline hardware of a catalog chip with its vector and SFU peaks (BF16 GEMMs, FP8 attention)."""
    fields = dict(gemm_tflops=chip.bf16_tflops, attention_tflops=chip.fp8_tflops or chip.bf16_tflops,
                  hbm_tb_s=chip.hbm_tb_s, cores=chip.cores or 100, eff=EFF, system=SystemSpec.for_chip(chip),
                  **unit_peaks(chip))
    fields.update(over)
    return Hardware(**fields)


def shape(phase="prefill", T=8.0, ctx=8.0, kv=8.0, seqs=1.0, tp=1.0):
    one = np.ones(1)
    return StepShape(phase, tokens=T * one, seqs=seqs * one, ctx=ctx * one, kv_len=kv * one, tp=tp * one,
                     dp=one, ep=one, w_bytes=2 * one, a_bytes=2.0, kv_bytes=2 * one)


# ---- chip data ----------------------------------------------------------------------------------

def test_h100_special_function_throughput_is_16_per_sm_clock():
    # 16 results/clock/SM x 132 SMs x 1.83 GHz = 3.865 T/s, the 3.9 T/s FlashAttention-3 quotes.
    h100 = unit_peaks(load_chip("h100-sxm"))
    assert h100["sfu_tops"] == pytest.approx(16 * 132 * 1.83e9 / 1e12, rel=2e-3)
    # No vector figure in the microarch block: the chip's FP32 (CUDA-core) peak stands in.
    assert h100["vector_tflops"] == 66.9


def test_blackwell_ultra_doubles_blackwell_sfu_per_fp32_flop():
    b200, b300 = load_chip("b200"), load_chip("b300")
    per_flop = lambda c: unit_peaks(c)["sfu_tops"] / unit_peaks(c)["vector_tflops"]  # noqa: E731
    assert per_flop(b300) == pytest.approx(2 * 16 / 256, rel=0.01)
    assert per_flop(b200) == pytest.approx(16 * 148 * 1.965e9 / 80e12, rel=1e-3)


def test_chip_without_figures_times_no_unit_work():
    tpu = unit_peaks(load_chip("tpu-v6e"))
    assert tpu == {"vector_tflops": None, "sfu_tops": None}


# ---- hand-worked times ----------------------------------------------------------------------------

def test_softmax_of_a_32k_by_128_head_score_block_on_h100_is_sfu_bound():
    # 32,768 queries x 1,024 keys (a sliding window) x 128 heads of head_dim 64, FP8 attention:
    # 4,294,967,296 scores. Matrix: 4 x 64 FLOPs per score = 1.0995e12 FLOPs at 1,979 TFLOP/s x 0.60
    # = 926 µs. Exponentials: 4.295e9 / 3.86e12 = 1,112.7 µs. Softmax bookkeeping: 4 FLOPs per score
    # = 1.718e10 / 66.9e12 = 257 µs. Memory: 1 GB / (3.35 TB/s x 0.85) = 351 µs.
    chip = load_chip("h100-sxm")
    scores = 32768.0 * 1024 * 128
    op = Op("attention", "attention", 1, flops_=4 * 64 * scores, bytes_=1e9,
            vector_flops=4 * scores, sfu_ops=scores)
    t = time_ops([op], hardware(chip))[0]
    assert float(t.seconds) == pytest.approx(scores / 3.86e12 + LAUNCH_S, rel=1e-9)
    assert float(t.seconds) * 1e6 == pytest.approx(1115.7, abs=0.1)
    assert UNIT_NAMES[int(t.units)] == "sfu" and int(t.bound) == 0  # compute, for the 3-way summaries
    # Head dim 128 doubles the matrix work per exponential: the tensor cores bind again (1,852 µs).
    op128 = Op("attention", "attention", 1, flops_=4 * 128 * scores, bytes_=1e9, vector_flops=4 * scores,
               sfu_ops=scores)
    t128 = time_ops([op128], hardware(chip))[0]
    assert UNIT_NAMES[int(t128.units)] == "matrix"
    assert float(t128.seconds) == pytest.approx(4 * 128 * scores / (1978.9e12 * 0.6) + LAUNCH_S, rel=1e-3)


def test_tiled_fidelity_takes_the_same_sfu_floor():
    from tokenfab.perf import tiled

    chip = load_chip("h100-sxm")
    scores = 32768.0 * 1024 * 128
    op = Op("attention", "attention", 1, flops_=4 * 64 * scores, bytes_=1e9, sfu_ops=scores,
            meta={"head_dim": 64.0})
    t = time_ops([op], hardware(chip, tiled=tiled.tiled_hw_for(chip)))[0]
    plain = time_ops([Op("attention", "attention", 1, flops_=4 * 64 * scores, bytes_=1e9, meta={"head_dim": 64.0})],
                     hardware(chip, tiled=tiled.tiled_hw_for(chip)))[0]
    assert float(t.seconds) == pytest.approx(max(float(plain.seconds), scores / 3.86e12 + LAUNCH_S))
    assert float(t.seconds) >= scores / 3.86e12


def test_decoder_attention_counts_one_exponential_per_score():
    m = load_model("llama-3.2-1b")  # 32 heads of 64
    s = shape(T=4096.0, ctx=2048.0, kv=4096.0)
    att = {op.name: op for op in step_ops(m, s)}["attention"]
    assert float(att.sfu_ops[0]) == 4096 * 2048 * 32
    assert float(att.vector_flops[0]) == 4 * 4096 * 2048 * 32


def test_rmsnorm_residual_rope_vector_flops_by_hand():
    m = load_model("llama-3.2-1b")  # hidden 2048, 32 heads x 64
    ops = {op.name: op for op in step_ops(m, shape(T=10.0))}
    # Two norms (4 FLOPs/element) and two residual adds (1) over 10 x 2048, RoPE (3) over 10 x 32 x 64.
    assert float(ops["norms_residual_rope"].vector_flops[0]) == 10 * 2048 * 10 + 10 * 32 * 64 * 3
    # SwiGLU: 2 special functions (exp, reciprocal) and 4 FLOPs per output of the 8192-wide MLP.
    act = ops["mlp_act"]
    assert float(act.sfu_ops[0]) == 2 * 10 * 8192 and float(act.vector_flops[0]) == 4 * 10 * 8192


def test_sparse_indexer_topk_is_vector_work_of_radix_select():
    m = load_model("deepseek-v3.2")
    ops = {op.name: op for op in step_ops(m, shape(T=4.0, ctx=100_000.0, kv=100_000.0, seqs=4.0))}
    # 4 radix passes x 4 ops per score over 4 tokens x 100k cached keys.
    assert float(ops["indexer_topk"].vector_flops[0]) == 16 * 4 * 100_000
    # ReLU + weighted head sum: 3 FLOPs per (token, key, indexer head).
    assert float(ops["indexer_scores"].vector_flops[0]) == 3 * 4 * 100_000 * m.sparse_attention.index_heads


def test_memory_bound_stream_is_unchanged_by_its_small_vector_work():
    chip = load_chip("h100-sxm")
    # 1 GB at 3.35 TB/s x 0.85 = 351.2 µs; 1e9 FLOPs at 66.9 TFLOP/s = 15 µs: memory binds.
    op = Op("norm", "stream", 1, bytes_=1e9, vector_flops=1e9)
    t = time_ops([op], hardware(chip))[0]
    assert float(t.seconds) == pytest.approx(1e9 / (3.35e12 * 0.85) + LAUNCH_S)
    assert UNIT_NAMES[int(t.units)] == "memory"


# ---- plug-in operators declare their unit -------------------------------------------------------

GELU_ERF = {"name": "gelu_erf", "kind": "stream", "unit": "sfu", "count": 1, "elements": "tokens * hidden_size",
            "ops_per_element": 8, "bytes": "tokens * hidden_size * 4", "source": "test: erf by 8 SFU ops"}


def test_plugin_declared_on_the_sfu_is_sfu_bound(tiny_model):
    plugins.add_operator(GELU_ERF)
    chip = load_chip("h100-sxm")
    s = shape(T=1e6)
    op = {o.name: o for o in step_ops(tiny_model, s)}["gelu_erf"]
    assert op.kind == "stream" and op.meta["unit"] == "sfu"
    t = {x.name: x for x in time_ops([op], hardware(chip))}["gelu_erf"]
    # 1e6 tokens x 64 wide x 8 = 5.12e8 SFU results / 3.86e12 = 132.6 µs against 256 MB / 2.85 TB/s = 89.9 µs.
    elements = 1e6 * tiny_model.hidden_size
    assert float(t.seconds[0]) == pytest.approx(elements * 8 / 3.86e12 + LAUNCH_S, rel=1e-9)
    assert UNIT_NAMES[int(t.units[0])] == "sfu"


def test_plugin_unit_defaults_and_checks():
    assert OperatorSpec(name="a", flops=1.0).resolved_unit == "matrix"
    assert OperatorSpec(name="b", kind="stream").resolved_unit == "dma"
    with pytest.raises(SpecError):
        OperatorSpec.from_mapping({"name": "c", "kind": "allreduce", "unit": "sfu"}, origin="test")
    with pytest.raises(SpecError):
        OperatorSpec.from_mapping({"name": "d", "kind": "stream", "unit": "dma", "flops": 5}, origin="test")


def test_plugin_on_the_vector_unit_is_timed_against_the_vector_peak(tiny_model):
    plugins.add_operator({"name": "sort", "kind": "compute", "unit": "vector", "count": 1, "elements": "tokens",
                          "ops_per_element": 1000, "bytes": 0})
    op = {o.name: o for o in step_ops(tiny_model, shape(T=1e8))}["sort"]
    t = time_ops([op], hardware(load_chip("h100-sxm")))[0]
    assert float(t.seconds[0]) == pytest.approx(1e11 / 66.9e12 + LAUNCH_S)  # 1.495 ms
    assert UNIT_NAMES[int(t.units[0])] == "vector"


def test_estimate_reports_the_unit_of_each_op(tiny_model, tiny_chip):
    from tokenfab.api import estimate

    plugins.add_operator(dict(GELU_ERF, ops_per_element=1e5))
    est = estimate(tiny_model, load_chip("h100-sxm"))
    assert est.op_units["decode"]["gelu_erf"] == "sfu" and est.op_units["prefill"]["gelu_erf"] == "sfu"
    assert est.unit_breakdown_ms["decode"]["sfu"] >= est.time_breakdown_ms["decode"]["gelu_erf"]
    # A chip with no SFU figure does not time the special functions: the op moves its bytes.
    assert estimate(tiny_model, tiny_chip).op_units["decode"]["gelu_erf"] == "memory"
    assert set(est.unit_breakdown_ms["decode"]) == set(UNIT_NAMES)
    total = sum(est.time_breakdown_ms["decode"].values())
    assert sum(est.unit_breakdown_ms["decode"].values()) == pytest.approx(total)


# ---- designs --------------------------------------------------------------------------------------

def test_twice_the_vector_lanes_halves_vector_bound_ops_and_leaves_gemms():
    from tokenfab.design import to_chip_spec
    from tokenfab.design.catalog import load_design

    d = load_design("h100-sxm-design")
    core = d.die.core
    wide = d.model_copy(update={"die": d.die.model_copy(update={"core": core.model_copy(update={
        "vector_unit": core.vector_unit.model_copy(update={"lanes": 2 * core.vector_unit.lanes})})})})
    base, twice = to_chip_spec(d), to_chip_spec(wide)
    assert unit_peaks(twice)["vector_tflops"] == pytest.approx(2 * unit_peaks(base)["vector_tflops"])
    assert unit_peaks(twice)["sfu_tops"] == pytest.approx(2 * unit_peaks(base)["sfu_tops"])
    vec = Op("topk", "stream", 1, bytes_=1e3, vector_flops=1e12)
    gemm = Op("mlp_up", "gemm", 1, m=4096, n=8192, k=4096, w_bytes=2.0)
    t0 = time_ops([vec, gemm], hardware(base))
    t1 = time_ops([vec, gemm], hardware(twice))
    assert (float(t0[0].seconds) - LAUNCH_S) == pytest.approx(2 * (float(t1[0].seconds) - LAUNCH_S))
    assert float(t1[1].seconds) == float(t0[1].seconds)


# ---- physical laws ------------------------------------------------------------------------------

pos = st.floats(min_value=1e3, max_value=1e13, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(flops=pos, bytes_=pos, vf=pos, sfu=pos, kind=st.sampled_from(["attention", "stream", "fused"]),
       vec=st.floats(1.0, 200.0), sf=st.floats(0.1, 20.0), up_v=st.floats(1.0, 10.0), up_s=st.floats(1.0, 10.0))
def test_more_vector_or_sfu_throughput_never_slows_an_op(flops, bytes_, vf, sfu, kind, vec, sf, up_v, up_s):
    chip = load_chip("h100-sxm")
    op = Op("x", kind, 2, flops_=flops, bytes_=bytes_, vector_flops=vf, sfu_ops=sfu)
    slow = time_ops([op], hardware(chip, vector_tflops=vec, sfu_tops=sf))[0]
    fast = time_ops([op], hardware(chip, vector_tflops=vec * up_v, sfu_tops=sf * up_s))[0]
    assert float(fast.seconds) <= float(slow.seconds)
    # And never faster than the op's matrix/memory time without the units.
    plain = time_ops([Op("x", kind, 2, flops_=flops, bytes_=bytes_)], hardware(chip))[0]
    assert float(fast.seconds) >= float(plain.seconds)


def test_unit_shares_add_up_to_the_step():
    m = load_model("gpt-oss-20b")
    times = time_ops(step_ops(m, shape(T=8192.0, ctx=4096.0, kv=8192.0)), hardware(load_chip("b200")))
    total = sum(float(np.asarray(t.seconds).reshape(-1)[0]) for t in times)
    assert float(unit_shares(times).sum()) == pytest.approx(total)
