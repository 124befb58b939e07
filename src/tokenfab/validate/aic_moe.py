"""Score the engine's MoE layer against aiconfigurator's measured MoE kernel tables (issue 14).

aiconfigurator ships `<system>/moe/<framework>/<version>/moe_perf.parquet`: the latency of ONE rank's
fused MoE layer (TensorRT-LLM `create_moe(...).forward`, SGLang `fused_moe` / FlashInfer, vLLM
`fused_experts` / FlashInfer) for a token count, shape (hidden, expert width, top-k, experts) and
layout (moe_tp, moe_ep). Its collectors (ai-dynamo/aiconfigurator `collector/{trtllm,sglang,vllm}/
collect_moe.py`) time, under a CUDA graph, the expert pipeline between the router GEMM and the
collective: token sort/permute by expert, the activation quantization of FP8/FP4 paths, the grouped
gate-up GEMM, the activation, the down GEMM and the finalize (un-permute + weighted sum of each
token's k copies). The router GEMM and the all-reduce / all-to-all are not in it (`reduce_results=
False`; the SDK adds `router_gemm`, `moe_pre_dispatch`, `moe_post_dispatch` as ops of their own,
`aiconfigurator_core/sdk/models/blocks/moe.py`). The top-k over the router logits is inside for
TensorRT-LLM (logits passed to `moe.forward`) and SGLang's Triton/Marlin paths, outside for vLLM's
`fused_experts` and the FlashInfer routed paths: a few µs either way. TensorRT-LLM's min-latency rows
(`moe_torch_flow_min_latency`) run with `do_finalize=False`: their un-permute and sum are not timed.
Collectors read: collector/trtllm/collect_moe.py and collect_moe_v3.py (`run_moe_torch`: `moe.forward(
hidden_states, logits, do_finalize=not min_latency_mode)` under `benchmark_with_power`),
collector/sglang/collect_moe.py (`benchmark_config.run_op`: `select_experts` + `fused_moe`; with
moe_ep > 1 a rank-0 workload whose remote expert ids are clamped to local expert 0 with weight 0 in
the Triton and Marlin paths, so those rows carry extra rows on one expert), collector/vllm/
collect_moe.py (`run_single_iteration`: `fused_experts` with precomputed top-k).

What the engine charges for the same work is the sum of its own ops (`MOE_KERNEL_OPS`, from
`graph.transformer`, timed by `perf.evaluate.time_ops` on `mapping.search.chip_hardware` with the
chip's calibrated Efficiency under the framework's profile): nothing is re-derived here. Pure
functions; reading the tables is `validate.aiconfigurator`'s.
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

TABLE = "moe_perf"
MOE_DTYPES: dict[str, str] = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp4",
                              "w4a16_mxfp4": "int4", "int4_wo": "int4"}
"""aiconfigurator MoE dtype -> the engine precision that prices it. The engine has one FP8 (per-tensor
scales: fp8_block's 1x128 / 128x128 scales are priced as fp8), and one weight-only 4-bit path (`int4`:
4.5-bit weights, BF16 math; MXFP4 weights with BF16 activations and INT4 W4A16 alike). w4a8_mxfp4_mxfp8
and w4afp8 (4-bit weights, FP8 activations) have no engine path and are not scored."""
MOE_KERNEL_OPS = ("experts_up", "experts_act", "experts_down", "moe_routing", "moe_permute", "moe_unpermute")
"""Engine ops of the work a `moe_perf` row times (everything between the router GEMM and the collective)."""
EXPERT_OPS = ("experts_up", "experts_act", "experts_down")
"""The expert computation alone (grouped GEMMs and activation), reported beside the layer."""
NON_GATED: frozenset = frozenset({(2688, 512, 22), (5120, 512, 22), (1856, 128, 6)})
"""(inter_size, num_experts, topk) of the non-gated (ReLU²) Nemotron-3 shapes: Super-120B (latent 1024,
2688, 512 experts, top-22), Ultra-550B (5120, 512, top-22) and Nano-30B (2688 hidden, 1856, 128, top-6),
`mlp_hidden_act: relu2` in aiconfigurator_core/model_configs/nvidia--NVIDIA-Nemotron-3-*_config.json;
the collectors run them non-gated (`NON_GATED_MOE_MODELS = ["Nemotron-3"]` in collector/trtllm/
collect_moe.py). A `kernel_source` naming `nongated` is non-gated too."""
FRAMEWORK_PROFILE: dict[str, str] = {"trtllm": "trt-llm", "sglang": "sglang", "vllm": "vllm"}
"""aiconfigurator framework folder -> tokenfab framework profile (`perf.framework`)."""
TOKEN_BANDS: tuple[tuple[str, int, int], ...] = (("1-8", 1, 8), ("16-128", 9, 128), ("160-2048", 129, 2048),
                                                 (">=3072", 2049, 1 << 40))
"""num_tokens bands (the tables sweep 1, 2, 4, 8 | 16 ... 128 | 160, 192, 256 ... 2048 | 3072 ... 16384)."""
WORKED_SHAPES: dict[str, tuple[int, int, int, int]] = {
    "qwen3-235b-a22b": (4096, 1536, 128, 8),
    "deepseek-v3": (7168, 2048, 256, 8),
    "gpt-oss-120b": (2880, 2880, 128, 4),
}
"""(hidden, expert width, experts, top-k) from each model's config.json (Qwen/Qwen3-235B-A22B,
deepseek-ai/DeepSeek-V3, openai/gpt-oss-120b)."""
_KEY = ("kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts",
        "moe_tp_size", "moe_ep_size")


@dataclass
class MoeRows:
    """The balanced rows of one (system, framework) that the engine can price, newest version per key."""

    system: str
    framework: str
    columns: dict
    """`moe_perf` columns as arrays (`latency_s` in seconds) plus `version` per row."""
    skipped: dict = field(default_factory=dict)
    """Rows left out, by reason (`power_law_1.2 distribution`, `dtype w4a8_mxfp4_mxfp8`, `older version`)."""
    tables: list = field(default_factory=list)
    """Provenance of every table read (`Table.provenance`)."""

    @property
    def rows(self) -> int:
        return int(len(self.columns["latency_s"]))


def _count(skipped: dict, reason: str, n: int) -> None:
    if n:
        skipped[reason] = skipped.get(reason, 0) + int(n)


def select_rows(tables: list[aic.Table]) -> tuple[dict, dict]:
    """(columns, skipped) of the balanced rows with a priced dtype from `tables` (newest first): a row
    whose key (kernel, dtype, tokens, shape, layout) a newer table already holds is dropped, so a
    re-collection supersedes the rows it repeats and older versions fill in the shapes it lacks
    (aiconfigurator's own `reuse.yaml` convention)."""
    skipped: dict = {}
    parts = []
    for t in tables:
        c = t.columns
        dist = c["distribution"]
        for d in np.unique(dist[dist != "balanced"]):
            _count(skipped, f"{d} distribution", np.sum(dist == d))
        bal = dist == "balanced"
        priced = np.isin(c["moe_dtype"], list(MOE_DTYPES))
        for d in np.unique(c["moe_dtype"][bal & ~priced]):
            _count(skipped, f"dtype {d} (no engine path)", np.sum(bal & (c["moe_dtype"] == d)))
        keep = bal & priced
        part = {k: v[keep] for k, v in c.items()}
        part["version"] = np.full(int(keep.sum()), t.version)
        parts.append(part)
    if not parts:
        return {}, skipped
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if cols["latency_s"].size == 0:
        return cols, skipped
    codes = [np.unique(cols[k], return_inverse=True)[1] if cols[k].dtype.kind in "US" else cols[k] for k in _KEY]
    _, first = np.unique(np.stack([np.asarray(x, float) for x in codes], axis=1), axis=0, return_index=True)
    first = np.sort(first)
    _count(skipped, "older version of a newer row", cols["latency_s"].size - first.size)
    return {k: v[first] for k, v in cols.items()}, skipped


def load_rows(root, system: str, framework: str) -> MoeRows | None:
    """Every `moe_perf` table of `system` under `framework` (all versions, newest first), selected by
    `select_rows`; None when there is none."""
    found = [t for t in aic.find_tables(root, system, TABLE) if t[0] == framework]
    if not found:
        return None
    tables = [aic.read_table(path, TABLE, system, fw, ver)
              for fw, ver, path in sorted(found, key=lambda t: aic.version_key(t[1]), reverse=True)]
    cols, skipped = select_rows(tables)
    return MoeRows(system, framework, cols, skipped, [t.provenance(root) for t in tables])


def is_gated(kernel_source: str, inter: int, experts: int, topk: int) -> bool:
    """Whether a row's experts are gated (SwiGLU): all but the `NON_GATED` Nemotron-3 shapes."""
    return "nongated" not in kernel_source and (int(inter), int(experts), int(topk)) not in NON_GATED


def moe_model(hidden: int, inter: int, experts: int, topk: int, gated: bool = True) -> ModelSpec:
    """A one-layer MoE model with the table's shape (attention fields are placeholders: only the MoE
    ops of its step are timed)."""
    return ModelSpec(id=f"aic-moe-{hidden}x{inter}-e{experts}k{topk}", family="aic_moe", hidden_size=int(hidden),
                     num_layers=1, num_heads=8, num_kv_heads=8, head_dim=128, v_head_dim=128,
                     intermediate_size=int(inter), gated_mlp=gated, vocab_size=32000, num_experts=int(experts),
                     experts_per_token=int(topk), moe_intermediate_size=int(inter))


def engine_seconds(chip: ChipSpec, eff, model: ModelSpec, precision: str, tokens, moe_tp, moe_ep,
                   ops: tuple[str, ...] = MOE_KERNEL_OPS) -> np.ndarray:
    """Seconds the engine charges one rank for `ops` of one MoE layer, per point (arrays broadcast).

    The table's layout is the engine's: a rank holds the step's `tokens` (attention TP, no data
    parallelism: dp = 1) and `moe_tp × moe_ep` ranks share the layer, each with experts/moe_ep experts
    split `moe_tp` ways (`graph.transformer.moe_layout`: tp = moe_tp·moe_ep, ep = moe_ep). Tokens pick
    their experts as the tables' collectors force them (`StepShape.moe_routing` "balanced": every expert
    hit once tokens × top-k reach them, no busiest EP rank), not as a served router does; priced with the
    serving graph's random routing (163 of DeepSeek-V3's 256 experts hit at 32 tokens where the tables
    run all 256), a fit would read their longer weight stream as a slower one."""
    tokens = np.asarray(tokens, float)
    tp = np.asarray(moe_tp, float) * np.asarray(moe_ep, float)
    one = np.ones_like(tokens)
    shape = StepShape(phase="decode", tokens=tokens, seqs=tokens, ctx=one, kv_len=one, tp=tp * one, dp=one,
                      ep=np.asarray(moe_ep, float) * one, w_bytes=bytes_per_element(precision) * one,
                      a_bytes=2.0 * one, kv_bytes=2.0 * one, moe_routing="balanced")
    hw = chip_hardware(model, chip, SystemSpec.for_chip(chip), eff, [precision], phase="decode")
    picked = [op for op in step_ops(model, shape) if op.name in ops]
    return np.broadcast_to(total_seconds(time_ops(picked, hw)), tokens.shape).astype(float)


def predict(rows: MoeRows | dict, chip: ChipSpec, eff) -> dict:
    """Engine seconds for every row: `layer_s` (`MOE_KERNEL_OPS`) and `experts_s` (`EXPERT_OPS`)."""
    c = rows.columns if isinstance(rows, MoeRows) else rows
    n = len(c["latency_s"])
    layer, experts = np.full(n, np.nan), np.full(n, np.nan)
    prec = np.array([MOE_DTYPES[d] for d in c["moe_dtype"]]) if n else np.array([], dtype=str)
    gated = np.array([is_gated(k, i, e, t) for k, i, e, t in zip(c["kernel_source"], c["inter_size"],
                                                                 c["num_experts"], c["topk"])], dtype=bool)
    group = np.stack([c["hidden_size"], c["inter_size"], c["num_experts"], c["topk"], gated.astype(float)], axis=1)
    for p in np.unique(prec):
        for g in np.unique(group[prec == p], axis=0):
            sel = (prec == p) & np.all(group == g, axis=1)
            model = moe_model(*(int(x) for x in g[:4]), gated=bool(g[4]))
            args = (c["num_tokens"][sel], c["moe_tp_size"][sel], c["moe_ep_size"][sel])
            layer[sel] = engine_seconds(chip, eff, model, str(p), *args)
            experts[sel] = engine_seconds(chip, eff, model, str(p), *args, ops=EXPERT_OPS)
    return {"layer_s": layer, "experts_s": experts}


SHARD_BANDS: tuple[tuple[str, int, int], ...] = (("<=256", 1, 256), ("257-768", 257, 768), (">768", 769, 1 << 30))
"""Bands of a rank's expert width, moe_intermediate / moe_tp (`summarize`'s `by_shard`): TP-sharded
experts are narrow (DeepSeek-V3 at moe_tp 8: 256), whole ones wide (DeepSeek-V3 at EP: 2048). Their
down projection has K = that width, and the engine's block-scaled FP8 layer on H200 comes to ~0.85 of
the measured time at <= 256 and ~1.2 at > 768 (TensorRT-LLM tables, 2026-12-06): a short-K effect the
dense GEMM model does not carry (`bench/aic_gemm_k.py`)."""


def band_of(tokens) -> np.ndarray:
    """`TOKEN_BANDS` label of each token count."""
    return aic.band_labels(tokens, TOKEN_BANDS)


def _median(x) -> float | None:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return round(float(np.median(x)), 4) if x.size else None


def summarize(rows: MoeRows, pred: dict) -> list[dict]:
    """Per (kernel_source, dtype): rows, median predicted/measured (layer and experts only) overall, per
    `TOKEN_BANDS` band, per layout (experts whole on a rank, ep = 1, or spread, ep > 1), per
    `SHARD_BANDS` band of a rank's expert width (`by_shard`), and the versions the rows come from."""
    c = rows.columns
    ratio = pred["layer_s"] / c["latency_s"]
    ratio_x = pred["experts_s"] / c["latency_s"]
    bands = band_of(c["num_tokens"])
    shards = aic.band_labels(c["inter_size"] / np.maximum(c["moe_tp_size"], 1), SHARD_BANDS)
    out = []
    pairs = sorted(set(zip(c["kernel_source"].tolist(), c["moe_dtype"].tolist())))
    for ks, dt in pairs:
        sel = (c["kernel_source"] == ks) & (c["moe_dtype"] == dt)
        by_band = {}
        for label, _, _ in TOKEN_BANDS:
            b = sel & (bands == label)
            if b.any():
                by_band[label] = {"rows": int(b.sum()), "median_ratio": _median(ratio[b]),
                                  "median_ratio_experts_only": _median(ratio_x[b])}
        ep1 = sel & (c["moe_ep_size"] == 1)
        out.append({"system": rows.system, "framework": rows.framework, "kernel_source": ks, "moe_dtype": dt,
                    "engine_precision": MOE_DTYPES[dt], "rows": int(sel.sum()), "median_ratio": _median(ratio[sel]),
                    "median_ratio_experts_only": _median(ratio_x[sel]), "by_tokens": by_band,
                    "by_layout": {"ep=1": _median(ratio[ep1]), "ep>1": _median(ratio[sel & ~ep1])},
                    "by_shard": {label: _median(ratio[sel & (shards == label)]) for label, _, _ in SHARD_BANDS
                                 if (sel & (shards == label)).any()},
                    "versions": sorted(set(c["version"][sel].tolist()), key=aic.version_key)})
    return out


def worked(rows: MoeRows, pred: dict, shape: tuple[int, int, int, int], moe_tp: int, moe_ep: int,
           tokens=(1, 8, 64, 512, 4096)) -> list[dict]:
    """Measured and engine µs at a few token counts for one model shape and layout, per kernel and dtype."""
    c = rows.columns
    h, i, e, k = shape
    sel = ((c["hidden_size"] == h) & (c["inter_size"] == i) & (c["num_experts"] == e) & (c["topk"] == k)
           & (c["moe_tp_size"] == moe_tp) & (c["moe_ep_size"] == moe_ep) & np.isin(c["num_tokens"], tokens))
    out = []
    for j in np.flatnonzero(sel):
        out.append({"kernel_source": str(c["kernel_source"][j]), "moe_dtype": str(c["moe_dtype"][j]),
                    "num_tokens": int(c["num_tokens"][j]), "measured_us": round(float(c["latency_s"][j]) * 1e6, 2),
                    "engine_layer_us": round(float(pred["layer_s"][j]) * 1e6, 2),
                    "engine_experts_us": round(float(pred["experts_s"][j]) * 1e6, 2),
                    "ratio": round(float(pred["layer_s"][j] / c["latency_s"][j]), 3)})
    return sorted(out, key=lambda r: (r["kernel_source"], r["moe_dtype"], r["num_tokens"]))


_MATCH = ("moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size")


FASTEST = "(fastest kernel)"
"""`kernel_source` of the rows `fastest_rows` keeps: per key, the framework's quickest measured kernel."""


def fastest_rows(rows: MoeRows, pred: dict) -> tuple[MoeRows, dict]:
    """Per key (dtype, tokens, shape, layout) only the row of the quickest measured kernel, relabelled
    `FASTEST`: what a deployment of that framework runs (it picks its best backend), so slow fallback
    kernels a table also sweeps (e.g. SGLang's FlashInfer-CUTLASS BF16 path on Hopper) do not weigh."""
    c = rows.columns
    best: dict = {}
    for j, key in enumerate(zip(*(c[k].tolist() for k in _MATCH))):
        if key not in best or c["latency_s"][j] < c["latency_s"][best[key]]:
            best[key] = j
    idx = np.sort(np.fromiter(best.values(), dtype=int, count=len(best)))
    cols = {k: v[idx] for k, v in c.items()}
    cols["kernel_source"] = np.full(idx.size, FASTEST)
    return MoeRows(rows.system, rows.framework, cols, rows.skipped, rows.tables), {k: v[idx] for k, v in pred.items()}


def _fastest(rows: MoeRows) -> dict:
    """Key (dtype, tokens, shape, layout) -> the fastest measured seconds over the kernels of `rows`
    (what the framework would run: it picks its best backend)."""
    c = rows.columns
    out: dict = {}
    for j, key in enumerate(zip(*(c[k].tolist() for k in _MATCH))):
        lat = float(c["latency_s"][j])
        if lat < out.get(key, np.inf):
            out[key] = lat
    return out


def framework_speed(by_framework: dict[str, MoeRows], reference: str = "trtllm") -> list[dict]:
    """Measured latency of each framework's fastest kernel over the reference framework's, on the keys
    both measured on the same system: median ratio per dtype and token band (> 1: slower)."""
    ref = by_framework.get(reference)
    if ref is None:
        return []
    base = _fastest(ref)
    out = []
    for fw, rows in sorted(by_framework.items()):
        if fw == reference:
            continue
        mine = _fastest(rows)
        common = [k for k in mine if k in base]
        if not common:
            continue
        dtype = np.array([k[0] for k in common])
        tokens = np.array([k[1] for k in common], float)
        ratio = np.array([mine[k] / base[k] for k in common])
        bands = band_of(tokens)
        for d in np.unique(dtype):
            sel = dtype == d
            out.append({"system": rows.system, "framework": fw, "reference": reference, "moe_dtype": str(d),
                        "rows": int(sel.sum()), "median_latency_ratio": _median(ratio[sel]),
                        "by_tokens": {label: _median(ratio[sel & (bands == label)]) for label, _, _ in TOKEN_BANDS
                                      if (sel & (bands == label)).any()}})
    return out


# --- Fit: grouped expert GEMMs and the MoE layer's fixed cost (issue 14) ---------------------------

MOE_BOUNDS = {"compute_scale": (0.1, 1.0), "stream_scale": (0.1, 1.0), "fixed_us": (0.0, 100.0)}
"""Physical ranges of the per-class MoE parameters (`Efficiency.moe_terms`): a grouped expert GEMM
sustains at most the dense GEMM's compute fraction; the layer's own fixed cost is under 100 µs. The
weight stream's upper bound is per chip and class (`stream_scale_max`): the dense GEMM tables'
small-M kernels can stream well below a copy (B300 NVFP4: 0.36 of HBM), and a grouped kernel
that streams every active expert's weights in one launch is bounded by the copy, not by them."""


def stream_scale_max(eff, kernel_class: str) -> float:
    """Largest MoE weight-stream scale of `kernel_class` on a chip: the copy fraction (`hbm_frac`)
    over the dense GEMM's stream fraction (at least 1): the grouped expert GEMM streams at most as
    fast as a plain copy."""
    return max(1.0, eff.hbm_frac / eff.gemm_stream_frac("lowp" if kernel_class == "block" else kernel_class))
MOE_CLASS_DTYPES = {"bf16": ("bfloat16",), "lowp": ("fp8",), "block": ("fp8_block",), "fp4": ("nvfp4",)}
"""aiconfigurator dtypes fitted per kernel class. On chips without FP4 math the 4-bit class is
fitted on the weight-only rows (`w4a16_mxfp4`, `int4_wo`) instead, as `aic_fit` does for GEMMs.
Block-scaled FP8 is a class of its own (since 2026-12-06; it was fitted with per-tensor FP8): on
Hopper its grouped GEMMs reach half the per-tensor ones' compute scale (H200 0.36 against 0.64),
as the dense block-scaled GEMMs do (`Efficiency.block_gemm_compute_frac`); both are priced at the
per-tensor dense values (`parts`: fp8_block -> fp8), so the block scales are shares of those."""
WEIGHT_ONLY_DTYPES = ("w4a16_mxfp4", "int4_wo")
MOE_FIT_FIELDS = {c: tuple(f"{'' if c == 'bf16' else c + '_'}{stem}" for stem in
                           ("moe_gemm_compute_scale", "moe_gemm_stream_scale", "moe_layer_fixed_us"))
                  for c in ("bf16", "lowp", "block", "fp4")}
"""Efficiency fields each class's (compute_scale, stream_scale, fixed_us) set."""
NO_FINALIZE_KERNELS = ("moe_torch_flow_min_latency",)
"""TensorRT-LLM kernels whose rows stop before the finalize (`do_finalize=False`, the min-latency path
on Blackwell): the fit prices them without `moe_unpermute` (`parts`)."""
REFERENCE = "trtllm"
IRLS_ROUNDS = 4
"""Reweighting rounds of the least-absolute-deviation fit (`fit_class`)."""


def parts(rows: MoeRows | dict, chip: ChipSpec, eff) -> dict:
    """Per row, the engine's MoE layer split so the MoE terms enter in closed form: `other_s` (routing,
    permute, activation, un-permute; no un-permute on `NO_FINALIZE_KERNELS` rows), and per expert GEMM (gate-up, down) its compute seconds `c`,
    weight-stream seconds `m` and fixed seconds `f` at the dense values, so that the layer takes
    other_s + Σ max(c / compute_scale, m / stream_scale) + f, + the layer's fixed cost (what
    `perf.evaluate.time_ops` charges with `Efficiency.moe_terms`; `eff` must have none set)."""
    from tokenfab.perf import roofline
    from tokenfab.perf.evaluate import _gemm_peak

    c = rows.columns if isinstance(rows, MoeRows) else rows
    n = len(c["latency_s"])
    out = {"other_s": np.zeros(n), "c": np.zeros((2, n)), "m": np.zeros((2, n)), "f": np.zeros((2, n))}
    prec = np.array([MOE_DTYPES[d] for d in c["moe_dtype"]]) if n else np.array([], dtype=str)
    gated = np.array([is_gated(k, i, e, t) for k, i, e, t in zip(c["kernel_source"], c["inter_size"],
                                                                 c["num_experts"], c["topk"])], dtype=bool)
    group = np.stack([c["hidden_size"], c["inter_size"], c["num_experts"], c["topk"], gated.astype(float)], axis=1)
    huge = 1e12
    fast_hbm = eff.model_copy(update={"gemm_hbm_frac": huge, "lowp_gemm_hbm_frac": huge, "fp4_gemm_hbm_frac": huge})
    for p in np.unique(prec):
        for g in np.unique(group[prec == p], axis=0):
            sel = (prec == p) & np.all(group == g, axis=1)
            model = moe_model(*(int(x) for x in g[:4]), gated=bool(g[4]))
            tokens = np.asarray(c["num_tokens"][sel], float)
            one = np.ones_like(tokens)
            tp = np.asarray(c["moe_tp_size"][sel], float) * np.asarray(c["moe_ep_size"][sel], float)
            shape = StepShape(phase="decode", tokens=tokens, seqs=tokens, ctx=one, kv_len=one, tp=tp, dp=one,
                              ep=np.asarray(c["moe_ep_size"][sel], float), w_bytes=bytes_per_element(str(p)) * one,
                              a_bytes=2.0 * one, kv_bytes=2.0 * one, moe_routing="balanced")
            hw = chip_hardware(model, chip, SystemSpec.for_chip(chip), eff, [str(p)], phase="decode")
            ops = [op for op in step_ops(model, shape) if op.name in MOE_KERNEL_OPS]
            other = [op for op in ops if op.name not in ("experts_up", "experts_down")]
            other_s = np.broadcast_to(total_seconds(time_ops(other, hw)), tokens.shape)
            unperm = np.broadcast_to(total_seconds(time_ops([o for o in other if o.name == "moe_unpermute"], hw)),
                                     tokens.shape)
            out["other_s"][sel] = other_s - np.where(np.isin(c["kernel_source"][sel], NO_FINALIZE_KERNELS), unperm, 0.0)
            for j, name in enumerate(("experts_up", "experts_down")):
                op = next(o for o in ops if o.name == name)
                peak, frac = _gemm_peak(op, hw)
                args = (op.m, op.n, op.k, peak, hw.hbm_tb_s, op.w_bytes, op.a_bytes, hw.cores)
                kw = {"batch": op.groups, "ragged": True}
                fixed = np.broadcast_to(roofline.gemm_kernel_terms(op.w_bytes, eff)[1], tokens.shape)
                cf, _ = roofline.gemm_time_s(*args, fast_hbm, compute_frac=frac, **kw)
                mf, _ = roofline.gemm_time_s(*args, eff, compute_frac=np.asarray(frac) * huge, **kw)
                out["c"][j, sel] = (np.broadcast_to(cf, tokens.shape) - fixed) * op.count
                out["m"][j, sel] = (np.broadcast_to(mf, tokens.shape) - fixed) * op.count
                out["f"][j, sel] = fixed * op.count
    return out


def layer_seconds(pt: dict, compute_scale, stream_scale, fixed_us) -> np.ndarray:
    """The engine's MoE layer seconds from `parts` with the given MoE terms (scalars or per row)."""
    gemm = np.maximum(pt["c"] / compute_scale, pt["m"] / stream_scale) + pt["f"]
    return pt["other_s"] + gemm.sum(axis=0) + np.asarray(fixed_us) * 1e-6


@dataclass
class MoeFit:
    kernel_class: str
    dtypes: tuple
    rows: int
    params: dict
    median_ape_before: float
    median_ape_after: float
    signed_median_before: float
    signed_median_after: float
    by_tokens_before: dict = field(default_factory=dict)
    by_tokens_after: dict = field(default_factory=dict)
    """Signed median error per `TOKEN_BANDS` band."""


def _bands(tokens, err) -> dict:
    b = band_of(tokens)
    return {label: round(float(np.median(err[b == label])), 4) for label, _, _ in TOKEN_BANDS if (b == label).any()}


def at_bounds(params: dict) -> bool:
    """Whether a fit sits at both ends it can run to, the compute scale at its floor and the fixed
    cost at its ceiling: the layer model does not describe those kernels (e.g. vLLM's W4A16 MXFP4 MoE
    on H200, 78% median error before and 62% after such a fit), so the fit is recorded, not applied."""
    lo, hi = MOE_BOUNDS["compute_scale"][0], MOE_BOUNDS["fixed_us"][1]
    return params["compute_scale"] <= lo * 1.001 and params["fixed_us"] >= hi * 0.999


def fit_class(pt: dict, meas, tokens, kernel_class: str, dtypes=(), stream_max: float = 1.0) -> MoeFit:
    """Least absolute log(predicted / measured) of (compute_scale, stream_scale, fixed_us) in
    `MOE_BOUNDS` (logistic), deterministic Levenberg-Marquardt from the unfitted engine (1, 1, 0).
    Where the stream scale ends at the dense GEMM's (1) and `stream_max` (`stream_scale_max`) allows
    more, the fit goes on from there with the stream scale bounded by `stream_max`, and keeps the
    result where it lowers the median |error|."""
    first = _fit_bounded(pt, meas, MOE_BOUNDS, {"compute_scale": 0.99, "stream_scale": 0.99, "fixed_us": 1.0})
    params = first
    if stream_max > 1.0 and first["stream_scale"] >= 0.999:
        wide = dict(MOE_BOUNDS, stream_scale=(MOE_BOUNDS["stream_scale"][0], float(stream_max)))
        # From the first fit's compute scale, off the bounds it may have stopped at (a logistic bound
        # has no slope to leave it by).
        second = _fit_bounded(pt, meas, wide, dict(first, stream_scale=1.0, fixed_us=max(first["fixed_us"], 1.0)))
        ape = lambda v: float(np.median(np.abs(layer_seconds(pt, **v) / meas - 1.0)))  # noqa: E731
        params = second if ape(second) < ape(first) else first
    start = {"compute_scale": 1.0, "stream_scale": 1.0, "fixed_us": 0.0}
    before = layer_seconds(pt, **start) / meas - 1.0
    after = layer_seconds(pt, **params) / meas - 1.0
    return MoeFit(kernel_class, tuple(dtypes), int(meas.size), params, float(np.median(np.abs(before))),
                  float(np.median(np.abs(after))), float(np.median(before)), float(np.median(after)),
                  _bands(tokens, before), _bands(tokens, after))


def _fit_bounded(pt: dict, meas, bounds: dict, init: dict) -> dict:
    """The IRLS / Levenberg-Marquardt fit of `fit_class` within `bounds`, from `init` (rounded)."""
    from tokenfab.validate.fit import levenberg_marquardt, to_bounded, to_unbounded

    names = list(bounds)
    log_meas = np.log(meas)

    def vals(z):
        return {nm: float(to_bounded(zi, *bounds[nm])) for nm, zi in zip(names, z)}

    def raw(z):
        v = vals(z)
        return np.log(layer_seconds(pt, v["compute_scale"], v["stream_scale"], v["fixed_us"])) - log_meas

    # The criterion is the median |error|, and the tables' rows spread widely (dozens of shapes and
    # layouts per class): least absolute log residuals by iteratively reweighted least squares
    # (weights 1 / max(|r|, 1%), `IRLS_ROUNDS` rounds, each a deterministic LM from the last).
    lo_hi = {nm: bounds[nm] for nm in names}
    z = np.array([to_unbounded(min(max(init[nm], lo_hi[nm][0] * 1.01 + 1e-6), lo_hi[nm][1] * 0.99), *lo_hi[nm])
                  for nm in names])
    w = np.ones_like(log_meas)
    for _ in range(IRLS_ROUNDS):
        z = levenberg_marquardt(lambda zz, w=w: raw(zz) * w, z, iters=40)
        w = 1.0 / np.sqrt(np.maximum(np.abs(raw(z)), 0.01))
    return {nm: float(np.round(v, 4)) for nm, v in vals(z).items()}


def _subset(cols: dict, sel) -> dict:
    return {k: v[sel] for k, v in cols.items()}


def reference_rows(rows: MoeRows) -> MoeRows:
    """The reference table's rows a deployment runs: per key the fastest measured kernel (its
    `kernel_source` kept: `NO_FINALIZE_KERNELS` rows are priced without the finalize)."""
    c = rows.columns
    gated = [is_gated(k, i, e, t) for k, i, e, t in zip(c["kernel_source"], c["inter_size"], c["num_experts"],
                                                        c["topk"])]
    best: dict = {}
    for j, key in enumerate(zip(gated, *(c[k].tolist() for k in _MATCH))):  # gated and non-gated apart
        if key not in best or c["latency_s"][j] < c["latency_s"][best[key]]:
            best[key] = j
    idx = np.sort(np.fromiter(best.values(), dtype=int, count=len(best)))
    return MoeRows(rows.system, rows.framework, _subset(c, idx), rows.skipped, rows.tables)


def class_rows(rows: MoeRows, chip: ChipSpec, min_rows: int = 8):
    """(kernel class, its columns) per `MOE_CLASS_DTYPES` class with at least `min_rows` of the
    fastest measured kernel per key (`reference_rows`); on a chip without FP4 math the fp4 class is
    the weight-only 4-bit kernels."""
    c = reference_rows(rows).columns
    for cls, dtypes in MOE_CLASS_DTYPES.items():
        if cls == "fp4" and not chip.fp4_tflops:
            dtypes = WEIGHT_ONLY_DTYPES
        sel = np.isin(c["moe_dtype"], dtypes)
        if sel.sum() >= min_rows:
            yield cls, _subset(c, sel)


def fit_chip(rows: MoeRows, chip: ChipSpec, eff) -> tuple[list[MoeFit], dict]:
    """(one MoeFit per kernel class with rows, Efficiency fields to apply): a class's fields are applied
    only where its fit lowers the median |error| of its rows. `eff`: the chip's efficiency under the
    reference framework's profile with the dense GEMM fit applied and no MoE field set."""
    from tokenfab.perf.efficiency import MOE_FIELDS

    eff = eff.model_copy(update={f: None for f in MOE_FIELDS})
    fits, applied = [], {}
    for cls, sub in class_rows(rows, chip):
        f = fit_class(parts(sub, chip, eff), sub["latency_s"], sub["num_tokens"], cls,
                      tuple(sorted(set(sub["moe_dtype"].tolist()))), stream_max=stream_scale_max(eff, cls))
        fits.append(f)
        # A class whose fit does not help is pinned at the unfitted values (1, 1, 0), so that it
        # does not inherit a lower class's fitted values through the None fallback.
        vals = (f.params[nm] for nm in MOE_BOUNDS) if f.median_ape_after < f.median_ape_before else (1.0, 1.0, 0.0)
        applied.update(dict(zip(MOE_FIT_FIELDS[cls], vals)))
    if all(f.median_ape_after >= f.median_ape_before for f in fits):  # nothing helps: the engine as before
        return fits, {}
    return fits, applied


OWN_TERMS_MIN_GAIN = 0.2
"""A framework's own MoE terms replace the reference's only where they cut the median |error| of
its rows by at least this share: the tables mix dozens of shapes and kernels per class, and a few
points' gain is within that spread (measured: such marginal fits moved end-to-end rows both ways)."""

OWN_KERNEL_FRAMEWORKS = ("vllm", "sglang")
"""Frameworks whose own measured MoE kernels the tables time beside the reference's: their MoE layer
terms are fitted on their own rows (`fit_framework`) where the reference's do not describe them."""


def fit_framework(rows: MoeRows, chip: ChipSpec, eff) -> tuple[list[dict], dict]:
    """(record per kernel class, Efficiency fields to apply under this framework) of a serving
    framework's own MoE kernels (`OWN_KERNEL_FRAMEWORKS`). `eff`: the chip's efficiency with the
    reference fit applied (its MoE terms included) under the framework's profile. Per kernel class
    with rows, on the framework's fastest measured kernel per key: the reference's terms
    (`Efficiency.moe_terms`) against a fit of the framework's own (`fit_class`); the own terms are
    kept only where they lower the median |error| of the framework's rows by `OWN_TERMS_MIN_GAIN`
    or more. A physical difference, not a per-row knob: e.g. TensorRT-LLM's Hopper W4A16 MoE runs
    ~60 µs of fixed work per layer that vLLM's Triton MXFP4 kernel does not (gpt-oss-120b, TP 8,
    one token on H100: 39 µs measured per layer under vLLM)."""
    from tokenfab.perf.efficiency import MOE_FIELDS

    bare = eff.model_copy(update={f: None for f in MOE_FIELDS})
    records, applied = [], {}
    for cls, sub in class_rows(rows, chip):
        pt = parts(sub, chip, bare)
        theirs = eff.moe_terms(cls)
        ref_terms = (theirs[0], theirs[1], theirs[2] * 1e6)
        ref_err = layer_seconds(pt, *ref_terms) / sub["latency_s"] - 1.0
        own = fit_class(pt, sub["latency_s"], sub["num_tokens"], cls, tuple(sorted(set(sub["moe_dtype"].tolist()))),
                        stream_max=stream_scale_max(bare, cls))
        ref_ape = float(np.median(np.abs(ref_err)))
        keep = own.median_ape_after < (1.0 - OWN_TERMS_MIN_GAIN) * ref_ape and not at_bounds(own.params)
        records.append({"kernel_class": cls, "dtypes": list(own.dtypes), "rows": own.rows,
                        "reference_params": {k: round(float(v), 4) for k, v in zip(MOE_BOUNDS, ref_terms)},
                        "median_ape_reference": round(ref_ape, 4),
                        "signed_median_reference": round(float(np.median(ref_err)), 4),
                        "params": own.params, "median_ape_own": round(own.median_ape_after, 4),
                        "signed_median_own": round(own.signed_median_after, 4),
                        "signed_median_by_tokens_reference": _bands(sub["num_tokens"], ref_err),
                        "signed_median_by_tokens_own": own.by_tokens_after, "applied": bool(keep)})
        if keep:
            applied.update(dict(zip(MOE_FIT_FIELDS[cls], (own.params[nm] for nm in MOE_BOUNDS))))
    return records, applied


def fit_record(fits: list[MoeFit], rows: MoeRows) -> dict:
    """The `moe` part of a calibration file's `aiconfigurator` section."""
    return {"framework": rows.framework, "tables": rows.tables, "rows": "balanced routing; per key the fastest "
            f"measured kernel ({', '.join(NO_FINALIZE_KERNELS)} rows, which skip the finalize, priced without it)",
            "method": ("least absolute log(predicted/measured) (iteratively reweighted least squares) of the engine's whole MoE layer (routing, permute, "
                       "grouped gate-up and down GEMMs, activation, finalize) per kernel class: the grouped GEMMs' "
                       "compute and weight-stream fractions as scales of the chip's dense GEMM values and a fixed "
                       "cost per layer; logistic bounds; deterministic Levenberg-Marquardt from the unfitted "
                       "engine (1, 1, 0); applied only where it lowers the class's median |error|"),
            "fits": [{"kernel_class": f.kernel_class, "dtypes": list(f.dtypes), "rows": f.rows, "params": f.params,
                      "median_ape_before": round(f.median_ape_before, 4),
                      "median_ape_after": round(f.median_ape_after, 4),
                      "signed_median_before": round(f.signed_median_before, 4),
                      "signed_median_after": round(f.signed_median_after, 4),
                      "signed_median_by_tokens_before": f.by_tokens_before,
                      "signed_median_by_tokens_after": f.by_tokens_after} for f in fits]}
