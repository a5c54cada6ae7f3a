"""Where batches cut by hand come from: the epoch length of a loop without a DataLoader.

A script that indexes its training tensor by hand (``x[perm[i:i + bs]]``) says nothing of
its epoch through its batches: they are copies, not views of the tensor (a view's share
of its storage already tells, :meth:`Recording.epoch_length`). The tensor they were cut
from is still held by the script, in the frames that run the loop. The fingerprints of
the samples the steps trained on find it: the smallest array there whose rows hold
(nearly) every one of those samples is the training set, and its rows over the batch
size are the optimizer steps of one epoch. Inputs changed on the way (augmented,
normalised per batch) match no array, and the epoch stays unknown, as before.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from collections.abc import Iterable, Iterator
from types import FrameType
from typing import Any

import numpy as np
import torch

from nndoctor.probes.recording import Recording
from nndoctor.probes.training import sample_projection

# Arrays larger than this are not fingerprinted: one pass over them would cost more than
# the watch it enables saves.
MAX_SOURCE_ELEMENTS = 50_000_000
# The share of the recorded samples an array must hold to be their source: a few samples
# may come from elsewhere (a padded last batch, a sample replaced by a fallback).
SOURCE_MATCH_SHARE = 0.9
# Relative tolerance on a fingerprint: the same values projected in another batch shape
# sum in another order (float32 rounding, far below the spread between samples).
FINGERPRINT_TOLERANCE = 1e-5


def script_frames(sources: Iterable[str], start: FrameType | None = None) -> list[FrameType]:
    """The frames on the current stack (from ``start`` outwards) running code of the files
    ``sources``: the script's loop, a ``main()``, the module's top level."""
    files = {os.path.abspath(path) for path in sources}
    frames: list[FrameType] = []
    frame = start if start is not None else sys._getframe(1)
    while frame is not None:
        if os.path.abspath(frame.f_code.co_filename) in files:
            frames.append(frame)
        frame = frame.f_back
    return frames


def held_values(frames: Iterable[FrameType]) -> Iterator[Any]:
    """The values the frames hold in their locals and globals, each once."""
    seen: set[int] = set()
    read: set[int] = set()  # the frames of one module share its globals: read once
    for frame in frames:
        for namespace in (frame.f_locals, frame.f_globals):
            if id(namespace) in read:
                continue
            read.add(id(namespace))
            for value in list(namespace.values()):
                if id(value) not in seen:
                    seen.add(id(value))
                    yield value


def _as_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        if isinstance(value, torch.nn.Parameter) or value.requires_grad:
            return None
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.ndim >= 1:
        try:
            return torch.from_numpy(value)
        except (TypeError, ValueError):
            return None
    return None


def _fingerprints(array: torch.Tensor) -> np.ndarray:
    flat = array.detach().reshape(array.shape[0], -1).float()
    with torch.no_grad():
        prints = flat @ sample_projection(flat.shape[1], flat.device)
    return prints.cpu().numpy().astype(np.float64)


def _share_held(candidate: np.ndarray, recorded: np.ndarray) -> float:
    """The share of the ``recorded`` fingerprints found among the ``candidate``'s."""
    ordered = np.sort(candidate)
    where = np.clip(np.searchsorted(ordered, recorded), 1, len(ordered) - 1)
    nearest = np.minimum(np.abs(ordered[where] - recorded), np.abs(ordered[where - 1] - recorded))
    scale = float(np.median(np.abs(recorded))) + 1e-12
    tolerance = FINGERPRINT_TOLERANCE * (np.abs(recorded) + scale)
    return float(np.mean(nearest <= tolerance))


def epoch_from_source(recording: Recording, frames: Iterable[FrameType]) -> int | None:
    """Optimizer steps in one epoch of a loop that cuts its batches by hand from an array
    the ``frames`` hold; None where no held array is the source of the recorded samples."""
    found = held_sources(recording, frames)
    if found is None:
        return None
    sizes, batch = found
    larger = [n for n in sizes if n > batch]
    # The smallest source: the training split, not the data before it.
    return math.ceil(min(larger) / batch) if larger else None


def whole_of(sizes: Iterable[int], batch: int) -> int | None:
    """Of the row counts ``sizes`` of the held arrays that hold the recorded samples (see
    :func:`held_sources`): ``batch`` where one of exactly its rows does and none larger,
    the whole of what every step was fed (full-batch training that converts or copies its
    training array anew at every step, ``torch.from_numpy(x_train)`` or ``x.to(device)``
    inside the loop); None otherwise."""
    sizes = set(sizes)
    return batch if batch in sizes and max(sizes) == batch else None


