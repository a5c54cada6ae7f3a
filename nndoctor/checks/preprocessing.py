"""Part II of REASONS.md, beyond standardisation: augmentation (13), pretrained
normalisation (14) and the same preprocessing for every split (15)."""

from __future__ import annotations

import bisect
import math
from typing import Any

import torch

from nndoctor.checks import causes
from nndoctor.checks.data.dataset import training_loader
from nndoctor.checks.lab import Lab
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import TensorSummary
from nndoctor.subject import default_inputs, default_targets

# The normalisation nearly every pretrained vision model was trained with (ImageNet).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SAMPLE_ITEMS = 256  # dataset items drawn per split: means within ~0.09 std


def _item_input(item: Any) -> torch.Tensor | None:
    x = default_inputs(item)
    return x if isinstance(x, torch.Tensor) and x.is_floating_point() else None


def _draw(dataset: Any, indices: list[int]) -> torch.Tensor | None:
    drawn = _draw_pairs(dataset, indices)
    return drawn[0] if drawn is not None else None


def _draw_pairs(dataset: Any, indices: list[int]) -> tuple[torch.Tensor, list[Any]] | None:
    """The stacked inputs of the items at ``indices`` and their targets."""
    xs, ys = [], []
    for i in indices:
        item = dataset[i]
        x = _item_input(item)
        if x is None:
            return None
        xs.append(x.detach().float().cpu())
        ys.append(default_targets(item))
    if not xs or any(x.shape != xs[0].shape for x in xs):
        return None
    return torch.stack(xs), ys


