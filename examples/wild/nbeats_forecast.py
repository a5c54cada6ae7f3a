"""N-BEATS (generic architecture) on generated univariate series of many scales: healthy.

In the manner of the N-BEATS reference implementations in PyTorch (the ElementAI code and
philipperemy/n-beats, after Oreshkin et al. 2020): 300 monthly-like series of 240 points
are generated, each a level drawn log-uniformly between 1 and 1,000 times a slow trend
(linear plus a gentle curve), two seasonalities (a period of 12 with its second harmonic
and a period of 7, with random amplitudes and phases) and multiplicative noise. The last
``horizon`` = 12 points of every series are held out; training windows are cut at random
points within the last 120 points of the training part: a lookback of 4 x horizon = 48
values as input and the next 12 as target. Every window is divided by the mean absolute
value of its lookback (plus a small epsilon), the forecast is multiplied back before the
test metric is computed.

``NBeats`` is an ``nn.Module`` of 2 stacks x 3 generic blocks. A ``GenericBlock`` is four
fully-connected ReLU layers of width 128 followed by two ``theta`` layers (no bias) of
size 16, one for the backcast and one for the forecast, each mapped by a linear basis to
48 and 12 values. The blocks are stacked doubly residually: ``x = x - backcast`` feeds
the next block and ``forecast = forecast + f`` accumulates the partial forecasts. Loss:
mean absolute error of the scaled forecast. Adam (lr 1e-3) with gradient clipping at 1.0
and a step decay of the learning rate at 2/3 of the 1,500 steps, batches of 256 windows
sampled afresh every step. Top-level functions and ``main()`` with argparse; prints the
training loss every 250 steps, then the test sMAPE of N-BEATS against the seasonal naive
forecast (repeat the last 12 values) and the naive forecast (repeat the last value).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/nbeats_forecast.py
    nndoctor check examples/wild/nbeats_forecast.py
"""

import argparse
import math

import torch
import torch.nn as nn

N_SERIES, LENGTH = 300, 240
HORIZON = 12
LOOKBACK = 4 * HORIZON
HISTORY_LIMIT = 10 * HORIZON  # cut points are drawn from the last 120 training points


def generate_series(n, length, g):
    t = torch.arange(length, dtype=torch.float32)[None, :]
    level = 10 ** (3 * torch.rand(n, 1, generator=g))
    slope = 0.004 * torch.randn(n, 1, generator=g)
    curve = 0.3 * torch.randn(n, 1, generator=g)
    trend = 1 + slope * t + curve * torch.sin(math.pi * t / (2.5 * length))
    phase12, phase7 = 2 * math.pi * torch.rand(2, n, 1, generator=g)
    amp12 = 0.05 + 0.25 * torch.rand(n, 1, generator=g)
    amp6 = 0.1 * torch.rand(n, 1, generator=g)
    amp7 = 0.15 * torch.rand(n, 1, generator=g)
    season = (
        amp12 * torch.sin(2 * math.pi * t / 12 + phase12)
        + amp6 * torch.sin(2 * math.pi * t / 6 + 2 * phase12)
        + amp7 * torch.sin(2 * math.pi * t / 7 + phase7)
    )
    noise = 0.03 * torch.randn(n, length, generator=g)
    return level * trend.clamp(min=0.2) * (1 + season + noise)


def sample_windows(train_series, batch_size, g):
    """Random (lookback, target) windows cut within the last HISTORY_LIMIT training points."""
    n, length = train_series.shape
    idx = torch.randint(0, n, (batch_size,), generator=g)
    cut = torch.randint(length - HISTORY_LIMIT, length - HORIZON + 1, (batch_size,), generator=g)
    offsets_x = torch.arange(-LOOKBACK, 0)[None, :]
    offsets_y = torch.arange(0, HORIZON)[None, :]
    x = train_series[idx[:, None], cut[:, None] + offsets_x]
    y = train_series[idx[:, None], cut[:, None] + offsets_y]
    return x, y


def window_scale(x):
    return x.abs().mean(dim=1, keepdim=True) + 1e-6


class GenericBlock(nn.Module):
    def __init__(self, units, thetas_dim, backcast_length, forecast_length):
        super().__init__()
        self.fc1 = nn.Linear(backcast_length, units)
        self.fc2 = nn.Linear(units, units)
        self.fc3 = nn.Linear(units, units)
        self.fc4 = nn.Linear(units, units)
        self.theta_b_fc = nn.Linear(units, thetas_dim, bias=False)
        self.theta_f_fc = nn.Linear(units, thetas_dim, bias=False)
        self.backcast_fc = nn.Linear(thetas_dim, backcast_length)
        self.forecast_fc = nn.Linear(thetas_dim, forecast_length)

    def forward(self, x):
        h = torch.relu(self.fc1(x))
        h = torch.relu(self.fc2(h))
        h = torch.relu(self.fc3(h))
        h = torch.relu(self.fc4(h))
        backcast = self.backcast_fc(self.theta_b_fc(h))
        forecast = self.forecast_fc(self.theta_f_fc(h))
        return backcast, forecast


class NBeats(nn.Module):
    def __init__(
        self, backcast_length, forecast_length, n_stacks=2, blocks_per_stack=3, units=128, thetas=16
    ):
        super().__init__()
        self.forecast_length = forecast_length
        self.stacks = nn.ModuleList()
        for _ in range(n_stacks):
            blocks = nn.ModuleList(
                GenericBlock(units, thetas, backcast_length, forecast_length)
                for _ in range(blocks_per_stack)
            )
            self.stacks.append(blocks)

    def forward(self, x):
        forecast = torch.zeros(x.shape[0], self.forecast_length, device=x.device)
        for stack in self.stacks:
            for block in stack:
                b, f = block(x)
                x = x - b
                forecast = forecast + f
        return forecast


def smape(forecast, target):
    return 200 * ((forecast - target).abs() / (forecast.abs() + target.abs() + 1e-8)).mean()


@torch.no_grad()
def predict(model, lookback):
    model.eval()
    scale = window_scale(lookback)
    forecast = model(lookback / scale) * scale
    model.train()
    return forecast


def main():
    parser = argparse.ArgumentParser(description="N-BEATS (generic) on generated series")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    series = generate_series(N_SERIES, LENGTH, g)
    train_series, test_target = series[:, :-HORIZON], series[:, -HORIZON:]
    test_lookback = train_series[:, -LOOKBACK:]

    model = NBeats(LOOKBACK, HORIZON)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2 * args.steps // 3, gamma=0.1)

    running = 0.0
    for step in range(1, args.steps + 1):
        x, y = sample_windows(train_series, args.batch_size, g)
        scale = window_scale(x)
        x, y = x / scale, y / scale

        optimizer.zero_grad()
        forecast = model(x)
        loss = (forecast - y).abs().mean()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        scheduler.step()

        running += loss.item()
        if step % 250 == 0:
            print(
                f"step {step:5d}  lr {scheduler.get_last_lr()[0]:.1e}  train MAE {running / 250:.4f}"
            )
            running = 0.0

    forecast = predict(model, test_lookback)
    seasonal_naive = test_lookback[:, -12:].repeat(1, HORIZON // 12)
    naive = test_lookback[:, -1:].repeat(1, HORIZON)
    print(f"test sMAPE  N-BEATS {smape(forecast, test_target):.2f}")
    print(f"test sMAPE  seasonal naive {smape(seasonal_naive, test_target):.2f}")
    print(f"test sMAPE  naive {smape(naive, test_target):.2f}")


if __name__ == "__main__":
    main()
