"""The Python API the CLI and notebooks call: estimate one deployment, compare chips."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tokenfab import catalog
from tokenfab import explain
from tokenfab.explain import Binding
from tokenfab.graph.plugins import load_env_operators
from tokenfab.mapping.search import SearchSpace, choose, default_max_chips, evaluate
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.perf.evaluate import op_unit_names
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, Traffic
from tokenfab.specs.traffic import CHAT

_ENV_OPERATORS: list[bool] = []


def ensure_env_operators() -> None:
    """The edge reads `$TOKENFAB_OPERATORS` once, on the first estimate (the engine reads no
    environment); a bad file there is a SpecError where the command reports it in one line."""
    if not _ENV_OPERATORS:
        _ENV_OPERATORS.append(True)
        load_env_operators()

BOUND_NAMES = ("compute", "memory", "communication")
DEFAULT_MODELS = ("deepseek-v3", "llama-3.1-70b")
DEFAULT_CHIPS = ("h100-sxm", "h200-sxm", "h20", "b200", "mi300x", "ascend-910b", "ascend-910c", "mlu590")
MODES = ("auto", "aggregated", "disaggregated", "af-disaggregated")
DEFAULT_MTP_ACCEPTANCE = 0.85
"""Acceptance of DeepSeek-V3's one MTP draft token: "between 85% and 90%" (DeepSeek-V3 technical
report, arXiv:2412.19437, section 5.4.3); the low end is the default."""
WIDE_EP_MAX_CHIPS = 320
"""Largest decode pool the search tries for MoE models (wide expert parallelism, EP up to 320)."""


class MemoryBreakdown(BaseModel):
    """Per-chip memory of a deployment, GB."""

    model_config = ConfigDict(frozen=True)
    weights: float
    kv_cache: float
    activations: float
    reserve: float
    free: float
    capacity: float


class Estimate(BaseModel):
    """One deployment of a model on a chip: mapping, latency, throughput and memory."""

    model_config = ConfigDict(frozen=True)
    model: str
    chip: str
    num_chips: int
    tp: int
    pp: int
    ep: int
    dp: int
    batch: int = Field(description="sequences in flight per data-parallel rank")
    concurrency: int = Field(description="sequences in flight in the whole deployment (batch × dp)")
    weight_precision: str
    kv_precision: str
    input_len: int
    output_len: int
    media_tokens: int = Field(default=0, description="image/video tokens included in input_len (VLMs)")
    images: int = Field(default=0, description="images per request (VLMs; for $ per image)")
    ttft_ms: float
    tpot_ms: float
    decode_step_ms: float
    prefill_ms: float
    output_tok_s_per_chip: float
    input_tok_s_per_chip: float
    total_tok_s_per_chip: float
    prefill_time_share: float
    memory_gb_per_chip: MemoryBreakdown
    bound: dict[str, Literal["compute", "memory", "communication"]]
    meets_slo: bool
    slo_ttft_ms: float | None
    slo_tpot_ms: float | None
    spec_confidence: str
    efficiency_source: str
    fidelity: str = "roofline"
    time_breakdown_ms: dict[str, dict[str, float]] = Field(default_factory=dict)
    unit_breakdown_ms: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Phase → bounding unit (matrix, memory, communication, vector, sfu) → ms of the ops it bounds."""
    op_units: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Phase → op → the unit that bounds it (`perf.evaluate.UNIT_NAMES`)."""
    mode: Literal["aggregated", "disaggregated", "af-disaggregated"] = "aggregated"
    """Deployment mode the search chose: one pool for prefill and decode, separate prefill and
    decode pools, or a prefill pool plus a decode pool split into attention and expert chips."""
    pools: list[dict] = Field(default_factory=list)
    """One entry per role (prefill, decode; attention and ffn; `aggregated` for one pool): chip, chips per instance,
    instances in the smallest balanced deployment, tp/pp/ep/dp, batch, precisions, its rate per chip."""
    pd_ratio: float | None = None
    """Prefill chips per decode chip that balance the two pools for this traffic (disaggregated)."""
    kv_transfer_ms: float = 0.0
    """KV-cache transfer from the prefill to the decode pool, included in TTFT (disaggregated)."""
    prefix_cache_hit: float = 0.0
    draft_tokens: int = 0
    """MTP / speculative draft tokens per decode step (0: off)."""
    draft_acceptance: float = 0.0
    kv_tier: str | None = None
    """Where prefix-cache hits are read from (`specs.cache.KV_TIERS`), when there are hits."""
    kv_bytes_per_token: float = 0.0
    """KV-cache bytes one token holds over all layers (what a cached token stores)."""
    binding: Binding | None = None
    """The constraint that binds this deployment (`explain.BINDINGS`): HBM capacity, the TPOT or TTFT
    SLO stopping a larger batch, else the resource taking most chip time (decode pool's, when split)."""
    binding_detail: str = ""
    """One sentence with the numbers behind `binding` (step time by resource, what caps the batch)."""


_RESOLVED_CHIPS: dict[str, ChipSpec] = {}
"""Chips resolved in this process by id, so an estimate's chip id finds a chip given as a path."""


def resolve_chip(chip: str | ChipSpec) -> ChipSpec:
    """A ChipSpec from an id, a YAML path, or itself."""
    spec = chip if isinstance(chip, ChipSpec) else catalog.load_chip(chip)
    _RESOLVED_CHIPS[spec.id] = spec
    return spec


def resolve_model(model: str | ModelSpec) -> ModelSpec:
    """A ModelSpec from an id, a config.json path, or itself."""
    return model if isinstance(model, ModelSpec) else catalog.load_model(model)


def with_mtp(model: ModelSpec, traffic: Traffic, mtp: bool | None = None,
             acceptance: float | None = None) -> Traffic:
    """The traffic with multi-token prediction set: on by default for a model that ships MTP
    modules (DeepSeek-V3/R1/V3.2: one draft token per step at `DEFAULT_MTP_ACCEPTANCE`), unless
    the traffic already sets draft tokens or `mtp` is False. `acceptance` overrides the rate."""
    if acceptance is not None and not 0 <= acceptance <= 1:
        raise SpecError(f"MTP acceptance must be in [0, 1], got {acceptance}")
    if mtp is False or acceptance == 0:  # a drafter never accepted is not run
        return traffic.model_copy(update={"draft_tokens": 0, "draft_acceptance": 0.0})
    if traffic.draft_tokens:
        return traffic if acceptance is None else traffic.model_copy(update={"draft_acceptance": acceptance})
    if mtp is None and not model.mtp_layers:
        return traffic
    if mtp and not model.mtp_layers and acceptance is None:
        raise SpecError(f"{model.id} ships no MTP module: set draft tokens and an acceptance rate "
                        f"(--set draft_tokens=1 --set draft_acceptance=0.7) for a separate drafter")
    return traffic.model_copy(update={"draft_tokens": max(model.mtp_layers, 1),
                                      "draft_acceptance": DEFAULT_MTP_ACCEPTANCE if acceptance is None else acceptance})


def estimate(model: str | ModelSpec, chip: str | ChipSpec, traffic: Traffic = CHAT, num_chips: int | None = None,
             tp: int | None = None, pp: int | None = None, ep: int | None = None, batch: int | None = None,
             precision: str | None = None, kv_precision: str | None = None,
             system: SystemSpec | None = None, max_chips: int | None = None, fidelity: str = "roofline",
             mode: str = "auto", prefill_chip: str | ChipSpec | None = None,
             decode_chip: str | ChipSpec | None = None, mtp: bool | None = None,
             mtp_acceptance: float | None = None, kv_tier: str = "ssd",
             attention_precision: str | None = None, overlap: bool = False,
             ffn_chip: str | ChipSpec | None = None, framework: str | None = None,
             auto_modes: tuple[str, ...] = ("aggregated", "disaggregated", "af-disaggregated"),
             prefill_chunk_tokens: int | None = None) -> Estimate:
    """The best deployment (highest output tok/s per chip meeting the SLOs) over what is left free.

    `mode`: `auto` tries aggregated serving, prefill/decode disaggregation and, for MoE models,
    attention-FFN disaggregation of the decode pool, and keeps the best (`_better`); a mapping
    argument (num_chips, tp, pp, ep, batch) fixes one aggregated pool; `auto_modes` limits what
    `auto` may choose (the simulator runs no attention-FFN split). `aggregated`,
    `disaggregated` or `af-disaggregated` fixes the mode. `prefill_chip` / `decode_chip` /
    `ffn_chip` put pools on other chips (each priced at its own chip by `with_cost`;
    `compare_pairs` ranks pairs by cost). MTP is on by default for models that ship it
    (`with_mtp`). `overlap`: credit the two-micro-batch overlap of MoE communication with compute
    (off by default: see `SearchSpace.overlap`). `framework`: the serving software's profile
    (`catalog/frameworks.yaml`; None: the calibration as it is, TensorRT-LLM-like).
    `prefill_chunk_tokens`: the server's token budget of one forward (TensorRT-LLM's runtime
    `max_num_tokens`, vLLM's `max_num_batched_tokens`, SGLang's chunked-prefill size; None: 8,192).

    Raises SpecError when no mapping fits in memory, saying how much is missing. Diffusion and
    recommendation models have no prefill/decode: use `estimate_any` (what the CLI calls), or
    `tokenfab.mapping.workloads` directly.
    """
    ensure_env_operators()
    m, c = resolve_model(model), resolve_chip(chip).require_buildable()
    if m.kind != "llm":
        raise SpecError(f"{m.id} is a {m.kind} model; this takes language models (`tokenfab estimate -m {m.id}`, "
                        f"or tokenfab.api.estimate_any, prices it)")
    if mode not in MODES:
        raise SpecError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    from tokenfab.specs.cache import KV_TIERS
    if framework is not None:
        from tokenfab.perf.framework import load_framework
        load_framework(framework, c.vendor)  # an unknown name: one line listing the known ones
    if kv_tier not in KV_TIERS:
        raise SpecError(f"KV tier {kv_tier!r} is not one of {', '.join(KV_TIERS)}")
    from tokenfab.graph.requests import request_shape
    rq = request_shape(m, traffic)
    if rq.input_len + traffic.output_len > m.max_context:
        media = f" + {rq.media_tokens} image/video" if rq.media_tokens else ""
        raise SpecError(f"input {traffic.input_len}{media} + output {traffic.output_len} tokens exceed {m.id}'s "
                        f"context of {m.max_context} tokens")
    m.check_expert_parallel(ep, copies=2)
    if prefill_chunk_tokens is not None and prefill_chunk_tokens < 1:
        raise SpecError(f"token budget must be at least 1 token a forward, got {prefill_chunk_tokens}")
    traffic = with_mtp(m, traffic, mtp, mtp_acceptance)
    hetero = prefill_chip is not None or decode_chip is not None or ffn_chip is not None
    if ffn_chip is not None and mode not in ("auto", "af-disaggregated"):
        raise SpecError("--ffn-chip splits the decode pool into attention and expert chips: use --mode af-disaggregated")
    if ffn_chip is not None:
        mode = "af-disaggregated"
    if mode == "auto" and not hetero and any(v is not None for v in (num_chips, tp, pp, ep, batch)):
        mode = "aggregated"  # a mapping the user fixed describes one pool
    if hetero and mode == "aggregated":
        raise SpecError("--prefill-chip / --decode-chip need separate pools: drop --mode aggregated")
    if batch is None and traffic.concurrency:
        batch = traffic.concurrency
    space = SearchSpace(
        num_chips=(num_chips,) if num_chips else None, tp=(tp,) if tp else None, pp=(pp,) if pp else None,
        ep=(ep,) if ep else None, batch=(batch,) if batch else None,
        precisions=(precision,) if precision else None, kv_precision=kv_precision,
        attention_precision=attention_precision, overlap=bool(overlap), prefill_chunk_tokens=prefill_chunk_tokens,
    )
    from tokenfab import deployment
    pc = resolve_chip(prefill_chip).require_buildable() if prefill_chip is not None else c
    dc = resolve_chip(decode_chip).require_buildable() if decode_chip is not None else c
    fc = resolve_chip(ffn_chip).require_buildable() if ffn_chip is not None else dc
    tries = []  # (mode, how to build it), simplest first: ties keep the simpler
    auto = set(auto_modes) if mode == "auto" else {mode}
    if "aggregated" in auto and not hetero:
        tries.append(("aggregated", lambda: _aggregated(m, c, traffic, space, system,
                                                        max_chips or default_max_chips(m, c), fidelity,
                                                        framework)))
    if "disaggregated" in auto:
        tries.append(("disaggregated", lambda: deployment.disaggregated(
            m, pc, dc, traffic, space, max_chips, fidelity, kv_tier, None if hetero else system, framework=framework)))
    if "af-disaggregated" in auto and (m.is_moe or mode == "af-disaggregated"):
        tries.append(("af-disaggregated", lambda: deployment.disaggregated(
            m, pc, dc, traffic, space, max_chips, fidelity, kv_tier, None, ffn_chip=fc, framework=framework)))
    best, errors = None, []
    for name, build in tries:
        try:
            cand = build()
        except SpecError as exc:
            errors.append((name, exc))
            continue
        if best is None or _better(cand, best):
            best = cand
    if best is None:
        raise errors[0][1]  # the simplest mode's reason (what is missing in memory)
    rq = request_shape(m, traffic)
    if rq.media_tokens:  # a VLM prompt: input_len counts its image/video tokens (as TTFT and $ do)
        best = best.model_copy(update={"input_len": rq.input_len, "media_tokens": rq.media_tokens,
                                       "images": traffic.images})
    return best


def _better(new: Estimate, old: Estimate) -> bool:
    """A mode replaces another only where it meets the SLOs as well and serves more per chip
    (aggregated, disaggregated, attention-FFN: tried in that order, so ties keep the simpler)."""
    if new.meets_slo != old.meets_slo:
        return new.meets_slo
    return new.output_tok_s_per_chip > old.output_tok_s_per_chip * (1 + 1e-9)


def efficiency_of(c: ChipSpec, m: ModelSpec, framework: str | None = None):
    """The chip's efficiency (calibrated, else family defaults) under a serving framework's profile.
    (A block-scaled FP8 release's kernels are chosen per point by `mapping.search.chip_hardware`;
    `efficiency_source` names them for the chosen point.)"""
    if framework is None:
        return efficiency_for(c)
    from tokenfab.perf.framework import efficiency_under
    return efficiency_under(c, framework, m.is_moe)


def efficiency_source(eff, m: ModelSpec, c: ChipSpec, weight_precision: str) -> str:
    """Where the efficiency of a point at `weight_precision` comes from: `eff.source`, naming the
    block-scaled FP8 kernels where they priced it (`mapping.search.block_scaled_eff`)."""
    from tokenfab.mapping.search import block_scaled_eff, compute_precision
    _, eff_of = block_scaled_eff(m, eff, {weight_precision: compute_precision(c, weight_precision)})
    return eff_of(weight_precision).source


def _aggregated(m: ModelSpec, c: ChipSpec, traffic: Traffic, space: SearchSpace, system: SystemSpec | None,
                max_chips: int, fidelity: str, framework: str | None = None) -> Estimate:
    """The best aggregated deployment (one pool does prefill and decode)."""
    system = system or SystemSpec.for_chip(c)
    eff = efficiency_of(c, m, framework)
    num_chips = space.num_chips[0] if space.num_chips else None
    result = evaluate(m, c, system, eff, traffic, space, max_chip_count=max_chips, fidelity=fidelity)
    if len(result) == 0:
        raise SpecError(f"no valid mapping of {m.id} on {num_chips or 'up to ' + str(max_chips)} × {c.id} "
                        f"with the given tp/pp/ep (tp must divide {m.num_heads} heads; tp×pp must divide the chip count)")
    idx, ok = choose(result, traffic)
    if idx is None:
        a = result.arrays
        short = -a["free_gb"]
        i = int(short.argmin())
        raise SpecError(
            f"{m.id} does not fit on {c.id}: best mapping tried ({int(a['num_chips'][i])} chips, tp={int(a['tp'][i])}, "
            f"pp={int(a['pp'][i])}, {result.precisions[int(a['prec'][i])]}) needs {a['weights_gb'][i]:.1f} GB weights + "
            f"{a['kv_cache_gb'][i]:.1f} GB KV per chip, {short[i]:.1f} GB more than the {c.hbm_gb:g} GB chip leaves free; "
            f"use more chips (--chips), lower precision or shorter sequences")
    wp = result.precisions[int(result.point(idx)["prec"])]
    est = _to_estimate(m, c, traffic, result, idx, ok, efficiency_source(eff, m, c, wp)).model_copy(
        update={"fidelity": fidelity})
    p = result.point(idx)
    pool = {"role": "aggregated", "chip": c.id, "num_chips": p["num_chips"], "instances": 1, "tp": p["tp"],
            "pp": p["pp"], "ep": p["ep"], "dp": p["dp"], "batch": p["batch"],
            "weight_precision": est.weight_precision, "kv_precision": est.kv_precision,
            "output_tok_s_per_chip": est.output_tok_s_per_chip, "chip_share": 1.0}
    why = explain.aggregated(result, idx, ok, traffic.slo_ttft_ms, traffic.slo_tpot_ms)
    return est.model_copy(update={"pools": [pool], "binding": why.binding, "binding_detail": why.detail,
                                  **traffic_fields(m, traffic, est.kv_precision)})


def traffic_fields(m: ModelSpec, traffic: Traffic, kv_precision: str, kv_tier: str = "ssd") -> dict:
    """Estimate fields that echo the traffic's cache and MTP settings."""
    from tokenfab.specs import bytes_per_element
    from tokenfab.mapping.memory import kv_bytes_per_sequence
    b = bytes_per_element(kv_precision)  # marginal bytes per token (a recurrent state is per sequence)
    per_token = float(kv_bytes_per_sequence(m, 1.0, 1.0, 1001.0, b) - kv_bytes_per_sequence(m, 1.0, 1.0, 1.0, b)) / 1000
    return {"prefix_cache_hit": traffic.prefix_cache_hit, "draft_tokens": traffic.draft_tokens,
            "draft_acceptance": traffic.draft_acceptance, "kv_bytes_per_token": per_token,
            "kv_tier": kv_tier if traffic.prefix_cache_hit > 0 else None}


def _to_estimate(m: ModelSpec, c: ChipSpec, traffic: Traffic, result, i: int, ok: bool, eff_source: str) -> Estimate:
    p = result.point(i)
    from tokenfab.mapping.memory import capacity_gb
    cap = capacity_gb(c.hbm_gb)
    used = p["weights_gb"] + p["kv_cache_gb"] + p["activations_gb"] + p["free_gb"]
    breakdown = {
        phase: {t.name: float(t.seconds[i] if t.seconds.ndim else t.seconds) * 1e3
                for t in result.extras[f"{phase}_times"]}
        for phase in ("decode", "prefill")
    }
    units = {phase: op_unit_names(result.extras[f"{phase}_times"], i) for phase in ("decode", "prefill")}
    return Estimate(
        model=m.id, chip=c.id, num_chips=p["num_chips"], tp=p["tp"], pp=p["pp"], ep=p["ep"], dp=p["dp"],
        batch=p["batch"], concurrency=p["batch"] * p["dp"],
        weight_precision=result.precisions[p["prec"]], kv_precision=result.kv_precisions[p["prec"]],
        input_len=traffic.input_len, output_len=traffic.output_len,
        ttft_ms=p["ttft_ms"], tpot_ms=p["tpot_ms"], decode_step_ms=p["decode_step_ms"], prefill_ms=p["prefill_ms"],
        output_tok_s_per_chip=p["output_tok_s_per_chip"], input_tok_s_per_chip=p["input_tok_s_per_chip"],
        total_tok_s_per_chip=p["total_tok_s_per_chip"], prefill_time_share=p["prefill_time_share"],
        memory_gb_per_chip=MemoryBreakdown(weights=p["weights_gb"], kv_cache=p["kv_cache_gb"],
                                           activations=p["activations_gb"], reserve=cap - used,
                                           free=p["free_gb"], capacity=cap),
        bound={"prefill": BOUND_NAMES[p["prefill_bound"]], "decode": BOUND_NAMES[p["decode_bound"]]},
        meets_slo=ok, slo_ttft_ms=traffic.slo_ttft_ms, slo_tpot_ms=traffic.slo_tpot_ms,
        spec_confidence=c.spec_confidence, efficiency_source=eff_source, time_breakdown_ms=breakdown,
        unit_breakdown_ms={ph: u[0] for ph, u in units.items()}, op_units={ph: u[1] for ph, u in units.items()},
    )


WORKLOAD_ARGS = ("num_chips", "precision", "system", "max_chips", "framework")
"""The `estimate` arguments a diffusion or recommendation estimate takes (`estimate_any`); every
other one describes an LLM deployment."""


def estimate_any(model: str | ModelSpec, chip: str | ChipSpec, traffic: Traffic = CHAT, workload=None,
                 **kwargs):
    """`estimate` for LLMs; for diffusion and recommendation models the matching
    `tokenfab.mapping.workloads` estimate (their request: `workload`, a GenerationRequest or RecsysRequest;
    LLM-only arguments are ignored). What `tokenfab estimate` and `compare` call."""
    ensure_env_operators()
    m, c = resolve_model(model), resolve_chip(chip).require_buildable()
    if m.kind == "llm":
        return estimate(m, c, traffic, **kwargs)
    from tokenfab.mapping import workloads
    if kwargs.get("framework"):  # a user's name must be a known profile (measurement rows fall back to neutral)
        from tokenfab.perf.framework import load_framework
        load_framework(kwargs["framework"], c.vendor)
    common = {k: kwargs[k] for k in WORKLOAD_ARGS if kwargs.get(k) is not None}
    if m.kind == "diffusion":
        from tokenfab.specs.requests import GenerationRequest
        return workloads.estimate_generation(m, c, workload or GenerationRequest(), **common)
    from tokenfab.specs.requests import RecsysRequest
    return workloads.estimate_recsys(m, c, workload or RecsysRequest(), **common)


def compare(models: list[str] | None = None, chips: list[str] | None = None, traffic: Traffic = CHAT,
            **kwargs) -> tuple[list, list[dict]]:
    """Best deployment per (model, chip). Returns (estimates, failures); a failure is
    {model, chip, error} for a pair where nothing fits. Diffusion / recommendation models give
    `workloads.GenerationEstimate` / `RecsysEstimate` rows (their `kind` field says which)."""
    estimates, failures = [], []
    for mid in models or DEFAULT_MODELS:
        m = resolve_model(mid)
        for cid in chips or DEFAULT_CHIPS:
            c = resolve_chip(cid)
            try:
                estimates.append(estimate_any(m, c, traffic, **kwargs))
            except SpecError as exc:
                failures.append({"model": m.id, "chip": c.id, "error": str(exc)})
    return estimates, failures


def compare_pairs(models: list[str] | None = None, chips: list[str] | None = None, traffic: Traffic = CHAT,
                  **kwargs) -> tuple[list, list[dict]]:
    """Every ordered (prefill chip, decode chip) pair of `chips` as separate pools, per LLM model
    (same-chip pairs included: plain disaggregation). Returns (estimates, failures) like `compare`."""
    kwargs = {k: v for k, v in kwargs.items() if k != "mode"}
    estimates, failures = [], []
    ids = chips or DEFAULT_CHIPS
    for mid in models or DEFAULT_MODELS:
        m = resolve_model(mid)
        if m.kind != "llm":
            failures.append({"model": m.id, "chip": "-", "error": f"{m.id} is a {m.kind} model: no prefill/decode pools"})
            continue
        for p_id in ids:
            for d_id in ids:
                p, d = resolve_chip(p_id), resolve_chip(d_id)
                try:
                    estimates.append(estimate(m, d, traffic, mode="disaggregated", prefill_chip=p, decode_chip=d,
                                              **kwargs))
                except SpecError as exc:
                    failures.append({"model": m.id, "chip": f"{p.id}+{d.id}", "error": str(exc)})
    return estimates, failures


def with_cost(est: Estimate, economics=None, market_rental: bool = False,
              output_tokens_per_day: float | None = None, chip_specs: dict[str, ChipSpec] | None = None) -> dict:
    """The estimate as a dict with $/Mtoken added where its chips have a price, split three ways
    as API price sheets are: `usd_per_mtok_input` (an uncached prompt token), `usd_per_mtok_cached_input`
    (a prefix-cache hit: holding its KV in the cache tier), `usd_per_mtok_output`.

    Chip time is split between prompt and generated tokens by the prefill share of chip cost (for
    separate pools, each pool's chip-hours at its own chip's price). Costs come from
    `tokenfab.cost.tco` (owned TCO per chip-hour, or a rental price when the economics set one);
    with `market_rental`, each chip's dated market rental quote. With `output_tokens_per_day`, the
    chips that volume needs (`fleet_chips`, by pool) and `usd_per_day`. Rows for chips without a
    price carry None and say why in `cost_basis`. `chip_specs`: the ChipSpecs the estimate ran on, by id
    (default: the chips resolved by id in this process).
    """
    def chip_of(chip_id: str) -> ChipSpec:
        return (chip_specs or {}).get(chip_id) or _RESOLVED_CHIPS.get(chip_id) or resolve_chip(chip_id)

    if getattr(est, "kind", "llm") != "llm":
        return _with_cost_other(est, chip_of(est.chip), economics, market_rental)
    row = est.model_dump(mode="json")
    row.update(usd_per_mtok_input=None, usd_per_mtok_cached_input=None, usd_per_mtok_output=None,
               usd_per_chip_hour=None, cost_basis=None)
    if output_tokens_per_day is not None:
        if not (output_tokens_per_day > 0 and output_tokens_per_day < float("inf")):
            raise SpecError(f"tokens per day must be a positive number, got {output_tokens_per_day}")
        chips = output_tokens_per_day / 86400.0 / est.output_tok_s_per_chip
        row["fleet_chips"] = {p["role"]: chips * p["chip_share"] for p in est.pools} if est.pools else {"aggregated": chips}
        row["usd_per_day"] = None
    from tokenfab.cost import tco
    from tokenfab.specs.cache import KV_TIERS

    pools = est.pools or [{"role": "aggregated", "chip": est.chip, "chip_share": 1.0}]
    try:
        priced = tco.price_deployment([(p["role"], chip_of(p["chip"]), p["chip_share"]) for p in pools],
                                      est.input_tok_s_per_chip, est.output_tok_s_per_chip, est.prefill_time_share,
                                      economics, market_rental)
    except (SpecError, ValueError) as exc:
        row["cost_basis"] = f"no cost: {exc}"
        return row
    split, hourly = priced.tokens, priced.usd_per_chip_hour
    hit = est.prefix_cache_hit
    tier = KV_TIERS[est.kv_tier or "ssd"]
    row.update(usd_per_mtok_input=split.input_miss_usd_per_mtok / (1.0 - hit),
               usd_per_mtok_cached_input=tier.storage_usd_per_token(est.kv_bytes_per_token) * 1e6,
               usd_per_mtok_output=split.output_usd_per_mtok, usd_per_chip_hour=hourly, cost_basis=priced.basis)
    if est.images:  # captioning-style traffic: one request's prompt (media tokens included) and answer per image
        per_request = (est.input_len * row["usd_per_mtok_input"] + est.output_len * row["usd_per_mtok_output"]) / 1e6
        row["usd_per_image"] = per_request / est.images
    if output_tokens_per_day is not None:
        chips = sum(row["fleet_chips"].values())
        row["usd_per_day"] = chips * hourly * 24.0
    return row


def _with_cost_other(est, chip: ChipSpec, economics=None, market_rental: bool = False) -> dict:
    """The estimate as a dict with $ per video and per video-second (video models), $ per image
    (image models) — every chip of the deployment for the batch's latency, divided over the
    batch — or $ per million samples (recommendation), from the chip-hour cost of `tokenfab.cost.tco`."""
    row = est.model_dump(mode="json")
    keys = (("usd_per_video", "usd_per_video_second", "usd_per_image") if est.kind == "diffusion"
            else ("usd_per_million_samples",))
    row.update({k: None for k in keys}, usd_per_chip_hour=None, cost_basis=None)
    from tokenfab.cost import tco

    try:
        hourly = tco.chip_hour_cost_for(chip, economics, market_rental)
    except (SpecError, ValueError) as exc:
        row["cost_basis"] = f"no cost: {exc}"
        return row
    usd_h = hourly.total_usd_per_hour
    if est.kind == "diffusion":
        per_sample = tco.usd_per_video(usd_h, est.num_chips, est.latency_s) / est.batch
        if est.video_seconds > 0:
            row.update(usd_per_video=per_sample, usd_per_video_second=per_sample / est.video_seconds)
        else:
            row.update(usd_per_image=per_sample, usd_per_video=per_sample)
    else:
        row["usd_per_million_samples"] = tco.usd_per_million_samples(usd_h, est.samples_s_per_chip)
    row.update(usd_per_chip_hour=usd_h, cost_basis=hourly.basis)
    return row
