"""Image classification with a small conv net and BatchNorm: a healthy training script.

Trains ``SmallCNN`` (a custom ``nn.Module``: two conv-BatchNorm-ReLU blocks,
global average pooling, a linear head) to tell four stripe patterns apart
(horizontal, vertical, diagonal, checkerboard) in 3x16x16 colour images generated
in code with random frequency, phase, tint and noise. Pixels are scaled to 0..1
and standardised per channel with the training split's statistics.
``DataLoader`` over a ``TensorDataset`` with shuffling, ``F.cross_entropy``,
SGD with momentum and a cosine learning-rate schedule stepped per batch,
``main()`` with argparse and a ``--device`` option.

Healthy: nndoctor should report no warning and no error.

    python examples/healthy_cnn.py --epochs 3
    nndoctor check examples/healthy_cnn.py
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

CLASSES = ("horizontal", "vertical", "diagonal", "checkerboard")


def make_images(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stripe patterns in 0..1, shape (n, 3, size, size), and their class labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    labels = labels[torch.randperm(n, generator=g)]
    coords = torch.arange(size, dtype=torch.float32)
    rows, cols = coords.view(1, size, 1), coords.view(1, 1, size)
    freq = (0.5 + torch.rand(n, 1, 1, generator=g)) * (2 * math.pi / 6)
    phase = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    waves = torch.stack(
        [
            torch.sin(freq * rows + phase).expand(n, size, size),
            torch.sin(freq * cols + phase).expand(n, size, size),
            torch.sin(freq * (rows + cols) / math.sqrt(2) + phase),
            torch.sin(freq * rows + phase) * torch.sin(freq * cols + phase),
        ],
        dim=1,
    )  # (n, 4, size, size)
    pattern = waves[torch.arange(n), labels]  # (n, size, size)
    tint = 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)
    images = (
        0.5 + 0.4 * tint * pattern.unsqueeze(1) + 0.1 * torch.randn(n, 3, size, size, generator=g)
    )
    return images.clamp(0, 1), labels


class SmallCNN(nn.Module):
    def __init__(self, channels: int = 16, classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(2 * channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 2C, H/2, W/2)
        x = x.mean(dim=(2, 3))  # global average pooling -> (B, 2C)
        return self.head(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    images, labels = make_images(1280, 16, seed=args.seed)
    x_train, y_train, x_val, y_val = images[:1024], labels[:1024], images[1024:], labels[1024:]
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=256)

    model = SmallCNN().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.epochs * len(train_loader)
    )

    for epoch in range(args.epochs):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            correct = sum(
                (model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in val_loader
            )
        print(
            f"epoch {epoch + 1}: last loss {loss.item():.4f}, val accuracy {correct / len(x_val):.3f}"
        )


if __name__ == "__main__":
    main()
