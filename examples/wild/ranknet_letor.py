"""RankNet learning to rank on a generated LETOR-style collection: healthy.

In the manner of the RankNet implementations for the LETOR / MSLR-WEB benchmarks
(``allRank``-style padded query slates): 900 generated queries, each with 20 to 60
candidate documents described by 46 query-document features (LETOR 4.0 has 46) and a
graded relevance label 0-4 from a nonlinear utility of a few of the features plus a
per-query offset and noise; most documents are irrelevant, as in the real data. Every
query keeps at least one relevant document. The features are standardised with the
training documents' means and standard deviations; each query is a slate padded to 60
documents with a mask and the label -1 on the padding, and a ``TensorDataset`` of
slates goes through a shuffled ``DataLoader`` of 16 queries. ``Scorer`` is a ReLU MLP
scoring one document at a time (Xavier initialisation by ``model.apply``). RankNet's
pairwise loss: within each query, for every pair of real documents with different
labels, ``BCEWithLogits`` of the score difference s_i - s_j against
P_ij = (1 + sign(rel_i - rel_j)) / 2, averaged over the pairs of the batch. Adam with a
little weight decay; NDCG@10 on the validation and test queries (gain 2^rel - 1)
under ``torch.no_grad()`` with ``model.eval()``, against a random ranking. A ``main()``
with argparse.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ranknet_letor.py
    nndoctor check examples/wild/ranknet_letor.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_FEATURES, MAX_DOCS, PADDED_Y_VALUE = 46, 60, -1


def make_collection(n_queries, rng):
    w = rng.normal(size=N_FEATURES) * (rng.random(N_FEATURES) < 0.3)
    v = rng.normal(size=(N_FEATURES, 4)) / np.sqrt(N_FEATURES)
    queries = []
    for _ in range(n_queries):
        n_docs = rng.integers(20, MAX_DOCS + 1)
        x = rng.normal(size=(n_docs, N_FEATURES)) + rng.normal(0, 0.5, size=N_FEATURES)
        x[:, :10] = np.abs(x[:, :10]) * 3 + 1  # count-like features (BM25, tf) on their own scale
        h = x.copy()
        h[:, :10] = (h[:, :10] - 3.4) / 1.8
        utility = 0.3 * h @ w + np.tanh(h @ v).sum(1) + rng.normal(0, 0.5, n_docs)
        utility -= np.quantile(utility, rng.uniform(0.6, 0.9))
        rel = np.digitize(utility, [0.0, 0.8, 1.6, 2.4])
        if rel.max() == 0:
            rel[np.argmax(utility)] = 1
        queries.append((x.astype(np.float32), rel))
    return queries


def to_slates(queries, mean, std):
    x = np.zeros((len(queries), MAX_DOCS, N_FEATURES), dtype=np.float32)
    y = np.full((len(queries), MAX_DOCS), PADDED_Y_VALUE, dtype=np.float32)
    for i, (features, rel) in enumerate(queries):
        x[i, : len(rel)] = (features - mean) / std
        y[i, : len(rel)] = rel
    return torch.from_numpy(x), torch.from_numpy(y)


class Scorer(nn.Module):
    def __init__(self, n_features, hidden=(64, 32), dropout=0.1):
        super().__init__()
        layers, n_in = [], n_features
        for n_out in hidden:
            layers += [nn.Linear(n_in, n_out), nn.ReLU(), nn.Dropout(dropout)]
            n_in = n_out
        layers.append(nn.Linear(n_in, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def init_weights(m):
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


def ranknet_loss(scores, rel):
    """Pairwise logistic loss over the pairs of real documents with different labels."""
    valid = rel != PADDED_Y_VALUE
    diff = scores[:, :, None] - scores[:, None, :]
    s_ij = torch.sign(rel[:, :, None] - rel[:, None, :])
    pairs = valid[:, :, None] & valid[:, None, :] & (s_ij != 0)
    target = 0.5 * (1 + s_ij)
    return F.binary_cross_entropy_with_logits(diff[pairs], target[pairs])


def ndcg_at_k(scores, rel, k=10):
    valid = rel != PADDED_Y_VALUE
    scores = scores.masked_fill(~valid, float("-inf"))
    gains = (2 ** rel.clamp(min=0)) - 1
    discounts = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float32))
    order = scores.argsort(dim=1, descending=True)[:, :k]
    dcg = (gains.gather(1, order) * discounts).sum(1)
    ideal = (gains.sort(dim=1, descending=True).values[:, :k] * discounts).sum(1)
    return (dcg / ideal).mean().item()


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        return ndcg_at_k(model(x), y)


def main():
    parser = argparse.ArgumentParser(description="RankNet on a generated LETOR-style collection")
    parser.add_argument("--queries", type=int, default=900)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    queries = make_collection(args.queries, rng)
    train_q, val_q, test_q = queries[:600], queries[600:750], queries[750:]
    train_docs = np.concatenate([features for features, _ in train_q])
    mean, std = train_docs.mean(0), train_docs.std(0)
    x_train, y_train = to_slates(train_q, mean, std)
    x_val, y_val = to_slates(val_q, mean, std)
    x_test, y_test = to_slates(test_q, mean, std)
    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    random_ndcg = ndcg_at_k(torch.rand(y_val.shape), y_val)
    print(f"{len(train_q)} training queries, random ranking: val NDCG@10 {random_ndcg:.4f}")

    model = Scorer(N_FEATURES)
    model.apply(init_weights)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, n_batches = 0.0, 0
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss = ranknet_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item()
            n_batches += 1
        if epoch % 5 == 0 or epoch == 1:
            print(
                f"epoch {epoch:3d}  pairwise loss {total / n_batches:.4f}  "
                f"val NDCG@10 {evaluate(model, x_val, y_val):.4f}"
            )
    print(f"test NDCG@10 {evaluate(model, x_test, y_test):.4f} (random {random_ndcg:.4f} on val)")


if __name__ == "__main__":
    main()
