"""Four-class tabular classification from a DataLoader that never shuffles (broken).

Trains an ``nn.Sequential`` MLP on Gaussian clusters (twelve standardised
features, four balanced classes) with ``nn.CrossEntropyLoss`` and SGD with
momentum; ``main()`` with argparse and a ``--device`` option.

The bug: the samples were generated (as if read from disk) class by class, so the
dataset is sorted by label, and the ``DataLoader`` keeps the default
``shuffle=False``. Every batch holds a single class and the classes arrive in
long runs: the model chases one class at a time and forgets the others (the
last batch loss is near 0 while accuracy stays around 0.6; shuffled: 0.98).
Fix: ``DataLoader(..., shuffle=True)``.

Expected reasons: 7 (shuffle the dataset) and 10 (batches with a single label).

    python examples/unshuffled_sorted.py --epochs 5
    nndoctor check examples/unshuffled_sorted.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def load_data(
    per_class: int, features: int, classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples grouped by class, the way many datasets are stored (one folder per class)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g)
    xs, ys = [], []
    for c in range(classes):
        xs.append(centers[c] + torch.randn(per_class, features, generator=g))
        ys.append(torch.full((per_class,), c))
    x, y = torch.cat(xs), torch.cat(ys)
    return (x - x.mean(0)) / x.std(0), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    x, y = load_data(per_class=400, features=12, classes=4, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=args.batch_size)  # BUG: no shuffle=True

    model = nn.Sequential(
        nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)
    ).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    for epoch in range(args.epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(x.to(device)).argmax(1) == y.to(device)).float().mean().item()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}, accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
