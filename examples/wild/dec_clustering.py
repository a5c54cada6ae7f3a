"""Deep Embedded Clustering (DEC) of generated 50-D data: healthy.

In the manner of the PyTorch ports of DEC (Xie, Girshick and Farhadi, 2016), such as
vlukiyanov/pt-dec: the data are 3,000 points drawn from six Gaussian clusters in a 2-D
latent space (centres on a ring, anisotropic covariances, unequal sizes) and pushed
through a fixed random nonlinear map (two random tanh layers, with Gaussian noise) to 50
dimensions, standardised per feature. ``AutoEncoder`` is an ``nn.Module`` with an MLP
encoder 50-256-128-10 and a mirrored decoder (ReLU, linear code and output).

Phase 1 pre-trains the autoencoder on reconstruction (``nn.MSELoss``, Adam, shuffled
``DataLoader``). Phase 2 builds ``DEC``: the pre-trained encoder and a
``ClusterAssignment`` module whose cluster centres are an ``nn.Parameter``, initialised by
k-means (written in torch, k-means++ seeding, best of 10 runs) on the codes of the whole
data set. The soft assignment Q is the Student's t kernel (alpha = 1) between codes and
centres, normalised over the clusters; every ``update_interval`` iterations the target
distribution P (``target_distribution(q)``: q squared over the soft cluster frequencies,
renormalised per sample) is recomputed on the whole data set and detached, and encoder and
centres are trained together on KL(P || Q) (``F.kl_div(q.log(), p, reduction="batchmean")``)
with SGD (lr 0.01, momentum 0.9). Training stops after a fixed number of iterations or once
fewer than 0.1% of the points change cluster between two target updates.

Top-level functions and ``main()`` with argparse; prints the reconstruction loss during
pre-training, the KL loss and the accuracy during clustering (accuracy under the best
one-to-one matching of clusters to classes, by brute force over the 720 permutations),
then the final accuracy of DEC next to k-means on the raw inputs, k-means on the
pre-trained codes and the chance level of the largest class.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/dec_clustering.py
    nndoctor check examples/wild/dec_clustering.py
"""

import argparse
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLUSTERS, N_FEATURES, LATENT_DIM = 6, 50, 2


def make_data(n, g):
    """Six Gaussian blobs in 2-D, pushed through a fixed random nonlinear map to 50-D."""
    weights = torch.tensor([0.22, 0.2, 0.18, 0.16, 0.13, 0.11])
    labels = torch.multinomial(weights, n, replacement=True, generator=g)
    angles = 2 * math.pi * torch.arange(N_CLUSTERS) / N_CLUSTERS
    centres = 2.5 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    minor = 0.3 + 0.1 * torch.rand(N_CLUSTERS, generator=g)
    major = 0.9 + 0.2 * torch.rand(N_CLUSTERS, generator=g)
    scales = torch.stack([minor, major], dim=1)
    rotations = 2 * math.pi * torch.rand(N_CLUSTERS, generator=g)
    cos, sin = torch.cos(rotations), torch.sin(rotations)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    eps = torch.randn(n, LATENT_DIM, generator=g) * scales[labels]
    z = centres[labels] + torch.einsum("nij,nj->ni", rot[labels], eps)

    w1 = torch.randn(LATENT_DIM, 64, generator=g)
    b1 = torch.randn(64, generator=g)
    w2 = torch.randn(64, N_FEATURES, generator=g) / 8.0
    hidden = torch.tanh(z @ w1 + b1)
    x = torch.tanh(hidden @ w2) + 0.3 * torch.sin(hidden @ w2 * 3.0)
    x = x + 0.1 * torch.randn(n, N_FEATURES, generator=g)
    return x, labels


class AutoEncoder(nn.Module):
    def __init__(self, dims=(N_FEATURES, 256, 128, 10)):
        super().__init__()
        enc, dec = [], []
        for i in range(len(dims) - 1):
            enc.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                enc.append(nn.ReLU())
        rdims = dims[::-1]
        for i in range(len(rdims) - 1):
            dec.append(nn.Linear(rdims[i], rdims[i + 1]))
            if i < len(rdims) - 2:
                dec.append(nn.ReLU())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x):
        return self.decoder(self.encoder(x))


class ClusterAssignment(nn.Module):
    """Student's t soft assignment of embedded points to learnable cluster centres."""

    def __init__(self, n_clusters, embedding_dim, alpha=1.0):
        super().__init__()
        self.alpha = alpha
        centres = torch.zeros(n_clusters, embedding_dim)
        nn.init.xavier_uniform_(centres)
        self.cluster_centers = nn.Parameter(centres)

    def forward(self, z):
        norm_squared = torch.sum((z.unsqueeze(1) - self.cluster_centers) ** 2, dim=2)
        numerator = 1.0 / (1.0 + norm_squared / self.alpha)
        power = (self.alpha + 1.0) / 2.0
        numerator = numerator**power
        return numerator / torch.sum(numerator, dim=1, keepdim=True)


class DEC(nn.Module):
    def __init__(self, encoder, n_clusters, embedding_dim):
        super().__init__()
        self.encoder = encoder
        self.assignment = ClusterAssignment(n_clusters, embedding_dim)

    def forward(self, x):
        return self.assignment(self.encoder(x))


def target_distribution(q):
    weight = q**2 / torch.sum(q, dim=0)
    return (weight.t() / torch.sum(weight, dim=1)).t()


