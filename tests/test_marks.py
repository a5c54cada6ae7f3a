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


def _pytest(*tests: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=TESTS.parent,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


# The same tests pass unbroken in the suite itself; here they run only broken, both in one
# inner session (each break touches only its own check).
def test_fires_and_silent_tests_fail_when_their_check_cannot_fire_or_never_runs() -> None:
    broken = _pytest(
        FIRES,
        SILENT,
        NNDOCTOR_TEST_NO_FINDINGS="zero-grad-missing",
        NNDOCTOR_TEST_SKIP="class-imbalance",
    )
    assert broken.returncode == 1, broken.stdout[-2000:]
    # The fires test fails in its body; the silent one passes there and errs at teardown.
    assert f"FAILED {FIRES}" in broken.stdout, broken.stdout[-2000:]
    assert f"ERROR {SILENT}" in broken.stdout, broken.stdout[-2000:]
    assert "marked silent('class-imbalance') but it never ran and passed" in broken.stdout
