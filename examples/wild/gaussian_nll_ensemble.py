"""A deep ensemble of Gaussian MLPs for heteroscedastic regression: healthy.

In the manner of the public PyTorch reimplementations of "Simple and Scalable Predictive
Uncertainty Estimation using Deep Ensembles" (Lakshminarayanan et al. 2017): the data are
generated in the script, 1-D inputs x uniform in [-4, 4] and targets
y = x sin(x) + 0.3 x plus Gaussian noise whose standard deviation grows with |x|, from 0.1
at the centre to 1.1 at the edges; 2,000 training points and 2,000 test points. Inputs and
targets are standardised with the training set's mean and standard deviation.

``GaussianMLP`` is an MLP (1 -> 64 -> 64 -> 2, ReLU) whose two outputs are split into a mean
and a standard deviation made positive by ``softplus`` + 1e-6; ``GaussianMixtureMLP`` holds
M = 5 of them as attributes ``model_0`` ... ``model_4`` (each with its own random
initialisation) and combines them as a uniform mixture: its mean is the members' mean and its
variance the members' mean of (variance + mean^2) minus the mixture mean squared. Each member
has its own Adam (lr 3e-3) and is trained on the same shuffled ``DataLoader`` batches of 100
with ``nn.GaussianNLLLoss`` on (mean, target, std^2); no adversarial examples. A ``main()``
with argparse; 40 epochs, printing the members' mean training NLL (standardised units, it
goes below zero) every 5. At the end the mixture's test NLL (per point, in the original
units, with the constant), RMSE and the coverage of its central 90% interval (overall, and
for |x| < 2 and |x| >= 2, where the noise is small and large) are printed against a
homoscedastic baseline, the same MLP with one output trained with ``nn.MSELoss`` whose
variance is its mean squared training residual, and against a constant predictor.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/gaussian_nll_ensemble.py
    nndoctor check examples/wild/gaussian_nll_ensemble.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def make_data(n, rng):
    x = rng.uniform(-4.0, 4.0, size=(n, 1))
    noise_std = 0.1 + 0.25 * np.abs(x)
    y = x * np.sin(x) + 0.3 * x + noise_std * rng.normal(size=(n, 1))
    return x.astype(np.float32), y.astype(np.float32)


class GaussianMLP(nn.Module):
    """MLP with two outputs: a mean and a (softplus) standard deviation."""

    def __init__(self, inputs=1, outputs=1, hidden_layers=(64, 64)):
        super().__init__()
        self.inputs = inputs
        self.outputs = outputs
        layers = []
        width = inputs
        for hidden in hidden_layers:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 2 * outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        x = self.net(x)
        mean, std = torch.split(x, self.outputs, dim=1)
        std = F.softplus(std) + 1e-6
        return mean, std


class GaussianMixtureMLP(nn.Module):
    """Uniform mixture of ``num_models`` Gaussian MLPs (the deep ensemble)."""

    def __init__(self, num_models=5, inputs=1, outputs=1, hidden_layers=(64, 64)):
        super().__init__()
        self.num_models = num_models
        for i in range(num_models):
            model = GaussianMLP(inputs, outputs, hidden_layers)
            setattr(self, "model_" + str(i), model)

    def forward(self, x):
        means, variances = [], []
        for i in range(self.num_models):
            model = getattr(self, "model_" + str(i))
            mean, std = model(x)
            means.append(mean)
            variances.append(std.pow(2))
        means = torch.stack(means)
        mean = means.mean(dim=0)
        variances = torch.stack(variances)
        variance = (variances + means.pow(2)).mean(dim=0) - mean.pow(2)
        return mean, variance


def scores(mean, variance, y):
    """NLL per point (with the constant), RMSE and coverage of the central 90% interval."""
    mean, variance, y = mean.reshape(-1), variance.reshape(-1), y.reshape(-1)
    nll = 0.5 * (torch.log(2 * math.pi * variance) + (y - mean) ** 2 / variance)
    rmse = torch.sqrt(((y - mean) ** 2).mean())
    inside = (y - mean).abs() <= 1.6449 * variance.sqrt()
    return nll, rmse.item(), inside.float()


def report(name, mean, variance, x, y):
    nll, rmse, inside = scores(mean, variance, y)
    centre = x.reshape(-1).abs() < 2
    print(
        f"{name:<22} NLL {nll.mean().item():6.3f}  RMSE {rmse:.3f}  90% coverage "
        f"{inside.mean().item():.3f} (|x|<2: {inside[centre].mean().item():.3f}, "
        f"|x|>=2: {inside[~centre].mean().item():.3f})"
    )


def main():
    parser = argparse.ArgumentParser(description="Deep ensemble, heteroscedastic regression")
    parser.add_argument("--num-models", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_train, y_train = make_data(args.n_train, rng)
    x_test, y_test = make_data(args.n_test, rng)
    x_mean, x_std = x_train.mean(0), x_train.std(0)
    y_mean, y_std = y_train.mean(0), y_train.std(0)
    x_train_n = torch.from_numpy((x_train - x_mean) / x_std)
    y_train_n = torch.from_numpy((y_train - y_mean) / y_std)
    x_test_n = torch.from_numpy((x_test - x_mean) / x_std)

    train_loader = DataLoader(
        TensorDataset(x_train_n, y_train_n), batch_size=args.batch_size, shuffle=True
    )

    gmm = GaussianMixtureMLP(num_models=args.num_models)
    optimizers = [
        torch.optim.Adam(getattr(gmm, "model_" + str(i)).parameters(), lr=args.lr)
        for i in range(gmm.num_models)
    ]
    criterion = nn.GaussianNLLLoss()

    for epoch in range(1, args.epochs + 1):
        gmm.train()
        losses = []
        for x, y in train_loader:
            for i in range(gmm.num_models):
                model = getattr(gmm, "model_" + str(i))
                optimizers[i].zero_grad()
                mean, std = model(x)
                loss = criterion(mean, y, std.pow(2))
                loss.backward()
                optimizers[i].step()
                losses.append(loss.item())
        if epoch == 1 or epoch % 5 == 0:
            print(f"epoch {epoch:3d}: member NLL (standardised) {np.mean(losses):.4f}")

    # homoscedastic baseline: the same network with one output, trained with MSE
    baseline = nn.Sequential(
        nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1)
    )
    optimizer = torch.optim.Adam(baseline.parameters(), lr=args.lr)
    mse = nn.MSELoss()
    for _ in range(args.epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = mse(baseline(x), y)
            loss.backward()
            optimizer.step()

    gmm.eval()
    with torch.no_grad():
        mean, variance = gmm(x_test_n)
        mean = mean * torch.from_numpy(y_std) + torch.from_numpy(y_mean)
        variance = variance * torch.from_numpy(y_std) ** 2
        residual_var = ((baseline(x_train_n) - y_train_n) ** 2).mean()
        base_mean = baseline(x_test_n) * torch.from_numpy(y_std) + torch.from_numpy(y_mean)
        base_var = (residual_var * torch.from_numpy(y_std) ** 2).expand_as(base_mean)
    y_t, x_t = torch.from_numpy(y_test), torch.from_numpy(x_test)
    report(f"deep ensemble (M={gmm.num_models})", mean, variance, x_t, y_t)
    report("homoscedastic MLP", base_mean, base_var, x_t, y_t)
    const = torch.full_like(y_t, float(y_mean[0]))
    report("constant", const, torch.full_like(y_t, float(y_std[0]) ** 2), x_t, y_t)


if __name__ == "__main__":
    main()
