"""A tiny Vision Transformer trained from scratch on generated 32x32 images: healthy.

In the manner of the small-data ViT examples (ViT on CIFAR-10 from scratch, in the
``timm`` / ``vit-pytorch`` style): 10,500 generated RGB images (9,000 for training)
of 8 pattern classes (disc, square, ring, triangle, plus sign, horizontal bars,
vertical bars, checkerboard), each drawn at a random position and size in a random colour on a random background
colour with pixel noise, kept as 8-bit arrays and scaled to [0, 1], then normalised
per channel with the training set's mean and standard deviation. Training batches get
a random crop after 4 pixels of padding and a random horizontal flip (no class is
changed by either). ``VisionTransformer``: patch embedding by a ``Conv2d`` with kernel
and stride 8 (16 patches), a class token and learned position embeddings
(``trunc_normal_(std=0.02)``), 4 pre-norm blocks (``LayerNorm`` →
``nn.MultiheadAttention(batch_first=True)`` → residual, ``LayerNorm`` → GELU MLP →
residual), a final ``LayerNorm`` and a linear head on the class token.
``CrossEntropyLoss(label_smoothing=0.1)``; AdamW with decoupled weight decay 0.05 on
the weight matrices only (biases, norms, class token and position embeddings in a
group without decay); ``LambdaLR`` stepped per batch: linear warm-up over the first
epoch, then cosine decay to zero; gradient clipping at norm 1. A ``main()`` with
argparse; validation accuracy under ``torch.no_grad()`` with ``model.eval()`` after
every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/vit_tiny.py
    nndoctor check examples/wild/vit_tiny.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

CLASSES = ("disc", "square", "ring", "triangle", "plus", "h-bars", "v-bars", "checker")


def make_images(n, rng, size=32):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, len(CLASSES), n)
    for i, label in enumerate(labels):
        r = rng.uniform(7, 12)
        cy, cx = rng.uniform(r, size - r, 2)
        dy, dx = yy - cy, xx - cx
        inside = (np.abs(dy) < r) & (np.abs(dx) < r)
        name = CLASSES[label]
        if name == "disc":
            mask = dy**2 + dx**2 < r**2
        elif name == "square":
            mask = inside & (np.abs(dy) < 0.8 * r) & (np.abs(dx) < 0.8 * r)
        elif name == "ring":
            mask = (dy**2 + dx**2 < r**2) & (dy**2 + dx**2 > (0.6 * r) ** 2)
        elif name == "triangle":
            mask = inside & (np.abs(dx) < (dy + r) / 2)
        elif name == "plus":
            mask = inside & ((np.abs(dy) < 0.25 * r) | (np.abs(dx) < 0.25 * r))
        elif name == "h-bars":
            mask = inside & (np.floor((dy + r) / (r / 2.5)) % 2 == 0)
        elif name == "v-bars":
            mask = inside & (np.floor((dx + r) / (r / 2.5)) % 2 == 0)
        else:
            mask = inside & ((np.floor((dy + r) / (r / 2)) + np.floor((dx + r) / (r / 2))) % 2 == 0)
        background, colour = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        while np.abs(colour - background).sum() < 200:
            colour = rng.uniform(0, 255, 3)
        img = np.where(mask[..., None], colour, background) + rng.normal(0, 8, (size, size, 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels


def augment(images, padding=4):
    """Random crop after zero padding and random horizontal flip, per image."""
    n, _, h, w = images.shape
    padded = nn.functional.pad(images, (padding,) * 4)
    out = torch.empty_like(images)
    offsets = torch.randint(0, 2 * padding + 1, (n, 2))
    flips = torch.rand(n) < 0.5
    for i in range(n):
        top, left = offsets[i].tolist()
        crop = padded[i, :, top : top + h, left : left + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


class PatchEmbed(nn.Module):
    def __init__(self, img_size=32, patch_size=8, in_chans=3, embed_dim=96):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, num_patches, embed_dim)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=2.0, drop=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=drop, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, dim)
        )

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, num_classes, embed_dim=64, depth=4, num_heads=4, drop=0.0):
        super().__init__()
        self.patch_embed = PatchEmbed(embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop)
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, drop=drop) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = self.pos_drop(torch.cat((cls, x), dim=1) + self.pos_embed)
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.ndim <= 1 or name in ("cls_token", "pos_embed"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(1) == labels).sum().item()
            total += len(labels)
    return correct / total


def main():
    parser = argparse.ArgumentParser(description="Tiny ViT on generated 32x32 patterns")
    parser.add_argument("--train-size", type=int, default=9000)
    parser.add_argument("--val-size", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images, labels = make_images(args.train_size + args.val_size, rng)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(labels)
    x_train, y_train = x[: args.train_size], y[: args.train_size]
    x_val, y_val = x[args.train_size :], y[args.train_size :]
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=500)

    model = VisionTransformer(num_classes=len(CLASSES))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr)
    warmup_steps = len(train_loader)
    total_steps = args.epochs * len(train_loader)

    def lr_lambda(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

    for epoch in range(1, args.epochs + 1):
        model.train()
        running_loss, n_seen = 0.0, 0
        for images, labels in train_loader:
            images = augment(images)
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(model(images), labels)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            scheduler.step()
            running_loss += loss.item() * len(labels)
            n_seen += len(labels)
        val_acc = evaluate(model, val_loader)
        print(
            f"epoch {epoch}: train loss {running_loss / n_seen:.4f}, val accuracy {val_acc:.4f}, "
            f"lr {scheduler.get_last_lr()[0]:.2e}"
        )


if __name__ == "__main__":
    main()
