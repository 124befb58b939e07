from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"

INNER_MAX_EXAMPLES = 10
"""Test tiers (README, Quick start): in the inner loop (`pytest -m "not slow"`) a Hypothesis property test
runs at most this many examples; CI (plain `pytest`, slow included) runs each at the count its own
`@settings` asks for (up to 300). A property that fails is saved in `.hypothesis/` and replayed first
on the next run at any count."""


def inner_loop(config) -> bool:
    """True when this run leaves the `slow` tier out (the inner loop, `-m "not slow"`)."""
    expr = " ".join(str(config.getoption("markexpr", "") or "").split())
    return "not slow" in expr


def cap_examples(fn, cap: int = INNER_MAX_EXAMPLES) -> bool:
    """Lower a Hypothesis test's `max_examples` to `cap` in place; True when it was lowered. A test
    that is not a Hypothesis test, or already asks for no more than `cap`, is left alone."""
    current = getattr(fn, "_hypothesis_internal_use_settings", None)
    if not getattr(fn, "is_hypothesis_test", False) or current is None or current.max_examples <= cap:
        return False
    fn._hypothesis_internal_use_settings = type(current)(current, max_examples=cap)
    return True


def _app_key(app) -> tuple:
    """What a typer app's click command is built from: a command or group registered later changes it."""
    return (id(app), id(app.registered_callback), tuple(map(id, app.registered_commands)),
            tuple(map(id, app.registered_groups)))


def build_command_once(build):
    """`build` (typer's app → click command) memoized per app and its registrations. typer's test
    runner builds the whole click command tree again on every `invoke` (20-40 ms for tokenfab's app;
    the inner loop invokes it ~290 times: 6-12 s of CPU, measured); the `tokenfab` executable builds
    it once per process, and so do the tests with this. A click command keeps no state between
    invocations (each gets a fresh Context)."""
    built: dict[tuple, tuple] = {}

    def command_for(app):
        key = _app_key(app)
        if key not in built:
            built[key] = (app, build(app))  # the app is held so that its id is not reused
        return built[key][1]

    command_for.built = built
    return command_for


def pytest_configure(config):
    import typer.testing

    build = getattr(typer.testing, "_get_command", None)
    if build is not None and not hasattr(build, "built"):  # a typer without the name: nothing to speed up
        typer.testing._get_command = build_command_once(build)


def pytest_collection_modifyitems(config, items):
    if not inner_loop(config):
        return
    seen = set()
    for item in items:
        fn = getattr(item, "obj", None)
        if fn is not None and id(fn) not in seen:  # parametrized copies share one function
            seen.add(id(fn))
            cap_examples(fn)


@pytest.fixture
def tiny_model():
    from tokenfab.specs import ModelSpec
    return ModelSpec.from_config_file(DATA / "tiny-llama.json", model_id="tiny-llama")


@pytest.fixture
def tiny_chip():
    from tokenfab.specs import ChipSpec
    return ChipSpec.from_yaml(DATA / "tiny-chip.yaml")


def write_aic_table(root, system: str, folder: str, framework: str, version: str, table: str, rows: list[dict]):
    """Write an aiconfigurator kernel table as CSV in the package's layout
    (`<root>/<system>/<folder>/<framework>/<version>/<table>.csv`), columns in the first row's order."""
    import csv

    d = root / system / folder / framework / version
    d.mkdir(parents=True, exist_ok=True)
    with (d / f"{table}.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow(r)


def cli_invoke(*args):
    """Run the CLI with string arguments (typer's test runner, stderr kept apart)."""
    from typer.testing import CliRunner

    from tokenfab.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(r, *needles):
    """A rejected command: exit code 2 and one line on stderr starting `error: `, holding each needle."""
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
