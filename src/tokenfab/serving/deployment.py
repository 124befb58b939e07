"""Build a simulated deployment of a model on a chip: mapping, step-time tables, engine limits.

The mapping is the one `tokenfab.api.estimate` chooses for the workload's mean lengths and SLOs
(or one given); the step times come from the engine through `steptime`.
"""

from __future__ import annotations

from dataclasses import replace

from tokenfab.serving.simulator import ROUTERS, Deployment, EngineConfig
from tokenfab.serving.steptime import Mapping, engine_step_time
from tokenfab.serving.traffic import Workload
from tokenfab.specs import ChipSpec, ModelSpec, SpecError, SystemSpec, Traffic

DEFAULT_TOKEN_BUDGET = 8192
"""vLLM V1's max_num_batched_tokens for the OpenAI-compatible server on data-centre GPUs."""


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
    return p, d


def choose_mapping(model: ModelSpec, chip: ChipSpec, mean_in: float, mean_out: float,
                   slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None, prefix_hit: float = 0.0,
                   num_chips: int | None = None, tp: int | None = None, batch: int | None = None,
                   precision: str | None = None, max_chips: int = 64) -> Mapping:
    """The mapping `api.estimate` picks for the mean request (best output tok/s per chip within the SLOs)."""
    from tokenfab import api  # the API layer sits above serving; imported where used

    traffic = Traffic(input_len=max(int(round(mean_in)), 1), output_len=max(int(round(mean_out)), 1),
                      slo_ttft_ms=slo_ttft_ms, slo_tpot_ms=slo_tpot_ms, prefix_cache_hit=min(max(prefix_hit, 0.0), 0.95))
    # The simulator runs one aggregated pool (its own --disagg splits it) without MTP.
    est = api.estimate(model, chip, traffic, num_chips=num_chips, tp=tp, batch=batch, precision=precision,
                       max_chips=max_chips, mode="aggregated", mtp=False)
    return Mapping.from_estimate(est)


def build_deployment(model: ModelSpec, chip: ChipSpec, workload: Workload, mapping: Mapping | None = None,
                     replicas: int = 1, disagg: tuple[int, int] | None = None, router: str = "least_outstanding",
                     slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None,
                     token_budget: int = DEFAULT_TOKEN_BUDGET, max_num_seqs: int | None = None, block_size: int = 16,
                     prefix_caching: bool = True, num_chips: int | None = None, tp: int | None = None,
                     precision: str | None = None, system: SystemSpec | None = None) -> Deployment:
    """A deployment serving `workload`: `replicas` units of `mapping` (chosen if None)."""
    if replicas < 1:
        raise SpecError(f"--replicas must be >= 1, got {replicas}")
    if router not in ROUTERS:
        raise SpecError(f"unknown router {router!r}; expected one of {', '.join(ROUTERS)}")
    mean_in, mean_out = workload.mean_lengths()
    if mapping is None:
        hit = float(workload.prefix_tokens.mean()) / mean_in if mean_in else 0.0
        mapping = choose_mapping(model, chip, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, hit,
                                 num_chips=num_chips, tp=tp, batch=max_num_seqs, precision=precision)
    if max_num_seqs:
        mapping = replace(mapping, batch=max_num_seqs)
    system = system or SystemSpec.for_chip(chip)
    longest = int((workload.input_tokens + workload.output_tokens).max())
    instances = sum(disagg) if disagg else 1
    colocated = instances * mapping.num_chips <= system.scaleup_domain
    st = engine_step_time(model, chip, mapping, max_ctx=longest, token_budget=token_budget, system=system,
                          typical_len=int(mean_in + mean_out), colocated=colocated)
    cfg = EngineConfig(max_num_seqs=mapping.batch, token_budget=token_budget, block_size=block_size,
                       prefix_caching=prefix_caching)
    mode = f"disaggregated {disagg[0]}:{disagg[1]}" if disagg else "aggregated"
    return Deployment(steptime=st, engine=cfg, replicas=replicas, engines_per_replica=mapping.dp,
                      chips_per_replica=mapping.num_chips, disagg=disagg, router=router,
                      label=f"{model.id} on {chip.id}: {mapping.label()}, {mode} × {replicas}",
                      info=dict(model=model.id, chip=chip.id, mapping=mapping.__dict__.copy(), mode=mode,
                                replicas=replicas, disagg=list(disagg) if disagg else None, router=router,
                                kv_capacity_tokens_per_engine=st.kv_capacity_tokens, token_budget=token_budget,
                                kv_link="scale-up" if colocated else "scale-out"))
