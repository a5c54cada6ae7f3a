"""A Wide & Deep click-through-rate model with sparse embeddings and two optimizers: healthy.

In the manner of the Wide & Deep recommender examples (the Google paper's model as the
PyTorch recommender tutorials and DLRM-style scripts build it): ad impressions are
generated with six categorical fields (user, ad, ad category, device, hour, site) and
four dense features (price, user account age, past clicks, ad text length) on their
natural scales; the click is drawn from a hidden logistic model with per-value effects
of every field, strong effects of the ad x device and category x hour crosses and
nonlinear dense effects (around 20% clicks). 800,000 impressions for training and 40,000
held out.

Feature engineering as a CTR pipeline does it: every categorical value is hashed with its
field into one table of 2^16 buckets, the two crosses into a separate table of 2^17
buckets, and the dense features go through ``log1p`` (the counts and the price) and are
standardised with the training statistics. ``WideAndDeep`` is an ``nn.Module`` whose wide
part is an ``nn.EmbeddingBag(mode="sum")`` of dimension 1 over the crossed ids (a linear
model over the crosses, initialised at zero) and whose deep part concatenates the
``nn.Embedding`` vectors (dimension 16) of the six fields with the dense features into a
ReLU MLP 100-128-64-1; the logit is wide + deep. Both embedding tables are built with
``sparse=True`` and trained by ``torch.optim.SparseAdam``; the MLP is trained by
``torch.optim.Adam``: two optimizers zeroed and stepped together. ``nn.BCEWithLogitsLoss``,
batches of 1,024 taken from a new permutation in each of 3 epochs. Top-level functions and
``main()`` with argparse; prints per epoch the training loss and the held-out log loss and
AUC (computed by ranks), next to the AUC and log loss of the true click probabilities.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/wide_deep_ctr.py
    nndoctor check examples/wild/wide_deep_ctr.py
"""

import argparse

import torch
import torch.nn as nn

FIELDS = {"user": 5000, "ad": 3000, "category": 40, "device": 4, "hour": 24, "site": 300}
CROSSES = [("ad", "device"), ("category", "hour")]
N_BUCKETS, N_CROSS_BUCKETS = 2**16, 2**17
N_DENSE = 4


def hash_ids(values, salt, n_buckets):
    """A multiplicative hash of integer ids, salted per field."""
    return (values * 2654435761 + salt * 40503 + 12345) % 4294967291 % n_buckets


def simulate_impressions(n, g, effects=None):
    cats = {f: torch.randint(0, size, (n,), generator=g) for f, size in FIELDS.items()}
    price = torch.exp(3.5 + 1.0 * torch.randn(n, generator=g))
    age_days = 1000 * torch.rand(n, generator=g) ** 2
    past_clicks = torch.poisson(torch.exp(1.5 * torch.randn(n, generator=g)), generator=g)
    text_len = 20 + 80 * torch.rand(n, generator=g)
    dense = torch.stack([price, age_days, past_clicks, text_len], dim=1)

    if effects is None:
        effects = {f: 0.5 * torch.randn(size, generator=g) for f, size in FIELDS.items()}
        for a, b in CROSSES:
            effects[a, b] = 1.0 * torch.randn(FIELDS[a], FIELDS[b], generator=g)
    logit = -2.2 + sum(effects[f][cats[f]] for f in FIELDS)
    logit = logit + sum(effects[a, b][cats[a], cats[b]] for a, b in CROSSES)
    logit = logit - 0.4 * (torch.log(price) - 3.5) ** 2 + 0.6 * torch.log1p(past_clicks)
    logit = logit - 0.5 * (age_days < 30).float()
    p_click = torch.sigmoid(logit)
    click = torch.bernoulli(p_click, generator=g)
    return cats, dense, click, p_click, effects


def featurise(cats, dense):
    ids = torch.stack([hash_ids(cats[f], i, N_BUCKETS) for i, f in enumerate(FIELDS)], dim=1)
    cross_ids = torch.stack(
        [
            hash_ids(cats[a] * FIELDS[b] + cats[b], 100 + i, N_CROSS_BUCKETS)
            for i, (a, b) in enumerate(CROSSES)
        ],
        dim=1,
    )
    dense = torch.cat(
        [torch.log1p(dense[:, :1]), dense[:, 1:2], torch.log1p(dense[:, 2:3]), dense[:, 3:]], dim=1
    )
    return ids, cross_ids, dense


class WideAndDeep(nn.Module):
    def __init__(self, n_fields, emb_dim=16, hidden=(128, 64)):
        super().__init__()
        self.wide = nn.EmbeddingBag(N_CROSS_BUCKETS, 1, mode="sum", sparse=True)
        nn.init.zeros_(self.wide.weight)
        self.embedding = nn.Embedding(N_BUCKETS, emb_dim, sparse=True)
        nn.init.normal_(self.embedding.weight, std=0.05)
        layers, width = [], n_fields * emb_dim + N_DENSE
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.deep = nn.Sequential(*layers)

    def forward(self, ids, cross_ids, dense):
        wide = self.wide(cross_ids).squeeze(-1)
        emb = self.embedding(ids).flatten(1)
        deep = self.deep(torch.cat([emb, dense], dim=1)).squeeze(-1)
        return wide + deep


def auc(scores, labels):
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    return ((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def log_loss(p, labels):
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(labels * torch.log(p) + (1 - labels) * torch.log(1 - p)).mean().item()


def main():
    parser = argparse.ArgumentParser(description="Wide & Deep CTR model")
    parser.add_argument("--n-train", type=int, default=800_000)
    parser.add_argument("--n-test", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--sparse-lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    cats, dense, y_train, _, effects = simulate_impressions(args.n_train, g)
    ids, cross_ids, x_dense = featurise(cats, dense)
    cats_t, dense_t, y_test, p_test, _ = simulate_impressions(args.n_test, g, effects)
    ids_t, cross_ids_t, x_dense_t = featurise(cats_t, dense_t)

    mean, std = x_dense.mean(dim=0), x_dense.std(dim=0)
    x_dense = (x_dense - mean) / std
    x_dense_t = (x_dense_t - mean) / std
    print(
        f"click rate {y_train.mean():.3f}; true probabilities on the test set: "
        f"AUC {auc(p_test, y_test):.4f}, log loss {log_loss(p_test, y_test):.4f}"
    )

    model = WideAndDeep(len(FIELDS))
    sparse_params = [model.wide.weight, model.embedding.weight]
    dense_params = list(model.deep.parameters())
    sparse_optimizer = torch.optim.SparseAdam(sparse_params, lr=args.sparse_lr)
    dense_optimizer = torch.optim.Adam(dense_params, lr=args.lr)
    criterion = nn.BCEWithLogitsLoss()

    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(args.n_train)
        total, batches = 0.0, 0
        for i in range(0, args.n_train, args.batch_size):
            idx = order[i : i + args.batch_size]
            logits = model(ids[idx], cross_ids[idx], x_dense[idx])
            loss = criterion(logits, y_train[idx])

            sparse_optimizer.zero_grad()
            dense_optimizer.zero_grad()
            loss.backward()
            sparse_optimizer.step()
            dense_optimizer.step()
            total, batches = total + loss.item(), batches + 1

        model.eval()
        with torch.no_grad():
            p = torch.sigmoid(model(ids_t, cross_ids_t, x_dense_t))
        print(
            f"epoch {epoch}  train loss {total / batches:.4f}  "
            f"test log loss {log_loss(p, y_test):.4f}  test AUC {auc(p, y_test):.4f}"
        )


if __name__ == "__main__":
    main()
