"""PointNet classification of generated 3-D point clouds: healthy.

In the manner of the PointNet classification examples (the ``pointnet.pytorch`` style
on ModelNet40): instead of ModelNet meshes, 2,000 generated objects of five shapes
(sphere, box, cylinder, cone, torus) stored as 1,024 points sampled on their
surfaces, each with its own random size per axis and a random 3-D orientation. The
``Dataset`` draws 256 of an object's points (``np.random.choice`` on its own
generator), centres them and scales them into the unit sphere; in training it also
rotates them about the vertical axis and jitters them with clipped Gaussian noise.
``PointNetCls`` takes ``(batch, points, 3)``: an input T-Net (``STN3d``: shared
``Conv1d`` layers, max-pooling, fully connected layers to a 3x3 matrix added to the
identity) aligns the points, a shared per-point MLP (``Conv1d`` with kernel 1 and
``BatchNorm1d``) lifts them to 256 features, a max over the points gives the global
feature, and ``Linear``/``BatchNorm1d``/``Dropout(0.3)`` layers give the class
logits. ``nn.CrossEntropyLoss``, Adam with ``StepLR`` stepped once per epoch,
``DataLoader`` with shuffling; test accuracy under ``torch.no_grad()`` with
``model.eval()`` after every epoch. A ``main()`` with argparse.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/pointnet_shapes.py
    nndoctor check examples/wild/pointnet_shapes.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

SHAPES = ("sphere", "box", "cylinder", "cone", "torus")


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def sample_surface(shape, n, rng):
    if shape == "sphere":
        p = rng.normal(size=(n, 3))
        return p / np.linalg.norm(p, axis=1, keepdims=True)
    if shape == "box":
        p = rng.uniform(-1, 1, size=(n, 3))
        face = rng.integers(0, 3, n)
        p[np.arange(n), face] = rng.choice([-1.0, 1.0], n)
        return p
    theta = rng.uniform(0, 2 * np.pi, n)
    if shape == "cylinder":
        p = np.stack([np.cos(theta), np.sin(theta), rng.uniform(-1, 1, n)], axis=1)
        cap = rng.random(n) < 0.25  # the two discs
        r = np.sqrt(rng.random(cap.sum()))
        p[cap, 0], p[cap, 1] = r * np.cos(theta[cap]), r * np.sin(theta[cap])
        p[cap, 2] = rng.choice([-1.0, 1.0], cap.sum())
        return p
    if shape == "cone":
        t = 1 - np.sqrt(rng.random(n))  # area grows towards the base
        p = np.stack([(1 - t) * np.cos(theta), (1 - t) * np.sin(theta), 2 * t - 1], axis=1)
        base = rng.random(n) < 0.3
        r = np.sqrt(rng.random(base.sum()))
        p[base, 0], p[base, 1], p[base, 2] = r * np.cos(theta[base]), r * np.sin(theta[base]), -1
        return p
    phi = rng.uniform(0, 2 * np.pi, n)  # torus, tube radius 0.35
    ring = 1 + 0.35 * np.cos(phi)
    return np.stack([ring * np.cos(theta), ring * np.sin(theta), 0.35 * np.sin(phi)], axis=1)


def make_objects(n_objects, n_points, rng):
    labels = rng.integers(0, len(SHAPES), n_objects)
    clouds = np.empty((n_objects, n_points, 3), dtype=np.float32)
    for i, label in enumerate(labels):
        p = sample_surface(SHAPES[label], n_points, rng) * rng.uniform(0.6, 1.4, size=3)
        clouds[i] = p @ random_rotation(rng).T
    return clouds, labels


class ShapeDataset(Dataset):
    def __init__(self, clouds, labels, npoints=256, augment=False, seed=0):
        self.clouds, self.labels = clouds, labels
        self.npoints, self.augment = npoints, augment
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        choice = self.rng.choice(self.clouds.shape[1], self.npoints, replace=False)
        point_set = self.clouds[index][choice, :]
        point_set = point_set - np.mean(point_set, axis=0)
        point_set = point_set / np.max(np.sqrt(np.sum(point_set**2, axis=1)))
        if self.augment:
            theta = self.rng.uniform(0, 2 * np.pi)
            rotation = np.array(
                [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
            )
            point_set = point_set @ rotation.T
            point_set = point_set + np.clip(self.rng.normal(0, 0.02, point_set.shape), -0.05, 0.05)
        return torch.from_numpy(point_set.astype(np.float32)), int(self.labels[index])


class STN3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(3, 64, 1)
        self.conv2 = nn.Conv1d(64, 128, 1)
        self.conv3 = nn.Conv1d(128, 256, 1)
        self.fc1 = nn.Linear(256, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 9)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn2 = nn.BatchNorm1d(128)
        self.bn3 = nn.BatchNorm1d(256)
        self.bn4 = nn.BatchNorm1d(128)
        self.bn5 = nn.BatchNorm1d(64)

    def forward(self, x):
        batchsize = x.size(0)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = torch.max(x, 2)[0]
        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x)
        iden = torch.eye(3, dtype=x.dtype, device=x.device).view(1, 9).repeat(batchsize, 1)
        return (x + iden).view(-1, 3, 3)


class PointNetCls(nn.Module):
    def __init__(self, k=5, feature_dim=256):
        super().__init__()
        self.stn = STN3d()
        self.conv1 = nn.Conv1d(3, 64, 1)
        self.conv2 = nn.Conv1d(64, 128, 1)
        self.conv3 = nn.Conv1d(128, feature_dim, 1)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn2 = nn.BatchNorm1d(128)
        self.bn3 = nn.BatchNorm1d(feature_dim)
        self.fc1 = nn.Linear(feature_dim, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, k)
        self.bn4 = nn.BatchNorm1d(128)
        self.bn5 = nn.BatchNorm1d(64)
        self.dropout = nn.Dropout(p=0.3)

    def forward(self, points):
        x = points.transpose(2, 1)  # (batch, 3, n_points) for Conv1d
        trans = self.stn(x)
        x = torch.bmm(x.transpose(2, 1), trans).transpose(2, 1)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x = torch.max(x, 2)[0]  # symmetric function over the points
        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.dropout(self.fc2(x))))
        return self.fc3(x)


def main():
    parser = argparse.ArgumentParser(description="PointNet on generated shapes")
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--npoints", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--nepoch", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    clouds, labels = make_objects(args.objects, 1024, rng)
    n_train = int(0.8 * args.objects)
    train_set = ShapeDataset(
        clouds[:n_train], labels[:n_train], args.npoints, augment=True, seed=args.seed
    )
    test_set = ShapeDataset(clouds[n_train:], labels[n_train:], args.npoints, seed=args.seed + 1)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    test_loader = DataLoader(test_set, batch_size=100)

    classifier = PointNetCls(k=len(SHAPES))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=args.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)

    for epoch in range(args.nepoch):
        classifier.train()
        total_loss, correct, seen = 0.0, 0, 0
        for points, target in train_loader:
            optimizer.zero_grad()
            pred = classifier(points)
            loss = criterion(pred, target)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(target)
            correct += (pred.argmax(1) == target).sum().item()
            seen += len(target)
        scheduler.step()

        classifier.eval()
        test_correct = 0
        with torch.no_grad():
            for points, target in test_loader:
                test_correct += (classifier(points).argmax(1) == target).sum().item()
        print(
            f"[epoch {epoch:2d}] train loss {total_loss / seen:.4f} "
            f"train accuracy {correct / seen:.3f} test accuracy {test_correct / len(test_set):.3f}"
        )


if __name__ == "__main__":
    main()
