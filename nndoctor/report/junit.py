"""JUnit XML: one test case per check, for CI systems that show test reports.

The layout is the common JUnit dialect that Jenkins, GitLab, Azure Pipelines and
the GitHub test-report actions read::

    <testsuites name="nndoctor" tests= failures= errors= skipped= time=>
      <testsuite name="nndoctor check train.py" tests= failures= errors= skipped= time=>
        <properties><property name="fail_on" value="error"/> ...</properties>
        <testcase classname="nndoctor.train" name="loss-input-mismatch" time=>
          <failure type="error" message="Softmax applied before CrossEntropyLoss">...</failure>
        </testcase>

A check *fails* when one of its findings reaches the gate (``--fail-on``); findings
below the gate are listed in the test case's ``system-out``. A skipped check is
``<skipped>``, a crashed one ``<error>``. When the script could not be observed
there is one more test case, ``observe``, with an ``<error>`` and the traceback.
It only formats.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePath

from nndoctor.report.model import CheckResult, Finding, Report, Severity, Status


def _reaches(f: Finding, fail_on: str) -> bool:
    return fail_on != "never" and f.severity.rank >= Severity(fail_on).rank


def _finding_text(f: Finding) -> str:
    lines = [
        f"{f.severity.value.upper()} {f.title}  [{f.check} · reasons {', '.join(map(str, f.reasons))}]"
    ]
    lines.append(f.message)
    where = f.where.describe()
    if where:
        lines.append(f"where    {where}")
    if f.evidence:
        lines.append("evidence " + ", ".join(f"{k}={v}" for k, v in f.evidence.items()))
    lines.append(f"fix      {f.fix}")
    return "\n".join(lines)


def build(report: Report, *, fail_on: str = "error") -> ET.Element:
    """The ``<testsuites>`` element for ``report``."""
    run = report.run
    classname = "nndoctor." + (PurePath(run.target).stem or "subject")
    suite = ET.Element("testsuite", name=f"nndoctor check {run.target}")
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("fail_on", fail_on),
        ("steps_observed", run.steps_observed),
        ("step_budget", run.step_budget),
        ("stop_reason", run.stop_reason),
        ("nndoctor_version", report.versions.get("nndoctor", "")),
        ("torch_version", report.versions.get("torch", "")),
    ):
        ET.SubElement(props, "property", name=name, value=str(value))

    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not run.observed:
        case = ET.SubElement(suite, "testcase", classname=classname, name="observe", time="0")
        error = ET.SubElement(
            case, "error", type="not-observed", message=run.error or "not observed"
        )
        text = [run.error or "the script could not be observed"]
        if run.likely_cause:
            text.append(
                f"likely: {run.likely_cause} (reasons {', '.join(map(str, run.likely_reasons))})"
            )
        if run.traceback:
            text.append(run.traceback)
        error.text = "\n".join(text)
        counts["tests"] += 1
        counts["errors"] += 1
    by_check: dict[str, list[Finding]] = {}
    for f in report.findings:
        by_check.setdefault(f.check, []).append(f)
    for result in report.checks:
        kind = _testcase(suite, classname, result, by_check.get(result.check, []), fail_on)
        counts["tests"] += 1
        if kind:
            counts[kind] += 1
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{run.seconds:.3f}")
    root = ET.Element("testsuites", name="nndoctor")
    for key, value in counts.items():
        root.set(key, str(value))
    root.set("time", f"{run.seconds:.3f}")
    root.append(suite)
    return root


def _testcase(
    suite: ET.Element, classname: str, result: CheckResult, findings: list[Finding], fail_on: str
) -> str | None:
    """Add the test case of one check; returns 'failures', 'errors', 'skipped' or None."""
    case = ET.SubElement(
        suite, "testcase", classname=classname, name=result.check, time=f"{result.seconds:.3f}"
    )
    failing = [f for f in findings if _reaches(f, fail_on)]
    quiet = [f for f in findings if not _reaches(f, fail_on)]
    kind = None
    if result.status == Status.CRASHED:
        error = ET.SubElement(
            case, "error", type="crashed", message=result.detail or "the check raised"
        )
        error.text = result.detail
        kind = "errors"
    elif failing:
        worst = max(failing, key=lambda f: f.severity.rank)
        message = (
            worst.title if len(failing) == 1 else f"{worst.title} (and {len(failing) - 1} more)"
        )
        failure = ET.SubElement(case, "failure", type=worst.severity.value, message=message)
        failure.text = "\n\n".join(_finding_text(f) for f in failing)
        kind = "failures"
    elif result.status == Status.SKIPPED:
        ET.SubElement(case, "skipped", message=result.detail)
        kind = "skipped"
    out = [_finding_text(f) for f in quiet]
    if result.detail and result.status != Status.SKIPPED:
        out.insert(0, result.detail)
    if out:
        ET.SubElement(case, "system-out").text = "\n\n".join(out)
    return kind


# Terminal colour and cursor codes (a script's traceback may carry them), then every
# character XML 1.0 forbids: C0 controls other than tab, newline and carriage return.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(text: str) -> str:
    """``text`` without ANSI escape sequences and with characters XML cannot hold shown as
    ``\\xNN``: a parser must be able to read every report."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", _ANSI.sub("", text))


def _sanitise(root: ET.Element) -> None:
    for element in root.iter():
        if element.text:
            element.text = xml_safe(element.text)
        if element.tail:
            element.tail = xml_safe(element.tail)
        for key, value in element.attrib.items():
            element.attrib[key] = xml_safe(value)


def dumps(report: Report, *, fail_on: str = "error") -> str:
    root = build(report, fail_on=fail_on)
    _sanitise(root)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(report: Report, path: str | Path, *, fail_on: str = "error") -> None:
    Path(path).write_text(dumps(report, fail_on=fail_on), encoding="utf-8")
