"""Semantic segmentation with a tiny U-Net and GroupNorm: a healthy training script.

Segments 1x32x32 generated images into background, discs and squares. Each image
has one to three shapes of random size, position and brightness on a smooth random
background with pixel noise; the two shape classes differ only in form. Pixels are
standardised with the training split's mean and std. The mask
marks a two-pixel band along the image border with ``ignore_index`` 255 (the
"unlabelled" value of VOC-style masks), and the shapes' class weights come from
the training masks' pixel frequencies (inverse square root).

``TinyUNet`` (custom ``nn.Module``s: conv-GroupNorm-ReLU blocks, two down and two up
levels with skip connections, a 1x1 head, plus an auxiliary head on the bottleneck for
deep supervision, weighted 0.4 as in PSPNet). A ``Dataset`` whose ``__getitem__``
flips image and mask together and adds mild noise; ``DataLoader``; per-pixel
``nn.CrossEntropyLoss`` with class weights and ``ignore_index=255``; SGD with momentum
and a polynomial learning-rate decay stepped per batch; the validation mean IoU picks
the checkpoint kept. ``main()`` with argparse.

Healthy: nndoctor should report no warning and no error.

    python examples/corpus/unet_segmentation.py
    nndoctor check examples/corpus/unet_segmentation.py
"""

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

SIZE, CLASSES, IGNORE, BORDER = 32, 3, 255, 2  # classes: background, disc, square


def make_shapes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 1, SIZE, SIZE) with values around 0..1, and masks (n, SIZE, SIZE) of class ids."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    images = torch.empty(n, 1, SIZE, SIZE)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    for i in range(n):
        # A smooth background: a random plane of brightness.
        tilt = (torch.rand(2, generator=g) - 0.5) * 0.04
        image = 0.3 + tilt[0] * (ys - SIZE / 2) + tilt[1] * (xs - SIZE / 2)
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            kind = int(torch.randint(1, CLASSES, (1,), generator=g))
            r = 3 + 4 * torch.rand(1, generator=g).item()
            cy, cx = (r + (SIZE - 2 * r) * torch.rand(2, generator=g)).tolist()
            if kind == 1:
                inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r
            else:
                inside = ((ys - cy).abs() <= r * 0.85) & ((xs - cx).abs() <= r * 0.85)
            image = torch.where(inside, 0.6 + 0.4 * torch.rand(1, generator=g), image)
            masks[i][inside] = kind
        images[i, 0] = image + 0.05 * torch.randn(SIZE, SIZE, generator=g)
    masks[:, :BORDER, :] = IGNORE
    masks[:, -BORDER:, :] = IGNORE
    masks[:, :, :BORDER] = IGNORE
    masks[:, :, -BORDER:] = IGNORE
    return images, masks


class ShapesDataset(Dataset):
    """Image/mask pairs; with ``augment``, random flips of both and extra pixel noise."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, augment: bool, noise: float = 0.1) -> None:
        self.images, self.masks, self.augment, self.noise = images, masks, augment, noise

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[i], self.masks[i]
        if self.augment:
            if torch.rand(1).item() < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
            if torch.rand(1).item() < 0.5:
                image, mask = image.flip(-2), mask.flip(-2)
            image = image + self.noise * torch.randn_like(image)
        return image, mask


class ConvBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.GroupNorm(8, c_out), nn.ReLU(inplace=True),
        )


class TinyUNet(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1, self.enc2, self.mid = ConvBlock(1, w), ConvBlock(w, 2 * w), ConvBlock(2 * w, 4 * w)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2), ConvBlock(4 * w, 2 * w)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2), ConvBlock(2 * w, w)
        self.head = nn.Conv2d(w, CLASSES, 1)
        self.aux_head = nn.Conv2d(4 * w, CLASSES, 1)  # deep supervision at 1/4 resolution

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1 = self.enc1(x)                          # (N, w, 32, 32)
        s2 = self.enc2(F.max_pool2d(s1, 2))        # (N, 2w, 16, 16)
        m = self.mid(F.max_pool2d(s2, 2))          # (N, 4w, 8, 8)
        d2 = self.dec2(torch.cat([self.up2(m), s2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), s1], dim=1))
        return self.head(d1), self.aux_head(m)     # (N, C, 32, 32), (N, C, 8, 8)


def mean_iou(model: nn.Module, loader: DataLoader) -> float:
    inter, union = torch.zeros(CLASSES), torch.zeros(CLASSES)
    with torch.no_grad():
        for image, mask in loader:
            pred = model(image)[0].argmax(1)
            valid = mask != IGNORE
            for c in range(CLASSES):
                p, t = (pred == c) & valid, (mask == c) & valid
                inter[c] += (p & t).sum()
                union[c] += (p | t).sum()
    return (inter / union.clamp(min=1)).mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--aux-weight", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    train_images, train_masks = make_shapes(1200, seed=2 * args.seed)
    val_images, val_masks = make_shapes(200, seed=2 * args.seed + 1)
    mean, std = train_images.mean(), train_images.std()  # the training split's statistics
    train_images, val_images = (train_images - mean) / std, (val_images - mean) / std
    train_loader = DataLoader(ShapesDataset(train_images, train_masks, augment=True),
                              batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(ShapesDataset(val_images, val_masks, augment=False), batch_size=100)

    frequency = torch.bincount(train_masks[train_masks != IGNORE], minlength=CLASSES).float()
    class_weight = (frequency.sum() / frequency).sqrt()
    criterion = nn.CrossEntropyLoss(weight=class_weight / class_weight.mean(), ignore_index=IGNORE)

    model = TinyUNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    total_steps = args.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=total_steps, power=0.9)

    best_iou, best_state = -1.0, None
    for epoch in range(args.epochs):
        model.train()
        for image, mask in train_loader:
            logits, aux_logits = model(image)
            aux_mask = mask[:, 2::4, 2::4]  # nearest-neighbour 1/4 of the mask, like the aux head
            loss = criterion(logits, mask) + args.aux_weight * criterion(aux_logits, aux_mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        iou = mean_iou(model, val_loader)
        if iou > best_iou:
            best_iou, best_state = iou, copy.deepcopy(model.state_dict())
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}, validation mean IoU {iou:.3f}")
    model.load_state_dict(best_state)
    print(f"kept the checkpoint with validation mean IoU {best_iou:.3f}")


if __name__ == "__main__":
    main()
