"""The engine's fused attention kernel against aiconfigurator's measured attention tables (issue 14).

aiconfigurator ships, per system and serving framework, the latency of one layer's attention kernel:
`context_attention_perf` (prefill FMHA over `batch_size` prompts of `isl` tokens, causal, `num_heads`
query and `num_key_value_heads` KV heads of `head_dim`), `generation_attention_perf` (one decode
token per sequence against `step` cached tokens), and for MLA (DeepSeek) `context_mla_perf` and
`generation_mla_perf` (`num_heads` per rank). Each row is priced by the engine's own attention op
(`graph.transformer._attention_core` through `step_ops` of a one-layer model of that shape), on the
chip's calibrated efficiency under the framework's profile, so a row and a served layer are timed
by the same code.

Scored, not fitted (`bench/aic_attention_check.py` prints the figures). A one-parameter refit of
`attention_compute_frac` on these rows was tried and not shipped: the measured kernels sustain about
the calibrated fraction at long prompts (prefill time linear in the causal FLOPs from 8K tokens on,
0.55 of the BF16 peak on H200, 0.60 on B200 for MLA at 16 heads a rank) but carry an intercept of
50-80 µs a call that the roofline does not have, so a single fraction fitted over all lengths is
too slow past 8K (+35..+50 %) while still too fast below it; end to end it moved latency rows by
under half a point. The decode rows sit within 0-25 % of the engine where the KV read is large
(> 8K cached tokens, batch > 8) and far below it for small calls (a ~9 µs floor a kernel).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tokenfab.graph.ops import StepShape
from tokenfab.graph.transformer import step_ops
from tokenfab.mapping.search import chip_hardware
from tokenfab.perf.evaluate import time_ops, total_seconds
from tokenfab.specs import ChipSpec, SystemSpec
from tokenfab.specs.model import ModelSpec
from tokenfab.specs.precision import bytes_per_element
from tokenfab.validate import aiconfigurator as aic

CONTEXT_TABLES = ("context_attention_perf", "context_mla_perf")
GENERATION_TABLES = ("generation_attention_perf", "generation_mla_perf")
TABLES = CONTEXT_TABLES + GENERATION_TABLES
FIT_MIN_S = 100e-6
"""Rows at least this long are summarized apart: the tables' smallest kernels take ~20 µs of launch and
setup whatever their size, which the engine charges as one kernel launch (2-3 µs) per op; from
100 µs on that difference is under a fifth of the time and the sustained rate is what is measured."""
KV_PRECISION = {"bfloat16": "bf16", "float16": "bf16", "fp8": "fp8", "int8": "int8"}
"""Table KV-cache dtype -> tokenfab KV precision."""
MLA_SHAPE = {"kv_lora_rank": 512, "qk_rope_head_dim": 64, "head_dim": 192, "v_head_dim": 128, "q_lora_rank": 1536,
             "hidden_size": 7168}
"""DeepSeek-V3's MLA (config.json of deepseek-ai/DeepSeek-V3), the shape aiconfigurator's MLA tables time."""
LENGTH_BANDS = (("<=1k", 0, 1024), ("1k-8k", 1025, 8192), (">8k", 8193, 1 << 40))
"""Context length bands of the summary (prompt tokens, or cached tokens for decode)."""


@dataclass
class AttentionRows:
    """The rows of one table that the engine prices, as arrays, with what each row is."""

    system: str
    table: str
    framework: str
    version: str
    mla: bool
    phase: str
    """'prefill' (context tables) or 'decode' (generation tables)."""
    columns: dict
    """batch, length (prompt or cached tokens), heads, kv_heads, head_dim, kv (precision), latency_s."""
    provenance: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(len(self.columns["latency_s"]))


def load_rows(root, system: str, table: str, framework: str = "trtllm") -> AttentionRows | None:
    """The newest `table` of `system` under `framework`, the rows the engine prices: no sliding
    window, beam 1, BF16 attention math (the engine's prefill and MHA decode rate); None if absent."""
    t = aic.load(root, system, table, framework)
    if t is None:
        return None
    c, mla = t.columns, "mla" in table
    n = len(c["latency_s"])
    phase = "prefill" if table in CONTEXT_TABLES else "decode"
    math = c["mla_dtype"] if mla else c["attn_dtype"]
    keep = (math == "bfloat16") & np.isin(c["kv_cache_dtype"], list(KV_PRECISION))
    if not mla:
        keep &= (c["window_size"] == 0) & (c["beam_width"] == 1)
    length = c["isl"] if phase == "prefill" else c["step"]
    heads = c["num_heads"]
    cols = {"batch": c["batch_size"][keep], "length": np.maximum(length[keep], 1.0), "heads": heads[keep],
            "kv_heads": (np.ones(n) if mla else c["num_key_value_heads"])[keep],
            "head_dim": (np.full(n, MLA_SHAPE["head_dim"]) if mla else c["head_dim"])[keep],
            "kv": np.array([KV_PRECISION[k] for k in c["kv_cache_dtype"][keep]], dtype=str),
            "latency_s": c["latency_s"][keep]}
    return AttentionRows(system, table, t.framework, t.version, mla, phase, cols, t.provenance(root))


def one_layer_model(heads: int, kv_heads: int, head_dim: int, mla: bool) -> ModelSpec:
    """A one-layer model whose attention is the row's: MHA/GQA of `heads` x `head_dim`, or DeepSeek's
    MLA with `heads` heads (the other fields are placeholders: only the attention op is timed)."""
    if mla:
        return ModelSpec(id=f"aic-mla-h{heads}", family="deepseek_v3", num_layers=1, num_heads=int(heads),
                         num_kv_heads=1, intermediate_size=1024, vocab_size=32000, attention="mla",
                         **MLA_SHAPE)
    return ModelSpec(id=f"aic-attn-{heads}x{kv_heads}x{head_dim}", family="llama", hidden_size=int(heads * head_dim),
                     num_layers=1, num_heads=int(heads), num_kv_heads=int(kv_heads), head_dim=int(head_dim),
                     v_head_dim=int(head_dim), intermediate_size=1024, vocab_size=32000)


def engine_seconds(chip: ChipSpec, eff, model: ModelSpec, phase: str, kv: str, batch, length) -> np.ndarray:
    """Seconds the engine charges one attention kernel of `model` on `chip` (tp 1): prefill of `batch`
    prompts of `length` tokens (causal: each token attends to length / 2 keys on average, as the
    mapping search's prefill step), or one decode token per sequence against `length` cached tokens."""
    b, s = np.asarray(batch, float), np.asarray(length, float)
    one = np.ones_like(b)
    kvb = bytes_per_element(kv) * one
    if phase == "prefill":
        shape = StepShape("prefill", tokens=b * s, seqs=b, ctx=s / 2.0, kv_len=s, tp=one, dp=one, ep=one,
                          w_bytes=2.0 * one, a_bytes=2.0 * one, kv_bytes=kvb)
    else:
        shape = StepShape("decode", tokens=b, seqs=b, ctx=s, kv_len=s, tp=one, dp=one, ep=one, w_bytes=2.0 * one,
                          a_bytes=2.0 * one, kv_bytes=kvb)
    hw = chip_hardware(model, chip, SystemSpec.for_chip(chip), eff, ["bf16"], [kv], phase=phase)
    ops = [op for op in step_ops(model, shape) if op.kind == "attention"]
    return np.broadcast_to(total_seconds(time_ops(ops, hw)), b.shape).astype(float)


def predict(rows: AttentionRows, chip: ChipSpec, eff) -> np.ndarray:
    """Engine seconds for every row (one call per shape and KV precision)."""
    c = rows.columns
    out = np.full(rows.rows, np.nan)
    key = np.stack([c["heads"], c["kv_heads"], c["head_dim"]], axis=1)
    for kv in np.unique(c["kv"]):
        for k in np.unique(key[c["kv"] == kv], axis=0):
            sel = (c["kv"] == kv) & np.all(key == k, axis=1)
            model = one_layer_model(*(int(x) for x in k), mla=rows.mla)
            out[sel] = engine_seconds(chip, eff, model, rows.phase, str(kv), c["batch"][sel], c["length"][sel])
    return out


def band_of(length) -> np.ndarray:
    """`LENGTH_BANDS` label of each row's length."""
    return aic.band_labels(length, LENGTH_BANDS)


def _median_abs(err) -> float | None:
    err = np.asarray(err, float)
    err = err[np.isfinite(err)]
    return float(np.median(np.abs(err))) if err.size else None


def _median(err) -> float | None:
    err = np.asarray(err, float)
    err = err[np.isfinite(err)]
    return float(np.median(err)) if err.size else None


def summarize(rows: AttentionRows, pred: np.ndarray) -> dict:
    """Median |error| and signed error of the engine on a table, overall, on the rows measured at
    >= `FIT_MIN_S` and by length band."""
    err = pred / rows.columns["latency_s"] - 1.0
    long = rows.columns["latency_s"] >= FIT_MIN_S
    bands = band_of(rows.columns["length"])
    return {"table": rows.table, "framework": rows.framework, "version": rows.version, "rows": rows.rows,
            "median_ape": _median_abs(err), "signed_median": _median(err),
            "rows_long": int(long.sum()), "median_ape_long": _median_abs(err[long]),
            "signed_median_long": _median(err[long]),
            "signed_median_by_length": {b: _median(err[bands == b]) for b, _, _ in LENGTH_BANDS
                                        if np.any(bands == b)}}


def score_system(root, system: str, chip: ChipSpec, eff, framework: str = "trtllm") -> list[dict]:
    """`summarize` of every attention table of `system` under `framework` that has rows the engine
    prices (context and generation, MHA and MLA); [] where there is none."""
    out = []
    for table in TABLES:
        rows = load_rows(root, system, table, framework)
        if rows is not None and rows.rows:
            out.append(summarize(rows, predict(rows, chip, eff)))
    return out
