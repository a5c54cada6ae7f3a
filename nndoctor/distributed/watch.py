"""``nndoctor.watch`` and ``nndoctor watch`` in a distributed job: the ranks compare notes.

A Watcher attached on the ranks of a job (``nndoctor watch`` under torchrun or srun, or
``nndoctor.watch(model, optimizer)`` in a DDP script) joins the job as it attaches
(:func:`join`, called by the Watcher). When every rank joins:

- every ``NNDOCTOR_DIST_EVERY`` steps (50 by default), and at a step where a rank wants to
  stop, the ranks exchange their notes with one all-gather on nndoctor's own gloo group
  (with a timeout): the alerts raised since the last exchange, the per-parameter gradient
  and weight norms of the steps they sampled, whether they want to stop, whether their run
  ended;
- rank 0 prints the other ranks' alerts, naming the rank, and adds them to its report; the
  other ranks print nothing;
- rank 0 compares the sampled norms at the steps two ranks both sampled: gradients that
  differ after DDP's all-reduce and parameters that drift apart raise the alerts of
  ``check``'s grads-differ-across-ranks and params-diverge-across-ranks, once each;
- a stop (``nndoctor watch --steps``) is agreed at an exchange: every rank stops there;
- a rank whose run ends while another's goes on is reported (uneven-step-counts).

The job's own collectives keep the timeout the script gave them: this is the real run. A
Watcher attached on some ranks only (``if rank == 0: with nndoctor.watch(...)``) does not
join: rank 0 waits ``JOIN_WAIT`` seconds for the others to attach, then watches alone.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch.distributed as dist

from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.distributed.channel import Channel, RankLost, collective_timeout
from nndoctor.report.model import Finding, Severity, Where

DEFAULT_EVERY = 50
EVERY_ENV = "NNDOCTOR_DIST_EVERY"
# Seconds rank 0 waits for every rank's Watcher to attach before watching alone.
JOIN_WAIT = 10.0
# Sampled steps of each rank kept on rank 0 for comparison.
KEPT_SAMPLES = 64

_joins = itertools.count()  # the same sequence on every rank that watches
# Set when this process's Watcher joined a job as a rank other than 0.
_follower = False


def _mark_follower() -> None:
    global _follower
    _follower = True


def reported_by_rank0() -> bool:
    """Whether this process's watch joined a distributed job as a rank other than 0: its
    alerts went to rank 0, which alone prints and writes the job's report."""
    return _follower


def exchange_every() -> int:
    """Steps between two exchanges: NNDOCTOR_DIST_EVERY, or 50."""
    try:
        value = int(os.environ.get(EVERY_ENV, ""))
    except ValueError:
        return DEFAULT_EVERY
    return value if value > 0 else DEFAULT_EVERY


@dataclass
class _Notes:
    """What one rank sends at an exchange."""

    rank: int
    step: int
    stop: bool = False
    ended: bool = False
    alerts: list[Finding] = field(default_factory=list)
    # (step, gradient norms, weight norms) of the steps sampled since the last exchange
    samples: list[tuple[int, dict[str, float], dict[str, float]]] = field(default_factory=list)


