"""One serving engine (a data-parallel rank of a replica): continuous batching with chunked
prefill, paged KV-cache accounting, admission control, preemption by recompute, prefix caching.

The policy follows vLLM's (v0 block manager, v1 token budget):
  - each step every running decode contributes one token; prefill chunks of admitted prompts
    fill the rest of the token budget (`max_num_batched_tokens`), oldest first; with
    `prefill_first` (SGLang's default scheduler) a step that has prompts to prefill carries only
    them, a whole token budget of chunks, and the decodes wait for a step without prompts;
  - a waiting request is admitted (FIFO) when the batch has a free slot (`max_num_seqs`) and the
    KV cache has blocks for its whole prompt;
  - a decode that needs a new block when none is free preempts the most recently admitted
    decode, which frees its blocks and later recomputes prompt + generated tokens;
  - a prompt whose shared prefix was computed on this engine before skips those tokens;
  - with `poll_steps` P > 1 (SGLang's `--scheduler-recv-interval`) a busy engine reads new requests
    only every P decode steps and at once after a step with prompts (SGLang weighs a prefill step
    enough to read on the next iteration); an idle engine reads them at once. Until then an
    arrival waits in a mailbox the scheduler does not see;
  - with `hold_steps` H > 0 (TensorRT-LLM's batch waiting, `PyExecutor._waiting_requests`) new
    prompts are held back while sequences decode, until H decode steps have passed since the last
    release or the waiting prompts' tokens plus the decode tokens reach `hold_tokens`; an engine
    with nothing decoding admits them at once.

Skipping ahead: while no request joins or leaves, a decode-only batch is one "window" of k steps,
one event. All running decodes advance together, so the engine keeps aggregates instead of
touching each request: with the engine's step counter S, a decode's KV length is `off + S`; the
sum of `off` gives the mean context, a histogram of `off mod block` gives the exact number of KV
blocks in use at any future S, and a heap of finish steps gives the next completion. An arrival
during a window cuts it at the end of the step in progress.
"""

from __future__ import annotations

import heapq
from collections import deque

WAKE, MIXED, WINDOW, PREFILL_ONLY = 0, 1, 2, 3
AGGREGATED, PREFILL, DECODE = "aggregated", "prefill", "decode"


class Request:
    """One request's state and timestamps (seconds of simulated time)."""

    __slots__ = ("rid", "arrival", "prompt", "output", "group", "prefix_tokens", "engine", "t_admit", "t_first",
                 "t_done", "todo", "past", "target", "gen", "blocks", "off", "s_join", "epoch", "kv_ready",
                 "preemptions", "cached", "decode_engine", "t_kv_ready")

    def __init__(self, rid: int, arrival: float, prompt: int, output: int, group: int = -1, prefix_tokens: int = 0):
        self.rid = rid
        self.arrival = arrival
        self.prompt = prompt
        self.output = output
        self.group = group
        self.prefix_tokens = prefix_tokens
        self.engine = None
        self.decode_engine = None
        self.t_admit = -1.0
        self.t_first = -1.0
        self.t_done = -1.0
        self.t_kv_ready = -1.0
        self.target = prompt  # tokens whose KV the next prefill produces (prompt + generated)
        self.todo = 0  # tokens left to compute in the current prefill
        self.past = 0  # tokens already in the KV cache before the next chunk
        self.gen = 0  # output tokens produced
        self.blocks = 0
        self.off = 0
        self.s_join = 0
        self.epoch = 0
        self.kv_ready = False
        self.preemptions = 0
        self.cached = 0  # prompt tokens served from the prefix cache (all admissions)


