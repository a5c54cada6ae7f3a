"""Dense detection scoring with the focal loss and a prior-probability bias: healthy.

In the manner of the classification subnet of RetinaNet and of the many ports of its focal
loss: images with a few bright blobs, a per-location binary target map (about one
location in a hundred positive), a small conv trunk and a 3x3 conv head whose bias is
initialised to ``-log((1 - pi) / pi)`` with ``pi = 0.01`` so that every location starts
out predicting "background" with probability 0.99, the sigmoid focal loss (alpha 0.25,
gamma 2) summed over locations and divided by the number of positives, SGD with momentum
and weight decay. Prints the loss and the recall of the positives at threshold 0.5.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/focal_dense_detection.py
    nndoctor check examples/wild/focal_dense_detection.py
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

PRIOR = 0.01


def make_data(n: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(n, 1, size, size, generator=g) * 0.5
    targets = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(2):
            r, c = torch.randint(2, size - 2, (2,), generator=g).tolist()
            images[i, 0, r - 1 : r + 2, c - 1 : c + 2] += 2.0
            targets[i, 0, r, c] = 1.0
    return images, targets


class DenseScorer(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU()
        )
        self.cls_logits = nn.Conv2d(width, 1, 3, padding=1)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, 1, H, W) -> (batch, 1, H, W)
        return self.cls_logits(self.trunk(x))


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * ce).sum() / targets.sum().clamp(min=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    images, targets = make_data(640, 16, g)
    train = DataLoader(TensorDataset(images[:512], targets[:512]), batch_size=32, shuffle=True)

    model = DenseScorer()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    for epoch in range(args.epochs):
        model.train()
        for xb, tb in train:
            loss = sigmoid_focal_loss(model(xb), tb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            hits = (torch.sigmoid(model(images[512:])) > 0.5) & (targets[512:] > 0)
            recall = hits.sum().item() / targets[512:].sum().item()
        print(f"epoch {epoch} loss {loss.item():.4f} recall {recall:.3f}")


if __name__ == "__main__":
    main()
