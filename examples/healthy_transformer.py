"""Token-sequence classification with a small Transformer encoder: a healthy training script.

Trains ``TokenClassifier`` (a custom ``nn.Module``: token embedding plus a learned
position embedding, a two-layer ``nn.TransformerEncoder`` with dropout, mean pooling,
a linear head) to tell which residue class (token id mod 4) is most frequent in a
sequence of 16 random token ids. Integer inputs (no float statistics to check),
``F.cross_entropy``, AdamW with linear warm-up then cosine decay (``LambdaLR``,
stepped per batch), gradient clipping, ``main()`` with argparse and a ``--device`` option.

Healthy: nndoctor should report no warning and no error. During warm-up the
optimiser's rate of the moment is a small fraction of 3e-4; experiments on copies
use the schedule's own rate.

    python examples/healthy_transformer.py --epochs 3
    nndoctor check examples/healthy_transformer.py
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

VOCAB, LENGTH, CLASSES = 50, 16, 4


def make_sequences(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token ids (n, LENGTH) and, per sequence, its most frequent residue class."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, VOCAB, (n, LENGTH), generator=g)
    counts = torch.stack([(tokens % CLASSES == c).sum(1) for c in range(CLASSES)], dim=1)
    return tokens, counts.argmax(1)


class TokenClassifier(nn.Module):
    def __init__(self, width: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.position = nn.Parameter(torch.randn(LENGTH, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.head = nn.Linear(width, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens) + self.position)  # (N, LENGTH, width)
        return self.head(h.mean(dim=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    tokens, labels = make_sequences(4096, seed=args.seed)
    loader = DataLoader(TensorDataset(tokens, labels), batch_size=args.batch_size, shuffle=True)

    model = TokenClassifier().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total = args.epochs * len(loader)

    def warmup_then_cosine(step: int) -> float:
        return min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * step / total))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_cosine)

    for epoch in range(args.epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
