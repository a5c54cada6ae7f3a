"""A vanilla GAN on a ring of eight 2-D Gaussians: healthy.

In the manner of the toy GAN examples (the "8 Gaussians" benchmark of the mode-collapse
papers, trained with the DCGAN recipe): the data are points drawn from eight Gaussians
(standard deviation 0.05) evenly spaced on a circle of radius 2, a fresh batch sampled
each iteration. ``Generator`` maps 8-D standard normal noise to a 2-D point and
``Discriminator`` maps a point to one logit, both ``nn.Sequential`` MLPs with
``LeakyReLU(0.2)``. The non-saturating loss through ``nn.BCEWithLogitsLoss`` and two
Adam optimizers with ``betas=(0.5, 0.999)``, as in the DCGAN example: each iteration
first updates the discriminator on a real batch (label 1) and a generated batch
(``fake.detach()``, label 0), then the generator so that the discriminator calls its
samples real. Top-level script with argparse; prints the D and G losses and the mode
coverage of 2,000 generated points (modes hit, share of points within 4 standard
deviations of a mode) every 500 iterations.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/gan_ring.py
    nndoctor check examples/wild/gan_ring.py
"""

import argparse
import math

import torch
import torch.nn as nn

N_MODES, RADIUS, STD = 8, 2.0, 0.05
angles = torch.arange(N_MODES) * 2 * math.pi / N_MODES
CENTERS = RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def sample_ring(n: int) -> torch.Tensor:
    modes = torch.randint(0, N_MODES, (n,))
    return CENTERS[modes] + STD * torch.randn(n, 2)


def coverage(points: torch.Tensor) -> tuple[int, float]:
    dist = torch.cdist(points, CENTERS)
    nearest, mode = dist.min(dim=1)
    good = nearest < 4 * STD
    counts = torch.bincount(mode[good], minlength=N_MODES)
    modes_hit = int((counts >= 0.25 * len(points) / N_MODES).sum())
    return modes_hit, good.float().mean().item()


class Generator(nn.Module):
    def __init__(self, nz: int, hidden: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(nz, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 2),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Linear(2, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


parser = argparse.ArgumentParser(description="vanilla GAN on a ring of 8 Gaussians")
parser.add_argument("--niter", type=int, default=5000)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--nz", type=int, default=8)
parser.add_argument("--hidden", type=int, default=128)
parser.add_argument("--lr", type=float, default=2e-4)
parser.add_argument("--beta1", type=float, default=0.5)
parser.add_argument("--seed", type=int, default=0)
opt = parser.parse_args()
torch.manual_seed(opt.seed)

netG = Generator(opt.nz, opt.hidden)
netD = Discriminator(opt.hidden)
criterion = nn.BCEWithLogitsLoss()
optimizerD = torch.optim.Adam(netD.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
optimizerG = torch.optim.Adam(netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
fixed_noise = torch.randn(2000, opt.nz)
real_label, fake_label = 1.0, 0.0

for iteration in range(1, opt.niter + 1):
    real = sample_ring(opt.batch_size)
    noise = torch.randn(opt.batch_size, opt.nz)
    fake = netG(noise)

    # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
    optimizerD.zero_grad()
    output = netD(real)
    errD_real = criterion(output, torch.full_like(output, real_label))
    output = netD(fake.detach())
    errD_fake = criterion(output, torch.full_like(output, fake_label))
    errD = errD_real + errD_fake
    errD.backward()
    optimizerD.step()

    # (2) Update G: maximize log(D(G(z)))
    optimizerG.zero_grad()
    output = netD(fake)
    errG = criterion(output, torch.full_like(output, real_label))
    errG.backward()
    optimizerG.step()

    if iteration % 500 == 0:
        with torch.no_grad():
            modes_hit, quality = coverage(netG(fixed_noise))
        print(
            f"[{iteration}/{opt.niter}] Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f} "
            f"modes: {modes_hit}/{N_MODES} high-quality: {100 * quality:.1f}%"
        )
