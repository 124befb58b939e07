"""The engine changes issue 3 made for accuracy, each as a physical law or a hand-worked number."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenfab import catalog
from tokenfab.validate.queueing import mg1_wait_s
from tokenfab.mapping.search import SearchSpace, evaluate
from tokenfab.perf import comm, roofline
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs import SystemSpec, Traffic

EFF = Efficiency(comm_bw_frac=1.0, comm_latency_us=0.0, scaleout_latency_us=0.0)
SYS = SystemSpec(chips_per_node=8, scaleup_domain=8, scaleup_gb_s=400.0, scaleout_gb_s=50.0)


def test_allreduce_inside_a_domain_is_the_ring_formula():
    # 8 ranks, 1 GB, 400 GB/s, no latency: 2 * 7/8 * 1e9 / 400e9 = 4.375 ms
    assert comm.allreduce_time_s(1e9, 8, SYS, EFF) == pytest.approx(4.375e-3)


def test_allreduce_across_domains_overlaps_nvlink_and_network_phases():
    # 32 ranks = 4 domains of 8: intra 2*7/8*1e9/400e9 = 4.375 ms; inter 2*3/4*(1e9/8)/50e9 = 3.75 ms;
    # NCCL pipelines the phases, so the time is the larger one.
    assert comm.allreduce_time_s(1e9, 32, SYS, EFF) == pytest.approx(4.375e-3)
    slow_nic = SYS.model_copy(update={"scaleout_gb_s": 25.0})
    assert comm.allreduce_time_s(1e9, 32, slow_nic, EFF) == pytest.approx(7.5e-3)


def test_alltoall_across_domains_is_bound_by_the_slower_link_class():
    # 16 ranks over 2 domains: 7/16 of the bytes over NVLink, 8/16 over the NIC.
    t = comm.alltoall_time_s(1e9, 16, SYS, EFF)
    assert t == pytest.approx(max(7 / 16 * 1e9 / 400e9, 8 / 16 * 1e9 / 50e9))


def test_expert_dispatch_kernels_have_their_own_flat_latency_and_link_share():
    """A chip whose calibration fitted the dispatch kernels (`alltoall_latency_us`,
    `alltoall_bw_frac`: DeepEP and its ports) prices a dispatch or combine with them, flat in the
    group size; TP all-reduces keep NCCL's fields. 8 ranks, 8 MB: 50 us + 7/8 * 8e6 / (400e9 * 0.5)
    = 50 + 35 = 85 us; 4 ranks: 50 + 3/4 * 8e6 / 200e9 = 80 us. Without them: the alpha-beta steps."""
    ep = EFF.model_copy(update={"alltoall_latency_us": 50.0, "alltoall_bw_frac": 0.5, "comm_latency_us": 4.0})
    assert comm.alltoall_time_s(8e6, 8, SYS, ep) == pytest.approx(85e-6)
    assert comm.alltoall_time_s(8e6, 4, SYS, ep) == pytest.approx(80e-6)
    nccl = ep.model_copy(update={"alltoall_latency_us": None, "alltoall_bw_frac": None})
    assert comm.alltoall_time_s(8e6, 8, SYS, nccl) == pytest.approx(3 * 4e-6 + 7 / 8 * 8e6 / 400e9)
    assert comm.allreduce_time_s(8e6, 8, SYS, ep) == comm.allreduce_time_s(8e6, 8, SYS, nccl)


def test_an_alltoall_with_nothing_to_send_does_not_run():
    # Experts sharded over the TP group (ep = tp, one data-parallel rank): the MoE layer's dispatch
    # and combine carry 0 bytes and cost nothing, not the all-to-all's latency steps.
    assert comm.alltoall_time_s(0.0, 8, SYS, EFF) == 0.0
    assert comm.alltoall_time_s(np.array([0.0, 1e6]), 8, SYS, EFF)[1] > 0.0


@given(st.floats(1e3, 1e10), st.integers(2, 256))
def test_more_network_bandwidth_is_never_slower(bytes_, group):
    fast = SYS.model_copy(update={"scaleout_gb_s": 100.0})
    for fn in (comm.allreduce_time_s, comm.alltoall_time_s, comm.allgather_time_s):
        assert fn(bytes_, group, fast, EFF) <= fn(bytes_, group, SYS, EFF) * (1 + 1e-12)


def test_no_wave_quantization_loss_only_tile_padding():
    eff = Efficiency()
    # 960 tiles on 132 cores (7.27 waves) keep full utilization; M=100 pads to a 128-row tile.
    assert roofline.tile_utilization(1024, 15360, 132, eff) == pytest.approx(1.0)
    assert roofline.tile_utilization(100, 128, 132, eff) == pytest.approx(100 / 128)


def test_low_precision_gemms_use_their_own_fraction_of_peak():
    eff = Efficiency(gemm_compute_frac=0.8, lowp_gemm_compute_frac=0.6)
    assert eff.gemm_frac("bf16") == 0.8 and eff.gemm_frac("fp8") == 0.6 and eff.gemm_frac("fp4") == 0.6
    assert Efficiency(gemm_compute_frac=0.8).gemm_frac("fp8") == 0.8


def test_mg1_wait_worked_by_hand():
    # rho 0.5, S 1 s, cv 1: tau = 1*(1+1)/(2*0.5) = 2 s; mean = 0.5*2 = 1 s; p99 = 2*ln(50)
    mean, p99 = mg1_wait_s(0.5, 1.0, 1.0)
    assert mean == pytest.approx(1.0) and p99 == pytest.approx(2 * np.log(50))
    assert np.isinf(mg1_wait_s(1.0, 1.0, 1.0)[0])


@given(st.floats(0.01, 0.95), st.floats(0.01, 0.95))
def test_more_prefill_utilization_never_waits_less(r1, r2):
    lo, hi = sorted((r1, r2))
    assert mg1_wait_s(lo, 0.2, 0.7)[1] <= mg1_wait_s(hi, 0.2, 0.7)[1] + 1e-12


def test_prefill_is_batched_up_to_the_token_budget():
    model, chip = catalog.load_model("llama-3.1-8b"), catalog.load_chip("h100-sxm")
    t = Traffic(input_len=128, output_len=128)
    eff = Efficiency()

    def per_prompt_ms(budget):
        r = evaluate(model, chip, SystemSpec.for_chip(chip), eff, t,
                     SearchSpace(num_chips=(1,), tp=(1,), pp=(1,), batch=(256,), precisions=("fp8",),
                                 prefill_chunk_tokens=budget))
        return float(r.arrays["prefill_ms"][0] / r.arrays["prefill_prompts"][0]), float(r.arrays["prefill_prompts"][0])

    one, k1 = per_prompt_ms(128)
    many, k64 = per_prompt_ms(8192)
    assert (k1, k64) == (1.0, 64.0)
    # One 128-token prompt reads all 8 GB of weights; 64 of them share one read.
    assert many < one / 3


def test_tpot_tail_grows_with_prompt_length_spread():
    from tokenfab.validate.queueing import tpot_p99_ms

    a = {"batch": np.array([100.0]), "pp": np.array([1.0]), "tpot_ms": np.array([50.0]),
         "decode_step_ms": np.array([40.0])}
    # 10 ms of prefill per token on average; at 100 sequences the p99 request sees about
    # 100 + 2.33 sqrt(100 (1 + cv^2)) prompts (the normal limit of the skewed compound Poisson).
    assert tpot_p99_ms(a, 0.0)[0] == pytest.approx(40.0 + 10.0 * (100 + 2.33 * 10) / 100, rel=0.01)
    assert tpot_p99_ms(a, 1.0)[0] == pytest.approx(40.0 + 10.0 * (100 + 2.33 * np.sqrt(200)) / 100, rel=0.01)
    assert tpot_p99_ms(a, 1.0)[0] > tpot_p99_ms(a, 0.0)[0] > a["tpot_ms"][0]
