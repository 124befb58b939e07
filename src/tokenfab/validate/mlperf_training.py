"""MLPerf Training's metric, time to train, predicted for a training row (`time_to_train_min`).

MLPerf Training times a run from run_start to run_stop: the training steps until the quality target
is met plus the evaluations in between (initialization excluded). A prediction is

    minutes = samples to converge x seq_len / predicted tokens/s  +  evaluations x seconds of one

- samples to converge at the row's global batch (`batch`, sequences): the benchmark's Reference
  Convergence Points (mean samples per reference batch size, `catalog/measurements/mlperf_training.yaml`),
  interpolated linearly in log(batch) between the neighbouring RCP batch sizes; outside their range
  the nearest RCP (the detail says so). Expected values, not rounded to whole evaluation intervals.
- tokens/s: the training engine at the mapping the row states (`validate.training.estimate_row`:
  what the row leaves out is searched), without goodput (no failures or checkpoints in a benchmark run).
- evaluations: one every `eval_interval_samples` (rounded up to whole steps of the batch), the first
  `eval_skip` skipped; each a forward-only pass over `eval_samples` sequences at the same mapping,
  priced with the training engine's forward of a micro-batch (`train.layer.micro_batch_times`: the
  layers' forward compute and communication over the pipeline stages, plus the LM head and loss on
  the last stage): (micro-batches per data-parallel rank + pp - 1) x the slowest stage's forward.

A row names its benchmark in the notes (`mlperf=llama31_405b`) or by its model (the benchmark whose
`models` list it). `benchmark_minutes` does the same for a chip and chip count with a searched mapping
(`tokenfab train --mlperf BENCH`).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import yaml
from pydantic import Field

from tokenfab.specs import SpecError
from tokenfab.specs.base import Spec
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.validate.micro import Unpredictable


_MLPERF_NOTE = re.compile(r"\bmlperf=([A-Za-z0-9_.\-]+)")


class MlperfTrainingBenchmark(Spec):
    """An MLPerf Training LLM benchmark as a time-to-train prediction needs it (sources in the YAML)."""

    name: str = Field(min_length=1)
    """Benchmark name as MLPerf logs it (`submission_benchmark`)."""
    models: tuple[str, ...] = ()
    """Catalog model ids the benchmark trains."""
    lora: bool = False
    """LoRA fine-tuning (base weights frozen)."""
    seq_len: int = Field(gt=0, le=1_000_000)
    """Tokens per training and evaluation sequence."""
    eval_interval_samples: float = Field(gt=0)
    """Training sequences between two evaluations (rounded up to whole steps of the global batch)."""
    eval_samples: float = Field(gt=0)
    """Sequences of one evaluation pass."""
    eval_skip: int | None = Field(default=None, ge=0)
    """Evaluations skipped at the start (None: `eval_skip_rule`)."""
    eval_skip_rule: str = ""
    """`floor(0.125 * batch + 2)`: the Llama-2-70B LoRA rule (skipped evaluations grow with the batch)."""
    rcp_samples_mean: dict[int, float]
    """Reference global batch size (sequences) -> mean samples to converge (olympic mean of the RCP runs)."""
    quality_target: str = ""
    """What converging means (metric and value)."""
    rounds: tuple[str, ...] = ()
    """MLPerf Training rounds that ran the benchmark."""
    sources: dict[str, str] = {}
    """Where each figure comes from."""

    def skipped_evals(self, batch: int) -> int:
        """Evaluations skipped at the start of a run at global batch `batch`."""
        if self.eval_skip is not None:
            return self.eval_skip
        if self.eval_skip_rule.replace(" ", "") == "floor(0.125*batch+2)":
            return int(math.floor(0.125 * batch + 2))
        return 0


@lru_cache(maxsize=1)
def benchmarks() -> dict[str, MlperfTrainingBenchmark]:
    """The benchmarks of catalog/measurements/mlperf_training.yaml, by name."""
    from tokenfab.validate.datasets import measurements_dir

    raw = yaml.safe_load((measurements_dir() / "mlperf_training.yaml").read_text())["benchmarks"]
    return {name: MlperfTrainingBenchmark.from_mapping({"name": name, **entry}, origin=f"mlperf_training.yaml:{name}")
            for name, entry in raw.items()}


def benchmark(name: str) -> MlperfTrainingBenchmark:
    """One benchmark by name; an unknown name is a one-line SpecError naming the known ones."""
    known = benchmarks()
    if name not in known:
        raise SpecError(f"unknown MLPerf Training benchmark {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def benchmark_for_row(row: MeasurementRow) -> MlperfTrainingBenchmark:
    """The benchmark a row names (`mlperf=NAME` in its notes) or whose model it trains."""
    m = _MLPERF_NOTE.search(row.notes)
    name = m.group(1) if m else None
    if name:
        try:
            return benchmark(name)
        except SpecError as exc:
            raise Unpredictable(str(exc)) from None
    for b in benchmarks().values():
        if row.model in b.models:
            return b
    raise Unpredictable(f"no MLPerf Training benchmark trains {row.model}; name one in the notes (mlperf=NAME)")


def samples_to_converge(bench: MlperfTrainingBenchmark, batch: float) -> tuple[float, str]:
    """(mean samples to converge at global batch `batch`, how it was found): an RCP batch size's mean,
    linear in log(batch) between the two neighbouring RCP batch sizes, or the nearest outside them."""
    if batch <= 0:
        raise SpecError(f"global batch must be > 0, got {batch}")
    points = sorted(bench.rcp_samples_mean.items())
    sizes = [b for b, _ in points]
    if batch in bench.rcp_samples_mean:
        return float(bench.rcp_samples_mean[int(batch)]), f"RCP at batch {int(batch)}"
    if batch < sizes[0]:
        return float(points[0][1]), f"below the RCP batch sizes: nearest RCP (batch {sizes[0]})"
    if batch > sizes[-1]:
        return float(points[-1][1]), f"above the RCP batch sizes: nearest RCP (batch {sizes[-1]})"
    hi = next(i for i, b in enumerate(sizes) if b > batch)
    (b0, s0), (b1, s1) = points[hi - 1], points[hi]
    t = (math.log(batch) - math.log(b0)) / (math.log(b1) - math.log(b0))
    return s0 + t * (s1 - s0), f"RCP interpolated in log(batch) between batch {b0} and {b1}"


def evaluations(bench: MlperfTrainingBenchmark, samples: float, batch: int) -> tuple[float, float]:
    """(expected evaluations, samples trained) of a run converging after `samples`: evaluations run
    every ceil(interval / batch) steps, the first `skipped_evals` skipped, so a run trains at least
    until the first evaluation that counts."""
    every = math.ceil(bench.eval_interval_samples / batch) * batch
    skip = bench.skipped_evals(batch)
    trained = max(samples, (skip + 1) * every)
    return trained / every - skip, trained


def evaluation_seconds(model, chip, job, stack, mapping: dict, eval_samples: float) -> float:
    """Seconds of one forward-only pass over `eval_samples` sequences at the training mapping: each
    data-parallel rank runs ceil(eval_samples / (dp x mbs)) micro-batches through the pp stages (the
    pipeline fills in pp - 1 more stage times); a stage's forward is the layers' forward compute and
    communication over pp (`train.layer.micro_batch_times`), the last stage adds the LM head and the
    loss, and each micro-batch's forward pays the host's per-step overhead."""
    from tokenfab.mapping.search import chip_hardware
    from tokenfab.perf.efficiency import efficiency_for
    from tokenfab.specs import SystemSpec
    from tokenfab.train.layer import micro_batch_times
    from tokenfab.train.search import training_chip

    eff = efficiency_for(chip)
    hw = chip_hardware(model, training_chip(chip), SystemSpec.for_chip(chip), eff, (job.precision,), None, 0, "prefill", None,
                       "roofline")
    tp, cp, ep, mbs, pp, dp = (mapping[k] for k in ("tp", "cp", "ep", "micro_batch", "pp", "dp"))
    mb = micro_batch_times(model, hw, job.seq_len, [tp], [cp], [ep], [mbs],
                           stack.attention_backward_ratio / stack.attention_backward_efficiency,
                           1.0 if job.precision == "fp8" else 2.0, job.mtp, frozen=job.lora,
                           unfused_attention=not stack.fused_attention)
    stage_s = float(mb.fwd_compute[0] + mb.fwd_comm[0]) / pp + float(mb.head_fwd[0]) + eff.step_overhead_ms * 1e-3
    micro_batches = math.ceil(eval_samples / (dp * mbs))
    return (micro_batches + pp - 1) * stage_s


def time_to_train(bench: MlperfTrainingBenchmark, batch: int, tokens_s: float, eval_s: float) -> dict:
    """Minutes to train at global batch `batch`, training `tokens_s` tokens/s, `eval_s` seconds per
    evaluation, and its parts (samples, evaluations, training and evaluation minutes)."""
    if tokens_s <= 0:
        raise SpecError(f"tokens/s must be > 0, got {tokens_s}")
    samples, how = samples_to_converge(bench, batch)
    n_eval, trained = evaluations(bench, samples, batch)
    train_min = trained * bench.seq_len / tokens_s / 60.0
    eval_min = n_eval * eval_s / 60.0
    return {"minutes": train_min + eval_min, "samples_to_converge": samples, "samples_trained": trained,
            "rcp": how, "evaluations": n_eval, "train_min": train_min, "eval_min": eval_min, "eval_s": eval_s}


def predict_time_to_train(row: MeasurementRow) -> tuple[float, str]:
    """(predicted minutes, detail) of a `time_to_train_min` row at the mapping it states."""
    from tokenfab.validate.training import estimate_row

    bench = benchmark_for_row(row)
    if not row.batch:
        raise Unpredictable("time-to-train row without its global batch (batch, sequences)")
    if row.input_len and int(row.input_len) != bench.seq_len:
        raise Unpredictable(f"{bench.name} trains sequences of {bench.seq_len} tokens, the row says {row.input_len}")
    batch = int(row.batch)
    row = row.model_copy(update={"input_len": float(bench.seq_len)})
    r, model, chip, job, stack = estimate_row(row, lora=bench.lora)
    eval_s = evaluation_seconds(model, chip, job, stack, r["mapping"], bench.eval_samples)
    t = time_to_train(bench, batch, r["tokens_s"], eval_s)
    mp = r["mapping"]
    detail = (f"{bench.name}: {t['samples_to_converge']:,.0f} samples to converge at batch {batch} ({t['rcp']}); "
              f"train {t['train_min']:.1f} min at {r['tokens_s']:,.0f} tok/s (MFU {r['mfu']:.1%}) + "
              f"{t['evaluations']:.1f} evals x {eval_s:.1f} s = {t['eval_min']:.1f} min; "
              f"tp {mp['tp']} pp {mp['pp']} ({mp['schedule']}) cp {mp['cp']} dp {mp['dp']} mbs {mp['micro_batch']}")
    return t["minutes"], detail


def benchmark_minutes(bench_name: str, model, chip, num_chips: int, batch: int | None = None,
                      precision: str = "bf16", stack=None) -> dict:
    """Predicted time to train benchmark `bench_name` on at most `num_chips` chips of `chip` with a
    searched mapping, at global batch `batch` sequences (default: the smallest RCP batch size, which
    converges in the fewest samples): JSON-ready minutes, its parts and the mapping."""
    from tokenfab.train import TrainingJob, TrainingStack, estimate_training

    bench = benchmark(bench_name)
    if model.id not in bench.models:
        raise SpecError(f"{bench.name} trains {', '.join(bench.models)}, not {model.id}")
    batch = batch or min(bench.rcp_samples_mean)
    if batch < 1:
        raise SpecError(f"--global-batch must be ≥ 1 sequence, got {batch}")
    stack = stack or TrainingStack()
    samples, _ = samples_to_converge(bench, batch)
    job = TrainingJob(tokens=samples * bench.seq_len, seq_len=bench.seq_len, global_batch_tokens=batch * bench.seq_len,
                      precision=precision, lora=bench.lora)
    r = estimate_training(model, chip, num_chips, job, stack)
    eval_s = evaluation_seconds(model, chip, job, stack, r["mapping"], bench.eval_samples)
    t = time_to_train(bench, batch, r["tokens_s"], eval_s)
    return {"benchmark": bench.name, "model": model.id, "chip": chip.id, "chips": num_chips,
            "chips_used": r["chips_used"], "global_batch": batch, "precision": precision, **t,
            "tokens_s": r["tokens_s"], "mfu": r["mfu"], "mapping": r["mapping"]}
