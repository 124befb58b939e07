"""SDXL's pipeline components at their own precisions (issue 18): NVIDIA's MLPerf SDXL engines run
the VAE decoder in fp32 (v4.0: harness.py `VAE(..., precision='fp32')`, TF32 convolutions) and in
INT8-FP32 (v4.1: builder.py `vae_precision = 'int8'`, README "VAE is quantized to INT8-FP32"),
while the UNet's precision is the row's. A generation row states the VAE's with `vae=`.
Numbers worked by hand in the comments (H100 SXM, catalog figures and its calibrated fractions)."""

import csv

import pytest

from tokenfab.catalog import load_chip, load_model
from tokenfab.graph.diffusion import vae_decode_ops
from tokenfab.mapping.search import compute_precision
from tokenfab.mapping.workloads import estimate_generation, vae_hardware
from tokenfab.perf.efficiency import efficiency_for
from tokenfab.perf.evaluate import time_ops, total_seconds
from tokenfab.specs import SpecError, SystemSpec
from tokenfab.specs.measurement import MeasurementRow
from tokenfab.specs.requests import GenerationRequest
from tokenfab.validate import predict_row
from tokenfab.validate.datasets import measurements_dir

MLPERF = GenerationRequest(width_px=1024, height_px=1024, frames=1, steps=20, guidance=8.0, batch=8,
                           cfg_batched=True, attention_kernel="fa3", cuda_graphs=True)
"""MLPerf SDXL's request at NVIDIA's v4.0 H100 batch: 1024 px, 20 steps, guidance 8, both branches
in one UNet batch, TensorRT engines (CUDA graphs)."""


def _vae_seconds(precision: str | None, samples: float = 1.0) -> float:
    chip, model = load_chip("h100-sxm"), load_model("sdxl")
    hw, map_bytes = vae_hardware(chip, efficiency_for(chip), SystemSpec.for_chip(chip), model.diffusion.vae.dtype_bytes,
                                 precision)
    return float(total_seconds(time_ops(vae_decode_ops(model, 1024, 1024, 1, samples, map_bytes=map_bytes), hw)))


def test_vae_decode_work_by_hand():
    # SD AutoencoderKL decoder, stages of 512, 512, 256, 128 channels at 1/64, 1/16, 1/4, 1 of the
    # 1024 x 1024 output; 3 ResNets (6 convs) a stage, 4 more convs in the middle block, an upsample
    # conv at each next scale, 9 taps: per output pixel 2 x 9 x (10 x 512^2/64 + 512^2 x 4/64 +
    # 6 x 512^2/16 + 512^2 x 4/16 + 6 x 256^2/4 + 256^2 x 4/4 + 6 x 128^2) = 8,699,904 FLOPs,
    # x 1,048,576 px = 9.1226 TFLOP; middle attention over 128 x 128 latents at c = 512:
    # 2 x (4 x 16,384 x 512^2 + 2 x 16,384^2 x 512) = 0.5842 TFLOP; total 9.7068 TFLOP.
    op = vae_decode_ops(load_model("sdxl"), 1024, 1024, 1)[0]
    assert float(op.flops) == pytest.approx(9.7068e12, rel=1e-4)
    # Maps: 6 convs x 6 passes x (512/64 + 512/16 + 256/4 + 128) = 8,352 channel-passes per pixel,
    # x 1,048,576 px x 4 B (fp32) = 35.03 GB; a 16-bit engine moves half of it.
    assert float(op.bytes) == pytest.approx(35.03e9, rel=1e-3)
    half = vae_decode_ops(load_model("sdxl"), 1024, 1024, 1, map_bytes=2.0)[0]
    assert float(half.bytes) == pytest.approx(float(op.bytes) / 2) and float(half.flops) == float(op.flops)


def test_vae_hardware_per_precision():
    chip = load_chip("h100-sxm")
    eff, system = efficiency_for(chip), SystemSpec.for_chip(chip)
    # The SDXL VAE's own dtype is fp32: TF32 tensor cores (494.7 TFLOPS dense), 4-byte maps.
    hw, b = vae_hardware(chip, eff, system, 4.0, None)
    assert (float(hw.gemm_tflops), b) == (chip.peak_tflops("tf32"), 4.0)
    assert vae_hardware(chip, eff, system, 4.0, "fp32")[1] == 4.0
    hw16, b16 = vae_hardware(chip, eff, system, 4.0, "fp16")
    assert (float(hw16.gemm_tflops), b16) == (chip.bf16_tflops, 2.0)
    # INT8-FP32: convolutions at the 8-bit peak (1,978.9 TOPS) and the low-precision fraction the
    # UNet's int8 layers get; the maps stay fp32 (norms, SiLU and residuals are not quantized).
    hw8, b8 = vae_hardware(chip, eff, system, 4.0, "int8")
    assert (float(hw8.gemm_tflops), b8) == (chip.peak_tflops("int8"), 4.0)
    assert float(hw8.gemm_frac) == eff.gemm_frac(compute_precision(chip, "int8"))
    with pytest.raises(SpecError, match="VAE precision 'int4'"):
        vae_hardware(chip, eff, system, 4.0, "int4")


