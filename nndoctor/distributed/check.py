"""``nndoctor check`` on one rank of a distributed job; rank 0 alone reports.

After the capture (every rank stopped at the same agreed step, see
:mod:`nndoctor.distributed.capture`):

- every rank other than 0 runs the observation checks on its own recording, sends its
  facts (:class:`~nndoctor.probes.distributed.RankFacts`), findings and check statuses to
  rank 0 in one gather, then waits at a barrier (with a timeout) until rank 0 is done;
- rank 0 gathers them, runs every check on its own recording, the distributed checks on the
  facts of all ranks, and the experiments on copies, alone, on the module without its DDP
  wrapper (SyncBatchNorm layers of the copy compute local statistics), then merges: a
  finding seen on some ranks only names them (``where.ranks``), a check's status is its
  worst on any rank;
- a rank that died or did not answer within the timeout is named in the report; a rank
  that loses rank 0 reports on its own, saying so.

Replays of the script (experiments that re-run it in a subprocess) are not run: a single
process cannot re-run one rank of a job. With FSDP the parameters are shards: the checks
observe, the experiments on copies are skipped with that reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nndoctor.distributed.capture import DistributedCapture
from nndoctor.distributed.channel import RankLost
from nndoctor.distributed.replica import local_copy, shard_replica
from nndoctor.engine import Selection
from nndoctor.probes.distributed import DistributedRecord, RankFacts, SourceFacts
from nndoctor.report.model import CheckResult, Finding, Report, Status

if TYPE_CHECKING:
    from nndoctor.capture.runner import Capture
    from nndoctor.checks.registry import CheckSpec

# Seconds the other ranks wait for rank 0 beyond its experiment budget (twice that budget,
# since one experiment may run past it) and nndoctor's collective timeout.
RELEASE_SLACK = 120.0


@dataclass(frozen=True)
class RankSelection(Selection):
    """A :class:`Selection` that leaves the experiments out on this rank, saying why."""

    experiments_off: str = ""

    def why_not(self, spec: CheckSpec) -> str | None:
        why = super().why_not(spec)
        if why is None and self.experiments_off and spec.kind == "experiment":
            return self.experiments_off
        return why


@dataclass
class RankResult:
    """What a rank sends to rank 0: its facts, findings and check statuses."""

    facts: RankFacts
    findings: list[Finding]
    checks: list[CheckResult]


def rank_facts(capture: Capture, dc: DistributedCapture) -> RankFacts:
    """This rank's facts: from its recording and its rank probe."""
    rec = capture.recording
    exc = capture.exception
    facts = RankFacts(
        rank=dc.rank,
        world=dc.world,
        backend=dc.backend,
        steps=capture.steps,
        stop_reason=capture.stop_reason,
        error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if exc is not None
        else None,
        wrapper=dc.wrapper,
        sharded=dc.wrapper == "FSDP",
        source=dc.source if dc.source is not None else SourceFacts(),
    )
    for s in rec.steps:
        if s.sample_fingerprints:
            facts.sample_fingerprints[s.step] = list(s.sample_fingerprints)
        if s.inputs is not None and s.inputs.measured and s.inputs.shape:
            facts.batch_fingerprints[s.step] = tuple(s.inputs.fingerprint)  # type: ignore[assignment]
            facts.batch_sizes[s.step] = int(s.inputs.shape[0])
    first = next((s for s in rec.steps if s.hyperparameters), None)
    if first is not None:
        facts.learning_rates = [
            float(g["lr"]) for g in first.hyperparameters if isinstance(g.get("lr"), (int, float))
        ]
    dc.probe.fill(facts)
    return facts


def diagnose_rank(
    capture: Capture,
    selection: Selection,
    diagnose: Callable[[Selection], Report],
) -> Report:
    """Diagnose this rank's capture as a part of the job; the returned report is the job's
    on rank 0 (or on a rank that lost rank 0), this rank's own elsewhere, marked so in
    ``run.distributed`` (see :func:`reports_here`)."""
    dc = capture.distributed
    assert dc is not None
    try:
        facts = rank_facts(capture, dc)
        if dc.wrapper == "FSDP" and capture.model is not None:
            # FSDP refuses copies: the checks get a plain replica of this rank's shards.
            capture.model, capture.optimizer, capture.initial_state = shard_replica(
                capture.model, capture.optimizer, capture.initial_state
            )
        if dc.rank == 0:
            return _lead(capture, dc, facts, selection, diagnose)
        return _follow(dc, facts, selection, diagnose)
    finally:
        dc.teardown(ending=_hold_sigterm and (dc.terminated or dc.lost is not None))


