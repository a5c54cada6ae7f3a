"""A tabular MLP with BatchNorm, class weights and early stopping: healthy.

In the manner of the common tabular-classification notebooks: a generated table of
credit-risk-like rows (12 numeric columns on very different scales, three imbalanced
classes at about 70/20/10 %) is split into training, validation and test rows,
standardised with the training statistics (``StandardScaler``-style, by hand), and
served by ``DataLoader``s. ``TabularNet`` stacks ``Linear`` + ``BatchNorm1d`` + ReLU +
``Dropout`` twice before a linear head; ``nn.CrossEntropyLoss`` is weighted by the
inverse class frequencies; AdamW; early stopping with a patience of 3 epochs on the
validation loss, restoring the best weights from a ``state_dict`` copy. A class
``Trainer``-less ``main()`` with argparse. Prints per-epoch losses and the final
test accuracy and per-class recall.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/tabular_mlp_bn.py
    nndoctor check examples/compat/tabular_mlp_bn.py
"""

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_table(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.multinomial(torch.tensor([0.7, 0.2, 0.1]), n, replacement=True, generator=g)
    centres = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.6, -1.0, 0.6, 0.0], [-0.8, 1.6, 0.0, 1.2]])
    latent = centres[y] + torch.randn(n, 4, generator=g)
    mix = torch.randn(4, 12, generator=torch.Generator().manual_seed(7))
    x = latent @ mix + 0.5 * torch.randn(n, 12, generator=g)
    scales = torch.logspace(-2, 3, 12)  # income in thousands, ratios in hundredths, ...
    return x * scales + scales * 3, y


class TabularNet(nn.Module):
    def __init__(self, n_features: int, n_classes: int, hidden: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x, y = make_table(6000, args.seed)
    perm = torch.randperm(len(y))
    train_idx, val_idx, test_idx = perm[:4000], perm[4000:5000], perm[5000:]
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    x = (x - mean) / std

    train_loader = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=128, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=512)

    counts = torch.bincount(y[train_idx], minlength=3).float()
    class_weights = counts.sum() / (len(counts) * counts)
    criterion = nn.CrossEntropyLoss(weight=class_weights)
    model = TabularNet(x.shape[1], 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)

    best_loss, best_state, bad_epochs = float("inf"), None, 0
    for epoch in range(args.epochs):
        model.train()
        running = 0.0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * len(yb)
        model.eval()
        with torch.no_grad():
            val_loss = sum(criterion(model(xb), yb).item() * len(yb) for xb, yb in val_loader) / len(val_idx)
        print(f"epoch {epoch + 1}: train loss {running / len(train_idx):.4f}, val loss {val_loss:.4f}")
        if val_loss < best_loss - 1e-4:
            best_loss, best_state, bad_epochs = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            bad_epochs += 1
            if bad_epochs >= args.patience:
                print("early stopping")
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        pred = model(x[test_idx]).argmax(1)
    recall = [(pred[y[test_idx] == c] == c).float().mean().item() for c in range(3)]
    print(f"test accuracy {(pred == y[test_idx]).float().mean():.3f}, recall per class {[round(r, 3) for r in recall]}")


if __name__ == "__main__":
    main()
