"""A siamese network trained on pairs with a hand-written contrastive loss: healthy.

In the manner of the siamese-network / contrastive-loss tutorials: 20x20 grey glyphs of
10 classes (each class a fixed set of strokes, drawn at a random shift and thickness,
plus noise, standardised with their mean and std) are split into training and validation
glyphs. ``SiameseNetworkDataset`` pairs each glyph with a glyph of the same class half
of the time and of another class otherwise, with label 1 for "same" and 0 for
"different". ``SiameseNetwork`` runs both glyphs through one shared tower (two
``Conv2d`` + ReLU + max-pool stages and an MLP to a 16-d embedding) in
``forward(input1, input2)``; ``ContrastiveLoss`` is written by hand: the mean of
``label * d^2 + (1 - label) * max(margin - d, 0)^2`` (halved) on the Euclidean distance
``d`` of the two embeddings, margin 2. Adam; ``DataLoader``s; a top-level
training loop with argparse. Prints the loss and the verification accuracy of fixed
validation pairs, a pair counted "same" when its distance is under half the margin.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/siamese_contrastive.py
    nndoctor check examples/wild/siamese_contrastive.py
"""

import argparse
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

N_CLASSES, SIZE = 10, 20


def make_glyphs(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    world = torch.Generator().manual_seed(2024)  # the same 10 glyph shapes for every seed
    strokes = torch.randint(2, 14, (N_CLASSES, 3, 4), generator=world).float()  # 3 segments
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    shift = torch.randint(0, 6, (n, 2), generator=g).float()
    width = 0.8 + 0.6 * torch.rand(n, 1, 1, generator=g)
    images = torch.zeros(n, SIZE, SIZE)
    for s in range(3):
        y0, x0, y1, x1 = strokes[labels, s].unbind(1)
        y0, y1 = (y0 + shift[:, 0]).view(n, 1, 1), (y1 + shift[:, 0]).view(n, 1, 1)
        x0, x1 = (x0 + shift[:, 1]).view(n, 1, 1), (x1 + shift[:, 1]).view(n, 1, 1)
        dy, dx = y1 - y0, x1 - x0
        t = (((ys - y0) * dy + (xs - x0) * dx) / (dy**2 + dx**2 + 1e-6)).clamp(0, 1)
        dist = torch.sqrt((ys - y0 - t * dy) ** 2 + (xs - x0 - t * dx) ** 2)
        images = torch.maximum(images, torch.exp(-((dist / width) ** 2)))
    images = images + 0.2 * torch.randn(n, SIZE, SIZE, generator=g)
    return ((images - 0.1) / 0.31).unsqueeze(1), labels  # the glyph mean and std


class SiameseNetworkDataset(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.by_class = [torch.nonzero(labels == c).squeeze(1).tolist() for c in range(N_CLASSES)]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        label = int(self.labels[index])
        same_class = random.random() < 0.5
        if same_class:
            other = random.choice(self.by_class[label])
        else:
            other_label = random.choice([c for c in range(N_CLASSES) if c != label])
            other = random.choice(self.by_class[other_label])
        return self.images[index], self.images[other], torch.tensor(float(same_class))


class SiameseNetwork(nn.Module):
    def __init__(self, embedding_dim: int = 16) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        self.fc = nn.Sequential(
            nn.Linear(32 * 5 * 5, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, embedding_dim),
        )

    def forward_once(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.cnn(x).flatten(1))

    def forward(self, input1: torch.Tensor, input2: torch.Tensor):
        return self.forward_once(input1), self.forward_once(input2)


class ContrastiveLoss(nn.Module):
    """Hadsell et al.: similar pairs (label 1) pulled together, dissimilar pushed past the margin."""

    def __init__(self, margin: float = 2.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, output1, output2, label):
        distance = torch.sqrt(((output1 - output2) ** 2).sum(dim=1) + 1e-8)
        loss_similar = label * distance.pow(2)
        loss_dissimilar = (1 - label) * torch.clamp(self.margin - distance, min=0.0).pow(2)
        return torch.mean(loss_similar + loss_dissimilar) / 2


parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--margin", type=float, default=2.0)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
random.seed(args.seed)
torch.manual_seed(args.seed)

g = torch.Generator().manual_seed(args.seed)
train_images, train_labels = make_glyphs(3000, g)
val_images, val_labels = make_glyphs(600, g)
train_loader = DataLoader(
    SiameseNetworkDataset(train_images, train_labels), batch_size=args.batch_size, shuffle=True
)
val_set = SiameseNetworkDataset(val_images, val_labels)
val_pairs = [val_set[i] for i in range(len(val_set))]  # drawn once, fixed
val_loader = DataLoader(val_pairs, batch_size=200)

net = SiameseNetwork()
criterion = ContrastiveLoss(margin=args.margin)
optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)

for epoch in range(args.epochs):
    net.train()
    running = 0.0
    for img0, img1, label in train_loader:
        optimizer.zero_grad()
        output1, output2 = net(img0, img1)
        loss_contrastive = criterion(output1, output2, label)
        loss_contrastive.backward()
        optimizer.step()
        running += loss_contrastive.item()
    net.eval()
    correct = 0
    with torch.no_grad():
        for img0, img1, label in val_loader:
            output1, output2 = net(img0, img1)
            same = F.pairwise_distance(output1, output2) < args.margin / 2
            correct += (same.float() == label).sum().item()
    print(
        f"Epoch {epoch + 1}: loss {running / len(train_loader):.4f}, "
        f"verification accuracy {100 * correct / len(val_pairs):.1f}%"
    )
