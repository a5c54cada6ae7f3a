"""The HTML report: diagnosis first, escaped text, embedded charts, no external asset.

A hand-built report pins the content (a message carrying ``<script>``, the order of the
sections, one image per chart). The page is then opened in real headless Chromium (Debian's
``chromium``): its screenshot must not be blank, the browser console must stay silent and
the DOM it parsed must hold the sections and the images; those tests are skipped where no
Chromium binary is found, and the run says so by name in its warnings summary. A second
page that does log to the console proves the console scan can fail.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import pytest
from test_plots import gappy_series  # the same directory: pytest puts it on sys.path

from nndoctor.diagnosis import attach
from nndoctor.report import html
from nndoctor.report.model import CheckResult, Finding, Report, RunInfo, Severity, Status, Where
from nndoctor.report.plots import Chart, charts
from nndoctor.report.series import RunSeries

HOSTILE = '<script>alert("x")</script> & "quotes"'
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr", "area", "base"}


def sample_report(series: RunSeries | None = None) -> Report:
    findings = [
        Finding(
            check="cannot-overfit-tiny-batch",
            reasons=[27],
            severity=Severity.ERROR,
            title="Cannot overfit a tiny batch",
            message="The loss went from 1.6 to 0.91.",
            fix="Look at the loss input.",
            evidence={"final_loss": 0.91, "curve": [[1e-3, 1.5], [1e-2, 0.9]]},
        ),
        Finding(
            check="loss-input-mismatch",
            reasons=[19],
            severity=Severity.ERROR,
            title="Softmax applied before CrossEntropyLoss",
            message=f"Probabilities reach the loss. {HOSTILE}",
            fix="Remove the softmax.",
            where=Where(module="layers[0]", step=0, file="train.py", line=12),
            evidence={"input_min": 0.05, "note": HOSTILE},
        ),
    ]
    checks = [
        CheckResult("loss-input-mismatch", [19], "observation", Status.FAILED, "1 finding(s)"),
        CheckResult("cannot-overfit-tiny-batch", [27], "experiment", Status.FAILED, ""),
        CheckResult("label-noise", [5], "experiment", Status.SKIPPED, f"no labels {HOSTILE}"),
        CheckResult("zero-grad-missing", [21], "observation", Status.PASSED, ""),
    ]
    report = Report(
        run=RunInfo(
            target="train.py",
            argv=["--lr", "<1>"],
            steps_observed=10,
            step_budget=10,
            stop_reason="step budget",
            seconds=3.2,
        ),
        subject={
            "model": "Net",
            "parameters": 1669,
            "device": "cpu",
            "task": "classification",
            "loss": "cross_entropy",
            "optimizer": "Adam(lr=0.001)",
        },
        checks=checks,
        findings=findings,
        versions={"nndoctor": "0.0", "torch": "2"},
        series=series if series is not None else gappy_series(),
    )
    return attach(report)


@pytest.fixture(scope="module")
def drawn() -> list[Chart]:
    """The sample series' charts, drawn once for the module (drawing is the slow part)."""
    return charts(gappy_series())


class Balance(HTMLParser):
    """Checks that every element is closed in order (the page is well formed)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_diagnosis_comes_first_then_findings_then_charts_then_checks(drawn: list[Chart]) -> None:
    page = html.render(sample_report(), drawn=drawn)
    assert page.startswith("<!DOCTYPE html>")
    cause = sample_report().diagnosis.causes[0].lead.title
    assert cause == "Softmax applied before CrossEntropyLoss"
    positions = [
        page.index('id="diagnosis"'),
        page.index('id="findings"'),
        page.index('id="charts"'),
        page.index('id="checks"'),
        page.index('id="run"'),
    ]
    assert positions == sorted(positions)
    diagnosis = page[positions[0] : positions[1]]
    assert cause in diagnosis and "cannot-overfit-tiny-batch" in diagnosis  # what it explains
    # Findings in the diagnosis's order: the cause before the symptom it explains.
    findings = page[positions[1] : positions[2]]
    assert findings.index(cause) < findings.index("Cannot overfit a tiny batch")


def test_user_text_is_escaped_everywhere(drawn: list[Chart]) -> None:
    page = html.render(sample_report(), drawn=drawn)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert "--lr &lt;1&gt;" in page
    checker = Balance()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert "script" not in checker.tags


def test_every_chart_is_embedded_and_nothing_is_fetched(drawn: list[Chart]) -> None:
    page = html.render(sample_report(gappy_series()))  # drawn from report.series
    n = len(drawn)
    assert n == 6
    assert page.count('src="data:image/png;base64,') == n
    assert not re.search(r'(?:src|href)="(?!data:)', page)
    assert "<link" not in page


def test_already_drawn_charts_are_reused(drawn: list[Chart]) -> None:
    page = html.render(sample_report(), drawn=drawn[:2])
    assert page.count("data:image/png;base64,") == 2


def test_a_run_without_series_says_there_is_nothing_to_plot(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    html.write(sample_report(RunSeries()), path)
    page = path.read_text(encoding="utf-8")
    assert "Nothing to plot" in page and "data:image/png" not in page


def test_an_unobserved_run_leads_with_why() -> None:
    report = Report(
        run=RunInfo(
            target="t.py",
            observed=False,
            error="the script raised <ValueError>",
            traceback="Traceback ...\nValueError: <bad>",
        ),
    )
    page = html.render(attach(report))
    assert "could not be observed" in page and "&lt;ValueError&gt;" in page
    assert page.index("could not be observed") < page.index('id="charts"')


# -- in a real browser ----------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def browse(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    binary = chromium()
    assert binary is not None
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",  # tests may run as root in containers
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *flags,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def console_lines(stderr: str) -> list[str]:
    """What the page wrote to the browser console (messages, uncaught errors)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


