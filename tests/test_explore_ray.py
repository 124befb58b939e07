"""The Ray executor on a local Ray instance gives the same study as the inline executor."""

import pytest
import yaml

pytestmark = pytest.mark.slow  # a local Ray instance takes seconds to start and stop


def _ray():
    """Ray, imported only when a test here runs (collecting the inner loop need not load it)."""
    return pytest.importorskip("ray", reason="ray is not installed (pip install 'tokenfab[ray]'); Ray executor not tested")

from tokenfab.explore import SearchConfig, run_search  # noqa: E402
from tokenfab.explore.catalog import load_base_design, load_space, load_workload  # noqa: E402
from tokenfab.explore.executors import RayExecutor  # noqa: E402

WORKLOAD = {"name": "tiny-mix", "scenarios": [
    {"name": "chat", "weight": 3, "model": "llama-3.2-1b", "input_len": 512, "output_len": 128,
     "slo_ttft_ms": 2000, "slo_tpot_ms": 50},
    {"name": "batch", "weight": 1, "model": "llama-3.1-8b", "input_len": 1024, "output_len": 128}]}
SPACE = {"name": "wide", "base": "h100-sxm-design",
         "fixed": {"vendor": "custom", "memory.hbm_phys": None, "memory.hbm_pin_gbps": None,
                   "memory.hbm_gb_per_stack": None, "die.spare_cores_per_die": 0},
         "parameters": {"die.cores_per_die": {"low": 32, "high": 160, "step": 64},
                        "memory.hbm_stacks": {"low": 1, "high": 5},
                        "clock_mhz": {"low": 1000, "high": 2000, "step": 250},
                        "memory.hbm_generation": {"choices": ["hbm3", "hbm3e"]}},
         "constraints": {"max_die_area_mm2": 700},
         "search": {"population": 8, "max_chips": 4, "fidelity": "roofline"}}


@pytest.fixture(scope="module")
def local_ray():
    ray = _ray()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_executor_gives_the_inline_study(tmp_path, local_ray):
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(WORKLOAD))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPACE))
    wl, _ = load_workload(tmp_path / "w.yaml")
    sp, sp_path = load_space(tmp_path / "s.yaml")
    base = load_base_design(sp, sp_path)
    inline = run_search(wl, sp, base, SearchConfig(trials=16, seed=3))
    ex = RayExecutor(workers=2)
    try:
        remote = run_search(wl, sp, base, SearchConfig(trials=16, seed=3), executor=ex)
    finally:
        ex.close()
    assert local_ray.is_initialized()  # the executor joined the running instance and left it running
    assert remote.executor == "ray" and remote.workers == 2 and remote.evaluated > 0
    sig = [(r.number, r.params, r.result["feasible"], r.result["objectives"]) for r in inline.trials]
    assert [(r.number, r.params, r.result["feasible"], r.result["objectives"]) for r in remote.trials] == sig
