"""The discrete-event loop: requests arrive, a router assigns them to engines, engines step.

Events are (time, sequence number, object, version) on a heapq; `object.fire(time, version)`
handles one (an engine's step end, a KV transfer's arrival). Arrivals come from the sorted workload
and are merged in front of the heap: at equal times an arrival is handled before a step end, so a
request arriving exactly at a step boundary joins the next step. Ties inside the heap go by
sequence number, so runs are deterministic.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from tokenfab.serving.disagg import Handoff
from tokenfab.serving.scheduler import AGGREGATED, DECODE, PREFILL, Engine, Request
from tokenfab.serving.traffic import Workload
from tokenfab.specs import SpecError

ROUTERS = ("least_outstanding", "round_robin")


@dataclass(frozen=True)
class EngineConfig:
    """Scheduler limits of every engine (vLLM names in brackets)."""

    max_num_seqs: int = 256
    """Sequences running at once per engine [max_num_seqs]."""
    token_budget: int = 8192
    """Tokens per step, decode tokens included [max_num_batched_tokens]."""
    block_size: int = 16
    """Tokens per KV-cache block [block_size]."""
    chunked_prefill: bool = True
    """Split prompts across steps to fit the token budget [enable_chunked_prefill]."""
    prefix_caching: bool = True
    """Skip a shared prefix already computed on the engine [enable_prefix_caching]."""
    prefill_first: bool = False
    """Run waiting prompts' prefill in steps of their own before the next decode step (SGLang's
    scheduler without `--enable-mixed-chunk`); False mixes prompt chunks into decode steps (vLLM)."""
    poll_steps: int = 1
    """Decode steps between the scheduler's reads of new requests while busy (SGLang's
    `--scheduler-recv-interval`; 1: every step). A step with prompts is followed by a read."""
    batch_wait_steps: int = 0
    """Decode steps new prompts are held back while sequences decode, to batch them (TensorRT-LLM's
    `batch_wait_timeout_iters`; 0: no hold)."""
    batch_wait_tokens: int = 0
    """Waiting prompt tokens plus decode tokens that release held prompts early (TensorRT-LLM's
    `batch_wait_max_tokens_ratio` × `max_num_tokens`; 0: the timeout alone)."""


@dataclass(frozen=True)
class PrefillPool:
    """The prefill instances of a disaggregated unit when they differ from the decode ones (their
    own chip, mapping and step-time tables: `Deployment.from_estimate`)."""

    steptime: object
    engine: EngineConfig = EngineConfig()
    engines_per_instance: int = 1
    """Engines (data-parallel ranks) of one prefill instance."""
    chips_per_instance: int = 1

    @property
    def kv_blocks(self) -> int:
        return int(self.steptime.kv_capacity_tokens) // self.engine.block_size


@dataclass(frozen=True)
class Deployment:
    """What serves the traffic: `replicas` copies of one unit. A unit is one instance of
    `chips_per_replica` chips (aggregated), or `disagg = (P, D)` prefill and decode instances.
    Each instance runs `engines_per_replica` engines (its data-parallel ranks).

    Disaggregated, `steptime`, `engine`, `engines_per_replica` and `chips_per_replica` describe
    the decode instances; the prefill instances are `prefill` when set (else the same), and KV
    transfers take `transfer.kv_transfer_s(tokens)` when set (else `steptime`'s)."""

    steptime: object
    engine: EngineConfig = EngineConfig()
    replicas: int = 1
    engines_per_replica: int = 1
    chips_per_replica: int = 1
    disagg: tuple[int, int] | None = None
    router: str = "least_outstanding"
    label: str = ""
    info: dict = field(default_factory=dict)
    prefill: PrefillPool | None = None
    transfer: object | None = None

    @property
    def prefill_pool(self) -> PrefillPool:
        """The prefill instances (disaggregated): `prefill`, or copies of the decode instances."""
        return self.prefill or PrefillPool(self.steptime, self.engine, self.engines_per_replica,
                                           self.chips_per_replica)

    @property
    def entry_engines(self) -> int:
        """Engines requests arrive at: the prefill engines (disaggregated) or all of them."""
        if self.disagg:
            return self.replicas * self.disagg[0] * self.prefill_pool.engines_per_instance
        return self.replicas * self.engines_per_replica

    @property
    def total_chips(self) -> int:
        if not self.disagg:
            return self.replicas * self.chips_per_replica
        p, d = self.disagg
        return self.replicas * (p * self.prefill_pool.chips_per_instance + d * self.chips_per_replica)

    @property
    def kv_blocks(self) -> int:
        return int(self.steptime.kv_capacity_tokens) // self.engine.block_size


@dataclass
class SimResult:
    """Everything a run produced: per-request times (seconds), per-engine series, counters."""

    arrival: np.ndarray
    t_admit: np.ndarray
    t_first: np.ndarray
    t_done: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    preemptions: np.ndarray
    cached: np.ndarray
    engines: list[dict]
    transfers: dict
    deployment: Deployment
    wall_s: float
    trace: list | None = None

    def __len__(self) -> int:
        return len(self.arrival)


class Router:
    """Picks an engine for each new request: round-robin or least outstanding requests."""

    def __init__(self, engines: list[Engine], policy: str):
        if policy not in ROUTERS:
            raise SpecError(f"unknown router {policy!r}; expected one of {', '.join(ROUTERS)}")
        self.engines = engines
        self.policy = policy
        self._next = 0

    def pick(self) -> Engine:
        engines = self.engines
        if len(engines) == 1:
            return engines[0]
        if self.policy == "round_robin":
            e = engines[self._next]
            self._next = (self._next + 1) % len(engines)
            return e
        best = engines[0]
        for e in engines:
            if e.outstanding < best.outstanding:
                best = e
        return best


class Simulator:
    """One simulation of a workload on a deployment."""

    def __init__(self, deployment: Deployment, record_trace: bool = False):
        self.d = deployment
        self.heap: list = []
        self._seq = itertools.count()
        self.done = 0
        self.trace: list | None = [] if record_trace else None
        cfg = deployment.engine
        blocks = deployment.kv_blocks
        if blocks <= 0:
            raise SpecError("the deployment has no KV-cache blocks")
        per = deployment.engines_per_replica

        def make(count: int, role: str, start: int, st=deployment.steptime, cfg=cfg, blocks=blocks) -> list[Engine]:
            return [Engine(start + i, self, st, cfg.max_num_seqs, cfg.token_budget, cfg.block_size,
                           blocks, role, cfg.chunked_prefill, cfg.prefix_caching, self.trace, cfg.prefill_first,
                           cfg.poll_steps, cfg.batch_wait_steps, cfg.batch_wait_tokens)
                    for i in range(count)]

        if deployment.disagg:
            p, d = deployment.disagg
            if p < 1 or d < 1:
                raise SpecError(f"disaggregation needs >= 1 prefill and >= 1 decode instance, got {p}:{d}")
            pre = deployment.prefill_pool
            if pre.kv_blocks <= 0:
                raise SpecError("the prefill instances have no KV-cache blocks")
            self.prefill = make(deployment.replicas * p * pre.engines_per_instance, PREFILL, 0, pre.steptime,
                                pre.engine, pre.kv_blocks)
            self.decode = make(deployment.replicas * d * per, DECODE, len(self.prefill))
            self.engines = self.prefill + self.decode
            self.handoff = Handoff(self, self.decode, deployment.transfer or deployment.steptime)
            self.router = Router(self.prefill, deployment.router)
        else:
            self.engines = make(deployment.replicas * per, AGGREGATED, 0)
            self.handoff = None
            self.router = Router(self.engines, deployment.router)

    def push(self, t: float, obj, version: int) -> None:
        heapq.heappush(self.heap, (t, next(self._seq), obj, version))

    def finish(self, r: Request, t: float) -> None:
        r.t_done = t
        self.done += 1

    def run(self, workload: Workload) -> SimResult:
        """Serve every request of `workload`; returns when the last one finishes."""
        check_fits(workload, self.d)
        start = time.perf_counter()
        n = len(workload)
        arr = workload.arrival_s.tolist()
        inp = workload.input_tokens.tolist()
        out = workload.output_tokens.tolist()
        grp = workload.prefix_group.tolist()
        ptk = workload.prefix_tokens.tolist()
        reqs: list[Request] = [None] * n  # type: ignore[list-item]
        heap = self.heap
        pop = heapq.heappop
        pick = self.router.pick
        inf = float("inf")
        i = 0
        while True:
            ta = arr[i] if i < n else inf
            if heap and heap[0][0] < ta:
                t, _, obj, ver = pop(heap)
                obj.fire(t, ver)
            elif i < n:
                r = Request(i, ta, inp[i], out[i], grp[i], ptk[i])
                reqs[i] = r
                e = pick()
                e.outstanding += 1
                r.engine = e.index
                e.on_arrival(r, ta)
                i += 1
            else:
                break
        wall = time.perf_counter() - start
        if self.done != n:  # pragma: no cover - a scheduler bug, not a user error
            raise RuntimeError(f"simulation ended with {n - self.done} of {n} requests unfinished")
        return self._result(reqs, wall)

    def _result(self, reqs: list[Request], wall: float) -> SimResult:
        def col(name, dtype=float):
            return np.fromiter((getattr(r, name) for r in reqs), dtype=dtype, count=len(reqs))

        engines = []
        for e in self.engines:
            engines.append(dict(index=e.index, role=e.role, t=np.asarray(e.ts_t), running=np.asarray(e.ts_run),
                                waiting=np.asarray(e.ts_wait), kv=np.asarray(e.ts_kv), itl_n=np.asarray(e.itl_n),
                                itl_k=np.asarray(e.itl_k), itl_dur=np.asarray(e.itl_dur), steps=e.steps,
                                busy_s=e.busy_s, preemptions=e.preemptions, prefill_tokens=e.prefill_tokens,
                                kv_blocks=e.total))
        h = self.handoff
        transfers = dict(count=h.count, seconds=h.seconds, tokens=h.tokens) if h else dict(count=0, seconds=0.0,
                                                                                           tokens=0)
        return SimResult(arrival=col("arrival"), t_admit=col("t_admit"), t_first=col("t_first"), t_done=col("t_done"),
                         prompt=col("prompt", np.int64), output=col("output", np.int64),
                         preemptions=col("preemptions", np.int64), cached=col("cached", np.int64), engines=engines,
                         transfers=transfers, deployment=self.d, wall_s=wall, trace=self.trace)


def check_fits(workload: Workload, d: Deployment) -> None:
    """Every request's prompt and output must fit one engine's KV cache (else it could never run)."""
    longest = int((workload.input_tokens + workload.output_tokens).max())
    cap = d.kv_blocks * d.engine.block_size
    if d.disagg:  # a prefill engine holds prompts only
        pre = d.prefill_pool
        prompt, pcap = int(workload.input_tokens.max()), pre.kv_blocks * pre.engine.block_size
        if prompt + pre.engine.block_size > pcap:
            raise SpecError(f"a prompt of {prompt} tokens does not fit the KV cache of one prefill engine ({pcap} "
                            f"tokens); use more chips per prefill instance or shorter prompts")
    if longest + d.engine.block_size > cap:
        raise SpecError(f"a request of {longest} tokens (prompt + output) does not fit the KV cache of one engine "
                        f"({cap} tokens); use more chips per replica, a lower KV precision or shorter requests")


def simulate(workload: Workload, deployment: Deployment, record_trace: bool = False) -> SimResult:
    """Run `workload` on `deployment`."""
    return Simulator(deployment, record_trace).run(workload)
