"""Issue 15 (a user's audit): no silent substitutions, no infinity, every error one line, a readable
first screen. Each test names the command a user typed and what they must see."""

import json
import math
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import tokenfab
from tokenfab.cli import app
from tokenfab.specs import SpecError, Traffic
from tokenfab.specs.measurement import parse_measurements

runner = CliRunner()
CHIPS_DIR = Path(tokenfab.__file__).parent / "catalog" / "chips"
EST = ("estimate", "-m", "llama-3.1-8b", "-c", "h100-sxm")
GEMM_HEADER = "id,hardware,num_chips,scenario,gemm_m,gemm_n,gemm_k,weight_precision,metric,per,value,usable,input_len"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(r, *needles):
    """Exit code 2, nothing on stdout, exactly one line on stderr, `error: ...` naming the needles."""
    assert r.exit_code == 2, r.output
    assert r.stdout == "", r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---- item 2: no silent substitutions -------------------------------------------------------------

@pytest.mark.parametrize("args", [
    (*EST, "--isl", "0"), (*EST, "--osl", "0"),
    ("compare", "--isl", "0"), ("compare", "--osl", "0"),
    ("build-vs-buy", "--chip", "h20", "--model", "llama-3.1-8b", "--isl", "0"),
])
def test_a_zero_length_is_rejected_not_replaced_by_the_chat_default(args):
    assert_one_line_error(invoke(*args), "--isl" if "--isl" in args else "--osl")


def test_the_traffic_helper_uses_a_given_length_as_is():
    from tokenfab.cli.options import traffic_from

    with pytest.raises(SpecError, match="input_len"):
        traffic_from(0, None, None, None)
    assert traffic_from(None, 64, None, None).output_len == 64


@pytest.mark.parametrize("option", ["--models", "--chips"])
@pytest.mark.parametrize("value", ["", " , "])
def test_compare_with_an_empty_list_is_rejected_not_the_defaults(option, value):
    assert_one_line_error(invoke("compare", option, value), f"{option} is empty")


def test_validate_show_takes_only_worst_all_or_none():
    assert_one_line_error(invoke("validate", "--show", "bogus"), "--show", "worst")


def test_calibrate_an_unknown_chip_is_rejected_with_the_closest_ids():
    assert_one_line_error(invoke("calibrate", "--chip", "h10", "--dry-run"), "unknown chip 'h10'", "h100-sxm")
    assert_one_line_error(invoke("calibrate", "--chip", "foo", "--dry-run"), "unknown chip 'foo'")
    assert_one_line_error(invoke("calibrate", "--chip", "", "--dry-run"), "--chip is empty")


def test_calibrate_a_chip_without_microbenchmark_rows_says_so_instead_of_an_empty_table():
    assert_one_line_error(invoke("calibrate", "--chip", "h20", "--dry-run"), "h20", "no usable microbenchmark rows")


@pytest.mark.parametrize("args, option", [
    (("fab", "--die-mm2", "800", "--node", "tsmc-n5", "--hbm-gen", ""), "--hbm-gen"),
    (("fab", "--die-mm2", "800", "--node", "tsmc-n5", "--yield-model", ""), "--yield-model"),
    (("fab", "--die-mm2", "800", "--node", "tsmc-n5", "--packaging", " "), "--packaging"),
    (("tco", "--chip", "h100-sxm", "--preset", ""), "--preset"),
    (("design", "chat-mix", "--space", ""), "--space"),
    (("design", "chat-mix", "--variant", ""), "--variant"),
    (("design", "chat-mix", "--baseline", ""), "--baseline"),
    (("design", "chat-mix", "--sampler", ""), "--sampler"),
])
def test_an_empty_option_is_an_error_never_its_default(args, option):
    assert_one_line_error(invoke(*args), f"{option} is empty")


@pytest.mark.parametrize("args, option", [
    (("calibrate", "--dry-run", "--out", ""), "--out"),
    (("calibrate", "--dry-run", "--out="), "--out"),
    (("compare", "--html", " "), "--html"),
    (("run", "chat-at-scale", "-o", ""), "-o"),
])
def test_an_empty_path_is_an_error_not_the_current_folder(args, option):
    assert_one_line_error(invoke(*args), f"'{option}'", "empty path")


def test_tco_set_without_a_value_is_an_error_not_the_shipped_value():
    assert_one_line_error(invoke("tco", "--chip", "h100-sxm", "--set", "pue="), "pue")


# ---- item 7: infinity and NaN never enter a spec ------------------------------------------------

