"""Design-space search (`tokenfab.explore`): specs, reproducibility, resume, Pareto correctness,
feasibility, sensitivity, executors."""

import itertools

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenfab.explore import SearchConfig, design_study, run_search
from tokenfab.explore.catalog import load_base_design, load_space, load_workload
from tokenfab.explore.designs import base_mapping, build_design, neighbours
from tokenfab.explore.evaluate import EVALUATIONS, clear_cache, evaluate_point, make_context
from tokenfab.explore.search import open_storage
from tokenfab.explore.pareto import pareto_mask
from tokenfab.explore.results import front_rows, unique_rows
from tokenfab.specs import SpecError
from tokenfab.specs.space import DesignSpace, Parameter
from tokenfab.specs.workload import WorkloadSpec

WORKLOAD = {
    "name": "tiny-mix",
    "scenarios": [
        {"name": "chat", "weight": 3, "model": "llama-3.2-1b", "input_len": 512, "output_len": 128,
         "slo_ttft_ms": 2000, "slo_tpot_ms": 50},
        {"name": "batch", "weight": 1, "model": "llama-3.1-8b", "input_len": 1024, "output_len": 128,
         "slo_ttft_ms": 10000, "slo_tpot_ms": 200},
    ],
    "variants": {"bf16": {"scenarios": {"batch": {"precision": "bf16"}}}},
}
FIXED = {"vendor": "custom", "memory.hbm_phys": None, "memory.hbm_pin_gbps": None, "memory.hbm_gb_per_stack": None,
         "die.spare_cores_per_die": 0}
# 3 x 3 x 2 = 18 grid points; some over the area constraint, some over the TDP.
GRID = {"die.cores_per_die": {"low": 32, "high": 160, "step": 64}, "memory.hbm_stacks": {"low": 1, "high": 5, "step": 2},
        "clock_mhz": {"choices": [1200, 1800]}}
SPACE = {"name": "tiny", "base": "h100-sxm-design", "fixed": FIXED, "parameters": GRID,
         "constraints": {"max_die_area_mm2": 700},
         "search": {"population": 4, "max_chips": 4, "fidelity": "roofline"}}
# A wider space for the sampler tests (NSGA-II on 3 x 9 x 5 x 4 x 2 points).
WIDE = {**SPACE, "name": "wide", "parameters": {
    "die.cores_per_die": {"low": 32, "high": 160, "step": 64},
    "memory.hbm_stacks": {"low": 1, "high": 5},
    "clock_mhz": {"low": 1000, "high": 2000, "step": 250},
    "die.core.sram_kb": {"choices": [128, 256, 512, 1024]},
    "memory.hbm_generation": {"choices": ["hbm3", "hbm3e"]}}}


def files(tmp_path, space=SPACE, workload=WORKLOAD):
    w, s = tmp_path / "workload.yaml", tmp_path / f"{space['name']}.yaml"
    w.write_text(yaml.safe_dump(workload))
    s.write_text(yaml.safe_dump(space))
    return w, s


def load(tmp_path, space=SPACE):
    w, s = files(tmp_path, space)
    wl, _ = load_workload(w)
    sp, sp_path = load_space(s)
    return wl, sp, load_base_design(sp, sp_path)


def trial_signature(outcome):
    return [(r.number, tuple(sorted(r.params.items())), r.result["feasible"],
             round(r.result["objectives"].get("usd_per_mtok") or -1.0, 12)) for r in outcome.trials]


# ---- specs ----------------------------------------------------------------------------------------

def test_workload_weights_are_normalized_shares():
    wl = WorkloadSpec.from_mapping(WORKLOAD)
    assert wl.weights == {"chat": 0.75, "batch": 0.25}