def join(watcher: Any) -> WatchJob | None:
    """Join the distributed job ``watcher`` runs in, when there is one of several ranks and
    every rank's Watcher joins; None otherwise (the Watcher then watches its rank alone)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    try:
        if not _everyone_joins(next(_joins)):
            watcher.report.notes.append(
                f"distributed job: not every rank attached a Watcher within {JOIN_WAIT:.0f}s; "
                f"this is rank {dist.get_rank()}'s own watch"
            )
            return None
        return WatchJob(watcher)
    except Exception as exc:  # noqa: BLE001 - watching one rank is better than failing the run
        watcher.report.notes.append(f"distributed job: could not join the other ranks ({exc})")
        return None


def _everyone_joins(n: int) -> bool:
    """Whether every rank attaches a Watcher: each sets a key in the job's store, rank 0
    waits for all of them (``JOIN_WAIT``) and writes the decision, the others read it."""
    try:
        store = dist.distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - no store to ask: every rank is taken to watch
        return True
    rank, world = dist.get_rank(), dist.get_world_size()
    prefix = f"nndoctor/watch/{n}"
    store.set(f"{prefix}/{rank}", "1")
    if rank == 0:
        try:
            store.wait([f"{prefix}/{r}" for r in range(world)], timedelta(seconds=JOIN_WAIT))
            decision = "join"
        except Exception:  # noqa: BLE001 - a timeout: some rank does not watch
            decision = "alone"
        store.set(f"{prefix}/decision", decision)
        return decision == "join"
    try:
        store.wait([f"{prefix}/decision"], timedelta(seconds=JOIN_WAIT + collective_timeout()))
    except Exception:  # noqa: BLE001 - rank 0 does not watch
        return False
    return store.get(f"{prefix}/decision") == b"join"


class WatchJob:
    """A Watcher's part in a distributed job (see the module docstring)."""

    def __init__(self, watcher: Any) -> None:
        self.watcher = watcher
        self.channel = Channel(timeout=2 * collective_timeout())
        self.rank, self.world = self.channel.rank, self.channel.world
        self.every = exchange_every()
        self.open = True
        self._sent_alerts = 0
        self._sent_step = -1
        self._own_callback = watcher.on_step_end
        watcher.on_step_end = self._on_step_end
        if self.rank != 0:
            _mark_follower()
            watcher.sink.quiet = True  # rank 0 alone prints
        self._samples: dict[int, dict[int, tuple[dict[str, float], dict[str, float]]]] = {}
        self._raised: set[str] = set()
        self._ended: dict[int, int] = {}
        self._destroy_deferred = False
        self._original_destroy = dist.destroy_process_group
        dist.destroy_process_group = self._destroy  # type: ignore[assignment]
        watcher.report.notes.append(
            f"distributed job: rank {self.rank} of {self.world}; the ranks compare notes every "
            f"{self.every} steps{'' if self.rank == 0 else ' and rank 0 reports'}"
        )

    def _destroy(self, group: Any = None) -> None:
        # Destroying the default group destroys nndoctor's too: deferred to the last exchange.
        if self.open and (group is None or group is dist.GroupMember.WORLD):
            self._destroy_deferred = True
            return
        self._original_destroy(group)

    # -- during the run -------------------------------------------------------------------
    def _on_step_end(self, step: int) -> None:
        stop: BaseException | None = None
        if self._own_callback is not None:
            try:
                self._own_callback(step)
            except BaseException as exc:  # noqa: BLE001 - a stop (budget) is agreed first
                stop = exc
        if self.open and (step % self.every == 0 or stop is not None):
            if self._exchange(step, stop=stop is not None, ended=False) and stop is None:
                from nndoctor.capture.runner import StopCapture

                stop = StopCapture("step budget")
        if stop is not None:
            raise stop

    def leave(self) -> None:
        """The Watcher detaches: the last exchange, then nndoctor's group is closed. Never
        raises."""
        try:
            if self.open:
                self._exchange(self.watcher.step, stop=True, ended=True)
        except Exception as exc:  # noqa: BLE001 - the report must still be filled
            self.watcher.report.notes.append(f"distributed job: the last exchange failed ({exc})")
        finally:
            self.open = False
            self.channel.close()
            dist.destroy_process_group = self._original_destroy  # type: ignore[assignment]
            if self._destroy_deferred and dist.is_initialized():
                try:
                    self._original_destroy()
                except Exception:  # noqa: BLE001 - the script meant it destroyed; it nearly is
                    pass

    def _exchange(self, step: int, *, stop: bool, ended: bool) -> bool:
        """One all-gather of every rank's notes; whether any rank wants to stop."""
        notes = self._notes(step, stop=stop, ended=ended)
        try:
            everyone = self.channel.all_gather(notes)
        except RankLost as lost:
            self.open = False
            self.watcher.sink.note(
                f"rank {self.rank} lost the other ranks at step {step} ({lost}); watching alone"
            )
            return False
        if self.rank == 0:
            self._fold([n for n in everyone if isinstance(n, _Notes)])
        if any(n.ended for n in everyone) and not all(n.ended for n in everyone):
            self.open = False  # a rank's run is over: no more exchanges
        return any(n.stop for n in everyone)

    def _notes(self, step: int, *, stop: bool, ended: bool) -> _Notes:
        report = self.watcher.report
        alerts = [a for a in report.alerts[self._sent_alerts :] if a.where.ranks is None]
        self._sent_alerts = len(report.alerts)
        fresh = [s for s in self.watcher.series.samples if s.step > self._sent_step]
        if fresh:
            self._sent_step = fresh[-1].step
        samples = [(s.step, dict(s.grad_norms), dict(s.weight_norms)) for s in fresh]
        return _Notes(self.rank, step, stop, ended, alerts if self.rank else [], samples)

    # -- rank 0 -------------------------------------------------------------------------
    def _fold(self, everyone: list[_Notes]) -> None:
        mine = {(a.check, a.where.module) for a in self.watcher.report.alerts}
        for notes in everyone:
            kept = self._samples.setdefault(notes.rank, {})
            for step, grads, weights in notes.samples:
                kept[step] = (grads, weights)
            for old in sorted(kept)[:-KEPT_SAMPLES]:
                del kept[old]
            for alert in notes.alerts:
                if (alert.check, alert.where.module) in mine:
                    continue  # rank 0 said it already
                mine.add((alert.check, alert.where.module))
                self._emit(
                    dataclasses.replace(
                        alert, where=dataclasses.replace(alert.where, ranks=(notes.rank,))
                    )
                )
            if notes.ended:
                self._ended[notes.rank] = notes.step
        self._compare()
        self._uneven(everyone)

    def _emit(self, alert: Finding) -> None:
        self.watcher.report.alerts.append(alert)
        self.watcher.sink.alert(alert)
        if self.watcher.on_alert is not None:
            try:
                self.watcher.on_alert(alert)
            except Exception:  # noqa: BLE001 - the user's callback must not stop the exchange
                pass

    def _compare(self) -> None:
        base = self._samples.get(0, {})
        rtol = DEFAULT_THRESHOLDS.rank_checksum_rtol
        for rank, kept in sorted(self._samples.items()):
            if rank == 0:
                continue
            for step in sorted(set(base) & set(kept)):
                for which, (check, title, reasons) in enumerate(_REPLICA_ALERTS):
                    mine, theirs = base[step][which], kept[step][which]
                    differ = [n for n in mine if n in theirs and _differ(mine[n], theirs[n], rtol)]
                    if differ and check not in self._raised:
                        self._raised.add(check)
                        self._emit(
                            _replica_alert(check, title, reasons, step, rank, differ, len(mine))
                        )

    def _uneven(self, everyone: list[_Notes]) -> None:
        steps = {n.rank: n.step for n in everyone}
        ended = {n.rank for n in everyone if n.ended}
        uneven = (ended and len(ended) < len(everyone)) or (
            len(ended) == len(everyone) and len(set(steps.values())) > 1
        )
        if not uneven or "uneven-step-counts" in self._raised:
            return
        self._raised.add("uneven-step-counts")
        details = ", ".join(f"rank {r}: {s}" for r, s in sorted(steps.items()))
        self._emit(
            Finding(
                check="uneven-step-counts",
                reasons=[3],
                severity=Severity.ERROR,
                title="The ranks take different numbers of steps",
                message=(
                    f"At the exchange, the ranks had taken different numbers of steps or some "
                    f"had ended ({details}; ended: {sorted(ended)}): a rank that stops early "
                    "leaves the others blocked in DDP's all-reduce until its timeout."
                ),
                fix=(
                    "Give every rank the same number of batches (DistributedSampler, or "
                    "drop_last=True), or wrap uneven loops in DDP's model.join()."
                ),
                where=Where(step=min(steps.values()), ranks=tuple(sorted(ended or steps))),
                evidence={"steps": {str(r): s for r, s in sorted(steps.items())}},
            )
        )


