"""Binary classification whose gradients are never reset between steps (broken).

Trains an ``nn.Sequential`` MLP to separate two interleaved half-moons
(2 standardised features) with ``nn.BCEWithLogitsLoss`` and SGD with momentum.
Batches are cut by hand from a fresh permutation each epoch (no DataLoader); a
top-level training loop.

The bug: the loop never calls ``optimizer.zero_grad()``. ``loss.backward()``
adds to ``.grad``, so the gradient used at step k is the sum of the gradients of
all k batches so far: the effective learning rate grows with every step, the
updates stop pointing downhill for the current batch, and the loss climbs and
oscillates instead of falling.
Fix: call ``optimizer.zero_grad()`` before ``loss.backward()`` in every step.

Expected reasons: 26 (the gradient applied is not the gradient of the loss) and/or
36 (updates far too large for the learning rate).

    python examples/no_zero_grad.py
    nndoctor check examples/no_zero_grad.py
"""

import math

import torch
from torch import nn

torch.manual_seed(0)

# --- two half-moons, 1000 points each ------------------------------------------------
n = 1000
angle = torch.rand(2 * n) * math.pi
label = torch.cat([torch.zeros(n), torch.ones(n)])
x = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
x[n:] = 1 - x[n:] + torch.tensor([0.0, 0.5])  # the second moon, flipped and shifted
x = x + 0.1 * torch.randn_like(x)
x = (x - x.mean(0)) / x.std(0)

model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
batch_size = 50

for epoch in range(10):
    perm = torch.randperm(len(x))
    total = 0.0
    for start in range(0, len(x), batch_size):
        idx = perm[start : start + batch_size]
        logits = model(x[idx]).squeeze(1)
        loss = criterion(logits, label[idx])
        loss.backward()  # BUG: no optimizer.zero_grad(), gradients pile up
        optimizer.step()
        total += loss.item() * len(idx)
    with torch.no_grad():
        accuracy = ((model(x).squeeze(1) > 0).float() == label).float().mean().item()
    print(f"epoch {epoch + 1}: loss {total / len(x):.4f}, accuracy {accuracy:.3f}")
