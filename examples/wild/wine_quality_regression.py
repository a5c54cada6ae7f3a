"""Wine-quality regression with an MLP on standardised features: healthy.

In the manner of the many PyTorch regression tutorials on the UCI "Wine Quality" data
set (white wines, 4,898 rows): the table is generated here with the data set's eleven
physico-chemical columns on their natural scales and with their usual correlations
(fixed acidity with citric acid and against pH, sugar and alcohol driving the
density, free with total sulfur dioxide, skewed sugar, chlorides and sulfur dioxide),
and an integer quality score from 3 to 9, mostly 5 to 7, that rises with alcohol and
sulphates and falls with volatile acidity, chlorides and a lack of free sulfur
dioxide, plus the tasters' noise. The rows are shuffled into an 80/20 train /
validation split with numpy; the features are standardised with the training split's
column means and standard deviations (the same statistics applied to the validation
split). ``WineNet`` is an ``nn.Sequential`` MLP (11 -> 64 -> 64 -> 1, ReLU) whose one
output is the score, trained with ``nn.MSELoss`` against the scores as float targets
of shape ``(batch, 1)``; ``DataLoader`` over a ``TensorDataset``, Adam, ``StepLR``
halving the learning rate every 40 epochs. A ``main()`` with argparse; prints every 20
epochs the training loss, the validation RMSE (against the 0.88 of always predicting
the training mean) and the share of validation wines whose rounded prediction hits
the tasters' score.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/wine_quality_regression.py
    nndoctor check examples/wild/wine_quality_regression.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]


def make_wines(n, rng):
    """A white-wine table: (n, 11) features on their natural scales, scores 3..9."""
    acid, sweet, sulfur, body = rng.standard_normal((4, n))  # hidden winemaking factors
    e = rng.standard_normal((11, n))
    fixed_acidity = 6.85 + 0.84 * (0.8 * acid + 0.6 * e[0])
    volatile_acidity = np.exp(np.log(0.26) + 0.33 * e[1])
    citric_acid = np.clip(0.33 + 0.12 * (0.5 * acid + 0.85 * e[2]), 0.0, 1.2)
    residual_sugar = np.exp(np.log(4.3) + 0.8 * (0.8 * sweet + 0.6 * e[3]))
    alcohol = 10.5 + 1.2 * (0.75 * body - 0.4 * sweet + 0.5 * e[10])
    chlorides = np.exp(np.log(0.042) + 0.3 * (-0.5 * body + 0.85 * e[4]))
    free_so2 = np.exp(np.log(31.0) + 0.45 * (0.75 * sulfur + 0.65 * e[5]))
    total_so2 = 138.0 + 42.0 * (0.65 * sulfur + 0.3 * sweet + 0.6 * e[6])
    sugar_z = (np.log(residual_sugar) - np.log(4.3)) / 0.8
    density = (
        0.9940 + 0.0022 * sugar_z - 0.0018 * (alcohol - 10.5) / 1.2 + 0.0003 * acid + 0.0003 * e[7]
    )
    ph = 3.19 - 0.15 * (0.6 * acid - 0.8 * e[8])
    sulphates = np.exp(np.log(0.48) + 0.23 * e[9])
    x = np.stack(
        [
            fixed_acidity,
            volatile_acidity,
            citric_acid,
            residual_sugar,
            chlorides,
            free_so2,
            total_so2,
            density,
            ph,
            sulphates,
            alcohol,
        ],
        axis=1,
    )

    # The tasters: a mostly monotone taste for alcohol, a dislike of volatile acidity
    # and salt, faults when free SO2 runs low, a liking for sulphates that saturates.
    taste = (
        0.9 * np.tanh((alcohol - 10.5) / 1.2)
        - 0.45 * np.log(volatile_acidity / 0.26) / 0.33
        - 0.2 * np.log(chlorides / 0.042) / 0.3
        - 0.6 * np.maximum(0.0, np.log(15.0 / free_so2))
        + 0.25 * np.tanh(3.0 * (sulphates - 0.45))
        + 0.15 * np.tanh(residual_sugar / 3.0 - 1.0) * (alcohol > 11.0)
    )
    latent = taste + 0.45 * rng.standard_normal(n)
    latent = (latent - latent.mean()) / latent.std()
    cuts = [-2.6, -1.75, -0.45, 0.85, 1.85, 2.6]  # about 0.5/3.5/30/45/17/3.5/0.5 percent
    quality = 3 + np.searchsorted(cuts, latent)
    return x.astype(np.float32), quality.astype(np.float32)


class WineNet(nn.Module):
    def __init__(self, n_features, hidden=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
        return self.net(x)


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    pred = model(x)
    rmse = torch.sqrt(((pred - y) ** 2).mean()).item()
    hits = (pred.round().clamp(3, 9) == y).float().mean().item()
    model.train()
    return rmse, hits


def main():
    parser = argparse.ArgumentParser(description="wine quality regression")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-wines", type=int, default=4898)
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)

    x, y = make_wines(args.n_wines, rng)
    idx = rng.permutation(len(x))
    n_train = int(0.8 * len(x))
    train_idx, val_idx = idx[:n_train], idx[n_train:]
    x_train, y_train = x[train_idx], y[train_idx]
    x_val, y_val = x[val_idx], y[val_idx]

    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train = (x_train - mean) / std
    x_val = (x_val - mean) / std

    x_train, x_val = torch.from_numpy(x_train), torch.from_numpy(x_val)
    y_train = torch.from_numpy(y_train).unsqueeze(1)
    y_val = torch.from_numpy(y_val).unsqueeze(1)
    baseline = torch.sqrt(((y_val - y_train.mean()) ** 2).mean()).item()
    print(f"train {len(x_train)}  val {len(x_val)}  baseline RMSE {baseline:.3f}")

    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)
    model = WineNet(len(FEATURES))
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=40, gamma=0.5)

    for epoch in range(1, args.epochs + 1):
        running, batches = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item()
            batches += 1
        scheduler.step()
        if epoch % 20 == 0 or epoch == 1:
            rmse, hits = evaluate(model, x_val, y_val)
            print(
                f"epoch {epoch:3d}  train MSE {running / batches:.4f}  "
                f"val RMSE {rmse:.3f}  rounded hits {hits:.3f}"
            )


if __name__ == "__main__":
    main()
