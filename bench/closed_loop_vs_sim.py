"""Closed-loop model (mapping/closed_loop.py) against the discrete-event simulator run
closed-loop (serving/closed_loop.py) on the engine's own step-time tables, and the model's speed.

    python bench/closed_loop_vs_sim.py

Prints, per case (Llama-3.1-8B FP8 on one H100, lengths uniform ±10% around the stated means),
the simulated and modelled output tokens/s, mean TTFT and mean TPOT, and how long the model
takes over 10,000 points. Prompts of a budget or more wait longer in the model than in the
simulator by design (see the module docstring: the simulator's clients complete only at step
ends; measured sweeps show the queue). Then the same for prefill-first waves (SGLang's scheduler), and for the InferenceX harness (an
opening wave of all clients, reads of new requests every P steps), and for TensorRT-LLM's batch waiting
(prompts held up to T decode steps or until H tokens wait)."""

from __future__ import annotations

import time

import numpy as np

from tokenfab import catalog
from tokenfab.mapping.closed_loop import closed_loop
from tokenfab.serving.closed_loop import simulate_closed_loop, steady_metrics
from tokenfab.serving.simulator import Deployment, EngineConfig
from tokenfab.serving.steptime import Mapping, engine_step_time

CASES = [(16, 1000, 1000), (64, 1000, 1000), (256, 1000, 1000), (64, 2000, 200), (32, 5000, 500)]