def test_int8_vae_is_bound_by_its_fp32_maps():
    chip = load_chip("h100-sxm")
    eff = efficiency_for(chip)
    op = vae_decode_ops(load_model("sdxl"), 1024, 1024, 1)[0]
    launches = float(op.kernels) * eff.kernel_launch_us * 1e-6
    memory = float(op.bytes) / (chip.hbm_tb_s * 1e12 * eff.hbm_frac)
    # fp32: 9.707 TFLOP / (494.7 T x 0.77) = 25.5 ms > 35.03 GB / (3.35 TB/s x 0.88) = 11.9 ms.
    tf32 = float(op.flops) / (chip.peak_tflops("tf32") * 1e12 * eff.gemm_compute_frac)
    assert _vae_seconds(None) == pytest.approx(max(tf32, memory) + launches, rel=1e-9)
    assert tf32 > memory
    # int8: 9.707 TFLOP / (1,978.9 T x 0.52) = 9.4 ms < 11.9 ms of maps: memory-bound, ~12.4 ms an
    # image against fp32's ~25.9 ms.
    i8 = float(op.flops) / (chip.peak_tflops("int8") * 1e12 * eff.gemm_frac("int8"))
    assert i8 < memory
    assert _vae_seconds("int8") == pytest.approx(memory + launches, rel=1e-9)
    assert _vae_seconds("int8") < _vae_seconds("fp16") < _vae_seconds("fp32")


def test_vae_precision_changes_only_the_vae():
    model, chip = load_model("sdxl"), load_chip("h100-sxm")
    base = estimate_generation(model, chip, MLPERF, num_chips=1, precision="int8", max_chips=1)
    fp32 = estimate_generation(model, chip, MLPERF, num_chips=1, precision="int8", max_chips=1, vae_precision="fp32")
    int8 = estimate_generation(model, chip, MLPERF, num_chips=1, precision="int8", max_chips=1, vae_precision="int8")
    assert fp32.latency_s == base.latency_s  # SDXL's VAE is fp32 unless stated otherwise
    assert int8.denoise_s == base.denoise_s and int8.text_encoder_s == base.text_encoder_s
    # batch 8: the decode is 8 x the per-image work in one engine call
    assert int8.vae_decode_s == pytest.approx(_vae_seconds("int8", 8.0), rel=1e-9)
    assert base.latency_s - int8.latency_s == pytest.approx(base.vae_decode_s - int8.vae_decode_s, rel=1e-9)
    with pytest.raises(SpecError):
        estimate_generation(model, chip, MLPERF, num_chips=1, precision="int8", max_chips=1, vae_precision="int3")


def _rows() -> dict[str, MeasurementRow]:
    path = measurements_dir() / "generation.csv"
    return {r["id"]: MeasurementRow.model_validate({k: (v if v != "" else None) for k, v in r.items()})
            for r in csv.DictReader(path.open())}


@pytest.mark.parametrize("rid,unet,vae", [
    ("V0017", "int8", "fp32"),  # MLPerf v4.0, NVIDIA 1x H100
    ("V0015", "fp8", "int8"),   # MLPerf v4.1, NVIDIA 8x H200 Offline
    ("V0016", "fp8", "int8"),   # ... Server
    ("V0024", "fp8", "int8"),   # MLPerf v4.1, Google 8x H100 with NVIDIA's harness
])
def test_mlperf_rows_state_each_components_precision(rid, unet, vae):
    row = _rows()[rid]
    assert row.weight_precision == unet and f" vae={vae};" in row.notes
    value, detail = predict_row(row)
    assert f"VAE {vae} " in detail
    # The stated VAE moves the prediction by exactly its decode time (batch / latency x instances).
    plain = row.model_copy(update={"notes": row.notes.replace(f" vae={vae}", "")})
    value_plain, _ = predict_row(plain)
    assert (value > value_plain) == (vae == "int8") and (value == value_plain) == (vae == "fp32")
