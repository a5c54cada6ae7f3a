"""A shared MLP trunk with a classification head and a regression head: healthy.

In the manner of the usual multi-task tabular tutorials: a generated table of 16
numeric features (a few latent factors mixed linearly, on different scales) gives each
row two targets, a segment among 4 classes and a continuous value (a "spend" in
currency units, a smooth function of the same factors plus noise). The features and the
regression target are standardised with the training rows' statistics. ``MultiTaskNet``
is a two-layer ``nn.Sequential`` trunk (Linear, LayerNorm, GELU, Dropout) feeding a
linear classification head and a linear regression head; the total loss is
``cross_entropy + 0.5 * mse``. AdamW with weight decay, ``CosineAnnealingLR`` stepped
once per epoch, ``DataLoader`` with shuffling. A ``main()`` with argparse; prints the
two training losses and the validation accuracy and RMSE (in currency units) per epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/multitask_heads.py
    nndoctor check examples/wild/multitask_heads.py
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_table(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    fixed = torch.Generator().manual_seed(1234)  # the same "world" for every seed
    mix = torch.randn(5, 16, generator=fixed)
    scales = torch.logspace(-1, 2, 16)
    offsets = torch.linspace(0, 50, 16)
    segment_w = torch.randn(5, 4, generator=fixed)
    latent = torch.randn(n, 5, generator=g)
    x = (latent @ mix + 0.3 * torch.randn(n, 16, generator=g)) * scales + offsets
    segment = (latent @ segment_w + 0.3 * torch.randn(n, 4, generator=g)).argmax(1)
    spend = (
        400 + 120 * latent[:, 0] + 60 * latent[:, 1] * latent[:, 2] + 80 * torch.tanh(latent[:, 3])
    )
    spend = spend + 15 * torch.randn(n, generator=g)
    return x, segment, spend


class MultiTaskNet(nn.Module):
    def __init__(
        self, n_features: int, n_classes: int, hidden: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
        )
        self.cls_head = nn.Linear(hidden, n_classes)
        self.reg_head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.cls_head(h), self.reg_head(h).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description="multi-task MLP: segment + spend")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--reg-weight", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x, segment, spend = make_table(5000, args.seed)
    n_train = 4000
    x_mean, x_std = x[:n_train].mean(0), x[:n_train].std(0)
    y_mean, y_std = spend[:n_train].mean(), spend[:n_train].std()
    x = (x - x_mean) / x_std
    spend_z = (spend - y_mean) / y_std

    train_loader = DataLoader(
        TensorDataset(x[:n_train], segment[:n_train], spend_z[:n_train]),
        batch_size=args.batch_size,
        shuffle=True,
    )
    x_val, seg_val, spend_val = x[n_train:], segment[n_train:], spend[n_train:]

    model = MultiTaskNet(x.shape[1], 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)

    for epoch in range(args.epochs):
        model.train()
        ce_sum, mse_sum, n = 0.0, 0.0, 0
        for xb, seg_b, spend_b in train_loader:
            logits, pred = model(xb)
            ce = F.cross_entropy(logits, seg_b)
            mse = F.mse_loss(pred, spend_b)
            loss = ce + args.reg_weight * mse
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ce_sum += ce.item() * len(xb)
            mse_sum += mse.item() * len(xb)
            n += len(xb)
        scheduler.step()

        model.eval()
        with torch.no_grad():
            logits, pred = model(x_val)
            acc = (logits.argmax(1) == seg_val).float().mean().item()
            rmse = ((pred * y_std + y_mean - spend_val) ** 2).mean().sqrt().item()
        print(
            f"epoch {epoch + 1}: ce {ce_sum / n:.4f}, mse {mse_sum / n:.4f}, "
            f"val acc {acc:.3f}, val rmse {rmse:.1f} (target std {spend_val.std():.1f})"
        )


if __name__ == "__main__":
    main()
