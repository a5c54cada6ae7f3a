"""Nonlinear regression with a custom Dataset: a healthy training script.

Trains ``Regressor`` (a custom ``nn.Module``: an MLP with a residual hidden
block) to predict y = sin(2·x0) + x1·x2 − 0.5·x3² + noise from eight features.
The data come from ``SyntheticRegression``, a custom ``Dataset`` that generates
its samples in code and standardises features and target with the training
split's statistics. ``nn.MSELoss``, AdamW with a ``StepLR`` schedule stepped per
epoch, ``main()`` with argparse and a ``--device`` option.

Healthy: nndoctor should report no warning and no error.

    python examples/healthy_regression.py --epochs 8
    nndoctor check examples/healthy_regression.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class SyntheticRegression(Dataset):
    """``n`` samples of a smooth nonlinear function of eight features, plus noise."""

    features = 8

    def __init__(self, n: int, seed: int, stats: tuple[torch.Tensor, ...] | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(n, self.features, generator=g)
        y = torch.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2
        y = y + 0.1 * torch.randn(n, generator=g)
        # Standardise with the training split's statistics (passed in for validation).
        self.stats = stats or (x.mean(0), x.std(0), y.mean(), y.std())
        x_mean, x_std, y_mean, y_std = self.stats
        self.x = (x - x_mean) / x_std
        self.y = ((y - y_mean) / y_std).unsqueeze(1)  # (n, 1), the shape the model outputs

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]


class Regressor(nn.Module):
    def __init__(self, features: int, hidden: int = 64) -> None:
        super().__init__()
        self.inp = nn.Linear(features, hidden)
        self.block = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        h = torch.relu(h + self.block(h))  # residual block
        return self.out(h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train_set = SyntheticRegression(4096, seed=args.seed)
    val_set = SyntheticRegression(512, seed=args.seed + 1, stats=train_set.stats)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=256)

    model = Regressor(SyntheticRegression.features).to(device)
    criterion = nn.MSELoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)

    for epoch in range(args.epochs):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val = sum(
                criterion(model(x.to(device)), y.to(device)).item() * len(x) for x, y in val_loader
            )
        print(f"epoch {epoch + 1}: val MSE {val / len(val_set):.4f} (target variance 1.0)")


if __name__ == "__main__":
    main()
