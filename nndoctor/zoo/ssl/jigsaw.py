"""Jigsaw puzzles — Noroozi & Favaro, "Unsupervised Learning of Visual
Representations by Solving Jigsaw Puzzles", ECCV 2016.

The image is cut into a 3×3 grid of tiles, the tiles are shuffled by one
permutation from a fixed set, and the network predicts the *index* of that
permutation in the set. Each tile goes through the same tower (shared
weights: the paper's "context-free network"), the nine embeddings are
concatenated in input order, and fully connected layers classify.

The permutation set is chosen greedily for a large Hamming distance (the
paper's Algorithm 1): starting from the identity, each step adds the
permutation of 9! that is farthest from those already chosen — here by the
*minimal* Hamming distance, ties broken by the total — so that no two
puzzles are nearly the same and the task is not ambiguous. With 100
permutations the set's minimal pairwise distance is 6 (of at most 9).

As in the paper, tiles are cropped at a random place inside their grid cell,
so a gap of random width separates neighbours and edges cannot simply be
continued. The paper also normalises every tile on its own; here that made
the trunk learn on inputs unlike whole scenes, and its features transferred
worse than a random trunk's in the linear probe (measured), so tiles keep
their colour (``cut_tiles(normalise=True)`` still offers it). The paper uses
1000 permutations and 64 px tiles from 225 px crops; here ``NUM_PERMUTATIONS``
= 100 (the size of the paper's smallest ablation) and 8 px tiles from 30 px of
a 32 px scene.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl._common import (
    BATCH_SIZE,
    POOL_SIZE,
    ConvTrunk,
    PretextModel,
    ScenePool,
    batch_accuracy,
    crop,
    pretext_subject,
    pretext_trainer,
    uniform_ints,
)

GRID = 3
NUM_TILES = GRID * GRID
NUM_PERMUTATIONS = 100
CELL = 10  # grid cell side, px (the 3×3 grid covers 30 px)
TILE = 8  # tile side, px, cropped at a random place inside its cell
TILE_EMBEDDING = 64  # fc6 width per tile
FC_WIDTH = 256  # fc7
DEFAULT_STEPS = 300
CHANCE = math.log(NUM_PERMUTATIONS)


# -- permutation set -----------------------------------------------------------------------


@functools.cache
def permutation_set(
    num_permutations: int = NUM_PERMUTATIONS, num_tiles: int = NUM_TILES
) -> tuple[tuple[int, ...], ...]:
    """The fixed puzzle set: ``num_permutations`` permutations of ``range(num_tiles)``.

    Greedy maximal-Hamming-distance selection over all ``num_tiles!``
    permutations (Noroozi & Favaro 2016, Algorithm 1), starting from the
    identity; deterministic, computed once (~1 s for 9 tiles) and cached.
    Permutation ``p`` puts original tile ``p[j]`` at input position ``j``.
    """
    every = np.array(list(itertools.permutations(range(num_tiles))), dtype=np.int8)
    chosen = [0]  # the identity
    min_dist = (every != every[0]).sum(axis=1)
    total = min_dist.astype(np.int64)
    for _ in range(num_permutations - 1):
        # Largest minimal distance first, then the largest total distance; argmax takes
        # the first of equals, so the result is deterministic.
        j = int((min_dist.astype(np.int64) * (num_tiles * num_permutations + 1) + total).argmax())
        chosen.append(j)
        dist = (every != every[j]).sum(axis=1)
        min_dist = np.minimum(min_dist, dist)
        total += dist
    return tuple(tuple(int(v) for v in every[j]) for j in chosen)


def hamming_distances(perms: Tensor) -> Tensor:
    """Pairwise Hamming distances of permutations [P, T] → [P, P]."""
    return (perms[:, None, :] != perms[None, :, :]).sum(dim=-1)


# -- pretext transform ---------------------------------------------------------------------


def cut_tiles(
    images: Tensor, generator: torch.Generator | None = None, normalise: bool = False
) -> Tensor:
    """The 3×3 tiles in reading order: [B, 3, H, W] → [B, 9, 3, TILE, TILE].

    The grid is placed at a random offset and every tile at a random place in its
    cell; with ``normalise`` each tile's per-channel mean is removed.
    """
    n, size = images.shape[0], images.shape[-1]
    slack = size - GRID * CELL
    if slack < 0:
        raise ValueError(f"a {GRID}×{GRID} grid of {CELL}px cells does not fit {size}px images")
    oy = uniform_ints(n, 0, slack, generator)
    ox = uniform_ints(n, 0, slack, generator)
    tiles = []
    for r in range(GRID):
        for c in range(GRID):
            jy = uniform_ints(n, 0, CELL - TILE, generator)
            jx = uniform_ints(n, 0, CELL - TILE, generator)
            tiles.append(crop(images, oy + r * CELL + jy, ox + c * CELL + jx, TILE))
    tiles = torch.stack(tiles, dim=1)  # [B, 9, 3, T, T]
    if not normalise:
        return tiles
    # Per-tile normalisation: remove each tile's mean colour.
    return tiles - tiles.mean(dim=(3, 4), keepdim=True)


def shuffle_tiles(tiles: Tensor, labels: Tensor) -> Tensor:
    """Apply permutation ``labels[i]`` of the set to the tiles of image i; shape kept.

    Input position j then shows original tile ``permutation_set()[labels[i]][j]``.
    """
    perms = torch.tensor(permutation_set(), device=tiles.device)  # [P, 9]
    order = perms[labels]  # [B, 9]
    return torch.gather(tiles, 1, order.view(-1, NUM_TILES, 1, 1, 1).expand_as(tiles))


def make_batch(
    images: Tensor, generator: torch.Generator | None = None, labels: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Shuffled tiles and the permutation index: [B, 3, H, W] → ([B, 9, 3, T, T], labels [B]).

    The permutations are drawn at random unless ``labels`` gives them.
    """
    tiles = cut_tiles(images, generator)  # [B, 9, 3, T, T]
    if labels is None:
        labels = torch.randint(0, NUM_PERMUTATIONS, (len(images),), generator=generator)
    return shuffle_tiles(tiles, labels), labels


