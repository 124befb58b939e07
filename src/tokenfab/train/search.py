"""Vectorized training mapping search: every (TP, PP, CP, EP, DP, micro-batch, schedule) point,
under each (recomputation, ZeRO stage, overlap) variant, at once with numpy.

A point uses `tp x pp x cp x dp` chips (at most the chips given: the search may leave chips idle,
so more chips never make the best run longer). Experts are spread over `ep` ranks drawn from the
`tp x cp x dp` chips of a stage (ep a multiple of tp). A step trains `m` micro-batches of `mbs`
sequences per data-parallel rank (m = ceil(global batch / (dp·mbs)) sequences rounded up to whole
micro-batches) and lasts

    m·(tf + tb) + bubble(schedule) + pipeline sends + exposed data-parallel sync + optimizer

with tf, tb the forward and backward of one micro-batch on the slowest stage (`train.layer`):
compute plus tensor/expert/context-parallel communication (less, in the backward, the collectives
Megatron runs asynchronously beside the gradient GEMMs: `layer.BACKWARD_ASYNC_SHARE`), or with
overlap max(comm, compute + f·comm): the compute beside a collective runs on the SMs it leaves
(f = `TrainingStack.comm_sm_frac`).
Data-parallel gradient reduce-scatter overlaps the last micro-batch's backward and the weight
all-gather the next step's first forward when overlap is on; ZeRO-3 gathers weights for every
micro-batch's forward and backward. The run divides by goodput (`train.goodput`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tokenfab.mapping.search import chip_hardware
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs import ChipSpec, ModelSpec, SystemSpec
from tokenfab.train import memory, schedule
from tokenfab.train.collectives import members_per_domain, ring_seconds
from tokenfab.train.flops import model_flops_per_token
from tokenfab.train.goodput import goodput
from tokenfab.train.layer import micro_batch_times
from tokenfab.train.stack import RECOMPUTE, SCHEDULES, TrainingJob, TrainingStack

POW2 = tuple(2**k for k in range(13))
DP_LADDER_ODD = (1, 3, 5, 7, 9, 11, 13, 15)
"""Data-parallel degrees searched: a x 2^k for these a (a fixed set, so the candidates on N chips
are a subset of those on more chips)."""
MICRO_BATCHES = (1, 2, 4, 8)
MIN_CP_TOKENS = 1024
"""Shortest sequence slice a context-parallel rank is given (smaller slices starve the GEMMs)."""
ADAM_BYTES_PER_PARAM = 30.0
"""Bytes an Adam step moves per parameter it updates: reads the gradient (4), master weight,
first and second moments (12), writes the three (12) and the bf16 weight (2)."""


class NoMapping(ValueError):
    """No mapping of the job fits the chips: carries the smallest memory need found."""


@dataclass
class Base:
    """The base grid: one entry per (tp, pp, cp, ep, dp, mbs, schedule) point."""

    a: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.a["tp"])

    def take(self, idx) -> "Base":
        return Base({k: v[idx] for k, v in self.a.items()})


def dp_ladder(limit: int) -> np.ndarray:
    """Data-parallel degrees a·2^k ≤ limit."""
    vals = {a * 2**k for a in DP_LADDER_ODD for k in range(40) if a * 2**k <= limit}
    return np.array(sorted(vals), dtype=np.int64)


def build_base(model: ModelSpec, chip: ChipSpec, job: TrainingJob, num_chips: int,
               schedules: tuple[str, ...] = SCHEDULES) -> Base:
    """Every valid base point on at most `num_chips` chips, with the job's fixed degrees and, unless
    the job fixes one, the pipeline `schedules` the training software implements."""
    model.check_expert_parallel(job.ep)
    dom = chip.scaleup_domain
    S = job.seq_len
    tps = [job.tp] if job.tp else [t for t in POW2 if t <= dom and model.num_heads % t == 0]
    pps = [job.pp] if job.pp else [p for p in POW2 if p <= model.num_layers]
    cps = [job.cp] if job.cp else [c for c in POW2 if c == 1 or (S % c == 0 and S // c >= MIN_CP_TOKENS)]
    if model.is_moe:
        eps = [job.ep] if job.ep else [1] + [e for e in POW2[1:] if e <= model.num_experts]
    else:
        eps = [job.ep or 1]
    fixed = [x for x in (job.tp, job.pp, job.cp) if x]
    dps = [job.dp] if job.dp else list(dp_ladder(num_chips))
    if fixed and not job.dp:
        dps = sorted(set(dps) | {num_chips // math.prod(x or 1 for x in (job.tp, job.pp, job.cp))} - {0})
    mbss = [job.micro_batch] if job.micro_batch else list(MICRO_BATCHES)
    scheds = [SCHEDULES.index(job.schedule)] if job.schedule else [SCHEDULES.index(x) for x in schedules]
    grids = np.meshgrid(np.array(tps), np.array(pps), np.array(cps), np.array(eps), np.array(dps),
                        np.array(mbss), np.array(scheds), indexing="ij")
    tp, pp, cp, ep, dp, mbs, sched = (g.ravel().astype(np.int64) for g in grids)
    seqs = job.global_batch_tokens / S
    ok = tp * pp * cp * dp <= num_chips
    ok &= dp * mbs <= max(seqs, 1.0)
    ok &= (ep == 1) | ((ep % tp == 0) & ((tp * cp * dp) % ep == 0))
    ok &= (pp > 1) | (sched == 0)
    ok &= (sched != SCHEDULES.index("dualpipe")) | (pp % 2 == 0)
    ok &= (sched != SCHEDULES.index("interleaved")) | (np.ceil(model.num_layers / pp) >= job.virtual_stages)
    # Schedules other than 1F1B need at least one micro-batch per stage in flight (Megatron's
    # interleaving requires m ≥ p; the zero-bubble and DualPipe bubbles assume it).
    m = np.ceil(seqs / np.maximum(dp * mbs, 1))
    ok &= (sched == 0) | (m >= pp)
    if model.is_moe and not job.ep:
        ok &= ep <= tp * cp * dp
    sel = np.nonzero(ok)[0]
    return Base({"tp": tp[sel], "pp": pp[sel], "cp": cp[sel], "ep": ep[sel], "dp": dp[sel], "mbs": mbs[sel],
                 "schedule": sched[sel]})


def variants(job: TrainingJob) -> list[tuple[int, int, bool]]:
    """(recompute, zero, overlap) combinations the job leaves open."""
    rcs = [RECOMPUTE.index(job.recompute)] if job.recompute else [0, 1, 2]
    zeros = [job.zero] if job.zero is not None else [0, 1, 2, 3]
    ovs = [job.overlap] if job.overlap is not None else [False, True]
    return [(r, z, o) for r in rcs for z in zeros for o in ovs]


@dataclass
class Context:
    """What every variant's evaluation shares: the base grid and its micro-batch times."""

    model: ModelSpec
    chip: ChipSpec
    system: SystemSpec
    eff: Efficiency
    job: TrainingJob
    stack: TrainingStack
    base: Base
    mb: object
    flops_per_token: float


