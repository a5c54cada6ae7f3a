"""The ``nndoctor`` command line: check, explain, reasons, zoo.

Exit codes (a written contract, also in ``nndoctor check --help`` and the README):

    0  no finding reached --fail-on
    1  a finding reached --fail-on
    2  usage error (bad option, missing script, bad [tool.nndoctor] or baseline file)
    3  the script could not be observed (crashed before its first optimizer
       step, never stepped, no model found, timed out before a step)
    4  nndoctor itself failed (a report file could not be written, an internal
       error); the message is one line on stderr
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from nndoctor.bench.runner import Outcome
    from nndoctor.report.model import Report
    from nndoctor.report.progress import ProgressEvent
    from nndoctor.report.sarif import Rule

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_NOT_OBSERVED = 3
EXIT_INTERNAL = 4

EXIT_CODES_HELP = (
    "Exit codes: 0 no finding reached --fail-on; 1 a finding reached --fail-on; "
    "2 usage error (bad option, missing script, bad configuration or baseline file); "
    "3 the script could not be observed "
    "(crashed before its first optimizer step, never stepped, no model found, timed out); "
    "4 nndoctor itself failed (a report file could not be written, an internal error); "
    "130 or 143 stopped by Ctrl-C or SIGTERM (what it started is undone on the way out)."
)

app = typer.Typer(
    name="nndoctor",
    help="A training doctor for PyTorch: finds out why a network does not train.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
zoo_app = typer.Typer(help="The reference zoo: self-supervised pretext models and two detectors.")
app.add_typer(zoo_app, name="zoo")


def _print_version(value: bool) -> None:
    if value:
        from nndoctor import __version__

        typer.echo(f"nndoctor {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """A training doctor for PyTorch: finds out why a network does not train."""


class UsageError(Exception):
    """Bad input from the user; exit code 2."""


def _console(stderr: bool = False) -> Console:
    # Bound to the real streams now: the observed script's output is redirected later.
    return Console(file=sys.stderr if stderr else sys.stdout, highlight=False, soft_wrap=False)


def _fail(message: str, code: int) -> typer.Exit:
    # One line, never wrapped: scripts and CI logs grep for it.
    # The message is text, not markup: "[tool.nndoctor]" must print as it is.
    _console(stderr=True).print(f"[bold red]nndoctor:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


@app.command(epilog=EXIT_CODES_HELP)
def check(
    script: Annotated[Path, typer.Argument(help="The training script to run, unmodified.")],
    script_args: Annotated[
        Optional[list[str]], typer.Argument(help="Arguments for the script, after `--`.")
    ] = None,
    steps: Annotated[
        Optional[int], typer.Option(help="Optimizer steps to observe [default: 20].", min=1)
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            help="Wall-clock limit for the script, and for each replay of it, in seconds "
            "[default: 120]."
        ),
    ] = None,
    phase_steps: Annotated[
        Optional[int],
        typer.Option(
            help="After the observed steps, run on for at most this many optimizer steps looking "
            "for a second phase of training (a new optimizer), which is then observed too; "
            "0 stops at the budget [default: 1000].",
            min=0,
        ),
    ] = None,
    device: Annotated[
        Optional[str], typer.Option(help="Device for experiments on copies (default: the model's).")
    ] = None,
    json_path: Annotated[
        Optional[Path], typer.Option("--json", help="Write the report as JSON here.")
    ] = None,
    fail_on: Annotated[
        Optional[str],
        typer.Option(
            help="Exit 1 when a finding reaches this severity: error, warning or never [default: error]."
        ),
    ] = None,
    quick: Annotated[
        Optional[bool],
        typer.Option("--quick/--no-quick", help="Observations and the cheapest experiments only."),
    ] = None,
    experiment_seconds: Annotated[
        Optional[float],
        typer.Option(
            help="Time for experiments on copies, most informative first; the rest are skipped "
            "and say so. Counted in processor time over the threads in use (about the seconds "
            "on an idle machine), so a busy machine skips no more [default: 40].",
        ),
    ] = None,
    keep_scratch: Annotated[
        bool,
        typer.Option(
            "--keep-scratch",
            help="Keep the scratch folder the script's saves went to "
            "(the report names it); by default it is removed.",
        ),
    ] = False,
    select: Annotated[
        Optional[list[str]],
        typer.Option(help="Run only these checks (id or reason number); repeatable."),
    ] = None,
    ignore: Annotated[
        Optional[list[str]],
        typer.Option(help="Skip these checks (id or reason number); repeatable."),
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            help="Seed torch, numpy and random before the script runs, so an unseeded script "
            "gives the same findings every run (a script that seeds itself wins) [default: 0].",
            min=0,
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every check, selected or not.")
    ] = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="How to print the report: console, or github (one workflow annotation per finding).",
        ),
    ] = "console",
    junit_path: Annotated[
        Optional[Path],
        typer.Option("--junit", help="Write JUnit XML here: one test case per check."),
    ] = None,
    sarif_path: Annotated[
        Optional[Path],
        typer.Option("--sarif", help="Write SARIF 2.1.0 here (GitHub code scanning)."),
    ] = None,
    markdown_path: Annotated[
        Optional[Path],
        typer.Option(
            "--markdown", help="Write a Markdown report here (job summary, pull-request comment)."
        ),
    ] = None,
    html_path: Annotated[
        Optional[Path],
        typer.Option(
            "--html",
            help="Write a self-contained HTML report here: the diagnosis, the findings and "
            "charts of the run.",
        ),
    ] = None,
    plots_dir: Annotated[
        Optional[Path],
        typer.Option("--plots", help="Write one PNG per chart of the run into this folder."),
    ] = None,
    config_path: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            help="A pyproject.toml whose [tool.nndoctor] table to use (default: the nearest one "
            "from the current directory upwards that has the table).",
        ),
    ] = None,
    baseline_path: Annotated[
        Optional[Path],
        typer.Option("--baseline", help="Report only findings that are not in this baseline file."),
    ] = None,
    write_baseline_path: Annotated[
        Optional[Path],
        typer.Option(
            "--write-baseline",
            help="Record today's findings in this file as accepted, and exit 0 (3 if not observed).",
        ),
    ] = None,
) -> None:
    """Run SCRIPT for a few optimizer steps under observation, run the diagnostics, report.

    Settings come from [tool.nndoctor] in pyproject.toml (select, ignore, steps, timeout,
    fail-on, quick, experiment-seconds, seed, thresholds); a flag given here replaces the value from the file.

    Example: nndoctor check train.py --steps 20 -- --lr 0.1
    """
    from nndoctor import baseline as baseline_mod
    from nndoctor import config as config_mod
    from nndoctor.capture.runner import ScriptError
    from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
    from nndoctor.distributed import launched_rank
    from nndoctor.distributed.check import hold_sigterm_when_a_rank_is_lost, reports_here
    from nndoctor.engine import (
        DEFAULT_EXPERIMENT_SECONDS,
        DEFAULT_STEPS,
        DEFAULT_TIMEOUT,
        Selection,
        check_script,
    )
    from nndoctor.report import console as console_report

    if output_format not in OUTPUT_FORMATS:
        raise _fail(
            f"--format must be {' or '.join(OUTPUT_FORMATS)}, not {output_format!r}", EXIT_USAGE
        )
    if fail_on is not None and fail_on not in config_mod.FAIL_ON:
        raise _fail(f"--fail-on must be error, warning or never, not {fail_on!r}", EXIT_USAGE)
    if not script.exists():
        raise _fail(f"no such script: {script}", EXIT_USAGE)
    if not script.is_file():
        raise _fail(f"not a file: {script}", EXIT_USAGE)
    for option, path in (
        ("--json", json_path),
        ("--junit", junit_path),
        ("--sarif", sarif_path),
        ("--markdown", markdown_path),
        ("--html", html_path),
        ("--write-baseline", write_baseline_path),
    ):
        problem = _unwritable(path)
        if problem:
            raise _fail(f"{option} {path}: {problem}", EXIT_USAGE)
    if plots_dir is not None and plots_dir.exists() and not plots_dir.is_dir():
        raise _fail(f"--plots {plots_dir}: not a folder", EXIT_USAGE)
    cli_select = tuple(_split(select)) if select else None
    cli_ignore = tuple(_split(ignore)) if ignore else None
    _validate_selection(Selection(cli_select or (), cli_ignore or ()))
    try:
        settings = config_mod.load(config_path).merged(
            select=cli_select,
            ignore=cli_ignore,
            steps=steps,
            timeout=timeout,
            fail_on=fail_on,
            quick=quick,
            experiment_seconds=experiment_seconds,
            seed=seed,
        )
        thresholds = DEFAULT_THRESHOLDS.with_changes(**settings.thresholds)
        accepted = baseline_mod.load(baseline_path) if baseline_path is not None else None
    except (config_mod.ConfigError, baseline_mod.BaselineError) as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc
    gate = settings.fail_on or "error"
    if settings.experiment_seconds is not None and settings.experiment_seconds <= 0:
        raise _fail("--experiment-seconds must be a positive number of seconds", EXIT_USAGE)
    selection = Selection(
        settings.select or (),
        settings.ignore or (),
        bool(settings.quick),
        settings.experiment_seconds or DEFAULT_EXPERIMENT_SECONDS,
    )
    console_format = output_format == "console"
    out = _console()
    notices = out if console_format else _console(stderr=True)
    # In a distributed job rank 0 alone shows progress, prints and writes the report, even
    # while the launcher stops a job that lost a rank.
    other_rank = bool(launched_rank())
    hold_sigterm_when_a_rank_is_lost()
    try:
        with _progress(out, console_format and not other_rank) as status:
            report = check_script(
                str(script),
                list(script_args or []),
                steps=settings.steps or DEFAULT_STEPS,
                timeout=settings.timeout or DEFAULT_TIMEOUT,
                device=device,
                selection=selection,
                thresholds=thresholds,
                progress=status,
                # Seeded, so that an unseeded script is diagnosed the same way run after run.
                seed=settings.seed or 0,
                keep_scratch=keep_scratch,
                phase_steps=phase_steps,
            )
    except ScriptError as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc
    if not reports_here(report):
        raise typer.Exit(EXIT_OK)  # another rank of a distributed job: rank 0 reports
    if write_baseline_path is not None and report.run.observed:
        recorded = baseline_mod.write(report, write_baseline_path)
        notices.print(
            f"[dim]baseline written to {escape(str(write_baseline_path))}: "
            f"{recorded} finding(s) accepted[/]"
        )
    if accepted is not None:
        report, _ = baseline_mod.apply(report, accepted)
    if console_format:
        console_report.render(report, out, verbose=verbose)
    else:
        from nndoctor.report import github

        sys.stdout.write(github.render(report, default_file=str(script)))
        n = report.counts()
        sys.stdout.write(
            f"nndoctor: {n['errors']} error(s), {n['warnings']} warning(s), {n['infos']} note(s) · "
            f"checks: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, "
            f"{n['crashed']} crashed\n"
        )
        sys.stdout.flush()
    try:
        _write_reports(
            report, notices, gate, str(script), json_path, junit_path, sarif_path, markdown_path
        )
        _write_charts(report, notices, html_path, plots_dir)
    except OSError as exc:
        raise _fail(f"could not write a report: {exc}", EXIT_INTERNAL) from exc
    if not report.run.observed:
        raise _fail(report.run.error or "the script could not be observed", EXIT_NOT_OBSERVED)
    if write_baseline_path is not None:
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(EXIT_FINDINGS if report.fails(gate) else EXIT_OK)


OUTPUT_FORMATS = ("console", "github")


def _unwritable(path: Path | None) -> str | None:
    """Why a report could not be written to ``path`` (checked before the script runs, so a
    typo does not cost a whole check), or None."""
    import os

    if path is None or str(path) == "-":
        return None
    if path.is_dir():
        return "is a directory"
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"no such folder: {folder}"
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "not writable"
    return None


@contextlib.contextmanager
def _progress(out: Console, show: bool) -> Iterator[Callable[[ProgressEvent], None]]:
    """Progress before a console report: live lines on a terminal (the report replaces them),
    a few plain lines otherwise (a pipe, a CI log: no control codes). Nothing when stdout
    carries machine-read lines (--format github), and never on stderr, which is kept for
    the one-line failure message."""
    from nndoctor.report.progress import CheckProgress

    if not show:
        yield lambda event: None
        return
    shown = CheckProgress(out)
    with shown.shown():
        yield shown


def _write_charts(
    report: Report, notices: Console, html_path: Path | None, plots_dir: Path | None
) -> None:
    """The HTML report and the PNG charts of a check, drawn once for both."""
    from nndoctor.report import html

    _write_drawn(
        report.series,
        notices,
        html_path,
        plots_dir,
        lambda drawn: html.render(report, drawn=drawn),
    )


def _write_drawn(
    series: Any,
    notices: Console,
    html_path: Path | None,
    plots_dir: Path | None,
    render_html: Callable[[list[Any]], str],
) -> None:
    """Draw ``series`` once; write its PNGs into ``plots_dir`` and ``render_html(drawn)``
    to ``html_path``, each where asked."""
    if html_path is None and plots_dir is None:
        return
    from nndoctor.report.plots import NOTHING_TO_PLOT, charts
    from nndoctor.report.series import RunSeries

    drawn = charts(series or RunSeries())
    if plots_dir is not None:
        if drawn:
            plots_dir.mkdir(parents=True, exist_ok=True)
            for chart in drawn:
                (plots_dir / f"{chart.name}.png").write_bytes(chart.png)
            notices.print(f"[dim]{len(drawn)} chart(s) written to {escape(str(plots_dir))}[/]")
        else:
            notices.print(f"[dim]{NOTHING_TO_PLOT}[/]")
    if html_path is not None:
        html_path.write_text(render_html(drawn), encoding="utf-8")
        notices.print(f"[dim]HTML report written to {escape(str(html_path))}[/]")


def _write_reports(
    report: Report,
    notices: Console,
    fail_on: str,
    script: str,
    json_path: Path | None,
    junit_path: Path | None,
    sarif_path: Path | None,
    markdown_path: Path | None,
) -> None:
    """Write every report file that was asked for, each announced in one dim line."""
    from nndoctor.report import json as json_report
    from nndoctor.report import junit, markdown, sarif

    written = []
    if json_path is not None:
        json_report.write(report, json_path)
        written.append(("JSON", json_path))
    if junit_path is not None:
        junit.write(report, junit_path, fail_on=fail_on)
        written.append(("JUnit", junit_path))
    if sarif_path is not None:
        sarif.write(report, sarif_path, rules=_sarif_rules(), default_file=script)
        written.append(("SARIF", sarif_path))
    if markdown_path is not None:
        markdown.write(report, markdown_path, fail_on=fail_on)
        written.append(("Markdown", markdown_path))
    for kind, path in written:
        notices.print(f"[dim]{kind} report written to {escape(str(path))}[/]")


def _sarif_rules() -> list[Rule]:
    from nndoctor.checks.registry import all_checks
    from nndoctor.report.sarif import Rule

    return [
        Rule(
            id=s.id,
            title=s.title(),
            reasons=s.reasons,
            severity=s.severity,
            kind=s.kind,
            manual=s.doc,
        )
        for s in all_checks()
    ]


def _split(values: list[str] | None) -> list[str]:
    """Accept both repeated options and comma-separated lists."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _validate_selection(selection: object) -> None:
    from nndoctor.checks.registry import all_checks

    known = {c.id for c in all_checks()}
    for key in (*selection.select, *selection.ignore):  # type: ignore[attr-defined]
        if key.isdigit():
            if not 1 <= int(key) <= 37:
                raise _fail(f"reason numbers run from 1 to 37, not {key}", EXIT_USAGE)
        elif key not in known:
            raise _fail(f"unknown check id {key!r} (see `nndoctor reasons`)", EXIT_USAGE)


