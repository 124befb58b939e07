"""What a measurement row states about its operating point, and predictions at that point.

A row may state the load it was measured at:
- a concurrency (the `batch` column, or `concurrency N` / `max concurrency N` in its notes):
  N clients in a closed loop (each resubmits when its request finishes), predicted with the
  closed-loop model `mapping.closed_loop` on the engine's step times;
- an offered request rate (`target_qps=R`, `request rate R`, `--request-rate R` in its notes):
  Poisson arrivals at R requests/s (open loop);
- a layout (tp/pp/ep/dp columns) and, in its notes, disaggregated prefill/decode.

Only what the row leaves open is searched (the layout, the precision when no weight format is
stated); the detail string says what was stated and what was searched. MLPerf server rows state
a `target_qps` too, but a submitter tunes it to the latency limits, so those rows keep being
predicted at the limits' edge (`deployment._server`): predicting them at the logged rate would
amplify a capacity error through the steep latency-versus-load curve (see deployment's notes).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from tokenfab.mapping.closed_loop import closed_loop, interp_rows, tpot_percentile_s, ttft_median_s
from tokenfab.mapping.search import coupled_ranks
from tokenfab.perf.framework import profile_for
from tokenfab.specs import Traffic
from tokenfab.validate.datasets import target_qps
from tokenfab.validate.micro import Unpredictable

TOKEN_BUDGET = 8192
"""Tokens per engine step: vLLM V1's `max_num_batched_tokens` default for online serving and
TensorRT-LLM's `max_num_tokens` default are both 8192 (`serving.deployment.DEFAULT_TOKEN_BUDGET`)."""
CLOSED_LOOP_SCENARIOS = ("server", "interactive", "throughput", "offline")
"""Scenarios a stated concurrency turns into a closed loop (decode/prefill rows keep their own paths)."""

_CONCURRENCY = re.compile(r"(?:max(?:imum)?[-_ ]?)?concurrency\s*[=:]?\s*(\d+)", re.I)
_RATE = re.compile(r"request[-_ ]rate\s*[=:]?\s*([0-9]+(?:\.[0-9]+)?)(?![0-9.]*\s*tok)", re.I)


@dataclass(frozen=True)
class OperatingPoint:
    """The load and layout a row states (None / False where it leaves them open)."""

    concurrency: int | None = None
    """Concurrent requests over the measured system (closed loop)."""
    qps: float | None = None
    """Offered requests/s over the measured system (open loop, Poisson)."""
    disaggregated: bool = False
    """Prefill and decode on separate pools (stated in the notes)."""
    layout: tuple[tuple[str, int], ...] = ()
    """Stated parallelism, e.g. (("tp", 2), ("dp", 4))."""

    def describe(self) -> str:
        parts = []
        if self.concurrency:
            parts.append(f"concurrency {self.concurrency}")
        if self.qps:
            parts.append(f"{self.qps:g} req/s")
        parts += [f"{k}{v}" for k, v in self.layout]
        if self.disaggregated:
            parts.append("disaggregated")
        return ", ".join(parts) or "nothing"


def operating_point(row) -> OperatingPoint:
    """The operating point `row` states: `batch` or a concurrency in the notes, a request rate
    (MLPerf `target_qps` or a benchmark's request rate) and the tp/pp/ep/dp columns."""
    conc = row.batch if row.scenario in CLOSED_LOOP_SCENARIOS else None
    if conc is None and row.scenario in CLOSED_LOOP_SCENARIOS:
        m = _CONCURRENCY.search(row.notes or "")
        conc = int(m.group(1)) if m and int(m.group(1)) > 0 else None
    qps = target_qps(row)
    if qps is None:
        m = _RATE.search(row.notes or "")
        qps = float(m.group(1)) if m and float(m.group(1)) > 0 else None
    layout = tuple((k, int(getattr(row, k))) for k in ("tp", "pp", "ep", "dp") if getattr(row, k))
    disagg = "disaggregat" in (row.notes or "").lower() and row.scenario not in ("prefill", "decode")
    return OperatingPoint(conc, qps, disagg, layout)


