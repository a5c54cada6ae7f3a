"""Noise shaped like a model's input: the null input of the experiments that ask whether a
model reads what it is given."""

from __future__ import annotations

import torch


def noise_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise with the tensor's own mean and std; for integer inputs (token ids,
    indices) ids drawn uniformly from each column's own range (the last axis). Booleans
    (masks) and integer tensors in sorted order (an ``EmbeddingBag``'s offsets, positions,
    lengths sorted longest first for ``pack_padded_sequence``) describe the batch's layout,
    not its content, and are kept; so is a sparse tensor (a graph's adjacency beside its
    node features: the structure the samples are read through)."""
    if x.dtype == torch.bool or x.numel() == 0 or x.layout != torch.strided:
        return x
    if not x.is_floating_point() and _sorted(x):
        return x
    if not x.is_floating_point():
        # Each column (the last axis) within its own range: categorical columns index
        # embeddings of their own size, and an id from another column's range may not exist.
        axes = tuple(range(x.dim() - 1))
        lo = (x.amin(dim=axes) if axes else x.min()).cpu().double()
        hi = (x.amax(dim=axes) if axes else x.max()).cpu().double()
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
        ids = (lo + (u * (hi - lo + 1)).floor()).clamp(max=hi)
        return ids.to(x.device, x.dtype)
    noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
    return noise * x.std() + x.mean()


def _sorted(x: torch.Tensor) -> bool:
    """Whether the values, read flat, never decrease or never increase."""
    flat = x.reshape(-1)
    if flat.numel() < 2:
        return False
    steps = flat[1:].long() - flat[:-1].long()
    return bool((steps >= 0).all()) or bool((steps <= 0).all())