def test_workload_rejects_unknown_model_field_and_variant_scenario():
    bad = {**WORKLOAD, "scenarios": [{**WORKLOAD["scenarios"][0], "model_overrides": {"num_kv_head": 8}}]}
    with pytest.raises(SpecError, match="num_kv_head.*num_kv_heads"):
        WorkloadSpec.from_mapping(bad)
    bad = {**WORKLOAD, "variants": {"x": {"scenarios": {"nope": {"precision": "bf16"}}}}}
    with pytest.raises(SpecError, match="nope"):
        WorkloadSpec.from_mapping(bad)


def test_variant_replaces_only_the_named_fields():
    wl = WorkloadSpec.from_mapping(WORKLOAD)
    v = wl.with_variant("bf16", wl.variant("bf16"))
    assert [s.precision for s in v.scenarios] == [None, "bf16"]
    assert v.scenarios[1].input_len == 1024 and v.name == "tiny-mix-bf16"


def test_space_rejects_unknown_paths_and_double_use():
    with pytest.raises(SpecError, match="cores_per_dye"):
        DesignSpace.from_mapping({**SPACE, "parameters": {"die.cores_per_dye": {"low": 1, "high": 2}}})
    with pytest.raises(SpecError, match="both fixed and searched"):
        DesignSpace.from_mapping({**SPACE, "fixed": {"clock_mhz": 1000}})
    with pytest.raises(SpecError, match="choices or low"):
        DesignSpace.from_mapping({**SPACE, "parameters": {"clock_mhz": {"low": 1, "high": 2, "choices": [1]}}})


def test_parameter_grid_and_neighbours():
    p = Parameter(low=32, high=160, step=64)
    assert p.grid() == [32, 96, 160]
    assert neighbours(p, 96) == (32, 160) and neighbours(p, 160) == (96, None)
    c = Parameter(choices=["hbm3", "hbm3e", "hbm4"])
    assert neighbours(c, "hbm3") == (None, "hbm3e")


def test_shipped_chat_mix_loads_with_its_space_and_variants():
    wl, path = load_workload("chat-mix")
    assert [s.model for s in wl.scenarios] == ["deepseek-v3", "qwen3-235b-a22b", "llama-3.1-8b"]
    assert wl.weights == pytest.approx({"chat": 0.6, "rag": 0.3, "batch": 0.1})
    sp, sp_path = load_space(wl.space)
    base = load_base_design(sp, sp_path)
    ctx = make_context(wl.with_variant("gqa", wl.variant("gqa")), base_mapping(base, sp), sp.constraints, 8,
                       "roofline")
    chat = ctx.scenarios[0].model
    assert chat.attention == "gqa" and chat.num_kv_heads == 8 and chat.id == "deepseek-v3-gqa8"


# ---- one trial ---------------------------------------------------------------------------------

def test_infeasible_designs_say_why(tmp_path):
    wl, sp, base = load(tmp_path)
    ctx = make_context(wl, base_mapping(base, sp), sp.constraints, 4, "roofline")
    over_area = evaluate_point({"die.cores_per_die": 160, "memory.hbm_stacks": 5, "clock_mhz": 1200}, ctx)
    assert not over_area["feasible"] and "exceeds 700 mm²" in over_area["reasons"][0]
    assert over_area["violation"] > 0 and over_area["scenarios"] == {}
    reticle = evaluate_point({"die.cores_per_die": 400, "memory.hbm_stacks": 5, "clock_mhz": 1200}, ctx)
    assert any("reticle" in r for r in reticle["reasons"])
    invalid = evaluate_point({"die.cores_per_die": 32, "memory.hbm_stacks": 99, "clock_mhz": 1200}, ctx)
    assert invalid["reasons"][0].startswith("invalid design")
    big = WorkloadSpec.from_mapping({"name": "big", "scenarios": [
        {"name": "c", "weight": 1, "model": "llama-3.1-405b", "input_len": 512, "output_len": 64}]})
    ctx_big = make_context(big, base_mapping(base, sp), sp.constraints, 2, "roofline")
    r = evaluate_point({"die.cores_per_die": 96, "memory.hbm_stacks": 1, "clock_mhz": 1200}, ctx_big)
    assert not r["feasible"] and "nothing fits memory" in r["reasons"][0]


