"""US ECCN 3A090 screen: TPP = 2 × MacTOPS × bit length (max over precisions), density = TPP / die
area, the 3A090.a/.b thresholds, the 3A090.c HBM density."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tokenfab.catalog import load_chip
from tokenfab.cli import app
from tokenfab.cost.export_control import classify, screen, tpp_of


def test_h20_is_below_the_3a090a_tpp_threshold_from_its_datasheet():
    h20 = load_chip("h20")
    # dense BF16 148 TFLOPS = 74 MacTOPS × 2 × 16 bits = 2,368; FP8/INT8 296 × 8 = 2,368 (same)
    tpp, _ = tpp_of(h20)
    assert tpp == pytest.approx(2368)
    assert tpp < 4800
    s = screen(h20)
    # 2,368 / 814 mm² = 2.91: under 3A090.a.2 (5.92) and 3A090.b.2 (3.2); TPP under 3A090.b.1's 2,400
    assert s.performance_density == pytest.approx(2368 / 814)
    assert s.classification == "not 3A090.a/.b"
    # but its HBM3 (6 stacks, 4.0 TB/s: 667 GB/s over 121 mm²) is above 3A090.c's 2 GB/s/mm²
    assert s.memory_bandwidth_density_gb_s_mm2 == pytest.approx(4000 / 6 / 121)
    assert s.hbm_3a090c


def test_h100_is_3a090a_by_tpp():
    s = screen(load_chip("h100-sxm"))
    # dense FP8 1,979 TFLOPS × 8 bits ≈ 15,832 (the figure commonly quoted for H100)
    assert s.tpp == pytest.approx(1978.9 * 8, rel=1e-3)
    assert s.classification == "3A090.a"
    # HBM3 in 5 stacks: 3,350 GB/s / 5 / 121 mm² = 5.5
    assert s.memory_bandwidth_density_gb_s_mm2 == pytest.approx(3350 / 5 / 121, rel=1e-3)


@pytest.mark.parametrize("tpp,pd,dc,expected", [
    (4800, 1.0, True, "3A090.a"),        # a.1 at the threshold
    (4799, 1.0, True, "not 3A090.a/.b"),  # below a.1, density below every .b band
    (1600, 5.92, True, "3A090.a"),       # a.2 at both thresholds
    (1599, 50.0, True, "not 3A090.a/.b"),
    (2400, 1.6, True, "3A090.b"),        # b.1 lower corner
    (2399, 1.6, True, "not 3A090.a/.b"),
    (1600, 3.2, True, "3A090.b"),        # b.2 lower corner
    (1600, 3.19, True, "not 3A090.a/.b"),
    (4000, 10.0, False, "not 3A090.a/.b"),  # a consumer part: only a.1 applies
    (5285, 8.7, False, "3A090.a"),        # RTX 4090-like: a.1 catches it anyway
])
def test_thresholds_at_their_edges(tpp, pd, dc, expected):
    assert classify(tpp, pd, dc)[0] == expected


def test_more_compute_never_lowers_the_control_level():
    rank = {"not 3A090.a/.b": 0, "3A090.b": 1, "3A090.a": 2}
    for area in (100.0, 300.0, 600.0, 814.0, 1600.0):
        levels = [rank[classify(t, t / area)[0]] for t in np.linspace(100, 20000, 400)]
        assert all(b >= a for a, b in zip(levels, levels[1:])), area


def test_catalog_and_chip_json_carry_export_control():
    res = CliRunner().invoke(app, ["chip", "h20", "--json"])
    assert res.exit_code == 0, res.output
    ec = json.loads(res.stdout)["export_control"]
    assert {"tpp", "performance_density", "classification"} <= set(ec)
    res = CliRunner().invoke(app, ["catalog", "chips", "--json"])
    rows = {r["id"]: r["export_control"] for r in json.loads(res.stdout)}
    assert rows["h20"]["classification"] == "not 3A090.a/.b"
    assert rows["b200"]["classification"] == "3A090.a"


def test_a_smic_die_priced_with_tsmc_packaging_and_imported_hbm_says_so():
    res = CliRunner().invoke(app, ["fab", "--chip", "ascend-910c", "--json"])
    note = json.loads(res.stdout)["supply_note"]
    assert "TSMC CoWoS" in note and "3A090.c" in note
    res = CliRunner().invoke(app, ["fab", "--die-mm2", "650", "--node", "smic-n7", "--hbm-stacks", "4",
                                   "--hbm-gen", "cxmt-hbm2e", "--packaging", "domestic-2.5d", "--json"])
    assert json.loads(res.stdout)["supply_note"] is None
