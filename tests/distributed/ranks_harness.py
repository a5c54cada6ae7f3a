"""Running a two-rank job (gloo, CPU) for the tests.

Rank 0 runs in the test's own process (``check_script`` through the engine, so the checks
it runs count for the fires/silent marks); the other ranks run ``python -m nndoctor check``
in subprocesses started the way torchrun or srun start workers (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT), each with a hard timeout. nndoctor's collective timeout is a few
seconds here, so a test where a rank stops answering ends within it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report
from nndoctor.report.progress import ProgressEvent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "distributed"
# nndoctor's collective timeout in these tests (NNDOCTOR_DIST_TIMEOUT): the job's own
# collectives time out after it, nndoctor's after twice it.
DIST_TIMEOUT = 6.0
# No subprocess of a test may outlive this.
HARD_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    return {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(world),
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(world),
        "NNDOCTOR_DIST_TIMEOUT": str(DIST_TIMEOUT),
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def cli_args(script: Path, select: tuple[str, ...], steps: int, args: list[str]) -> list[str]:
    out = [sys.executable, "-m", "nndoctor", "check", str(script), "--steps", str(steps)]
    for s in select:
        out += ["--select", s]
    return [*out, "--", *args] if args else out


@contextlib.contextmanager
def private_tmpdir() -> Iterator[str]:
    """A temp folder for subprocesses (their TMPDIR), removed afterwards: a rank killed on
    purpose cannot remove its own scratch folder, and torchrun leaves its own behind."""
    folder = tempfile.mkdtemp(prefix="ranks-harness-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def other_ranks(
    script: Path,
    args: list[str],
    port: int,
    *,
    world: int = 2,
    select: tuple[str, ...] = (),
    steps: int = 20,
    extra_env: dict[str, str] | None = None,
    options: tuple[str, ...] = (),
) -> Iterator[list[subprocess.Popen[str]]]:
    """Ranks 1..world-1 as subprocesses; killed if still running when the block ends."""
    with (
        private_tmpdir() as tmp,
        _started(script, args, port, world, select, steps, extra_env, options, tmp) as procs,
    ):
        yield procs


@contextlib.contextmanager
def _started(
    script: Path,
    args: list[str],
    port: int,
    world: int,
    select: tuple[str, ...],
    steps: int,
    extra_env: dict[str, str] | None,
    options: tuple[str, ...],
    tmp: str,
) -> Iterator[list[subprocess.Popen[str]]]:
    procs = []
    for rank in range(1, world):
        env = {**os.environ, **rank_env(rank, world, port), **(extra_env or {}), "TMPDIR": tmp}
        command = cli_args(script, select, steps, args)
        command[5:5] = list(options)
        procs.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is not None:
                continue
            try:
                p.wait(timeout=HARD_TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def check_rank0(
    monkeypatch: pytest.MonkeyPatch,
    script: str | Path,
    args: list[str] | None = None,
    *,
    select: tuple[str, ...] = (),
    steps: int = 20,
    other_env: dict[str, str] | None = None,
    on_step: Callable[[int, list[subprocess.Popen[str]]], None] | None = None,
    timeout: float = 60.0,
) -> tuple[Report, list[subprocess.CompletedProcess[str]]]:
    """Rank 0's report of a two-rank job of ``script`` (rank 1 in a subprocess), and how
    the other ranks ended (their exit code and output). ``on_step(step, others)`` is called
    as rank 0 observes each step."""
    path = Path(script) if Path(script).is_absolute() else EXAMPLES / script
    port = free_port()
    for key, value in rank_env(0, 2, port).items():
        monkeypatch.setenv(key, value)
    done: list[subprocess.CompletedProcess[str]] = []
    with other_ranks(
        path,
        list(args or []),
        port,
        select=select,
        steps=steps,
        extra_env=other_env,
        options=("--timeout", str(timeout)),
    ) as procs:

        def progress(event: ProgressEvent) -> None:
            if on_step is not None and event.phase == "observe":
                on_step(event.step, procs)

        report = check_script(
            str(path),
            list(args or []),
            steps=steps,
            timeout=timeout,
            selection=Selection(select=select),
            progress=progress,
        )
        for p in procs:
            out, err = p.communicate(timeout=HARD_TIMEOUT)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return report, done


def findings_of(report: Report, check: str) -> list[Any]:
    return [f for f in report.findings if f.check == check]


def run_cli_ranks(
    script: Path,
    args: list[str],
    *,
    nndoctor_args: tuple[str, ...] = (),
    kill_rank0_at_step: int | None = None,
) -> list[subprocess.CompletedProcess[str]]:
    """Both ranks as ``python -m nndoctor check`` subprocesses (as srun starts them); rank 0
    is killed once it shows step ``kill_rank0_at_step`` (its progress lines on stdout)."""
    with private_tmpdir() as tmp:
        return _cli_ranks(script, args, nndoctor_args, kill_rank0_at_step, tmp)


def _cli_ranks(
    script: Path,
    args: list[str],
    nndoctor_args: tuple[str, ...],
    kill_rank0_at_step: int | None,
    tmp: str,
) -> list[subprocess.CompletedProcess[str]]:
    port = free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, **rank_env(rank, 2, port), "TMPDIR": tmp}
        command = cli_args(script, (), 20, args)
        command[5:5] = list(nndoctor_args)
        procs.append(
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    seen = ""
    try:
        if kill_rank0_at_step is not None:
            deadline = time.monotonic() + HARD_TIMEOUT
            assert procs[0].stdout is not None
            for line in procs[0].stdout:
                seen += line
                if f"step {kill_rank0_at_step} of" in line or time.monotonic() > deadline:
                    break
            procs[0].kill()
        results = []
        for rank, p in enumerate(procs):
            out, err = p.communicate(timeout=HARD_TIMEOUT)
            shown = seen + out if rank == 0 else out
            results.append(subprocess.CompletedProcess(p.args, p.returncode, shown, err))
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