def test_mix_usd_per_mtok_is_the_weighted_mean_of_the_scenarios(tmp_path):
    wl, sp, base = load(tmp_path)
    ctx = make_context(wl, base_mapping(base, sp), sp.constraints, 4, "roofline")
    r = evaluate_point({"die.cores_per_die": 96, "memory.hbm_stacks": 3, "clock_mhz": 1200}, ctx)
    assert r["feasible"], r["reasons"]
    s = r["scenarios"]
    assert r["objectives"]["usd_per_mtok"] == pytest.approx(0.75 * s["chat"]["usd_per_mtok"] +
                                                            0.25 * s["batch"]["usd_per_mtok"])
    hourly = r["chip_hour"]["total"]
    chat = s["chat"]
    assert chat["usd_per_mtok"] == pytest.approx(hourly * 1e6 / 3600 / chat["total_tok_s_per_chip"])


# ---- Pareto --------------------------------------------------------------------------------------

def brute_force_front(points):
    front = []
    for i, p in enumerate(points):
        dominated = any(all(q[k] <= p[k] for k in range(len(p))) and any(q[k] < p[k] for k in range(len(p)))
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 6)] * 3), min_size=1, max_size=40))
def test_pareto_mask_matches_pairwise_dominance(points):
    mask = pareto_mask(np.array(points, dtype=float))
    assert list(np.flatnonzero(mask)) == brute_force_front(points)


@pytest.mark.slow
def test_search_front_equals_brute_force_front_on_a_small_grid(tmp_path):
    wl, sp, base = load(tmp_path)
    out = run_search(wl, sp, base, SearchConfig(trials=100, seed=3, sampler="grid"))
    assert len(out.trials) == 18  # the whole grid, once
    names = out.objectives
    front = {r["design_id"] for r in front_rows(unique_rows(out), names)}
    # Brute force: every grid point evaluated directly, front by pairwise comparison.
    ctx = make_context(wl, base_mapping(base, sp), sp.constraints, 4, "roofline")
    grid = [dict(zip(GRID, combo)) for combo in itertools.product(*(sp.parameters[p].grid() for p in GRID))]
    results = [evaluate_point(g, ctx) for g in grid]
    feasible = [r for r in results if r["feasible"]]
    pts = [[r["objectives"][n] for n in names] for r in feasible]
    expected = {feasible[i]["design_id"] for i in brute_force_front(pts)}
    assert front == expected and 0 < len(front) < len(feasible)


@pytest.mark.slow
def test_no_design_on_the_front_violates_a_constraint(tmp_path):
    wl, sp, base = load(tmp_path, WIDE)
    report = design_study(*files(tmp_path, WIDE), SearchConfig(trials=40, seed=2), with_sensitivity=False)
    assert report["infeasible"] and report["front"], "the space should produce both"
    assert all(r["reasons"] for r in report["infeasible"])
    for r in report["front"]:
        c = r["chip"]
        assert r["feasible"] and not r["reasons"]
        assert c["die_area_mm2"] <= 700 and c["die_mm2_each"] <= 858 and c["power_w"] <= c["tdp_w"]
        assert all(s["meets_slo"] for s in r["scenarios"].values())
    front_ids = {r["design_id"] for r in report["front"]}
    assert not front_ids & {r["design_id"] for r in report["infeasible"]}


# ---- reproducibility and resume -----------------------------------------------------------------------

@pytest.mark.slow
def test_same_seed_same_study_and_another_seed_differs(tmp_path):
    wl, sp, base = load(tmp_path, WIDE)
    a = run_search(wl, sp, base, SearchConfig(trials=24, seed=7))
    b = run_search(wl, sp, base, SearchConfig(trials=24, seed=7))
    c = run_search(wl, sp, base, SearchConfig(trials=24, seed=8))
    assert trial_signature(a) == trial_signature(b)
    assert [r.params for r in a.trials] != [r.params for r in c.trials]


