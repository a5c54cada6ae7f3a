"""The full bench, as reported in the README: every healthy case on three seeds and every
fault, both splits. Slow (about an hour on two cores): marked ``slow``, left out of CI;
run it with ``pytest -m slow tests/bench/test_full_bench.py``.

The floors are the README's "after" numbers minus a margin of
a few cases, so a change that loses recall or adds false alarms fails here.
"""

from __future__ import annotations

import os

import pytest

from nndoctor.bench.runner import plan, run_jobs
from nndoctor.bench.score import summarise
from nndoctor.faults import faults, healthy_cases

# split -> (recall floor, most false-alarm runs allowed)
# Measured (README, round seven: benchmarks/results/bench-round7-{dev-at-5e877da,
# test-at-5d5b4ee}.json): dev 0.63 recall (139 faults, the wild suite's 36 among them), 4 of
# 156 healthy runs alarming (3 on the wild fastText script's update ratio); test 0.65, 3 of
# 60 (on the compatibility suite's test scripts, an open problem: the allowance holds the
# line, it does not call them fine).
FLOORS = {"dev": (0.60, 4), "test": (0.62, 4)}


@pytest.mark.slow
def test_full_bench_holds_the_readme_numbers() -> None:
    outcomes = run_jobs(plan(healthy_cases(), faults(), seeds=3), workers=os.cpu_count() or 1)
    summaries = summarise(outcomes)
    for split, (recall, alarms) in FLOORS.items():
        s = summaries[split]
        assert s.errors == 0, split
        assert s.recall is not None and s.recall >= recall, (split, s.to_json())
        assert s.alarm_runs <= alarms, (split, s.to_json())
