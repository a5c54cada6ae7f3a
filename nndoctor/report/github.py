"""GitHub Actions workflow annotations: one ``::error``/``::warning``/``::notice`` line per finding.

Printed to stdout in a workflow step, each line becomes an annotation on the
run's summary and, when it names a file and line of the pull request, on the
diff. The format is GitHub's workflow-command syntax::

    ::error file=train.py,line=41,title=Softmax applied before CrossEntropyLoss (loss-input-mismatch)::The input ...

Values are escaped as the runner expects (``%``, CR and LF everywhere; ``:`` and
``,`` in properties too). It only formats.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from nndoctor.report.model import Finding, Report, Severity, Status

LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def relative_path(file: str, root: str | Path | None = None) -> str:
    """``file`` relative to ``root`` (default: the current directory) when inside it, with ``/``."""
    root_path = Path(root or os.getcwd()).resolve()
    path = Path(file)
    absolute = path if path.is_absolute() else (Path(os.getcwd()) / path)
    try:
        return absolute.resolve().relative_to(root_path).as_posix()
    except ValueError:
        return path.as_posix()


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    level: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    title: str | None = None,
) -> str:
    """One workflow command line."""
    props = []
    if file:
        props.append(f"file={escape_property(file)}")
        if line:
            props.append(f"line={int(line)}")
    if title:
        props.append(f"title={escape_property(title)}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{head}::{escape_data(message)}"


def lines(
    report: Report, *, default_file: str | None = None, root: str | Path | None = None
) -> list[str]:
    """The annotations for ``report``: the run when it could not be observed, findings, crashed checks.

    ``default_file`` (the checked script) is named for findings that know no file of their own.
    """
    out: list[str] = []
    script = relative_path(default_file, root) if default_file else None
    run = report.run
    if not run.observed:
        message = run.error or "the script could not be observed"
        if run.likely_cause:
            reasons = ", ".join(str(r) for r in run.likely_reasons)
            message += f"\nlikely: {run.likely_cause}" + (
                f" (reasons {reasons})" if reasons else ""
            )
        out.append(
            annotation(
                "error", message, file=script, title="nndoctor: the script could not be observed"
            )
        )
    for f in report.findings:
        out.append(_finding(f, script, root))
    for c in report.checks:
        if c.status == Status.CRASHED:
            out.append(
                annotation(
                    "warning",
                    c.detail or "the check raised",
                    file=script,
                    title=f"nndoctor check crashed: {c.check}",
                )
            )
    return out


def _finding(f: Finding, script: str | None, root: str | Path | None) -> str:
    file = relative_path(f.where.file, root) if f.where.file else script
    line = f.where.line if f.where.file else None
    reasons = ", ".join(str(r) for r in f.reasons)
    body = [f.message]
    where = replace(f.where, file=file if f.where.file else None).describe()
    if where:
        body.append(f"where: {where}")
    body.append(f"fix: {f.fix}")
    body.append(f"reasons {reasons} · nndoctor explain {f.check}")
    return annotation(
        LEVEL[f.severity], "\n".join(body), file=file, line=line, title=f"{f.title} ({f.check})"
    )


def render(
    report: Report, *, default_file: str | None = None, root: str | Path | None = None
) -> str:
    return "".join(line + "\n" for line in lines(report, default_file=default_file, root=root))
