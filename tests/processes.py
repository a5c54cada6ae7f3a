"""Processes a test started, looked up in /proc: what of a process group still runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest


def living_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that still run, after waiting up to 10 s for them to
    end (a zombie waiting for its reaper is not running)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc")
    deadline = time.monotonic() + 10
    while True:
        living = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after it.
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                living.append(int(entry.name))
        if not living or time.monotonic() > deadline:
            return living
        time.sleep(0.1)