SYNCHRONIZED_CLIENTS = False
"""Whether validate predicts every fixed-length row's clients as synchronized groups
(`mapping.closed_loop`; a row whose harness forces identical requests started together is,
`synchronized_clients`).
The simulator forms such groups with exactly fixed lengths (and a 1% spread of output lengths
already dissolves them: mean TTFT 814 -> 196 ms at 64 clients, 1000/1000 tokens), but measured
fixed-length sweeps do not show them: NVIDIA's NIM table for Llama-3.3-70B FP8 on 2 H100 (TP2,
5000/500 tokens, docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance) has mean TTFT 547 / 689 /
835 ms at 5 / 25 / 50 clients; synchronized groups predict +121% / +102% / +70%, staggered
clients -7% / +0% / +5% (with the prompt queue of `mapping.closed_loop`). So clients are taken
as staggered."""


_IGNORE_EOS = re.compile(r"(?<!no )--ignore-eos\b", re.I)
_RANGE_RATIO_0 = re.compile(r"\brange ratio 0(?![.\d])", re.I)
_RANGE_RATIO_1 = re.compile(r"\brange[- _]ratio[ =]?1(?:\.0)?(?!\.?\d)", re.I)
_KEEPS_EOS = re.compile(r"--disable-ignore-eos\b", re.I)


def synchronized_clients(row) -> bool:
    """Whether a closed-loop row's clients move in synchronized groups (`mapping.closed_loop`): when
    its harness makes every request exactly alike and starts them together. vLLM's `bench serve`
    with `--ignore-eos` (every output runs to its stated length) on the random dataset at range
    ratio 0 (every prompt the same length; notes `range ratio 0`), all requests queued at once behind
    `--max-concurrency C`: the first C start on the same step, finish on the same step and hand over
    to the next C together, as the simulator's exactly-fixed-length clients do. SGLang's
    `bench_serving` likewise at `--random-range-ratio 1` (its random dataset draws lengths in
    [ratio · L, L], so 1 is exact) unless `--disable-ignore-eos` (it ignores EOS by default). The
    SGLang Ascend rows show it: mean TTFT 3-28 s at 32-768 clients (deployments.csv D0225-D0243),
    where staggered clients would wait 0.2-0.4 s. Otherwise `SYNCHRONIZED_CLIENTS` (staggered:
    lengths that vary, or a harness that does not force them)."""
    text = row.notes or ""
    vllm = bool(_IGNORE_EOS.search(text) and _RANGE_RATIO_0.search(text))
    sglang = _runs_sglang(row) and bool(_RANGE_RATIO_1.search(text)) and not _KEEPS_EOS.search(text)
    return SYNCHRONIZED_CLIENTS or vllm or sglang


def prefill_first(row) -> bool:
    """Whether the row's serving engine runs every waiting prompt's prefill before its next decode
    step. SGLang's scheduler does by default (`Scheduler.get_next_batch_to_run` builds a prefill
    batch whenever requests wait, in chunks of `--chunked-prefill-size`, and decodes only when none
    does; prompts ride on decode steps only with `--enable-mixed-chunk`), so synchronized clients
    there move as one wave: all prompts prefilled, then all decoded. vLLM and TensorRT-LLM mix
    prompt chunks into decode steps under a token budget instead (`mapping.closed_loop` groups)."""
    return _runs_sglang(row) and "enable-mixed-chunk" not in (row.notes or "").lower()


_PROMPTS_PER_CLIENT = re.compile(r"num[-_ ]prompts\s*=?\s*\$?\(*\s*(?:conc(?:urrency)?\s*\*\s*(\d+)|(\d+)\s*\*\s*conc)",
                                 re.I)
_PROMPTS = (re.compile(r"--num[-_]prompts[ =](\d+)\b", re.I),
            re.compile(r"successful requests:?\s*(\d+)", re.I),
            re.compile(r"\b(\d+)\s+successful requests", re.I))
_RECV_INTERVAL = re.compile(r"--scheduler-recv-interval[ =](\d+)\b", re.I)
_CHUNK = {"sglang": re.compile(r"--chunked-prefill-size[ =](\d+)\b", re.I),
          "vllm": re.compile(r"max[-_]num[-_]batched[-_]tokens\s*[:= ]\s*(\d+)\b", re.I),
          "trt-llm": re.compile(r"\bmax[-_]num[-_]tokens\s*[:= ]\s*(\d+)\b", re.I)}
"""The server flag that sets the tokens of one prefill step, per runtime (SGLang's chunk, vLLM's
token budget, TensorRT-LLM's `max_num_tokens`)."""


