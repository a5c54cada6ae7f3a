"""One-class Deep SVDD on generated seven-segment digits: healthy.

In the manner of the authors' ``Deep-SVDD-PyTorch`` code (Ruff et al. 2018, "Deep One-Class
Classification"): its ``main.py`` / ``DeepSVDD`` / ``DeepSVDDTrainer`` / ``MNIST_LeNet``
split, here without the autoencoder pre-training. The data are 16x16 grey seven-segment
digits generated in code: each digit lights its segments with a random stroke width,
slant, scale, offset and brightness, plus pixel noise and a faint random stroke of
clutter. As in the one-class MNIST set-up, one digit (``--normal_class``, 3 by default) is
the normal class: 2,000 of its images train, 500 held-out ones and 500 images of the nine
other digits (some differ from it by a single segment) form the test set, labelled 0
(normal) and 1 (anomalous). The preprocessing of the authors' MNIST dataset is kept: global
contrast normalisation with the l1 norm per image, then min-max scaling with the minimum
and maximum of the normal class's training images. A ``Dataset`` returning
``(img, target, index)`` and ``DataLoader``s (training shuffled, batch 200).

``LeNet`` is bias-free, as Deep SVDD requires against the hypersphere collapse: ``Conv2d``
5x5 with ``bias=False``, ``BatchNorm2d(eps=1e-4, affine=False)``, leaky ReLU and max-pooling
twice, then ``Linear(..., 32, bias=False)`` to the 32-d representation. The center ``c`` is
the mean representation from an initial forward pass over the training data in ``eval()``
under ``torch.no_grad()``, with the coordinates too close to zero pushed to +-eps (0.1), so
that a trivial all-zero map cannot reach it; the one-class objective is
``mean(||phi(x) - c||^2)``. Adam (lr 1e-3, ``weight_decay=1e-6``) with a ``MultiStepLR``
dividing the lr by 10 at the milestone epoch 20, 30 epochs. argparse and ``main()``; prints
the loss every epoch and the lr change at the milestone, then the test AUC of the
anomaly score ``||phi(x) - c||^2`` (computed by hand from the ranks) against 0.5 (chance)
and against the same score of the network at initialisation.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/deep_svdd_anomaly.py
    nndoctor check examples/wild/deep_svdd_anomaly.py
"""

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

SIZE = 16

#   --a--
#  f     b
#   --g--
#  e     c
#   --d--
SEGMENTS = {
    0: "abcdef",
    1: "bc",
    2: "abged",
    3: "abgcd",
    4: "fgbc",
    5: "afgcd",
    6: "afgedc",
    7: "abc",
    8: "abcdefg",
    9: "abcdfg",
}
# segment endpoints on a unit box, x to the right, y down
SEGMENT_LINES = {
    "a": ((0, 0), (1, 0)),
    "b": ((1, 0), (1, 1)),
    "c": ((1, 1), (1, 2)),
    "d": ((0, 2), (1, 2)),
    "e": ((0, 1), (0, 2)),
    "f": ((0, 0), (0, 1)),
    "g": ((0, 1), (1, 1)),
}


