"""Collectives on the system's links: an alpha-beta model. Vectorized over group sizes.

All-reduce inside one scale-up domain: a bandwidth term 2(p-1)/p × bytes over the link (ring /
reduce-scatter + all-gather) and a latency term of 2·ceil(log2 p) steps (tree or one-shot
algorithms at small sizes). A group spanning several scale-up domains runs hierarchically, as NCCL
does: reduce-scatter inside each domain over the scale-up fabric, all-reduce of each chip's 1/d
shard across domains over the chips' own NICs (the d chips of a domain use their d NICs in
parallel), then all-gather inside the domain. NCCL splits the buffer into chunks and pipelines the
phases, so the scale-up and scale-out transfers overlap: the bandwidth time is the larger of the
two (latency terms add).

On a full-mesh scale-up domain (AMD Infinity Fabric, Ascend 910B HCCS: one link to each of the
domain − 1 peers, no switch) a group of p chips inside the domain drives only its p − 1 links, so
its bandwidth is (p − 1)/(domain − 1) of the chip's (`scaleup_share`); a switched domain gives any
group the whole. (vLLM PR #39080, on MI355X: "Peak busbw = (N-1) × 76.8 GB/s: TP2=76.8, TP4=230.4,
TP8=537.6 GB/s".)

All-to-all: each rank sends (p-1)/p of its bytes. When the group spans domains, the share bound
for other domains goes over the NICs while the in-domain share goes over the scale-up fabric at
the same time, so the time is the larger of the two (DeepEP's "bottleneck" link).
"""

from __future__ import annotations

import numpy as np

from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs.system import SystemSpec


def scaleup_share(chips, system: SystemSpec):
    """Share of a chip's scale-up bandwidth that a group of `chips` inside one domain can drive:
    (chips − 1)/(domain − 1) on a full mesh (one link per peer), 1 on a switched fabric."""
    dom = float(system.scaleup_domain)
    k = np.clip(np.asarray(chips, dtype=float), 2.0, max(dom, 2.0))
    mesh = np.asarray(getattr(system, "scaleup_full_mesh", False), dtype=bool) & (dom > 2.0)
    return np.where(mesh, (k - 1.0) / max(dom - 1.0, 1.0), 1.0)


def _links(group, system: SystemSpec, eff: Efficiency):
    """(p, chips per domain d, domains n, scale-up B/s, scale-out B/s, alpha up s, alpha out s)."""
    p = np.maximum(np.asarray(group, dtype=float), 1.0)
    d = np.minimum(p, float(system.scaleup_domain))
    n = np.ceil(p / d)
    bw_up = system.scaleup_gb_s * 1e9 * eff.comm_bw_frac * scaleup_share(d, system)
    bw_out = system.scaleout_gb_s * 1e9 * eff.comm_bw_frac
    return p, d, n, bw_up, bw_out, eff.comm_latency_us * 1e-6, eff.scaleout_latency_us * 1e-6


def _steps(k):
    return np.ceil(np.log2(np.maximum(k, 1.0)))


def allreduce_time_s(bytes_, group, system: SystemSpec, eff: Efficiency):
    """Seconds for an all-reduce of `bytes_` per rank across `group` ranks (0 when group is 1)."""
    p, d, n, bw_up, bw_out, a_up, a_out = _links(group, system, eff)
    b = np.asarray(bytes_, dtype=float)
    latency = 2.0 * _steps(d) * a_up + np.where(n > 1, 2.0 * _steps(n) * a_out, 0.0)
    intra = 2.0 * (d - 1.0) / d * b / bw_up
    inter = np.where(n > 1, 2.0 * (n - 1.0) / n * (b / d) / bw_out, 0.0)
    t = latency + np.maximum(intra, inter)
    if eff.allreduce_latency_us is not None:
        # Inside one domain serving stacks run a custom all-reduce where it beats NCCL.
        t = np.where(n > 1, t, np.minimum(t, custom_allreduce_time_s(b, d, system, eff)))
    return np.where(p > 1, t, 0.0)


