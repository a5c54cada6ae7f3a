"""GraphSAGE with sampled neighbourhoods on a stochastic-block-model graph: healthy.

In the manner of the minibatch GraphSAGE examples (williamleif/GraphSAGE's supervised
model, PyG's ``graphsage`` / DGL's ``train_sampling.py``), written in plain torch: the
graph is a generated stochastic block model of 2,000 nodes in 5 communities (edge
probability 0.02 inside a community, 0.002 between, about 10 neighbours per node, kept as
CSR ``rowptr`` / ``col`` arrays), each node's 16 features a noisy indicator of its
community (1.0 on its community's coordinate plus unit Gaussian noise on all 16). 500
nodes are labelled for training, 500 for validation and 1,000 for testing.

Mini-batches of 64 target nodes are drawn from a shuffled permutation of the training
nodes; for each, ``sample_neighbors`` draws a fixed number of neighbours with replacement
per hop (10 then 10) straight from the CSR arrays, giving the node lists of hops 0, 1, 2
(64, 640, 6,400 indices) whose features are gathered in code. ``SAGE`` is an ``nn.Module``
with two ``SAGELayer``s (``nn.Linear`` over the concatenation of a node's own hidden state
and the mean of its sampled neighbours' states, ReLU on the hidden layer), dropout 0.2 on
the input features, every layer's output L2-normalised, then a linear classifier on the
64-d embeddings. ``F.cross_entropy`` on the training targets, Adam at 0.01 with weight
decay 5e-4, 40 epochs. Evaluation samples the neighbourhoods the same way, in eval mode
under ``no_grad``.

Top-level functions and ``main()`` with argparse; prints the training loss and the
validation accuracy every 5 epochs, then the validation and test accuracy of GraphSAGE
against a logistic regression trained on the raw features of the same training nodes
(chance: 0.2).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/graphsage_minibatch.py
    nndoctor check examples/wild/graphsage_minibatch.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

N_NODES, N_COMMUNITIES, N_FEATURES = 2000, 5, 16


def make_sbm(g, p_in=0.02, p_out=0.002, signal=1.0):
    """A stochastic block model with noisy community-indicator features, as CSR arrays."""
    labels = torch.randint(0, N_COMMUNITIES, (N_NODES,), generator=g)
    same = labels[:, None] == labels[None, :]
    prob = torch.where(same, p_in, p_out)
    upper = torch.triu(torch.rand(N_NODES, N_NODES, generator=g) < prob, diagonal=1)
    adj = upper | upper.T
    # isolated nodes keep themselves as their only neighbour
    adj[torch.arange(N_NODES), torch.arange(N_NODES)] |= adj.sum(1) == 0
    src, dst = adj.nonzero(as_tuple=True)
    deg = torch.bincount(src, minlength=N_NODES)
    rowptr = torch.zeros(N_NODES + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(deg, 0)
    features = signal * F.one_hot(labels, N_FEATURES).float()
    features = features + torch.randn(N_NODES, N_FEATURES, generator=g)
    return features, labels, rowptr, dst


def sample_neighbors(nodes, rowptr, col, num_samples):
    """``num_samples`` neighbours of each node, drawn uniformly with replacement."""
    deg = rowptr[nodes + 1] - rowptr[nodes]
    offsets = (torch.rand(len(nodes), num_samples) * deg[:, None]).long()
    return col[rowptr[nodes][:, None] + offsets].flatten()


def sample_blocks(batch, rowptr, col, fanouts):
    """Node lists of hops 0..K: hop k+1 holds fanouts[k] neighbours of each node of hop k."""
    samples = [batch]
    for num_samples in fanouts:
        samples.append(sample_neighbors(samples[-1], rowptr, col, num_samples))
    return samples


class SAGELayer(nn.Module):
    def __init__(self, in_dim, out_dim, act=True):
        super().__init__()
        self.linear = nn.Linear(2 * in_dim, out_dim)
        self.act = act

    def forward(self, h_self, h_neigh, num_samples):
        neigh_mean = h_neigh.view(len(h_self), num_samples, -1).mean(dim=1)
        h = self.linear(torch.cat([h_self, neigh_mean], dim=1))
        if self.act:
            h = F.relu(h)
        return F.normalize(h, p=2, dim=1)


class SAGE(nn.Module):
    def __init__(self, in_dim, hidden, n_classes, n_layers=2, dropout=0.2):
        super().__init__()
        dims = [in_dim] + [hidden] * n_layers
        self.layers = nn.ModuleList(
            [SAGELayer(dims[i], dims[i + 1], act=i < n_layers - 1) for i in range(n_layers)]
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, features, samples, fanouts):
        hidden = [self.dropout(features[nodes]) for nodes in samples]
        for layer in self.layers:
            next_hidden = []
            for hop in range(len(hidden) - 1):
                next_hidden.append(layer(hidden[hop], hidden[hop + 1], fanouts[hop]))
            hidden = next_hidden
        return self.classifier(hidden[0])


def train_epoch(model, optimizer, features, labels, train_idx, rowptr, col, args):
    model.train()
    perm = torch.randperm(len(train_idx))
    total = 0.0
    for i in range(0, len(perm), args.batch_size):
        idx = perm[i : i + args.batch_size]
        batch = train_idx[idx]
        samples = sample_blocks(batch, rowptr, col, args.fanouts)
        out = model(features, samples, args.fanouts)
        loss = F.cross_entropy(out, labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    return total / len(perm)


@torch.no_grad()
def evaluate(model, features, labels, idx, rowptr, col, args):
    model.eval()
    correct = 0
    for i in range(0, len(idx), 256):
        batch = idx[i : i + 256]
        samples = sample_blocks(batch, rowptr, col, args.fanouts)
        out = model(features, samples, args.fanouts)
        correct += (out.argmax(1) == labels[batch]).sum().item()
    return correct / len(idx)


def logistic_regression(features, labels, train_idx, eval_idx, epochs=300):
    clf = nn.Linear(features.shape[1], N_COMMUNITIES)
    optimizer = torch.optim.Adam(clf.parameters(), lr=0.05, weight_decay=5e-4)
    for _ in range(epochs):
        optimizer.zero_grad()
        F.cross_entropy(clf(features[train_idx]), labels[train_idx]).backward()
        optimizer.step()
    with torch.no_grad():
        return [(clf(features[i]).argmax(1) == labels[i]).float().mean().item() for i in eval_idx]


def main():
    parser = argparse.ArgumentParser(description="Minibatch GraphSAGE on an SBM graph")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--fanouts", type=int, nargs="+", default=[10, 10])
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    features, labels, rowptr, col = make_sbm(g)
    perm = torch.randperm(N_NODES, generator=g)
    train_idx, val_idx, test_idx = perm[:500], perm[500:1000], perm[1000:]
    print(f"{N_NODES} nodes, {len(col)} directed edges, mean degree {len(col) / N_NODES:.1f}")

    model = SAGE(N_FEATURES, args.hidden, N_COMMUNITIES, len(args.fanouts), args.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(model, optimizer, features, labels, train_idx, rowptr, col, args)
        if epoch % 5 == 0:
            val_acc = evaluate(model, features, labels, val_idx, rowptr, col, args)
            print(f"epoch {epoch:3d}  train loss {loss:.4f}  val acc {val_acc:.3f}")

    val_acc = evaluate(model, features, labels, val_idx, rowptr, col, args)
    test_acc = evaluate(model, features, labels, test_idx, rowptr, col, args)
    lr_val, lr_test = logistic_regression(features, labels, train_idx, [val_idx, test_idx])
    print(f"GraphSAGE: val acc {val_acc:.3f}  test acc {test_acc:.3f}")
    print(f"logistic regression on raw features: val acc {lr_val:.3f}  test acc {lr_test:.3f}")
    print(f"chance: {1 / N_COMMUNITIES:.3f}")


if __name__ == "__main__":
    main()
