"""A full-mesh scale-up domain (issue 14; AMD Infinity Fabric, Ascend 910B HCCS, Gaudi's RoCE ports):
each chip has one link to each of its domain - 1 peers and no switch, so a group of p chips inside the
domain drives only p - 1 of them. Measured on 8 x 910B (public.csv M0537, M0539, M0540): all-reduce
bus bandwidth 126 GB/s on 8 NPUs, 45 on 4, 18 on 2 -- about 126 x (p - 1)/7."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenfab import catalog
from tokenfab.mapping.batched import ChipBatch, batch_system
from tokenfab.perf import comm
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs import SystemSpec
from tokenfab.specs.chip import full_mesh_of
from tokenfab.train.collectives import ring_seconds

EFF = Efficiency(comm_bw_frac=1.0, comm_latency_us=0.0, scaleout_latency_us=0.0)
MESH = SystemSpec(chips_per_node=8, scaleup_domain=8, scaleup_gb_s=448.0, scaleout_gb_s=50.0,
                  scaleup_full_mesh=True)
SWITCHED = MESH.model_copy(update={"scaleup_full_mesh": False})


def test_a_pair_on_an_8_chip_mesh_gets_one_link():
    # 448 GB/s over 7 links = 64 GB/s per link. 2 ranks, 1 GB: 2 * 1/2 * 1e9 / 64e9 = 15.625 ms;
    # switched: 1e9 / 448e9 = 2.232 ms.
    assert comm.allreduce_time_s(1e9, 2, MESH, EFF) == pytest.approx(15.625e-3)
    assert comm.allreduce_time_s(1e9, 2, SWITCHED, EFF) == pytest.approx(1e9 / 448e9)


def test_four_chips_get_three_links_and_the_whole_domain_all_seven():
    # 4 ranks: 2 * 3/4 * 1e9 / (3 * 64e9) = 7.8125 ms; 8 ranks: the switched formula, 2 * 7/8 / 448 = 3.906 ms.
    assert comm.allreduce_time_s(1e9, 4, MESH, EFF) == pytest.approx(7.8125e-3)
    assert comm.allreduce_time_s(1e9, 8, MESH, EFF) == pytest.approx(comm.allreduce_time_s(1e9, 8, SWITCHED, EFF))


def test_the_share_of_the_links_by_hand():
    assert comm.scaleup_share(np.array([1, 2, 4, 8, 16]), MESH) == pytest.approx([1 / 7, 1 / 7, 3 / 7, 1.0, 1.0])
    assert comm.scaleup_share(np.array([2, 4]), SWITCHED) == pytest.approx([1.0, 1.0])


def test_custom_allreduce_alltoall_and_pipeline_sends_see_the_same_links():
    custom = EFF.model_copy(update={"allreduce_latency_us": 0.0, "allreduce_bw_frac": 1.0})
    assert comm.custom_allreduce_time_s(1e9, 4, MESH, custom) == pytest.approx(7.8125e-3)
    # All-to-all among 4: 3/4 of the bytes over 3 links of 64 GB/s.
    assert comm.alltoall_time_s(1e9, 4, MESH, EFF) == pytest.approx(0.75e9 / 192e9)
    # A pipeline send goes over the one link to the next stage.
    assert comm.p2p_time_s(64e6, False, MESH, EFF) == pytest.approx(1e-3)
    # Training's strided rings: 4 members of a domain use 3 links.
    assert ring_seconds(1e9, 4, 4, MESH, EFF, passes=2.0) == pytest.approx(7.8125e-3)


@given(st.floats(1e3, 1e10), st.integers(2, 7))
def test_a_sub_group_of_a_mesh_never_beats_the_switched_domain(bytes_, group):
    for fn in (comm.allreduce_time_s, comm.alltoall_time_s, comm.allgather_time_s):
        assert fn(bytes_, group, MESH, EFF) >= fn(bytes_, group, SWITCHED, EFF) * (1 - 1e-12)


@given(st.floats(1e6, 1e10))
def test_on_a_mesh_more_members_move_an_allreduce_no_slower(bytes_):
    """Each added member brings a link: the per-rank bus bandwidth 2(p-1)/p x bytes / t grows with p."""
    bus = [2 * (p - 1) / p * bytes_ / float(comm.allreduce_time_s(bytes_, p, MESH, EFF)) for p in range(2, 9)]
    assert all(b2 >= b1 * (1 - 1e-12) for b1, b2 in zip(bus, bus[1:]))


def test_which_interconnects_are_full_meshes():
    assert full_mesh_of("Infinity Fabric (7 links, 8-GPU full mesh)")
    assert full_mesh_of("HCCS, 8-NPU full mesh (Atlas 800T A2)")
    assert full_mesh_of("integrated RoCE v2, 24 x 200GbE (21 ports all-to-all inside HLS-3, 3 for scale-out)")
    assert not full_mesh_of("Unified Bus (UB), 384-NPU non-blocking all-to-all (CloudMatrix384)")
    assert not full_mesh_of("NVLink 4 (18 links) + NVSwitch (HGX/DGX H100, 8 GPUs)")
    assert not full_mesh_of("ICI, 2D torus (256-chip pod)")
    assert catalog.load_chip("mi300x").is_full_mesh and catalog.load_chip("ascend-910b").is_full_mesh
    assert not catalog.load_chip("h200-sxm").is_full_mesh
    # The field, when given, wins over the text.
    chip = catalog.load_chip("h200-sxm").model_copy(update={"scaleup_full_mesh": True})
    assert chip.is_full_mesh and SystemSpec.for_chip(chip).scaleup_full_mesh


def test_the_batched_path_sees_each_chips_mesh():
    chips = [catalog.load_chip("mi300x"), catalog.load_chip("h200-sxm")]
    system = batch_system(ChipBatch.from_specs(chips))
    share = comm.scaleup_share(np.array([2.0, 4.0]), system)
    assert share == pytest.approx(np.array([[1 / 7, 3 / 7], [1.0, 1.0]]))


def test_910b_measured_bus_bandwidth_by_group_size():
    """The shipped calibration reproduces the measured 2-, 4- and 8-NPU bus bandwidths within 20%
    (they were unusable when every group got the whole chip's bandwidth: 2 NPUs +24%, 4 NPUs +49%)."""
    from tokenfab.specs.measurement import load_measurements
    from tokenfab.validate.datasets import public_csv
    from tokenfab.validate.micro import predict_micro
    from tokenfab.perf.efficiency import efficiency_for

    chip = catalog.load_chip("ascend-910b")
    rows = {r.id: r for r in load_measurements(public_csv()) if r.id in ("M0537", "M0539", "M0540")}
    assert set(rows) == {"M0537", "M0539", "M0540"}
    for r in rows.values():
        assert r.usable
        assert predict_micro(r, chip, efficiency_for(chip)) == pytest.approx(r.value, rel=0.20)
