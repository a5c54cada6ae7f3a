"""A small U-Net for 3-class segmentation with CE + soft Dice and ignored boundaries: healthy.

In the manner of the U-Net segmentation repositories (Carvana / medical-imaging style):
32x32 grey images on a noisy, smoothly shaded background hold a few blobs (class 1, a
soft-edged disc or ellipse) and striped patches (class 2, a square of parallel bars at a
random angle), both with random contrast; class 0 is the background. As in VOC-style
masks, the pixels on the boundary between two classes are labelled 255 and ignored.
``UNet`` (custom ``nn.Module``s): ``DoubleConv`` blocks of conv-BatchNorm-ReLU, two
``Down`` (max-pool) and two ``Up`` (``ConvTranspose2d`` + concatenation of the skip)
levels and a 1x1 ``OutConv`` to 3 logits per pixel. The loss is
``nn.CrossEntropyLoss(ignore_index=255)`` plus a hand-written multi-class soft Dice loss
on the softmax (ignored pixels masked out). Random horizontal and vertical flips are
applied to the image batch and the mask batch together in the training loop. Adam with
a ``ReduceLROnPlateau`` on the validation IoU; manual mini-batches from a shuffled index
(no ``DataLoader``); ``main()`` with argparse. Prints the training loss and the
validation mean IoU (under ``model.eval()`` and ``torch.no_grad()``) each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/unet_segment.py
    nndoctor check examples/wild/unet_segment.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

N_CLASSES = 3
IGNORE = 255


def make_scenes(n: int, g: torch.Generator, size: int = 32):
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    images = torch.zeros(n, size, size)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        tilt = torch.randn(2, generator=g) * 0.02
        img = 0.3 * torch.rand(1, generator=g) + tilt[0] * (ys - 16) + tilt[1] * (xs - 16)
        mask = torch.zeros(size, size, dtype=torch.long)
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cy, cx = (4 + 24 * torch.rand(2, generator=g)).tolist()
            contrast = 0.6 + 0.8 * torch.rand(1, generator=g).item()
            if torch.rand(1, generator=g).item() < 0.5:  # a blob
                ry, rx = (3 + 4 * torch.rand(2, generator=g)).tolist()
                inside = ((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2 <= 1
                mask[inside] = 1
                img = torch.where(inside, img + contrast, img)
            else:  # a striped patch
                half = 3 + 3 * torch.rand(1, generator=g).item()
                angle = math.pi * torch.rand(1, generator=g).item()
                inside = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
                bars = torch.sin(1.6 * ((xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)))
                mask[inside] = 2
                img = torch.where(inside, img + contrast * (bars > 0).float(), img)
        images[i] = img + 0.15 * torch.randn(size, size, generator=g)
        masks[i] = mask
    # boundary pixels: a 3x3 neighbourhood holding more than one class
    m = masks.unsqueeze(1).float()
    edge = F.max_pool2d(m, 3, 1, 1) != -F.max_pool2d(-m, 3, 1, 1)
    masks[edge.squeeze(1)] = IGNORE
    return images.unsqueeze(1), masks


class DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        return self.conv(torch.cat([x2, x1], dim=1))


class UNet(nn.Module):
    def __init__(self, n_channels: int, n_classes: int, base: int = 16) -> None:
        super().__init__()
        self.inc = DoubleConv(n_channels, base)
        self.down1 = Down(base, base * 2)
        self.down2 = Down(base * 2, base * 4)
        self.up1 = Up(base * 4, base * 2)
        self.up2 = Up(base * 2, base)
        self.outc = nn.Conv2d(base, n_classes, kernel_size=1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x = self.up1(x3, x2)
        x = self.up2(x, x1)
        return self.outc(x)


def soft_dice_loss(probs, target, ignore_index=IGNORE, eps=1.0):
    """1 - mean over classes of the soft Dice coefficient; ignored pixels count for nothing."""
    valid = (target != ignore_index).unsqueeze(1).float()
    one_hot = F.one_hot(torch.where(target == ignore_index, 0, target), N_CLASSES)
    one_hot = one_hot.permute(0, 3, 1, 2).float() * valid
    probs = probs * valid
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    cardinality = probs.sum(dims) + one_hot.sum(dims)
    return 1 - ((2 * intersection + eps) / (cardinality + eps)).mean()


@torch.no_grad()
def mean_iou(model, images, masks, batch_size=200):
    model.eval()
    inter = torch.zeros(N_CLASSES)
    union = torch.zeros(N_CLASSES)
    for start in range(0, len(images), batch_size):
        pred = model(images[start : start + batch_size]).argmax(dim=1)
        target = masks[start : start + batch_size]
        valid = target != IGNORE
        for c in range(N_CLASSES):
            p, t = (pred == c) & valid, (target == c) & valid
            inter[c] += (p & t).sum()
            union[c] += (p | t).sum()
    return (inter / union.clamp(min=1)).mean().item()


def main():
    parser = argparse.ArgumentParser(description="U-Net: blobs and stripes")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    train_images, train_masks = make_scenes(1600, g)
    val_images, val_masks = make_scenes(300, g)
    mean, std = train_images.mean(), train_images.std()
    train_images = (train_images - mean) / std
    val_images = (val_images - mean) / std

    model = UNet(n_channels=1, n_classes=N_CLASSES)
    criterion = nn.CrossEntropyLoss(ignore_index=IGNORE)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)

    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(train_images))
        epoch_loss, n_batches = 0.0, 0
        for start in range(0, len(perm), args.batch_size):
            idx = perm[start : start + args.batch_size]
            images, true_masks = train_images[idx], train_masks[idx]
            if torch.rand(1).item() < 0.5:
                images = images.flip(-1)
                true_masks = true_masks.flip(-1)
            if torch.rand(1).item() < 0.5:
                images = images.flip(-2)
                true_masks = true_masks.flip(-2)

            masks_pred = model(images)
            loss = criterion(masks_pred, true_masks)
            loss = loss + soft_dice_loss(F.softmax(masks_pred, dim=1), true_masks)

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
            n_batches += 1

        val_iou = mean_iou(model, val_images, val_masks)
        scheduler.step(val_iou)
        print(f"epoch {epoch}: train loss {epoch_loss / n_batches:.4f}, validation mean IoU {val_iou:.3f}")


if __name__ == "__main__":
    main()
