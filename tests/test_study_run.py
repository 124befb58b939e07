"""Running studies: stable hashes, the results cache, resuming a killed run, results files."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import tokenfab
from tokenfab.cli import app
from tokenfab.specs.study import StudySpec
from tokenfab.study import load_study, prepare, run_study, study_hash
from tokenfab.study.cache import ResultStore, section_filename, stable_hash
from tokenfab.study.run import size_fleet

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def tiny_study(tmp_path: Path, **changes) -> Path:
    """A two-chip study on the tiny fixtures (fast), priced at a flat rental, with volume."""
    chip2 = tmp_path / "tiny-chip-2.yaml"
    if not chip2.exists():
        text = (DATA / "tiny-chip.yaml").read_text().replace("id: tiny-chip", "id: tiny-chip-2")
        chip2.write_text(text.replace("hbm_tb_s: 1.0", "hbm_tb_s: 2.0"))
    data = {
        "version": 1, "name": "tiny", "title": "Tiny study",
        "models": [str(DATA / "tiny-llama.json")],
        "chips": [str(DATA / "tiny-chip.yaml"), "tiny-chip-2.yaml"],  # the second relative to the study
        "traffic": [{"name": "chat", "input_len": 256, "output_len": 64, "slo_ttft_ms": 2000, "slo_tpot_ms": 100}],
        "economics": {"overrides": {"rental_usd_per_chip_hour": 2.0}},
        "curve_batches": [1, 4, 16],
        "volume": {"output_tokens_per_day": 1.0e9, "headroom_frac": 0.25},
    }
    data.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ---- hashes ---------------------------------------------------------------------------------

def test_stable_hash_ignores_key_order_and_sees_values():
    assert stable_hash({"a": 1, "b": [1.5, None]}) == stable_hash({"b": [1.5, None], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 1.0000001})
    assert stable_hash({"a": float("inf")}) == stable_hash({"a": float("inf")})


def test_same_inputs_give_the_same_hash(tmp_path):
    path = tiny_study(tmp_path)
    assert study_hash(load_study(path)) == study_hash(load_study(path))


@pytest.mark.slow
def test_hash_is_the_same_in_another_process(tmp_path):
    path = tiny_study(tmp_path)
    code = "import sys; from tokenfab.study import study_hash; print(study_hash(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert out.stdout.strip() == study_hash(path)


def test_comments_and_layout_of_the_study_file_do_not_change_the_hash(tmp_path):
    path = tiny_study(tmp_path)
    before = study_hash(path)
    path.write_text("# a comment\n" + yaml.safe_dump(yaml.safe_load(path.read_text()), sort_keys=True))
    assert study_hash(path) == before


@pytest.mark.parametrize("change", [
    {"traffic": [{"name": "chat", "input_len": 256, "output_len": 65, "slo_ttft_ms": 2000, "slo_tpot_ms": 100}]},
    {"economics": {"overrides": {"rental_usd_per_chip_hour": 2.5}}},
    {"volume": {"output_tokens_per_day": 2.0e9}},
    {"max_chips": 8},
    {"title": "Another title"},
])
def test_a_changed_input_changes_the_hash(tmp_path, change):
    before = study_hash(tiny_study(tmp_path))
    assert study_hash(tiny_study(tmp_path, **change)) != before


def test_editing_a_chip_file_the_study_uses_changes_the_hash(tmp_path):
    from tokenfab import catalog

    path = tiny_study(tmp_path)
    before = study_hash(path)
    chip2 = tmp_path / "tiny-chip-2.yaml"
    chip2.write_text(chip2.read_text().replace("tdp_w: 300", "tdp_w: 350"))
    catalog.load_chip.cache_clear()  # the catalog memoizes files by path within a process
    assert study_hash(path) != before


def test_the_tokenfab_version_is_part_of_the_hash(tmp_path, monkeypatch):
    path = tiny_study(tmp_path)
    before = study_hash(path)
    monkeypatch.setattr(tokenfab, "__version__", "99.0.0")
    assert study_hash(path) != before


def test_tokenfab_code_is_part_of_the_hash(tmp_path, monkeypatch):
    path = tiny_study(tmp_path)
    before = study_hash(path)
    monkeypatch.setattr("tokenfab.study.cache.code_fingerprint", lambda: "an edited engine")
    assert study_hash(path) != before


def test_code_fingerprint_is_stable():
    from tokenfab.study import cache

    cache.code_fingerprint.cache_clear()
    first = cache.code_fingerprint()
    cache.code_fingerprint.cache_clear()
    assert cache.code_fingerprint() == first and len(first) == cache.HASH_CHARS


# ---- runs and the cache ---------------------------------------------------------------------

@pytest.mark.slow  # end-to-end search/run; the inner loop keeps the cheaper tests of the same path
def test_run_writes_results_json_csv_and_report(tmp_path):
    out = run_study(tiny_study(tmp_path), tmp_path / "out")
    assert not out.cached and len(out.computed) == 2
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["hash"] == out.results["hash"] and doc["tokenfab_version"] == tokenfab.__version__
    assert {r["chip"] for r in doc["rows"]} == {"tiny-chip", "tiny-chip-2"}
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert len(rows) == 2 and all(r["study_hash"] == doc["hash"] for r in rows)
    assert all(float(r["usd_per_chip_hour"]) == 2.0 for r in rows)
    html = (tmp_path / "out" / "report.html").read_text()
    assert doc["hash"] in html and 'name="tokenfab-chart-count"' in html


def test_second_run_with_unchanged_inputs_loads_the_cache(tmp_path, monkeypatch):
    path = tiny_study(tmp_path)
    first = run_study(path, tmp_path / "out", write_report=False)

    def boom(*a, **k):
        raise AssertionError("the engine must not run on a cache hit")

    monkeypatch.setattr("tokenfab.study.sections.api.estimate", boom)
    second = run_study(path, tmp_path / "out", write_report=False)  # no report asked: the cached results suffice
    assert second.cached and second.computed == []
    assert second.results["rows"] == first.results["rows"] and second.results["hash"] == first.results["hash"]


def test_changing_only_the_volume_reuses_every_section(tmp_path):
    run_study(tiny_study(tmp_path), tmp_path / "out", write_report=False)
    again = run_study(tiny_study(tmp_path, volume={"output_tokens_per_day": 3.0e9}), tmp_path / "out",
                      write_report=False)
    assert not again.cached and again.computed == [] and len(again.reused) == 2


def test_no_cache_recomputes(tmp_path):
    path = tiny_study(tmp_path)
    run_study(path, tmp_path / "out", write_report=False)
    assert len(run_study(path, tmp_path / "out", use_cache=False, write_report=False).computed) == 2


def test_killed_run_resumes_from_the_sections_it_wrote(tmp_path):
    path = tiny_study(tmp_path)
    store = ResultStore(tmp_path / "out")

    def kill_after_first(event, section, i, n):
        if event == "computed":
            raise KeyboardInterrupt  # as if the process were stopped here

    with pytest.raises(KeyboardInterrupt):
        run_study(path, store.dir, progress=kill_after_first, write_report=False)
    written = sorted(p.name for p in store.sections_dir.iterdir())
    first_key = prepare(path).sections[0].key
    assert written == [section_filename(first_key)]  # whole files only, no temporaries
    assert not store.results_path.exists()
    resumed = run_study(path, store.dir, write_report=False)
    assert resumed.reused == [first_key] and len(resumed.computed) == 1
    assert store.results_path.exists()


def test_partial_or_corrupt_section_files_are_recomputed(tmp_path):
    path = tiny_study(tmp_path)
    store = ResultStore(tmp_path / "out")
    run_study(path, store.dir, write_report=False)
    key = prepare(path).sections[0].key
    (store.sections_dir / section_filename(key)).write_text('{"key": "truncated')
    (store.sections_dir / f".{section_filename(key)}.abc.tmp").write_text("half a file")
    store.results_path.unlink()
    again = run_study(path, store.dir, write_report=False)
    assert again.computed == [key]
    assert json.loads((store.sections_dir / section_filename(key)).read_text())["key"] == key


def test_a_section_from_other_inputs_is_not_reused(tmp_path):
    run_study(tiny_study(tmp_path), tmp_path / "out", write_report=False)
    changed = tiny_study(tmp_path, economics={"overrides": {"rental_usd_per_chip_hour": 3.0}})
    again = run_study(changed, tmp_path / "out", write_report=False)
    assert len(again.computed) == 2 and again.reused == []
    assert {r["usd_per_chip_hour"] for r in again.results["rows"]} == {3.0}


# ---- what the results say -------------------------------------------------------------------

def test_volume_sizing_worked_by_hand():
    spec = StudySpec.from_mapping({
        "version": 1, "name": "v", "models": ["m"], "chips": ["c"],
        "traffic": [{"name": "t", "input_len": 100, "output_len": 100}],
        "volume": {"output_tokens_per_day": 86400 * 1000, "headroom_frac": 0.5}})
    # need 1,000 tok/s × 1.5 = 1,500; a 4-chip replica gives 4 × 100 = 400 → 4 replicas, 16 chips
    out = size_fleet(spec, "t", {"output_tok_s_per_chip": 100.0, "num_chips": 4},
                     {"available": True, "usd_per_chip_hour": 2.0})
    assert (out["replicas_for_volume"], out["chips_for_volume"]) == (4, 16)
    assert out["usd_per_day"] == pytest.approx(16 * 2.0 * 24)
    assert out["usd_per_mtok_output_at_volume"] == pytest.approx(768 / 86.4)


def test_total_tokens_per_day_splits_by_the_traffic_lengths():
    spec = StudySpec.from_mapping({
        "version": 1, "name": "v", "models": ["m"], "chips": ["c"],
        "traffic": [{"name": "t", "input_len": 300, "output_len": 100}],
        "volume": {"total_tokens_per_day": 86400 * 400}})
    assert spec.volume.output_tokens_per_s(300, 100) == pytest.approx(100.0)


def test_summary_names_the_cheapest_chip_meeting_the_slos(tmp_path):
    doc = run_study(tiny_study(tmp_path), tmp_path / "out", write_report=False).results
    ok = [r for r in doc["rows"] if r["meets_slo"]]
    best = min(ok, key=lambda r: r["usd_per_day"])
    answer = doc["summary"]["answers"][0]
    assert answer["best"] == best["chip"] and best["chip"] in answer["sentence"]
    assert "estimate" in answer["sentence"]


def test_serving_section_reports_unavailable_and_is_retried(tmp_path, monkeypatch):
    monkeypatch.setattr("tokenfab.study.serving.simulator", lambda: (None, "no simulator in this build"))
    path = tiny_study(tmp_path, serving={"rate_per_s": 1.0, "requests": 50})
    out = run_study(path, tmp_path / "out")
    serving = [s for s in out.results["sections"].values() if s["kind"] == "serving"]
    assert serving and all(s["status"] == "unavailable" for s in serving)
    assert "no simulator in this build" in out.results["summary"]["answers"][-1]["sentence"]
    assert not any(p.name.startswith("serving") for p in (tmp_path / "out" / "sections").iterdir())
    assert "no simulator in this build" in (tmp_path / "out" / "report.html").read_text()


def test_serving_section_gives_latency_percentiles_and_cdfs(tmp_path):
    pytest.importorskip("tokenfab.serving.simulator")
    path = tiny_study(tmp_path, serving={"rate_per_s": 2.0, "requests": 60, "chips": ["tiny-chip-2.yaml"]})
    out = run_study(path, tmp_path / "out")
    (sec,) = [s for s in out.results["sections"].values() if s["kind"] == "serving"]
    if sec["status"] == "unavailable":
        pytest.skip(f"serving simulator unavailable: {sec['reason']}")
    assert sec["status"] == "ok" and sec["chip"] == "tiny-chip-2"
    for metric in ("ttft_ms", "tpot_ms"):
        d = sec[metric]
        assert d["n"] > 0 and d["p50"] <= d["p90"] <= d["p99"]
        assert d["cdf_frac"][-1] == pytest.approx(1.0) and d["cdf_ms"] == sorted(d["cdf_ms"])
    serving_html = out.report_path.read_text().split('<section id="serving">')[1].split("</section>")[0]
    assert "CDF of" in serving_html  # the report draws them (the browser test is slow-tier)


@pytest.mark.slow
def test_chat_at_scale_runs_by_id(tmp_path):
    out = run_study("chat-at-scale", tmp_path / "cas")
    chips = {r["chip"] for r in out.results["rows"]}
    assert {"h100-sxm", "h20", "h200-sxm", "ascend-910c", "mlu590", "tf-infer-1"} <= chips
    assert out.results["summary"]["answers"][0]["best"] in chips
    assert all(r.get("chips_for_volume") for r in out.results["rows"] if r["status"] == "ok")
    assert out.report_path.is_file()


def test_build_vs_buy_study_gives_a_break_even(tmp_path):
    out = run_study("build-vs-buy", tmp_path / "bvb")
    sec = out.results["sections"]["build_vs_buy"]
    assert sec["status"] == "ok"
    r = sec["result"]
    assert r["custom_chip"] == "tf-infer-1" and r["vendor_chip"] == "h100-sxm"
    assert r["breakeven_fleet"] is None or r["breakeven_fleet"] > 0
    assert len(r["tornado"]) > 3
    assert any(a["kind"] == "build_vs_buy" for a in out.results["summary"]["answers"])
    html = out.report_path.read_text()  # the report's section, rendered (the browser test is slow-tier)
    assert '<section id="build-vs-buy">' in html and "Break-even" in html


# ---- the design section --------------------------------------------------------------------

DESIGN = {"workload": "chat-mix", "trials": 8, "seed": 1}


@pytest.mark.slow
def test_a_study_with_a_design_section_runs_caches_and_resumes(tmp_path):
    path = tiny_study(tmp_path, design=DESIGN)
    out = tmp_path / "out"
    notes = []
    first = run_study(path, out, progress=lambda ev, sec, i, n: notes.append(sec.title) if sec.kind == "design" else None)
    sec = first.results["sections"]["design"]
    assert sec["status"] == "ok", sec
    assert sec["kind"] == "design" and "design" in first.computed
    assert sec["front"] and all(r["on_front"] for r in sec["front"])
    assert sec["study"]["trials"] == 8 and sec["study"]["executor"] == "inline"
    assert len(sec["feasible"]) + sec["infeasible_count"] <= 8
    assert sec["baseline"]["design_id"] == "h100-sxm" and sec["verdict"]["text"]
    assert any("trial 8/8" in t for t in notes)  # the progress bar's status line
    answer = next(a for a in first.results["summary"]["answers"] if a["kind"] == "design")
    assert "Pareto front" in answer["sentence"] and "h100-sxm" in answer["sentence"]
    html = first.report_path.read_text()
    assert 'id="design"' in html and "Design search" in html and sec["front"][0]["design_id"] in html
    assert html.count("plotly.js v") == 1  # plotly.js embedded once, in the head
    dbs = list((out / "design").glob("search-*.db"))
    assert len(dbs) == 1  # the search's own storage, in the results folder

    second = run_study(path, out)  # unchanged: loaded whole from results.json
    assert second.cached and second.results["sections"]["design"]["front"] == json.loads(json.dumps(sec["front"]))

    (out / "results.json").unlink()  # assembled results gone: the design section is reused from sections/
    third = run_study(path, out)
    assert "design" in third.reused and "design" not in third.computed

    (out / "sections" / section_filename("design")).unlink()  # as if killed during the search
    (out / "results.json").unlink()
    fourth = run_study(path, out)
    again = fourth.results["sections"]["design"]
    assert "design" in fourth.computed
    assert again["study"]["resumed_from"] == 8 and again["study"]["evaluated"] == 0  # all from the storage
    assert [r["design_id"] for r in again["front"]] == [r["design_id"] for r in sec["front"]]


def test_a_changed_design_input_changes_the_hash(tmp_path):
    before = study_hash(tiny_study(tmp_path, design=DESIGN))
    assert study_hash(tiny_study(tmp_path, design={**DESIGN, "trials": 9})) != before
    assert study_hash(tiny_study(tmp_path)) != before


# ---- the command line -----------------------------------------------------------------------

def test_cli_run_json_says_when_it_used_the_cache(tmp_path):
    path = tiny_study(tmp_path)
    args = ["run", str(path), "--out", str(tmp_path / "out"), "--json"]
    first = json.loads(runner.invoke(app, args).stdout)
    second = json.loads(runner.invoke(app, args).stdout)
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["hash"] == second["hash"]


def test_cli_report_writes_the_html_file(tmp_path):
    path = tiny_study(tmp_path)
    target = tmp_path / "report.html"
    r = runner.invoke(app, ["report", str(path), "-o", str(target), "--results", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    html = target.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Tiny study" in html and "Inputs and sources" in html


def test_a_calibration_folder_or_operator_plugin_in_the_environment_is_part_of_the_key(tmp_path, monkeypatch):
    # issue 15 item 12: the engine reads these files, so a study cached under one is not served under another.
    monkeypatch.delenv("TOKENFAB_CALIBRATION_DIR", raising=False)
    monkeypatch.delenv("TOKENFAB_OPERATORS", raising=False)
    plain = stable_hash({"a": 1})
    (tmp_path / "h100-sxm.yaml").write_text("efficiency: {gemm_compute_frac: 0.5}\n")
    monkeypatch.setenv("TOKENFAB_CALIBRATION_DIR", str(tmp_path))
    with_dir = stable_hash({"a": 1})
    assert with_dir != plain
    (tmp_path / "h100-sxm.yaml").write_text("efficiency: {gemm_compute_frac: 0.6}\n")
    assert stable_hash({"a": 1}) not in (plain, with_dir)
    monkeypatch.delenv("TOKENFAB_CALIBRATION_DIR")
    assert stable_hash({"a": 1}) == plain
