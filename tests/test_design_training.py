"""A `design` workload mix with a training scenario: its $ per trillion training tokens, counted in
$/Mtok-equivalents at the baseline's rate like the media scenarios."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tokenfab import catalog
from tokenfab.cli import app
from tokenfab.explore.catalog import load_base_design, load_space, load_workload
from tokenfab.explore.designs import base_mapping
from tokenfab.explore.evaluate import clear_cache, evaluate_chip, make_context
from tokenfab.specs import SpecError
from tokenfab.specs.economics import Economics
from tokenfab.specs.workload import WorkloadSpec
from tokenfab.train import TrainingJob, estimate_training

DATA = Path(__file__).parent / "data"
TINY_MODEL, TINY_CHIP = str(DATA / "tiny-llama.json"), str(DATA / "tiny-chip.yaml")


def mix(**training) -> dict:
    return {"name": "tiny-train-mix", "baseline": TINY_CHIP, "scenarios": [
        {"name": "chat", "weight": 0.5, "model": TINY_MODEL, "input_len": 256, "output_len": 64,
         "slo_ttft_ms": 2000, "slo_tpot_ms": 100},
        {"name": "pretrain", "weight": 0.5, "kind": "training", "model": TINY_MODEL,
         "training": {"tokens": 1e10, "chips_per_run": 8, "seq_len": 1024, "global_batch_tokens": 1048576,
                      **training}}]}


def rental() -> Economics:
    """The shipped economics at a flat $2/chip-hour rental (the tiny chip has no price)."""
    from tokenfab.cost import tco

    return tco.default_economics().with_overrides({"rental_usd_per_chip_hour": 2.0}, "test")


def context(wl: WorkloadSpec, econ=None):
    econ = econ or rental()
    sp, sp_path = load_space("chat-mix")
    return make_context(wl, base_mapping(load_base_design(sp, sp_path), sp), sp.constraints, 8, "roofline", econ)


def test_training_scenario_costs_chip_hours_times_the_rate_and_counts_at_the_baseline_rate():
    clear_cache()
    ctx = context(WorkloadSpec.from_mapping(mix()))
    kinds = {s.name: s.kind for s in ctx.scenarios}
    assert kinds == {"chat": "llm", "pretrain": "training"}
    # on the baseline itself a trillion training tokens costs exactly its reference: x = r · b / b = r
    base = evaluate_chip(catalog.load_chip(TINY_CHIP), ctx)
    assert base["scenarios"]["pretrain"]["usd_per_mtok"] == pytest.approx(ctx.token_rate)
    assert base["objectives"]["usd_per_mtok"] == pytest.approx(ctx.token_rate)  # both scenarios at r
    # on another chip: $ per trillion tokens = $2/chip-hour × chip-hours / 0.01 T, as `train` finds it
    chip2 = catalog.load_chip(TINY_CHIP).model_copy(update={"id": "tiny-chip-fast", "bf16_tflops": 400.0})
    other = evaluate_chip(chip2, ctx)
    row = other["scenarios"]["pretrain"]
    direct = estimate_training(catalog.load_model(TINY_MODEL), chip2, 8,
                               TrainingJob(tokens=1e10, seq_len=1024, global_batch_tokens=2**20))
    assert row["chip_hours"] == pytest.approx(direct["chip_hours"])
    assert row["usd_per_trillion_tokens"] == pytest.approx(2.0 * direct["chip_hours"] / 0.01)
    ref = dict(ctx.unit_refs)["pretrain"]
    assert row["usd_per_mtok"] == pytest.approx(ctx.token_rate * row["usd_per_trillion_tokens"] / ref)
    # twice the matrix rate at the same $/chip-hour never makes a training token dearer
    assert row["usd_per_trillion_tokens"] <= ref * (1 + 1e-9)
    assert other["objectives"]["usd_per_mtok"] == pytest.approx(
        sum(s["weight"] * s["usd_per_mtok"] for s in other["scenarios"].values()))


def test_a_chip_that_cannot_hold_the_training_run_is_infeasible_and_a_baseline_that_cannot_is_one_line():
    clear_cache()
    wl = WorkloadSpec.from_mapping(mix())
    ctx = context(wl)
    # 0.5 MB of memory: the tiny model cannot train on 8 chips in any mapping
    small = catalog.load_chip(TINY_CHIP).model_copy(update={"id": "tiny-chip-small", "hbm_gb": 0.0005})
    r = evaluate_chip(small, ctx)
    assert not r["feasible"] and any(x.startswith("nothing fits memory for pretrain") for x in r["reasons"])
    run = wl.scenarios[1].training.model_copy(update={"chips_per_run": 1})
    big = wl.model_copy(update={"scenarios": [wl.scenarios[0], wl.scenarios[1].model_copy(
        update={"model": "deepseek-v3", "training": run})]})
    with pytest.raises(SpecError, match="pretrain.*GiB"):
        context(big)  # the baseline cannot train it: the unit of the scenario is undefined
    assert ctx.token_rate is not None


@pytest.mark.parametrize("change, word", [
    ({"input_len": 100}, "input_len"),
    ({"precision": "fp8"}, "training.precision"),
    ({"training": {"tokens": -1}}, "tokens"),
    ({"training": {"precision": "int4"}}, "precision"),
    ({"kind": "serve"}, "kind"),
])
def test_bad_training_scenarios_are_one_line_exit_2(tmp_path, change, word):
    data = mix()
    data["scenarios"][1].update(change)
    f = tmp_path / "w.yaml"
    f.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(app, ["design", str(f), "--trials", "1"])
    assert res.exit_code == 2, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and word in errors[0], res.output


def test_training_on_a_diffusion_model_is_refused():
    data = mix()
    data["scenarios"][1]["model"] = "flux.1-dev"
    with pytest.raises(SpecError, match="training covers LLMs"):
        context(WorkloadSpec.from_mapping(data))


def test_shipped_train_serve_mix_validates():
    wl, _ = load_workload("train-serve-mix")
    s = {x.name: x for x in wl.scenarios}["pretrain"]
    assert s.kind == "training" and s.training.tokens == 15e12 and s.training.chips_per_run == 1024
