"""Denoising autoencoder — Vincent, Larochelle, Bengio & Manzagol, "Extracting and
Composing Robust Features with Denoising Autoencoders", ICML 2008.

The input x is corrupted into x̃ by *masking noise* — a random fraction ν of
the input components is destroyed (set to 0) — and the autoencoder is trained
to reconstruct the clean x from x̃. Reconstructing what was destroyed forces
the code to capture the dependencies between pixels, not the identity map.

Components are whole pixels here (all three channels at once), and 0 is the
mean colour because the scenes are standardised. The encoder is the shared
conv trunk (32×32 → 4×4×128), the decoder mirrors it with nearest-neighbour
upsampling and 3×3 convolutions. The loss is the squared error over all
pixels (the paper's variant that weights destroyed components more is not used).
"""

from __future__ import annotations

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

MASKING_FRACTION = 0.3  # ν: fraction of pixels destroyed
DECODER_WIDTHS = (64, 32, 16)  # channels after each ×2 upsampling: 8×8, 16×16, 32×32
DEFAULT_STEPS = 600  # its features keep improving for longer than the others'


# -- pretext transform ---------------------------------------------------------------------


def corrupt(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Masking noise: each pixel is set to 0 (the mean) with probability ν; shape kept."""
    n, _, h, w = images.shape
    keep = (torch.rand(n, 1, h, w, generator=generator) >= MASKING_FRACTION).to(images)
    return images * keep


def make_batch(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """(x̃ [B, 3, H, W], x [B, 3, H, W]): corrupted input, clean target."""
    return corrupt(images, generator), images


# -- model -------------------------------------------------------------------------------


class UpBlock(nn.Module):
    """×2 nearest upsampling → 3×3 conv → BatchNorm → ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(self.up(x))))


class Decoder(nn.Module):
    """conv4 map → image: one UpBlock per width, then a 1×1 conv to ``out_channels`` (linear)."""

    def __init__(
        self, in_channels: int, widths: tuple[int, ...] = DECODER_WIDTHS, out_channels: int = 3
    ) -> None:
        super().__init__()
        chans = (in_channels, *widths)
        self.blocks = nn.Sequential(*(UpBlock(chans[i], chans[i + 1]) for i in range(len(widths))))
        # No output nonlinearity: targets are standardised, unbounded values.
        self.out = nn.Conv2d(widths[-1], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.blocks(x))


class DenoisingAutoencoder(PretextModel):
    """Trunk as encoder, mirrored decoder; predicts the clean image."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=3)
        self.decoder = Decoder(self.trunk.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        # [N, 3, 32, 32] → code [N, 128, 4, 4] → reconstruction [N, 3, 32, 32]
        return self.decoder(self.trunk(x))


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh denoising subject; batches are ``(corrupted, clean)`` and the loss is MSE."""
    return pretext_subject(
        "denoising",
        DenoisingAutoencoder,
        make_batch,
        BATCH_SIZE,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        criterion=nn.MSELoss(),
        task=Task.reconstruction(),
    )


def _corrupted_mse(model: nn.Module, batch: Any) -> float:
    """Squared error on the destroyed pixels only: how well the gaps are filled."""
    noisy, clean = batch
    destroyed = (noisy == 0).all(dim=1, keepdim=True).expand_as(clean)
    return ((model(noisy) - clean)[destroyed] ** 2).mean().item()


# Returns loss_start, loss_end, seconds and the MSE on destroyed pixels. There is no chance
# level for a reconstruction; the scenes are standardised, so predicting the mean (all zeros)
# scores an MSE of about 1.
train = pretext_trainer(
    build, DEFAULT_STEPS, chance=None, metric=_corrupted_mse, metric_name="mse_destroyed"
)


ENTRY = register_zoo(
    ZooEntry(
        name="denoising",
        family="ssl",
        learns=f"the clean scene from one with {MASKING_FRACTION:.0%} of its pixels destroyed",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/denoising.py",
    )
)