_LLMPERF = re.compile(r"\bllmperf\b|token_benchmark_ray", re.I)
LLMPERF_DEFAULT_REQUESTS = 10
"""Requests an LLMPerf run completes unless told otherwise (ray-project/llmperf `token_benchmark_ray.py`:
`--max-num-completed-requests`, default 10). Its launcher starts all `--num-concurrent-requests`
clients at once, so at 8 clients 8 of the 10 requests are the opening wave."""


def requests_per_client(row, concurrency: int) -> float | None:
    """Requests each of the row's closed-loop clients sends (`--num-prompts` over the concurrency,
    or the printout's successful requests), where its notes say; an LLMPerf run that states no count
    completes its default `LLMPERF_DEFAULT_REQUESTS`; None otherwise."""
    text = row.notes or ""
    m = _PROMPTS_PER_CLIENT.search(text)
    if m:
        return float(m.group(1) or m.group(2))
    for pat in _PROMPTS:
        m = pat.search(text)
        if m and concurrency > 0:
            return max(int(m.group(1)) / concurrency, 1.0)
    if _LLMPERF.search(text) and concurrency > 0:
        return max(LLMPERF_DEFAULT_REQUESTS / concurrency, 1.0)
    return None


def opening_wave_share(row, concurrency: int) -> float:
    """Share of a closed-loop run's requests that arrive in the benchmark client's opening wave:
    vLLM's `benchmark_serving` / `bench serve` and SGLang's `bench_serving` (`--request-rate inf`
    behind `--max-concurrency C`, their default) start the first C requests at once, so with R
    requests per client 1 / R of them are that wave. 0 where the run's request count is not stated
    (the steady state alone), and for rows predicted as synchronized groups (every request is in a
    wave there)."""
    r = requests_per_client(row, concurrency)
    return 0.0 if r is None or synchronized_clients(row) else 1.0 / r


def scheduler_poll_steps(row) -> int:
    """Iterations between the scheduler's reads of new requests: SGLang's `--scheduler-recv-interval
    N` where the row's server command sets it (default 1: every iteration; the InferenceX B200/B300
    DeepSeek-R1 recipes set 10, and 30 at 16 or more clients, to batch arrivals)."""
    m = _RECV_INTERVAL.search(row.notes or "")
    return int(m.group(1)) if m and _runs_sglang(row) else 1


_WAIT_ITERS = re.compile(r"\bbatch_wait_timeout_iters\s*[:= ]\s*(\d+)\b", re.I)
_WAIT_RATIO = re.compile(r"\bbatch_wait_max_tokens_ratio\s*[:= ]\s*([0-9.]+)", re.I)


def batch_wait(row) -> tuple[float, float]:
    """TensorRT-LLM's batch waiting where the row's server config sets it: (iterations, tokens) --
    `batch_wait_timeout_iters` T and `batch_wait_max_tokens_ratio` r times the step's token budget
    (`max_num_tokens`): while sequences decode, waiting prompts are scheduled only once T
    iterations passed since the last flush or their tokens plus the decode tokens reach r ·
    max_num_tokens (`PyExecutor._waiting_requests`; both default 0). Without a timeout nothing is
    held: the code stops waiting once its count reaches T, at once for T = 0. (0, inf) where not set
    or for another runtime."""
    text = row.notes or ""
    m = _WAIT_ITERS.search(text)
    if profile_for(row.framework).id != "trt-llm" or not m or int(m.group(1)) <= 0:
        return 0.0, math.inf
    r = _WAIT_RATIO.search(text)
    ratio = float(r.group(1).rstrip(".")) if r else 0.0
    return float(m.group(1)), (ratio * prefill_chunk_tokens(row) if ratio > 0 else math.inf)


def stated_chunk_tokens(row) -> int | None:
    """Tokens of one prefill step where the row's server command or config sets them (SGLang's
    `--chunked-prefill-size`, vLLM's `--max-num-batched-tokens`, TensorRT-LLM's `max_num_tokens`:
    the first such statement in the notes), else None."""
    pattern = _CHUNK.get(profile_for(row.framework).id)  # the runtime, through the profiles' aliases
    m = pattern.search(row.notes or "") if pattern else None
    return int(m.group(1)) if m else None


def prefill_chunk_tokens(row) -> int:
    """`stated_chunk_tokens`, else `TOKEN_BUDGET` (8192, the default of vLLM and TensorRT-LLM)."""
    stated = stated_chunk_tokens(row)
    return TOKEN_BUDGET if stated is None else stated


