"""The task as a whole: a simpler version of it, and a metric besides the loss."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from nndoctor.checks.lab import Lab
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.subject import batch_size_of, take_samples


@register_check(
    id="simpler-task-trains",
    reasons=(16,),
    severity="warning",
    kind="experiment",
    priority=20,
    explains=frozenset({"cannot-overfit-tiny-batch", "loss-accuracy-disagree"}),
)
def simpler_task_trains(ctx: CheckContext) -> None:
    """The full task cannot be fit, but a simpler version of it can.

    Why it matters:
        Reducing the task — two classes instead of ten — separates "the machinery is
        broken" from "the machinery works but the full problem is too hard for this
        setup". If two classes fit and ten do not, the pipeline is sound and the problem
        is capacity, class-dependent data or labels.

    What is measured:
        When a copy cannot fit a tiny batch of the full task, the same experiment on a
        tiny batch restricted to the two most frequent classes of the observed batches.

    How to fix:
        Grow the model (reason 24), check the classes the model fails on for label or
        data problems, and add the classes back step by step.

    Example:
        Before::

            model = nn.Sequential(nn.Linear(784, 4), nn.ReLU(), nn.Linear(4, 100))

        After::

            model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 100))
    """
    lab: Lab = ctx.services
    if lab is None or not lab.available:
        ctx.skip(
            (lab.unavailable_reason if lab else "no subject")
            + "; a simpler task needs an in-process replay"
        )
    subject = lab.subject
    assert subject is not None
    if subject.task.kind != "classification" or (subject.task.num_classes or 0) < 3:
        ctx.skip("only classification with three or more classes has a simpler two-class version")
    t = ctx.thresholds
    full = lab.overfit_user(t)
    if lab.fits(full, t):
        ctx.note("the full task fits a tiny batch; no simpler version needed")
        return
    batch, classes = _two_class_batch(lab, t.overfit_batch_size)
    if batch is None:
        ctx.skip("the observed batches hold fewer than two classes with enough samples")
    simple = lab.train([batch], t.overfit_steps, regularisation=False)
    ctx.note(
        f"full task: {full.initial:.4g} → {full.final:.4g}; classes {classes}: "
        f"{simple.initial:.4g} → {simple.final:.4g}"
    )
    if not lab.fits(simple, t):
        return
    ctx.finding(
        title="Only a simpler version of the task can be fit",
        message=(
            f"A tiny batch of the full task goes from {full.initial:.4g} to {full.final:.4g}, but restricted "
            f"to classes {classes} it falls to {simple.final:.4g}: the training machinery works, the full "
            "problem does not fit this setup."
        ),
        fix="Increase capacity (reason 24) and inspect the classes the model fails on; add classes back gradually.",
        reasons=(16, 24),
        evidence={
            "full_final_loss": full.final,
            "simple_final_loss": simple.final,
            "classes": classes,
        },
    )


def _two_class_batch(lab: Lab, size: int) -> tuple[Any, list[int]]:
    subject = lab.subject
    assert subject is not None
    for batch in lab.batches(4):
        target = subject.targets(batch)
        if target is None or target.dim() != 1 or target.is_floating_point():
            continue
        if target.shape[0] != batch_size_of(batch, subject):
            continue  # one target per token, not per sample: no sample can be kept alone
        labels = target.tolist()
        common = [c for c, n in Counter(labels).most_common(2) if n >= 2]
        if len(common) < 2:
            continue
        index = [i for i, y in enumerate(labels) if y in common][:size]
        return take_samples(batch, index, subject), sorted(common)
    return None, []


@register_check(
    id="loss-accuracy-disagree",
    reasons=(21,),
    severity="warning",
    symptom=True,
    differential=(
        (21, "how the metric is computed (argmax axis, targets)"),
        (8, "a dominant class the loss can learn alone"),
        (19, "the loss input"),
        (26, "gradients accumulated without zero_grad"),
    ),
)
def loss_accuracy_disagree(ctx: CheckContext) -> None:
    """The loss falls while the accuracy does not move (or the other way round).

    Why it matters:
        The loss is a proxy. When it improves and the task metric does not, the model is
        learning something other than the task — usually the class prior (predicting the
        most frequent class more confidently), which happens when the input is ignored,
        or a mismatch between what the loss and the metric see.

    What is measured:
        The batch accuracy implied by each classification loss call (argmax of the loss
        input against its targets) and the loss, the first steps against the last third of the
        observed steps.

    How to fix:
        Check that the model uses its input (see the random-input experiment), that
        targets are aligned with inputs, and that class weights or label smoothing are
        what you intend.

    Example:
        Before::

            out = model(x.detach().zero_())   # input zeroed by a bug: only the prior is learned

        After::

            out = model(x)
    """
    steps = [
        s for s in ctx.recording.steps if s.loss_calls and math.isfinite(s.loss_calls[0].accuracy)
    ]
    if len(steps) < 9:
        ctx.skip("fewer than nine steps with a classification loss (no accuracy to compare)")
    # The start is short (the loss moves fastest there), the end a third of the steps.
    k = len(steps) // 3
    h = max(2, k // 2)
    loss0 = sum(s.loss_calls[0].value for s in steps[:h]) / h
    loss1 = sum(s.loss_calls[0].value for s in steps[-k:]) / k
    acc0 = sum(s.loss_calls[0].accuracy for s in steps[:h]) / h
    acc1 = sum(s.loss_calls[0].accuracy for s in steps[-k:]) / k
    t = ctx.thresholds
    ctx.note(
        f"loss {loss0:.4g} → {loss1:.4g}, accuracy {acc0:.3f} → {acc1:.3f} over {len(steps)} steps"
    )
    evidence = {
        "loss_start": loss0,
        "loss_end": loss1,
        "accuracy_start": acc0,
        "accuracy_end": acc1,
    }
    if (
        loss0 > 0
        and loss1 <= (1 - t.metric_loss_drop) * loss0
        and acc1 - acc0 < t.metric_accuracy_gain_min
        and acc1 < t.metric_accuracy_ceiling
    ):
        ctx.finding(
            title="The loss falls but the accuracy does not",
            message=(
                f"Over the observed steps the loss fell from {loss0:.4g} to {loss1:.4g} while the batch "
                f"accuracy stayed at {acc0:.3f} → {acc1:.3f}: the model gets more confident without "
                "getting more right."
            ),
            fix="Check that the input reaches the model and that targets line up with inputs (reasons 2, 4).",
            evidence=evidence,
        )
    elif acc1 - acc0 > 0.2 and loss1 > 1.2 * loss0:
        ctx.finding(
            title="The accuracy rises while the loss rises",
            message=(
                f"The batch accuracy rose from {acc0:.3f} to {acc1:.3f} while the loss rose from {loss0:.4g} "
                f"to {loss1:.4g}: predictions become right but over-confident where wrong."
            ),
            fix="Lower the learning rate or add regularisation; check the loss weights.",
            evidence=evidence,
        )
