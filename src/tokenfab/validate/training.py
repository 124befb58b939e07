"""Predict a published training run (scenario `training`) at the mapping the row states.

A row gives the chip, chip count, model, sequence length (`input_len`), global batch in sequences
(`batch`), the degrees it states (`tp`, `pp`, `ep`, `dp`) and, in `notes` as `key=value`, what the
schema has no column for: `cp`, `vp` (virtual pipeline stages: the interleaved schedule), `mbs`
(micro-batch sequences), `schedule`, `zero` (or `fsdp=1`: ZeRO-3), `recompute`, `mtp=0` (MTP
modules not trained), `lora=1` (LoRA fine-tuning), `grad_bytes` (2: bf16 gradient reduction) and
`tokens` (the run's tokens, for `chip_hours`). What a row leaves out the training search chooses.
Metrics: `tokens_s` (per chip or system), `mfu` (model FLOPs over the dense peak of the row's
precision; `mfu_basis=bf16` in notes: over the bf16 peak; `attention_flops=full`: the source counts
attention without the causal discount, `ATTENTION_FLOPS`), `chip_hours`, `step_time_s`, and
`time_to_train_min` (MLPerf Training's score: `validate.mlperf_training`, `mlperf=BENCH` in notes).
"""

from __future__ import annotations

import re

from tokenfab import catalog
from tokenfab.specs import SpecError
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate.micro import Unpredictable

_KV = re.compile(r"\b([a-z_]+)=([A-Za-z0-9.+\-]+)")
DEFAULT_TOKENS = 1e12
"""Tokens of the run when a row does not state them (only `chip_hours` depends on it)."""


def notes_fields(notes: str) -> dict[str, str]:
    """`key=value` pairs of a row's notes (first occurrence wins)."""
    out: dict[str, str] = {}
    for k, v in _KV.findall(notes):
        out.setdefault(k, v.rstrip("."))
    return out


def training_job(row: MeasurementRow):
    """The `TrainingJob` a row states."""
    from tokenfab.train import TrainingJob

    kv = notes_fields(row.notes)
    if not row.input_len:
        raise Unpredictable("training row without its sequence length (input_len)")
    seq = int(row.input_len)
    fields: dict = {"tokens": float(kv.get("tokens", DEFAULT_TOKENS)), "seq_len": seq,
                    "precision": "fp8" if "fp8" in (row.weight_precision, row.activation_precision) else "bf16"}
    if row.batch:
        fields["global_batch_tokens"] = float(row.batch) * seq
    for k in ("tp", "pp", "ep", "dp"):
        if getattr(row, k):
            fields[k] = getattr(row, k)
    if "cp" in kv:
        fields["cp"] = int(kv["cp"])
    if "mbs" in kv:
        fields["micro_batch"] = int(kv["mbs"])
    vp = int(kv.get("vp", "1")) if kv.get("vp", "1").isdigit() else 1
    if kv.get("schedule"):
        fields["schedule"] = kv["schedule"]
        if kv["schedule"] == "interleaved" and vp > 1:
            fields["virtual_stages"] = vp
    elif vp > 1:
        fields.update(schedule="interleaved", virtual_stages=vp)
    elif fields.get("pp", 0) > 1 or "pp" in fields:
        fields["schedule"] = "1f1b"  # Megatron's default without a virtual pipeline
    if kv.get("fsdp") == "1":
        fields["zero"] = 3
    elif "zero" in kv:
        fields["zero"] = int(kv["zero"])
    if kv.get("lora") == "1":
        fields["lora"] = True
    if kv.get("mtp") == "0":
        fields["mtp"] = False
    if "recompute" in kv:
        fields["recompute"] = kv["recompute"]
    if kv.get("overlap") in ("0", "1"):
        fields["overlap"] = kv["overlap"] == "1"
    if row.num_chips and "dp" not in fields and {"tp", "pp"} <= fields.keys():
        inner = fields["tp"] * fields["pp"] * fields.get("cp", 1)
        if row.num_chips % inner == 0:
            fields["dp"] = row.num_chips // inner
    try:
        return TrainingJob.from_mapping(fields, origin=f"row {row.id}")
    except SpecError as exc:
        raise Unpredictable(str(exc)) from None


