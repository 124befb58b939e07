"""Time of a list of operators on a chip: per-op seconds and what bounds each.

`Hardware` gathers the chip figures an evaluation needs as arrays, so one call prices every
mapping point (each may compute at a different precision).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tokenfab.graph.ops import Op
from tokenfab.perf import comm, roofline, tiled
from tokenfab.perf.efficiency import Efficiency
from tokenfab.perf.onchip import Residency
from tokenfab.specs.system import SystemSpec


@dataclass(frozen=True)
class Hardware:
    """Chip figures for one evaluation. `gemm_tflops` may vary per point (precision)."""

    gemm_tflops: np.ndarray | float
    """Dense peak for the linear layers' compute precision, TFLOP/s."""
    attention_tflops: np.ndarray | float
    """Dense peak attention runs at, TFLOP/s (bf16, or fp8 with an fp8 KV cache: per point)."""
    hbm_tb_s: float
    cores: int
    eff: Efficiency
    system: SystemSpec
    gemm_frac: np.ndarray | float | None = None
    """Achievable fraction of `gemm_tflops` per point (None: `eff.gemm_compute_frac`)."""
    tiled: object | None = None
    """`perf.tiled.TiledHW` for the SRAM-aware fidelity (None: roofline)."""
    bf16_tflops: float | None = None
    """Dense BF16 peak, TFLOP/s: GEMMs whose weights stay bf16 (LM head, router, MLA absorb) run
    on the bf16 tensor path whatever the point's precision (None: `gemm_tflops`)."""
    bf16_frac: float | None = None
    """Achievable fraction of `bf16_tflops` (None: `eff.gemm_compute_frac`)."""
    resident: Residency | None = None
    """What each point keeps in shared SRAM across steps (`perf.onchip.plan`; tiled fidelity only;
    None: nothing)."""
    vector_tflops: float | None = None
    """FP32 vector peak, TFLOP/s (`unit_peaks`); None: vector work is not timed."""
    sfu_tops: float | None = None
    """Special-function throughput, tera-ops/s (`unit_peaks`); None: special functions are not timed."""


UNIT_NAMES = ("matrix", "memory", "communication", "vector", "sfu")
"""What bounds an op (`OpTime.unit` codes): the matrix units, device memory, the links, the vector
units or the special-function units. `OpTime.bound` folds vector and sfu into compute (0)."""


def unit_peaks(chip) -> dict:
    """`Hardware` fields for the vector and special-function units of a `ChipSpec`: its microarch
    block's `vector_tflops` (else the chip's `fp32_tflops`) and `sfu_tops` (else None)."""
    mu = getattr(chip, "microarch", None)
    vec = getattr(mu, "vector_tflops", None) or getattr(chip, "fp32_tflops", None)
    return {"vector_tflops": vec, "sfu_tops": getattr(mu, "sfu_tops", None)}


@dataclass(frozen=True)
class OpTime:
    """Seconds per step spent in one op (all its repetitions) and its limiting resource."""

    name: str
    seconds: np.ndarray
    bound: np.ndarray  # 0 compute, 1 memory, 2 communication
    unit: np.ndarray | None = None
    """The unit that bounds it, `UNIT_NAMES` codes (None: read from `bound`: 0 matrix, 1 memory,
    2 communication)."""

    @property
    def units(self) -> np.ndarray:
        return np.asarray(self.bound if self.unit is None else self.unit)


def _gemm_peak(op: Op, hw: Hardware):
    """(peak TFLOP/s, achievable fraction) a GEMM runs at. A GEMM whose weights stay bf16 in a
    quantized deployment (`meta["bf16_weights"]`: LM head, router, MLA absorb) has bf16 operands,
    so it runs on the bf16 tensor path at the bf16 peak and fraction: no FP8/FP4 kernel takes bf16
    weights, and quantizing them on the fly would cost more than it saves."""
    if op.meta.get("bf16_weights") and hw.bf16_tflops is not None:
        frac = hw.eff.gemm_compute_frac if hw.bf16_frac is None else hw.bf16_frac
        return hw.bf16_tflops, frac
    return hw.gemm_tflops, hw.gemm_frac


