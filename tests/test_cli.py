"""`nndoctor check` and its contract for bad input: exit codes, one-line errors, reports.

Exit codes (cli.py, README): 0 no finding reached --fail-on, 1 one did, 2 usage
error, 3 the script could not be observed. Most tests drive the typer app in
process with ``CliRunner``; two run the real interpreter to prove the entry
points. Throwaway scripts live in ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import nndoctor
from nndoctor.cli import EXIT_FINDINGS, EXIT_NOT_OBSERVED, EXIT_OK, EXIT_USAGE, app
from nndoctor.engine import preserved_rng

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HEALTHY = EXAMPLES / "healthy_mlp.py"
BROKEN = EXAMPLES / "no_zero_grad.py"  # gradients never zeroed: an error-severity finding

# A wide console so that rich does not wrap the lines the tests look for.
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

TINY_LOOP = """
import torch
from torch import nn

torch.manual_seed(0)
x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
"""

TRAIN_STEPS = """
for step in range(30):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
"""


def write(tmp_path: Path, source: str, name: str = "train.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def check(*args: str | Path) -> object:
    with preserved_rng(seed=None):
        return runner.invoke(app, ["check", *map(str, args)])


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny models are launch-bound; one thread keeps a busy two-core machine responsive.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- usage errors: exit 2, one line ---------------------------------------------------


def test_missing_script_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.py")
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such script" in lines[0] and "nope.py" in lines[0]
    assert "Traceback" not in result.output


def test_a_directory_is_not_a_script(tmp_path: Path) -> None:
    result = check(tmp_path)
    assert result.exit_code == EXIT_USAGE
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_option_is_a_usage_error() -> None:
    result = check(HEALTHY, "--no-such-option")
    assert result.exit_code == EXIT_USAGE
    assert "No such option" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("value", ["sometimes", "ERRORS", ""])
def test_invalid_fail_on_is_a_usage_error(value: str) -> None:
    result = check(HEALTHY, "--fail-on", value)
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--fail-on" in lines[0]


def test_unknown_check_id_in_select_is_a_usage_error() -> None:
    result = check(HEALTHY, "--select", "no-such-check")
    assert result.exit_code == EXIT_USAGE
    assert "unknown check id" in result.stderr


# -- the script could not be observed: exit 3, with a report ----------------------------


def test_syntax_error_in_the_script_exits_3_and_says_so(tmp_path: Path) -> None:
    script = write(tmp_path, "import torch\ndef broken(:\n    pass\n")
    report_path = tmp_path / "report.json"
    result = check(script, "--json", report_path)
    assert result.exit_code == EXIT_NOT_OBSERVED
    assert "SyntaxError" in result.output
    assert "SyntaxError" in result.stderr.strip().splitlines()[-1]
    report = json.loads(report_path.read_text())
    assert report["run"]["observed"] is False and "SyntaxError" in report["run"]["error"]


def test_a_shape_error_in_the_loss_before_the_first_step_shows_traceback_and_likely_reasons(
    tmp_path: Path,
) -> None:
    script = write(
        tmp_path,
        TINY_LOOP
        + """
labels = y[:48]  # the labels were cut to the wrong length
for step in range(100):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    optimizer.step()
""",
    )
    report_path = tmp_path / "report.json"
    result = check(script, "--json", report_path)
    assert result.exit_code == EXIT_NOT_OBSERVED
    assert "Traceback (most recent call last)" in result.output
    assert "cross_entropy(model(x), labels)" in result.output  # the user's line, from the traceback
    assert "reasons 19, 25" in result.output
    run = json.loads(report_path.read_text())["run"]
    assert run["observed"] is False and run["steps_observed"] == 0
    assert "ValueError" in run["error"]
    assert run["likely_reasons"] == [19, 25]


def test_a_script_with_no_training_loop_exits_3(tmp_path: Path) -> None:
    script = write(
        tmp_path,
        TINY_LOOP
        + """