def prepare(model: ModelSpec, chip: ChipSpec, system: SystemSpec, eff: Efficiency, job: TrainingJob,
            stack: TrainingStack, num_chips: int) -> Context:
    """Base grid plus the micro-batch times of its distinct (tp, cp, ep, mbs) shapes."""
    base = build_base(model, chip, job, num_chips, stack.schedules)
    # A power-capped design trains at its sustained clock: chip_hardware applies its
    # `microarch.sustained_frac`, and a chip whose training runs sustain less than its kernel tables
    # its `training_sustained_frac` too (`training_chip`). Training runs its own FP8 recipe, not the
    # released checkpoint's scales (`checkpoint_scales=False`).
    hw = chip_hardware(model, training_chip(chip), system, eff, (job.precision,), None, 0, "prefill", None,
                       "roofline", checkpoint_scales=False)
    a = base.a
    keys = np.stack([a["tp"], a["cp"], a["ep"], a["mbs"]])
    uniq, inverse = np.unique(keys, axis=1, return_inverse=True) if len(base) else (np.zeros((4, 0)), np.zeros(0, int))
    inverse = np.asarray(inverse).ravel()
    w_bytes = 1.0 if job.precision == "fp8" else 2.0
    mbt = micro_batch_times(model, hw, job.seq_len, uniq[0], uniq[1], uniq[2], uniq[3],
                            stack.attention_backward_ratio / stack.attention_backward_efficiency, w_bytes,
                            job.mtp, frozen=job.lora, unfused_attention=not stack.fused_attention,
                            moe_host_s_per_layer=stack.moe_host_s_per_layer)
    mb = type(mbt)(**{k: np.asarray(getattr(mbt, k))[inverse] for k in mbt.__dataclass_fields__})
    return Context(model, chip, system, eff, job, stack, base, mb,
                   float(model_flops_per_token(model, job.seq_len, job.lora)))


