"""Reproduce DeepSeek's published production figures for V3/R1 on H800 (open-infra week, day 6).

Published (deepseek-ai/open-infra-index, 202502OpenSourceWeek/day_6; rows M0265-M0269 of the
shipped measurement set): 608B input tokens a day, 342B of them (56.3%) KV-cache hits on disk;
168B output tokens; average KV length 4,989 tokens during decode; 20-22 output tok/s per user;
73.7k input tok/s per node in prefill (hits included), 14.8k output tok/s per node in decode;
an average of 226.75 nodes of 8 H800, $87,072 a day at $2 per GPU-hour.

The traffic that follows from those figures alone: input/output = 608/168 = 3.619, and the mean
context during decode isl + osl/2 = 4,989, so osl = 4,989 / (3.619 + 0.5) = 1,211 and isl = 4,384;
TPOT ≤ 1000/21 = 47.6 ms (the middle of 20-22 tok/s). The command:

    tokenfab estimate -m deepseek-v3 -c h800-sxm --mode disaggregated --isl 4384 --osl 1211 \\
        --prefix-hit 0.563 --slo-tpot-ms 47.6 --slo-ttft-ms 0 --rental-usd-per-hour 2 --tokens-per-day 168e9

Run: python bench/deepseek_day6.py   (prints the comparison; asserts nothing)
"""

from __future__ import annotations

from tokenfab import api
from tokenfab.cli.options import economics_from
from tokenfab.specs import Traffic

PUBLISHED = {"prefill_input_tok_s_per_node": 73_700, "decode_output_tok_s_per_node": 14_800, "usd_per_day": 87_072,
             "nodes": 226.75}
INPUT_PER_DAY, OUTPUT_PER_DAY = 608e9, 168e9


def traffic() -> Traffic:
    ratio = INPUT_PER_DAY / OUTPUT_PER_DAY
    osl = round(4989 / (ratio + 0.5))
    return Traffic(input_len=round(osl * ratio), output_len=osl, prefix_cache_hit=0.563, slo_tpot_ms=1000 / 21)


def main() -> None:
    t = traffic()
    print(f"traffic: ISL {t.input_len}, OSL {t.output_len}, prefix hit {t.prefix_cache_hit:.1%}, "
          f"TPOT <= {t.slo_tpot_ms:.1f} ms")
    for overlap in (False, True):
        est = api.estimate("deepseek-v3", "h800-sxm", t, mode="disaggregated", overlap=overlap)
        row = api.with_cost(est, economics_from(None, 2.0), output_tokens_per_day=OUTPUT_PER_DAY)
        pre, dec = est.pools
        got = {"prefill_input_tok_s_per_node": pre["input_tok_s_per_chip"] * 8,
               "decode_output_tok_s_per_node": dec["output_tok_s_per_chip"] * 8,
               "usd_per_day": row["usd_per_day"], "nodes": sum(row["fleet_chips"].values()) / 8}
        print(f"\ntwo-micro-batch overlap credited: {overlap}; MTP {est.draft_tokens} token at "
              f"{est.draft_acceptance:.0%}; prefill {pre['instances']} x {pre['num_chips']} chips EP{pre['ep']}, "
              f"decode {dec['instances']} x {dec['num_chips']} chips EP{dec['ep']} batch {dec['batch']}, "
              f"TPOT {est.tpot_ms:.1f} ms")
        print(f"  {'figure':32s} {'published':>12s} {'predicted':>12s} {'error':>8s}")
        for key, pub in PUBLISHED.items():
            print(f"  {key:32s} {pub:12,.0f} {got[key]:12,.0f} {got[key] / pub - 1:+8.1%}")


if __name__ == "__main__":
    main()