with torch.no_grad():
    print("accuracy", (model(x).argmax(1) == y).float().mean().item())
""",
    )
    result = check(script)
    assert result.exit_code == EXIT_NOT_OBSERVED
    assert "no optimizer step" in result.stderr.strip().splitlines()[-1]


def test_a_script_that_never_stops_is_stopped_by_the_timeout(tmp_path: Path) -> None:
    script = write(tmp_path, "while True:\n    pass\n")
    result = check(script, "--timeout", "2")
    assert result.exit_code == EXIT_NOT_OBSERVED
    assert "timeout" in result.output


def test_the_experiment_budget_skips_the_experiments_it_has_no_time_for(tmp_path: Path) -> None:
    script = write(
        tmp_path,
        TINY_LOOP
        + """
for step in range(100):
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
""",
    )
    report_path = tmp_path / "report.json"
    result = check(script, "--experiment-seconds", "0.001", "--json", report_path)
    checks = json.loads(report_path.read_text())["checks"]
    spent = [c for c in checks if "experiment budget of 0s was spent" in (c["detail"] or "")]
    assert result.exit_code in (0, 1) and spent
    assert all(c["kind"] == "experiment" and c["status"] == "skipped" for c in spent)
    assert check(script, "--experiment-seconds", "-1").exit_code == EXIT_USAGE


def test_a_training_loop_that_hangs_after_some_steps_is_diagnosed(tmp_path: Path) -> None:
    # The timeout stops the script, the steps seen so far are still diagnosed.
    script = write(
        tmp_path,
        TINY_LOOP
        + """
for step in range(5):
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
while True:
    pass
""",
    )
    report_path = tmp_path / "report.json"
    result = check(script, "--timeout", "3", "--json", report_path)
    run = json.loads(report_path.read_text())["run"]
    assert run["stop_reason"] == "timeout" and run["steps_observed"] == 5
    assert result.exit_code in (EXIT_OK, EXIT_FINDINGS)


# -- observed scripts: 0 or 1 by --fail-on ----------------------------------------------


def test_a_healthy_script_exits_0() -> None:
    result = check(HEALTHY)
    assert result.exit_code == EXIT_OK, result.output
    assert "0 error(s), 0 warning(s)" in result.output


def test_a_broken_script_exits_1_with_fail_on_error_and_0_with_never() -> None:
    failing = check(BROKEN, "--fail-on", "error")
    assert failing.exit_code == EXIT_FINDINGS, failing.output
    assert "ERROR" in failing.output
    assert check(BROKEN, "--fail-on", "never").exit_code == EXIT_OK


def test_script_arguments_after_the_double_dash_reach_the_script(tmp_path: Path) -> None:
    script = write(
        tmp_path,
        """
import argparse
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
assert sys.argv[1:] == ["--lr", "0.003", "--epochs", "2"], sys.argv
"""
        + TINY_LOOP.replace("lr=1e-3", "lr=args.lr")
        + """
for epoch in range(args.epochs):
    for i in range(0, 64, 16):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
        optimizer.step()
