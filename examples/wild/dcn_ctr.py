"""A Deep & Cross Network (DCN-V2) for click-through-rate prediction: healthy.

In the manner of the public CTR libraries (DeepCTR-Torch, FuxiCTR): generated click logs
with ten categorical fields (user, item, advertiser, category, site, app, device, hour,
weekday, ad position) whose ids follow long-tailed (Zipf) frequencies and are hashed
into buckets of different sizes, and three heavy-tailed counts that are log-transformed
(``log1p``) and standardised with the training split's statistics. The clicks (about 10%)
are drawn from a hidden logistic model with per-id effects, low-rank crosses between
pairs of fields and effects of the counts. ``DCNv2`` looks up one ``nn.Embedding`` per
field (normal initialisation with a small std, as those libraries do), concatenates the
embeddings with the numeric features into ``x0``, and feeds it in parallel to a cross
network (``x_{l+1} = x0 * (W_l x_l + b_l) + x_l``, three layers with full matrices) and to
a deep ReLU MLP; the two outputs are concatenated and a linear layer gives one logit.
``nn.BCEWithLogitsLoss`` plus a small L2 penalty on the embedding tables (added to the
loss, as DeepCTR's ``l2_reg_embedding`` does), Adam, a ``TensorDataset`` and a shuffled
``DataLoader`` with a large batch, a ``main()`` with argparse. Prints the training loss
per epoch and the held-out AUC (computed by hand from ranks) and log-loss, next to the
log-loss of a predictor that always says the training click rate.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/dcn_ctr.py
    nndoctor check examples/wild/dcn_ctr.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

FIELDS = {  # field name -> number of hash buckets
    "user_id": 5000,
    "item_id": 2000,
    "advertiser_id": 300,
    "category": 40,
    "site_id": 400,
    "app_id": 600,
    "device_model": 800,
    "hour": 24,
    "weekday": 7,
    "banner_pos": 7,
}
CROSSES = [
    ("user_id", "category"),
    ("item_id", "site_id"),
    ("device_model", "hour"),
    ("advertiser_id", "app_id"),
]
N_NUMERIC = 3


def hash_bucket(raw: np.ndarray, buckets: int, salt: int) -> np.ndarray:
    return (raw * 2654435761 + salt) % (2**32) % buckets


def generate_logs(n: int, rng: np.random.Generator):
    """Click logs from a hidden logistic model: (categorical ids, raw counts, clicks)."""
    names = list(FIELDS)
    cats = np.zeros((n, len(names)), dtype=np.int64)
    for j, name in enumerate(names):
        raw_vocab = 2 * FIELDS[name]
        weights = 1.0 / np.arange(1, raw_vocab + 1) ** 1.1  # long-tailed frequencies
        raw = rng.choice(raw_vocab, size=n, p=weights / weights.sum())
        cats[:, j] = hash_bucket(raw, FIELDS[name], salt=j)
    counts = np.exp(rng.normal([2.0, 4.0, 1.0], [1.0, 1.5, 0.8], size=(n, N_NUMERIC)))
    return names, cats, counts


def hidden_logits(names, cats, counts, rng: np.random.Generator) -> np.ndarray:
    col = {name: j for j, name in enumerate(names)}
    logit = np.zeros(len(cats))
    for name, j in col.items():
        logit += rng.normal(0.0, 0.4, FIELDS[name])[cats[:, j]]
    for a, b in CROSSES:
        u = rng.normal(0.0, 0.5, (FIELDS[a], 4))
        v = rng.normal(0.0, 0.5, (FIELDS[b], 4))
        logit += (u[cats[:, col[a]]] * v[cats[:, col[b]]]).sum(axis=1)
    z = np.log1p(counts)
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    logit += (
        0.5 * z[:, 0] - 0.4 * z[:, 1] + 0.3 * np.tanh(z[:, 2]) * (cats[:, col["banner_pos"]] < 3)
    )
    return logit


def make_dataset(n: int, ctr: float, rng: np.random.Generator):
    names, cats, counts = generate_logs(n, rng)
    logit = hidden_logits(names, cats, counts, rng)
    lo, hi = -20.0, 20.0  # the bias that gives the wanted click rate, by bisection
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 / (1 + np.exp(-(logit + mid)))).mean() < ctr else (lo, mid)
    clicks = rng.random(n) < 1 / (1 + np.exp(-(logit + lo)))
    return cats, counts, clicks.astype(np.float32)


class CrossNetwork(nn.Module):
    """DCN-V2 cross layers: x_{l+1} = x0 * (W_l x_l + b_l) + x_l."""

    def __init__(self, dim: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(n_layers)])

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class DCNv2(nn.Module):
    def __init__(
        self,
        vocab_sizes,
        n_numeric: int,
        embed_dim: int = 8,
        cross_layers: int = 3,
        hidden=(256, 128),
    ) -> None:
        super().__init__()
        self.n_fields = len(vocab_sizes)
        self.embed_dim = embed_dim
        self.embeddings = nn.ModuleList([nn.Embedding(v, embed_dim) for v in vocab_sizes])
        for emb in self.embeddings:
            nn.init.normal_(emb.weight, std=1e-4)
        dim = self.n_fields * embed_dim + n_numeric
        self.cross = CrossNetwork(dim, cross_layers)
        layers, width = [], dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.deep = nn.Sequential(*layers)
        self.head = nn.Linear(dim + width, 1)

    def forward(self, cats: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        embs = [emb(cats[:, i]) for i, emb in enumerate(self.embeddings)]
        sparse = torch.stack(embs, dim=1).view(-1, self.n_fields * self.embed_dim)
        x0 = torch.cat([sparse, numeric], dim=1)
        out = torch.cat([self.cross(x0), self.deep(x0)], dim=1)
        return self.head(out).squeeze(1)

    def embedding_l2(self) -> torch.Tensor:
        return sum(emb.weight.pow(2).sum() for emb in self.embeddings)


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """AUC as the Mann-Whitney statistic, with tied scores sharing their mean rank."""
    sorted_scores, order = torch.sort(scores)
    _, inverse, counts = torch.unique_consecutive(
        sorted_scores, return_inverse=True, return_counts=True
    )
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks = torch.empty_like(mean_rank[inverse])
    ranks[order] = mean_rank[inverse]
    pos = labels > 0.5
    n_pos, n_neg = pos.sum().item(), (~pos).sum().item()
    return (ranks[pos].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def main() -> None:
    parser = argparse.ArgumentParser(description="DCN-V2 click-through-rate prediction")
    parser.add_argument("--n-train", type=int, default=400_000)
    parser.add_argument("--n-test", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l2-embedding", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    cats, counts, clicks = make_dataset(args.n_train + args.n_test, ctr=0.1, rng=rng)
    numeric = np.log1p(counts)
    train, test = slice(0, args.n_train), slice(args.n_train, None)
    mean, std = numeric[train].mean(axis=0), numeric[train].std(axis=0)
    numeric = ((numeric - mean) / std).astype(np.float32)
    to_t = torch.from_numpy
    train_set = TensorDataset(to_t(cats[train]), to_t(numeric[train]), to_t(clicks[train]))
    test_cats, test_num, test_y = to_t(cats[test]), to_t(numeric[test]), to_t(clicks[test])
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)

    model = DCNv2(list(FIELDS.values()), N_NUMERIC)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    base_rate = clicks[train].mean()
    print(f"click rate: train {base_rate:.3f}, test {clicks[test].mean():.3f}")

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for x_cat, x_num, y in loader:
            logits = model(x_cat, x_num)
            loss = criterion(logits, y)
            objective = loss + args.l2_embedding * model.embedding_l2()
            optimizer.zero_grad()
            objective.backward()
            optimizer.step()
            total += loss.item() * len(y)
            seen += len(y)
        model.eval()
        with torch.no_grad():
            test_logits = model(test_cats, test_num)
            test_loss = criterion(test_logits, test_y).item()
        auc = roc_auc(torch.sigmoid(test_logits), test_y)
        print(
            f"epoch {epoch}: train loss {total / seen:.4f}, test log-loss {test_loss:.4f}, "
            f"test AUC {auc:.4f}"
        )

    test_rate = test_y.mean().item()
    base_loss = -(test_rate * math.log(base_rate) + (1 - test_rate) * math.log(1 - base_rate))
    print(f"base-rate predictor (p = {base_rate:.3f}): test log-loss {base_loss:.4f}, AUC 0.5")


if __name__ == "__main__":
    main()
