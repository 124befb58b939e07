"""bench/gpu/microbench.py without a GPU: --dry-run writes rows that tokenfab's loader accepts."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tokenfab.specs.measurement import COLUMNS, load_measurements

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu" / "microbench.py"


def _dry_run(tmp_path, *extra):
    """Run the script in --dry-run --quick mode with torch made unimportable; return (rows, stdout)."""
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch must not be imported by --dry-run')\n")
    out = tmp_path / "micro.csv"
    r = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--quick", "--out", str(out), *extra],
                       check=False, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(blocker)})
    assert r.returncode == 0, r.stderr
    return load_measurements(out), out, r.stdout


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    return _dry_run(tmp_path_factory.mktemp("microbench"))


def test_dry_run_rows_load_in_the_measurement_schema(dry):
    rows, out, stdout = dry
    assert out.read_text().splitlines()[0].split(",") == list(COLUMNS)
    assert {(r.scenario, r.metric) for r in rows} == {("gemm", "tflops"), ("attention", "tb_s"),
                                                        ("bandwidth", "tb_s")}
    ids = [r.id for r in rows]
    assert len(set(ids)) == len(ids) and ids[0] == "K0001" and ids[-1] == f"K{len(ids):04d}"
    assert f"wrote {len(rows)} of {len(rows)} rows" in stdout
    assert all(not r.usable and r.notes.startswith("dry run") for r in rows)
    assert all(r.hardware == "h100-sxm" and r.num_chips == 1 and r.per == "chip" and r.value > 0 for r in rows)


def test_gemm_rows_carry_their_shape_and_precision(dry):
    rows = [r for r in dry[0] if r.scenario == "gemm"]
    assert all(r.gemm_m and r.gemm_n and r.gemm_k for r in rows)
    assert {r.weight_precision for r in rows} == {"bf16", "fp8"}
    grouped = [r for r in rows if r.batch]
    assert grouped and all(r.batch == 8 for r in grouped)
    assert any("ragged" in r.notes for r in grouped) and any("uniform" in r.notes for r in grouped)
    dense = [r for r in rows if not r.batch]
    r = dense[0]  # value = 2MNK / fake time (1 ms)
    assert r.value == pytest.approx(2 * r.gemm_m * r.gemm_n * r.gemm_k / 1e-3 / 1e12, rel=1e-4)


def test_attention_rows_state_batch_and_context(dry):
    rows = [r for r in dry[0] if r.scenario == "attention"]
    assert rows and all(r.batch and r.input_len and r.kv_precision == "bf16" for r in rows)


def test_only_selects_blocks_and_hardware_overrides(tmp_path):
    rows, _, _ = _dry_run(tmp_path, "--only", "bandwidth", "--hardware", "h200-sxm")
    assert [(r.scenario, r.hardware) for r in rows] == [("bandwidth", "h200-sxm")]


def test_hardware_ids_and_ragged_groups():
    mb = runpy.run_path(str(SCRIPT), run_name="microbench")  # module functions, without running main
    hardware_id, expert_rows = mb["hardware_id"], mb["expert_rows"]
    assert hardware_id("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert hardware_id("NVIDIA H200") == "h200-sxm"
    assert hardware_id("NVIDIA GH200 480GB") == "gh200"
    assert hardware_id("NVIDIA H200 NVL") == "h200-nvl"
    rows = expert_rows(256, ragged=True)
    assert sum(rows) == 8 * 256 and len(rows) == 8 and all(r % 16 == 0 for r in rows)
    assert rows == expert_rows(256, ragged=True) != expert_rows(256, ragged=False)
