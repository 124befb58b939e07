"""MLPerf Inference server-scenario rows predicted by simulation (`tokenfab validate --server-sim`
and notebooks): the system mapped as `api.estimate` chooses, Poisson arrivals at the row's target
QPS, LoadGen's percentiles. Validation code, so it lives here rather than beside capacity planning."""

from __future__ import annotations

from tokenfab.serving.deployment import build_deployment, choose_mapping
from tokenfab.serving.metrics import request_latencies, summarize
from tokenfab.serving.plan import slo_check
from tokenfab.serving.simulator import simulate
from tokenfab.serving.traffic import LengthSpec, TrafficProfile, generate
from tokenfab.specs import ChipSpec, ModelSpec


def predict_server_row(model: ModelSpec | str, chip: ChipSpec | str, num_chips: int, input_len: float,
                       output_len: float, target_qps: float, slo_ttft_ms: float | None = None,
                       slo_tpot_ms: float | None = None, requests: int = 3000, seed: int = 0,
                       input_sigma: float = 0.0, output_sigma: float = 0.0, tp: int | None = None,
                       precision: str | None = None, max_num_seqs: int | None = None) -> dict:
    """Predict one MLPerf Inference *server*-scenario row by simulation.

    The system of `num_chips` chips is mapped by `api.estimate` (fixed chip count; `tp` and
    `precision` pinned when given), every data-parallel rank becomes an engine behind a
    least-outstanding router, and `requests` requests arrive as a Poisson process at `target_qps`
    (LoadGen's server scenario). Prompt and output lengths are `input_len` / `output_len` tokens,
    fixed, or lognormal with those medians when `input_sigma` / `output_sigma` > 0 (MLPerf's
    datasets vary in length; give the dataset means and a spread if known).

    Returns a dict:
      - `throughput`: output tokens/s of the whole system (MLPerf's LLM server metric), measured
        between the 10% and 90% arrival quantiles so the empty start and the drain do not count,
      - `ttft_p99_ms`, `tpot_p99_ms`: 99th percentiles; TPOT per request = (last − first token
        time) / (output tokens − 1), as LoadGen computes it,
      - `meets_slo` (None without SLOs), `throughput_rps`, `ttft_p50_ms`, `tpot_p50_ms`,
        `mapping` (tp, pp, ep, dp, batch, precisions) and `saturated` (True when the system could
        not keep up with `target_qps`: completions below 95% of arrivals in that window).
    """
    from tokenfab.api import resolve_chip, resolve_model  # API layer above serving

    m, c = resolve_model(model), resolve_chip(chip)

    def lengths(value: float, sigma: float) -> LengthSpec:
        v = max(int(round(value)), 1)
        if sigma > 0:
            return LengthSpec(kind="lognormal", median=v, sigma=sigma, min=1, max=max(8 * v, 16))
        return LengthSpec(kind="fixed", value=v)

    prof = TrafficProfile(name="mlperf-server", input=lengths(input_len, input_sigma),
                          output=lengths(output_len, output_sigma))
    wl = generate(prof, target_qps, requests, seed)
    mean_in, mean_out = wl.mean_lengths()
    mapping = choose_mapping(m, c, mean_in, mean_out, slo_ttft_ms, slo_tpot_ms, 0.0, num_chips=num_chips, tp=tp,
                             precision=precision, batch=max_num_seqs)
    d = build_deployment(m, c, wl, mapping=mapping, max_num_seqs=max_num_seqs)
    res = simulate(wl, d)
    s = summarize(res, slo_ttft_ms, slo_tpot_ms)
    meets = None
    if slo_ttft_ms or slo_tpot_ms:
        meets = slo_check(request_latencies(res), slo_ttft_ms, slo_tpot_ms, 99.0)[0]
    return dict(throughput=s["steady_output_tok_s"], ttft_p99_ms=s["ttft_ms_p99"], tpot_p99_ms=s["tpot_ms_p99"],
                ttft_p50_ms=s["ttft_ms_p50"], tpot_p50_ms=s["tpot_ms_p50"], throughput_rps=s["steady_completed_rps"],
                meets_slo=meets, saturated=s["steady_completed_rps"] < 0.95 * s["steady_offered_rps"],
                mapping=mapping.__dict__.copy())
