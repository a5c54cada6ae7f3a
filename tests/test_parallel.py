"""``pytest --processes N`` (tests/parallel.py): every test runs once, in one process, and
a failure in any process fails the session.

The inner sessions are subprocesses. Their first file waits for the last file (which the
second process, walking from the back, takes first) to have run, so both processes surely
take part however slowly the second one starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import living_in_group

pytest_plugins = ["pytester"]

FIRST = """
import os, time
from pathlib import Path

def test_first():
    deadline = time.monotonic() + 120
    while not Path("last-ran").exists():
        assert time.monotonic() < deadline, "the second process never ran the last file"
        time.sleep(0.05)
    Path(f"ran-first-{os.getpid()}").touch()
"""

MIDDLE = """
import os
from pathlib import Path

def test_a():
    Path(f"ran-{__name__}-a-{os.getpid()}").touch()

def test_b():
    Path(f"ran-{__name__}-b-{os.getpid()}").touch()
"""

LAST = """
import os
from pathlib import Path

def test_last():
    Path(f"ran-last-{os.getpid()}").touch()
    Path("last-ran").touch()
    assert OK
"""


@pytest.fixture(autouse=True)
def _plugin_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))


def _session(pytester: pytest.Pytester, ok: bool) -> pytest.RunResult:
    pytester.makepyfile(
        test_0_first=FIRST,
        test_1_middle=MIDDLE,
        test_2_middle=MIDDLE,
        test_3_last=LAST.replace("OK", str(ok)),
    )
    return pytester.runpytest_subprocess("-p", "parallel", "--processes", "2")


def _ran(pytester: pytest.Pytester) -> dict[str, str]:
    return {
        p.name.rsplit("-", 1)[0]: p.name.rsplit("-", 1)[1]
        for p in Path(pytester.path).glob("ran-*")
    }


def test_two_processes_share_the_files_and_run_every_test_once(pytester: pytest.Pytester) -> None:
    result = _session(pytester, ok=True)
    assert result.ret == 0, result.stdout.str()
    ran = _ran(pytester)
    assert sorted(ran) == sorted(
        [
            "ran-first",
            "ran-last",
            *(f"ran-test_{i}_middle-{t}" for i in (1, 2) for t in "ab"),
        ]
    )
    assert len(list(Path(pytester.path).glob("ran-*"))) == 6, "a test ran twice"
    assert ran["ran-first"] != ran["ran-last"], "one process ran both ends"
    result.stdout.fnmatch_lines(["*pytest process 2, exit code 0*"])


def test_a_failure_in_the_second_process_fails_the_session(pytester: pytest.Pytester) -> None:
    result = _session(pytester, ok=False)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*pytest process 2, exit code 1*", "*FAILED*test_last*"])


def test_no_test_at_all_is_still_exit_code_5(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("-p", "parallel", "--processes", "2")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


BLOCKS = """
import os, time
from pathlib import Path

def test_blocks():
    Path(f"pid-{os.getpid()}").touch()
    time.sleep(600)
"""


def test_the_second_process_ends_when_the_first_is_killed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=BLOCKS, test_b=BLOCKS)
    # A killed first process removes nothing: its claims and the helper's folder stay here.
    temp = pytester.mkdir("tmp")
    first = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "parallel", "--processes", "2"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    try:
        deadline = time.monotonic() + 120
        while len(list(Path(pytester.path).glob("pid-*"))) < 2:
            assert time.monotonic() < deadline, "the two processes never both ran a test"
            time.sleep(0.05)
        first.kill()
        first.wait()
        assert living_in_group(first.pid) == []
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
