"""Markdown: the report for a CI job summary (``$GITHUB_STEP_SUMMARY``) or a pull-request comment.

The same order as the console report: what was run, a table of findings, one
section per finding (message, where, evidence, fix), then the checks that did not
pass, folded. GitHub-flavoured Markdown; it only formats.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from nndoctor.report.github import relative_path
from nndoctor.report.model import Finding, Report, Status


def _cell(text: str) -> str:
    """Text safe inside a table cell: no pipes, no line breaks, no HTML."""
    return _inline(text).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _where(f: Finding, root: str | Path | None) -> str:
    file = relative_path(f.where.file, root) if f.where.file else None
    return replace(f.where, file=file).describe()


def render(report: Report, *, fail_on: str = "error", root: str | Path | None = None) -> str:
    run = report.run
    n = report.counts()
    target = " ".join([run.target, *run.argv]) if run.argv else run.target
    shown = relative_path(target, root) if not run.argv else target
    out = [f"## nndoctor: `{shown}`", ""]
    if fail_on == "never":
        verdict = "gate off (`--fail-on never`)"
    else:
        verdict = (
            f"gate `--fail-on {fail_on}`: **{'failed' if report.fails(fail_on) else 'passed'}**"
        )
    if not run.observed:
        verdict = "**the script could not be observed**"
    out.append(
        f"**{n['errors']} error(s)**, {n['warnings']} warning(s), {n['infos']} note(s) · "
        f"checks: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, "
        f"{n['crashed']} crashed · {verdict}"
    )
    out.append("")
    subj = report.subject
    facts = [
        f"observed {run.steps_observed} of {run.step_budget} steps, stopped: {run.stop_reason}"
    ]
    if subj.get("model"):
        facts.insert(
            0,
            f"model `{subj.get('model')}` ({subj.get('parameters', 0):,} parameters, {subj.get('device')})",
        )
    if subj.get("task"):
        facts.append(f"task {subj.get('task')}, loss `{subj.get('loss')}`")
    if subj.get("optimizer"):
        facts.append(f"optimizer `{subj.get('optimizer')}`")
    out += [f"- {_inline(x)}" for x in facts]
    out += [f"- note: {_inline(x)}" for x in run.notes]
    out.append("")
    if not run.observed:
        out.append(f"> **{_inline(run.error or 'the script could not be observed')}**")
        if run.likely_cause:
            reasons = ", ".join(str(r) for r in run.likely_reasons)
            out.append(f"> likely: {_inline(run.likely_cause)} (reasons {reasons})")
        out.append("")
        if run.traceback:
            out += ["```", run.traceback.rstrip(), "```", ""]
    out += _diagnosis(report.diagnosis)
    if report.findings:
        out += [
            "| severity | finding | check | reasons | role | where |",
            "|---|---|---|---|---|---|",
        ]
        for f in report.findings:
            out.append(
                f"| {f.severity.value} | {_cell(f.title)} | `{f.check}` | "
                f"{', '.join(map(str, f.reasons))} | {f.role} | {_cell(_where(f, root))} |"
            )
        out.append("")
        for f in report.findings:
            out += _section(f, root)
    not_passed = [
        c
        for c in report.checks
        if c.status != Status.PASSED and not c.detail.startswith(("not selected", "ignored"))
    ]
    if not_passed:
        out += [
            f"<details><summary>Checks that did not pass ({len(not_passed)})</summary>",
            "",
            "| check | reasons | status | detail |",
            "|---|---|---|---|",
        ]
        for c in not_passed:
            out.append(
                f"| `{c.check}` | {', '.join(map(str, c.reasons))} | {c.status.value} | {_cell(c.detail)} |"
            )
        out += ["", "</details>", ""]
    return "\n".join(out).rstrip() + "\n"


def _diagnosis(diagnosis: Any) -> list[str]:
    """The diagnosis first: the causes with what each explains, or where to look next."""
    if diagnosis is None or diagnosis.empty:
        return []
    out = ["### Diagnosis", ""]
    for i, cause in enumerate(diagnosis.causes, 1):
        lead = cause.lead
        line = (
            f"{i}. **{_inline(lead.title)}** (`{lead.check}`, reason "
            f"{', '.join(map(str, lead.reasons))}, confidence {cause.confidence})"
        )
        if cause.explains:
            line += " — explains " + ", ".join(
                f"`{c}`" for c in dict.fromkeys(f.check for f in cause.explains)
            )
        out.append(line)
    if diagnosis.independent:
        label = "Symptoms, no cause found" if not diagnosis.causes else "Also found"
        out.append(
            f"\n{label}: "
            + ", ".join(f"`{c}`" for c in dict.fromkeys(f.check for f in diagnosis.independent))
        )
    if diagnosis.differential:
        out += ["", "Look next at, most likely first:", ""]
        out += [
            f"- reason {lead.reason}: {_inline(lead.text)}" for lead in diagnosis.differential[:5]
        ]
    return out + [""]


def _section(f: Finding, root: str | Path | None) -> list[str]:
    reasons = ", ".join(map(str, f.reasons))
    lines = [
        f"### {f.severity.value.upper()}: {_inline(f.title)}",
        "",
        f"`{f.check}` · reasons {reasons}"
        + (f" · {_inline(_where(f, root))}" if _where(f, root) else ""),
        "",
        _inline(f.message),
        "",
        f"**Fix:** {_inline(f.fix)}",
        "",
    ]
    if f.evidence:
        lines.append("<details><summary>Evidence</summary>")
        lines.append("")
        for k, v in f.to_dict()["evidence"].items():
            lines.append(f"- `{k}`: {_inline(str(v))}")
        lines += ["", "</details>", ""]
    lines.append(f"`nndoctor explain {f.check}` prints this check's manual.")
    lines.append("")
    return lines


def write(
    report: Report, path: str | Path, *, fail_on: str = "error", root: str | Path | None = None
) -> None:
    Path(path).write_text(render(report, fail_on=fail_on, root=root), encoding="utf-8")