def _same_target(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    try:
        return bool(a == b)
    except (RuntimeError, ValueError):
        return False


def _indices(n: int, k: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: min(n, k)].tolist()


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
        distance between different samples.

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
    idx = _indices(loader.dataset_len, _SAMPLE_ITEMS, seed=0)
    try:
        first = _draw_pairs(dataset, idx)
        second = _draw_pairs(dataset, idx)
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


ChannelStats = tuple[list[float], list[float], int]  # per-channel mean, per-channel std, samples


def _channel_stats(summaries: list[TensorSummary]) -> ChannelStats | None:
    rows = [s for s in summaries if s.channel_mean is not None and s.channel_std is not None]
    if not rows:
        return None
    c = len(rows[0].channel_mean or [])
    rows = [r for r in rows if len(r.channel_mean or []) == c]
    mean = [sum((r.channel_mean or [])[i] for r in rows) / len(rows) for i in range(c)]
    std = [sum((r.channel_std or [])[i] for r in rows) / len(rows) for i in range(c)]
    return mean, std, sum(r.shape[0] if r.shape else 1 for r in rows)


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
    stats = _channel_stats(inputs)
    if stats is None or len(stats[0]) != 3:
        ctx.skip("the inputs are not 3-channel images")
    mean, std, _ = stats
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


@register_check(
    id="split-preprocessing-differs",
    reasons=(15,),
    severity="warning",
    kind="experiment",
    quick=True,
    priority=21,
    explains=frozenset({"nothing-generalizes", "loss-accuracy-disagree"}),
)
def split_preprocessing_differs(ctx: CheckContext) -> None:
    """Training and evaluation data are preprocessed differently, or share samples.

    Why it matters:
        A validation set normalised with other statistics (or not at all) reports a loss
        that says nothing about the model; samples present in both splits make it look
        better than it is. Both hide real problems until deployment.

    What is measured:
        Per-channel statistics of the inputs of evaluation forwards (gradients off) and
        of a sample of every other DataLoader's dataset, against the training inputs: a
        warning when a channel's mean moves by more than ``split_mean_shift`` (0.5)
        training stds and by more than ``split_noise_z`` (4) standard errors of the two
        samples, or its std changes by more than ``split_std_ratio`` (2)×; per-sample
        fingerprints of evaluation inputs found among training inputs.

    How to fix:
        Compute normalisation statistics on the training split only and apply the same
        transform (minus random augmentation) to every split; split by sample id before
        any augmentation or duplication.

    Example:
        Before::

            val_x = (val_x - val_x.mean()) / val_x.std()   # statistics of the wrong split

        After::

            val_x = (val_x - train_mean) / train_std
    """
    rec = ctx.recording
    train_inputs = [s.inputs for s in rec.steps if s.inputs is not None]
    train_stats = _channel_stats(train_inputs)
    findings = 0
    compared = []
    if rec.eval_inputs and train_stats is not None:
        eval_stats = _channel_stats(rec.eval_inputs)
        if eval_stats is not None and len(eval_stats[0]) == len(train_stats[0]):
            compared.append("evaluation forwards")
            findings += _compare(
                ctx,
                "the inputs of evaluation forwards",
                "the training inputs",
                train_stats,
                eval_stats,
            )
    if rec.eval_sample_fingerprints:
        train_fp = sorted(v for s in rec.steps for v in s.sample_fingerprints if math.isfinite(v))
        shared = [v for v in rec.eval_sample_fingerprints if _near(train_fp, v)]
        compared.append(
            f"{len(rec.eval_sample_fingerprints)} evaluation samples against {len(train_fp)} training samples"
        )
        if shared:
            findings += 1
            ctx.finding(
                title="Samples shared between training and evaluation",
                message=(
                    f"{len(shared)} of {len(rec.eval_sample_fingerprints)} evaluation inputs are identical to "
                    f"inputs seen in the first {len(rec.steps)} training steps: the evaluation leaks training data."
                ),
                fix="Split by sample id before augmentation or duplication, and de-duplicate across splits.",
                severity="error",
                evidence={"shared": len(shared), "evaluated": len(rec.eval_sample_fingerprints)},
            )
    if not findings:
        # Without an evaluation forward in the budget, sample the other loaders' datasets.
        findings += _compare_datasets(ctx, compared)
    if not compared:
        ctx.skip("no evaluation data was observed (no no-grad forward and no other DataLoader)")
    ctx.note("compared: " + "; ".join(compared))


def _near(sorted_values: list[float], v: float) -> bool:
    """Whether ``v`` is within float noise of a value in ``sorted_values`` (batched matmuls
    may round one sample's projection slightly differently)."""
    if not math.isfinite(v):
        return False
    i = bisect.bisect_left(sorted_values, v)
    tol = 1e-5 * max(1.0, abs(v))
    return any(abs(sorted_values[j] - v) <= tol for j in (i - 1, i) if 0 <= j < len(sorted_values))


def _compare(
    ctx: CheckContext, what: str, against: str, train: ChannelStats, other: ChannelStats
) -> int:
    t = ctx.thresholds
    n1, n2 = max(train[2], 1), max(other[2], 1)
    # A channel's shift counts only beyond the sampling noise of two finite samples: the
    # means of a few dozen items of a clustered dataset differ by half a std by chance.
    shifts = [
        abs(m2 - m1) / max(s1, 1e-6)
        if abs(m2 - m1) > t.split_noise_z * math.sqrt(s1 * s1 / n1 + s2 * s2 / n2)
        else 0.0
        for m1, s1, m2, s2 in zip(train[0], train[1], other[0], other[1], strict=True)
    ]
    ratios = [max(s2, 1e-12) / max(s1, 1e-12) for s1, s2 in zip(train[1], other[1], strict=True)]
    shift = max(shifts)
    ratio = max(max(ratios), 1 / min(ratios))
    if shift <= t.split_mean_shift and ratio <= t.split_std_ratio:
        return 0
    ctx.finding(
        title="Evaluation data preprocessed differently from training data",
        message=(
            f"Per channel, {what} differ from {against}: the means are up to {shift:.2f} training standard "
            f"deviations apart and the stds differ up to {ratio:.2f}×."
        ),
        fix="Apply the training split's normalisation (same mean/std, same transform minus augmentation) to every split.",
        evidence={
            "max_mean_shift_in_std": shift,
            "max_std_ratio": ratio,
            "train_mean": train[0][:8],
            "other_mean": other[0][:8],
        },
    )
    return 1


def _compare_datasets(ctx: CheckContext, compared: list[str]) -> int:
    """Sample every non-training DataLoader's dataset and compare it with the training dataset."""
    lab: Lab | None = ctx.services
    train = training_loader(ctx.recording)
    if lab is None or train is None or train.index not in lab.datasets or not train.dataset_len:
        return 0
    try:
        a = _draw(lab.datasets[train.index], _indices(train.dataset_len, _SAMPLE_ITEMS, seed=0))
    except Exception:  # noqa: BLE001 - an unindexable dataset is not comparable
        return 0
    if a is None or a.dim() < 2:
        return 0
    dims = [0, *range(2, a.dim())]
    train_stats = (a.mean(dims).tolist(), a.std(dims).tolist(), int(a.shape[0]))
    found = 0
    for info in ctx.recording.loaders:
        if info.index == train.index or info.index not in lab.datasets or not info.dataset_len:
            continue
        try:
            b = _draw(lab.datasets[info.index], _indices(info.dataset_len, _SAMPLE_ITEMS, seed=1))
        except Exception:  # noqa: BLE001
            continue
        if b is None or b.shape[1:] != a.shape[1:]:
            continue
        compared.append(f"dataset of loader {info.index} ({info.dataset})")
        other = (b.mean(dims).tolist(), b.std(dims).tolist(), int(b.shape[0]))
        found += _compare(
            ctx,
            f"items of the {info.dataset} behind loader {info.index}",
            "training items",
            train_stats,
            other,
        )
    return found
