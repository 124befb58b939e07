"""Vectorized mapping search: every (chips, TP, PP, EP, precision, batch) point at once.

A point is one deployment: `num_chips = tp × pp × dp`; attention is tensor-parallel over `tp`
and data-parallel over `dp`; MoE experts are either expert-parallel over all `tp × dp` chips of
a stage (ep = tp × dp) or tensor-parallel over `tp` (ep = 1). `batch` is the number of sequences in flight per
data-parallel rank. Steady state of continuous batching: each rank decodes `batch` sequences
and admits a new request (one prefill of `input_len` tokens) as each one finishes, so per
rank one cycle of `output_len` decode steps also prefills `batch` prompts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from tokenfab.graph import StepShape, step_ops
from tokenfab.graph.requests import request_shape
from tokenfab.mapping import memory, pipeline
from tokenfab.perf import comm
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.evaluate import Hardware, bound_shares, time_ops, total_seconds, unit_peaks
from tokenfab.specs import ChipSpec, ModelSpec, SystemSpec, Traffic, bytes_per_element

DEFAULT_BATCHES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)
DEFAULT_CHIP_COUNTS = (1, 2, 4, 8, 16, 32, 64)
WIDE_EP_CHIP_COUNTS = (96, 128, 144, 192, 256, 320)
"""Counts past 64 a MoE model may take (wide expert parallelism across nodes: DeepSeek's decode
unit is 144 H800s, EP144) when the search's chip limit allows them."""
POW2 = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class SearchSpace:
    """Candidate values per axis; None lets the search choose from its defaults."""

    num_chips: tuple[int, ...] | None = None
    tp: tuple[int, ...] | None = None
    pp: tuple[int, ...] | None = None
    ep: tuple[int, ...] | None = None
    batch: tuple[int, ...] | None = None
    precisions: tuple[str, ...] | None = None
    kv_precision: str | None = None
    prefill_chunk_tokens: int | None = None
    """Token budget of one prefill forward (None: `memory.PREFILL_CHUNK_TOKENS`); a lighter load
    than saturation leaves fewer prompts waiting per step (see validate's offered-load path)."""
    attention_precision: str | None = None
    """Format attention computes in (None: fp8 with an fp8 KV cache on chips with fp8 math, else
    bf16; `attention_precision_for`)."""
    overlap: bool = False
    """Two-micro-batch overlap of MoE communication with compute where experts span data-parallel
    ranks (`step_seconds`); False runs each step in one piece. Off by default: wide-EP deployments
    do run it (DeepSeek's dual micro-batch, SGLang's two-batch overlap), but no measured kernel
    timing of an overlapped step calibrates how much it hides, and with the ideal overlap credited
    the measured rows move away (Mixtral on H100 +47% -> +53%, DeepSeek's day-6 decode -28% ->
    +55%, day-6 prefill/decode pools +60%/+77%). An option for what-if studies."""


@dataclass
class GridResult:
    """Arrays over all evaluated points (same length), plus the precision names by index."""

    arrays: dict[str, np.ndarray]
    precisions: tuple[str, ...]
    kv_precisions: tuple[str, ...]
    extras: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arrays["tp"])

    def point(self, i: int) -> dict:
        """Scalars of point i."""
        return {k: v[i].item() for k, v in self.arrays.items()}


def default_precisions(chip: ChipSpec) -> tuple[str, ...]:
    """bf16 everywhere, plus the chip's native 8-bit path: fp8 where it has one, else int8
    (W8A8, as Ascend, Cambricon and A100 deployments quantize). 4-bit only when asked."""
    if chip.fp8_tflops:
        return ("bf16", "fp8")
    return ("bf16", "int8") if chip.int8_tops else ("bf16",)


def compute_precision(chip: ChipSpec, weight_precision: str) -> str:
    """Format the linear layers compute in for a weight format. 4-bit weights on a chip without
    4-bit math are weight-only (W4A16: Marlin/AWQ kernels, MXFP4 on Hopper): their bytes are
    4-bit, their math bf16 — never an FP4 or FP8 rate the weights do not get."""
    for p in {"fp4": ("fp4", "bf16"), "int4": ("bf16",), "fp8": ("fp8", "bf16"),
              "int8": ("int8", "bf16")}.get(weight_precision, (weight_precision, "bf16")):
        if chip.peak_tflops(p):
            return p
    return "bf16"


