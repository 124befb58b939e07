"""Closed-loop load for the simulator: N clients, each submitting its next request when its
previous one finishes (after an optional think time), as benchmark clients with a fixed
concurrency do (`--max-concurrency` in vLLM's and SGLang's benchmarks, genai-perf's
`--concurrency`, trtllm-bench's `--concurrency`).

All clients submit at t = 0. A finished request's client resubmits through an event at
`t + think_s`, so (as with a real client, whose next request reaches the server after the step
that follows the completion has started) the new prompt waits for the step in progress. The
requests' lengths are given up front, in submission order; `steady_metrics` measures between
the `warmup`-th submission and the last `clients` ones (which run while the population drains).
"""

from __future__ import annotations

import heapq
import time

from tokenfab.serving.scheduler import Request
from tokenfab.serving.simulator import Deployment, SimResult, Simulator
from tokenfab.specs import SpecError


class _Client:
    """One client's resubmission: a heap event object (`fire` submits its next request)."""

    __slots__ = ("sim", "cid")

    def __init__(self, sim: "ClosedLoopSimulator", cid: int):
        self.sim, self.cid = sim, cid

    def fire(self, t: float, version: int) -> None:
        self.sim.submit(self.cid, t)


class ClosedLoopSimulator(Simulator):
    """`Simulator` whose requests come from `clients` closed-loop clients instead of a workload."""

    def __init__(self, deployment: Deployment, clients: int, think_s: float = 0.0):
        if clients < 1:
            raise SpecError(f"closed-loop load needs >= 1 client, got {clients}")
        if think_s < 0:
            raise SpecError(f"think time must be >= 0 s, got {think_s}")
        if deployment.disagg:
            raise SpecError("closed-loop simulation supports aggregated deployments only")
        super().__init__(deployment)
        self.clients = [_Client(self, c) for c in range(clients)]
        self.think_s = float(think_s)
        self._owner: dict[int, int] = {}

    def submit(self, cid: int, t: float) -> None:
        i = self._next
        if i >= len(self._inp):
            return
        self._next += 1
        r = Request(i, t, self._inp[i], self._out[i])
        self._reqs.append(r)
        self._owner[i] = cid
        e = self.router.pick()
        e.outstanding += 1
        r.engine = e.index
        e.on_arrival(r, t)

    def finish(self, r: Request, t: float) -> None:
        super().finish(r, t)
        self.push(t + self.think_s, self.clients[self._owner.pop(r.rid)], 0)

    def run_closed(self, input_tokens, output_tokens) -> SimResult:
        """Serve len(input_tokens) requests (lengths in submission order) from the clients."""
        self._inp = [int(x) for x in input_tokens]
        self._out = [int(x) for x in output_tokens]
        if len(self._inp) != len(self._out) or not self._inp:
            raise SpecError("closed-loop run needs equally many (> 0) input and output lengths")
        longest = max(a + b for a, b in zip(self._inp, self._out))
        if longest + self.d.engine.block_size > self.d.kv_blocks * self.d.engine.block_size:
            raise SpecError(f"a request of {longest} tokens does not fit the KV cache of one engine")
        self._next = 0
        self._reqs: list[Request] = []
        start = time.perf_counter()
        for c in self.clients:
            self.submit(c.cid, 0.0)
        heap = self.heap
        while heap:
            t, _, obj, ver = heapq.heappop(heap)
            obj.fire(t, ver)
        if self.done != len(self._inp):  # pragma: no cover - a scheduler bug, not a user error
            raise RuntimeError(f"closed-loop run ended with {len(self._inp) - self.done} requests unfinished")
        return self._result(self._reqs, time.perf_counter() - start)


def simulate_closed_loop(deployment: Deployment, clients: int, input_tokens, output_tokens,
                         think_s: float = 0.0) -> SimResult:
    """Run `clients` closed-loop clients on `deployment` until every given request is served."""
    return ClosedLoopSimulator(deployment, clients, think_s).run_closed(input_tokens, output_tokens)


def steady_metrics(res: SimResult, clients: int, warmup: int) -> dict[str, float]:
    """Throughput (requests/s, output tokens/s), mean TTFT and mean TPOT (s) of the requests
    submitted between the `warmup`-th and the last `clients` submissions (the full population)."""
    hi = len(res) - clients
    if hi - warmup < 2:
        raise SpecError("too few requests for a steady-state window (raise the count or lower the warm-up)")
    sl = slice(warmup, hi)
    arr = res.arrival[sl]
    span = float(arr[-1] - arr[0])
    rate = (len(arr) - 1) / span if span > 0 else float("inf")
    out = res.output[sl]
    multi = out > 1
    ttft = res.t_first[sl] - arr
    tpot = (res.t_done[sl][multi] - res.t_first[sl][multi]) / (out[multi] - 1)
    return {"throughput_rps": rate, "output_tok_s": rate * float(out.mean()), "ttft_mean_s": float(ttft.mean()),
            "tpot_mean_s": float(tpot.mean()) if multi.any() else float("nan")}
