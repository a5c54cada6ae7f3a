"""The user's model, optimizer and random state are untouched; failing probes never break a run."""

from __future__ import annotations

import json
import os
import runpy
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from processes import living_in_group
from subjects import healthy_classifier

import nndoctor
from nndoctor.capture.runner import run_script
from nndoctor.engine import Selection, check_script
from nndoctor.probes import stats

SCRIPT = textwrap.dedent(
    """
    import argparse
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    step = 0
    while step < args.steps:
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step >= args.steps:
                break
    """
)


@pytest.fixture()
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def _plain_run(path: Path, steps: int) -> dict:
    old = sys.argv[:]
    sys.argv = [str(path), "--steps", str(steps)]
    try:
        return runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = old


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _same_optimizer(a: torch.optim.Optimizer, b: torch.optim.Optimizer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for k, state in sa["state"].items():
        for name, value in state.items():
            other = sb["state"][k][name]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other


def test_observed_script_state_is_bit_identical_to_a_plain_run(script: Path) -> None:
    steps = 12
    plain = _plain_run(script, steps)
    plain_rng = torch.get_rng_state()
    # No search for a second phase: that runs the script on past the budget.
    capture = run_script(str(script), ["--steps", "1000"], steps=steps, phase_steps=0)
    assert capture.steps == steps
    assert torch.equal(torch.get_rng_state(), plain_rng)
    _same_state(capture.model, plain["model"])
    _same_optimizer(capture.optimizer, plain["optimizer"])


def test_the_whole_check_leaves_the_callers_rng_as_it_was(script: Path) -> None:
    steps = 12
    torch.manual_seed(1234)
    np.random.seed(1234)
    before = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    report = check_script(str(script), ["--steps", "1000"], steps=steps)
    assert report.run.observed and report.run.steps_observed == steps
    # The script (which seeds itself) and the experiments drew from the streams; the caller's
    # streams are as they were before the check.
    assert torch.equal(torch.get_rng_state(), before)
    assert np.array_equal(np.random.get_state()[1], np_state)


def test_an_unseeded_script_gets_the_same_findings_every_run(tmp_path: Path) -> None:
    path = tmp_path / "unseeded.py"
    path.write_text(SCRIPT.replace("torch.manual_seed(0)", ""))
    # An unbounded experiment budget: on a busy machine a spent budget would skip a
    # different set of experiments in each run, and the skips' wording would differ.
    unbounded = Selection(experiment_seconds=1e9)
    first = check_script(str(path), ["--steps", "1000"], steps=8, seed=3, selection=unbounded)
    torch.manual_seed(99)  # the caller's state does not leak into the script
    second = check_script(str(path), ["--steps", "1000"], steps=8, seed=3, selection=unbounded)
    first, second = first.to_dict(), second.to_dict()
    assert [c["detail"] for c in first["checks"]] == [c["detail"] for c in second["checks"]]


def test_api_check_leaves_model_optimizer_and_rng_untouched() -> None:
    kwargs = healthy_classifier()
    model, optimizer = kwargs["model"], kwargs["optimizer"]
    # Give the optimizer real state first, as a user's would have mid-training.
    x, y = kwargs["data"][0]
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_before = {k: {n: v.clone() for n, v in s.items()} for k, s in optimizer.state.items()}
    grads_before = [p.grad.clone() for p in model.parameters()]
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    report = nndoctor.check(**kwargs)
    assert report.run.steps_observed == 20
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for p, g in zip(model.parameters(), grads_before, strict=True):
        assert torch.equal(p.grad, g)
    for p, s in optimizer.state.items():
        for n, v in s.items():
            assert torch.equal(v, opt_before[p][n])
    assert model.training


def test_a_probe_that_raises_is_removed_and_reported_without_breaking_the_run(
    script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = 8
    plain = _plain_run(script, steps)

    def broken(*args: object, **kwargs: object) -> torch.Tensor:
        raise RuntimeError("probe bug")

    monkeypatch.setattr(stats, "activation_stats", broken)
    report = check_script(str(script), ["--steps", "1000"], steps=steps)
    assert report.run.observed and report.run.steps_observed == steps
    crashed = [c for c in report.checks if c.status.value == "crashed"]
    assert [c.check for c in crashed] == ["probe:activations"]
    assert "probe bug" in crashed[0].detail
    capture = run_script(str(script), ["--steps", "1000"], steps=steps, phase_steps=0)
    _same_state(capture.model, plain["model"])


def test_hooks_and_patches_are_all_removed_after_a_run(script: Path) -> None:
    import torch.nn.functional as F
    from torch.nn.modules import module as module_mod

    before = (F.cross_entropy, torch.Tensor.backward, torch.save, torch.optim.Optimizer.zero_grad)
    n_global = len(module_mod._global_forward_pre_hooks) + len(module_mod._global_forward_hooks)
    capture = run_script(str(script), ["--steps", "1000"], steps=3)
    assert (
        F.cross_entropy,
        torch.Tensor.backward,
        torch.save,
        torch.optim.Optimizer.zero_grad,
    ) == before
    assert (
        len(module_mod._global_forward_pre_hooks) + len(module_mod._global_forward_hooks)
        == n_global
    )
    for m in capture.model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


SAVING_CUSTOM_LOSS = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x = torch.randn(256, 6); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(20):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
            logits = model(xb)
            loss = -(logits - logits.logsumexp(1, keepdim=True)).gather(1, yb[:, None]).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        torch.save(model.state_dict(), "checkpoint.pt")
    """
)


def _private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir of the test's own (child processes included): other runs on the machine
    must not count as leftovers."""
    import tempfile

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def test_a_check_leaves_nothing_in_the_temp_dir_and_nothing_in_the_users_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = _private_temp(tmp_path, monkeypatch)
    project = tmp_path / "project"
    project.mkdir()
    script = project / "train.py"
    script.write_text(SAVING_CUSTOM_LOSS)
    monkeypatch.chdir(project)
    report = check_script(
        str(script), timeout=600.0, selection=Selection(select=("cannot-overfit-tiny-batch",))
    )
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"  # a replay ran
    assert any("checkpoint.pt" in n and "removed afterwards" in n for n in report.run.notes)
    # torch itself makes its compile cache there in a plain run of the script too.
    assert sorted(p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")) == []
    assert sorted(p.name for p in project.iterdir()) == ["train.py"]


def test_keep_scratch_keeps_the_saved_files_and_names_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = _private_temp(tmp_path, monkeypatch)
    script = tmp_path / "train.py"
    script.write_text(SAVING_CUSTOM_LOSS)
    monkeypatch.chdir(tmp_path)
    report = check_script(
        str(script), selection=Selection(select=("params-frozen",)), keep_scratch=True
    )
    (kept,) = [p for p in temp.iterdir() if not p.name.startswith("torchinductor_")]
    assert (kept / "fs" / str(tmp_path / "checkpoint.pt").lstrip("/")).is_file()  # mirrored by path
    assert not (tmp_path / "checkpoint.pt").exists()
    assert any(str(kept) in n for n in report.run.notes)


# Writes, appends, renames, deletes and saves in every common way, and reads its own
# writes back (asserting inside the script, which would then crash before its first step).
WRITES_EVERYWHERE = textwrap.dedent(
    """
    import glob, gzip, json, logging, os, pathlib, pickle, shutil, tarfile
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import helpers  # a module of the project's own: no __pycache__ is left next to it

    with open("notes.txt", "w") as f:
        f.write("overwritten by the script")
    with open("train.log", "a") as f:
        f.write("one more line\\n")
    assert open("train.log").read() == "existing log\\none more line\\n"  # appended
    logging.basicConfig(filename="run.log", level=logging.INFO, force=True)
    logging.info("started")
    os.remove("data/stale.tmp")
    assert not os.path.exists("data/stale.tmp")
    assert sorted(os.listdir("data")) == ["keep.csv"]
    os.makedirs("runs/exp1", exist_ok=True)
    pathlib.Path("runs/exp1/config.json").write_text(json.dumps({"lr": 0.01}))
    assert json.loads(pathlib.Path("runs/exp1/config.json").read_text()) == {"lr": 0.01}
    np.save("runs/exp1/x.npy", np.arange(3))
    np.savez("runs/exp1/arrays.npz", a=np.ones(2))
    np.savetxt("runs/exp1/table.txt", np.eye(2))
    assert np.load("runs/exp1/x.npy").tolist() == [0, 1, 2]
    assert np.load("runs/exp1/arrays.npz")["a"].tolist() == [1.0, 1.0]
    with open("runs/exp1/meta.pkl", "wb") as f:
        pickle.dump({"epoch": 0}, f)
    assert sorted(glob.glob("runs/exp1/*")) == [
        "runs/exp1/arrays.npz", "runs/exp1/config.json", "runs/exp1/meta.pkl",
        "runs/exp1/table.txt", "runs/exp1/x.npy",
    ]
    assert [sorted(f) for _, _, f in os.walk("runs")][-1][0] == "arrays.npz"
    shutil.copy("notes.txt", "data/notes-copy.txt")
    shutil.copytree("data", "data-backup")
    shutil.move("data-backup", "data-moved")
    os.rename("data/keep.csv", "data/renamed.csv")
    assert open("data/renamed.csv").read() == "a,b\\n1,2\\n"
    os.replace("data/renamed.csv", "data/replaced.csv")
    shutil.rmtree("old_runs")
    assert not os.path.exists("old_runs/events.out")
    pathlib.Path("data/scratch").mkdir()
    pathlib.Path("data/scratch/flag").touch()
    pathlib.Path("data/scratch/flag").unlink()
    pathlib.Path("data/scratch").rmdir()
    with gzip.open("runs/log.gz", "wt") as f:
        f.write("zipped")
    with tarfile.open("runs/code.tar", "w") as t:
        t.add("helpers.py")
    os.symlink("runs/exp1", "latest")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        SummaryWriter = None
    if SummaryWriter is not None:
        # Left open, as a stopped script leaves it. An absolute folder: its writer thread
        # opens the event file again at every flush, and a relative name would be looked up
        # in whatever folder the script has changed into by then (outputs/day1 below).
        writer = SummaryWriter(os.path.abspath("tb"))
        writer.add_scalar("start", 1.0, 0)
    try:
        import fsspec
    except ImportError:
        fsspec = None
    os.makedirs("outputs/day1")
    os.chdir("outputs/day1")  # as Hydra does, into a folder the script made
    assert os.getcwd().endswith(os.path.join("outputs", "day1"))
    pathlib.Path("config.yaml").write_text("lr: 0.01")
    os.chdir("../..")

    torch.manual_seed(0)
    x = torch.randn(256, 6); y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(20):
        for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
            logits = model(xb)
            loss = -(logits - logits.logsumexp(1, keepdim=True)).gather(1, yb[:, None]).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            if SummaryWriter is not None:
                writer.add_scalar("loss", loss.item())
        torch.save(model.state_dict(), "runs/exp1/model.pt.tmp")
        os.replace("runs/exp1/model.pt.tmp", "runs/exp1/model.pt")  # an atomic save
        with open("runs/exp1/buffer.pt", "wb") as f:
            torch.save(model.state_dict(), f)
        model.load_state_dict(torch.load("runs/exp1/model.pt"))
        model.load_state_dict(torch.load("latest/buffer.pt"))
        if fsspec is not None:
            with fsspec.open("runs/exp1/last.ckpt", "wb") as f:  # as Lightning saves
                torch.save(model.state_dict(), f)
        with open("train.log", "a") as f:
            f.write(f"epoch {epoch}\\n")
        logging.info("epoch %d", epoch)
    """
)


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def _users_project(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "old_runs").mkdir()
    (root / "old_runs" / "events.out").write_bytes(b"\x00\x01")
    (root / "notes.txt").write_text("the user's notes")
    (root / "train.log").write_text("existing log\n")
    (root / "data" / "stale.tmp").write_text("stale")
    (root / "data" / "keep.csv").write_text("a,b\n1,2\n")
    (root / "helpers.py").write_text("SCALE = 1\n")
    script = root / "train.py"
    script.write_text(WRITES_EVERYWHERE)
    return script


def test_the_users_tree_and_temp_dir_are_byte_identical_after_a_check_that_writes_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from nndoctor.cli import app

    temp = _private_temp(tmp_path, monkeypatch)
    project = tmp_path / "project"
    script = _users_project(project)
    before = _tree(project)
    monkeypatch.chdir(project)
    # Python as installed caches the bytecode of imported modules (``helpers``) next to them.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    report_path = tmp_path / "report.json"
    # A custom loss: the tiny-batch experiment replays the whole script in a subprocess too.
    # The limit is far above the seconds the replay takes, so that a busy machine still runs
    # it to its end (a replay cut by its limit is skipped, and this test needs it run).
    result = CliRunner().invoke(
        app,
        [
            "check",
            str(script),
            "--select",
            "cannot-overfit-tiny-batch",
            "--timeout",
            "900",
            "--json",
            str(report_path),
        ],
    )
    report = json.loads(report_path.read_text())
    run = report["run"]
    assert run["observed"], (run["error"], run["output_tail"], run["traceback"], result.output)
    (tiny,) = [c for c in report["checks"] if c["check"] == "cannot-overfit-tiny-batch"]
    # The replay ran the script to the end of its steps.
    assert tiny["status"] == "passed", tiny["detail"]
    assert _tree(project) == before
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
    note = next(n for n in run["notes"] if "scratch" in n)
    assert "notes.txt" in note and "user's files are unchanged" in note
    assert os.environ.get("WANDB_MODE") is None  # the tracker settings are the caller's again
    assert "helpers" not in sys.modules  # the project's own module is not kept for the next


# Fake trackers: they "upload" through io.FileIO, a channel the sandbox does not redirect,
# unless their own settings say disabled, offline or a local store.
FAKE_WANDB = """
import io, os
def init(**kwargs):
    if os.environ.get("WANDB_MODE", "online") not in ("disabled", "offline", "dryrun"):
        with io.FileIO(os.environ["FAKE_TRACKER_SERVER"], "a") as f:
            f.write(b"wandb run\\n")
    return None
"""
FAKE_MLFLOW = """
import io, os
def log_metric(key, value, step=None):
    if not os.environ.get("MLFLOW_TRACKING_URI", "").startswith("file:"):
        with io.FileIO(os.environ["FAKE_TRACKER_SERVER"], "a") as f:
            f.write(b"mlflow metric\\n")
"""
TRACKED = SAVING_CUSTOM_LOSS.replace(
    "import torch\n", "import torch\nimport mlflow, wandb\nwandb.init(project='p')\n", 1
).replace("opt.step()", "opt.step(); mlflow.log_metric('loss', loss.item())")


def test_nothing_reaches_a_tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _private_temp(tmp_path, monkeypatch)
    project = tmp_path / "project"
    project.mkdir()
    (project / "wandb.py").write_text(FAKE_WANDB)
    (project / "mlflow.py").write_text(FAKE_MLFLOW)
    script = project / "train.py"
    script.write_text(TRACKED)
    server = tmp_path / "server.log"
    monkeypatch.setenv("FAKE_TRACKER_SERVER", str(server))
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    monkeypatch.chdir(project)
    report = check_script(
        str(script), timeout=600.0, selection=Selection(select=("cannot-overfit-tiny-batch",))
    )
    assert report.run.observed, (report.run.error, report.run.traceback)
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"  # replays too
    assert not server.exists()
    assert os.environ["WANDB_MODE"] == "online"
    # The fakes do reach their "server" outside a check: the test can fail.
    monkeypatch.syspath_prepend(str(project))
    import mlflow  # type: ignore[import-not-found]
    import wandb  # type: ignore[import-not-found]

    wandb.init()
    mlflow.log_metric("loss", 1.0)
    assert server.read_text() == "wandb run\nmlflow metric\n"
    for name in ("wandb", "mlflow"):
        del sys.modules[name]


SLOW_CUSTOM_LOSS = textwrap.dedent(
    """
    import time, torch, torch.nn as nn
    torch.manual_seed(0)
    net = nn.Linear(4, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x, w = torch.randn(64, 4), torch.randn(4, 1)
    for step in range(100000):
        loss = ((net(x) - x @ w) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        if step > 25:
            time.sleep(0.05)
    """
)


def test_a_sigterm_stops_a_check_and_leaves_no_process_and_no_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `timeout`, a CI runner or a scheduler ends nndoctor with SIGTERM: its replays (a
    # server and the script replayed by it) and their folders must go with it.
    import signal
    import subprocess
    import time

    temp = _private_temp(tmp_path, monkeypatch)
    script = tmp_path / "train.py"
    script.write_text(SLOW_CUSTOM_LOSS)
    log = tmp_path / "out.txt"
    with log.open("w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "nndoctor", "check", str(script), "--steps", "30"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The custom loss is replayed: the script's own slow steps keep the experiments busy.
        deadline = time.monotonic() + 300
        while "experiment" not in log.read_text() and time.monotonic() < deadline:
            assert child.poll() is None, log.read_text()
            time.sleep(0.2)
        time.sleep(1.0)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=120) == 143, log.read_text()
        assert living_in_group(child.pid) == []
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
