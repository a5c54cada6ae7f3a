"""Training that is slow but sound: the loss still falling when the budget ends (reason 31).

Not a bug. nndoctor observes a short budget of steps; a run whose loss is still
going down steadily at the end of it has simply not finished, and the honest thing
to say is "give it time" — as ``info``, never as a warning.
"""

from __future__ import annotations

import math
import statistics

from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.report.model import Where


def theil_sen_slope(values: list[float]) -> float:
    """The median of the pairwise slopes (Theil 1950, Sen 1968): a trend that a few
    noisy mini-batch losses cannot drag."""
    slopes = [
        (values[j] - values[i]) / (j - i)
        for i in range(len(values))
        for j in range(i + 1, len(values))
    ]
    return statistics.median(slopes) if slopes else 0.0


def falling_share(values: list[float]) -> float:
    """The share of pairs (earlier, later) in which the later loss is lower."""
    pairs = [(values[i], values[j]) for i in range(len(values)) for j in range(i + 1, len(values))]
    return sum(b < a for a, b in pairs) / len(pairs) if pairs else 0.0


@register_check(id="give-it-time", reasons=(31,), severity="info")
def give_it_time(ctx: CheckContext) -> None:
    """The loss is still falling steadily when the observed budget ends: train longer.

    Why it matters:
        Not every slow run is broken. A loss that is still going down at a steady
        rate at the end of a short run has not converged yet; judging the model,
        the learning rate or the architecture now would be premature. This is said
        as ``info`` so that it never fails a CI gate.

    What is measured:
        The loss of every observed step. Over the last half of them: the robust
        (Theil-Sen, median of pairwise) slope relative to the median loss of that
        half, and the share of pairs of steps in which the later loss is below the
        earlier one. Reported when the loss falls by more than
        ``give_it_time_slope`` (1%) per step and in more than
        ``give_it_time_falling_share`` (70%) of the pairs, with at least
        ``give_it_time_min_steps`` observed losses, while the loss is still above
        ``give_it_time_floor`` (10%) of its first value (below it the run plainly
        learns). A flat or noisy plateau stays silent; a rising loss is the business
        of ``loss-diverging``.

    How to fix:
        Nothing is wrong: train for more steps (the finding estimates how many
        steps the loss takes to halve at the current rate). If time is the
        constraint, a larger learning rate (see the range test), momentum, or a
        learning-rate schedule with warm-up gets there sooner.

    Example:
        Before::

            for epoch in range(1):          # stopped while the loss is still falling
                train_one_epoch(model, loader, opt)

        After::

            for epoch in range(20):         # until the loss flattens on held-out data
                train_one_epoch(model, loader, opt)
    """
    t = ctx.thresholds
    seen = [(s.step, s.loss) for s in ctx.recording.steps if s.loss_seen]
    if len(seen) < t.give_it_time_min_steps:
        ctx.skip(f"{len(seen)} observed losses; a trend needs at least {t.give_it_time_min_steps}")
    if not all(math.isfinite(v) for _, v in seen):
        ctx.skip("the loss became non-finite (see the NaN checks)")
    half = seen[len(seen) // 2 :]
    values = [v for _, v in half]
    level = statistics.median(abs(v) for v in values)
    if level == 0:
        ctx.skip("the loss is zero over the last half of the steps")
    slope = theil_sen_slope(values)
    rate = -slope / level  # relative fall per step, positive when falling
    share = falling_share(values)
    first, last = seen[0][1], seen[-1][1]
    summary = (
        f"loss {first:.4g} → {last:.4g} over {len(seen)} steps; over the last {len(half)}: "
        f"{100 * rate:+.2f}% per step, falling in {100 * share:.0f}% of step pairs"
    )
    ctx.note(summary)
    if rate <= t.give_it_time_slope or share <= t.give_it_time_falling_share:
        return
    if first > 0 and level < t.give_it_time_floor * first:
        return  # already far below where it started: this run learns fast, nothing to wait for
    halving = math.log(2) / -math.log(1 - rate) if rate < 1 else 1.0
    ctx.finding(
        title="The loss is still falling steadily: give it time",
        message=(
            f"Not a bug: the loss went from {first:.4g} to {last:.4g} over the {len(seen)} observed steps and, "
            f"over the last {len(half)}, was still falling by {100 * rate:.2g}% per step (robust slope; "
            f"threshold {100 * t.give_it_time_slope:.2g}%), lower in {100 * share:.0f}% of step pairs. "
            f"The run has not converged within the observed budget."
        ),
        fix=(
            f"Train longer: at this rate the loss halves about every {halving:.0f} steps. To get there "
            "sooner, raise the learning rate moderately (see learning-rate-out-of-range) or add momentum "
            "or a warm-up schedule."
        ),
        where=Where(step=seen[-1][0]),
        evidence={
            "steps": len(seen),
            "first_loss": first,
            "last_loss": last,
            "window_steps": len(half),
            "relative_slope_per_step": rate,
            "falling_share": share,
            "halving_steps": halving,
        },
    )
