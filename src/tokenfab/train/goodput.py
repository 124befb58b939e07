"""Goodput at scale: the share of wall-clock time that trains, given failures and checkpoints.

With N chips failing at λ per chip-hour the job is interrupted every MTBF = 1/(λN) hours. It
checkpoints every τ seconds, each write taking δ = checkpoint bytes / (N × write bandwidth per
chip); after a failure it loses the restart time R and on average τ/2 of work. Young's interval
τ = sqrt(2δ·MTBF) (J. W. Young, CACM 17(9), 1974) minimizes the loss δ/τ + (τ/2 + R)/MTBF, and
goodput = 1 − loss. The checkpoint holds the bf16 weights and the optimizer states.
"""

from __future__ import annotations

import numpy as np

from tokenfab.specs.model import ModelSpec
from tokenfab.train.stack import TrainingStack


def checkpoint_bytes(model: ModelSpec, stack: TrainingStack) -> float:
    """Bytes of one checkpoint: every parameter's working weight and optimizer state."""
    return float(model.total_params()) * (stack.weight_bytes + stack.optimizer_bytes)


def goodput(chips, model: ModelSpec, stack: TrainingStack) -> np.ndarray:
    """Fraction of wall-clock time spent training on `chips` chips (1 with no failures)."""
    n = np.maximum(np.asarray(chips, dtype=float), 1.0)
    lam = stack.failures_per_chip_hour
    if lam <= 0:
        return np.ones_like(n)
    mtbf_s = 3600.0 / (lam * n)
    write_s = checkpoint_bytes(model, stack) / (n * stack.checkpoint_gb_s_per_chip * 1e9)
    tau = np.sqrt(2.0 * write_s * mtbf_s)
    loss = write_s / tau + (tau / 2.0 + stack.restart_s) / mtbf_s
    return 1.0 - np.minimum(loss, stack.max_goodput_loss)
