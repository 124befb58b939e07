"""Reader for the measured KERNEL tables that NVIDIA's aiconfigurator ships (Apache-2.0).

`pip install aiconfigurator` installs `aiconfigurator_core/systems/data/<system>/<op>/<framework>/
<version>/<table>.parquet`: kernel timings collected on H100, H200, B200, GB200, B300, A100, L40S...
Only the kernel tables named in `KERNEL_TABLES` are ever opened (GEMM by dtype and shape, custom
all-reduce, NCCL collectives, fused MoE, attention and MLA, Gated DeltaNet); the package's end-to-end / system-level results are kept apart for
independent evaluation and are never read here. Nothing is copied into this repository: the
tables are read from the installed package when `tokenfab calibrate --source aiconfigurator` runs.

Table columns (as shipped): gemm_perf: gemm_dtype, m, n, k, latency (ms); custom_allreduce_perf:
allreduce_dtype, num_gpus, message_size (elements), latency (ms); nccl_perf: op_name, nccl_dtype,
num_gpus, message_size (elements), latency (ms); moe_perf (one rank's fused MoE layer, scored by
`aic_moe`): kernel_source, moe_dtype, num_tokens, hidden_size, inter_size, topk, num_experts,
moe_tp_size, moe_ep_size, distribution, latency (ms); context_attention_perf / generation_attention_perf
(one layer's attention kernel, scored and fitted by `aic_attention`): batch_size, isl, step (decode: the
cached tokens), num_heads, num_key_value_heads, head_dim, window_size, beam_width, attn_dtype,
kv_cache_dtype, latency (ms); context_mla_perf / generation_mla_perf: mla_dtype, kv_cache_dtype, num_heads
(per rank), batch_size, isl, tp_size, step, latency (ms); gdn_perf (Gated DeltaNet kernels, fitted by
`aic_gdn`): kernel_source, phase, batch_size, seq_len, num_k_heads, head_k_dim, num_v_heads, head_v_dim,
latency (ms). A `.csv` with the same columns is read the same way
(small fixtures, environments without pyarrow).
"""

from __future__ import annotations

import csv
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SYSTEMS: dict[str, str] = {
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200-sxm",
    "b200_sxm": "b200",
    "gb200": "gb200",
    "b300_sxm": "b300",
    "a100_sxm": "a100-sxm-80g",
    "l40s": "l40s",
    "gb300": "gb300",
    "rtx_pro_6000_server": "rtx-pro-6000",
}
"""aiconfigurator system folder -> tokenfab chip id (systems without a catalog chip are not read)."""
SAME_DIE_GEMM: dict[str, str] = {
    "gh200": "h200_sxm",
}
"""Catalog chip without a system of its own -> the system measured on the same die and memory
generation, whose GEMM and MoE tables it is fitted on (on-die kernels only: links and collectives differ). GH200's GPU
is H200's GH100 die with HBM3e (4.9 against 4.8 TB/s) at a module power limit no lower than H200's
700 W, running the same TensorRT-LLM kernels; the fit uses GH200's own peaks and bandwidth."""
SAME_MEMORY_PATH: dict[str, str] = {
    "h20": "h100_sxm",
}
"""Catalog chip without a system of its own -> the system whose fitted memory-side terms it takes
(`aic_fit.MEMORY_SIDE`: weight-streaming HBM fractions, fixed costs per GEMM, custom all-reduce alpha
and beta), not its compute fractions. H20 is the GH100 die with HBM3 and NVLink 4 like H100 SXM, its
tensor path cut to 148 dense BF16 TFLOPS: a small-M GEMM streams weights and pays launch and
prologue as H100's does, and so does a fused-MoE layer's expert weight stream and fixed cost, while its
large GEMMs reach another share of another peak (fitted on its own kernel rows)."""
KERNEL_TABLES: dict[str, str] = {
    "gemm_perf": "gemm",
    "custom_allreduce_perf": "comm",
    "nccl_perf": "comm",
    "moe_perf": "moe",
    "context_attention_perf": "attention",
    "generation_attention_perf": "attention",
    "context_mla_perf": "mla",
    "generation_mla_perf": "mla",
    "gdn_perf": "linear_attention",
}
"""The only tables this reader opens (table name -> op folder): kernel timings, nothing end to end."""
GEMM_DTYPES: dict[str, str] = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "fp4",
                               "sq": "int8", "int4_wo": "w4a16", "int8_wo": "w8a16"}