def segment_distance(px, py, x0, y0, x1, y1):
    """Distance of the pixel centres (px, py) to the segments from (x0, y0) to (x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    t = ((px - x0) * dx + (py - y0) * dy) / (dx**2 + dy**2)
    t = t.clamp(0, 1)
    return torch.sqrt((px - x0 - t * dx) ** 2 + (py - y0 - t * dy) ** 2)


def make_digits(labels, g):
    """(n, 1, SIZE, SIZE) images of the seven-segment digits ``labels``."""
    n = len(labels)
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    w = 5.0 + 2.0 * torch.rand(n, 1, 1, generator=g)  # digit width in pixels
    h = w * (0.95 + 0.2 * torch.rand(n, 1, 1, generator=g))  # half height
    slant = 0.4 * (torch.rand(n, 1, 1, generator=g) - 0.5)
    ox = (SIZE - w) / 2 + 4.0 * (torch.rand(n, 1, 1, generator=g) - 0.5)
    oy = (SIZE - 2 * h) / 2 + 3.0 * (torch.rand(n, 1, 1, generator=g) - 0.5)
    width = 0.6 + 0.6 * torch.rand(n, 1, 1, generator=g)

    images = torch.zeros(n, SIZE, SIZE)
    for seg, ((ux0, uy0), (ux1, uy1)) in SEGMENT_LINES.items():
        on = torch.tensor([seg in SEGMENTS[int(d)] for d in labels]).view(n, 1, 1)
        x0 = ox + ux0 * w + slant * (2 - uy0) * h
        x1 = ox + ux1 * w + slant * (2 - uy1) * h
        y0, y1 = oy + uy0 * h, oy + uy1 * h
        stroke = (width + 0.5 - segment_distance(xs, ys, x0, y0, x1, y1)).clamp(0, 1)
        images = torch.maximum(images, on * stroke)

    # a faint stray stroke of clutter and noise
    cx, cy = SIZE * torch.rand(2, n, 1, 1, generator=g)
    angle = np.pi * torch.rand(n, 1, 1, generator=g)
    clutter = segment_distance(xs, ys, cx, cy, cx + 6 * torch.cos(angle), cy + 6 * torch.sin(angle))
    images = torch.maximum(images, 0.7 * (1 - clutter).clamp(0, 1))
    brightness = 0.6 + 0.4 * torch.rand(n, 1, 1, generator=g)
    images = brightness * images + 0.15 * torch.randn(n, SIZE, SIZE, generator=g)
    return images.unsqueeze(1)


def global_contrast_normalization(x, scale="l1"):
    """Subtract the mean of each image and divide by its l1 (or l2) norm, as in the paper."""
    n_features = int(np.prod(x.shape[1:]))
    mean = torch.mean(x, dim=(1, 2, 3), keepdim=True)
    x = x - mean
    if scale == "l1":
        x_scale = torch.mean(torch.abs(x), dim=(1, 2, 3), keepdim=True)
    else:
        x_scale = torch.sqrt(torch.sum(x**2, dim=(1, 2, 3), keepdim=True)) / n_features
    return x / x_scale


class DigitsDataset(Dataset):
    """Returns ``(img, target, index)`` like the authors' ``MyMNIST``."""

    def __init__(self, images, targets):
        self.images, self.targets = images, targets

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.targets[index], index


def load_dataset(normal_class, n_train, n_test, g):
    train_labels = torch.full((n_train,), normal_class)
    outlier_classes = [d for d in range(10) if d != normal_class]
    test_digits = torch.cat(
        [
            torch.full((n_test,), normal_class),
            torch.tensor(outlier_classes)[torch.randint(0, 9, (n_test,), generator=g)],
        ]
    )
    train_x = global_contrast_normalization(make_digits(train_labels, g))
    test_x = global_contrast_normalization(make_digits(test_digits, g))

    # min-max scaling with the normal class's training images
    x_min, x_max = train_x.min(), train_x.max()
    train_x = (train_x - x_min) / (x_max - x_min)
    test_x = (test_x - x_min) / (x_max - x_min)

    test_targets = (test_digits != normal_class).long()  # 0: normal, 1: outlier
    return (
        DigitsDataset(train_x, torch.zeros(n_train, dtype=torch.long)),
        DigitsDataset(test_x, test_targets),
    )


class LeNet(nn.Module):
    """A bias-free LeNet-type CNN (the ``MNIST_LeNet`` of the authors' code, for 16x16)."""

    def __init__(self, rep_dim=32):
        super().__init__()
        self.rep_dim = rep_dim
        self.pool = nn.MaxPool2d(2, 2)

        self.conv1 = nn.Conv2d(1, 8, 5, bias=False, padding=2)
        self.bn1 = nn.BatchNorm2d(8, eps=1e-04, affine=False)
        self.conv2 = nn.Conv2d(8, 4, 5, bias=False, padding=2)
        self.bn2 = nn.BatchNorm2d(4, eps=1e-04, affine=False)
        self.fc1 = nn.Linear(4 * 4 * 4, self.rep_dim, bias=False)

    def forward(self, x):
        x = self.conv1(x)
        x = self.pool(F.leaky_relu(self.bn1(x)))
        x = self.conv2(x)
        x = self.pool(F.leaky_relu(self.bn2(x)))
        x = x.view(x.size(0), -1)
        x = self.fc1(x)
        return x


