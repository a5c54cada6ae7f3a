"""``nndoctor watch SCRIPT``: exit codes, the JSON-lines log, --steps, --stop-on and --dry-run."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from nndoctor.cli import app

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})

SCRIPT = textwrap.dedent(
    """
    import argparse, os, tempfile
    import torch
    from torch import nn
    import helpers

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--boost", type=int, default=-1)
    a = p.parse_args()
    torch.manual_seed(0)
    x = torch.randn(1024, 20); y = (x[:, 0] + x[:, 1] > 0).long()
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05 * helpers.SCALE, momentum=0.9)
    os.environ["TRAINING_STARTED"] = "1"
    for step in range(a.steps):
        if step == a.boost:
            for g in opt.param_groups:
                g["lr"] *= 1000
        i = (step * 64) % 1024
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), "checkpoint.pt")
    with open("train.log", "a") as f:
        f.write("finished\\n")
    with open(os.path.join(tempfile.gettempdir(), "run.tmp"), "w") as f:
        f.write("x")
    """
)


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text(SCRIPT)
    (root / "helpers.py").write_text("SCALE = 1\n")
    (root / "train.log").write_text("existing log\n")
    monkeypatch.chdir(root)
    # The script writes to the temp dir, as scripts do: the test's own, never the machine's.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # A run that is not a dry run changes this process as the script would: put back after.
    monkeypatch.delenv("TRAINING_STARTED", raising=False)
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    yield root
    # The script's own module, imported by a run that is no dry run: not left to the next
    # test (monkeypatch puts back what it removed, not what was added after).
    sys.modules.pop("helpers", None)


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _watch(*args: str) -> Any:
    return runner.invoke(app, ["watch", *args])


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_healthy_script_exits_0_and_logs_start_and_end(project: Path, tmp_path: Path) -> None:
    log, report = tmp_path / "alerts.jsonl", tmp_path / "watch.json"
    result = _watch("train.py", "--log", str(log), "--json", str(report), "--every", "5")
    assert result.exit_code == 0, result.output
    events = [line["event"] for line in _lines(log)]
    assert events == ["start", "end"]
    data = json.loads(report.read_text())
    assert data["steps_seen"] == 120 and data["steps_sampled"] == 24
    assert data["periods"] == [{"from_step": 0, "every": 5}]
    assert data["stop_reason"] == "script finished" and data["model"] == "Sequential"
    assert len(data["series"]["loss"]) == len(data["series"]["steps"])
    # Not a dry run: the script's own writes are real.
    assert (project / "checkpoint.pt").exists()
    assert (project / "train.log").read_text() == "existing log\nfinished\n"


def test_a_diverging_script_exits_1_with_the_alert_in_the_log(
    project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "alerts.jsonl"
    result = _watch("train.py", "--log", str(log), "--", "--boost", "60")
    assert result.exit_code == 1, result.output
    alerts = [line for line in _lines(log) if line["event"] == "alert"]
    assert alerts[0]["severity"] == "error"
    assert set(alerts[0]["reasons"]) & {36, 37}
    assert 60 <= alerts[0]["where"]["step"] <= 63
    assert "watch-divergence" in result.output or "watch-non-finite" in result.output


def test_stop_on_error_stops_the_run_at_the_alert(project: Path, tmp_path: Path) -> None:
    report = tmp_path / "watch.json"
    result = _watch("train.py", "--stop-on", "error", "--json", str(report), "--", "--boost", "60")
    assert result.exit_code == 1, result.output
    data = json.loads(report.read_text())
    assert data["stop_reason"] == "stopped on error" and data["stopped"]
    assert data["steps_seen"] < 120
    assert not (project / "checkpoint.pt").exists()  # the script did not reach its end


def test_steps_stops_after_n_steps(project: Path, tmp_path: Path) -> None:
    report = tmp_path / "watch.json"
    result = _watch("train.py", "--steps", "7", "--json", str(report))
    assert result.exit_code == 0, result.output
    # Not a terminal: a few plain progress lines, the first step and the last among them.
    lines = [x for x in result.output.splitlines() if x.startswith("watching: step")]
    assert lines[0].startswith("watching: step 1 of 7") and "watching: step 7 of 7" in lines[-1]
    assert "\x1b[" not in result.output
    data = json.loads(report.read_text())
    assert data["steps_seen"] == 7 and data["stop_reason"] == "step budget"


def test_dry_run_changes_nothing(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"  # the project fixture's temp dir
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    before = _tree(project)
    rng = torch.get_rng_state()
    result = _watch("train.py", "--dry-run", "--json", str(tmp_path / "w.json"))
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "w.json").read_text())
    assert data["steps_seen"] == 120 and data["stop_reason"] == "script finished"
    assert data["saves_redirected"]
    assert _tree(project) == before
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert "TRAINING_STARTED" not in os.environ
    assert "helpers" not in sys.modules
    assert torch.equal(torch.get_rng_state(), rng)


def test_usage_errors_and_unobservable_scripts(project: Path) -> None:
    assert _watch("missing.py").exit_code == 2
    assert _watch("train.py", "--stop-on", "warning").exit_code == 2
    (project / "nothing.py").write_text("print('no model here')\n")
    result = _watch("nothing.py")
    assert result.exit_code == 3, result.output
    assert "could not be observed" in result.output
    assert "no module with parameters was called" in result.output
    (project / "no_step.py").write_text(
        "import torch\nm = torch.nn.Linear(3, 1)\nfor _ in range(5):\n"
        "    m(torch.randn(4, 3)).sum().backward()\n"
    )
    result = _watch("no_step.py")
    assert result.exit_code == 3, result.output
    assert "no optimizer stepped its parameters and they did not change" in " ".join(
        result.output.split()
    )


def test_the_log_is_written_for_real_even_in_a_dry_run(project: Path, tmp_path: Path) -> None:
    from nndoctor.watch.script import watch_script

    log = tmp_path / "alerts.jsonl"
    result = watch_script(
        "train.py", ["--boost", "30"], steps=45, log=str(log), dry_run=True, quiet=True
    )
    assert result.observed and result.report.steps_seen == 45
    events = [line["event"] for line in _lines(log)]
    assert events[0] == "start" and "alert" in events and events[-1] == "end"
    assert not (project / "checkpoint.pt").exists()


def test_html_and_plots_show_the_alert_on_the_loss_curve(project: Path, tmp_path: Path) -> None:
    page, folder = tmp_path / "watch.html", tmp_path / "plots"
    result = _watch(
        "train.py",
        "--every",
        "5",
        "--html",
        str(page),
        "--plots",
        str(folder),
        "--",
        "--boost",
        "60",
    )
    assert result.exit_code == 1, result.output
    pngs = sorted(p.name for p in folder.iterdir())
    assert {"loss.png", "gradient-flow.png", "activations.png", "update-ratio.png"} <= set(pngs)
    text = page.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == len(pngs)
    assert "nndoctor watch: <code>train.py --boost 60</code>" in text
    assert text.index("Alerts (") < text.index('id="charts"')
    assert "watch-divergence" in text or "watch-non-finite" in text
    assert "120 steps watched, 24 sampled" in text


def test_an_unwritable_html_path_stops_watch_before_the_script_runs(
    project: Path, tmp_path: Path
) -> None:
    result = _watch("train.py", "--html", str(tmp_path / "no" / "w.html"))
    assert result.exit_code == 2 and "--html" in result.output
    assert not (project / "checkpoint.pt").exists()


BY_HAND = textwrap.dedent(
    """
    import torch
    from torch import nn
    torch.manual_seed(0)
    x = torch.randn(512, 20); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 2))
    for step in range(80):
        i = (step * 64) % 512
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-0.2)
    """
)


def test_a_script_updating_by_hand_is_watched_step_by_step(project: Path, tmp_path: Path) -> None:
    (project / "by_hand.py").write_text(BY_HAND)
    report = tmp_path / "w.json"
    result = _watch("by_hand.py", "--every", "8", "--json", str(report))
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    # watch attaches inside the first forward: that step is still counted
    assert data["steps_seen"] == 80 and data["steps_sampled"] == 10
    assert any("updated by hand" in n for n in data["notes"])