"""aiconfigurator GEMM dtype -> tokenfab kernel precision (fp8_block: 128-block-scaled FP8, DeepSeek style;
sq: SmoothQuant W8A8 INT8; int4_wo / int8_wo: weight-only kernels that dequantize to BF16)."""
ELEMENT_BYTES: dict[str, float] = {"half": 2.0, "float16": 2.0, "bfloat16": 2.0, "fp16": 2.0, "int8": 1.0,
                                   "fp8": 1.0, "float": 4.0, "float32": 4.0}
"""Bytes per element of a collective's dtype (message_size counts elements)."""
_ATTENTION = ("batch_size", "isl", "step", "num_heads", "num_key_value_heads", "head_dim", "window_size", "beam_width",
              "attn_dtype", "kv_cache_dtype", "latency")
_MLA = ("mla_dtype", "kv_cache_dtype", "num_heads", "batch_size", "isl", "tp_size", "step", "latency")
_COLUMNS = {
    "gemm_perf": ("gemm_dtype", "m", "n", "k", "latency"),
    "custom_allreduce_perf": ("allreduce_dtype", "num_gpus", "message_size", "latency"),
    "nccl_perf": ("op_name", "nccl_dtype", "num_gpus", "message_size", "latency"),
    "moe_perf": ("kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts",
                 "moe_tp_size", "moe_ep_size", "distribution", "latency"),
    "context_attention_perf": _ATTENTION,
    "generation_attention_perf": _ATTENTION,
    "context_mla_perf": _MLA,
    "generation_mla_perf": _MLA,
    "gdn_perf": ("kernel_source", "phase", "batch_size", "seq_len", "num_k_heads", "head_k_dim", "num_v_heads",
                 "head_v_dim", "latency"),
}
_TEXT = {"gemm_dtype", "allreduce_dtype", "op_name", "nccl_dtype", "kernel_source", "moe_dtype", "distribution",
         "attn_dtype", "kv_cache_dtype", "mla_dtype", "phase"}


class AiconfiguratorMissing(ValueError):
    """aiconfigurator (or pyarrow for its parquet tables) is not installed: a user error, one line."""


INSTALL_HINT = "install it with `pip install 'tokenfab[aic]'` (or `pip install aiconfigurator`)"


def data_root() -> Path:
    """The installed package's kernel-table folder (`aiconfigurator_core/systems/data`)."""
    spec = importlib.util.find_spec("aiconfigurator_core")
    if spec is None or not spec.submodule_search_locations:
        raise AiconfiguratorMissing(f"aiconfigurator is not installed; {INSTALL_HINT}")
    root = Path(list(spec.submodule_search_locations)[0]) / "systems" / "data"
    if not root.is_dir():
        raise AiconfiguratorMissing(f"aiconfigurator_core at {root.parent.parent} has no systems/data kernel tables")
    return root


