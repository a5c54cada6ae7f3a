"""Probabilistic forecasting with a Transformer encoder and a quantile loss: healthy.

In the manner of the Transformer time-series forecasting tutorials that follow PyTorch's
own ``nn.Transformer`` language-model example (sequence-first tensors throughout): twelve
hourly series are generated with a daily and a weekly-like season (periods 24 and 72
hours), a slow trend and noise whose size follows the daily cycle, so that the spread of
the next values is part of what must be predicted. Each series is standardised with the
mean and standard deviation of its own training part (the first 70% of the hours); the
training windows (96 hours of context, the next 24 hours as targets) come from that
part, the validation windows from the rest. ``QuantileTransformer`` projects each hour
of context with a ``Linear`` layer, adds a fixed sinusoidal ``PositionalEncoding`` of
shape ``(max_len, 1, d_model)``, runs an ``nn.TransformerEncoder`` with the default
``batch_first=False`` on ``(seq, batch, d_model)`` and reads the 24 x 3 quantiles of the
horizon from the last position. The pinball loss for the quantiles 0.1, 0.5 and 0.9 is
written by hand; AdamW with a linear warm-up then a cosine decay through ``LambdaLR``
stepped per batch, gradient clipping, a ``DataLoader`` over a ``TensorDataset``. A
``main()`` with argparse; prints the training loss and, on the validation windows in the
series' own units, the coverage of the 80% interval (q0.1 to q0.9) and the MAE of the
median against a seasonal-naive forecast (the same hours one day earlier).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ts_transformer_quantile.py
    nndoctor check examples/wild/ts_transformer_quantile.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

QUANTILES = (0.1, 0.5, 0.9)


def make_series(n_series: int, length: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(length, dtype=np.float64)
    series = []
    for _ in range(n_series):
        level = rng.uniform(20.0, 80.0)
        daily = rng.uniform(3.0, 10.0) * np.sin(2 * np.pi * t / 24 + rng.uniform(0, 2 * np.pi))
        weekly = rng.uniform(2.0, 6.0) * np.sin(2 * np.pi * t / 72 + rng.uniform(0, 2 * np.pi))
        trend = rng.uniform(-0.004, 0.004) * t
        noise_scale = rng.uniform(0.8, 2.0) * (1.0 + 0.8 * np.sin(2 * np.pi * t / 24) ** 2)
        series.append(level + daily + weekly + trend + noise_scale * rng.standard_normal(length))
    return np.stack(series)


def make_windows(series: np.ndarray, context: int, horizon: int, stride: int):
    inputs, targets = [], []
    for s in series:
        for start in range(0, len(s) - context - horizon + 1, stride):
            inputs.append(s[start : start + context])
            targets.append(s[start + context : start + context + horizon])
    return np.array(inputs), np.array(targets)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 512) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (seq_len, batch, d_model)
        x = x + self.pe[: x.size(0)]
        return self.dropout(x)


class QuantileTransformer(nn.Module):
    def __init__(
        self,
        horizon: int,
        n_quantiles: int,
        d_model: int = 64,
        nhead: int = 4,
        d_hid: int = 128,
        nlayers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.horizon = horizon
        self.n_quantiles = n_quantiles
        self.input_proj = nn.Linear(1, d_model)
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        layer = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers)
        self.head = nn.Linear(d_model, horizon * n_quantiles)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        # src: (seq_len, batch, 1) -> quantiles (batch, horizon, n_quantiles)
        x = self.pos_encoder(self.input_proj(src))
        x = self.transformer_encoder(x)
        out = self.head(x[-1])
        return out.view(-1, self.horizon, self.n_quantiles)


def quantile_loss(
    pred: torch.Tensor, target: torch.Tensor, quantiles: torch.Tensor
) -> torch.Tensor:
    # pred: (batch, horizon, Q), target: (batch, horizon)
    errors = target.unsqueeze(-1) - pred
    return torch.max(quantiles * errors, (quantiles - 1) * errors).mean()


def warmup_cosine(warmup_steps: int, total_steps: int):
    def lr_lambda(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return lr_lambda


def evaluate(model, loader, mean, std, device):
    model.eval()
    covered, abs_err, naive_err, count = 0.0, 0.0, 0.0, 0
    with torch.no_grad():
        for x, y, idx in loader:
            src = x.transpose(0, 1).unsqueeze(-1).to(device)
            pred = model(src).cpu()
            m, s = mean[idx].view(-1, 1, 1), std[idx].view(-1, 1, 1)
            pred = pred * s + m
            y_true = y * s[..., 0] + m[..., 0]
            naive = x[:, -24:] * s[..., 0] + m[..., 0]
            lo, med, hi = pred[..., 0], pred[..., 1], pred[..., 2]
            covered += ((y_true >= lo) & (y_true <= hi)).float().sum().item()
            abs_err += (med - y_true).abs().sum().item()
            naive_err += (naive[:, : y.size(1)] - y_true).abs().sum().item()
            count += y_true.numel()
    model.train()
    return covered / count, abs_err / count, naive_err / count


def main() -> None:
    parser = argparse.ArgumentParser(description="Transformer quantile forecasting")
    parser.add_argument("--n-series", type=int, default=12)
    parser.add_argument("--length", type=int, default=1600)
    parser.add_argument("--context", type=int, default=96)
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    raw = make_series(args.n_series, args.length, rng)
    split = int(0.7 * args.length)
    mean = raw[:, :split].mean(axis=1, keepdims=True)
    std = raw[:, :split].std(axis=1, keepdims=True)
    scaled = (raw - mean) / std

    train_x, train_y = make_windows(scaled[:, :split], args.context, args.horizon, stride=3)
    val_x, val_y = make_windows(
        scaled[:, split - args.context :], args.context, args.horizon, stride=args.horizon
    )
    n_train = len(train_x) // args.n_series
    n_val = len(val_x) // args.n_series
    train_idx = np.repeat(np.arange(args.n_series), n_train)
    val_idx = np.repeat(np.arange(args.n_series), n_val)

    train_set = TensorDataset(
        torch.tensor(train_x, dtype=torch.float32),
        torch.tensor(train_y, dtype=torch.float32),
        torch.tensor(train_idx),
    )
    val_set = TensorDataset(
        torch.tensor(val_x, dtype=torch.float32),
        torch.tensor(val_y, dtype=torch.float32),
        torch.tensor(val_idx),
    )
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val_set, batch_size=256)
    mean_t = torch.tensor(mean[:, 0], dtype=torch.float32)
    std_t = torch.tensor(std[:, 0], dtype=torch.float32)

    model = QuantileTransformer(args.horizon, len(QUANTILES)).to(device)
    quantiles = torch.tensor(QUANTILES, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total_steps = args.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(args.warmup_steps, total_steps)
    )

    print(f"{len(train_set)} training windows, {len(val_set)} validation windows")
    for epoch in range(1, args.epochs + 1):
        total, batches = 0.0, 0
        for x, y, _ in train_loader:
            src = x.transpose(0, 1).unsqueeze(-1).to(device)  # (seq_len, batch, 1)
            y = y.to(device)
            optimizer.zero_grad()
            loss = quantile_loss(model(src), y, quantiles)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total += loss.item()
            batches += 1
        coverage, mae, naive_mae = evaluate(model, val_loader, mean_t, std_t, device)
        print(
            f"epoch {epoch}: train pinball {total / batches:.4f} | val 80% coverage "
            f"{coverage:.3f}, median MAE {mae:.3f} (seasonal naive {naive_mae:.3f}), "
            f"lr {scheduler.get_last_lr()[0]:.2e}"
        )


if __name__ == "__main__":
    main()
