"""Closed-loop clients that a harness makes identical and starts together stay in lockstep.

vLLM's `bench serve --ignore-eos` on its random dataset at range ratio 0 gives every request the same
prompt and output length; behind `--max-concurrency C` the first C requests start on the same step,
finish on the same step and hand over to the next C together (the simulator's exactly-fixed-length
clients form such groups: `mapping.closed_loop`). Everything else is predicted with staggered
clients. D0126: 32 clients, 1024/256 tokens, Qwen3-235B FP8 on 4 RTX PRO 6000 (vLLM): measured mean
TTFT 3,176 ms — the 32 prompts of a wave queue for the prefill, where staggered arrivals rarely meet.
"""

from __future__ import annotations

import pytest

from tokenfab.validate.operating_point import synchronized_clients


def _row(rid):
    from tokenfab.specs.measurement import load_measurements
    from tokenfab.validate.datasets import measurements_dir
    return next(r for r in load_measurements(measurements_dir() / "deployments.csv") if r.id == rid)


@pytest.mark.parametrize("notes, sync", [
    ("load: vllm bench serve --dataset-name random --ignore-eos (fixed lengths: range ratio 0)", True),
    ("load: vllm bench serve --dataset-name random --ignore-eos, lengths uniform in [0.8 L, L]", False),
    ("load: vllm bench serve --dataset-name random (range ratio 0), outputs end at EOS", False),
    ("closed loop (max_tokens=1000, no --ignore-eos), range ratio 0", False),
    ("--ignore-eos, range ratio 0.8", False),
])
def test_only_identical_requests_started_together_are_synchronized(notes, sync):
    assert synchronized_clients(_row("D0126").model_copy(update={"notes": notes})) is sync


def test_a_wave_of_identical_prompts_queues_for_the_prefill():
    """D0126 predicted with synchronized groups: mean TTFT several times the staggered clients' (the
    wave's 32 prompts wait for one another), and the detail says which regime was used."""
    from tokenfab.validate.deployment import predict_deployment

    row = _row("D0126")
    assert synchronized_clients(row)
    sync = predict_deployment(row)
    stag = predict_deployment(row.model_copy(update={"notes": row.notes.replace("range ratio 0", "range ratio 0.5")}))
    assert "synchronized fixed lengths" in sync.detail and "staggered" in stag.detail
    assert sync.value > 3.0 * stag.value
    # The same run's 1-client rows do not change: one client has no one to move in step with.
    one = _row("D0124")
    assert synchronized_clients(one)
    base = predict_deployment(one.model_copy(update={"notes": one.notes.replace("range ratio 0", "range ratio 0.5")}))
    assert predict_deployment(one).value == pytest.approx(base.value, rel=0.02)
