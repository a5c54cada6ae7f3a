"""A Behler-Parrinello neural network potential trained on energies and forces: healthy.

In the manner of SchNetPack's energy-and-forces training (``Atomwise`` outputs summed to the
energy, ``Forces`` as the negative gradient of the energy with respect to the positions,
the loss a weighted sum of the energy and the force errors) and of the simple
"Behler-Parrinello in PyTorch" tutorials (radial symmetry functions with a cosine cutoff,
one MLP per atom). The data is generated in the script: clusters of 6 identical atoms
whose energy is a sum of Morse pair potentials (D = 1, a = 2, r_e = 1), sampled by
independent Metropolis chains at kT = 0.1 (200 moves of all atoms by N(0, 0.05^2) from the
octahedron with nearest-neighbour distance 1); the forces are the analytic negative
gradient, and each cluster is given a random rotation (its forces rotated with it) and
translation. 250 configurations for training (a small set, where the
forces carry most of the information), 100 for validation and 500 held out for the test,
each set a ``TensorDataset`` of (positions, energy, forces) in a ``DataLoader``.

``NeuralNetworkPotential`` takes the positions (B, 6, 3), builds the vectors r_j - r_i of
all ordered pairs from index buffers ``idx_i`` / ``idx_j`` (a neighbour list without
periodic images), expands the distances in 16 Gaussian radial basis functions multiplied by
the cosine cutoff 0.5 (cos(pi r / r_c) + 1) with r_c = 2.5, sums them per atom with
``index_add`` (the G2 symmetry functions), and maps each atom's 16 features through a tanh
MLP 16-64-64-1; the atomic outputs are scaled by the standard deviation and shifted by the
mean of the training energies per atom, then summed over the atoms. The training step sets
``requires_grad`` on the positions and takes forces = -``torch.autograd.grad``(E.sum(),
positions, ``create_graph=True``), so the force error can be differentiated with respect
to the weights; loss = MSE(E) + rho * MSE(F) with rho = 10, Adam (lr 2e-3) and
``ReduceLROnPlateau`` (factor 0.5, patience 10) on the validation loss, 150 epochs of
batches of 16. Top-level functions and ``main()`` with argparse; prints every 10 epochs
the training loss, the validation energy and force MAE and the learning rate, then the
test energy and force MAE against predicting the mean training energy and zero forces.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/neural_potential_forces.py
    nndoctor check examples/wild/neural_potential_forces.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

# -----------------------------------------------------------------------------
# data: Morse clusters


def octahedron(r_e):
    d = r_e / math.sqrt(2.0)
    return np.array(
        [[d, 0, 0], [-d, 0, 0], [0, d, 0], [0, -d, 0], [0, 0, d], [0, 0, -d]], dtype=np.float64
    )


def morse_energy_forces(positions, D=1.0, a=2.0, r_e=1.0):
    """Energy and forces of a sum of Morse pair potentials, positions (M, N, 3)."""
    n_atoms = positions.shape[1]
    diff = positions[:, :, None, :] - positions[:, None, :, :]  # r_i - r_j
    r = np.linalg.norm(diff, axis=-1)
    off_diagonal = ~np.eye(n_atoms, dtype=bool)
    r_safe = np.where(off_diagonal, r, 1.0)
    x = np.exp(-a * (r_safe - r_e))
    pair_energy = np.where(off_diagonal, D * (1.0 - x) ** 2 - D, 0.0)
    energy = 0.5 * pair_energy.sum(axis=(1, 2))
    dV_dr = np.where(off_diagonal, 2.0 * D * a * (1.0 - x) * x, 0.0)
    forces = -(dV_dr[..., None] * diff / r_safe[..., None]).sum(axis=2)
    return energy, forces


def random_rotations(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1.0
    return q


def metropolis_sample(rng, n, kT=0.1, n_steps=200, step_size=0.05):
    """n independent Metropolis chains from the octahedron, all atoms moved at once."""
    positions = np.repeat(octahedron(1.0)[None], n, axis=0)
    energy, _ = morse_energy_forces(positions)
    for _ in range(n_steps):
        proposal = positions + step_size * rng.normal(size=positions.shape)
        new_energy, _ = morse_energy_forces(proposal)
        accept = rng.random(n) < np.exp(-(new_energy - energy) / kT)
        positions[accept], energy[accept] = proposal[accept], new_energy[accept]
    return positions


def make_configurations(rng, n):
    positions = metropolis_sample(rng, n)
    energy, forces = morse_energy_forces(positions)
    # a random orientation and position for each cluster; the forces rotate with it
    rot = random_rotations(rng, n)
    positions = positions @ rot.transpose(0, 2, 1) + rng.normal(size=(n, 1, 3))
    forces = forces @ rot.transpose(0, 2, 1)
    return (
        torch.tensor(positions, dtype=torch.float32),
        torch.tensor(energy, dtype=torch.float32),
        torch.tensor(forces, dtype=torch.float32),
    )


# -----------------------------------------------------------------------------
# model


class CosineCutoff(nn.Module):
    def __init__(self, cutoff):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, distances):
        cutoffs = 0.5 * (torch.cos(distances * math.pi / self.cutoff) + 1.0)
        return cutoffs * (distances < self.cutoff).float()


class GaussianRBF(nn.Module):
    def __init__(self, n_rbf, cutoff, start=0.5):
        super().__init__()
        offsets = torch.linspace(start, cutoff, n_rbf)
        self.register_buffer("offsets", offsets)
        self.register_buffer("coeff", -0.5 / (offsets[1] - offsets[0]) ** 2)

    def forward(self, distances):
        return torch.exp(self.coeff * (distances[..., None] - self.offsets) ** 2)


class NeuralNetworkPotential(nn.Module):
    def __init__(self, n_atoms, n_rbf, cutoff, n_hidden, mean_per_atom, stddev):
        super().__init__()
        pairs = [(i, j) for i in range(n_atoms) for j in range(n_atoms) if i != j]
        self.register_buffer("idx_i", torch.tensor([i for i, _ in pairs]))
        self.register_buffer("idx_j", torch.tensor([j for _, j in pairs]))
        self.n_atoms = n_atoms
        self.n_rbf = n_rbf
        self.radial_basis = GaussianRBF(n_rbf, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        self.atomwise = nn.Sequential(
            nn.Linear(n_rbf, n_hidden),
            nn.Tanh(),
            nn.Linear(n_hidden, n_hidden),
            nn.Tanh(),
            nn.Linear(n_hidden, 1),
        )
        self.register_buffer("mean_per_atom", torch.tensor(mean_per_atom))
        self.register_buffer("stddev", torch.tensor(stddev))

    def forward(self, positions):
        r_ij = positions[:, self.idx_j] - positions[:, self.idx_i]  # (B, pairs, 3)
        d_ij = torch.linalg.norm(r_ij, dim=-1)
        g_ij = self.radial_basis(d_ij) * self.cutoff_fn(d_ij)[..., None]
        features = torch.zeros(
            positions.shape[0], self.n_atoms, self.n_rbf, dtype=positions.dtype
        ).index_add(1, self.idx_i, g_ij)
        atomic_energies = self.atomwise(features).squeeze(-1)
        atomic_energies = atomic_energies * self.stddev + self.mean_per_atom
        return atomic_energies.sum(dim=1)


# -----------------------------------------------------------------------------
# training


def evaluate(model, loader, rho):
    model.eval()
    n, loss_sum, energy_abs, force_abs = 0, 0.0, 0.0, 0.0
    for positions, energy, forces in loader:
        positions.requires_grad_(True)
        pred_energy = model(positions)
        pred_forces = -torch.autograd.grad(pred_energy.sum(), positions)[0]
        pred_energy, pred_forces = pred_energy.detach(), pred_forces.detach()
        loss = F.mse_loss(pred_energy, energy) + rho * F.mse_loss(pred_forces, forces)
        loss_sum += loss.item() * len(energy)
        energy_abs += (pred_energy - energy).abs().sum().item()
        force_abs += (pred_forces - forces).abs().mean(dim=(1, 2)).sum().item()
        n += len(energy)
    return loss_sum / n, energy_abs / n, force_abs / n


def main():
    parser = argparse.ArgumentParser(description="neural network potential on energies and forces")
    parser.add_argument("--n-train", type=int, default=250)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--n-rbf", type=int, default=16)
    parser.add_argument("--cutoff", type=float, default=2.5)
    parser.add_argument("--n-hidden", type=int, default=64)
    parser.add_argument("--rho", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_set = TensorDataset(*make_configurations(rng, args.n_train))
    val_set = TensorDataset(*make_configurations(rng, args.n_val))
    test_set = TensorDataset(*make_configurations(rng, args.n_test))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=100)
    test_loader = DataLoader(test_set, batch_size=100)

    train_energy = train_set.tensors[1]
    n_atoms = train_set.tensors[0].shape[1]
    mean_per_atom = (train_energy / n_atoms).mean().item()
    stddev = (train_energy / n_atoms).std().item()
    print(
        f"{len(train_set)} training configurations of {n_atoms} atoms; energy mean "
        f"{train_energy.mean():.3f}, std {train_energy.std():.3f}; force component std "
        f"{train_set.tensors[2].std():.3f}"
    )

    model = NeuralNetworkPotential(
        n_atoms, args.n_rbf, args.cutoff, args.n_hidden, mean_per_atom, stddev
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.5, patience=10, min_lr=1e-5
    )

    for epoch in range(1, args.epochs + 1):
        model.train()
        running = 0.0
        for positions, energy, forces in train_loader:
            positions.requires_grad_(True)
            pred_energy = model(positions)
            pred_forces = -torch.autograd.grad(pred_energy.sum(), positions, create_graph=True)[0]
            loss = F.mse_loss(pred_energy, energy) + args.rho * F.mse_loss(pred_forces, forces)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item() * len(energy)
        val_loss, val_energy_mae, val_force_mae = evaluate(model, val_loader, args.rho)
        scheduler.step(val_loss)
        if epoch % args.log_every == 0 or epoch == 1:
            print(
                f"epoch {epoch:3d}  train loss {running / len(train_set):.4f}  val loss "
                f"{val_loss:.4f}  val energy MAE {val_energy_mae:.4f}  val force MAE "
                f"{val_force_mae:.4f}  lr {optimizer.param_groups[0]['lr']:.1e}"
            )

    _, energy_mae, force_mae = evaluate(model, test_loader, args.rho)
    test_energy, test_forces = test_set.tensors[1], test_set.tensors[2]
    baseline_energy_mae = (test_energy - train_energy.mean()).abs().mean().item()
    baseline_force_mae = test_forces.abs().mean().item()
    print(
        f"test energy MAE {energy_mae:.4f} (predicting the mean energy: {baseline_energy_mae:.4f})"
    )
    print(f"test force MAE {force_mae:.4f} (predicting zero forces: {baseline_force_mae:.4f})")


if __name__ == "__main__":
    main()
