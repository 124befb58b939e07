"""Host time a dropless MoE layer exposes in training (Megatron-Core's token dispatcher).

A dropless MoE layer does not know, until its router has run on the GPU, how many tokens go to
each expert; the host needs those counts to size the all-to-all and the grouped GEMM's splits. So
Megatron-Core's dispatcher copies them to the host and blocks on them once per MoE layer forward
(NVIDIA/Megatron-LM megatron/core/transformer/moe/token_dispatcher.py,
`_maybe_dtoh_and_synchronize`: `maybe_move_tensor_to_cpu(tokens_per_expert ...)` on a side stream,
then "if point == self.cuda_sync_point: ... self.d2h_event.synchronize()"). At that point the
GPU's queue runs dry: every kernel after it — permutation, all-to-all, one GEMM per local expert
for each linear layer (and in FP8 each expert's quantization), activation, combine — reaches the GPU
only as fast as the host issues it, and the backward, which autograd also issues kernel by kernel,
is host-bound whenever its host time exceeds the GPU's. Fine-grained MoE layers are short on the
GPU (Qwen3-30B-A3B on a B200: ~0.2 ms of expert GEMMs per 4,096 tokens) and long on the host, so
the host's time is what the layer costs.

Public profiles size it: on 8 B200 (x86 host) with Qwen3-30B-A3B, EP 8, one 4,096-token sequence
per micro-batch, the NVTX ranges of one MoE layer's forward take 2.2 ms for the router and
preprocessing and 2.3 ms for the expert computation, and each of the ~105 TE GEMM calls per layer
costs 20 us of host time (yanring/Megatron-MoE-ModelZoo issue #7, nsys summary: `nvte_cublas_gemm`
645,099 instances, average 20,266 ns; `#MOE_EXPERTS_COMP` average 2,346,024 ns;
`#MOE_ROUTER_AND_PRE` 2,167,820 ns), i.e. several ms per layer forward and backward, against the
~0.56 ms the layer's all-to-all needs at NVLink speed. A full CUDA graph of the layer removes it
(with static expert buffers): NVIDIA's Qwen3-235B-A22B on 128 GB200 runs 1,208 model TFLOP/s/GPU
with a full graph and 876 with attention/router graphs only (NVIDIA/Megatron-LM PR #5728), 2.0 ms
per layer and 4,096-token micro-batch.

The engine prices it as a constant per MoE layer and micro-batch (`MOE_HOST_S_PER_LAYER`, split
between forward and backward by `MOE_HOST_FORWARD_SHARE`): it does not grow with the tokens, as the
published rows show (NVIDIA's Megatron-Bridge Qwen3-30B-A3B leaves 6.9 ms per layer unexplained at
4,096 tokens per micro-batch on B200 and 7.0 ms at 16,384 on GB200). It is the one parameter fitted
to published MoE training rows (`bench/fit_train_moe.py`, leave-one-source-out); every other input
stays the chip's datasheet and calibration.

Candidates quantified for that B200 row (T0019: FP8, EP 8, 16 local experts, 4,096 tokens per
micro-batch, 6.9 ms per layer and micro-batch unexplained): the all-to-all moves 4,096 x 8 x 7/8 x
2,048 elements per pass (FP8 dispatch, bf16 combine and both backward passes: 411 MB), 0.57 ms at
727 GB/s even if fully exposed; the fused permutations ~1 GB of HBM traffic, 0.17 ms; the expert
GEMMs have 2,048 rows per expert (0.93 TFLOP per layer, 0.2-0.4 ms); router, aux-loss and per-expert
FP8 casts are ~100 small kernels, ~0.5 ms of GPU time. Only the host side (~105 GEMM calls at 20 us
and ~4.5 ms of router, preprocessing and dispatch ranges per forward) is of the residual's size. A stack that captures the whole MoE layer in a CUDA
graph, or overlaps two micro-batches so that one's host stall hides behind the other's queued
kernels (DeepSeek-V3's DualPipe), pays less: the constant is a Megatron-Core default, not a law.
"""

from __future__ import annotations

MOE_HOST_S_PER_LAYER = 4.0e-3
"""Host seconds a dropless MoE layer exposes per micro-batch, forward and backward together
(module docstring), Megatron-Core's default; a stack sets its own (`TrainingStack.moe_host_s_per_layer`:
0 with the MoE layer in a full CUDA graph). Fitted by `bench/fit_train_moe.py` on 31 MoE rows of
`catalog/measurements/training.csv` from 4 sources (NVIDIA Megatron-Bridge 25.11, NVIDIA Megatron-LM
PR #5728 recipes, Pai-Megatron-Patch issues #643/#658, DeepSeek-V3), with the expert all-to-all on the
critical path where no overlap is stated: median |error| 39.7% -> 15.4% in sample, 12.9%
leave-one-source-out (folds 3.5-4.5 ms), 22.3% leave-one-system-out on the Megatron-Bridge table;
the size of the host costs counted from the public nsys summary (~105 TE GEMM calls per layer at
20 us each plus the router and dispatch ranges, yanring/Megatron-MoE-ModelZoo #7)."""
MOE_HOST_FORWARD_SHARE = 1.0 / 3.0
"""Share of `MOE_HOST_S_PER_LAYER` in the forward: the backward issues two gradient GEMMs per
forward GEMM (input and weight gradient), so about twice the forward's kernels. A fully recomputed
layer pays the forward's share again (its forward re-runs, sync included)."""


def moe_host_seconds(model, mtp: bool = True, seconds_per_layer: float | None = None) -> tuple[float, float]:
    """(forward, backward) host seconds one micro-batch exposes over all the model's MoE layers
    (and its MTP modules' MoE layers when they are trained): `seconds_per_layer` (default
    `MOE_HOST_S_PER_LAYER`) per MoE layer, split by `MOE_HOST_FORWARD_SHARE`. 0 for a dense model."""
    per = MOE_HOST_S_PER_LAYER if seconds_per_layer is None else float(seconds_per_layer)
    layers = model.num_moe_layers + (model.mtp_layers if mtp and model.num_moe_layers else 0)
    total = per * layers
    return total * MOE_HOST_FORWARD_SHARE, total * (1.0 - MOE_HOST_FORWARD_SHARE)
