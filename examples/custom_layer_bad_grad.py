"""Classification with a hand-written Swish activation whose backward is wrong (broken).

Trains ``SwishNet`` (a custom ``nn.Module`` MLP whose activation, ``Swish``, is
a user-written ``torch.autograd.Function``) on Gaussian clusters (sixteen
standardised features, four balanced classes) with ``nn.CrossEntropyLoss``,
SGD with momentum and a ``OneCycleLR`` schedule stepped per batch. Shuffled
``DataLoader`` over a ``TensorDataset``; a top-level training loop.

The bug: Swish is f(x) = x·σ(x), whose derivative is σ(x) + x·σ(x)·(1 − σ(x)).
``SwishFunction.backward`` returns only ``grad_output * σ(x)``, forgetting the
second term, so every gradient that flows through the activation is wrong
(off by up to 0.22 per unit, and of the wrong sign below x ≈ -1.28, where
the true derivative dips below zero). Training still moves, which is what makes
the bug hard to see: the optimizer follows a direction that is not the
gradient of the loss.
Fix: ``return grad_output * (s + x * s * (1 - s))``, and check a custom
Function with ``torch.autograd.gradcheck`` in float64.

Expected reasons: 22 (test any custom layers) and 26 (gradient checking).

    python examples/custom_layer_bad_grad.py
    nndoctor check examples/custom_layer_bad_grad.py
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class SwishFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad_output * s  # BUG: the derivative is s + x * s * (1 - s)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SwishFunction.apply(x)


class SwishNet(nn.Module):
    def __init__(self, features: int, classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(features, hidden),
            Swish(),
            nn.Linear(hidden, hidden),
            Swish(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


torch.manual_seed(0)
features, classes, n, epochs = 16, 4, 2048, 4
centers = torch.randn(classes, features)
y = torch.arange(n) % classes
x = centers[y] + torch.randn(n, features)
x = (x - x.mean(0)) / x.std(0)
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

model = SwishNet(features, classes)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=0.1, total_steps=epochs * len(loader)
)

for epoch in range(epochs):
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(yb)
    print(f"epoch {epoch + 1}: loss {total / n:.4f}")
