"""Image classification with gradient accumulation: a healthy training script.

A small ``nn.Sequential`` conv net (conv-BatchNorm-ReLU blocks) learns in which
quadrant of a 1x12x12 image a bright blob lies (four classes; images generated in
code, one class after another, standardised). A map-style ``Dataset`` adds label-preserving augmentation (pixel noise
and a random contrast), a shuffling ``DataLoader`` yields micro-batches of 16, and the
loss is divided by ``accum_steps`` so that the optimizer steps once every four
micro-batches (and on the last, partial group of an epoch). SGD with Nesterov momentum
and a ``OneCycleLR`` schedule stepped per optimizer step; ``nn.CrossEntropyLoss``;
``main()`` with argparse.

Healthy: nndoctor should report no warning and no error.
"""

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


def make_blobs(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images with a Gaussian blob in quadrant 0 (top left) .. 3 (bottom right)."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(12.0)
    xs, ys = [], []
    for label in range(4):
        top, left = divmod(label, 2)
        r = top * 6 + 1 + torch.rand(n_per_class, generator=g) * 4
        c = left * 6 + 1 + torch.rand(n_per_class, generator=g) * 4
        d2 = (grid.view(1, 12, 1) - r.view(-1, 1, 1)) ** 2 + (grid.view(1, 1, 12) - c.view(-1, 1, 1)) ** 2
        img = torch.exp(-d2 / 3.0) + 0.3 * torch.randn(n_per_class, 12, 12, generator=g)
        xs.append(img.unsqueeze(1))
        ys.append(torch.full((n_per_class,), label))
    x = torch.cat(xs)
    return (x - x.mean()) / x.std(), torch.cat(ys)


class BlobDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, train: bool) -> None:
        self.images, self.labels, self.train = images, labels, train

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i]
        if self.train:
            x = x * (0.8 + 0.4 * torch.rand(1)) + 0.1 * torch.randn_like(x)
        return x, self.labels[i]


def evaluate(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    model.train()
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--accum-steps", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x, y = make_blobs(600, args.seed)
    is_val = torch.rand(len(y), generator=torch.Generator().manual_seed(args.seed + 1)) < 0.2
    train_set = BlobDataset(x[~is_val], y[~is_val], train=True)
    val_set = BlobDataset(x[is_val], y[is_val], train=False)
    train_loader = DataLoader(train_set, batch_size=16, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=200)

    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 3 * 3, 32), nn.ReLU(), nn.Linear(32, 4),
    )
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(len(train_loader) / args.accum_steps)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.1, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )

    for epoch in range(args.epochs):
        optimizer.zero_grad()
        running = 0.0
        for i, (xb, yb) in enumerate(train_loader):
            loss = criterion(model(xb), yb) / args.accum_steps
            loss.backward()
            running += loss.item()
            if (i + 1) % args.accum_steps == 0 or i + 1 == len(train_loader):
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        acc = evaluate(model, val_loader)
        print(f"epoch {epoch + 1}: train loss {running * args.accum_steps / len(train_loader):.4f}"
              f"  val accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
