"""FT-Transformer on a generated multiclass tabular data set: healthy.

In the manner of the FT-Transformer of Gorishniy et al. 2021 ("Revisiting Deep Learning
Models for Tabular Data") as the rtdl package and its example script build it: 12,000
generated customer records (8,000 for training, 2,000 for validation, 2,000 for testing)
with eight numeric columns on their natural scales (age, income, balance, monthly
transactions, credit score, tenure, credit utilisation, distance to a branch) and four
categorical ones (region, product, channel, occupation); the target is one of four
customer segments drawn from a hidden softmax model with thresholds, interactions and
per-category effects. The numeric columns go through a quantile transformation to a normal
distribution fitted on the training part (a few hundred quantiles, with a little noise
added to the training values to break ties, as the rtdl example does).

``FTTransformer`` is an ``nn.Module``: a ``FeatureTokenizer`` turning each numeric value
into ``x * W_j + b_j`` and each category into its embedding (one table with per-feature
offsets) plus a per-feature bias, a learned [CLS] token appended at the end, three
pre-norm Transformer blocks (the first without the attention normalisation; multi-head
attention with 8 heads, attention dropout 0.2; a ReGLU feed-forward with dropout 0.1; in
the last block only the [CLS] token is queried) and a head of LayerNorm, ReLU and Linear
on the [CLS] token. ``nn.functional.cross_entropy`` on the four classes. AdamW with lr
5e-4 and weight decay 1e-5 in two parameter groups, the tokenizer, the normalisations and
the biases without weight decay; shuffled batches of 256 for 12 epochs, keeping the model
of the epoch with the best validation accuracy. Top-level functions and ``main()`` with
argparse; prints the loss and the validation accuracy every 3 epochs, then the best
validation accuracy and the test accuracy of that model next to the majority class.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ft_transformer_tabular.py
    nndoctor check examples/wild/ft_transformer_tabular.py
"""

import argparse
import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_COLUMNS = [
    "age",
    "income",
    "balance",
    "transactions",
    "credit_score",
    "tenure_months",
    "utilisation",
    "distance_km",
]
CAT_CARDINALITIES = {"region": 8, "product": 5, "channel": 3, "occupation": 12}
N_CLASSES = 4


def generate_customers(n, rng):
    age = rng.uniform(18, 80, n)
    income = np.exp(rng.normal(10.8, 0.5, n) + 0.01 * (age - 45))
    balance = rng.normal(0.2, 1.0, n) * income * 0.3
    transactions = rng.poisson(np.exp(rng.normal(3.0, 0.7, n)))
    credit_score = np.clip(rng.normal(680, 70, n) + 0.3 * (age - 45), 300, 850)
    tenure = rng.uniform(0, 1, n) ** 2 * 240
    utilisation = rng.beta(2, 5, n)
    distance = rng.exponential(25, n)
    x_num = np.stack(
        [age, income, balance, transactions, credit_score, tenure, utilisation, distance], 1
    )
    x_cat = np.stack([rng.integers(0, c, n) for c in CAT_CARDINALITIES.values()], 1)

    effects = np.random.default_rng(1234)  # the hidden model is the same for every seed
    region_effect = effects.normal(0, 0.8, (8, N_CLASSES))
    product_effect = effects.normal(0, 0.8, (5, N_CLASSES))
    occupation_effect = effects.normal(0, 0.6, (12, N_CLASSES))
    z_income = (np.log(income) - 10.8) / 0.5
    z_age = (age - 49) / 17
    logits = np.zeros((n, N_CLASSES))
    logits[:, 0] = 1.5 * z_income + 1.0 * (credit_score > 720) - 0.8 * utilisation * 4
    logits[:, 1] = 1.2 * z_age * z_income + 0.8 * np.log1p(transactions) - 2.5
    logits[:, 2] = -1.2 * z_income + 1.0 * (balance < 0) + 0.6 * (tenure < 24)
    logits[:, 3] = 1.0 * z_age + 0.8 * (distance > 40) - 0.6 * (x_cat[:, 2] == 0)
    logits += region_effect[x_cat[:, 0]] + product_effect[x_cat[:, 1]]
    logits += occupation_effect[x_cat[:, 3]]
    p = np.exp(2.0 * (logits - logits.max(1, keepdims=True)))
    p /= p.sum(1, keepdims=True)
    y = (p.cumsum(1) > rng.uniform(0, 1, (n, 1))).argmax(1)
    return x_num.astype(np.float32), x_cat.astype(np.int64), y.astype(np.int64)


