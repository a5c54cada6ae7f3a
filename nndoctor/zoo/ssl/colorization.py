"""Colorization — Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016.

The network sees only the lightness channel L of a CIE Lab image and predicts
its colour channels (a, b). As in the paper, colour prediction is posed as
*classification* over a quantised ab gamut — a multinomial per output pixel,
trained with cross-entropy — rather than regression, whose L2 optimum is the
desaturated mean colour. The paper quantises ab with grid size 10 into Q = 313
in-gamut bins and predicts at 1/4 of the input resolution; here the grid is
``AB_BIN`` = 20 over [-110, 110]² (Q = 121 bins, the out-of-gamut ones simply
never occur) and predictions are made on an 8×8 grid for 32×32 inputs.

Rare colours are re-weighted as in the paper (its "class rebalancing"): most
pixels are sky, ground or grey, so without weights the loss is dominated by a
few bins. Each bin's weight is w ∝ ((1 − λ) p̃ + λ/Q)⁻¹ with λ = 1/2 and p̃
the empirical bin distribution, normalised so that E_p̃[w] = 1; p̃ is measured
once over ``PRIOR_SCENES`` reference scenes (the paper also smooths p̃ with a
Gaussian in ab space, not needed on this coarse grid). Omitted: the
annealed-mean decoding (only needed to render pretty images, not to learn features).

The colour conversions are implemented here (sRGB D65 → XYZ → Lab and back),
so no imaging library is needed; ``split_brain`` and ``multitask`` reuse them.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.data import make_scenes, to_unit_rgb
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl._common import (
    BATCH_SIZE,
    POOL_SIZE,
    ConvTrunk,
    PretextModel,
    ScenePool,
    batch_accuracy,
    pretext_subject,
    pretext_trainer,
)

# -- CIE Lab ------------------------------------------------------------------------------

# sRGB (linear) → XYZ, D65 white point (IEC 61966-2-1).
RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
D65_WHITE = (0.95047, 1.0, 1.08883)
LAB_DELTA = 6 / 29  # CIE: f(t) is linear below δ³

# Quantised ab gamut: AB_BINS_PER_AXIS² bins of AB_BIN units each, over [-AB_RANGE, AB_RANGE).
AB_BIN = 20.0
AB_RANGE = 110.0
AB_BINS_PER_AXIS = int(2 * AB_RANGE / AB_BIN)  # 11
NUM_AB_BINS = AB_BINS_PER_AXIS**2  # Q = 121

# Standardisation of the network's inputs (measured on 20 000 scenes of seed 0).
L_MEAN, L_STD = 55.4, 14.3
AB_MEAN = (1.0, -0.0)
AB_STD = (21.2, 27.8)

OUTPUT_STRIDE = 4  # predictions on a (H/4)×(W/4) grid, as in the paper
REBALANCE_LAMBDA = 0.5  # λ: weights from a mix of the empirical and the uniform prior
PRIOR_SCENES = 1024  # reference scenes (seed 0) over which the bin prior p̃ is measured
DEFAULT_STEPS = 300
CHANCE = math.log(NUM_AB_BINS)


def _srgb_to_linear(c: Tensor) -> Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: Tensor) -> Tensor:
    c = c.clamp(min=0)
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Unit-range sRGB [N, 3, H, W] → CIE Lab [N, 3, H, W] (L in [0, 100], a/b ≈ [-110, 110])."""
    lin = _srgb_to_linear(rgb.clamp(0, 1))
    m = rgb.new_tensor(RGB_TO_XYZ)
    xyz = torch.einsum("ij,njhw->nihw", m, lin) / rgb.new_tensor(D65_WHITE).view(1, 3, 1, 1)
    f = torch.where(
        xyz > LAB_DELTA**3, xyz.clamp(min=1e-12) ** (1 / 3), xyz / (3 * LAB_DELTA**2) + 4 / 29
    )
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """CIE Lab [N, 3, H, W] → unit-range sRGB (clipped to the gamut); inverse of :func:`rgb_to_lab`."""
    fy = (lab[:, 0] + 16) / 116
    fx = fy + lab[:, 1] / 500
    fz = fy - lab[:, 2] / 200
    f = torch.stack([fx, fy, fz], dim=1)
    xyz = torch.where(f > LAB_DELTA, f**3, 3 * LAB_DELTA**2 * (f - 4 / 29))
    xyz = xyz * lab.new_tensor(D65_WHITE).view(1, 3, 1, 1)
    m_inv = torch.linalg.inv(lab.new_tensor(RGB_TO_XYZ))
    lin = torch.einsum("ij,njhw->nihw", m_inv, xyz)
    return _linear_to_srgb(lin).clamp(0, 1)


def scenes_to_lab(images: Tensor) -> Tensor:
    """Standardised scenes [N, 3, H, W] → Lab [N, 3, H, W]."""
    return rgb_to_lab(to_unit_rgb(images))


