"""Multi-step forecasting of a multivariate time series with a GRU: healthy.

In the manner of the time-series forecasting tutorials: a generated hourly series of
four related sensors (a slow trend, a daily and a weekly season, a shared random walk
and noise) of 6,000 steps, split chronologically into 80% training and 20% validation.
A ``MinMaxScaler``-style scaler (a small class with ``fit`` / ``transform`` /
``inverse_transform``) is fitted on the training part only and applied to both. A
``WindowDataset`` cuts sliding windows: 48 past steps of all four sensors as input, the
next 12 steps of the first sensor as target. ``GRUForecaster`` is a two-layer
``nn.GRU(batch_first=True)`` whose last hidden state goes through a linear layer to
the 12 forecasts. ``nn.MSELoss``; Adam; gradient clipping; ``ReduceLROnPlateau`` on the
validation loss; ``DataLoader`` with shuffling for training, in order for validation.
Each epoch validates under ``torch.no_grad()`` with ``model.eval()``. A ``main()`` with
argparse; prints the training and validation MSE, the validation MAE in sensor units
and that of the naive forecast (repeating the last value).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/gru_forecast.py
    nndoctor check examples/wild/gru_forecast.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset


def make_series(n_steps: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n_steps, dtype=torch.float32)
    daily = torch.sin(2 * math.pi * t / 24)
    weekly = torch.sin(2 * math.pi * t / 168 + 1.0)
    walk = torch.cumsum(0.05 * torch.randn(n_steps, generator=g), dim=0)
    trend = 0.002 * t
    columns = [
        20 + trend + 3 * daily + 1.5 * weekly + walk,
        50 + 2 * trend - 8 * daily + 0.5 * walk,
        5 + 0.5 * torch.roll(daily, 3) + weekly,
        100 + 10 * weekly + 4 * walk,
    ]
    series = torch.stack(columns, dim=1)
    return series + 0.3 * torch.randn(series.shape, generator=g)


class MinMaxScaler:
    def fit(self, data: torch.Tensor) -> "MinMaxScaler":
        self.min_ = data.min(dim=0).values
        self.scale_ = data.max(dim=0).values - self.min_
        return self

    def transform(self, data: torch.Tensor) -> torch.Tensor:
        return (data - self.min_) / self.scale_

    def fit_transform(self, data: torch.Tensor) -> torch.Tensor:
        return self.fit(data).transform(data)

    def inverse_transform(self, data: torch.Tensor, column: int) -> torch.Tensor:
        return data * self.scale_[column] + self.min_[column]


class WindowDataset(Dataset):
    def __init__(self, data: torch.Tensor, window: int, horizon: int, target_col: int = 0):
        self.data, self.window, self.horizon, self.target_col = data, window, horizon, target_col

    def __len__(self) -> int:
        return len(self.data) - self.window - self.horizon + 1

    def __getitem__(self, i: int):
        x = self.data[i : i + self.window]
        y = self.data[i + self.window : i + self.window + self.horizon, self.target_col]
        return x, y


class GRUForecaster(nn.Module):
    def __init__(self, n_features: int, hidden: int, horizon: int, num_layers: int = 2):
        super().__init__()
        self.gru = nn.GRU(n_features, hidden, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(out[:, -1, :])


def main() -> None:
    parser = argparse.ArgumentParser(description="GRU multi-step forecaster")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--window", type=int, default=48)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    series = make_series(6000, args.seed)
    split = int(0.8 * len(series))
    train_raw, val_raw = series[:split], series[split:]
    scaler = MinMaxScaler()
    train_scaled = scaler.fit_transform(train_raw)
    val_scaled = scaler.transform(val_raw)

    train_loader = DataLoader(
        WindowDataset(train_scaled, args.window, args.horizon),
        batch_size=args.batch_size,
        shuffle=True,
    )
    val_loader = DataLoader(
        WindowDataset(val_scaled, args.window, args.horizon), batch_size=256, shuffle=False
    )

    model = GRUForecaster(series.shape[1], args.hidden, args.horizon)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)

    for epoch in range(1, args.epochs + 1):
        model.train()
        train_loss = 0.0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            train_loss += loss.item() * len(x)
        train_loss /= len(train_loader.dataset)

        model.eval()
        val_loss = mae = naive_mae = 0.0
        with torch.no_grad():
            for x, y in val_loader:
                pred = model(x)
                val_loss += criterion(pred, y).item() * len(x)
                y_true = scaler.inverse_transform(y, 0)
                mae += (scaler.inverse_transform(pred, 0) - y_true).abs().sum().item()
                last = scaler.inverse_transform(x[:, -1:, 0], 0)
                naive_mae += (last - y_true).abs().sum().item()
        n_val = len(val_loader.dataset)
        val_loss /= n_val
        scheduler.step(val_loss)
        print(
            f"epoch {epoch}: train mse {train_loss:.5f} | val mse {val_loss:.5f} | "
            f"val mae {mae / (n_val * args.horizon):.3f} "
            f"(naive {naive_mae / (n_val * args.horizon):.3f})"
        )


if __name__ == "__main__":
    main()
