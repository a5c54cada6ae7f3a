"""Live progress: what each engine event says, and plain lines without control codes.

The events are built by hand, as the engine sends them; a console that is not a terminal
(a pipe, a CI log) must receive a few plain lines and never an escape sequence. One real
``nndoctor check`` shows the engine sending them in order.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from nndoctor.report.progress import CheckProgress, ProgressEvent, describe

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def plain_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=False, width=200), buf


def test_an_experiment_event_says_its_time_and_the_budget_left() -> None:
    event = ProgressEvent(
        "check",
        check="learning-rate-out-of-range",
        kind="experiment",
        index=40,
        total=52,
        experiment_spent=10.0,
        experiment_budget=40.0,
        errors=1,
        found=("loss-input-mismatch",),
        started=100.0,
    )
    head, found = describe(event, now=104.0)
    assert "check 40 of 52" in head and "learning-rate-out-of-range running 4s" in head
    assert "budget left 26s of 40s" in head
    assert found == "found so far: 1 error(s), 0 warning(s) (loss-input-mismatch)"


def test_an_observation_event_says_the_step_out_of_the_budget() -> None:
    event = ProgressEvent("observe", step=7, steps=20, started=10.0)
    assert describe(event, now=13.0) == ["observing the script: step 7 of 20 · 3s"]


def test_plain_lines_are_few_and_carry_no_control_codes() -> None:
    console, buf = plain_console()
    progress = CheckProgress(console)
    assert not progress.live
    with progress.shown():
        for step in range(21):
            progress(ProgressEvent("observe", step=step, steps=20, started=1.0))
        for i in range(1, 4):
            progress(ProgressEvent("check", check=f"obs-{i}", kind="observation", index=i, total=5))
        progress(
            ProgressEvent(
                "check", check="exp", kind="experiment", index=4, total=5, errors=1, found=("a",)
            )
        )
        progress(ProgressEvent("done", index=5, total=5, errors=1, found=("a",)))
    text = buf.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    steps = [line for line in lines if line.startswith("observing")]
    assert [s.split(" of ")[0].rsplit(" ", 1)[1] for s in steps] == [
        "0",
        "1",
        "5",
        "10",
        "15",
        "20",
    ]
    assert sum("running 5 checks" in line for line in lines) == 1  # once, not per observation
    assert any("experiment exp" in line for line in lines)
    assert lines[-1].startswith("checks done") and "1 error(s)" in lines[-1]


def test_check_sends_progress_in_order_and_plain_on_a_pipe() -> None:
    from nndoctor.cli import app

    script = Path(__file__).resolve().parents[2] / "examples" / "softmax_before_ce.py"
    result = runner.invoke(
        app, ["check", str(script), "--steps", "4", "--select", "loss-input-mismatch"]
    )
    assert result.exit_code == 1, result.output
    err = result.stdout  # the lines come before the report, on the same stream
    assert "\x1b" not in err
    first = err.index("observing the script: step 0 of 4")
    assert first < err.index("step 4 of 4") < err.index("checks done")
    assert "found so far: 1 error(s), 0 warning(s) (loss-input-mismatch)" in err


def test_on_a_terminal_the_latest_event_is_drawn_live() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    progress = CheckProgress(console)
    assert progress.live
    with progress.shown():
        progress(ProgressEvent("observe", step=3, steps=20, started=1.0))
        console.file.flush()
    assert "step 3 of 20" in buf.getvalue()


def test_bench_lines_count_cases_and_what_was_found_so_far() -> None:
    from nndoctor.bench.runner import Outcome
    from nndoctor.cli import _bench_progress

    loud = {"check": "loss-input-mismatch", "severity": "error", "reasons": [19], "title": "t"}
    outcomes = [
        Outcome("softmax", 0, "dev", fault=True, accepted=[19], findings=[loud]),
        Outcome("missed", 0, "dev", fault=True, accepted=[5]),
        Outcome("healthy", 0, "dev", fault=False, findings=[loud]),
        Outcome("misled", 0, "dev", fault=True, accepted=[5], findings=[loud]),
    ]
    console, buf = plain_console()
    with _bench_progress(console, len(outcomes)) as advance:
        for o in outcomes:
            advance(o)
    lines = buf.getvalue().splitlines()
    assert "\x1b" not in buf.getvalue()
    assert lines[0].startswith("[1/4] softmax: found") and "1/1 fault(s)" in lines[0]
    assert "1/2 fault(s), 0/0 false alarm(s)" in lines[1]
    assert lines[2].startswith("[3/4]") and "1/1 false alarm(s)" in lines[2]
    # A fault the report does not name first says what it named first instead.
    assert lines[3].startswith("[4/4] misled: other (first: loss-input-mismatch)")


def test_zoo_training_on_a_pipe_prints_about_ten_plain_lines() -> None:
    from nndoctor.cli import _plain_training_lines

    console, buf = plain_console()
    progress = _plain_training_lines(console, "rotnet")
    for step in range(1, 101):
        progress(step, 100, 1.0 / step)
    lines = buf.getvalue().splitlines()
    assert "\x1b" not in buf.getvalue()
    assert lines[0].startswith("rotnet step 1/100 · loss 1.0000")
    assert lines[-1].startswith("rotnet step 100/100 · loss 0.0100")
    assert len(lines) == 11


def test_watch_progress_is_one_live_line_on_a_terminal_with_output_above_it() -> None:
    import sys

    from nndoctor.report.progress import WatchEvent, WatchProgress

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160)
    progress = WatchProgress(console)
    assert progress.live
    stdout = sys.stdout
    with progress.shown():
        progress(WatchEvent(step=250, steps=None, seconds=3.0, period=8, overhead=0.011))
        print("epoch 1 | the script's own line")  # redirected above the live line
        progress(
            WatchEvent(
                step=260,
                steps=None,
                seconds=3.1,
                period=8,
                overhead=0.011,
                errors=1,
                found=("watch-divergence",),
            )
        )
    assert sys.stdout is stdout  # put back
    out = buf.getvalue()
    assert "epoch 1 | the script's own line" in out
    assert "watching: step 260 · 3s · sampling every 8 · watch ≈ 1.1% · 1 error(s)" in out


def test_watch_progress_on_a_pipe_prints_the_quarters_or_the_powers_of_ten() -> None:
    from nndoctor.report.progress import WatchEvent, WatchProgress

    console, buf = plain_console()
    progress = WatchProgress(console)
    for step in range(1, 101):
        progress(WatchEvent(step=step, steps=100, seconds=0.0, period=4, overhead=0.01))
    for step in range(1, 25_001):
        progress(WatchEvent(step=step, steps=None, seconds=0.0, period=4, overhead=0.01))
    steps = [line.split()[2] for line in buf.getvalue().splitlines()]
    assert steps == ["1", "25", "50", "75", "100", "1", "10", "100", "1,000", "10,000", "20,000"]
    assert "\x1b[" not in buf.getvalue()
