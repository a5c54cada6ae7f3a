"""Context encoder (Pathak et al. 2016) on procedural scenes: a plain training script.

Each item of the dataset is a scene whose centre quarter is filled with the
mean, and that centre as target; an encoder-decoder with a channel-wise fully
connected bottleneck learns to paint it back (L2 loss). The model and the
masking come from ``nndoctor.zoo.ssl.context_encoder``; the loop below is
ordinary PyTorch. Healthy: nndoctor should report no warning and no error.

    python examples/zoo/context_encoder.py --steps 300
    nndoctor check examples/zoo/context_encoder.py
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.context_encoder import DEFAULT_STEPS, ContextEncoder, make_batch


class MaskedScenes(Dataset):
    """Item i: (scene i with its centre masked, the centre)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        masked, centre = make_batch(self.images[i].unsqueeze(0))
        return masked.squeeze(0), centre.squeeze(0)


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
    loader = DataLoader(MaskedScenes(images), batch_size=args.batch_size, shuffle=True)

    model = ContextEncoder().to(device)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for masked, centre in loader:
            masked, centre = masked.to(device), centre.to(device)
            optimizer.zero_grad()
            loss = criterion(model(masked), centre)
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
