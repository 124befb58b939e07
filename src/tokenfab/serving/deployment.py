"""Build a simulated deployment of a model on a chip: mapping, step-time tables, engine limits.

The deployment is the one `tokenfab.api.estimate` chooses for the workload's mean lengths, prefix
hits and SLOs (`choose_estimate`), built by `from_estimate`:
  - aggregated: one pool, `replicas` instances of its mapping;
  - disaggregated: the estimate's prefill and decode pools, each instance with its own chip,
    mapping (tp/pp/ep/dp, batch cap, precisions) and step-time tables from its own chip, in the
    estimate's balanced instance counts (or `disagg = (P, D)`); a prompt's KV cache moves to the
    decode pool in the estimate's `kv_transfer_ms` scaled to its length (`KvLink`). Not
    simulated: the prefill pool's context parallelism (each rank runs whole prompts) and the
    KV-tier read of prefix hits (hits skip prefill on the engine that cached the prefix);
  - MTP: decode steps emit the estimate's `tokens_per_step` tokens on average (`steptime`).
Or a mapping given (`mapping=`), which `disagg` splits into P prefill and D decode instances of
the same mapping; the step times come from the engine through `steptime`.
"""

from __future__ import annotations

from dataclasses import replace

from tokenfab.serving.simulator import ROUTERS, Deployment, EngineConfig, PrefillPool
from tokenfab.serving.steptime import Mapping, engine_step_time
from tokenfab.serving.traffic import Workload
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, Traffic

DEFAULT_TOKEN_BUDGET = 8192
"""vLLM V1's max_num_batched_tokens for the OpenAI-compatible server on data-centre GPUs."""
MODES = ("auto", "aggregated", "disaggregated")
"""Deployment modes the simulator runs (attention-FFN disaggregation is not simulated)."""


class KvLink:
    """KV-cache transfer time of a disaggregated estimate, per request: `alpha_s + tokens × s_per_token`,
    with `s_per_token` such that the estimate's prompt length takes its `kv_transfer_ms`."""

    def __init__(self, alpha_s: float, s_per_token: float):
        self.alpha_s, self.s_per_token = float(alpha_s), float(s_per_token)

    @classmethod
    def from_estimate(cls, est, alpha_s: float) -> "KvLink":
        total = est.kv_transfer_ms * 1e-3
        alpha = min(alpha_s, total)
        return cls(alpha, (total - alpha) / max(est.input_len, 1))

    def kv_transfer_s(self, tokens: int) -> float:
        return self.alpha_s + tokens * self.s_per_token


def parse_disagg(text: str | None) -> tuple[int, int] | None:
    """'P:D' → (P, D) prefill and decode instances."""
    if not text:
        return None
    try:
        p, d = (int(x) for x in text.split(":"))
    except ValueError:
        raise SpecError(f"--disagg expects P:D (e.g. 1:2), got {text!r}") from None
    if p < 1 or d < 1:
        raise SpecError(f"--disagg needs at least one prefill and one decode instance, got {text!r}")
    if max(p, d) > MAX_INSTANCES:
        raise SpecError(f"--disagg takes at most {MAX_INSTANCES:,} instances a pool, got {text!r}")
    return p, d


MAX_INSTANCES = 10_000
"""Most replicas (`simulate --replicas`) or instances of a pool (`--disagg P:D`) the simulator builds:
each is an engine of its own (measured: 100,000 replicas take 21 s before the first request)."""


def choose_estimate(model: ModelSpec, chip: ChipSpec, mean_in: float, mean_out: float,
                    slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None, prefix_hit: float = 0.0,
                    num_chips: int | None = None, tp: int | None = None, batch: int | None = None,
                    precision: str | None = None, max_chips: int | None = None, mode: str = "auto",
                    prefill_chip: ChipSpec | str | None = None, decode_chip: ChipSpec | str | None = None,
                    mtp: bool | None = None, mtp_acceptance: float | None = None):
    """The `api.Estimate` for the mean request (what `tokenfab estimate` prints for it), among the
    modes the simulator runs (`auto` chooses between aggregated and disaggregated only)."""
    from tokenfab import api  # the API layer sits above serving; imported where used

    if mode not in MODES:
        raise SpecError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    traffic = Traffic(input_len=max(int(round(mean_in)), 1), output_len=max(int(round(mean_out)), 1),
                      slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms, prefix_cache_hit=min(max(prefix_hit, 0.0), 0.95))
    kw = dict(num_chips=num_chips, tp=tp, batch=batch, precision=precision, max_chips=max_chips,
              prefill_chip=prefill_chip, decode_chip=decode_chip, mtp=mtp, mtp_acceptance=mtp_acceptance)
    return api.estimate(model, chip, traffic, mode=mode, auto_modes=("aggregated", "disaggregated"), **kw)