def compute_tflops(chip: ChipSpec, weight_precision: str) -> float:
    """Peak the linear layers run at for a weight format (weight-only formats compute wider)."""
    return chip.peak_tflops(compute_precision(chip, weight_precision)) or chip.bf16_tflops


def kv_precision_for(chip: ChipSpec, weight_precision: str, override: str | None) -> str:
    """fp8 KV cache alongside fp8/fp4 weights on chips with fp8; bf16 otherwise."""
    if override:
        return override
    return "fp8" if weight_precision in ("fp8", "fp4") and chip.fp8_tflops else "bf16"


def _axis(values, default):
    return np.asarray(values if values else default)


SMALL_MEMORY_COUNTS = (128, 256, 512, 1024, 2048, 4096)
SMALL_MEMORY_PP = (16, 32, 64, 128)
"""Chip counts and pipeline depths past the defaults, searched only for a chip whose memory cannot
hold the model's weights on 64 chips (SRAM-only designs: Groq serves Llama-2-70B on 576 LPUs,
pipelined across chips)."""


def needs_many_chips(model: ModelSpec, chip: ChipSpec) -> bool:
    """True when 64 chips' memory is less than twice the model's weights at one byte per parameter
    (room for KV cache and activations beside them): an SRAM-only design."""
    weights = float(np.asarray(memory.weight_bytes_per_chip(model, 1, 1, 1, 1, 1.0)))
    return 2.0 * weights > 64 * memory.usable_bytes(chip.hbm_gb)


def default_max_chips(model: ModelSpec, chip: ChipSpec) -> int:
    """The largest deployment searched when the caller sets none: 64 chips, or the largest of
    `SMALL_MEMORY_COUNTS` for a chip that cannot hold the model on 64 (`needs_many_chips`)."""
    return SMALL_MEMORY_COUNTS[-1] if needs_many_chips(model, chip) else 64


def _small_memory(model: ModelSpec, chip: ChipSpec, max_chip_count: int) -> tuple[int, ...]:
    """`SMALL_MEMORY_COUNTS` up to the limit for a chip that `needs_many_chips`."""
    if not needs_many_chips(model, chip):
        return ()
    return tuple(n for n in SMALL_MEMORY_COUNTS if n <= max_chip_count)


