"""Five-class tabular classification with softmax applied before CrossEntropyLoss (broken).

Trains an ``nn.Sequential`` MLP on Gaussian clusters (twenty standardised
features, five balanced classes) with ``nn.CrossEntropyLoss`` and Adam, from a
shuffled ``DataLoader`` over a ``TensorDataset``; a top-level training loop.

The bug: the model ends in ``nn.Softmax``, so ``CrossEntropyLoss`` receives
probabilities and applies its own log-softmax on top. Its inputs are squeezed
into [0, 1], the gradients shrink, and the loss cannot fall below
ln(1 + 4/e) ≈ 0.90 however well the model separates the classes.
Fix: drop the ``nn.Softmax`` (apply it only at prediction time).

Expected reasons: 19 (verify the loss input).

    python examples/softmax_before_ce.py
    nndoctor check examples/softmax_before_ce.py
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
features, classes, n = 20, 5, 2000

centers = torch.randn(classes, features) * 1.5
y = torch.arange(n) % classes
x = centers[y] + torch.randn(n, features)
x = (x - x.mean(0)) / x.std(0)
loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True)

model = nn.Sequential(
    nn.Linear(features, 64),
    nn.ReLU(),
    nn.Linear(64, classes),
    nn.Softmax(dim=1),  # BUG: CrossEntropyLoss expects raw logits
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

for epoch in range(10):
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
    print(f"epoch {epoch + 1}: loss {total / n:.4f}")
