"""How long the inner test loop takes, and which tests cost the most (issue 15 item 14: < 30 s).

    python bench/test_tiers.py [--workers auto|N] [--top 10] [--full] [--json]

Runs `pytest -m "not slow" -n WORKERS` (the inner loop README's Quick start gives) in a fresh
process and prints its wall time against the 30 s target, the time pytest spends collecting, the
sum of the tests' own CPU time (setup + call + teardown, measured with `time.process_time` in each
worker, so other processes on the machine inflate it far less than the wall time) and the slowest
tests by that CPU time. `--full` times the whole suite (slow included, what CI runs) after it.

Bytecode is written (PYTHONDONTWRITEBYTECODE is unset for the run): without the .pyc cache every
run recompiles the package and collection takes ~4 s longer. The first run after an edit pays that
once; run it twice and read the second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 30.0

PLUGIN = '''
import json, os, time
import pytest

_ROWS = []
_COLLECT = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        return (yield)
    finally:
        _ROWS.append((item.nodeid, time.process_time() - c0, time.perf_counter() - w0))


def pytest_collectstart(collector):
    _COLLECT.setdefault("cpu0", time.process_time())
    _COLLECT.setdefault("wall0", time.perf_counter())


def pytest_collection_finish(session):
    _COLLECT["cpu_s"] = time.process_time() - _COLLECT.get("cpu0", time.process_time())
    _COLLECT["wall_s"] = time.perf_counter() - _COLLECT.get("wall0", time.perf_counter())


def pytest_sessionfinish(session):
    out = os.environ["TOKENFAB_TIER_TIMES"]
    with open(os.path.join(out, "times-%d.json" % os.getpid()), "w") as f:
        json.dump({"tests": _ROWS, "collect": _COLLECT, "process_cpu_s": time.process_time()}, f)
'''


def run_tier(marker: str | None, workers: str) -> dict:
    """Run one tier of the suite; its wall time, outcome line and per-test CPU/wall times."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenfab_tier_timer.py").write_text(PLUGIN)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tmp, env.get("PYTHONPATH", "")) if p)
        env["TOKENFAB_TIER_TIMES"] = tmp
        cmd = [sys.executable, "-m", "pytest", "-p", "tokenfab_tier_timer", "-p", "no:randomly"]
        cmd += ["-m", marker] if marker else []
        cmd += ["-n", workers] if workers not in ("0", "") else ["-n", "0"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        tests, collect, worker_cpu = [], [], []
        for f in Path(tmp).glob("times-*.json"):
            doc = json.loads(f.read_text())
            tests += doc["tests"]
            if doc["collect"].get("cpu_s") is not None:  # a process that collected: a worker (or the only one)
                collect.append(doc["collect"])
                worker_cpu.append(doc["process_cpu_s"])
    by_file: dict[str, float] = {}
    for name, cpu, _ in tests:
        by_file[name.split("::")[0]] = by_file.get(name.split("::")[0], 0.0) + cpu
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
    outcome = [ln for ln in lines if any(w in ln for w in (" passed", " failed", " error", "FAILED", "ERROR"))]
    return {"command": " ".join(["pytest", *cmd[3:]]), "exit_code": proc.returncode, "wall_s": wall,
            "summary": "; ".join(outcome[-3:]) if outcome else (lines[-1] if lines else proc.stderr.strip()[-300:]),
            "tests": len(tests), "test_cpu_s": sum(t[1] for t in tests), "test_wall_s": sum(t[2] for t in tests),
            "collect_cpu_s_per_process": max((c["cpu_s"] for c in collect), default=0.0),
            "processes": len(collect),
            "busiest_process_cpu_s": max(worker_cpu, default=0.0),
            "slowest": sorted(({"test": n, "cpu_s": c, "wall_s": w} for n, c, w in tests),
                              key=lambda r: -r["cpu_s"]),
            "files": sorted(({"file": f, "cpu_s": c} for f, c in by_file.items()), key=lambda r: -r["cpu_s"])}


def _load() -> str:
    try:
        return "load average %.2f %.2f %.2f on %d CPUs" % (*os.getloadavg(), os.cpu_count() or 0)
    except OSError:
        return f"{os.cpu_count()} CPUs"


def _print(name: str, r: dict, top: int, target: float | None) -> None:
    verdict = "" if target is None else (f"  (target < {target:.0f} s: {'met' if r['wall_s'] < target else 'NOT met'})")
    print(f"{name}: {r['command']}")
    print(f"  wall {r['wall_s']:.1f} s{verdict}; {r['summary']}")
    print(f"  {r['tests']} tests, their CPU time summed {r['test_cpu_s']:.1f} s (wall {r['test_wall_s']:.1f} s); "
          f"collection {r['collect_cpu_s_per_process']:.1f} s CPU in each of {r['processes']} process(es)")
    print(f"  busiest process: {r['busiest_process_cpu_s']:.1f} s CPU from start to end (imports, collection, its "
          f"tests): about the wall time on an idle machine with a core per process")
    print(f"  costliest {top} files by CPU time: " + ", ".join(
        f"{Path(f['file']).name} {f['cpu_s']:.1f} s" for f in r["files"][:top]))
    print(f"  slowest {top} tests by CPU time:")
    for row in r["slowest"][:top]:
        print(f"    {row['cpu_s']:6.2f} s cpu {row['wall_s']:6.2f} s wall  {row['test']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="auto", help="pytest-xdist workers (-n), default auto; 0 runs in one process")
    ap.add_argument("--top", type=int, default=10, help="how many of the slowest tests to list (default 10)")
    ap.add_argument("--full", action="store_true", help="also time the whole suite, slow tests included (CI)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    if args.top < 0:
        print("error: --top must be >= 0", file=sys.stderr)
        return 2
    out = {"machine": _load(), "target_s": TARGET_S, "inner": run_tier("not slow", args.workers)}
    if args.full:
        out["full"] = run_tier(None, args.workers)
    if args.json:
        for tier in ("inner", "full"):
            if tier in out:
                out[tier]["slowest"] = out[tier]["slowest"][:args.top]
                out[tier]["files"] = out[tier]["files"][:args.top]
        print(json.dumps(out, indent=2))
    else:
        print(out["machine"])
        _print("inner loop", out["inner"], args.top, TARGET_S)
        if "full" in out:
            _print("full suite (CI)", out["full"], args.top, None)
    return 0 if all(out[t]["exit_code"] == 0 for t in ("inner", "full") if t in out) else 1


if __name__ == "__main__":
    sys.exit(main())