""",
    )
    result = check(
        script, "--steps", "3", "--fail-on", "never", "--", "--lr", "0.003", "--epochs", "2"
    )
    assert result.exit_code == EXIT_OK, result.output
    assert "3 of 3 steps" in result.output


# -- the JSON report ----------------------------------------------------------------


def test_json_report_has_findings_checks_summary_and_versions(tmp_path: Path) -> None:
    report_path = tmp_path / "out" / "report.json"
    report_path.parent.mkdir()
    result = check(BROKEN, "--json", report_path, "--fail-on", "never")
    assert result.exit_code == EXIT_OK
    report = json.loads(report_path.read_text())
    assert report["nndoctor_version"] == nndoctor.__version__
    assert report["torch_version"] == torch.__version__
    assert report["findings"], "the broken example must produce findings"
    for finding in report["findings"]:
        assert {
            "check",
            "reasons",
            "severity",
            "title",
            "message",
            "where",
            "evidence",
            "fix",
        } <= set(finding)
        assert finding["severity"] in ("error", "warning", "info")
        assert finding["reasons"] and all(1 <= r <= 37 for r in finding["reasons"])
        assert isinstance(finding["where"], dict) and isinstance(finding["evidence"], dict)
    assert report["checks"]
    for c in report["checks"]:
        assert {"check", "reasons", "status", "detail"} <= set(c)
        assert c["status"] in ("passed", "failed", "skipped", "crashed")
    summary = report["summary"]
    assert summary["errors"] == sum(f["severity"] == "error" for f in report["findings"])
    assert summary["warnings"] == sum(f["severity"] == "warning" for f in report["findings"])
    assert report["run"]["steps_observed"] == 20


def test_select_runs_only_the_chosen_checks(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    check(BROKEN, "--select", "23", "--json", report_path, "--fail-on", "never")
    report = json.loads(report_path.read_text())
    ran = [c for c in report["checks"] if not c["detail"].startswith("not selected")]
    assert ran and all(23 in c["reasons"] for c in ran if not c["check"].startswith("probe:"))
    assert all(23 in f["reasons"] for f in report["findings"])


# -- help and entry points ---------------------------------------------------------


def test_check_help_documents_the_exit_codes() -> None:
    result = runner.invoke(app, ["check", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Exit codes" in text
    for fragment in (
        "0 no finding reached --fail-on",
        "1 a finding reached --fail-on",
        "2 usage error",
        "3 the script could not be observed",
    ):
        assert fragment in text


def test_python_dash_m_nndoctor_help_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nndoctor", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "check" in result.stdout and "explain" in result.stdout


def test_console_script_reports_a_missing_script_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nndoctor", "check", str(tmp_path / "absent.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_USAGE
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1


# -- the script cannot clobber the user's files -------------------------------------------


def test_checkpoints_go_to_a_scratch_folder_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    precious = work / "ckpt.pt"
    precious.write_bytes(b"the user's real checkpoint")
    script = write(
        work,
        TINY_LOOP
        + """
for step in range(100):
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    torch.save(model.state_dict(), "ckpt.pt")
    torch.save({"step": step}, "last_step.pt")
