"""Tabular classification with a learning rate a hundred times too high (broken).

Trains ``TabularNet`` (a custom ``nn.Module`` MLP with functional ReLUs) on
Gaussian clusters (ten standardised features, three balanced classes) with
``nn.CrossEntropyLoss`` and Adam with a ``StepLR`` schedule. Shuffled ``DataLoader`` over a ``TensorDataset``; ``main()`` with
argparse and a ``--device`` option.

The bug: the default ``--lr`` is 0.5, a value copied from an SGD recipe, but the
optimizer is Adam, whose steps are about ``lr`` in size for every weight
whatever the gradient's scale. Each step moves the weights by far more than
their own magnitude (update/weight ratios around 1 instead of ~1e-3), the
logits explode, and the loss jumps to over a hundred times its starting value
within the first steps: after five epochs the train accuracy is about 0.86,
against 0.97 with ``--lr 1e-3``, although the schedule halves the rate every
two epochs.
Fix: ``--lr 1e-3`` (the usual starting point for Adam), or a learning-rate range test.

Expected reasons: 36 (learning rate too high).

    python examples/high_lr.py --epochs 5
    nndoctor check examples/high_lr.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TabularNet(nn.Module):
    def __init__(self, features: int, classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.out(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument(
        "--lr", type=float, default=0.5
    )  # BUG: an SGD learning rate, used with Adam
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    features, classes, n = 10, 3, 1536
    centers = torch.randn(classes, features)
    y = torch.arange(n) % classes
    x = centers[y] + torch.randn(n, features)
    x = (x - x.mean(0)) / x.std(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)

    model = TabularNet(features, classes).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    for epoch in range(args.epochs):
        total = correct = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            logits = model(xb)
            loss = criterion(logits, yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
        scheduler.step()
        print(f"epoch {epoch + 1}: loss {total / n:.4f}, train accuracy {correct / n:.3f}")


if __name__ == "__main__":
    main()
