"""DeepAR-style probabilistic forecasting of many generated series: healthy.

In the manner of the public PyTorch re-implementations of DeepAR (Salinas et al.): 300
hourly series are generated in the script, each a daily cycle plus a weekly swell, a
linear trend and AR(1) noise around a level drawn log-uniformly between 5 and 500, so
that the series live on very different scales. Training windows (24 hours of lag history,
48 conditioning and 24 prediction steps) are cut from everything but the last day of
each series by a ``Dataset`` and served by a shuffled ``DataLoader``; every window is
divided by its own DeepAR scale, ``1 + mean |z|`` over its conditioning range.
``DeepAR`` is an ``nn.LSTM(batch_first=True)`` (two layers) whose input at each step is
the scaled value one hour and 24 hours earlier (DeepAR's lagged values), four time
features (hour of day and day of week as sine/cosine) and a learnt ``nn.Embedding`` of
the series id; a Gaussian head gives the mean and, through a softplus, the standard
deviation of the next scaled value. The loss is ``nn.GaussianNLLLoss`` (given the
variance) over the conditioning and prediction steps with teacher forcing; being a
negative log-likelihood of continuous values it turns negative as the model fits. Adam,
gradient clipping by norm, ``StepLR`` halving every 4 epochs, a ``main()`` with argparse.
After each epoch the held-out last day of every series is forecast by ancestral sampling
(the LSTM is unrolled over the conditioning range, then 100 paths are sampled step by
step, each sample fed back as the next step's lag); it prints the training NLL, the
normalised deviation (ND) of the median, the weighted quantile loss over the deciles (a
CRPS estimate) and the coverage of the 80% interval, and at the end the ND of a
seasonal-naive forecast (yesterday repeated).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/deepar_gaussian.py
    nndoctor check examples/wild/deepar_gaussian.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

PERIOD = 24
LAGS = (1, 24)  # the previous hour and the same hour yesterday
HISTORY = max(LAGS)
CONTEXT = 48
HORIZON = 24
WINDOW = HISTORY + CONTEXT + HORIZON


def generate_series(n_series: int, length: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length)
    level = np.exp(rng.uniform(np.log(5.0), np.log(500.0), size=(n_series, 1)))
    daily = rng.uniform(0.2, 0.6, (n_series, 1)) * np.sin(
        2 * np.pi * t / PERIOD + rng.uniform(-0.5, 0.5, (n_series, 1))
    )
    weekly = rng.uniform(0.0, 0.2, (n_series, 1)) * np.sin(
        2 * np.pi * t / (7 * PERIOD) + rng.uniform(0, 2 * np.pi, (n_series, 1))
    )
    trend = rng.uniform(-0.3, 0.3, (n_series, 1)) * t / length
    noise_std = rng.uniform(0.03, 0.1, (n_series, 1))
    eps = rng.standard_normal((n_series, length))
    noise = np.zeros((n_series, length))
    for i in range(1, length):
        noise[:, i] = 0.4 * noise[:, i - 1] + eps[:, i]
    return level * (1.0 + daily + weekly + trend + noise_std * noise)


def time_features(length: int) -> np.ndarray:
    t = np.arange(length)
    hour = 2 * np.pi * (t % PERIOD) / PERIOD
    day = 2 * np.pi * (t // PERIOD % 7) / 7
    return np.stack([np.sin(hour), np.cos(hour), np.sin(day), np.cos(day)], axis=1)


class WindowDataset(Dataset):
    """Windows of HISTORY + CONTEXT + HORIZON values; the first HISTORY are only lags."""

    def __init__(self, series: np.ndarray, covariates: np.ndarray, stride: int) -> None:
        self.series = torch.tensor(series, dtype=torch.float32)
        self.covariates = torch.tensor(covariates, dtype=torch.float32)
        self.index = [
            (i, start)
            for i in range(series.shape[0])
            for start in range(0, series.shape[1] - WINDOW + 1, stride)
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int):
        i, start = self.index[k]
        end = start + WINDOW
        return i, self.series[i, start:end], self.covariates[start + HISTORY : end]


class DeepAR(nn.Module):
    def __init__(
        self,
        n_series: int,
        n_covariates: int,
        embed_dim: int = 16,
        hidden: int = 40,
        layers: int = 2,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_series, embed_dim)
        self.lstm = nn.LSTM(
            len(LAGS) + n_covariates + embed_dim,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=0.1,
        )
        self.mu = nn.Linear(hidden, 1)
        self.presigma = nn.Linear(hidden, 1)

    def forward(self, lags, covariates, series_id, state=None):
        """lags: (B, T, L), covariates: (B, T, C), series_id: (B,) -> mu, sigma (B, T), state."""
        emb = self.embedding(series_id).unsqueeze(1).expand(-1, lags.shape[1], -1)
        x = torch.cat([lags, covariates, emb], dim=-1)
        out, state = self.lstm(x, state)
        mu = self.mu(out).squeeze(-1)
        sigma = nn.functional.softplus(self.presigma(out)).squeeze(-1) + 1e-4
        return mu, sigma, state


def deepar_scale(window: torch.Tensor) -> torch.Tensor:
    """DeepAR's per-series scale: 1 + mean |z| over the conditioning range."""
    return 1.0 + window[:, HISTORY : HISTORY + CONTEXT].abs().mean(dim=1, keepdim=True)