def training_chip(chip: ChipSpec) -> ChipSpec:
    """The chip as a training run sees it: its `microarch.training_sustained_frac` (the clocks a long
    run with overlapped communication sustains under the power limit) folded into the sustained
    fractions `mapping.search.chip_hardware` applies; the chip itself when it carries none."""
    ma = chip.microarch
    if ma is None:
        return chip
    frac = ma.training_sustained_frac or _calibrated_training_frac(chip)
    if not frac:
        return chip
    held = {p: ma.sustained_frac.get(p, 1.0) * f for p, f in frac.items()}
    return chip.model_copy(update={"microarch": ma.model_copy(update={"sustained_frac": {**ma.sustained_frac, **held}})})


def _calibrated_training_frac(chip: ChipSpec) -> dict:
    """The training fraction of the catalog chip whose calibration `chip` names (a design of the same
    silicon and stack trains as that chip does); {} when it names none or that chip carries none."""
    if not chip.calibration or chip.calibration == chip.id:
        return {}
    from tokenfab import catalog

    try:
        ref = catalog.load_chip(chip.calibration)
    except Exception:  # noqa: BLE001 - a calibration with no catalog chip of that name
        return {}
    return dict(ref.microarch.training_sustained_frac) if ref.microarch is not None else {}


def _stage(layers, head, pp, L):
    """Seconds of the slowest stage: whole layers, the last stage also running the LM head (and
    the MTP modules), which gets j layers so that it balances the others (Llama 3 moved layers
    off the end stages for this): min over j of max(ceil((L-j)/(pp-1)) layers, j layers + head),
    j the floor or ceiling of the balance point, and never below ceil(L/pp) layers."""
    pp = np.asarray(pp, float)
    tl = layers / L  # one layer
    x = np.clip((L * tl - (pp - 1.0) * head) / np.maximum(pp * tl, 1e-30), 0.0, L)
    others = np.maximum(pp - 1.0, 1.0)

    def at(j):
        return np.maximum(np.ceil((L - j) / others) * tl, j * tl + head)

    staged = np.maximum(np.minimum(at(np.floor(x)), at(np.ceil(x))), np.ceil(L / pp) * tl)
    return np.where(pp > 1, staged, layers + head)