# (check, title, reasons) for the sampled gradient norms (0) and weight norms (1).
_REPLICA_ALERTS = (
    ("grads-differ-across-ranks", "Gradients differ across ranks after the all-reduce", [26]),
    ("params-diverge-across-ranks", "The ranks' parameters have diverged", [23, 26]),
)


def _differ(a: float, b: float, rtol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) != math.isnan(b)
    return abs(a - b) > rtol * max(abs(a), abs(b), 1e-30)


def _replica_alert(
    check: str, title: str, reasons: list[int], step: int, rank: int, names: list[str], total: int
) -> Finding:
    what = "gradients" if check.startswith("grads") else "weights"
    return Finding(
        check=check,
        reasons=list(reasons),
        severity=Severity.ERROR,
        title=title,
        message=(
            f"At step {step}, {len(names)} of {total} parameters had different {what} on ranks 0 "
            f"and {rank} ({', '.join(names[:3])}{', …' if len(names) > 3 else ''}): the replicas "
            "are not being kept identical (a parameter outside DDP, a backward pass under "
            "no_sync() at the step's last micro-batch, or a rank that skipped a step)."
        ),
        fix=(
            "Wrap every trained module in the one DDP model, and let the last backward pass of "
            "an accumulated step run outside no_sync()."
        ),
        where=Where(step=step, ranks=(0, rank)),
        evidence={"parameters": names[:10], "parameters_compared": total},
    )
