"""A loss met without data (reason 18): an objective any input satisfies."""

from __future__ import annotations

import math
import statistics
from typing import Any

from nndoctor.checks.lab import Lab
from nndoctor.checks.noise_replays import noise_runs
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import binomial_tail
from nndoctor.report.series import Curve, ExperimentCurves


@register_check(
    id="loss-met-without-data",
    reasons=(18,),
    severity="error",
    kind="experiment",
    priority=16,
)
def loss_met_without_data(ctx: CheckContext) -> None:
    """The loss falls to zero as fast on noise as on the data: nothing in it needs the data.

    Why it matters:
        A loss that is zero or more is zero only where every prediction it scores is right.
        Fed inputs that carry no information, a model can at best make the one prediction
        that suits every sample (the class frequencies, the mean), and a loss over targets
        that need the input stays above zero there. If it still falls to zero, the loss
        rewards something any input gives: a negative-sampling term whose sign was lost
        (negatives pushed together with the true contexts, so every vector aligns), a
        margin whose target is a constant, a target the model computes from its own output.
        The loss curve looks like a model that learned its data perfectly.

    What is measured:
        Where no copy can rebuild the loss in this process (a custom loss, a loss computed
        inside the model) and the observed loss is finite and zero or more at every step,
        the script is replayed as written for ``data_free_steps`` steps (within the planned
        run) twice side by side: on its data, and with every tensor the model is handed by
        its outermost calls while gradients are on replaced by fresh noise like it at each
        call (Gaussian with the tensor's mean and std; integer ids drawn uniformly from each
        column's range; masks, sorted offsets and tensors that need a gradient kept). It
        fires when the noise run's last third (median) is at or above zero and at most
        ``data_free_fraction`` (1%) of the first loss (on the data or on noise, whichever is
        lower: noise can start far off), and the data does not lower the
        loss usefully: over the last third's steps, paired (both runs draw the same
        batches, negatives and noise of the script's own), the run on the data is lower by
        ``data_free_useful_gain`` (a tenth) or more at no more steps than a sign test at
        ``data_free_alpha`` (1%) gives to chance. (A loss any input satisfies can still fall
        a few percent faster on the data: its ids occur with their own frequencies, which
        noise drawn uniformly does not keep, and its pairs repeat.) Inputs that
        carry no information leave such a loss at the best input-free prediction's value,
        so this fires on a healthy task only where that value is within 1% of zero and the
        data does not help by a tenth either: targets predictable without any input (a
        one-class objective such as Deep SVDD's distance to a fixed centre falls to about 1%
        on noise too, but a fifth lower on its data at every step), or a start a hundred times further
        off than the input-free optimum while the inputs do not help predict the targets. A replay cut by its time limit, one that fails and one that goes
        non-finite decide nothing; a script that ends first (in ``unbounded_min_steps``
        steps or more) is judged on the steps both runs took.

    How to fix:
        Write down, for each term of the loss, which way it pushes the scores of true
        pairs and of negatives or wrong classes: a negative-sampling term is
        ``logsigmoid(-neg_score)``, a ranking target says which item should score higher.
        Then check that the target of every term comes from the data, not from the
        model's own output without a stop-gradient and a reason.

    Example:
        Before::

            neg_loss = -F.logsigmoid(neg_score).sum(1)

        After::

            neg_loss = -F.logsigmoid(-neg_score).sum(1)
    """
    lab: Lab | None = ctx.services
    if lab is None or lab.script is None:
        ctx.skip("no script to replay")
    if lab.available:
        ctx.skip("a copy rebuilds the loss here: model-ignores-input trains one on noise")
    observed = ctx.recording.losses
    if not observed or not all(math.isfinite(v) and v >= 0 for v in observed):
        ctx.skip("the observed loss is not finite and zero or more at every step: zero is no floor")
    steps, real, noise = noise_runs(ctx, lab)
    lab.hand_back(
        ExperimentCurves(
            check=ctx.spec.id,
            title="The loss as the script trains, on its data and on noise",
            x_label="step",
            y_label="loss",
            curves=[
                Curve(label, [float(i) for i in range(len(losses))], losses)
                for label, losses in (("its data", real), ("noise inputs", noise))
            ],
        )
    )
    verdict = _met_without_data(real, noise, ctx.thresholds)
    ctx.note(
        f"the script replayed as written, {steps} steps: on its data {verdict['real_first']:.4g} → "
        f"{verdict['real_last']:.4g}, on noise {verdict['noise_first']:.4g} → "
        f"{verdict['noise_last']:.4g} (medians of the last third); a tenth lower on its data at "
        f"{verdict['real_lower_steps']} of the last third's {verdict['steps_compared']} "
        f"differing steps (sign test p = {verdict['p_data_lowers']:.2g})"
    )
    if not verdict["fires"]:
        return
    ctx.finding(
        title="The loss falls to zero on noise: it does not need the data",
        message=(
            f"Replayed for {steps} steps with the model's inputs replaced by fresh noise, the loss "
            f"fell from {verdict['noise_first']:.4g} to {verdict['noise_last']:.4g} "
            f"({verdict['noise_last'] / verdict['start']:.2g} of the start), and the data did "
            f"not do a tenth better ({verdict['real_last']:.4g}; a tenth lower at "
            f"{verdict['real_lower_steps']} of {verdict['steps_compared']} steps). Inputs "
            "without information cannot be predicted perfectly, so the loss rewards something "
            "every input gives: a term with the wrong sign or a target that does not come "
            "from the data."
        ),
        fix=(
            "Check the sign of each loss term (negatives pushed apart: logsigmoid(-score)) and "
            "that every target comes from the data."
        ),
        evidence={"steps": steps, **{k: v for k, v in verdict.items() if k != "fires"}},
    )


def _met_without_data(real: list[float], noise: list[float], t: Any) -> dict[str, Any]:
    """The two runs' first losses and last thirds' medians, the sign test that the data
    lowers the loss usefully (the last third's paired steps where the real run is lower by
    ``data_free_useful_gain`` or more, among those that differ), and whether the noise run
    reached zero (``data_free_fraction`` of the start, on the data or on noise, whichever
    is lower) without the data doing that much better."""
    third = max(1, len(noise) // 3)
    real_tail, noise_tail = real[-third:], noise[-third:]
    noise_last = statistics.median(noise_tail)
    noise_first = noise[0]
    # Noise can start far off (inputs of the data's mean and spread that an encoder was
    # not initialised for): the lower of the two starts is the loss's scale.
    start = min(real[0], noise_first)
    # Lower by a useful margin: a loss any input can satisfy may still fall a little
    # faster on the data (ids that occur more often, pairs that repeat).
    keep = 1.0 - t.data_free_useful_gain
    lower = sum(a < keep * b for a, b in zip(real_tail, noise_tail, strict=True))
    differ = sum(a != b for a, b in zip(real_tail, noise_tail, strict=True))
    p = binomial_tail(differ, lower, 0.5)
    fires = (
        start > 0
        and all(v >= 0 for v in noise)
        and noise_last <= t.data_free_fraction * start
        and p > t.data_free_alpha
    )
    return {
        "real_first": real[0],
        "real_last": statistics.median(real_tail),
        "noise_first": noise_first,
        "noise_last": noise_last,
        "start": start,
        "real_lower_steps": lower,
        "steps_compared": differ,
        "p_data_lowers": p,
        "fires": fires,
    }
