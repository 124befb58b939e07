"""Bad input found after the eighteenth session's audit: options a command would drop without a word,
a JSON boolean read as a number, a memory capacity of zero. Each is one line on stderr, exit code 2."""

import json

import pytest
from conftest import cli_invoke as invoke
from conftest import one_line_error

from tokenfab.serving.traffic import read_trace
from tokenfab.specs import SpecError


@pytest.mark.parametrize("model, extra, named", [
    ("sdxl", ("--isl", "100"), ("--isl", "diffusion", "--set", "steps")),
    ("sdxl", ("--tp", "2", "--slo-tpot-ms", "30"), ("--tp", "--slo-tpot-ms")),
    ("dlrm-v2", ("--batch", "4"), ("--batch", "recsys", "num_candidates")),
    ("dlrm-v2", ("--mode", "disaggregated"), ("--mode",)),
    ("sdxl", ("--token-budget", "1024", "--fidelity", "tiled"), ("--token-budget", "--fidelity")),
])
def test_an_llm_option_for_a_diffusion_or_recommendation_model_is_refused_not_dropped(model, extra, named):
    # These estimates have no prompt length, tensor parallelism or TPOT: the table used to come back
    # exactly as without the option. The line names the options and where such a request goes.
    one_line_error(invoke("estimate", "-m", model, "-c", "h100-sxm", *extra), *named)


def test_the_options_a_diffusion_estimate_has_still_apply():
    r = invoke("estimate", "-m", "sdxl", "-c", "h100-sxm", "--chips", "1", "--precision", "fp8",
               "--set", "steps=20", "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert (row["weight_precision"], row["steps"], row["num_chips"]) == ("fp8", 20, 1)


@pytest.mark.parametrize("value", ["true", "false"])
def test_a_json_boolean_in_a_trace_is_not_a_token_count(tmp_path, value):
    # json true is a Python bool, which float() reads as 1.0: a trace of `true` prompts used to
    # replay as one-token prompts.
    path = tmp_path / "t.jsonl"
    path.write_text(f'{{"arrival_s": 0, "input_tokens": {value}, "output_tokens": 8}}\n')
    with pytest.raises(SpecError, match=f"t.jsonl:1: input_tokens {value} is not a number"):
        read_trace(path)


@pytest.mark.parametrize("args", [
    ("--chip", "h100-sxm", "--hbm-gb", "0"),
    ("--die-mm2", "600", "--node", "tsmc-n5", "--hbm-gen", "hbm3", "--hbm-gb", "0"),
])
def test_a_package_with_a_memory_technology_and_zero_gigabytes_is_refused(args):
    # With the chip's 5 stacks, --hbm-gb 0 used to be overridden without a word (80 GB priced);
    # with only --hbm-gen it priced "0 GB hbm3 in 0 stacks".
    one_line_error(invoke("fab", *args), "above 0 GB")


@pytest.mark.parametrize("model, setting, says", [
    ("dlrm-v2", "slo_latency_ms=0.01", "no deployment meets the 0.01 ms latency SLO"),
    ("sdxl", "slo_latency_s=0.1", "no deployment meets the 0.1 s latency SLO"),
])
def test_a_missed_latency_slo_is_said_in_words_not_only_in_colour_or_json(model, setting, says):
    r = invoke("estimate", "-m", model, "-c", "h100-sxm", "--set", setting)
    assert r.exit_code == 0, r.output
    assert says in " ".join(r.stdout.split())


@pytest.mark.parametrize("args, needle", [
    (("--aic-framework", "vllm"), "--aic-framework only with --source aiconfigurator"),
    (("--gemm-compute", "keep"), "--gemm-compute only with --source aiconfigurator"),
    (("--source", "aiconfigurator", "--data", "rows.csv"), "--data is for --source microbench"),
])
def test_calibrate_refuses_options_of_the_other_source(args, needle, tmp_path):
    # The microbenchmark fit never reads the aiconfigurator options, nor that fit the CSVs: a user
    # asking for vLLM kernels got the TensorRT-LLM-free microbenchmark fit without a word.
    r = invoke("calibrate", "--dry-run", "--out", tmp_path, *args)
    one_line_error(r, needle)
    assert not list(tmp_path.iterdir())
