"""``pytest --processes N``: the suite in N processes at once, sharing its test files.

Most of the suite is one Python thread waiting on another process or on small tensor
ops, so a two-core machine runs it at little more than one core. With ``--processes 2``
the session starts one more pytest over the same arguments; each process runs whole test
files (module fixtures stay in one process), claiming each file before running it by
creating a folder named after it, which only one process can do. The first process walks
the files from the front and the second from the back, so they meet wherever the work
is. Each process's torch gets its share of the cores (``OMP_NUM_THREADS``, for what the
tests start too). The first waits for the others, prints what they printed, and fails when
any of them failed. Without the option nothing changes.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

_CLAIMS = "--claims-folder"
_INDEX = "--process-index"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nndoctor")
    group.addoption(
        "--processes",
        type=int,
        default=1,
        help="run the test files in this many pytest processes at once (default 1)",
    )
    # Given to the processes the first one starts: where files are claimed, and which
    # process each is (the first walks the files from the front, the second from the back).
    group.addoption(_CLAIMS, default=None, help=argparse.SUPPRESS)
    group.addoption(_INDEX, type=int, default=0, help=argparse.SUPPRESS)


def pytest_configure(config: pytest.Config) -> None:
    processes = config.getoption("processes")
    if processes > 1 and not config.getoption(_CLAIMS):
        # The cores are shared out among the processes (and what their tests start),
        # rather than each process's torch using them all and taking turns.
        threads = str(max(1, (os.cpu_count() or 1) // processes))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = threads
        torch.set_num_threads(int(threads))


def _die_with_this_process() -> None:
    """In a helper, before it runs: end it when the process that started it ends, however
    that ends (Linux's parent-death signal; elsewhere nothing)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Helpers:
    """The other processes of a ``--processes`` session, started by the first one."""

    def __init__(self, config: pytest.Config, count: int) -> None:
        self.claims = Path(tempfile.mkdtemp(prefix="pytest-claims-"))
        self.temps = [Path(tempfile.mkdtemp(prefix="pytest-helper-")) for _ in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        args = list(config.invocation_params.args)
        for index, temp in enumerate(self.temps, start=1):
            with open(temp / "output.txt", "wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "pytest",
                            *args,
                            "--processes=1",
                            f"{_CLAIMS}={self.claims}",
                            f"{_INDEX}={index}",
                            f"--basetemp={temp / 'tmp'}",
                            "-p",
                            "no:cacheprovider",
                            "--color=no",
                        ],
                        cwd=config.invocation_params.dir,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_die_with_this_process if os.name == "posix" else None,
                    )
                )

    def wait(self) -> list[int]:
        return [proc.wait() for proc in self.procs]

    def close(self) -> None:
        """Stop what still runs and remove the folders (idempotent)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.claims, ignore_errors=True)
        for temp in self.temps:
            shutil.rmtree(temp, ignore_errors=True)


_HELPERS = pytest.StashKey[_Helpers]()


def _claims_folder(config: pytest.Config) -> Path | None:
    given = config.getoption(_CLAIMS)
    if given:
        return Path(given)
    helpers = config.stash.get(_HELPERS, None)
    return helpers.claims if helpers else None


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    count = config.getoption("processes") - 1
    if count > 0 and not config.getoption(_CLAIMS) and not config.option.collectonly:
        helpers = config.stash[_HELPERS] = _Helpers(config, count)
        config.add_cleanup(helpers.close)


def _files(items: list[pytest.Item]) -> list[list[pytest.Item]]:
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(item.nodeid.split("::")[0], []).append(item)
    return list(groups.values())


class _Claims:
    """The files of one process's walk, each run by the first process to claim it."""

    def __init__(self, folder: Path, files: list[list[pytest.Item]]) -> None:
        self.folder, self.files, self.at = folder, files, 0

    def _mark(self, items: list[pytest.Item]) -> Path:
        return self.folder / items[0].nodeid.split("::")[0].replace("/", "%")

    def claim(self) -> list[pytest.Item] | None:
        """The tests of the next file on the walk that no process has claimed, now ours."""
        while self.at < len(self.files):
            items = self.files[self.at]
            self.at += 1
            try:
                self._mark(items).mkdir()
            except FileExistsError:
                continue
            return items
        return None

    def likely_next(self) -> pytest.Item | None:
        """The first test of the next file on the walk unclaimed for now, not claimed: the
        last test of a file tears down what that test does not share with it."""
        for items in self.files[self.at :]:
            if not self._mark(items).exists():
                return items[0]
        return None


def pytest_runtestloop(session: pytest.Session) -> bool | None:
    claims = _claims_folder(session.config)
    if claims is None or session.config.option.collectonly:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted(f"{session.testsfailed} errors during collection")
    files = _files(session.items)
    if session.config.getoption(_INDEX) == 1:
        files.reverse()
    walk = _Claims(claims, files)
    current = walk.claim()
    while current is not None:
        for i, item in enumerate(current):
            nextitem = current[i + 1] if i + 1 < len(current) else walk.likely_next()
            item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            if session.shouldfail:
                raise session.Failed(session.shouldfail)
            if session.shouldstop:
                raise session.Interrupted(session.shouldstop)
        following = walk.claim()
        if following is not None and following[0] is not nextitem:
            # Another process took the file guessed at: tear down what the one claimed does
            # not share with the last test (a package's fixtures), as pytest would have.
            session._setupstate.teardown_exact(following[0])
        current = following
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    helpers = session.config.stash.get(_HELPERS, None)
    if helpers is None:
        return
    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        helpers.close()
        return
    codes = helpers.wait()
    failed = [code for code in codes if code != pytest.ExitCode.OK]
    if failed and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = failed[0]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    helpers = terminalreporter.config.stash.get(_HELPERS, None)
    if helpers is None:
        return
    for index, (temp, proc) in enumerate(zip(helpers.temps, helpers.procs, strict=True), start=2):
        if proc.returncode is None:
            continue
        log = temp / "output.txt"
        terminalreporter.section(f"pytest process {index}, exit code {proc.returncode}")
        terminalreporter.write(log.read_text(errors="replace") if log.exists() else "")
    terminalreporter.section("pytest process 1 (the counts below are its own)")
