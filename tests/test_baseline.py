"""The baseline: record today's findings, then report only new ones.

Unit tests pin the identity of a finding (check, title with numbers masked,
module/op/file; not the line, the step or the numbers) and the counting; one
round trip through ``nndoctor check`` shows a team adopting the gate: the baseline
accepts today's finding even after the script's lines move, and a new bug still
fails the gate.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nndoctor import baseline
from nndoctor.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, app
from nndoctor.report.model import CheckResult, Finding, Report, RunInfo, Severity, Status, Where

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def finding(check: str = "dead-relus", title: str = "ReLU 1 is dead", **where: object) -> Finding:
    return Finding(
        check=check,
        reasons=[35],
        severity=Severity.WARNING,
        title=title,
        message="zero for 97% of inputs",
        fix="Use LeakyReLU.",
        where=Where(**where),  # type: ignore[arg-type]
        evidence={"zero_fraction": 0.97},
    )


def report_of(*findings: Finding) -> Report:
    checks = sorted({f.check for f in findings})
    return Report(
        run=RunInfo(target="train.py"),
        checks=[CheckResult(c, [35], "observation", Status.FAILED, "1 finding(s)") for c in checks],
        findings=list(findings),
    )


def test_identity_ignores_numbers_line_and_step_but_not_module_or_file(tmp_path: Path) -> None:
    base = tmp_path
    a = finding(
        title="Gradient norms span 5.2 orders of magnitude",
        module="enc.1",
        file=str(tmp_path / "t.py"),
        line=3,
        step=0,
    )
    same = finding(
        title="Gradient norms span 6.75 orders of magnitude",
        module="enc.1",
        file=str(tmp_path / "t.py"),
        line=9,
        step=4,
    )
    other_module = finding(
        title="Gradient norms span 5.2 orders of magnitude",
        module="enc.2",
        file=str(tmp_path / "t.py"),
    )
    assert baseline.key_of(a, base) == baseline.key_of(same, base)
    assert baseline.key_of(a, base) != baseline.key_of(other_module, base)
    assert baseline.key_of(a, base)[1] == "Gradient norms span # orders of magnitude"
    # Files are stored relative to the baseline's folder: the same in any checkout.
    assert baseline.key_of(a, base)[4] == "t.py"
    assert baseline.key_of(a, base / "sub")[4] == "../t.py"


def test_write_load_and_apply_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ci" / "baseline.json"
    old = [
        finding(module="a"),
        finding(module="a"),
        finding(check="give-it-time", title="Still falling"),
    ]
    assert baseline.write(report_of(*old), path) == 3
    document = json.loads(path.read_text())
    assert document["nndoctor_baseline"] == 1
    entries = {(e["check"], e["where"].get("module")): e["count"] for e in document["findings"]}
    assert entries == {("dead-relus", "a"): 2, ("give-it-time", None): 1}

    accepted = baseline.load(path)
    assert len(accepted) == 3
    new = finding(module="b")
    # Three dead ReLUs in `a` now: two were accepted, the third is new; so is the one in `b`.
    later = report_of(finding(module="a"), finding(module="a"), finding(module="a"), new)
    filtered, n = baseline.apply(later, accepted)
    assert n == 2
    assert [f.where.module for f in filtered.findings] == ["a", "b"]
    assert filtered.result("dead-relus").status == Status.FAILED
    notes = " ".join(filtered.run.notes)
    assert "2 finding(s) accepted by the baseline" in notes
    assert (
        "1 finding(s) in the baseline" in notes and "no longer occur" in notes
    )  # give-it-time fixed
    # The report passed in is left as it was.
    assert len(later.findings) == 4 and not later.run.notes


def test_a_check_whose_findings_are_all_accepted_passes(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    today = report_of(finding(module="a"))
    baseline.write(today, path)
    filtered, n = baseline.apply(today, baseline.load(path))
    assert n == 1 and filtered.findings == []
    result = filtered.result("dead-relus")
    assert result.status == Status.PASSED and "accepted by the baseline" in result.detail
    assert not filtered.fails("warning")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such baseline file"),
        ("not json", "not a baseline file"),
        ('{"findings": []}', "not an nndoctor baseline"),
        ('{"nndoctor_baseline": 1, "findings": [{"title": "x"}]}', "entry 0 is malformed"),
    ],
)
def test_a_bad_baseline_is_a_clear_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(baseline.BaselineError, match=message):
        baseline.load(path)


# -- through the command line -----------------------------------------------------------


def check(*args: str | Path) -> object:
    return runner.invoke(app, ["check", *map(str, args)])


def test_adopting_the_gate_with_a_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.py"
    source = (EXAMPLES / "softmax_before_ce.py").read_text(encoding="utf-8")
    script.write_text(source, encoding="utf-8")
    gate = ["--steps", "6", "--select", "19,zero-grad-missing"]
    accepted = tmp_path / "nndoctor-baseline.json"

    # Today: the softmax bug fails the gate; the team records it and exits 0.
    assert check(script, *gate).exit_code == EXIT_FINDINGS
    written = check(script, *gate, "--write-baseline", accepted)
    assert written.exit_code == EXIT_OK, written.output
    entries = json.loads(accepted.read_text())["findings"]
    assert [(e["check"], e["where"]) for e in entries] == [
        ("loss-input-mismatch", {"file": "train.py"})
    ]

    # Lines move (a new docstring); the accepted finding stays accepted, the gate passes.
    script.write_text('"""Now with a docstring."""\n\n\n' + source, encoding="utf-8")
    report_path = tmp_path / "report.json"
    result = check(script, *gate, "--baseline", accepted, "--json", report_path)
    assert result.exit_code == EXIT_OK, result.output
    report = json.loads(report_path.read_text())
    assert report["findings"] == []
    assert any("1 finding(s) accepted by the baseline" in n for n in report["run"]["notes"])

    # A new bug (zero_grad removed) is reported and fails the gate; the old one stays hidden.
    script.write_text(source.replace("optimizer.zero_grad()", "pass"), encoding="utf-8")
    result = check(script, *gate, "--baseline", accepted, "--json", report_path)
    assert result.exit_code == EXIT_FINDINGS, result.output
    report = json.loads(report_path.read_text())
    assert [f["check"] for f in report["findings"]] == ["zero-grad-missing"]


def test_a_missing_baseline_file_is_a_usage_error(tmp_path: Path) -> None:
    result = check(EXAMPLES / "healthy_mlp.py", "--baseline", tmp_path / "absent.json")
    assert result.exit_code == EXIT_USAGE
    assert "no such baseline file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
