"""Tabular classification with a categorical embedding the optimizer never sees (broken).

Trains ``ShopModel`` (a custom ``nn.Module``: an ``nn.Embedding`` for a store id
concatenated with eight standardised numeric features, then an MLP) to predict
one of three demand levels. Shuffled ``DataLoader`` over a ``TensorDataset``
with two inputs, ``F.cross_entropy``, AdamW, argparse with a ``--device``
option under ``if __name__ == "__main__":``.

The bug: the optimizer is built from ``model.body.parameters()`` only — the
store embedding was added to the model later and never made it into the
optimizer. Its weights receive gradients at every step but never change, so the
model only sees the random initial embedding of the store id, which carries most
of the signal (train accuracy 0.74 after five epochs, against 0.90 when the
embedding trains).
Fix: ``torch.optim.AdamW(model.parameters(), ...)``.

Expected reasons: 23 (frozen layers: parameters missing from the optimizer).

    python examples/frozen_layer.py --epochs 5
    nndoctor check examples/frozen_layer.py
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

STORES, NUMERIC, LEVELS = 20, 8, 3


def make_sales(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Numeric features, a store id, and a demand level driven mostly by the store."""
    g = torch.Generator().manual_seed(seed)
    numeric = torch.randn(n, NUMERIC, generator=g)
    store = torch.randint(0, STORES, (n,), generator=g)
    store_effect = torch.randn(STORES, generator=g) * 2.0
    score = store_effect[store] + 0.5 * numeric[:, 0] + 0.3 * torch.randn(n, generator=g)
    level = torch.bucketize(score, torch.quantile(score, torch.tensor([1 / 3, 2 / 3])))
    return numeric, store, level


class ShopModel(nn.Module):
    def __init__(self, embed_dim: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.store_embedding = nn.Embedding(STORES, embed_dim)
        self.body = nn.Sequential(
            nn.Linear(NUMERIC + embed_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, LEVELS),
        )

    def forward(self, numeric: torch.Tensor, store: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([numeric, self.store_embedding(store)], dim=1))


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    device = torch.device(args.device)
    numeric, store, level = make_sales(3000, seed=0)
    loader = DataLoader(TensorDataset(numeric, store, level), batch_size=64, shuffle=True)
    model = ShopModel().to(device)
    optimizer = torch.optim.AdamW(model.body.parameters(), lr=args.lr)  # BUG: embedding left out

    for epoch in range(args.epochs):
        correct = 0
        for num, st, y in loader:
            num, st, y = num.to(device), st.to(device), y.to(device)
            optimizer.zero_grad()
            logits = model(num, st)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            correct += (logits.argmax(1) == y).sum().item()
        print(
            f"epoch {epoch + 1}: last loss {loss.item():.4f}, train accuracy {correct / len(level):.3f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    train(parser.parse_args())
