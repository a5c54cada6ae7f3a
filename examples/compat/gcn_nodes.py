"""A two-layer GCN classifying the nodes of one graph, full-batch: healthy.

In the manner of the Kipf & Welling GCN example in plain PyTorch: a graph of 600 nodes
in 4 communities is drawn from a stochastic block model, every node has 50 noisy
bag-of-words features that hint at its community (too weakly to classify it alone),
and the dense normalised adjacency ``D^-1/2 (A + I) D^-1/2`` is built once. ``GCN``
(two ``GraphConvolution`` layers with their own weight and bias ``Parameter``s,
ReLU and dropout between them) returns ``log_softmax`` for every node;
``F.nll_loss`` on the 20 labelled training nodes per class (``idx_train``), Adam with
weight decay 5e-4, 200 epochs on the whole graph, validation on ``idx_val``. A top-level
script with argparse. Prints the loss and the accuracy on the training, validation and
test nodes.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/gcn_nodes.py
    nndoctor check examples/compat/gcn_nodes.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=42)
parser.add_argument("--epochs", type=int, default=200)
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--weight_decay", type=float, default=5e-4)
parser.add_argument("--hidden", type=int, default=16)
parser.add_argument("--dropout", type=float, default=0.5)
args = parser.parse_args()
torch.manual_seed(args.seed)

# --- a stochastic block model with noisy features -----------------------------------
N, C, F_IN = 600, 4, 50
labels = torch.arange(N) % C
labels = labels[torch.randperm(N)]
same = labels.unsqueeze(0) == labels.unsqueeze(1)
prob = torch.where(same, torch.tensor(0.04), torch.tensor(0.004))
upper = torch.triu((torch.rand(N, N) < prob).float(), diagonal=1)
adj = upper + upper.T
topic = torch.randn(C, F_IN)
features = (torch.rand(N, F_IN) < torch.sigmoid(topic[labels] * 0.5 - 2)).float()
features = features / features.sum(1, keepdim=True).clamp(min=1)  # row-normalise, as for bag-of-words


def normalize_adj(a: torch.Tensor) -> torch.Tensor:
    """Symmetrically normalise the adjacency with self-loops: D^-1/2 (A + I) D^-1/2."""
    a = a + torch.eye(a.size(0))
    d_inv_sqrt = a.sum(1).pow(-0.5)
    return d_inv_sqrt.unsqueeze(1) * a * d_inv_sqrt.unsqueeze(0)


adj = normalize_adj(adj)
order = torch.randperm(N)
idx_train = torch.cat([order[labels[order] == c][:20] for c in range(C)])
rest = order[~torch.isin(order, idx_train)]
idx_val, idx_test = rest[:200], rest[200:]


class GraphConvolution(nn.Module):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        stdv = 1.0 / math.sqrt(self.weight.size(1))
        self.weight.data.uniform_(-stdv, stdv)
        self.bias.data.uniform_(-stdv, stdv)

    def forward(self, input, adj):
        support = torch.mm(input, self.weight)
        return torch.mm(adj, support) + self.bias


class GCN(nn.Module):
    def __init__(self, nfeat, nhid, nclass, dropout):
        super().__init__()
        self.gc1 = GraphConvolution(nfeat, nhid)
        self.gc2 = GraphConvolution(nhid, nclass)
        self.dropout = dropout

    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        x = F.dropout(x, self.dropout, training=self.training)
        x = self.gc2(x, adj)
        return F.log_softmax(x, dim=1)


def accuracy(output, labels):
    return (output.argmax(1) == labels).float().mean().item()


model = GCN(nfeat=F_IN, nhid=args.hidden, nclass=C, dropout=args.dropout)
optimizer = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

for epoch in range(args.epochs):
    model.train()
    optimizer.zero_grad()
    output = model(features, adj)
    loss_train = F.nll_loss(output[idx_train], labels[idx_train])
    acc_train = accuracy(output[idx_train], labels[idx_train])
    loss_train.backward()
    optimizer.step()

    model.eval()
    with torch.no_grad():
        output = model(features, adj)
    loss_val = F.nll_loss(output[idx_val], labels[idx_val])
    if (epoch + 1) % 20 == 0:
        print(f"Epoch: {epoch + 1:04d} loss_train: {loss_train.item():.4f} acc_train: {acc_train:.4f} "
              f"loss_val: {loss_val.item():.4f} acc_val: {accuracy(output[idx_val], labels[idx_val]):.4f}")
print(f"Test set results: accuracy= {accuracy(output[idx_test], labels[idx_test]):.4f}")