def _runs_sglang(row) -> bool:
    """Whether the row's serving framework is SGLang (on any hardware backend)."""
    return (row.framework or "").strip().lower().startswith("sglang")


def client_grid(clients: int) -> tuple[int, ...]:
    """Decode-batch grid for the step-time table: every size to 16, then 20 geometric steps."""
    small = set(range(1, min(clients, 16) + 1))
    if clients > 16:
        small |= set(np.unique(np.round(np.geomspace(16, clients, 20)).astype(int)).tolist())
    return tuple(sorted(small))


def _tables(res, batches: tuple[int, ...]):
    """Per mapping (tp, pp, ep, dp, precision): decode step seconds by batch, memory fit by batch,
    and the prefill chunk (ms, prompts) at the largest batch."""
    a = res.arrays
    keys = np.stack([a[k] for k in ("tp", "pp", "ep", "dp", "prec")], axis=1)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    grid = np.asarray(batches)
    col = np.searchsorted(grid, a["batch"])
    dec = np.full((len(uniq), grid.size), np.nan)
    fits = np.zeros((len(uniq), grid.size), dtype=bool)
    dec[inv, col] = a["decode_step_ms"] * 1e-3
    fits[inv, col] = a["fits"]
    # Batches below pp have no point (each stage needs a micro-batch): the smallest one stands in.
    for j in range(grid.size - 2, -1, -1):
        dec[:, j] = np.where(np.isnan(dec[:, j]), dec[:, j + 1], dec[:, j])
    order = np.argsort(col, kind="stable")  # the last assignment (the largest batch) wins
    pre_ms = np.zeros(len(uniq))
    pre_k = np.ones(len(uniq))
    pre_ms[inv[order]] = a["prefill_ms"][order]
    pre_k[inv[order]] = a["prefill_prompts"][order]
    return uniq, dec, fits, pre_ms * 1e-3, pre_k


