"""Learning to count (Noroozi et al. 2017) on procedural scenes: a plain training script.

Each item of the dataset is a 64 px scene x, downsampled (D x), cut into its
four 32 px quadrant tiles (T_j x), and another scene y (downsampled). The count vector of
the whole must equal the sum of the tiles' counts, and differ from the counts
of the other scene by a margin. The model, the transforms and the loss come
from ``nndoctor.zoo.ssl.counting``; the loop below is ordinary PyTorch.
Healthy: nndoctor should report no warning and no error.

    python examples/zoo/counting.py --steps 300
    nndoctor check examples/zoo/counting.py
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, Dataset

from nndoctor.subject import move_to
from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl.counting import (
    DEFAULT_STEPS,
    IMAGES_PER_BATCH,
    SCENE_SIZE,
    CountingNet,
    counting_loss,
    downsample,
    tile,
)


class CountingPairs(Dataset):
    """Item i: {"image": D(x_i), "tiles": T(x_i), "other": D(x_j)} with a random j != i."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = (i + int(torch.randint(1, len(self.images), ()))) % len(self.images)
        x, y = self.images[i].unsqueeze(0), self.images[j].unsqueeze(0)
        return {"image": downsample(x)[0], "tiles": tile(x)[0], "other": downsample(y)[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=IMAGES_PER_BATCH)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scenes", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    # 64 px scenes: the downsampled whole and each quadrant tile are 32 px.
    images, _ = make_scenes(args.scenes, seed=args.seed, size=SCENE_SIZE)  # labels unused
    loader = DataLoader(CountingPairs(images), batch_size=args.batch_size, shuffle=True)

    model = CountingNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for batch in loader:
            batch = move_to(batch, device)
            optimizer.zero_grad()
            # |phi(Dx) - sum_j phi(T_j x)|^2 + max(0, M - |phi(Dy) - sum_j phi(T_j x)|^2)
            loss = counting_loss(model, batch)
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
