"""The CI report formats, each produced and parsed back.

JUnit XML by ``xml.etree`` against the elements and attributes its schema requires,
SARIF as JSON against the 2.1.0 fields GitHub code scanning reads, GitHub workflow
annotations by their line format (with the runner's escaping), Markdown by its
table and sections. Hand-built reports pin the edge cases (a script that could not
be observed, a crashed check, text that needs escaping, the gate); one real
``nndoctor check`` run writes every format at once.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nndoctor.cli import EXIT_FINDINGS, app
from nndoctor.report import github, junit, markdown, sarif
from nndoctor.report.model import CheckResult, Finding, Report, RunInfo, Severity, Status, Where

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SOFTMAX = EXAMPLES / "softmax_before_ce.py"

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

# ::error file=F,line=L,title=T::message   (properties optional, in any order)
ANNOTATION = re.compile(r"^::(error|warning|notice)(?: ((?:\w+=[^,:]*)(?:,\w+=[^,:]*)*))?::(.*)$")


def parse_annotation(line: str) -> tuple[str, dict[str, str], str]:
    match = ANNOTATION.match(line)
    assert match, f"not a workflow annotation: {line!r}"
    level, props, message = match.groups()
    fields = dict(p.split("=", 1) for p in props.split(",")) if props else {}
    return level, fields, message


def unescape(text: str) -> str:
    return (
        text.replace("%0A", "\n")
        .replace("%0D", "\r")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def sample_report(tmp_path: Path) -> Report:
    """An observed run: an error with file and line, a warning with a module, a note, a crash."""
    script = tmp_path / "train.py"
    script.write_text("# a training script\n", encoding="utf-8")
    findings = [
        Finding(
            check="loss-input-mismatch",
            reasons=[19],
            severity=Severity.ERROR,
            title="Softmax applied before CrossEntropyLoss",
            message="Rows sum to 1: 100% probabilities, a, b: c\nsecond line",
            fix="Remove the softmax.",
            where=Where(step=0, file=str(script), line=41),
            evidence={"max_rowsum_minus_1": 1.2e-07},
        ),
        Finding(
            check="dead-relus",
            reasons=[35, 28],
            severity=Severity.WARNING,
            title="ReLU encoder.1 is dead",
            message="zero for 97% of inputs",
            fix="Use LeakyReLU or lower the learning rate.",
            where=Where(module="encoder.1", step=3),
        ),
        Finding(
            check="give-it-time",
            reasons=[31],
            severity=Severity.INFO,
            title="The loss is still falling",
            message="the loss fell at 90% of late steps",
            fix="Train longer.",
        ),
    ]
    checks = [
        CheckResult(
            "loss-input-mismatch", [19], "observation", Status.FAILED, "1 finding(s)", 0.01
        ),
        CheckResult("dead-relus", [35, 28], "observation", Status.FAILED, "1 finding(s)", 0.02),
        CheckResult("give-it-time", [31], "observation", Status.PASSED, "still falling", 0.0),
        CheckResult("input-constant", [1, 3], "observation", Status.PASSED, "20 batches", 0.0),
        CheckResult("batch-dependence", [25], "experiment", Status.SKIPPED, "no batch axis", 0.0),
        CheckResult("label-noise", [6], "experiment", Status.CRASHED, "ValueError: boom", 0.1),
    ]
    return Report(
        run=RunInfo(
            target=str(script),
            steps_observed=20,
            step_budget=20,
            stop_reason="step budget",
            seconds=2.5,
        ),
        subject={
            "model": "Net",
            "parameters": 1234,
            "device": "cpu",
            "task": "classification (4 classes)",
        },
        checks=checks,
        findings=findings,
        versions={"nndoctor": "0.1.0", "torch": "2.13.0"},
    )


def not_observed_report() -> Report:
    return Report(
        run=RunInfo(
            target="train.py",
            stop_reason="script raised",
            observed=False,
            error="the script raised ValueError: shapes (32, 10) and (48,) do not match",
            traceback='Traceback (most recent call last):\n  File "train.py", line 9\nValueError: shapes',
            likely_reasons=[19, 25],
            likely_cause="a shape error inside a loss call",
        ),
        versions={"nndoctor": "0.1.0", "torch": "2.13.0"},
    )


# -- JUnit XML -------------------------------------------------------------------------


def test_junit_has_one_testcase_per_check_and_fails_those_at_the_gate(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    path = tmp_path / "junit.xml"
    junit.write(report, path, fail_on="error")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    for element in (root, suite):
        for attribute in ("tests", "failures", "errors", "skipped", "time"):
            assert attribute in element.attrib, (element.tag, attribute)
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.check for c in report.checks]
    assert all(c.get("classname") == "nndoctor.train" and c.get("time") is not None for c in cases)
    by_name = {c.get("name"): c for c in cases}
    # The gate is error: the warning is reported, not failed.
    failure = by_name["loss-input-mismatch"].find("failure")
    assert (
        failure is not None and failure.get("message") == "Softmax applied before CrossEntropyLoss"
    )
    assert failure.get("type") == "error"
    assert "Remove the softmax." in failure.text and "reasons 19" in failure.text
    assert by_name["dead-relus"].find("failure") is None
    assert "ReLU encoder.1 is dead" in by_name["dead-relus"].find("system-out").text
    assert by_name["batch-dependence"].find("skipped").get("message") == "no batch axis"
    assert by_name["label-noise"].find("error").get("message") == "ValueError: boom"
    assert by_name["input-constant"].find("failure") is None
    counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors", "skipped")}
    assert counts == {"tests": 6, "failures": 1, "errors": 1, "skipped": 1}
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["fail_on"] == "error" and props["torch_version"] == "2.13.0"


@pytest.mark.parametrize(("fail_on", "failures"), [("warning", 2), ("never", 0)])
def test_junit_follows_the_gate(tmp_path: Path, fail_on: str, failures: int) -> None:
    root = ET.fromstring(junit.dumps(sample_report(tmp_path), fail_on=fail_on))
    assert int(root.get("failures")) == failures
    assert len(root.findall(".//failure")) == failures


def test_junit_for_a_script_that_could_not_be_observed_has_an_error_case() -> None:
    root = ET.fromstring(junit.dumps(not_observed_report()))
    case = root.find("testsuite/testcase[@name='observe']")
    assert case is not None
    error = case.find("error")
    assert "ValueError" in error.get("message") and "Traceback" in error.text
    assert "reasons 19, 25" in error.text
    assert root.get("errors") == "1" and root.get("tests") == "1"


# -- SARIF -----------------------------------------------------------------------------


def test_sarif_has_the_required_fields_rules_and_results(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    path = tmp_path / "report.sarif"
    rules = [
        sarif.Rule(
            "loss-input-mismatch", "The loss receives the wrong input", (19,), Severity.ERROR
        )
    ]
    sarif.write(report, path, rules=rules, default_file=report.run.target, root=tmp_path)
    log = json.loads(path.read_text())
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "nndoctor" and driver["version"] == "0.1.0"
    rule_ids = [r["id"] for r in driver["rules"]]
    assert rule_ids == [c.check for c in report.checks]  # every check is a rule
    first = driver["rules"][0]
    assert first["shortDescription"]["text"] == "The loss receives the wrong input"
    assert first["defaultConfiguration"]["level"] == "error"
    assert "reason-19" in first["properties"]["tags"]
    results = run["results"]
    assert [r["ruleId"] for r in results] == [f.check for f in report.findings]
    assert [r["level"] for r in results] == ["error", "warning", "note"]
    for result in results:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "train.py"  # relative to the root
        assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        assert physical["region"]["startLine"] >= 1
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 41
    assert "Remove the softmax." in results[0]["message"]["text"]
    assert results[1]["locations"][0]["logicalLocations"] == [
        {"fullyQualifiedName": "encoder.1", "kind": "module"}
    ]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is True
    assert "label-noise" in invocation["toolExecutionNotifications"][0]["message"]["text"]


def test_sarif_for_a_script_that_could_not_be_observed() -> None:
    log = json.loads(sarif.dumps(not_observed_report()))
    run = log["runs"][0]
    assert run["results"] == []
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "ValueError" in invocation["toolExecutionNotifications"][0]["message"]["text"]


# -- GitHub annotations -------------------------------------------------------------------


def test_github_annotations_one_line_per_finding_with_file_and_line(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    lines = github.lines(report, default_file=report.run.target, root=tmp_path)
    assert len(lines) == 3 + 1  # three findings, one crashed check
    parsed = [parse_annotation(line) for line in lines]
    (lvl0, props0, msg0), (lvl1, props1, _), (lvl2, props2, _), (lvl3, props3, _) = parsed
    assert (lvl0, lvl1, lvl2, lvl3) == ("error", "warning", "notice", "warning")
    assert props0["file"] == "train.py" and props0["line"] == "41"
    assert (
        unescape(props0["title"]) == "Softmax applied before CrossEntropyLoss (loss-input-mismatch)"
    )
    # The message keeps its %, newlines, commas and colons through the runner's escaping.
    text = unescape(msg0)
    assert text.startswith("Rows sum to 1: 100% probabilities, a, b: c\nsecond line\n")
    assert "fix: Remove the softmax." in text and "reasons 19" in text
    assert "\n" not in lines[0] and "%0A" in msg0 and "%25" in msg0
    # A finding without a file is put on the checked script, without a line.
    assert props1["file"] == "train.py" and "line" not in props1
    assert "where: module encoder.1, step 3" in unescape(parsed[1][2])
    assert "label-noise" in unescape(props3["title"])


def test_github_annotation_for_a_script_that_could_not_be_observed() -> None:
    (line,) = github.lines(not_observed_report(), default_file="train.py")
    level, props, message = parse_annotation(line)
    assert level == "error" and props["file"] == "train.py"
    assert "ValueError" in unescape(message) and "reasons 19, 25" in unescape(message)


# -- Markdown ----------------------------------------------------------------------------


def test_markdown_has_the_summary_the_findings_table_and_a_section_each(tmp_path: Path) -> None:
    report = sample_report(tmp_path)
    text = markdown.render(report, fail_on="warning", root=tmp_path)
    lines = text.splitlines()
    assert lines[0] == "## nndoctor: `train.py`"
    assert "gate `--fail-on warning`: **failed**" in text
    header = lines.index("| severity | finding | check | reasons | role | where |")
    rows = lines[header + 2 : header + 2 + len(report.findings)]
    assert [r.split(" | ")[2] for r in rows] == [f"`{f.check}`" for f in report.findings]
    assert all(r.count("|") == 7 for r in rows)  # no pipe or newline leaks into a cell
    assert "step 0, train.py:41" in rows[0]
    for f in report.findings:
        assert f"### {f.severity.value.upper()}: {f.title}" in text
        assert f"**Fix:** {f.fix}" in text
    assert "<summary>Checks that did not pass (4)</summary>" in text


def test_markdown_for_a_script_that_could_not_be_observed() -> None:
    text = markdown.render(not_observed_report())
    assert "**the script could not be observed**" in text
    assert "```\nTraceback (most recent call last):" in text


# -- one real run writes every format ------------------------------------------------------


def test_nndoctor_check_writes_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLES.parent)  # the repository root, as in CI
    out = {k: tmp_path / f"report.{k}" for k in ("xml", "sarif", "md", "json")}
    result = runner.invoke(
        app,
        [
            "check", str(SOFTMAX.relative_to(EXAMPLES.parent)), "--steps", "10",
            "--select", "19,27", "--format", "github",
            "--junit", str(out["xml"]), "--sarif", str(out["sarif"]),
            "--markdown", str(out["md"]), "--json", str(out["json"]),
        ],
    )  # fmt: skip
    assert result.exit_code == EXIT_FINDINGS, result.output
    findings = json.loads(out["json"].read_text())["findings"]
    assert {f["check"] for f in findings} == {"loss-input-mismatch", "cannot-overfit-tiny-batch"}

    # stdout: only annotations, then one summary line
    lines = result.stdout.strip().splitlines()
    annotations = [parse_annotation(line) for line in lines[:-1]]
    assert lines[-1].startswith("nndoctor: 2 error(s)")
    mismatch = next(a for a in annotations if "loss-input-mismatch" in unescape(a[1]["title"]))
    assert mismatch[0] == "error"
    assert mismatch[1]["file"] == "examples/softmax_before_ce.py"
    assert mismatch[1]["line"] == str(
        next(f for f in findings if f["check"] == "loss-input-mismatch")["where"]["line"]
    )

    root = ET.parse(out["xml"]).getroot()
    failed = sorted(c.get("name") for c in root.iter("testcase") if c.find("failure") is not None)
    assert failed == ["cannot-overfit-tiny-batch", "loss-input-mismatch"]

    log = json.loads(out["sarif"].read_text())
    results = log["runs"][0]["results"]
    assert sorted(r["ruleId"] for r in results) == failed
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"examples/softmax_before_ce.py"}
    rules = {r["id"]: r for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert rules["loss-input-mismatch"]["help"]["text"].count("Why it matters:") == 1

    assert out["md"].read_text().startswith("## nndoctor: `examples/softmax_before_ce.py`")
