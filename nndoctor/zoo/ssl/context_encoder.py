"""Context encoder — Pathak, Krähenbühl, Donahue, Darrell & Efros, "Context
Encoders: Feature Learning by Inpainting", CVPR 2016.

The centre region of the image is dropped (filled with the mean value, 0 for
standardised scenes) and the network paints it back from its surroundings.
The encoder is the shared conv trunk; the paper's *channel-wise fully
connected* layer then connects every spatial position of the code to every
other within each channel (far cheaper than a full FC layer), a 1×1
convolution mixes the channels, and a decoder of upsampling convolutions
produces the missing region.

As in the paper the centre is a quarter of the image area (16×16 of 32×32)
and the reconstruction loss is the L2 distance on it. Omitted: the
adversarial term (λ_adv = 0.001 in the paper, it sharpens the painting but is
not needed to learn features) and the 10× weighted overlap border.
"""

from __future__ import annotations

import math
from typing import Any

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
    pretext_subject,
    pretext_trainer,
)
from nndoctor.zoo.ssl.denoising import Decoder

HOLE_FRACTION = 0.5  # side of the centre hole / side of the image (a quarter of the area)
DECODER_WIDTHS = (64, 32)  # 4×4 code → 8×8 → 16×16 (the hole of a 32×32 scene)
DEFAULT_STEPS = 300


# -- pretext transform ---------------------------------------------------------------------


def hole_slice(size: int) -> slice:
    """Rows (and columns) of the centre hole in a ``size``×``size`` image."""
    side = int(round(size * HOLE_FRACTION))
    start = (size - side) // 2
    return slice(start, start + side)


def make_batch(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Image with its centre filled by the mean, and the centre: ([B, 3, H, W], [B, 3, H/2, W/2])."""
    hole = hole_slice(images.shape[-1])
    centre = images[:, :, hole, hole].clone()
    masked = images.clone()
    masked[:, :, hole, hole] = 0.0  # the dataset mean after standardisation
    return masked, centre


# -- model -------------------------------------------------------------------------------


class ChannelwiseFC(nn.Module):
    """Fully connected *within* each channel: [N, C, H, W] → [N, C, H, W], C·(HW)² weights."""

    def __init__(self, channels: int, positions: int) -> None:
        super().__init__()
        self.positions = positions
        self.weight = nn.Parameter(torch.empty(channels, positions, positions))
        self.bias = nn.Parameter(torch.zeros(channels, positions))
        # One fan-in of `positions` per output, as nn.Linear's default (Kaiming-uniform, a=√5).
        bound = 1 / math.sqrt(positions)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        flat = x.view(n, c, h * w)  # [N, C, HW]
        out = torch.einsum("ncp,cpq->ncq", flat, self.weight) + self.bias  # [N, C, HW]
        return out.view(n, c, h, w)


class ContextEncoder(PretextModel):
    """Trunk → channel-wise FC → 1×1 conv → decoder painting the centre."""

    def __init__(self, image_size: int = 32) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        code_side = math.ceil(image_size / 8)
        c = self.trunk.out_channels
        self.channel_fc = ChannelwiseFC(c, code_side * code_side)
        self.mix = nn.Conv2d(c, c, 1)
        self.relu = nn.ReLU()
        self.decoder = Decoder(c, DECODER_WIDTHS)

    def forward(self, masked: Tensor) -> Tensor:
        code = self.trunk(masked)  # [N, 3, 32, 32] → [N, 128, 4, 4]
        code = self.relu(self.mix(self.relu(self.channel_fc(code))))  # [N, 128, 4, 4]
        return self.decoder(code)  # [N, 3, 16, 16]: the centre


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh context-encoder subject; batches are ``(masked image, centre)``, loss MSE."""
    return pretext_subject(
        "context_encoder",
        ContextEncoder,
        make_batch,
        BATCH_SIZE,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        criterion=nn.MSELoss(),
        task=Task.reconstruction(),
    )


def _mean_fill_mse(model: nn.Module, batch: Any) -> float:
    """The loss of filling the hole with the mean (0): the baseline the encoder must beat."""
    _, centre = batch
    return (centre**2).mean().item()


# Returns loss_start, loss_end, seconds and the mean-fill baseline MSE to compare loss_end with.
train = pretext_trainer(
    build, DEFAULT_STEPS, chance=None, metric=_mean_fill_mse, metric_name="mean_fill_mse"
)


ENTRY = register_zoo(
    ZooEntry(
        name="context_encoder",
        family="ssl",
        learns="to paint the masked centre quarter of a scene from its surroundings",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/context_encoder.py",
    )
)
