"""Split-brain autoencoder (Zhang et al. 2017) on procedural scenes: a plain training script.

Each item of the dataset is a scene split into its Lab channel halves — L and
ab — with each half's quantised values as the other half's target. Two
half-width sub-networks predict ab bins from L and L bins from ab; the loss is
the sum of both cross-entropies. The model, the conversion and the loss come
from ``nndoctor.zoo.ssl.split_brain``; the loop below is ordinary PyTorch.
Healthy: nndoctor should report no warning and no error.

    python examples/zoo/split_brain.py --steps 300
    nndoctor check examples/zoo/split_brain.py
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, Dataset

from nndoctor.subject import move_to
from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.split_brain import (
    DEFAULT_STEPS,
    SplitBrainNet,
    make_batch,
    split_brain_loss,
)


class ChannelHalves(Dataset):
    """Item i: ((L [1, 32, 32], ab [2, 32, 32]), (ab bins [8, 8], L bins [8, 8])) of scene i."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        (lightness, ab), (ab_bins, l_bins) = make_batch(self.images[i].unsqueeze(0))
        return (lightness[0], ab[0]), (ab_bins[0], l_bins[0])


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
    loader = DataLoader(ChannelHalves(images), batch_size=args.batch_size, shuffle=True)

    model = SplitBrainNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for batch in loader:
            batch = move_to(batch, device)
            optimizer.zero_grad()
            # CE(F1(L), ab bins) + CE(F2(ab), L bins)
            loss = split_brain_loss(model, batch)
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
