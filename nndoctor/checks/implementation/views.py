"""Two views of a sample that are one and the same (reasons 3, 18)."""

from __future__ import annotations

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.report.model import Where


@register_check(
    id="identical-views",
    reasons=(3, 18),
    severity="error",
    explains=causes.FIT_SYMPTOMS,
)
def identical_views(ctx: CheckContext) -> None:
    """The model is run twice on the same input in a step and one loss compares the two
    outputs: the "two views" are one.

    Why it matters:
        Contrastive and siamese objectives (SimCLR's NT-Xent, InfoNCE, BYOL, a siamese
        margin loss) learn by comparing the embeddings of two different views of a
        sample, or of two samples. Encode the same augmented view twice
        (``model(view), model(view)``), or pass a sample where its pair belongs, and the
        positive pair is identical by construction: the loss is satisfied without
        learning anything invariant, and downstream accuracy stays near chance while the
        loss falls.

    What is measured:
        In the first observed steps, each later training forward of the model that comes
        before any backward pass of the step is compared with the step's first forward:
        its input, value for value, and then its output (its shape, sum and norm, which
        an identical tensor repeats exactly). Only inputs holding at least two different
        samples count: a batch of distinct samples met again exactly is no chance, while
        one state (a rollout back at its start) recurs by itself. The check fires when, in at least
        ``repeated_forward_min_steps`` (2) steps, a forward repeated the first exactly
        (the same input gave the very same output, so nothing random such as dropout
        told them apart) and the graph of one backward pass holds both outputs: the loss
        compared an output with itself. A second forward that only computes a metric, or
        one after a backward pass (an LBFGS closure, sharpness-aware minimisation), is not
        counted; two forwards made different by dropout (SimCSE) are not identical.

    How to fix:
        Draw the second view with its own augmentation (``x1, x2 = aug(x), aug(x)``), and
        check which tensor each call is given; for a pair or a negative, pass the other
        sample, not the anchor again.

    Example:
        Before::

            view = augment(x)
            z1, z2 = model(view), model(view)

        After::

            z1, z2 = model(augment(x)), model(augment(x))
    """
    t = ctx.thresholds
    steps = [s for s in ctx.recording.steps if any(r.in_one_loss for r in s.repeated_forwards)]
    if not any(s.forwards_compared for s in ctx.recording.steps):
        ctx.skip("no training step ran the model twice before its backward pass")
    ctx.note(
        f"{len(steps)} observed step(s) in which one loss compared two forwards of the same input"
    )
    if len(steps) < t.repeated_forward_min_steps:
        return
    first = next(r for r in steps[0].repeated_forwards if r.in_one_loss)
    given = "the very same tensor" if first.same_tensor else "an input equal value for value"
    ctx.finding(
        "The model's two views are identical: one loss compares an output with itself",
        f"In {len(steps)} of the observed steps the model ran a second time on {given} to "
        "its first forward of the step, returned the same output (equal shape, sum and "
        "norm), and one backward pass took both outputs: the loss compares the same embedding twice, so a positive "
        "pair matches by construction and nothing invariant is learned.",
        "Give each forward its own view (augment twice), or pass the intended pair or "
        "negative instead of the same sample again.",
        where=Where(step=steps[0].step, file=first.file, line=first.line),
        evidence={
            "steps": [s.step for s in steps],
            "call": first.call,
            "same_tensor": first.same_tensor,
        },
    )
