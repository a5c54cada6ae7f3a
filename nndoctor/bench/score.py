"""Scoring the bench: what each run's report says about its case, and the summary.

A finding is *loud* when it is a warning or an error (an info is advice, never an alarm).
For a fault:

- **found**: a loud finding (or the crash diagnosis of a script that could not be
  observed) names one of the fault's accepted reasons; **other**: loud findings, none
  with an accepted reason; **missed**: nothing loud;
- **top-1**: the report's first cause names an accepted reason: its diagnosis' first
  cause; with symptoms only, the first reason of its differential; for a report without
  a diagnosis, its first loud finding;
- **list top-1**: the most severe loud finding (ties by check id) names an accepted
  reason — how a flat list of findings, most severe first, opens; kept to compare;
- **exact**: found, and every loud finding names an accepted reason.

For a healthy run, any loud finding (a script that could not be observed included) is a
**false alarm**. A run that produced no report is an **error** of the bench, counted
apart from every rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nndoctor.bench.runner import Outcome


@dataclass(frozen=True)
class FaultVerdict:
    status: str  # found | other | missed | error
    top1: bool
    exact: bool
    first: str | None  # the check id of the report's first cause
    list_top1: bool = False


def fault_verdict(outcome: Outcome) -> FaultVerdict:
    if outcome.error is not None:
        return FaultVerdict("error", False, False, None)
    accepted = set(outcome.accepted)
    loud = outcome.loud
    named = [f for f in loud if accepted & set(f["reasons"])]
    status = "found" if named else ("other" if loud else "missed")
    first = first_cause(outcome)
    top1 = first is not None and bool(accepted & set(first["reasons"]))
    exact = bool(named) and len(named) == len(loud)
    flat = sorted(loud, key=lambda f: (-SEVERITY_RANK[f["severity"]], f["check"]))
    list_top1 = bool(flat) and bool(accepted & set(flat[0]["reasons"]))
    return FaultVerdict(
        status, top1, exact, first["check"] if first is not None else None, list_top1
    )


SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}


def first_cause(outcome: Outcome) -> dict[str, Any] | None:
    """What the report names first as the cause (see the module docstring)."""
    if outcome.diagnosis:
        return outcome.diagnosis[0]
    if outcome.diagnosis is not None and outcome.differential:
        lead = outcome.differential[0]
        return {"check": f"differential:{lead['reason']}", "reasons": [lead["reason"]]}
    loud = outcome.loud
    return loud[0] if loud else None


def false_alarms(outcome: Outcome) -> list[str]:
    """The checks that were loud on a healthy run (empty: quiet)."""
    return [f["check"] for f in outcome.loud]


@dataclass
class SplitSummary:
    split: str
    faults: int = 0
    found: int = 0
    other: int = 0
    missed: int = 0
    top1: int = 0
    list_top1: int = 0
    exact: int = 0
    healthy_runs: int = 0
    alarm_runs: int = 0
    errors: int = 0
    seconds: float = 0.0
    runs: int = 0
    alarms_by_check: Counter[str] = field(default_factory=Counter)

    @property
    def recall(self) -> float | None:
        return self.found / self.faults if self.faults else None

    @property
    def top1_rate(self) -> float | None:
        return self.top1 / self.faults if self.faults else None

    @property
    def list_top1_rate(self) -> float | None:
        return self.list_top1 / self.faults if self.faults else None

    @property
    def exact_rate(self) -> float | None:
        return self.exact / self.faults if self.faults else None

    @property
    def false_alarm_rate(self) -> float | None:
        return self.alarm_runs / self.healthy_runs if self.healthy_runs else None

    @property
    def seconds_per_run(self) -> float | None:
        return self.seconds / self.runs if self.runs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "faults": self.faults,
            "found": self.found,
            "other": self.other,
            "missed": self.missed,
            "top1": self.top1,
            "exact": self.exact,
            "recall": self.recall,
            "top1_rate": self.top1_rate,
            "list_top1": self.list_top1,
            "list_top1_rate": self.list_top1_rate,
            "exact_rate": self.exact_rate,
            "healthy_runs": self.healthy_runs,
            "alarm_runs": self.alarm_runs,
            "false_alarm_rate": self.false_alarm_rate,
            "errors": self.errors,
            "seconds_per_run": self.seconds_per_run,
            "alarms_by_check": dict(self.alarms_by_check.most_common()),
        }


def summarise(outcomes: list[Outcome]) -> dict[str, SplitSummary]:
    """One summary per split present, and ``all``."""
    summaries: dict[str, SplitSummary] = {}
    for outcome in outcomes:
        for key in (outcome.split, "all"):
            _add(summaries.setdefault(key, SplitSummary(key)), outcome)
    return dict(sorted(summaries.items(), key=lambda kv: ("dev", "test", "all").index(kv[0])))


def _add(summary: SplitSummary, outcome: Outcome) -> None:
    summary.runs += 1
    summary.seconds += outcome.seconds
    if outcome.error is not None:
        summary.errors += 1
        return
    if outcome.fault:
        verdict = fault_verdict(outcome)
        summary.faults += 1
        summary.found += verdict.status == "found"
        summary.other += verdict.status == "other"
        summary.missed += verdict.status == "missed"
        summary.top1 += verdict.top1
        summary.list_top1 += verdict.list_top1
        summary.exact += verdict.exact
    else:
        summary.healthy_runs += 1
        alarms = false_alarms(outcome)
        summary.alarm_runs += bool(alarms)
        summary.alarms_by_check.update(set(alarms))


def reason_matrix(outcomes: list[Outcome]) -> tuple[list[str], list[list[int]]]:
    """Faults × reasons 1–37: 2 where an accepted reason was named loudly, 1 where another
    reason was, -1 where an accepted reason was not named, 0 elsewhere."""
    names: list[str] = []
    rows: list[list[int]] = []
    for outcome in outcomes:
        if not outcome.fault or outcome.error is not None:
            continue
        named = {r for f in outcome.loud for r in f["reasons"]}
        row = []
        for reason in range(1, 38):
            if reason in named:
                row.append(2 if reason in outcome.accepted else 1)
            else:
                row.append(-1 if reason in outcome.accepted else 0)
        names.append(f"{outcome.name} (seed {outcome.seed})" if outcome.seed else outcome.name)
        rows.append(row)
    return names, rows
