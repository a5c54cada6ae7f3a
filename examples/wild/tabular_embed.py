"""Tabular binary classification with categorical embeddings and an MLP: healthy.

In the manner of the "entity embeddings" tabular tutorials (customer churn on a
bank's table): a generated table of 15,000 customers with five categorical columns
(region, product, branch, card type, age band; 4 to 40 levels, integer-coded) and six
numeric columns on very different scales (balance, income, tenure, credit score,
number of products, days since last contact); the churn label depends on both kinds
through a nonlinear score, about one churner for four stayers. The export arrives
sorted by branch, so the rows are shuffled once before a 70/15/15 train / validation /
test split. The numeric columns are standardised with the training split's means and
standard deviations. ``TabularModel`` has one ``nn.Embedding`` per categorical column
(width ``min(16, (levels + 1) // 2)``), concatenates them with the numeric columns and
runs an MLP of ``Linear``, ``BatchNorm1d``, ``ReLU`` and ``Dropout(0.3)`` to one logit.
``nn.BCEWithLogitsLoss(pos_weight=negatives / positives)`` for the imbalance; AdamW
with weight decay; ``DataLoader`` over a ``TensorDataset``; each epoch the ROC AUC
(computed by hand from ranks) on the validation split with ``model.eval()``, early
stopping with a patience of 4 epochs, and the test AUC of the best model. A top-level
script with argparse; prints the training loss and the validation AUC per epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/tabular_embed.py
    nndoctor check examples/wild/tabular_embed.py
"""

import argparse
import copy

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

CARDINALITIES = [6, 4, 40, 5, 8]  # region, product, branch, card type, age band


def make_table(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    fixed = torch.Generator().manual_seed(99)  # the same "bank" for every seed
    x_cat = torch.stack([torch.randint(0, c, (n,), generator=g) for c in CARDINALITIES], 1)
    balance = torch.relu(60_000 + 50_000 * torch.randn(n, generator=g))
    income = torch.exp(10.8 + 0.5 * torch.randn(n, generator=g))
    tenure = torch.randint(0, 11, (n,), generator=g).float()
    score = 650 + 90 * torch.randn(n, generator=g)
    products = torch.randint(1, 5, (n,), generator=g).float()
    last_contact = torch.distributions.Exponential(1 / 40.0).sample((n,))
    x_num = torch.stack([balance, income, tenure, score, products, last_contact], 1)

    effects = [torch.randn(c, generator=fixed) for c in CARDINALITIES]
    logit = sum(0.8 * effects[j][x_cat[:, j]] for j in range(len(CARDINALITIES)))
    logit = logit + 1.2 * (products >= 3).float() - 0.12 * tenure
    logit = logit + 0.8 * (balance > 100_000).float() - 0.006 * (score - 650)
    logit = logit + 0.5 * torch.log(last_contact + 1) - 0.4 * torch.log(income / 50_000)
    logit = logit + 0.6 * effects[1][x_cat[:, 1]] * (balance / 50_000)
    y = (torch.rand(n, generator=g) < torch.sigmoid(logit - 3.5)).float()

    order = torch.argsort(x_cat[:, 2], stable=True)  # the export is sorted by branch
    return x_cat[order], x_num[order], y[order]


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    return ((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


class TabularModel(nn.Module):
    def __init__(self, cardinalities, n_numeric, hidden=(128, 64), dropout=0.3):
        super().__init__()
        self.embeddings = nn.ModuleList(
            [nn.Embedding(c, min(16, (c + 1) // 2)) for c in cardinalities]
        )
        n_in = sum(e.embedding_dim for e in self.embeddings) + n_numeric
        layers = []
        for width in hidden:
            layers += [nn.Linear(n_in, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(dropout)]
            n_in = width
        layers.append(nn.Linear(n_in, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x_cat, x_num):
        embedded = [emb(x_cat[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.mlp(torch.cat(embedded + [x_num], dim=1)).squeeze(1)


@torch.no_grad()
def predict(model, x_cat, x_num):
    model.eval()
    return model(x_cat, x_num)


parser = argparse.ArgumentParser(description="tabular churn: embeddings + MLP")
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--batch-size", type=int, default=256)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--weight-decay", type=float, default=1e-2)
parser.add_argument("--patience", type=int, default=4)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

x_cat, x_num, y = make_table(15_000, args.seed)
perm = torch.randperm(len(y))
x_cat, x_num, y = x_cat[perm], x_num[perm], y[perm]
n_train, n_val = int(0.7 * len(y)), int(0.15 * len(y))
train, val, test = slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, None)

mean, std = x_num[train].mean(dim=0), x_num[train].std(dim=0)
x_num = (x_num - mean) / std

train_loader = DataLoader(
    TensorDataset(x_cat[train], x_num[train], y[train]),
    batch_size=args.batch_size,
    shuffle=True,
    drop_last=True,
)
pos_weight = (1 - y[train]).sum() / y[train].sum()
criterion = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
model = TabularModel(CARDINALITIES, x_num.shape[1])
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

best_auc, best_state, bad_epochs = 0.0, None, 0
for epoch in range(1, args.epochs + 1):
    model.train()
    total = 0.0
    for xc, xn, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xc, xn), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
    val_auc = roc_auc(predict(model, x_cat[val], x_num[val]), y[val])
    print(f"epoch {epoch:2d}: train loss {total / (len(train_loader) * args.batch_size):.4f}, "
          f"val AUC {val_auc:.4f}")
    if val_auc > best_auc:
        best_auc, best_state, bad_epochs = val_auc, copy.deepcopy(model.state_dict()), 0
    else:
        bad_epochs += 1
        if bad_epochs >= args.patience:
            print(f"early stopping at epoch {epoch}")
            break

model.load_state_dict(best_state)
test_auc = roc_auc(predict(model, x_cat[test], x_num[test]), y[test])
print(f"best val AUC {best_auc:.4f}, test AUC {test_auc:.4f} (positives {y.mean():.1%})")