@app.command()
def explain(
    topic: Annotated[
        str, typer.Argument(help="A check id (e.g. loss-at-chance) or a reason number (1-37).")
    ],
) -> None:
    """Print the manual of a check, or of every check covering a reason."""
    from nndoctor.checks.registry import all_checks, checks_for_reason
    from nndoctor.reasons import REASONS
    from nndoctor.watch.stream_checks import stream_manuals

    out = _console()
    if topic.isdigit():
        number = int(topic)
        if number not in REASONS:
            raise _fail(f"reason numbers run from 1 to 37, not {number}", EXIT_USAGE)
        out.print(
            f"[bold]Reason {number}: {REASONS[number].title}[/]  [dim]({REASONS[number].part})[/]"
        )
        out.print(REASONS[number].automatic + "\n")
        specs = [*checks_for_reason(number), *(m for m in stream_manuals() if number in m.reasons)]
        if not specs:
            out.print("[yellow]No check covers this reason yet.[/]")
        for spec in specs:
            _print_manual(out, spec)
        return
    manuals = [*all_checks(), *stream_manuals()]
    match = next((c for c in manuals if c.id == topic), None)
    if match is None:
        close = [c.id for c in manuals if topic in c.id]
        hint = f"; did you mean {', '.join(close)}?" if close else " (see `nndoctor reasons`)"
        raise _fail(f"unknown check id {topic!r}{hint}", EXIT_USAGE)
    _print_manual(out, match)


