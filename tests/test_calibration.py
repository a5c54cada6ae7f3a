"""Thresholds are calibrated on healthy subjects: no check warns on them, whatever the seed."""

from __future__ import annotations

import pytest
import torch
from subjects import batches, blobs
from torch import nn

import nndoctor


def _classifier(seed: int) -> dict:
    x, y = blobs(n=512, seed=seed)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3)
    )
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


def _convnet(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (256,), generator=g)
    x = torch.randn(256, 3, 12, 12, generator=g) + y.view(-1, 1, 1, 1).float() * 0.5
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(32, 4),
    )
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
    }


def _regression(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g)
    y = x[:, :2].sum(1, keepdim=True) + 0.1 * torch.randn(512, 1, generator=g)
    y = (y - y.mean()) / y.std()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.MSELoss(),
        "optimizer": torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "build", [_classifier, _convnet, _regression], ids=["mlp", "convnet", "regression"]
)
def test_healthy_subjects_raise_no_warning_or_error(build, seed: int) -> None:
    report = nndoctor.check(**build(seed))
    serious = [(f.check, f.title, f.message) for f in report.findings if f.severity.value != "info"]
    assert serious == []
    assert not [c for c in report.checks if c.status.value == "crashed"]