def kmeans(x, k, g, n_init=10, n_iter=100):
    """Lloyd's algorithm with k-means++ seeding; the run with the lowest inertia."""
    best_inertia, best_centres, best_labels = math.inf, None, None
    for _ in range(n_init):
        centres = x[torch.randint(0, len(x), (1,), generator=g)]
        for _ in range(1, k):
            d2 = torch.cdist(x, centres).min(dim=1).values ** 2
            idx = torch.multinomial(d2 / d2.sum(), 1, generator=g)
            centres = torch.cat([centres, x[idx]])
        for _ in range(n_iter):
            labels = torch.cdist(x, centres).argmin(dim=1)
            new = torch.stack(
                [x[labels == j].mean(0) if (labels == j).any() else centres[j] for j in range(k)]
            )
            if torch.allclose(new, centres):
                break
            centres = new
        labels = torch.cdist(x, centres).argmin(dim=1)
        inertia = ((x - centres[labels]) ** 2).sum().item()
        if inertia < best_inertia:
            best_inertia, best_centres, best_labels = inertia, centres, labels
    return best_centres, best_labels


def cluster_accuracy(labels, predicted, k=N_CLUSTERS):
    """Accuracy under the best one-to-one mapping of clusters to classes (brute force)."""
    counts = torch.zeros(k, k, dtype=torch.long)
    counts.index_put_((predicted, labels), torch.ones_like(labels), accumulate=True)
    perms = torch.tensor(list(itertools.permutations(range(k))))
    matched = counts[torch.arange(k), perms].sum(dim=1)
    return matched.max().item() / len(labels)


def pretrain(autoencoder, loader, epochs, lr):
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=lr)
    criterion = nn.MSELoss()
    autoencoder.train()
    for epoch in range(1, epochs + 1):
        total, n = 0.0, 0
        for (x,) in loader:
            optimizer.zero_grad()
            loss = criterion(autoencoder(x), x)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            n += len(x)
        if epoch % 10 == 0 or epoch == 1:
            print(f"pretrain epoch {epoch:3d}  reconstruction loss {total / n:.4f}")


@torch.no_grad()
def predict(model, x):
    model.eval()
    return model(x)


def train_dec(model, x, labels, args):
    optimizer = torch.optim.SGD(model.parameters(), lr=args.dec_lr, momentum=0.9)
    g = torch.Generator().manual_seed(args.seed + 1)
    previous = None
    p = None
    for iteration in range(args.dec_iters):
        if iteration % args.update_interval == 0:
            q_all = predict(model, x)
            p = target_distribution(q_all).detach()
            predicted = q_all.argmax(dim=1)
            acc = cluster_accuracy(labels, predicted)
            if previous is not None:
                delta = (predicted != previous).float().mean().item()
                if iteration % (5 * args.update_interval) == 0:
                    print(f"dec iter {iteration:5d}  acc {acc:.3f}  changed {delta:.4f}")
                if delta < args.tol:
                    print(f"dec iter {iteration:5d}  stopping: {delta:.4f} < tol {args.tol}")
                    break
            previous = predicted
            model.train()
        idx = torch.randint(0, len(x), (args.batch_size,), generator=g)
        q = model(x[idx])
        loss = F.kl_div(q.log(), p[idx], reduction="batchmean")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration % 500 == 0:
            print(f"dec iter {iteration:5d}  kl loss {loss.item():.5f}")
    return predict(model, x).argmax(dim=1)


def main():
    parser = argparse.ArgumentParser(description="Deep Embedded Clustering on generated data")
    parser.add_argument("--n-samples", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pretrain-epochs", type=int, default=60)
    parser.add_argument("--pretrain-lr", type=float, default=1e-3)
    parser.add_argument("--dec-iters", type=int, default=3000)
    parser.add_argument("--dec-lr", type=float, default=0.01)
    parser.add_argument("--update-interval", type=int, default=30)
    parser.add_argument("--tol", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x, labels = make_data(args.n_samples, g)
    x = (x - x.mean(dim=0)) / x.std(dim=0)
    chance = torch.bincount(labels).max().item() / len(labels)

    _, raw_pred = kmeans(x, N_CLUSTERS, g)
    raw_acc = cluster_accuracy(labels, raw_pred)
    print(f"k-means on raw inputs: acc {raw_acc:.3f}")

    autoencoder = AutoEncoder()
    loader = DataLoader(TensorDataset(x), batch_size=args.batch_size, shuffle=True)
    pretrain(autoencoder, loader, args.pretrain_epochs, args.pretrain_lr)

    model = DEC(autoencoder.encoder, N_CLUSTERS, embedding_dim=10)
    with torch.no_grad():
        codes = model.encoder.eval()(x)
    centres, code_pred = kmeans(codes, N_CLUSTERS, g)
    with torch.no_grad():
        model.assignment.cluster_centers.copy_(centres)
    code_acc = cluster_accuracy(labels, code_pred)
    print(f"k-means on pretrained codes: acc {code_acc:.3f}")

    predicted = train_dec(model, x, labels, args)
    acc = cluster_accuracy(labels, predicted)
    print(
        f"final: DEC acc {acc:.3f}  (k-means raw {raw_acc:.3f}, k-means codes {code_acc:.3f}, "
        f"largest class {chance:.3f})"
    )


if __name__ == "__main__":
    main()
