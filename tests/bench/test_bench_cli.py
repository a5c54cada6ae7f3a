"""`nndoctor bench` on the command line: listing the corpus, usage errors, one real run."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nndoctor.bench.runner import examples_root
from nndoctor.cli import _bare_json_flag, app

runner = CliRunner()


def test_list_json_shows_the_corpus() -> None:
    result = runner.invoke(app, ["bench", "--list", "--json", "-"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    counts = listing["counts"]
    assert counts["faults"] == len(listing["faults"]) and counts["healthy"] == len(
        listing["healthy"]
    )
    assert counts["reasons"] == len({f["reason"] for f in listing["faults"]})
    assert {"name", "base", "kind", "reason", "also", "split", "what"} <= set(listing["faults"][0])


def test_a_bare_json_flag_means_stdout() -> None:
    assert _bare_json_flag(["bench", "--list", "--json"]) == ["bench", "--list", "--json", "-"]
    assert _bare_json_flag(["bench", "--json", "--list"]) == ["bench", "--json", "-", "--list"]
    assert _bare_json_flag(["bench", "--json", "out.json"]) == ["bench", "--json", "out.json"]
    assert _bare_json_flag(["check", "x.py", "--json"]) == ["check", "x.py", "--json"]


def test_list_json_through_the_console_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "nndoctor", "bench", "--list", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["healthy"] >= 1


def test_bad_split_and_no_match_are_usage_errors() -> None:
    assert runner.invoke(app, ["bench", "--split", "train"]).exit_code == 2
    assert runner.invoke(app, ["bench", "--select", "no-such-case-anywhere"]).exit_code == 2


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_one_healthy_case_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A private temp folder for the bench and its children: it must be empty afterwards,
    # and the examples the bench reads (the user's tree here) byte-identical.
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    examples = examples_root()
    before = _tree(examples)
    out = tmp_path / "bench.json"
    plot = tmp_path / "matrix.png"
    result = runner.invoke(
        app,
        [
            "bench",
            "--select",
            "[m]lp",
            "--kind",
            "healthy",
            "--seeds",
            "1",
            "--json",
            str(out),
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    healthy = [r for r in payload["runs"] if not r["fault"]]
    assert [r["name"] for r in healthy] == ["mlp"]
    assert healthy[0]["error"] is None and healthy[0]["false_alarms"] == []
    assert not [r for r in payload["runs"] if r["fault"]]
    assert payload["summary"]["all"]["healthy_runs"] == 1
    assert not plot.exists()  # no fault, no matrix
    assert list(temp.iterdir()) == []
    assert _tree(examples) == before


def test_kind_must_be_known() -> None:
    assert runner.invoke(app, ["bench", "--kind", "broken"]).exit_code == 2
    listing = json.loads(
        runner.invoke(app, ["bench", "--list", "--kind", "faults", "--json", "-"]).output
    )
    assert listing["healthy"] == [] and listing["faults"]
