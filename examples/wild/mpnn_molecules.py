"""A message passing neural network for molecular property regression, in plain torch: healthy.

In the manner of Gilmer et al.'s MPNN (edge network, GRU update, set2set readout) as it is
written in PyG's QM9 ``NNConv`` example and in the PyG-free GNN tutorials: the data are
random "molecules" generated in the script, graphs of 5 to 20 atoms (one-hot atom types
C, N, O, S, Cl) on a random tree closed by a few rings, with one-hot bond types (single,
double, triple, aromatic) on the edges, stored in both directions. The target, in
made-up energy units, is a sum of atom contributions, of bond terms that depend on the
bond type and on both atoms, of a valence-strain term per atom (the squared difference
between its summed bond orders and its valence) and of a term per 1-3 pair of
heteroatoms, so that it needs the neighbourhoods, not only the atom counts. A graph is a
dict of tensors; a ``collate`` function given to the ``DataLoader`` concatenates the
graphs of a mini-batch, offsets each graph's edge indices by the number of atoms before
it and keeps a ``batch`` vector of graph ids. ``MPNN`` embeds the atoms, runs three
rounds of edge-conditioned messages (an MLP maps each bond's features to a matrix that
multiplies the neighbour's state; messages summed at the receiving atom with
``index_add_``), each followed by a GRU update of the atom states, then a set2set readout
per graph (attention logits softmaxed within each graph, sums by ``index_add_``) and an
MLP to one output. The target is standardised with the training set's mean and
standard deviation; the loss is ``nn.MSELoss``, the optimiser Adam with
``ReduceLROnPlateau`` on the validation MAE; a ``main()`` with argparse. Prints the
training loss and the validation and test MAE in the target's units every epoch, and
the test MAE of predicting the training mean.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/mpnn_molecules.py
    nndoctor check examples/wild/mpnn_molecules.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

ATOMS = ("C", "N", "O", "S", "Cl")
ATOM_PROBS = (0.5, 0.2, 0.15, 0.1, 0.05)
VALENCE = np.array([4.0, 3.0, 2.0, 2.0, 1.0])
ATOM_ENERGY = np.array([-1.0, -1.6, -2.1, -1.3, -0.8])
ELECTRONEGATIVITY = np.array([2.5, 3.0, 3.5, 2.6, 3.2])
BONDS = ("single", "double", "triple", "aromatic")
BOND_PROBS = (0.6, 0.15, 0.05, 0.2)
BOND_ORDER = np.array([1.0, 2.0, 3.0, 1.5])
BOND_ENERGY = np.array([-0.8, -1.5, -2.0, -1.2])


def random_molecule(rng: np.random.Generator) -> dict:
    n = int(rng.integers(5, 21))
    atoms = rng.choice(len(ATOMS), size=n, p=ATOM_PROBS)
    pairs = [(i, int(rng.integers(0, i))) for i in range(1, n)]  # a random tree
    existing = set(pairs) | {(j, i) for i, j in pairs}
    for _ in range(int(rng.integers(0, 3))):  # ring closures
        i, j = (int(v) for v in rng.choice(n, size=2, replace=False))
        if (i, j) not in existing:
            pairs.append((i, j))
            existing |= {(i, j), (j, i)}
    bonds = rng.choice(len(BONDS), size=len(pairs), p=BOND_PROBS)

    # The target: atoms, bonds, valence strain and 1-3 heteroatom interactions.
    energy = ATOM_ENERGY[atoms].sum()
    bond_order_sum = np.zeros(n)
    neighbours = [[] for _ in range(n)]
    for (i, j), b in zip(pairs, bonds, strict=True):
        chi = ELECTRONEGATIVITY[atoms[i]] * ELECTRONEGATIVITY[atoms[j]] / 9.0
        energy += BOND_ENERGY[b] * chi
        bond_order_sum[i] += BOND_ORDER[b]
        bond_order_sum[j] += BOND_ORDER[b]
        neighbours[i].append(j)
        neighbours[j].append(i)
    energy += 0.3 * ((bond_order_sum - VALENCE[atoms]) ** 2).sum()
    hetero = atoms != 0
    for centre in range(n):
        nb = [k for k in neighbours[centre] if hetero[k]]
        energy += 0.4 * len(nb) * (len(nb) - 1) / 2

    src = [i for i, j in pairs] + [j for i, j in pairs]
    dst = [j for i, j in pairs] + [i for i, j in pairs]
    return {
        "x": torch.eye(len(ATOMS))[torch.as_tensor(atoms)],
        "edge_index": torch.tensor([src, dst], dtype=torch.long),
        "edge_attr": torch.eye(len(BONDS))[torch.as_tensor(np.concatenate([bonds, bonds]))],
        "y": torch.tensor([energy], dtype=torch.float32),
    }


def collate(graphs: list[dict]) -> dict:
    """Concatenate a list of graphs into one disconnected graph with a ``batch`` vector."""
    xs, edge_indices, edge_attrs, ys, batch = [], [], [], [], []
    offset = 0
    for i, g in enumerate(graphs):
        n = g["x"].shape[0]
        xs.append(g["x"])
        edge_indices.append(g["edge_index"] + offset)
        edge_attrs.append(g["edge_attr"])
        ys.append(g["y"])
        batch.append(torch.full((n,), i, dtype=torch.long))
        offset += n
    return {
        "x": torch.cat(xs),
        "edge_index": torch.cat(edge_indices, dim=1),
        "edge_attr": torch.cat(edge_attrs),
        "y": torch.cat(ys),
        "batch": torch.cat(batch),
        "num_graphs": len(graphs),
    }


class EdgeConditionedConv(nn.Module):
    """NNConv: the message from j to i is A(e_ij) h_j, with A an MLP of the bond features."""

    def __init__(self, dim: int, edge_dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.edge_net = nn.Sequential(
            nn.Linear(edge_dim, 128), nn.ReLU(), nn.Linear(128, dim * dim)
        )
        self.root = nn.Linear(dim, dim)

    def forward(
        self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
    ) -> torch.Tensor:
        src, dst = edge_index
        weight = self.edge_net(edge_attr).view(-1, self.dim, self.dim)
        messages = torch.bmm(h[src].unsqueeze(1), weight).squeeze(1)
        aggregated = torch.zeros_like(h).index_add_(0, dst, messages)
        return aggregated + self.root(h)


def segment_softmax(scores: torch.Tensor, segment: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Softmax of ``scores`` within each segment (the nodes of one graph)."""
    seg_max = torch.full((num_segments,), float("-inf")).scatter_reduce(
        0, segment, scores, reduce="amax", include_self=True
    )
    exp = torch.exp(scores - seg_max[segment])
    seg_sum = torch.zeros(num_segments).index_add_(0, segment, exp)
    return exp / seg_sum[segment]


