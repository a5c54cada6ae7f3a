"""Barlow Twins self-supervised pretraining of a small CNN, then a linear probe: healthy.

In the manner of the official Barlow Twins ``main.py`` (facebookresearch/barlowtwins,
Zbontar et al. 2021), scaled down to a CPU: the images are generated 1x16x16 pictures of
six shapes (disc, ring, square, frame, plus, triangle) of random size and position, with
a random contrast, a brightness gradient and pixel noise; 3,000 unlabelled images for
pretraining, and 1,500 labelled images for the probe's training set and 1,500 for its test
set. ``Transform`` returns two differently augmented views of every image, written in
torch on whole batches: a random resized crop (``F.affine_grid`` + ``F.grid_sample``,
scale 0.6-1), a horizontal flip, brightness and contrast jitter, and a blur (a 3x3 box
filter blended in by a random amount) and pixel noise with different probabilities for the
two views, as in the official ``Transform`` / ``transform_prime`` pair.

``BarlowTwins`` is an ``nn.Module`` holding a backbone (three Conv-BatchNorm-ReLU stages,
global average pooling, 64 features) and the 3-layer projector of the paper
(Linear-BatchNorm1d-ReLU twice, then a Linear, 256 wide, no biases), plus an
``nn.BatchNorm1d(affine=False)`` that normalises each embedding along the batch. The loss
is computed in ``forward``: the cross-correlation matrix ``c = bn(z1).T @ bn(z2) / batch``,
``on_diag = sum (1 - c_ii)^2`` and ``off_diag = sum c_ij^2`` over the ``off_diagonal``
helper's elements, ``loss = on_diag + lambd * off_diag`` with ``lambd = 1 / 256`` (the
paper's 5e-3, scaled to the narrower projector). The optimizer is the official code's LARS
(SGD with momentum whose update is scaled by the trust ratio ||w|| / ||g||, weight decay and
LARS adaptation excluded for biases and BatchNorm parameters, in a second parameter group).
``adjust_learning_rate`` sets the learning rate by hand at every step: the base rate is
``batch_size / 256``, with a linear warm-up over the first 2 epochs, then a cosine decay to
0.1% of it, times 6.0 for the weights and (about 42x smaller, the official ratio) 0.144 for
the biases. Shuffled ``DataLoader`` of 128 images, ``drop_last=True`` (23 steps per epoch),
30 epochs.

Then the linear evaluation: the backbone is frozen and put in eval mode, its 64 features
are extracted once for the probe's training and test sets, and an ``nn.Linear`` is trained
on them with ``nn.CrossEntropyLoss`` and Adam; the same probe is trained on a freshly
initialised backbone as the baseline. Top-level functions and ``main()`` with argparse;
prints the Barlow Twins loss (and its on- and off-diagonal parts) every 3 epochs, then the probe
test accuracy of the pretrained and of the random backbone (chance: 1/6).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/barlow_twins.py
    nndoctor check examples/wild/barlow_twins.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES, SIZE = 6, 16


def make_shapes(n, g):
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    cy = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    cx = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    r = 3.0 + 2.0 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    masks = torch.stack(
        [
            dist <= r,  # disc
            (dist <= r) & (dist >= r - 1.5),  # ring
            cheb <= 0.8 * r,  # square
            (cheb <= 0.8 * r) & (cheb >= 0.8 * r - 1.2),  # frame
            ((dy.abs() <= 1.0) | (dx.abs() <= 1.0)) & (cheb <= r),  # plus
            (dy <= 0.7 * r) & (dy >= 2 * dx.abs() - r),  # triangle
        ],
        dim=1,
    )
    shape = masks[torch.arange(n), labels].float()[:, None]
    contrast = 0.5 + 0.5 * torch.rand(n, 1, 1, 1, generator=g)
    background = 0.2 * torch.rand(n, 1, 1, 1, generator=g)
    slope = 0.02 * torch.randn(n, 1, 2, generator=g)
    gradient = (slope[..., :1] * (ys - 8) + slope[..., 1:] * (xs - 8))[:, None]
    noise = 0.1 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    images = background + contrast * shape + gradient + noise
    return (images - 0.35) / 0.35, labels


class Transform:
    """Two asymmetric augmentation pipelines, applied to a whole batch of images."""

    def __init__(self, blur_p=(1.0, 0.1), noise_p=(0.0, 0.2)):
        self.blur_p = blur_p
        self.noise_p = noise_p

    @staticmethod
    def random_resized_crop(x, min_scale=0.6):
        b = x.shape[0]
        scale = min_scale + (1 - min_scale) * torch.rand(b)
        aspect = torch.exp((torch.rand(b) - 0.5) * 0.5)
        sx, sy = scale * aspect.sqrt(), scale / aspect.sqrt()
        tx = (1 - sx).clamp(min=0) * (2 * torch.rand(b) - 1)
        ty = (1 - sy).clamp(min=0) * (2 * torch.rand(b) - 1)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = sx, tx
        theta[:, 1, 1], theta[:, 1, 2] = sy, ty
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, padding_mode="border", align_corners=False)

    def augment(self, x, blur_p, noise_p):
        b = x.shape[0]
        x = self.random_resized_crop(x)
        flip = torch.rand(b) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        brightness = 0.4 * (torch.rand(b, 1, 1, 1) - 0.5)
        contrast = 1 + 0.4 * (torch.rand(b, 1, 1, 1) - 0.5)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast + mean + brightness
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        blur = (torch.rand(b, 1, 1, 1) < blur_p) * torch.rand(b, 1, 1, 1)
        x = x + blur * (blurred - x)
        noisy = (torch.rand(b, 1, 1, 1) < noise_p).float()
        return x + noisy * 0.2 * torch.randn_like(x)

    def __call__(self, x):
        y1 = self.augment(x, self.blur_p[0], self.noise_p[0])
        y2 = self.augment(x, self.blur_p[1], self.noise_p[1])
        return y1, y2


def make_backbone():
    def stage(c_in, c_out):
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )

    return nn.Sequential(
        stage(1, 16),
        nn.MaxPool2d(2),
        stage(16, 32),
        nn.MaxPool2d(2),
        stage(32, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def off_diagonal(x):
    # return a flattened view of the off-diagonal elements of a square matrix
    n, m = x.shape
    assert n == m
    return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


class BarlowTwins(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.args = args
        self.backbone = make_backbone()

        # projector
        sizes = [64] + [args.projector] * 3
        layers = []
        for i in range(len(sizes) - 2):
            layers.append(nn.Linear(sizes[i], sizes[i + 1], bias=False))
            layers.append(nn.BatchNorm1d(sizes[i + 1]))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Linear(sizes[-2], sizes[-1], bias=False))
        self.projector = nn.Sequential(*layers)

        # normalization layer for the representations z1 and z2
        self.bn = nn.BatchNorm1d(sizes[-1], affine=False)

    def forward(self, y1, y2):
        z1 = self.projector(self.backbone(y1))
        z2 = self.projector(self.backbone(y2))

        # empirical cross-correlation matrix
        c = self.bn(z1).T @ self.bn(z2)
        c.div_(self.args.batch_size)

        on_diag = torch.diagonal(c).add_(-1).pow_(2).sum()
        off_diag = off_diagonal(c).pow_(2).sum()
        loss = on_diag + self.args.lambd * off_diag
        return loss, on_diag.detach(), off_diag.detach()


class LARS(torch.optim.Optimizer):
    def __init__(
        self,
        params,
        lr,
        weight_decay=0,
        momentum=0.9,
        eta=0.001,
        weight_decay_filter=None,
        lars_adaptation_filter=None,
    ):
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "eta": eta,
            "weight_decay_filter": weight_decay_filter,
            "lars_adaptation_filter": lars_adaptation_filter,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g["params"]:
                dp = p.grad

                if dp is None:
                    continue

                if g["weight_decay_filter"] is None or not g["weight_decay_filter"](p):
                    dp = dp.add(p, alpha=g["weight_decay"])

                if g["lars_adaptation_filter"] is None or not g["lars_adaptation_filter"](p):
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(
                        param_norm > 0.0,
                        torch.where(update_norm > 0, (g["eta"] * param_norm / update_norm), one),
                        one,
                    )
                    dp = dp.mul(q)

                param_state = self.state[p]
                if "mu" not in param_state:
                    param_state["mu"] = torch.zeros_like(p)
                mu = param_state["mu"]
                mu.mul_(g["momentum"]).add_(dp)

                p.add_(mu, alpha=-g["lr"])


def exclude_bias_and_norm(p):
    return p.ndim == 1


def adjust_learning_rate(args, optimizer, loader, step):
    max_steps = args.epochs * len(loader)
    warmup_steps = args.warmup_epochs * len(loader)
    base_lr = args.batch_size / 256
    if step < warmup_steps:
        lr = base_lr * step / warmup_steps
    else:
        step -= warmup_steps
        max_steps -= warmup_steps
        q = 0.5 * (1 + math.cos(math.pi * step / max_steps))
        end_lr = base_lr * 0.001
        lr = base_lr * q + end_lr * (1 - q)
    optimizer.param_groups[0]["lr"] = lr * args.learning_rate_weights
    optimizer.param_groups[1]["lr"] = lr * args.learning_rate_biases
    return lr


def pretrain(args, model, images):
    param_weights = []
    param_biases = []
    for param in model.parameters():
        if param.ndim == 1:
            param_biases.append(param)
        else:
            param_weights.append(param)
    parameters = [{"params": param_weights}, {"params": param_biases}]
    optimizer = LARS(
        parameters,
        lr=0,
        weight_decay=args.weight_decay,
        weight_decay_filter=exclude_bias_and_norm,
        lars_adaptation_filter=exclude_bias_and_norm,
    )

    loader = DataLoader(
        TensorDataset(images), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    transform = Transform()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        total = on_total = off_total = 0.0
        for (x,) in loader:
            y1, y2 = transform(x)
            lr = adjust_learning_rate(args, optimizer, loader, step)
            optimizer.zero_grad()
            loss, on_diag, off_diag = model(y1, y2)
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item()
            on_total += on_diag.item()
            off_total += off_diag.item()
        if (epoch + 1) % args.print_freq == 0:
            n = len(loader)
            print(
                f"epoch {epoch + 1:2d}  lr_weights {lr * args.learning_rate_weights:.3f}  "
                f"loss {total / n:.2f}  on-diag {on_total / n:.2f}  off-diag {off_total / n:.1f}"
            )


@torch.no_grad()
def extract_features(backbone, images, batch_size=500):
    backbone.eval()
    loader = DataLoader(TensorDataset(images), batch_size=batch_size)
    return torch.cat([backbone(x) for (x,) in loader])


def linear_probe(backbone, x_train, y_train, x_test, y_test, epochs=100):
    for p in backbone.parameters():
        p.requires_grad = False
    f_train = extract_features(backbone, x_train)
    f_test = extract_features(backbone, x_test)
    mean, std = f_train.mean(dim=0), f_train.std(dim=0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std

    classifier = nn.Linear(f_train.shape[1], N_CLASSES)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=1e-2, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(f_train, y_train), batch_size=128, shuffle=True)
    for _ in range(epochs):
        for f, y in loader:
            optimizer.zero_grad()
            loss = criterion(classifier(f), y)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return (classifier(f_test).argmax(dim=1) == y_test).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="Barlow Twins on generated shapes")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--warmup-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate-weights", type=float, default=6.0)
    parser.add_argument("--learning-rate-biases", type=float, default=0.144)
    parser.add_argument("--weight-decay", type=float, default=1e-6)
    parser.add_argument("--lambd", type=float, default=1 / 256)
    parser.add_argument("--projector", type=int, default=256)
    parser.add_argument("--print-freq", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    unlabelled, _ = make_shapes(3000, g)
    x_train, y_train = make_shapes(1500, g)
    x_test, y_test = make_shapes(1500, g)

    model = BarlowTwins(args)
    random_backbone = make_backbone()
    pretrain(args, model, unlabelled)

    acc = linear_probe(model.backbone, x_train, y_train, x_test, y_test)
    acc_random = linear_probe(random_backbone, x_train, y_train, x_test, y_test)
    print(f"linear probe test acc: Barlow Twins backbone {acc:.3f}")
    print(f"linear probe test acc: random backbone {acc_random:.3f}  (chance {1 / N_CLASSES:.3f})")


if __name__ == "__main__":
    main()
