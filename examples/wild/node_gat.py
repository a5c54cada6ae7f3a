"""Full-batch node classification with a hand-written graph attention network: healthy.

In the manner of the original GAT implementations on citation graphs (dense
adjacency, one attention layer per head): a generated "citation graph" stands in for
Cora. 1,000 papers in 5 communities of a stochastic block model (edge probability
0.02 within a community, 0.001 between), undirected, with self-loops; each paper has
a binary bag-of-words over 300 words drawn mostly from its community's topic words,
row-normalised like the Planetoid features. Planetoid-style masks: 20 labelled papers
per class for training, 300 for validation, 500 for testing. ``GraphAttentionLayer``
computes ``Wh``, the scores ``LeakyReLU(a^T [Wh_i || Wh_j])`` for all pairs, keeps
those of edges (``torch.where`` with -9e15 elsewhere), a softmax over each node's
neighbours and dropout on the attention; ``GAT`` concatenates 8 heads of 8 units with
ELU and averages one output head, with dropout 0.6 on the features. Cross-entropy on
the training nodes only (log-softmax + ``F.nll_loss``); Adam with ``lr=0.005`` and
``weight_decay=5e-4``; one full-batch step per epoch; validation on the validation
nodes under ``torch.no_grad()`` with ``model.eval()``; the test accuracy of the best
validation epoch. A ``main()`` with argparse; prints the loss and accuracies every 20
epochs.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/node_gat.py
    nndoctor check examples/wild/node_gat.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_graph(n: int, n_classes: int, n_words: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    same = labels[:, None] == labels[None, :]
    prob = torch.where(same, 0.02, 0.001)
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    adj = (upper | upper.T).float() + torch.eye(n)

    topic = torch.rand(n_classes, n_words, generator=g) < 0.1
    word_prob = torch.where(topic[labels], 0.06, 0.03)
    features = (torch.rand(n, n_words, generator=g) < word_prob).float()
    features = features / features.sum(1, keepdim=True).clamp(min=1)

    perm = torch.randperm(n, generator=g)
    train_idx = torch.cat([perm[labels[perm] == c][:20] for c in range(n_classes)])
    rest = perm[~torch.isin(perm, train_idx)]
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    masks[0][train_idx] = True
    masks[1][rest[:300]] = True
    masks[2][rest[300:800]] = True
    return features, adj, labels, masks


class GraphAttentionLayer(nn.Module):
    def __init__(self, in_features, out_features, dropout, alpha, concat=True):
        super().__init__()
        self.dropout, self.concat, self.out_features = dropout, concat, out_features
        self.W = nn.Parameter(torch.empty(in_features, out_features))
        nn.init.xavier_uniform_(self.W.data, gain=1.414)
        self.a = nn.Parameter(torch.empty(2 * out_features, 1))
        nn.init.xavier_uniform_(self.a.data, gain=1.414)
        self.leakyrelu = nn.LeakyReLU(alpha)

    def forward(self, h, adj):
        Wh = torch.mm(h, self.W)
        e = self._prepare_attentional_mechanism_input(Wh)
        zero_vec = -9e15 * torch.ones_like(e)
        attention = torch.where(adj > 0, e, zero_vec)
        attention = F.softmax(attention, dim=1)
        attention = F.dropout(attention, self.dropout, training=self.training)
        h_prime = torch.matmul(attention, Wh)
        return F.elu(h_prime) if self.concat else h_prime

    def _prepare_attentional_mechanism_input(self, Wh):
        Wh1 = torch.matmul(Wh, self.a[: self.out_features, :])
        Wh2 = torch.matmul(Wh, self.a[self.out_features :, :])
        return self.leakyrelu(Wh1 + Wh2.T)


class GAT(nn.Module):
    def __init__(self, nfeat, nhid, nclass, dropout, alpha, nheads):
        super().__init__()
        self.dropout = dropout
        self.attentions = nn.ModuleList(
            [GraphAttentionLayer(nfeat, nhid, dropout, alpha, concat=True) for _ in range(nheads)]
        )
        self.out_att = GraphAttentionLayer(nhid * nheads, nclass, dropout, alpha, concat=False)

    def forward(self, x, adj):
        x = F.dropout(x, self.dropout, training=self.training)
        x = torch.cat([att(x, adj) for att in self.attentions], dim=1)
        x = F.dropout(x, self.dropout, training=self.training)
        x = F.elu(self.out_att(x, adj))
        return F.log_softmax(x, dim=1)


def accuracy(output, labels):
    return (output.argmax(1) == labels).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="GAT node classification")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--weight_decay", type=float, default=5e-4)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--nb_heads", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.6)
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    features, adj, labels, (idx_train, idx_val, idx_test) = make_graph(1000, 5, 300, args.seed)
    model = GAT(
        nfeat=features.shape[1],
        nhid=args.hidden,
        nclass=int(labels.max()) + 1,
        dropout=args.dropout,
        alpha=args.alpha,
        nheads=args.nb_heads,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    best_val, test_at_best = 0.0, 0.0
    for epoch in range(1, args.epochs + 1):
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
            loss_val = F.nll_loss(output[idx_val], labels[idx_val]).item()
            acc_val = accuracy(output[idx_val], labels[idx_val])
            acc_test = accuracy(output[idx_test], labels[idx_test])
        if acc_val > best_val:
            best_val, test_at_best = acc_val, acc_test
        if epoch % 20 == 0:
            print(
                f"Epoch: {epoch:04d} loss_train: {loss_train.item():.4f} acc_train: {acc_train:.4f} "
                f"loss_val: {loss_val:.4f} acc_val: {acc_val:.4f}"
            )
    print(f"best val accuracy {best_val:.4f}, test accuracy at best val {test_at_best:.4f}")


if __name__ == "__main__":
    main()
