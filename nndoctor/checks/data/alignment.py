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
    # The target came at a whole multiple or fraction of the input's size (averaged onto
    # the smaller grid): super-resolution, a mask at the output stride.
    rescaled: bool = False


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


def grid_factors(
    input_size: tuple[int, ...], target_size: tuple[int, ...]
) -> tuple[int, int] | None:
    """How many pixels a side the input and the target are each averaged over to meet on
    one grid: (1, 1) for a target of the input's size, (1, r) for a target r times larger
    on both axes (super-resolution), (r, 1) for one r times smaller (a mask at the output
    stride); None when the sizes are not so related."""
    if len(input_size) != 2 or len(target_size) != 2:
        return None
    (xh, xw), (yh, yw) = input_size, target_size
    if (xh, xw) == (yh, yw):
        return 1, 1
    for small, large, order in (((xh, xw), (yh, yw), 1), ((yh, yw), (xh, xw), -1)):
        if small[0] and small[1] and large[0] % small[0] == 0 and large[1] % small[1] == 0:
            r = large[0] // small[0]
            if r >= 2 and r == large[1] // small[1]:
                return (1, r) if order == 1 else (r, 1)
    return None


def dense_pairs(
    pairs: list[tuple[Any, Any]], ignore_index: int | None, t: Thresholds
) -> DensePairs | None:
    """The kept (input, target) pairs where the target is an image of the input's size, or
    of a whole multiple of it, or class ids on a grid a whole fraction of it (averaged onto
    the smaller grid): class ids (N, H, W) or (N, 1, H, W), or maps (N, K, H, W); None
    otherwise."""
    xs, ys, n = [], [], 0
    factors: tuple[int, int] | None = None
    for x, y in pairs:
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            return None
        if not (x.is_floating_point() and x.dim() == 4):
            return None
        size = tuple(x.shape[2:])
        if (
            y.dim() == 3
            and y.shape[0] == x.shape[0]
            and grid_factors(size, tuple(y.shape[1:])) is not None
        ):
            y = y[:, None]
        if not (y.dim() == 4 and y.shape[0] == x.shape[0]):
            return None
        here = grid_factors(size, tuple(y.shape[2:]))
        if here is None:
            return None
        if ys and (
            y.shape[1:] != ys[0].shape[1:]
            or y.dtype != ys[0].dtype
            or x.shape[1:] != xs[0].shape[1:]
        ):
            break
        factors = here
        xs.append(x.detach().cpu().double())
        ys.append(y.detach().cpu())
        n += int(x.shape[0])
        if n >= t.alignment_max_samples:
            break
    if not xs or factors is None:
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
        # One-hot: averaged onto a coarser grid it holds each class's share of the pixel.
        phi, classes = torch.stack([ids == c for c in present], 1).double(), True
    else:
        return None
    input_factor, target_factor = factors
    if input_factor > 1 and not classes:
        # A float map on a coarser grid than its input is a detector's or a pose model's
        # target grid (offsets, sizes, heatmaps per cell), not a picture of the input.
        return None
    if input_factor > 1:
        x = F.avg_pool2d(x, input_factor)
    if target_factor > 1:
        phi = F.avg_pool2d(phi, target_factor)
        valid = F.avg_pool2d(valid[:, None].double(), target_factor)[:, 0] >= 1.0
    rescaled = factors != (1, 1)
    pairs = _pooled(DensePairs(x, phi, valid, classes, rescaled), t.alignment_max_side)
    # Bounded memory: the fit holds a few float64 copies of every pixel's features.
    per_sample = math.prod(pairs.x.shape[2:]) * (pairs.x.shape[1] + pairs.phi.shape[1] + 1)
    keep = max(2, t.alignment_max_elements // per_sample)
    return DensePairs(
        pairs.x[:keep], pairs.phi[:keep], pairs.valid[:keep], pairs.classes, pairs.rescaled
    )


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
    return DensePairs(pool(pairs.x), pool(pairs.phi), valid, pairs.classes, pairs.rescaled)


class _LinearMap:
    """A linear map from a target's features to its input's pixels (class means for class
    ids), fitted on every scored pixel of all pairs as they came."""

    def __init__(self, pairs: DensePairs) -> None:
        self.classes = pairs.classes
        self.x = pairs.x.permute(0, 2, 3, 1)  # (N, H, W, C)
        self.phi = pairs.phi.permute(0, 2, 3, 1)  # (N, H, W, K)
        self.weights = torch.linalg.lstsq(
            self.features(self.phi[pairs.valid]), self.x[pairs.valid]
        ).solution

    def features(self, p: torch.Tensor) -> torch.Tensor:
        if self.classes:
            return p  # one-hot: the class means need no constant
        return torch.cat([p, torch.ones(*p.shape[:-1], 1, dtype=p.dtype)], -1)

    def residual(self, x: torch.Tensor, p: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """Per sample: the mean squared residual of ``x`` drawn from the features ``p``
        (both laid out (N, H, W, ·)) over the ``scored`` pixels."""
        r = ((x - self.features(p) @ self.weights) ** 2).sum(-1)
        return (r * scored).sum((1, 2)) / scored.sum((1, 2)).clamp(min=1)


def _unrelated(
    fit: _LinearMap, x: torch.Tensor, phi: torch.Tensor, valid: torch.Tensor, unrelated: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The mean and spread of each input's residual against ``unrelated`` other samples'
    targets; None with a single sample."""
    n = phi.shape[0]
    others = []
    for shift in range(1, min(unrelated, n - 1) + 1):
        j = torch.roll(torch.arange(n), shift)
        others.append(fit.residual(x, phi[j], valid & valid[j]))
    if not others:
        return None
    stacked = torch.stack(others)
    spread = stacked.std(0) if len(others) > 1 else torch.zeros_like(stacked[0])
    return stacked.mean(0), spread


def alignment(pairs: DensePairs, unrelated: int) -> Alignment:
    """How well each input is drawn from its own target, its mirrored targets and other
    samples' targets: the mean squared residual of the input's pixels against a linear
    map from the target's features (class means for class ids), fitted on all pairs."""
    fit = _LinearMap(pairs)
    x, phi = fit.x, fit.phi
    # The same pixels under every mirroring, so that the fits compare like with like.
    scored = pairs.valid.clone()
    for dims in MIRRORS.values():
        scored &= pairs.valid.flip(dims)
    own = fit.residual(x, phi, scored)
    # phi is laid out (N, H, W, K): the image axes are one further from the end.
    mirrored = {
        name: fit.residual(x, phi.flip(tuple(d - 1 for d in dims)), scored)
        for name, dims in MIRRORS.items()
    }
    spread = _unrelated(fit, x, phi, pairs.valid, unrelated)
    if spread is None:
        return Alignment(own, mirrored, own, torch.zeros_like(own))
    return Alignment(own, mirrored, *spread)


@dataclass
class ShiftAlignment:
    """Per sample, on the centre of the image: the fit of the input to its own target, to
    that target moved by the offset that fits it best (``best``, ``offset`` (N, 2) in
    pixels (down, right) of the compared grid), and to other samples' targets; and whether
    that offset also leaves under ``gain`` of the unmoved target's residual on the top
    half and on the bottom half apart (``both_halves``)."""

    own: torch.Tensor
    best: torch.Tensor
    offset: torch.Tensor
    unrelated_mean: torch.Tensor
    both_halves: torch.Tensor
    reach: int  # the largest offset tried on either axis


def shift_alignment(
    pairs: DensePairs, unrelated: int, max_shift: int, min_window: int, gain: float
) -> ShiftAlignment | None:
    """How well each input's centre is drawn from its target moved by every offset up to
    ``max_shift`` pixels on each axis (at most a quarter of the image's side), against its
    target as it came and other samples' targets; None where the centre holds fewer than
    ``min_window`` pixels (too few to tell a move from a chance match among the offsets)."""
    fit = _LinearMap(pairs)
    h, w = pairs.x.shape[2:]
    reach = min(max_shift, h // 4, w // 4)
    if reach < 1 or (h - 2 * reach) * (w - 2 * reach) < min_window:
        return None
    x = fit.x[:, reach : h - reach, reach : w - reach]

    def moved(t: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
        return t[:, reach + dy : h - reach + dy, reach + dx : w - reach + dx]

    offsets = [(dy, dx) for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)]
    # The same pixels under every offset, so that the fits compare like with like.
    scored = moved(pairs.valid, 0, 0).clone()
    for dy, dx in offsets:
        scored &= moved(pairs.valid, dy, dx)
    # A whole input moved against its target is moved in each part of it; a chance match
    # of some offset to part of the image is not repeated in the other half.
    middle = scored.shape[1] // 2
    top, bottom = scored.clone(), scored.clone()
    top[:, middle:] = False
    bottom[:, :middle] = False

    def fits(where: torch.Tensor) -> torch.Tensor:
        return torch.stack(
            [fit.residual(x, moved(fit.phi, dy, dx), where) for dy, dx in offsets]
        )  # (offsets, N)

    whole, upper, lower = fits(scored), fits(top), fits(bottom)
    zero = offsets.index((0, 0))
    best, index = whole.min(0)
    samples = torch.arange(whole.shape[1])
    both_halves = (upper[index, samples] < gain * upper[zero]) & (
        lower[index, samples] < gain * lower[zero]
    )
    unrelated_fit = _unrelated(fit, x, moved(fit.phi, 0, 0), scored, unrelated)
    if unrelated_fit is None:
        return None
    offset = torch.tensor(offsets, dtype=torch.long)[index]
    return ShiftAlignment(whole[zero], best, offset, unrelated_fit[0], both_halves, reach=reach)


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
    """Some dense targets are mirror images of their inputs, or moved against them: the
    input was flipped, cropped or translated and its target was not, or not alike.

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
        rotation) and from ``alignment_unrelated`` other samples' targets. A target of a
        whole multiple of the input's size (super-resolution), or class ids on a whole
        fraction of it (a mask at the output stride), is averaged onto the smaller grid
        first; a float map on a coarser grid (a detector's or a pose model's target grid,
        offsets and sizes per cell) is no picture of the input and is left out. A sample counts
        where its best target stands ``alignment_power_sd`` spreads clear of the others'
        targets; it is *mirrored* where a mirrored target fits it better than its own by
        more than ``alignment_mirror_share`` of that margin, and *unmirrored* where its own
        beats every mirrored one by as much. A healthy pipeline can mirror a sample only
        where the linear map misleads, which is taken to happen for at most
        ``alignment_null_rate`` of the samples (no healthy subject measured had one). The
        check fires when both the mirrored and the unmirrored samples are more than that
        rate explains (one-sided binomial tests at ``alignment_alpha``): a target mirrored
        for every sample is a consistent task, not a broken pairing.
        Then translations: the centre of each input is drawn from its target moved by
        every offset up to ``alignment_max_shift`` pixels on each axis (at most a quarter
        of the side). A sample counts where its target, moved or not, leaves under
        ``alignment_shift_gain`` (a half) of the residual other samples' targets leave; it
        is *moved* where the best offset leaves under that share of the residual where
        its target came, on the whole centre and on its top and bottom halves apart (a
        chance match of one offset to part of the image is not repeated in the other
        half); a centre of fewer than ``alignment_min_window`` (64) pixels is not judged
        (chance matches among the offsets are too likely there). A pipeline that keeps its pairs in register, even a fixed
        sub-pixel offset apart, can favour a move one way along an axis, never both ways;
        translations are judged for class masks and for targets at another resolution
        (super-resolution, a mask at the output stride), whose pairs are in register by
        definition, not for same-size maps (a next frame moves each object its own way);
        the check fires when samples moved each way along one axis are both more than
        ``alignment_null_rate`` explains (binomial tests at ``alignment_alpha``): input and
        target were cropped at separate random origins (a healthy super-resolution
        pipeline on the bench: no sample moved; the same with its crops drawn apart: 218
        of 256).

    How to fix:
        Apply every geometric augmentation to the input and its target together: draw
        the random decision (a flip, a crop origin) once and use it on both (``if flip: image, mask =
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
        ctx.skip(
            "no loss target is an image of the input's size, a whole multiple of it, or a class mask on a whole fraction of it"
        )
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
        _judge_shifts(ctx, pairs, t)
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


def _judge_shifts(ctx: CheckContext, pairs: DensePairs, t: Thresholds) -> None:
    """Targets moved against their inputs by offsets of both signs along one axis: input
    and target cropped at separate random origins. Judged where the task keeps its pairs
    in register by definition: a class mask, or a target at another resolution (a
    same-size map may be a later frame of the input, each object moved its own way)."""
    if not (pairs.classes or pairs.rescaled):
        return
    gain = t.alignment_shift_gain
    fit = shift_alignment(
        pairs, t.alignment_unrelated, t.alignment_max_shift, t.alignment_min_window, gain
    )
    if fit is None:
        return
    # A sample counts where its target, moved or not, explains its input: a residual under
    # alignment_shift_gain of other samples' targets'. It is moved where the best offset
    # leaves under that share of the residual where the target came, on the whole and on
    # each half of the image: a pair in register leaves its noise and a sub-pixel offset's
    # error wherever its target is moved.
    counted = torch.minimum(fit.own, fit.best) < gain * fit.unrelated_mean
    moved = counted & (fit.best < gain * fit.own) & fit.both_halves
    n = int(counted.sum())
    if n == 0:
        return
    # A pipeline that keeps its pairs in register, even a fixed sub-pixel offset apart, can
    # favour a move one way along an axis, never both ways: that takes pairs moved apart by
    # draws of their own.
    both_ways: list[tuple[str, int, int, float]] = []
    for axis, name in ((0, "vertical"), (1, "horizontal")):
        ahead = int((moved & (fit.offset[:, axis] > 0)).sum())
        behind = int((moved & (fit.offset[:, axis] < 0)).sum())
        p = max(
            binomial_tail(n, ahead, t.alignment_null_rate),
            binomial_tail(n, behind, t.alignment_null_rate),
        )
        if p < t.alignment_alpha:
            both_ways.append((name, ahead, behind, p))
    k = int(moved.sum())
    ctx.note(
        ctx.detail + f"; {k} fit their target better moved by up to {fit.reach} pixel(s) than "
        "where it came"
    )
    if not both_ways:
        return
    axes = ", ".join(f"{name}: {a} one way, {b} the other" for name, a, b, _ in both_ways)
    largest = int(fit.offset[moved].abs().max()) if k else 0
    ctx.finding(
        f"{k} of {n} targets are shifted against their inputs",
        f"{k} of {n} training samples ({k / n:.0%}) fit their target clearly better moved by "
        f"up to {largest} pixel(s) than where it came, and the moves go both ways ({axes}): "
        "no fixed offset does that. The input and its target were cropped or translated by "
        "separate random draws, so the model is trained to draw each target where its "
        "input does not show it.",
        "Draw each random crop or translation once and apply it to the input and its "
        "target together (for super-resolution: crop the high-resolution patch, then "
        "downsample that patch for the input).",
        where=_loss_where(ctx.recording),
        evidence={
            "samples": n,
            "shifted": k,
            "largest_offset": largest,
            "p_value": max(p for *_, p in both_ways),
            "axes": [name for name, *_ in both_ways],
            "classes": pairs.classes,
        },
    )
