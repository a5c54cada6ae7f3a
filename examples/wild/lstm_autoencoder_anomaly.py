"""LSTM autoencoder for anomaly detection on multivariate sensor windows: healthy.

In the manner of the "LSTM autoencoder for time-series anomaly detection" tutorials: a
generated machine with five sensors on very different scales (periodic signals locked to
a 40-step machine cycle, with harmonics, a slow modulation and noise) recorded for
12,000 steps of normal operation, cut into sliding windows of 32 steps; the windows of
the first 70% train, the next 15% validate (early stopping), the last 15% are the normal
windows of the test set, and a copy of each of them receives an injected anomaly (a
spike, a level shift or a change of frequency over part of the window, in one random
sensor), so that half of the test windows are anomalous. A ``StandardScaler``-style
scaler (per sensor, ``fit`` / ``transform``) is fitted on the training windows only.
``Encoder`` is two stacked ``nn.LSTM(batch_first=True)`` whose last hidden state is the
latent vector; ``Decoder`` repeats the latent over the 32 time steps, runs two LSTMs and
maps each step back to the five sensors with a ``nn.Linear``. ``nn.MSELoss``, Adam
(``lr=2e-3``) for at most 30 epochs, ``DataLoader`` with shuffling, validation under
``torch.no_grad()`` with ``model.eval()``, early stopping on the validation
reconstruction loss (patience 5) with the best weights kept (``copy.deepcopy`` of the
state dict). The threshold is the 99th percentile of the training windows'
reconstruction errors; the test report gives AUROC and average precision of the error as
an anomaly score, and precision / recall / F1 at the threshold. argparse, ``main()``;
prints the training and validation loss every 2 epochs.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/lstm_autoencoder_anomaly.py
    nndoctor check examples/wild/lstm_autoencoder_anomaly.py
"""

import argparse
import copy
import math

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

N_SENSORS = 5


