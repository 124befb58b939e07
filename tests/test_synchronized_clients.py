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


# --- SGLang's bench_serving: fixed lengths at range ratio 1, and a prefill-first scheduler -----

@pytest.mark.parametrize("framework, notes, sync", [
    ("sglang", "sglang.bench_serving --dataset-name random --random-range-ratio 1 --max-concurrency 78", True),
    ("sglang (Ascend NPU backend, CANN 8.5)", "random 3500/1500 range-ratio 1.", True),
    ("sglang", "bench_serving --random-range-ratio 1 --disable-ignore-eos", False),  # outputs end at EOS
    ("sglang", "bench_serving --random-range-ratio 0.8", False),  # lengths uniform in [0.8 L, L]
    ("sglang", "default --random-range-ratio 0.0: lengths uniform in [1, L]", False),
    ("vllm", "vllm bench serve --random-range-ratio 1", False),  # vLLM's ratio 1: lengths in [0, 2 L]
])
def test_sglang_bench_serving_at_range_ratio_one_is_synchronized(framework, notes, sync):
    """SGLang's random dataset draws lengths in [ratio·L, L] (ratio 1: exactly L) and bench_serving
    ignores EOS unless `--disable-ignore-eos`, so every request is alike; vLLM's ratio runs the other
    way (0 is fixed)."""
    row = _row("D0126").model_copy(update={"framework": framework, "notes": notes})
    assert synchronized_clients(row) is sync


def test_sglang_prefills_every_waiting_prompt_first():
    from tokenfab.validate.operating_point import prefill_first
    row = _row("D0126")
    assert not prefill_first(row)  # vLLM mixes prompt chunks into decode steps
    assert prefill_first(row.model_copy(update={"framework": "sglang", "notes": "bench_serving"}))
    assert not prefill_first(row.model_copy(update={"framework": "sglang", "notes": "--enable-mixed-chunk"}))


def test_a_wave_prefilled_in_chunks_worked_by_hand():
    """4 synchronized clients, 1000-token prompts, 101 output tokens; decode steps 5 ms at any batch;
    a prompt-only step of T tokens c0 + c1·T = 10 ms + 10 us/token; the whole wave (4,000 tokens) is
    admitted at once (token budget 4,000) and prefilled in chunks of 1,000 tokens: m = 4 steps of
    (4 × 10 ms + 40 ms) / 4 = 20 ms. First tokens after 1, 2, 3, 4 steps: mean TTFT 2.5 × 20 = 50 ms.
    The early requests wait out the rest of the wave's prefill before their second token: (4 − 1) /
    2 × 20 ms = 30 ms over 100 tokens, +0.3 ms per token, TPOT 5.3 ms. A wave takes 80 ms of prefill
    and 100 decode steps (580 ms): 4 / 0.58 s = 6.897 requests/s, and TTFT + 100 · TPOT = 580 ms
    (the response-time law). In one step (m = 1): 10 + 40 = 50 ms for every prompt, TPOT 5 ms, a
    550 ms cycle."""
    import numpy as np

    from tokenfab.mapping.closed_loop import closed_loop

    grid = np.array([1.0, 2.0, 3.0, 4.0])
    kw = dict(decode_batches=grid, decode_s=0.005 * np.ones(4), prefill_fixed_s=0.010, prefill_s_per_token=1e-5,
              token_budget=4000, synchronized=True)
    r = closed_loop(4, 1000, 101, chunk_tokens=1000, **kw)
    assert float(r["ttft_s"]) == pytest.approx(0.050, rel=1e-6)
    assert float(r["tpot_s"]) == pytest.approx(0.0053, rel=1e-6)
    assert float(r["throughput_rps"]) == pytest.approx(4 / 0.58, rel=1e-6)
    one = closed_loop(4, 1000, 101, **kw)
    assert float(one["ttft_s"]) == pytest.approx(0.050, rel=1e-6)
    assert float(one["tpot_s"]) == pytest.approx(0.005, rel=1e-6)
    assert float(one["throughput_rps"]) == pytest.approx(4 / 0.55, rel=1e-6)
