"""Deep MLP classifier whose initialisation kills every ReLU (broken).

Trains ``DeepMLP`` (a custom ``nn.Module``: four hidden ``Linear``+``ReLU``
layers of width 128) on Gaussian clusters (twenty standardised features, six
balanced classes) with ``nn.CrossEntropyLoss`` and SGD with momentum.
Shuffled ``DataLoader`` over a ``TensorDataset``; ``main()`` with argparse and
a ``--device`` option.

The bug: ``init_weights`` copies the focal-loss "prior" bias initialisation
(RetinaNet: b = -log((1 - π) / π) ≈ -4.6 for π = 0.01, meant for the final
classification layer only) onto every ``Linear`` layer. With pre-activations of
standard deviation ≈ 1.4 and a bias of -4.6, almost no ReLU ever fires: the
hidden activations are all zero from the first layer on, no gradient reaches
the hidden weights, and the loss stays at chance, ln 6 ≈ 1.79.
Fix: zero biases for hidden layers (``nn.init.zeros_``); use the prior bias only
on the output layer of a sigmoid/focal-loss detector.

Expected reasons: 28 (weight initialisation) and 35 (dead ReLUs, vanishing gradients).

    python examples/dead_relu_init.py --epochs 3
    nndoctor check examples/dead_relu_init.py
"""

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

PRIOR = 0.01


class DeepMLP(nn.Module):
    def __init__(self, features: int, classes: int, hidden: int = 128, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.hidden = nn.Sequential(*layers)
        self.classifier = nn.Linear(hidden, classes)
        self.apply(self.init_weights)

    @staticmethod
    def init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            # BUG: the focal-loss prior bias belongs on the last layer only, not on every layer.
            nn.init.constant_(module.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    features, classes, n = 20, 6, 3000
    centers = torch.randn(classes, features) * 1.5
    y = torch.arange(n) % classes
    x = centers[y] + torch.randn(n, features)
    x = (x - x.mean(0)) / x.std(0)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

    model = DeepMLP(features, classes).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    for epoch in range(args.epochs):
        total = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        print(f"epoch {epoch + 1}: loss {total / n:.4f} (chance {math.log(classes):.4f})")


if __name__ == "__main__":
    main()