@pytest.mark.parametrize("row, field", [
    ("G2,h100-sxm,1,gemm,8192,8192,8192,bf16,tflops,chip,inf,1,", "value"),
    ("G2,h100-sxm,1,gemm,8192,8192,8192,bf16,tflops,chip,nan,1,", "value"),
    ("G2,h100-sxm,1,offline,,,,bf16,output_tok_s,chip,100,1,inf", "input_len"),
])
def test_a_measurement_row_with_a_non_finite_number_is_rejected_with_its_line(row, field):
    with pytest.raises(SpecError, match=rf"line 2 \(id G2\): {field}: .*finite"):
        parse_measurements(f"{GEMM_HEADER}\n{row}\n", origin="m.csv")


@pytest.fixture
def csv_with_infinite_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(f"{GEMM_HEADER}\n"
                    "G1,h100-sxm,1,gemm,8192,8192,8192,bf16,tflops,chip,700,1,\n"
                    "G2,h100-sxm,1,gemm,8192,8192,8192,bf16,tflops,chip,inf,1,\n"
                    "G3,h100-sxm,1,gemm,8192,8192,8192,bf16,tflops,chip,600,1,inf\n")
    return path


def test_validate_skips_an_infinite_row_with_its_reason_and_keeps_the_summary_finite(csv_with_infinite_rows):
    r = invoke("validate", "--data", csv_with_infinite_rows, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    skipped = {row["id"]: row["skipped"] for row in report["rows"] if row["skipped"]}
    assert set(skipped) == {"G2", "G3"}
    assert "line 3" in skipped["G2"] and "value" in skipped["G2"] and "finite" in skipped["G2"]
    assert "line 4" in skipped["G3"] and "input_len" in skipped["G3"]
    s = report["summary"]
    assert s["n_predicted"] == 1
    assert all(math.isfinite(s[k]) for k in ("median_ape", "mape", "coverage"))


def test_validate_strict_fails_on_an_infinite_row(csv_with_infinite_rows):
    assert_one_line_error(invoke("validate", "--data", csv_with_infinite_rows, "--strict"), "line 3", "finite")


@pytest.mark.parametrize("number", [".inf", "-.inf", ".nan"])
def test_a_chip_yaml_with_an_infinite_price_is_a_one_line_spec_error(tmp_path, number):
    text = re.sub(r"(?m)^price_usd: .*$", f"price_usd: {number}", (CHIPS_DIR / "h100-sxm.yaml").read_text())
    path = tmp_path / "chip.yaml"
    path.write_text(text)
    assert_one_line_error(invoke("tco", "--chip", path), "price_usd", "finite")


def test_an_economics_file_with_nan_is_a_one_line_spec_error(tmp_path):
    path = tmp_path / "econ.yaml"
    path.write_text("pue: .nan\n")
    assert_one_line_error(invoke("tco", "--chip", "h100-sxm", "--economics", path), "pue", "finite")


def test_every_spec_rejects_non_finite_numbers():
    with pytest.raises(SpecError, match="slo_tpot_ms.*finite"):
        Traffic.from_mapping({"input_len": 128, "output_len": 16, "slo_tpot_ms": float("inf")})


@pytest.mark.parametrize("args, option", [
    (("tco", "--chip", "h100-sxm", "--price-usd", "inf"), "--price-usd"),
    ((*EST, "--tokens-per-day", "inf"), "--tokens-per-day"),
    ((*EST, "--slo-tpot-ms", "nan"), "--slo-tpot-ms"),
])
def test_no_number_option_takes_inf_or_nan(args, option):
    assert_one_line_error(invoke(*args), option, "finite")


# ---- item 8: usage and parameter errors are one line ------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    ((*EST, "--chips", "abc"), "--chips"),
    ((*EST, "--chips", "0"), "--chips"),
    (("estimate", "-c", "h100-sxm"), "--model"),
    (("compare", "--bogus"), "--bogus"),
    (("compare", "--json=1"), "--json"),
    (("nope",), "nope"),
    (("catalog", "gpus"), "gpus"),
    (("--bogus",), "--bogus"),
])
def test_a_usage_error_is_one_line_on_stderr_with_exit_code_2(args, needle):
    assert_one_line_error(invoke(*args), needle)


def test_no_arguments_still_shows_the_help():
    r = invoke()
    assert "Usage" in r.output and "estimate" in r.output


# ---- item 9: the first screen ----------------------------------------------------------------------

def test_version_prints_the_version():
    r = invoke("--version")
    assert r.exit_code == 0
    assert r.stdout.strip() == f"tokenfab {tokenfab.__version__}"


@pytest.mark.parametrize("command", [(), ("estimate",), ("compare",), ("validate",), ("design",)])
def test_help_shows_no_bool_metavar_beside_a_flag(command):
    r = invoke(*command, "--help")
    assert r.exit_code == 0
    assert "--json" in r.stdout or not command
    assert "<bool>" not in r.stdout


