"""Tabular classification with a small MLP: a healthy training script.

Trains a three-layer ``nn.Sequential`` MLP to tell four classes apart from
sixteen numeric features (Gaussian clusters generated in code, standardised with
the training split's mean and std). ``DataLoader`` over a ``TensorDataset`` with
shuffling, ``nn.CrossEntropyLoss``, Adam without a scheduler, ``main()`` with
argparse and a ``--device`` option.

Healthy: nndoctor should report no warning and no error.

    python examples/healthy_mlp.py --epochs 5
    nndoctor check examples/healthy_mlp.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(n: int, features: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian clusters, one per class, with as many samples in every class."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 1.5
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    x = centers[y] + torch.randn(n, features, generator=g)
    return x, y


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    model.train()
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    features, classes = 16, 4
    x, y = make_data(2560, features, classes, seed=args.seed)
    x_train, y_train, x_val, y_val = x[:2048], y[:2048], x[2048:], y[2048:]
    mean, std = x_train.mean(dim=0), x_train.std(dim=0)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)

    model = nn.Sequential(
        nn.Linear(features, args.hidden),
        nn.ReLU(),
        nn.Linear(args.hidden, args.hidden),
        nn.ReLU(),
        nn.Linear(args.hidden, classes),
    ).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(args.epochs):
        running = 0.0
        for x_batch, y_batch in train_loader:
            x_batch, y_batch = x_batch.to(device), y_batch.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x_batch), y_batch)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(y_batch)
        acc = evaluate(model, val_loader, device)
        print(f"epoch {epoch + 1}: train loss {running / len(x_train):.4f}, val accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
