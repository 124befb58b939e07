"""The study report in a real browser: every chart renders, the console stays clean, it works offline.

Drives headless Chromium (Debian package `chromium`) through the DevTools protocol with the
`playwright` Python package pointed at the system browser (never a downloaded one), or, when
playwright is not installed, through Chromium's own `--dump-dom` / `--screenshot` flags with the
console captured from its log. Saves a screenshot (and a printed PDF with playwright) of each
report under `tests/artifacts/` (or $TOKENFAB_TEST_ARTIFACTS) and prints the paths. Skipped,
saying why, only where no Chromium can be found.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tokenfab.report.study_html import CHART_CLASS, chart_count
from tokenfab.study import run_study

ARTIFACTS = Path(os.environ.get("TOKENFAB_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# Charts counted in the page: each <figure class="tf-chart"> whose plotly div drew its SVG.
RENDERED_JS = f"""() => {{
  const figs = Array.from(document.querySelectorAll('figure.{CHART_CLASS}'));
  const drawn = figs.filter(f => f.querySelector('.js-plotly-plot svg.main-svg'));
  const traces = figs.map(f => f.querySelectorAll('.js-plotly-plot .trace, .js-plotly-plot .point').length);
  return {{figures: figs.length, drawn: drawn.length, empty: traces.filter(n => n === 0).length}};
}}"""


def find_chromium() -> str | None:
    """The system Chromium: $TOKENFAB_CHROMIUM, else the first of the usual names on PATH."""
    env = os.environ.get("TOKENFAB_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = find_chromium()
STUDIES = ("chat-at-scale", "build-vs-buy", "custom-chip")
MIN_CHARTS = {"chat-at-scale": 9, "build-vs-buy": 6, "custom-chip": 4}
"""Charts each report must at least hold (the page's own count is what is checked against the browser)."""
DESIGN_CHARTS = {"custom-chip": 1}
"""Charts in the design-search section of the studies that have one (the Pareto-front plot)."""
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium found (apt-get install -y chromium, or set TOKENFAB_CHROMIUM=/path/to/chrome)")]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """The shipped studies' reports (chat-at-scale has serving CDFs, build-vs-buy its curves, custom-chip a
    design search's Pareto front)."""
    out = {}
    for name in STUDIES:
        outcome = run_study(name, tmp_path_factory.mktemp(name))
        out[name] = outcome.report_path
    return out


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def _with_playwright(report: Path, name: str) -> dict:
    from playwright.sync_api import sync_playwright

    console, external = [], []
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=[f for f in FLAGS if f != "--headless"],
            viewport={"width": 1280, "height": 900})
        page = browser.new_page()
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

        def offline(route):  # the report must not fetch anything: fail and record any request off disk
            if route.request.url.startswith(("file://", "data:", "about:")):
                return route.continue_()
            external.append(route.request.url)
            return route.abort()

        page.route("**/*", offline)
        page.goto(report.as_uri(), wait_until="load")
        page.wait_for_function(f"document.querySelectorAll('figure.{CHART_CLASS} svg.main-svg').length > 0",
                               timeout=30_000)
        counts = page.evaluate(RENDERED_JS)
        counts["design_drawn"] = page.evaluate(
            f"Array.from(document.querySelectorAll('#design figure.{CHART_CLASS}'))"
            ".filter(f => f.querySelector('.js-plotly-plot svg.main-svg')).length")
        shot = _artifact(f"study-report-{name}.png")
        page.screenshot(path=str(shot), full_page=True)
        page.emulate_media(media="print")
        printed = page.evaluate("getComputedStyle(document.querySelector('nav.toc')).display")
        pdf = _artifact(f"study-report-{name}.pdf")
        page.pdf(path=str(pdf), format="A4", print_background=False)
        browser.close()
    return {**counts, "console": console, "external": external, "screenshot": shot, "pdf": pdf,
            "nav_when_printed": printed}


def _with_cli(report: Path, name: str) -> dict:
    """Chromium's own flags: the DOM after scripts ran, the console from its log, a screenshot."""
    with tempfile.TemporaryDirectory() as profile:
        base = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                "--enable-logging=stderr", "--v=0", "--window-size=1280,6000"]
        dom = subprocess.run([*base, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=180,
                             check=False)
        shot = _artifact(f"study-report-{name}.png")
        subprocess.run([*base, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=180, check=False)
    figures = re.split(rf'<figure class="{CHART_CLASS}"', dom.stdout)[1:]
    drawn = sum(1 for f in figures if 'class="main-svg"' in f.split("</figure>")[0])
    design = dom.stdout.split('<section id="design"', 1)[1].split("</section>", 1)[0] if \
        '<section id="design"' in dom.stdout else ""
    design_drawn = sum(1 for f in re.split(rf'<figure class="{CHART_CLASS}"', design)[1:]
                       if 'class="main-svg"' in f.split("</figure>")[0])
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    return {"figures": len(figures), "drawn": drawn, "design_drawn": design_drawn, "empty": 0, "console": console, "external": [],
            "screenshot": shot, "pdf": None, "nav_when_printed": "none"}


def open_in_browser(report: Path, name: str) -> dict:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return _with_cli(report, name)
    return _with_playwright(report, name)


@pytest.mark.parametrize("name", STUDIES)
def test_every_chart_renders_with_a_clean_console(reports, name, capsys):
    report = reports[name]
    expected = chart_count(report.read_text(encoding="utf-8"))
    got = open_in_browser(report, name)
    with capsys.disabled():
        print(f"\n[{name}] screenshot: {got['screenshot']}" + (f"  printed: {got['pdf']}" if got["pdf"] else ""))
    assert expected >= MIN_CHARTS[name]
    html = report.read_text(encoding="utf-8")
    design = DESIGN_CHARTS.get(name, 0)
    assert ('<section id="design"' in html) == bool(design)
    assert got["design_drawn"] == design, f"{got['design_drawn']} of {design} design-search charts rendered"
    assert got["figures"] == expected, got
    assert got["drawn"] == expected, f"{expected - got['drawn']} of {expected} charts did not render"
    assert got["empty"] == 0, "a chart rendered without any trace"
    assert got["console"] == [], got["console"]
    assert got["external"] == [], f"the report fetched from the network: {got['external']}"
    assert got["nav_when_printed"] == "none"
    assert got["screenshot"].is_file() and got["screenshot"].stat().st_size > 10_000
