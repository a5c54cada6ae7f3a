"""Relative patch location (context prediction) — Doersch, Gupta & Efros,
"Unsupervised Visual Representation Learning by Context Prediction", ICCV 2015.

A 3×3 grid of patches is laid over the image; the network sees the centre
patch and one of its 8 neighbours and predicts which of the 8 positions the
neighbour came from. Both patches go through the *same* trunk (shared
weights, the paper's "pair" architecture with late fusion), so the trunk must
describe a patch well enough to place it relative to another.

Shortcuts the paper closes, kept here: a *gap* between neighbouring patches
(so edges and lines cannot simply be continued across the border) and a random
*jitter* of every patch (so the grid is not pixel-aligned). The paper's
patches are 96 px with a 48 px gap and up to 7 px jitter on ~400 px images;
here 8 px patches, 2 px gap and ±1 px jitter on 32 px scenes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl._common import (
    POOL_SIZE,
    ConvTrunk,
    PretextModel,
    ScenePool,
    accuracy,
    crop,
    grid_origins,
    pretext_subject,
    pretext_trainer,
    uniform_ints,
)

PATCH = 8  # patch side, px
GAP = 2  # px between neighbouring patches
JITTER = 1  # each patch moves by up to ±JITTER px in x and y
# The 8 neighbours of the centre cell (1, 1), as (row, col) of the 3×3 grid; label = index.
NEIGHBOURS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))
NUM_POSITIONS = len(NEIGHBOURS)
PAIRS_PER_BATCH = 128
FC_WIDTH = 256
DEFAULT_STEPS = 300
CHANCE = math.log(NUM_POSITIONS)


# -- pretext transform ---------------------------------------------------------------------


def make_batch(
    images: Tensor, generator: torch.Generator | None = None
) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """Centre patch, neighbour patch and the neighbour's position.

    [B, 3, H, W] → ((centre [B, 3, P, P], neighbour [B, 3, P, P]), labels [B]).
    """
    n, size = images.shape[0], images.shape[-1]
    slack = grid_origins(size, PATCH, GAP, JITTER)  # free pixels around the grid
    labels = torch.randint(0, NUM_POSITIONS, (n,), generator=generator)
    # Grid origin (top-left of cell (0, 0) before jitter), random per image.
    oy = uniform_ints(n, JITTER, JITTER + slack, generator)
    ox = uniform_ints(n, JITTER, JITTER + slack, generator)
    cell = PATCH + GAP
    rows_cols = torch.tensor(NEIGHBOURS)[labels]  # [B, 2]

    def patch_at(row: Tensor | int, col: Tensor | int) -> Tensor:
        jy = uniform_ints(n, -JITTER, JITTER, generator)
        jx = uniform_ints(n, -JITTER, JITTER, generator)
        return crop(images, oy + row * cell + jy, ox + col * cell + jx, PATCH)

    centre = patch_at(1, 1)
    neighbour = patch_at(rows_cols[:, 0], rows_cols[:, 1])
    return (centre, neighbour), labels


# -- model -------------------------------------------------------------------------------


class PairClassifier(nn.Module):
    """Late fusion of two patch embeddings: fc6 per patch, concatenation, fc7, fc8."""

    def __init__(self, in_features: int, num_classes: int, width: int = FC_WIDTH) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, width // 2)
        self.fc7 = nn.Linear(width, width)
        self.fc8 = nn.Linear(width, num_classes)
        self.relu = nn.ReLU()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        # [N, C] each → [N, width/2] each → concatenated [N, width] → logits [N, num_classes]
        fused = torch.cat([self.relu(self.fc6(a)), self.relu(self.fc6(b))], dim=1)
        return self.fc8(self.relu(self.fc7(fused)))


class RelativePositionNet(PretextModel):
    """Shared trunk on both patches, then the pair classifier over the 8 positions."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        self.head = PairClassifier(self.trunk.out_channels, NUM_POSITIONS)

    def forward(self, centre: Tensor, neighbour: Tensor) -> Tensor:
        # [N, 3, P, P] twice → pooled [N, 128] twice → logits [N, 8]
        return self.head(self.trunk.pooled(centre), self.trunk.pooled(neighbour))


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh relative-position subject; batches are ``((centre, neighbour), label)``."""
    return pretext_subject(
        "relative_position",
        RelativePositionNet,
        make_batch,
        PAIRS_PER_BATCH,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        criterion=nn.CrossEntropyLoss(),
        task=Task.classification(NUM_POSITIONS),
    )


def _accuracy(model: nn.Module, batch: Any) -> float:
    (centre, neighbour), y = batch
    return accuracy(model(centre, neighbour), y)


# Returns loss_start, loss_end, chance, seconds and the pretext accuracy on new pairs.
train = pretext_trainer(build, DEFAULT_STEPS, chance=CHANCE, metric=_accuracy)


ENTRY = register_zoo(
    ZooEntry(
        name="relative_position",
        family="ssl",
        learns="where (8 ways) a neighbour patch lies relative to the centre patch",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/relative_position.py",
    )
)
