"""Graph classification with a Graph Isomorphism Network in plain torch: healthy.

In the manner of the GIN graph-classification examples ("How Powerful are Graph Neural
Networks?", Xu et al., and the PyTorch Geometric ``GIN`` example on the TU data sets),
written without torch_geometric: 1,000 generated unattributed graphs of 12 to 24 nodes,
each of one of three families drawn with the same node counts: a cycle with random
chords, a random tree with a few shortcut edges, or two communities (paths with random
edges inside) joined by one or two edges. As is usual
for unattributed graphs every node gets a constant feature. Each graph is a small
``Graph`` record (``x``, an undirected ``edge_index`` stored in both directions, ``y``)
and a ``collate`` function batches them the PyG way: node features concatenated, edge
indices shifted by the number of nodes before each graph, and a ``batch`` vector naming
each node's graph. ``GINConv`` sums the neighbours' features with ``index_add_`` and
applies an MLP (``Linear``/``BatchNorm1d``/``ReLU``/``Linear``) to ``(1 + eps) * x +
aggregate`` with a learnable ``eps``, followed by ``BatchNorm1d`` and ReLU; four layers.
The readout sum-pools every layer's node states per graph (``index_add_`` over
``batch``), including the input, and concatenates them (jumping knowledge) into a
``Linear``/ReLU/``Dropout(0.2)``/``Linear`` classifier whose output goes through
``F.log_softmax``; the loss is ``F.nll_loss`` on it (cross-entropy, as in the PyG
examples). Adam (lr 0.01) with ``StepLR(step_size=10, gamma=0.5)`` stepped once per epoch, a
shuffling ``DataLoader`` with the collate function. The data are cut into ten folds as in
10-fold cross-validation, one fold held out for testing. A ``main()`` with argparse that
prints the training loss, training accuracy and test accuracy every 5 epochs.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/gin_graph_classification.py
    nndoctor check examples/wild/gin_graph_classification.py
"""

import argparse
import random
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

FAMILIES = ("cycle with chords", "tree with shortcuts", "two communities")


@dataclass
class Graph:
    x: torch.Tensor  # (num_nodes, features)
    edge_index: torch.Tensor  # (2, num_edges), both directions
    y: int

    @property
    def num_nodes(self):
        return self.x.size(0)


@dataclass
class Batch:
    x: torch.Tensor
    edge_index: torch.Tensor
    batch: torch.Tensor
    y: torch.Tensor
    num_graphs: int


def add_chords(edges, nodes, count, rng):
    while count > 0:
        a, b = rng.sample(nodes, 2)
        if (a, b) not in edges and (b, a) not in edges:
            edges.add((a, b))
            count -= 1
    return edges