STACK_KEYS = ("grad_bytes", "optimizer_bytes", "weight_bytes")
"""`TrainingStack` fields a row may state in its notes (the software's documented settings)."""


SOFTWARE_BY_FRAMEWORK = (("megatron", "megatron-core"), ("nemo", "megatron-core"), ("modellink", "megatron-core"),
                         ("ascendspeed", "megatron-core"), ("mindspeed", "megatron-core"),
                         ("zero-bubble", "zero-bubble"), ("hai-llm", "dualpipe"))
"""Row frameworks (substring, lower case) -> the training software whose pipeline schedules the
search may use (`train.stack.SOFTWARE_SCHEDULES`): Megatron-LM, Megatron-Core, Megatron-Bridge and
NeMo run Megatron-Core's schedules (1F1B, interleaved), not the zero-bubble fork's; so do Huawei's
ModelLink and AscendSpeed, Megatron-LM run on Ascend through an adaptor (DeepLink-org/deeplink-rtd-docs
docs/doc/example/huawei_2024.md installs ModelLink on "NVIDIA/Megatron-LM ... git checkout 285068c8"
plus "megatron_npu_adaptor"), and its successor MindSpeed-LLM (Megatron-Core on Ascend through MindSpeed's
patches, Ascend/MindSpeed-LLM README); the zero-bubble fork runs its own (ZB-H1/H2); DeepSeek's HAI-LLM runs
DualPipe (arXiv 2412.19437 §3.2.1). Any other framework: `DEFAULT_SOFTWARE`."""


def row_software(row: MeasurementRow) -> str:
    """The training software a row's framework names (`DEFAULT_SOFTWARE` when it names none we know)."""
    from tokenfab.train.stack import DEFAULT_SOFTWARE

    fw = (row.framework or "").lower()
    return next((sw for key, sw in SOFTWARE_BY_FRAMEWORK if key in fw), DEFAULT_SOFTWARE)


def training_stack(row: MeasurementRow):
    """The `TrainingStack` with what the row states: its notes (`grad_bytes=2`: bf16 gradient
    reduction; `fused_attention=0`: 2022 Megatron's unfused attention; `ep_overlap=1`: the expert
    all-to-all overlapped; `moe_sync=0`: no host sync in the MoE layer, a full CUDA graph) and its
    framework's pipeline schedules (`row_software`)."""
    from tokenfab.train import TrainingStack
    from tokenfab.train.stack import SOFTWARE_SCHEDULES

    kv = notes_fields(row.notes)
    fields: dict = {k: float(kv[k]) for k in STACK_KEYS if k in kv}
    if kv.get("fused_attention") in ("0", "1"):
        fields["fused_attention"] = kv["fused_attention"] == "1"
    if kv.get("ep_overlap") in ("0", "1"):  # Megatron's overlap_moe_expert_parallel_comm
        fields["ep_comm_overlap"] = kv["ep_overlap"] == "1"
    if kv.get("moe_sync") == "0":  # the MoE layer in a full CUDA graph with static expert buffers
        fields["moe_host_s_per_layer"] = 0.0
    fields["schedules"] = SOFTWARE_SCHEDULES[row_software(row)]
    try:
        return TrainingStack.from_mapping(fields, origin=f"row {row.id}")
    except SpecError as exc:
        raise Unpredictable(str(exc)) from None


def estimate_row(row: MeasurementRow, lora: bool = False):
    """(estimate_training's result, model, chip, job, stack) at the mapping the row states; `lora`:
    fine-tune with LoRA even if the notes do not say `lora=1` (the benchmark does)."""
    from tokenfab.train import estimate_training
    from tokenfab.train.search import NoMapping

    if not row.num_chips:
        raise Unpredictable("training row without its chip count")
    try:
        model, chip = catalog.load_model(row.model), catalog.load_chip(row.hardware)
    except SpecError as exc:
        raise Unpredictable(str(exc)) from None
    job = training_job(row)
    if lora and not job.lora:
        job = job.model_copy(update={"lora": True})
    stack = training_stack(row)
    try:
        r = estimate_training(model, chip, row.num_chips, job, stack)
    except NoMapping as exc:
        raise Unpredictable(str(exc)) from None
    except SpecError as exc:
        raise Unpredictable(str(exc)) from None
    return r, model, chip, job, stack


