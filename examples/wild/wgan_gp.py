"""WGAN-GP on eight 2-D Gaussians: healthy.

In the manner of the toy experiments of "Improved Training of Wasserstein GANs" (the
``gan_toy`` script and its "8 Gaussians" data set) and the PyTorch ports of it: the
data are points from eight Gaussians (standard deviation 0.02) evenly spaced on a
circle of radius 2, the whole scaled down by 1.414, a fresh batch drawn every
iteration. ``Generator`` maps 2-D standard normal noise to a point and ``Critic`` maps a
point to a score, both ``nn.Sequential`` ReLU MLPs, no normalisation in the critic.
Each generator iteration is preceded by ``critic_iters = 5`` critic iterations: the
critic loss is ``D(fake) - D(real)`` plus ``lambda * (||grad D(x_hat)|| - 1)^2``
(lambda = 0.1, as for the toy data sets) on random interpolates ``x_hat`` between real
and generated points, the gradient taken by ``torch.autograd.grad(...,
create_graph=True)`` so that the penalty is itself differentiated; as in the reference
code the critic's ``requires_grad`` is switched off during the generator's update and
back on for its own. The generator minimises ``-D(G(z))``. Two Adam optimizers with
``betas=(0.5, 0.9)``. Top-level script with argparse; prints every 250 generator
iterations the critic's Wasserstein estimate ``D(real) - D(fake)``, the gradient
penalty, the generator's cost and the quality of 2,500 generated points: the modes
holding at least a quarter of their share, the share of points within 0.1 of a centre,
and the mean distance to the nearest centre.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/wgan_gp.py
    nndoctor check examples/wild/wgan_gp.py
"""

import argparse

import torch
import torch.nn as nn

SCALE = 2.0
_angles = torch.arange(8) * torch.pi / 4
CENTERS = SCALE * torch.stack([torch.cos(_angles), torch.sin(_angles)], dim=1) / 1.414
STD = 0.02 / 1.414
NEAR = 0.1  # a generated point this close to a centre counts as a good sample


def sample_8gaussians(batch_size):
    modes = torch.randint(0, len(CENTERS), (batch_size,))
    return CENTERS[modes] + STD * torch.randn(batch_size, 2)


@torch.no_grad()
def sample_quality(points):
    nearest, mode = torch.cdist(points, CENTERS).min(dim=1)
    good = nearest < NEAR
    counts = torch.bincount(mode[good], minlength=len(CENTERS))
    modes_hit = int((counts >= 0.25 * len(points) / len(CENTERS)).sum())
    return modes_hit, good.float().mean().item(), nearest.mean().item()


def mlp(n_in, n_out, dim):
    return nn.Sequential(
        nn.Linear(n_in, dim),
        nn.ReLU(True),
        nn.Linear(dim, dim),
        nn.ReLU(True),
        nn.Linear(dim, dim),
        nn.ReLU(True),
        nn.Linear(dim, n_out),
    )


class Generator(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.main = mlp(2, 2, dim)

    def forward(self, noise):
        return self.main(noise)


class Critic(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.main = mlp(2, 1, dim)

    def forward(self, x):
        return self.main(x).view(-1)


def calc_gradient_penalty(netD, real_data, fake_data, lambda_gp):
    alpha = torch.rand(real_data.size(0), 1).expand_as(real_data)
    interpolates = alpha * real_data + (1 - alpha) * fake_data
    interpolates.requires_grad_(True)
    disc_interpolates = netD(interpolates)
    gradients = torch.autograd.grad(
        outputs=disc_interpolates,
        inputs=interpolates,
        grad_outputs=torch.ones_like(disc_interpolates),
        create_graph=True,
        retain_graph=True,
    )[0]
    return lambda_gp * ((gradients.norm(2, dim=1) - 1) ** 2).mean()


parser = argparse.ArgumentParser(description="WGAN-GP on 8 Gaussians")
parser.add_argument("--iters", type=int, default=1250, help="generator iterations")
parser.add_argument("--critic-iters", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--dim", type=int, default=128)
parser.add_argument("--lr", type=float, default=5e-4)
parser.add_argument("--lambda-gp", type=float, default=0.1)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

netG = Generator(args.dim)
netD = Critic(args.dim)
optimizerD = torch.optim.Adam(netD.parameters(), lr=args.lr, betas=(0.5, 0.9))
optimizerG = torch.optim.Adam(netG.parameters(), lr=args.lr, betas=(0.5, 0.9))

for iteration in range(1, args.iters + 1):
    # (1) update the critic
    for p in netD.parameters():
        p.requires_grad = True
    for _ in range(args.critic_iters):
        real = sample_8gaussians(args.batch_size)
        netD.zero_grad()
        D_real = netD(real).mean()
        with torch.no_grad():
            fake = netG(torch.randn(args.batch_size, 2))
        D_fake = netD(fake).mean()
        gradient_penalty = calc_gradient_penalty(netD, real, fake, args.lambda_gp)
        D_cost = D_fake - D_real + gradient_penalty
        D_cost.backward()
        optimizerD.step()
        wasserstein_d = (D_real - D_fake).item()

    # (2) update the generator
    for p in netD.parameters():
        p.requires_grad = False
    netG.zero_grad()
    fake = netG(torch.randn(args.batch_size, 2))
    G_cost = -netD(fake).mean()
    G_cost.backward()
    optimizerG.step()

    if iteration % 250 == 0:
        netG.eval()
        with torch.no_grad():
            samples = netG(torch.randn(2500, 2))
        netG.train()
        modes, share, dist = sample_quality(samples)
        print(
            f"iter {iteration:5d}: W estimate {wasserstein_d:.4f}, "
            f"GP {gradient_penalty.item():.4f}, G cost {G_cost.item():.4f}, "
            f"modes {modes}/8, good share {share:.3f}, mean distance {dist:.3f}"
        )
