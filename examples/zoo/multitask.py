"""Multi-task self-supervision (Doersch & Zisserman 2017) on procedural scenes: a plain script.

Each item of the dataset holds one sample per pretext task from the same
scene: a rotated copy (4-way rotation), a centre/neighbour patch pair (8-way
relative position) and the greyscale scene with its colour bins
(colorization). One shared trunk feeds three heads; the loss is the sum of
the three cross-entropies. The model, the transforms and the loss come from
``nndoctor.zoo.ssl.multitask``; the loop below is ordinary PyTorch.
Healthy: nndoctor should report no warning and no error.

    python examples/zoo/multitask.py --steps 300
    nndoctor check examples/zoo/multitask.py
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, Dataset

from nndoctor.subject import move_to
from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl import colorization, relative_position, rotation
from nndoctor.zoo.ssl.multitask import DEFAULT_STEPS, MultiTaskNet, greyscale, multitask_loss


class PretextSamples(Dataset):
    """Item i: {task: (inputs, label)} for rotation, relative position and colorization."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        x = self.images[i].unsqueeze(0)  # [1, 3, 32, 32]
        quarter_turns = int(torch.randint(0, rotation.NUM_ROTATIONS, ()))
        (centre, neighbour), position = relative_position.make_batch(x)
        bins = colorization.quantise_ab(colorization.scenes_to_lab(x))
        return {
            "rotation": (rotation.rotate(x, quarter_turns)[0], quarter_turns),
            "relative_position": ((centre[0], neighbour[0]), position[0]),
            "colorization": (greyscale(x)[0], bins[0]),
        }


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
    loader = DataLoader(PretextSamples(images), batch_size=args.batch_size, shuffle=True)

    model = MultiTaskNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    model.train()
    step = 0
    while step < args.steps:
        for batch in loader:
            batch = move_to(batch, device)
            optimizer.zero_grad()
            loss = multitask_loss(model, batch)  # sum of the three heads' cross-entropies
            loss.backward()
            optimizer.step()
            step += 1
            if step == 1 or step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
