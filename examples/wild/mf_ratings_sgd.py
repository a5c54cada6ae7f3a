"""Explicit-feedback matrix factorisation trained by per-rating SGD: healthy.

In the manner of the Funk-SVD / "Netflix prize" matrix factorisation tutorials ported to
PyTorch: 1-5 star ratings of 600 users on 400 items are generated from 5 hidden factors
per user and item plus a user bias, an item bias and noise, rounded and clipped to the
star scale; each user rates about 60 items. 10% of the ratings are held out. The model
``MatrixFactorization`` has user and item factor ``nn.Embedding``s (20 factors,
initialised from N(0, 0.1^2)), user and item bias embeddings (zero) and a global mean
``mu`` initialised to the mean training rating; a prediction is
``mu + b_u + b_i + <p_u, q_i>``, computed with ``keepdim`` shapes and squeezed at the
end. Training is the classic loop over a shuffled Python list of (user, item, rating)
tuples, a few ratings at a time (batches of 4), ``nn.MSELoss`` and
``torch.optim.SGD(lr=0.05, weight_decay=1e-5)``, 10 epochs. A ``main()`` with argparse;
prints every epoch the training MSE and the held-out RMSE (predictions clipped to the
star scale), next to the RMSE of the global-mean baseline.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/mf_ratings_sgd.py
    nndoctor check examples/wild/mf_ratings_sgd.py
"""

import argparse
import random

import numpy as np
import torch
import torch.nn as nn


def generate_ratings(n_users, n_items, per_user, rng):
    """(user, item, stars) tuples from hidden factors, biases and noise."""
    user_f = rng.normal(scale=0.5, size=(n_users, 5))
    item_f = rng.normal(scale=0.5, size=(n_items, 5))
    user_b = rng.normal(scale=0.4, size=n_users)
    item_b = rng.normal(scale=0.5, size=n_items)
    ratings = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        raw = 3.5 + user_b[u] + item_b[items] + item_f[items] @ user_f[u]
        raw += rng.normal(scale=0.5, size=per_user)
        stars = np.clip(np.rint(raw), 1, 5)
        ratings.extend((u, int(i), float(s)) for i, s in zip(items, stars, strict=True))
    return ratings


class MatrixFactorization(nn.Module):
    def __init__(self, n_users, n_items, n_factors, global_mean):
        super().__init__()
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.mu = nn.Parameter(torch.tensor(global_mean))
        self._init_weights()

    def _init_weights(self):
        nn.init.normal_(self.user_factors.weight, std=0.1)
        nn.init.normal_(self.item_factors.weight, std=0.1)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, user, item):
        dot = (self.user_factors(user) * self.item_factors(item)).sum(dim=1, keepdim=True)
        pred = self.mu + self.user_bias(user) + self.item_bias(item) + dot
        return pred.squeeze(1)


@torch.no_grad()
def rmse(model, data):
    model.eval()
    users = torch.tensor([u for u, _, _ in data])
    items = torch.tensor([i for _, i, _ in data])
    ratings = torch.tensor([r for _, _, r in data])
    preds = model(users, items).clamp(1.0, 5.0)
    model.train()
    return torch.sqrt(((preds.view(-1) - ratings) ** 2).mean()).item()


def main():
    parser = argparse.ArgumentParser(description="Funk-SVD style matrix factorisation")
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--per-user", type=int, default=60)
    parser.add_argument("--factors", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    ratings = generate_ratings(args.users, args.items, args.per_user, rng)
    random.shuffle(ratings)
    n_test = len(ratings) // 10
    test, train = ratings[:n_test], ratings[n_test:]
    global_mean = sum(r for _, _, r in train) / len(train)
    baseline = float(np.sqrt(np.mean([(r - global_mean) ** 2 for _, _, r in test])))
    print(f"{len(train)} training / {len(test)} test ratings, mean {global_mean:.3f}")
    print(f"global-mean baseline: test RMSE {baseline:.4f}")

    model = MatrixFactorization(args.users, args.items, args.factors, global_mean)
    loss_fn = nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    for epoch in range(1, args.epochs + 1):
        random.shuffle(train)
        total = 0.0
        for start in range(0, len(train), args.batch_size):
            batch = train[start : start + args.batch_size]
            user = torch.tensor([u for u, _, _ in batch])
            item = torch.tensor([i for _, i, _ in batch])
            rating = torch.tensor([r for _, _, r in batch])

            optimizer.zero_grad()
            prediction = model(user, item)
            loss = loss_fn(prediction, rating)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        print(
            f"epoch {epoch:2d}: train MSE {total / len(train):.4f}, "
            f"test RMSE {rmse(model, test):.4f} (baseline {baseline:.4f})"
        )


if __name__ == "__main__":
    main()
