"""MoCo v2 with a momentum key encoder and a queue of negatives, then a linear probe: healthy.

In the manner of the official MoCo implementation (``moco/builder.py``, ``main_moco.py``,
``main_lincls.py``) and its single-GPU CIFAR demo, made small: the images are generated
in the script (3x16x16 pictures of five shapes, disk, square, ring, cross and triangle,
at random positions and sizes, in random colours lighter or darker than a random
background, with pixel noise) and standardised per channel with the training set's
statistics. The base encoder is a small CNN (three conv / ``SplitBatchNorm`` / ReLU
blocks, global average pooling) whose ``fc`` becomes the MoCo v2 projection head, a
2-layer MLP. ``MoCo`` holds the query encoder and a key encoder initialised as its copy
with ``requires_grad = False`` and updated only by momentum (m = 0.99) under
``torch.no_grad()``; the keys are computed on a shuffled batch and unshuffled afterwards
(shuffling BN on one device, with batch-norm split into groups, as the demo does),
normalised, and a queue of K = 2048 normalised keys, a registered buffer with a pointer,
is refreshed by ``_dequeue_and_enqueue``. The logits are ``[l_pos, l_neg] / T`` with
T = 0.2, the labels all zeros, the loss ``nn.CrossEntropyLoss``. Two views of each image
come from a batched torch augmentation (random resized crops and flips through
``affine_grid`` / ``grid_sample``, colour jitter with a hue rotation, random grayscale,
noise). SGD with momentum and weight decay over ``model.parameters()``, a cosine
learning-rate schedule set per epoch, a ``DataLoader`` with ``drop_last=True``; a
``main()`` with argparse. Then the linear evaluation: the query encoder's backbone is
frozen and put in eval mode, its pooled features, standardised with the training set's
statistics, feed a new ``nn.Linear`` classifier trained with its own SGD optimiser and
cosine schedule. Prints the pre-training loss and contrastive accuracy per epoch, then
the probe's test accuracy next to that of the same probe on a randomly initialised
encoder.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/moco_queue.py
    nndoctor check examples/wild/moco_queue.py
"""

import argparse
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SHAPES = ("disk", "square", "ring", "cross", "triangle")