class Set2Set(nn.Module):
    """Order-invariant readout: an LSTM queries the nodes of each graph by attention."""

    def __init__(self, dim: int, steps: int = 3) -> None:
        super().__init__()
        self.dim, self.steps = dim, steps
        self.lstm = nn.LSTMCell(2 * dim, dim)

    def forward(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        q_star = h.new_zeros(num_graphs, 2 * self.dim)
        state = (h.new_zeros(num_graphs, self.dim), h.new_zeros(num_graphs, self.dim))
        for _ in range(self.steps):
            q, c = self.lstm(q_star, state)
            state = (q, c)
            scores = (h * q[batch]).sum(dim=-1)
            attention = segment_softmax(scores, batch, num_graphs)
            readout = h.new_zeros(num_graphs, self.dim).index_add_(
                0, batch, attention.unsqueeze(-1) * h
            )
            q_star = torch.cat([q, readout], dim=-1)
        return q_star


class MPNN(nn.Module):
    def __init__(self, node_dim: int, edge_dim: int, dim: int = 32, rounds: int = 3) -> None:
        super().__init__()
        self.rounds = rounds
        self.lin0 = nn.Linear(node_dim, dim)
        self.conv = EdgeConditionedConv(dim, edge_dim)
        self.gru = nn.GRU(dim, dim)
        self.set2set = Set2Set(dim, steps=3)
        self.lin1 = nn.Linear(2 * dim, dim)
        self.lin2 = nn.Linear(dim, 1)

    def forward(self, data: dict) -> torch.Tensor:
        out = torch.relu(self.lin0(data["x"]))
        h = out.unsqueeze(0)
        for _ in range(self.rounds):
            m = torch.relu(self.conv(out, data["edge_index"], data["edge_attr"]))
            out, h = self.gru(m.unsqueeze(0), h)
            out = out.squeeze(0)
        out = self.set2set(out, data["batch"], data["num_graphs"])
        out = torch.relu(self.lin1(out))
        return self.lin2(out).view(-1)


@torch.no_grad()
def mean_absolute_error(model: nn.Module, loader: DataLoader, mean: float, std: float) -> float:
    model.eval()
    total, count = 0.0, 0
    for data in loader:
        pred = model(data) * std + mean
        total += (pred - data["y"]).abs().sum().item()
        count += data["num_graphs"]
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description="MPNN on generated molecules")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    rng = np.random.default_rng(args.seed)
    dataset = [random_molecule(rng) for _ in range(args.n_train + 1000)]
    train_set, val_set, test_set = (
        dataset[: args.n_train],
        dataset[args.n_train : args.n_train + 500],
        dataset[args.n_train + 500 :],
    )
    train_y = torch.cat([g["y"] for g in train_set])
    mean, std = train_y.mean().item(), train_y.std().item()

    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, collate_fn=collate
    )
    val_loader = DataLoader(val_set, batch_size=256, collate_fn=collate)
    test_loader = DataLoader(test_set, batch_size=256, collate_fn=collate)

    model = MPNN(node_dim=len(ATOMS), edge_dim=len(BONDS))
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.7, patience=3, min_lr=1e-5
    )

    test_y = torch.cat([g["y"] for g in test_set])
    baseline = (test_y - mean).abs().mean().item()
    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for data in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(data), (data["y"] - mean) / std)
            loss.backward()
            optimizer.step()
            total += loss.item() * data["num_graphs"]
        val_mae = mean_absolute_error(model, val_loader, mean, std)
        scheduler.step(val_mae)
        test_mae = mean_absolute_error(model, test_loader, mean, std)
        print(
            f"epoch {epoch:3d}: lr {optimizer.param_groups[0]['lr']:.1e}, "
            f"train loss {total / len(train_set):.4f}, val MAE {val_mae:.3f}, test MAE {test_mae:.3f}"
        )
    print(f"test MAE {test_mae:.3f} (predicting the training mean: {baseline:.3f})")


if __name__ == "__main__":
    main()
