"""Multi-label tagging that trains on the same batch at every step (broken).

Trains an ``nn.Sequential`` MLP to predict three independent binary tags from
twenty-four standardised features (each tag is a noisy linear rule of the
features) with ``F.binary_cross_entropy_with_logits`` and AdamW, from a
``DataLoader`` over a ``TensorDataset``; a top-level training loop.

The bug: ``next(iter(train_loader))`` inside the loop creates a fresh iterator
every step, and with the loader's default ``shuffle=False`` a fresh iterator
always starts with the same first 32 samples. The model sees one batch over and
over: the training loss falls towards 0 while the tag accuracy on held-out data
stays near 0.76 (0.95 when the loader is iterated properly).
Fix: iterate the loader (``for x, y in train_loader:``), or create the iterator
once per epoch.

Expected reasons: 1 (check the input data: the same batch repeated) and 3 (check
the data loader).

    python examples/repeated_batch.py
    nndoctor check examples/repeated_batch.py
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
features, tags, n = 24, 3, 3000
x = torch.randn(n, features)
rules = torch.randn(features, tags)
y = ((x @ rules + 0.5 * torch.randn(n, tags)) > 0).float()  # (n, 3) independent binary tags
x_train, y_train, x_val, y_val = x[:2500], y[:2500], x[2500:], y[2500:]
train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32)

model = nn.Sequential(nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, tags))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
steps_per_epoch = len(train_loader)

for epoch in range(5):
    for _ in range(steps_per_epoch):
        xb, yb = next(
            iter(train_loader)
        )  # BUG: a new iterator every step -> always the first batch
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(xb), yb)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        val_accuracy = ((model(x_val) > 0).float() == y_val).float().mean().item()
    print(f"epoch {epoch + 1}: train loss {loss.item():.4f}, val tag accuracy {val_accuracy:.3f}")
