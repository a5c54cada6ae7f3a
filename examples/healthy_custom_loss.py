"""Three-arm spiral classification with a focal loss written in plain torch: healthy.

Trains ``SpiralNet`` (a custom ``nn.Module`` MLP) on a seeded three-arm spiral
(2 standardised features, 3 balanced classes) with a focal loss (Lin et al.,
2017) written from ``log_softmax`` and ``gather``, so nndoctor sees no recognised
torch loss. Batches are cut by hand from a fresh permutation every epoch (no
DataLoader); SGD with momentum, no scheduler; a top-level training loop with no
``main()`` and no argparse (``--seed N`` is read straight from ``sys.argv``).

Healthy: nndoctor should report no warning and no error.

    python examples/healthy_custom_loss.py
    nndoctor check examples/healthy_custom_loss.py
"""

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
torch.manual_seed(seed)

# --- data: three interleaved spiral arms, 600 points per arm --------------------------
per_class, classes = 600, 3
t = torch.linspace(0.0, 1.0, per_class).repeat(classes)  # position along the arm
labels = torch.arange(classes).repeat_interleave(per_class)
angle = 4.0 * t + labels * (2 * math.pi / classes) + 0.2 * torch.randn(len(t))
points = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1)
points = (points - points.mean(0)) / points.std(0)


# --- model and loss -----------------------------------------------------------------
class SpiralNet(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss: cross-entropy scaled by (1 - p_true)^gamma, averaged over the batch."""
    log_p = F.log_softmax(logits, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)  # (B,)
    return (-((1 - log_p.exp()) ** gamma) * log_p).mean()


model = SpiralNet()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
batch_size, epochs = 64, 30

# --- training: batches sliced by hand from a fresh permutation ----------------------
for epoch in range(epochs):
    perm = torch.randperm(len(points))
    total = 0.0
    for start in range(0, len(points), batch_size):
        idx = perm[start : start + batch_size]
        x, y = points[idx], labels[idx]
        optimizer.zero_grad()
        loss = focal_loss(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    if (epoch + 1) % 5 == 0:
        with torch.no_grad():
            accuracy = (model(points).argmax(1) == labels).float().mean().item()
        print(f"epoch {epoch + 1}: focal loss {total / len(points):.4f}, accuracy {accuracy:.3f}")