def choose_mapping(model: ModelSpec, chip: ChipSpec, mean_in: float, mean_out: float,
                   slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None, prefix_hit: float = 0.0,
                   num_chips: int | None = None, tp: int | None = None, batch: int | None = None,
                   precision: str | None = None, max_chips: int = 64, mtp: bool | None = False,
                   mtp_acceptance: float | None = None) -> Mapping:
    """The one-pool mapping `api.estimate` picks for the mean request (best output tok/s per chip
    within the SLOs), with its MTP (off unless `mtp` is None or True)."""
    est = choose_estimate(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, prefix_hit, num_chips=num_chips,
                          tp=tp, batch=batch, precision=precision, max_chips=max_chips, mode="aggregated", mtp=mtp,
                          mtp_acceptance=mtp_acceptance)
    return Mapping.from_estimate(est)


def _chip(chip_id: str) -> ChipSpec:
    from tokenfab import api
    return api._RESOLVED_CHIPS.get(chip_id) or api.resolve_chip(chip_id)


def capacity_rps(est) -> float:
    """Requests/s one unit of the estimate's deployment serves at its batch: aggregated, its
    output tok/s; disaggregated, the slower of its whole prefill and decode pools."""
    if est.mode == "aggregated" or not est.pools:
        return est.output_tok_s_per_chip * est.num_chips / est.output_len
    pools = {p["role"]: p for p in est.pools}
    pre, dec = pools["prefill"], pools["decode"]
    return min(pre["instances"] * pre["num_chips"] * pre["input_tok_s_per_chip"] / est.input_len,
               dec["instances"] * dec["num_chips"] * dec["output_tok_s_per_chip"] / est.output_len)


def from_estimate(model: ModelSpec, est, workload: Workload, replicas: int = 1, disagg: tuple[int, int] | None = None,
                  router: str = "least_outstanding", token_budget: int = DEFAULT_TOKEN_BUDGET,
                  max_num_seqs: int | None = None, block_size: int = 16, prefix_caching: bool = True,
                  system: SystemSpec | None = None, prefill_first: bool = False,
                  poll_steps: int = 1) -> Deployment:
    """The simulated deployment of an `api.Estimate` (module docstring): `replicas` units; a
    disaggregated unit is the estimate's balanced instances, or `disagg = (P, D)` instances.
    `max_num_seqs` caps the decode (or only) pool's batch; `prefill_first` and `poll_steps`: the
    engines' scheduler (`EngineConfig.prefill_first`, `EngineConfig.poll_steps`)."""
    if replicas < 1:
        raise SpecError(f"--replicas must be >= 1, got {replicas}")
    if router not in ROUTERS:
        raise SpecError(f"unknown router {router!r}; expected one of {', '.join(ROUTERS)}")
    if est.mode not in ("aggregated", "disaggregated"):
        raise SpecError(f"the simulator runs aggregated or disaggregated deployments, not {est.mode}")
    if est.mode == "aggregated":
        mapping = Mapping.from_estimate(est)
        return build_deployment(model, _chip(est.chip), workload, mapping=mapping, replicas=replicas, disagg=disagg,
                                router=router, token_budget=token_budget, max_num_seqs=max_num_seqs,
                                block_size=block_size, prefix_caching=prefix_caching, system=system, _estimate=est,
                                prefill_first=prefill_first, poll_steps=poll_steps)
    pools = {p["role"]: p for p in est.pools}
    pre, dec = pools["prefill"], pools["decode"]
    n_p, n_d = disagg or (int(pre["instances"]), int(dec["instances"]))
    pchip, dchip = _chip(pre["chip"]), _chip(dec["chip"])
    dmap = Mapping.from_pool(dec, est.draft_tokens, est.draft_acceptance)
    if max_num_seqs:
        dmap = replace(dmap, batch=max_num_seqs)
    pmap = Mapping.from_pool(pre)
    mean_in, mean_out = workload.mean_lengths()
    longest = int((workload.input_tokens + workload.output_tokens).max())
    dst = engine_step_time(model, dchip, dmap, max_ctx=longest, token_budget=token_budget,
                           system=system or SystemSpec.for_chip(dchip), typical_len=int(mean_in + mean_out),
                           colocated=False)
    pst = engine_step_time(model, pchip, pmap, max_ctx=int(workload.input_tokens.max()), token_budget=token_budget,
                           system=system or SystemSpec.for_chip(pchip), typical_len=int(mean_in), colocated=False)
    link = KvLink.from_estimate(est, pst.eff.scaleout_latency_us * 1e-6)
    prefill = PrefillPool(steptime=pst, engine=EngineConfig(max_num_seqs=pmap.batch, token_budget=token_budget,
                                                            block_size=block_size, prefix_caching=prefix_caching,
                                                            prefill_first=prefill_first, poll_steps=poll_steps),
                          engines_per_instance=pmap.dp, chips_per_instance=pmap.num_chips)
    cfg = EngineConfig(max_num_seqs=dmap.batch, token_budget=token_budget, block_size=block_size,
                       prefix_caching=prefix_caching, prefill_first=prefill_first, poll_steps=poll_steps)
    pool_info = [_pool_info("prefill", pchip.id, pmap, n_p, pst), _pool_info("decode", dchip.id, dmap, n_d, dst)]
    label = (f"{model.id}: prefill {n_p} × ({pchip.id} {pmap.label()}) + decode {n_d} × ({dchip.id} {dmap.label()}), "
             f"disaggregated {n_p}:{n_d} × {replicas}")
    return Deployment(steptime=dst, engine=cfg, replicas=replicas, engines_per_replica=dmap.dp,
                      chips_per_replica=dmap.num_chips, disagg=(n_p, n_d), router=router, label=label,
                      prefill=prefill, transfer=link,
                      info=dict(model=model.id, chip=est.chip, mapping=dmap.__dict__.copy(), mode="disaggregated",
                                replicas=replicas, disagg=[n_p, n_d], router=router, pools=pool_info,
                                kv_capacity_tokens_per_engine=dst.kv_capacity_tokens, token_budget=token_budget,
                                scheduler=scheduler_name(prefill_first), poll_steps=poll_steps, kv_link="estimate", kv_transfer_ms=est.kv_transfer_ms,
                                estimate=_estimate_info(est, replicas)))