def act_quant_s(op: Op, peak, hw: Hardware):
    """Seconds of the activation quantization before a GEMM that computes in FP8/INT8 or FP4 (its
    peak above the BF16 peak; weight-only and bf16-weight GEMMs quantize nothing): see
    `roofline.act_quant_time_s`; 0 where the chip's calibration does not keep it apart."""
    if hw.bf16_tflops is None or op.meta.get("bf16_weights") or not (
            hw.eff.lowp_act_quant_bytes or hw.eff.fp4_act_quant_bytes):
        return 0.0
    low = np.asarray(peak) > hw.bf16_tflops * 1.01
    return roofline.act_quant_time_s(op.m, op.k, hw.hbm_tb_s, hw.eff, low, np.asarray(op.w_bytes) < 1.0,
                                     batch=op.groups)


def time_ops(ops: list[Op], hw: Hardware) -> list[OpTime]:
    """Per-op seconds per step (count included) for every point."""
    out = []
    eff = hw.eff
    res = hw.resident if hw.tiled is not None else None
    w_res = None if res is None or not np.any(res.weights) else res.weights
    kv_res = None if res is None or not np.any(res.kv) else res.kv
    for op in ops:
        peak, frac = _gemm_peak(op, hw)
        if op.kind == "gemm" and hw.tiled is not None:
            t, cb = tiled.gemm_time_s(op.m, op.n, op.k, peak, hw.hbm_tb_s, op.w_bytes, op.a_bytes,
                                      hw.cores, eff, batch=op.groups, compute_frac=frac,
                                      ragged=bool(op.meta.get("ragged", False)), hw=hw.tiled,
                                      weights_resident=w_res)
            t = t + act_quant_s(op, peak, hw)
            bound = np.where(cb, 0, 1)
        elif op.kind == "attention" and hw.tiled is not None:
            # Softmax attention from the decoder graph carries its tile geometry (q_rows, ...); the KV
            # cache it reads is what `resident.kv` pins. Other attention-like kernels keep the
            # head-width model and HBM.
            geo = op.meta if "q_rows" in op.meta else None
            t, cb = tiled.attention_time_s(op.flops, op.bytes, hw.attention_tflops, hw.hbm_tb_s, eff, hw=hw.tiled,
                                           head_dim=op.meta.get("head_dim", 128.0), geometry=geo,
                                           kv_resident=None if geo is None else kv_res)
            bound = np.where(cb, 0, 1)
        elif op.kind == "gemm":
            g_eff, g_fixed, quant_held = eff, 0.0, False
            if op.meta.get("ragged") and eff.has_moe_fit:  # grouped expert GEMMs: fitted MoE terms
                g_eff, frac, g_fixed = roofline.moe_gemm_terms(op.w_bytes, eff, frac, bool(op.meta.get("moe_layer")))
                # The fitted layer already holds its activation quantization: the fused-MoE tables time it
                # inside the layer (`validate.aic_moe`), and the fit prices no pass of its own. Training's
                # FP8 recipe quantizes apart (`quant_apart`, set by `train.layer`): it keeps the pass.
                quant_held = not op.meta.get("quant_apart")
            t, cb = roofline.gemm_time_s(op.m, op.n, op.k, peak, hw.hbm_tb_s, op.w_bytes,
                                         op.a_bytes, hw.cores, g_eff, batch=op.groups, compute_frac=frac,
                                         ragged=bool(op.meta.get("ragged", False)))
            t = t + g_fixed + (0.0 if quant_held else act_quant_s(op, peak, hw))
            bound = np.where(cb, 0, 1)
        elif op.kind == "attention":
            t, cb = roofline.attention_time_s(op.flops, op.bytes, hw.attention_tflops, hw.hbm_tb_s, eff)
            bound = np.where(cb, 0, 1)
        elif op.kind == "stream":
            t = roofline.stream_time_s(op.bytes, hw.hbm_tb_s, eff, kernels=op.kernels)
            bound = np.ones_like(np.asarray(t), dtype=int)
        elif op.kind == "allreduce":
            t = comm.allreduce_time_s(op.bytes, op.group, hw.system, eff)
            bound = np.full(np.shape(t), 2)
        elif op.kind == "alltoall":
            t = comm.alltoall_time_s(op.bytes, op.group, hw.system, eff)
            bound = np.full(np.shape(t), 2)
        else:  # kinds of the newer families (fused kernels, all-gathers): perf/kinds.py
            from tokenfab.perf.kinds import extra_kind_time
            t, bound = extra_kind_time(op, hw)
        unit = np.asarray(bound)
        if (op.kind in ("attention", "stream", "fused") and (hw.vector_tflops or hw.sfu_tops)
                and (np.any(op.vector_flops) or np.any(op.sfu_ops))):
            t, bound, unit = _with_units(op, hw, t, bound)
        out.append(OpTime(op.name, np.asarray(t, float) * op.count, bound, unit))
    return out


