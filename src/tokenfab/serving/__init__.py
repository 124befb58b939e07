"""Discrete-event simulation of LLM serving on the engine's step times, and capacity planning.

  traffic     arrivals, length distributions, built-in profiles, trace replay → `Workload`
  steptime    the adapter to the engine: interpolated step-time tables per mapping
  scheduler   one engine: continuous batching, chunked prefill, KV blocks, preemption, prefix cache
  disagg      prefill → decode KV handoff over the system's links
  simulator   the heapq event loop, router, replicas → `SimResult`
  deployment  the deployment `api.estimate` chooses (one pool, or prefill and decode pools with
              their own chips and mappings; MTP) + step times + limits → `Deployment`
  metrics     TTFT/TPOT/ITL/E2E percentiles, throughput, goodput, series, Chrome trace
  plan        highest rate within SLOs (bisection), best mapping and mode, fleet and cost
(MLPerf server rows by simulation: `validate.server_sim.predict_server_row`.)
(`plan.plan` is not re-exported here: the name would hide the module.)
"""

from tokenfab.serving.deployment import build_deployment, choose_estimate, choose_mapping, from_estimate
from tokenfab.serving.metrics import summarize
from tokenfab.serving.plan import max_rate
from tokenfab.serving.simulator import Deployment, EngineConfig, PrefillPool, SimResult, simulate
from tokenfab.serving.steptime import (
    ConstantStepTime,
    EngineStepTime,
    Mapping,
    engine_step_time,
)
from tokenfab.serving.traffic import (
    TrafficProfile,
    Workload,
    generate,
    load_profile,
    read_trace,
)

__all__ = [
    "build_deployment", "choose_estimate", "choose_mapping", "from_estimate", "summarize", "max_rate",
    "Deployment", "EngineConfig", "PrefillPool", "SimResult", "simulate", "ConstantStepTime", "EngineStepTime", "Mapping", "engine_step_time",
    "TrafficProfile", "Workload", "generate", "load_profile", "read_trace",
]
