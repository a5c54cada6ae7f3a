"""`nndoctor explain` and `nndoctor reasons`: manuals and the coverage table from the registry."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from nndoctor.checks.registry import all_checks
from nndoctor.cli import app

runner = CliRunner()


def test_explain_a_check_prints_its_manual() -> None:
    result = runner.invoke(app, ["explain", "loss-input-mismatch"])
    assert result.exit_code == 0
    for heading in ("Why it matters:", "What is measured:", "How to fix:", "Example:"):
        assert heading in result.output
    assert "reasons 19" in result.output


def test_a_manual_keeps_its_own_line_breaks_in_a_narrow_output() -> None:
    # Not a terminal: 80 columns. Each line of the docstring comes out whole, not wrapped
    # again into a long line and an orphan.
    spec = next(c for c in all_checks() if c.id == "loss-input-mismatch")
    long = max(spec.doc.splitlines(), key=len)
    assert len(long) > 80
    result = runner.invoke(app, ["explain", "loss-input-mismatch"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert long in result.output.splitlines()


def test_explain_a_reason_lists_the_checks_covering_it() -> None:
    result = runner.invoke(app, ["explain", "37"])
    assert result.exit_code == 0
    assert "Reason 37: NaNs" in result.output
    assert "non-finite-values" in result.output


def test_explain_unknown_topics_are_usage_errors() -> None:
    assert runner.invoke(app, ["explain", "no-such-check"]).exit_code == 2
    assert runner.invoke(app, ["explain", "38"]).exit_code == 2


def test_reasons_json_is_generated_from_the_registry() -> None:
    result = runner.invoke(app, ["reasons", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert len(rows) == 37 and rows[16]["reason"] == 17
    listed = {c["check"] for row in rows for c in row["checks"]}
    assert listed == {spec.id for spec in all_checks()}
    for row in rows:
        for c in row["checks"]:
            assert c["kind"] in ("observation", "experiment")


def test_reasons_table_shows_uncovered_reasons() -> None:
    result = runner.invoke(app, ["reasons"])
    assert result.exit_code == 0
    covered = len({r for spec in all_checks() for r in spec.reasons})
    assert f"{covered} of 37 reasons covered" in result.output


def test_explain_prints_the_manual_of_a_stream_check_of_watch() -> None:
    result = runner.invoke(app, ["explain", "watch-divergence"])
    assert result.exit_code == 0, result.output
    assert "stream check (watch)" in result.stdout and "reasons 36" in result.stdout
    assert "How to fix:" in result.stdout
    by_reason = runner.invoke(app, ["explain", "37"]).stdout
    assert "watch-non-finite" in by_reason and "input-not-finite" in by_reason
