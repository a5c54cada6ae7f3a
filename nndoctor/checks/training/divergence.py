"""The training loss (reason 36): rising, spiking, or becoming inf/NaN."""

from __future__ import annotations

import math

from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import falling_trend_p
from nndoctor.checks.training.observed import fmt3, median
from nndoctor.report.model import Severity, Where


@register_check(
    id="loss-diverging",
    reasons=(36,),
    severity="error",
    symptom=True,
    # Steps that make the loss climb far past its start are large enough to push ReLUs
    # into their dead zone: the dead units are the divergence's effect, not its cause.
    explains=frozenset({"dead-relus", "non-finite-values:after-growth"}),
    differential=(
        (36, "a too-high learning rate (learning-rate-out-of-range)"),
        (26, "gradients accumulated without zero_grad (zero-grad-missing)"),
        (37, "a non-finite value (non-finite-values)"),
        (12, "inputs on a large scale"),
        (29, "optimiser settings out of range"),
    ),
)
def loss_diverging(ctx: CheckContext) -> None:
    """The training loss diverges: rising, spiking, or becoming inf/NaN.

    Why it matters:
        Over the first steps of a healthy run the loss falls or stays flat. A loss
        that climbs steadily, jumps to many times its starting value, or becomes
        non-finite means the optimizer overshoots: most often the learning rate
        is too high (or the gradients explode).

    What is measured:
        The loss at each observed step. An error when it becomes inf/NaN after a
        finite start, or when it rises steadily: the median of the last quarter of
        steps at least ``loss_rise_ratio`` (2) times the median of the first quarter,
        with every loss of the last quarter above every loss of the first, unless the
        last quarter itself falls (one-sided Mann-Kendall trend test, exact for a short
        quarter, at ``loss_rise_turned_alpha``, 1%: the rate at which a quarter without a
        trend is taken for a falling one): a loss that rose and is coming back down is a
        bump, as a VQ-VAE's codebook makes in its first steps. A
        warning when a step's loss exceeds ``loss_spike_ratio`` (10) times the
        first loss (oscillation). The ratio rules apply to positive losses only.

    How to fix:
        Lower the learning rate (try 3-10x lower), add warm-up, clip the gradient
        norm (``torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)``); if the
        loss is huge from the first step, check the initialisation and the loss
        scale instead.

    Example:
        Before::

            optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)

        After::

            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    """
    t = ctx.thresholds
    seen = [(s.step, s.loss) for s in ctx.recording.steps if s.loss_seen]
    if len(seen) < 2:
        ctx.skip(f"needs at least two observed losses, got {len(seen)}")
    if not math.isfinite(seen[0][1]):
        ctx.skip("the loss is non-finite from the first step (see the NaN tracing check)")
    fix = (
        "Lower the learning rate 3-10x, add warm-up, and clip the gradient norm "
        "(clip_grad_norm_(model.parameters(), 1.0)); if the loss is huge from the first step, "
        "check the initialisation and the scale of the loss."
    )
    bad = next(((step, v) for step, v in seen if not math.isfinite(v)), None)
    finite = [(step, v) for step, v in seen if math.isfinite(v)]
    peak_step, peak = max(finite, key=lambda sv: sv[1])
    if bad is not None:
        ctx.finding(
            title="The loss diverged to a non-finite value",
            message=(
                f"The loss started at {fmt3(seen[0][1])}, reached {fmt3(peak)} at step {peak_step} "
                f"and became {bad[1]} at step {bad[0]}."
            ),
            fix=fix,
            where=Where(step=bad[0]),
            evidence={
                "initial_loss": seen[0][1],
                "max_finite_loss": peak,
                "nonfinite_step": bad[0],
            },
        )
        return
    values = [v for _, v in finite]
    ctx.note(
        f"{len(values)} losses: first {fmt3(values[0])}, last {fmt3(values[-1])}, max {fmt3(peak)}"
    )
    quarter = max(2, len(values) // 4)
    if len(values) < 2 * quarter or min(values[:quarter]) <= 0:
        return
    head, tail = values[:quarter], values[-quarter:]
    head_m, tail_m = median(head), median(tail)
    rose = tail_m >= t.loss_rise_ratio * head_m and min(tail) > max(head)
    turned_p = falling_trend_p(tail)
    if rose and turned_p < t.loss_rise_turned_alpha:
        # Risen, but falling through the whole last quarter: a bump the run is coming out
        # of (a VQ-VAE's codebook settling), not a loss that rises steadily.
        ctx.note(
            ctx.detail + f"; it rose to {fmt3(peak)} at step {peak_step} and falls through the "
            f"last {quarter} steps ({fmt3(tail[0])} → {fmt3(tail[-1])}, Mann-Kendall p="
            f"{turned_p:.2g}): a bump it is coming out of, not a steady rise"
        )
        rose = False
    if rose:
        fixed = _objective_as_left(ctx)
        if fixed is not None and fixed[0] <= fixed[1]:
            # The steps made the model better at one fixed task: what rose is the task
            # (a queue of negatives filling with real keys, a loss weight ramped up).
            ctx.note(
                ctx.detail + f"; it rose {fmt3(tail_m / head_m)}x, but on the first captured "
                "batches, with the objective as the run left it (buffers, and parameters no "
                f"optimizer steps), the trained parameters give {fmt3(fixed[0])} against "
                f"{fmt3(fixed[1])} for the starting ones: the model got better at a fixed task, "
                "so the rise comes from the objective moving (a queue of negatives filling, a "
                "growing loss weight, harder samples), not from the steps"
            )
            return
        ctx.finding(
            title="The loss rises steadily",
            message=(
                f"The median loss of the last {quarter} steps ({fmt3(tail_m)}) is "
                f"{fmt3(tail_m / head_m)}x that of the first {quarter} ({fmt3(head_m)}), and every "
                f"late loss is above every early one; peak {fmt3(peak)} at step {peak_step}."
            ),
            fix=fix,
            where=Where(step=finite[-quarter][0]),
            evidence={
                "first_quarter_median": head_m,
                "last_quarter_median": tail_m,
                "max_loss": peak,
                **(
                    {"fixed_objective_trained": fixed[0], "fixed_objective_start": fixed[1]}
                    if fixed is not None
                    else {}
                ),
            },
        )
        return
    if peak >= t.loss_spike_ratio * values[0] and peak_step != finite[0][0]:
        ctx.finding(
            title="The loss spikes far above its starting value",
            message=(
                f"The loss jumped to {fmt3(peak)} at step {peak_step}, {fmt3(peak / values[0])}x its "
                f"first value {fmt3(values[0])} (warning at {fmt3(t.loss_spike_ratio)}x); the last "
                f"loss is {fmt3(values[-1])}."
            ),
            fix=fix,
            severity=Severity.WARNING,
            where=Where(step=peak_step),
            evidence={"initial_loss": values[0], "max_loss": peak, "last_loss": values[-1]},
        )


def _objective_as_left(ctx: CheckContext) -> tuple[float, float] | None:
    """The loss of the trained and of the starting parameters on one fixed objective (see
    ``Lab.objective_as_left``); None without a replayable subject."""
    lab = ctx.services
    if lab is None or not lab.available or not ctx.recording.in_optimizer:
        return None
    return lab.objective_as_left(set(ctx.recording.in_optimizer))
