"""RL post-training step (`tokenfab.train.rl`): phases, placement, weight sync, CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tokenfab import catalog
from tokenfab.cli import app
from tokenfab.train.rl import RLStep, estimate_rl_step, weight_sync_s

MODEL, CHIP = catalog.load_model("qwen3-8b"), catalog.load_chip("h100-sxm")
STEP = RLStep(prompts=32, samples_per_prompt=8, isl=512, osl=1024)


@pytest.fixture(scope="module")
def step():
    return estimate_rl_step(MODEL, CHIP, 16, STEP)


def test_the_step_is_its_phases_added_or_overlapped(step):
    phases = step["reward_s"] + step["logprob_s"] + step["train_s"]
    if step["placement"] == "colocated":
        assert step["step_s"] == pytest.approx(step["rollout_s"] + phases + step["weight_sync_s"])
        assert step["rollout_chips"] == step["train_chips"] == 16
    else:  # one step off-policy: rollout overlaps training
        assert step["step_s"] == pytest.approx(max(step["rollout_s"], phases) + step["weight_sync_s"])
        assert step["rollout_chips"] + step["train_chips"] == 16
    assert step["usd_per_step"] == pytest.approx(step["step_s"] / 3600 * 16 * step["usd_per_chip_hour"])


def test_rollout_time_is_the_generated_tokens_over_the_engine_rate(step):
    rm = step["rollout_mapping"]
    chips = step["rollout_instances"] * rm["num_chips"]
    assert step["rollout_s"] == pytest.approx(256 * 1024 / (step["rollout_tok_s_per_chip"] * chips))


def test_weight_sync_by_hand():
    # Between pools: 2 bytes per parameter over min(8, 4) NICs of 50 GB/s.
    total = MODEL.total_params() * 2.0
    assert weight_sync_s(MODEL, CHIP, 8, 4, False) == pytest.approx(total / (4 * 50e9))
    # Colocated: each of 8 chips reshards its 1/8 over NVLink (450 GB/s).
    assert weight_sync_s(MODEL, CHIP, 8, 8, True) == pytest.approx(total / 8 / 450e9)


@pytest.mark.slow
def test_longer_rollouts_take_longer():
    short = estimate_rl_step(MODEL, CHIP, 16, RLStep(prompts=32, samples_per_prompt=8, isl=512, osl=512))
    long = estimate_rl_step(MODEL, CHIP, 16, RLStep(prompts=32, samples_per_prompt=8, isl=512, osl=4096))
    assert long["step_s"] > short["step_s"]


def test_cli_rl_json_and_errors():
    r = CliRunner().invoke(app, ["train", "-m", "qwen3-8b", "-c", "h100-sxm", "--chips", "16", "--rl", "--rl-prompts",
                                 "32", "--rollout-osl", "1024", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert {"step_s", "rollout_s", "train_s", "weight_sync_s", "usd_per_step", "rollout_chips",
            "train_chips"} <= out.keys()
    bad = CliRunner().invoke(app, ["train", "-m", "qwen3-8b", "-c", "h100-sxm", "--chips", "16", "--rl",
                                   "--rollout-osl", "0"])
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1