def scheduler_name(prefill_first: bool) -> str:
    """How the engines schedule prompts: `prefill-first` (SGLang) or `mixed` (vLLM, TensorRT-LLM)."""
    return "prefill-first" if prefill_first else "mixed"


def _pool_info(role: str, chip: str, mp: Mapping, instances: int, st) -> dict:
    return dict(role=role, chip=chip, instances=instances, chips_per_instance=mp.num_chips,
                chips=instances * mp.num_chips, tp=mp.tp, pp=mp.pp, ep=mp.ep, dp=mp.dp, batch=mp.batch,
                weight_precision=mp.weight_precision, kv_precision=mp.kv_precision, draft_tokens=mp.draft_tokens,
                draft_acceptance=mp.draft_acceptance, kv_capacity_tokens_per_engine=st.kv_capacity_tokens)


def _estimate_info(est, replicas: int) -> dict:
    """What `tokenfab estimate` predicted for this deployment (per unit; capacity for all replicas)."""
    return dict(mode=est.mode, num_chips=est.num_chips, tpot_ms=est.tpot_ms, ttft_ms=est.ttft_ms,
                output_tok_s_per_chip=est.output_tok_s_per_chip, pd_ratio=est.pd_ratio,
                kv_transfer_ms=est.kv_transfer_ms, draft_tokens=est.draft_tokens,
                draft_acceptance=est.draft_acceptance, prefix_cache_hit=est.prefix_cache_hit,
                capacity_rps=capacity_rps(est) * replicas)