class QuantileNormalTransformer:
    """The sklearn QuantileTransformer(output_distribution="normal"), column by column."""

    def __init__(self, n_quantiles):
        self.n_quantiles = n_quantiles

    def fit(self, x):
        self.references = np.linspace(0, 1, self.n_quantiles)
        self.quantiles = np.quantile(x, self.references, axis=0)
        return self

    def transform(self, x):
        out = np.empty_like(x)
        for j in range(x.shape[1]):
            out[:, j] = np.interp(x[:, j], self.quantiles[:, j], self.references)
        out = np.clip(out, 1e-7, 1 - 1e-7)
        return torch.special.ndtri(torch.from_numpy(out)).numpy()


class FeatureTokenizer(nn.Module):
    def __init__(self, n_num_features, cat_cardinalities, d_token):
        super().__init__()
        d_sqrt_inv = 1 / math.sqrt(d_token)
        self.weight = nn.Parameter(torch.empty(n_num_features, d_token))
        self.bias = nn.Parameter(torch.empty(n_num_features + len(cat_cardinalities), d_token))
        offsets = torch.tensor([0] + list(cat_cardinalities[:-1])).cumsum(0)
        self.register_buffer("category_offsets", offsets)
        self.category_embeddings = nn.Embedding(sum(cat_cardinalities), d_token)
        for p in (self.weight, self.bias, self.category_embeddings.weight):
            nn.init.uniform_(p, -d_sqrt_inv, d_sqrt_inv)

    def forward(self, x_num, x_cat):
        x = self.weight[None] * x_num[:, :, None]
        x = torch.cat([x, self.category_embeddings(x_cat + self.category_offsets[None])], dim=1)
        return x + self.bias[None]


class CLSToken(nn.Module):
    def __init__(self, d_token):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_token))
        d_sqrt_inv = 1 / math.sqrt(d_token)
        nn.init.uniform_(self.weight, -d_sqrt_inv, d_sqrt_inv)

    def forward(self, x):
        return torch.cat([x, self.weight.view(1, 1, -1).expand(len(x), 1, -1)], dim=1)


class MultiheadAttention(nn.Module):
    def __init__(self, d_token, n_heads, dropout):
        super().__init__()
        self.W_q = nn.Linear(d_token, d_token)
        self.W_k = nn.Linear(d_token, d_token)
        self.W_v = nn.Linear(d_token, d_token)
        self.W_out = nn.Linear(d_token, d_token)
        self.n_heads = n_heads
        self.dropout = nn.Dropout(dropout)
        for m in (self.W_q, self.W_k, self.W_v):
            nn.init.xavier_uniform_(m.weight, gain=1 / math.sqrt(2))
            nn.init.zeros_(m.bias)
        nn.init.zeros_(self.W_out.bias)

    def _reshape(self, x):
        batch_size, n_tokens, d = x.shape
        d_head = d // self.n_heads
        x = x.reshape(batch_size, n_tokens, self.n_heads, d_head).transpose(1, 2)
        return x.reshape(batch_size * self.n_heads, n_tokens, d_head)

    def forward(self, x_q, x_kv):
        q, k, v = self.W_q(x_q), self.W_k(x_kv), self.W_v(x_kv)
        batch_size, n_q_tokens, d = q.shape
        d_head = d // self.n_heads
        q, k, v = self._reshape(q), self._reshape(k), self._reshape(v)
        attention_logits = q @ k.transpose(1, 2) / math.sqrt(d_head)
        attention_probs = self.dropout(F.softmax(attention_logits, dim=-1))
        x = attention_probs @ v
        x = x.reshape(batch_size, self.n_heads, n_q_tokens, d_head).transpose(1, 2)
        x = x.reshape(batch_size, n_q_tokens, d)
        return self.W_out(x)


class ReGLU(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=-1)
        return a * F.relu(b)