ATTENTION_FLOPS = ("causal", "full")
"""How a source counts attention in the model FLOPs of its MFU (`attention_flops=` in notes):
`causal`, the engine's count (`train.flops`: a token meets S/2 keys on average), or `full`, every
query meeting all S keys on every layer, the causal mask's sparsity not discounted — PaLM's MFU
definition, 6N + 12·L·H·Q·T per token (arXiv 2204.02311 Appendix B), which Meta's torchtitan keeps
(pytorch/torchtitan torchtitan/utils.py `get_num_flop_per_token`: "we follow the convention and do
not account for sparsity in causal attention")."""


def full_attention_flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token of the score and value matmuls when every query meets all `seq_len`
    keys on every layer (no causal or window discount): 3 x 2 x heads x (qk_dim + v_dim) x layers x S,
    PaLM's 12·L·H·Q·T when qk_dim = v_dim = Q — twice `train.flops.attention_flops_per_token` for a
    model without sliding-window layers."""
    return 6.0 * model.num_heads * (model.head_dim + model.v_head_dim) * model.num_layers * float(seq_len)


def source_flops_ratio(row: MeasurementRow, model, job) -> float:
    """The row source's model FLOPs per token over the engine's (`train.flops.model_flops_per_token`,
    the numerator of its MFU): 1 unless the notes say `attention_flops=full` (`ATTENTION_FLOPS`)."""
    from tokenfab.train.flops import attention_flops_per_token, model_flops_per_token

    convention = notes_fields(row.notes).get("attention_flops", "causal")
    if convention not in ATTENTION_FLOPS:
        raise Unpredictable(f"attention_flops={convention} is not one of {', '.join(ATTENTION_FLOPS)}")
    if convention == "causal":
        return 1.0
    engine = float(model_flops_per_token(model, job.seq_len, job.lora))
    causal = float(attention_flops_per_token(model, job.seq_len))
    return (engine - causal + full_attention_flops_per_token(model, job.seq_len)) / engine


def predict_training(row: MeasurementRow) -> tuple[float, str]:
    """(predicted value in the row's metric, detail). `time_to_train_min` (MLPerf Training's score)
    is `validate.mlperf_training.predict_time_to_train` (`validate.predict_row` sends it there). An
    `mfu` row is predicted in its source's FLOP count (`source_flops_ratio`)."""
    r, model, _chip, job, _stack = estimate_row(row)
    mp = r["mapping"]
    detail = (f"tp {mp['tp']} pp {mp['pp']} ({mp['schedule']}) cp {mp['cp']} ep {mp['ep']} dp {mp['dp']}, "
              f"mbs {mp['micro_batch']}, zero {mp['zero']}, recompute {mp['recompute']}, "
              f"overlap {mp['overlap']}; MFU {r['mfu']:.1%}")
    metric = row.metric
    if metric == "tokens_s":
        value = r["tokens_s_per_chip"] if row.per == "chip" else r["tokens_s"]
    elif metric == "mfu":
        value = r["mfu_bf16_peak"] if notes_fields(row.notes).get("mfu_basis") == "bf16" else r["mfu"]
        ratio = source_flops_ratio(row, model, job)
        if ratio != 1.0:
            value *= ratio
            detail += f" (x{ratio:.3f} in the source's FLOPs: attention over all keys)"
    elif metric in ("chip_hours", "gpu_hours"):
        value = r["chip_hours"]
    elif metric == "step_time_s":
        value = r["step_time_s"]
    else:
        raise Unpredictable(f"training metric {metric} is not predicted")
    return float(value), detail
