"""Capsule network with dynamic routing on generated stroke glyphs: healthy.

In the manner of the PyTorch ports of "Dynamic Routing Between Capsules" (Sabour et al.,
the CapsNet-on-MNIST examples): instead of MNIST, 20x20 grey-level renderings of six
digit-like stroke patterns (a loop, a bar, a "Z", a "4", a "7" and an "X"), each drawn
from line segments whose end points are jittered, then scaled, rotated and shifted at
random, with a little pixel noise. ``CapsuleNet`` has a ReLU ``Conv2d`` layer, a
``PrimaryCapsules`` layer (one strided ``Conv2d`` whose channels are cut into 8 capsule
maps of 8-D vectors, squashed) and a ``DigitCapsules`` layer: every primary capsule
predicts every class capsule through its own 16x8 matrix (``einsum``), and three
iterations of routing-by-agreement (coupling coefficients by a softmax over the class
capsules, agreement by dot products, intermediate iterations on detached predictions)
give six squashed 16-D class capsules whose lengths are the class scores. A decoder
(fully connected ReLU layers to a sigmoid image) reconstructs the input from the class
capsules masked by the true label in training and by the longest capsule at test. The
loss is the margin loss (m+ = 0.9, m- = 0.1, lambda = 0.5) plus 0.0005 times the summed
squared reconstruction error per image. Adam with ``ExponentialLR(gamma=0.9)`` stepped
once per epoch, ``DataLoader`` over a ``TensorDataset`` with shuffling; a ``main()``
with argparse that prints the training losses and the test accuracy from the capsule
lengths after every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/capsnet_routing.py
    nndoctor check examples/wild/capsnet_routing.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SIZE = 20
# Stroke patterns in unit coordinates (x right, y down): a list of segments per class.
GLYPHS = [
    [((0.25, 0.2), (0.75, 0.2)), ((0.75, 0.2), (0.75, 0.8)), ((0.75, 0.8), (0.25, 0.8)),
     ((0.25, 0.8), (0.25, 0.2))],  # loop
    [((0.5, 0.15), (0.5, 0.85)), ((0.5, 0.15), (0.35, 0.3))],  # bar
    [((0.25, 0.2), (0.75, 0.2)), ((0.75, 0.2), (0.25, 0.8)), ((0.25, 0.8), (0.75, 0.8))],  # Z
    [((0.3, 0.15), (0.3, 0.55)), ((0.3, 0.55), (0.8, 0.55)), ((0.65, 0.15), (0.65, 0.85))],  # 4
    [((0.25, 0.2), (0.75, 0.2)), ((0.75, 0.2), (0.4, 0.85))],  # 7
    [((0.25, 0.2), (0.75, 0.8)), ((0.75, 0.2), (0.25, 0.8))],  # X
]  # fmt: skip
N_CLASSES = len(GLYPHS)


def render_glyphs(labels, generator):
    """Render one jittered, scaled, rotated and shifted glyph per label."""
    n = len(labels)
    max_seg = max(len(g) for g in GLYPHS)
    segs = torch.zeros(N_CLASSES, max_seg, 2, 2)
    used = torch.zeros(N_CLASSES, max_seg, dtype=torch.bool)
    for c, glyph in enumerate(GLYPHS):
        segs[c, : len(glyph)] = torch.tensor(glyph)
        used[c, : len(glyph)] = True
    seg = segs[labels] - 0.5  # (n, segments, 2 ends, xy), centred
    seg = seg + 0.06 * torch.randn(seg.shape, generator=generator)
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(40)
    scale = 0.7 + 0.4 * torch.rand(n, generator=generator)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    seg = torch.einsum("nij,nsej->nsei", rot, seg)
    shift = (torch.rand(n, 1, 1, 2, generator=generator) - 0.5) * 0.2
    seg = (seg + 0.5 + shift) * (SIZE - 1)

    ys, xs = torch.meshgrid(torch.arange(float(SIZE)), torch.arange(float(SIZE)), indexing="ij")
    pix = torch.stack([xs, ys], -1).view(1, 1, -1, 2)  # (1, 1, pixels, xy)
    a, b = seg[:, :, None, 0], seg[:, :, None, 1]  # (n, segments, 1, xy)
    ab = b - a
    t = ((pix - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-6)
    closest = a + t.clamp(0, 1)[..., None] * ab
    dist = (pix - closest).norm(dim=-1).masked_fill(~used[labels, :, None], float("inf"))
    dist = dist.min(dim=1).values  # (n, pixels)
    thickness = 1.0 + 0.5 * torch.rand(n, 1, generator=generator)
    img = (1.2 - dist / thickness).clamp(0, 1)
    img = img + 0.15 * torch.randn(img.shape, generator=generator)
    return img.clamp(0, 1).view(n, 1, SIZE, SIZE)


def make_dataset(n, generator):
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    return render_glyphs(labels, generator), labels


def squash(s, dim=-1, eps=1e-8):
    squared_norm = (s**2).sum(dim=dim, keepdim=True)
    scale = squared_norm / (1 + squared_norm)
    return scale * s / torch.sqrt(squared_norm + eps)


class PrimaryCapsules(nn.Module):
    def __init__(self, in_channels, num_maps, caps_dim, kernel_size, stride):
        super().__init__()
        self.num_maps, self.caps_dim = num_maps, caps_dim
        self.conv = nn.Conv2d(in_channels, num_maps * caps_dim, kernel_size, stride)

    def forward(self, x):
        out = self.conv(x)  # (batch, maps * dim, h, w)
        b, _, h, w = out.shape
        out = out.view(b, self.num_maps, self.caps_dim, h, w)
        out = out.permute(0, 1, 3, 4, 2).reshape(b, -1, self.caps_dim)
        return squash(out)


class DigitCapsules(nn.Module):
    def __init__(self, in_caps, in_dim, out_caps, out_dim, routings=3):
        super().__init__()
        self.routings = routings
        self.W = nn.Parameter(0.01 * torch.randn(out_caps, in_caps, out_dim, in_dim))

    def forward(self, u):
        # u: (batch, in_caps, in_dim) -> predictions u_hat: (batch, out_caps, in_caps, out_dim)
        u_hat = torch.einsum("jiok,bik->bjio", self.W, u)
        u_hat_detached = u_hat.detach()
        b = torch.zeros(u_hat.shape[:3], device=u.device)
        for i in range(self.routings):
            c = F.softmax(b, dim=1)  # coupling coefficients over the class capsules
            if i == self.routings - 1:
                v = squash((c.unsqueeze(-1) * u_hat).sum(dim=2))
            else:
                v = squash((c.unsqueeze(-1) * u_hat_detached).sum(dim=2))
                b = b + (v.unsqueeze(2) * u_hat_detached).sum(dim=-1)
        return v  # (batch, out_caps, out_dim)


class CapsuleNet(nn.Module):
    def __init__(self, routings=3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, kernel_size=5)
        self.primary = PrimaryCapsules(64, num_maps=8, caps_dim=8, kernel_size=5, stride=2)
        self.digits = DigitCapsules(8 * 6 * 6, 8, N_CLASSES, 16, routings)
        self.decoder = nn.Sequential(
            nn.Linear(16 * N_CLASSES, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 512),
            nn.ReLU(inplace=True),
            nn.Linear(512, SIZE * SIZE),
            nn.Sigmoid(),
        )

    def forward(self, x, y=None):
        x = F.relu(self.conv1(x))
        x = self.primary(x)
        v = self.digits(x)
        lengths = v.norm(dim=-1)
        if y is None:  # at test time, mask with the longest capsule
            y = lengths.argmax(dim=1)
        mask = F.one_hot(y, N_CLASSES).float()
        reconstruction = self.decoder((v * mask.unsqueeze(-1)).flatten(1))
        return lengths, reconstruction


def margin_loss(lengths, target, m_pos=0.9, m_neg=0.1, lam=0.5):
    present = target * F.relu(m_pos - lengths) ** 2
    absent = lam * (1 - target) * F.relu(lengths - m_neg) ** 2
    return (present + absent).sum(dim=1).mean()


def caps_loss(lengths, reconstruction, images, labels, lam_recon):
    target = F.one_hot(labels, N_CLASSES).float()
    l_margin = margin_loss(lengths, target)
    l_recon = F.mse_loss(reconstruction, images.flatten(1), reduction="sum") / images.size(0)
    return l_margin + lam_recon * l_recon, l_margin, l_recon


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    correct = total = 0
    for images, labels in loader:
        lengths, _ = model(images)
        correct += (lengths.argmax(dim=1) == labels).sum().item()
        total += labels.numel()
    model.train()
    return correct / total


def main():
    parser = argparse.ArgumentParser(description="CapsNet with dynamic routing on stroke glyphs")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=0.9)
    parser.add_argument("--lam-recon", type=float, default=0.0005)
    parser.add_argument("--routings", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    gen = torch.Generator().manual_seed(args.seed)
    train_set = TensorDataset(*make_dataset(args.n_train, gen))
    test_set = TensorDataset(*make_dataset(args.n_test, gen))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)

    model = CapsuleNet(routings=args.routings)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total = margin_total = recon_total = 0.0
        for images, labels in train_loader:
            optimizer.zero_grad()
            lengths, reconstruction = model(images, labels)
            loss, l_margin, l_recon = caps_loss(
                lengths, reconstruction, images, labels, args.lam_recon
            )
            loss.backward()
            optimizer.step()
            total += loss.item() * images.size(0)
            margin_total += l_margin.item() * images.size(0)
            recon_total += l_recon.item() * images.size(0)
        scheduler.step()
        n = len(train_set)
        acc = evaluate(model, test_loader)
        print(
            f"epoch {epoch}: loss {total / n:.4f} (margin {margin_total / n:.4f}, "
            f"reconstruction {recon_total / n:.2f}), test accuracy {acc:.4f}, "
            f"lr {scheduler.get_last_lr()[0]:.2e}"
        )


if __name__ == "__main__":
    main()