class Engine:
    """A continuous-batching engine. `sim` provides `push(time, obj, version)` for its step-end
    events, `finish(req, t)` and, for prefill engines, `handoff(req, t, engine)`."""

    def __init__(self, index: int, sim, steptime, max_num_seqs: int, token_budget: int, block_size: int,
                 kv_blocks: int, role: str = AGGREGATED, chunked_prefill: bool = True, prefix_caching: bool = True,
                 record=None, prefill_first: bool = False, poll_steps: int = 1, hold_steps: int = 0,
                 hold_tokens: int = 0):
        self.index = index
        self.sim = sim
        self.st = steptime
        self.max_seqs = max_num_seqs
        self.budget = token_budget
        self.B = block_size
        self.total = kv_blocks
        self.role = role
        self.chunked = chunked_prefill
        self.prefix_caching = prefix_caching
        self.prefill_first = prefill_first
        self.poll = max(int(poll_steps), 1)
        self.mailbox: deque[Request] = deque()  # arrivals the scheduler has not read yet (poll > 1)
        self.since_poll = 0  # decode steps since the scheduler last read new requests
        self.win_c0 = 0  # `since_poll` when the current window started
        self.hold_steps = max(int(hold_steps), 0)
        self.hold_tokens = max(int(hold_tokens), 0)
        self.held = 0  # decode steps the waiting prompts have been held since the last release
        self.holding = False  # the current window runs while prompts are held
        self.stall = 0.0  # seconds the decodes waited in prefill-only steps since their last step
        self.waiting: deque[Request] = deque()
        self.prefilling: list[Request] = []
        self.decoding: dict[int, Request] = {}
        self.n = 0  # decoding sequences
        self.sum_off = 0
        self.phase = [0] * block_size  # decodes by off mod block
        self.fin: list = []  # (finish step, rid, epoch, req)
        self.S = 0
        self.fixed = 0  # blocks held by prefilling requests
        self.busy = False
        self.version = 0
        self.kind = 0
        self.k = 0
        self.w_start = 0.0
        self.w_t0 = 0.0
        self.w_s = 0.0
        self.chunks: list = []
        self.outstanding = 0
        self.cache: set[int] = set()
        self.preemptions = 0
        self.steps = 0
        self.busy_s = 0.0
        self.prefill_tokens = 0
        self.record = record  # list for Chrome-trace spans, or None
        # Series sampled at each step or window start: time, running, waiting, share of KV-cache
        # tokens in use (prefilling requests count their allocated blocks).
        self.ts_t: list[float] = []
        self.ts_run: list[int] = []
        self.ts_wait: list[int] = []
        self.ts_kv: list[float] = []
        # Inter-token records: (decode sequences, steps, seconds) per step or window.
        self.itl_n: list[int] = []
        self.itl_k: list[int] = []
        self.itl_dur: list[float] = []

    # -- KV blocks ------------------------------------------------------------------------------
    def _dblocks(self, S: int) -> int:
        """Exact KV blocks held by the decodes at step counter S: sum of ceil((off + S) / B)."""
        n = self.n
        if not n:
            return 0
        B = self.B
        m = (-S) % B
        pad = 0
        for phi, c in enumerate(self.phase):
            if c:
                pad += c * ((m - phi) % B)
        return (self.sum_off + n * S + pad) // B

    def _dblocks_ub(self, S: int) -> int:
        """Upper bound of `_dblocks(S)` in O(1)."""
        return (self.sum_off + self.n * (S + self.B - 1)) // self.B

    # -- arrivals ---------------------------------------------------------------------------------
    def on_arrival(self, r: Request, now: float) -> None:
        """A request joins the queue; an idle engine starts a step, a decode window is cut short
        (at the next poll of new requests when the engine reads them every `poll` steps)."""
        if self.poll > 1 and self.busy and self.kind != WAKE:  # a waking engine reads them with the first
            self.mailbox.append(r)
            if self.kind == WINDOW and self.k > 1 and len(self.mailbox) == 1 \
                    and self.n + len(self.prefilling) < self.max_seqs:
                self._truncate(now, poll=True)
            return
        self.waiting.append(r)
        if not self.busy:
            # Wake through a zero-delay event: requests arriving at this same instant (arrivals
            # go before events at equal times) are queued first and share the first step.
            self.busy = True
            self.kind = WAKE
            self.k = 0
            self.w_start = now
            self.version += 1
            self.sim.push(now, self, self.version)
        elif self.kind == WINDOW and self.k > 1 and (len(self.waiting) == 1 or (self.holding and self.hold_tokens)) \
                and self.n + len(self.prefilling) < self.max_seqs:
            self._truncate(now)  # (a held batch re-checks its token threshold at the next step)

    def _cum(self, j: int) -> float:
        return j * self.w_t0 + self.w_s * j * (j - 1) * 0.5

    def _truncate(self, now: float, poll: bool = False) -> None:
        """End the current window at the first step boundary at or after `now` (`poll`: at the
        first poll of new requests at or after it)."""
        e = now - self.w_start
        t0, s = self.w_t0, self.w_s
        if s > 0.0:
            a = t0 - 0.5 * s
            j = int((-a + (a * a + 2.0 * s * e) ** 0.5) / s)
        else:
            j = int(e / t0) if t0 > 0.0 else 0
        if j < 1:
            j = 1
        while self._cum(j) < e:
            j += 1
        while j > 1 and self._cum(j - 1) >= e:
            j -= 1
        if poll:
            j += (self.poll - (self.win_c0 + j) % self.poll) % self.poll
        if j < self.k:
            self.k = j
            self.version += 1
            self.sim.push(self.w_start + self._cum(j), self, self.version)

    # -- steps ------------------------------------------------------------------------------------
    def plan(self, now: float) -> None:
        """Choose and start the next step (mixed) or decode window; go idle if nothing to run."""
        if self.poll > 1 and self.since_poll >= self.poll:  # the scheduler reads new requests
            self.waiting.extend(self.mailbox)
            self.mailbox.clear()
            # Reads fall every `poll` decode steps: a window that ran past reads with nothing to
            # read keeps their phase (a read after a prefill step restarts it at 0).
            self.since_poll %= self.poll
        B = self.B
        S = self.S
        total = self.total
        # The decodes of the next step must have room to grow by one token.
        if self.n and self.fixed + self._dblocks_ub(S + 1) > total:
            while self.n and self.fixed + self._dblocks(S + 1) > total:
                self._preempt_youngest()
        free = total - self.fixed - (self._dblocks_ub(S + 1) if self.n else 0)
        exact = False
        budget = self.budget if self.prefill_first else self.budget - self.n
        chunks = []
        for r in self.prefilling:
            if budget <= 0:
                break
            c = r.todo if (r.todo < budget or not self.chunked) else budget
            chunks.append((r, c))
            budget -= c
        waiting = self.waiting
        self.holding = False
        if waiting and self.hold_steps and self.n and not self.prefilling:
            # TensorRT-LLM's batch waiting: new prompts wait for the timeout or the token threshold.
            tokens = self.n + sum(r.target for r in waiting)
            if self.held < self.hold_steps and not (self.hold_tokens and tokens >= self.hold_tokens):
                self.holding = True
            else:
                self.held = 0
        if waiting and not self.holding:
            running = self.n + len(self.prefilling)
            max_seqs = self.max_seqs
            while waiting and running < max_seqs:
                r = waiting[0]
                need = -(-r.target // B)
                if r.kv_ready:
                    need += 1  # its first decode step may open a block
                if need > free:
                    if not exact and self.n:
                        exact = True
                        free = total - self.fixed - self._dblocks(S + 1)
                        continue
                    break
                if r.kv_ready:
                    waiting.popleft()
                    if r.t_admit < 0.0:
                        r.t_admit = now
                    self._join_decode(r)
                    free -= need
                    running += 1
                    continue
                if budget <= 0 or (not self.chunked and chunks and r.target > budget):
                    break
                waiting.popleft()
                self._admit(r, now, need)
                free -= need
                running += 1
                c = r.todo if (r.todo < budget or not self.chunked) else budget
                chunks.append((r, c))
                budget -= c
        n = self.n
        ctx = self.sum_off / n + S + 1 if n else 0.0
        self.ts_t.append(now)
        self.ts_run.append(n + len(self.prefilling))
        self.ts_wait.append(len(waiting))
        self.ts_kv.append((self.fixed * B + self.sum_off + n * S) / (total * B))
        if chunks and self.prefill_first:  # the decodes sit this step out
            dur = self.st.mixed(0, 0.0, [(c, r.past) for r, c in chunks])
            self.chunks = chunks
            self.kind = PREFILL_ONLY
            self.k = 1
            self.w_t0, self.w_s = dur, 0.0
        elif chunks:
            dur = self.st.mixed(n, ctx, [(c, r.past) for r, c in chunks])
            self.chunks = chunks
            self.kind = MIXED
            self.k = 1
            self.w_t0, self.w_s = dur, 0.0
        elif n:
            fin = self.fin
            while fin[0][2] != fin[0][3].epoch:
                heapq.heappop(fin)
            k = fin[0][0] - S
            if self.fixed + self._dblocks_ub(S + k) > total:
                k = self._kv_steps(k)
            if self.mailbox:  # run to the next poll, where they are read
                k = min(k, self.poll - self.since_poll)
            if self.holding:  # run to the hold's timeout
                k = min(k, self.hold_steps - self.held)
            self.win_c0 = self.since_poll
            t0, s = self.st.decode(n, ctx)
            self.kind = WINDOW
            self.k = k
            self.w_t0, self.w_s = t0, s
            dur = k * t0 + s * k * (k - 1) * 0.5
        elif self.mailbox:  # nothing to run: an idle scheduler reads new requests at once
            self.since_poll = self.poll
            self.plan(now)
            return
        else:
            self.busy = False
            self.kind = WAKE
            return
        self.busy = True
        self.w_start = now
        self.version += 1
        self.sim.push(now + dur, self, self.version)

    def _kv_steps(self, k: int) -> int:
        """Most steps (1..k) the decodes can run before the KV cache is full."""
        lo, hi = 1, k
        fixed, total, S = self.fixed, self.total, self.S
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fixed + self._dblocks(S + mid) <= total:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def fire(self, t: float, version: int) -> None:
        """A step or window ended at time t (stale versions are ignored)."""
        if version != self.version:
            return
        if self.kind == WAKE:
            self.plan(t)
            return
        dur = t - self.w_start
        self.steps += self.k
        self.busy_s += dur
        if self.record is not None:
            self.record.append((self.index, self.w_start, dur, self.kind, self.n, self.k,
                                sum(c for _, c in self.chunks) if self.kind in (MIXED, PREFILL_ONLY) else 0))
        if self.kind == PREFILL_ONLY:
            # No decode advanced: the wait lands in the decodes' next interval.
            if self.n:
                self.stall += dur
        elif self.n:
            self.itl_n.append(self.n)
            self.itl_k.append(self.k)
            self.itl_dur.append(dur + self.stall)
            self.stall = 0.0
        if self.kind != PREFILL_ONLY:
            self.S += self.k
        if self.holding and self.kind == WINDOW:
            self.held += self.k
        # SGLang's receive counter: one per decode step, enough after a step with prompts to read
        # new requests on the next iteration.
        self.since_poll = self.poll if self.kind in (MIXED, PREFILL_ONLY) else self.since_poll + self.k
        S = self.S
        # Decodes that reached their last token.
        fin = self.fin
        while fin and fin[0][0] <= S:
            _, _, epoch, r = heapq.heappop(fin)
            if epoch != r.epoch:
                continue
            self._leave_decode(r)
            self.outstanding -= 1
            self.sim.finish(r, t)
        if self.kind in (MIXED, PREFILL_ONLY):
            done = False
            for r, c in self.chunks:
                r.todo -= c
                r.past += c
                self.prefill_tokens += c
                if r.todo == 0:
                    done = True
                    self._prefill_done(r, t)
            if done:
                self.prefilling = [r for r in self.prefilling if r.todo > 0]
            self.chunks = []
        self.busy = False
        self.plan(t)

    # -- request transitions ----------------------------------------------------------------------
    def _admit(self, r: Request, now: float, blocks: int) -> None:
        if r.t_admit < 0.0:
            r.t_admit = now
        cached = 0
        if self.prefix_caching and r.group >= 0 and r.group in self.cache:
            cached = min(r.prefix_tokens, r.target - 1)
        r.cached += cached
        r.past = cached
        r.todo = r.target - cached
        r.blocks = blocks
        self.fixed += blocks
        self.prefilling.append(r)

    def _prefill_done(self, r: Request, t: float) -> None:
        self.fixed -= r.blocks
        r.blocks = 0
        if r.group >= 0:
            self.cache.add(r.group)
        r.gen += 1
        if r.t_first < 0.0:
            r.t_first = t
        if r.gen >= r.output:
            self.outstanding -= 1
            self.sim.finish(r, t)
        elif self.role == PREFILL:
            self.outstanding -= 1
            self.sim.handoff(r, t, self)
        else:
            self._join_decode(r)

    def _join_decode(self, r: Request) -> None:
        S = self.S
        r.off = r.target - S
        r.s_join = S
        self.n += 1
        self.sum_off += r.off
        self.phase[r.off % self.B] += 1
        self.decoding[r.rid] = r
        heapq.heappush(self.fin, (S + r.output - r.gen, r.rid, r.epoch, r))

    def _leave_decode(self, r: Request) -> None:
        self.n -= 1
        self.sum_off -= r.off
        self.phase[r.off % self.B] -= 1
        del self.decoding[r.rid]

    def _preempt_youngest(self) -> None:
        """Evict the most recently admitted decode; it will recompute prompt + generated tokens."""
        r = next(reversed(self.decoding.values()))
        self._leave_decode(r)
        r.gen += self.S - r.s_join
        r.epoch += 1
        r.target = r.prompt + r.gen
        r.kv_ready = False
        r.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(r)

    def on_kv_ready(self, r: Request, now: float) -> None:
        """(Decode engines) a request's KV cache arrived from a prefill engine."""
        r.kv_ready = True
        r.target = r.prompt + r.gen - 1  # KV of the prompt (the first token is the next input)
        r.t_kv_ready = now
        self.on_arrival(r, now)