def held_sources(
    recording: Recording, frames: Iterable[FrameType], fed: Any = None
) -> tuple[set[int], int] | None:
    """The row counts of the arrays the frames hold whose rows hold (nearly) every recorded
    sample, at least a step's batch each, and the median batch; None where no sample was
    recorded. ``fed``, the model input itself (held by the loop as ``inputs``), is no
    source of itself: a batch drawn anew the same way at every step (a seed reset in the
    loop) is held as nothing else."""
    steps = [s for s in recording.steps if s.sample_fingerprints and s.inputs is not None]
    if not steps:
        return None
    shape = tuple(steps[0].inputs.shape)  # type: ignore[union-attr]
    batch = int(statistics.median(len(s.sample_fingerprints) for s in steps))
    recorded = np.array([f for s in steps for f in s.sample_fingerprints], dtype=np.float64)
    recorded = recorded[np.isfinite(recorded)]
    if not len(recorded) or batch < 1:
        return None
    sizes: set[int] = set()
    for value in held_values(frames):
        array = _as_tensor(value) if value is not fed else None
        if array is None:
            continue
        n = int(array.shape[0]) if array.dim() else 0
        if (
            array.dim() != len(shape)
            or tuple(array.shape[1:]) != shape[1:]
            or n < batch
            or n in sizes
            or array.numel() > MAX_SOURCE_ELEMENTS
        ):
            continue
        if _share_held(_fingerprints(array), recorded) >= SOURCE_MATCH_SHARE:
            sizes.add(n)
    return sizes, batch


# Arrays larger than this are not re-paired in place: the addresses of their elements,
# compared to keep views of one memory from being permuted twice, would cost too much.
MAX_REPAIRED_ELEMENTS = 5_000_000


def whole_arrays(
    inputs: list[torch.Tensor],
    frames: Iterable[FrameType],
    among: list[torch.Tensor] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Full-batch training on arrays the script holds (``model(x)`` against ``y`` at every
    step, no rows drawn): where an array the ``frames`` hold is, value for value, the whole
    of the model's first data input ``inputs[0]``, each of its rows is a sample, and every
    other held array of as many rows holds those samples' other elements (targets, a second
    input, per-sample weights). Returned: the arrays that hold the input, and those others
    one per piece of memory, as tensors sharing the arrays' memory (a numpy array through
    ``torch.from_numpy``); both empty where no held array is the input (with ``among``,
    none of those arrays). Left out: arrays sharing elements with the input (the data matrix an input
    and a target are column views of: re-pairing the target's view is enough) and index
    vectors (a permutation of the rows' numbers, which names samples, not their contents)."""
    data = [x for x in inputs if x.dim() >= 1 and x.shape[0] >= 2]
    if not data:
        return [], []
    fed = data[0]
    rows = int(fed.shape[0])
    held = [
        array
        for array in map(_held_tensor, held_values(frames))
        if array is not None
        and array.dim() >= 1
        and array.shape[0] == rows
        and array.numel() <= MAX_REPAIRED_ELEMENTS
    ]
    sources = [
        array
        for array in held
        if _equal_values(array, fed) and (among is None or any(array is a for a in among))
    ]
    if not sources:
        return [], []
    taken = [_addresses(a) for a in sources]
    partners: list[torch.Tensor] = []
    for array in held:
        if any(array is s for s in sources) or not _writable(array) or _names_rows(array):
            continue
        where = _addresses(array)
        if any(bool(np.isin(where, seen).any()) for seen in taken):
            continue
        taken.append(where)
        partners.append(array)
    return sources, partners


def _held_tensor(value: Any) -> torch.Tensor | None:
    """A held data array as a tensor sharing its memory (a leaf that needs a gradient
    too: an input the script marked for derivatives), never a parameter nor a read-only
    buffer (a memory-mapped file), which is never written."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return None
    if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
        return value if value.grad_fn is None else None
    return _as_tensor(value)


def _writable(array: torch.Tensor) -> bool:
    """Whether re-pairing may write the array: data, not a tensor being learned (a leaf
    that needs a gradient)."""
    return not array.requires_grad


def _equal_values(array: torch.Tensor, fed: torch.Tensor) -> bool:
    if tuple(array.shape) != tuple(fed.shape):
        return False
    try:
        return bool(torch.equal(array.to(device=fed.device, dtype=fed.dtype), fed.detach()))
    except (RuntimeError, TypeError):
        return False


def _names_rows(array: torch.Tensor) -> bool:
    """A vector of distinct row numbers 0..n-1 in some order: sample indices."""
    if array.dim() != 1 or array.is_floating_point() or array.dtype == torch.bool:
        return False
    ordered = torch.sort(array.detach().cpu().long()).values
    return bool(torch.equal(ordered, torch.arange(array.shape[0])))


def _addresses(array: torch.Tensor) -> np.ndarray:
    """The byte address of every element of ``array`` in memory (views of one buffer share
    theirs), with the device in the high bits so that two devices' buffers never meet."""
    span = 1 + sum((n - 1) * abs(s) for n, s in zip(array.shape, array.stride(), strict=True))
    offsets = torch.as_strided(torch.arange(span), tuple(array.shape), array.stride())
    device = (array.device.index or 0) + (1 if array.is_cuda else 0)
    base = array.data_ptr() + (device << 56)
    return (offsets.reshape(-1).numpy() * array.element_size() + base).astype(np.int64)


def permute_rows(arrays: Iterable[torch.Tensor], partner: torch.Tensor) -> int:
    """Each array's row i replaced, in place, by its row ``partner[i]`` (a permutation, or
    the tiny batch's rows over and over); how many were."""
    done = 0
    for array in arrays:
        try:
            with torch.no_grad():
                array.copy_(array.index_select(0, partner.to(array.device)))
        except (RuntimeError, TypeError, ValueError):
            continue  # a read-only array (an inference tensor, a non-writable numpy buffer)
        done += 1
    return done
