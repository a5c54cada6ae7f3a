"""A two-input (image + tabular) defect classifier with a balancing sampler: healthy.

In the manner of the multimodal "image + tabular data" PyTorch tutorials and the
imbalanced-data recipes built on ``WeightedRandomSampler``: a generated inspection line
where every part has a small RGB photo (16x16, stored channel-last as 8-bit, as an image
library would hand it over) and a row of eight sensor readings on their own scales
(temperature, pressure, vibration, spindle speed, ...). About one part in ten is
defective: a defect shows as a thin dark scratch on the photo, as a joint rise of
vibration and temperature in the sensors, or both; normal parts carry harmless spots and
texture. ``InspectionDataset`` returns ``(image, features, label)``: the photo converted
to a float tensor in ``[0, 1]`` (``permute`` to channels-first) and normalised per channel,
the features standardised with the training split's statistics. The training
``DataLoader`` draws with a ``WeightedRandomSampler`` whose per-sample weights are the
inverse frequency of each sample's class, so batches are balanced. ``FusionNet`` has a CNN
branch (``Conv2d``/``BatchNorm2d``/``ReLU``/``MaxPool2d`` to global average pooling) and an
MLP branch for the features, fused by concatenation into a small head with dropout that
gives two logits. The loss is a focal loss written by hand (gamma = 2) on the logits,
through ``log_softmax`` and ``gather``; Adam. Each epoch the model is evaluated with
``eval()`` on an unbalanced validation split by balanced accuracy and macro F1. A
``main()`` with argparse; prints the training loss and both metrics per epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/multimodal_sampler.py
    nndoctor check examples/wild/multimodal_sampler.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

IMAGE_SIZE = 16
SENSOR_MEANS = np.array([65.0, 4.2, 0.8, 1500.0, 12.0, 230.0, 0.35, 48.0])
SENSOR_STDS = np.array([6.0, 0.5, 0.25, 200.0, 3.0, 8.0, 0.05, 10.0])


def draw_scratch(img, rng):
    """A thin dark line of 7 to 12 pixels at a random angle."""
    length = rng.integers(7, 13)
    angle = rng.uniform(0, np.pi)
    r0, c0 = rng.uniform(3, IMAGE_SIZE - 3, size=2)
    for s in np.linspace(-length / 2, length / 2, 3 * length):
        r, c = int(round(r0 + s * np.sin(angle))), int(round(c0 + s * np.cos(angle)))
        if 0 <= r < IMAGE_SIZE and 0 <= c < IMAGE_SIZE:
            img[r, c] *= 0.6


def make_parts(n, rng):
    labels = (rng.random(n) < 0.1).astype(np.int64)
    kind = rng.random(n)  # defects: < 0.5 scratch only, < 0.8 sensors only, else both
    scratched = (labels == 1) & ((kind < 0.5) | (kind >= 0.8))
    sensor_fault = (labels == 1) & (kind >= 0.5)

    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    for i in range(n):
        tint = np.array([0.62, 0.64, 0.68]) + rng.normal(0, 0.05, size=3)
        shade = 1 + 0.15 * np.sin(xx / rng.uniform(2, 5) + rng.uniform(0, 6.3))[..., None]
        img = tint * shade + rng.normal(0, 0.08, size=(IMAGE_SIZE, IMAGE_SIZE, 3))
        for _ in range(rng.integers(1, 4)):  # harmless spots on every part
            cy, cx = rng.uniform(0, IMAGE_SIZE, size=2)
            spot = ((yy - cy) ** 2 + (xx - cx) ** 2) < rng.uniform(0.8, 2.5)
            img[spot] *= rng.uniform(0.5, 0.8)
        if scratched[i]:
            draw_scratch(img, rng)
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)

    z = rng.normal(size=(n, 8))
    z[:, 0] += 0.4 * z[:, 3]  # temperature follows spindle speed a little
    z[sensor_fault, 2] += 1.5  # vibration
    z[sensor_fault, 0] += 1.2  # temperature
    features = (SENSOR_MEANS + SENSOR_STDS * z).astype(np.float32)
    return images, features, labels


class InspectionDataset(Dataset):
    def __init__(self, images, features, labels, image_mean, image_std, feat_mean, feat_std):
        self.images = images
        self.features = (features - feat_mean) / feat_std
        self.labels = labels
        self.image_mean = torch.tensor(image_mean, dtype=torch.float32).view(3, 1, 1)
        self.image_std = torch.tensor(image_std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        image = torch.from_numpy(self.images[idx]).permute(2, 0, 1).float() / 255.0
        image = (image - self.image_mean) / self.image_std
        features = torch.from_numpy(self.features[idx]).float()
        return image, features, int(self.labels[idx])


class FusionNet(nn.Module):
    def __init__(self, n_features, n_classes=2):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.mlp = nn.Sequential(nn.Linear(n_features, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Sequential(
            nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, n_classes)
        )

    def forward(self, image, features):
        fused = torch.cat([self.cnn(image), self.mlp(features)], dim=1)
        return self.head(fused)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017) on logits, without the alpha weighting."""

    def __init__(self, gamma=2.0):
        super().__init__()
        self.gamma = gamma

    def forward(self, logits, targets):
        log_probs = F.log_softmax(logits, dim=1)
        log_pt = log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
        pt = log_pt.exp()
        return (-((1 - pt) ** self.gamma) * log_pt).mean()


