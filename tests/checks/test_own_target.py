"""reads-own-target (reasons 22, 25): an autoregressive model over its own input whose
prediction for a position reads that position (PixelCNN's first mask of type B)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from subjects import run, serious
from torch import nn

CHECK = "reads-own-target"


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the pixels before the centre (type A), or those and the
    centre (type B), in raster order."""

    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _, _, h, w = self.weight.shape
        mask = torch.ones_like(self.weight)
        mask[:, :, h // 2, w // 2 + (kind == "B") :] = 0
        mask[:, :, h // 2 + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def pixel_cnn(first: str) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        MaskedConv2d(first, 1, 16, 5, padding=2), nn.ReLU(),
        MaskedConv2d("B", 16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 1, 1),
    )  # fmt: skip


def binary_images(model: nn.Module) -> dict[str, Any]:
    """Binary 8x8 images fed as {-1, 1}, each pixel's logit trained against the {0, 1} pixel."""
    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(256, 1, 8, 8, generator=g) < 0.3).float()
    inputs = 2 * pixels - 1
    return {
        "model": model,
        "data": [(inputs[i : i + 32], pixels[i : i + 32]) for i in range(0, 256, 32)],
        "loss_fn": nn.BCEWithLogitsLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.fires("reads-own-target")
def test_a_first_mask_of_type_b_reads_the_pixel_it_predicts() -> None:
    report = run(select=[CHECK], **binary_images(pixel_cnn("B")))
    (finding,) = serious(report, CHECK)
    assert finding.reasons == [22, 25] and finding.severity.value == "error"
    assert finding.evidence["earlier_change"] == 0.0 and finding.evidence["own_change"] > 1e-3


@pytest.mark.silent("reads-own-target")
def test_a_first_mask_of_type_a_predicts_from_earlier_pixels() -> None:
    report = run(select=[CHECK], **binary_images(pixel_cnn("A")))
    assert not serious(report)
    assert report.result(CHECK).status.value == "passed"


@pytest.mark.silent("reads-own-target")
def test_an_autoencoder_sees_its_whole_input_and_is_not_judged() -> None:
    torch.manual_seed(0)
    autoencoder = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1)
    )
    report = run(select=[CHECK], **binary_images(autoencoder))
    assert not serious(report)
    result = report.result(CHECK)
    assert result.status.value == "passed" and "not a causal model" in result.detail