def package_version() -> str | None:
    """Installed aiconfigurator-core version (None when unknown)."""
    from importlib.metadata import PackageNotFoundError, version

    for name in ("aiconfigurator-core", "aiconfigurator"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def version_key(v: str) -> tuple:
    """Sort key for versions like 1.3.0rc20, 0.5.6.post2, 2.29.2 (numeric parts compared as numbers)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|[a-z]+", v.lower()))


@dataclass(frozen=True)
class Table:
    """One kernel table: where it lies and its columns as arrays (latency in seconds)."""

    system: str
    name: str
    framework: str
    version: str
    path: Path
    columns: dict
    """Column name -> numpy array (text columns as str arrays); `latency_s` replaces `latency` (ms)."""

    @property
    def rows(self) -> int:
        return int(len(self.columns["latency_s"]))

    def provenance(self, root: Path) -> dict:
        """What a calibration file records about this table (relative path, framework, rows)."""
        try:
            rel = str(self.path.relative_to(root))
        except ValueError:
            rel = str(self.path)
        return {"table": rel, "framework": self.framework, "version": self.version, "rows": self.rows}


def find_tables(root: Path, system: str, name: str) -> list[tuple[str, str, Path]]:
    """(framework, version, path) of every `name` table of `system`, any framework and version."""
    if name not in KERNEL_TABLES:
        raise ValueError(f"{name!r} is not a kernel table this reader opens ({', '.join(KERNEL_TABLES)})")
    base = Path(root) / system / KERNEL_TABLES[name]
    out = []
    if not base.is_dir():
        return out
    for fw_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for v_dir in sorted((p for p in fw_dir.iterdir() if p.is_dir()), key=lambda p: version_key(p.name)):
            for ext in (".parquet", ".csv"):
                f = v_dir / f"{name}{ext}"
                if f.is_file():
                    out.append((fw_dir.name, v_dir.name, f))
                    break
    return out


def pick_table(root: Path, system: str, name: str, framework: str) -> tuple[str, str, Path] | None:
    """The newest version of `name` measured under `framework` (None when there is none)."""
    found = [t for t in find_tables(root, system, name) if t[0] == framework]
    return max(found, key=lambda t: version_key(t[1])) if found else None


def _read_parquet(path: Path, cols: tuple[str, ...]) -> dict:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise AiconfiguratorMissing(f"reading {path.name} needs pyarrow; {INSTALL_HINT}") from None
    t = pq.read_table(path, columns=list(cols))
    return {c: t.column(c).to_numpy(zero_copy_only=False) for c in cols}


def _read_csv(path: Path, cols: tuple[str, ...]) -> dict:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = [c for c in cols if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    return {c: np.array([r[c] for r in rows], dtype=str if c in _TEXT else float) for c in cols}


def read_table(path: Path, name: str, system: str = "", framework: str = "", version: str = "") -> Table:
    """Read one kernel table (parquet or csv) into arrays; latency converted from ms to seconds."""
    path = Path(path)
    cols = _COLUMNS[name]
    raw = _read_parquet(path, cols) if path.suffix == ".parquet" else _read_csv(path, cols)
    out = {}
    for c in cols:
        a = np.asarray(raw[c])
        out[c] = a.astype(str) if c in _TEXT else a.astype(float)
    lat = out.pop("latency") * 1e-3
    ok = np.isfinite(lat) & (lat > 0)
    out = {c: a[ok] for c, a in out.items()}
    out["latency_s"] = lat[ok]
    return Table(system, name, framework, version, path, out)


def band_labels(values, bands) -> np.ndarray:
    """The label of the (label, lo, hi) band of `bands` each value falls in ('' in none): the
    summaries' token and length bands (`aic_moe.TOKEN_BANDS`, `aic_attention.LENGTH_BANDS`)."""
    values = np.asarray(values, float)
    out = np.full(values.shape, "", dtype=object)
    for label, lo, hi in bands:
        out[(values >= lo) & (values <= hi)] = label
    return out


def load(root: Path, system: str, name: str, framework: str) -> Table | None:
    """The newest `name` table of `system` under `framework`, read (None when absent)."""
    hit = pick_table(root, system, name, framework)
    if hit is None:
        return None
    fw, ver, path = hit
    return read_table(path, name, system, fw, ver)


def message_bytes(dtype: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Bytes of collective messages given their dtype names and element counts."""
    per = np.array([ELEMENT_BYTES.get(str(d), np.nan) for d in dtype], dtype=float)
    return per * np.asarray(elements, dtype=float)