def reports_here(report: Report) -> bool:
    """Whether this process prints and writes ``report``: always for a single process; in a
    distributed job on rank 0 alone (or on a rank that lost rank 0)."""
    info = report.run.distributed
    return info is None or bool(info.get("reports", True))


def hold_sigterm_when_a_rank_is_lost() -> None:
    """For the command line, whose process exits once the report is out: from now on, when
    a rank of the job is lost the launcher (torchrun) is stopping every rank, and its
    SIGTERM is ignored from then on so that rank 0's report is still printed and written
    (the launcher kills the rank anyway after its grace period)."""
    global _hold_sigterm
    _hold_sigterm = True


_hold_sigterm = False


def _release_timeout(dc: DistributedCapture, selection: Selection) -> float:
    return 2 * selection.experiment_seconds + 2 * dc.timeout + RELEASE_SLACK


# -- the other ranks ------------------------------------------------------------------------


def _follow(
    dc: DistributedCapture,
    facts: RankFacts,
    selection: Selection,
    diagnose: Callable[[Selection], Report],
) -> Report:
    own = diagnose(
        RankSelection(
            **_fields(selection),
            experiments_off=f"experiments on copies run on rank 0 only (this is rank {dc.rank})",
        )
    )
    info: dict[str, Any] = {"rank": dc.rank, "world_size": dc.world, "backend": dc.backend}
    assert dc.channel is not None
    try:
        dc.channel.wait_for_all()
        dc.channel.gather_to_leader(RankResult(facts, own.findings, own.checks))
        # Rank 0 runs its checks and experiments: wait for it, however long they take.
        dc.channel.wait_for_all(timeout=_release_timeout(dc, selection))
    except RankLost as lost:
        if dc.terminated:  # the launcher stops the job: rank 0 reports what it can
            own.run.distributed = {**info, "reports": False}
            return own
        own.run.notes.append(
            f"rank 0 could not be reached ({lost}); this is rank {dc.rank}'s own report, "
            "of its own observations only"
        )
        own.run.distributed = {**info, "reports": True, "lost": [0]}
        return own
    own.run.distributed = {**info, "reports": False}
    return own


def _fields(selection: Selection) -> dict[str, Any]:
    return {
        f.name: getattr(selection, f.name)
        for f in dataclasses.fields(Selection)
        if f.name != "experiments_off"
    }


# -- rank 0 ----------------------------------------------------------------------------


def _lead(
    capture: Capture,
    dc: DistributedCapture,
    facts: RankFacts,
    selection: Selection,
    diagnose: Callable[[Selection], Report],
) -> Report:
    record = DistributedRecord(world=dc.world, ranks=[facts])
    others: list[RankResult] = []
    assert dc.channel is not None
    try:
        dc.channel.wait_for_all()
        gathered = dc.channel.gather_to_leader(None) or []
        others = [g for g in gathered[1:] if isinstance(g, RankResult)]
        record.ranks += [o.facts for o in others]
    except RankLost as lost:
        record.lost = lost.ranks or _unanswered(dc, record)
        record.lost_reason = str(lost)
    capture.recording.distributed = record
    report = diagnose(_leader_selection(capture, dc, selection))
    _merge(report, others, record)
    report.run.distributed = _summary(dc, record)
    report.run.notes[:0] = _notes(dc, record)
    with contextlib.suppress(RankLost):
        dc.channel.wait_for_all(timeout=dc.channel.timeout)  # the others may exit now
    return report


def _unanswered(dc: DistributedCapture, record: DistributedRecord) -> list[int]:
    """The ranks that sent nothing, when that can be told: with two ranks, the other one."""
    answered = {f.rank for f in record.ranks}
    missing = [r for r in range(dc.world) if r not in answered]
    return missing if dc.world == 2 else []


def _leader_selection(capture: Capture, dc: DistributedCapture, selection: Selection) -> Selection:
    """Experiments run on a copy of the module without its wrapper, on rank 0 alone."""
    fields = _fields(selection)
    if dc.terminated or dc.lost is not None:
        return RankSelection(
            **fields,
            experiments_off="a rank was lost and the launcher may stop the job at any moment "
            "(torchrun does): experiments are left out so that the report is written first",
        )
    if dc.wrapper == "FSDP":
        return RankSelection(
            **fields,
            experiments_off="the model is sharded by FSDP: experiments on copies need the whole "
            "model on one rank, which is not supported (the observations ran on every rank, on "
            "each rank's shards)",
        )
    if capture.model is not None:
        try:
            capture.model, capture.optimizer = local_copy(capture.model, capture.optimizer)
        except Exception as exc:  # noqa: BLE001 - without a copy, no experiment may run
            return RankSelection(
                **fields,
                experiments_off=f"the model could not be copied off its process group ({exc})",
            )
    return selection