# -- model -------------------------------------------------------------------------------


class JigsawNet(PretextModel):
    """Context-free network: a shared tower per tile, concatenation, fc7, fc8 over permutations."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        self.fc6 = nn.Linear(self.trunk.out_channels, TILE_EMBEDDING)
        self.fc7 = nn.Linear(NUM_TILES * TILE_EMBEDDING, FC_WIDTH)
        self.fc8 = nn.Linear(FC_WIDTH, NUM_PERMUTATIONS)
        self.relu = nn.ReLU()

    def forward(self, tiles: Tensor) -> Tensor:
        n = tiles.shape[0]
        x = tiles.flatten(0, 1)  # [N, 9, 3, T, T] → [9N, 3, T, T]: one tower for every tile
        x = self.relu(self.fc6(self.trunk.pooled(x)))  # [9N, 64]
        x = x.view(n, NUM_TILES * TILE_EMBEDDING)  # [N, 576], tiles in input order
        return self.fc8(self.relu(self.fc7(x)))  # [N, P]


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh jigsaw subject; batches are ``(tiles [B, 9, 3, 8, 8], permutation index)``."""
    return pretext_subject(
        "jigsaw",
        JigsawNet,
        make_batch,
        BATCH_SIZE,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        criterion=nn.CrossEntropyLoss(),
        task=Task.classification(NUM_PERMUTATIONS),
    )


# Returns loss_start, loss_end, chance, seconds and the pretext accuracy on new batches.
train = pretext_trainer(build, DEFAULT_STEPS, chance=CHANCE, metric=batch_accuracy)


ENTRY = register_zoo(
    ZooEntry(
        name="jigsaw",
        family="ssl",
        learns=f"which of {NUM_PERMUTATIONS} fixed permutations shuffled the 3×3 tiles",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/jigsaw.py",
    )
)
