"""Image classification under bfloat16 autocast: a healthy training script.

Trains an ``nn.Sequential`` conv net with global average pooling to tell in which of
three horizontal bands a bright stripe lies, in 1x16x16 images generated in code.
The forward pass runs under ``torch.autocast(dtype=torch.bfloat16)`` and the logits
are cast back to float32 before ``F.cross_entropy`` (so nndoctor sees a loss of a
transformed output and replays the script for its experiments). Adam at 1e-3 fits a
tiny batch slowly but steadily (about 300 steps). ``DataLoader`` over a
``TensorDataset``, ``main()`` with argparse and a ``--device`` option.

Healthy: nndoctor should report no warning and no error.

    python examples/healthy_bf16_cnn.py --epochs 3
    nndoctor check examples/healthy_bf16_cnn.py
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise with a bright band at rows 0-3, 4-7 or 8-11 (the label), standardised."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 1, 16, 16, generator=g) * 0.5
    for c in range(3):
        x[y == c, :, 4 * c : 4 * c + 4, :] += 2.0
    return (x - x.mean()) / x.std(), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    x, y = make_images(2048, args.seed)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 3),
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(args.epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
