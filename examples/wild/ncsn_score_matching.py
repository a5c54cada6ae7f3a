"""A noise-conditional score network trained by denoising score matching (NCSN): healthy.

In the manner of the 2-D toy experiments of Song & Ermon, "Generative Modeling by
Estimating Gradients of the Data Distribution" (2019) and their ``ncsn`` code: the data
are a ring of eight Gaussians (radius 4, standard deviation 0.2), 10,000 points for training
and 1,000 held out. The noise levels are a geometric sequence of ten sigmas from 5.0 down
to 0.05. ``ConditionalMLP`` is an ``nn.Module`` score network s(x, i): three Softplus layers
of width 128 to which a learned ``nn.Embedding`` of the level index i is added, a linear
output divided by sigma_i (as NCSNv2 does). ``anneal_dsm_score_estimation`` is the
annealed denoising score-matching loss of the ``ncsn`` code: a random level for each
sample, the sample perturbed with ``sigma * randn``, the target ``-(perturbed - x) /
sigma^2``, half the squared error summed over the coordinates and weighted by
``sigma^anneal_power`` with ``anneal_power = 2`` (the paper's lambda(sigma) = sigma^2), averaged
over the batch. Adam at 3e-3, batches of 128 from a shuffled ``DataLoader``, 30 epochs.

Then annealed Langevin dynamics (``anneal_Langevin_dynamics`` of the ``ncsn`` code): 1,000
points drawn uniformly from the square [-5, 5]^2, 50 steps at each level from the largest
sigma to the smallest with step size ``step_lr * (sigma / sigma_L)^2`` and noise
``sqrt(2 * step_size)``. Top-level functions and ``main()`` with argparse; prints the loss
every epoch, then for the initial noise, for the samples of an untrained copy of the
network, for a fresh draw of the data and for the samples of the trained network: the
fraction of points within 3 standard deviations of a mode, the number of modes that get at
least 2% of the points, and the squared MMD to the held-out points.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ncsn_score_matching.py
    nndoctor check examples/wild/ncsn_score_matching.py
"""

import argparse
import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_MODES, RADIUS, MODE_STD = 8, 4.0, 0.2


def sample_ring(n, g):
    """A mixture of N_MODES Gaussians evenly spaced on a circle."""
    modes = mode_centres()
    idx = torch.randint(0, N_MODES, (n,), generator=g)
    return modes[idx] + MODE_STD * torch.randn(n, 2, generator=g)


def mode_centres():
    angles = torch.arange(N_MODES) * 2 * math.pi / N_MODES
    return RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


class ConditionalMLP(nn.Module):
    """Score network s(x, i) for noise level i: an MLP whose hidden layers get a learned
    embedding of the level added to them, its output divided by sigma_i."""

    def __init__(self, sigmas, hidden=128):
        super().__init__()
        n_levels = len(sigmas)
        self.register_buffer("sigmas", sigmas)
        self.lin1 = nn.Linear(2, hidden)
        self.lin2 = nn.Linear(hidden, hidden)
        self.lin3 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 2)
        self.embed1 = nn.Embedding(n_levels, hidden)
        self.embed2 = nn.Embedding(n_levels, hidden)
        self.embed3 = nn.Embedding(n_levels, hidden)

    def forward(self, x, y):
        h = F.softplus(self.lin1(x) + self.embed1(y))
        h = F.softplus(self.lin2(h) + self.embed2(y))
        h = F.softplus(self.lin3(h) + self.embed3(y))
        return self.out(h) / self.sigmas[y][:, None]


def anneal_dsm_score_estimation(scorenet, samples, labels, sigmas, anneal_power=2.0):
    used_sigmas = sigmas[labels].view(samples.shape[0], *([1] * len(samples.shape[1:])))
    perturbed_samples = samples + torch.randn_like(samples) * used_sigmas
    target = -1 / (used_sigmas**2) * (perturbed_samples - samples)
    scores = scorenet(perturbed_samples, labels)
    target = target.view(target.shape[0], -1)
    scores = scores.view(scores.shape[0], -1)
    loss = 1 / 2.0 * ((scores - target) ** 2).sum(dim=-1) * used_sigmas.squeeze() ** anneal_power
    return loss.mean(dim=0)


@torch.no_grad()
def anneal_langevin_dynamics(x_mod, scorenet, sigmas, n_steps_each=50, step_lr=2e-4):
    for c, sigma in enumerate(sigmas):
        labels = torch.ones(x_mod.shape[0], dtype=torch.long) * c
        step_size = step_lr * (sigma / sigmas[-1]) ** 2
        for _ in range(n_steps_each):
            noise = torch.randn_like(x_mod) * torch.sqrt(step_size * 2)
            grad = scorenet(x_mod, labels)
            x_mod = x_mod + step_size * grad + noise
    return x_mod


def near_mode_fraction(x, k=3.0):
    """The fraction of points within k standard deviations of a mode, and how many modes
    receive at least 2% of them."""
    dist = torch.cdist(x, mode_centres())
    nearest, which = dist.min(dim=1)
    close = nearest < k * MODE_STD
    counts = torch.bincount(which[close], minlength=N_MODES)
    return close.float().mean().item(), int((counts >= 0.02 * len(x)).sum())


def mmd(x, y, bandwidths=(0.2, 0.5, 1.0)):
    """Squared maximum mean discrepancy with a sum of Gaussian kernels."""
    xy = torch.cat([x, y])
    d2 = torch.cdist(xy, xy) ** 2
    k = sum(torch.exp(-d2 / (2 * h**2)) for h in bandwidths)
    n = len(x)
    return (k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()).item()


def report(name, x, held_out):
    frac, modes = near_mode_fraction(x)
    x = x[torch.isfinite(x).all(dim=1)]
    print(
        f"{name:>16s}: within 3 std of a mode {frac:.3f}  modes covered {modes}/{N_MODES}  "
        f"MMD {mmd(x, held_out):.4f}"
    )


def main():
    parser = argparse.ArgumentParser(description="NCSN on a ring of Gaussians")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--sigma-begin", type=float, default=5.0)
    parser.add_argument("--sigma-end", type=float, default=0.05)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--n-steps-each", type=int, default=50)
    parser.add_argument("--step-lr", type=float, default=2e-4)
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    train_data = sample_ring(10000, g)
    held_out = sample_ring(args.n_samples, g)
    loader = DataLoader(TensorDataset(train_data), batch_size=args.batch_size, shuffle=True)

    sigmas = torch.tensor(
        np.exp(np.linspace(np.log(args.sigma_begin), np.log(args.sigma_end), args.num_classes)),
        dtype=torch.float32,
    )
    score = ConditionalMLP(sigmas)
    untrained = copy.deepcopy(score)
    optimizer = torch.optim.Adam(score.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        total, n = 0.0, 0
        for (X,) in loader:
            labels = torch.randint(0, len(sigmas), (X.shape[0],))
            loss = anneal_dsm_score_estimation(score, X, labels, sigmas)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * X.shape[0]
            n += X.shape[0]
        print(f"epoch {epoch:3d}  loss {total / n:.4f}")

    init = 2 * (RADIUS + 1) * torch.rand(args.n_samples, 2) - (RADIUS + 1)
    samples = anneal_langevin_dynamics(init, score, sigmas, args.n_steps_each, args.step_lr)
    baseline = anneal_langevin_dynamics(init, untrained, sigmas, args.n_steps_each, args.step_lr)
    report("initial noise", init, held_out)
    report("untrained net", baseline, held_out)
    report("held-out data", sample_ring(args.n_samples, g), held_out)
    report("trained net", samples, held_out)


if __name__ == "__main__":
    main()
