"""SARIF 2.1.0: findings as static-analysis results, for GitHub code scanning and other viewers.

One run whose tool driver is ``nndoctor`` with one *rule* per check (id, title,
manual, default level, the reasons as tags) and one *result* per finding (rule id,
level, message, location). Levels map error → ``error``, warning → ``warning``,
info → ``note``. A location is the finding's file and line when known, else the
checked script; GitHub requires ``region.startLine``, so a finding without a line
points at line 1 of its file. Relative paths are relative to ``%SRCROOT%``, the
folder nndoctor ran in (the repository root in CI). The module a finding is about is a logical location.
It only formats: rule texts come from the caller (the CLI reads them from the
check registry), so this module does not import the checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nndoctor.report.github import relative_path
from nndoctor.report.model import Finding, Report, Severity, Status

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


@dataclass(frozen=True)
class Rule:
    """What SARIF says about one check."""

    id: str
    title: str
    reasons: tuple[int, ...] = ()
    severity: Severity = Severity.WARNING
    kind: str = "observation"
    manual: str = ""


def build(
    report: Report,
    *,
    rules: Iterable[Rule] = (),
    default_file: str | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """The SARIF log for ``report`` as a JSON-ready dict."""
    known = {r.id: r for r in rules}
    # Every check that ran or produced a finding is a rule; those without a Rule get a plain one.
    ids: list[str] = []
    for c in report.checks:
        if not c.check.startswith("probe:") and c.check not in ids:
            ids.append(c.check)
    for f in report.findings:
        if f.check not in ids:
            ids.append(f.check)
    table = [known.get(i) or _plain_rule(i, report) for i in ids]
    index = {r.id: n for n, r in enumerate(table)}
    script = relative_path(default_file, root) if default_file else None
    results = [_result(f, index[f.check], script, root) for f in report.findings]
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "nndoctor",
                "version": report.versions.get("nndoctor", ""),
                "rules": [_rule(r) for r in table],
            }
        },
        "results": results,
        "invocations": [_invocation(report)],
    }
    return {"version": SARIF_VERSION, "$schema": SARIF_SCHEMA, "runs": [run]}


def _plain_rule(check: str, report: Report) -> Rule:
    result = report.result(check)
    reasons = tuple(result.reasons) if result is not None else ()
    kind = result.kind if result is not None else "observation"
    return Rule(id=check, title=check, reasons=reasons, kind=kind)


def _rule(r: Rule) -> dict[str, Any]:
    reasons = ", ".join(str(x) for x in r.reasons)
    rule: dict[str, Any] = {
        "id": r.id,
        "name": "".join(part.capitalize() for part in r.id.split("-")),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": f"{r.title} (reasons {reasons})" if reasons else r.title},
        "defaultConfiguration": {"level": LEVEL[r.severity]},
        "properties": {
            "tags": [r.kind, *(f"reason-{x}" for x in r.reasons)],
            "reasons": list(r.reasons),
        },
    }
    if r.manual:
        rule["help"] = {"text": r.manual}
    return rule


def _result(
    f: Finding, rule_index: int, script: str | None, root: str | Path | None
) -> dict[str, Any]:
    file = relative_path(f.where.file, root) if f.where.file else script
    text = f"{f.title}. {f.message}"
    if f.where.step is not None:
        text += f" (step {f.where.step})"
    text += f" Fix: {f.fix}"
    result: dict[str, Any] = {
        "ruleId": f.check,
        "ruleIndex": rule_index,
        "level": LEVEL[f.severity],
        "message": {"text": text},
        "locations": [],
        "properties": {
            "title": f.title,
            "reasons": list(f.reasons),
            "fix": f.fix,
            "where": f.where.to_dict(),
            "evidence": f.to_dict()["evidence"],
        },
    }
    location: dict[str, Any] = {}
    if file is not None:
        artifact: dict[str, Any] = {"uri": file}
        if not Path(file).is_absolute():
            artifact["uriBaseId"] = "%SRCROOT%"
        line = f.where.line if f.where.file and f.where.line else 1
        location["physicalLocation"] = {
            "artifactLocation": artifact,
            "region": {"startLine": int(line)},
        }
    if f.where.module is not None:
        location["logicalLocations"] = [
            {"fullyQualifiedName": f.where.module or "<root>", "kind": "module"}
        ]
    if location:
        result["locations"].append(location)
    return result


def _invocation(report: Report) -> dict[str, Any]:
    run = report.run
    notes: list[dict[str, Any]] = []
    if not run.observed:
        notes.append(
            {"level": "error", "message": {"text": run.error or "the script could not be observed"}}
        )
    for c in report.checks:
        if c.status == Status.CRASHED:
            notes.append(
                {"level": "warning", "message": {"text": f"check {c.check} crashed: {c.detail}"}}
            )
    invocation: dict[str, Any] = {"executionSuccessful": run.observed}
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def dumps(report: Report, **kwargs: Any) -> str:
    return json.dumps(build(report, **kwargs), indent=2, ensure_ascii=False)


def write(report: Report, path: str | Path, **kwargs: Any) -> None:
    Path(path).write_text(dumps(report, **kwargs) + "\n", encoding="utf-8")