def make_shapes(n: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` RGB images of one of five shapes each, and their labels."""
    labels = torch.randint(len(SHAPES), (n,), generator=generator)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    cx = size / 2 + (torch.rand(n, 1, 1, generator=generator) - 0.5) * size / 3
    cy = size / 2 + (torch.rand(n, 1, 1, generator=generator) - 0.5) * size / 3
    r = size / 5 + torch.rand(n, 1, 1, generator=generator) * size / 8
    dx, dy = xs - cx, ys - cy
    dist = torch.sqrt(dx**2 + dy**2)
    masks = torch.stack(
        [
            dist <= r,
            torch.maximum(dx.abs(), dy.abs()) <= 0.85 * r,
            (dist <= r) & (dist >= 0.55 * r),
            ((dx.abs() <= r / 3) & (dy.abs() <= r)) | ((dy.abs() <= r / 3) & (dx.abs() <= r)),
            (dy <= 0.8 * r) & (dx.abs() <= (dy + r) * 0.6),
        ],
        dim=1,
    )
    mask = masks[torch.arange(n), labels].float().unsqueeze(1)
    # Random colours: the shape is lighter or darker than its background.
    foreground = torch.rand(n, 3, 1, 1, generator=generator)
    background = torch.rand(n, 3, 1, 1, generator=generator)
    gap = foreground.mean(dim=1, keepdim=True) - background.mean(dim=1, keepdim=True)
    foreground = (foreground + 0.3 * torch.sign(gap)).clamp(0, 1)
    images = mask * foreground + (1 - mask) * background
    images = images + 0.05 * torch.randn(images.shape, generator=generator)
    return images.clamp(0, 1), labels


def augment(x: torch.Tensor) -> torch.Tensor:
    """A batched MoCo v2-style augmentation: crop, flip, colour jitter, grayscale, noise."""
    n = x.shape[0]
    scale = torch.empty(n).uniform_(0.45, 1.0)
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, 0, 2] = (1 - scale) * (2 * torch.rand(n) - 1)
    theta[:, 1, 2] = (1 - scale) * (2 * torch.rand(n) - 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)

    jitter = lambda strength: 1 + strength * (2 * torch.rand(n, 1, 1, 1) - 1)  # noqa: E731
    x = x * jitter(0.4)  # brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * jitter(0.4) + mean  # contrast
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * jitter(0.6) + gray  # saturation
    # Hue: rotate the colours about the gray axis (Rodrigues' formula) by a random angle.
    angle = math.pi * (2 * torch.rand(n, 1, 1) - 1)
    u = torch.full((3,), 3**-0.5)
    u_cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) * 3**-0.5
    rotation = (
        torch.cos(angle) * torch.eye(3)
        + torch.sin(angle) * u_cross
        + (1 - torch.cos(angle)) * torch.outer(u, u)
    )
    x = torch.einsum("nij,njhw->nihw", rotation, x)
    to_gray = (torch.rand(n, 1, 1, 1) < 0.2).float()
    x = to_gray * x.mean(dim=1, keepdim=True) + (1 - to_gray) * x
    x = x + 0.03 * torch.randn_like(x)
    return x.clamp(0, 1)


class SplitBatchNorm(nn.BatchNorm2d):
    """BatchNorm over groups of the batch, to mimic per-device BN statistics on one device."""

    def __init__(self, num_features: int, num_splits: int) -> None:
        super().__init__(num_features)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        n, c, h, w = x.shape
        s = self.num_splits
        running_mean = self.running_mean.repeat(s)
        running_var = self.running_var.repeat(s)
        out = F.batch_norm(
            x.view(n // s, c * s, h, w),
            running_mean,
            running_var,
            self.weight.repeat(s),
            self.bias.repeat(s),
            training=True,
            momentum=self.momentum,
            eps=self.eps,
        ).view(n, c, h, w)
        self.running_mean.copy_(running_mean.view(s, c).mean(dim=0))
        self.running_var.copy_(running_var.view(s, c).mean(dim=0))
        return out


class SmallConvNet(nn.Module):
    def __init__(self, num_classes: int, bn_splits: int = 8, width: int = 32) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                SplitBatchNorm(c_out, bn_splits),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            block(3, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 4 * width
        self.fc = nn.Linear(self.feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class MoCo(nn.Module):
    def __init__(self, base_encoder, dim: int = 64, K: int = 2048, m: float = 0.99, T: float = 0.2):
        super().__init__()
        self.K, self.m, self.T = K, m, T

        self.encoder_q = base_encoder(num_classes=dim)
        dim_mlp = self.encoder_q.fc.weight.shape[1]
        self.encoder_q.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), self.encoder_q.fc)
        self.encoder_k = base_encoder(num_classes=dim)
        self.encoder_k.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), self.encoder_k.fc)
        for param_q, param_k in zip(
            self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True
        ):
            param_k.data.copy_(param_q.data)  # initialise the key encoder as the query's copy
            param_k.requires_grad = False  # updated by momentum, not by the gradient

        self.register_buffer("queue", F.normalize(torch.randn(dim, K), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        for param_q, param_k in zip(
            self.encoder_q.parameters(), self.encoder_k.parameters(), strict=True
        ):
            param_k.data = param_k.data * self.m + param_q.data * (1.0 - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor) -> None:
        batch_size = keys.shape[0]
        ptr = int(self.queue_ptr)
        assert self.K % batch_size == 0
        self.queue[:, ptr : ptr + batch_size] = keys.T
        ptr = (ptr + batch_size) % self.K
        self.queue_ptr[0] = ptr

    @torch.no_grad()
    def _batch_shuffle(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx_shuffle = torch.randperm(x.shape[0])
        idx_unshuffle = torch.argsort(idx_shuffle)
        return x[idx_shuffle], idx_unshuffle

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.encoder_q(im_q)
        q = F.normalize(q, dim=1)

        with torch.no_grad():
            self._momentum_update_key_encoder()
            im_k, idx_unshuffle = self._batch_shuffle(im_k)
            k = self.encoder_k(im_k)
            k = F.normalize(k, dim=1)
            k = k[idx_unshuffle]

        l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", q, self.queue.clone().detach())
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long)

        self._dequeue_and_enqueue(k)
        return logits, labels


@torch.no_grad()
def extract_features(backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
    backbone.eval()
    return torch.cat([backbone(chunk) for chunk in images.split(512)])


def linear_probe(backbone, train_x, train_y, test_x, test_y, n_classes, epochs=100, seed=0):
    """Train a new linear classifier on frozen features; return its test accuracy."""
    train_f = extract_features(backbone, train_x)
    test_f = extract_features(backbone, test_x)
    # Standardise the features with the training set's statistics (a BatchNorm1d without
    # affine parameters in front of the classifier, as in the usual linear-probe heads).
    f_mean, f_std = train_f.mean(dim=0), train_f.std(dim=0) + 1e-6
    train_f, test_f = (train_f - f_mean) / f_std, (test_f - f_mean) / f_std
    torch.manual_seed(seed)
    classifier = nn.Linear(train_f.shape[1], n_classes)
    optimizer = torch.optim.SGD(classifier.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    criterion = nn.CrossEntropyLoss()
    for _ in range(epochs):
        perm = torch.randperm(len(train_f))
        for i in range(0, len(train_f), 256):
            idx = perm[i : i + 256]
            loss = criterion(classifier(train_f[idx]), train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
    with torch.no_grad():
        return (classifier(test_f).argmax(dim=1) == test_y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description="MoCo v2 on generated shapes")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.06)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--moco-dim", type=int, default=64)
    parser.add_argument("--moco-k", type=int, default=2048)
    parser.add_argument("--moco-m", type=float, default=0.99)
    parser.add_argument("--moco-t", type=float, default=0.2)
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    g = torch.Generator().manual_seed(args.seed)
    train_x, train_y = make_shapes(args.n_train, 16, g)
    test_x, test_y = make_shapes(1024, 16, g)
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True)
    normalize = lambda x: (x - mean) / std  # noqa: E731

    model = MoCo(SmallConvNet, args.moco_dim, args.moco_k, args.moco_m, args.moco_t)
    random_backbone = copy.deepcopy(model.encoder_q.features)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )
    # Unlabelled pre-training: the loader yields images only.
    loader = DataLoader(
        TensorDataset(train_x), batch_size=args.batch_size, shuffle=True, drop_last=True
    )

    for epoch in range(args.epochs):
        lr = args.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / args.epochs))
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        model.train()
        total, correct, count = 0.0, 0, 0
        for (images,) in loader:
            im_q = normalize(augment(images))
            im_k = normalize(augment(images))
            output, target = model(im_q, im_k)
            loss = criterion(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(images)
            correct += (output.argmax(dim=1) == target).sum().item()
            count += len(images)
        print(
            f"epoch {epoch + 1:2d}: lr {lr:.4f}, loss {total / count:.3f}, "
            f"contrastive acc {correct / count:.3f}"
        )

    # Linear evaluation on frozen features (the backbone, without the projection head).
    backbone = model.encoder_q.features
    for p in backbone.parameters():
        p.requires_grad = False
    n_classes = len(SHAPES)
    acc = linear_probe(
        backbone, normalize(train_x), train_y, normalize(test_x), test_y, n_classes, seed=args.seed
    )
    acc_random = linear_probe(
        random_backbone,
        normalize(train_x),
        train_y,
        normalize(test_x),
        test_y,
        n_classes,
        seed=args.seed,
    )
    print(f"linear probe test accuracy: MoCo {acc:.3f}, random encoder {acc_random:.3f}")


if __name__ == "__main__":
    main()
