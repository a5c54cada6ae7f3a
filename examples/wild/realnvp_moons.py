"""A RealNVP normalizing flow on two-moons data: healthy.

In the manner of the RealNVP tutorials on 2-D toy densities: the data are two
interleaving half circles ("two moons", Gaussian noise of 0.05) generated in the
script and standardised with the training set's statistics. ``RealNVP`` stacks six
affine coupling layers whose binary masks alternate between the two coordinates: each
layer keeps the masked coordinate, and moves the other one by ``x * exp(s) + t`` where
the scale ``s`` (an MLP ending in ``tanh``) and the shift ``t`` (an MLP) read only the
masked coordinate, so that the Jacobian is triangular and its log-determinant is the
sum of ``s`` over the transformed coordinate. The log-likelihood of a point is the
standard normal base log-density of its image plus the sum of the layers'
log-determinants; the loss is the mean negative log-likelihood. Adam, manual
mini-batches over a shuffled permutation each epoch; a ``main()`` with argparse; prints
the training NLL and the NLL of a held-out test set (nats per point, in the data's own
coordinates) every 5 epochs, then the mean and spread of samples drawn from the flow.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/realnvp_moons.py
    nndoctor check examples/wild/realnvp_moons.py
"""

import argparse
import math

import torch
import torch.nn as nn


def make_moons(n: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    n_upper = n // 2
    theta_upper = math.pi * torch.rand(n_upper, generator=generator)
    theta_lower = math.pi * torch.rand(n - n_upper, generator=generator)
    upper = torch.stack([torch.cos(theta_upper), torch.sin(theta_upper)], dim=1)
    lower = torch.stack([1 - torch.cos(theta_lower), 0.5 - torch.sin(theta_lower)], dim=1)
    points = torch.cat([upper, lower])
    return points + noise * torch.randn(points.shape, generator=generator)


class CouplingLayer(nn.Module):
    def __init__(self, mask: torch.Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mask", mask)
        dim = mask.numel()
        self.scale_net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, dim),
            nn.Tanh(),
        )
        self.shift_net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> latent direction: returns the transformed points and log|det J|."""
        x_masked = x * self.mask
        s = self.scale_net(x_masked) * (1 - self.mask)
        t = self.shift_net(x_masked) * (1 - self.mask)
        z = x_masked + (1 - self.mask) * (x * torch.exp(s) + t)
        return z, s.sum(dim=1)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        z_masked = z * self.mask
        s = self.scale_net(z_masked) * (1 - self.mask)
        t = self.shift_net(z_masked) * (1 - self.mask)
        return z_masked + (1 - self.mask) * ((z - t) * torch.exp(-s))


class RealNVP(nn.Module):
    def __init__(self, n_layers: int = 6, hidden: int = 128) -> None:
        super().__init__()
        mask = torch.tensor([0.0, 1.0])
        layers = []
        for _ in range(n_layers):
            layers.append(CouplingLayer(mask, hidden))
            mask = 1 - mask
        self.layers = nn.ModuleList(layers)
        self.register_buffer("base_loc", torch.zeros(2))
        self.register_buffer("base_scale", torch.ones(2))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        log_det = torch.zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        base = torch.distributions.Normal(self.base_loc, self.base_scale)
        return base.log_prob(x).sum(dim=1) + log_det

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        z = torch.randn(n, 2)
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


def main() -> None:
    parser = argparse.ArgumentParser(description="RealNVP on two moons")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-train", type=int, default=8192)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    g = torch.Generator().manual_seed(args.seed)
    train = make_moons(args.n_train, 0.05, g)
    test = make_moons(2048, 0.05, g)
    mean, std = train.mean(dim=0), train.std(dim=0)
    train, test = (train - mean) / std, (test - mean) / std
    # NLL in the original coordinates: add the log-Jacobian of the standardisation.
    log_jacobian = torch.log(std).sum().item()

    flow = RealNVP()
    optimizer = torch.optim.Adam(flow.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        flow.train()
        perm = torch.randperm(len(train))
        total = 0.0
        for i in range(0, len(train), args.batch_size):
            batch = train[perm[i : i + args.batch_size]]
            loss = -flow.log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        flow.eval()
        with torch.no_grad():
            test_nll = -flow.log_prob(test).mean().item() + log_jacobian
        if epoch % 5 == 0 or epoch == 1:
            print(
                f"epoch {epoch:3d}: train NLL {total / len(train) + log_jacobian:.3f}, "
                f"test NLL {test_nll:.3f} nats"
            )
    samples = flow.sample(2000) * std + mean
    print(f"samples: mean {samples.mean(0).tolist()}, std {samples.std(0).tolist()}")


if __name__ == "__main__":
    main()
