"""A metric-learning embedding net trained with a triplet margin loss: healthy.

In the manner of the siamese / triplet network examples: items of 10 classes are
32-feature vectors (a per-class prototype pushed through a fixed random nonlinear
map, plus noise), and a ``TripletDataset`` returns (anchor, positive of the same
class, negative of another class), drawing the partners at random. ``EmbeddingNet``
(an MLP with BatchNorm ending in an L2-normalised 16-d embedding) embeds all three;
``nn.TripletMarginLoss(margin=0.5)``; Adam; ``DataLoader``; a ``fit`` function
and ``main()`` with argparse. Prints the loss and a 1-nearest-neighbour accuracy
of held-out items against the training items.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/triplet_embedding.py
    nndoctor check examples/compat/triplet_embedding.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

CLASSES, FEATURES = 10, 32


def make_items(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    world = torch.Generator().manual_seed(99)  # the same classes for every seed and split
    prototypes = torch.randn(CLASSES, 8, generator=world)
    mixing = torch.randn(8, FEATURES, generator=world)
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=g)
    latent = prototypes[labels] + 0.6 * torch.randn(n, 8, generator=g)
    x = torch.tanh(latent @ mixing / 2) + 0.3 * torch.randn(n, FEATURES, generator=g)
    return (x - x.mean(0)) / x.std(0), labels


class TripletDataset(Dataset):
    """Train: for each sample (anchor) randomly chooses a positive and negative sample."""

    def __init__(self, x: torch.Tensor, labels: torch.Tensor, seed: int) -> None:
        self.x, self.labels = x, labels
        self.by_label = [torch.nonzero(labels == c).squeeze(1) for c in range(CLASSES)]
        self.rng = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        label = int(self.labels[index])
        same = self.by_label[label]
        positive_index = same[torch.randint(len(same), (1,), generator=self.rng)].item()
        negative_label = (label + torch.randint(1, CLASSES, (1,), generator=self.rng).item()) % CLASSES
        other = self.by_label[negative_label]
        negative_index = other[torch.randint(len(other), (1,), generator=self.rng)].item()
        return self.x[index], self.x[positive_index], self.x[negative_index]


class EmbeddingNet(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(FEATURES, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Linear(64, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(x), dim=1)


def knn_accuracy(model, train_x, train_y, test_x, test_y) -> float:
    model.eval()
    with torch.no_grad():
        sims = model(test_x) @ model(train_x).T
    model.train()
    return (train_y[sims.argmax(1)] == test_y).float().mean().item()


def fit(loader, model, loss_fn, optimizer, epochs, evaluate):
    for epoch in range(epochs):
        total = 0.0
        for anchor, positive, negative in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(anchor), model(positive), model(negative))
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch + 1}: loss {total / len(loader):.4f}, 1-NN accuracy {evaluate():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    train_x, train_y = make_items(3000, seed=2 * args.seed)
    test_x, test_y = make_items(500, seed=2 * args.seed + 1)
    loader = DataLoader(TripletDataset(train_x, train_y, args.seed), batch_size=64, shuffle=True)
    model = EmbeddingNet()
    loss_fn = nn.TripletMarginLoss(margin=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    fit(loader, model, loss_fn, optimizer, args.epochs, lambda: knn_accuracy(model, train_x, train_y, test_x, test_y))


if __name__ == "__main__":
    main()
