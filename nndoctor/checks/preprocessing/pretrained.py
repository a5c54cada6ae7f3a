"""The preprocessing of a pretrained model (reason 14): inputs normalised as in pretraining."""

from __future__ import annotations

import math

from nndoctor.checks import causes
from nndoctor.checks.preprocessing.inputs import ChannelStats, channel_stats
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import Recording, TensorSummary

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
        Weights loaded between two phases of one run that fit the network the first phase
        trained (an encoder handed to a linear probe, a best checkpoint restored) were made
        on the script's own inputs, not pretrained elsewhere: the per-channel statistics of
        this phase's image inputs are compared with the earlier phase's instead, and a
        channel whose mean moved by more than ``phase_mean_shift`` (1) of the earlier std,
        or whose std changed by more than ``phase_std_ratio`` (2x) either way, is a
        preprocessing that differs (augmentations alone move a channel far less).

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
    elsewhere = rec.weights_from_elsewhere
    pretrained = bool(elsewhere) or (
        ctx.subject is not None and ctx.subject.pretrained and not rec.weights_loaded
    )
    if not pretrained:
        if rec.weights_loaded and rec.weights_loaded_between_phases:
            _compare_with_the_earlier_phase(ctx, rec)
            return
        if rec.weights_loaded:
            ctx.skip(
                "the weights loaded before training are the trained network's own, handed on "
                "in memory (a momentum encoder started as a copy of the model): not pretrained"
            )
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
            f"Weights were loaded before training ({', '.join(elsewhere) or 'declared'}), yet the "
            f"input channels have mean ({', '.join(f'{m:.2f}' for m in mean)}) and std "
            f"({', '.join(f'{s:.2f}' for s in std)}); ImageNet-normalised inputs have mean ≈ 0 and std ≈ 1"
            + (" — these look like raw [0, 1] pixels." if raw01 else ".")
        ),
        fix="Normalise with the pretraining statistics (ImageNet: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)).",
        evidence={"channel_mean": mean, "channel_std": std, "weights_loaded": elsewhere},
    )


def _image_stats(summaries: list[TensorSummary]) -> ChannelStats | None:
    return channel_stats([s for s in summaries if len(s.shape) == 4])


def _compare_with_the_earlier_phase(ctx: CheckContext, rec: Recording) -> None:
    """Weights trained by this run's earlier phase expect that phase's preprocessing."""
    why = "the weights loaded before this phase are a checkpoint of the network the earlier phase trained"
    before = _image_stats(rec.earlier_phase_inputs)
    now = _image_stats([s.inputs for s in rec.steps if s.inputs is not None])
    if before is None or now is None or len(before.mean) != len(now.mean):
        ctx.note(f"{why}; the two phases' inputs are not images of the same channels")
        return
    t = ctx.thresholds
    shift = max(
        abs(m2 - m1) / max(s1, 1e-12)
        for m1, m2, s1 in zip(before.mean, now.mean, before.std, strict=True)
    )
    ratio = max(
        abs(math.log(max(s2, 1e-12) / max(s1, 1e-12)))
        for s1, s2 in zip(before.std, now.std, strict=True)
    )
    said = (
        f"channel mean ({_listed(before.mean)}) and std ({_listed(before.std)}) in the earlier "
        f"phase, ({_listed(now.mean)}) and ({_listed(now.std)}) in this one"
    )
    if shift <= t.phase_mean_shift and ratio <= math.log(t.phase_std_ratio):
        ctx.note(f"{why}; its inputs are preprocessed alike: {said}")
        return
    ctx.finding(
        title="The network trained in the earlier phase gets inputs preprocessed differently",
        message=(
            f"This phase starts from weights the earlier phase trained ({', '.join(rec.weights_loaded)}), "
            f"but its inputs are not preprocessed as that phase's were: {said} (a channel moved by "
            f"{shift:.2g} of the earlier std, std off by {math.exp(ratio):.2g}x)."
        ),
        fix=(
            "Feed this phase the preprocessing the earlier phase trained on (the same scaling "
            "and normalisation; only the augmentations may differ)."
        ),
        evidence={
            "earlier_channel_mean": before.mean,
            "earlier_channel_std": before.std,
            "channel_mean": now.mean,
            "channel_std": now.std,
            "mean_shift_in_std": shift,
            "std_ratio": math.exp(ratio),
        },
    )


def _listed(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)
