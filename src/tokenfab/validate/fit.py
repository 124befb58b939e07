"""Least squares for the calibration fits: one deterministic Levenberg-Marquardt.

Both fits (microbenchmark rows, `validate.calibrate`; aiconfigurator's kernel tables,
`validate.aic_fit`) use it, so a calibration file is reproduced byte for byte from its inputs
(no random restarts, a fixed damping schedule).
"""

from __future__ import annotations

import numpy as np


def levenberg_marquardt(fun, z0, iters: int = 60) -> np.ndarray:
    """Deterministic LM with a forward-difference Jacobian (no randomness, fixed schedule)."""
    z = np.array(z0, dtype=float)
    r = fun(z)
    cost = float(r @ r)
    lam = 1e-2
    for _ in range(iters):
        h = 1e-5
        J = np.empty((r.size, z.size))
        for j in range(z.size):
            dz = z.copy()
            dz[j] += h
            J[:, j] = (fun(dz) - r) / h
        A = J.T @ J
        g = J.T @ r
        improved = False
        for _ in range(12):
            step = np.linalg.solve(A + lam * np.diag(np.diag(A) + 1e-12), -g)
            z_new = z + step
            r_new = fun(z_new)
            c_new = float(r_new @ r_new)
            if c_new < cost:
                z, r, improved = z_new, r_new, True
                rel = (cost - c_new) / max(cost, 1e-300)
                cost = c_new
                lam = max(lam / 3.0, 1e-9)
                break
            lam *= 4.0
        if not improved or rel < 1e-10:
            break
    return z


def to_unbounded(x, lo, hi):
    """The logit of `x` within (lo, hi): the unconstrained variable the fits move (`to_bounded` inverts it)."""
    u = np.clip((x - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return np.log(u / (1 - u))


def to_bounded(z, lo, hi):
    """A value within (lo, hi) from its unconstrained logit `z` (logistic bounds)."""
    return lo + (hi - lo) / (1.0 + np.exp(-np.clip(z, -500, 500)))
