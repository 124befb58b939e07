"""Kernel-table calibration (`tokenfab calibrate --source aiconfigurator`): the reader on a hand-made
fixture in the package's layout (tests/data/aic, CSV), fits that recover known parameters, the engine
terms they set, and the one-line error when the package is missing. None of this needs aiconfigurator."""

import importlib.util
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tokenfab import catalog
from tokenfab.cli import app
from tokenfab.perf import comm, roofline
from tokenfab.perf.efficiency import Efficiency, load_calibration
from tokenfab.specs import SystemSpec
from tokenfab.validate import aic_fit
from tokenfab.validate import aiconfigurator as aic
from tokenfab.validate.calibrate import base_efficiency, write_aiconfigurator

FIXTURE = Path(__file__).parent / "data" / "aic"
runner = CliRunner()


# --- reader -----------------------------------------------------------------------------------------

def test_versions_sort_as_numbers_and_the_newest_is_read():
    assert aic.version_key("1.10.0") > aic.version_key("1.2.0rc5")
    assert aic.version_key("1.3.0rc20") > aic.version_key("1.3.0rc5")
    fw, ver, path = aic.pick_table(FIXTURE, "h100_sxm", "gemm_perf", "trtllm")
    assert (fw, ver, path.name) == ("trtllm", "1.10.0", "gemm_perf.csv")


def test_gemm_table_latency_is_read_in_seconds_and_bad_rows_dropped():
    t = aic.load(FIXTURE, "h100_sxm", "gemm_perf", "trtllm")
    # 4 rows in the file; the one with latency 0 is dropped. 0.025 ms -> 25 µs.
    assert t.rows == 3
    assert list(t.columns["gemm_dtype"]) == ["bfloat16", "fp8", "fp8"]
    assert t.columns["latency_s"][0] == pytest.approx(25e-6)
    assert t.columns["m"][2] == 4096
    assert t.provenance(FIXTURE) == {"table": "h100_sxm/gemm/trtllm/1.10.0/gemm_perf.csv", "framework": "trtllm",
                                     "version": "1.10.0", "rows": 3}


def test_collective_message_size_counts_elements():
    t = aic.load(FIXTURE, "h100_sxm", "custom_allreduce_perf", "trtllm")
    # bfloat16: 1024 elements = 2048 bytes; 524288 elements = 1 MiB.
    b = aic.message_bytes(t.columns["allreduce_dtype"], t.columns["message_size"])
    assert list(b) == [2048.0, 1048576.0]
    assert list(aic.message_bytes(np.array(["int8"]), np.array([1000]))) == [1000.0]


def test_only_kernel_tables_are_opened():
    with pytest.raises(ValueError, match="not a kernel table"):
        aic.find_tables(FIXTURE, "h100_sxm", "e2e_perf")
    assert aic.load(FIXTURE, "b200_sxm", "gemm_perf", "trtllm") is None  # no such system in the fixture