class FTTransformer(nn.Module):
    def __init__(
        self,
        n_num_features,
        cat_cardinalities,
        d_out,
        d_token=64,
        n_blocks=3,
        n_heads=8,
        attention_dropout=0.2,
        ffn_dropout=0.1,
    ):
        super().__init__()
        d_ffn = int(d_token * 4 / 3)
        self.tokenizer = FeatureTokenizer(n_num_features, cat_cardinalities, d_token)
        self.cls_token = CLSToken(d_token)
        self.blocks = nn.ModuleList()
        for layer_idx in range(n_blocks):
            block = nn.ModuleDict(
                {
                    "attention": MultiheadAttention(d_token, n_heads, attention_dropout),
                    "ffn": nn.Sequential(
                        nn.Linear(d_token, 2 * d_ffn),
                        ReGLU(),
                        nn.Dropout(ffn_dropout),
                        nn.Linear(d_ffn, d_token),
                    ),
                    "ffn_normalization": nn.LayerNorm(d_token),
                }
            )
            if layer_idx > 0:
                block["attention_normalization"] = nn.LayerNorm(d_token)
            self.blocks.append(block)
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, d_out))

    def forward(self, x_num, x_cat):
        x = self.cls_token(self.tokenizer(x_num, x_cat))
        for layer_idx, block in enumerate(self.blocks):
            last = layer_idx + 1 == len(self.blocks)
            x_residual = x
            if "attention_normalization" in block:
                x_residual = block["attention_normalization"](x_residual)
            x_query = x_residual[:, -1:] if last else x_residual
            x_residual = block["attention"](x_query, x_residual)
            if last:
                x = x[:, -1:]
            x = x + x_residual
            x = x + block["ffn"](block["ffn_normalization"](x))
        return self.head(x[:, -1])


def make_optimizer(model, lr, weight_decay):
    def needs_wd(name):
        return all(x not in name for x in ("tokenizer", "normalization", ".bias", "head.0"))

    with_wd = [p for name, p in model.named_parameters() if needs_wd(name)]
    without_wd = [p for name, p in model.named_parameters() if not needs_wd(name)]
    return torch.optim.AdamW(
        [{"params": with_wd}, {"params": without_wd, "weight_decay": 0.0}],
        lr=lr,
        weight_decay=weight_decay,
    )


@torch.no_grad()
def accuracy(model, x_num, x_cat, y):
    model.eval()
    predictions = torch.cat(
        [model(x_num[i : i + 1024], x_cat[i : i + 1024]).argmax(1) for i in range(0, len(y), 1024)]
    )
    return (predictions == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="FT-Transformer on generated tabular data")
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--n-val", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x_num, x_cat, y = generate_customers(args.n_train + args.n_val + args.n_test, rng)
    bounds = {"train": (0, args.n_train), "val": (args.n_train, args.n_train + args.n_val)}
    bounds["test"] = (args.n_train + args.n_val, len(y))
    x_num = {part: x_num[a:b] for part, (a, b) in bounds.items()}
    x_cat = {part: x_cat[a:b] for part, (a, b) in bounds.items()}
    y = {part: y[a:b] for part, (a, b) in bounds.items()}

    noise = 1e-3 * x_num["train"].std(0) * rng.standard_normal(x_num["train"].shape)
    n_quantiles = max(min(args.n_train // 30, 1000), 10)
    quantile = QuantileNormalTransformer(n_quantiles).fit(x_num["train"] + noise)
    x_num = {part: quantile.transform(x) for part, x in x_num.items()}

    x_num = {part: torch.as_tensor(x, dtype=torch.float32) for part, x in x_num.items()}
    x_cat = {part: torch.as_tensor(x) for part, x in x_cat.items()}
    y = {part: torch.as_tensor(x) for part, x in y.items()}
    majority = max((y["val"] == c).float().mean().item() for c in range(N_CLASSES))

    model = FTTransformer(len(NUM_COLUMNS), list(CAT_CARDINALITIES.values()), N_CLASSES)
    optimizer = make_optimizer(model, args.lr, args.weight_decay)

    best_acc, best_state = -1.0, None
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(args.n_train)
        total, n_batches = 0.0, 0
        for i in range(0, args.n_train, args.batch_size):
            batch_idx = order[i : i + args.batch_size]
            optimizer.zero_grad()
            logits = model(x_num["train"][batch_idx], x_cat["train"][batch_idx])
            loss = F.cross_entropy(logits, y["train"][batch_idx])
            loss.backward()
            optimizer.step()
            total, n_batches = total + loss.item(), n_batches + 1
        val_acc = accuracy(model, x_num["val"], x_cat["val"], y["val"])
        if val_acc > best_acc:
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())
        if epoch % 3 == 0:
            print(f"epoch {epoch:2d}  loss {total / n_batches:.4f}  val acc {val_acc:.4f}")

    model.load_state_dict(best_state)
    test_acc = accuracy(model, x_num["test"], x_cat["test"], y["test"])
    print(f"final: best val acc {best_acc:.4f}  test acc {test_acc:.4f}")
    print(f"majority class: val acc {majority:.4f}")


if __name__ == "__main__":
    main()
