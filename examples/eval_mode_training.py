"""Bar-orientation classification trained with the model left in eval mode (broken).

Trains ``BarNet`` (a custom ``nn.Module``: conv-BatchNorm-ReLU blocks, dropout
before a linear head, ``log_softmax`` output) to tell the orientation of a
noisy bar (0°, 45°, 90°, 135°) in 1x16x16 images generated in code and
standardised. ``nn.NLLLoss`` on log-probabilities, Adam, shuffled
``DataLoader`` over a ``TensorDataset``; ``main()`` with argparse and a
``--device`` option.

The bug: ``evaluate`` switches the model to ``eval()`` and leaves it there. The
script reports the accuracy of the untrained model before training starts and
never calls ``model.train()`` afterwards, so every training step runs in eval
mode: BatchNorm normalises with its initial running statistics (mean 0,
variance 1) instead of the batch's and never updates them, and dropout is off.
The network trains without the normalisation and regularisation it was built
with, and the BatchNorm statistics used at test time are never learned. On
these easy bars it still fits; on real data the missing normalisation and
dropout show up as slower training and overfitting, and nothing in the printed
loss says why.
Fix: call ``model.train()`` at the start of every epoch (and restore the mode
in ``evaluate``).

Expected reasons: 32 (train vs test mode).

    python examples/eval_mode_training.py --epochs 3
    nndoctor check examples/eval_mode_training.py
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_bars(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 1, size, size) with one bright bar through the centre at one of four angles."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    labels = labels[torch.randperm(n, generator=g)]
    theta = labels.float() * (math.pi / 4) + 0.1 * torch.randn(n, generator=g)
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = coords.view(1, size, 1), coords.view(1, 1, size)
    shift = torch.randn(n, 1, 1, generator=g)
    # distance of each pixel from the line through the centre at angle theta
    dist = (xx * torch.sin(theta).view(n, 1, 1) - yy * torch.cos(theta).view(n, 1, 1) - shift).abs()
    images = torch.exp(-(dist**2)) + 0.3 * torch.randn(n, size, size, generator=g)
    images = images.unsqueeze(1)
    return (images - images.mean()) / images.std(), labels


class BarNet(nn.Module):
    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(channels * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.block1(x), 2)  # (B, C, 8, 8)
        x = F.max_pool2d(self.block2(x), 2)  # (B, C, 4, 4)
        return F.log_softmax(self.fc(self.dropout(x.flatten(1))), dim=1)


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()  # BUG: the caller never switches back to train()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
    return correct / len(loader.dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    images, labels = make_bars(1280, 16, seed=0)
    train_loader = DataLoader(
        TensorDataset(images[:1024], labels[:1024]), batch_size=32, shuffle=True
    )
    val_loader = DataLoader(TensorDataset(images[1024:], labels[1024:]), batch_size=256)

    model = BarNet().to(device)
    criterion = nn.NLLLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(f"accuracy before training: {evaluate(model, val_loader, device):.3f}")

    for epoch in range(args.epochs):
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        print(
            f"epoch {epoch + 1}: last loss {loss.item():.4f}, val accuracy {evaluate(model, val_loader, device):.3f}"
        )


if __name__ == "__main__":
    main()
