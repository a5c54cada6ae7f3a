"""Rotation prediction — Gidaris, Singh & Komodakis, "Unsupervised Representation
Learning by Predicting Image Rotations", ICLR 2018.

Every image is shown in all four rotations g(X, y) = rot(X, 90°·y), y ∈ {0, 1, 2, 3},
and the network classifies which rotation was applied. To do so it must know
what is "up" in a scene — sky above, objects resting on the ground — which
needs the semantic layout, not low-level cues (the paper's argument for
multiples of 90°: they leave no interpolation artefacts to exploit).

As in the paper, the four rotated copies of each image go into the same batch
(here shuffled within the batch so labels are mixed at every position).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl._common import (
    POOL_SIZE,
    ConvTrunk,
    PretextModel,
    ScenePool,
    batch_accuracy,
    pretext_subject,
    pretext_trainer,
)

NUM_ROTATIONS = 4  # 0°, 90°, 180°, 270°
IMAGES_PER_BATCH = 32  # × 4 rotations = 128 inputs per step
DEFAULT_STEPS = 300
CHANCE = math.log(NUM_ROTATIONS)


# -- pretext transform -----------------------------------------------------------------


def rotate(images: Tensor, quarter_turns: int) -> Tensor:
    """Rotate [N, C, H, W] square images counter-clockwise by ``quarter_turns`` × 90°."""
    return torch.rot90(images, quarter_turns, dims=(2, 3))


def make_batch(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """All four rotations of every image, shuffled: [B, 3, H, W] → ([4B, 3, H, W], labels [4B])."""
    rotated = torch.cat([rotate(images, k) for k in range(NUM_ROTATIONS)])  # [4B, 3, H, W]
    labels = torch.arange(NUM_ROTATIONS).repeat_interleave(len(images))  # [4B]
    order = torch.randperm(len(labels), generator=generator)
    return rotated[order], labels[order]


# -- model -------------------------------------------------------------------------------


class RotationNet(PretextModel):
    """Trunk → global average pool → linear classifier over the 4 rotations."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        self.classifier = nn.Linear(self.trunk.out_channels, NUM_ROTATIONS)

    def forward(self, x: Tensor) -> Tensor:
        # [N, 3, H, W] → pooled [N, 128] → logits [N, 4]
        return self.classifier(self.trunk.pooled(x))


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh rotation subject: model initialised from ``seed``, batches from the seeded pool."""
    return pretext_subject(
        "rotation",
        RotationNet,
        make_batch,
        IMAGES_PER_BATCH,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        criterion=nn.CrossEntropyLoss(),
        task=Task.classification(NUM_ROTATIONS),
    )


# Returns loss_start, loss_end, chance, seconds and the pretext accuracy on new batches.
train = pretext_trainer(build, DEFAULT_STEPS, chance=CHANCE, metric=batch_accuracy)


ENTRY = register_zoo(
    ZooEntry(
        name="rotation",
        family="ssl",
        learns="which of 4 rotations (0/90/180/270°) was applied to a scene",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/rotation.py",
    )
)
