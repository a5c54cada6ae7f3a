"""Dense targets out of register with their inputs (reasons 3, 13): an augmentation that
flips the image and not its mask.

A segmentation mask, a depth map or a clean image is a picture of the same scene as the
input, pixel for pixel. A random flip (or rotation) applied to the input and not to its
target leaves a share of the pairs mirrored: the model is trained, on those, to draw the
object where it is not, and the loss settles high with blurred, symmetric predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nndoctor.checks import causes
from nndoctor.checks.lab import Lab
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import binomial_tail
from nndoctor.checks.thresholds import Thresholds
from nndoctor.probes.recording import Recording
from nndoctor.report.model import Where

# The mirrorings a target is compared under: of the image plane (the last two axes).
MIRRORS = {
    "horizontal flip": (-1,),
    "vertical flip": (-2,),
    "180-degree rotation": (-1, -2),
}


@dataclass
class DensePairs:
    """Inputs and targets laid out alike: ``x`` (N, C, H, W) and the target's features
    ``phi`` (N, K, H, W) (one channel per class for class ids), ``valid`` (N, H, W) the
    pixels the loss scores."""

    x: torch.Tensor
    phi: torch.Tensor
    valid: torch.Tensor
    classes: bool  # the targets are class ids


@dataclass
class Alignment:
    """Per sample: the fit of the input to its own target, to each mirrored target, and
    to the targets of other samples (mean and spread)."""

    own: torch.Tensor
    mirrored: dict[str, torch.Tensor]
    unrelated_mean: torch.Tensor
    unrelated_sd: torch.Tensor

    def best_mirror(self) -> tuple[torch.Tensor, list[str]]:
        names = list(self.mirrored)
        stacked = torch.stack([self.mirrored[n] for n in names])
        best, index = stacked.min(0)
        return best, [names[i] for i in index.tolist()]


def dense_pairs(
    pairs: list[tuple[Any, Any]], ignore_index: int | None, t: Thresholds
) -> DensePairs | None:
    """The kept (input, target) pairs where the target is an image of the input's size:
    class ids (N, H, W) or (N, 1, H, W), or maps (N, K, H, W); None otherwise."""
    xs, ys, n = [], [], 0
    for x, y in pairs:
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            return None
        if not (x.is_floating_point() and x.dim() == 4):
            return None
        size = tuple(x.shape[2:])
        if y.dim() == 3 and tuple(y.shape) == (x.shape[0], *size):
            y = y[:, None]
        if not (y.dim() == 4 and y.shape[0] == x.shape[0] and tuple(y.shape[2:]) == size):
            return None
        if ys and (
            y.shape[1] != ys[0].shape[1] or y.dtype != ys[0].dtype or x.shape[1:] != xs[0].shape[1:]
        ):
            break
        xs.append(x.detach().cpu().double())
        ys.append(y.detach().cpu())
        n += int(x.shape[0])
        if n >= t.alignment_max_samples:
            break
    if not xs:
        return None
    x = torch.cat(xs)[: t.alignment_max_samples]
    y = torch.cat(ys)[: t.alignment_max_samples]
    if y.is_floating_point():
        valid = torch.isfinite(y).all(1)
        phi, classes = torch.nan_to_num(y.double()), False
    elif y.shape[1] == 1:
        ids = y[:, 0].long()
        valid = ids >= 0
        if ignore_index is not None:
            valid &= ids != ignore_index
        present = torch.unique(ids[valid])
        if not 2 <= len(present) <= t.alignment_max_classes:
            return None
        phi, classes = torch.stack([ids == c for c in present], 1).double(), True
    else:
        return None
    pairs = _pooled(DensePairs(x, phi, valid, classes), t.alignment_max_side)
    # Bounded memory: the fit holds a few float64 copies of every pixel's features.
    per_sample = math.prod(pairs.x.shape[2:]) * (pairs.x.shape[1] + pairs.phi.shape[1] + 1)
    keep = max(2, t.alignment_max_elements // per_sample)
    return DensePairs(pairs.x[:keep], pairs.phi[:keep], pairs.valid[:keep], pairs.classes)


def _pooled(pairs: DensePairs, side: int) -> DensePairs:
    """Large images averaged down to at most ``side`` pixels a side (a pooled pixel counts
    where all of its pixels are scored); mirroring commutes with it on the cropped grid."""
    h, w = pairs.x.shape[2:]
    k = math.ceil(max(h, w) / side)
    if k <= 1:
        return pairs
    h, w = h - h % k, w - w % k

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t[..., :h, :w], k)

    valid = pool(pairs.valid[:, None, :h, :w].double())[:, 0] >= 1.0
    return DensePairs(pool(pairs.x), pool(pairs.phi), valid, pairs.classes)


def alignment(pairs: DensePairs, unrelated: int) -> Alignment:
    """How well each input is drawn from its own target, its mirrored targets and other
    samples' targets: the mean squared residual of the input's pixels against a linear
    map from the target's features (class means for class ids), fitted on all pairs."""
    x = pairs.x.permute(0, 2, 3, 1)  # (N, H, W, C)
    phi = pairs.phi.permute(0, 2, 3, 1)  # (N, H, W, K)

    def features(p: torch.Tensor) -> torch.Tensor:
        if pairs.classes:
            return p  # one-hot: the class means need no constant
        return torch.cat([p, torch.ones(*p.shape[:-1], 1, dtype=p.dtype)], -1)

    weights = torch.linalg.lstsq(features(phi[pairs.valid]), x[pairs.valid]).solution

    def residual(p: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        r = ((x - features(p) @ weights) ** 2).sum(-1)
        return (r * scored).sum((1, 2)) / scored.sum((1, 2)).clamp(min=1)

    # The same pixels under every mirroring, so that the fits compare like with like.
    scored = pairs.valid.clone()
    for dims in MIRRORS.values():
        scored &= pairs.valid.flip(dims)
    own = residual(phi, scored)
    # phi is laid out (N, H, W, K): the image axes are one further from the end.
    mirrored = {
        name: residual(phi.flip(tuple(d - 1 for d in dims)), scored)
        for name, dims in MIRRORS.items()
    }
    n = phi.shape[0]
    others = []
    for shift in range(1, min(unrelated, n - 1) + 1):
        j = torch.roll(torch.arange(n), shift)
        others.append(residual(phi[j], pairs.valid & pairs.valid[j]))
    stacked = torch.stack(others) if others else own[None]
    spread = stacked.std(0) if len(others) > 1 else torch.zeros_like(own)
    return Alignment(own, mirrored, stacked.mean(0), spread)


def _ignore_index(recording: Recording) -> int | None:
    for step in recording.steps:
        for call in step.loss_calls[:1]:
            value = call.kwargs.get("ignore_index")
            return int(value) if isinstance(value, int) else None
    return None


def _loss_where(recording: Recording) -> Where:
    for step in recording.steps:
        for call in step.loss_calls[:1]:
            return Where(step=step.step, file=call.file, line=call.line)
    return Where()


@register_check(
    id="target-misaligned",
    reasons=(3, 13),
    severity="error",
    explains=causes.FIT_SYMPTOMS | causes.LABEL_SYMPTOMS,
)
def target_misaligned(ctx: CheckContext) -> None:
    """Some dense targets are mirror images of their inputs: the input was flipped and
    its target was not.

    Why it matters:
        A segmentation mask, depth map or clean image must stay in register with its
        input pixel for pixel. An augmentation that flips or rotates the image and not
        the mask (``image = image.flip(-1)`` alone, a torchvision transform applied to
        the image only) trains the model, on that share of the data, to mark the object
        where it is not. The loss settles high, predictions blur into symmetric blobs,
        and nothing in the loss curve says why.

    What is measured:
        For the kept training batches whose target has the input's height and width
        (class ids, with ``ignore_index`` left out, or maps), a linear map from the
        target's features to the input's pixels (the mean input of each class, for
        class ids) is fitted on all pairs. Each sample's input is then drawn from its own
        target, from that target mirrored (horizontal flip, vertical flip, 180-degree
        rotation) and from ``alignment_unrelated`` other samples' targets. A sample counts
        where its best target stands ``alignment_power_sd`` spreads clear of the others'
        targets; it is *mirrored* where a mirrored target fits it better than its own by
        more than ``alignment_mirror_share`` of that margin, and *unmirrored* where its own
        beats every mirrored one by as much. A healthy pipeline can mirror a sample only
        where the linear map misleads, which is taken to happen for at most
        ``alignment_null_rate`` of the samples (no healthy subject measured had one). The
        check fires when both the mirrored and the unmirrored samples are more than that
        rate explains (one-sided binomial tests at ``alignment_alpha``): a target mirrored
        for every sample is a consistent task, not a broken pairing.

    How to fix:
        Apply every geometric augmentation to the input and its target together: draw
        the random decision once and use it on both (``if flip: image, mask =
        image.flip(-1), mask.flip(-1)``), or use paired transforms
        (``torchvision.transforms.v2`` with the mask wrapped as ``tv_tensors.Mask``).

    Example:
        Before::

            if torch.rand(1) < 0.5:
                image = image.flip(-1)

        After::

            if torch.rand(1) < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
    """
    t = ctx.thresholds
    lab: Lab | None = ctx.services
    if lab is None:
        ctx.skip("no training batches were kept")
    pairs = dense_pairs(lab.input_target_pairs(), _ignore_index(ctx.recording), t)
    if pairs is None:
        ctx.skip("no loss target is an image of the input's height and width")
    fit = alignment(pairs, t.alignment_unrelated)
    best_mirror, names = fit.best_mirror()
    best = torch.minimum(fit.own, best_mirror)
    margin = fit.unrelated_mean - best
    counted = margin > t.alignment_power_sd * fit.unrelated_sd
    clear = t.alignment_mirror_share * margin
    mirrored = counted & (fit.own - best_mirror > clear)
    unmirrored = counted & (best_mirror - fit.own > clear)
    n, k, kept = int(counted.sum()), int(mirrored.sum()), int(unmirrored.sum())
    detail = (
        f"{n} of {len(fit.own)} samples drawn clearly from a target; {k} of them fit a "
        f"mirrored target clearly better than the one they came with, {kept} their own"
    )
    if n == 0:
        ctx.inconclusive(f"{detail}: the inputs do not show their targets clearly enough to tell")
        return
    p_mirrored = binomial_tail(n, k, t.alignment_null_rate)
    p_unmirrored = binomial_tail(n, kept, t.alignment_null_rate)
    ctx.note(detail)
    if p_mirrored >= t.alignment_alpha or p_unmirrored >= t.alignment_alpha:
        return
    kinds = sorted({names[i] for i in mirrored.nonzero().flatten().tolist()})
    ctx.finding(
        f"{k} of {n} targets are mirror images of their inputs",
        f"{k} of {n} training samples ({k / n:.0%}) fit a mirrored copy of their target "
        f"({', '.join(kinds)}) better than the target they came with, while the others fit "
        "their own: the input was flipped or rotated without its target. The model is "
        "trained on those samples to mark things where they are not.",
        "Apply each geometric augmentation to the input and its target together, with one "
        "random draw for both.",
        where=_loss_where(ctx.recording),
        evidence={
            "samples": n,
            "mirrored": k,
            "mirrorings": kinds,
            "p_value": p_mirrored,
            "classes": pairs.classes,
        },
    )
