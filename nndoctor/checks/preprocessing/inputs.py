"""What the part II checks compare: dataset items drawn as input tensors, and the
per-channel statistics of recorded inputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from nndoctor.probes import stats as probe_stats
from nndoctor.probes.recording import TensorSummary
from nndoctor.subject import default_inputs, default_targets

SAMPLE_ITEMS = 256  # dataset items drawn per split: means within ~0.09 std


def item_input(item: Any) -> torch.Tensor | None:
    """The float input tensor of one dataset item, if it has one."""
    x = default_inputs(item)
    return x if isinstance(x, torch.Tensor) and x.is_floating_point() else None


def draw(dataset: Any, indices: list[int]) -> torch.Tensor | None:
    """The stacked inputs of the items at ``indices``."""
    drawn = draw_pairs(dataset, indices)
    return drawn[0] if drawn is not None else None


def draw_pairs(dataset: Any, indices: list[int]) -> tuple[torch.Tensor, list[Any]] | None:
    """The stacked inputs of the items at ``indices`` and their targets."""
    xs, ys = [], []
    for i in indices:
        item = dataset[i]
        x = item_input(item)
        if x is None:
            return None
        xs.append(x.detach().float().cpu())
        ys.append(default_targets(item))
    if not xs or any(x.shape != xs[0].shape for x in xs):
        return None
    return torch.stack(xs), ys


def sample_indices(n: int, k: int, seed: int) -> list[int]:
    """``k`` distinct indices below ``n`` (all of them when ``n <= k``), seeded."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[: min(n, k)].tolist()


class ChannelStats(NamedTuple):
    """Per-channel statistics of a set of inputs."""

    mean: list[float]
    std: list[float]
    n: int  # samples
    # The fourth central moment over the squared variance (3: normal; NaN: not recorded).
    kurtosis: list[float]


def channel_stats(summaries: list[TensorSummary]) -> ChannelStats | None:
    """Per-channel mean, std and kurtosis averaged over the summaries that recorded them
    (the kurtosis as the averaged fourth moment over the averaged std to the fourth)."""
    rows = [s for s in summaries if s.channel_mean is not None and s.channel_std is not None]
    if not rows:
        return None
    c = len(rows[0].channel_mean or [])
    rows = [r for r in rows if len(r.channel_mean or []) == c]
    mean = [sum((r.channel_mean or [])[i] for r in rows) / len(rows) for i in range(c)]
    std = [sum((r.channel_std or [])[i] for r in rows) / len(rows) for i in range(c)]
    kurtosis = [math.nan] * c
    if all(r.channel_kurtosis is not None and len(r.channel_kurtosis) == c for r in rows):
        for i in range(c):
            # A channel without spread in one batch adds nothing to the fourth moment.
            fourth = [
                k * s**4 if math.isfinite(k) else 0.0
                for k, s in ((r.channel_kurtosis[i], r.channel_std[i]) for r in rows)  # type: ignore[index]
            ]
            if std[i] > 0.0:
                kurtosis[i] = sum(fourth) / len(rows) / std[i] ** 4
    return ChannelStats(mean, std, sum(r.shape[0] if r.shape else 1 for r in rows), kurtosis)


def tensor_channel_stats(x: torch.Tensor) -> ChannelStats:
    """Per-channel (axis 1) statistics of one tensor of items, as the probe takes them."""
    mean, std, kurtosis = probe_stats.channel_stats(x, max_channels=x.shape[1]).tolist()  # type: ignore[union-attr]
    return ChannelStats(mean, std, int(x.shape[0]), kurtosis)


MAX_SOURCE_ROWS = 20_000  # rows of a split's stored inputs compared for shared samples


def source_rows(dataset: Any, series: bool = False) -> torch.Tensor | None:
    """The inputs a dataset stores, one flattened row per item, before ``__getitem__``
    augments them: a ``TensorDataset``'s first tensor, the rows a ``Subset`` selects, or
    the largest float/uint8 tensor (or array) attribute with one row per item. With
    ``series``, a dataset without one, whose items are windows cut from a longer stored
    series (more rows than items), gives that series' rows. None when the dataset keeps its
    samples some other way (files, generated on the fly)."""
    from torch.utils.data import Subset, TensorDataset

    if isinstance(dataset, Subset):
        rows = source_rows(dataset.dataset)
        if rows is None:
            return None
        return rows[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    try:
        n = len(dataset)
    except TypeError:
        return None
    if isinstance(dataset, TensorDataset):
        candidates: list[Any] = list(dataset.tensors[:1])
    else:
        # A list of samples (or any dataset without attributes) stores no tensor to read.
        candidates = list(getattr(dataset, "__dict__", {}).values())
    best = _largest_stored(candidates, lambda rows: rows == n)
    if best is None and series and not isinstance(dataset, TensorDataset):
        best = _largest_stored(candidates, lambda rows: rows > n)
    return None if best is None else best.detach().reshape(best.shape[0], -1).cpu()


def _largest_stored(candidates: list[Any], rows_fit: Callable[[int], bool]) -> torch.Tensor | None:
    """The float/uint8 tensor (or array) of at least two axes among ``candidates`` whose
    row count ``rows_fit`` accepts, with the most values per row."""
    best: torch.Tensor | None = None
    for value in candidates:
        if not isinstance(value, torch.Tensor):
            if type(value).__module__ != "numpy" or not hasattr(value, "dtype"):
                continue
            try:
                value = torch.from_numpy(value)
            except TypeError:
                continue
        if value.dim() < 2 or not rows_fit(value.shape[0]):
            continue
        if not (value.is_floating_point() or value.dtype == torch.uint8):
            continue
        if best is None or value[0].numel() > best[0].numel():
            best = value
    return best