def custom_allreduce_time_s(bytes_, group, system: SystemSpec, eff: Efficiency):
    """Seconds for the custom (one/two-shot) all-reduce of serving stacks inside one scale-up domain:
    a flat latency (`allreduce_latency_us`) plus the two-shot volume 2(p-1)/p × bytes at its own share
    of the link (`allreduce_bw_frac`, else `comm_bw_frac`)."""
    p = np.maximum(np.asarray(group, dtype=float), 1.0)
    bw = system.scaleup_gb_s * 1e9 * (eff.allreduce_bw_frac or eff.comm_bw_frac) * scaleup_share(p, system)
    alpha = (eff.allreduce_latency_us if eff.allreduce_latency_us is not None else 2.0 * eff.comm_latency_us) * 1e-6
    return np.where(p > 1, alpha + 2.0 * (p - 1.0) / p * np.asarray(bytes_, dtype=float) / bw, 0.0)


def allgather_time_s(bytes_total, group, system: SystemSpec, eff: Efficiency):
    """Seconds for an all-gather whose gathered result is `bytes_total` per rank (nccl-tests size).

    Ring inside a domain moves (p-1)/p of the result over each link; across domains the chip's
    NIC carries the other domains' (n-1)/n share of its 1/d slice (hierarchical)."""
    p, d, n, bw_up, bw_out, a_up, a_out = _links(group, system, eff)
    b = np.asarray(bytes_total, dtype=float)
    latency = _steps(d) * a_up + np.where(n > 1, _steps(n) * a_out, 0.0)
    intra = (d - 1.0) / d * b / bw_up
    inter = np.where(n > 1, (n - 1.0) / n * (b / d) / bw_out, 0.0)
    return np.where(p > 1, latency + np.maximum(intra, inter), 0.0)


def reducescatter_time_s(bytes_total, group, system: SystemSpec, eff: Efficiency):
    """Seconds for a reduce-scatter of `bytes_total` per rank: the mirror image of an all-gather."""
    return allgather_time_s(bytes_total, group, system, eff)


def alltoall_split(bytes_, group, system: SystemSpec):
    """Bytes each rank sends (inside its scale-up domain, to other domains) in an all-to-all."""
    p = np.maximum(np.asarray(group, dtype=float), 1.0)
    d = np.minimum(p, float(system.scaleup_domain))
    b = np.asarray(bytes_, dtype=float)
    return b * (d - 1.0) / p, b * (p - d) / p


def alltoall_links(group, system: SystemSpec, eff: Efficiency):
    """(p, d, n, scale-up B/s, scale-out B/s, fixed s inside, fixed s across) of an expert dispatch or
    combine: the dispatch kernels' own link share and flat call latency where the chip's calibration
    fitted them (`Efficiency.alltoall_bw_frac`, `alltoall_latency_us`), else the collectives'."""
    p, d, n, bw_up, bw_out, a_up, a_out = _links(group, system, eff)
    if eff.alltoall_bw_frac:
        scale = eff.alltoall_bw_frac / eff.comm_bw_frac
        bw_up, bw_out = bw_up * scale, bw_out * scale
    if eff.alltoall_latency_us is not None:
        return p, d, n, bw_up, bw_out, np.full_like(p, eff.alltoall_latency_us * 1e-6), \
            np.full_like(p, eff.alltoall_latency_us * 1e-6)
    return p, d, n, bw_up, bw_out, _steps(d) * a_up, _steps(p) * a_out


def alltoall_time_s(bytes_, group, system: SystemSpec, eff: Efficiency):
    """Seconds for an all-to-all where each rank holds `bytes_` to scatter over `group` ranks; 0 when
    there is nothing to send (no all-to-all runs: experts sharded over the TP group, where each chip
    already holds every token and the TP all-reduce sums the expert outputs)."""
    p, d, n, bw_up, bw_out, a_up, a_out = alltoall_links(group, system, eff)
    inside, outside = alltoall_split(bytes_, group, system)
    t_up = a_up + inside / bw_up
    t_out = np.where(n > 1, a_out + outside / bw_out, 0.0)
    return np.where((p > 1) & (np.asarray(bytes_, dtype=float) > 0), np.maximum(t_up, t_out), 0.0)


def p2p_time_s(bytes_, crosses_node, system: SystemSpec, eff: Efficiency):
    """Seconds to send `bytes_` to the next pipeline stage (one link of a full mesh)."""
    up = system.scaleup_gb_s * scaleup_share(2.0, system)
    bw = np.where(crosses_node, system.scaleout_gb_s, up) * 1e9 * eff.comm_bw_frac
    alpha = np.where(crosses_node, eff.scaleout_latency_us, eff.comm_latency_us) * 1e-6
    return alpha + np.asarray(bytes_) / bw
