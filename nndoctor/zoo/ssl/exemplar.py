"""Exemplar CNN — Dosovitskiy, Springenberg, Riedmiller & Brox, "Discriminative
Unsupervised Feature Learning with Convolutional Neural Networks", NIPS 2014.

Every *seed patch* defines its own surrogate class; the training samples of
that class are random transformations of the seed (the paper's translation,
scaling, rotation, contrast and colour transformations). Classifying the
surrogate classes makes the features invariant to those transformations
while keeping them discriminative between images.

The paper samples 32×32 seed patches at high-gradient places of 96×96 STL
images and uses up to 32 000 classes; here each seed patch is a whole 32×32
scene and there are ``NUM_SURROGATE_CLASSES`` of them. The augmentations are
implemented in torch (one affine warp per view through ``affine_grid``, then
colour jitter in unit RGB), so every batch holds fresh views.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.data import standardise, to_unit_rgb
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl._common import (
    BATCH_SIZE,
    ConvTrunk,
    PretextModel,
    ScenePool,
    batch_accuracy,
    pretext_subject,
    pretext_trainer,
)

NUM_SURROGATE_CLASSES = 128  # seed patches, one class each
# Transformation ranges (cf. the paper, section 2: translation, scale, rotation,
# contrast/brightness, saturation and hue).
SCALE = (0.75, 1.35)  # zoom factor
ROTATION_DEG = 20.0
TRANSLATION = 0.2  # fraction of the half side
BRIGHTNESS = (0.7, 1.3)
CONTRAST = (0.7, 1.3)
SATURATION = (0.5, 1.5)
HUE_DEG = 25.0  # rotation of the chroma plane (YIQ)
DEFAULT_STEPS = 400
CHANCE = math.log(NUM_SURROGATE_CLASSES)

# RGB ↔ YIQ (NTSC), used to rotate hue.
RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


# -- augmentations -------------------------------------------------------------------------


def _uniform(n: int, lo: float, hi: float, g: torch.Generator | None) -> Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def random_affine(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random zoom, rotation, translation and horizontal flip, one per image; shape kept."""
    n = images.shape[0]
    scale = torch.exp(_uniform(n, math.log(SCALE[0]), math.log(SCALE[1]), generator))
    angle = _uniform(n, -ROTATION_DEG, ROTATION_DEG, generator) * math.pi / 180
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    tx = _uniform(n, -TRANSLATION, TRANSLATION, generator)
    ty = _uniform(n, -TRANSLATION, TRANSLATION, generator)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # theta maps output coordinates to input coordinates: [N, 2, 3]
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    ).to(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, padding_mode="reflection", align_corners=False)


def colour_jitter(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Random brightness, contrast, saturation and hue on standardised scenes; shape kept."""
    n = images.shape[0]
    rgb = to_unit_rgb(images)  # [N, 3, H, W] in [0, 1]

    def per_image(lo: float, hi: float) -> Tensor:
        return _uniform(n, lo, hi, generator).view(n, 1, 1, 1).to(rgb)

    rgb = rgb * per_image(*BRIGHTNESS)
    mean = rgb.mean(dim=(1, 2, 3), keepdim=True)
    rgb = (rgb - mean) * per_image(*CONTRAST) + mean
    grey = rgb.mean(dim=1, keepdim=True)
    rgb = (rgb - grey) * per_image(*SATURATION) + grey
    # Hue: rotate the (I, Q) chroma plane by a random angle.
    to_yiq = rgb.new_tensor(RGB_TO_YIQ)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, rgb)
    angle = per_image(-HUE_DEG, HUE_DEG).view(n) * math.pi / 180
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    rgb = torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), yiq)
    return standardise(rgb.clamp(0, 1))


def augment(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random view of every seed: affine warp, then colour jitter."""
    return colour_jitter(random_affine(images, generator), generator)


def make_batch(
    seeds_and_ids: tuple[Tensor, Tensor], generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """A fresh view of every seed, labelled by its surrogate class.

    ([B, 3, H, W] seeds, [B] class ids) → (views [B, 3, H, W], labels [B]).
    """
    seeds, ids = seeds_and_ids
    return augment(seeds, generator), ids


# -- model -------------------------------------------------------------------------------


class ExemplarNet(PretextModel):
    """Trunk → global average pool → linear classifier over the surrogate classes."""

    def __init__(self, num_classes: int = NUM_SURROGATE_CLASSES) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        self.classifier = nn.Linear(self.trunk.out_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        # [N, 3, H, W] → pooled [N, 128] → logits [N, NUM_SURROGATE_CLASSES]
        return self.classifier(self.trunk.pooled(x))


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh exemplar subject (``pool_size`` is ignored: the pool is the seed patches)."""
    # The seed patches and their surrogate class ids: ([N, 3, 32, 32], arange(N)).
    seeds = ScenePool(seed, NUM_SURROGATE_CLASSES, with_ids=True)
    return pretext_subject(
        "exemplar",
        ExemplarNet,
        make_batch,
        BATCH_SIZE,
        seeds,
        seed,
        device,
        criterion=nn.CrossEntropyLoss(),
        task=Task.classification(NUM_SURROGATE_CLASSES),
        uses_augmentation=True,
    )


# Returns loss_start, loss_end, chance, seconds and the accuracy on new views of the seeds.
train = pretext_trainer(build, DEFAULT_STEPS, chance=CHANCE, metric=batch_accuracy)


ENTRY = register_zoo(
    ZooEntry(
        name="exemplar",
        family="ssl",
        learns=f"which of {NUM_SURROGATE_CLASSES} seed scenes a randomly transformed view comes from",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/exemplar.py",
    )
)
