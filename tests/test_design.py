"""ChipDesign: the spec's constraints, hand-worked derivations, feasibility with reasons, physical laws."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tokenfab.cost.data import shipped_cost_data
from tokenfab.design import derive, evaluate_arrays, to_chip_spec
from tokenfab.design.arrays import DesignArrays
from tokenfab.design.derive import POWER_MODEL_TOLERANCE
from tokenfab.design.tech import shipped_tech
from tokenfab.specs import SpecError
from tokenfab.specs.design import ChipDesign

TECH = shipped_tech()
FAB = shipped_cost_data().fab


def toy(**changes) -> ChipDesign:
    """8 cores of 2 weight-stationary 32×32 arrays at 1 GHz on N5, 2 stacks of HBM3e, 4 links."""
    data = {
        "kind": "design", "id": "toy", "process_node": "tsmc-n5", "clock_mhz": 1000, "tdp_w": 300,
        "die": {"cores_per_die": 8, "shared_sram_mb": 16,
                "core": {"matrix_unit": {"rows": 32, "cols": 32, "precisions": {"bf16": 1, "fp8": 2}},
                         "matrix_units_per_core": 2, "vector_unit": {"lanes": 64}, "sram_kb": 1024}},
        "memory": {"hbm_generation": "hbm3e", "hbm_stacks": 2},
        "io": {"scaleup_links": 4, "scaleup_gb_s_per_link": 50},
    }
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return ChipDesign.model_validate(data)


# ---- spec ----------------------------------------------------------------------------------------

def test_rates_are_relative_to_bf16():
    with pytest.raises(ValueError, match="bf16"):
        toy(**{"die.core.matrix_unit.precisions": {"fp8": 2}})


def test_hbm_phys_cannot_be_fewer_than_stacks():
    with pytest.raises(ValueError, match="hbm_phys"):
        toy(**{"memory.hbm_phys": 1, "memory.hbm_stacks": 2})


def test_unknown_field_is_rejected_with_its_path():
    with pytest.raises(SpecError, match="die.core.sram_mb: unknown field"):
        ChipDesign.from_mapping({**toy().model_dump(), "die": {**toy().die.model_dump(),
                                                                 "core": {**toy().die.core.model_dump(),
                                                                          "sram_mb": 1}}})


def test_node_without_design_data_is_a_one_line_error():
    with pytest.raises(SpecError, match="no design technology data for node 'tsmc-n28'"):
        derive(toy(process_node="tsmc-n28"))


# ---- hand-worked derivations ------------------------------------------------------------------

def test_peaks_and_bandwidths_by_hand():
    r = derive(toy())
    # 8 cores × 2 arrays × 32 × 32 MACs × 2 FLOP × 1 GHz
    assert r.datasheet["bf16_tflops"] == pytest.approx(8 * 2 * 32 * 32 * 2 * 1e9 / 1e12)
    assert r.datasheet["fp8_tflops"] == pytest.approx(2 * r.datasheet["bf16_tflops"])
    assert r.datasheet["int8_tops"] is None
    # HBM3e: 2 stacks × 1024 bit × 9.6 Gb/s / 8; 2 × 24 GB
    assert r.datasheet["hbm_tb_s"] == pytest.approx(2 * 1024 * 9.6 / 8 / 1000)
    assert r.datasheet["hbm_gb"] == 48
    assert r.datasheet["scaleup_gb_s"] == 200
    assert r.datasheet["fp32_tflops"] == pytest.approx(8 * 64 * 2 * 1e9 / 1e12)


def test_matrix_and_sram_area_by_hand():
    r = derive(toy())
    n5 = TECH.node("tsmc-n5")
    mac = max(TECH.mac_mtr["bf16"].value, 2 * TECH.mac_mtr["fp8"].value) * (1 + TECH.c("format_overhead_frac"))
    assert r.area_mm2_breakdown["matrix_units"] == pytest.approx(8 * 2 * 32 * 32 * mac / n5["logic_mtr_per_mm2"])
    # 8 × 1 MiB scratchpads and 16 MiB of cache: Mibit / (Mibit/mm²) × integration overhead
    assert r.area_mm2_breakdown["core_sram"] == pytest.approx(
        8 * 8 / n5["sram_mbit_per_mm2"] * TECH.c("scratchpad_overhead"))
    assert r.area_mm2_breakdown["shared_sram"] == pytest.approx(
        16 * 8 / n5["sram_mbit_per_mm2"] * TECH.c("cache_overhead"))
    assert r.die_area_mm2 == pytest.approx(sum(r.area_mm2_breakdown.values()))


def test_amd_simd_core_control_and_packed_fp32_by_hand():
    # A CDNA-style CU: 4 SIMD16 of 64-bit lanes doing packed FP32 (128 FP32 results per clock).
    # Control: 64 physical lanes x LLMCompass's AMD 1.5345 MTr = 98.2 MTr; crossbar 33.6 MTr; vector
    # datapath: the 64 FP64 lanes only (no separate FP32 lanes).
    amd = toy(**{"die.core.control": "simd", "die.core.vector_unit": {"lanes": 128, "fp64_lanes": 64,
                                                                       "fp32_packed": True}})
    nv = toy(**{"die.core.control": "simt", "die.core.vector_unit": {"lanes": 128, "fp64_lanes": 64}})
    ra, rn = derive(amd), derive(nv)
    dens = TECH.node("tsmc-n5")["logic_mtr_per_mm2"]
    assert ra.area_mm2_breakdown["core_control"] == pytest.approx(8 * 64 * 1.5345 / dens)
    assert ra.area_mm2_breakdown["core_noc"] == pytest.approx(8 * 33.6 / dens)
    assert ra.area_mm2_breakdown["vector_units"] == pytest.approx(8 * 64 * TECH.c("fp64_lane_mtr") / dens)
    assert rn.area_mm2_breakdown["core_control"] == pytest.approx(8 * 128 * TECH.c("simt_control_mtr_per_lane") / dens)
    # Same FP32 peak either way (8 cores x 128 x 2 x 1 GHz = 2.048 TF); the packed lanes are smaller.
    assert ra.datasheet["fp32_tflops"] == rn.datasheet["fp32_tflops"] == pytest.approx(2.048)
    assert ra.area_mm2_breakdown["vector_units"] < rn.area_mm2_breakdown["vector_units"]
    # Both are GPU cores for the tiled model (unified L1/shared SRAM, accumulators in registers).
    assert ra.tiled["sram_per_core_bytes"] == rn.tiled["sram_per_core_bytes"]


def test_packed_fp32_needs_two_fp32_results_per_fp64_lane():
    with pytest.raises(ValueError, match="fp32_packed"):
        toy(**{"die.core.vector_unit": {"lanes": 128, "fp64_lanes": 32, "fp32_packed": True}})


def test_a_node_without_fab_data_uses_its_own_densities_and_is_priced_as_its_stand_in():
    # GF 14LPP: HD bitcell 0.064 µm² -> 31.8 x 0.021 / 0.064 = 10.4 Mibit/mm² (TSMC 16FF+: 9.0);
    # wafer cost and defect density of the fab data's tsmc-n16 entry.
    r = derive(toy(process_node="GlobalFoundries 14LPP"))
    assert (r.process_node, r.fab_node) == ("gf-14lpp", "tsmc-n16")
    assert r.area_mm2_breakdown["shared_sram"] == pytest.approx(16 * 8 / 10.4 * TECH.c("cache_overhead"))
    n16 = derive(toy(process_node="tsmc-n16"))
    assert r.area_mm2_breakdown["shared_sram"] < n16.area_mm2_breakdown["shared_sram"]
    spec = to_chip_spec(toy(process_node="GF 14LPP"))
    assert spec.process_node.startswith("tsmc-n16 (GF 14LPP")  # the cost model resolves the stand-in


def test_matrix_power_by_hand():
    r = derive(toy())
    watts = r.datasheet["bf16_tflops"] * 1e12 * TECH.c("bf16_pj_per_flop") * 1e-12  # N5: energy scale 1
    assert r.power_w_breakdown["matrix_units"] == pytest.approx(watts)
    assert r.power_w == pytest.approx(max(r.power_w_gemm_bf16, r.power_w_stream))


def test_a_cube_with_an_accumulator_buffer_pays_for_its_partial_sums_by_hand():
    # Ascend-style 16x16x16 output-stationary cube, partial sums in a 128 KiB buffer (L0C): per clock
    # 256 FP32 outputs are read and written after 16 products each -> 2 x 4 B / (2 x 16) = 0.25 B/FLOP
    # on top of the operands' (16 + 16) x 2 B / (2 x 256) = 0.125 B/FLOP.
    cube = {"rows": 16, "cols": 16, "depth": 16, "dataflow": "output_stationary", "precisions": {"bf16": 1}}
    with_acc = derive(toy(**{"die.core.matrix_unit": cube, "die.core.register_file_kb": 128,
                             "die.core.accumulator_buffer": True}))
    # Accumulators held in the array (the default): no buffer traffic, whatever the register file.
    without = derive(toy(**{"die.core.matrix_unit": cube, "die.core.register_file_kb": 128}))
    rate = with_acc.datasheet["bf16_tflops"] * 1e12
    pj = TECH.c("core_sram_pj_per_byte") * 1e-12  # N5: energy scale 1
    assert without.power_w_breakdown["core_sram"] == pytest.approx(rate * 0.125 * pj)
    assert with_acc.power_w_breakdown["core_sram"] == pytest.approx(rate * (0.125 + 0.25) * pj)
    with pytest.raises(ValueError, match="accumulator_buffer"):  # a weight-stationary array has none
        toy(**{"die.core.register_file_kb": 128, "die.core.accumulator_buffer": True})


def test_spare_cores_cost_area_not_performance():
    base, spare = derive(toy()), derive(toy(**{"die.spare_cores_per_die": 2}))
    assert spare.datasheet["bf16_tflops"] == base.datasheet["bf16_tflops"]
    assert spare.area_mm2_breakdown["matrix_units"] == pytest.approx(base.area_mm2_breakdown["matrix_units"] * 10 / 8)


def test_chiplets_split_area_and_add_die_to_die_phys():
    one, two = derive(toy()), derive(toy(compute_dies=2))
    assert two.die_area_mm2_each < one.die_area_mm2_each
    assert two.area_mm2_breakdown["die_to_die"] > 0 == one.area_mm2_breakdown["die_to_die"]
    assert two.datasheet["bf16_tflops"] == pytest.approx(2 * one.datasheet["bf16_tflops"])


# ---- feasibility ----------------------------------------------------------------------------------

def test_toy_design_is_feasible():
    r = derive(toy())
    assert r.feasible and r.infeasible_reasons == []
    assert r.unit_cost_usd and r.unit_cost_usd > 0


def test_design_over_the_reticle_is_infeasible_with_the_reason():
    r = derive(toy(**{"die.cores_per_die": 2000, "tdp_w": 20000}))
    assert not r.feasible
    assert any("reticle limit of 858 mm²" in x and "compute_dies" in x for x in r.infeasible_reasons)
    assert r.unit_cost_usd is None


def test_design_over_its_tdp_is_infeasible_with_the_reason():
    r = derive(toy(tdp_w=20))
    assert not r.feasible
    assert any("exceeds the TDP of 20 W" in x for x in r.infeasible_reasons)
    assert r.sustained_frac["bf16"] < 1.0


def test_design_without_die_edge_for_its_phys_is_infeasible():
    r = derive(toy(**{"memory.hbm_stacks": 12, "die.cores_per_die": 1, "die.shared_sram_mb": 0}))
    assert not r.feasible
    assert any("die edge" in x for x in r.infeasible_reasons)


def test_infeasible_design_still_loads_as_a_chip_spec_with_the_verdict():
    spec = to_chip_spec(toy(tdp_w=20))
    assert "INFEASIBLE" in spec.notes and spec.bf16_tflops > 0


# ---- physical laws --------------------------------------------------------------------------------

design_params = st.fixed_dictionaries({
    "process_node": st.sampled_from(["tsmc-n7", "tsmc-n5", "tsmc-n3", "tsmc-n2"]),
    "clock_mhz": st.floats(600, 2500),
    "compute_dies": st.integers(1, 4),
    "die.cores_per_die": st.integers(1, 256),
    "die.shared_sram_mb": st.floats(0, 128),
    "die.core.matrix_unit.rows": st.sampled_from([8, 16, 32, 64, 128, 256]),
    "die.core.matrix_unit.cols": st.sampled_from([8, 16, 32, 64, 128, 256]),
    "die.core.matrix_unit.dataflow": st.sampled_from(["weight_stationary", "output_stationary"]),
    "die.core.matrix_units_per_core": st.integers(1, 4),
    "die.core.sram_kb": st.floats(64, 8192),
    "memory.hbm_generation": st.sampled_from(["hbm2e", "hbm3", "hbm3e", "hbm4"]),
    "memory.hbm_stacks": st.integers(1, 8),
    "tdp_w": st.just(5000.0),
})


@settings(max_examples=60, deadline=None)
@given(params=design_params, what=st.sampled_from(["die.shared_sram_mb", "die.core.sram_kb", "die.cores_per_die"]),
       grow=st.floats(1.1, 3.0))
def test_more_area_never_lowers_unit_cost(params, what, grow):
    small = toy(**params)
    value = params[what] if params[what] >= 1 else 8.0  # grow from a size that changes the area
    big = toy(**{**params, what: type(params[what])(np.ceil(value * grow)) if what == "die.cores_per_die"
                 else value * grow})
    rs, rb = derive(small), derive(big)
    assert rb.die_area_mm2 > rs.die_area_mm2
    assume(rs.unit_cost_usd is not None and rb.unit_cost_usd is not None)
    assert rb.unit_cost_usd >= rs.unit_cost_usd


@settings(max_examples=40, deadline=None)
@given(params=design_params, tdp=st.floats(50, 3000))
def test_infeasible_exactly_when_there_is_a_reason(params, tdp):
    r = derive(toy(**{**params, "tdp_w": tdp}))
    assert r.feasible == (not r.infeasible_reasons)
    # Within the power model's error band over the TDP a design runs power-capped, beyond it is refused.
    assert (r.power_w > tdp * (1 + POWER_MODEL_TOLERANCE)) == any("TDP" in x for x in r.infeasible_reasons)
    assert (r.power_density_w_per_mm2 > r.max_w_per_mm2) == any("power density" in x for x in r.infeasible_reasons)
    assert all(0 < f <= 1 for f in r.sustained_frac.values())


@settings(max_examples=30, deadline=None)
@given(params=design_params)
def test_higher_clock_raises_peak_and_power_not_area(params):
    lo, hi = derive(toy(**params)), derive(toy(**{**params, "clock_mhz": params["clock_mhz"] * 1.2}))
    assert hi.datasheet["bf16_tflops"] == pytest.approx(1.2 * lo.datasheet["bf16_tflops"])
    assert hi.power_w_gemm_bf16 > lo.power_w_gemm_bf16
    assert hi.die_area_mm2 == pytest.approx(lo.die_area_mm2)


def test_array_evaluation_matches_one_design_at_a_time():
    designs = [toy(), toy(clock_mhz=1500), toy(**{"die.cores_per_die": 64, "memory.hbm_stacks": 6}),
               toy(process_node="tsmc-n3", compute_dies=2)]
    r = evaluate_arrays(DesignArrays.from_designs(designs, TECH, FAB))
    for i, d in enumerate(designs):
        one = derive(d)
        assert r["die_area_mm2"][i] == pytest.approx(one.die_area_mm2)
        assert r["power_w"][i] == pytest.approx(one.power_w)
        assert r["unit_cost_usd"][i] == pytest.approx(one.unit_cost_usd)
        assert bool(r["feasible"][i]) == one.feasible


# ---- harvesting: spare cores raise the sellable yield ---------------------------------------------

from tokenfab.cost.fab import die_yield, sellable_yield  # noqa: E402


def test_sellable_yield_of_a_144_core_die_with_12_spares_by_hand():
    # 800 mm² die, 144 cores of 4 mm² (576 mm²), D0 = 0.1 /cm², Poisson. A core fails with
    # p = 1 − e^(−0.04 × 0.1) = 0.3992 %; 144 cores expect 0.575 bad ones, so P(≤ 12 bad) = 1 − 1e−13.
    # The die sells when the other 224 mm² are clean: e^(−2.24 × 0.1) = 0.7993, against
    # e^(−8 × 0.1) = 0.4493 when every core must work.
    assert sellable_yield(800, 4.0, 144, 12, 0.1, "poisson") == pytest.approx(0.79932, abs=1e-5)
    assert sellable_yield(800, 4.0, 144, 0, 0.1, "poisson") == pytest.approx(0.44933, abs=1e-5)
    # One spare: P(0 bad) + P(1 bad) = q^144 + 144 p q^143 = 0.5622 + 0.3250 → × e^(−0.224)
    q = math.exp(-0.004)
    one = math.exp(-0.224) * (q ** 144 + 144 * (1 - q) * q ** 143)
    assert sellable_yield(800, 4.0, 144, 1, 0.1, "poisson") == pytest.approx(one, rel=1e-12)


def _nb_oracle(area, core, n, s, d0, alpha):
    """Brute force: the negative-binomial yield is a Poisson yield averaged over a Gamma(α, D0/α)
    defect density; integrate it on a fine grid (trapezoid) instead of the quadrature."""
    lam = np.linspace(0.0, d0 * 20, 40001)
    theta = d0 / alpha
    pdf = np.exp((alpha - 1) * np.log(np.maximum(lam, 1e-300)) - lam / theta - math.lgamma(alpha)
                 - alpha * math.log(theta))
    q = np.exp(-core / 100 * lam)
    sell = sum(math.comb(n, k) * (1 - q) ** k * q ** (n - k) for k in range(s + 1))
    return float(np.trapezoid(pdf * np.exp(-(area - n * core) / 100 * lam) * sell, lam))


@pytest.mark.parametrize("s", [0, 1, 4, 12])
def test_sellable_yield_matches_a_brute_force_integral(s):
    got = sellable_yield(814, 3.8, 144, s, 0.1, "negative_binomial", 3.0)
    assert got == pytest.approx(_nb_oracle(814, 3.8, 144, s, 0.1, 3.0), abs=2e-5)


@settings(max_examples=150, deadline=None)
@given(area=st.floats(50, 858), core_frac=st.floats(0.0, 0.95), n=st.integers(1, 400), s=st.integers(0, 40),
       d0=st.floats(0.0, 1.0), model=st.sampled_from(["poisson", "negative_binomial", "murphy", "seeds"]))
def test_spares_never_lower_yield_and_never_beat_a_clean_rest_of_die(area, core_frac, n, s, d0, model):
    core = area * core_frac / n
    plain = die_yield(area, d0, model, 3.0)
    fewer = sellable_yield(area, core, n, s, d0, model, 3.0)
    more = sellable_yield(area, core, n, s + 1, d0, model, 3.0)
    assert plain - 1e-12 <= fewer <= more + 1e-12
    # the non-core area must be clean (to the 32-point quadrature's accuracy: hypothesis found 1.007e-6 on
    # the heavy-tailed seeds model at D0 = 1/cm², 821 mm², one core of half the die)
    assert more <= die_yield(area - n * core, d0, model, 3.0) + 1e-5


def test_spare_cores_raise_sellable_yield_and_lower_the_die_cost():
    base = derive(toy(**{"die.cores_per_die": 128}))
    spare = derive(toy(**{"die.cores_per_die": 128, "die.spare_cores_per_die": 8}))
    assert base.sellable_yield == pytest.approx(base.die_yield)  # no spares: every core must work
    assert spare.sellable_yield > spare.die_yield
    assert spare.package_cost["die_yield"] == pytest.approx(spare.sellable_yield)
    assert spare.package_cost["good_die_usd"] < base.package_cost["good_die_usd"]
    parts = spare.package_cost["parts"]
    assert sum(parts.values()) == pytest.approx(spare.unit_cost_usd)


# ---- power density ---------------------------------------------------------------------------------

def test_power_density_is_logic_power_over_compute_area():
    # Logic power = the larger of the GEMM and streaming loads, less the DRAM devices' own power.
    r = derive(toy())
    gemm_logic = (r.power_w_gemm_bf16 - r.power_w_breakdown["hbm"]) / r.die_area_mm2
    assert gemm_logic <= r.power_density_w_per_mm2 < r.power_w / r.die_area_mm2
    sram = derive(toy(**{"memory": {"technology": "sram-only", "hbm_stacks": 0}}))  # no DRAM: all of it
    assert sram.power_density_w_per_mm2 == pytest.approx(sram.power_w / sram.die_area_mm2, rel=1e-12)
    assert r.max_w_per_mm2 == TECH.c("max_w_per_mm2_liquid")


def test_too_many_watts_per_mm2_is_infeasible_with_the_reason():
    hot = {"clock_mhz": 2400, "die.core.matrix_unit.rows": 128, "die.core.matrix_unit.cols": 128,
           "die.cores_per_die": 4, "die.shared_sram_mb": 0, "die.core.sram_kb": 256, "tdp_w": 20000}
    liquid, air = derive(toy(**hot)), derive(toy(**hot, cooling="air"))
    assert TECH.c("max_w_per_mm2_air") < air.power_density_w_per_mm2
    assert not air.feasible
    assert any("power density" in x and "air-cooling limit" in x for x in air.infeasible_reasons)
    assert (liquid.power_density_w_per_mm2 > TECH.c("max_w_per_mm2_liquid")) == \
        any("power density" in x for x in liquid.infeasible_reasons)


# ---- memory technologies ---------------------------------------------------------------------------

def test_lpddr5x_bandwidth_capacity_and_no_interposer_by_hand():
    r = derive(toy(**{"memory": {"technology": "lpddr5x", "hbm_stacks": 8}}))
    # 8 x64 packages at 8.533 Gb/s: 8 × 64 × 8.533 / 8 = 546 GB/s; 8 × 16 GB
    assert r.datasheet["hbm_tb_s"] == pytest.approx(8 * 64 * 8.533 / 8 / 1000)
    assert r.datasheet["hbm_gb"] == 128
    assert r.package_cost["packaging"] == "organic" and r.package_cost["memory_stacks"] == 0
    assert r.package_cost["memory_usd"] == pytest.approx(128 * FAB.memory["lpddr5x"].usd_per_gb)
    assert r.area_mm2_breakdown["hbm_phy"] == pytest.approx(8 * TECH.memory_values("lpddr5x")["phy_mm2"])


def test_gddr7_by_hand():
    r = derive(toy(**{"memory": {"technology": "gddr7", "hbm_stacks": 16}}))
    assert r.datasheet["hbm_tb_s"] == pytest.approx(16 * 32 * 28 / 8 / 1000)  # RTX 5090: 1.79 TB/s
    assert r.datasheet["hbm_gb"] == 32


def test_sram_only_memory_is_the_on_chip_sram():
    r = derive(toy(**{"memory": {"technology": "sram-only", "hbm_stacks": 0}, "die.shared_sram_tb_s": 20}))
    # 16 MiB shared + 8 cores × 1 MiB scratchpad = 24 MiB = 25.17 GB/1000
    assert r.datasheet["hbm_gb"] == pytest.approx(24 * 2 ** 20 / 1e9)
    assert r.datasheet["hbm_tb_s"] == 20
    assert r.area_mm2_breakdown["hbm_phy"] == 0 and r.power_w_breakdown["hbm"] == 0
    assert r.package_cost["memory_usd"] == 0 and r.package_cost["packaging"] == "organic"
    assert r.memory == "on-chip SRAM only"


def test_hbm4_has_its_own_price():
    r = derive(toy(**{"memory": {"technology": "hbm4", "hbm_stacks": 2}}))
    assert r.package_cost["memory"] == "hbm4" and "note" not in r.package_cost


def test_memory_spellings_and_device_counts_are_checked():
    assert toy().memory.tech_id == "hbm3e" and toy().memory.label == "HBM3E (2 stacks)"
    with pytest.raises(ValueError, match="disagree"):
        toy(**{"memory": {"technology": "hbm3", "hbm_generation": "hbm3e", "hbm_stacks": 2}})
    with pytest.raises(ValueError, match="memory.technology"):
        toy(**{"memory": {"hbm_stacks": 2}})
    with pytest.raises(SpecError, match="no memory technology 'ddr9'"):
        derive(toy(**{"memory": {"technology": "ddr9", "hbm_stacks": 2}}))
    with pytest.raises(SpecError, match="SRAM-only design has no memory devices"):
        derive(toy(**{"memory": {"technology": "sram-only", "hbm_stacks": 2}}))
    with pytest.raises(SpecError, match="at least one device"):
        derive(toy(**{"memory": {"technology": "hbm3", "hbm_stacks": 0}}))


def test_every_memory_technology_is_priced_by_an_entry_of_the_fab_data():
    for tid, m in TECH.memory.items():
        assert (m.priced_as is None) == (m.placement == "none"), tid
        assert m.priced_as is None or m.priced_as in FAB.memory, tid
        assert (FAB.memory[m.priced_as].on_package if m.priced_as else False) == (m.placement == "interposer"), tid


# ---- IO dies and stacked SRAM ------------------------------------------------------------------------

IOD = {"compute_dies": 4, "io_dies": {"count": 2, "process_node": "tsmc-n7", "shared_sram_mb": 32,
                                      "d2d_tb_s_per_compute_die": 2.0}}


def test_io_dies_take_the_io_and_add_die_to_die_phys_by_hand():
    flat, iod = derive(toy(compute_dies=4)), derive(toy(**IOD))
    moved = ("hbm_phy", "hbm_controllers", "scaleup_serdes", "link_controllers", "host_pcie", "nic_serdes", "uncore")
    assert all(iod.area_mm2_breakdown[p] == 0 for p in moved)
    assert all(flat.area_mm2_breakdown[p] > 0 for p in ("hbm_phy", "uncore"))
    # Compute die: 2 TB/s × d2d_mm2_per_tb_s of PHY instead of the generic chiplet allowance
    assert iod.area_mm2_breakdown["die_to_die"] == pytest.approx(4 * 2.0 * TECH.c("d2d_mm2_per_tb_s"))
    assert iod.die_area_mm2 < flat.die_area_mm2
    # IO die (N7): half the HBM PHYs and controllers, 32 MiB of cache, PHYs facing 2 compute dies, uncore
    n7, c = TECH.node("tsmc-n7"), TECH.c
    hbm = TECH.memory_values("hbm3e")
    lanes = 4 * np.ceil(50 * 8 / c("serdes_lane_gbps"))
    expect = (1 * hbm["phy_mm2"] + 1 * hbm["controller_mtr"] / n7["logic_mtr_per_mm2"]
              + lanes / 2 * (c("serdes_mm2_per_lane") + c("link_controller_mtr_per_lane") / n7["logic_mtr_per_mm2"])
              + 8 * (c("pcie_mm2_per_lane") + c("pcie_controller_mtr_per_lane") / n7["logic_mtr_per_mm2"])
              + c("uncore_fixed_mtr") / n7["logic_mtr_per_mm2"]
              + 32 * 8 / n7["sram_mbit_per_mm2"] * c("cache_overhead")
              + 2 * 2.0 * c("d2d_mm2_per_tb_s")) * (1 + c("misc_area_frac"))
    assert iod.io_die_mm2_each == pytest.approx(expect)
    assert iod.datasheet["sram_mb"] == 4 * 16 + 2 * 32
    assert iod.power_w_breakdown["io_dies"] > 0 == flat.power_w_breakdown["io_dies"]


def test_stacked_compute_dies_need_no_interposer_of_their_own():
    side = derive(toy(**{**IOD, "io_dies": {**IOD["io_dies"], "stacked": False}}))
    stacked = derive(toy(**IOD))
    assert stacked.package_cost["interposer_mm2"] < side.package_cost["interposer_mm2"]
    assert stacked.package_cost["interposer_mm2"] == pytest.approx(
        side.package_cost["interposer_mm2"] - stacked.die_area_mm2 * 1.10)  # CoWoS-S: +10 % spacing


def test_stacked_sram_adds_capacity_on_its_own_die():
    base = derive(toy())
    vc = derive(toy(stacked_sram={"mb_per_compute_die": 64, "process_node": "tsmc-n7"}))
    assert vc.datasheet["sram_mb"] == base.datasheet["sram_mb"] + 64
    assert vc.die_area_mm2 == pytest.approx(base.die_area_mm2)  # not on the compute die
    n7 = TECH.node("tsmc-n7")
    assert vc.stacked_sram_die_mm2_each == pytest.approx(
        64 * 8 / n7["sram_mbit_per_mm2"] * TECH.c("bulk_sram_overhead") * (1 + TECH.c("misc_area_frac")))
    assert vc.unit_cost_usd > base.unit_cost_usd


def test_an_io_die_over_the_reticle_is_infeasible_with_the_reason():
    r = derive(toy(**{**IOD, "io_dies": {**IOD["io_dies"], "count": 1, "shared_sram_mb": 2048}}))
    assert not r.feasible and any("IO die of" in x for x in r.infeasible_reasons)


def test_array_evaluation_matches_one_design_at_a_time_for_every_kind_of_design():
    designs = [toy(**IOD), toy(**{"memory": {"technology": "lpddr5x", "hbm_stacks": 8}}),
               toy(**{"memory": {"technology": "sram-only", "hbm_stacks": 0}}), toy(cooling="air"),
               toy(stacked_sram={"mb_per_compute_die": 64, "process_node": "tsmc-n7"}),
               toy(**{"die.spare_cores_per_die": 2})]
    r = evaluate_arrays(DesignArrays.from_designs(designs, TECH, FAB))
    for i, d in enumerate(designs):
        one = derive(d)
        for key, got in (("die_area_mm2", one.die_area_mm2), ("power_w", one.power_w),
                         ("unit_cost_usd", one.unit_cost_usd), ("sellable_yield", one.sellable_yield),
                         ("power_density_w_per_mm2", one.power_density_w_per_mm2)):
            assert r[key][i] == pytest.approx(got), (i, key)
        assert bool(r["feasible"][i]) == one.feasible
