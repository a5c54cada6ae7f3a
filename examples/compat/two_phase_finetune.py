"""Two-phase training: pre-train a backbone, then freeze it and fit a new head: healthy.

In the manner of the transfer-learning tutorials, with the pre-training done in the
same script: phase 1 trains a small conv ``Backbone`` with a 6-way head on "which
shape is this" (generated 16x16 images of six shapes) with SGD + momentum; phase 2
freezes the backbone (``requires_grad_(False)``, ``eval()``), replaces the head with
a new ``nn.Linear`` for a different task on the same kind of images (is the shape in
the left or right half, and is it large: 4 classes) and trains it with a second
optimiser (Adam over the new head's parameters only). ``DataLoader``s,
``nn.CrossEntropyLoss``, functions per phase, argparse. Prints both phases'
validation accuracy.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/two_phase_finetune.py
    nndoctor check examples/compat/two_phase_finetune.py
"""

import argparse

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, shape labels (6) and position/size labels (4)."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(0, 6, (n,), generator=g)
    large = torch.randint(0, 2, (n,), generator=g)
    right = torch.randint(0, 2, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    images = 0.2 * torch.randn(n, 1, 16, 16, generator=g)
    for i in range(n):
        r = 2.0 + 2.0 * large[i].item()
        cx = (4.5 if right[i] == 0 else 11.5) + torch.randn((), generator=g).item() * 0.5
        cy = 8.0 + torch.randn((), generator=g).item() * 1.5
        dy, dx = yy - cy, xx - cx
        s = shape[i].item()
        mask = [
            dx**2 + dy**2 <= r**2,                            # disc
            (dx.abs() <= r) & (dy.abs() <= r),                # square
            (dx.abs() + dy.abs()) <= r,                       # diamond
            (dx.abs() <= r) & (dy.abs() <= 0.8),              # horizontal bar
            (dy.abs() <= r) & (dx.abs() <= 0.8),              # vertical bar
            ((dx.abs() <= 0.8) | (dy.abs() <= 0.8)) & (dx.abs() <= r) & (dy.abs() <= r),  # cross
        ][s]
        images[i, 0][mask] += 1.0
    return images, shape, 2 * right + large


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x))


def run_epochs(model, loader, optimizer, criterion, epochs, val_x, val_y, phase):
    for epoch in range(epochs):
        model.train()
        if phase == 2:
            model.backbone.eval()  # the frozen backbone stays in inference mode
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            acc = (model(val_x).argmax(1) == val_y).float().mean().item()
        print(f"phase {phase} epoch {epoch + 1}: loss {loss.item():.4f}, val accuracy {acc:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    x, shape, position = make_images(3000, seed=2 * args.seed)
    val_x, val_shape, val_position = make_images(500, seed=2 * args.seed + 1)
    criterion = nn.CrossEntropyLoss()

    # Phase 1: pre-train the backbone on shapes.
    model = Classifier(Backbone(), 6)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(TensorDataset(x, shape), batch_size=64, shuffle=True)
    run_epochs(model, loader, optimizer, criterion, args.pretrain_epochs, val_x, val_shape, phase=1)

    # Phase 2: freeze the backbone, new head for position and size.
    backbone = model.backbone
    backbone.requires_grad_(False)
    model = Classifier(backbone, 4)
    head_optimizer = torch.optim.Adam(model.fc.parameters(), lr=1e-2)
    loader = DataLoader(TensorDataset(x, position), batch_size=64, shuffle=True)
    run_epochs(model, loader, head_optimizer, criterion, args.finetune_epochs, val_x, val_position, phase=2)


if __name__ == "__main__":
    main()
