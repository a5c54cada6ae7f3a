"""Jigsaw puzzles (Noroozi & Favaro 2016) on procedural scenes: a plain training script.

Each item of the dataset is a scene cut into 3x3 tiles and shuffled by one of
a fixed set of permutations (chosen for large Hamming distance), labelled with
the permutation's index (every scene in every permutation); one shared tower embeds every tile. The model and the
puzzle maker come from ``nndoctor.zoo.ssl.jigsaw``; the loop below is ordinary
PyTorch. Healthy: nndoctor should report no warning and no error.

    python examples/zoo/jigsaw.py --steps 300
    nndoctor check examples/zoo/jigsaw.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.jigsaw import DEFAULT_STEPS, NUM_PERMUTATIONS, JigsawNet, make_batch


class Puzzles(Dataset):
    """Item i: scene i // P shuffled by permutation i % P of the set (tiles [9, 3, 8, 8], i % P).

    Every scene appears once in every permutation per epoch; only the tile jitter is random.
    """

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images) * NUM_PERMUTATIONS

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, permutation = self.images[i // NUM_PERMUTATIONS], i % NUM_PERMUTATIONS
        tiles, _ = make_batch(image.unsqueeze(0), labels=torch.tensor([permutation]))
        return tiles.squeeze(0), permutation


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
    loader = DataLoader(Puzzles(images), batch_size=args.batch_size, shuffle=True)

    model = JigsawNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for tiles, y in loader:
            tiles, y = tiles.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(tiles), y)
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
