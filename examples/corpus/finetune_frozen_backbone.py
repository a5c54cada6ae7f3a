"""Linear probing of a frozen pretrained backbone: a healthy training script.

Stage 1 stands in for downloading a pretrained model: a small conv backbone
(conv-BatchNorm-ReLU, global average pooling) is pretrained on a large labelled
source task, the fine orientation (8 bins) of a coloured bar in 3x12x12 8-bit RGB
images generated in code, normalised by the per-channel mean and std of the source
pixels (on the 0-255 scale, as mmcv-style checkpoints state them); its ``state_dict`` is written to an in-memory ``io.BytesIO`` checkpoint.
Stage 2 is the fine-tuning script proper: a fresh backbone ``load_state_dict``s that
checkpoint, is frozen (``requires_grad_(False)`` and ``eval()``), and a new linear
head learns a downstream task with few labels (is the bar closer to horizontal,
vertical or one of the diagonals; 4 classes, 300 images) on inputs normalised
exactly as in pretraining. Adam for both stages, ``nn.CrossEntropyLoss``,
``DataLoader`` over ``TensorDataset``s, ``main()`` with argparse.

Healthy: nndoctor should report no warning and no error.
"""

import argparse
import io
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_bars(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """8-bit RGB images: a bar of a random colour at one of 8 orientations (the label)."""
    g = torch.Generator().manual_seed(seed)
    angle_bin = torch.randint(0, 8, (n,), generator=g)
    theta = (angle_bin.float() + torch.rand(n, generator=g) * 0.5 - 0.25) * math.pi / 8
    cy, cx = 5.5 + torch.randn(2, n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    dy, dx = yy - cy.view(-1, 1, 1), xx - cx.view(-1, 1, 1)
    across = dx * torch.sin(theta).view(-1, 1, 1) - dy * torch.cos(theta).view(-1, 1, 1)
    along = dx * torch.cos(theta).view(-1, 1, 1) + dy * torch.sin(theta).view(-1, 1, 1)
    bar = torch.exp(-across**2 / 1.2) * (along.abs() < 4.5).float()
    colour = 0.4 + 0.6 * torch.rand(n, 3, 1, 1, generator=g)
    images = 0.15 + bar.unsqueeze(1) * colour + 0.1 * torch.randn(n, 3, 12, 12, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), angle_bin


def make_backbone() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def train(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, epochs: int) -> None:
    criterion = nn.CrossEntropyLoss()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def pretrain(seed: int, epochs: int) -> tuple[io.BytesIO, torch.Tensor, torch.Tensor]:
    """The 'pretrained checkpoint' and the normalisation it was trained with."""
    images, labels = make_bars(4000, seed + 100)
    images = images.float()
    mean, std = images.mean(dim=(0, 2, 3), keepdim=True), images.std(dim=(0, 2, 3), keepdim=True)
    backbone = make_backbone()
    model = nn.Sequential(backbone, nn.Linear(32, 8))
    loader = DataLoader(TensorDataset((images - mean) / std, labels), batch_size=64, shuffle=True)
    train(model, loader, torch.optim.Adam(model.parameters(), lr=3e-3), epochs)
    checkpoint = io.BytesIO()
    torch.save(backbone.state_dict(), checkpoint)
    checkpoint.seek(0)
    return checkpoint, mean, std


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    checkpoint, mean, std = pretrain(args.seed, args.pretrain_epochs)

    # Fine-tuning: a frozen pretrained backbone and a new head for the downstream task.
    backbone = make_backbone()
    backbone.load_state_dict(torch.load(checkpoint))
    backbone.requires_grad_(False)
    backbone.eval()
    head = nn.Linear(32, 4)
    model = nn.Sequential(backbone, head)

    images, fine = make_bars(1300, args.seed)
    x = (images.float() - mean) / std
    y = fine // 2  # coarse orientation: horizontal, one diagonal, vertical, the other
    x_train, y_train, x_val, y_val = x[:300], y[:300], x[300:], y[300:]
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    for epoch in range(0, args.epochs, 5):
        head.train()
        train(model, loader, optimizer, epochs=5)
        head.eval()
        print(f"epoch {epoch + 5}: downstream val accuracy {accuracy(model, x_val, y_val):.3f}")


if __name__ == "__main__":
    main()
