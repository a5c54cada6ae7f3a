"""FixMatch semi-supervised classification of generated shape images: healthy.

In the manner of the FixMatch paper and of its popular PyTorch re-implementation, at toy
scale: 3x16x16 images of six kinds of shapes (square, ring, plus, X, two horizontal
bars, one diagonal) of random colour, size and position on a noisy textured background;
only 5 labelled images per class (repeated to fill a labelled epoch), 6,000 unlabelled
ones and 1,200 test images. Augmentations are written in torch and applied to whole
batches: the weak one flips horizontally and translates by up to 2 pixels (reflect
padding and a random crop), the strong one adds to it per-image brightness and contrast
jitter, a random channel permutation, Gaussian noise and Cutout of a 7x7 square. Each
step draws 16 labelled and 4 x 16 unlabelled images from two shuffled ``DataLoader``s
(their iterators restarted when exhausted) and runs one forward pass over the labelled
weak views and the unlabelled weak and strong views concatenated (so that BatchNorm sees
them together). Pseudo-labels are the argmax of the softmax of the weak views' detached
logits, kept where its maximum is at least 0.95; the loss is the labelled cross-entropy
plus ``lambda_u = 1`` times the masked cross-entropy of the strong views against them.
SGD with Nesterov momentum 0.9 and weight decay 5e-4 (not on biases and BatchNorm), the
FixMatch cosine decay ``lr * cos(7 pi k / 16 K)`` by ``LambdaLR`` per step, and an EMA
of the weights (decay 0.99, BatchNorm buffers copied) used for evaluation. A ``main()``
with argparse; prints every 100 steps the two losses, the share of unlabelled images
above the threshold and the accuracy of their pseudo-labels, and the test accuracy of
the EMA model.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/fixmatch_semi.py
    nndoctor check examples/wild/fixmatch_semi.py
"""

import argparse
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES = 6
SIZE = 16


def shape_masks(kind, k):
    """(n, k, k) masks of one class of shape for n scales k."""
    r = torch.arange(SIZE, dtype=torch.float32)
    yy, xx = r[:, None], r[None, :]
    c = (SIZE - 1) / 2
    dy, dx = (yy - c)[None] / k[:, None, None], (xx - c)[None] / k[:, None, None]
    if kind == 0:  # filled square
        return ((dy.abs() < 1) & (dx.abs() < 1)).float()
    if kind == 1:  # ring
        rad = (dy**2 + dx**2).sqrt()
        return ((rad > 0.6) & (rad < 1.0)).float()
    if kind == 2:  # plus
        return (((dy.abs() < 0.25) & (dx.abs() < 1)) | ((dx.abs() < 0.25) & (dy.abs() < 1))).float()
    if kind == 3:  # X
        return (((dy - dx).abs() < 0.3) | ((dy + dx).abs() < 0.3)).float() * (dy.abs() < 1)
    if kind == 4:  # two horizontal bars
        return ((((dy - 0.5).abs() < 0.2) | ((dy + 0.5).abs() < 0.2)) & (dx.abs() < 1)).float()
    return (((dy - dx).abs() < 0.3) & (dy.abs() < 1)).float()  # one diagonal


def make_images(n, g):
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    scale = 3.5 + 2.5 * torch.rand(n, generator=g)
    masks = torch.zeros(n, SIZE, SIZE)
    for kind in range(N_CLASSES):
        idx = (labels == kind).nonzero().squeeze(1)
        masks[idx] = shape_masks(kind, scale[idx])
    shifts = torch.randint(-3, 4, (n, 2), generator=g)
    for i in range(n):
        masks[i] = torch.roll(masks[i], shifts=tuple(shifts[i].tolist()), dims=(0, 1))
    colour = 0.3 + 0.7 * torch.rand(n, 3, 1, 1, generator=g)
    background = 0.3 * torch.rand(n, 3, 1, 1, generator=g)
    texture = 0.15 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    images = background + texture + masks[:, None] * (colour - background)
    images = images + 0.05 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    return images, labels


def weak_augment(x):
    flip = torch.rand(x.shape[0], 1, 1, 1) < 0.5
    x = torch.where(flip, x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    n, r = x.shape[0], torch.arange(SIZE)
    dy, dx = torch.randint(0, 5, (2, n, 1))
    rows, cols = (dy + r)[:, :, None], (dx + r)[:, None, :]  # a random 16x16 crop per image
    return padded[torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def strong_augment(x):
    x = weak_augment(x)
    n = x.shape[0]
    brightness = 0.6 + 0.8 * torch.rand(n, 1, 1, 1)
    contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean * brightness
    perm = torch.stack([torch.randperm(3) for _ in range(n)])
    x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
    x = x + 0.1 * torch.randn_like(x)
    # Cutout: a 7x7 square set to grey at a random place
    cy, cx = torch.randint(0, SIZE, (2, n, 1, 1))
    r = torch.arange(SIZE)
    inside = ((r[None, :, None] - cy).abs() <= 3) & ((r[None, None, :] - cx).abs() <= 3)
    keep = (~inside).float()[:, None]
    return x * keep + 0.5 * (1 - keep)


class ConvNet(nn.Module):
    def __init__(self, n_classes, width=16):
        super().__init__()

        def block(c_in, c_out):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out, momentum=0.001),
                nn.LeakyReLU(0.1),
            )

        self.features = nn.Sequential(
            block(3, width),
            nn.MaxPool2d(2),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width, n_classes)

    def forward(self, x):
        return self.fc(self.features(x))


