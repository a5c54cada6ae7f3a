"""Rotation prediction (Gidaris et al. 2018) on procedural scenes: a plain training script.

Each item of the dataset is one scene rotated by 0, 90, 180 or 270 degrees,
labelled with the rotation; a conv net learns to tell which way is up.
The model and the rotation come from ``nndoctor.zoo.ssl.rotation``; the loop
below is ordinary PyTorch. Healthy: nndoctor should report no warning and no error.

    python examples/zoo/rotation.py --steps 300
    nndoctor check examples/zoo/rotation.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.rotation import DEFAULT_STEPS, NUM_ROTATIONS, RotationNet, rotate


class RotatedScenes(Dataset):
    """Item i is scene i // 4 rotated by (i % 4) quarter turns, labelled i % 4."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images) * NUM_ROTATIONS

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, quarter_turns = self.images[i // NUM_ROTATIONS], i % NUM_ROTATIONS
        return rotate(image.unsqueeze(0), quarter_turns).squeeze(0), quarter_turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scenes", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    images, _ = make_scenes(args.scenes, seed=args.seed)  # object labels unused: self-supervised
    loader = DataLoader(RotatedScenes(images), batch_size=args.batch_size, shuffle=True)

    model = RotationNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
