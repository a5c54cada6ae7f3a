"""Mixture density network for the inverse kinematics of a two-link arm: healthy.

In the manner of Bishop's mixture density networks (the robot-arm example of the 1994
report, and the MDN notebooks that followed it): a planar arm with links of 0.8 and
0.2 reaches an end-effector position (x1, x2) from its joint angles (theta1, theta2);
the inverse problem, the angles from the position, has two solutions (elbow up and
elbow down) over much of the workspace, so the conditional mean of the angles is a
wrong answer and the targets are multi-valued. 6,000 generated arm poses with a
little noise on the measured positions, split 5,000 / 1,000; the positions are
standardised with the training statistics. ``MDN`` is a tanh MLP with three heads: the
logits of 5 mixture weights, 5 two-dimensional means and 5 log standard deviations
(diagonal Gaussians). The loss is the hand-written negative log-likelihood of the
mixture, ``-logsumexp(log_softmax(logits) + log N(y | mu, sigma))`` averaged over the
batch, so it goes below zero as the components sharpen. Adam over manual shuffled
mini-batches, a top-level script with argparse; prints the training NLL, the
validation NLL against a single Gaussian fitted to the training angles, and the
end-effector error of the most probable component's mean (put back through the
forward kinematics) on the validation positions.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/mdn_inverse.py
    nndoctor check examples/wild/mdn_inverse.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

L1, L2 = 0.8, 0.2


def forward_kinematics(theta):
    t1, t2 = theta[..., 0], theta[..., 1]
    x1 = L1 * torch.cos(t1) - L2 * torch.cos(t1 + t2)
    x2 = L1 * torch.sin(t1) - L2 * torch.sin(t1 + t2)
    return torch.stack([x1, x2], dim=-1)


class MDN(nn.Module):
    def __init__(self, n_in=2, n_out=2, n_hidden=64, n_components=5):
        super().__init__()
        self.n_out, self.n_components = n_out, n_components
        self.body = nn.Sequential(
            nn.Linear(n_in, n_hidden), nn.Tanh(), nn.Linear(n_hidden, n_hidden), nn.Tanh()
        )
        self.pi = nn.Linear(n_hidden, n_components)
        self.mu = nn.Linear(n_hidden, n_components * n_out)
        self.log_sigma = nn.Linear(n_hidden, n_components * n_out)

    def forward(self, x):
        h = self.body(x)
        shape = (-1, self.n_components, self.n_out)
        return self.pi(h), self.mu(h).view(shape), self.log_sigma(h).view(shape)


def mdn_loss(pi_logits, mu, log_sigma, y):
    """Negative log-likelihood of y (batch, n_out) under the mixture, averaged."""
    log_pi = F.log_softmax(pi_logits, dim=1)
    z = (y.unsqueeze(1) - mu) / log_sigma.exp()
    log_normal = (-0.5 * z**2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)
    return -torch.logsumexp(log_pi + log_normal, dim=1).mean()


parser = argparse.ArgumentParser(description="MDN for two-link arm inverse kinematics")
parser.add_argument("--n-samples", type=int, default=6000)
parser.add_argument("--components", type=int, default=5)
parser.add_argument("--epochs", type=int, default=150)
parser.add_argument("--batch-size", type=int, default=100)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

theta = np.stack(
    [rng.uniform(0.3, 1.2, args.n_samples), rng.uniform(math.pi / 2, 3 * math.pi / 2, args.n_samples)],
    axis=1,
).astype(np.float32)
theta = torch.from_numpy(theta)
position = forward_kinematics(theta) + 0.005 * torch.from_numpy(
    rng.normal(size=(args.n_samples, 2)).astype(np.float32)
)

n_train = 5000
x_train, y_train = position[:n_train], theta[:n_train]
x_val, y_val = position[n_train:], theta[n_train:]
x_mean, x_std = x_train.mean(0), x_train.std(0)
x_train, x_val_std = (x_train - x_mean) / x_std, (x_val - x_mean) / x_std

# Reference: one Gaussian (per angle) fitted to the training targets.
g_mean, g_std = y_train.mean(0), y_train.std(0)
gauss_nll = -torch.distributions.Normal(g_mean, g_std).log_prob(y_val).sum(1).mean().item()
print(f"single Gaussian on the angles: validation NLL {gauss_nll:.3f}")

model = MDN(n_components=args.components)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

for epoch in range(1, args.epochs + 1):
    model.train()
    perm = torch.randperm(n_train)
    running = 0.0
    for i in range(0, n_train, args.batch_size):
        idx = perm[i : i + args.batch_size]
        pi_logits, mu, log_sigma = model(x_train[idx])
        loss = mdn_loss(pi_logits, mu, log_sigma, y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        running += loss.item() * len(idx)

    if epoch % 10 == 0 or epoch == 1:
        model.eval()
        with torch.no_grad():
            pi_logits, mu, log_sigma = model(x_val_std)
            val_nll = mdn_loss(pi_logits, mu, log_sigma, y_val).item()
            best = mu[torch.arange(len(mu)), pi_logits.argmax(1)]
            reach_err = (forward_kinematics(best) - x_val).norm(dim=1).mean().item()
        print(
            f"epoch {epoch:3d} | train NLL {running / n_train:7.3f} | val NLL {val_nll:7.3f} "
            f"| end-effector error {reach_err:.4f}"
        )
