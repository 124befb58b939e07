"""Expert-parallel all-to-all in training, as DeepEP's internode kernels run it.

A token routed to k experts spread over the `n` nodes (scale-up domains) of its expert-parallel
group crosses the scale-out network once per *distinct remote node* among its experts, then is
forwarded to the experts' chips over the scale-up fabric (DeepSeek-V3, arXiv 2412.19437 §3.2.2:
"IB-to-NVLink forwarding"; DeepEP's internode dispatch). With experts placed uniformly the
expected distinct nodes are n·(1 − (1 − 1/n)^k); a model with group-limited routing (`n_group`,
`topk_group` in its config.json: each token's experts lie in at most `topk_group` groups) reaches
at most `topk_group` nodes when a group sits within one node (DeepSeek-V3: 8 groups, top-4 groups,
"each token will be sent to at most 4 nodes"). The combine (and the backward of each) moves the
same copies back. In-domain copies go over the scale-up links at the same time; the slower side
sets the time.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from tokenfab.perf import comm
from tokenfab.perf.efficiency import Efficiency
from tokenfab.specs.system import SystemSpec


@lru_cache(maxsize=None)
def routing_groups(model_id: str) -> tuple[int, int]:
    """(n_group, topk_group) of a catalog model's config.json; (1, 1) when it has none."""
    from tokenfab import catalog

    path = catalog._dir("models") / f"{model_id}.json"
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        return 1, 1
    return int(cfg.get("n_group") or 1), int(cfg.get("topk_group") or 1)


def remote_nodes_per_token(model, ep, system: SystemSpec) -> np.ndarray:
    """Expected scale-out copies of one token: distinct remote nodes among its experts."""
    ep = np.asarray(ep, dtype=float)
    n = np.ceil(ep / system.scaleup_domain)
    k = float(model.experts_per_token)
    distinct = n * (1.0 - (1.0 - 1.0 / np.maximum(n, 1.0)) ** k)
    n_group, topk = routing_groups(model.id)
    if n_group > 1 and topk < n_group:
        # A group spans ceil(n / n_group) nodes; top-k groups reach at most that many.
        distinct = np.minimum(distinct, topk * np.ceil(n / n_group))
    return np.where(n > 1, distinct * (n - 1.0) / n, 0.0)


def alltoall_seconds(model, tokens_per_chip, ep, bytes_per_element, system: SystemSpec, eff: Efficiency):
    """Seconds of one dispatch (or combine) of `tokens_per_chip` tokens over `ep` ranks."""
    ep = np.asarray(ep, dtype=float)
    t = np.asarray(tokens_per_chip, dtype=float) * model.hidden_size * bytes_per_element
    d = np.minimum(ep, float(system.scaleup_domain))
    k = float(model.experts_per_token)
    inside = t * k * (d - 1.0) / np.maximum(d, 1.0)
    outside = t * remote_nodes_per_token(model, ep, system)
    _, _, _, bw_up, bw_out, a_up, a_out = comm.alltoall_links(ep, system, eff)
    t_up = a_up + inside / bw_up
    t_out = np.where(ep > d, a_out + outside / bw_out, 0.0)
    return np.where(ep > 1, np.maximum(t_up, t_out), 0.0)
