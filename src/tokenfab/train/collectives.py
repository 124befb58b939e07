"""Ring collectives of training groups whose members sit `local` to a scale-up domain.

`perf.comm` prices groups whose ranks are consecutive chips (tensor and expert parallel, which
Megatron places innermost). A data-parallel or context-parallel group is strided: its ranks are
`tp` (or `tp x cp`) chips apart, so only `domain / stride` of them share a scale-up domain and the
rest of the ring runs over each chip's own NIC. Same alpha-beta model as `perf.comm` (hierarchical:
the in-domain and cross-domain phases pipeline, so the larger bandwidth time counts), with the
members per domain given per point.
"""

from __future__ import annotations

import numpy as np

from tokenfab.perf.comm import scaleup_share
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs.system import SystemSpec


def _steps(k):
    return np.ceil(np.log2(np.maximum(k, 1.0)))


def ring_seconds(bytes_total, group, local, system: SystemSpec, eff: Efficiency, passes: float = 1.0):
    """Seconds of a reduce-scatter or all-gather (`passes` 1) or all-reduce (2) of a `bytes_total`
    buffer per rank over `group` ranks, `local` of which share a scale-up domain."""
    p = np.maximum(np.asarray(group, dtype=float), 1.0)
    d = np.clip(np.asarray(local, dtype=float), 1.0, p)
    n = np.ceil(p / d)
    b = np.asarray(bytes_total, dtype=float)
    bw_up = system.scaleup_gb_s * 1e9 * eff.comm_bw_frac * scaleup_share(d, system)
    bw_out = system.scaleout_gb_s * 1e9 * eff.comm_bw_frac
    latency = passes * 1e-6 * (_steps(d) * eff.comm_latency_us
                               + np.where(n > 1, _steps(n) * eff.scaleout_latency_us, 0.0))
    intra = passes * (d - 1.0) / d * b / bw_up
    inter = np.where(n > 1, passes * (n - 1.0) / n * (b / d) / bw_out, 0.0)
    return np.where(p > 1, latency + np.maximum(intra, inter), 0.0)


def members_per_domain(stride, system: SystemSpec):
    """Ranks of a group strided by `stride` chips that share one scale-up domain (at least 1)."""
    return np.maximum(np.floor(system.scaleup_domain / np.maximum(np.asarray(stride, float), 1.0)), 1.0)