# -- merging the ranks' results -----------------------------------------------------------

_STATUS_RANK = {Status.SKIPPED: 0, Status.PASSED: 1, Status.FAILED: 2, Status.CRASHED: 3}


def _key(f: Finding) -> tuple[Any, ...]:
    w = f.where
    return (f.check, w.module, w.op, w.file, w.phase)


def _merge(report: Report, others: list[RankResult], record: DistributedRecord) -> None:
    """Fold the other ranks' findings and statuses into rank 0's report."""
    from nndoctor.diagnosis import attach

    ran: dict[str, set[int]] = {}  # check -> ranks where it ran (passed or failed)
    for rank, checks in [(0, report.checks), *[(o.facts.rank, o.checks) for o in others]]:
        for c in checks:
            if c.status in (Status.PASSED, Status.FAILED):
                ran.setdefault(c.check, set()).add(rank)
    seen: dict[tuple[Any, ...], tuple[Finding, set[int]]] = {}
    merged: list[Finding] = []
    for rank, findings in [(0, report.findings), *[(o.facts.rank, o.findings) for o in others]]:
        for f in findings:
            if f.where.ranks is not None:  # a distributed check named its ranks itself
                merged.append(f)
                continue
            key = _key(f)
            if key in seen:
                seen[key][1].add(rank)
                continue
            seen[key] = (f, {rank})
            merged.append(f)
    for f, ranks in seen.values():
        if ranks != ran.get(f.check, ranks) and len(ran.get(f.check, ())) > 1:
            f.where = dataclasses.replace(f.where, ranks=tuple(sorted(ranks)))
    report.findings = merged
    _merge_statuses(report, others)
    attach(report)


def _merge_statuses(report: Report, others: list[RankResult]) -> None:
    by_id = {c.check: c for c in report.checks}
    for o in others:
        for c in o.checks:
            mine = by_id.get(c.check)
            if mine is None or _STATUS_RANK[c.status] <= _STATUS_RANK[mine.status]:
                continue
            if c.status in (Status.FAILED, Status.CRASHED) or mine.status == Status.SKIPPED:
                mine.status = c.status
                mine.detail = f"rank {o.facts.rank}: {c.detail}"


def _summary(dc: DistributedCapture, record: DistributedRecord) -> dict[str, Any]:
    return {
        "rank": dc.rank,
        "world_size": dc.world,
        "backend": dc.backend,
        "wrapper": dc.wrapper,
        "reports": True,
        "ranks": [
            {"rank": f.rank, "steps": f.steps, "stop_reason": f.stop_reason, "error": f.error}
            for f in record.ranks
        ],
        "lost": list(record.lost),
        **({"lost_reason": record.lost_reason} if record.lost_reason else {}),
    }


def _notes(dc: DistributedCapture, record: DistributedRecord) -> list[str]:
    steps = sorted({f.steps for f in record.ranks})
    stepped = (
        f"every rank stopped after {steps[0]} step(s)"
        if len(steps) == 1
        else "ranks stopped after "
        + ", ".join(f"{f.steps} (rank {f.rank})" for f in record.ranks)
        + " step(s)"
    )
    if dc.terminated or dc.lost is not None:
        experiments = "experiments on copies were left out (a rank was lost)"
    elif dc.wrapper == "FSDP":
        experiments = (
            "experiments on copies are not run (the model is sharded by FSDP), and "
            "per-parameter statistics are of each rank's shard"
        )
    else:
        experiments = "experiments on copies ran on rank 0 only, on the module without its wrapper"

    notes = [
        f"distributed job: {dc.world} ranks ({dc.backend}"
        f"{', ' + dc.wrapper if dc.wrapper else ''}); {stepped}; {len(record.ranks)} rank(s) "
        f"answered; {experiments}; the script is not replayed"
    ]
    if record.lost_reason is not None:
        who = (
            f"rank{'s' if len(record.lost) > 1 else ''} {', '.join(map(str, record.lost))}"
            if record.lost
            else "a rank"
        )
        notes.append(
            f"{who} did not answer and {'are' if len(record.lost) > 1 else 'is'} missing from "
            f"this report: {record.lost_reason}"
        )
    for f in record.ranks:
        if f.error is not None and f.rank != 0:
            notes.append(f"rank {f.rank}: the script raised {f.error}")
    return notes
