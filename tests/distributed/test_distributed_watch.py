"""``nndoctor watch`` under torchrun and ``nndoctor.watch`` inside a DDP script: every rank
watches, the ranks compare notes with one all-gather per interval, rank 0 alone prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from ranks_harness import EXAMPLES, HARD_TIMEOUT, ROOT, private_tmpdir

ENV = {**os.environ, "NNDOCTOR_DIST_EVERY": "4", "NNDOCTOR_DIST_TIMEOUT": "20"}


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    with private_tmpdir() as tmp:
        return _torchrun(args, tmp)


def _torchrun(args: tuple[str, ...], tmp: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HARD_TIMEOUT,
        env={**ENV, "TMPDIR": tmp},
    )


@pytest.mark.slow  # CI has the next case: the same command, one report from rank 0
def test_nndoctor_watch_under_torchrun_reports_once_from_rank0() -> None:
    done = torchrun(
        "-m", "nndoctor", "watch", str(EXAMPLES / "ddp_healthy.py"), "--steps", "12", "--every", "2"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("nndoctor watch ") == 1  # one summary line, rank 0's
    assert re.search(r"step\s+budget;\s+12\s+step\(s\)\s+seen", done.stderr)
    assert "distributed job: rank 0 of 2" in done.stderr


def test_nndoctor_watch_finds_gradients_never_synchronised() -> None:
    done = torchrun(
        "-m", "nndoctor", "watch", str(EXAMPLES / "ddp_no_sync.py"), "--steps", "12", "--every", "2"
    )
    assert done.returncode != 0  # an error alert: the job fails
    assert done.stderr.count("error grads-differ-across-ranks (ranks 0, 1") == 1
    assert "2 error(s)" in done.stderr


def test_watch_inside_a_ddp_script_gathers_alerts_on_rank0() -> None:
    bug = torchrun(str(EXAMPLES / "ddp_watch_api.py"), "--accumulate-without-sync")
    assert bug.returncode == 0, bug.stderr[-3000:]
    assert "rank 0: 2 alert(s) ['grads-differ-across-ranks', 'params-diverge-across-ranks']" in (
        bug.stdout
    )
    assert "rank 1: 0 alert(s)" in bug.stdout  # rank 1's alerts went to rank 0
    healthy = torchrun(str(EXAMPLES / "ddp_watch_api.py"))
    assert healthy.returncode == 0, healthy.stderr[-3000:]
    assert "rank 0: 0 alert(s)" in healthy.stdout
