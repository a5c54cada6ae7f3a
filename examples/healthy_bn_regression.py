"""Regression with a BatchNorm MLP, Huber loss and Nesterov SGD: a healthy training script.

Trains an ``nn.Sequential`` MLP (Linear-BatchNorm-ReLU-Dropout blocks) to predict a
standardised target that is linear in twelve features plus a sine of the first.
``DataLoader`` over a ``TensorDataset`` with shuffling, ``nn.HuberLoss``, SGD with
Nesterov momentum 0.9, weight decay and a cosine schedule stepped per epoch, a
validation pass in ``eval()`` under ``torch.no_grad()`` every epoch, ``main()`` with
argparse.

Healthy: nndoctor should report no warning and no error. The rate 0.05 lies above the
range test's cautious proposal but well below where its loss rises, and it trains
(validation Huber loss about 0.005 after 50 epochs).

    python examples/healthy_bn_regression.py --epochs 50
    nndoctor check examples/healthy_bn_regression.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    w = torch.randn(12, generator=g)
    y = x @ w + 0.3 * torch.sin(3 * x[:, 0]) + 0.1 * torch.randn(n, generator=g)
    return x, ((y - y.mean()) / y.std()).unsqueeze(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    x, y = make_data(4096, args.seed)
    train = DataLoader(TensorDataset(x[:3500], y[:3500]), batch_size=128, shuffle=True)
    model = nn.Sequential(
        nn.Linear(12, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(128, 128), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Linear(128, 1),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4, nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    criterion = nn.HuberLoss()

    for epoch in range(args.epochs):
        model.train()
        for xb, yb in train:
            optimizer.zero_grad()
            criterion(model(xb), yb).backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            val = criterion(model(x[3500:]), y[3500:]).item()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1}: validation Huber loss {val:.4f}")


if __name__ == "__main__":
    main()
