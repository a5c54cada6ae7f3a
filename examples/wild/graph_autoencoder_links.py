"""A graph auto-encoder for link prediction on a generated geometric graph: healthy.

In the manner of the PyTorch ports of Kipf & Welling's graph auto-encoder (tkipf/gae,
"Variational Graph Auto-Encoders", 2016) and PyTorch Geometric's ``autoencoder.py``
example, written without PyG: the graph is a random geometric graph of 500 nodes dropped
uniformly in the unit square, two nodes linked when they lie closer than 0.075 (about 8
neighbours each). Each node has 24 features, noisy random Fourier features of its
position, so the features say roughly where a node is and the edges say it more precisely.
The undirected edges are split as ``mask_test_edges`` does: 85% for training, 5% for
validation and 10% for testing, with as many node pairs that are not edges held out as
negatives for validation and testing.

The normalised adjacency ``D^-1/2 (A + I) D^-1/2`` is built from the training edges only,
as a sparse COO tensor. The encoder is a two-layer GCN (``GraphConvolution`` layers with
Glorot-initialised weights and ``torch.sparse.mm``; ReLU after the first, a linear second
layer to 16-dimensional embeddings), the decoder the inner product ``z_i . z_j`` of the two
end points. Each epoch, full batch, the loss is ``F.binary_cross_entropy_with_logits`` on
the positive training edges and on as many freshly sampled non-edges (``negative_sampling``
written by hand), Adam at lr 0.01 for 200 epochs. Top-level functions and ``main()`` with
argparse; prints the loss and the validation ROC-AUC (computed in torch from ranks) every
20 epochs, then the test ROC-AUC and average precision against the cosine similarity of
the raw features.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/graph_autoencoder_links.py
    nndoctor check examples/wild/graph_autoencoder_links.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def random_geometric_graph(n_nodes, radius, n_features, g):
    """Positions in the unit square, an undirected edge list (i < j) and node features."""
    pos = torch.rand(n_nodes, 2, generator=g)
    dist = torch.cdist(pos, pos)
    adj = (dist < radius) & torch.ones(n_nodes, n_nodes, dtype=torch.bool).triu(diagonal=1)
    edges = adj.nonzero().t()  # [2, n_edges], i < j

    freqs = 4.0 * torch.randn(2, n_features, generator=g)
    phases = 2 * math.pi * torch.rand(n_features, generator=g)
    features = torch.cos(pos @ freqs + phases)
    features = features + 0.8 * torch.randn(n_nodes, n_features, generator=g)
    return pos, edges, features


def split_edges(edges, n_nodes, val_frac, test_frac, g):
    """Split edges into train/val/test and sample held-out non-edges for val and test."""
    n_edges = edges.size(1)
    perm = torch.randperm(n_edges, generator=g)
    n_val, n_test = int(val_frac * n_edges), int(test_frac * n_edges)
    val_pos = edges[:, perm[:n_val]]
    test_pos = edges[:, perm[n_val : n_val + n_test]]
    train_pos = edges[:, perm[n_val + n_test :]]

    is_edge = torch.zeros(n_nodes, n_nodes, dtype=torch.bool)
    is_edge[edges[0], edges[1]] = True
    is_edge[edges[1], edges[0]] = True
    negatives = []
    while len(negatives) < n_val + n_test:
        i, j = torch.randint(0, n_nodes, (2,), generator=g).tolist()
        if i == j or is_edge[i, j]:
            continue
        is_edge[i, j] = is_edge[j, i] = True  # no pair twice
        negatives.append((min(i, j), max(i, j)))
    negatives = torch.tensor(negatives).t()
    return train_pos, val_pos, negatives[:, :n_val], test_pos, negatives[:, n_val:]


def normalized_adjacency(edge_index, n_nodes):
    """D^-1/2 (A + I) D^-1/2 as a sparse tensor, from an undirected edge list (i < j)."""
    loops = torch.arange(n_nodes).repeat(2, 1)
    index = torch.cat([edge_index, edge_index.flip(0), loops], dim=1)
    values = torch.ones(index.size(1))
    deg = torch.zeros(n_nodes).scatter_add_(0, index[0], values)
    deg_inv_sqrt = deg.pow(-0.5)
    values = deg_inv_sqrt[index[0]] * values * deg_inv_sqrt[index[1]]
    adj = torch.sparse_coo_tensor(index, values, (n_nodes, n_nodes), check_invariants=True)
    return adj.coalesce()


def negative_sampling(n_samples, n_nodes, adj_dense):
    """Uniformly drawn node pairs that are not training edges."""
    src = torch.randint(0, n_nodes, (2 * n_samples,))
    dst = torch.randint(0, n_nodes, (2 * n_samples,))
    keep = (src != dst) & ~adj_dense[src, dst]
    return torch.stack([src[keep], dst[keep]])[:, :n_samples]


class GraphConvolution(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x, adj):
        return torch.sparse.mm(adj, x @ self.weight)


class GCNEncoder(nn.Module):
    def __init__(self, in_features, hidden, latent):
        super().__init__()
        self.gc1 = GraphConvolution(in_features, hidden)
        self.gc2 = GraphConvolution(hidden, latent)

    def forward(self, x, adj):
        h = F.relu(self.gc1(x, adj))
        return self.gc2(h, adj)


class InnerProductDecoder(nn.Module):
    def forward(self, z, edge_index):
        return (z[edge_index[0]] * z[edge_index[1]]).sum(dim=-1)


class GAE(nn.Module):
    def __init__(self, in_features, hidden=32, latent=16):
        super().__init__()
        self.encoder = GCNEncoder(in_features, hidden, latent)
        self.decoder = InnerProductDecoder()

    def encode(self, x, adj):
        return self.encoder(x, adj)

    def recon_loss(self, z, pos_edge_index, neg_edge_index):
        pos_logits = self.decoder(z, pos_edge_index)
        neg_logits = self.decoder(z, neg_edge_index)
        pos_loss = F.binary_cross_entropy_with_logits(pos_logits, torch.ones_like(pos_logits))
        neg_loss = F.binary_cross_entropy_with_logits(neg_logits, torch.zeros_like(neg_logits))
        return pos_loss + neg_loss


def roc_auc(scores, labels):
    order = torch.argsort(scores)
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    return ((ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def average_precision(scores, labels):
    order = torch.argsort(scores, descending=True)
    hits = labels[order]
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return (precision * hits).sum().item() / hits.sum().item()


def link_scores(z, pos_edge_index, neg_edge_index, decoder):
    scores = torch.cat([decoder(z, pos_edge_index), decoder(z, neg_edge_index)])
    labels = torch.cat([torch.ones(pos_edge_index.size(1)), torch.zeros(neg_edge_index.size(1))])
    return scores, labels


def main():
    parser = argparse.ArgumentParser(description="Graph auto-encoder for link prediction")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--radius", type=float, default=0.075)
    parser.add_argument("--features", type=int, default=24)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--latent", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    _, edges, x = random_geometric_graph(args.nodes, args.radius, args.features, g)
    train_pos, val_pos, val_neg, test_pos, test_neg = split_edges(edges, args.nodes, 0.05, 0.1, g)
    print(
        f"{args.nodes} nodes, {edges.size(1)} edges: {train_pos.size(1)} train, "
        f"{val_pos.size(1)} val, {test_pos.size(1)} test"
    )

    adj_norm = normalized_adjacency(train_pos, args.nodes)
    train_adj = torch.zeros(args.nodes, args.nodes, dtype=torch.bool)
    train_adj[train_pos[0], train_pos[1]] = True
    train_adj[train_pos[1], train_pos[0]] = True

    model = GAE(args.features, args.hidden, args.latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        model.train()
        optimizer.zero_grad()
        z = model.encode(x, adj_norm)
        neg_edge_index = negative_sampling(train_pos.size(1), args.nodes, train_adj)
        loss = model.recon_loss(z, train_pos, neg_edge_index)
        loss.backward()
        optimizer.step()

        if epoch % 20 == 0:
            model.eval()
            with torch.no_grad():
                z = model.encode(x, adj_norm)
                val_auc = roc_auc(*link_scores(z, val_pos, val_neg, model.decoder))
            print(f"epoch {epoch:3d}  loss {loss.item():.4f}  val AUC {val_auc:.4f}")

    model.eval()
    with torch.no_grad():
        z = model.encode(x, adj_norm)
        scores, labels = link_scores(z, test_pos, test_neg, model.decoder)
        x_unit = F.normalize(x, dim=1)
        cos_scores, _ = link_scores(x_unit, test_pos, test_neg, model.decoder)
    print(
        f"test ROC-AUC {roc_auc(scores, labels):.4f}  AP {average_precision(scores, labels):.4f}"
        f"  (feature cosine: ROC-AUC {roc_auc(cos_scores, labels):.4f}"
        f"  AP {average_precision(cos_scores, labels):.4f})"
    )


if __name__ == "__main__":
    main()
