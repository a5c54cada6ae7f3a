"""Neural collaborative filtering on generated implicit feedback: healthy.

In the manner of the neural collaborative filtering (NCF / NeuMF) PyTorch examples:
implicit feedback of 600 users on 400 items is generated from latent factors (each
user's interactions are drawn from a softmax over the dot products of user and item
factors plus an item popularity term), and one interaction per user is held out for a
leave-one-out test, together with 99 items the user never interacted with. The model
``NCF`` has a GMF tower (user and item ``nn.Embedding``, element-wise product) and an
MLP tower (its own user and item embeddings, concatenated, through ``Linear``/``ReLU``
layers with dropout); the two towers are concatenated into a linear layer that gives
one logit per (user, item) pair. The training set is a ``Dataset`` whose
``ng_sample()`` draws 4 fresh negatives per positive (items the user never interacted
with) at the start of every epoch; a shuffled ``DataLoader``; ``BCEWithLogitsLoss`` on
the logits; Adam. Evaluation: for each user, the held-out item is ranked among its 99
negatives and counted as a hit when it lands in the top 10 (hit-rate@10, with
NDCG@10). A ``main()`` with argparse; prints the mean training loss, HR@10 and NDCG@10
every epoch (HR@10 of a random ranking: 0.10).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ncf_implicit.py
    nndoctor check examples/wild/ncf_implicit.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.utils.data as data


def generate_interactions(num_users, num_items, per_user, rng):
    """Positive (user, item) pairs from latent factors; one held-out item per user."""
    user_factors = rng.normal(size=(num_users, 8))
    item_factors = rng.normal(size=(num_items, 8))
    popularity = rng.normal(scale=1.0, size=num_items)
    train_pairs, test_pairs = [], []
    for u in range(num_users):
        scores = user_factors[u] @ item_factors.T + popularity
        probs = np.exp(scores - scores.max())
        probs /= probs.sum()
        items = rng.choice(num_items, size=per_user, replace=False, p=probs)
        for i in items[:-1]:
            train_pairs.append((u, int(i)))
        test_pairs.append((u, int(items[-1])))
    return train_pairs, test_pairs


def build_test_set(test_pairs, interacted, num_items, num_neg, rng):
    """For each user: its held-out item first, then ``num_neg`` items it never saw."""
    users, items = [], []
    for u, i in test_pairs:
        candidates = [i]
        while len(candidates) < num_neg + 1:
            j = int(rng.integers(num_items))
            if j not in interacted[u] and j not in candidates:
                candidates.append(j)
        users.append([u] * (num_neg + 1))
        items.append(candidates)
    return torch.tensor(users), torch.tensor(items)


class NCFData(data.Dataset):
    def __init__(self, features, num_item, interacted, num_ng, rng):
        super().__init__()
        self.features_ps = features
        self.num_item = num_item
        self.interacted = interacted
        self.num_ng = num_ng
        self.rng = rng
        self.features_fill, self.labels_fill = [], []

    def ng_sample(self):
        features_ng = []
        for u, _ in self.features_ps:
            for _ in range(self.num_ng):
                j = int(self.rng.integers(self.num_item))
                while j in self.interacted[u]:
                    j = int(self.rng.integers(self.num_item))
                features_ng.append((u, j))
        labels_ps = [1.0] * len(self.features_ps)
        labels_ng = [0.0] * len(features_ng)
        self.features_fill = self.features_ps + features_ng
        self.labels_fill = labels_ps + labels_ng

    def __len__(self):
        return (self.num_ng + 1) * len(self.features_ps)

    def __getitem__(self, idx):
        user, item = self.features_fill[idx]
        return user, item, self.labels_fill[idx]


class NCF(nn.Module):
    def __init__(self, user_num, item_num, factor_num, num_layers, dropout):
        super().__init__()
        self.embed_user_GMF = nn.Embedding(user_num, factor_num)
        self.embed_item_GMF = nn.Embedding(item_num, factor_num)
        mlp_dim = factor_num * 2 ** (num_layers - 1)
        self.embed_user_MLP = nn.Embedding(user_num, mlp_dim)
        self.embed_item_MLP = nn.Embedding(item_num, mlp_dim)

        mlp_modules = []
        for i in range(num_layers):
            input_size = factor_num * 2 ** (num_layers - i)
            mlp_modules.append(nn.Dropout(p=dropout))
            mlp_modules.append(nn.Linear(input_size, input_size // 2))
            mlp_modules.append(nn.ReLU())
        self.MLP_layers = nn.Sequential(*mlp_modules)
        self.predict_layer = nn.Linear(factor_num * 2, 1)
        self._init_weight()

    def _init_weight(self):
        nn.init.normal_(self.embed_user_GMF.weight, std=0.01)
        nn.init.normal_(self.embed_item_GMF.weight, std=0.01)
        nn.init.normal_(self.embed_user_MLP.weight, std=0.01)
        nn.init.normal_(self.embed_item_MLP.weight, std=0.01)
        for m in self.MLP_layers:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.kaiming_uniform_(self.predict_layer.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict_layer.bias)

    def forward(self, user, item):
        output_GMF = self.embed_user_GMF(user) * self.embed_item_GMF(item)
        interaction = torch.cat((self.embed_user_MLP(user), self.embed_item_MLP(item)), -1)
        output_MLP = self.MLP_layers(interaction)
        concat = torch.cat((output_GMF, output_MLP), -1)
        prediction = self.predict_layer(concat)
        return prediction.view(-1)


def hit(gt_item, pred_items):
    return 1.0 if gt_item in pred_items else 0.0


def ndcg(gt_item, pred_items):
    if gt_item in pred_items:
        index = pred_items.index(gt_item)
        return 1.0 / np.log2(index + 2)
    return 0.0


def evaluate(model, test_users, test_items, top_k):
    model.eval()
    hits, ndcgs = [], []
    with torch.no_grad():
        for user, item in zip(test_users, test_items, strict=True):
            predictions = model(user, item)
            _, indices = torch.topk(predictions, top_k)
            recommends = torch.take(item, indices).tolist()
            gt_item = item[0].item()
            hits.append(hit(gt_item, recommends))
            ndcgs.append(ndcg(gt_item, recommends))
    return float(np.mean(hits)), float(np.mean(ndcgs))


def main():
    parser = argparse.ArgumentParser(description="NCF (NeuMF) on implicit feedback")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--factor-num", type=int, default=16)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--num-ng", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    user_num, item_num = 600, 400

    train_pairs, test_pairs = generate_interactions(user_num, item_num, 21, rng)
    interacted = {u: set() for u in range(user_num)}
    for u, i in train_pairs + test_pairs:
        interacted[u].add(i)
    test_users, test_items = build_test_set(test_pairs, interacted, item_num, 99, rng)

    train_dataset = NCFData(train_pairs, item_num, interacted, args.num_ng, rng)
    train_loader = data.DataLoader(train_dataset, batch_size=args.batch_size, shuffle=True)

    model = NCF(user_num, item_num, args.factor_num, args.num_layers, args.dropout)
    loss_function = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    hr, ndcg_value = evaluate(model, test_users, test_items, args.top_k)
    print(f"before training: HR@{args.top_k} {hr:.3f}, NDCG@{args.top_k} {ndcg_value:.3f}")
    for epoch in range(args.epochs):
        model.train()
        train_loader.dataset.ng_sample()
        total, count = 0.0, 0
        for user, item, label in train_loader:
            label = label.float()
            optimizer.zero_grad()
            prediction = model(user, item)
            loss = loss_function(prediction, label)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(label)
            count += len(label)

        hr, ndcg_value = evaluate(model, test_users, test_items, args.top_k)
        print(
            f"epoch {epoch + 1:2d}: train loss {total / count:.4f}, "
            f"HR@{args.top_k} {hr:.3f}, NDCG@{args.top_k} {ndcg_value:.3f}"
        )


if __name__ == "__main__":
    main()