class Killed(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["study.journal", "study.db"])
def test_resume_after_a_kill_finishes_the_study_without_recomputing(tmp_path, storage):
    wl, sp, base = load(tmp_path)  # 18 designs: 24 trials revisit designs evaluated before the kill
    path = str(tmp_path / storage)
    cfg = SearchConfig(trials=24, seed=5, batch=4, storage=path, study_name="s")

    def kill_after_7(number, result, cached):  # dies mid-batch: trial 7 told, 8 asked but not
        if number == 6:
            raise Killed

    clear_cache()
    with pytest.raises(Killed):
        run_search(wl, sp, base, cfg, on_told=kill_after_7)
    with pytest.raises(SpecError, match="--resume"):
        run_search(wl, sp, base, cfg)
    clear_cache()  # a new process: nothing cached in memory
    before = EVALUATIONS["designs"]
    resumed = run_search(wl, sp, base, SearchConfig(**{**cfg.__dict__, "resume": True}))
    assert len(resumed.trials) == 24 and resumed.resumed_from == 7 and resumed.recovered == 1
    assert [r.number for r in resumed.trials] == list(range(24))
    assert min(resumed.evaluated_numbers) >= 7  # trials 0-6 were told before the kill: never recomputed
    # Only designs never seen before were evaluated: later trials of a pre-kill design reuse its result.
    seen = {r.result["design_hash"] for r in resumed.trials if r.number < 7}
    later = {r.result["design_hash"] for r in resumed.trials if r.number >= 7}
    assert later & seen
    assert resumed.evaluated == len(later - seen) == EVALUATIONS["designs"] - before
    uninterrupted = run_search(wl, sp, base, SearchConfig(trials=24, seed=5, batch=4))
    assert trial_signature(resumed) == trial_signature(uninterrupted)  # as if it had never stopped


def test_resume_refuses_a_study_made_with_other_inputs(tmp_path):
    wl, sp, base = load(tmp_path)
    path = str(tmp_path / "s.journal")
    run_search(wl, sp, base, SearchConfig(trials=4, seed=1, storage=path, study_name="s"))
    with pytest.raises(SpecError, match="different"):
        run_search(wl, sp, base, SearchConfig(trials=8, seed=2, storage=path, study_name="s", resume=True))


@pytest.mark.slow
def test_process_executor_gives_the_inline_study(tmp_path):
    wl, sp, base = load(tmp_path, WIDE)
    inline = run_search(wl, sp, base, SearchConfig(trials=12, seed=4))
    pool = run_search(wl, sp, base, SearchConfig(trials=12, seed=4, executor="process", workers=2))
    assert pool.executor == "process" and pool.workers == 2
    assert trial_signature(pool) == trial_signature(inline)


@pytest.mark.slow  # end-to-end search/run; the inner loop keeps the cheaper tests of the same path
def test_repeated_designs_are_not_evaluated_twice(tmp_path):
    wl, sp, base = load(tmp_path)  # 18 points: 40 trials must repeat designs
    out = run_search(wl, sp, base, SearchConfig(trials=40, seed=1, sampler="random"))
    distinct = {r.result["design_hash"] for r in out.trials}
    assert out.evaluated == len(distinct) < 40
    assert sum(r.cached for r in out.trials) == 40 - len(distinct)


# ---- study: baseline, verdict, sensitivity, variant ----------------------------------------------------

