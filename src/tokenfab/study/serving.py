"""The serving section: request-level latency distributions from `tokenfab.serving`, if present.

The simulator is optional (and may be missing from a build), so it is imported here only and a
study reports the section as unavailable, with the reason, when it cannot run. The adapter
draws a workload (a serving traffic profile, a trace, or the study's traffic case as fixed
lengths), deploys the engine's best mapping for the traffic case (`serving.deployment.
build_deployment`), runs `serving.simulator.simulate`, and keeps per-request TTFT and TPOT
percentiles and CDFs plus the simulator's own summary (`serving.metrics.summarize`).
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import numpy as np

from tokenfab.specs import ChipSpec, ModelSpec, SpecError
from tokenfab.specs.study import ServingSection, TrafficCase

CDF_POINTS = 200
"""Points kept of each latency CDF for the report."""
PERCENTILES = (50, 90, 95, 99)


def simulator() -> tuple[Any, str | None]:
    """(the serving API as a namespace, None) or (None, why it is unavailable)."""
    try:
        from tokenfab.serving import metrics
        from tokenfab.serving.deployment import build_deployment
        from tokenfab.serving.simulator import simulate
        from tokenfab.serving.steptime import Mapping
    except ImportError as exc:
        return None, f"the serving simulator (tokenfab.serving) is not available in this build ({exc})"
    return SimpleNamespace(build_deployment=build_deployment, simulate=simulate, Mapping=Mapping,
                           metrics=metrics), None


def profile_fingerprint(section: ServingSection, case: TrafficCase, resolve_path) -> Any:
    """What the drawn workload depends on (hashed with the section's inputs)."""
    if section.profile is None:
        return {"lengths_from_traffic_case": case.model_dump(mode="json")}
    try:
        from tokenfab.serving import traffic as st
    except ImportError:
        return {"profile": section.profile}
    if st.is_trace_path(section.profile):
        path = resolve_path(section.profile)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return {"trace": section.profile, "sha256": digest}
    prof = section.profile
    if prof.endswith((".yaml", ".yml")):
        prof = str(resolve_path(prof))
    return {"profile": st.load_profile(prof).model_dump(mode="json")}


def _workload(section: ServingSection, case: TrafficCase, resolve_path):
    from tokenfab.serving import traffic as st

    if section.profile is None:
        profile = st.TrafficProfile(
            name=case.name, input=st.LengthSpec(kind="fixed", value=case.input_len),
            output=st.LengthSpec(kind="fixed", value=case.output_len),
            slo_ttft_ms=case.slo_ttft_ms, slo_tpot_ms=case.slo_tpot_ms)
        return st.generate(profile, section.rate_per_s, section.requests, section.seed)
    prof = section.profile
    if st.is_trace_path(prof) or prof.endswith((".yaml", ".yml")):
        prof = str(resolve_path(prof))
    return st.workload_for(prof, section.rate_per_s, section.requests, section.seed)


def latency_summary(values: np.ndarray) -> dict:
    """Percentiles, mean and a CDF (≤ `CDF_POINTS` points) of one latency (finite values), ms."""
    v = np.asarray(values, dtype=float)
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return {"n": 0}
    idx = np.unique(np.linspace(0, v.size - 1, min(CDF_POINTS, v.size)).round().astype(int))
    return {"n": int(v.size), "mean": float(v.mean()),
            **{f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES},
            "cdf_ms": v[idx].tolist(), "cdf_frac": ((idx + 1) / v.size).tolist()}


def run_serving(model: ModelSpec, chip: ChipSpec, case: TrafficCase, section: ServingSection,
                estimate: Any, resolve_path) -> dict:
    """Simulate `section.requests` requests on `section.replicas` replicas of the estimate's mapping.

    Returns `{"status": "ok", "ttft_ms": {...}, "tpot_ms": {...}, ...}`, or `unavailable` / `error`
    with a reason.
    """
    sim, why = simulator()
    if sim is None:
        return {"status": "unavailable", "reason": why}
    try:
        workload = _workload(section, case, resolve_path)
        if getattr(estimate, "mode", "aggregated") == "disaggregated":
            # Both pools of the estimate, each with its own mapping and chip (serving.deployment).
            from tokenfab.serving.deployment import from_estimate
            deployment = from_estimate(model, estimate, workload, replicas=section.replicas)
        else:  # one pool (attention-FFN pools run as their decode mapping: the simulator has no such mode)
            deployment = sim.build_deployment(model, chip, workload, mapping=sim.Mapping.from_estimate(estimate),
                                              replicas=section.replicas, slo_ttft_ms=case.slo_ttft_ms,
                                              slo_tpot_ms=case.slo_tpot_ms)
        result = sim.simulate(workload, deployment)
        lat = sim.metrics.request_latencies(result)
        summary = sim.metrics.summarize(result, case.slo_ttft_ms, case.slo_tpot_ms)
    except SpecError as exc:
        return {"status": "error", "reason": str(exc)}
    except (AttributeError, TypeError) as exc:  # the simulator's API moved under us
        return {"status": "unavailable", "reason": f"the serving simulator's API differs from what studies use ({exc})"}
    keep = ("throughput_tok_s", "throughput_rps", "goodput_rps", "slo_attainment", "offered_rps", "duration_s")
    return {"status": "ok", "requests": len(workload), "rate_per_s": section.rate_per_s,
            "replicas": section.replicas, "chips": int(deployment.total_chips), "deployment": deployment.label,
            "ttft_ms": latency_summary(lat["ttft"]), "tpot_ms": latency_summary(lat["tpot"]),
            "metrics": {k: summary.get(k) for k in keep}}