def balanced_metrics(preds, labels, n_classes=2):
    recalls, f1s = [], []
    for c in range(n_classes):
        tp = ((preds == c) & (labels == c)).sum().item()
        fp = ((preds == c) & (labels != c)).sum().item()
        fn = ((preds != c) & (labels == c)).sum().item()
        recall = tp / max(tp + fn, 1)
        precision = tp / max(tp + fp, 1)
        recalls.append(recall)
        f1s.append(2 * precision * recall / max(precision + recall, 1e-12))
    return sum(recalls) / n_classes, sum(f1s) / n_classes


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    preds, labels = [], []
    for image, features, label in loader:
        preds.append(model(image, features).argmax(dim=1))
        labels.append(label)
    return balanced_metrics(torch.cat(preds), torch.cat(labels))


def main():
    parser = argparse.ArgumentParser(description="image + tabular defect classifier")
    parser.add_argument("--n-parts", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images, features, labels = make_parts(args.n_parts, rng)
    n_train = int(0.8 * args.n_parts)
    tr, va = slice(0, n_train), slice(n_train, None)
    image_mean = images[tr].reshape(-1, 3).mean(axis=0) / 255.0
    image_std = images[tr].reshape(-1, 3).std(axis=0) / 255.0
    feat_mean, feat_std = features[tr].mean(axis=0), features[tr].std(axis=0)
    stats = (image_mean, image_std, feat_mean, feat_std)
    train_set = InspectionDataset(images[tr], features[tr], labels[tr], *stats)
    val_set = InspectionDataset(images[va], features[va], labels[va], *stats)

    class_counts = np.bincount(labels[tr], minlength=2)
    class_weights = 1.0 / class_counts
    sample_weights = torch.as_tensor(class_weights[labels[tr]], dtype=torch.double)
    sampler = WeightedRandomSampler(sample_weights, num_samples=len(train_set), replacement=True)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    val_loader = DataLoader(val_set, batch_size=256)
    print(f"training parts: {class_counts[0]} normal, {class_counts[1]} defective")

    model = FusionNet(features.shape[1])
    criterion = FocalLoss(gamma=2.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for image, feats, label in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(image, feats), label)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(label)
            seen += len(label)
        bal_acc, macro_f1 = evaluate(model, val_loader)
        print(
            f"epoch {epoch:2d}: train focal loss {total / seen:.4f}, "
            f"val balanced accuracy {bal_acc:.3f}, macro F1 {macro_f1:.3f}"
        )


if __name__ == "__main__":
    main()
