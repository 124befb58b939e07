"""A bad-input audit of every command (eighteenth session): each case names what a user typed and what
they must see. Rejected input is one line on stderr with exit code 2 and leaves no file behind; valid
input the tool takes is answered, never turned into an internal error."""

from pathlib import Path

import pytest
from conftest import cli_invoke as invoke
from conftest import one_line_error

HUGE = str(2**64)


@pytest.mark.parametrize("args, needle", [
    (("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", HUGE), "--chips"),
    (("train", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", HUGE, "--tokens", "1e12"), "--chips"),
    (("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "5", "-n", "50", "--replicas", HUGE),
     "--replicas"),
    (("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "5", "-n", "50", "--disagg", f"{HUGE}:1"),
     "--disagg"),
    (("plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", "-1"), "--chips"),
    (("plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", "0"), "--chips"),
])
def test_a_chip_or_instance_count_past_any_cluster_is_one_line_not_an_overflow_or_a_hang(args, needle):
    # 2**64 used to overflow numpy's integers (a traceback) or build 2**64 engines (a hang).
    one_line_error(invoke(*args), needle)


def test_capacity_past_the_stack_limit_is_refused_not_priced():
    # 5,000 GB of HBM3 at 16 GB a stack is 313 stacks; --hbm-stacks 313 was refused, --hbm-gb priced it
    # ($8.4M), and 1e7 GB ended in a traceback.
    for gb in ("5000", "1e7"):
        one_line_error(invoke("fab", "--die-mm2", "600", "--node", "tsmc-n5", "--hbm-gen", "hbm3", "--hbm-gb", gb),
                       "stacks", "at most 32")


def test_an_edge_exclusion_past_the_wafer_radius_is_refused(tmp_path):
    econ = tmp_path / "e.yaml"
    econ.write_text("fab:\n  edge_exclusion_mm: 300\n")
    one_line_error(invoke("fab", "--chip", "h100-sxm", "--economics", econ), "edge_exclusion_mm")


@pytest.mark.parametrize("model, ep, needle", [("mixtral-8x7b", 64, "8 experts"), ("llama-3.1-8b", 2, "dense")])
def test_training_refuses_expert_parallelism_the_model_cannot_take(model, ep, needle):
    one_line_error(invoke("train", "-m", model, "-c", "h100-sxm", "--chips", 64, "--tokens", "1e12", "--ep", ep), needle)


def test_serving_refuses_expert_parallelism_on_a_dense_model_naming_it():
    one_line_error(invoke("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--ep", 4), "dense")


@pytest.mark.parametrize("command", [("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm"),
                                     ("compare", "--models", "llama-3.1-8b", "--chips", "h100-sxm")])
def test_a_given_rental_price_and_the_market_quote_together_are_refused(command):
    # The market quote used to win silently over the price the user typed.
    one_line_error(invoke(*command, "--rental-usd-per-hour", 2, "--market-rental"), "--market-rental")


@pytest.mark.parametrize("args", [("tco", "--chip", "h100-sxm", "--price-usd", "1.79e308"),
                                  ("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rental-usd-per-hour", "1e308")])
def test_a_price_that_would_overflow_to_infinity_is_refused(args):
    r = invoke(*args)
    one_line_error(r)
    assert "inf" not in r.stdout


def test_npv_with_no_asic_bought_in_the_horizon_says_so_instead_of_an_infinite_ratio():
    r = invoke("build-vs-buy", "--model", "llama-3.1-8b", "--chip", "h20", "--npv", "--draws", 50,
               "--horizon-years", 3)
    assert r.exit_code == 0, r.output
    assert "inf%" not in r.stdout and "no ASIC is bought within the 3 y horizon" in r.stdout


@pytest.mark.parametrize("extra, needle", [(("--framework", "nosuch"), "nosuch"), (("--kv-tier", "nosuch"), "nosuch"),
                                           (("--isl", 500_000), "context")])
def test_compare_with_nothing_to_compare_is_an_error_and_writes_no_report(tmp_path, extra, needle):
    html = tmp_path / "c.html"
    one_line_error(invoke("compare", "--models", "llama-3.1-8b", "--chips", "h100-sxm", *extra, "--html", html), needle)
    assert not html.exists()


@pytest.mark.parametrize("extra, needle", [(("--baseline", "nosuch"), "nosuch"), (("--population", 1), "--population"),
                                           (("--seed", -1), "--seed")])
def test_design_rejected_before_any_trial_leaves_no_storage_behind(tmp_path, extra, needle):
    db = tmp_path / "d.db"
    one_line_error(invoke("design", "chat-mix", "--trials", 2, "--population", 2, "--quiet", "--no-sensitivity",
                          "--screen", 0, "--storage", db, *extra), needle)
    assert list(tmp_path.iterdir()) == []


def test_a_design_space_whose_parameter_the_design_never_takes_is_refused(tmp_path):
    # Every HBM stack count from -4 to -1 is invalid: the search could only return invalid designs.
    from tokenfab.explore.catalog import load_space

    sp, path = load_space("chat-mix")
    text = path.read_text()
    assert "memory.hbm_stacks:" in text
    lines = [("  memory.hbm_stacks: {low: -4, high: -1}" if ln.strip().startswith("memory.hbm_stacks:") else ln)
             for ln in text.splitlines()]
    space = tmp_path / "neg.yaml"
    space.write_text("\n".join(lines).replace(f"base: {sp.base}", f"base: {sp.base}"))
    one_line_error(invoke("design", "chat-mix", "--space", space, "--trials", 2, "--population", 2, "--quiet",
                          "--no-sensitivity", "--screen", 0), "memory.hbm_stacks")


def test_a_validation_error_names_the_field_not_the_internal_model():
    line = one_line_error(invoke("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", 5, "-n", 50,
                                 "--slo-ttft-ms", -5), "slo_ttft_ms")
    assert "validation error for" not in line


def test_too_many_image_tokens_name_the_images_in_the_context_error():
    one_line_error(invoke("estimate", "-m", "qwen2.5-vl-7b", "-c", "h100-sxm", "--set", "images=1000000"),
                   "image/video", "context")


def test_plan_builds_replicas_of_the_chip_count_asked():
    # `--chips 8` used to be reduced to the best mapping's one-chip rank (eight data-parallel copies).
    import json

    r = invoke("plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "-n", 100, "--mode", "aggregated", "--chips", 8, "--json")
    assert r.exit_code == 0, r.output
    assert {c["chips_per_unit"] for c in json.loads(r.stdout)["candidates"]} == {8}


def test_plan_skips_a_candidate_whose_engine_cannot_hold_the_longest_request():
    # Llama-3.1-70B on one H100 holds 13,888 KV tokens, less than the chat profile's longest request:
    # the planner's own one-chip pick used to end the whole plan with that error.
    import json

    r = invoke("plan", "-m", "llama-3.1-70b", "-c", "h100-sxm", "-n", 200, "--mode", "aggregated", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    # The one-chip engine fits at the smaller chunk budgets only: the 8,192-token chunk's activations
    # leave too little KV cache, and that candidate is skipped instead of failing the plan.
    one_chip = [c for c in out["candidates"] if c["chips_per_unit"] == 1]
    assert out["feasible"] and 0 < len(one_chip) < 3


@pytest.mark.parametrize("args, needle", [(("chip", ""), "empty"), (("estimate", "-m", "", "-c", "h100-sxm"), "unknown model")])
def test_an_empty_id_is_named_not_read_as_the_current_folder(args, needle):
    one_line_error(invoke(*args), needle)


def test_a_binary_file_where_yaml_goes_names_the_file(tmp_path):
    f = tmp_path / "chip.yaml"
    f.write_bytes(b"\xff\xfe\x00binary")
    one_line_error(invoke("chip", f), "chip.yaml", "not a text")


@pytest.mark.parametrize("args, option, mode", [
    (("compare", "--tokens", "1e12"), "--tokens", "--train"),
    (("build-vs-buy", "--model", "llama-3.1-8b", "--chip", "h20", "--vendor-decline", 0.5), "--vendor-decline", "--npv"),
    (("train", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", 8, "--tokens", "1e12", "--mlperf-batch", 5),
     "--mlperf-batch", "--mlperf"),
])
def test_an_option_of_a_mode_without_its_mode_is_refused_not_ignored(args, option, mode):
    # Each option's help ties it to its mode ("--train: ...", "... (--npv)"); typed without the mode
    # it used to be dropped without a word.
    one_line_error(invoke(*args), option, f"only with {mode}")


@pytest.mark.parametrize("args, needle", [
    (("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--chips", 16, "--max-chips", 4), "--max-chips"),
    (("chip", "h100-sxm", "--isl", 5), "--model"),
])
def test_options_that_contradict_or_lack_their_subject_are_refused(args, needle):
    # Both used to run as if the option had not been given.
    one_line_error(invoke(*args), needle)
