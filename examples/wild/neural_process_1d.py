"""A conditional Neural Process on functions drawn from a Gaussian process: healthy.

In the manner of DeepMind's ``conditional_neural_process.ipynb`` (the neural-processes
repository, Garnelo et al. 2018) ported to PyTorch: every batch is a fresh set of 1-D
curves drawn from a Gaussian process with a squared-exponential kernel (length scale 0.4,
signal scale 1, observation noise 0.02), sampled in code through the Cholesky factor of
the kernel matrix. In training, each batch has a random number of context points (3 to
10) and of extra target points (2 to 10) at inputs drawn uniformly in [-2, 2]; the targets
are all the points, the context a random subset of them. The held-out batches put the
targets on a grid of 400 inputs and take 3 to 10 of them as the context.

``DeterministicEncoder`` is an MLP (2-128-128-128-128) applied to every (x, y) context
pair, its outputs averaged over the context set into one representation per curve;
``DeterministicDecoder`` is an MLP (129-128-128-2) on the representation concatenated
with each target x, whose two outputs are the mean and, through
``sigma = 0.1 + 0.9 * softplus(.)``, the standard deviation of a
``torch.distributions.Normal``. The loss is the negative log-likelihood of the target
values under it; Adam at 1e-3 for 3,000 batches of 64 curves. Top-level functions and
``main()`` with argparse; prints the training loss every 500 batches, then the held-out
target log-likelihood and MSE against predicting the context mean (with the context's
spread as the standard deviation) and against the exact GP posterior.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/neural_process_1d.py
    nndoctor check examples/wild/neural_process_1d.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Normal

L1_SCALE, SIGMA_SCALE, NOISE_SCALE = 0.4, 1.0, 2e-2


def rbf_kernel(xa, xb):
    """Squared-exponential kernel between two sets of 1-D inputs, batched: (B, N, M)."""
    sq_dist = (xa[:, :, None, 0] - xb[:, None, :, 0]) ** 2
    return SIGMA_SCALE**2 * torch.exp(-0.5 * sq_dist / L1_SCALE**2)


def sample_curves(batch_size, max_num_context, g, testing=False):
    """One batch of GP curves split into context and target points, as GPCurvesReader does."""
    num_context = int(torch.randint(3, max_num_context + 1, (1,), generator=g))
    if testing:
        num_total = 400
        x = torch.linspace(-2.0, 2.0, num_total).expand(batch_size, num_total)[..., None]
    else:
        num_total = num_context + int(torch.randint(2, max_num_context + 1, (1,), generator=g))
        x = 4.0 * torch.rand(batch_size, num_total, 1, generator=g) - 2.0

    kernel = rbf_kernel(x.double(), x.double())
    kernel = kernel + NOISE_SCALE**2 * torch.eye(num_total, dtype=torch.float64)
    cholesky = torch.linalg.cholesky(kernel)
    eps = torch.randn(batch_size, num_total, 1, generator=g, dtype=torch.float64)
    y = (cholesky @ eps).float()

    idx = torch.randperm(num_total, generator=g)
    context_x = x[:, idx[:num_context]]
    context_y = y[:, idx[:num_context]]
    return (context_x, context_y), x, y


def mlp(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DeterministicEncoder(nn.Module):
    def __init__(self, output_sizes):
        super().__init__()
        self.mlp = mlp([2, *output_sizes])

    def forward(self, context_x, context_y):
        encoder_input = torch.cat([context_x, context_y], dim=-1)
        batch_size, num_context, filter_size = encoder_input.shape
        hidden = self.mlp(encoder_input.view(batch_size * num_context, filter_size))
        hidden = hidden.view(batch_size, num_context, -1)
        return hidden.mean(dim=1)


class DeterministicDecoder(nn.Module):
    def __init__(self, representation_size, output_sizes):
        super().__init__()
        self.mlp = mlp([representation_size + 1, *output_sizes])

    def forward(self, representation, target_x):
        batch_size, num_targets, _ = target_x.shape
        # tf.tile(tf.expand_dims(representation, axis=1), [1, num_targets, 1])
        representation = representation.repeat(1, num_targets).view(batch_size, num_targets, -1)
        decoder_input = torch.cat([representation, target_x], dim=-1)
        hidden = self.mlp(decoder_input.reshape(batch_size * num_targets, -1))
        hidden = hidden.view(batch_size, num_targets, -1)
        mu, log_sigma = torch.split(hidden, 1, dim=-1)
        sigma = 0.1 + 0.9 * F.softplus(log_sigma)
        return Normal(loc=mu, scale=sigma), mu, sigma


class DeterministicModel(nn.Module):
    def __init__(self, encoder_sizes=(128, 128, 128, 128), decoder_sizes=(128, 128, 2)):
        super().__init__()
        self.encoder = DeterministicEncoder(encoder_sizes)
        self.decoder = DeterministicDecoder(encoder_sizes[-1], decoder_sizes)

    def forward(self, query, target_y=None):
        (context_x, context_y), target_x = query
        representation = self.encoder(context_x, context_y)
        dist, mu, sigma = self.decoder(representation, target_x)
        log_p = dist.log_prob(target_y) if target_y is not None else None
        return log_p, mu, sigma


def gp_posterior(context_x, context_y, target_x):
    """Exact predictive mean and standard deviation of the generating GP (the best possible)."""
    cx, cy, tx = context_x.double(), context_y.double(), target_x.double()
    k_cc = rbf_kernel(cx, cx) + NOISE_SCALE**2 * torch.eye(cx.shape[1], dtype=torch.float64)
    k_tc = rbf_kernel(tx, cx)
    chol = torch.linalg.cholesky(k_cc)
    mean = k_tc @ torch.cholesky_solve(cy, chol)
    v = torch.linalg.solve_triangular(chol, k_tc.transpose(1, 2), upper=False)
    var = SIGMA_SCALE**2 - (v**2).sum(dim=1) + NOISE_SCALE**2
    return mean.float(), var.clamp_min(1e-8).sqrt().float()[..., None]


@torch.no_grad()
def evaluate(model, batches):
    model.eval()
    totals = {"cnp": [0.0, 0.0], "context mean": [0.0, 0.0], "GP posterior": [0.0, 0.0]}
    for query, target_y in batches:
        (context_x, context_y), target_x = query
        log_p, mu, _ = model(query, target_y)
        base_mu = context_y.mean(dim=1, keepdim=True).expand_as(target_y)
        base_sigma = context_y.std(dim=1, keepdim=True).clamp_min(0.1).expand_as(target_y)
        gp_mu, gp_sigma = gp_posterior(context_x, context_y, target_x)
        results = {
            "cnp": (log_p, mu),
            "context mean": (Normal(base_mu, base_sigma).log_prob(target_y), base_mu),
            "GP posterior": (Normal(gp_mu, gp_sigma).log_prob(target_y), gp_mu),
        }
        for name, (lp, pred) in results.items():
            totals[name][0] += lp.mean().item() / len(batches)
            totals[name][1] += ((pred - target_y) ** 2).mean().item() / len(batches)
    model.train()
    return totals


def main():
    parser = argparse.ArgumentParser(description="Conditional Neural Process on GP curves")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-context", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--print-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    g_test = torch.Generator().manual_seed(10_000 + args.seed)
    test_batches = []
    for _ in range(8):
        (context_x, context_y), target_x, target_y = sample_curves(
            32, args.max_context, g_test, testing=True
        )
        test_batches.append((((context_x, context_y), target_x), target_y))

    model = DeterministicModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    running = 0.0
    for it in range(1, args.iterations + 1):
        (context_x, context_y), target_x, target_y = sample_curves(
            args.batch_size, args.max_context, g
        )
        query = ((context_x, context_y), target_x)
        log_p, _, _ = model(query, target_y)
        loss = -log_p.mean()

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        running += loss.item()
        if it % args.print_every == 0:
            print(f"iteration {it:5d}  train NLL {running / args.print_every:.4f}")
            running = 0.0

    results = evaluate(model, test_batches)
    print(f"held-out targets (400-point grid, 3-{args.max_context} context points):")
    for name, (log_lik, mse) in results.items():
        print(f"  {name:13s} log-likelihood {log_lik:7.3f}  MSE {mse:.4f}")


if __name__ == "__main__":
    main()