def main() -> None:
    model, chip = catalog.load_model("llama-3.1-8b"), catalog.load_chip("h100-sxm")
    print(f"{'clients':>7} {'isl':>5} {'osl':>5} | {'tok/s sim':>9} {'model':>7} | {'TTFT sim':>8} {'model':>7} ms"
          f" | {'TPOT sim':>8} {'model':>7} ms | sim s")
    rng = np.random.default_rng(0)
    for n, isl, osl in CASES:
        st = engine_step_time(model, chip, Mapping(num_chips=1, batch=n, weight_precision="fp8", kv_precision="fp8"),
                              max_ctx=int(1.1 * (isl + osl)) + 16, token_budget=8192)
        count = max(3000, 12 * n)
        inp = rng.integers(int(0.9 * isl), int(1.1 * isl) + 1, count)
        out = rng.integers(int(0.9 * osl), int(1.1 * osl) + 1, count)
        t0 = time.perf_counter()
        sim = steady_metrics(simulate_closed_loop(Deployment(steptime=st, engine=EngineConfig(max_num_seqs=n)), n,
                                                  inp, out), n, count // 5)
        sim_s = time.perf_counter() - t0
        ctx = inp.mean() + out.mean() / 2
        grid = np.arange(1, n + 1)
        dec = np.array([st.decode(int(b), ctx)[0] for b in grid])
        c0 = st.mixed(0, 0.0, [(1, 0)])
        c1 = (st.prefill_s(int(inp.mean())) - c0) / inp.mean()
        r = closed_loop(n, inp.mean(), out.mean(), grid, dec, c0, c1, 8192, prompt_cv=float(inp.std() / inp.mean()))
        print(f"{n:>7} {isl:>5} {osl:>5} | {sim['output_tok_s']:>9.0f} {float(r['output_tok_s']):>7.0f} | "
              f"{sim['ttft_mean_s'] * 1e3:>8.0f} {float(r['ttft_s']) * 1e3:>7.0f}    | "
              f"{sim['tpot_mean_s'] * 1e3:>8.2f} {float(r['tpot_s']) * 1e3:>7.2f}    | {sim_s:.2f}")
    # Prefill-first waves (SGLang's scheduler, exact lengths, every client started together): the
    # whole wave is admitted and prefilled in prompt-only steps of the budget, then decoded.
    print("\nprefill-first waves (fixed lengths, clients started together):")
    print(f"{'clients':>7} {'isl':>5} {'osl':>5} | {'req/s sim':>9} {'model':>7} | {'TTFT sim':>8} {'model':>7} ms"
          f" | {'TPOT sim':>8} {'model':>7} ms")
    for n, isl, osl in [(16, 1000, 1000), (64, 1000, 1000), (64, 2000, 200), (32, 5000, 500)]:
        st = engine_step_time(model, chip, Mapping(num_chips=1, batch=n, weight_precision="fp8", kv_precision="fp8"),
                              max_ctx=isl + osl + 16, token_budget=8192)
        count = 10 * n
        res = simulate_closed_loop(Deployment(steptime=st, engine=EngineConfig(max_num_seqs=n, prefill_first=True)),
                                   n, np.full(count, isl), np.full(count, osl))
        sim = steady_metrics(res, n, count // 5)
        starts = np.unique(np.round(res.arrival, 9))[2:-1]
        rate = n / float(np.mean(np.diff(starts)))  # between wave starts
        grid = np.arange(1, n + 1)
        dec = np.array([st.decode(int(b), isl + osl / 2)[0] for b in grid])
        c0 = st.mixed(0, 0.0, [(1, 0)])
        c1 = (st.prefill_s(isl) - c0) / isl
        r = closed_loop(n, isl, osl, grid, dec, c0, c1, n * isl, synchronized=True, chunk_tokens=8192)
        print(f"{n:>7} {isl:>5} {osl:>5} | {rate:>9.2f} {float(r['throughput_rps']):>7.2f} | "
              f"{sim['ttft_mean_s'] * 1e3:>8.0f} {float(r['ttft_s']) * 1e3:>7.0f}    | "
              f"{sim['tpot_mean_s'] * 1e3:>8.2f} {float(r['tpot_s']) * 1e3:>7.2f}")
    # The InferenceX harness: all clients start together, 10 requests each, lengths uniform in
    # [0.8 L, L]; SGLang reading new requests every P decode steps (`--scheduler-recv-interval`).
    print("\nopening wave + reads every P steps (10 requests per client, lengths in [0.8 L, L], prefill-first):")
    print(f"{'clients':>7} {'P':>3} | {'TTFT sim':>8} {'model':>7} ms | {'TPOT sim':>8} {'model':>7} ms")
    for n, poll in [(16, 1), (16, 30), (64, 1), (64, 10), (64, 30)]:
        isl, osl = 1000, 1000
        st = engine_step_time(model, chip, Mapping(num_chips=1, batch=n, weight_precision="fp8", kv_precision="fp8"),
                              max_ctx=isl + osl + 16, token_budget=8192)
        inp = rng.integers(int(0.8 * isl), isl + 1, 10 * n)
        out = rng.integers(int(0.8 * osl), osl + 1, 10 * n)
        res = simulate_closed_loop(Deployment(steptime=st, engine=EngineConfig(max_num_seqs=n, prefill_first=True,
                                                                              poll_steps=poll)), n, inp, out)
        grid = np.arange(1, n + 1)
        dec = np.array([st.decode(int(b), inp.mean() + out.mean() / 2)[0] for b in grid])
        c0 = st.mixed(0, 0.0, [(1, 0)])
        c1 = (st.prefill_s(int(inp.mean())) - c0) / inp.mean()
        r = closed_loop(n, inp.mean(), out.mean(), grid, dec, c0, c1, 8192, prompt_cv=float(inp.std() / inp.mean()),
                        poll_steps=poll, burst_share=0.1)
        sim_ttft = np.mean(res.t_first - res.arrival)
        sim_tpot = np.mean((res.t_done - res.t_first) / (res.output - 1))
        print(f"{n:>7} {poll:>3} | {sim_ttft * 1e3:>8.0f} {float(r['ttft_s']) * 1e3:>7.0f}    | "
              f"{sim_tpot * 1e3:>8.2f} {float(r['tpot_s']) * 1e3:>7.2f}")
    print("\nTensorRT-LLM batch waiting: prompts held up to T decode steps or H tokens (steady state, lengths in "
          "[0.8 L, L], no chunking):")
    print(f"{'clients':>7} {'T':>3} {'H':>5} | {'TTFT sim':>8} {'model':>7} ms | {'TPOT sim':>8} {'model':>7} ms")
    for n, hold, tokens in [(16, 0, 0), (16, 40, 0), (64, 20, 0), (64, 40, 6554), (128, 40, 6554)]:
        isl, osl = 1000, 1000
        st = engine_step_time(model, chip, Mapping(num_chips=1, batch=n, weight_precision="fp8", kv_precision="fp8"),
                              max_ctx=isl + osl + 16, token_budget=8192)
        inp = rng.integers(int(0.8 * isl), isl + 1, 10 * n)
        out = rng.integers(int(0.8 * osl), osl + 1, 10 * n)
        res = simulate_closed_loop(Deployment(steptime=st, engine=EngineConfig(
            max_num_seqs=n, chunked_prefill=False, batch_wait_steps=hold, batch_wait_tokens=tokens)), n, inp, out)
        grid = np.arange(1, n + 1)
        dec = np.array([st.decode(int(b), inp.mean() + out.mean() / 2)[0] for b in grid])
        c0 = st.mixed(0, 0.0, [(1, 0)])
        c1 = (st.prefill_s(int(inp.mean())) - c0) / inp.mean()
        r = closed_loop(n, inp.mean(), out.mean(), grid, dec, c0, c1, 8192, prompt_cv=float(inp.std() / inp.mean()),
                        wait_steps=hold, wait_tokens=tokens or np.inf)
        sim_ttft = np.mean((res.t_first - res.arrival)[n:])
        sim_tpot = np.mean(((res.t_done - res.t_first) / (res.output - 1))[n:])
        print(f"{n:>7} {hold:>3} {tokens:>5} | {sim_ttft * 1e3:>8.0f} {float(r['ttft_s']) * 1e3:>7.0f}    | "
              f"{sim_tpot * 1e3:>8.2f} {float(r['tpot_s']) * 1e3:>7.2f}")
    pts = 10_000
    grid = np.arange(1, 257)
    table = 0.01 + 1e-5 * grid[None, :] * np.linspace(1, 2, pts)[:, None]
    t0 = time.perf_counter()
    closed_loop(np.linspace(1, 256, pts), 1000, 1000, grid, table, 0.01, 5e-6, 8192)
    print(f"model over {pts:,} points: {time.perf_counter() - t0:.3f} s")
    t0 = time.perf_counter()
    closed_loop(np.linspace(1, 256, pts), 1000, 1000, grid, table, 0.01, 5e-6, 8192, wait_steps=40, wait_tokens=6554)
    print(f"model over {pts:,} points with batch waiting (Poisson sums per bisection step): "
          f"{time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
