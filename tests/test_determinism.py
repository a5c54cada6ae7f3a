"""The gate is deterministic: the same script and configuration give the same findings.

Two separate processes, with different ``PYTHONHASHSEED`` (so set and dict orders
that depend on string hashes differ), run ``nndoctor check`` on the same examples
and write the JSON report; everything but timings and the scratch folder's name
must be identical: findings with their numbers, every check's status and detail,
the run and the subject. An unseeded copy of an example is among them: the gate
seeds torch, numpy and ``random`` before the script runs (``--seed``, default 0),
so an unseeded script is diagnosed the same way every run. The two processes run
side by side, which keeps the test to the time of one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Runs the CLI in process for each script, writing one JSON report per script.
CHILD = """
import sys
from pathlib import Path
from typer.testing import CliRunner
from nndoctor.cli import app

out = Path(sys.argv[1])
runner = CliRunner()
for i, script in enumerate(sys.argv[2:]):
    result = runner.invoke(
        app, ["check", script, "--steps", "10", "--fail-on", "never", "--json", str(out / f"{i}.json")]
    )
    if result.exit_code != 0:
        sys.exit(f"{script}: exit {result.exit_code}\\n{result.output}")
"""


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what may differ between identical runs: timings, the scratch folder."""
    run = {k: v for k, v in report["run"].items() if k not in ("seconds", "notes")}
    checks = [
        {k: v for k, v in c.items() if k not in ("seconds", "budget_seconds")}
        for c in report["checks"]
    ]
    return {
        "findings": report["findings"],
        "checks": checks,
        "run": run,
        "subject": report["subject"],
        "summary": report["summary"],
    }


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scripts")
    unseeded = folder / "softmax_unseeded.py"
    source = (EXAMPLES / "softmax_before_ce.py").read_text(encoding="utf-8")
    assert "torch.manual_seed(0)\n" in source
    unseeded.write_text(source.replace("torch.manual_seed(0)\n", ""), encoding="utf-8")
    return [EXAMPLES / "healthy_mlp.py", EXAMPLES / "softmax_before_ce.py", unseeded]


@pytest.fixture(scope="module")
def two_runs(scripts: list[Path], tmp_path_factory: pytest.TempPathFactory) -> list[list[dict]]:
    """Each script checked in two processes with different hash seeds; the JSON reports."""
    outs = [tmp_path_factory.mktemp(f"run{i}") for i in (1, 2)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(out), *map(str, scripts)],
            # One thread each: the two processes share the machine side by side.
            env={**os.environ, "PYTHONHASHSEED": str(i), "OMP_NUM_THREADS": "1", "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, out in enumerate(outs, start=1)
    ]
    for child in children:
        output, _ = child.communicate(timeout=600)
        assert child.returncode == 0, output
    return [
        [json.loads((out / f"{i}.json").read_text()) for i in range(len(scripts))] for out in outs
    ]


@pytest.mark.parametrize(
    "index", [0, 1, 2], ids=["healthy_mlp", "softmax_before_ce", "softmax_unseeded"]
)
def test_two_runs_give_identical_reports(two_runs: list[list[dict]], index: int) -> None:
    first, second = (comparable(run[index]) for run in two_runs)
    assert first["run"]["steps_observed"] == 10
    for part in ("findings", "checks", "run", "subject", "summary"):
        assert first[part] == second[part], f"{part} differ between two identical runs"


def test_the_examples_give_their_expected_findings(two_runs: list[list[dict]]) -> None:
    # Determinism of nothing proves nothing: the broken examples do report their bug.
    healthy, softmax, unseeded = two_runs[0]
    assert [f for f in healthy["findings"] if f["severity"] != "info"] == []
    for report in (softmax, unseeded):
        assert "loss-input-mismatch" in {f["check"] for f in report["findings"]}
