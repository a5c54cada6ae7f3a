"""A loss without a floor (reason 18): a term whose sign rewards moving the weights for ever."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

from nndoctor.checks import causes
from nndoctor.checks.lab import Lab
from nndoctor.checks.noise_replays import planned_steps
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import lower_than_p
from nndoctor.probes.recording import loss_scale_of
from nndoctor.probes.training import RECOGNISED_LOSSES
from nndoctor.report.series import Curve, ExperimentCurves

# The recognised losses that are zero or more for any input their checks let through (a
# probability for BCE; any real value for the others): a back-propagated loss that is one of
# them times a positive constant has a floor, and needs no run to say so. Not so nll_loss,
# kl_div and the Poisson and Gaussian likelihoods: fed values that are not log-probabilities,
# or a variance that shrinks, they fall without bound.
FLOORED_LOSSES = frozenset(RECOGNISED_LOSSES) - {
    "nll_loss",
    "kl_div",
    "poisson_nll_loss",
    "gaussian_nll_loss",
}


@register_check(
    id="loss-without-floor",
    reasons=(18,),
    severity="error",
    kind="experiment",
    priority=16,
    # Weights pushed along a direction that lowers the loss for ever grow without bound:
    # activations drift and saturate, updates outgrow the weights, values overflow.
    explains=causes.INSTABILITY_SYMPTOMS | frozenset({"nonfinite-in-experiment", "give-it-time"}),
)
def loss_without_floor(ctx: CheckContext) -> None:
    """The loss falls below zero and keeps falling as fast as ever: it has no floor.

    Why it matters:
        A training objective has a minimum the optimiser slows down near: cross-entropy and
        squared errors stop at zero, a likelihood at the data's own density. A term with
        the wrong sign has none: a KL divergence added as ``+0.5 * sum(1 + logvar - mu²
        - exp(logvar))`` instead of subtracted, a flow's log-determinant subtracted from
        the negative log-likelihood, a residual not squared (``(u - g).mean()``), a
        negative-sampling term with its sign flipped. The optimiser then follows that term
        for ever: the loss goes negative and falls steadily or faster while the weights
        grow, and the part of the loss that was meant to be learned is swamped. The loss
        curve even looks like progress.

    What is measured:
        Where the back-propagated loss is, at every observed step, one recognised loss that
        is zero or more (cross-entropy, BCE, MSE, L1, Huber, multi-label soft margin) times
        one positive constant, it has a floor and nothing is run; nor where the script
        alternates between the objectives of separate networks (a GAN). Otherwise the script
        is replayed as written (its data, its loss, its optimiser and rates) for
        ``unbounded_steps`` steps, or the planned run where that is shorter (a copy trained
        on the observed batches where no script can be replayed: a subject given through the
        API, a script that updates its parameters by hand). With the run cut in thirds, the
        check fires when all hold: the median loss of the last third is below minus the
        initial loss's magnitude (no loss that is zero or more gets there); the losses of
        each third lie below those of the one before (Mann-Whitney's test at
        ``unbounded_alpha``, for both pairs: a loss hovering near zero, as a policy gradient
        over fresh episodes does, may end a little lower by chance); and the loss fell from
        the middle third to the last at least ``unbounded_pace`` of what it fell from the
        first to the middle (medians of the thirds): it does not slow down, as a loss
        nearing its minimum does. A run that does so is redone ``unbounded_extension`` times
        longer (within the planned run), and the longer run decides: a healthy loss can fall
        at a steady pace below zero for a while (a learned variance shrinking), not for
        ever. A run that ends in a non-finite loss is judged on its finite steps. A replay
        cut by the clock decides nothing: the check is skipped.

    How to fix:
        Write each term of the loss down with its sign and check which way it should move:
        a KL divergence and a negative log-likelihood are added, a log-likelihood or a flow's
        log-determinant is subtracted from the loss (``loss = -(log_prob + logdet)``),
        residuals are squared. Then print each term over a few hundred steps: the one that
        runs away is the culprit.

    Example:
        Before::

            kld = 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld

        After::

            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = bce + kld
    """
    t = ctx.thresholds
    competing = ctx.recording.competing_objectives
    if competing:
        # Competing objectives (a GAN's critic and generator, a gradient reversal) are no
        # one loss being minimised: neither side has to level off while the other moves.
        ctx.skip(f"{competing}: the loss need not level off")
    floored = _floored_loss(ctx)
    if floored is not None:
        ctx.skip(
            f"the back-propagated loss is {floored} at every observed step, which is zero or "
            "more: it has a floor"
        )
    lab: Lab = ctx.services
    steps = min(t.unbounded_steps, planned_steps(ctx))
    losses, how = _run_as_written(ctx, lab, steps)
    finite = _judged(ctx, losses, steps, how)
    verdict = _runaway(finite, t)
    longer = min(steps * t.unbounded_extension, planned_steps(ctx))
    if verdict["fires"] and len(finite) == steps and longer > steps:
        # A healthy loss can fall below zero at a steady pace for a while (a learned
        # variance shrinking at Adam's pace); one without a floor still does so three
        # times as long. The longer run decides.
        losses, how = _run_as_written(ctx, lab, longer)
        finite = _judged(ctx, losses, longer, how)
        verdict = _runaway(finite, t)
    lab.hand_back(
        ExperimentCurves(
            check=ctx.spec.id,
            title="The loss over a longer run, as the script trains",
            x_label="step",
            y_label="loss",
            curves=[Curve(how, [float(i) for i in range(len(finite))], finite)],
        )
    )
    start, middle, last, p = verdict["start"], verdict["middle"], verdict["last"], verdict["p"]
    ctx.note(
        f"{how}, {len(finite)} steps: median loss {start:.4g} → {middle:.4g} → {last:.4g} over "
        f"its thirds (each third below the one before: p = {p:.2g})"
    )
    if not verdict["fires"]:
        return
    overflow = (
        f" It then became non-finite at step {len(finite)}." if len(finite) < len(losses) else ""
    )
    ctx.finding(
        title="The loss has no floor: it falls below zero and keeps falling",
        message=(
            f"Trained as the script trains ({how}), the loss went from {finite[0]:.4g} to "
            f"{finite[-1]:.4g} in {len(finite)} steps; its median over the thirds of the run is "
            f"{start:.4g}, {middle:.4g}, {last:.4g}: below zero and falling over the last third "
            f"{_pace_text(verdict)} the middle one, not slowing as a loss nearing its minimum "
            f"does.{overflow} A term of the loss rewards moving the weights without bound: a "
            "sign is wrong (a KL or log-determinant with the wrong sign, a residual not squared)."
        ),
        fix=(
            "Check the sign of every term of the loss: a KL divergence and a negative "
            "log-likelihood are added, a log-likelihood or a log-determinant is subtracted, "
            "residuals are squared. Print each term over a few hundred steps: the one that runs "
            "away is the culprit."
        ),
        evidence={
            "steps": len(finite),
            "initial_loss": finite[0],
            "final_loss": finite[-1],
            "median_by_third": [start, middle, last],
            "falling_p": p,
            "method": how,
            "non_finite_at": len(finite) if len(finite) < len(losses) else None,
        },
    )


def _judged(ctx: CheckContext, losses: list[float], steps: int, how: str) -> list[float]:
    """The finite steps of a run, or a skip when too few of them are left to judge."""
    finite = [float(v) for v in itertools.takewhile(math.isfinite, losses)]
    if len(finite) < ctx.thresholds.unbounded_min_steps:
        ran = (
            f"the loss became non-finite after {len(finite)} of {steps} steps"
            if len(finite) < len(losses)
            else f"the run gave the loss of only {len(finite)} of {steps} steps"
        )
        ctx.skip(f"{ran} ({how}): too few to judge whether it has a floor")
    return finite


def _floored_loss(ctx: CheckContext) -> str | None:
    """The recognised loss the back-propagated loss is, times one positive constant, at every
    observed step, where that loss is zero or more for any input; None otherwise (a custom
    loss, several terms, a term that joins later, a weight that changes over the steps)."""
    names: set[str] = set()
    scales: list[float] = []
    seen = [s for s in ctx.recording.steps if s.loss_seen]
    for step in seen:
        if not step.loss_calls:
            return None
        names.update(c.fn for c in step.loss_calls)
        scales.append(loss_scale_of(step.loss, [c.value for c in step.loss_calls]))
    if not seen or not names <= FLOORED_LOSSES:
        return None
    # Exact up to float rounding: a KL term under a warm-up starting at 0 adds a part in
    # ten thousand at first, and is a term for all that.
    first = scales[0]
    if not (math.isfinite(first) and first > 0):
        return None
    if any(not math.isclose(s, first, rel_tol=1e-5) for s in scales):
        return None
    return "/".join(sorted(names)) + ("" if first == 1.0 else f" times {first:.4g}")


def _run_as_written(ctx: CheckContext, lab: Lab | None, steps: int) -> tuple[list[float], str]:
    """The loss at each step of ``steps`` steps trained the way the script trains, and how."""
    manual = ctx.recording.step_source == "manual"
    if lab is not None and lab.script is not None and not manual:
        (result,) = lab.replays("rate", [{"steps": steps, "overrides": {"lr_scale": 1.0}}])
        if result.timed_out:
            ctx.skip(
                f"the replay of the script as written hit its time limit after "
                f"{len(result.losses)} of {steps} steps: too few to judge"
            )
        if result.error and result.error != "diverged" and not result.losses:
            ctx.skip(f"re-running the script failed: {result.error}")
        return list(result.losses), "the script replayed as written"
    if lab is None or not lab.available:
        why = lab.unavailable_reason if lab is not None else "no subject"
        if manual:
            # A replay counts optimizer steps; updates by hand take none.
            why += (
                ", and the script updates its parameters by hand (a replay counts optimizer steps)"
            )
        ctx.skip(f"{why}; declare a Subject (nndoctor.check) to run it")
    assert lab is not None
    run = lab.train(lab.batches(), steps)
    return [float(v) for v in run.losses], "a copy trained on the observed batches"


def _runaway(losses: list[float], t: Any) -> dict[str, Any]:
    """Medians of the run's thirds, the test that each third lies below the one before, and
    whether the loss falls below minus its start and keeps falling at ``unbounded_pace``
    or faster."""
    n = len(losses)
    third = n // 3
    first, middle, last = losses[:third], losses[third : 2 * third], losses[2 * third :]
    m1, m2, m3 = (statistics.median(part) for part in (first, middle, last))
    # Falling all along: each third below the one before (a loss that hovers near zero, a
    # policy-gradient loss over fresh episodes, can end a little lower by chance).
    p = max(lower_than_p(middle, first), lower_than_p(last, middle))
    below = m3 < -abs(losses[0])
    fell_middle, fell_last = m1 - m2, m2 - m3
    keeps_pace = fell_middle > 0 and fell_last >= t.unbounded_pace * fell_middle
    return {
        "start": m1,
        "middle": m2,
        "last": m3,
        "p": p,
        "fell_middle": fell_middle,
        "fell_last": fell_last,
        "fires": below and keeps_pace and p < t.unbounded_alpha,
    }


def _pace_text(verdict: dict[str, Any]) -> str:
    return f"{verdict['fell_last'] / verdict['fell_middle']:.2g} times as much as over"
