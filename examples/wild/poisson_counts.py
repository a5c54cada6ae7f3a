"""Poisson regression of hourly bike rentals with an MLP on the log-rate: healthy.

In the manner of the count-regression examples (scikit-learn's "Poisson regression and
non-normal loss", the bike-sharing demand notebooks) carried over to PyTorch: a generated
table of 30,000 station-hours with four categorical columns (hour of day, weekday,
season, weather: clear / mist / rain) and four numeric ones on their own scales
(temperature in degrees, humidity in percent, wind speed in km/h, a holiday flag). The
number of rentals in an hour is Poisson with a rate that is the exponential of a
nonlinear function of them: commuting peaks on working days, a midday bump on days off,
a bell-shaped effect of temperature, penalties for humidity, wind and rain. The rows are
split 70/15/15 into training, validation and test; the categories are one-hot encoded
and the numeric columns standardised with the training split's means and standard
deviations. ``RateMLP`` (``Linear``/``ReLU`` layers, the last bias set to the log of the
mean training count) predicts the log-rate, and the loss is
``nn.PoissonNLLLoss(log_input=True)``. Adam over manual shuffled mini-batches;
``ReduceLROnPlateau`` on the validation mean Poisson deviance, early stopping with a
patience of 6 epochs, and the best weights restored for the test. A top-level script with
argparse; prints per epoch the training loss and the validation deviance against that of
a constant rate (the training mean), and at the end the test deviance and the share of
deviance explained (D²).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/poisson_counts.py
    nndoctor check examples/wild/poisson_counts.py
"""

import argparse
import copy

import numpy as np
import torch
import torch.nn as nn

CATEGORIES = {"hour": 24, "weekday": 7, "season": 4, "weather": 3}


def make_rentals(n, rng):
    hour = rng.integers(0, 24, n)
    weekday = rng.integers(0, 7, n)
    season = rng.integers(0, 4, n)
    weather = rng.choice(3, n, p=[0.65, 0.25, 0.10])
    temp = rng.normal(np.array([6.0, 16.0, 26.0, 14.0])[season], 6.0)  # degrees C
    humidity = np.clip(rng.normal(60 + 12 * (weather > 0), 15, n), 15, 100)
    wind = rng.gamma(2.0, 6.0, n)
    holiday = (rng.random(n) < 0.03).astype(float)

    workday = (weekday < 5) & (holiday == 0)
    commute = 1.6 * np.exp(-0.5 * ((hour - 8) / 1.0) ** 2) + 1.8 * np.exp(
        -0.5 * ((hour - 17.5) / 1.3) ** 2
    )
    leisure = 1.3 * np.exp(-0.5 * ((hour - 14) / 3.0) ** 2)
    night = -1.8 * ((hour < 6) | (hour > 22))
    log_rate = 1.6 + np.where(workday, commute, leisure) + night
    log_rate += -0.5 * ((temp - 22) / 9) ** 2 - 0.012 * (humidity - 60) - 0.025 * wind
    log_rate += np.array([0.0, -0.3, -1.0])[weather] + np.array([-0.2, 0.1, 0.2, 0.0])[season]
    counts = rng.poisson(np.exp(log_rate)).astype(np.float32)

    categorical = np.stack([hour, weekday, season, weather], axis=1)
    numeric = np.stack([temp, humidity, wind, holiday], axis=1).astype(np.float32)
    return categorical, numeric, counts


def one_hot(categorical):
    blocks = [
        np.eye(k, dtype=np.float32)[categorical[:, j]] for j, k in enumerate(CATEGORIES.values())
    ]
    return np.concatenate(blocks, axis=1)


def mean_poisson_deviance(y, mu):
    y_log_y_mu = torch.where(y > 0, y * torch.log(y / mu), torch.zeros_like(y))
    return (2 * (y_log_y_mu - (y - mu))).mean().item()


class RateMLP(nn.Module):
    def __init__(self, n_in, hidden=64, init_log_rate=0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
        nn.init.constant_(self.net[-1].bias, init_log_rate)

    def forward(self, x):
        return self.net(x).squeeze(-1)  # log of the expected count


parser = argparse.ArgumentParser(description="Poisson regression of bike rentals")
parser.add_argument("--n-rows", type=int, default=30_000)
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--patience", type=int, default=6)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

categorical, numeric, counts = make_rentals(args.n_rows, rng)
n_train, n_val = int(0.7 * args.n_rows), int(0.15 * args.n_rows)
train, val, test = slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, None)

num_mean, num_std = numeric[train].mean(axis=0), numeric[train].std(axis=0)
x = np.concatenate([one_hot(categorical), (numeric - num_mean) / num_std], axis=1)
x, y = torch.from_numpy(x), torch.from_numpy(counts)
x_train, y_train = x[train], y[train]

model = RateMLP(x.shape[1], init_log_rate=float(np.log(counts[train].mean())))
criterion = nn.PoissonNLLLoss(log_input=True)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
    optimizer, mode="min", factor=0.5, patience=2
)

baseline_rate = y_train.mean()
val_baseline = mean_poisson_deviance(y[val], baseline_rate.expand_as(y[val]))
print(f"constant rate {baseline_rate:.2f}: validation deviance {val_baseline:.3f}")

best_dev, best_state, bad_epochs = float("inf"), None, 0
for epoch in range(1, args.epochs + 1):
    model.train()
    perm = torch.randperm(n_train)
    total = 0.0
    for i in range(0, n_train, args.batch_size):
        idx = perm[i : i + args.batch_size]
        optimizer.zero_grad()
        loss = criterion(model(x_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)

    model.eval()
    with torch.no_grad():
        val_dev = mean_poisson_deviance(y[val], model(x[val]).exp())
    scheduler.step(val_dev)
    print(
        f"epoch {epoch:2d}: train loss {total / n_train:.4f}, val deviance {val_dev:.3f} "
        f"(constant rate {val_baseline:.3f}), lr {optimizer.param_groups[0]['lr']:.1e}"
    )
    if val_dev < best_dev:
        best_dev, best_state, bad_epochs = val_dev, copy.deepcopy(model.state_dict()), 0
    else:
        bad_epochs += 1
        if bad_epochs >= args.patience:
            print(f"early stopping at epoch {epoch}")
            break

model.load_state_dict(best_state)
model.eval()
with torch.no_grad():
    test_dev = mean_poisson_deviance(y[test], model(x[test]).exp())
test_baseline = mean_poisson_deviance(y[test], baseline_rate.expand_as(y[test]))
print(
    f"test mean Poisson deviance {test_dev:.3f} (constant rate {test_baseline:.3f}), "
    f"D^2 {1 - test_dev / test_baseline:.3f}"
)