""",
    )
    monkeypatch.chdir(work)
    report_path = tmp_path / "report.json"
    result = check(script, "--steps", "5", "--json", report_path, "--fail-on", "never")
    assert result.exit_code == EXIT_OK, result.output
    assert precious.read_bytes() == b"the user's real checkpoint"
    assert sorted(p.name for p in work.iterdir()) == ["ckpt.pt", "train.py"]
    notes = json.loads(report_path.read_text())["run"]["notes"]
    saved = [n for n in notes if "ckpt.pt, last_step.pt" in n]
    assert saved and "user's files are unchanged" in saved[0], notes
    # Kept on request, the scratch folder holds the script's saves under their full paths.
    result = check(
        script, "--steps", "5", "--json", report_path, "--fail-on", "never", "--keep-scratch"
    )
    notes = json.loads(report_path.read_text())["run"]["notes"]
    kept = [n for n in notes if "kept" in n]
    assert kept, notes
    scratch = Path(kept[0].split("went to ")[1].split(", kept")[0])
    assert scratch.is_dir() and scratch.resolve() != work.resolve()
    mirrored = scratch / "fs" / str(work.resolve() / "ckpt.pt").lstrip("/")
    assert precious.read_bytes() == b"the user's real checkpoint"
    state = torch.load(mirrored, weights_only=True)
    assert set(state) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert "ckpt.pt" in " ".join(result.output.split())
    shutil.rmtree(scratch)


# -- the rest of the contract: version, nndoctor's own failures, hostile text -----------------


def test_version_prints_the_package_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == EXIT_OK
    assert result.stdout.strip() == f"nndoctor {nndoctor.__version__}"


@pytest.mark.parametrize("option", ["--json", "--junit", "--sarif", "--markdown"])
def test_an_unwritable_report_path_is_a_usage_error_before_the_script_runs(
    tmp_path: Path, option: str
) -> None:
    script = write(tmp_path, "raise SystemExit('the script must not run')\n")
    result = check(script, option, tmp_path / "no-such-folder" / "report.out")
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{option} " in lines[0] and "no such folder" in lines[0]


def test_a_failure_inside_nndoctor_is_one_line_and_exit_code_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nndoctor import cli
    from nndoctor.report import console

    def broken_renderer(*args: object, **kwargs: object) -> None:
        raise ValueError("a renderer bug\nwith a second line")

    monkeypatch.setattr(console, "render", broken_renderer)
    monkeypatch.setattr(
        sys, "argv", ["nndoctor", "check", str(write(tmp_path, TINY_LOOP + TRAIN_STEPS))]
    )
    with preserved_rng(seed=None), pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == cli.EXIT_INTERNAL == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["nndoctor: internal error: ValueError: a renderer bug"]


def test_the_scripts_own_output_is_shown_when_it_crashes_before_a_step(tmp_path: Path) -> None:
    script = write(
        tmp_path,
        TINY_LOOP + "print('loading shards from /data/train')\nraise RuntimeError('boom')\n",
    )
    result = check(script)
    assert result.exit_code == EXIT_NOT_OBSERVED
    assert "the script's last output:" in result.stdout
    assert "loading shards from /data/train" in result.stdout


def test_finding_texts_are_printed_as_text_not_markup() -> None:
    from rich.console import Console

    from nndoctor.report import console
    from nndoctor.report.model import Finding, Report, RunInfo, Severity

    hostile = "layers[0] and [bold]not bold[/] and [/]"
    finding = Finding(
        check="dead-relus",
        title=hostile,
        message=hostile,
        fix=hostile,
        severity=Severity.WARNING,
        reasons=[35],
    )
    out = Console(record=True, width=200, color_system=None)
    console.render(Report(run=RunInfo(target="t.py"), findings=[finding]), out)
    assert out.export_text().count(hostile) >= 3


def test_junit_xml_stays_valid_with_terminal_escapes_and_control_characters() -> None:
    import xml.etree.ElementTree as ET

    from nndoctor.report import junit
    from nndoctor.report.model import CheckResult, Finding, Report, RunInfo, Severity, Status

    text = "\x1b[31mred\x1b[0m bell\x07 nul\x00 done"
    finding = Finding(
        check="dead-relus",
        title=text,
        message=text,
        fix="fix",
        severity=Severity.ERROR,
        reasons=[35],
    )
    checks = [CheckResult("dead-relus", [35], "observation", Status.FAILED, text)]
    xml = junit.dumps(Report(run=RunInfo(target="t.py"), checks=checks, findings=[finding]))
    root = ET.fromstring(xml)  # parses: nothing XML forbids is left
    assert "red bell\\x07 nul\\x00 done" in ET.tostring(root, encoding="unicode")


def test_zoo_probe_on_a_pipe_says_what_it_trains_in_plain_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A spinner prints nothing on a pipe; each trunk trained or probed is named once.
    from nndoctor.zoo.ssl import probe

    def table(steps_scale: float, seed: int, device: str, progress: object) -> list[object]:
        for label in ("rotation", "rotation", "probing rotation", "supervised"):
            progress(label, 1, 10, 0.5)  # type: ignore[operator]
        return []

    monkeypatch.setattr(probe, "linear_probe_table", table)
    monkeypatch.setattr(probe, "format_table", lambda rows: "the table")
    result = runner.invoke(app, ["zoo", "probe"])
    assert result.exit_code == EXIT_OK, result.output
    lines = result.output.splitlines()
    assert lines[:3] == [
        "rotation: 10 step(s)",
        "probing rotation: 10 step(s)",
        "supervised: 10 step(s)",
    ]
    assert lines[-1] == "the table"