def predict_closed_loop(row, model, chip, traffic: Traffic, n: int, op: OperatingPoint, grid_fn, precisions,
                        queue_cv: float) -> tuple[dict, str]:
    """Throughput (output/input/total tokens/s and requests/s of the system), mean TTFT, TPOT and
    E2E latency (ms) of `op.concurrency` closed-loop clients on `n` chips: the layout the row
    states, else the one with the highest throughput at that concurrency. `grid_fn` is
    `deployment._grid` (the engine search with the row's framework profile)."""
    C = int(op.concurrency)
    isl, osl = float(traffic.input_len), float(traffic.output_len)
    if osl < 2:
        raise Unpredictable("closed-loop prediction needs >= 2 output tokens")
    batches = client_grid(C)
    free = traffic.model_copy(update={"slo_ttft_ms": None, "slo_tpot_ms": None})
    res = grid_fn(row, model, chip, free, n, precisions, row.tp, row.pp, row.ep, batches=batches,
                  chunk_tokens=TOKEN_BUDGET)
    if len(res) == 0:
        raise Unpredictable("no mapping with the stated parallelism")
    uniq, dec, fits, pre_s, pre_k = _tables(res, batches)
    grid = np.asarray(batches, dtype=float)
    dp = uniq[:, 3].astype(float)
    if row.dp:
        keep = uniq[:, 3] == row.dp
        if not keep.any():
            raise Unpredictable(f"no mapping with the stated dp {row.dp}")
    else:
        keep = np.ones(len(uniq), dtype=bool)
    clients = C / dp
    max_seqs = np.where(fits.any(axis=1), np.max(np.where(fits, grid, 0.0), axis=1), 0.0)
    ok = keep & (clients >= 1.0) & (max_seqs >= 1.0)
    if not ok.any():
        raise Unpredictable(f"no layout fits memory with {C} concurrent requests on {n} chips")
    c0 = dec[:, 0]
    c1 = np.maximum(pre_s - c0, 0.05 * pre_s) / (pre_k * isl)
    sync = synchronized_clients(row)
    # MTP / speculative decoding: a decode step emits `tps` tokens, so a request takes osl / tps steps.
    from tokenfab.graph.speculative import tokens_per_step
    tps = tokens_per_step(traffic.draft_tokens, traffic.draft_acceptance)
    # The serving stack's host path (API server, tokenization, admission, streaming) delays each
    # request's arrival at the engine: think time for the engine, part of TTFT for the client.
    host_s = host_path_s(row, chip, isl)
    # Attention-DP ranks coupled by expert parallelism (`mapping.search.coupled_ranks`) step as
    # one engine: its clients are all `g` ranks' clients, a decode step of n sequences is a rank's
    # step of n / g, and every rank's prompt stalls the whole group for its own iteration.
    g = coupled_ranks(model, uniq[:, 2], uniq[:, 3])
    dec_group = np.stack([interp_rows(n_seq / g, grid, dec) for n_seq in grid], axis=1)
    # A prefill-first scheduler prefills every waiting prompt before its next decode step: a
    # synchronized group is then every admitted client (waves), in chunks of the token budget; the
    # coupled ranks prefill their own chunks in the same iteration (g chunks at a rank's cost).
    waves = sync and prefill_first(row)
    chunk = prefill_chunk_tokens(row)
    hold_steps, hold_tokens = batch_wait(row)  # (TensorRT-LLM waits only without attention DP)
    budget = np.maximum(np.minimum(clients, max_seqs), 1.0) * g * isl * (1 + 1e-9) if waves else chunk
    out = closed_loop(np.maximum(clients * g, 1.0), isl, max(osl / tps, 2.0), grid, dec_group, c0,
                      c1 / g if waves else c1, budget, np.maximum(max_seqs, 1.0) * g, think_s=host_s,
                      synchronized=sync, prompt_cv=queue_cv, chunk_tokens=chunk * g,
                      poll_steps=scheduler_poll_steps(row), burst_share=opening_wave_share(row, C),
                      wait_steps=np.where(g > 1, 0.0, hold_steps), wait_tokens=hold_tokens)
    if tps != 1.0:
        out = {**out, "tpot_s": out["tpot_s"] / tps}
    ttft_p50_s = ttft_median_s(out)  # at the engine, before the host path (which it may stand in for)
    if host_s > 0:
        out = {**out, "ttft_s": out["ttft_s"] + host_s, "e2e_s": out["e2e_s"] + host_s}
    system_rps = out["throughput_rps"] * dp / g  # a group's requests, dp / g groups
    i = int(np.argmax(np.where(ok, system_rps, -np.inf)))
    t, pp, ep, d, prec = (int(x) for x in uniq[i])
    rps = float(system_rps[i])
    values = {"requests_s": rps, "output_tok_s": rps * osl, "input_tok_s": rps * isl,
              "total_tok_s": rps * (isl + osl), "ttft": float(out["ttft_s"][i]) * 1e3,
              "tpot": float(out["tpot_s"][i]) * 1e3, "e2e": float(out["e2e_s"][i]) * 1e3,
              "ttft_p50": (float(ttft_p50_s[i]) + host_s) * 1e3}
    for q in (50, 90, 99):
        values[f"tpot_p{q}"] = float(tpot_percentile_s(out, q, sync, queue_cv)[i]) * 1e3
    searched = [f"{k}{v}" for k, v in (("tp", t), ("pp", pp), ("ep", ep), ("dp", d))
                if k not in dict(op.layout) and (k != "ep" or model.is_moe)]
    if not row.weight_precision:
        searched.append(res.precisions[prec])
    capped = " (admission-capped)" if clients[i] > max_seqs[i] else ""
    detail = (f"stated: {op.describe()}; searched: {', '.join(searched) or 'nothing'}; "
              f"{res.precisions[prec]} tp{t} pp{pp} ep{ep} dp{d}; closed loop, {clients[i]:g} clients/engine"
              f"{capped} ({'synchronized fixed lengths' if sync else 'staggered'}): {rps:.3g} req/s, "
              f"TTFT {values['ttft']:.0f} ms{host_note(host_s)}, TPOT {values['tpot']:.1f} ms"
              + (f"; prompts held up to {hold_steps:g} steps or {hold_tokens:.0f} tokens (batch waiting)"
                 if hold_steps > 0 and g[i] == 1 else ""))
    return values, detail


def host_path_s(row, chip, input_len: float) -> float:
    """Seconds of the row's serving-framework host path before the first token (the profile's
    `request_overhead_ms` + `input_us_per_token` × prompt tokens; 0 for unknown harnesses)."""
    return profile_for(row.framework, chip.vendor).request_host_s(input_len)


def host_note(host_s: float) -> str:
    """Detail phrase for the host path included in a TTFT ('' when there is none)."""
    return f" (incl. {host_s * 1e3:.0f} ms serving-stack host path)" if host_s > 0 else ""