def standardise_l(lab: Tensor) -> Tensor:
    """The network input: standardised lightness, [N, 3, H, W] Lab → [N, 1, H, W]."""
    return (lab[:, :1] - L_MEAN) / L_STD


def standardise_ab(lab: Tensor) -> Tensor:
    """Standardised colour channels, [N, 3, H, W] Lab → [N, 2, H, W]."""
    mean = lab.new_tensor(AB_MEAN).view(1, 2, 1, 1)
    std = lab.new_tensor(AB_STD).view(1, 2, 1, 1)
    return (lab[:, 1:] - mean) / std


def quantise_ab(lab: Tensor, stride: int = OUTPUT_STRIDE) -> Tensor:
    """Target bins: ab averaged over stride×stride blocks, then quantised.

    [N, 3, H, W] Lab → [N, H/stride, W/stride] bin indices in [0, NUM_AB_BINS).
    """
    ab = F.avg_pool2d(lab[:, 1:], stride)  # [N, 2, H/s, W/s]
    idx = ((ab + AB_RANGE) / AB_BIN).floor().long().clamp(0, AB_BINS_PER_AXIS - 1)
    return idx[:, 0] * AB_BINS_PER_AXIS + idx[:, 1]


def ab_bin_centres() -> Tensor:
    """The (a, b) centre of every bin: [NUM_AB_BINS, 2]."""
    centres = torch.arange(AB_BINS_PER_AXIS) * AB_BIN - AB_RANGE + AB_BIN / 2
    a, b = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([a.flatten(), b.flatten()], dim=1)


# -- class rebalancing -------------------------------------------------------------------


def rebalancing_weights(prior: Tensor, lam: float = REBALANCE_LAMBDA) -> Tensor:
    """Per-class loss weights w ∝ ((1 − λ) p̃ + λ/Q)⁻¹ with E_p̃[w] = 1 (Zhang et al. 2016, eq. 4)."""
    w = 1.0 / ((1 - lam) * prior + lam / len(prior))
    return w / (prior * w).sum()


@functools.cache
def _ab_prior() -> Tensor:
    lab = scenes_to_lab(make_scenes(PRIOR_SCENES, seed=0)[0])
    counts = torch.bincount(quantise_ab(lab).flatten(), minlength=NUM_AB_BINS).double()
    return (counts / counts.sum()).float()


def ab_prior() -> Tensor:
    """p̃: how often each ab bin occurs in the reference scenes, [NUM_AB_BINS] (computed once)."""
    return _ab_prior().clone()


def ab_class_weights() -> Tensor:
    """The rebalancing weight of every ab bin, [NUM_AB_BINS]."""
    return rebalancing_weights(ab_prior())


# -- pretext transform ---------------------------------------------------------------------


def make_batch(images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Lightness in, colour bins out: [B, 3, H, W] → (L [B, 1, H, W], bins [B, H/4, W/4])."""
    lab = scenes_to_lab(images)
    return standardise_l(lab), quantise_ab(lab)


# -- model -------------------------------------------------------------------------------


class ColorHead(nn.Module):
    """Dense ab-bin classifier on the conv4 map: ×2 upsampling, 3×3 conv, 1×1 conv to Q logits."""

    def __init__(self, in_channels: int, num_bins: int = NUM_AB_BINS, width: int = 128) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.classifier = nn.Conv2d(width, num_bins, 1)

    def forward(self, conv4: Tensor) -> Tensor:
        # [N, C, H/8, W/8] → [N, width, H/4, W/4] → logits [N, Q, H/4, W/4]
        return self.classifier(self.relu(self.bn(self.conv(self.up(conv4)))))


class ColorizationNet(PretextModel):
    """Lightness trunk (one input channel) and a dense colour-bin head."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=1)
        self.head = ColorHead(self.trunk.out_channels)

    def forward(self, lightness: Tensor) -> Tensor:
        # [N, 1, H, W] → conv4 [N, 128, H/8, W/8] → logits [N, Q, H/4, W/4]
        return self.head(self.trunk(lightness))

    def probe_features(self, images: Tensor) -> dict[str, Tensor]:
        # The trunk only ever sees lightness: probe it on the L channel of the scenes.
        return self.trunk.features(standardise_l(scenes_to_lab(images)))


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh colorization subject (per-pixel classification over Q ab bins, rebalanced)."""
    return pretext_subject(
        "colorization",
        ColorizationNet,
        make_batch,
        BATCH_SIZE,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        criterion=nn.CrossEntropyLoss(weight=ab_class_weights().to(device)),
        task=Task.classification(NUM_AB_BINS),
    )


# Returns loss_start, loss_end, chance, seconds and the per-pixel bin accuracy on new batches.
train = pretext_trainer(build, DEFAULT_STEPS, chance=CHANCE, metric=batch_accuracy)


ENTRY = register_zoo(
    ZooEntry(
        name="colorization",
        family="ssl",
        learns="the colour (quantised Lab ab bin) of every region from lightness alone",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/colorization.py",
    )
)
