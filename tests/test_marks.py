"""The fires/silent marks hold real outcomes: a check that can no longer fire fails its
fires test, and a check that never runs fails its silent test (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FIRES = "tests/checks/test_parameters.py::test_loop_without_zero_grad_accumulates_gradients"
# Its own assertion only says "no finding": the mark must add that the check ran.
SILENT = "tests/checks/test_dataset.py::test_ignored_targets_are_not_counted_as_class_zero"


def _pytest(test: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=TESTS.parent,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


# The same tests pass unbroken in the suite itself; here they run only broken.


def test_a_fires_test_fails_when_its_check_can_no_longer_fire() -> None:
    broken = _pytest(FIRES, NNDOCTOR_TEST_NO_FINDINGS="zero-grad-missing")
    assert broken.returncode == 1, broken.stdout[-2000:]


def test_a_silent_test_fails_when_its_check_never_runs() -> None:
    broken = _pytest(SILENT, NNDOCTOR_TEST_SKIP="class-imbalance")
    assert broken.returncode == 1, broken.stdout[-2000:]
    assert "marked silent('class-imbalance') but it never ran and passed" in broken.stdout
