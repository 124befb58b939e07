"""`tokenfab design --screen N`: how many design points the vectorized screen scores first."""

import json

import pytest
from typer.testing import CliRunner

from tokenfab.cli import app

runner = CliRunner()


@pytest.mark.slow  # two design searches (~3 s); the inner loop keeps screening and seeding in test_design_batch.py
def test_screen_size_reaches_the_study_and_zero_turns_it_off():
    r = runner.invoke(app, ["design", "chat-mix", "--trials", "2", "--screen", "64", "--no-sensitivity",
                            "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    screen = json.loads(r.output)["study"]["screen"]
    assert screen["points"] == 64 and screen["seeded_trials"] <= 2
    r = runner.invoke(app, ["design", "chat-mix", "--trials", "2", "--screen", "0", "--no-sensitivity",
                            "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    assert not json.loads(r.output)["study"].get("screen")


def test_screen_out_of_range_is_one_line_exit_2():
    for bad in ("-1", "5000"):
        r = runner.invoke(app, ["design", "chat-mix", "--trials", "2", "--screen", bad])
        assert r.exit_code == 2 and "--screen must be between 0 and 4096" in r.output
        assert len(r.output.strip().splitlines()) == 1
