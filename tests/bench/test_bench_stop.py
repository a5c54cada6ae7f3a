"""The bench's runner: how it stops a check it no longer waits for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from processes import living_in_group

from nndoctor.bench.runner import _kill

# A stand-in for a check: on SIGTERM it undoes what it made (a folder) and ends; a helper
# of its own (a replay server) sits in its process group.
CLEANS_UP = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    made = sys.argv[1]
    os.mkdir(made)
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    def stop(signum, frame):
        os.rmdir(made)
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_a_stopped_check_may_clean_up_and_nothing_of_its_group_outlives_it(
    tmp_path: Path,
) -> None:
    made = tmp_path / "made"
    child = subprocess.Popen(
        [sys.executable, "-c", CLEANS_UP, str(made)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    assert made.is_dir()
    _kill(child)
    assert child.returncode == 143  # ended by its own SIGTERM handler, not SIGKILL
    assert not made.exists()
    assert living_in_group(child.pid) == []
