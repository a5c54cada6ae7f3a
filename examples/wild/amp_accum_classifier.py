"""A "production" image-classifier loop: bfloat16 autocast, gradient accumulation: healthy.

In the manner of the timm training script and the PyTorch performance-tuning recipes
(automatic mixed precision, gradient accumulation, parameter groups without weight decay
on norms and biases, one-cycle schedule): the images are generated 3x32x32 pictures of ten
procedurally drawn shapes (disc, ring, square, frame, plus, cross, triangle, diamond,
horizontal bar, vertical bar) of random size, position and colour on a noisy background
with a random brightness gradient, 4,096 for training and 2,048 held out, standardised per
channel with the training set's statistics. ``ResNet`` is a small ResNet-style
``nn.Module``: a stride-2 stem (Conv-BatchNorm-ReLU), three stages of one ``BasicBlock``
each (16, 32 and 64 channels, the last two with stride 2 and a 1x1 projection shortcut),
global average pooling and a linear classifier; Kaiming initialisation, and the last
BatchNorm of every residual branch initialised to zero (timm's ``zero_init_last``).

The training loop: a shuffled ``DataLoader`` of micro-batches of 32 with random horizontal
flips, the forward and the loss inside ``torch.autocast("cpu", dtype=torch.bfloat16)``,
``nn.CrossEntropyLoss(label_smoothing=0.1)``, the loss divided by the 4 accumulation steps
before ``backward()``, and every 4 micro-batches ``clip_grad_norm_`` (max norm 1.0),
``optimizer.step()``, ``scheduler.step()`` and ``optimizer.zero_grad(set_to_none=True)``.
AdamW (lr 3e-3, weight decay 0.05) over two parameter groups, the weights of convolutions
and linear layers with decay and the BatchNorm parameters and biases without;
``OneCycleLR`` over the optimizer steps of all epochs (``steps_per_epoch`` = micro-batches
per epoch / accumulation steps). ``evaluate()`` runs the held-out set under
``model.eval()`` and ``torch.inference_mode()`` after every epoch. Top-level functions and
``main()`` with argparse; prints per epoch the learning rate, the training loss and the
held-out loss and accuracy, then the final accuracy against chance (0.1).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/amp_accum_classifier.py
    nndoctor check examples/wild/amp_accum_classifier.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES, SIZE = 10, 32


def make_shapes(n, g):
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    cy = 10 + 12 * torch.rand(n, 1, 1, generator=g)
    cx = 10 + 12 * torch.rand(n, 1, 1, generator=g)
    r = 5.0 + 4.0 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    l1 = dy.abs() + dx.abs()
    masks = torch.stack(
        [
            dist <= r,  # disc
            (dist <= r) & (dist >= r - 2.0),  # ring
            cheb <= 0.8 * r,  # square
            (cheb <= 0.8 * r) & (cheb >= 0.8 * r - 1.8),  # frame
            ((dy.abs() <= 1.5) | (dx.abs() <= 1.5)) & (cheb <= r),  # plus
            (((dy - dx).abs() <= 1.8) | ((dy + dx).abs() <= 1.8)) & (cheb <= r),  # cross
            (dy <= 0.7 * r) & (dy >= 2 * dx.abs() - r),  # triangle
            l1 <= r,  # diamond
            (dy.abs() <= 1.5) & (dx.abs() <= r),  # horizontal bar
            (dx.abs() <= 1.5) & (dy.abs() <= r),  # vertical bar
        ],
        dim=1,
    )
    shape = masks[torch.arange(n), labels].float()[:, None]
    colour = 0.3 + 0.7 * torch.rand(n, 3, 1, 1, generator=g)
    background = 0.4 * torch.rand(n, 3, 1, 1, generator=g)
    slope = 0.015 * torch.randn(n, 1, 2, generator=g)
    gradient = (slope[..., :1] * (ys - 16) + slope[..., 1:] * (xs - 16))[:, None]
    noise = 0.2 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    images = shape * colour + (1 - shape) * background + gradient + noise
    return images, labels


class BasicBlock(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + shortcut, inplace=True)


class ResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), n_classes=N_CLASSES):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks, in_channels = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(BasicBlock(in_channels, width, stride=1 if i == 0 else 2))
            in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, n_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(self.pool(x).flatten(1))


def param_groups_weight_decay(model, weight_decay):
    """Decay the weights of convolutions and linear layers, not norms and biases."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith(".bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def train_one_epoch(model, loader, criterion, optimizer, scheduler, accum_steps, clip_grad):
    model.train()
    total, n = 0.0, 0
    optimizer.zero_grad(set_to_none=True)
    for i, (images, labels) in enumerate(loader):
        flip = torch.rand(images.shape[0]) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = model(images)
            loss = criterion(output, labels)
        (loss / accum_steps).backward()
        total += loss.item() * images.shape[0]
        n += images.shape[0]

        if (i + 1) % accum_steps == 0 or i + 1 == len(loader):
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    return total / n


def evaluate(model, loader, criterion):
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.inference_mode():
        for images, labels in loader:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                output = model(images)
                loss = criterion(output, labels)
            total += loss.item() * images.shape[0]
            correct += (output.argmax(dim=1) == labels).sum().item()
            n += images.shape[0]
    return total / n, correct / n


def main():
    parser = argparse.ArgumentParser(description="bf16 autocast + gradient accumulation")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32, help="micro-batch size")
    parser.add_argument("--accum-steps", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--clip-grad", type=float, default=1.0)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_shapes(4096, g)
    x_test, y_test = make_shapes(2048, g)
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256)

    model = ResNet()
    criterion = nn.CrossEntropyLoss(label_smoothing=args.smoothing)
    optimizer = torch.optim.AdamW(
        param_groups_weight_decay(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.999)
    )
    steps_per_epoch = math.ceil(len(train_loader) / args.accum_steps)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch
    )

    for epoch in range(1, args.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(
            model, train_loader, criterion, optimizer, scheduler, args.accum_steps, args.clip_grad
        )
        test_loss, test_acc = evaluate(model, test_loader, criterion)
        print(
            f"epoch {epoch:2d}  lr {lr:.2e}  train loss {train_loss:.4f}  "
            f"test loss {test_loss:.4f}  test acc {test_acc:.3f}"
        )
    print(f"final: test acc {test_acc:.3f}  (chance {1 / N_CLASSES:.3f})")


if __name__ == "__main__":
    main()
