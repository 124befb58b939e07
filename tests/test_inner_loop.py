"""Test tiers (issue 15 item 14): the inner loop (`pytest -m "not slow"`) runs each Hypothesis property
at most INNER_MAX_EXAMPLES examples; CI (plain `pytest`) runs the counts the tests ask for."""

from types import SimpleNamespace

from conftest import INNER_MAX_EXAMPLES, cap_examples, inner_loop
from hypothesis import given, settings
from hypothesis import strategies as st


def _config(markexpr):
    return SimpleNamespace(getoption=lambda name, default=None: markexpr if name == "markexpr" else default)


def test_the_inner_loop_is_a_run_that_leaves_slow_out():
    assert inner_loop(_config("not slow"))
    assert inner_loop(_config("not  slow and not gpu"))
    assert not inner_loop(_config(""))  # CI: everything
    assert not inner_loop(_config(None))
    assert not inner_loop(_config("slow"))  # only the slow tier


def _counting_property(n_examples):
    calls = []

    @settings(max_examples=n_examples, deadline=None, database=None)
    @given(st.integers(0, 10**9))
    def prop(x):
        calls.append(x)

    return prop, calls


def test_a_capped_property_runs_at_most_the_cap_and_the_full_tier_its_own_count():
    full, full_calls = _counting_property(60)
    full()
    assert len(full_calls) >= 60 > INNER_MAX_EXAMPLES  # every example asked for (a wide space: none repeat)
    capped, capped_calls = _counting_property(60)
    assert cap_examples(capped)
    capped()
    assert 0 < len(capped_calls) <= INNER_MAX_EXAMPLES


def test_a_property_asking_for_no_more_than_the_cap_and_a_plain_test_are_left_alone():
    small, _ = _counting_property(INNER_MAX_EXAMPLES)
    assert not cap_examples(small)
    assert small._hypothesis_internal_use_settings.max_examples == INNER_MAX_EXAMPLES

    def plain():
        pass

    assert not cap_examples(plain)


def test_capping_keeps_the_other_settings():
    prop, _ = _counting_property(300)
    cap_examples(prop)
    s = prop._hypothesis_internal_use_settings
    assert (s.max_examples, s.deadline, s.database) == (INNER_MAX_EXAMPLES, None, None)


def test_a_cli_command_tree_is_built_once_per_app_and_again_after_a_new_registration():
    import typer

    from conftest import build_command_once

    calls = []
    command_for = build_command_once(lambda app: calls.append(app) or typer.main.get_command(app))
    app = typer.Typer()

    @app.command()
    def hello(name: str):
        typer.echo(f"hello {name}")

    first = command_for(app)
    assert command_for(app) is first and len(calls) == 1

    @app.command()
    def bye():
        typer.echo("bye")

    assert command_for(app) is not first and len(calls) == 2  # the group now has two commands


def test_the_memoized_tokenfab_command_answers_as_a_fresh_one():
    # The runner the tests use (its command built once) against click's runner on a fresh build.
    import typer.main
    from click.testing import CliRunner as ClickRunner
    from typer.testing import CliRunner

    import typer.testing

    from tokenfab.cli import app

    assert hasattr(typer.testing._get_command, "built")  # conftest's pytest_configure put the memo in
    for args in (["estimate", "-m", "no-such-model", "-c", "h100-sxm"], ["tco", "--help"], ["--version"]):
        a = CliRunner().invoke(app, args)
        b = ClickRunner().invoke(typer.main.get_command(app), args, prog_name="tokenfab")
        assert (a.exit_code, a.stdout, a.stderr) == (b.exit_code, b.stdout, b.stderr), args
