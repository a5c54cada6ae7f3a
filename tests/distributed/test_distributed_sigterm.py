"""A launcher's SIGTERM after the script ended never ends the rank before its report."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from nndoctor.capture.process_state import process_state_restored
from nndoctor.distributed.capture import DistributedCapture


def test_after_the_script_a_sigterm_is_only_noted_until_teardown(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    dc = DistributedCapture(timeout=5)
    try:
        with process_state_restored(str(tmp_path), dc.held_signals):
            # What activation does once a group of several ranks exists.
            dc._sigterm = signal.signal(signal.SIGTERM, dc._on_sigterm)
            dc.script_ended()
        # The process state is put back, but the default handler (which would end the
        # process, from whichever thread the signal reaches) is not: the SIGTERM is noted.
        assert signal.getsignal(signal.SIGTERM) == dc._note_terminated
        os.kill(os.getpid(), signal.SIGTERM)
        assert dc.terminated
        dc.teardown(ending=False)
        assert signal.getsignal(signal.SIGTERM) == before
    finally:
        signal.signal(signal.SIGTERM, before)


def test_while_the_script_runs_a_sigterm_stops_it_once() -> None:
    from nndoctor.capture.runner import StopCapture

    before = signal.getsignal(signal.SIGTERM)
    dc = DistributedCapture(timeout=5)
    try:
        dc._sigterm = signal.signal(signal.SIGTERM, dc._on_sigterm)
        stopped = 0
        for _ in range(2):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            except StopCapture:
                stopped += 1
        # The second one must not interrupt the stop the first one started.
        assert stopped == 1 and dc.terminated
        dc.teardown(ending=True)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
