"""The bench's CI subset: floors on recall and false alarms, and verdicts that do not
depend on machine load.

The subset is every case marked ``ci=True`` (cheap healthy scripts and faults found on
them), one seed each. It runs twice: one job at a time, then with twice as many jobs as
cores, so the machine is overloaded; the findings must be the same, check for check.
The floors are the numbers measured on the subset when it was put together, minus a
small margin (see the README's bench section); lower them only with a reason.
"""

from __future__ import annotations

import os

import pytest

from nndoctor.bench.runner import Outcome, plan, run_jobs
from nndoctor.bench.score import fault_verdict, summarise
from nndoctor.faults import faults, healthy_cases

RECALL_FLOOR = 0.75  # measured 4 of 4 found; one case of margin
MAX_FALSE_ALARM_RUNS = 0


def ci_jobs() -> list:
    return plan([c for c in healthy_cases() if c.ci], [f for f in faults() if f.ci], seeds=1)


def signature(outcomes: list[Outcome]) -> list[tuple]:
    return [
        (
            o.name,
            o.seed,
            o.error,
            sorted((f["check"], f["severity"], tuple(f["reasons"])) for f in o.findings),
        )
        for o in outcomes
    ]


@pytest.fixture(scope="module")
def quiet_run() -> list[Outcome]:
    return run_jobs(ci_jobs(), workers=1)


def test_subset_is_not_empty() -> None:
    jobs = ci_jobs()
    assert sum(j.fault is None for j in jobs) >= 3
    assert sum(j.fault is not None for j in jobs) >= 4


def test_subset_holds_its_floors(quiet_run: list[Outcome]) -> None:
    summary = summarise(quiet_run)["all"]
    detail = {o.name: fault_verdict(o).status for o in quiet_run if o.fault}
    assert summary.errors == 0, [o.error for o in quiet_run if o.error]
    assert summary.recall is not None and summary.recall >= RECALL_FLOOR, detail
    assert summary.alarm_runs <= MAX_FALSE_ALARM_RUNS, [
        (o.name, [f["check"] for f in o.loud]) for o in quiet_run if not o.fault and o.loud
    ]


def test_a_loaded_machine_reaches_the_same_verdicts(quiet_run: list[Outcome]) -> None:
    loaded = run_jobs(ci_jobs(), workers=2 * (os.cpu_count() or 1))
    assert signature(loaded) == signature(quiet_run)
