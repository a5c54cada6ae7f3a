"""A time-series LSTM forecaster with sequence-first batches: healthy.

In the manner of the many "LSTM for time series forecasting" tutorials: a family of
generated series (two seasonalities of random phase, a slow trend and noise) is cut
into sliding windows of 48 values; the value 1 step after each window is the target.
The windows are standardised with the training statistics and served by a
``DataLoader`` as ``(batch, window)``; the training loop permutes them to
``(window, batch, 1)`` for an ``nn.LSTM(batch_first=False)`` (two layers) whose last
time step feeds a linear head. ``nn.MSELoss``, Adam with ``ReduceLROnPlateau`` on the
validation loss, ``main()`` with argparse. Prints the validation RMSE against a
"repeat the last value" baseline.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/ts_lstm_forecast.py
    nndoctor check examples/compat/ts_lstm_forecast.py
"""

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

WINDOW = 48


def make_series(n_series: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length).float()
    phase = torch.rand(n_series, 2, generator=g) * 2 * math.pi
    daily = torch.sin(2 * math.pi * t / 24 + phase[:, :1])
    weekly = 0.5 * torch.sin(2 * math.pi * t / 60 + phase[:, 1:])
    trend = torch.randn(n_series, 1, generator=g) * 0.002 * t
    return 10 + 3 * (daily + weekly + trend) + 0.2 * torch.randn(n_series, length, generator=g)


def windows(series: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = series.unfold(1, WINDOW + 1, 4).reshape(-1, WINDOW + 1)
    return x[:, :WINDOW], x[:, WINDOW]


class Forecaster(nn.Module):
    def __init__(self, hidden: int = 48, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden, num_layers=layers)  # (seq, batch, feature)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[-1]).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    series = make_series(40, 400, seed=args.seed)
    train_x, train_y = windows(series[:, :300])
    val_x, val_y = windows(series[:, 300 - WINDOW :])
    mean, std = train_x.mean(), train_x.std()
    train_x, train_y = (train_x - mean) / std, (train_y - mean) / std
    val_x, val_y = (val_x - mean) / std, (val_y - mean) / std

    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True)
    model = Forecaster()
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    baseline = (val_x[:, -1] - val_y).pow(2).mean().sqrt() * std
    for epoch in range(args.epochs):
        model.train()
        for xb, yb in loader:
            xb = xb.permute(1, 0).unsqueeze(-1)  # (batch, window) -> (window, batch, 1)
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(val_x.permute(1, 0).unsqueeze(-1)), val_y).item()
        scheduler.step(val_loss)
        print(f"epoch {epoch + 1}: validation RMSE {math.sqrt(val_loss) * std:.3f} "
              f"(repeat-last baseline {baseline:.3f})")


if __name__ == "__main__":
    main()
