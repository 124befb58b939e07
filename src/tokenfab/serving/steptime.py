"""Step times for the simulator: the one place serving talks to the engine (graph + perf).

`EngineStepTime` asks the engine, once and vectorized, for the time of
  - a decode step of b sequences at mean context c (every integer b up to the batch cap, c on a
    uniform grid), and
  - the two parts a mixed (chunked-prefill) step is built from: token-proportional work (linear
    layers, norms, collectives, LM head — weights are read once for all tokens of the step) as a
    function of the step's token count, and context-dependent work (attention over the KV cache)
    of each prefill chunk (tokens T after c cached tokens) and of the decode batch,
then answers the simulator's questions by interpolation in pure Python (microseconds each).

Which operators depend on context is measured, not named: an operator whose time changes when
only the context changes (attention, MLA's prefill up-projection, sliding windows) is "context"
work; every other operator is token work. Engine changes therefore stay out of the simulator.

Multi-token prediction / speculative decoding (`Mapping.draft_tokens` k at acceptance a): a real
decode step verifies k + 1 positions per sequence (drafter included) and emits on average
tps = 1 + a + ... + a^k tokens. The simulator is kept at one token per sequence per step, in
expectation: a simulated decode step is 1/tps of a real one (its time divided by tps), so TPOT,
throughput and the KV cache (one token per simulated step) are right on average; inter-token gaps
are smoothed (no bursts of accepted drafts). In a mixed step each decoding sequence counts
(k + 1)/tps tokens of linear work and 1/tps of its attention (the drafter's own layer is left out).

Pipeline parallelism (pp stages): an iteration runs pp micro-batches of 1/pp of the tokens through
all layers, so its time is that of 1/pp of the work (the steady state `mapping.search` assumes),
plus (pp-1) point-to-point hops. Data parallelism: each data-parallel rank is one simulated engine
and is assumed to see the same load as its peers (what the per-rank `StepShape` already assumes).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tokenfab.graph import StepShape, step_ops
from tokenfab.mapping import memory
from tokenfab.mapping.search import EXPERT_OPS, chip_hardware, coupled_ranks
from tokenfab.perf import comm
from tokenfab.perf.efficiency import Efficiency, efficiency_for
from tokenfab.perf.evaluate import time_ops
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, bytes_per_element

A_BYTES = 2.0  # activations move in bf16
CTX_POINTS = 65  # uniform context grid points (64 segments)


@dataclass(frozen=True)
class Mapping:
    """One replica's parallel layout: `num_chips = tp × pp × dp`; `batch` caps sequences per
    data-parallel rank (the engine's max_num_seqs)."""

    num_chips: int
    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1
    batch: int = 256
    weight_precision: str = "bf16"
    kv_precision: str = "bf16"
    draft_tokens: int = 0
    """MTP / speculative draft tokens per decode step (0: plain decoding)."""
    draft_acceptance: float = 0.0
    """Acceptance rate of each draft token (a draft counts only if all earlier ones were kept)."""

    @classmethod
    def from_estimate(cls, est) -> "Mapping":
        """The mapping of an `api.Estimate`'s one pool, or of its decode pool (separate pools:
        `serving.deployment.from_estimate` builds both), with its MTP."""
        dec = [p for p in getattr(est, "pools", None) or [] if p["role"] == "decode"]
        if dec and est.mode != "aggregated":
            return cls.from_pool(dec[0], est.draft_tokens, est.draft_acceptance)
        return cls(num_chips=est.num_chips, tp=est.tp, pp=est.pp, ep=est.ep, dp=est.dp, batch=est.batch,
                   weight_precision=est.weight_precision, kv_precision=est.kv_precision,
                   draft_tokens=int(est.draft_tokens), draft_acceptance=float(est.draft_acceptance))

    @classmethod
    def from_pool(cls, pool: dict, draft_tokens: int = 0, draft_acceptance: float = 0.0) -> "Mapping":
        """The mapping of one instance of a pool of `Estimate.pools` (a prefill pool's batch is
        its prompts per forward; drafts apply to pools that decode)."""
        return cls(num_chips=int(pool["num_chips"]), tp=int(pool["tp"]), pp=int(pool["pp"]), ep=int(pool["ep"]),
                   dp=int(pool["dp"]), batch=int(pool["batch"]), weight_precision=pool["weight_precision"],
                   kv_precision=pool["kv_precision"], draft_tokens=int(draft_tokens),
                   draft_acceptance=float(draft_acceptance))

    @property
    def tokens_per_step(self) -> float:
        """Tokens a sequence emits per decode step on average: 1 + a + a^2 + ... + a^k."""
        return float(sum(self.draft_acceptance ** i for i in range(int(self.draft_tokens) + 1)))

    def label(self) -> str:
        mtp = f" MTP{self.draft_tokens}@{self.draft_acceptance:.0%}" if self.draft_tokens else ""
        return (f"{self.num_chips} chips TP{self.tp} PP{self.pp} EP{self.ep} DP{self.dp} "
                f"batch {self.batch} {self.weight_precision}/{self.kv_precision}{mtp}")


class StepTime(Protocol):
    """What the scheduler asks about time. Seconds; contexts in tokens."""

    kv_capacity_tokens: int
    """KV-cache tokens one engine (data-parallel rank) holds."""

    def decode(self, b: int, ctx: float) -> tuple[float, float]:
        """(seconds of one decode step of b sequences at mean KV length ctx, d seconds / d ctx)."""

    def mixed(self, b: int, ctx: float, chunks: list[tuple[int, int]]) -> float:
        """Seconds of one step with b decode sequences (mean KV length ctx) and prefill chunks
        [(new tokens, tokens already cached before the chunk), ...]."""

    def kv_transfer_s(self, tokens: int) -> float:
        """Seconds to move the KV cache of `tokens` tokens from a prefill to a decode instance."""


@dataclass
class ConstantStepTime:
    """Fixed step times, for queueing-theory checks and tests: a decode step takes `decode_s`
    plus `decode_s_per_seq` per sequence; a step with prefill work takes `prefill_s` plus
    `prefill_s_per_token` per prefill token (decode sequences in it ride along for free)."""

    prefill_s: float = 0.0
    decode_s: float = 0.0
    prefill_s_per_token: float = 0.0
    decode_s_per_seq: float = 0.0
    transfer_s: float = 0.0
    kv_capacity_tokens: int = 10**9

    def decode(self, b: int, ctx: float) -> tuple[float, float]:
        return self.decode_s + self.decode_s_per_seq * b, 0.0

    def mixed(self, b: int, ctx: float, chunks: list[tuple[int, int]]) -> float:
        return self.prefill_s + self.prefill_s_per_token * sum(c for c, _ in chunks)

    def kv_transfer_s(self, tokens: int) -> float:
        return self.transfer_s


class EngineStepTime:
    """Interpolated step-time tables of one engine (a tp × pp group) from the first-principles engine."""

    def __init__(self, model: ModelSpec, chip: ChipSpec, mapping: Mapping, max_ctx: int, token_budget: int,
                 system: SystemSpec | None = None, eff: Efficiency | None = None, typical_len: int | None = None,
                 colocated: bool | None = None, coupled: bool = False):
        self.model, self.chip, self.mapping = model, chip, mapping
        self.system = system or SystemSpec.for_chip(chip)
        self.eff = eff or efficiency_for(chip)
        # Coupled attention-DP ranks (`coupled_ranks`): the engine is the whole group of `ranks`
        # ranks stepping as one, decode sequences spread over them, a prompt's chunk on one rank.
        self.ranks = int(coupled_ranks(model, mapping.ep, mapping.dp)) if coupled else 1
        self.max_seqs = int(mapping.batch) * self.ranks
        self.token_budget = int(token_budget)
        self.max_ctx = int(max_ctx)
        self._dec_tokens = (1.0 + mapping.draft_tokens) / mapping.tokens_per_step
        """Linear-work tokens one decoding sequence adds to a mixed step (1 without drafts)."""
        self._w_bytes = bytes_per_element(mapping.weight_precision)
        self._kv_bytes = bytes_per_element(mapping.kv_precision)
        # One description per phase, as the mapping search has (MLA decode over an FP8 cache runs
        # its attention at the FP8 rate; prefill at bf16): `mapping.search.chip_hardware`.
        self._hw = {phase: chip_hardware(model, chip, self.system, self.eff, (mapping.weight_precision,),
                                         (mapping.kv_precision,), 0, phase) for phase in ("prefill", "decode")}
        self._dc = self.max_ctx / (CTX_POINTS - 1)
        self._inv_dc = 1.0 / self._dc
        self._build_memory(typical_len or max(self.max_ctx // 2, 1))
        self._build_tables()
        # KV moves between pools over the scale-up fabric when both fit in one domain.
        self.colocated = colocated if colocated is not None else (2 * mapping.num_chips <= self.system.scaleup_domain)

    # -- memory -------------------------------------------------------------------------------
    def _build_memory(self, typical_len: int) -> None:
        m, mp = self.model, self.mapping
        weights = float(memory.weight_bytes_per_chip(m, np.float64(mp.tp), np.float64(mp.pp), np.float64(mp.ep),
                                                     np.float64(mp.dp), self._w_bytes))
        act = float(memory.activation_bytes(m, np.float64(mp.tp), np.float64(mp.batch),
                                            np.float64(self.token_budget), A_BYTES))
        free = memory.usable_bytes(self.chip.hbm_gb) - weights - act
        per_seq = float(memory.kv_bytes_per_sequence(m, np.float64(mp.tp), np.float64(mp.pp),
                                                     np.float64(typical_len), self._kv_bytes))
        self.kv_bytes_per_token = per_seq / typical_len
        """KV-cache bytes per token on each chip of the engine."""
        self.weights_gb = weights / 1e9
        self.kv_capacity_tokens = int(max(free, 0.0) / self.kv_bytes_per_token) * self.ranks
        if self.kv_capacity_tokens <= 0:
            raise SpecError(f"{m.id} on {mp.label()} × {self.chip.id}: weights ({weights / 1e9:.1f} GB) and activations "
                            f"leave no HBM for the KV cache; use more chips or a lower precision")

    # -- tables -------------------------------------------------------------------------------
    def _times(self, phase: str, tokens, seqs, ctx, kv_len) -> tuple[list[str], list[np.ndarray]]:
        mp = self.mapping
        tokens = np.asarray(tokens, float)
        one = np.ones_like(tokens)
        k = float(mp.draft_tokens) if phase == "decode" else 0.0
        # A decode step with drafts verifies k + 1 positions per sequence (`tokens` = seqs here).
        shape = StepShape(phase, tokens=tokens * (1.0 + k), seqs=np.asarray(seqs, float) * one,
                          ctx=np.asarray(ctx, float) * one, kv_len=np.asarray(kv_len, float) * one, tp=mp.tp * one,
                          dp=mp.dp * one, ep=mp.ep * one, w_bytes=self._w_bytes * one, a_bytes=A_BYTES,
                          kv_bytes=self._kv_bytes * one, draft_tokens=k * one)
        times = time_ops(step_ops(self.model, shape), self._hw[phase])
        return [t.name for t in times], [np.broadcast_to(np.asarray(t.seconds, float), tokens.shape) for t in times]

    def _context_ops(self, phase: str, tokens: np.ndarray) -> np.ndarray:
        """Mask of operators whose time changes with context alone (probe at two contexts)."""
        seqs = tokens if phase == "decode" else np.ones_like(tokens)
        lo, hi = 1.0, float(max(self.max_ctx, 2))
        _, a = self._times(phase, tokens, seqs, lo, lo)
        _, b = self._times(phase, tokens, seqs, hi, hi)
        return np.array([not np.allclose(x, y, rtol=1e-9, atol=0.0) for x, y in zip(a, b)])

    def _per_step(self, tokens) -> np.ndarray:
        """Host overhead and pipeline hops of one iteration carrying `tokens` tokens per micro-batch."""
        mp, eff = self.mapping, self.eff
        crosses = mp.tp * mp.pp > self.system.chips_per_node
        hops = (mp.pp - 1) * comm.p2p_time_s(np.asarray(tokens, float) * self.model.hidden_size * A_BYTES,
                                              crosses, self.system, eff)
        return np.asarray(hops, float) + eff.step_overhead_ms * 1e-3

    def _build_tables(self) -> None:
        pp = float(self.mapping.pp)
        g = float(self.ranks)
        cgrid = np.linspace(0.0, self.max_ctx, CTX_POINTS)
        self._cgrid = cgrid
        # Decode: every integer batch 1..max_seqs × context grid (row 0 unused); a coupled group's
        # b sequences are b / ranks on each rank.
        b = np.arange(1, self.max_seqs + 1, dtype=float)
        bb, cc = np.meshgrid(b, np.maximum(cgrid, 1.0), indexing="ij")
        bt = (bb / pp / g).ravel()
        ctx_mask = self._context_ops("decode", b / pp / g)
        _, times = self._times("decode", bt, bt, cc.ravel(), cc.ravel())
        # MTP: a simulated step is 1/tps of a real one (module docstring).
        tps = self.mapping.tokens_per_step
        total = (np.sum(times, axis=0) + self._per_step(bt)) / tps
        ctx_part = (np.sum([t for t, m in zip(times, ctx_mask) if m], axis=0) if ctx_mask.any()
                    else np.zeros_like(bt)) / tps
        shape = (len(b), CTX_POINTS)
        self._dec = [[0.0] * CTX_POINTS] + total.reshape(shape).tolist()
        self._dec_ctx = [[0.0] * CTX_POINTS] + ctx_part.reshape(shape).tolist()
        # Token work of a step of n tokens (prefill shape: one sequence's chunk), n = 0..budget+max_seqs.
        n_max = self.token_budget + self.max_seqs + 1
        n = np.arange(0, n_max + 1, dtype=float)
        nt = np.maximum(n, 1.0) / pp
        pmask = self._context_ops("prefill", np.array([1.0, 64.0, float(self.token_budget)]))
        names, times = self._times("prefill", nt, 1.0, nt / 2.0, nt)
        expert = np.array([x in EXPERT_OPS for x in names])
        lin = np.sum([t for t, m, e in zip(times, pmask, expert) if not m and not e], axis=0) + self._per_step(nt)
        self._lin = lin.tolist()
        # Expert work of n tokens entering the experts from the whole group (a rank-shape step of
        # n / ranks tokens: the experts see every rank's tokens), kept apart so that a coupled
        # group's chunk, on one rank, pays its dense layers in full and its experts at 1/ranks.
        times_e = times if g == 1.0 else self._times("prefill", nt / g, 1.0, nt / 2.0, nt / g)[1]
        self._lin_exp = (np.sum([t for t, m, e in zip(times_e, pmask, expert) if not m and e], axis=0)
                         * np.ones_like(nt)).tolist()
        # Context work of one prefill chunk: T new tokens after c cached ones.
        tg = sorted({1, 2, 4, 8, 16, 32, 64, 96} | set(range(128, self.token_budget + 128, 128)) | {self.token_budget})
        self._tgrid = [float(x) for x in tg]
        tt, cc = np.meshgrid(np.asarray(tg, float), cgrid, indexing="ij")
        t_, c_ = tt.ravel(), cc.ravel()
        _, times = self._times("prefill", t_, 1.0, c_ + t_ / 2.0, c_ + t_)
        pre_ctx = (np.sum([t for t, m in zip(times, pmask) if m], axis=0) if pmask.any() else np.zeros_like(t_)) / pp
        self._pre_ctx = pre_ctx.reshape(len(tg), CTX_POINTS).tolist()

    # -- queries (hot path: plain Python) --------------------------------------------------------
    def _cpos(self, ctx: float) -> tuple[int, float]:
        x = ctx * self._inv_dc
        i = int(x)
        if i >= CTX_POINTS - 1:
            i = CTX_POINTS - 2  # extrapolate along the last segment
        elif i < 0:
            i, x = 0, 0.0
        return i, x - i

    def decode(self, b: int, ctx: float) -> tuple[float, float]:
        if b > self.max_seqs:
            b = self.max_seqs
        i, f = self._cpos(ctx)
        row = self._dec[b]
        lo, hi = row[i], row[i + 1]
        d = hi - lo
        return lo + f * d, (d if d > 0.0 else 0.0) * self._inv_dc

    @staticmethod
    def _lin_at(n: float, lin: list) -> float:
        top = len(lin) - 1
        if n >= top:  # beyond the table: extend with the last slope
            return lin[top] + (n - top) * (lin[top] - lin[top - 1])
        i = int(n)
        return lin[i] + (n - i) * (lin[i + 1] - lin[i])

    def _chunk_ctx(self, tokens: float, past: float) -> float:
        tg = self._tgrid
        j = bisect.bisect_right(tg, tokens) - 1
        if j < 0:
            j = 0
        elif j >= len(tg) - 1:
            j = len(tg) - 2
        g = (tokens - tg[j]) / (tg[j + 1] - tg[j])
        i, f = self._cpos(past)
        r0, r1 = self._pre_ctx[j], self._pre_ctx[j + 1]
        a = r0[i] + f * (r0[i + 1] - r0[i])
        b = r1[i] + f * (r1[i + 1] - r1[i])
        return a + g * (b - a)

    def mixed(self, b: int, ctx: float, chunks: list[tuple[int, int]]) -> float:
        dec = b * self._dec_tokens
        chunk = 0.0
        t = 0.0
        for c, past in chunks:
            chunk += c
            t += self._chunk_ctx(c, past)
        # Dense layers on the busiest rank (the chunks and its share of the decodes); experts on
        # every token of the step (one engine: ranks = 1, the same sum).
        t += self._lin_at(chunk + dec / self.ranks, self._lin) + self._lin_at(chunk + dec, self._lin_exp)
        if b:
            if b > self.max_seqs:
                b = self.max_seqs
            i, f = self._cpos(ctx)
            row = self._dec_ctx[b]
            t += row[i] + f * (row[i + 1] - row[i])
        return t

    def kv_transfer_s(self, tokens: int) -> float:
        """Each chip of the prefill instance sends its shard of the sequence's KV to its peer in
        the decode instance in parallel, over the scale-up fabric when both instances share a
        domain, else the scale-out network."""
        eff, system = self.eff, self.system
        if self.colocated:
            bw, alpha = system.scaleup_gb_s * float(comm.scaleup_share(2.0, system)), eff.comm_latency_us
        else:
            bw, alpha = system.scaleout_gb_s, eff.scaleout_latency_us
        return alpha * 1e-6 + tokens * self.kv_bytes_per_token / (bw * 1e9 * eff.comm_bw_frac)

    def prefill_s(self, tokens: int) -> float:
        """Seconds to prefill one prompt of `tokens` tokens alone (chunked by the token budget)."""
        t, done = 0.0, 0
        while done < tokens:
            c = min(self.token_budget, tokens - done)
            t += self.mixed(0, 0.0, [(c, done)])
            done += c
        return t


def _round_ctx(n: int) -> int:
    """Context range of a table: the next multiple of 1024 (so nearby workloads share tables)."""
    return max(1024, int(math.ceil(n / 1024.0)) * 1024)


_CACHE: dict[tuple, EngineStepTime] = {}
_CACHE_SIZE = 64


def engine_step_time(model: ModelSpec, chip: ChipSpec, mapping: Mapping, max_ctx: int, token_budget: int = 8192,
                     system: SystemSpec | None = None, typical_len: int | None = None,
                     colocated: bool | None = None, coupled: bool = False) -> EngineStepTime:
    """Cached `EngineStepTime` (tables are built once per model, chip, mapping and context range).
    `coupled`: aggregated serving, where attention-DP ranks coupled by expert parallelism run as
    one engine (`EngineStepTime.ranks`)."""
    system = system or SystemSpec.for_chip(chip)
    ctx = _round_ctx(max_ctx)
    typical = _round_ctx(typical_len) if typical_len else ctx // 2
    key = (model.model_dump_json(), chip.model_dump_json(), mapping, ctx, int(token_budget),
           system.model_dump_json(), typical, colocated, bool(coupled))
    st = _CACHE.get(key)
    if st is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        st = _CACHE[key] = EngineStepTime(model, chip, mapping, ctx, token_budget, system=system,
                                          typical_len=typical, colocated=colocated, coupled=coupled)
    return st
