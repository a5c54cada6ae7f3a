"""Denoising autoencoder (Vincent et al. 2008) on procedural scenes: a plain training script.

Each item of the dataset is a scene with 30% of its pixels destroyed (set to
the mean) and the clean scene as target; a conv autoencoder learns to restore
it under a mean squared error. The model and the corruption come from
``nndoctor.zoo.ssl.denoising``; the loop below is ordinary PyTorch.
Healthy: nndoctor should report no warning and no error.

    python examples/zoo/denoising.py --steps 300
    nndoctor check examples/zoo/denoising.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.denoising import DEFAULT_STEPS, DenoisingAutoencoder, corrupt


class CorruptedScenes(Dataset):
    """Item i: (scene i with masking noise, scene i)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        clean = self.images[i]
        return corrupt(clean.unsqueeze(0)).squeeze(0), clean


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
    loader = DataLoader(CorruptedScenes(images), batch_size=args.batch_size, shuffle=True)

    model = DenoisingAutoencoder().to(device)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for noisy, clean in loader:
            noisy, clean = noisy.to(device), clean.to(device)
            optimizer.zero_grad()
            loss = criterion(model(noisy), clean)
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
