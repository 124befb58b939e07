"""A young software stack as an input (issue 16 item 2): `software_maturity` on a chip or design
scales its calibrated efficiency, and `maturity_at` ramps a new in-house stack to maturity."""

import pathlib
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenfab import api, catalog
from tokenfab.design.catalog import load_design
from tokenfab.design.derive import to_chip_spec as design_to_chip
from tokenfab.perf.efficiency import (IN_HOUSE_RAMP, Efficiency, MaturityRamp, efficiency_for, maturity_at,
                                      with_maturity)
from tokenfab.specs.base import SpecError


def test_maturity_scales_fractions_and_stretches_fixed_costs():
    # Stack defaults: GEMM 0.78 of peak, HBM 0.85, launch 3 µs, host step 0.3 ms.
    # At 0.6 of a mature stack: 0.78 x 0.6 = 0.468, 0.85 x 0.6 = 0.51, 3 / 0.6 = 5 µs, 0.3 / 0.6 = 0.5 ms.
    e = with_maturity(Efficiency(), 0.6)
    assert e.gemm_compute_frac == pytest.approx(0.468)
    assert e.hbm_frac == pytest.approx(0.51)
    assert e.kernel_launch_us == pytest.approx(5.0)
    assert e.step_overhead_ms == pytest.approx(0.5)
    assert e.lowp_gemm_compute_frac is None  # an unset field stays unset (it falls back to the scaled bf16 one)
    assert "software maturity 0.6" in e.source


def test_a_mature_stack_is_the_calibration_itself():
    chip = catalog.load_chip("h100-sxm")
    assert chip.software_maturity == 1.0
    assert with_maturity(efficiency_for(chip), 1.0) is efficiency_for(chip)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_maturity_outside_0_1_is_refused(bad, tmp_path):
    with pytest.raises(ValueError):
        with_maturity(Efficiency(), bad)
    src = pathlib.Path(str(resources.files("tokenfab.catalog").joinpath("chips/h100-sxm.yaml"))).read_text()
    f = tmp_path / "young.yaml"
    f.write_text(src + f"\nsoftware_maturity: {bad}\n")
    with pytest.raises(SpecError, match="software_maturity"):
        catalog.load_chip(str(f))


def test_in_house_ramp_worked_by_hand():
    # Default ramp (estimates): 0.6 at launch, linear to 1.0 over 24 months.
    assert maturity_at(0) == pytest.approx(0.6)
    assert maturity_at(12) == pytest.approx(0.8)
    assert maturity_at(24) == pytest.approx(1.0)
    assert maturity_at(60) == 1.0
    assert maturity_at(-6) == pytest.approx(0.6)  # before launch: launch-day software
    assert MaturityRamp(at_launch=0.5, months_to_mature=10).at(5) == pytest.approx(0.75)


@given(a=st.floats(-12, 120), b=st.floats(-12, 120))
def test_ramp_never_goes_backwards(a, b):
    lo, hi = sorted((a, b))
    assert IN_HOUSE_RAMP.at(lo) <= IN_HOUSE_RAMP.at(hi) <= 1.0


@pytest.mark.parametrize("model", ["llama-3.1-8b"])
def test_younger_software_is_never_faster(model):
    chip = catalog.load_chip("h100-sxm")
    rates = [api.estimate(model, chip.model_copy(update={"software_maturity": m}), num_chips=1,
                          tp=1).output_tok_s_per_chip for m in (1.0, 0.8, 0.6)]
    assert rates[0] > rates[1] > rates[2]
    # Every fraction x0.6 and every fixed cost /0.6: no faster than 0.6 of the mature rate would be
    # if all of it scaled; the SLO-bound search may also shrink the batch, so the ratio is at most ~0.6.
    assert rates[2] / rates[0] < 0.65


def test_a_design_carries_its_maturity_into_the_chip():
    d = load_design("h100-sxm-design")
    young = d.model_copy(update={"software_maturity": 0.7})
    chip = design_to_chip(young)
    assert chip.software_maturity == 0.7
    assert "software_maturity" not in chip.estimated_fields
    assert efficiency_for(chip).gemm_compute_frac == pytest.approx(
        efficiency_for(design_to_chip(d)).gemm_compute_frac * 0.7)