def make_signals(n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Normal operation: (n_steps, N_SENSORS) periodic signals on their own scales."""
    t = np.arange(n_steps, dtype=np.float64)
    cycle = 2 * math.pi * t / 40  # one machine cycle every 40 steps
    slow = np.sin(2 * math.pi * t / 400)
    columns = [
        60 + 8 * np.sin(cycle) + 2 * np.sin(2 * cycle + 0.5),
        1.2 + 0.3 * np.sin(cycle + 1.0) + 0.05 * slow,
        300 + 40 * np.cos(cycle) * (1 + 0.3 * slow),
        5 + 2 * np.sin(2 * cycle),
        -20 + 6 * np.abs(np.sin(cycle / 2)),
    ]
    signals = np.stack(columns, axis=1)
    amplitude = signals.std(axis=0)
    return signals + 0.05 * amplitude * rng.standard_normal(signals.shape)


def sliding_windows(series: np.ndarray, window: int, stride: int) -> np.ndarray:
    starts = range(0, len(series) - window + 1, stride)
    return np.stack([series[s : s + window] for s in starts])


def inject_anomalies(windows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One anomaly per window, in one sensor, over a random stretch of the window."""
    out = windows.copy()
    n, length, _ = out.shape
    scale = windows.reshape(-1, N_SENSORS).std(axis=0)
    t = np.arange(length)
    for i in range(n):
        sensor = rng.integers(N_SENSORS)
        kind = rng.integers(3)
        start = rng.integers(4, length - 8)
        sign = rng.choice([-1.0, 1.0])
        if kind == 0:  # spike of one or two samples
            width = rng.integers(1, 3)
            out[i, start : start + width, sensor] += sign * rng.uniform(0.8, 1.6) * scale[sensor]
        elif kind == 1:  # level shift until the end of the window
            out[i, start:, sensor] += sign * rng.uniform(0.3, 0.6) * scale[sensor]
        else:  # the sensor oscillates at another frequency for a while
            stop = min(length, start + rng.integers(12, 24))
            wave = np.sin(2 * math.pi * t[start:stop] / rng.uniform(4, 8))
            out[i, start:stop, sensor] += 0.4 * scale[sensor] * wave
    return out


class StandardScaler:
    def fit(self, windows: np.ndarray) -> "StandardScaler":
        flat = windows.reshape(-1, windows.shape[-1])
        self.mean_, self.scale_ = flat.mean(axis=0), flat.std(axis=0)
        return self

    def transform(self, windows: np.ndarray) -> np.ndarray:
        return (windows - self.mean_) / self.scale_


class Encoder(nn.Module):
    def __init__(self, n_features: int, embedding_dim: int) -> None:
        super().__init__()
        self.hidden_dim = 2 * embedding_dim
        self.rnn1 = nn.LSTM(n_features, self.hidden_dim, batch_first=True)
        self.rnn2 = nn.LSTM(self.hidden_dim, embedding_dim, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.rnn1(x)
        _, (hidden_n, _) = self.rnn2(x)
        return hidden_n[-1]  # (batch, embedding_dim)


class Decoder(nn.Module):
    def __init__(self, seq_len: int, embedding_dim: int, n_features: int) -> None:
        super().__init__()
        self.seq_len, self.embedding_dim = seq_len, embedding_dim
        self.hidden_dim = 2 * embedding_dim
        self.rnn1 = nn.LSTM(embedding_dim, embedding_dim, batch_first=True)
        self.rnn2 = nn.LSTM(embedding_dim, self.hidden_dim, batch_first=True)
        self.output_layer = nn.Linear(self.hidden_dim, n_features)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.unsqueeze(1).repeat(1, self.seq_len, 1)  # (batch, seq_len, embedding_dim)
        x, _ = self.rnn1(x)
        x, _ = self.rnn2(x)
        return self.output_layer(x)


class RecurrentAutoencoder(nn.Module):
    def __init__(self, seq_len: int, n_features: int, embedding_dim: int = 32) -> None:
        super().__init__()
        self.encoder = Encoder(n_features, embedding_dim)
        self.decoder = Decoder(seq_len, embedding_dim, n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@torch.no_grad()
def reconstruction_errors(model: nn.Module, windows: torch.Tensor) -> np.ndarray:
    model.eval()
    errors = []
    for batch in windows.split(512):
        errors.append(((model(batch) - batch) ** 2).mean(dim=(1, 2)))
    return torch.cat(errors).numpy()


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    n_pos, n_neg = labels.sum(), (1 - labels).sum()
    return float((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores)
    hits = labels[order]
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at_k * hits).sum() / hits.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description="LSTM autoencoder anomaly detection")
    parser.add_argument("--steps", type=int, default=12_000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--percentile", type=float, default=99.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)

    series = make_signals(args.steps, rng)
    n_train, n_val = int(0.7 * args.steps), int(0.15 * args.steps)
    train_w = sliding_windows(series[:n_train], args.window, args.stride)
    val_w = sliding_windows(series[n_train : n_train + n_val], args.window, args.stride)
    test_normal = sliding_windows(series[n_train + n_val :], args.window, 4)
    test_anomalous = inject_anomalies(test_normal, rng)
    test_w = np.concatenate([test_normal, test_anomalous])
    test_labels = np.concatenate([np.zeros(len(test_normal)), np.ones(len(test_anomalous))])

    scaler = StandardScaler().fit(train_w)
    train_x = torch.tensor(scaler.transform(train_w), dtype=torch.float32)
    val_x = torch.tensor(scaler.transform(val_w), dtype=torch.float32)
    test_x = torch.tensor(scaler.transform(test_w), dtype=torch.float32)
    print(
        f"windows: {len(train_x)} train, {len(val_x)} validation, {len(test_x)} test "
        f"({int(test_labels.sum())} anomalous)"
    )

    train_loader = DataLoader(TensorDataset(train_x), batch_size=args.batch_size, shuffle=True)
    model = RecurrentAutoencoder(args.window, N_SENSORS, args.embedding_dim)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    best_loss, best_state, bad_epochs = float("inf"), None, 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        train_losses = []
        for (seq_true,) in train_loader:
            optimizer.zero_grad()
            seq_pred = model(seq_true)
            loss = criterion(seq_pred, seq_true)
            loss.backward()
            optimizer.step()
            train_losses.append(loss.item())

        val_loss = float(reconstruction_errors(model, val_x).mean())
        train_loss = float(np.mean(train_losses))
        if val_loss < best_loss:
            best_loss, best_state, bad_epochs = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            bad_epochs += 1
        if epoch % 2 == 0 or bad_epochs > args.patience:
            print(f"epoch {epoch:2d}: train loss {train_loss:.5f}, val loss {val_loss:.5f}")
        if bad_epochs > args.patience:
            print(f"early stopping: no improvement for {bad_epochs} epochs")
            break

    model.load_state_dict(best_state)
    threshold = np.percentile(reconstruction_errors(model, train_x), args.percentile)
    scores = reconstruction_errors(model, test_x)
    predicted = scores > threshold
    tp = float((predicted & (test_labels == 1)).sum())
    precision = tp / max(1.0, float(predicted.sum()))
    recall = tp / float(test_labels.sum())
    f1 = 2 * precision * recall / max(1e-12, precision + recall)
    print(
        f"best val loss {best_loss:.5f}, threshold {threshold:.5f}; test AUROC "
        f"{auroc(scores, test_labels):.3f}, average precision "
        f"{average_precision(scores, test_labels):.3f}, precision {precision:.3f}, "
        f"recall {recall:.3f}, F1 {f1:.3f}"
    )


if __name__ == "__main__":
    main()