def cycle_with_chords(n, rng):
    edges = {(i, (i + 1) % n) for i in range(n)}
    return add_chords(edges, list(range(n)), rng.randint(n // 6, n // 3), rng)


def tree_with_shortcuts(n, rng):
    edges = {(i, rng.randrange(i)) for i in range(1, n)}
    return add_chords(edges, list(range(n)), rng.randint(n // 6, n // 3), rng)


def two_communities(n, rng):
    half = n // 2
    groups = (list(range(half)), list(range(half, n)))
    edges = set()
    for nodes in groups:
        for i, a in enumerate(nodes):
            for b in nodes[i + 1 :]:
                if rng.random() < 0.3:
                    edges.add((a, b))
        for a, b in zip(nodes[:-1], nodes[1:], strict=True):  # keep each community connected
            edges.add((a, b))
    for _ in range(rng.choice((1, 2))):
        edges.add((rng.choice(groups[0]), rng.choice(groups[1])))
    return edges


def make_graphs(num_graphs, rng):
    builders = (cycle_with_chords, tree_with_shortcuts, two_communities)
    graphs = []
    for i in range(num_graphs):
        label = i % len(builders)
        n = rng.randint(12, 24)
        edges = torch.tensor(sorted(builders[label](n, rng))).t()
        edge_index = torch.cat([edges, edges.flip(0)], dim=1)
        graphs.append(Graph(x=torch.ones(n, 1), edge_index=edge_index, y=label))
    rng.shuffle(graphs)
    return graphs


def collate(graphs):
    xs, edge_indices, batch = [], [], []
    offset = 0
    for i, g in enumerate(graphs):
        xs.append(g.x)
        edge_indices.append(g.edge_index + offset)
        batch.append(torch.full((g.num_nodes,), i, dtype=torch.long))
        offset += g.num_nodes
    return Batch(
        x=torch.cat(xs),
        edge_index=torch.cat(edge_indices, dim=1),
        batch=torch.cat(batch),
        y=torch.tensor([g.y for g in graphs]),
        num_graphs=len(graphs),
    )


class GINConv(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, out_dim),
            nn.BatchNorm1d(out_dim),
            nn.ReLU(),
            nn.Linear(out_dim, out_dim),
        )

    def forward(self, x, edge_index):
        src, dst = edge_index
        aggregate = torch.zeros_like(x).index_add_(0, dst, x[src])
        return self.mlp((1 + self.eps) * x + aggregate)


def global_add_pool(x, batch, num_graphs):
    return x.new_zeros(num_graphs, x.size(1)).index_add_(0, batch, x)


class GIN(nn.Module):
    def __init__(self, in_dim, hidden, num_classes, num_layers=4, dropout=0.2):
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(num_layers):
            self.convs.append(GINConv(in_dim if layer == 0 else hidden, hidden))
            self.norms.append(nn.BatchNorm1d(hidden))
        self.classifier = nn.Sequential(
            nn.Linear(in_dim + num_layers * hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, data):
        h = data.x
        readouts = [global_add_pool(h, data.batch, data.num_graphs)]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = F.relu(norm(conv(h, data.edge_index)))
            readouts.append(global_add_pool(h, data.batch, data.num_graphs))
        out = self.classifier(torch.cat(readouts, dim=1))
        return F.log_softmax(out, dim=-1)


def train_epoch(model, loader, optimizer):
    model.train()
    total_loss = correct = count = 0
    for data in loader:
        optimizer.zero_grad()
        out = model(data)
        loss = F.nll_loss(out, data.y)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * data.num_graphs
        correct += (out.argmax(dim=1) == data.y).sum().item()
        count += data.num_graphs
    return total_loss / count, correct / count


@torch.no_grad()
def test(model, loader):
    model.eval()
    correct = count = 0
    for data in loader:
        correct += (model(data).argmax(dim=1) == data.y).sum().item()
        count += data.num_graphs
    return correct / count


def main():
    parser = argparse.ArgumentParser(description="GIN graph classification")
    parser.add_argument("--num-graphs", type=int, default=1000)
    parser.add_argument("--fold", type=int, default=0, help="which of the 10 folds to test on")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    graphs = make_graphs(args.num_graphs, rng)
    folds = torch.randperm(len(graphs)).chunk(10)
    test_idx = folds[args.fold]
    train_idx = torch.cat([f for i, f in enumerate(folds) if i != args.fold])
    train_graphs = [graphs[i] for i in train_idx]
    test_graphs = [graphs[i] for i in test_idx]
    train_loader = DataLoader(
        train_graphs, batch_size=args.batch_size, shuffle=True, collate_fn=collate
    )
    test_loader = DataLoader(test_graphs, batch_size=128, collate_fn=collate)

    model = GIN(1, args.hidden, len(FAMILIES), args.num_layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)

    for epoch in range(1, args.epochs + 1):
        loss, train_acc = train_epoch(model, train_loader, optimizer)
        scheduler.step()
        if epoch % 5 == 0:
            test_acc = test(model, test_loader)
            print(
                f"epoch {epoch:3d}: loss {loss:.4f}, train accuracy {train_acc:.3f}, "
                f"test accuracy {test_acc:.3f}"
            )


if __name__ == "__main__":
    main()