def _print_manual(out: Console, spec: object) -> None:
    doc = spec.doc  # type: ignore[attr-defined]
    reasons = ", ".join(str(r) for r in spec.reasons)  # type: ignore[attr-defined]
    out.print(
        f"[bold]{spec.id}[/]  [dim]{spec.kind} · {spec.severity.value} · reasons {reasons}[/]"  # type: ignore[attr-defined]
    )
    # The manual is wrapped in its source already: wrapped again at a narrower width (80
    # columns where the output is no terminal), every long line would leave an orphan.
    for line in doc.splitlines():
        if re.match(r"^[A-Z][A-Za-z ]+:$", line):
            out.print(f"[bold]{escape(line)}[/]")
        else:
            out.print(escape(line), soft_wrap=True)
    explains = sorted(spec.explains)  # type: ignore[attr-defined]
    if explains:
        out.print(
            f"[bold]In a diagnosis:[/] a finding of this check explains {escape(', '.join(explains))}."
        )
    if spec.symptom:  # type: ignore[attr-defined]
        out.print(
            "[bold]In a diagnosis:[/] a symptom; alone, it points to these reasons, most likely first:"
        )
        for reason, how in spec.differential:  # type: ignore[attr-defined]
            out.print(f"  reason {reason}: {escape(how)}")
    out.print()


