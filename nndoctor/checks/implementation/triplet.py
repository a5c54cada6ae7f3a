"""A triplet loss given its arguments in the wrong order (reasons 19, 18)."""

from __future__ import annotations

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import binomial_tail
from nndoctor.report.model import Where


@register_check(
    id="triplet-order",
    reasons=(19, 18),
    severity="error",
    explains=causes.LABEL_SYMPTOMS | frozenset({"give-it-time"}),
)
def triplet_order(ctx: CheckContext) -> None:
    """The triplet loss is given the negative as its positive: ``(anchor, negative,
    positive)``.

    Why it matters:
        ``TripletMarginLoss(anchor, positive, negative)`` pulls the positive towards the
        anchor and pushes the negative away. With the last two swapped it learns the
        opposite: the loss falls as usual while the embedding puts different things
        together and keeps alike things apart, and retrieval ends below chance.

    What is measured:
        At the first observed step, before training has moved the embedding, for the
        first triplet loss call whose three arguments come out of the same operation (one
        network's outputs, or chunks of them; mined triplets, picked out of a batch by
        index, are left out, since mining picks far positives and near negatives on
        purpose): the number of triplets whose positive is farther from the anchor than
        their negative, by the loss's own distance. Even an untrained network maps
        alike inputs (two views of an image, two samples of a class) closer than unlike
        ones more often than not, so a healthy call has at most half its positives
        farther. The check fires when more are than half explains (one-sided binomial
        test at ``triplet_order_alpha``). Positives no more alike than negatives at
        initialisation decide nothing either way.

    How to fix:
        Pass the arguments as ``loss(anchor, positive, negative)``; by keyword
        (``F.triplet_margin_loss(anchor=a, positive=p, negative=n)``) the order cannot
        slip.

    Example:
        Before::

            loss = criterion(anchor, negative, positive)

        After::

            loss = criterion(anchor, positive, negative)
    """
    t = ctx.thresholds
    first = next(
        ((s, c) for s in ctx.recording.steps for c in s.triplet_calls[:1]),
        None,
    )
    if first is None:
        ctx.skip("no triplet loss was called in a training step")
    step, call = first
    if step.step != ctx.recording.steps[0].step:
        ctx.skip("the first triplet loss call came after the first step: the embedding had trained")
    if not call.same_source:
        ctx.skip(
            "the triplet's arguments come out of different operations or were picked by index "
            "(mined): how far a positive lies then says nothing of the order"
        )
    n, k = call.samples, call.positive_farther
    p_value = binomial_tail(n, k, 0.5)
    ctx.note(
        f"{k} of {n} positives farther from their anchor than their negative at step {step.step}"
    )
    if p_value >= t.triplet_order_alpha:
        return
    ctx.finding(
        "The triplet loss is given its negative as the positive",
        f"Before training, {k} of {n} triplets ({k / n:.0%}) have the argument passed as "
        "the positive farther from the anchor than the one passed as the negative "
        f"(binomial p = {p_value:.1e} against at most half). An untrained network already "
        "maps alike inputs closer, so the two are most likely swapped: the loss is "
        "training the embedding to pull unlike things together.",
        "Call the loss as loss(anchor, positive, negative), or by keyword.",
        where=Where(step=step.step, file=call.file, line=call.line),
        evidence={"samples": n, "positive_farther": k, "p_value": p_value, "op": call.op},
    )
