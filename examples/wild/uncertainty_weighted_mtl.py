"""Multi-task learning weighted by learned homoscedastic uncertainty: healthy.

In the manner of Kendall, Gal and Cipolla's uncertainty weighting and the PyTorch
``MultiTaskLoss`` modules that implement it: a shared trunk with a regression head and a
five-class classification head, and one learned log-variance ``s_i`` per task; the loss is
``sum_i exp(-s_i) * L_i + s_i``. Once a task's error is small its ``s_i`` goes negative,
so the total loss falls below zero and settles where ``s_i = log L_i``. Adam; prints the
loss, the learned weights ``exp(-s_i)`` and the held-out error and accuracy.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/uncertainty_weighted_mtl.py
    nndoctor check examples/wild/uncertainty_weighted_mtl.py
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class MultiTaskNet(nn.Module):
    def __init__(self, features: int = 12, classes: int = 5, hidden: int = 64) -> None:
        super().__init__()
        self.shared = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.regression = nn.Linear(hidden, 1)
        self.classification = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.shared(x)
        return self.regression(h), self.classification(h)


class UncertaintyWeighting(nn.Module):
    """sum_i exp(-s_i) L_i + s_i with s_i = log sigma_i^2 learned (one per task)."""

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(tasks))

    def forward(self, losses: torch.Tensor) -> torch.Tensor:
        return (torch.exp(-self.log_vars) * losses + self.log_vars).sum()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(4096, 12, generator=g)
    w_reg, w_cls = torch.randn(12, 1, generator=g), torch.randn(12, 5, generator=g)
    y_reg = x @ w_reg * 3 + 0.1 * torch.randn(4096, 1, generator=g)
    y_cls = (x @ w_cls).argmax(1)
    train = DataLoader(TensorDataset(x[:3584], y_reg[:3584], y_cls[:3584]), batch_size=64, shuffle=True)

    model, weighting = MultiTaskNet(), UncertaintyWeighting(2)
    optimizer = torch.optim.Adam([*model.parameters(), *weighting.parameters()], lr=3e-3)
    for epoch in range(args.epochs):
        for xb, yr, yc in train:
            pred_reg, logits = model(xb)
            losses = torch.stack([F.mse_loss(pred_reg, yr), F.cross_entropy(logits, yc)])
            loss = weighting(losses)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            pred_reg, logits = model(x[3584:])
            mse = F.mse_loss(pred_reg, y_reg[3584:]).item()
            acc = (logits.argmax(1) == y_cls[3584:]).float().mean().item()
            weights = torch.exp(-weighting.log_vars).tolist()
        print(f"epoch {epoch} loss {loss.item():.3f} weights {weights} mse {mse:.3f} accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
