"""Bayes by Backprop: a Bayesian MLP with a scale-mixture prior on interleaved spirals: healthy.

In the manner of the popular PyTorch Bayes-by-Backprop tutorials (Blundell et al. 2015, as
the widely copied "Weight Uncertainty in Neural Networks" notebook and blitz-bayesian write
it): the data are three interleaved two-dimensional spirals (one class per arm, points
spread along 1.6 turns with Gaussian jitter), 1,500 points for training and 1,500 for
testing, and 600 "far-away" points drawn on a ring of radius 3 to 6 around the spirals
(which end at radius 1) to probe the predictive uncertainty.

``Gaussian`` holds a variational posterior N(mu, softplus(rho)^2) with a reparameterised
``sample()``; ``ScaleMixtureGaussian`` is the paper's prior, a mixture of two zero-mean
Gaussians (pi = 0.5, sigma1 = e^0, sigma2 = e^-6). ``BayesianLinear`` is an ``nn.Module``
with weight and bias means (uniform in +-0.2) and rhos (uniform in -5..-4); every forward
in training (or with ``sample=True``) draws fresh weights and stores the layer's log prior
and log variational posterior of those weights. ``BayesianNetwork`` is 2-64-64-3 with ReLUs
and a ``log_softmax`` output; ``sample_elbo`` runs 3 samples, sums the layers' log terms and
returns ``(log q - log p) / NUM_BATCHES + NLL``, where the NLL is ``F.nll_loss`` (summed
over the batch) of the log-probabilities averaged over the samples. Adam at 1e-2 on shuffled
batches of 100 (15 batches per epoch), 150 epochs.

At test time the network is in eval mode, the class probabilities are averaged over 20
weight samples; top-level functions and ``main()`` with argparse; prints the ELBO loss,
its complexity part and the training accuracy every 15 epochs, then the test accuracy of
the predictive mean (chance: 1/3) and the mean predictive entropy on the test points and
on the far-away points (maximum: ln 3 = 1.099).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/bayes_by_backprop.py
    nndoctor check examples/wild/bayes_by_backprop.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES = 3
PI = 0.5
SIGMA_1 = torch.tensor(math.exp(-0))
SIGMA_2 = torch.tensor(math.exp(-6))


def make_spirals(n, g, noise=0.06):
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    t = 0.15 + 0.85 * torch.rand(n, generator=g)
    angle = 1.25 * 2 * math.pi * t + 2 * math.pi * labels / N_CLASSES
    x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1)
    x = x + noise * torch.randn(n, 2, generator=g)
    return x, labels


def make_far_points(n, g):
    radius = 3 + 3 * torch.rand(n, generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    return torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)


class Gaussian:
    def __init__(self, mu, rho):
        self.mu = mu
        self.rho = rho
        self.normal = torch.distributions.Normal(0, 1)

    @property
    def sigma(self):
        return torch.log1p(torch.exp(self.rho))

    def sample(self):
        epsilon = self.normal.sample(self.rho.size())
        return self.mu + self.sigma * epsilon

    def log_prob(self, input):
        return (
            -math.log(math.sqrt(2 * math.pi))
            - torch.log(self.sigma)
            - ((input - self.mu) ** 2) / (2 * self.sigma**2)
        ).sum()


class ScaleMixtureGaussian:
    def __init__(self, pi, sigma1, sigma2):
        self.pi = pi
        self.sigma1 = sigma1
        self.sigma2 = sigma2
        self.gaussian1 = torch.distributions.Normal(0, sigma1)
        self.gaussian2 = torch.distributions.Normal(0, sigma2)

    def log_prob(self, input):
        prob1 = torch.exp(self.gaussian1.log_prob(input))
        prob2 = torch.exp(self.gaussian2.log_prob(input))
        return (torch.log(self.pi * prob1 + (1 - self.pi) * prob2)).sum()


class BayesianLinear(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        # Weight parameters
        self.weight_mu = nn.Parameter(torch.Tensor(out_features, in_features).uniform_(-0.2, 0.2))
        self.weight_rho = nn.Parameter(torch.Tensor(out_features, in_features).uniform_(-5, -4))
        self.weight = Gaussian(self.weight_mu, self.weight_rho)
        # Bias parameters
        self.bias_mu = nn.Parameter(torch.Tensor(out_features).uniform_(-0.2, 0.2))
        self.bias_rho = nn.Parameter(torch.Tensor(out_features).uniform_(-5, -4))
        self.bias = Gaussian(self.bias_mu, self.bias_rho)
        # Prior distributions
        self.weight_prior = ScaleMixtureGaussian(PI, SIGMA_1, SIGMA_2)
        self.bias_prior = ScaleMixtureGaussian(PI, SIGMA_1, SIGMA_2)
        self.log_prior = 0
        self.log_variational_posterior = 0

    def forward(self, input, sample=False, calculate_log_probs=False):
        if self.training or sample:
            weight = self.weight.sample()
            bias = self.bias.sample()
        else:
            weight = self.weight.mu
            bias = self.bias.mu
        if self.training or calculate_log_probs:
            self.log_prior = self.weight_prior.log_prob(weight) + self.bias_prior.log_prob(bias)
            self.log_variational_posterior = self.weight.log_prob(weight) + self.bias.log_prob(bias)
        else:
            self.log_prior, self.log_variational_posterior = 0, 0

        return F.linear(input, weight, bias)


class BayesianNetwork(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.l1 = BayesianLinear(2, hidden)
        self.l2 = BayesianLinear(hidden, hidden)
        self.l3 = BayesianLinear(hidden, N_CLASSES)

    def forward(self, x, sample=False):
        x = F.relu(self.l1(x, sample))
        x = F.relu(self.l2(x, sample))
        x = F.log_softmax(self.l3(x, sample), dim=1)
        return x

    def log_prior(self):
        return self.l1.log_prior + self.l2.log_prior + self.l3.log_prior

    def log_variational_posterior(self):
        return (
            self.l1.log_variational_posterior
            + self.l2.log_variational_posterior
            + self.l3.log_variational_posterior
        )

    def sample_elbo(self, input, target, num_batches, samples):
        outputs = torch.zeros(samples, input.shape[0], N_CLASSES)
        log_priors = torch.zeros(samples)
        log_variational_posteriors = torch.zeros(samples)
        for i in range(samples):
            outputs[i] = self(input, sample=True)
            log_priors[i] = self.log_prior()
            log_variational_posteriors[i] = self.log_variational_posterior()
        log_prior = log_priors.mean()
        log_variational_posterior = log_variational_posteriors.mean()
        negative_log_likelihood = F.nll_loss(outputs.mean(0), target, reduction="sum")
        loss = (log_variational_posterior - log_prior) / num_batches + negative_log_likelihood
        return loss, log_prior, log_variational_posterior, negative_log_likelihood


def train(net, optimizer, loader, samples):
    net.train()
    num_batches = len(loader)
    total = complexity = 0.0
    correct = n = 0
    for data, target in loader:
        net.zero_grad()
        loss, log_prior, log_variational_posterior, nll = net.sample_elbo(
            data, target, num_batches, samples
        )
        loss.backward()
        optimizer.step()
        total += loss.item()
        complexity += (log_variational_posterior - log_prior).item() / num_batches
        with torch.no_grad():
            correct += (net(data).argmax(dim=1) == target).sum().item()
        n += len(target)
    return total / num_batches, complexity / num_batches, correct / n


@torch.no_grad()
def predictive(net, x, samples):
    net.eval()
    probs = torch.stack([net(x, sample=True).exp() for _ in range(samples)])
    return probs.mean(0)


def entropy(probs):
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1)


def main():
    parser = argparse.ArgumentParser(description="Bayes by Backprop on interleaved spirals")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--test-samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_spirals(1500, g)
    x_test, y_test = make_spirals(1500, g)
    x_far = make_far_points(600, g)

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    net = BayesianNetwork()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        loss, complexity, acc = train(net, optimizer, train_loader, args.samples)
        if epoch % 10 == 0:
            print(
                f"epoch {epoch:3d}  loss {loss:8.2f}  complexity {complexity:8.2f}  "
                f"train acc {acc:.3f}"
            )

    probs = predictive(net, x_test, args.test_samples)
    test_acc = (probs.argmax(dim=1) == y_test).float().mean().item()
    far_probs = predictive(net, x_far, args.test_samples)
    print(f"test accuracy of the predictive mean: {test_acc:.3f}  (chance {1 / N_CLASSES:.3f})")
    print(
        f"mean predictive entropy: test points {entropy(probs).mean():.3f}  "
        f"far-away points {entropy(far_probs).mean():.3f}  (max {math.log(N_CLASSES):.3f})"
    )


if __name__ == "__main__":
    main()
