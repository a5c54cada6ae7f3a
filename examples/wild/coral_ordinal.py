"""CORAL ordinal regression of an age bracket from clinical measurements: healthy.

In the manner of the coral-pytorch examples (Cao, Mirjalili & Raschka, "Rank consistent
ordinal regression for neural networks"): the subjects are generated with an age between
20 and 80 and nine measurements on their natural scales that drift with age, each with
its own noise (systolic blood pressure in mmHg, grip strength in kg, gait speed in m/s,
bone density in g/cm^2, total cholesterol in mg/dL, creatinine clearance in mL/min,
resting heart rate in bpm, the time of a five-times sit-to-stand test in seconds and the
number of steps walked per day, in the thousands) plus the sex, which shifts some of
them; the target is the age bracket, 20-29 to 70-79, six
ordered classes 0..5. 8,000 subjects for training and 2,000 held out; the features are
standardised with the training set's mean and standard deviation.

``CoralLayer`` is written as the library writes it: one shared weight vector
(``nn.Linear(size_in, 1, bias=False)``) plus ``num_classes - 1`` independent biases,
initialised decreasing, so that the K - 1 binary tasks "is the rank above k" share every
weight but the threshold. It sits on a ReLU MLP 10-64-32. The labels are extended to
``levels[i, k] = (y_i > k)`` by ``levels_from_labelbatch`` and ``coral_loss`` sums over the
K - 1 tasks the binary cross-entropies written with ``F.logsigmoid``, averaged over the
batch; the predicted rank is the number of probabilities above 0.5 (``proba_to_label``).
A shuffled ``DataLoader`` over a ``TensorDataset``, batches of 128, Adam at 5e-3 for 20
epochs. Top-level functions and ``main()`` with argparse; prints the training loss every
5 epochs and the held-out mean absolute error (in brackets) and accuracy, against the MAE
of always predicting the median bracket of the training set.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/coral_ordinal.py
    nndoctor check examples/wild/coral_ordinal.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

NUM_CLASSES = 6


def simulate_subjects(n, g):
    age = 20 + 60 * torch.rand(n, generator=g)
    male = (torch.rand(n, generator=g) < 0.5).float()
    a = (age - 50) / 30

    def noise(scale):
        return scale * torch.randn(n, generator=g)

    systolic = 118 + 14 * a + 6 * a**2 + 5 * male + noise(11)
    grip = 30 + 12 * male - 6 * a - 4 * a**2 + noise(5)
    gait = 1.25 - 0.18 * a - 0.1 * a**2 + noise(0.14)
    bone_density = 1.0 + 0.06 * male - 0.08 * a - 0.05 * torch.relu(a) * (1 - male) + noise(0.07)
    cholesterol = 195 + 22 * a - 12 * a**2 + noise(30)
    creatinine_clearance = 105 - 30 * a + 8 * male + noise(14)
    heart_rate = 70 + 2 * a - 3 * male + noise(9)
    sit_to_stand = 9.5 + 2.2 * a + 1.6 * a**2 + noise(1.5)
    daily_steps = (8500 - 2500 * a - 1500 * a**2 + noise(1800)).clamp(min=300)
    features = torch.stack(
        [
            systolic,
            grip,
            gait,
            bone_density,
            cholesterol,
            creatinine_clearance,
            heart_rate,
            sit_to_stand,
            daily_steps,
            male,
        ],
        dim=1,
    )
    bracket = ((age - 20) // 10).long().clamp(0, NUM_CLASSES - 1)
    return features, bracket


class CoralLayer(nn.Module):
    """A shared weight vector and num_classes - 1 independent biases."""

    def __init__(self, size_in, num_classes, preinit_bias=True):
        super().__init__()
        self.coral_weights = nn.Linear(size_in, 1, bias=False)
        if preinit_bias:
            self.coral_bias = nn.Parameter(
                torch.arange(num_classes - 1, 0, -1).float() / (num_classes - 1)
            )
        else:
            self.coral_bias = nn.Parameter(torch.zeros(num_classes - 1))

    def forward(self, x):
        return self.coral_weights(x) + self.coral_bias


class CoralMLP(nn.Module):
    def __init__(self, num_features, num_classes, hidden=(64, 32)):
        super().__init__()
        layers, width = [], num_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.features = nn.Sequential(*layers)
        self.fc = CoralLayer(width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


def levels_from_labelbatch(labels, num_classes):
    """Extended binary labels: levels[i, k] = 1 if labels[i] > k, for k = 0..K-2."""
    ranks = torch.arange(num_classes - 1, device=labels.device)
    return (labels[:, None] > ranks[None, :]).float()


def coral_loss(logits, levels):
    term = F.logsigmoid(logits) * levels + (F.logsigmoid(logits) - logits) * (1 - levels)
    return -term.sum(dim=1).mean()


def proba_to_label(probas):
    return (probas > 0.5).sum(dim=1)


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    pred = proba_to_label(torch.sigmoid(model(x)))
    mae = (pred - y).abs().float().mean().item()
    acc = (pred == y).float().mean().item()
    return mae, acc


def main():
    parser = argparse.ArgumentParser(description="CORAL ordinal regression")
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = simulate_subjects(args.n_train, g)
    x_test, y_test = simulate_subjects(args.n_test, g)

    mean, std = x_train.mean(dim=0), x_train.std(dim=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    median = y_train.median()
    baseline_mae = (y_test - median).abs().float().mean().item()

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    model = CoralMLP(x_train.shape[1], NUM_CLASSES)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, n = 0.0, 0
        for features, labels in train_loader:
            levels = levels_from_labelbatch(labels, NUM_CLASSES)
            logits = model(features)
            loss = coral_loss(logits, levels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            n += len(labels)
        if epoch % 5 == 0:
            mae, acc = evaluate(model, x_test, y_test)
            print(
                f"epoch {epoch:2d}  train loss {total / n:.4f}  test MAE {mae:.3f}  acc {acc:.3f}"
            )

    mae, acc = evaluate(model, x_test, y_test)
    print(f"final: test MAE {mae:.3f} (median baseline {baseline_mae:.3f}), accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