def roc_auc_score(labels, scores):
    """Area under the ROC curve from the ranks (Mann-Whitney U), ties averaged."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = labels.sum(), len(labels) - labels.sum()
    return (ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class DeepSVDDTrainer:
    def __init__(
        self,
        objective="one-class",
        c=None,
        lr=0.001,
        n_epochs=30,
        lr_milestones=(),
        batch_size=200,
        weight_decay=1e-6,
    ):
        self.objective = objective
        self.c = c
        self.lr = lr
        self.n_epochs = n_epochs
        self.lr_milestones = lr_milestones
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.train_time = None
        self.test_auc = None

    def train(self, dataset, net):
        train_loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=True)

        optimizer = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=self.lr_milestones, gamma=0.1
        )

        # initialize hypersphere center c (if c not loaded)
        if self.c is None:
            print("Initializing center c...")
            self.c = self.init_center_c(train_loader, net)
            print("Center c initialized.")

        print("Starting training...")
        start_time = time.time()
        net.train()
        for epoch in range(self.n_epochs):
            loss_epoch = 0.0
            n_batches = 0
            for data in train_loader:
                inputs, _, _ = data

                # zero the network parameter gradients
                optimizer.zero_grad()

                # update network parameters via backpropagation: forward + backward + optimize
                outputs = net(inputs)
                dist = torch.sum((outputs - self.c) ** 2, dim=1)
                loss = torch.mean(dist)
                loss.backward()
                optimizer.step()

                loss_epoch += loss.item()
                n_batches += 1

            scheduler.step()
            if epoch + 1 in self.lr_milestones:
                print(f"  LR scheduler: new learning rate is {scheduler.get_last_lr()[0]:g}")
            print(f"  Epoch {epoch + 1}/{self.n_epochs}\t Loss: {loss_epoch / n_batches:.8f}")

        self.train_time = time.time() - start_time
        print(f"Training time: {self.train_time:.3f}s")
        return net

    def test(self, dataset, net):
        test_loader = DataLoader(dataset, batch_size=self.batch_size, shuffle=False)

        idx_label_score = []
        net.eval()
        with torch.no_grad():
            for data in test_loader:
                inputs, labels, idx = data
                outputs = net(inputs)
                dist = torch.sum((outputs - self.c) ** 2, dim=1)
                scores = dist
                idx_label_score += list(
                    zip(idx.tolist(), labels.tolist(), scores.tolist(), strict=True)
                )

        _, labels, scores = zip(*idx_label_score, strict=True)
        self.test_auc = roc_auc_score(labels, scores)
        return self.test_auc

    def init_center_c(self, train_loader, net, eps=0.1):
        """Initialize hypersphere center c as the mean from an initial forward pass on the data."""
        n_samples = 0
        c = torch.zeros(net.rep_dim)

        net.eval()
        with torch.no_grad():
            for data in train_loader:
                # get the inputs of the batch
                inputs, _, _ = data
                outputs = net(inputs)
                n_samples += outputs.shape[0]
                c += torch.sum(outputs, dim=0)

        c /= n_samples

        # if c_i is too close to 0, set to +-eps. Reason: a zero unit can be trivially matched with zero weights.
        c[(abs(c) < eps) & (c < 0)] = -eps
        c[(abs(c) < eps) & (c > 0)] = eps

        return c


def main():
    parser = argparse.ArgumentParser(description="Deep SVDD on seven-segment digits")
    parser.add_argument("--normal_class", type=int, default=3)
    parser.add_argument("--objective", default="one-class", choices=["one-class"])
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--n_epochs", type=int, default=30)
    parser.add_argument("--lr_milestone", type=int, nargs="+", default=[20])
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--weight_decay", type=float, default=1e-6)
    parser.add_argument("--n_train", type=int, default=2000)
    parser.add_argument("--n_test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    print(f"Normal class: {args.normal_class}")
    train_set, test_set = load_dataset(args.normal_class, args.n_train, args.n_test, g)

    net = LeNet()
    trainer = DeepSVDDTrainer(
        args.objective,
        lr=args.lr,
        n_epochs=args.n_epochs,
        lr_milestones=tuple(args.lr_milestone),
        batch_size=args.batch_size,
        weight_decay=args.weight_decay,
    )
    # the score of the untrained network against the same center, for comparison
    untrained = copy.deepcopy(net)
    c0 = trainer.init_center_c(DataLoader(train_set, batch_size=args.batch_size), untrained)
    baseline = DeepSVDDTrainer(c=c0, batch_size=args.batch_size)
    init_auc = baseline.test(test_set, untrained)

    net = trainer.train(train_set, net)
    auc = trainer.test(test_set, net)
    print(
        f"Test set AUC: {100.0 * auc:.2f}% (untrained network with its center "
        f"{100.0 * init_auc:.2f}%, chance 50.00%)"
    )


if __name__ == "__main__":
    main()
