"""A GAN on a ring of eight Gaussians, two optimisers: a healthy training script.

Trains a generator (``nn.Sequential`` MLP, 8-d Gaussian noise -> a 2-d point) against a
discriminator (``nn.Sequential`` MLP with LeakyReLU, one logit per point) on 8192 points
drawn from eight Gaussians on a circle of radius 2, the toy target of unrolled-GAN and
VEEGAN papers. Written after the PyTorch DCGAN example: one Adam per network with
betas (0.5, 0.999), an ``nn.BCEWithLogitsLoss`` module, the fakes ``.detach()``-ed for
the discriminator step and not for the generator step (non-saturating generator loss).
The generator is called first in each iteration. ``DataLoader`` over a ``TensorDataset``
with shuffling, ``main()`` with argparse. Prints both losses, the share of generated
points within four standard deviations of a mode, and how many modes they cover.

Healthy: nndoctor should report no warning and no error.

    python examples/corpus/gan_two_optimizers.py
    nndoctor check examples/corpus/gan_two_optimizers.py
"""

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

MODES, RADIUS, MODE_STD = 8, 2.0, 0.05


def ring_of_gaussians(n: int, seed: int) -> torch.Tensor:
    """``n`` points (n, 2) from eight Gaussians spaced evenly on a circle."""
    g = torch.Generator().manual_seed(seed)
    angle = torch.randint(MODES, (n,), generator=g) * (2 * math.pi / MODES)
    centres = RADIUS * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + MODE_STD * torch.randn(n, 2, generator=g)


def mode_centres() -> torch.Tensor:
    angle = torch.arange(MODES) * (2 * math.pi / MODES)
    return RADIUS * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)  # (MODES, 2)


def quality(points: torch.Tensor) -> tuple[float, int]:
    """Share of points within 4 std of their nearest mode, and the modes holding >= 2% of them."""
    distance, nearest = torch.cdist(points, mode_centres()).min(dim=1)
    good = distance < 4 * MODE_STD
    counts = torch.bincount(nearest[good], minlength=MODES)
    return good.float().mean().item(), int((counts >= 0.02 * len(points)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--latent", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data = ring_of_gaussians(8192, seed=args.seed)
    loader = DataLoader(TensorDataset(data), batch_size=args.batch_size, shuffle=True, drop_last=True)

    generator = nn.Sequential(
        nn.Linear(args.latent, args.hidden),
        nn.ReLU(),
        nn.Linear(args.hidden, args.hidden),
        nn.ReLU(),
        nn.Linear(args.hidden, 2),
    )
    discriminator = nn.Sequential(
        nn.Linear(2, args.hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(args.hidden, args.hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(args.hidden, 1),
    )
    criterion = nn.BCEWithLogitsLoss()
    opt_g = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    fixed_noise = torch.randn(2048, args.latent)

    for epoch in range(args.epochs):
        for (real,) in loader:
            b = real.shape[0]
            ones, zeros = torch.ones(b, 1), torch.zeros(b, 1)
            fake = generator(torch.randn(b, args.latent))

            # Discriminator: real points -> 1, generated points -> 0 (no gradient into G).
            opt_d.zero_grad()
            d_loss = criterion(discriminator(real), ones) + criterion(discriminator(fake.detach()), zeros)
            d_loss.backward()
            opt_d.step()

            # Generator: make the discriminator call the fakes real.
            opt_g.zero_grad()
            g_loss = criterion(discriminator(fake), ones)
            g_loss.backward()
            opt_g.step()

        if (epoch + 1) % 10 == 0:
            with torch.no_grad():
                share, covered = quality(generator(fixed_noise))
            print(f"epoch {epoch + 1}: D loss {d_loss.item():.3f}, G loss {g_loss.item():.3f}, "
                  f"{share:.0%} of samples on a mode, {covered}/{MODES} modes covered")


if __name__ == "__main__":
    main()
