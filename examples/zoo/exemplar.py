"""Exemplar CNN (Dosovitskiy et al. 2014) on procedural scenes: a plain training script.

Every seed scene is its own surrogate class; each item of the dataset is a
fresh random view of one seed (zoom, rotation, shift, flip, colour jitter),
labelled with the seed's index. The model and the augmentation come from
``nndoctor.zoo.ssl.exemplar``; the loop below is ordinary PyTorch.
Healthy: nndoctor should report no warning and no error.

    python examples/zoo/exemplar.py --steps 400
    nndoctor check examples/zoo/exemplar.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.exemplar import DEFAULT_STEPS, NUM_SURROGATE_CLASSES, ExemplarNet, augment

VIEWS_PER_EPOCH = 16  # views of every seed per pass over the dataset


class SurrogateViews(Dataset):
    """Item i is a new random view of seed i % N, labelled i % N."""

    def __init__(self, seeds: torch.Tensor) -> None:
        self.seeds = seeds

    def __len__(self) -> int:
        return len(self.seeds) * VIEWS_PER_EPOCH

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        label = i % len(self.seeds)
        return augment(self.seeds[label].unsqueeze(0)).squeeze(0), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    seeds, _ = make_scenes(NUM_SURROGATE_CLASSES, seed=args.seed)
    loader = DataLoader(SurrogateViews(seeds), batch_size=args.batch_size, shuffle=True)

    model = ExemplarNet().to(device)
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