@app.command()
def reasons(
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """The 37 reasons and the checks that cover each (generated from the registry)."""
    import json

    from rich.table import Table

    from nndoctor.reasons import coverage

    rows = coverage()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    out = _console()
    table = Table(title="The 37 reasons and the checks covering them", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("reason")
    table.add_column("checks")
    for row in rows:
        checks = ", ".join(f"{c['check']} ({c['kind'][:3]}.)" for c in row["checks"])
        table.add_row(str(row["reason"]), row["title"], checks or "[red]uncovered[/]")
    out.print(table)
    covered = sum(1 for r in rows if r["checks"])
    out.print(f"{covered} of {len(rows)} reasons covered")


@zoo_app.command("list")
def zoo_list() -> None:
    """The reference subjects: name, family, parameters, what each learns."""
    from rich.table import Table

    from nndoctor.zoo import zoo_entries

    table = Table(title="the zoo", title_justify="left")
    for col in ("name", "family", "parameters", "learns", "script"):
        table.add_column(col)
    for e in zoo_entries():
        subject = e.build(seed=0, device="cpu")
        n = sum(p.numel() for p in subject.model.parameters())
        table.add_row(e.name, e.family, f"{n:,}", e.learns, e.script)
    _console().print(table)


@zoo_app.command("train")
def zoo_train(
    name: Annotated[str, typer.Argument(help="A zoo subject (see `nndoctor zoo list`).")],
    steps: Annotated[
        Optional[int], typer.Option(help="Training steps (default: the subject's).")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train a zoo subject with a progress bar and print its metric."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from nndoctor.zoo import get_zoo

    try:
        entry = get_zoo(name)
    except KeyError as exc:
        raise _fail(str(exc.args[0]), EXIT_USAGE) from exc
    total = steps or entry.default_steps
    out = _console()
    if not out.is_terminal:
        metrics = entry.train(
            steps=steps, device=device, seed=seed, progress=_plain_training_lines(out, name)
        )
    else:
        with Progress(
            TextColumn(f"[bold]{name}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=out,
        ) as bar:
            task = bar.add_task(name, total=total, loss=float("nan"))

            def progress(step: int, total_steps: int, loss: float) -> None:
                bar.update(task, completed=step, total=total_steps, loss=loss)

            metrics = entry.train(steps=steps, device=device, seed=seed, progress=progress)
    for key, value in metrics.items():
        out.print(f"{key:>12}  {value:.4f}" if isinstance(value, float) else f"{key:>12}  {value}")


def _plain_training_lines(out: Console, name: str) -> Callable[[int, int, float], None]:
    """Progress of a training run as plain lines (a pipe, a CI log): about every tenth of
    the run, with the loss and the time so far."""
    import time

    began = time.monotonic()

    def progress(step: int, total_steps: int, loss: float) -> None:
        every = max(1, total_steps // 10)
        if step == 1 or step % every == 0 or step == total_steps:
            out.print(
                f"{escape(name)} step {step}/{total_steps} · loss {loss:.4f} · "
                f"{time.monotonic() - began:.0f}s",
                soft_wrap=True,
            )
            out.file.flush()

    return progress


@zoo_app.command("probe")
def zoo_probe(
    scale: Annotated[
        float, typer.Option(help="Scale every subject's training steps by this factor.")
    ] = 1.0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """The linear-probe table: frozen trunks, a linear classifier at several depths."""
    from nndoctor.zoo.ssl.probe import format_table, linear_probe_table

    out = _console()
    if not out.is_terminal:
        # A pipe or a CI log: a spinner prints nothing there, so say which trunk is being
        # trained or probed, once per label.
        shown: set[str] = set()

        def plain(label: str, step: int, total: int, loss: float) -> None:
            if label not in shown:
                shown.add(label)
                out.print(f"{label}: {total} step(s)", highlight=False)

        rows = linear_probe_table(steps_scale=scale, seed=seed, device=device, progress=plain)
    else:
        with out.status("training trunks and linear probes…") as status:
            rows = linear_probe_table(
                steps_scale=scale,
                seed=seed,
                device=device,
                progress=lambda label, step, total, loss: status.update(
                    f"{label}: step {step}/{total}"
                    + (f" · loss {loss:.4g}" if loss == loss else "")
                ),
            )
    out.print(format_table(rows))


@app.command()
def bench(
    split: Annotated[
        str,
        typer.Option(
            help="Which part of the corpus: dev (tuned on), test (never tuned on) or all."
        ),
    ] = "all",
    select: Annotated[
        Optional[str],
        typer.Option(
            help="Only cases whose name matches (a glob, or a substring; several, comma-separated); a fault also by its base."
        ),
    ] = None,
    kind: Annotated[str, typer.Option(help="Which cases: healthy, faults or all.")] = "all",
    seeds: Annotated[int, typer.Option(help="Seeds per healthy case (0, 1, …).", min=1)] = 3,
    fault_seeds: Annotated[int, typer.Option(help="Seeds per fault.", min=1)] = 1,
    jobs: Annotated[int, typer.Option(help="Cases run in parallel processes.", min=1)] = 1,
    json_path: Annotated[
        Optional[Path],
        typer.Option(
            "--json",
            help="Write every run and the summary (with --list: the corpus) as JSON "
            "here; '-' or no value: to stdout.",
        ),
    ] = None,
    plot_path: Annotated[
        Optional[Path], typer.Option("--plot", help="Draw the fault × reason matrix here (PNG).")
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the faults and healthy cases; run nothing.")
    ] = False,
    examples: Annotated[
        Optional[Path], typer.Option(help="The examples/ folder (default: the source checkout's).")
    ] = None,
) -> None:
    """Measure the doctor: run `nndoctor check` over every healthy case and every fault.

    Per fault: found with an accepted reason, found with another reason, or missed, and
    whether the report's first cause is right; per healthy run: the false alarms. Then
    recall, top-1, exact, false-alarm rate and time per run, for dev and test apart.
    With --list (and --json), print the corpus instead of running it.
    """
    from nndoctor.bench.runner import BenchError, examples_root, plan, run_jobs
    from nndoctor.bench.score import summarise
    from nndoctor.faults import faults, healthy_cases
    from nndoctor.report import bench as bench_report

    if split not in ("dev", "test", "all"):
        raise _fail(f"--split must be dev, test or all, not {split!r}", EXIT_USAGE)
    if kind not in ("healthy", "faults", "all"):
        raise _fail(f"--kind must be healthy, faults or all, not {kind!r}", EXIT_USAGE)
    healthy = healthy_cases(split, select) if kind != "faults" else []
    planted = faults(split, select) if kind != "healthy" else []
    if list_only:
        if json_path is not None:
            _write_text(
                json_path, json.dumps(bench_report.corpus_listing(healthy, planted), indent=2)
            )
            return
        bench_report.print_listing(_console(), healthy, planted)
        return
    if not healthy and not planted:
        raise _fail(f"no case matches --select {select!r} in split {split}", EXIT_USAGE)
    try:
        folder = examples_root(examples)
    except BenchError as exc:
        raise _fail(str(exc), EXIT_USAGE) from exc
    jobs_list = plan(healthy, planted, seeds, fault_seeds)
    settings = {
        "split": split,
        "select": select,
        "kind": kind,
        "seeds": seeds,
        "fault_seeds": fault_seeds,
        "jobs": jobs,
    }
    out = _console()
    if not out.is_terminal:
        # Logs and CI keep the tables readable instead of folding them to 80 columns.
        out = Console(file=sys.stdout, highlight=False, soft_wrap=False, width=160)
    finished: list[Outcome] = []

    def done(outcome: Outcome) -> None:
        advance(outcome)
        finished.append(outcome)
        if json_path is not None and str(json_path) != "-":
            # Written after every run, so an interrupted bench still leaves what it measured.
            _write_text(
                json_path, bench_report.results_json(finished, summarise(finished), settings)
            )

    with _bench_progress(out, len(jobs_list)) as advance:
        outcomes = run_jobs(jobs_list, workers=jobs, examples=folder, on_done=done)
    summaries = summarise(outcomes)
    bench_report.print_outcomes(out, outcomes)
    bench_report.print_summary(out, summaries)
    if json_path is not None:
        _write_text(json_path, bench_report.results_json(outcomes, summaries, settings))
        if str(json_path) != "-":
            out.print(f"[dim]bench results written to {escape(str(json_path))}[/]")
    if plot_path is not None and bench_report.write_plot(plot_path, outcomes):
        out.print(f"[dim]fault × reason matrix drawn in {escape(str(plot_path))}[/]")


def _write_text(path: Path, text: str) -> None:
    if str(path) == "-":
        typer.echo(text)
    else:
        path.write_text(text + "\n", encoding="utf-8")


def _bare_json_flag(argv: list[str]) -> list[str]:
    """`nndoctor bench --list --json`: a `--json` given no value means stdout."""
    if len(argv) < 1 or argv[0] != "bench":
        return argv
    fixed = list(argv)
    for i, arg in enumerate(fixed):
        if arg == "--json" and (i + 1 == len(fixed) or fixed[i + 1].startswith("--")):
            fixed.insert(i + 1, "-")
            break
    return fixed


@contextlib.contextmanager
def _bench_progress(out: Console, total: int) -> Iterator[Callable[[Outcome], None]]:
    """A progress bar on a terminal; one plain line per finished run otherwise."""
    from nndoctor.bench.score import false_alarms, fault_verdict

    def line(o: Outcome) -> str:
        if o.error is not None:
            return f"{o.name} error: {o.error}"
        if o.fault:
            verdict = fault_verdict(o)
            lead = "" if verdict.first is None else f" (first: {verdict.first})"
            return f"{o.name}: {verdict.status}{'' if verdict.top1 else lead}"
        alarms = false_alarms(o)
        return (
            f"{o.name} seed {o.seed}: {'false alarm ' + ', '.join(alarms) if alarms else 'quiet'}"
        )

    tally = {"faults": 0, "found": 0, "healthy": 0, "alarms": 0}

    def so_far(o: Outcome) -> str:
        # What was found so far: faults named with an accepted reason, healthy runs that alarmed.
        if o.fault:
            tally["faults"] += 1
            tally["found"] += o.error is None and fault_verdict(o).status == "found"
        else:
            tally["healthy"] += 1
            tally["alarms"] += o.error is None and bool(false_alarms(o))
        return (
            f"found so far: {tally['found']}/{tally['faults']} fault(s), "
            f"{tally['alarms']}/{tally['healthy']} false alarm(s)"
        )

    if not out.is_terminal:
        done = 0

        def plain(outcome: Outcome) -> None:
            nonlocal done
            done += 1
            out.print(
                f"[{done}/{total}] {escape(line(outcome))} · {so_far(outcome)}", soft_wrap=True
            )
            out.file.flush()

        yield plain
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=out,
    ) as bar:
        task = bar.add_task("", total=total)

        def advance(outcome: Outcome) -> None:
            bar.update(
                task, advance=1, description=escape(f"{so_far(outcome)} · last: {line(outcome)}")
            )

        yield advance


WATCH_EXIT_CODES_HELP = (
    "Exit codes: 0 no error alert; 1 an error alert was raised (with --stop-on error the run "
    "stopped right after it), or the script itself raised after its first step; 2 usage error "
    "(bad option, missing script); 3 the script could not be observed (no model called, no "
    "optimizer step reached); 4 nndoctor itself failed (a report file could not be written)."
)


@app.command(epilog=WATCH_EXIT_CODES_HELP)
def watch(
    script: Annotated[Path, typer.Argument(help="The training script to run, unmodified.")],
    script_args: Annotated[
        Optional[list[str]], typer.Argument(help="Arguments for the script, after `--`.")
    ] = None,
    steps: Annotated[
        Optional[int],
        typer.Option(help="Stop after this many steps [default: run to the end].", min=1),
    ] = None,
    every: Annotated[
        Optional[int],
        typer.Option(
            help="Sample per-layer statistics every K steps (default: adapt to --budget).", min=1
        ),
    ] = None,
    budget: Annotated[
        float, typer.Option(help="Share of the step time watch may cost when k adapts.")
    ] = 0.02,
    log: Annotated[Optional[Path], typer.Option(help="Append alerts here as JSON lines.")] = None,
    stop_on: Annotated[
        str, typer.Option(help="Stop the run at the first alert of this severity: error or never.")
    ] = "never",
    json_path: Annotated[
        Optional[Path], typer.Option("--json", help="Write the watch report as JSON here.")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run/--no-dry-run",
            help="Run inside check's sandbox: the script's writes go to a scratch folder.",
        ),
    ] = False,
    html_path: Annotated[
        Optional[Path],
        typer.Option(
            "--html",
            help="Write the run as one self-contained HTML page (alerts and charts) here.",
        ),
    ] = None,
    plots_dir: Annotated[
        Optional[Path],
        typer.Option("--plots", help="Write one PNG per chart of the run into this folder."),
    ] = None,
) -> None:
    """Run SCRIPT to its end under watch: an always-on sentinel, sampled per-layer statistics,
    alerts as problems appear (stderr, --log). The script's own writes are real unless --dry-run.

    Example: nndoctor watch train.py --log alerts.jsonl -- --epochs 30
    """
    from nndoctor.distributed import launched_rank
    from nndoctor.distributed.watch import reported_by_rank0
    from nndoctor.report.progress import WatchProgress
    from nndoctor.watch.alerts import print_summary
    from nndoctor.watch.script import ScriptError, watch_script

    if stop_on not in ("error", "never"):
        raise _fail(f"--stop-on must be error or never, not {stop_on!r}", EXIT_USAGE)
    if not 0 < budget < 1:
        raise _fail(f"--budget must be a fraction between 0 and 1, not {budget}", EXIT_USAGE)
    if not script.is_file():
        raise _fail(f"no such script: {script}", EXIT_USAGE)
    for option, path in (("--json", json_path), ("--html", html_path)):
        problem = _unwritable(path)
        if problem:
            raise _fail(f"{option} {path}: {problem}", EXIT_USAGE)
    if plots_dir is not None and plots_dir.exists() and not plots_dir.is_dir():
        raise _fail(f"--plots {plots_dir}: not a folder", EXIT_USAGE)
    err = _console(stderr=True)
    # In a distributed job rank 0 alone shows progress and keeps the log (with every rank's
    # alerts).
    other_rank = bool(launched_rank())
    try:
        # Opened here, before any sandbox: the log is nndoctor's own file, never redirected.
        log_file = (
            open(log, "a", encoding="utf-8")  # noqa: SIM115
            if log is not None and not other_rank
            else None
        )
    except OSError as exc:
        raise _fail(f"cannot write the log {log}: {exc.strerror}", EXIT_INTERNAL) from None
    # Live on a terminal only when the script's own output goes there too (it is printed
    # above the live line); plain lines otherwise.
    shown = WatchProgress(err, live=err.is_terminal and sys.stdout.isatty())
    try:
        with shown.shown():
            result = watch_script(
                str(script),
                list(script_args or []),
                steps=steps,
                every=every,
                budget=budget,
                log=log_file,
                stop_on=stop_on,
                dry_run=dry_run,
                console=err,
                progress=None if other_rank else shown,
            )
    except ScriptError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None
    finally:
        if log_file is not None:
            log_file.close()
    if reported_by_rank0():
        raise typer.Exit(EXIT_OK)  # another rank of a distributed job: rank 0 reports
    print_summary(err, result)
    _write_watch_charts(result, err, html_path, plots_dir)
    if json_path is not None:
        try:
            json_path.write_text(json.dumps(result.to_dict(), indent=2))
        except OSError as exc:
            raise _fail(f"cannot write {json_path}: {exc.strerror}", EXIT_INTERNAL) from None
    if not result.observed:
        raise _fail(
            f"the script could not be observed: {result.why_not_observed()}", EXIT_NOT_OBSERVED
        )
    failed = result.report.errors() or result.error is not None
    raise typer.Exit(EXIT_FINDINGS if failed else EXIT_OK)


def _write_watch_charts(
    result: Any, notices: Console, html_path: Path | None, plots_dir: Path | None
) -> None:
    """The HTML page and the PNG charts of a watched script."""
    from nndoctor.report import html

    target = " ".join([result.script, *result.argv])
    facts = [f"model {result.model}" if result.model else "no model was called"]
    facts.append(f"stopped: {result.stop_reason} · {result.seconds:.1f}s")
    if result.error:
        facts.append(f"the script failed: {result.error}")
    try:
        _write_drawn(
            result.report.series,
            notices,
            html_path,
            plots_dir,
            lambda drawn: html.render_watch(result.report, target=target, facts=facts, drawn=drawn),
        )
    except OSError as exc:
        raise _fail(f"cannot write the charts: {exc}", EXIT_INTERNAL) from None


EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process the signal ended


def main() -> None:
    """Console-script entry point; maps usage errors to exit code 2 and nndoctor's own
    failures to a one-line message and exit code 4 (never 1, which means findings).

    A SIGTERM (``timeout``, a CI runner, a job scheduler) stops nndoctor as Ctrl-C does,
    so that what it started is undone on the way out (its replay processes, its temporary
    folders, the bench's checks), and ends it with status 143."""
    terminated: list[int] = []

    def on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        # Once: a second SIGTERM must not interrupt the clean-up the first one started.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        app(args=_bare_json_flag(sys.argv[1:]), standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        if terminated:
            sys.exit(EXIT_TERMINATED)
        sys.exit(code if isinstance(code, int) else (0 if code is None else EXIT_USAGE))
    except KeyboardInterrupt:
        sys.exit(EXIT_TERMINATED if terminated else 130)
    except Exception as exc:  # noqa: BLE001 - any internal failure gets the documented exit code
        first = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(f"nndoctor: internal error: {type(exc).__name__}: {first}\n")
        sys.exit(EXIT_INTERNAL)
