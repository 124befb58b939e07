"""Gated DeltaNet prefill kernels against aiconfigurator's measured `gdn_perf` tables (issue 14).

aiconfigurator ships, per system and serving framework, the latency of one layer's linear-attention
kernels for the Qwen3.5 family (`linear_attention/<framework>/<version>/gdn_perf`): the chunked prefill
(`chunk_gated_delta_rule`, FLA's Triton chain; vLLM's FlashInfer kernel `..._flashinfer`) over
`batch_size` prompts of `seq_len` tokens with `num_k_heads` / `num_v_heads` heads of 128 per rank, the
convolutions, and the recurrent decode kernel.

The engine prices the prefill as a `scan` op (`graph.linear_attention`, `perf.kinds`): the slowest of
its FLOPs at `Efficiency.scan_compute_frac` of the BF16 peak, its bytes at the streaming fraction, and
its chunks per sequence at `Efficiency.scan_chunk_us` each, plus the chain's launches. `fit_chip` fits
the two on the reference framework's chunked-prefill rows whose measured latency is at least
`FIT_MIN_S` (below it the tables' ~20 µs of launch and setup per call dominate), by a grid
(`FRAC_GRID` x `CHUNK_US_GRID`), loss mean |log(predicted / measured)| (a median would ignore whichever
bound binds on fewer than half the rows); applied where it lowers those
rows' median |error| (`tokenfab calibrate --source aiconfigurator`).

What the tables show (aiconfigurator-core 0.12.0): one prompt's chunks take 1.3-2.1 µs each on every
NVIDIA system (FLA), whatever its core count; with many sequences or heads FLA's chain sustains 4-9 %
of the BF16 peak, FlashInfer's kernel (vLLM) 20-35 %.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from tokenfab.specs import ChipSpec, SystemSpec
from tokenfab.validate import aiconfigurator as aic

TABLE = "gdn_perf"
CHUNK_KERNEL = "chunk_gated_delta_rule"
"""Prefix of the chunked-prefill kernel sources (FLA's Triton chain; `_flashinfer`, `_triton` variants)."""
FIT_MIN_S = 100e-6
"""Rows at least this long enter the fit (see the module docstring)."""
FRAC_GRID = np.round(np.arange(0.01, 0.6001, 0.0025), 4)
CHUNK_US_GRID = np.round(np.arange(0.5, 6.001, 0.05), 3)


def load_rows(root, system: str, framework: str = "trtllm") -> aic.Table | None:
    """The newest `gdn_perf` table of `system` under `framework`, cut to its context-phase chunked-prefill
    rows (columns batch, seq_len, k_heads, v_heads, k_dim, v_dim, latency_s)."""
    t = aic.load(root, system, TABLE, framework)
    if t is None:
        return None
    c = t.columns
    keep = (c["phase"] == "context") & np.char.startswith(c["kernel_source"].astype(str), CHUNK_KERNEL)
    cols = {"batch": c["batch_size"][keep], "seq_len": c["seq_len"][keep], "k_heads": c["num_k_heads"][keep],
            "v_heads": c["num_v_heads"][keep], "k_dim": c["head_k_dim"][keep], "v_dim": c["head_v_dim"][keep],
            "latency_s": c["latency_s"][keep]}
    return replace(t, columns=cols)


def core_ops(rows: aic.Table, model):
    """The engine's `gdn_core` prefill op for every row (one layer, the row's heads on one rank)."""
    from tokenfab.graph.linear_attention import gated_deltanet_ops
    from tokenfab.graph.ops import StepShape

    c = rows.columns
    keys = np.stack([c["k_heads"], c["v_heads"], c["k_dim"], c["v_dim"]], axis=1)
    out = []
    for key in np.unique(keys, axis=0):
        sel = np.all(keys == key, axis=1)
        la = model.linear_attention.model_copy(update={"num_layers": 1, "num_key_heads": int(key[0]),
                                                       "num_value_heads": int(key[1]), "key_head_dim": int(key[2]),
                                                       "value_head_dim": int(key[3])})
        m = model.model_copy(update={"linear_attention": la})
        b, s = c["batch"][sel].astype(float), c["seq_len"][sel].astype(float)
        one = np.ones_like(b)
        shape = StepShape("prefill", tokens=b * s, seqs=b, ctx=s / 2.0, kv_len=s, tp=one, dp=one, ep=one,
                          w_bytes=2.0 * one, a_bytes=2.0 * one, kv_bytes=2.0 * one)
        op = next(o for o in gated_deltanet_ops(m, shape) if o.name == "gdn_core")
        out.append((sel, op))
    return out


def _hardware(chip: ChipSpec, eff):
    from tokenfab.mapping.search import chip_hardware

    return chip_hardware(_template_model(), chip, SystemSpec.for_chip(chip), eff, ["bf16"], ["bf16"], phase="prefill")


def predict(ops, n: int, chip: ChipSpec, eff) -> np.ndarray:
    """Engine seconds of every row's `gdn_core` on `chip` with efficiency `eff` (the chip described
    as every engine user describes it: `mapping.search.chip_hardware`, BF16)."""
    from tokenfab.perf.evaluate import time_ops

    hw = _hardware(chip, eff)
    out = np.full(n, np.nan)
    for sel, op in ops:
        out[sel] = np.asarray(time_ops([op], hw)[0].seconds, float)
    return out


@dataclass
class GdnFit:
    """One chip's fit: the two parameters, the error on the fitted rows before and after."""

    chip: str
    system: str
    framework: str
    scan_compute_frac: float
    scan_chunk_us: float
    before: float
    after: float
    signed_after: float
    rows: int
    table: dict

    @property
    def improves(self) -> bool:
        return self.after < self.before


@lru_cache(maxsize=1)
def _template_model():
    """The catalog Qwen3.5 whose linear-attention block the table's rows re-shape (heads per rank)."""
    from tokenfab import catalog

    return catalog.load_model("qwen3.5-397b-a17b")


def fit_chip(root, system: str, chip: ChipSpec, eff, framework: str = "trtllm") -> GdnFit | None:
    """Fit `scan_compute_frac` and `scan_chunk_us` of `chip` on `system`'s chunked-prefill rows of
    `framework` at least `FIT_MIN_S` long; None without such rows."""
    rows = load_rows(root, system, framework)
    if rows is None or rows.rows == 0:
        return None
    long = rows.columns["latency_s"] >= FIT_MIN_S
    if not long.any():
        return None
    sub = replace(rows, columns={k: v[long] for k, v in rows.columns.items()})
    ops = core_ops(sub, _template_model())
    meas = sub.columns["latency_s"]
    before = predict(ops, sub.rows, chip, eff)
    # The fit-free parts of each row's time once (`perf.kinds.scan_terms`, the engine's own), then the
    # grid: one fraction at a time, every chunk time at once.
    from tokenfab.perf.kinds import scan_terms

    hw = _hardware(chip, eff)
    peak_s, steps, memory, launch = (np.zeros(sub.rows) for _ in range(4))
    for sel, op in ops:
        peak_s[sel], steps[sel], memory[sel], launch[sel] = scan_terms(op, hw)
    chunk_s = CHUNK_US_GRID[None, :] * 1e-6
    best, best_loss = (eff.scan_compute_frac, eff.scan_chunk_us), np.inf
    for f in FRAC_GRID:
        t = np.maximum(np.maximum((peak_s / f)[:, None], steps[:, None] * chunk_s), memory[:, None]) + launch[:, None]
        loss = np.mean(np.abs(np.log(t / meas[:, None])), axis=0)
        j = int(np.argmin(loss))
        if loss[j] < best_loss - 1e-12:
            best, best_loss = (float(f), float(CHUNK_US_GRID[j])), float(loss[j])
    fitted = eff.model_copy(update={"scan_compute_frac": best[0], "scan_chunk_us": best[1]})
    after = predict(ops, sub.rows, chip, fitted)
    return GdnFit(chip.id, system, rows.framework, best[0], best[1], float(np.median(np.abs(before / meas - 1))),
                  float(np.median(np.abs(after / meas - 1))), float(np.median(after / meas - 1)), sub.rows,
                  {**rows.provenance(root), "rows_are": f"the table's context-phase {CHUNK_KERNEL}* rows"})


def fit_record(fit: GdnFit, applied: bool) -> dict:
    """The calibration file's record (`aiconfigurator.gdn`)."""
    return {"framework": fit.framework, "method": f"scan_compute_frac and scan_chunk_us on the context-phase {CHUNK_KERNEL} rows of "
                      f"{TABLE} measured >= {FIT_MIN_S * 1e6:.0f} us; loss mean |log(pred/meas)|; "
                      "validate.aic_gdn.fit_chip",
            "table": fit.table, "rows_fitted": fit.rows, "scan_compute_frac": fit.scan_compute_frac,
            "scan_chunk_us": fit.scan_chunk_us, "median_ape_before": round(fit.before, 4),
            "median_ape_after": round(fit.after, 4), "signed_median_after": round(fit.signed_after, 4),
            "applied": bool(applied)}
