"""nndoctor's own channel between the ranks of a distributed job.

Every collective nndoctor makes goes through a gloo group of its own, created with a
timeout right after the job's default group exists, so that its traffic never mixes with
the job's (NCCL or gloo) and a rank that dies or stops answering becomes an error on the
others within the timeout, never a hang. After the first error the channel is closed for
good on that rank (a gloo group that timed out cannot be trusted again): later calls raise
:class:`RankLost` at once, and the caller carries on alone.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any

import torch
import torch.distributed as dist

# Seconds nndoctor's own collectives wait for the other ranks (NNDOCTOR_DIST_TIMEOUT).
DEFAULT_TIMEOUT = 60.0
TIMEOUT_ENV = "NNDOCTOR_DIST_TIMEOUT"


def collective_timeout() -> float:
    """The timeout of nndoctor's collectives, in seconds: NNDOCTOR_DIST_TIMEOUT or 60."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


class RankLost(RuntimeError):
    """A collective failed: a rank died, or did not answer within the timeout.

    ``ranks`` names the ranks that did not answer when gloo's monitored barrier could
    tell (None when it could not)."""

    def __init__(self, message: str, ranks: list[int] | None = None) -> None:
        super().__init__(message)
        self.ranks = ranks


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


class Channel:
    """A gloo group over every rank of the default group, with ``timeout`` seconds per call.

    Creating it is itself collective: every rank must build it at the same point of the
    job (right after the default group is initialised)."""

    def __init__(self, timeout: float) -> None:
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.timeout = timeout
        self.group: Any = dist.new_group(
            backend="gloo", timeout=datetime.timedelta(seconds=timeout)
        )
        self.lost: RankLost | None = None

    @property
    def open(self) -> bool:
        return self.lost is None and self.group is not None

    def _call(self, what: str, fn: Any) -> Any:
        if self.lost is not None:
            raise self.lost
        if self.group is None:
            raise RankLost(f"{what}: nndoctor's channel is closed")
        try:
            return fn()
        except RankLost as exc:
            self.lost = exc
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of a collective means a lost peer
            self.lost = RankLost(f"{what} failed: {_first_line(exc)}", _missing_ranks(exc))
            raise self.lost from exc

    def all_max(self, values: list[int]) -> list[int]:
        """The element-wise maximum of ``values`` over every rank (one all-reduce)."""

        def run() -> list[int]:
            t = torch.tensor(values, dtype=torch.int64)
            dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
            return [int(v) for v in t.tolist()]

        return self._call("an all-reduce of nndoctor's stop agreement", run)

    def wait_for_all(self, timeout: float | None = None) -> None:
        """Wait until every rank arrives (gloo's monitored barrier: on rank 0 the error
        names the ranks that did not arrive)."""
        seconds = self.timeout if timeout is None else timeout
        self._call(
            "a barrier",
            lambda: dist.monitored_barrier(
                group=self.group,
                timeout=datetime.timedelta(seconds=seconds),
                wait_all_ranks=True,
            ),
        )

    def gather_to_leader(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order), None on the other ranks."""

        def run() -> list[Any] | None:
            out: list[Any] | None = [None] * self.world if self.rank == 0 else None
            dist.gather_object(obj, out, dst=0, group=self.group)
            return out

        return self._call("gathering the ranks' results on rank 0", run)

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (one collective)."""

        def run() -> list[Any]:
            out: list[Any] = [None] * self.world
            dist.all_gather_object(out, obj, group=self.group)
            return out

        return self._call("exchanging the ranks' notes", run)

    def close(self) -> None:
        """Destroy the group (locally; gloo needs no peer for that)."""
        group, self.group = self.group, None
        if group is None:
            return
        try:
            dist.destroy_process_group(group)
        except Exception:  # noqa: BLE001 - the default group may already be gone
            pass


def _missing_ranks(exc: BaseException) -> list[int] | None:
    """The ranks a monitored barrier names as missing ("Ranks 1, 3 failed to pass ...")."""
    match = re.search(r"Ranks? ([\d, ]+) failed to pass monitoredBarrier", str(exc))
    if match is None:
        return None
    return [int(r) for r in re.findall(r"\d+", match.group(1))]