@pytest.mark.slow  # importing pyarrow takes ~2 s
def test_parquet_tables_read_like_csv(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    d = tmp_path / "h100_sxm" / "gemm" / "vllm" / "0.1.0"
    d.mkdir(parents=True)
    pq.write_table(pa.table({"gemm_dtype": ["bfloat16"], "m": [2], "n": [512], "k": [512], "latency": [0.004]}),
                   d / "gemm_perf.parquet")
    t = aic.load(tmp_path, "h100_sxm", "gemm_perf", "vllm")
    assert t.rows == 1 and t.columns["latency_s"][0] == pytest.approx(4e-6) and t.columns["n"][0] == 512


# --- missing package --------------------------------------------------------------------------------

def _no_aiconfigurator(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("aiconfigurator") else real(name, *a))


def test_missing_package_is_a_one_line_error(monkeypatch):
    _no_aiconfigurator(monkeypatch)
    with pytest.raises(aic.AiconfiguratorMissing, match="pip install"):
        aic.data_root()


def test_cli_without_the_package_exits_2_with_one_line(monkeypatch):
    _no_aiconfigurator(monkeypatch)
    r = runner.invoke(app, ["calibrate", "--source", "aiconfigurator", "--dry-run"])
    assert r.exit_code == 2
    assert "aiconfigurator is not installed" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_cli_rejects_an_unknown_source():
    r = runner.invoke(app, ["calibrate", "--source", "nope", "--dry-run"])
    assert r.exit_code == 2 and "not one of microbench, aiconfigurator" in r.output


# --- engine terms -----------------------------------------------------------------------------------

def test_gemm_kernel_terms_by_weight_bytes():
    eff = Efficiency(hbm_frac=0.9, kernel_launch_us=3.0, gemm_hbm_frac=0.8, lowp_gemm_hbm_frac=0.6,
                     lowp_gemm_fixed_us=12.0)
    hbm, fixed = roofline.gemm_kernel_terms(np.array([2.0, 1.0, 0.5625]), eff.model_copy(
        update={"dynamic_quant_in_gemm": True}))
    # As the kernel tables see it: bf16: its own 0.8, launch 3 µs; fp8: 0.6, 12 µs; fp4 falls back
    # to the fp8 values.
    assert list(hbm) == [0.8, 0.6, 0.6]
    assert list(fixed * 1e6) == pytest.approx([3.0, 12.0, 12.0])
    # Serving (one activation-quantization kernel, not the tables' dynamic-scale flow): at most the
    # bf16 GEMM's 3 µs plus one 3 µs launch = 6 µs.
    _, fixed = roofline.gemm_kernel_terms(np.array([2.0, 1.0, 0.5625]), eff)
    assert list(fixed * 1e6) == pytest.approx([3.0, 6.0, 6.0])
    # A fitted fixed cost under the cap is kept.
    _, fixed = roofline.gemm_kernel_terms(np.array([1.0]), eff.model_copy(update={"lowp_gemm_fixed_us": 4.0}))
    assert list(fixed * 1e6) == pytest.approx([4.0])
    # Without the new fields, the old behaviour: hbm_frac and kernel_launch_us for every class.
    hbm, fixed = roofline.gemm_kernel_terms(np.array([2.0, 1.0]), Efficiency(hbm_frac=0.85, kernel_launch_us=3.0))
    assert list(hbm) == [0.85, 0.85] and list(fixed * 1e6) == pytest.approx([3.0, 3.0])


def test_decode_sized_gemm_is_weight_stream_plus_fixed_cost():
    # M=1, N=K=4096, bf16 on 3.35 TB/s at 0.5 of it: bytes = 4096·4096·2 + 1·(4096+4096)·2 = 33,570,816;
    # 33,570,816 / 1.675e12 = 20.042 µs, + 4 µs fixed = 24.042 µs (compute: 33.5 MFLOP, negligible).
    eff = Efficiency(gemm_hbm_frac=0.5, gemm_fixed_us=4.0)
    t, compute_bound = roofline.gemm_time_s(1, 4096, 4096, 989.0, 3.35, 2.0, 2.0, 132, eff)
    assert float(t) * 1e6 == pytest.approx(24.042, abs=1e-3)
    assert not bool(compute_bound)


def test_four_bit_weights_without_fp4_math_stream_4bit_bytes_at_the_wider_compute_rate():
    # W4A16 on a chip with no FP4 path: the caller passes the bf16 peak and fraction; the weight bytes
    # are 4.5-bit. M=1, N=K=8192: 8192·8192·0.5625 + 16384·2 = 37,781,504 B / (3.35e12·0.6) = 18.797 µs.
    eff = Efficiency(lowp_gemm_hbm_frac=0.6, lowp_gemm_fixed_us=5.0)
    t, _ = roofline.gemm_time_s(1, 8192, 8192, 989.0, 3.35, 0.5625, 2.0, 132, eff, compute_frac=0.7)
    assert float(t) * 1e6 == pytest.approx(18.797 + 5.0, abs=1e-3)
    assert str(roofline.kernel_class(0.5625)) == "fp4"


def test_custom_allreduce_is_flat_latency_and_the_faster_of_custom_and_nccl():
    system = SystemSpec(scaleup_gb_s=450, scaleup_domain=8, chips_per_node=8, scaleout_gb_s=50)
    nccl = Efficiency(comm_latency_us=6.0, comm_bw_frac=1.0)
    eff = nccl.model_copy(update={"allreduce_latency_us": 3.0, "allreduce_bw_frac": 0.5})
    # 1 MiB over 8 ranks: custom 3 µs + 1.75·1,048,576 / 225e9 = 11.155 µs; NCCL 2·3·6 µs + 1.75·1,048,576/450e9
    # = 40.078 µs: the custom one wins. Small message, 2 ranks: custom 3 µs flat vs NCCL 2·1·6 = 12 µs.
    assert float(comm.allreduce_time_s(1 << 20, 8, system, eff)) * 1e6 == pytest.approx(11.155, abs=1e-3)
    assert float(comm.allreduce_time_s(1 << 20, 8, system, nccl)) * 1e6 == pytest.approx(40.078, abs=1e-3)
    assert float(comm.allreduce_time_s(0, 2, system, eff)) * 1e6 == pytest.approx(3.0)
    # 1 GiB: NCCL's full-link ring (4.18 ms) beats the custom kernel's half-link one (4.18 ms × 2).
    big = 1 << 30
    assert float(comm.allreduce_time_s(big, 8, system, eff)) == float(comm.allreduce_time_s(big, 8, system, nccl))


# --- fits recover known parameters ------------------------------------------------------------------

def _synthetic_gemm_table(chip, eff, truth: dict[str, dict]) -> aic.Table:
    grid = np.array(np.meshgrid([1, 8, 64, 256, 1024, 4096], [512, 2048, 8192], [512, 4096, 16384]))
    m, n, k = (g.ravel().astype(float) for g in grid)
    dtypes, cols = [], {"m": [], "n": [], "k": [], "latency_s": []}
    for dtype, prec in (("bfloat16", "bf16"), ("fp8", "fp8")):
        t = aic_fit.gemm_seconds(m, n, k, prec, chip, eff, truth[prec])
        dtypes += [dtype] * m.size
        for c, v in (("m", m), ("n", n), ("k", k), ("latency_s", t)):
            cols[c].append(v)
    columns = {c: np.concatenate(v) for c, v in cols.items()}
    columns["gemm_dtype"] = np.array(dtypes)
    return aic.Table("h100_sxm", "gemm_perf", "trtllm", "synthetic", Path("synthetic"), columns)


def test_gemm_fit_recovers_known_curves():
    chip = catalog.load_chip("h100-sxm")
    eff = Efficiency()
    truth = {"bf16": {"compute_frac": 0.75, "hbm_frac": 0.8, "fixed_us": 3.0},
             "fp8": {"compute_frac": 0.55, "hbm_frac": 0.6, "fixed_us": 12.0}}
    fits = {f.precision: f for f in aic_fit.fit_gemm(_synthetic_gemm_table(chip, eff, truth), chip, eff)}
    assert set(fits) == {"bf16", "fp8"}
    for prec, want in truth.items():
        for name, v in want.items():
            assert fits[prec].params[name] == pytest.approx(v, rel=0.01), (prec, name)
        assert fits[prec].median_ape_after < 1e-3 < fits[prec].median_ape_before


def test_gemm_fit_separates_the_quantization_pass_from_the_compute_fraction():
    """A table whose FP8 rows carry a quantization pass of 6 B per input element (the TensorRT-LLM
    PyTorch flow's dynamic scale): the fit returns it and the GEMM's own compute fraction, instead of
    a compute fraction lowered to absorb it (which would make large-N GEMMs slower and small-N ones
    faster than the table)."""
    chip = catalog.load_chip("h100-sxm")
    eff = Efficiency()
    truth = {"bf16": {"compute_frac": 0.75, "hbm_frac": 0.8, "fixed_us": 3.0},
             "fp8": {"compute_frac": 0.72, "hbm_frac": 0.8, "fixed_us": 12.0, "quant_bytes": 6.0}}
    fits = {f.precision: f for f in aic_fit.fit_gemm(_synthetic_gemm_table(chip, eff, truth), chip, eff)}
    for name, v in truth["fp8"].items():
        assert fits["fp8"].params[name] == pytest.approx(v, rel=0.01), name
    assert fits["fp8"].median_ape_after < 1e-3
    assert fits["bf16"].params["quant_bytes"] == 0.0  # nothing to quantize


def test_gemm_fit_can_keep_the_compute_fraction():
    chip = catalog.load_chip("h100-sxm")
    eff = Efficiency(gemm_compute_frac=0.7)
    truth = {"bf16": {"compute_frac": 0.7, "hbm_frac": 0.8, "fixed_us": 3.0},
             "fp8": {"compute_frac": 0.7, "hbm_frac": 0.6, "fixed_us": 12.0}}
    fits = {f.precision: f for f in aic_fit.fit_gemm(_synthetic_gemm_table(chip, eff, truth), chip, eff,
                                                     fit_compute=False)}
    assert fits["bf16"].params["compute_frac"] == 0.7
    assert fits["bf16"].params["hbm_frac"] == pytest.approx(0.8, rel=0.01)
    assert fits["fp8"].params["fixed_us"] == pytest.approx(12.0, rel=0.01)


def test_allreduce_fit_recovers_known_alpha_beta():
    chip = catalog.load_chip("h100-sxm")
    system = SystemSpec.for_chip(chip)
    eff = Efficiency(comm_latency_us=6.0, comm_bw_frac=0.9)
    truth = eff.model_copy(update={"allreduce_latency_us": 3.5, "allreduce_bw_frac": 0.6})
    p, elems = (g.ravel() for g in np.meshgrid([2, 4, 8], 2.0 ** np.arange(7, 25, 2)))
    lat = np.asarray(comm.custom_allreduce_time_s(elems * 2.0, p, system, truth), float)
    table = aic.Table("h100_sxm", "custom_allreduce_perf", "trtllm", "synthetic", Path("synthetic"),
                      {"allreduce_dtype": np.array(["bfloat16"] * p.size), "num_gpus": p.astype(float),
                       "message_size": elems, "latency_s": lat})
    fit = aic_fit.fit_allreduce(table, system, eff)
    assert fit.params["allreduce_latency_us"] == pytest.approx(3.5, rel=0.01)
    assert fit.params["allreduce_bw_frac"] == pytest.approx(0.6, rel=0.01)
    # Scored as the engine runs it (the faster of custom and NCCL): where NCCL's full-link ring is
    # faster the engine takes it, so the table's median error is small but not zero.
    assert fit.median_ape_after < 0.05 < fit.median_ape_before


def _nccl_table(system_name, p, elems, lat):
    return aic.Table(system_name, "nccl_perf", "nccl", "synthetic", Path("synthetic"),
                     {"nccl_dtype": np.array(["half"] * p.size), "op_name": np.array(["all_reduce"] * p.size),
                      "num_gpus": p.astype(float), "message_size": elems, "latency_s": lat})


def test_nccl_fit_recovers_a_pcie_servers_ring_alpha_and_beta():
    """A PCIe-only card (RTX PRO 6000: 64 GB/s each way, no custom all-reduce) whose NCCL ring runs at
    25% of the link with 3.5 us per step: alpha from the small messages, beta from the large ones.
    E.g. 4 GPUs, 32 MiB: 2 x log2(4) x 3.5 us + 2 x 3/4 x 33.55 MB / (64 GB/s x 0.25) = 14 us + 3.146 ms."""
    chip = catalog.load_chip("rtx-pro-6000")
    system = SystemSpec.for_chip(chip)
    assert aic_fit.pcie_only(chip)
    eff = Efficiency(comm_latency_us=4.0, comm_bw_frac=0.8)
    truth = eff.model_copy(update={"comm_latency_us": 3.5, "comm_bw_frac": 0.25})
    p, elems = (g.ravel() for g in np.meshgrid([2, 4, 8], 2.0 ** np.arange(7, 28, 2)))
    lat = np.asarray(comm.allreduce_time_s(elems * 2.0, p, system, truth), float)
    assert float(comm.allreduce_time_s(2.0 ** 25, 4, system, truth)) == pytest.approx(14e-6 + 3.1457e-3, rel=1e-3)
    fit = aic_fit.fit_nccl_allreduce(_nccl_table("rtx_pro_6000_server", p, elems, lat), system, eff,
                                     ["comm_latency_us", "comm_bw_frac"])
    assert fit.params["comm_latency_us"] == pytest.approx(3.5, rel=0.01)
    assert fit.params["comm_bw_frac"] == pytest.approx(0.25, rel=0.01)
    assert fit.median_ape_after < 0.01 < fit.median_ape_before
    # A field the chip's microbenchmark rows fit is not touched.
    only_beta = aic_fit.fit_nccl_allreduce(_nccl_table("rtx_pro_6000_server", p, elems, lat), system, eff,
                                           ["comm_bw_frac"])
    assert set(only_beta.params) == {"comm_bw_frac"}


def test_nvlink_chips_keep_their_nccl_values_from_microbenchmarks():
    """On NVLink-class fabrics serving runs the custom all-reduce and NCCL's large messages reach the
    link's datasheet bandwidth: the NCCL table is scored, not fitted. PCIe-through-the-host cards fit."""
    assert not aic_fit.pcie_only(catalog.load_chip("b300"))
    assert not aic_fit.pcie_only(catalog.load_chip("h100-sxm"))
    assert aic_fit.pcie_only(catalog.load_chip("l40s"))
    assert "comm_bw_frac" in aic_fit.microbench_fitted("h100-sxm")  # nccl-tests rows fit it
    assert not aic_fit.microbench_fitted("rtx-pro-6000")  # no microbenchmark rows


# --- calibration files ------------------------------------------------------------------------------

def test_written_fit_is_loaded_and_a_rerun_starts_from_the_same_base(tmp_path):
    chip = catalog.load_chip("h100-sxm")
    base = base_efficiency("h100-sxm", chip.vendor, tmp_path)  # empty folder: the shipped calibration
    applied = {"lowp_gemm_fixed_us": 12.5, "allreduce_latency_us": 3.3}
    path = write_aiconfigurator("h100-sxm", chip.vendor, applied, {"package_version": "x", "applied": applied},
                                tmp_path)
    eff = load_calibration(path)
    assert eff.lowp_gemm_fixed_us == 12.5 and eff.allreduce_latency_us == 3.3
    assert "aiconfigurator" in eff.source
    # The next fit starts from the file without the kernel-table values: same base, same result.
    assert base_efficiency("h100-sxm", chip.vendor, tmp_path) == base
    write_aiconfigurator("h100-sxm", chip.vendor, {"lowp_gemm_fixed_us": 11.0}, {"applied": {}}, tmp_path)
    again = load_calibration(path)
    assert again.lowp_gemm_fixed_us == 11.0 and again.allreduce_latency_us == base.allreduce_latency_us


def test_cli_on_the_fixture_records_provenance_and_writes_nothing_on_dry_run(tmp_path):
    import json

    r = runner.invoke(app, ["calibrate", "--source", "aiconfigurator", "--aic-data", str(FIXTURE), "--chip",
                            "h100-sxm", "--out", str(tmp_path), "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["written"] == [] and list(tmp_path.iterdir()) == []
    (chip,) = out["chips"]
    assert chip["chip"] == "h100-sxm"
    assert [t["table"] for t in chip["tables"]] == ["h100_sxm/gemm/trtllm/1.10.0/gemm_perf.csv",
                                                    "h100_sxm/comm/trtllm/1.10.0/custom_allreduce_perf.csv"]
    assert [g["precision"] for g in chip["gemm"]] == ["bf16", "fp8"]


def test_cli_rejects_a_missing_table_folder(tmp_path):
    r = runner.invoke(app, ["calibrate", "--source", "aiconfigurator", "--aic-data", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such folder" in r.output


def test_cli_rejects_a_folder_without_kernel_tables(tmp_path):
    # An existing but empty folder (or a chip aiconfigurator never measured) fits nothing: one line,
    # exit 2, nothing written — not an empty table and exit 0.
    r = runner.invoke(app, ["calibrate", "--source", "aiconfigurator", "--aic-data", str(tmp_path), "--out",
                            str(tmp_path)])
    assert r.exit_code == 2 and "no aiconfigurator trtllm kernel tables" in r.output
    assert list(tmp_path.iterdir()) == []
    r = runner.invoke(app, ["calibrate", "--source", "aiconfigurator", "--aic-data", str(FIXTURE), "--chip", "mi300x",
                            "--dry-run"])
    assert r.exit_code == 2 and "for mi300x" in r.output


def test_nccl_microbenchmarks_are_predicted_with_nccl_not_the_serving_custom_allreduce():
    from tokenfab.specs.measurement import load_measurements
    from tokenfab.validate.micro import predict_micro

    tiny = Path(__file__).parent / "data" / "measurements_tiny.csv"
    row = next(r for r in load_measurements(tiny) if r.id == "T03")  # 8-GPU all-reduce, no serving framework
    row_1m = row.model_copy(update={"message_bytes": 1 << 20})
    chip = catalog.load_chip("h100-sxm")
    nccl = Efficiency(comm_latency_us=6.0, comm_bw_frac=0.9)
    custom = nccl.model_copy(update={"allreduce_latency_us": 3.0, "allreduce_bw_frac": 0.5})
    assert predict_micro(row_1m, chip, custom) == predict_micro(row_1m, chip, nccl)
    # The same row measured under a serving stack gets the custom kernel (faster at 1 MiB).
    trt = row_1m.model_copy(update={"framework": "TensorRT-LLM"})
    assert predict_micro(trt, chip, custom) > predict_micro(trt, chip, nccl)


def test_gh200_runs_the_gemm_curves_of_its_die():
    """GH200's GPU is H200's GH100 die with HBM3e: its shipped calibration is fitted on H200's GEMM
    tables (`SAME_DIE_GEMM`), so the two run the same kernel fractions and fixed costs (only the
    links and the HBM peak differ), and it records which system's tables it came from."""
    from tokenfab import catalog
    from tokenfab.perf.efficiency import efficiency_for
    from tokenfab.specs.base import load_yaml
    from tokenfab.validate.aiconfigurator import SAME_DIE_GEMM, SYSTEMS

    assert SAME_DIE_GEMM["gh200"] == "h200_sxm" and "gh200" not in SYSTEMS.values()
    gh, h2 = (efficiency_for(catalog.load_chip(c)) for c in ("gh200", "h200-sxm"))
    for f in ("gemm_compute_frac", "lowp_gemm_compute_frac", "lowp_gemm_fixed_us", "gemm_fixed_us"):
        assert getattr(gh, f) == pytest.approx(getattr(h2, f), rel=0.02), f
    doc = load_yaml(Path(str(resources.files("tokenfab.catalog").joinpath("calibration/gh200.yaml"))))
    assert doc["aiconfigurator"]["system"] == "h200_sxm"
    assert doc["aiconfigurator"]["allreduce"] is None  # links are its own: no collective fit from H200's


def test_h20_takes_the_memory_side_of_h100s_fit_but_not_its_compute():
    """H20 is the GH100 die with HBM3 and NVLink like H100 SXM, its tensor path cut 6.7x: it takes
    H100's fitted weight-stream fractions, GEMM and fused-MoE fixed costs and custom all-reduce
    (`SAME_MEMORY_PATH`),
    and keeps the attention fraction fitted on its own kernel rows (FlashMLA, FA3 on H20)."""
    from tokenfab.perf.efficiency import efficiency_for
    from tokenfab.validate.aic_fit import MEMORY_SIDE
    from tokenfab.validate.aiconfigurator import SAME_MEMORY_PATH

    assert SAME_MEMORY_PATH["h20"] == "h100_sxm"
    h20, h100 = (efficiency_for(catalog.load_chip(c)) for c in ("h20", "h100-sxm"))
    for f in ("gemm_hbm_frac", "lowp_gemm_hbm_frac", "gemm_fixed_us", "lowp_gemm_fixed_us", "allreduce_latency_us"):
        assert f in MEMORY_SIDE and getattr(h20, f) == pytest.approx(getattr(h100, f)), f
    assert h20.lowp_gemm_compute_frac != pytest.approx(h100.lowp_gemm_compute_frac)
    assert h20.attention_compute_frac > 0.8  # its own FlashMLA/FA3 rows, not H100's
    # A fused-MoE layer: the expert weight streams and the layer's fixed cost are H100's (same die,
    # launch and memory path); its compute scales, shares of a compute fraction the cut tensor path
    # changes, are not taken.
    for kernel in ("bf16", "lowp"):
        _, stream20, fixed20 = h20.moe_terms(kernel)
        _, stream100, fixed100 = h100.moe_terms(kernel)
        assert (stream20, fixed20) == pytest.approx((stream100, fixed100)), kernel
        assert fixed20 > 10e-6  # ~17 us a layer on H100's TensorRT-LLM tables
    assert h20.moe_gemm_compute_scale is None and h100.moe_gemm_compute_scale is not None


def test_cli_table_shows_the_moe_fits_and_each_frameworks_own(tmp_path, monkeypatch):
    """The printed table has a row per MoE kernel class (applied or not) and per framework whose own
    MoE kernels were fitted, saying whether its own terms or the reference's are kept."""
    from dataclasses import replace

    from tokenfab.validate import aic_fit

    real = aic_fit.fit_all

    def with_moe(*a, **k):
        fits = real(*a, **k)
        fit = {"kernel_class": "fp4", "rows": 351, "params": {"compute_scale": 0.44, "stream_scale": 1.0,
                                                             "fixed_us": 56.2},
               "median_ape_before": 0.46, "median_ape_after": 0.20, "signed_median_after": 0.015}
        own = {"kernel_class": "fp4", "rows": 1323, "params": {"compute_scale": 0.48, "stream_scale": 0.88,
                                                              "fixed_us": 11.9},
               "median_ape_reference": 0.32, "median_ape_own": 0.25, "signed_median_reference": 0.17,
               "signed_median_own": 0.02, "applied": True}
        return [replace(f, moe={"fits": [fit], "applied": {"fp4_moe_layer_fixed_us": 56.2}},
                        framework_moe={"vllm": {"fits": [own], "applied": {}, "tables": []},
                                       "sglang": {"fits": [{**own, "applied": False}], "applied": {}, "tables": []}})
                for f in fits]

    monkeypatch.setattr(aic_fit, "fit_all", with_moe)
    r = runner.invoke(app, ["calibrate", "--source", "aiconfigurator", "--aic-data", str(FIXTURE), "--chip",
                            "h100-sxm", "--out", str(tmp_path), "--dry-run"], terminal_width=250)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert any("moe fp4 " in ln and "fixed_us=56.2" in ln and "46.0% → 20.0%" in ln for ln in lines), r.output
    assert any("moe fp4 under vllm" in ln and "fixed_us=11.9" in ln and "+2.0%" in ln for ln in lines)
    assert any("moe fp4 under sglang" in ln and "the reference's kept" in ln and "+17.0%" in ln for ln in lines)
