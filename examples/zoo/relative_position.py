"""Relative patch location (Doersch et al. 2015) on procedural scenes: a plain training script.

Each item of the dataset is a pair of patches from one scene — the centre of
a 3x3 grid (with gaps and jitter) and one of its 8 neighbours — labelled with
the neighbour's position. Both patches go through the same trunk. The model
and the patch sampler come from ``nndoctor.zoo.ssl.relative_position``; the
loop below is ordinary PyTorch. Healthy: nndoctor should report no warning and no error.

    python examples/zoo/relative_position.py --steps 300
    nndoctor check examples/zoo/relative_position.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.relative_position import DEFAULT_STEPS, RelativePositionNet, make_batch


class PatchPairs(Dataset):
    """Item i: ((centre patch, neighbour patch), neighbour position) from scene i."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        (centre, neighbour), label = make_batch(self.images[i].unsqueeze(0))
        return (centre.squeeze(0), neighbour.squeeze(0)), label.squeeze(0)


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
    loader = DataLoader(PatchPairs(images), batch_size=args.batch_size, shuffle=True)

    model = RelativePositionNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for (centre, neighbour), y in loader:
            centre, neighbour, y = centre.to(device), neighbour.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(centre, neighbour), y)
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