def test_compare_at_80_columns_prints_chip_ids_whole(monkeypatch):
    monkeypatch.setattr("tokenfab.cli.estimate.console", Console(width=80, color_system=None))
    r = invoke("compare", "--models", "llama-3.1-8b", "--chips", "h200-sxm,h20")
    assert r.exit_code == 0, r.output
    assert "…" not in r.stdout
    assert re.search(r"│ h200-sxm +│", r.stdout) and re.search(r"│ h20 \* +│", r.stdout), r.stdout
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    assert "not shown at this width" in r.stdout


@pytest.mark.parametrize("args, words", [
    (["simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "chat", "--rate", "0"], "--rate must be"),
    (["simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "chat", "--rate", "1", "--prefill-chip", ""],
     "unknown chip"),
    (["plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "chat", "--slo-tpot-ms", "50", "--disagg", ""],
     "--disagg is empty"),
    (["plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "chat", "--slo-tpot-ms", "50", "--chips", ""],
     "--chips is empty"),
])
def test_serving_commands_take_no_silent_defaults(args, words):
    from typer.testing import CliRunner
    from tokenfab.cli import app
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert words in r.output


@pytest.mark.parametrize("args, words", [
    (["validate", "--html", "{tmp}"], "is a folder"),
    (["validate", "--html", "{tmp}/missing/v.html"], "does not exist"),
    (["compare", "--html", "{tmp}"], "is a folder"),
    (["design", "chat-mix", "--trials", "2", "--out", "{tmp}/a-file"], "is a file"),
])
def test_output_paths_are_checked_before_the_work(tmp_path, args, words):
    # Item 6: a bad --html/--out fails at once (one line, exit 2), not after the computation.
    from typer.testing import CliRunner
    from tokenfab.cli import app
    (tmp_path / "a-file").write_text("x")
    r = CliRunner().invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.exit_code == 2, r.output
    assert words in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_tokens_per_day_zero_is_rejected_before_the_search():
    from typer.testing import CliRunner
    from tokenfab.cli import app
    r = CliRunner().invoke(app, ["estimate", "-m", "deepseek-v3", "-c", "h800-sxm", "--tokens-per-day", "0"])
    assert r.exit_code == 2 and "--tokens-per-day must be a positive" in r.output


# ---- item 3: bounded memory --------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "5", "--chunk-tokens", "100000000"),
     "--chunk-tokens"),
    (("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--rate", "5", "--requests", "100000000"), "--requests"),
    (("plan", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--requests", "100000000"), "--requests"),
])
def test_simulation_sizes_beyond_the_memory_bound_are_refused_before_any_work(args, needle):
    # 100,000,000 requests reached 16.8 GB before; the bounds keep a run within ~2 GB (cli/serving.py).
    assert_one_line_error(invoke(*args), needle, "less than or equal")


# ---- item 1: nothing priced that cannot be built -----------------------------------------------------

def test_an_unbuildable_design_is_refused_by_estimate_and_build_vs_buy(tmp_path):
    import yaml
    design = yaml.safe_load((CHIPS_DIR.parent / "designs" / "h100-sxm-design.yaml").read_text())
    design["id"] = "triple-reticle"
    design["die"]["cores_per_die"] = 400  # ~2,400 mm² on one die, and far over its 700 W TDP
    path = tmp_path / "triple-reticle.yaml"
    path.write_text(yaml.safe_dump(design))
    for args in ((*EST[:3], "-c", path), ("build-vs-buy", "--design", path, "--model", "llama-3.1-8b")):
        assert_one_line_error(invoke(*args), "triple-reticle cannot be built", "reticle")


# ---- item 5: path mistakes and absurd names are one line ------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (("design", "chat-mix", "--trials", "2", "--storage", "{tmp}"), "is a folder"),
    (("design", "chat-mix", "--trials", "2", "--storage", "postgresql://u@localhost:1/db"), "cannot open storage"),
    (("estimate", "-m", "x" * 300, "-c", "h100-sxm"), "x"),
    (("estimate", "-m", "llama-3.1-8b", "-c", "y" * 5000), "y"),
])
def test_storage_and_name_mistakes_are_one_line_errors(tmp_path, args, needle):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    line = assert_one_line_error(invoke(*args), needle)
    assert len(line) < 300  # a 5,000-character id is shortened, not echoed whole


def test_fuzzed_files_give_one_line_not_a_crash_or_a_hang(tmp_path):
    # issue 15 item 5, from fuzzing: a published die area of 0, a collective row without its group
    # size, a config with 10^10 layers (it hung building the layer pattern).
    import yaml
    design = yaml.safe_load((CHIPS_DIR.parent / "designs" / "h100-sxm-design.yaml").read_text())
    design["published"]["die_area_mm2"] = 0
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(design))
    assert_one_line_error(invoke("chip", tmp_path / "d.yaml"), "die_area_mm2", "greater than 0")
    cfg = json.loads((CHIPS_DIR.parent / "models" / "qwen3-next-80b-a3b.json").read_text())
    cfg["num_hidden_layers"] = 1e10
    (tmp_path / "q.json").write_text(json.dumps(cfg))
    assert_one_line_error(invoke(*EST[:2], tmp_path / "q.json", "-c", "h100-sxm"), "num_hidden_layers")
    (tmp_path / "c.csv").write_text("id,hardware,num_chips,scenario,message_bytes,metric,per,value,usable\n"
                                    "X1,h100-sxm,,allreduce,1048576,gb_s_busbw,chip,300,1\n")
    r = invoke("validate", "--data", tmp_path / "c.csv", "--json")
    assert r.exit_code == 0
    assert "num_chips" in json.loads(r.stdout)["rows"][0]["skipped"]


# ---- item 9: one name, one workload; progress on long runs -----------------------------------------

def _plain(text: str) -> str:
    """Help text without rich's box drawing and line wrapping."""
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("command", ["estimate", "compare", "chip", "build-vs-buy"])
def test_the_fixed_default_lengths_are_named_apart_from_the_chat_profile(command):
    # `compare` called its fixed 2,048/512 default "the built-in chat scenario" while `simulate
    # --traffic chat` draws lengths per request (mean ~1,700/~200): two workloads under one name.
    from tokenfab.specs.traffic import CHAT, DEFAULT_SCENARIO
    text = _plain(invoke(command, "--help").stdout)
    assert f"(default {CHAT.input_len}: {DEFAULT_SCENARIO}, not the `chat` traffic profile" in text, text
    assert f"(default {CHAT.output_len}: {DEFAULT_SCENARIO})" in text, text
    assert "chat scenario" not in text and "chat defaults" not in text


@pytest.mark.parametrize("command", ["simulate", "plan"])
def test_the_chat_profile_help_says_its_lengths_are_not_the_fixed_default(command):
    from tokenfab.specs.traffic import CHAT
    text = _plain(invoke(command, "--help").stdout)
    assert f"lengths drawn per request, so chat is not compare's fixed {CHAT.input_len:,}/{CHAT.output_len}" in text


def test_simulate_names_the_chat_profile_with_the_lengths_it_simulated():
    from tokenfab.serving.traffic import generate, load_profile
    from tokenfab.specs.traffic import CHAT
    args = ("simulate", "-m", "llama-3.1-8b", "-c", "h100-sxm", "--traffic", "chat", "--rate", "2", "--requests", "40")
    r = invoke(*args, "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    mean_in, mean_out = generate(load_profile("chat"), 2, 40, 0).mean_lengths()
    assert out["traffic"] == "chat"
    assert out["mean_input_tokens"] == pytest.approx(mean_in) and out["mean_output_tokens"] == pytest.approx(mean_out)
    assert (round(mean_in), round(mean_out)) != (CHAT.input_len, CHAT.output_len)
    text = invoke(*args).stdout
    assert f"40 requests of chat traffic (mean {mean_in:,.0f} in / {mean_out:,.0f} out)" in text, text


def test_validate_server_sim_reports_progress_on_stderr_and_keeps_json_stdout_clean():
    # `validate --server-sim` ran 88 s with no sign of life; progress goes to stderr, never stdout.
    data = Path(__file__).parent / "data" / "measurements_tiny.csv"
    usable = sum(1 for row in parse_measurements(data.read_text()) if row.usable)
    r = invoke("validate", "--data", data, "--server-sim", "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert len(report["rows"]) == usable
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith(f"validate --server-sim: 0/{usable} rows, ")
    assert re.fullmatch(rf"validate --server-sim: {usable}/{usable} rows, \d+ s elapsed", lines[-1]), lines
    assert invoke("validate", "--data", data, "--json").stderr == ""  # the fast path stays quiet


def test_progress_rewrites_one_line_on_a_terminal_and_prints_every_tenth_otherwise():
    import io
    from tokenfab.cli.validate import _Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        p = _Progress("run", stream)
        for done in range(21):
            p(done, 20)
    assert tty.getvalue().count("\r") == 21 and tty.getvalue().endswith("20/20 rows, 0 s elapsed\033[K\n")
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == [
        f"run: {n}/20 rows" for n in range(0, 21, 2)]