def build_grid(model: ModelSpec, chip: ChipSpec, space: SearchSpace, max_chip_count: int = 64) -> dict[str, np.ndarray]:
    """All valid combinations as flat integer arrays (tp, pp, dp, ep, num_chips, prec, batch)."""
    wide = WIDE_EP_CHIP_COUNTS if model.is_moe else ()
    small = _small_memory(model, chip, max_chip_count)
    counts = space.num_chips or tuple(sorted({n for n in DEFAULT_CHIP_COUNTS + wide + small if n <= max_chip_count}
                                             | ({chip.scaleup_domain} if chip.scaleup_domain <= 512 else set())))
    many = needs_many_chips(model, chip)  # deep pipelines too when the chip count is given (`space.num_chips`)
    pp_default = (1, 2, 4, 8) + tuple(p for p in SMALL_MEMORY_PP if many and p <= model.num_layers)
    precisions = space.precisions or default_precisions(chip)
    # MoE layouts (moe_tp × moe_ep = tp × dp): ep = 1 (every expert tensor-parallel over tp),
    # ep = tp × dp (data-parallel attention + whole experts spread over every chip, the
    # DeepSeek/SGLang wide-EP layout), or ep = dp (expert groups across the data-parallel
    # replicas, each expert tensor-parallel over the replica's tp chips; a token goes to every
    # tp shard of its experts: `graph.transformer._moe_ops`).
    ep_modes = (0, 1, 2) if model.is_moe else (0,)
    n, tp, pp, mode, pr, b = np.meshgrid(
        _axis(counts, ()), _axis(space.tp, POW2), _axis(space.pp, pp_default), np.asarray(ep_modes),
        np.arange(len(precisions)), _axis(space.batch, DEFAULT_BATCHES), indexing="ij")
    n, tp, pp, mode, pr, b = (a.ravel() for a in (n, tp, pp, mode, pr, b))
    ok = (n % (tp * pp) == 0)
    dp = np.where(ok, n // np.maximum(tp * pp, 1), 0)
    ep = np.where(mode == 1, tp * dp, np.where(mode == 2, dp, 1))
    ok &= model.num_heads % tp == 0
    ok &= pp <= model.num_layers
    ok &= b >= pp  # each pipeline stage needs a micro-batch
    if model.is_moe:
        # ep need not divide the expert count: deployments fill the remainder with redundant
        # copies of hot experts (DeepSeek's EPLB: 288 slots for 256 experts on 144 GPUs).
        ok &= (mode == 0) | (ep > 1)
        ok &= (mode != 2) | ((tp > 1) & (dp > 1))  # otherwise the same as one of the other two
    if space.ep and model.is_moe:
        # A stated EP degree may be any divisor of tp × dp (moe_tp × moe_ep = tp × dp, as
        # TensorRT-LLM's moe_tp_size × moe_ep_size): one point per layout, at that degree.
        stated = np.asarray(space.ep)[0] if len(space.ep) == 1 else None
        if stated is not None and stated > 1:
            ep = np.where(mode == 1, stated, ep)
            ok &= (mode == 1) & ((tp * dp) % stated == 0)
        else:
            ok &= np.isin(ep, np.asarray(space.ep))
    elif space.ep:
        ok &= np.isin(ep, np.asarray(space.ep))
    sel = np.nonzero(ok)[0]
    return {"num_chips": n[sel], "tp": tp[sel], "pp": pp[sel], "dp": dp[sel], "ep": ep[sel],
            "prec": pr[sel], "batch": b[sel]}, tuple(precisions)


@dataclass
class Prepared:
    """The grid and the per-point figures every phase's timing shares (see `prepare`)."""

    model: ModelSpec
    chip: ChipSpec
    system: SystemSpec
    eff: Efficiency
    grid: dict[str, np.ndarray]
    precisions: tuple[str, ...]
    kv_names: tuple[str, ...]
    hw: Hardware
    w_bytes: np.ndarray
    kv_bytes: np.ndarray
    a_bytes: float
    tp: np.ndarray
    pp: np.ndarray
    dp: np.ndarray
    ep: np.ndarray
    batch: np.ndarray
    isl: float
    osl: float
    draft_tokens: float
    tokens_per_step: float
    vision_items: float
    vision_patches: float
    overlap: bool
    decode_hw: Hardware
    """`hw` with the attention peak decode runs at (`attention_precision_for`)."""
    timer: Callable[[list, Hardware], list] | None = None
    """Times a step's ops on `hw` (None: `perf.evaluate.time_ops`); the design-batch path
    (`mapping.batched`) passes the screening kernels (`perf.screen.time_ops`)."""

    @property
    def crosses(self) -> np.ndarray:
        """Points whose tp × pp group spans more than one node (pipeline sends go over the NIC)."""
        return self.tp * self.pp > self.system.chips_per_node


def attention_precision_for(model: ModelSpec, chip: ChipSpec, kv_precision: str, phase: str,
                            override: str | None) -> str:
    """Format the attention kernels compute in. By default FP8 only where a deployed kernel does
    it: MLA decode over an FP8 latent cache on a chip with FP8 math (FlashMLA's FP8 kernel, as
    SGLang serves DeepSeek on H20/H200); everything else bf16 — measured TensorRT-LLM prefill
    rows run at the bf16 rate (an FP8 default made them 10-30% optimistic). `override` sets
    both phases (e.g. fp8 for FlashAttention-3 FP8 / FP8 context FMHA)."""
    if override:
        return override
    if phase == "decode" and model.attention == "mla" and kv_precision == "fp8" and chip.fp8_tflops:
        return "fp8"
    return "bf16"


def block_scaled_eff(model: ModelSpec, eff: Efficiency, computes: dict[str, str], checkpoint_scales: bool = True):
    """(the Efficiency a grid's ops are timed with, weight precision -> the Efficiency its GEMM compute
    fraction comes from) for `model` on a grid whose weight precisions compute in `computes`
    ({weight precision: compute precision}, `compute_precision`). A block-scaled FP8 release
    (`ModelSpec.fp8_weight_block`) computing in FP8 takes the block-scaled kernels
    (`Efficiency.for_block_scales`); INT8 points (W8A8, per-channel scales) keep the per-tensor ones.
    Where a grid holds both, the FP8 points take the block compute fraction and the shared FP8/INT8
    weight-stream and fixed terms stay per-tensor (one Efficiency times every point's ops).
    The one rule for `chip_hardware`, the batched design search and `api.efficiency_source`."""
    if not checkpoint_scales or model.fp8_weight_block is None:
        return eff, lambda p: eff
    block = eff.for_block_scales()
    shared = eff if "int8" in computes.values() else block
    return shared, lambda p: block if computes[p] == "fp8" else shared


def chip_hardware(model: ModelSpec, chip: ChipSpec, system: SystemSpec, eff: Efficiency, precisions,
                  kv_names=None, prec_idx=0, phase: str = "prefill", attention_precision: str | None = None,
                  fidelity: str = "roofline", checkpoint_scales: bool = True) -> Hardware:
    """The one description of "this chip at these precisions" every engine user times ops with
    (mapping search, attention-FFN split, serving step tables, diffusion and recommendation):
    the matrix peak and achievable fraction of each weight precision (`prec_idx` picks one per
    point), the attention peak of `phase` (`attention_precision_for`), the bf16 path of weights
    kept bf16, the vector and special-function peaks, and at `fidelity="tiled"` the chip's tiled
    description with its power-capped fractions. A model whose FP8 release is block-scaled
    (`ModelSpec.fp8_weight_block`) runs its FP8 GEMMs on the block-scaled kernels
    (`Efficiency.for_block_scales`) unless `checkpoint_scales` is False (training picks its own recipe);
    its INT8 (W8A8) points keep the per-tensor kernels of the FP8/INT8 class (`block_scaled_eff`)."""
    precisions = tuple(precisions)
    computes = {p: compute_precision(chip, p) for p in precisions}
    eff, eff_of = block_scaled_eff(model, eff, computes, checkpoint_scales)
    kv_names = tuple(kv_names) if kv_names is not None else tuple(kv_precision_for(chip, p, None) for p in precisions)
    pick = lambda xs: np.asarray(xs, dtype=float)[prec_idx]  # noqa: E731
    peak = pick([compute_tflops(chip, p) for p in precisions])
    attn = pick([chip.peak_tflops(attention_precision_for(model, chip, kv, phase, attention_precision))
                 or chip.bf16_tflops for kv in kv_names])
    thw = None
    if fidelity == "tiled":
        from tokenfab.perf import tiled
        thw = tiled.tiled_hw_for(chip)
        # The tiled model's sustained fraction includes a design's power cap.
        frac = pick([tiled.achievable_frac(eff_of(p), thw, computes[p]) for p in precisions])
        bf16_frac = tiled.achievable_frac(eff, thw, "bf16")
    elif fidelity == "roofline":
        # FP8/FP4 GEMMs sustain a different share of their (doubled) peak than BF16 ones, and a
        # power-capped design only its sustained share of that (`microarch.sustained_frac`; catalog
        # chips and designs naming a calibration carry none: their calibration was measured capped).
        held = chip.microarch.sustained_frac if chip.microarch is not None else {}
        frac = pick([eff_of(p).gemm_frac(computes[p]) * held.get(computes[p], 1.0) for p in precisions])
        bf16_frac = eff.gemm_frac("bf16") * held.get("bf16", 1.0)
        attn = attn * pick([held.get(attention_precision_for(model, chip, kv, phase, attention_precision), 1.0)
                            for kv in kv_names])
    else:
        raise ValueError(f"fidelity {fidelity!r} is not one of roofline, tiled")
    return Hardware(gemm_tflops=peak, attention_tflops=attn, hbm_tb_s=chip.hbm_tb_s, cores=chip.cores or 100,
                    eff=eff, system=system, gemm_frac=frac, tiled=thw, bf16_tflops=chip.bf16_tflops,
                    bf16_frac=bf16_frac, **unit_peaks(chip))


def prepare(model: ModelSpec, chip: ChipSpec, system: SystemSpec, eff: Efficiency, traffic: Traffic,
            space: SearchSpace = SearchSpace(), max_chip_count: int = 64, fidelity: str = "roofline") -> Prepared:
    """Build the grid and the chip figures per point (precision-dependent peaks and fractions)."""
    g, precisions = build_grid(model, chip, space, max_chip_count)
    kv_names = tuple(kv_precision_for(chip, p, space.kv_precision) for p in precisions)
    w_bytes = np.array([bytes_per_element(p) for p in precisions])[g["prec"]]
    kv_bytes = np.array([bytes_per_element(p) for p in kv_names])[g["prec"]]
    hw = chip_hardware(model, chip, system, eff, precisions, kv_names, g["prec"], "prefill",
                       space.attention_precision, fidelity)
    decode = chip_hardware(model, chip, system, eff, precisions, kv_names, g["prec"], "decode",
                           space.attention_precision, fidelity)
    thw = hw.tiled
    # Prompt tokens include image/video tokens; decode steps verify draft tokens (graph/requests.py).
    rq = request_shape(model, traffic)
    resident = None if thw is None else _residency(model, thw, g, w_bytes, kv_bytes,
                                                   rq.input_len + traffic.output_len, rq.draft_tokens)
    hw = dataclasses.replace(hw, resident=resident)
    tp, pp, dp, ep, batch = (g[k].astype(float) for k in ("tp", "pp", "dp", "ep", "batch"))
    return Prepared(model=model, chip=chip, system=system, eff=eff, grid=g, precisions=tuple(precisions),
                    kv_names=kv_names, hw=hw, w_bytes=w_bytes, kv_bytes=kv_bytes, a_bytes=2.0,
                    tp=tp, pp=pp, dp=dp, ep=ep, batch=batch, isl=float(rq.input_len), osl=float(traffic.output_len),
                    draft_tokens=float(rq.draft_tokens), tokens_per_step=rq.tokens_per_step,
                    vision_items=rq.vision_items, vision_patches=rq.vision_patches, overlap=space.overlap,
                    decode_hw=dataclasses.replace(decode, resident=resident))


def _residency(model: ModelSpec, thw, g: dict, w_bytes, kv_bytes, seq_len: float, draft_tokens: float):
    """What each point keeps in shared SRAM (`perf.onchip.plan`): its weight shard and/or the KV
    cache of its batch at full length, in what one decode step's activations leave over."""
    from tokenfab.perf import onchip
    tp, pp, dp, ep, batch = (g[k].astype(float) for k in ("tp", "pp", "dp", "ep", "batch"))
    micro = batch / pp * (1.0 + draft_tokens)
    weights = memory.weight_bytes_per_chip(model, tp, pp, ep, dp, w_bytes)
    # The embedding table beside an untied LM head is held, not read: a step gathers its rows.
    table = np.where((pp == 1) & (not model.tie_embeddings),
                     model.vocab_size * model.hidden_size / tp * memory.HEAD_BYTES, 0.0)
    kv = batch * memory.kv_bytes_per_sequence(model, tp, pp, seq_len, kv_bytes)
    return onchip.plan(thw.shared_sram_bytes, weights, kv, memory.activation_bytes(model, tp, micro, micro, 2.0),
                       weight_read_bytes=weights - table)


def step_seconds(p: Prepared, shape: StepShape, micro_tokens) -> tuple[np.ndarray, list]:
    """Seconds of one step through all stages at the slowest stage's pace, and its op times.

    Two-micro-batch overlap (DeepSeek's dual micro-batch, SGLang's two-batch overlap): where the
    experts are spread over data-parallel ranks (ep > 1, dp > 1, one stage) the step is split in
    two halves and one half's all-to-all and all-reduce run while the other computes, so a step
    takes 2 × max(compute, communication) of a half — taken where it is faster than running the
    whole step in one piece (a half reads the weights again)."""
    hw = p.decode_hw if shape.phase == "decode" else p.hw
    timer = p.timer or time_ops
    times = timer(step_ops(p.model, shape), hw)
    t = pipeline.pipelined_seconds(times, p.model.num_layers, p.pp)
    if not (p.overlap and p.model.is_moe):
        return t, times
    use = (p.ep > 1) & (p.dp > 1) & (p.pp == 1) & (np.asarray(micro_tokens) >= 2)
    if not use.any():
        return t, times
    half = dataclasses.replace(shape, tokens=shape.tokens / 2.0, seqs=shape.seqs / 2.0,
                               vision_items=np.asarray(shape.vision_items) / 2.0)
    halves = timer(step_ops(p.model, half), hw)
    secs = np.broadcast_arrays(*[h.seconds for h in halves])
    comm_half = sum(np.where(np.broadcast_to(h.bound, s.shape) == 2, s, 0.0) for h, s in zip(halves, secs))
    comp_half = sum(secs) - comm_half
    t_tbo = 2.0 * np.maximum(comp_half, comm_half)
    return np.where(use, np.minimum(t, t_tbo), t), times


def decode_step(p: Prepared, batch=None) -> tuple[np.ndarray, list]:
    """Seconds of one decode step of `batch` sequences per data-parallel rank (a micro-batch of
    batch / pp per stage), and its op times. Context: the prompt plus half the output."""
    batch = p.batch if batch is None else batch
    micro = batch / p.pp
    ctx = p.isl + p.osl / 2.0
    dec = StepShape("decode", tokens=micro * (1 + p.draft_tokens), seqs=micro, ctx=np.full_like(micro, ctx),
                    kv_len=np.full_like(micro, ctx), tp=p.tp, dp=p.dp, ep=p.ep, w_bytes=p.w_bytes,
                    a_bytes=p.a_bytes, kv_bytes=p.kv_bytes, draft_tokens=p.draft_tokens)
    t, times = step_seconds(p, dec, micro)
    p2p = (p.pp - 1) * comm.p2p_time_s(micro * p.model.hidden_size * p.a_bytes, p.crosses, p.system, p.eff)
    return t + p2p + p.eff.step_overhead_ms * 1e-3, times


def prefill_shape(p: Prepared, new: float, k, split=1.0) -> StepShape:
    """A prefill forward of `k` prompts of `new` uncached tokens each, its tokens split evenly over
    `split` ranks (context parallelism; 1: one rank carries it), the rest of each prompt attended
    to as cached."""
    return StepShape("prefill", tokens=new * k / split, seqs=k / split,
                     ctx=(p.isl - new + new / 2.0) * np.ones_like(p.tp), kv_len=p.isl * np.ones_like(p.tp), tp=p.tp,
                     dp=p.dp, ep=p.ep, w_bytes=p.w_bytes, a_bytes=p.a_bytes, kv_bytes=p.kv_bytes,
                     vision_items=k * p.vision_items / split, vision_patches=p.vision_patches)


def prefill_chunk(p: Prepared, new: float, k, cp=1.0) -> tuple[np.ndarray, np.ndarray, list]:
    """One prefill forward of `k` prompts of `new` uncached tokens each (the rest of the prompt is
    a prefix-cache hit: attended to, not recomputed). Returns (latency through all stages in turn,
    time per chunk at the slowest stage's pace, op times). With context parallelism `cp` > 1 the
    forward's tokens are split evenly over `cp` data-parallel ranks (load-balanced causal
    halves), each doing 1/cp of the work; the KV exchange between them is the caller's
    (`mapping.modes`)."""
    cp = np.asarray(cp, float)
    pre = prefill_shape(p, new, k, cp)
    t_pipe, times = step_seconds(p, pre, new * k / cp)
    p2p = (p.pp - 1) * comm.p2p_time_s(k * new / cp * p.model.hidden_size * p.a_bytes, p.crosses, p.system, p.eff)
    overhead = p.eff.step_overhead_ms * 1e-3
    # Latency: the stages run one after another (the overlapped variant applies to one stage only).
    t_chunk = np.where(p.pp > 1, total_seconds(times), t_pipe) + p2p + overhead
    return t_chunk, t_pipe + p2p + overhead, times


EXPERT_OPS = frozenset({"experts_up", "experts_act", "experts_down", "moe_permute", "moe_unpermute"})
"""Ops whose work is the tokens entering a chip's experts from every data-parallel rank."""


def coupled_ranks(model: ModelSpec, ep, dp) -> np.ndarray:
    """Attention data-parallel ranks that step as one, per point (arrays broadcast): where a MoE
    model's experts are spread over the data-parallel ranks (ep > 1, dp > 1) every MoE layer
    exchanges tokens among all of them, so each iteration lasts as long as its busiest rank's
    (1 elsewhere)."""
    ep, dp = np.asarray(ep, float), np.asarray(dp, float)
    return np.where(model.is_moe & (ep > 1) & (dp > 1), dp, 1.0)


def lone_prefill_ratio(p: Prepared, new: float, k, pre_times: list) -> np.ndarray:
    """Time of a prefill iteration in which ONE attention-DP rank carries its chunk of `k` prompts
    while the others only decode, relative to `prefill_chunk`'s iteration in which every rank
    carries one. The chunk rank's attention and dense layers take as long; the experts receive
    that rank's tokens only (1/dp of them), so their GEMMs, permutes and activations shrink.
    TensorRT-LLM's ADP-balance blog (docs/source/blogs/tech_blog/blog10_ADP_Balance_Strategy.md)
    measures this pattern on 8 GB200 (DeepSeek-V3, attention DP8 + EP8): by default contexts
    land on ranks in different iterations, "the iteration time is dominated by the slowest
    rank", the mean balance ratio is 54%, and an opt-in coordinated wait recovers 1.31-1.33x."""
    g = coupled_ranks(p.model, p.ep, p.dp)
    if not np.any(g > 1.0):
        return np.ones_like(g)
    # The experts receive the chunk rank's tokens: the rank-shape step of 1/g of them (`moe_layout`
    # counts every rank's tokens); only the expert ops differ, so only they are timed.
    ops = [op for op in step_ops(p.model, prefill_shape(p, new, k, g)) if op.name in EXPERT_OPS]
    lone_times = (p.timer or time_ops)(ops, p.hw)
    return np.where(g > 1.0, lone_ratio(pre_times, lone_times), 1.0)


def lone_ratio(pre_times: list, lone_expert_times: list, cols=None) -> np.ndarray:
    """(all ops - expert ops + the lone chunk's expert ops) / all ops of a prefill forward, per point;
    `cols`: the points (last axis) the lone times were taken on."""
    shape = np.broadcast_shapes(*(np.shape(t.seconds) for t in pre_times))

    def sec(t):
        x = np.broadcast_to(np.asarray(t.seconds, float), shape)
        return x if cols is None else x[..., cols]

    total = sum(sec(t) for t in pre_times)
    experts = sum(sec(t) for t in pre_times if t.name in EXPERT_OPS)
    experts_lone = sum(np.asarray(t.seconds, float) for t in lone_expert_times)
    return np.clip((total - experts + experts_lone) / np.maximum(total, 1e-30), 0.0, 1.0)


@dataclass(frozen=True)
class Cycle:
    """One continuous-batching cycle of aggregated serving, per point (`aggregated_cycle`)."""

    t_dec: np.ndarray
    """Seconds of one decode step."""
    dec_times: list
    new: float
    """Uncached prompt tokens a request prefills."""
    k: np.ndarray
    """Prompts per prefill forward."""
    t_chunk_all: np.ndarray
    """Latency of a prefill forward in which every data-parallel rank carries a chunk (`prefill_chunk`)."""
    t_chunk_pipe_all: np.ndarray
    """That forward at the slowest stage's pace."""
    pre_times: list
    t_chunk: np.ndarray
    """Latency of a request's own prefill forward (alone on its rank where ranks are coupled)."""
    t_pre_round: np.ndarray
    """Seconds per cycle spent in prefill forwards."""
    cycle: np.ndarray
    """Seconds for every sequence of a batch to emit its output (the decode steps plus the prompts
    prefilled meanwhile)."""


def aggregated_cycle(p: Prepared, traffic: Traffic, space: SearchSpace, lone_ratio=None) -> Cycle:
    """The steady state of aggregated serving (prefill and decode share the chips), per point:
    `evaluate` and the design-batch path (`mapping.batched`) both price a point with it.
    `lone_ratio`: `lone_prefill_ratio` or a caller's equivalent (same signature)."""
    batch, pp, osl = p.batch, p.pp, p.osl
    # Decode: a micro-batch of batch/pp sequences traverses all layers once per token.
    t_dec, dec_times = decode_step(p)

    # Prefill. Continuous-batching servers (vLLM, TRT-LLM, SGLang) run the prompts waiting for
    # admission together, up to a token budget per forward (max_num_batched_tokens), so the
    # weights are read once per chunk of `k` prompts, not once per prompt. A prompt longer than
    # the budget is one chunk of its own. Prefix-cache hits are not recomputed but are attended to.
    new = max(p.isl * (1 - traffic.prefix_cache_hit), 1.0)
    budget = space.prefill_chunk_tokens or memory.PREFILL_CHUNK_TOKENS
    k = np.clip(np.floor(budget / new), 1.0, batch)
    t_chunk_all, t_chunk_pipe_all, pre_times = prefill_chunk(p, new, k)
    # Attention data-parallel ranks coupled by expert parallelism step together and schedule
    # their prompts independently: a prompt's chunk runs on its own rank while the others decode
    # (a shorter iteration: `lone_prefill_ratio`), and every rank's cycle sits through all
    # `ranks` ranks' chunks.
    ranks = coupled_ranks(p.model, p.ep, p.dp)
    lone = (lone_ratio or lone_prefill_ratio)(p, new, k, pre_times)
    t_chunk, t_chunk_pipe = t_chunk_all * lone, t_chunk_pipe_all * lone
    t_pre = ranks * t_chunk_pipe / k  # per prompt, amortized over the chunk, at the slowest stage's pace

    # Each round the pipeline waits for the micro-batch with the most prompts to prefill.
    t_pre_round = batch * t_pre / pp * pipeline.prefill_straggler_factor(batch, pp, osl, new / budget)
    cycle = osl / p.tokens_per_step * t_dec + t_pre_round  # speculative decoding: fewer steps
    return Cycle(t_dec, dec_times, new, k, t_chunk_all, t_chunk_pipe_all, pre_times, t_chunk, t_pre_round, cycle)


def evaluate(model: ModelSpec, chip: ChipSpec, system: SystemSpec, eff: Efficiency, traffic: Traffic,
             space: SearchSpace = SearchSpace(), max_chip_count: int = 64,
             fidelity: str = "roofline") -> GridResult:
    """Memory, latency and throughput of every point of the search space (aggregated serving:
    prefill and decode share the chips).

    `fidelity`: `roofline` (shape-aware roofline) or `tiled` (tiles through the SRAM levels,
    `perf/tiled.py`; slower, closer on awkward GEMM shapes and for designs)."""
    p = prepare(model, chip, system, eff, traffic, space, max_chip_count, fidelity)
    g, tp, pp, dp, batch, isl, osl = p.grid, p.tp, p.pp, p.dp, p.batch, p.isl, p.osl

    # Memory fit.
    weights = memory.weight_bytes_per_chip(model, tp, pp, p.ep, dp, p.w_bytes)
    kv = batch * memory.kv_bytes_per_sequence(model, tp, pp, isl + osl, p.kv_bytes)
    act = memory.activation_bytes(model, tp, batch, isl, p.a_bytes, usable=memory.usable_bytes(chip.hbm_gb))
    free = memory.usable_bytes(chip.hbm_gb) - weights - kv - act

    c = aggregated_cycle(p, traffic, space)
    t_dec, dec_times, t_chunk, pre_times, k = c.t_dec, c.dec_times, c.t_chunk, c.pre_times, c.k
    t_pre_round, cycle = c.t_pre_round, c.cycle
    n_chips = g["num_chips"].astype(float)
    arrays = dict(g)
    arrays.update(
        weights_gb=weights / 1e9, kv_cache_gb=kv / 1e9, activations_gb=act / 1e9, free_gb=free / 1e9,
        fits=free >= 0,
        # A prompt's first token comes after its chunk's prefill and one decode step.
        ttft_ms=(t_chunk + t_dec) * 1e3,
        tpot_ms=cycle / osl * 1e3,
        decode_step_ms=t_dec * 1e3,
        prefill_ms=t_chunk * 1e3,
        prefill_prompts=k,
        output_tok_s_per_chip=dp * batch * osl / cycle / n_chips,
        input_tok_s_per_chip=dp * batch * isl / cycle / n_chips,
        prefill_time_share=t_pre_round / cycle,
    )
    arrays["total_tok_s_per_chip"] = arrays["output_tok_s_per_chip"] + arrays["input_tok_s_per_chip"]
    arrays["decode_bound"] = np.argmax(bound_shares(dec_times), axis=0)
    arrays["prefill_bound"] = np.argmax(bound_shares(pre_times), axis=0)
    result = GridResult(arrays, p.precisions, p.kv_names)
    result.extras = {"decode_times": dec_times, "prefill_times": pre_times}
    return result


def meets_slo(arrays: dict[str, np.ndarray], traffic: Traffic) -> np.ndarray:
    """Points whose TTFT and TPOT are within the traffic's SLOs (all points if none set)."""
    ok = np.ones(len(arrays["tp"]), dtype=bool)
    if traffic.slo_ttft_ms:
        ok &= arrays["ttft_ms"] <= traffic.slo_ttft_ms
    if traffic.slo_tpot_ms:
        ok &= arrays["tpot_ms"] <= traffic.slo_tpot_ms
    return ok


def choose(result: GridResult, traffic: Traffic) -> tuple[int | None, bool]:
    """Index of the best point: the highest output tok/s per chip that fits and meets the SLOs
    (ties: fewer chips, then smaller batch). If none meets the SLOs, the fitting point that
    misses them least, flagged False. None when nothing fits memory."""
    a = result.arrays
    fits = a["fits"]
    if not fits.any():
        return None, False
    ok = fits & meets_slo(a, traffic)
    if ok.any():
        score = np.where(ok, a["output_tok_s_per_chip"], -np.inf)
        best = np.flatnonzero(score >= score.max() * (1 - 1e-9))
        best = best[np.lexsort((a["batch"][best], a["num_chips"][best]))]
        return int(best[0]), True
    miss = np.zeros(len(fits))
    if traffic.slo_ttft_ms:
        miss = np.maximum(miss, a["ttft_ms"] / traffic.slo_ttft_ms)
    if traffic.slo_tpot_ms:
        miss = np.maximum(miss, a["tpot_ms"] / traffic.slo_tpot_ms)
    return int(np.argmin(np.where(fits, miss, np.inf))), False