needs_chromium = pytest.mark.skipif(
    chromium() is None,
    reason="no Chromium binary found (install Debian's `chromium` package to run this test)",
)
if chromium() is None:
    # Shown in the warnings summary of any pytest run, which lists no skip reason by default.
    warnings.warn(
        "the headless-Chromium tests of the HTML report were skipped: no Chromium binary "
        f"found on PATH (looked for {', '.join(BROWSERS)}; Debian's `chromium` package)",
        stacklevel=1,
    )


@needs_chromium
def test_the_report_renders_in_headless_chromium(tmp_path: Path, drawn: list[Chart]) -> None:
    page = tmp_path / "report.html"
    html.write(sample_report(), page, drawn=drawn)
    shot = tmp_path / "shot.png"
    result = browse(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1800")
    assert shot.exists(), result.stderr[-2000:]
    assert console_lines(result.stderr) == []
    img = mpimg.imread(io.BytesIO(shot.read_bytes()), format="png")
    assert img.shape[:2] == (1800, 1200)
    # Not blank: text, badges and charts give the page a real spread of pixel values.
    assert float(img[..., :3].std()) > 0.05
    dom = browse(page, tmp_path / "profile", "--dump-dom").stdout
    assert 'id="diagnosis"' in dom and "Softmax applied before CrossEntropyLoss" in dom
    assert dom.count("data:image/png;base64,") == len(drawn)


def test_a_run_without_chromium_says_the_browser_tests_were_skipped(tmp_path: Path) -> None:
    """A plain ``pytest`` (CI's command, which lists no skip reasons) must still say, by
    name, that the browser tests did not run where no Chromium is found."""
    import os
    import sys

    env = dict(os.environ, PATH=str(tmp_path))  # no browser on this PATH
    result = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
        + ["-k", "headless_chromium", "-o", "addopts="],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 skipped" in result.stdout
    assert "headless-Chromium tests of the HTML report were skipped" in result.stdout


@needs_chromium
def test_the_console_scan_catches_a_page_that_logs_an_error(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('boom');</script></body></html>",
        encoding="utf-8",
    )
    result = browse(page, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console_lines(result.stderr))


def watched_run() -> tuple[Any, list[Chart]]:
    """A real watched run whose learning rate jumps ×1000 at step 40 (alerts at that step)."""
    import torch
    from torch import nn

    import nndoctor

    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nndoctor.watch(model, opt, every=4, quiet=True) as w:
        for step in range(60):
            if step == 40:
                opt.param_groups[0]["lr"] *= 1000
            i = (step * 32) % 256
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
            opt.step()
    return w.report, charts(w.report.series)


def test_a_watched_run_page_lists_its_alerts_then_its_charts() -> None:
    report, drawn = watched_run()
    assert report.alerts, "the ×1000 learning rate must raise an alert for this test to mean much"
    page = html.render_watch(report, target=f"train.py {HOSTILE}", facts=[HOSTILE], drawn=drawn)
    assert HOSTILE not in page and "&lt;script&gt;" in page
    assert page.index("Alerts (") < page.index('id="charts"')
    assert page.count("data:image/png;base64,") == len(drawn) >= 3
    assert f"{report.steps_seen} steps watched, {report.steps_sampled} sampled" in page
    tags = Balance()
    tags.feed(page)
    assert tags.stack == [] and tags.errors == []


@needs_chromium
def test_the_watch_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    report, drawn = watched_run()
    page = tmp_path / "watch.html"
    page.write_text(html.render_watch(report, target="train.py", drawn=drawn), encoding="utf-8")
    shot = tmp_path / "shot.png"
    result = browse(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1600")
    assert shot.exists(), result.stderr[-2000:]
    assert console_lines(result.stderr) == []
    img = mpimg.imread(io.BytesIO(shot.read_bytes()), format="png")
    assert float(img[..., :3].std()) > 0.05


# -- from the command line ------------------------------------------------------------------


def test_check_writes_the_html_report_and_the_pngs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nndoctor.cli import EXIT_FINDINGS, app

    script = Path(__file__).resolve().parents[2] / "examples" / "softmax_before_ce.py"
    page, folder = tmp_path / "r.html", tmp_path / "plots"
    result = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"}).invoke(
        app,
        [
            "check",
            str(script),
            "--steps",
            "6",
            "--select",
            "loss-input-mismatch,cannot-overfit-tiny-batch",
            "--html",
            str(page),
            "--plots",
            str(folder),
        ],
    )
    assert result.exit_code == EXIT_FINDINGS, result.output
    pngs = sorted(p.name for p in folder.iterdir())
    assert "loss.png" in pngs and "experiment-cannot-overfit-tiny-batch.png" in pngs
    text = page.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == len(pngs)
    assert text.index("Softmax applied before CrossEntropyLoss") < text.index('id="charts"')


def test_an_unwritable_html_path_is_a_usage_error_before_the_script_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nndoctor.cli import EXIT_USAGE, app

    script = tmp_path / "t.py"
    script.write_text("raise SystemExit('the script must not run')\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["check", str(script), "--html", str(tmp_path / "no" / "r.html")]
    )
    assert result.exit_code == EXIT_USAGE and "--html" in result.stderr