def evaluate(ctx: Context, recompute: int, zero: int, overlap: bool) -> dict[str, np.ndarray]:
    """Step time, memory, throughput, run time of every base point under one variant."""
    model, job, st, sysm, eff, mb = ctx.model, ctx.job, ctx.stack, ctx.system, ctx.eff, ctx.mb
    a = {k: v.astype(float) for k, v in ctx.base.a.items()}
    tp, pp, cp, ep, dp, mbs, sched = (a[k] for k in ("tp", "pp", "cp", "ep", "dp", "mbs", "schedule"))
    L, S = model.num_layers, float(job.seq_len)
    # Micro-batch times of the whole shard, then of the slowest stage.
    rc_comp = np.where(recompute == 2, mb.fwd_compute, np.where(recompute == 1, mb.cheap_fwd, 0.0))
    rc_comm = mb.fwd_comm if recompute == 2 else 0.0
    f_comp, f_comm = mb.fwd_compute, mb.fwd_comm
    b_comp, b_comm = mb.bwd_compute + rc_comp, mb.bwd_comm + rc_comm
    if overlap:
        # While a collective runs it holds `comm_sm_frac` of the SMs, so the compute beside it runs
        # at 1 - f; after it, at full speed: T = max(comm, compute + f·comm). The expert all-to-all
        # hides only where the stack overlaps it or the schedule is DualPipe
        # (`TrainingStack.ep_comm_overlap`); otherwise it stays on the critical path.
        f = st.comm_sm_frac
        ep_hidden = st.ep_comm_overlap | (sched == SCHEDULES.index("dualpipe"))
        e_f = np.where(ep_hidden, 0.0, mb.ep_fwd)
        e_b = np.where(ep_hidden, 0.0, mb.ep_bwd + (mb.ep_fwd if recompute == 2 else 0.0))
        f_lay = np.maximum(f_comm - e_f, f_comp + f * (f_comm - e_f)) + e_f
        b_lay = np.maximum(b_comm - e_b, b_comp + f * (b_comm - e_b)) + e_b
    else:
        # Without TE's overlap Megatron still runs two of a column-parallel layer's three backward
        # collectives asynchronously beside its gradient GEMMs (`layer.BACKWARD_ASYNC_SHARE`), which
        # then run on the SMs the collectives leave.
        f_lay = f_comp + f_comm
        b_lay = b_comp + b_comm - (1.0 - st.comm_sm_frac) * mb.tp_bwd_hidden
    # Each forward and backward of a micro-batch on a stage is one engine step for the host: its
    # scheduling overhead not hidden by the GPU (`Efficiency.step_overhead_ms`) is paid every time.
    host = eff.step_overhead_ms * 1e-3
    tf = _stage(f_lay, mb.head_fwd, pp, L) + host
    tb = _stage(b_lay, mb.head_bwd, pp, L) + host
    seqs = job.global_batch_tokens / S
    m = np.ceil(seqs / (dp * mbs))
    v = job.virtual_stages
    # The weight-gradient GEMMs' share of the slowest stage's backward: the W the zero-bubble
    # schedules move into the bubble (the rest, B, stays on the critical path).
    w_share = (mb.wgrad + mb.head_wgrad) / np.maximum(b_lay + mb.head_bwd, 1e-30)
    tw = (tb - host) * np.clip(w_share, 0.0, 1.0)
    bubble = schedule.bubble_seconds(sched, pp, tf, tb, v, tw, m)
    # Pipeline sends: one micro-batch's activations (sequence-parallel shard) each way per stage.
    mb_tokens = mbs * S
    send = eff.scaleout_latency_us * 1e-6 + mb_tokens / (tp * cp) * model.hidden_size * 2.0 / (
        sysm.scaleout_gb_s * 1e9 * eff.comm_bw_frac)
    sends = schedule.sends_per_microbatch(sched, v)
    p2p = np.where(pp > 1, 2.0 * send * np.where(overlap, pp - 1.0, m * sends + pp - 1.0), 0.0)
    # Data-parallel state: dense parameters over dp·cp ranks, experts over their expert-DP group.
    copies = schedule.weight_copies(sched)
    p_dense, p_exp = memory.params_per_chip(model, tp, pp, ep, copies)
    g_dense = dp * cp
    g_exp = np.where(ep > 1, tp * cp * dp / ep, dp * cp)
    local_dense = np.minimum(members_per_domain(tp * cp, sysm), g_dense)
    local_exp = np.minimum(members_per_domain(np.where(ep > 1, ep, tp * cp), sysm), g_exp)
    if job.lora:  # frozen base weights: no gradients to reduce, no optimizer states
        st = st.model_copy(update={"grad_bytes": 0.0, "optimizer_bytes": 0.0})
    passes = 2.0 if zero == 0 else 1.0
    rs = (ring_seconds(st.grad_bytes * p_dense, g_dense, local_dense, sysm, eff, passes)
          + ring_seconds(st.grad_bytes * p_exp, g_exp, local_exp, sysm, eff, passes))
    ag_w = (ring_seconds(st.weight_bytes * p_dense, g_dense, local_dense, sysm, eff)
            + ring_seconds(st.weight_bytes * p_exp, g_exp, local_exp, sysm, eff))
    ag = ag_w if zero >= 1 and not job.lora else 0.0  # LoRA's base weights do not change
    if overlap:
        dp_sync = np.maximum(rs - tb, 0.0) + np.maximum(ag - tf, 0.0)
    else:
        dp_sync = rs + ag
    if zero == 3:  # weights gathered for every micro-batch's forward and backward
        dp_sync = dp_sync + m * (np.maximum(ag_w - tf, 0.0) + np.maximum(ag_w - tb, 0.0) if overlap else 2.0 * ag_w)
    shard = 1.0 if zero == 0 else 0.0
    updated = p_dense / np.where(shard > 0, 1.0, g_dense) + p_exp / np.where(shard > 0, 1.0, g_exp)
    optimizer = (0.0 if job.lora else ADAM_BYTES_PER_PARAM) * updated / (ctx.chip.hbm_tb_s * 1e12 * eff.hbm_frac)
    step = m * (tf + tb) + bubble + p2p + dp_sync + optimizer
    # Memory of the busiest chip: the first stage holds the most micro-batches, the last the logits.
    state = (memory.state_bytes(p_dense, g_dense, zero, st.weight_bytes, st.grad_bytes, st.optimizer_bytes)
             + memory.state_bytes(p_exp, g_exp, zero, st.weight_bytes, st.grad_bytes, st.optimizer_bytes))
    inflight = schedule.inflight_microbatches(sched, pp, v)
    act_first = memory.activation_bytes(model, mb_tokens, tp, cp, pp, recompute, inflight)
    act_last = memory.activation_bytes(model, mb_tokens, tp, cp, pp, recompute, 1.0)
    logits = memory.logits_bytes(model, mb_tokens, tp, cp)
    act = np.where(pp > 1, np.maximum(act_first, act_last + logits), act_first + logits)
    # ZeRO-3 gathers each layer's weights before it runs, the next one prefetched: two layers of
    # bf16 weights (the stage's full share over its layers) are resident at once.
    gathered = np.where(zero == 3, 2.0 * st.weight_bytes * (p_dense + p_exp) / np.ceil(L / pp), 0.0)
    mem = state + act + gathered
    usable = memory.usable_bytes(ctx.chip.hbm_gb)
    chips_used = tp * pp * cp * dp
    tokens_step = m * mbs * dp * S
    tok_s = tokens_step / step
    good = goodput(chips_used, model, st)
    run_s = job.tokens / tok_s / good
    peak = ctx.chip.peak_tflops(job.precision) or ctx.chip.bf16_tflops
    mfu = ctx.flops_per_token * tok_s / (chips_used * peak * 1e12)
    return dict(step_time_s=step, tokens_per_step=tokens_step, micro_batches=m, tokens_s=tok_s, goodput=good,
                run_s=run_s, chips_used=chips_used, mfu=mfu,
                mfu_bf16=ctx.flops_per_token * tok_s / (chips_used * ctx.chip.bf16_tflops * 1e12),
                memory_bytes=mem, state_bytes=state, activation_bytes=act, fits=mem <= usable,
                tf_s=tf, tb_s=tb, bubble_s=m * 0 + bubble, p2p_s=p2p, dp_sync_s=dp_sync, optimizer_s=optimizer,
                compute_s=m * _stage(np.maximum(f_comp + b_comp - rc_comp, 0.0), mb.head_fwd + mb.head_bwd, pp, L),
                recompute_s=m * _stage(rc_comp + rc_comm + 0.0 * tp, 0.0 * tp, pp, L),
                comm_s=m * _stage(f_comm + b_comm - rc_comm, 0.0 * tp, pp, L))


