"""Too much augmentation (reason 13): two views of one sample as far apart as two samples."""

from __future__ import annotations

import math
from typing import Any

import torch

from nndoctor.checks import causes
from nndoctor.checks.data.dataset import training_loader
from nndoctor.checks.lab import Lab
from nndoctor.checks.preprocessing.inputs import SAMPLE_ITEMS, draw_pairs, sample_indices
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import binomial_tail
from nndoctor.probes.recording import Recording


def _same_target(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    try:
        return bool(a == b)
    except (RuntimeError, ValueError):
        return False


@register_check(
    id="augmentation-too-strong",
    reasons=(13,),
    severity="warning",
    kind="experiment",
    quick=True,
    priority=22,
    explains=causes.FIT_SYMPTOMS | causes.LABEL_SYMPTOMS,
)
def augmentation_too_strong(ctx: CheckContext) -> None:
    """Two augmented views of the same sample differ as much as two different samples.

    Why it matters:
        Augmentation should change what does not matter and keep what does. When two
        views of one image are as far apart as two unrelated images, the label no longer
        follows from the input: the model cannot fit even its training data, and the
        loss plateaus high.

    What is measured:
        The training dataset's items fetched twice (random augmentation gives two
        views): the mean distance between the two views of a sample, against the mean
        distance between different samples. Distance in the raw tensor knows nothing of
        what the model is built or trained to ignore (the order of a point set, a
        rotation), so a ratio of ``augmentation_view_ratio`` or more is only a suspicion:
        it is dismissed when the model, in the second half of the observed steps, already
        does better on each step's batch (views it has not trained on) than the best
        constant answer: more right answers than the batches' most frequent labels
        (binomial test), or for another loss a loss below the best constant prediction's
        step after step (sign test), each at ``augmentation_learned_alpha``.

    How to fix:
        Weaken the augmentation (smaller crops and rotations, milder colour jitter), and
        check that the model fits a tiny batch with augmentation off first (reason 27).

    Example:
        Before::

            RandomResizedCrop(32, scale=(0.01, 1.0)), ColorJitter(2.0, 2.0, 2.0, 0.5)

        After::

            RandomResizedCrop(32, scale=(0.5, 1.0)), ColorJitter(0.2, 0.2, 0.2, 0.05)
    """
    lab: Lab | None = ctx.services
    loader = training_loader(ctx.recording)
    if lab is None or loader is None or loader.index not in lab.datasets or not loader.dataset_len:
        ctx.skip(
            "the training dataset is not available (no DataLoader over a sized dataset fed the steps)"
        )
    dataset = lab.datasets[loader.index]
    idx = sample_indices(loader.dataset_len, SAMPLE_ITEMS, seed=0)
    try:
        first = draw_pairs(dataset, idx)
        second = draw_pairs(dataset, idx)
    except Exception as exc:  # noqa: BLE001 - a dataset we cannot index is a skip, not a crash
        ctx.skip(f"the training dataset cannot be indexed: {type(exc).__name__}: {exc}")
    if first is None or second is None or len(first[0]) < 4:
        ctx.skip("dataset items are not same-shaped float tensors")
    # A dataset that draws a new target with each fetch generates its task (a pretext
    # task such as rotation or jigsaw): that randomness is the label, not augmentation.
    keep = [
        i
        for i, (ya, yb) in enumerate(zip(first[1], second[1], strict=True))
        if _same_target(ya, yb)
    ]
    if len(keep) < 4:
        ctx.skip(
            "the dataset draws a new target with each fetch (a generated task), so views are not comparable"
        )
    a, b = first[0][keep], second[0][keep]
    same = (a - b).flatten(1).norm(dim=1).mean().item()
    if same == 0:
        ctx.note("no random augmentation: fetching an item twice gives the same tensor")
        return
    shifted = torch.roll(a, 1, dims=0)
    between = (a - shifted).flatten(1).norm(dim=1).mean().item()
    ratio = same / between if between > 0 else math.inf
    ctx.note(
        f"two views of a sample differ by {same:.3g}, different samples by {between:.3g} (ratio {ratio:.2f})"
    )
    if ratio < ctx.thresholds.augmentation_view_ratio:
        return
    learned = views_keep_labels(ctx.recording)
    if learned is not None and learned[0] < ctx.thresholds.augmentation_learned_alpha:
        # Distance in the raw tensor knows nothing of what the model is built to ignore (the
        # order of a point set, a rotation it learns): a model that already beats the best
        # constant answer on batches it has not trained on shows that views keep their label.
        ctx.note(
            f"two views of a sample are as far apart as two samples (ratio {ratio:.2f}), but "
            f"{learned[1]} (p={learned[0]:.2g}): the views keep their label"
        )
        return
    ctx.finding(
        title="Augmentation changes samples as much as swapping them",
        message=(
            f"Two augmented views of the same training sample are {same:.3g} apart on average and two "
            f"different samples {between:.3g} ({ratio:.2f}×): after augmentation, a sample's content "
            "barely predicts its label."
        ),
        fix="Weaken the augmentation, and fit a tiny batch with augmentation off first.",
        evidence={
            "view_distance": same,
            "sample_distance": between,
            "ratio": ratio,
            "items": len(a),
        },
    )


def views_keep_labels(rec: Recording) -> tuple[float, str] | None:
    """Whether the model, in the second half of the observed steps, already does better on
    each step's fresh batch than the best constant answer: the one-sided p-value and what
    was counted, or None when the loss's calls do not tell.

    Each step's loss is measured before that step's update, on views the model has not
    trained on. A classifier's correct answers are compared with the batches' most frequent
    labels (binomial test; a model blind to the labels does no better in expectation);
    another loss, step by step with the loss of the best constant prediction (sign test).
    """
    steps = [s for s in rec.steps if len(s.loss_calls) == 1 and not s.unrolled]
    steps = steps[len(steps) // 2 :]
    calls = [s.loss_calls[0] for s in steps]
    counted = [
        (c.accuracy, c.target.class_counts)
        for c in calls
        if math.isfinite(c.accuracy) and c.target is not None and c.target.class_counts
    ]
    if counted and len(counted) == len(calls):
        total = int(sum(sum(counts) for _, counts in counted))
        correct = int(round(sum(acc * sum(counts) for acc, counts in counted)))
        majority = sum(max(counts) for _, counts in counted)
        if total == 0:
            return None
        what = (
            f"the model answered {correct}/{total} of the later fresh batches right, against "
            f"{majority / total:.0%} for their most frequent labels"
        )
        return binomial_tail(total, correct, majority / total), what
    paired = [
        (c.value, c.prior) for c in calls if math.isfinite(c.value) and math.isfinite(c.prior)
    ]
    if len(paired) < 2 or len(paired) < len(calls):
        return None
    below = sum(v < prior for v, prior in paired)
    what = (
        f"the loss of {below} of the later {len(paired)} fresh batches was below the best "
        "constant prediction's"
    )
    return binomial_tail(len(paired), below, 0.5), what
