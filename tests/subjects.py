"""Small seeded subjects for tests, built in milliseconds.

Healthy ones train cleanly; tests inject one real bug at a time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import nndoctor
from nndoctor.report.model import Report


def blobs(
    n: int = 256, features: int = 10, classes: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised Gaussian blobs: a learnable ``classes``-way problem."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 2.0
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, features, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    return x, y


def batches(
    x: torch.Tensor, y: torch.Tensor, size: int = 32
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def mlp(features: int = 10, classes: int = 3, hidden: int = 32, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    )


def healthy_classifier(seed: int = 0) -> dict[str, Any]:
    """Arguments for ``nndoctor.check`` on a healthy MLP classifier."""
    x, y = blobs(seed=seed)
    model = mlp(seed=seed)
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


class TinyVAE(nn.Module):
    """A VAE on 16 features with a 2-dimensional latent, seeded: its forward samples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
        self.dec = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 16))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return self.dec(mu + torch.randn_like(mu) * (0.5 * logvar).exp()), mu, logvar


class SequenceLoss(nn.CrossEntropyLoss):
    """Cross-entropy over every position of (..., classes) scores and their targets."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))


def run(select: list[str] | tuple[str, ...] = (), **kwargs: Any) -> Report:
    """``nndoctor.check`` restricted to ``select`` (check ids or reason numbers)."""
    return nndoctor.check(select=tuple(select), **kwargs)


def reasons_of(report: Report, check: str) -> set[int]:
    return {r for f in report.by_check(check) for r in f.reasons}


def serious(report: Report, check: str | None = None) -> list[Any]:
    """Findings of severity warning or error (optionally of one check)."""
    return [
        f
        for f in report.findings
        if f.severity.value != "info" and (check is None or f.check == check)
    ]
