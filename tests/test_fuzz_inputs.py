"""Fuzzed input files (issue 15): a shipped chip, design, model, measurement, trace or study file
with one value replaced by something hostile (0, negative, 10^40, inf, nan, a huge string, a
wrong type, a missing key) gives either a result or one line on stderr with exit code 2: never a
traceback, a hang, or inf/NaN in the output. Each command runs under a 10 s alarm."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import tokenfab
from tokenfab.cli import app

pytestmark = pytest.mark.slow  # ~18 s: CI runs it; the inner loop (-m "not slow") skips it
CATALOG = Path(tokenfab.__file__).parent / "catalog"
HOSTILE = [0, -1, 1e40, float("inf"), float("nan"), "x" * 3000, "", None, [], {"a": 1}, True, "12abc"]
runner = CliRunner()


def _leaves(obj, path=()):
    """Paths of every scalar in a nested mapping/list."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    else:
        yield path


def _mutated(data, path, value):
    data = json.loads(json.dumps(data))
    node = data
    for k in path[:-1]:
        node = node[k]
    if value == "<delete>" and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


class _Hang(Exception):
    pass


def _run(args):
    def alarm(*_):
        raise _Hang(" ".join(map(str, args)))
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(10)
    try:
        return runner.invoke(app, [str(a) for a in args])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _check(result, what):
    if isinstance(result.exception, _Hang):
        pytest.fail(f"hang over 10 s: {what}")
    assert result.exit_code in (0, 2), f"{what}: exit {result.exit_code}\n{result.output[-2000:]}"
    assert "Traceback" not in result.output, f"{what}:\n{result.output[-2000:]}"
    if result.exit_code == 2:
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: {result.stderr[-1000:]}"
    else:
        low = result.stdout.lower()
        for bad in ("nan", "infinity", " inf"):
            assert bad not in low.replace("financ", "").replace("inference", ""), f"{what}: {bad} in output"


_FILES = {
    "chip": (CATALOG / "chips" / "h100-sxm.yaml", lambda p: ["estimate", "-m", "llama-3.1-8b", "-c", p, "--json"]),
    "design": (CATALOG / "designs" / "h100-sxm-design.yaml", lambda p: ["chip", p, "--json"]),
    "model": (CATALOG / "models" / "llama-3.1-8b.json", lambda p: ["estimate", "-m", p, "-c", "h100-sxm", "--json"]),
}


def _values(kind: str):
    src, _ = _FILES[kind]
    data = yaml.safe_load(src.read_text()) if src.suffix == ".yaml" else json.loads(src.read_text())
    paths = [p for p in _leaves(data) if p]
    return data, st.tuples(st.sampled_from(paths), st.sampled_from(HOSTILE + ["<delete>"]))


@pytest.mark.parametrize("kind", sorted(_FILES))
def test_a_file_with_one_hostile_value_gives_a_result_or_one_line(kind, tmp_path_factory):
    data, strategy = _values(kind)
    src, command = _FILES[kind]

    @settings(max_examples=20, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(change=strategy)
    def check(change):
        path, value = change
        out = tmp_path_factory.mktemp("fuzz") / src.name
        mutated = _mutated(data, path, value)
        text = json.dumps(mutated, allow_nan=True) if src.suffix == ".json" else yaml.safe_dump(mutated)
        out.write_text(text)
        _check(_run(command(out)), f"{kind} {'.'.join(map(str, path))} = {str(value)[:40]}")

    check()


@settings(max_examples=20, deadline=None, derandomize=True)
@given(field=st.sampled_from(["num_chips", "input_len", "output_len", "batch", "value", "gemm_m", "message_bytes",
                              "tp", "hardware", "model", "metric", "scenario"]),
       value=st.sampled_from(["0", "-1", "1e40", "inf", "nan", "", "x" * 3000, "abc"]))
def test_a_measurement_row_with_one_hostile_value_is_skipped_or_refused_in_one_line(tmp_path_factory, field, value):
    import csv
    import io
    src = CATALOG / "measurements" / "public.csv"
    rows = list(csv.DictReader(src.open()))
    picked = [r for r in rows if r["usable"] == "1"][:3]
    for r in picked:
        r[field] = value
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(picked)
    out = tmp_path_factory.mktemp("fuzz") / "m.csv"
    out.write_text(buf.getvalue())
    res = _run(["validate", "--data", out, "--json"])
    _check(res, f"measurement {field} = {value[:20]}")
    if res.exit_code == 0:
        summary = json.loads(res.stdout)["summary"]
        assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in summary.values())


@settings(max_examples=12, deadline=None, derandomize=True)
@given(column=st.sampled_from(["arrival_s", "input_tokens", "output_tokens"]),
       value=st.sampled_from(["0", "-5", "1e40", "inf", "nan", "", "abc"]))
def test_a_trace_with_one_hostile_value_gives_a_result_or_one_line(tmp_path_factory, column, value):
    cols = ("arrival_s", "input_tokens", "output_tokens")
    rows = {"arrival_s": ["0.0", "0.5", "1.0"], "input_tokens": ["512", "1024", "256"], "output_tokens": ["64", "32", "128"]}
    rows[column][1] = value
    out = tmp_path_factory.mktemp("fuzz") / "trace.csv"
    out.write_text(",".join(cols) + "\n" + "\n".join(",".join(rows[c][i] for c in cols) for i in range(3)) + "\n")
    _check(_run(["simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", out, "--json"]),
           f"trace {column} = {value}")


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["models", "chips", "traffic", "name", "economics", "volume"]),
       value=st.sampled_from([0, -1, 1e40, float("inf"), "", "x" * 3000, None, [], {"a": 1}]))
def test_a_study_with_one_hostile_value_gives_a_result_or_one_line(tmp_path_factory, key, value):
    src = CATALOG / "studies" / "chat-at-scale.yaml"
    data = yaml.safe_load(src.read_text())
    data[key] = value
    out = tmp_path_factory.mktemp("fuzz") / "study.yaml"
    out.write_text(yaml.safe_dump(data))
    _check(_run(["run", out, "--out", out.parent / "o"]), f"study {key} = {str(value)[:30]}")


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(change=st.tuples(st.sampled_from([p for p in _leaves(yaml.safe_load(
    (CATALOG / "fleet" / "us-neocloud-2026.yaml").read_text())) if p and p[0] != "sources"]),
    st.sampled_from(HOSTILE + ["<delete>"])))
def test_a_fleet_scenario_with_one_hostile_value_gives_a_plan_or_one_line(tmp_path_factory, change):
    """`tokenfab fleet` on the shipped US scenario with one value replaced (its chip files beside it)."""
    import shutil

    path, value = change
    src = CATALOG / "fleet" / "us-neocloud-2026.yaml"
    where = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(CATALOG / "fleet" / "chips", where / "chips")
    out = where / src.name
    out.write_text(yaml.safe_dump(_mutated(yaml.safe_load(src.read_text()), path, value)))
    _check(_run(["fleet", out, "--json"]), f"fleet {'.'.join(map(str, path))} = {str(value)[:40]}")