@pytest.mark.slow
def test_study_reports_baseline_verdict_and_sensitivity(tmp_path):
    w, s = files(tmp_path, WIDE)
    rep = design_study(w, s, SearchConfig(trials=16, seed=1), variant="bf16")
    assert rep["baseline"]["design_id"] == "h100-sxm" and rep["baseline"]["objectives"]["usd_per_mtok"] > 0
    assert rep["best"]["design_id"] == min(rep["front"], key=lambda r: r["objectives"]["usd_per_mtok"])["design_id"]
    assert rep["verdict"]["text"] and rep["verdict"]["baseline_usd_per_mtok"] > 0
    sens = rep["sensitivity"]
    assert [p["parameter"] for p in sens["parameters"]][0] in sens["text"]
    swings = [p["swing"] for p in sens["parameters"]]
    assert swings == sorted(swings, reverse=True)
    var = rep["variant"]
    assert var["name"] == "bf16" and var["front"] and "hbm_tb_s" in var["moves"]
    bparts = rep["best"]["usd_per_mtok_breakdown"]
    assert sum(bparts.values()) == pytest.approx(rep["best"]["objectives"]["usd_per_mtok"])


@pytest.mark.slow  # end-to-end search/run; the inner loop keeps the cheaper tests of the same path
def test_front_design_file_loads_as_a_chip(tmp_path):
    from tokenfab import catalog
    from tokenfab.explore import write_outputs

    w, s = files(tmp_path, SPACE)
    rep = design_study(w, s, SearchConfig(trials=18, seed=1, sampler="grid"), with_sensitivity=False)
    written = write_outputs(rep, tmp_path / "out")
    path = next(iter(written["designs"].values()))
    chip = catalog.load_chip(path)
    row = next(r for r in rep["front"] if r["design_file"] == path)
    assert chip.id == row["design_id"] and chip.hbm_tb_s == pytest.approx(row["chip"]["hbm_tb_s"])
    assert (tmp_path / "out" / "front.csv").read_text().count("\n") == len(rep["front"]) + 1
    design, _, _ = build_design(rep["_base"], row["params"])
    assert design.id == row["design_id"]


@pytest.mark.slow
def test_importing_the_command_loads_neither_optuna_nor_ray():
    import subprocess
    import sys

    code = ("import sys, tokenfab.cli.explore, tokenfab.explore, tokenfab.report.explore_plots; "
            "print(sorted(m for m in ('optuna', 'ray', 'plotly') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_a_second_run_on_a_storage_in_use_stops_at_once_with_one_line(tmp_path):
    # issue 15 item 4: two `design` runs on one --storage raced and left orphaned RUNNING trials.
    from tokenfab.explore.search import storage_lock
    wl, sp, base = load(tmp_path)
    path = str(tmp_path / "study.db")
    with storage_lock(path):  # the first run holds it
        with pytest.raises(SpecError, match="in use by another design run"):
            run_search(wl, sp, base, SearchConfig(trials=4, seed=1, batch=2, storage=path, study_name="s"))
    done = run_search(wl, sp, base, SearchConfig(trials=4, seed=1, batch=2, storage=path, study_name="s"))
    assert len(done.trials) == 4  # free again once the first run ends


def test_resume_with_more_unfinished_trials_than_needed_ends_at_the_target(tmp_path):
    # A killed run with a large batch leaves many RUNNING trials; a resume to a smaller target
    # recovers only what it needs (before: --resume --trials 64 ended with 78).
    import optuna
    wl, sp, base = load(tmp_path)
    path = str(tmp_path / "study.journal")
    cfg = SearchConfig(trials=3, seed=5, batch=8, storage=path, study_name="s")

    def kill_at_first(number, result, cached):
        raise Killed

    clear_cache()
    with pytest.raises(Killed):  # asked 8 at once, told 1: 7 left RUNNING
        run_search(wl, sp, base, SearchConfig(**{**cfg.__dict__, "trials": 8}), on_told=kill_at_first)
    resumed = run_search(wl, sp, base, SearchConfig(**{**cfg.__dict__, "resume": True}))
    assert len(resumed.trials) == 3
    study = optuna.load_study(study_name="s", storage=open_storage(path))
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