class ModelEMA:
    def __init__(self, model, decay):
        self.ema = copy.deepcopy(model)
        self.ema.eval()
        self.decay = decay
        for p in self.ema.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model):
        for ema_p, p in zip(self.ema.parameters(), model.parameters(), strict=True):
            ema_p.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)
        for ema_b, b in zip(self.ema.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)


def get_cosine_schedule(optimizer, total_steps, num_cycles=7.0 / 16.0):
    def lr_lambda(step):
        return max(0.0, math.cos(math.pi * num_cycles * step / total_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


def next_batch(loader, iterator):
    try:
        return next(iterator), iterator
    except StopIteration:
        iterator = iter(loader)
        return next(iterator), iterator


@torch.no_grad()
def test_accuracy(model, x, y):
    model.eval()
    correct = sum(
        (model(xb).argmax(1) == yb).sum().item()
        for xb, yb in zip(x.split(400), y.split(400), strict=True)
    )
    return correct / len(y)


def main():
    parser = argparse.ArgumentParser(description="FixMatch on generated shapes")
    parser.add_argument("--n-labeled-per-class", type=int, default=5)
    parser.add_argument("--n-unlabeled", type=int, default=6000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--mu", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--wdecay", type=float, default=5e-4)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--lambda-u", type=float, default=1.0)
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    pool_x, pool_y = make_images(args.n_unlabeled + 600, g)
    labeled_idx = torch.cat(
        [(pool_y == c).nonzero().squeeze(1)[: args.n_labeled_per_class] for c in range(N_CLASSES)]
    )
    unlabeled_x = pool_x[: args.n_unlabeled]  # labels not used
    unlabeled_y = pool_y[: args.n_unlabeled]  # only to report pseudo-label accuracy
    test_x, test_y = make_images(1200, g)

    # repeat the labelled set so that one labelled epoch is not a handful of steps
    repeats = max(1, (args.batch_size * 50) // len(labeled_idx))
    labeled_set = TensorDataset(
        pool_x[labeled_idx].repeat(repeats, 1, 1, 1), pool_y[labeled_idx].repeat(repeats)
    )
    unlabeled_set = TensorDataset(unlabeled_x, unlabeled_y)
    labeled_loader = DataLoader(
        labeled_set, batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    unlabeled_loader = DataLoader(
        unlabeled_set, batch_size=args.batch_size * args.mu, shuffle=True, drop_last=True
    )

    model = ConvNet(N_CLASSES)
    decay = [p for p in model.parameters() if p.ndim > 1]  # conv and linear weights
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # biases and BatchNorm
    grouped = [
        {"params": decay, "weight_decay": args.wdecay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.SGD(grouped, lr=args.lr, momentum=0.9, nesterov=True)
    scheduler = get_cosine_schedule(optimizer, args.steps)
    ema_model = ModelEMA(model, args.ema_decay)

    labeled_iter, unlabeled_iter = iter(labeled_loader), iter(unlabeled_loader)
    log = {"Lx": 0.0, "Lu": 0.0, "mask": 0.0, "pseudo_acc": 0.0}
    for step in range(1, args.steps + 1):
        model.train()
        (inputs_x, targets_x), labeled_iter = next_batch(labeled_loader, labeled_iter)
        (inputs_u, true_u), unlabeled_iter = next_batch(unlabeled_loader, unlabeled_iter)
        inputs_u_w, inputs_u_s = weak_augment(inputs_u), strong_augment(inputs_u)
        inputs_x = weak_augment(inputs_x)

        batch_size = inputs_x.shape[0]
        inputs = torch.cat((inputs_x, inputs_u_w, inputs_u_s))
        logits = model(inputs)
        logits_x = logits[:batch_size]
        logits_u_w, logits_u_s = logits[batch_size:].chunk(2)

        Lx = F.cross_entropy(logits_x, targets_x, reduction="mean")
        pseudo_label = torch.softmax(logits_u_w.detach(), dim=-1)
        max_probs, targets_u = torch.max(pseudo_label, dim=-1)
        mask = max_probs.ge(args.threshold).float()
        Lu = (F.cross_entropy(logits_u_s, targets_u, reduction="none") * mask).mean()
        loss = Lx + args.lambda_u * Lu

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema_model.update(model)

        log["Lx"] += Lx.item()
        log["Lu"] += Lu.item()
        log["mask"] += mask.mean().item()
        log["pseudo_acc"] += ((targets_u == true_u).float() * mask).sum().item() / max(
            1.0, mask.sum().item()
        )
        if step % 100 == 0:
            acc = test_accuracy(ema_model.ema, test_x, test_y)
            print(
                f"step {step:5d}: Lx {log['Lx'] / 100:.4f}, Lu {log['Lu'] / 100:.4f}, "
                f"mask {log['mask'] / 100:.3f}, pseudo-label acc {log['pseudo_acc'] / 100:.3f}, "
                f"lr {scheduler.get_last_lr()[0]:.4f}, EMA test acc {acc:.4f}"
            )
            log = dict.fromkeys(log, 0.0)


if __name__ == "__main__":
    main()
