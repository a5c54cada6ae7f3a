"""Split-brain autoencoder — Zhang, Isola & Efros, "Split-Brain Autoencoders:
Unsupervised Learning by Cross-Channel Prediction", CVPR 2017.

The network is split in two disjoint sub-networks, each seeing one half of
the data channels and predicting the other half: F₁ maps lightness L to the
colour channels ab, F₂ maps ab to L. The representation is the concatenation
of both sub-networks' features, so it covers the whole input though neither
half ever saw its own target. As in the paper both predictions are
classifications over quantised values with cross-entropy (the paper found
classification better than regression): ab in the colorization gamut bins,
L in ``NUM_L_BINS`` bins; the total loss is the sum of both. Both use the
colorization paper's class rebalancing (weights from the bins' prior), since
a few sky and ground values dominate either channel half.

Each sub-network is the conv trunk at half the width (paper: AlexNet split in
half along the channels), with a dense head at 1/4 resolution.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nndoctor.subject import Subject, Task
from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.registry import ZooEntry, register_zoo
from nndoctor.zoo.ssl._common import (
    BATCH_SIZE,
    POOL_SIZE,
    STAGES,
    WIDTHS,
    ConvTrunk,
    PretextModel,
    ScenePool,
    pretext_subject,
    pretext_trainer,
)
from nndoctor.zoo.ssl.colorization import (
    NUM_AB_BINS,
    OUTPUT_STRIDE,
    PRIOR_SCENES,
    ColorHead,
    ab_class_weights,
    quantise_ab,
    rebalancing_weights,
    scenes_to_lab,
    standardise_ab,
    standardise_l,
)

NUM_L_BINS = 20  # L ∈ [0, 100] in bins of 5
L_BIN = 100 / NUM_L_BINS
HALF_WIDTHS = tuple(w // 2 for w in WIDTHS)  # each sub-network: half the channels
DEFAULT_STEPS = 300
# Chance: uniform predictions for both halves.
CHANCE = math.log(NUM_AB_BINS) + math.log(NUM_L_BINS)


# -- pretext transform ---------------------------------------------------------------------


def quantise_l(lab: Tensor, stride: int = OUTPUT_STRIDE) -> Tensor:
    """Lightness bins: [N, 3, H, W] Lab → [N, H/stride, W/stride] in [0, NUM_L_BINS)."""
    lightness = F.avg_pool2d(lab[:, :1], stride)[:, 0]
    return (lightness / L_BIN).floor().long().clamp(0, NUM_L_BINS - 1)


@functools.cache
def _l_prior() -> Tensor:
    lab = scenes_to_lab(make_scenes(PRIOR_SCENES, seed=0)[0])
    counts = torch.bincount(quantise_l(lab).flatten(), minlength=NUM_L_BINS).double()
    return (counts / counts.sum()).float()


def l_class_weights() -> Tensor:
    """The rebalancing weight of every L bin, [NUM_L_BINS] (prior measured once)."""
    return rebalancing_weights(_l_prior().clone())


def make_batch(
    images: Tensor, generator: torch.Generator | None = None
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The two channel halves and each one's target bins.

    [B, 3, H, W] → ((L [B, 1, H, W], ab [B, 2, H, W]), (ab bins [B, H/4, W/4], L bins [B, H/4, W/4])).
    """
    lab = scenes_to_lab(images)
    return (standardise_l(lab), standardise_ab(lab)), (quantise_ab(lab), quantise_l(lab))


# -- model -------------------------------------------------------------------------------


class HalfNet(nn.Module):
    """One sub-network: a half-width trunk on some channels, a dense bin classifier."""

    def __init__(self, in_channels: int, num_bins: int) -> None:
        super().__init__()
        self.trunk = ConvTrunk(in_channels=in_channels, widths=HALF_WIDTHS)
        self.head = ColorHead(self.trunk.out_channels, num_bins, width=HALF_WIDTHS[-1])

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


class SplitBrainNet(PretextModel):
    """F₁: L → ab bins and F₂: ab → L bins, side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.l_to_ab = HalfNet(in_channels=1, num_bins=NUM_AB_BINS)
        self.ab_to_l = HalfNet(in_channels=2, num_bins=NUM_L_BINS)

    def forward(self, lightness: Tensor, ab: Tensor) -> tuple[Tensor, Tensor]:
        # [N, 1, H, W] → ab logits [N, 121, H/4, W/4];  [N, 2, H, W] → L logits [N, 20, H/4, W/4]
        return self.l_to_ab(lightness), self.ab_to_l(ab)

    def probe_features(self, images: Tensor) -> dict[str, Tensor]:
        # The representation is both halves' features, concatenated along channels.
        lab = scenes_to_lab(images)
        f1 = self.l_to_ab.trunk.features(standardise_l(lab))
        f2 = self.ab_to_l.trunk.features(standardise_ab(lab))
        return {name: torch.cat([f1[name], f2[name]], dim=1) for name in STAGES}


def split_brain_loss(model: nn.Module, batch: Any) -> Tensor:
    """ℓ = CE(F₁(L), ab bins) + CE(F₂(ab), L bins), each with its rebalancing weights."""
    (lightness, ab), (ab_bins, l_bins) = batch
    ab_logits, l_logits = model(lightness, ab)
    ab_weight = ab_class_weights().to(ab_logits.device)
    l_weight = l_class_weights().to(l_logits.device)
    return F.cross_entropy(ab_logits, ab_bins, weight=ab_weight) + F.cross_entropy(
        l_logits, l_bins, weight=l_weight
    )


# -- subject -------------------------------------------------------------------------------


def build(seed: int = 0, device: str = "cpu", pool_size: int | None = None) -> Subject:
    """A fresh split-brain subject; batches are ``((L, ab), (ab bins, L bins))``."""
    return pretext_subject(
        "split_brain",
        SplitBrainNet,
        make_batch,
        BATCH_SIZE,
        ScenePool(seed, pool_size or POOL_SIZE),
        seed,
        device,
        loss_fn=split_brain_loss,
        task=Task("custom"),
    )


def _accuracies(model: nn.Module, batch: Any) -> float:
    """Mean of both halves' per-pixel bin accuracy."""
    (lightness, ab), (ab_bins, l_bins) = batch
    ab_logits, l_logits = model(lightness, ab)
    acc_ab = (ab_logits.argmax(1) == ab_bins).float().mean()
    acc_l = (l_logits.argmax(1) == l_bins).float().mean()
    return ((acc_ab + acc_l) / 2).item()


# Returns loss_start, loss_end, chance (both halves), seconds and the mean per-pixel bin accuracy.
train = pretext_trainer(build, DEFAULT_STEPS, chance=CHANCE, metric=_accuracies)


ENTRY = register_zoo(
    ZooEntry(
        name="split_brain",
        family="ssl",
        learns="colour bins from lightness and lightness bins from colour, in two half-networks",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/split_brain.py",
    )
)
