"""Face-recognition-style metric learning with an ArcFace head on generated identities: healthy.

In the manner of the ArcFace (additive angular margin) face-recognition training code:
each "identity" is a smooth random 20 x 20 grey pattern, and each of its images adds a
random shift, a random contrast and brightness, a lighting gradient, an "expression"
mixed from 8 patterns shared by all identities, and pixel noise. 300 identities with 16
images each are for training; 100 further identities, never seen in training, give
verification pairs (same / different identity), LFW-style. The embedder is a small CNN
(``Conv2d``, ``BatchNorm2d``, ``PReLU``, max pooling) ending in the usual
BatchNorm - Dropout - Linear - ``BatchNorm1d`` output block that gives a 128-d
embedding. The head ``ArcMarginProduct`` L2-normalises the embeddings and its class
weights, so that their product is cos(theta); on the true class it replaces cos(theta)
by cos(theta + m) with m = 0.5 (past theta = pi - m, where cos(theta + m) would turn
back up, by cos(theta) - m sin(m) instead), and scales all logits by s = 30 before
``CrossEntropyLoss``. SGD with momentum 0.9 and weight decay 5e-4 over the embedder's
and the head's parameters, ``MultiStepLR`` dividing the learning rate by 10 at two
milestones, stepped every epoch; a shuffled ``DataLoader`` over a ``TensorDataset``.
Evaluation: ``model.eval()``, embeddings of the held-out identities, the cosine
similarity of each pair, and verification accuracy by 10-fold cross-validation of the
threshold. A ``main()`` with argparse; prints the training loss, the training accuracy
of the margin logits and the verification accuracy every 2 epochs.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/arcface_metric.py
    nndoctor check examples/wild/arcface_metric.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SIZE = 20


def smooth_patterns(n: int, grid: int, g: torch.Generator) -> torch.Tensor:
    coarse = torch.randn(n, 1, grid, grid, generator=g)
    return F.interpolate(coarse, size=(SIZE + 4, SIZE + 4), mode="bicubic", align_corners=False)


def render(identities, expressions, per_id, g):
    """``per_id`` images of each identity pattern, with its nuisances; shape (N, 1, 20, 20)."""
    n = identities.shape[0] * per_id
    base = identities.repeat_interleave(per_id, dim=0)
    weights = torch.randn(n, expressions.shape[0], 1, 1, 1, generator=g) * 0.45
    faces = base + (weights * expressions.unsqueeze(0)).sum(dim=1)
    ramp = torch.linspace(-1, 1, SIZE + 4)
    yy, xx = torch.meshgrid(ramp, ramp, indexing="ij")
    angle = torch.rand(n, generator=g) * 2 * math.pi
    light = torch.cos(angle).view(-1, 1, 1, 1) * xx + torch.sin(angle).view(-1, 1, 1, 1) * yy
    faces = faces + 0.6 * torch.rand(n, 1, 1, 1, generator=g) * light
    faces = faces * (0.6 + 0.8 * torch.rand(n, 1, 1, 1, generator=g))
    faces = faces + 0.5 * torch.randn(n, 1, 1, 1, generator=g)
    dy, dx = torch.randint(0, 5, (2, n), generator=g)
    crops = torch.stack([faces[i, :, dy[i] : dy[i] + SIZE, dx[i] : dx[i] + SIZE] for i in range(n)])
    return crops + 0.3 * torch.randn(crops.shape, generator=g)


def make_pairs(labels: torch.Tensor, n_pairs: int, g: torch.Generator):
    """Half same-identity pairs, half different-identity pairs, as index pairs."""
    pairs, issame = [], []
    n = len(labels)
    while len(pairs) < n_pairs:
        i, j = torch.randint(0, n, (2,), generator=g).tolist()
        same = bool(labels[i] == labels[j])
        if i == j or (same != (len(pairs) % 2 == 0)):
            continue
        pairs.append((i, j))
        issame.append(same)
    return torch.tensor(pairs), np.array(issame)


class Embedder(nn.Module):
    def __init__(self, embedding_size: int = 128) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.PReLU(32),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.PReLU(64),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.PReLU(128),
        )
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Dropout(0.2),
            nn.Flatten(),
            nn.Linear(128 * 5 * 5, embedding_size),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.features(x))


class ArcMarginProduct(nn.Module):
    """Additive angular margin: s * cos(theta + m) on the true class, s * cos(theta) elsewhere."""

    def __init__(self, in_features, out_features, s=30.0, m=0.50, easy_margin=False):
        super().__init__()
        self.s = s
        self.m = m
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.easy_margin = easy_margin
        self.cos_m = math.cos(m)
        self.sin_m = math.sin(m)
        self.th = math.cos(math.pi - m)
        self.mm = math.sin(math.pi - m) * m

    def forward(self, input, label):
        cosine = F.linear(F.normalize(input), F.normalize(self.weight))
        sine = torch.sqrt((1.0 - torch.pow(cosine, 2)).clamp(0, 1))
        phi = cosine * self.cos_m - sine * self.sin_m
        if self.easy_margin:
            phi = torch.where(cosine > 0, phi, cosine)
        else:
            phi = torch.where(cosine > self.th, phi, cosine - self.mm)
        one_hot = torch.zeros_like(cosine)
        one_hot.scatter_(1, label.view(-1, 1).long(), 1)
        output = (one_hot * phi) + ((1.0 - one_hot) * cosine)
        output *= self.s
        return output


def verification_accuracy(similarities: np.ndarray, issame: np.ndarray, n_folds: int = 10):
    """LFW-style: the best threshold on 9 folds, the accuracy on the tenth."""
    folds = np.array_split(np.arange(len(issame)), n_folds)
    thresholds = np.arange(-1.0, 1.0, 0.01)
    accuracies = []
    for k in range(n_folds):
        test = folds[k]
        train = np.concatenate([folds[j] for j in range(n_folds) if j != k])
        train_acc = [np.mean((similarities[train] > t) == issame[train]) for t in thresholds]
        best = thresholds[int(np.argmax(train_acc))]
        accuracies.append(np.mean((similarities[test] > best) == issame[test]))
    return float(np.mean(accuracies))


def evaluate(model, images, pairs, issame):
    model.eval()
    with torch.no_grad():
        embeddings = F.normalize(model(images))
    similarities = (embeddings[pairs[:, 0]] * embeddings[pairs[:, 1]]).sum(dim=1).numpy()
    return verification_accuracy(similarities, issame)


def main():
    parser = argparse.ArgumentParser(description="ArcFace metric learning")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--milestones", type=int, nargs="+", default=[10, 14])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    num_train_ids, num_test_ids = 300, 100
    identities = smooth_patterns(num_train_ids + num_test_ids, 5, g)
    expressions = smooth_patterns(8, 4, g)

    train_images = render(identities[:num_train_ids], expressions, 16, g)
    train_labels = torch.arange(num_train_ids).repeat_interleave(16)
    test_images = render(identities[num_train_ids:], expressions, 8, g)
    test_labels = torch.arange(num_test_ids).repeat_interleave(8)
    pairs, issame = make_pairs(test_labels, 2000, g)

    train_loader = DataLoader(
        TensorDataset(train_images, train_labels), batch_size=args.batch_size, shuffle=True
    )

    model = Embedder(embedding_size=128)
    metric_fc = ArcMarginProduct(128, num_train_ids, s=30.0, m=0.5)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(
        [{"params": model.parameters()}, {"params": metric_fc.parameters()}],
        lr=args.lr,
        momentum=0.9,
        weight_decay=args.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, args.milestones, gamma=0.1)

    print(
        f"before training: verification accuracy {evaluate(model, test_images, pairs, issame):.3f}"
    )
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, correct, count = 0.0, 0, 0
        for data_input, label in train_loader:
            feature = model(data_input)
            output = metric_fc(feature, label)
            loss = criterion(output, label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(label)
            correct += (output.argmax(dim=1) == label).sum().item()
            count += len(label)
        scheduler.step()

        if epoch % 2 == 0 or epoch == args.epochs:
            acc = evaluate(model, test_images, pairs, issame)
            print(
                f"epoch {epoch:2d}: loss {total / count:.3f}, train acc {correct / count:.3f}, "
                f"lr {scheduler.get_last_lr()[0]:.4f}, verification accuracy {acc:.3f}"
            )


if __name__ == "__main__":
    main()