@dataclass
class Best:
    """The chosen point: its base index, variant and arrays (scalars)."""

    index: int
    recompute: int
    zero: int
    overlap: bool
    values: dict
    evaluations: int


def search(ctx: Context) -> Best:
    """The fitting point with the shortest run (ties: fewer chips). Raises `NoMapping` with the
    smallest memory need when none fits."""
    best = None
    best_key = (math.inf, math.inf)
    least_mem = math.inf
    evaluations = 0
    for rc, z, ov in variants(ctx.job):
        if not len(ctx.base):
            break
        r = evaluate(ctx, rc, z, ov)
        evaluations += len(ctx.base)
        least_mem = min(least_mem, float(np.min(r["memory_bytes"])))
        run = np.where(r["fits"], r["run_s"], np.inf)
        if not np.isfinite(run.min()):
            continue
        near = np.flatnonzero(run <= run.min() * (1 + 1e-9))
        i = int(near[np.argmin(r["chips_used"][near])])
        key = (float(run[i]), float(r["chips_used"][i]))
        if np.isfinite(key[0]) and key < best_key:
            best_key = key
            best = Best(i, rc, z, ov, {k: np.asarray(v)[i].item() if np.ndim(v) else float(v) for k, v in r.items()},
                        0)
    if best is None:
        usable = memory.usable_bytes(ctx.chip.hbm_gb)
        if not math.isfinite(least_mem):
            raise NoMapping("no mapping: the global batch, chips and fixed degrees leave no valid point")
        raise NoMapping(f"fits no mapping: needs {least_mem / 2**30:.1f} GiB per chip, has {usable / 2**30:.1f} GiB "
                        f"usable on {ctx.chip.id}")
    best.evaluations = evaluations
    return best


