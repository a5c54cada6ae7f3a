"""The learning rate a scheduler plans, read by stepping a copy of it ahead.

Twenty observed steps show the first rates of a schedule, rarely the ones that matter:
a per-epoch StepLR stepped after every batch has not decayed yet, and the peak behind a
warm-up has not been reached. The scheduler itself knows its plan. A copy of it, bound to
a stand-in of the optimizer whose parameter groups are copies, is stepped as the script
steps the original; the original scheduler, the optimizer and the model are untouched.
This measures, it does not judge (the ``learning-rate-schedule`` check does).
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

# How far ahead the plan is read: scheduler steps for a scheduler stepped per batch (tens of
# epochs of a small data set, a long warm-up's peak) and for one stepped per epoch. Fixed
# counts, never a time budget, so the plan read does not depend on the machine's speed.
SCHEDULE_PLAN_BATCH_STEPS = 5000
SCHEDULE_PLAN_EPOCH_STEPS = 300


@dataclass
class SchedulePlan:
    """What one scheduler of the model's optimizer was seen doing and plans to do next.

    ``lrs`` are the first parameter group's rates after each further scheduler step,
    starting from its state when the observation ended; ``per_batch`` says that it was
    stepped once per optimizer step while observed (rather than per epoch).
    """

    scheduler: str  # class name, e.g. "StepLR"
    per_batch: bool
    steps_taken: int  # optimizer steps observed
    scheduler_steps: int  # scheduler.step() calls observed
    lrs: list[float] = field(default_factory=list)  # the plan, one rate per scheduler step
    # The scheduler steps it was built for, where it says (OneCycleLR's total_steps,
    # CosineAnnealingLR's T_max, LinearLR's and PolynomialLR's total_iters).
    length: int | None = None
    # The scheduler refused to step past the end of ``lrs`` (OneCycleLR past total_steps):
    # the script cannot train longer than its plan.
    ends: bool = False


# Observed steps a rate set by hand must rise over to read as a warm-up.
HAND_WARMUP_MIN_STEPS = 3


def planned_peak(plan: SchedulePlan | None, seen: list[float]) -> float | None:
    """The highest rate of the first parameter group over the whole schedule: the rates
    ``seen`` while observed and those the plan holds after; None without a plan, or where
    the plan is still rising at its end (the peak lies beyond what was read).

    A ``LambdaLR`` multiplies the base rate by whatever its function returns (the Noam
    schedule's peak is a thousandth of a base rate of 1.0), so the base rate alone does not
    say what the run trains at; the plan does.
    """
    if plan is None or not plan.lrs:
        return None
    rates = [r for r in (*seen, *plan.lrs) if math.isfinite(r) and r > 0]
    if not rates:
        return None
    peak = max(rates)
    tail = plan.lrs[-2:]
    rising = len(tail) == 2 and tail[1] > tail[0] and tail[1] >= peak
    if rising and not plan.ends:
        return None
    return peak


def hand_warmup_target(recording: Any, constructed: Any) -> float | None:
    """The rate a warm-up written by hand is rising to: with no scheduler, the first group's
    rate set anew at the observed steps (``param_group["lr"] = ...``), never falling and
    risen by the last, below ``constructed``, the rate the optimizer was built with (the
    fast adversarial-training and nanoGPT scripts build it at the peak their own function
    ramps towards). None otherwise."""
    if recording.scheduler_seen or recording.schedule is not None:
        return None
    if not isinstance(constructed, (int, float)) or isinstance(constructed, bool):
        return None
    seen = [lr for lr in first_group_rates(recording) if math.isfinite(lr)]
    if len(seen) < HAND_WARMUP_MIN_STEPS or not 0 < seen[-1] < constructed:
        return None
    rising = all(b >= a for a, b in zip(seen, seen[1:], strict=False)) and seen[-1] > seen[0]
    return float(constructed) if rising else None


def first_group_rates(recording: Any) -> list[float]:
    """The first parameter group's rate at each observed step that recorded a number."""
    seen = []
    for step in recording.steps:
        groups = step.hyperparameters
        lr = groups[0].get("lr") if groups else None
        if isinstance(lr, (int, float)) and not isinstance(lr, bool):
            seen.append(float(lr))
    return seen


def recorded_peak(recording: Any) -> float | None:
    """``planned_peak`` of a recording: its schedule plan and its steps' first-group rates."""
    return planned_peak(recording.schedule, first_group_rates(recording))


def planned_length(scheduler: Any) -> int | None:
    """The number of scheduler steps ``scheduler`` was built for, where it says so."""
    for attr in ("total_steps", "T_max", "total_iters"):
        value = getattr(scheduler, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _stand_in(optimizer: torch.optim.Optimizer) -> Any:
    """An object the scheduler copy can drive: the optimizer's attributes, with parameter
    groups of its own (the ``params`` lists shared, never written)."""
    stand_in = object.__new__(type(optimizer))
    stand_in.__dict__.update(optimizer.__dict__)
    stand_in.param_groups = [dict(g) for g in optimizer.param_groups]
    return stand_in


def planned_rates(scheduler: Any, optimizer: torch.optim.Optimizer, steps: int) -> list[float]:
    """Group 0's learning rate after each of ``steps`` further steps of a copy of
    ``scheduler``; empty when the scheduler cannot be stepped without the script (a
    ``ReduceLROnPlateau`` needs its metric) or its copy fails. A scheduler that refuses
    to step further (OneCycleLR past ``total_steps``) ends the plan there."""
    if steps <= 0 or type(scheduler).__name__ == "ReduceLROnPlateau":
        return []
    stand_in = _stand_in(optimizer)
    memo: dict[int, Any] = {id(optimizer): stand_in, id(optimizer.state): optimizer.state}
    for group in optimizer.param_groups:
        for p in group["params"]:
            memo[id(p)] = p
    try:
        twin = copy.deepcopy(scheduler, memo)
    except Exception:  # noqa: BLE001 - a plan that cannot be read is no plan, not a crash
        return []
    rates: list[float] = []
    with warnings.catch_warnings():
        # "lr_scheduler.step() before optimizer.step()": the copy never trains.
        warnings.simplefilter("ignore")
        for _ in range(steps):
            try:
                twin.step()
            except Exception:  # noqa: BLE001 - OneCycleLR past total_steps: the plan ends
                break
            lr = stand_in.param_groups[0].get("lr")
            rate = float(lr.item() if isinstance(lr, torch.Tensor) else lr)
            rates.append(rate if math.isfinite(rate) else math.nan)
    return rates
