"""Learning to count — Noroozi, Pirsiavash & Favaro, "Representation Learning by
Learning to Count", ICCV 2017.

A feature φ is trained to *count* visual primitives: counts are additive, so
the counts of the whole image equal the sum of the counts of its tiles. With
D a 2× downsampling and T₁…T₄ the four quadrant tiles (both give images of
the same size), the equivariance term asks

    φ(D∘x) = Σⱼ φ(Tⱼ∘x).

φ ≡ 0 satisfies it trivially, so a contrastive term asks the counts of a
*different* image y to differ from x's tile sum by at least a margin M:

    ℓ(x, y) = |φ(D∘x) − Σⱼ φ(Tⱼ∘x)|² + max(0, M − |φ(D∘y) − Σⱼ φ(Tⱼ∘x)|²).

φ ends in a ReLU (counts are non-negative). The all-zero solution scores
exactly M, so a loss below M means φ counts something. The paper uses
AlexNet, 1000 counts and M = 10 on 114 px tiles; here the trunk on 32 px
tiles of 64 px scenes, ``NUM_COUNTS`` counts and ``MARGIN``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl._common import (
    POOL_SIZE,
    ConvTrunk,
    PretextModel,
    ProgressFn,
    ScenePool,
    pretext_subject,
    train_subject,
)

NUM_COUNTS = 32  # dimension of the count vector φ(x)
MARGIN = 10.0  # M, as in the paper
TILES_PER_SIDE = 2  # 2×2 tiles; D downsamples by the same factor
# Scenes are rendered at 64 px, so D∘x and every tile are 32 px: the trunk learns on
# inputs of the size it is probed at (the same scenes, since they are size-independent).
SCENE_SIZE = 64
IMAGES_PER_BATCH = 32  # × 6 inputs (whole, 4 tiles, other) of 32×32 per step
DEFAULT_STEPS = 300


# -- pretext transform ---------------------------------------------------------------------


def downsample(images: Tensor) -> Tensor:
    """D: [N, 3, H, W] → [N, 3, H/2, W/2] (area averaging)."""
    return F.avg_pool2d(images, TILES_PER_SIDE)


def tile(images: Tensor) -> Tensor:
    """T₁…T₄: [N, 3, H, W] → [N, 4, 3, H/2, W/2], tiles in reading order."""
    n, c, h, w = images.shape
    k = TILES_PER_SIDE
    t = images.view(n, c, k, h // k, k, w // k)  # [N, C, ky, h, kx, w]
    return t.permute(0, 2, 4, 1, 3, 5).reshape(n, k * k, c, h // k, w // k)


def make_batch(images: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """{"image": D∘x [B, 3, H/2, W/2], "tiles": T∘x [B, 4, 3, H/2, W/2], "other": D∘y}.

    y is another image of the (shuffled) batch: x rolled by one.
    """
    others = images.roll(1, dims=0)
    return {"image": downsample(images), "tiles": tile(images), "other": downsample(others)}


# -- model -------------------------------------------------------------------------------


class CountingNet(PretextModel):
    """φ: trunk → global average pool → fc → ReLU, a vector of NUM_COUNTS non-negative counts."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        self.fc = nn.Linear(self.trunk.out_channels, NUM_COUNTS)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        # [N, 3, h, w] → pooled [N, 128] → counts [N, NUM_COUNTS]
        return self.relu(self.fc(self.trunk.pooled(x)))


def counting_loss(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    """Equivariance + contrastive margin, averaged over the batch."""
    whole, tiles, other = batch["image"], batch["tiles"], batch["other"]
    n, k = tiles.shape[:2]
    # One forward over all 6 inputs per image: whole, 4 tiles, other → [6N, counts]
    counts = model(torch.cat([whole, tiles.flatten(0, 1), other]))
    phi_whole = counts[:n]  # [N, counts]
    phi_tiles = counts[n : n + n * k].view(n, k, -1).sum(dim=1)  # Σⱼ φ(Tⱼ∘x): [N, counts]
    phi_other = counts[n + n * k :]  # [N, counts]
    equivariance = ((phi_whole - phi_tiles) ** 2).sum(dim=1)
    contrast = F.relu(MARGIN - ((phi_other - phi_tiles) ** 2).sum(dim=1))
    return (equivariance + contrast).mean()


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh counting subject; batches are dicts of the downsampled whole, tiles and another image."""
    return pretext_subject(
        "counting",
        CountingNet,
        make_batch,
        IMAGES_PER_BATCH,
        ScenePool(seed, pool_size or POOL_SIZE, size=SCENE_SIZE),
        seed,
        device,
        loss_fn=counting_loss,
        task=Task("custom"),
    )


def _equivariance_ratio(model: nn.Module, batch: Any) -> float:
    """E|φ(D∘x) − Σⱼφ(Tⱼ∘x)|² / E|φ(D∘y) − Σⱼφ(Tⱼ∘x)|²: how much closer the tile sum is to
    its own image's counts than to another image's (≪ 1 when φ counts; 1 if it does not)."""
    tiles = batch["tiles"]
    summed = model(tiles.flatten(0, 1)).view(*tiles.shape[:2], -1).sum(dim=1)
    own = ((model(batch["image"]) - summed) ** 2).sum(dim=1).mean()
    other = ((model(batch["other"]) - summed) ** 2).sum(dim=1).mean()
    return (own / other.clamp(min=1e-12)).item()


def train(
    steps: int | None = None, device: str = "cpu", seed: int = 0, progress: ProgressFn | None = None
) -> dict[str, Any]:
    """Train from scratch; returns loss_start, loss_end, seconds and the equivariance ratio.

    No chance level is defined; the collapsed solution φ ≡ 0 scores ``MARGIN``.
    """
    subject = build(seed, device)
    result = train_subject(
        subject,
        steps or DEFAULT_STEPS,
        seed,
        progress,
        chance=None,
        metric=_equivariance_ratio,
        metric_name="equivariance_ratio",
    )
    result["collapsed_loss"] = MARGIN
    return result


ENTRY = register_zoo(
    ZooEntry(
        name="counting",
        family="ssl",
        learns="counts of visual primitives: counts of the whole = sum of counts of its 4 tiles",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/counting.py",
    )
)