def top_points(ctx: Context, k: int = 10) -> list[dict]:
    """The `k` fitting points with the shortest runs over every variant (ties: fewer chips), best
    first: each the point's degrees, schedule, variant and its `evaluate` values (scalars)."""
    cands = []
    for rc, z, ov in variants(ctx.job):
        if not len(ctx.base):
            break
        r = evaluate(ctx, rc, z, ov)
        run = np.where(r["fits"], r["run_s"], np.inf)
        for i in np.argsort(run, kind="stable")[:k]:
            if not np.isfinite(run[i]):
                break
            cands.append((float(run[i]), float(r["chips_used"][i]), int(i), rc, z, ov,
                          {key: np.asarray(v)[i].item() if np.ndim(v) else float(v) for key, v in r.items()}))
    cands.sort(key=lambda c: c[:2])
    out = []
    for _run, _chips, i, rc, z, ov, values in cands[:k]:
        a = ctx.base.a
        out.append({"tp": int(a["tp"][i]), "pp": int(a["pp"][i]), "cp": int(a["cp"][i]), "ep": int(a["ep"][i]),
                    "dp": int(a["dp"][i]), "micro_batch": int(a["mbs"][i]),
                    "schedule": SCHEDULES[int(a["schedule"][i])], "zero": z, "recompute": RECOMPUTE[rc],
                    "overlap": bool(ov), **values})
    return out
