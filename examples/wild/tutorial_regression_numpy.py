"""Regression in the manner of the classic beginner tutorials: healthy.

In the manner of the "linear regression / feed-forward net" scripts of the well-known
PyTorch tutorial collections: the training data are numpy arrays (200 samples of three
features, targets from a smooth function plus noise), and every epoch converts them with
``torch.from_numpy`` inside the loop and trains on all of them at once (full-batch gradient
descent, no DataLoader). A small ReLU network, ``nn.MSELoss``, Adam; the loss is printed
every 50 epochs and the held-out loss at the end.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/tutorial_regression_numpy.py
    nndoctor check examples/wild/tutorial_regression_numpy.py
"""

import argparse

import numpy as np
import torch
from torch import nn


def make_data(n: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    x = rng.uniform(-3, 3, size=(n, 3)).astype(np.float32)
    y = np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3] + 0.05 * rng.randn(n, 1)
    return x, y.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-epochs", type=int, default=1000)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.RandomState(args.seed)
    x_train, y_train = make_data(200, rng)
    x_test, y_test = make_data(100, rng)

    model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)

    for epoch in range(args.num_epochs):
        # Convert numpy arrays to torch tensors
        inputs = torch.from_numpy(x_train)
        targets = torch.from_numpy(y_train)

        # Forward pass
        outputs = model(inputs)
        loss = criterion(outputs, targets)

        # Backward and optimize
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if (epoch + 1) % 50 == 0:
            print(f"Epoch [{epoch + 1}/{args.num_epochs}], Loss: {loss.item():.4f}")

    with torch.no_grad():
        test_loss = criterion(model(torch.from_numpy(x_test)), torch.from_numpy(y_test))
    print(f"test loss {test_loss.item():.4f} (target variance {y_test.var():.4f})")


if __name__ == "__main__":
    main()
