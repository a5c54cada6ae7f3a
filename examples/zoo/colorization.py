"""Colorization (Zhang et al. 2016) on procedural scenes: a plain training script.

Each item of the dataset is the lightness channel L of a scene (CIE Lab) and,
as target, its colours quantised into ab bins on a 8x8 grid; the network
classifies every cell's colour bin (cross-entropy with the paper's class
rebalancing weights). The model
and the colour conversion come from ``nndoctor.zoo.ssl.colorization``; the
loop below is ordinary PyTorch. Healthy: nndoctor should report no warning and no error.

    python examples/zoo/colorization.py --steps 300
    nndoctor check examples/zoo/colorization.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.colorization import (
    DEFAULT_STEPS,
    ColorizationNet,
    ab_class_weights,
    make_batch,
)


class LightnessAndColour(Dataset):
    """Item i: (standardised L of scene i [1, 32, 32], ab bins [8, 8])."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        lightness, bins = make_batch(self.images[i].unsqueeze(0))
        return lightness.squeeze(0), bins.squeeze(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scenes", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    images, _ = make_scenes(args.scenes, seed=args.seed)  # object labels unused: self-supervised
    loader = DataLoader(LightnessAndColour(images), batch_size=args.batch_size, shuffle=True)

    model = ColorizationNet().to(device)
    # Rare colours weigh more (the paper's class rebalancing): sky and ground dominate.
    criterion = nn.CrossEntropyLoss(weight=ab_class_weights().to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for lightness, bins in loader:
            lightness, bins = lightness.to(device), bins.to(device)
            optimizer.zero_grad()
            loss = criterion(model(lightness), bins)  # logits [B, Q, 8, 8] vs bins [B, 8, 8]
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
