"""Options shared by commands that take traffic and SLOs."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from tokenfab.specs import Traffic
from tokenfab.specs.traffic import CHAT, DEFAULT_SCENARIO

MAX_CHIP_COUNT = 1_048_576
"""Largest chip count a command takes (a million chips: past any cluster built or planned; a larger
number is a typo, and numpy's fixed-width integers would overflow on it)."""

Isl = typer.Option(None, "--isl", min=1, help=f"Input (prompt) length of every request, tokens (default "
                   f"{CHAT.input_len}: {DEFAULT_SCENARIO}, not the `chat` traffic profile of simulate and plan).")
Osl = typer.Option(None, "--osl", min=1, help=f"Output length of every request, tokens (default {CHAT.output_len}: "
                   f"{DEFAULT_SCENARIO}).")
SloTtft = typer.Option(None, "--slo-ttft-ms", help=f"TTFT limit, ms (default {CHAT.slo_ttft_ms:g}; 0 = none).")
SloTpot = typer.Option(None, "--slo-tpot-ms", help=f"TPOT limit, ms (default {CHAT.slo_tpot_ms:g}; 0 = none).")
PrefixHit = typer.Option(0.0, "--prefix-hit", help="Fraction of input tokens served from a prefix cache.")
Json = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")
Mode = typer.Option("auto", "--mode", help="Deployment mode: auto (the best), aggregated, disaggregated (separate "
                    "prefill and decode pools), af-disaggregated (MoE: decode split into attention and expert chips).")
Mtp = typer.Option(None, "--mtp/--no-mtp", help="Multi-token prediction (default: on for models that ship an MTP "
                   "module, at 85% acceptance).")
MtpAcceptance = typer.Option(None, "--mtp-acceptance", min=0.0, max=1.0,
                             help="Acceptance rate of each MTP draft token (default 0.85, DeepSeek-V3 report).")
AttentionPrecision = typer.Option(None, "--attention-precision",
                                  help="Format attention computes in (default: fp8 for MLA decode over an fp8 KV "
                                       "cache, else bf16).")
KvTier = typer.Option("ssd", "--kv-tier", help="Where prefix-cache hits are read from: ssd (3FS-like) or dram.")
Framework = typer.Option(None, "--framework", help="Serving software profile (catalog/frameworks.yaml: trt-llm, vllm, "
                         "vllm-rocm, sglang, mindie, deepseek-inhouse; default: the calibration as it is, TensorRT-LLM-like).")
Overlap = typer.Option(False, "--overlap", help="Credit two-micro-batch overlap of MoE communication with compute "
                       "(uncalibrated: off by default).")


def traffic_from(isl: Optional[int], osl: Optional[int], slo_ttft_ms: Optional[float],
                 slo_tpot_ms: Optional[float], prefix_hit: float = 0.0, concurrency: Optional[int] = None) -> Traffic:
    """The default scenario (`CHAT`: fixed chat-like lengths) overridden by what the user gave (0
    removes an SLO; any other value, a length of 0 included, is used as given and validated, never
    replaced by a default)."""
    def slo(value, default):
        if value is None:
            return default
        return value or None
    return Traffic.from_mapping(dict(
        input_len=CHAT.input_len if isl is None else isl, output_len=CHAT.output_len if osl is None else osl,
        slo_ttft_ms=slo(slo_ttft_ms, CHAT.slo_ttft_ms), slo_tpot_ms=slo(slo_tpot_ms, CHAT.slo_tpot_ms),
        prefix_cache_hit=prefix_hit, concurrency=concurrency,
    ), origin="traffic")

EconomicsFile = typer.Option(None, "--economics", help="YAML file overriding the economics behind $/Mtok.")
Rental = typer.Option(None, "--rental-usd-per-hour", help="Price $/Mtok at this rental price per chip-hour instead of owned TCO.")
MarketRental = typer.Option(False, "--market-rental", help="Price $/Mtok at each chip's dated market rental quote (shipped cost data).")


def check_rental(rental_usd_per_hour, market_rental: bool) -> None:
    """One line for two prices asked at once: a rental price given and each chip's market quote."""
    if rental_usd_per_hour is not None and market_rental:
        raise ValueError("--rental-usd-per-hour and --market-rental each set the chip-hour price: give one")


def economics_from(economics_file, rental_usd_per_hour):
    """Economics for $/Mtok columns: shipped defaults, a user's YAML, then CLI flags."""
    if economics_file is None and rental_usd_per_hour is None:
        return None
    from tokenfab.cost.data import resolve
    return resolve(economics_file, None, {"rental_usd_per_chip_hour": rental_usd_per_hour}).economics


class Fidelity(str, Enum):
    """Operator model behind estimate/compare."""

    roofline = "roofline"
    tiled = "tiled"


FidelityOpt = typer.Option(Fidelity.roofline, "--fidelity", help="Operator model: roofline (fast) or tiled (SRAM-aware).")
Settings = typer.Option(
    None, "--set", help="KEY=VALUE, repeatable: a request field. LLMs: Traffic fields, e.g. draft_tokens=1 "
    "draft_acceptance=0.85 (speculative decoding / MTP), images=2, video_frames=16, image_height_px, "
    "image_width_px. Diffusion: width_px, height_px, frames, steps, guidance, slo_latency_s, t5_on_cpu. "
    "Recommendation: slo_latency_ms, batch.")
