"""Whether a teacher-forced model's other inputs (the source) follow its targets.

A sequence-to-sequence model trained with teacher forcing is given the targets one
position on as an input of its own (``decoder_input = [BOS] + targets[:-1]``). That input
alone predicts part of each target (its length, its padding, a frequent next token), so a
model learns something even when the source sentences, images or sequences belong to other
samples; tests of the input-target pairing that permute the targets alone break the
decoder input's link with them and would call the pairing real. What must be tested is
the source against the pair (decoder input, target): permute the pair among the samples,
keep the source, and see whether a copy trained on the real data predicts held-out
targets better with their own source than with another sample's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nndoctor.checks.lab import Lab
from nndoctor.checks.significance import student_t_above, student_t_quantile
from nndoctor.copying import set_training
from nndoctor.subject import Subject
from nndoctor.trees import tensors


@dataclass
class TeacherLayout:
    """Where the decoder input is and how the target lines up with it."""

    index: int  # the positional model input holding the targets one position on
    sample_axis: int  # that input's axis of samples
    transposed: bool  # the target is the input's layout flattened sample-first (2-D input)
    match: float  # share of scored positions matched one position on


def _as_input(target: torch.Tensor, shape: torch.Size, transposed: bool) -> torch.Tensor:
    if transposed:
        return target.reshape(shape[1], shape[0]).t()
    return target.reshape(shape)


def _from_input(view: torch.Tensor, target: torch.Tensor, transposed: bool) -> torch.Tensor:
    return (view.t() if transposed else view).reshape(target.shape)


def teacher_layout(
    subject: Subject, batch: Any, ignore_index: int, least: float
) -> TeacherLayout | None:
    """The model input that is the batch's targets one position on (at ``least`` of the
    scored positions), when the model has other tensor inputs beside it; None otherwise."""
    inputs = subject.inputs(batch)
    target = subject.targets(batch)
    if not isinstance(inputs, tuple) or not isinstance(target, torch.Tensor):
        return None
    if target.is_floating_point() or len(tensors(inputs)) < 2:
        return None
    if any(_holds(x, target) for x in inputs):
        # The targets are a model input too (a model computing its loss inside from
        # ``targets`` it is given): a source test would move them apart from themselves.
        return None
    best: TeacherLayout | None = None
    for i, x in enumerate(inputs):
        if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.dim() != 2:
            continue
        if x.numel() != target.numel() or x.device != target.device:
            continue
        for transposed in (False, True):
            y = _as_input(target, x.shape, transposed)
            for axis in (0, 1):
                n = x.shape[axis]
                if n < 2:
                    continue
                ahead, here = x.narrow(axis, 1, n - 1), y.narrow(axis, 0, n - 1)
                scored = here != ignore_index
                if not bool(scored.any()):
                    continue
                share = float((ahead == here)[scored].float().mean())
                if share >= least and (best is None or share > best.match):
                    best = TeacherLayout(i, 1 - axis, transposed, share)
    if best is None or not _sources(inputs, best):
        return None
    return best


def _holds(x: Any, target: torch.Tensor) -> bool:
    return (
        isinstance(x, torch.Tensor)
        and x.numel() == target.numel()
        and x.device == target.device
        and x.dtype == target.dtype
        and torch.equal(x.reshape(-1), target.reshape(-1))
    )


def _sources(inputs: tuple[Any, ...], layout: TeacherLayout) -> list[int]:
    """The model inputs beside the decoder input that hold one entry per sample: token ids
    along the decoder input's axis of samples, float data (images, features) along their
    first axis. A recurrent state carried over from the previous batch (an LSTM's
    ``(layers, batch, hidden)``) is no source: it came from the script's own model, which
    a copy cannot read."""
    n = inputs[layout.index].shape[layout.sample_axis]
    found = []
    for j, x in enumerate(inputs):
        if j == layout.index or not isinstance(x, torch.Tensor) or x.dim() == 0:
            continue
        axis = 0 if x.is_floating_point() else layout.sample_axis
        if x.dim() > axis and x.shape[axis] == n:
            found.append(j)
    return found


def permuted_pairs(
    subject: Subject, batch: Any, layout: TeacherLayout, perm: torch.Tensor
) -> Any | None:
    """``batch`` with the decoder input and the targets moved together to other samples
    (``perm`` along the samples), the source left where it was."""
    inputs = subject.inputs(batch)
    target = subject.targets(batch)
    x = inputs[layout.index]
    perm = perm.to(x.device)
    y = _as_input(target, x.shape, layout.transposed).index_select(layout.sample_axis, perm)
    moved = list(inputs)
    moved[layout.index] = x.index_select(layout.sample_axis, perm)
    new = subject.with_inputs(batch, tuple(moved))
    if new is None:
        return None
    return subject.with_targets(new, _from_input(y, target, layout.transposed))


@dataclass
class SourcePairing:
    """A copy trained on the real data, on held-out batches: the loss with each sample's
    own source, and with the (decoder input, target) pairs permuted among the samples."""

    samples: int
    steps: int
    real: float  # mean held-out loss, own sources
    permuted: list[float]  # the same under each permutation

    @property
    def p_value(self) -> float:
        """One-sided, that the own sources score no better than others'. Exchangeable
        sources make the real loss one more draw like the permuted ones: its distance below
        their mean, over their spread times sqrt(1 + 1/n), is Student's t with n - 1
        degrees of freedom for n permutations (each loss a mean over hundreds of held-out
        samples, near normal)."""
        n = len(self.permuted)
        if self.spread == 0:
            return 0.0 if self.gain > 0 else 1.0
        return student_t_above(self.gain / (self.spread * math.sqrt(1 + 1 / n)), n - 1)

    @property
    def gain(self) -> float:
        """How much lower the held-out loss is with the samples' own sources."""
        return sum(self.permuted) / len(self.permuted) - self.real

    @property
    def spread(self) -> float:
        mean = sum(self.permuted) / len(self.permuted)
        return math.sqrt(
            sum((v - mean) ** 2 for v in self.permuted) / max(len(self.permuted) - 1, 1)
        )

    def gain_bound(self, alpha: float) -> float:
        """An upper confidence bound at ``alpha`` on the gain: the gain plus Student's
        quantile times the permuted losses' spread (the sampling noise of one held-out
        mean), scaled as in ``p_value``."""
        n = len(self.permuted)
        return self.gain + student_t_quantile(alpha, n - 1) * self.spread * math.sqrt(1 + 1 / n)

    def describe(self) -> str:
        mean = sum(self.permuted) / len(self.permuted)
        return (
            f"a copy trained {self.steps} steps on the real pairs predicts {self.samples} "
            f"held-out targets with a loss of {self.real:.4g} given their own sources, "
            f"{mean:.4g} (spread {self.spread:.2g}) given other samples' over "
            f"{len(self.permuted)} permutations (decoder input and target moved together; "
            f"p={self.p_value:.2g})"
        )


