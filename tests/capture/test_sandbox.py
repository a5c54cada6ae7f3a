"""The sandbox: every way a script writes lands in the scratch folder, and the script's own
reads and listings see what it wrote, moved and removed."""

from __future__ import annotations

import contextlib
import glob
import gzip
import logging
import os
import pickle
import shutil
import sys
import tarfile
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from nndoctor.capture import sandbox as sandbox_mod
from nndoctor.capture.sandbox import Sandbox


def _tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A user's tree, the cwd of the test; it must be byte-identical afterwards."""
    root = tmp_path / "project"
    (root / "data" / "train").mkdir(parents=True)
    (root / "data" / "train" / "a.csv").write_text("a,b\n1,2\n")
    (root / "data" / "train" / "b.csv").write_text("a,b\n3,4\n")
    (root / "runs" / "old").mkdir(parents=True)
    (root / "runs" / "old" / "events").write_bytes(b"\x00\x01")
    (root / "train.log").write_text("existing log\n")
    monkeypatch.chdir(root)
    before = _tree(root)
    yield root
    assert _tree(root) == before


@pytest.fixture()
def box(project: Path, tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(str(tmp_path / "scratch")).installed() as installed:
        yield installed


def test_listings_see_new_files_and_not_removed_ones(box: Sandbox) -> None:
    Path("data/train/c.csv").write_text("a,b\n5,6\n")
    os.remove("data/train/a.csv")
    names = ["b.csv", "c.csv"]
    assert sorted(os.listdir("data/train")) == names
    assert sorted(e.name for e in os.scandir("data/train")) == names
    with os.scandir("data/train") as it:
        entry = next(e for e in it if e.name == "c.csv")
    assert entry.path == os.path.join("data/train", "c.csv") and entry.is_file()
    assert sorted(glob.glob("data/train/*.csv")) == ["data/train/b.csv", "data/train/c.csv"]
    assert sorted(glob.glob("data/**/*.csv", recursive=True)) == [
        "data/train/b.csv",
        "data/train/c.csv",
    ]
    assert sorted(p.name for p in Path("data/train").iterdir()) == names
    assert sorted(p.name for p in Path("data").glob("*/*.csv")) == names
    assert sorted(p.name for p in Path(".").rglob("*.csv")) == names
    walked = {d: sorted(f) for d, _, f in os.walk("data")}
    assert walked == {"data": [], os.path.join("data", "train"): names}
    assert os.path.isfile("data/train/c.csv") and not os.path.exists("data/train/a.csv")


def test_a_removed_tree_stays_removed_when_recreated(box: Sandbox) -> None:
    shutil.rmtree("runs")
    assert not os.path.exists("runs/old/events") and not os.path.isdir("runs")
    os.makedirs("runs/new")
    assert os.listdir("runs") == ["new"] and not os.path.exists("runs/old/events")
    with pytest.raises(FileNotFoundError):
        open("runs/old/events", "rb")
    with pytest.raises(FileNotFoundError):
        Path("gone/x.txt").write_text("no folder")  # as a real write would fail
    shutil.rmtree("nothing-here", ignore_errors=True)
    with pytest.raises(FileNotFoundError):
        shutil.rmtree("nothing-here")


def test_makedirs_and_pathlib_writes(box: Sandbox) -> None:
    os.makedirs("out/a/b", exist_ok=True)
    os.makedirs("out/a/b", exist_ok=True)
    with pytest.raises(FileExistsError):
        os.makedirs("out/a/b")
    assert os.path.isdir("out/a/b")
    p = Path("out/a/b/flag")
    p.touch()
    assert p.exists() and p.stat().st_size == 0
    p.write_text("hello")
    p.rename("out/a/renamed")
    assert Path("out/a/renamed").read_text() == "hello" and not p.exists()
    Path("out/a/renamed").replace("out/moved")
    Path("out/moved").unlink()
    Path("out/a/b").rmdir()
    assert os.listdir("out") == ["a"]
    with pytest.raises(OSError):
        Path("out").rmdir()  # not empty
    Path("train.log").touch()  # an existing file: only its time changes, in the mirror
    Path("data/train/a.csv").chmod(0o600)
    assert Path("data/train/a.csv").read_text() == "a,b\n1,2\n"


def test_shutil_copies_and_moves(box: Sandbox) -> None:
    shutil.copy("data/train/a.csv", "data/copy.csv")
    shutil.copyfile("data/train/a.csv", "data/copyfile.csv")
    shutil.copy2("data/train/b.csv", "data")  # into a folder: keeps the name
    shutil.copytree("data/train", "data/val")
    assert sorted(os.listdir("data/val")) == ["a.csv", "b.csv"]
    assert Path("data/val/b.csv").read_text() == "a,b\n3,4\n"
    shutil.move("data/val", "data/test")
    assert not os.path.exists("data/val") and sorted(os.listdir("data/test")) == [
        "a.csv",
        "b.csv",
    ]
    shutil.move("data/train", "archive")  # a real folder: copied, then gone for the script
    assert sorted(os.listdir("archive")) == ["a.csv", "b.csv"]
    assert not os.path.exists("data/train/a.csv")
    assert sorted(os.listdir("data")) == ["b.csv", "copy.csv", "copyfile.csv", "test"]


def test_numpy_pickle_torch_and_appends_read_back(box: Sandbox) -> None:
    np.save("x.npy", np.arange(3))
    np.savez("z.npz", a=np.ones(2))
    np.savetxt("t.txt", np.eye(2))
    np.arange(4, dtype=np.int64).tofile("raw.bin")
    assert np.load("x.npy").tolist() == [0, 1, 2]
    assert np.load("z.npz")["a"].tolist() == [1.0, 1.0]
    assert np.loadtxt("t.txt").tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert np.fromfile("raw.bin", dtype=np.int64).tolist() == [0, 1, 2, 3]
    with open("obj.pkl", "wb") as f:
        pickle.dump({"k": 1}, f)
    with open("obj.pkl", "rb") as f:
        assert pickle.load(f) == {"k": 1}
    with open("buffer.pt", "wb") as f:
        torch.save({"w": torch.ones(2)}, f)
    torch.save({"w": torch.zeros(2)}, "path.pt")
    assert torch.equal(torch.load("buffer.pt")["w"], torch.ones(2))
    assert torch.equal(torch.load(Path("path.pt"))["w"], torch.zeros(2))
    with open("train.log", "a") as f:
        f.write("epoch 1\n")
    assert open("train.log").read() == "existing log\nepoch 1\n"
    with open("train.log", "r+") as f:
        f.write("E")
    assert open("train.log").read() == "Existing log\nepoch 1\n"
    os.truncate("train.log", 3)
    assert open("train.log").read() == "Exi"


def test_archives_logs_and_links(box: Sandbox) -> None:
    with gzip.open("log.gz", "wt") as f:
        f.write("zipped")
    with zipfile.ZipFile("a.zip", "w") as z:
        z.writestr("x", "1")
    with tarfile.open("a.tar", "w") as t:
        t.add("data/train/a.csv")
    with tarfile.open("a.tar") as t:
        assert t.getnames() == ["data/train/a.csv"]
    handler = logging.FileHandler("run.log")
    logger = logging.getLogger("nndoctor-test-sandbox")
    logger.addHandler(handler)
    try:
        logger.warning("a line")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert open("run.log").read() == "a line\n"
    os.symlink("data/train/a.csv", "latest.csv")
    assert open("latest.csv").read() == "a,b\n1,2\n"
    with open("latest.csv", "a") as f:
        f.write("through the link\n")
    os.link("train.log", "hard.log")
    assert open("hard.log").read() == "existing log\n"


def test_a_script_may_chdir_into_a_folder_it_made(box: Sandbox, project: Path) -> None:
    os.makedirs("outputs/2024-01-01")
    os.chdir("outputs/2024-01-01")  # as Hydra does
    assert os.getcwd() == str(project / "outputs" / "2024-01-01")
    assert Path.cwd() == project / "outputs" / "2024-01-01"
    Path("config.yaml").write_text("lr: 0.1\n")
    assert open("../../data/train/a.csv").read() == "a,b\n1,2\n"  # real files, relatively
    assert os.listdir(".") == ["config.yaml"]
    os.chdir("../..")
    assert os.path.isfile("outputs/2024-01-01/config.yaml")


def test_references_taken_before_the_sandbox_are_redirected(project: Path, tmp_path: Path) -> None:
    # A module imported before the check that did ``from torch import save``.
    module = types.ModuleType("users_helpers")
    module.save = torch.save  # type: ignore[attr-defined]
    sys.modules["users_helpers"] = module
    try:
        with Sandbox(str(tmp_path / "scratch")).installed():
            module.save({"a": 1}, "held.pt")  # type: ignore[attr-defined]
            assert os.path.exists("held.pt")
        assert module.save is torch.save  # type: ignore[attr-defined]
    finally:
        del sys.modules["users_helpers"]


def test_a_replacement_kept_after_the_sandbox_is_the_real_function(
    project: Path, tmp_path: Path
) -> None:
    with Sandbox(str(tmp_path / "scratch")).installed():
        kept_open, kept_save = open, torch.save
    assert open is not kept_open
    with kept_open(tmp_path / "outside.txt", "w") as f:
        f.write("real")
    kept_save({}, tmp_path / "outside.pt")
    assert (tmp_path / "outside.txt").read_text() == "real" and (tmp_path / "outside.pt").exists()


def test_fsspec_local_files(box: Sandbox) -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("file")
    fs.makedirs("ckpt", exist_ok=True)
    with fs.open("ckpt/last.ckpt", "wb") as f:
        torch.save({"step": 3}, f)
    with fsspec.open("ckpt/meta.json", "w") as f:
        f.write("{}")
    assert sorted(os.path.basename(p) for p in fs.ls("ckpt")) == ["last.ckpt", "meta.json"]
    fs.mv("ckpt/meta.json", "ckpt/meta2.json")
    fs.rm("ckpt/last.ckpt")
    assert os.listdir("ckpt") == ["meta2.json"]


def test_tensorboard_summary_writer(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from torch.utils.tensorboard import SummaryWriter

    with Sandbox(str(tmp_path / "scratch")).installed():
        writer = SummaryWriter("runs/old")  # a folder the user has
        writer.add_scalar("loss", 1.0, 0)
        writer.flush()
        assert len(os.listdir("runs/old")) == 2
        # Not closed, as a script stopped mid-training leaves it.
    # Its thread flushes every two minutes and at exit: were it still open, this would write
    # an event file into the user's folder. The sandbox closed it while it caught the writes.
    with contextlib.suppress(OSError):
        writer.add_scalar("loss", 2.0, 1)
        writer.flush()


def test_trackers_are_told_to_stay_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    with Sandbox(str(tmp_path / "scratch")).installed() as box:
        assert os.environ["WANDB_MODE"] == "disabled"
        assert os.environ["MLFLOW_TRACKING_URI"] == "file://" + os.path.join(box.scratch, "mlruns")
        assert os.environ["NEPTUNE_MODE"] == "offline"
    assert os.environ["WANDB_MODE"] == "online"
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://tracking.example:5000"
    assert sandbox_mod.active() is None


def test_safetensors_files(box: Sandbox) -> None:
    pytest.importorskip("safetensors", reason="safetensors is not installed")
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    os.makedirs("hf")
    save_file({"w": torch.ones(2)}, "hf/model.safetensors")  # as save_pretrained does
    assert torch.equal(load_file("hf/model.safetensors")["w"], torch.ones(2))
    with safe_open("hf/model.safetensors", framework="pt") as f:
        assert list(f.keys()) == ["w"]


def test_temporary_files_are_real_inside_the_scratch_for_subprocesses(
    box: Sandbox, tmp_path: Path
) -> None:
    # A compiler run in a subprocess (torch.compile's C++ build) writes into folders the
    # script made with tempfile: they must exist on disk, and go with the scratch.
    import subprocess
    import tempfile

    folder = tempfile.mkdtemp()
    assert folder.startswith(box.scratch)
    subprocess.run(["sh", "-c", f"echo built > {folder}/out"], check=True)
    with open(os.path.join(folder, "out")) as f:
        assert f.read() == "built\n"
    assert os.environ["TMPDIR"] == os.path.dirname(folder)