def lagged(scaled: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """The lagged values that are the inputs for target positions start..end-1: (B, T, L)."""
    return torch.stack([scaled[:, start - lag : end - lag] for lag in LAGS], dim=-1)


@torch.no_grad()
def forecast(model: DeepAR, series_id, window, covariates, n_samples: int) -> torch.Tensor:
    """Ancestral sampling over the horizon: (n_samples, B, HORIZON) in the data's units."""
    model.eval()
    scale = deepar_scale(window)
    scaled = window / scale
    # Unroll over the conditioning range on the true values.
    inputs = lagged(scaled, HISTORY, HISTORY + CONTEXT)
    _, _, (h, c) = model(inputs, covariates[:, :CONTEXT], series_id)
    b = window.shape[0]
    h = h.repeat_interleave(n_samples, dim=1)
    c = c.repeat_interleave(n_samples, dim=1)
    ids = series_id.repeat_interleave(n_samples)
    cov = covariates.repeat_interleave(n_samples, dim=0)
    paths = scaled.repeat_interleave(n_samples, dim=0)
    for step in range(HORIZON):
        t = HISTORY + CONTEXT + step
        inputs = lagged(paths, t, t + 1)
        mu, sigma, (h, c) = model(inputs, cov[:, CONTEXT + step].unsqueeze(1), ids, (h, c))
        # The sample replaces the unknown value and is the next step's lag.
        paths[:, t] = torch.normal(mu, sigma).squeeze(1)
    samples = paths[:, HISTORY + CONTEXT :].view(b, n_samples, HORIZON) * scale.unsqueeze(1)
    return samples.transpose(0, 1)


def metrics(samples: torch.Tensor, target: torch.Tensor) -> dict:
    quantiles = torch.linspace(0.1, 0.9, 9)
    q = torch.quantile(samples, quantiles, dim=0)  # (9, B, H)
    denom = target.abs().sum()
    nd = (q[4] - target).abs().sum() / denom
    diff = target.unsqueeze(0) - q
    ql = torch.maximum(quantiles.view(-1, 1, 1) * diff, (quantiles.view(-1, 1, 1) - 1) * diff)
    wql = (2 * ql.sum(dim=(1, 2)) / denom).mean()
    coverage = ((target >= q[0]) & (target <= q[8])).float().mean()
    return {"ND": nd.item(), "wQL": wql.item(), "coverage80": coverage.item()}


def main() -> None:
    parser = argparse.ArgumentParser(description="DeepAR with a Gaussian likelihood")
    parser.add_argument("--n-series", type=int, default=300)
    parser.add_argument("--length", type=int, default=24 * 21)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--clip", type=float, default=10.0)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    series = generate_series(args.n_series, args.length, rng)
    covariates = time_features(args.length)
    # The last day of every series is held out; training windows end before it.
    train_set = WindowDataset(series[:, :-HORIZON], covariates[:-HORIZON], stride=12)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    test_ids = torch.arange(args.n_series)
    test_window = torch.tensor(series[:, -WINDOW:], dtype=torch.float32)
    test_cov = torch.tensor(covariates[-WINDOW + HISTORY :], dtype=torch.float32)
    test_cov = test_cov.unsqueeze(0).expand(args.n_series, -1, -1)
    test_target = test_window[:, HISTORY + CONTEXT :]

    model = DeepAR(args.n_series, covariates.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    criterion = nn.GaussianNLLLoss()
    print(f"{len(train_set)} training windows, {len(loader)} batches per epoch")

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for series_id, window, cov in loader:
            scale = deepar_scale(window)
            scaled = window / scale
            # Teacher forcing: the true lagged values are the inputs at every step.
            mu, sigma, _ = model(lagged(scaled, HISTORY, WINDOW), cov, series_id)
            loss = criterion(mu, scaled[:, HISTORY:], sigma**2)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            total += loss.item()
            count += 1
        scheduler.step()
        samples = forecast(model, test_ids, test_window, test_cov, args.samples)
        m = metrics(samples, test_target)
        print(
            f"epoch {epoch}: train NLL {total / count:.3f}, test ND {m['ND']:.3f}, "
            f"wQL {m['wQL']:.3f}, 80% coverage {m['coverage80']:.2f}"
        )

    naive = test_window[:, HISTORY + CONTEXT - PERIOD : HISTORY + CONTEXT]
    naive_nd = ((naive - test_target).abs().sum() / test_target.abs().sum()).item()
    print(f"seasonal naive: ND {naive_nd:.3f} (DeepAR: {m['ND']:.3f}, wQL {m['wQL']:.3f})")


if __name__ == "__main__":
    main()