def source_pairing(
    lab: Lab,
    subject: Subject,
    batches: list[Any],
    layout: TeacherLayout,
    steps: int,
    permutations: int,
) -> SourcePairing | None:
    """Train a fresh copy on the first half of ``batches`` (real pairs), then score the
    other half with every sample's own source and under ``permutations`` permutations of
    the (decoder input, target) pairs within each batch. None with fewer than four batches
    or a layout the batches do not share."""
    if len(batches) < 4:
        return None
    half = len(batches) // 2
    train, held = batches[:half], batches[half:]
    model = lab.fresh_model()
    run = lab.train(train, steps, regularisation=False, model=model)
    if not run.losses:
        return None
    set_training(model, False)
    gen = torch.Generator().manual_seed(0)
    sizes = []
    for b in held:
        x = subject.inputs(b)[layout.index]
        sizes.append(int(x.shape[layout.sample_axis]))
    real = _mean_loss(lab, model, held, sizes)
    permuted: list[float] = []
    for _ in range(permutations):
        moved = []
        for b, n in zip(held, sizes, strict=True):
            new = permuted_pairs(subject, b, layout, torch.randperm(n, generator=gen))
            if new is None:
                return None
            moved.append(new)
        permuted.append(_mean_loss(lab, model, moved, sizes))
    if not (math.isfinite(real) and all(math.isfinite(v) for v in permuted)):
        return None
    return SourcePairing(sum(sizes), steps, real, permuted)


def _mean_loss(lab: Lab, model: torch.nn.Module, batches: list[Any], sizes: list[int]) -> float:
    losses = lab.evaluate(model, batches)
    return sum(v * n for v, n in zip(losses, sizes, strict=True)) / sum(sizes)
