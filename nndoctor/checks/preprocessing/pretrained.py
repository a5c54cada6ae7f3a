"""The preprocessing of a pretrained model (reason 14): inputs normalised as in pretraining."""

from __future__ import annotations

import math

from nndoctor.checks import causes
from nndoctor.checks.preprocessing.inputs import channel_stats
from nndoctor.checks.registry import CheckContext, register_check

# The normalisation nearly every pretrained vision model was trained with (ImageNet).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@register_check(
    id="pretrained-normalization-mismatch",
    reasons=(14,),
    severity="warning",
    explains=causes.SCALE_SYMPTOMS | causes.FIT_SYMPTOMS,
)
def pretrained_normalization_mismatch(ctx: CheckContext) -> None:
    """A pretrained model is fed inputs that are not normalised the way it was trained.

    Why it matters:
        Pretrained weights expect the preprocessing they were trained with — for vision
        models almost always the ImageNet mean and std per channel. Fed raw [0, 1] or
        [0, 255] pixels, every activation is off-distribution and fine-tuning starts from
        a broken model instead of a good one.

    What is measured:
        Whether weights were loaded before the first step (``load_state_dict``, or
        ``Subject(pretrained=True)``), and the per-channel mean and std of 3-channel
        image inputs, against what ImageNet-normalised images give (mean ≈ 0, std ≈ 1).

    How to fix:
        Normalise with the model's own statistics: ``(x - mean) / std`` with
        mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225) for ImageNet models, or
        whatever the model card says.

    Example:
        Before::

            x = images / 255.0

        After::

            x = (images / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    """
    rec = ctx.recording
    pretrained = bool(rec.weights_loaded) or (ctx.subject is not None and ctx.subject.pretrained)
    if not pretrained:
        ctx.skip("no pretrained weights were loaded before training")
    inputs = [s.inputs for s in rec.steps if s.inputs is not None and len(s.inputs.shape) == 4]
    stats = channel_stats(inputs)
    if stats is None or len(stats[0]) != 3:
        ctx.skip("the inputs are not 3-channel images")
    mean, std = stats.mean, stats.std
    tol = ctx.thresholds.pretrained_stat_tolerance
    ctx.note(
        "channel mean "
        + ", ".join(f"{m:.2f}" for m in mean)
        + "; std "
        + ", ".join(f"{s:.2f}" for s in std)
    )
    off_mean = max(abs(m) for m in mean)
    off_std = max(abs(math.log(max(s, 1e-12))) for s in std)
    if off_mean <= tol and off_std <= math.log(1 + 2 * tol):
        return
    raw01 = all(abs(m - im) < 0.25 for m, im in zip(mean, IMAGENET_MEAN, strict=True))
    ctx.finding(
        title="Pretrained weights, but inputs not normalised as in pretraining",
        message=(
            f"Weights were loaded before training ({', '.join(rec.weights_loaded) or 'declared'}), yet the "
            f"input channels have mean ({', '.join(f'{m:.2f}' for m in mean)}) and std "
            f"({', '.join(f'{s:.2f}' for s in std)}); ImageNet-normalised inputs have mean ≈ 0 and std ≈ 1"
            + (" — these look like raw [0, 1] pixels." if raw01 else ".")
        ),
        fix="Normalise with the pretraining statistics (ImageNet: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)).",
        evidence={"channel_mean": mean, "channel_std": std, "weights_loaded": rec.weights_loaded},
    )
