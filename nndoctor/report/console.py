"""The console renderer: a rich report for people. It only formats."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from nndoctor.report.model import Finding, Report, Severity, Status

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_STATUS_STYLE = {
    Status.PASSED: "green",
    Status.FAILED: "red",
    Status.SKIPPED: "dim",
    Status.CRASHED: "magenta",
}


def render(report: Report, console: Console, *, verbose: bool = False) -> None:
    """Print ``report``: what was run, one block per finding, the check table, a count line."""
    console.print(_header(report))
    if not report.run.observed:
        console.print(_not_observed(report))
    if report.diagnosis is not None and not report.diagnosis.empty:
        console.print(_diagnosis_panel(report.diagnosis))
    for finding in report.findings:
        console.print(_finding_block(finding))
    if verbose or any(c.status != Status.PASSED for c in report.checks):
        console.print(_checks_table(report, verbose))
    console.print(_count_line(report))


def _header(report: Report) -> Panel:
    run, subj = report.run, report.subject
    lines = Text()
    target = " ".join([run.target, *run.argv]) if run.argv else run.target
    lines.append("checked  ", style="bold").append(target + "\n")
    if subj:
        lines.append("model    ", style="bold").append(
            f"{subj.get('model')} · {subj.get('parameters', 0):,} parameters · {subj.get('device')}\n"
        )
        lines.append("task     ", style="bold").append(
            f"{subj.get('task')} · loss {subj.get('loss')}\n"
        )
        if subj.get("optimizer"):
            lines.append("optimizer ", style="bold").append(f"{subj.get('optimizer')}\n")
    lines.append("observed ", style="bold").append(
        f"{run.steps_observed} of {run.step_budget} steps · stopped: {run.stop_reason} · {run.seconds:.1f}s"
    )
    for note in run.notes:
        lines.append("\nnote     ", style="bold").append(note)
    return Panel(lines, title="nndoctor", title_align="left", border_style="blue")


def _not_observed(report: Report) -> Panel:
    run = report.run
    body = Text()
    body.append((run.error or "the script could not be observed") + "\n", style="bold red")
    if run.likely_cause:
        reasons = ", ".join(str(r) for r in run.likely_reasons)
        body.append(
            f"likely: {run.likely_cause}" + (f" (reasons {reasons})" if reasons else "") + "\n"
        )
    if run.output_tail:
        body.append("\nthe script's last output:\n", style="bold").append(
            run.output_tail.rstrip() + "\n"
        )
    if run.traceback:
        body.append("\n" + run.traceback.rstrip(), style="dim")
    return Panel(
        body, title="the script could not be observed", border_style="red", title_align="left"
    )


def _diagnosis_panel(diagnosis: Any) -> Panel:
    """The causes, each with what it explains; or, with symptoms only, where to look next."""
    body = Text()
    for i, cause in enumerate(diagnosis.causes, 1):
        lead = cause.lead
        reasons = ", ".join(str(r) for r in lead.reasons)
        body.append(f"{i}. ", style="bold").append(lead.title, style=_STYLE[lead.severity])
        body.append(
            f"  {lead.check} · reason {reasons} · confidence {cause.confidence}\n", style="dim"
        )
        if cause.explains:
            explained = ", ".join(dict.fromkeys(f.check for f in cause.explains))
            body.append("   explains ", style="bold").append(explained + "\n")
    if diagnosis.independent:
        label = "symptoms, no cause found: " if not diagnosis.causes else "also found: "
        body.append(label, style="bold").append(
            ", ".join(dict.fromkeys(f.check for f in diagnosis.independent)) + "\n"
        )
    if diagnosis.differential:
        body.append("look next at, most likely first:\n", style="bold")
        for lead in diagnosis.differential[:5]:
            body.append(f"   reason {lead.reason}: ", style="bold").append(lead.text + "\n")
    body.rstrip()
    title = "diagnosis" if diagnosis.causes else "diagnosis: symptoms without a cause"
    return Panel(body, title=title, title_align="left", border_style="bold")


def _finding_block(f: Finding) -> Panel:
    style = _STYLE[f.severity]
    body = Text()
    body.append(f.message + "\n")
    where = f.where.describe()
    if where:
        body.append("where    ", style="bold").append(where + "\n")
    if f.evidence:
        body.append("evidence ", style="bold").append(_evidence_line(f.evidence) + "\n")
    body.append("fix      ", style="bold green").append(f.fix)
    reasons = ", ".join(str(r) for r in f.reasons)
    role = f" · {f.role}" if f.role != "independent" else ""
    # Finding texts are data, not markup: a module named "layers[0]" or a message quoting
    # "[/]" must print as it is.
    title = f"[{style}]{f.severity.value.upper()}[/] {escape(f.title)}  [dim]{f.check} · reasons {reasons}{role}[/]"
    return Panel(body, title=title, title_align="left", border_style=style)


def _evidence_line(evidence: dict[str, Any]) -> str:
    parts = []
    for k, v in list(evidence.items())[:10]:
        parts.append(f"{k}={_fmt(v)}")
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        shown = ", ".join(_fmt(x) for x in list(v)[:6])
        return f"[{shown}{', …' if len(v) > 6 else ''}]"
    if isinstance(v, dict):
        return json.dumps({k: v[k] for k in list(v)[:4]}, default=str)
    return str(v)


def _checks_table(report: Report, verbose: bool) -> Table:
    title = "checks" if verbose else "checks that did not pass (all of them: --verbose)"
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("check")
    table.add_column("reasons")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        # By default the table lists what needs attention; --verbose lists every check.
        if not verbose and (
            c.status == Status.PASSED
            or (c.status == Status.SKIPPED and c.detail.startswith(("not selected", "ignored")))
        ):
            continue
        table.add_row(
            c.check,
            ",".join(str(r) for r in c.reasons),
            Text(c.status.value, style=_STATUS_STYLE[c.status]),
            Text(c.detail),  # text, not markup: details quote code and error messages
        )
    return table


def _count_line(report: Report) -> Group:
    n = report.counts()
    line = Text()
    line.append(f"{n['errors']} error(s)", style="bold red" if n["errors"] else "green")
    line.append(", ")
    line.append(f"{n['warnings']} warning(s)", style="yellow" if n["warnings"] else "green")
    line.append(f", {n['infos']} note(s) · checks: {n['passed']} passed, {n['failed']} failed, ")
    line.append(f"{n['skipped']} skipped, {n['crashed']} crashed")
    return Group(line)