def _with_units(op: Op, hw: Hardware, t, bound):
    """An op's time against its vector and special-function work: max(its matrix/memory time,
    vector time + launch, sfu time + launch). The units run alongside the matrix units and memory
    pipeline (FlashAttention-3 overlaps the softmax exponentials with the GEMMs), so the slowest
    of them sets the time. Bound codes: vector/sfu count as compute in `bound`, by name in `unit`."""
    t_vec, t_sfu = roofline.unit_times_s(op.vector_flops, op.sfu_ops, hw.vector_tflops, hw.sfu_tops)
    launch = op.kernels * hw.eff.kernel_launch_us * 1e-6
    t = np.asarray(t, float)
    t_vec = t_vec + launch
    t_sfu = t_sfu + launch
    new = np.maximum(t, np.maximum(t_vec, t_sfu))
    unit = np.where(t_sfu > t, np.where(t_sfu >= t_vec, 4, 3), np.where(t_vec > t, 3, bound))
    bound = np.where(unit >= 3, 0, bound)
    return new, bound, unit


def total_seconds(times: list[OpTime]) -> np.ndarray:
    """Sum of op times (ops run one after another on a chip)."""
    return np.sum(np.broadcast_arrays(*[t.seconds for t in times]), axis=0)


def unit_shares(times: list[OpTime]) -> np.ndarray:
    """Seconds by bounding unit, shape (5, points): `UNIT_NAMES` order."""
    seconds = np.broadcast_arrays(*[t.seconds for t in times])
    shares = np.zeros((len(UNIT_NAMES),) + seconds[0].shape)
    for t, s in zip(times, seconds):
        u = np.broadcast_to(t.units, s.shape)
        for i in range(len(UNIT_NAMES)):
            shares[i] += np.where(u == i, s, 0.0)
    return shares


def bound_shares(times: list[OpTime]) -> np.ndarray:
    """Seconds by limiting resource, shape (3, points): compute, memory, communication."""
    seconds = np.broadcast_arrays(*[t.seconds for t in times])
    shares = np.zeros((3,) + seconds[0].shape)
    for t, s in zip(times, seconds):
        b = np.broadcast_to(t.bound, s.shape)
        for i in range(3):
            shares[i] += np.where(b == i, s, 0.0)
    return shares


def op_unit_names(times: list[OpTime], i: int) -> tuple[dict[str, float], dict[str, str]]:
    """Point `i`'s ms by bounding unit (`UNIT_NAMES`) and each op's bounding unit by name."""
    ms = {name: 0.0 for name in UNIT_NAMES}
    names: dict[str, str] = {}
    for t in times:
        sec, u = np.broadcast_arrays(np.asarray(t.seconds, float), np.asarray(t.units))
        s_i = float(sec[i] if sec.ndim else sec)
        u_i = int(u[i] if u.ndim else u)
        ms[UNIT_NAMES[u_i]] += s_i * 1e3
        names[t.name] = UNIT_NAMES[u_i]
    return ms, names