def build_deployment(model: ModelSpec, chip: ChipSpec, workload: Workload, mapping: Mapping | None = None,
                     replicas: int = 1, disagg: tuple[int, int] | None = None, router: str = "least_outstanding",
                     slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None,
                     token_budget: int = DEFAULT_TOKEN_BUDGET, max_num_seqs: int | None = None, block_size: int = 16,
                     prefix_caching: bool = True, num_chips: int | None = None, tp: int | None = None,
                     precision: str | None = None, system: SystemSpec | None = None, mode: str = "aggregated",
                     prefill_chip: ChipSpec | str | None = None, decode_chip: ChipSpec | str | None = None,
                     mtp: bool | None = False, mtp_acceptance: float | None = None, _estimate=None,
                     prefill_first: bool = False, poll_steps: int = 1) -> Deployment:
    """A deployment serving `workload`: `replicas` units of `mapping`, or of the deployment
    `api.estimate` chooses for it in `mode` (`choose_estimate`, `from_estimate`).

    Precedence: a `mapping` given is one pool (`disagg` splits it into P prefill and D decode
    instances of that mapping); else `mode="aggregated"` (the default here; the CLI's is `auto`)
    chooses one pool the same way; `auto` or `disaggregated` (or a `prefill_chip`/`decode_chip`)
    run the estimate's choice, and `disagg` then forces separate pools with P:D instances."""
    if replicas < 1:
        raise SpecError(f"--replicas must be >= 1, got {replicas}")
    if router not in ROUTERS:
        raise SpecError(f"unknown router {router!r}; expected one of {', '.join(ROUTERS)}")
    if mode not in MODES:
        raise SpecError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    hetero = prefill_chip is not None or decode_chip is not None
    if hetero and mode == "aggregated":
        raise SpecError("--prefill-chip / --decode-chip need separate pools: drop --mode aggregated")
    mean_in, mean_out = workload.mean_lengths()
    hit = float(workload.prefix_tokens.mean()) / mean_in if mean_in else 0.0
    if mapping is None and (mode != "aggregated" or hetero):
        est = choose_estimate(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit, num_chips=num_chips,
                              tp=tp, batch=max_num_seqs, precision=precision,
                              mode="disaggregated" if disagg else mode, prefill_chip=prefill_chip,
                              decode_chip=decode_chip, mtp=mtp, mtp_acceptance=mtp_acceptance)
        return from_estimate(model, est, workload, replicas=replicas, disagg=disagg, router=router,
                             token_budget=token_budget, max_num_seqs=max_num_seqs, block_size=block_size,
                             prefix_caching=prefix_caching, system=system, prefill_first=prefill_first,
                             poll_steps=poll_steps)
    if mapping is None:
        _estimate = choose_estimate(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit,
                                    num_chips=num_chips, tp=tp, batch=max_num_seqs, precision=precision,
                                    max_chips=64, mode="aggregated", mtp=mtp, mtp_acceptance=mtp_acceptance)
        mapping = Mapping.from_estimate(_estimate)
    if max_num_seqs:
        mapping = replace(mapping, batch=max_num_seqs)
    system = system or SystemSpec.for_chip(chip)
    longest = int((workload.input_tokens + workload.output_tokens).max())
    instances = sum(disagg) if disagg else 1
    colocated = instances * mapping.num_chips <= system.scaleup_domain
    # Aggregated, attention-DP ranks coupled by expert parallelism run as one engine of `ranks`.
    st = engine_step_time(model, chip, mapping, max_ctx=longest, token_budget=token_budget, system=system,
                          typical_len=int(mean_in + mean_out), colocated=colocated, coupled=not disagg)
    cfg = EngineConfig(max_num_seqs=mapping.batch * st.ranks, token_budget=token_budget, block_size=block_size,
                       prefix_caching=prefix_caching, prefill_first=prefill_first, poll_steps=poll_steps)
    mode = f"disaggregated {disagg[0]}:{disagg[1]}" if disagg else "aggregated"
    if disagg:
        pools = [_pool_info("prefill", chip.id, mapping, disagg[0], st), _pool_info("decode", chip.id, mapping,
                                                                                   disagg[1], st)]
    else:
        pools = [_pool_info("aggregated", chip.id, mapping, 1, st)]
    info = dict(model=model.id, chip=chip.id, mapping=mapping.__dict__.copy(), mode=mode,
                replicas=replicas, disagg=list(disagg) if disagg else None, router=router, pools=pools,
                kv_capacity_tokens_per_engine=st.kv_capacity_tokens, token_budget=token_budget,
                scheduler=scheduler_name(prefill_first), poll_steps=poll_steps, kv_link="scale-up" if colocated else "scale-out")
    if _estimate is not None and not disagg and _estimate.num_chips == mapping.num_chips:
        info["estimate"] = _estimate_info(_estimate, replicas)
    return Deployment(steptime=st, engine=cfg, replicas=replicas, engines_per_replica=mapping.dp // st.ranks,
                      chips_per_replica=mapping.num_chips, disagg=disagg, router=router,
                      label=f"{model.id} on {chip.id}: {mapping.label()}, {mode} × {replicas}", info=info)


def with_batch_wait(d: Deployment, steps: int, tokens: int = 0) -> Deployment:
    """`d` with TensorRT-LLM's batch waiting on every engine (`EngineConfig.batch_wait_steps` /
    `batch_wait_tokens`): new prompts held up to `steps` decode steps, or until the waiting prompt
    tokens plus the decode tokens reach `tokens` (0: the timeout alone). `steps` 0: `d` unchanged."""
    if steps < 0 or tokens < 0:
        raise SpecError(f"batch waiting needs steps >= 0 and tokens >= 0, got {steps} and {tokens}")
    if tokens and not steps:
        raise SpecError("--batch-wait-tokens needs --batch-wait-steps (a timeout): without one TensorRT-LLM "
                        "does not hold prompts")
    if not steps:
        return d
    pre = d.prefill
    if pre is not None:
        pre = replace(pre, engine=replace(pre.engine, batch_wait_steps=steps, batch_wait_tokens=tokens))
    return replace(d, engine=replace(d.engine, batch_wait_steps=steps, batch_wait_tokens=tokens), prefill=pre,
                   info=dict(d.info, batch_wait_steps=steps, batch_wait_tokens=tokens))
