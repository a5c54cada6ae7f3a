"""Image classification fed raw 0..255 pixel values (broken).

Trains ``QuadrantNet`` (a custom ``nn.Module``: two conv layers, max pooling, a
linear head) to say in which quadrant of a 3x16x16 image a bright square lies.
The images are stored as ``uint8`` the way decoded PNG/JPEG files are, in
``PixelDataset``, a custom ``Dataset``. ``nn.CrossEntropyLoss``, Adam,
``main()`` with argparse and a ``--device`` option.

The bug: ``__getitem__`` converts the pixels with ``.float()`` but never scales
them to 0..1 nor standardises them, so the network sees values in 0..255 with
means around 108 and stds around 43. The first layer's outputs are about a
hundred times too large, the initial loss is about ten times the chance level
ln 4, and the first epoch is spent undoing the scale (train accuracy 0.72 after
one epoch, against 0.89 with scaled, standardised pixels).
Fix: ``image.float() / 255``, then subtract the per-channel mean and divide by the std.

Expected reasons: 1 (check the input data: 0..255 values) and 12 (standardise the features).

    python examples/unnormalized_pixels.py --epochs 3
    nndoctor check examples/unnormalized_pixels.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class PixelDataset(Dataset):
    """uint8 images (3x16x16) with a bright 5x5 square in one of four quadrants."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 4, (n,), generator=g)
        background = 60 + 80 * torch.rand(n, 3, 1, 1, generator=g)  # a dull colour per image
        images = background + 25 * torch.randn(n, 3, 16, 16, generator=g)
        offsets = torch.randint(0, 4, (n, 2), generator=g)
        for i, (label, (dy, dx)) in enumerate(
            zip(self.labels.tolist(), offsets.tolist(), strict=True)
        ):
            top, left = 8 * (label // 2) + dy, 8 * (label % 2) + dx
            images[i, :, top : top + 5, left : left + 5] += 90
        self.images = images.clamp(0, 255).round().to(torch.uint8)  # as decoded from files

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float()  # BUG: still 0..255, never scaled or standardised
        return image, self.labels[index]


class QuadrantNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))  # (B, 16, 8, 8)
        x = self.pool(torch.relu(self.conv2(x)))  # (B, 32, 4, 4)
        return self.fc(x.flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(0)
    device = torch.device(args.device)
    train_loader = DataLoader(PixelDataset(1024, seed=0), batch_size=args.batch_size, shuffle=True)
    model = QuadrantNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(args.epochs):
        correct = total = 0
        for images, labels in train_loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            logits = model(images)
            loss = criterion(logits, labels)
            loss.backward()
            optimizer.step()
            correct += (logits.argmax(1) == labels).sum().item()
            total += len(labels)
        print(
            f"epoch {epoch + 1}: last loss {loss.item():.4f}, train accuracy {correct / total:.3f}"
        )


if __name__ == "__main__":
    main()
