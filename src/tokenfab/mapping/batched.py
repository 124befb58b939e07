"""Many chips at once: the mapping search vectorized over a design axis as well as the mapping
axis.

`mapping.search.evaluate` prices every mapping point of one chip; here the chip figures are
arrays over N chips (`ChipBatch`: peaks per precision, HBM bandwidth and capacity, links, the
tiled description with fields shaped (N, 1)) and every per-point figure is (N, P). The step
graph, the grid, the memory arithmetic and the steady-state cycle are the one-chip path's code
(`mapping.search`'s `build_grid`, `decode_step`, `prefill_chunk`, `_residency`, `coupled_ranks`;
its `Prepared.timer` hook times the steps); only the kernels differ:

- `kernels="screen"` (the design search's screening fidelity): `perf.screen`'s closed-form tiles,
  on a reduced grid by default (`SCREEN_SPACE`: one pipeline stage, tp ≤ 8, six batch sizes);
- `kernels="tiled"`: the tiled model itself (`perf.tiled`), on the one-chip path's full grid —
  the same numbers as `api.estimate(..., mode="aggregated", fidelity="tiled")` per chip
  (tests/test_design_batch.py), for checking this path, not for speed.

Serving modes (`best`), as `api.estimate`'s `auto`: aggregated (one pool prefills and decodes),
prefill/decode disaggregation on the same chip (`mapping.modes`' pools, balanced; context
parallelism and pipeline stages left out) and, for MoE models, attention-FFN disaggregation of
the decode pool (`af_pool`: `mapping.af` exactly, at roofline fidelity as there). On the
reduced grid a screened deployment can only serve less per chip than the full path's for the
same kernels.

Two exact shortcuts keep the arrays small: data-parallel replicas that exchange nothing are
copies of the dp = 1 point (same per-chip figures, ties go to fewer chips), and points no chip
has the memory for are not timed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from tokenfab.graph.requests import request_shape
from tokenfab.mapping import memory, pipeline
from tokenfab.mapping import search as ms
from tokenfab.perf import screen, tiled
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.evaluate import Hardware, unit_peaks
from tokenfab.specs import ModelSpec, Traffic, bytes_per_element

PRECISIONS = ("bf16", "fp16", "tf32", "fp32", "fp8", "int8", "fp4", "int4")
SCREEN_BATCHES = (1, 16, 64, 128, 256, 512)
SCREEN_SPACE = ms.SearchSpace(pp=(1,), tp=(1, 2, 4, 8), batch=SCREEN_BATCHES)
"""The screening grid: one pipeline stage, tensor parallelism up to 8, six batch sizes (the
one-chip path: pp up to 8, tp up to 256, twenty batch sizes)."""
PREFILL_MAX_CHIPS = 64
"""Largest prefill instance (`deployment.PREFILL_MAX_CHIPS`: DeepSeek's prefill unit, 32 H800s, EP32)."""
_FALLBACK = {"fp4": ("fp4", "bf16"), "int4": ("bf16",), "fp8": ("fp8", "bf16"), "int8": ("int8", "bf16")}


@dataclass(frozen=True)
class ChipBatch:
    """N chips as arrays (one element per chip); all share one scale-up domain size."""

    ids: tuple[str, ...]
    peaks: dict[str, np.ndarray]
    """Dense peak per precision, TFLOP/s (TOPS for integers), shape (N,); 0 where the chip has no such path."""
    hbm_tb_s: np.ndarray
    hbm_gb: np.ndarray
    cores: np.ndarray
    scaleup_gb_s: np.ndarray
    scaleout_gb_s: np.ndarray
    scaleup_domain: int
    scaleup_full_mesh: np.ndarray
    """Whether each chip's scale-up domain is a full mesh (`ChipSpec.is_full_mesh`), shape (N,)."""
    tiled: tiled.TiledHW
    """The chips' tiled description, every numeric field shaped (N, 1)."""
    vector_tflops: np.ndarray
    """FP32 vector peak, TFLOP/s (0: not timed)."""
    sfu_tops: np.ndarray
    """Special-function throughput, tera-ops/s (0: not timed)."""

    def __len__(self) -> int:
        return len(self.ids)

    def peak(self, precision: str) -> np.ndarray:
        """Dense peak of `precision`, shape (N,) (0 where absent)."""
        return self.peaks.get(precision, np.zeros(len(self)))

    @staticmethod
    def from_specs(chips: list) -> "ChipBatch":
        """A batch of `ChipSpec`s (catalog chips or designs' `to_chip_spec`), each with its own tiled
        description (`tiled.tiled_hw_for`). ValueError when their scale-up domains differ."""
        domains = {int(c.scaleup_domain) for c in chips}
        if len(domains) != 1:
            raise ValueError(f"a chip batch shares one scale-up domain size; got {sorted(domains)} (group them)")
        f = lambda get: np.array([float(get(c) or 0.0) for c in chips])  # noqa: E731
        units = [unit_peaks(c) for c in chips]
        return ChipBatch(
            ids=tuple(c.id for c in chips), peaks={p: f(lambda c, p=p: c.peak_tflops(p)) for p in PRECISIONS},
            hbm_tb_s=f(lambda c: c.hbm_tb_s), hbm_gb=f(lambda c: c.hbm_gb), cores=f(lambda c: c.cores or 100),
            scaleup_gb_s=f(lambda c: c.scaleup_gb_s), scaleout_gb_s=f(lambda c: c.scaleout_gb_s),
            scaleup_domain=domains.pop(), scaleup_full_mesh=np.array([c.is_full_mesh for c in chips], dtype=bool),
            tiled=stack_hw([tiled.tiled_hw_for(c) for c in chips]),
            vector_tflops=np.array([u["vector_tflops"] or 0.0 for u in units], dtype=float),
            sfu_tops=np.array([u["sfu_tops"] or 0.0 for u in units], dtype=float))


def stack_hw(hws: list[tiled.TiledHW]) -> tiled.TiledHW:
    """One `TiledHW` whose fields are (N, 1) columns of the given chips' (sustained fractions: 1
    where a chip names none)."""
    col = lambda name: np.array([float(getattr(h, name)) for h in hws]).reshape(-1, 1)  # noqa: E731
    names = [f.name for f in dataclasses.fields(tiled.TiledHW) if f.name not in ("sustained_frac", "source")]
    keys = sorted({k for h in hws for k in h.sustained_frac})
    sustained = {k: np.array([float(h.sustained_frac.get(k, 1.0)) for h in hws]).reshape(-1, 1) for k in keys}
    return tiled.TiledHW(**{n: col(n) for n in names}, sustained_frac=sustained,
                         source=f"{len(hws)} chips stacked (mapping.batched)")


def compute_peak(chips: ChipBatch, weight_precision: str) -> tuple[np.ndarray, np.ndarray]:
    """(peak the linear layers run at, index into the precision's fallbacks) per chip: the
    one-chip `search.compute_precision` (fp8 weights on a chip without fp8 math compute bf16)."""
    order = _FALLBACK.get(weight_precision, (weight_precision, "bf16"))
    peak = np.zeros(len(chips))
    which = np.full(len(chips), len(order) - 1)
    for i in reversed(range(len(order))):
        p = chips.peak(order[i])
        peak = np.where(p > 0, p, peak)
        which = np.where(p > 0, i, which)
    return np.where(peak > 0, peak, chips.peak("bf16")), which


def _fraction(chips: ChipBatch, eff: Efficiency, weight_precision: str) -> np.ndarray:
    """Achievable fraction of the compute peak per chip (`tiled.achievable_frac` at the chip's
    compute precision for these weights)."""
    order = _FALLBACK.get(weight_precision, (weight_precision, "bf16"))
    _, which = compute_peak(chips, weight_precision)
    fr = np.zeros(len(chips))
    for i, p in enumerate(order):
        s = np.asarray(chips.tiled.sustained_frac.get(p, np.ones((len(chips), 1))), dtype=float).reshape(-1)
        fr = np.where(which == i, eff.gemm_frac(p) * s, fr)
    return fr


def _hardware(model: ModelSpec, chips: ChipBatch, system, eff: Efficiency, precisions, kv_names, prec_idx,
              phase: str, attention_precision: str | None, roofline: bool = False) -> Hardware:
    """`search.chip_hardware` at tiled fidelity (`roofline`: at roofline fidelity, the attention
    peak derated by the power cap) with (N, P) peaks and fractions."""
    # A block-scaled FP8 release's FP8 points on the block kernels (a chip without FP8 math computes
    # them in bf16, which the block kernels leave as they are).
    eff, eff_of = ms.block_scaled_eff(model, eff, {p: p for p in precisions})
    peak = np.stack([compute_peak(chips, p)[0] for p in precisions], axis=1)[:, prec_idx]
    frac = np.stack([_fraction(chips, eff_of(p), p) for p in precisions], axis=1)[:, prec_idx]
    has_fp8 = chips.peak("fp8") > 0
    attn_cols = []
    for kv in kv_names:
        fake = SimpleNamespace(fp8_tflops=1.0)
        p8 = ms.attention_precision_for(model, fake, kv, phase, attention_precision)
        p_no = ms.attention_precision_for(model, SimpleNamespace(fp8_tflops=None), kv, phase, attention_precision)
        a8, ano = chips.peak(p8), chips.peak(p_no)
        a8 = np.where(a8 > 0, a8, chips.peak("bf16"))
        ano = np.where(ano > 0, ano, chips.peak("bf16"))
        if roofline:
            held = lambda p: np.asarray(chips.tiled.sustained_frac.get(p, 1.0), dtype=float).reshape(-1)  # noqa: E731
            a8, ano = a8 * held(p8), ano * held(p_no)
        attn_cols.append(np.where(has_fp8, a8, ano))
    attn = np.stack(attn_cols, axis=1)[:, prec_idx]
    col = lambda x: np.asarray(x, dtype=float).reshape(-1, 1)  # noqa: E731
    bf16 = chips.peak("bf16")
    s16 = np.asarray(chips.tiled.sustained_frac.get("bf16", np.ones((len(chips), 1))), dtype=float)
    return Hardware(gemm_tflops=peak, attention_tflops=attn, hbm_tb_s=col(chips.hbm_tb_s), cores=col(chips.cores),
                    eff=eff, system=system, gemm_frac=frac, tiled=None if roofline else chips.tiled, bf16_tflops=col(bf16),
                    bf16_frac=eff.gemm_frac("bf16") * s16, vector_tflops=col(chips.vector_tflops),
                    sfu_tops=col(chips.sfu_tops))


def batch_system(chips: ChipBatch) -> SimpleNamespace:
    """The chips' standard systems (`SystemSpec.for_chip`) with per-chip link bandwidths (N, 1)."""
    d = int(chips.scaleup_domain)
    return SimpleNamespace(chips_per_node=min(8, d), scaleup_domain=d,
                           scaleup_gb_s=chips.scaleup_gb_s.reshape(-1, 1),
                           scaleout_gb_s=chips.scaleout_gb_s.reshape(-1, 1),
                           scaleup_full_mesh=chips.scaleup_full_mesh.reshape(-1, 1))


def evaluate(model: ModelSpec, chips: ChipBatch, eff: Efficiency, traffic: Traffic,
             space: ms.SearchSpace | None = None, max_chip_count: int = 64, kernels: str = "screen") -> dict[str, Any]:
    """Every mapping point on every chip: arrays shaped (N, P) as `search.evaluate`'s (fits,
    ttft_ms, tpot_ms, output/input/total tok/s per chip, prefill_time_share, ...) plus the grid's
    (P,) columns. `space` None: `SCREEN_SPACE` for the screening kernels, the one-chip path's
    defaults for `kernels="tiled"`. The traffic is taken as given (MTP already applied)."""
    if kernels not in ("screen", "tiled"):
        raise ValueError(f"kernels {kernels!r} is not one of screen, tiled")
    space = space or (SCREEN_SPACE if kernels == "screen" else ms.SearchSpace())
    has = lambda p: bool(np.any(chips.peak(p) > 0))  # noqa: E731
    # The grid depends on the chip only through its domain, its smallest memory and its 8-bit paths.
    rep = SimpleNamespace(scaleup_domain=chips.scaleup_domain, hbm_gb=float(np.min(chips.hbm_gb)),
                          fp8_tflops=1.0 if has("fp8") else None, int8_tops=1.0 if has("int8") else None)
    if space.precisions is None:
        space = dataclasses.replace(space, precisions=ms.default_precisions(rep))
    g, precisions = ms.build_grid(model, rep, space, max_chip_count)
    # Data-parallel replicas that exchange nothing (no experts spread over them) are copies of the
    # dp = 1 point: the same figures per chip, and ties go to fewer chips. Not timed.
    lone = (g["dp"] == 1) | ((g["ep"] > 1) & bool(model.is_moe))
    g = {key: v[lone] for key, v in g.items()}
    kv_names = tuple(ms.kv_precision_for(rep, p, space.kv_precision) for p in precisions)
    # A chip without the 8-bit path a default precision set offers does not run those points
    # (the one-chip path would not offer them); a stated precision runs as there (fallbacks).
    native = np.ones((len(chips), len(precisions)), dtype=bool)
    if not (space.precisions and len(space.precisions) == 1):
        for j, p in enumerate(precisions):
            if p != "bf16":
                native[:, j] = chips.peak(p) > 0
    w_bytes = np.array([bytes_per_element(p) for p in precisions])[g["prec"]]
    kv_bytes = np.array([bytes_per_element(p) for p in kv_names])[g["prec"]]
    rq = request_shape(model, traffic)
    budget = space.prefill_chunk_tokens or memory.PREFILL_CHUNK_TOKENS
    new_tokens = max(float(rq.input_len) * (1 - traffic.prefix_cache_hit), 1.0)
    k = np.clip(np.floor(budget / new_tokens), 1.0, g["batch"].astype(float))  # prompts per prefill forward
    free, free_d, free_p = _free_bytes(model, chips, g, w_bytes, kv_bytes, float(rq.input_len),
                                       float(traffic.output_len), k)
    # Points no chip has the memory for (aggregated, as a decode pool or as a prefill pool) are not timed.
    nat = native[:, g["prec"]]
    runs, runs_d, runs_p = nat & (free >= 0), nat & (free_d >= 0), nat & (free_p >= 0)
    keep = np.flatnonzero((runs | runs_d | runs_p).any(axis=0))
    g = {key: v[keep] for key, v in g.items()}
    w_bytes, kv_bytes, free = w_bytes[keep], kv_bytes[keep], free[:, keep]
    runs, runs_d, runs_p = runs[:, keep], runs_d[:, keep], runs_p[:, keep]
    system = batch_system(chips)
    hw = _hardware(model, chips, system, eff, precisions, kv_names, g["prec"], "prefill", space.attention_precision)
    dec = _hardware(model, chips, system, eff, precisions, kv_names, g["prec"], "decode", space.attention_precision)
    resident = ms._residency(model, chips.tiled, g, w_bytes, kv_bytes, rq.input_len + traffic.output_len,
                             rq.draft_tokens)
    exact = kernels == "tiled"
    timer = ((lambda ops, h: screen.time_ops(ops, h, exact=True)) if exact  # noqa: E731
             else (lambda ops, h: _merged(screen.time_ops(ops, h))))
    tp, pp, dp, ep, batch = (g[k].astype(float) for k in ("tp", "pp", "dp", "ep", "batch"))
    p = ms.Prepared(model=model, chip=None, system=system, eff=eff, grid=g, precisions=tuple(precisions),
                    kv_names=kv_names, hw=dataclasses.replace(hw, resident=resident), w_bytes=w_bytes,
                    kv_bytes=kv_bytes, a_bytes=2.0, tp=tp, pp=pp, dp=dp, ep=ep, batch=batch,
                    isl=float(rq.input_len), osl=float(traffic.output_len), draft_tokens=float(rq.draft_tokens),
                    tokens_per_step=rq.tokens_per_step, vision_items=rq.vision_items,
                    vision_patches=rq.vision_patches, overlap=space.overlap,
                    decode_hw=dataclasses.replace(dec, resident=resident), timer=timer)
    if len(keep) == 0:
        return {**g, "fits": runs, "free_gb": free / 1e9, "precisions": tuple(precisions), "kv_precisions": kv_names}
    out = _steady_state(p, traffic, space, runs, free)
    out.update(fits_decode=runs_d, fits_prefill=runs_p & (g["num_chips"] <= PREFILL_MAX_CHIPS))
    out["_af"] = (system, precisions, kv_names, space, timer)  # what `af_pool` reuses
    return out


def af_pool(model: ModelSpec, chips: ChipBatch, eff: Efficiency, traffic: Traffic, system, precisions, kv_names,
            space: ms.SearchSpace, timer=None) -> dict[str, np.ndarray]:
    """`mapping.af.af_decode` with the same chip on both sides, for every chip: attention chips ×
    expert chips × batch per attention chip (`space.batch`) × precision, arrays (N, P): fits,
    output_tok_s_per_chip (of both sides), tpot_ms, decode_step_ms. Roofline kernels, as
    `mapping.af` (whatever the fidelity asked for; `timer` is not used); only each side's ops are
    timed (the attention side's, then the experts')."""
    from tokenfab.mapping import af

    na, ne, b, pr = np.meshgrid(np.array(af.ATTENTION_CHIPS, float), np.array(af.EXPERT_CHIPS, float),
                                np.array(space.batch or ms.DEFAULT_BATCHES, float), np.arange(len(precisions)),
                                indexing="ij")
    na, ne, b, pr = (x.ravel() for x in (na, ne, b, pr))
    w_bytes = np.array([bytes_per_element(x) for x in precisions])[pr]
    kv_bytes = np.array([bytes_per_element(x) for x in kv_names])[pr]
    rq = request_shape(model, traffic)
    isl, osl, d = float(rq.input_len), float(traffic.output_len), float(rq.draft_tokens)
    ctx, micro, one = isl + osl / 2.0, b / af.MICRO_BATCHES, np.ones_like(b)
    # `mapping.af` times both sides at roofline fidelity (`chip_hardware`'s default), as here.
    hw = _hardware(model, chips, system, eff, precisions, kv_names, pr.astype(int), "decode", space.attention_precision,
                   roofline=True)
    from tokenfab.graph import StepShape, step_ops

    a_shape = StepShape("decode", tokens=micro * (1 + d), seqs=micro, ctx=ctx * one, kv_len=ctx * one, tp=one,
                        dp=na, ep=one, w_bytes=w_bytes, a_bytes=2.0, kv_bytes=kv_bytes, draft_tokens=d)
    f_shape = dataclasses.replace(a_shape, tokens=micro * (1 + d) * na / ne, seqs=micro * na / ne, dp=ne, ep=ne)
    name = lambda op: op.name.removeprefix("draft_")  # noqa: E731
    shape = (len(chips), len(b))
    side = lambda ops: sum((np.broadcast_to(np.asarray(t.seconds, float), shape)  # noqa: E731
                            for t in screen.time_ops(ops, hw, exact=True)), np.zeros(shape))
    t_attn = side([op for op in step_ops(model, a_shape) if name(op) not in af.EXPERT_OPS | af.COMM_OPS])
    t_ffn = side([op for op in step_ops(model, f_shape) if name(op) in af.EXPERT_OPS])
    k = model.experts_per_token
    bw = chips.scaleout_gb_s.reshape(-1, 1) * 1e9 * eff.comm_bw_frac
    per_attn = micro * (1 + d) * k * model.hidden_size * (w_bytes.clip(max=2.0) + 2.0)
    per_ffn = per_attn * na / ne
    t_comm = model.num_moe_layers * (2 * eff.scaleout_latency_us * 1e-6 + np.maximum(per_attn, per_ffn) / bw)
    step = af.MICRO_BATCHES * np.maximum(np.maximum(t_attn, t_ffn), t_comm) + eff.step_overhead_ms * 1e-3
    tps = rq.tokens_per_step
    n_dense = model.num_layers - model.num_moe_layers
    attn_w = (model.num_layers * model.attention_params() + n_dense * model.mlp_params(model.intermediate_size)) \
        * w_bytes + model.embedding_params() * 2.0
    kv = b * memory.kv_bytes_per_sequence(model, 1.0, 1.0, isl + osl, kv_bytes)
    usable = np.array([memory.usable_bytes(float(x)) for x in chips.hbm_gb]).reshape(-1, 1)
    expert_w = model.num_moe_layers * (np.ceil(model.num_experts / ne) * model.mlp_params(model.moe_intermediate_size)
                                      + model.num_shared_experts * model.mlp_params(model.shared_intermediate_size)) \
        * w_bytes
    fits = ((usable - attn_w - kv - b * model.vocab_size * 4.0 >= 0) & (usable - expert_w >= 0)
            & (ne <= model.num_experts))
    return {"fits": fits, "output_tok_s_per_chip": na * b * tps / step / (na + ne), "tpot_ms": step / tps * 1e3,
            "decode_step_ms": step * 1e3, "num_chips": (na + ne).astype(int), "batch": b.astype(int),
            "prec": pr.astype(int), "dp": na.astype(int), "ep": ne.astype(int)}


_NAMED = frozenset(pipeline.FIRST_STAGE_OPS) | frozenset(pipeline.LAST_STAGE_OPS) | ms.EXPERT_OPS
"""Ops the step arithmetic reads by name (pipeline stages, coupled ranks); the rest are summed."""


def _merged(times: list) -> list:
    """A step's op times with the ops nothing reads by name summed into one entry (one add per op
    instead of a stacked (ops × chips × points) sum): the same step time, cheaper."""
    from tokenfab.perf.evaluate import OpTime

    keep = [t for t in times if t.name in _NAMED]
    rest = [np.asarray(t.seconds, float) for t in times if t.name not in _NAMED]
    if len(rest) < 2:
        return times
    total = rest[0].copy() if rest[0].ndim == 2 else np.broadcast_to(rest[0], np.broadcast_shapes(*[r.shape for r in rest])).copy()
    for r in rest[1:]:
        if r.shape == total.shape:
            total += r
        else:
            total = total + r
    return keep + [OpTime("other_ops", total, np.zeros(total.shape, dtype=int))]


def _free_bytes(model: ModelSpec, chips: ChipBatch, g: dict, w_bytes, kv_bytes, isl: float, osl: float, k):
    """Memory left per chip and point, bytes (N, P), of the point as an aggregated pool
    (`search.evaluate`), a decode pool (`modes.decode_pool`: logits, no prefill chunk) and a
    prefill pool of `k` prompts per forward (`modes.prefill_pool`), with each chip's capacity."""
    tp, pp, dp, ep, batch = (g[key].astype(float) for key in ("tp", "pp", "dp", "ep", "batch"))
    weights = memory.weight_bytes_per_chip(model, tp, pp, ep, dp, w_bytes)
    kv = batch * memory.kv_bytes_per_sequence(model, tp, pp, isl + osl, kv_bytes)
    kv_p = k * memory.kv_bytes_per_sequence(model, tp, pp, isl, kv_bytes)
    logits = batch * model.vocab_size / tp * 4.0
    shape = (len(chips), len(tp))
    out, out_d, out_p = np.empty(shape), np.empty(shape), np.empty(shape)
    caps, inv = np.unique(chips.hbm_gb, return_inverse=True)
    for j, cap in enumerate(caps):  # activations depend on the capacity only through a chunk cap
        usable = memory.usable_bytes(float(cap))
        rows = inv.reshape(-1) == j
        out[rows] = usable - weights - kv - memory.activation_bytes(model, tp, batch, isl, 2.0, usable=usable)
        out_d[rows] = usable - weights - kv - logits
        out_p[rows] = usable - weights - kv_p - memory.activation_bytes(model, tp, k, isl, 2.0, usable=usable)
    return out, out_d, out_p


def _steady_state(p: ms.Prepared, traffic: Traffic, space: ms.SearchSpace, runs, free) -> dict:
    """`search.evaluate`'s continuous-batching cycle on the chips (memory fit given), plus each
    point's figures as a disaggregated pool (`pool`: `_pools`)."""
    g, dp, batch, isl, osl = p.grid, p.dp, p.batch, p.isl, p.osl
    c = ms.aggregated_cycle(p, traffic, space, lone_ratio=_lone_prefill_ratio)
    t_dec, t_chunk, t_pre_round, cycle = c.t_dec, c.t_chunk, c.t_pre_round, c.cycle
    pool = _pools(p, c.new, c.k, t_dec, c.t_chunk_all, c.t_chunk_pipe_all)
    n_chips = g["num_chips"].astype(float)
    out = {key: np.asarray(v) for key, v in g.items()}
    out.update(fits=runs, free_gb=free / 1e9, ttft_ms=(t_chunk + t_dec) * 1e3,
               tpot_ms=cycle / osl * 1e3, output_tok_s_per_chip=dp * batch * osl / cycle / n_chips,
               input_tok_s_per_chip=dp * batch * isl / cycle / n_chips, prefill_time_share=t_pre_round / cycle)
    out["total_tok_s_per_chip"] = out["output_tok_s_per_chip"] + out["input_tok_s_per_chip"]
    out["precisions"] = p.precisions
    out["kv_precisions"] = p.kv_names
    out["pool"] = pool
    return out


def _lone_prefill_ratio(p: ms.Prepared, new: float, k, pre_times: list) -> np.ndarray:
    """`search.lone_prefill_ratio`, timing only what it reads: the expert ops of the points whose
    ranks are coupled (the ratio is 1 elsewhere)."""
    from tokenfab.graph import step_ops

    g = ms.coupled_ranks(p.model, p.ep, p.dp)
    cols = np.flatnonzero(g > 1.0)
    ones = np.ones((p.hw.hbm_tb_s.shape[0], len(g)))
    if len(cols) == 0:
        return ones
    sub = _subset(p, cols)
    lone = ms.prefill_shape(sub, new, np.broadcast_to(k, g.shape)[cols], g[cols])
    lone_times = sub.timer([op for op in step_ops(sub.model, lone) if op.name in ms.EXPERT_OPS], sub.hw)
    ones[:, cols] = ms.lone_ratio(pre_times, lone_times, cols)
    return ones


def _subset(p: ms.Prepared, cols: np.ndarray) -> ms.Prepared:
    """The prepared points `cols` only (point arrays (P,) and per-design arrays (N, P) cut)."""
    n_pts = len(p.tp)

    def cut(v):
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[-1] == n_pts and n_pts > 1:
            return v[..., cols]
        return v

    def cut_hw(h: Hardware) -> Hardware:
        res = h.resident
        if res is not None:
            res = dataclasses.replace(res, **{f.name: cut(np.asarray(getattr(res, f.name)))
                                              for f in dataclasses.fields(res)})
        return dataclasses.replace(h, gemm_tflops=cut(np.asarray(h.gemm_tflops)), gemm_frac=cut(np.asarray(h.gemm_frac)),
                                   attention_tflops=cut(np.asarray(h.attention_tflops)), resident=res)

    return dataclasses.replace(p, grid={key: v[cols] for key, v in p.grid.items()}, w_bytes=cut(p.w_bytes),
                               kv_bytes=cut(p.kv_bytes), tp=p.tp[cols], pp=p.pp[cols], dp=p.dp[cols], ep=p.ep[cols],
                               batch=p.batch[cols], hw=cut_hw(p.hw), decode_hw=cut_hw(p.decode_hw))


def _pools(p: ms.Prepared, new: float, k, t_dec, t_chunk, t_pipe) -> dict:
    """Each point as a decode pool (`modes.decode_pool`: decode steps only) and as a prefill pool
    of the aggregated point's prompts per forward `k` (`modes._prefill_points` at cp = 1: the
    prompt's KV sent over the chip's NIC, cache hits read from the SSD tier), from the step times
    the aggregated path takes (before its coupled-rank adjustment, which a one-phase pool has not)."""
    from tokenfab.mapping import modes
    from tokenfab.specs.cache import KV_TIERS

    n = p.grid["num_chips"].astype(float)
    hits = k * memory.kv_bytes_per_sequence(p.model, p.tp, p.pp, p.isl - new, p.kv_bytes) * (p.isl > new)
    t_load = hits / (KV_TIERS["ssd"].read_gb_s_per_chip * 1e9)
    transfer = modes.kv_transfer_s(p.model, p.isl, p.kv_bytes, p.tp * p.pp, p.system.scaleout_gb_s,
                                   p.eff.scaleout_latency_us)
    return {"decode_step_ms": t_dec * 1e3, "decode_tpot_ms": t_dec / p.tokens_per_step * 1e3,
            "decode_tok_s_per_chip": p.dp * p.batch * p.tokens_per_step / t_dec / n,
            "prefill_ttft_ms": (t_chunk + t_load / k + transfer) * 1e3,
            "prefill_tok_s_per_chip": p.dp * k * p.isl / np.maximum(t_pipe, t_load) / n}


def choose_under(fits, throughput, latency, limit: float | None, slack: float = 1.05):
    """`modes.choose_under` per chip along the point axis: (index, meets the limit, anything fits)."""
    lat = np.asarray(latency, dtype=float)
    thr = np.broadcast_to(np.asarray(throughput, dtype=float), fits.shape)
    lat = np.broadcast_to(lat, fits.shape)
    if limit:
        ok = fits & (lat <= limit)
        fastest = np.min(np.where(fits, lat, np.inf), axis=1, keepdims=True)
        met = ok.any(axis=1)
        ok = np.where(met[:, None], ok, fits & (lat <= fastest * slack))
    else:
        ok, met = fits, np.ones(len(fits), dtype=bool)
    score = np.where(ok, thr, -np.inf)
    top = score.max(axis=1, keepdims=True)
    return np.argmax(score >= top * (1 - 1e-9), axis=1), met & fits.any(axis=1), fits.any(axis=1)


def choose(arrays: dict, traffic: Traffic) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per chip (`search.choose` along the point axis): (index of the best point, meets the SLOs,
    anything fits). Best: highest output tok/s per chip among points that fit and meet the SLOs
    (ties: fewer chips, then smaller batch); else the fitting point that misses them least."""
    fits = arrays["fits"]
    slo = np.ones_like(fits)
    miss = np.zeros(fits.shape)
    if traffic.slo_ttft_ms:
        slo = slo & (arrays["ttft_ms"] <= traffic.slo_ttft_ms)
        miss = np.maximum(miss, arrays["ttft_ms"] / traffic.slo_ttft_ms)
    if traffic.slo_tpot_ms:
        slo = slo & (arrays["tpot_ms"] <= traffic.slo_tpot_ms)
        miss = np.maximum(miss, arrays["tpot_ms"] / traffic.slo_tpot_ms)
    ok = fits & slo
    score = np.where(ok, arrays["output_tok_s_per_chip"], -np.inf)
    top = score.max(axis=1, keepdims=True)
    near = ok & (score >= top * (1 - 1e-9))
    # Ties: fewer chips, then smaller batch — a key that orders (chips, batch) inside the tie set.
    key = arrays["num_chips"].astype(float) * 1e6 + arrays["batch"].astype(float)
    best_ok = np.argmin(np.where(near, key, np.inf), axis=1)
    best_miss = np.argmin(np.where(fits, miss, np.inf), axis=1)
    any_ok = ok.any(axis=1)
    return np.where(any_ok, best_ok, best_miss), any_ok, fits.any(axis=1)


def best(model: ModelSpec, chips: ChipBatch, eff: Efficiency, traffic: Traffic, space: ms.SearchSpace | None = None,
         max_chip_count: int = 64, kernels: str = "screen",
         modes: tuple[str, ...] = ("aggregated", "disaggregated", "af-disaggregated")) -> dict[str, np.ndarray]:
    """The best deployment per chip, shape (N,) each: fits (anything fits memory), meets_slo,
    mode, num_chips, tp, pp, dp, ep, batch (of the aggregated pool or the decode pool), ttft_ms,
    tpot_ms, output/input/total tok/s per chip, prefill_time_share (NaN where nothing fits).

    `modes`: aggregated serving (`choose`), prefill/decode disaggregation on the same chip (the
    best decode pool under the TPOT limit, then the best prefill pool under the TTFT limit with
    one decode step added, balanced: `modes.balance`) and attention-FFN disaggregation of the
    decode pool (`af_pool`, MoE models); a mode replaces the one before it where it meets the
    SLOs as well and serves more per chip (`api._better`)."""
    n = len(chips)
    a = evaluate(model, chips, eff, traffic, space, max_chip_count, kernels)
    keys_i = ("num_chips", "tp", "pp", "dp", "ep", "batch", "prec")
    keys_f = ("ttft_ms", "tpot_ms", "output_tok_s_per_chip", "input_tok_s_per_chip", "total_tok_s_per_chip",
              "prefill_time_share")
    out: dict[str, np.ndarray] = {"fits": np.zeros(n, dtype=bool), "meets_slo": np.zeros(n, dtype=bool),
                                  "mode": np.array([""] * n, dtype=object)}
    out.update({k: np.zeros(n, dtype=int) for k in keys_i})
    out.update({k: np.full(n, np.nan) for k in keys_f})
    if a["fits"].shape[1] == 0:  # nothing fits any chip
        out["weight_precision"] = np.array([""] * n)
        return out
    rows = np.arange(n)
    at = lambda x, i: np.broadcast_to(np.asarray(x), a["fits"].shape)[rows, i]  # noqa: E731
    if "aggregated" in modes:
        idx, ok, fits = choose(a, traffic)
        out["fits"], out["meets_slo"] = fits, ok & fits
        out["mode"] = np.where(fits, "aggregated", "")
        for key in keys_i:
            out[key] = np.where(fits, at(a[key], idx), 0)
        for key in keys_f:
            out[key] = np.where(fits, at(a[key], idx), np.nan)
    sides = []
    if "disaggregated" in modes:
        pool = a["pool"]
        di, d_ok, d_fits = choose_under(a["fits_decode"], pool["decode_tok_s_per_chip"], pool["decode_tpot_ms"],
                                        traffic.slo_tpot_ms)
        sides.append(("disaggregated", di, d_ok, d_fits, at(pool["decode_step_ms"], di),
                      at(pool["decode_tok_s_per_chip"], di), at(pool["decode_tpot_ms"], di),
                      {key: at(a[key], di) for key in keys_i}))
    if "af-disaggregated" in modes and model.is_moe:
        f = af_pool(model, chips, eff, traffic, *a["_af"])
        ai, a_ok, a_fits = choose_under(f["fits"], f["output_tok_s_per_chip"], f["tpot_ms"], traffic.slo_tpot_ms)
        pick_ = lambda x: np.broadcast_to(np.asarray(x), f["fits"].shape)[rows, ai]  # noqa: E731
        ints = {"num_chips": pick_(f["num_chips"]), "tp": np.ones(n, dtype=int), "pp": np.ones(n, dtype=int),
                "dp": pick_(f["dp"]), "ep": pick_(f["ep"]), "batch": pick_(f["batch"]), "prec": pick_(f["prec"])}
        sides.append(("af-disaggregated", ai, a_ok, a_fits, pick_(f["decode_step_ms"]),
                      pick_(f["output_tok_s_per_chip"]), pick_(f["tpot_ms"]), ints))
    for mode, di, d_ok, d_fits, d_step, d_rate, d_tpot, ints in sides:
        pool = a["pool"]
        pi, p_ok, p_fits = choose_under(a["fits_prefill"], pool["prefill_tok_s_per_chip"],
                                        np.asarray(pool["prefill_ttft_ms"]) + d_step[:, None], traffic.slo_ttft_ms)
        isl, osl = float(traffic.input_len), float(traffic.output_len)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_rate = at(pool["prefill_tok_s_per_chip"], pi)
            ratio = (isl / p_rate) / (osl / d_rate)
            rate = osl / (isl / p_rate + osl / d_rate)
        fits, ok = d_fits & p_fits, d_ok & p_ok & d_fits & p_fits
        better = fits & np.where(out["fits"], np.where(ok != out["meets_slo"], ok,
                                                       rate > np.nan_to_num(out["output_tok_s_per_chip"]) * (1 + 1e-9)),
                                 True)
        dis = {"ttft_ms": at(pool["prefill_ttft_ms"], pi) + d_step, "tpot_ms": d_tpot,
               "output_tok_s_per_chip": rate, "input_tok_s_per_chip": rate * isl / osl,
               "total_tok_s_per_chip": rate * (1 + isl / osl), "prefill_time_share": ratio / (1 + ratio)}
        for key in keys_f:
            out[key] = np.where(better, dis[key], out[key])
        for key in keys_i:
            out[key] = np.where(better, ints[key], out[key])
        out["meets_slo"] = np.where(better, ok, out["meets_slo"])
        out["fits"] = out["fits"] | fits
        out["mode"] = np.where(better, mode, out["mode"])
    out["weight_precision"] = np.array([a["precisions"][i] if f else "" for i, f in zip(out["prec"], out["fits"])])
    return out
