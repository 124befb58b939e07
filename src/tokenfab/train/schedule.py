"""Pipeline schedules: the idle time (bubble) of a training step and the micro-batches in flight.

With `p` stages, `m` micro-batches per step, and per micro-batch on the slowest stage a forward
`tf` and a backward `tb` = B + W, where W is the weight-gradient GEMMs (`tw`, the part the
zero-bubble schedules defer) and B everything else of the backward — the input-gradient GEMMs,
the whole attention backward, the elementwise backward, recomputation and the backward
collectives (arXiv 2401.10241 §2: "B ... computes the gradient for the input, W ... for the
parameters"); without `tw`, B = W = tb/2 (equal GEMM FLOPs, the paper's idealization). A step
lasts m·(tf + tb) + bubble:

- 1F1B (PipeDream-flush, arXiv 2104.04473 §2.2.1): bubble (p-1)·(tf + tb); p micro-batches held.
- interleaved, v model chunks per chip (same paper §2.2.2): (p-1)·(tf + tb)/v; activation memory
  grows by 1 + (p-1)/(p·v); v more pipeline sends per micro-batch.
- ZB-H1 (zero bubble, arXiv 2401.10241 §3): (p-1)·(tf + B - W) with 1F1B's memory.
- ZB-H2 (same): (p-1)·(tf + B - 2W), at least 0; 2p-1 micro-batches held (with m < 2p-1 micro-batches
  per step it cannot fill its warm-up: ZB-H1's bubble, `bubble_seconds`).
- DualPipe (DeepSeek-V3, arXiv 2412.19437 Table 2): (p/2-1)·(F&B + B - 3W), where that table's B
  is the full backward (tb) and F&B the overlapped forward+backward chunk pair (tf + tb when compute
  bound): (p/2-1)·(tf + 2·tb - 3W), (p/2-1)·(tf + tb/2) at W = tb/2; two copies of the stage's
  weights, p+1 micro-batches held; needs an even p. (The zero-bubble paper's B is the input-gradient half: ZB-H1 is the same (p-1)·tf in both.)

Checked against the zero-bubble paper's own numbers (`tests/test_train_schedule_zb.py`): fed its
profiled T_F, T_B, T_W (Table 6) plus 2 (ZB-H2) or 4 (ZB-H1) stage sends per boundary, these give its
Table 5 bubble rates to four digits on all 12 settings. Its searched ZB-2p has less bubble than the
closed-form ZB-H2 priced here (0.1-4.3% against 2.6-11%), and at its measured settings (Table 4,
`training.csv` T0112-T0159) the engine's ZB-H2/1F1B throughput ratio is 0.96 of the measured
ZB-2p/1F1B (ZB-H1 against ZB-1p: 1.00), so the zero-bubble credit is not overstated. The ZB-H2
parallelogram needs the zero-bubble fork's optimizer post-validation (§4); with the usual all-reduce
before the optimizer step the paper measures 7-10% less (Table 7), a stack this model does not price.
"""

from __future__ import annotations

import numpy as np

from tokenfab.train.stack import SCHEDULES

INTERLEAVE = 2
"""Model chunks per chip of the interleaved schedule searched (v); Megatron's examples run 2-4."""


def bubble_seconds(schedule, p, tf, tb, v=INTERLEAVE, tw=None, m=None) -> np.ndarray:
    """Idle seconds per step on the slowest stage. `schedule`: index into `SCHEDULES`; `tw` the
    weight-gradient part W of `tb` (None: tb/2); `m` the micro-batches per step (None: enough for
    every schedule). ZB-H2 fills its warm-up with 2p-1 forwards (its first stage holds 2p-1
    micro-batches, arXiv 2401.10241 Table 2); with fewer it idles as ZB-H1 does. At m = p that is
    the paper's own count, a ZB step of (m+p-1)(T_F+T_B) + T_W ("when m <= p ZB-1p and ZB-2p are
    essentially the same", Appendix H, Table 9: ZB-2p/1F1B measured 1.20-1.32 at m = p, where
    ZB-H2's formula would give 1.40-1.62); between p and 2p-1 ZB-H1's bubble is an upper bound
    (Table 5: ZB-2p's is never above ZB-1p's, which equals ZB-H1's)."""
    s, p, tf, tb = (np.asarray(x, dtype=float) for x in (schedule, p, tf, tb))
    w = tb / 2.0 if tw is None else np.clip(np.asarray(tw, dtype=float), 0.0, tb)
    b = tb - w
    one_f_one_b = (p - 1.0) * (tf + tb)
    zb_h1 = (p - 1.0) * np.maximum(tf + b - w, 0.0)
    zb_h2 = (p - 1.0) * np.maximum(tf + b - 2.0 * w, 0.0)
    if m is not None:
        zb_h2 = np.where(np.asarray(m, dtype=float) >= 2.0 * p - 1.0, zb_h2, zb_h1)
    out = np.select(
        [s == 0, s == 1, s == 2, s == 3, s == 4],
        [one_f_one_b, one_f_one_b / v, zb_h1, zb_h2,
         np.maximum(p / 2.0 - 1.0, 0.0) * np.maximum(tf + tb + tb - 3.0 * w, 0.0)])
    return np.where(p > 1, out, 0.0)


def inflight_microbatches(schedule, p, v=INTERLEAVE) -> np.ndarray:
    """Micro-batches whose activations the first stage holds at the peak."""
    s, p = np.asarray(schedule, dtype=float), np.asarray(p, dtype=float)
    out = np.select([s == 1, s == 3, s == 4], [p * (1.0 + (p - 1.0) / (p * v)), 2.0 * p - 1.0, p + 1.0], p)
    return np.where(p > 1, out, 1.0)


def weight_copies(schedule) -> np.ndarray:
    """Copies of a stage's weights on a chip (DualPipe keeps two)."""
    return np.where(np.asarray(schedule) == SCHEDULES.index("dualpipe"), 2.0, 1.0)


def sends_per_microbatch(schedule, v=INTERLEAVE) -> np.ndarray:
    """Stage-to-stage activation sends per micro-batch and direction (interleaving sends v times)."""
    return np.where(np.asarray(schedule) == SCHEDULES.index("interleaved"), float(v), 1.0)


def bubble_fraction(schedule: str, p: int, m: int, tf: float = 1.0, tb: float = 2.0,
                    tw: float | None = None) -> float:
    """Share of a step the slowest stage idles: bubble / (m·(tf + tb) + bubble)."""
    bub = float(bubble_seconds(SCHEDULES.index(schedule), p, tf, tb, tw=tw, m=m))
    return bub / (m * (tf + tb) + bub)
