"""What `tokenfab train --html` shows: the fastest mappings, the chip sweep, the step's recompute part."""

from __future__ import annotations

import pytest

from tokenfab import catalog
from tokenfab.train import TrainingJob, estimate_training
from tokenfab.train.estimate import chip_sweep, top_mappings

JOB = TrainingJob(tokens=1e10, seq_len=2048, global_batch_tokens=2**20)


def _specs():
    return catalog.load_model("llama-3.2-1b"), catalog.load_chip("h100-sxm")


def test_the_first_top_mapping_is_the_one_the_search_picks_and_the_list_is_sorted():
    model, chip = _specs()
    best = estimate_training(model, chip, 16, JOB)
    top = top_mappings(model, chip, 16, JOB, k=6)
    assert 1 < len(top) <= 6
    first = top[0]
    assert {k: first[k] for k in best["mapping"] if k in first} == {
        k: v for k, v in best["mapping"].items() if k in first}
    assert first["mfu"] == pytest.approx(best["mfu"]) and first["days"] == pytest.approx(best["days"])
    days = [t["days"] for t in top]
    assert days == sorted(days)
    for t in top:  # each uses the chips it says, no more than given
        assert t["tp"] * t["pp"] * t["cp"] * t["dp"] == t["chips_used"] <= 16


def test_chip_sweep_halves_down_from_the_chips_given():
    assert chip_sweep(16384) == [512, 1024, 2048, 4096, 8192, 16384]
    assert chip_sweep(6, points=4) == [1, 3, 6]  # 6, 3, 1, 0 -> at least 1, duplicates merged
    assert chip_sweep(1) == [1]


def test_recomputation_is_its_own_part_of_the_step():
    model, chip = _specs()
    fixed = dict(tokens=1e10, seq_len=2048, global_batch_tokens=2**20, tp=1, pp=1, dp=8, zero=1, overlap=False)
    none = estimate_training(model, chip, 8, TrainingJob(**fixed, recompute="none"))["step_parts_s"]
    full = estimate_training(model, chip, 8, TrainingJob(**fixed, recompute="full"))["step_parts_s"]
    assert none["recompute"] == 0.0
    # Full recomputation runs the forward again in the backward: its compute part is the forward's
    # third of compute (forward + backward = 1 + 2 with equal gradient GEMM FLOPs), within the
    # backward's lower attention rate, so between 20% and 40% of the step's other compute.
    assert 0.2 * none["compute"] < full["recompute"] < 0.4 * none["compute"]
    assert full["compute"] == pytest.approx(none["compute"])  # the useful work does not change


def test_software_restricts_the_schedules_and_a_subset_is_never_faster():
    from tokenfab.train import TrainingStack
    from tokenfab.train.stack import SOFTWARE_SCHEDULES

    model, chip = catalog.load_model("llama-3.1-70b"), catalog.load_chip("h100-sxm")
    job = TrainingJob(tokens=1e12, seq_len=4096, global_batch_tokens=2**22)
    free = estimate_training(model, chip, 64, job)
    for name in ("megatron-core", "dualpipe"):
        stack = TrainingStack(schedules=SOFTWARE_SCHEDULES[name])
        r = estimate_training(model, chip, 64, job, stack)
        assert r["mapping"]["schedule"] in SOFTWARE_SCHEDULES[name]
        # The search over a subset of schedules can only find the same run or a longer one.
        assert r["days"] >= free["days"] * (1 - 1e-12)
        for t in top_mappings(model, chip, 64, job, stack, k=5):
            assert t["schedule"] in SOFTWARE_SCHEDULES[name]


def test_a_fixed_schedule_the_software_lacks_is_refused():
    from tokenfab.specs import SpecError
    from tokenfab.train import TrainingStack

    model, chip = _specs()
    job = TrainingJob(tokens=1e10, seq_len=2048, global_batch_tokens=2**20, schedule="zb-h2")
    with pytest.raises(SpecError, match="zb-h2 is not implemented"):
        estimate_training(model, chip, 16, job, TrainingStack(schedules=("1f1b", "interleaved")))
    with pytest.raises(ValueError, match="lack 1f1b"):
        TrainingStack(schedules=("zb-h2",))
