"""A tiny Vision Transformer on generated 16x16 images: a healthy training script.

Tells four kinds of 1x16x16 image apart: a plus, a cross (X), a hollow square and a
filled disc, drawn at random position and size with random contrast on noise. The
classes are imbalanced (55/25/12/8%), which a ``WeightedRandomSampler`` with
inverse-frequency weights compensates. ``TinyViT`` (custom ``nn.Module``s, after
Dosovitskiy et al., 2021): a ``Conv2d`` patch embedding with stride = patch size (4x4
patches, 16 tokens), a learned class token and position embeddings, two pre-norm
``nn.TransformerEncoderLayer``s with dropout 0.1, a linear head on the class token.
``nn.CrossEntropyLoss(label_smoothing=0.1)``, AdamW, linear warm-up then cosine decay
(``LambdaLR``, stepped per batch), ``main()`` with argparse. Prints the training loss
and the held-out accuracy on balanced data.

Healthy: nndoctor should report no warning and no error.

    python examples/corpus/vit_patches.py
    nndoctor check examples/corpus/vit_patches.py
"""

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

SIZE, PATCH = 16, 4
CLASSES = ("plus", "cross", "hollow square", "disc")
SHARE = (0.55, 0.25, 0.12, 0.08)


def make_images(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """One standardised 1x16x16 image per label."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    r = 3 + 3 * torch.rand(n, 1, 1, generator=g)
    cy = r + (SIZE - 1 - 2 * r) * torch.rand(n, 1, 1, generator=g)
    cx = r + (SIZE - 1 - 2 * r) * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx  # (n, SIZE, SIZE)
    shapes = torch.stack([
        ((dy.abs() < 0.8) | (dx.abs() < 0.8)) & (dy.abs() <= r) & (dx.abs() <= r),   # plus
        (((dy - dx).abs() < 1.1) | ((dy + dx).abs() < 1.1)) & (dy.abs() <= r),      # cross
        (torch.maximum(dy.abs(), dx.abs()) - r).abs() < 0.8,                         # hollow square
        dy ** 2 + dx ** 2 <= r ** 2,                                                 # disc
    ], dim=1)  # (n, 4, SIZE, SIZE)
    shape = shapes[torch.arange(n), labels].float()
    contrast = 0.5 + torch.rand(n, 1, 1, generator=g)
    images = contrast * shape + 0.4 * torch.randn(n, SIZE, SIZE, generator=g)
    images = (images - images.mean()) / images.std()
    return images.unsqueeze(1)


class TinyViT(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 2, heads: int = 4, dropout: float = 0.1,
                 classes: int = len(CLASSES)) -> None:
        super().__init__()
        tokens = (SIZE // PATCH) ** 2
        self.patch_embed = nn.Conv2d(1, dim, kernel_size=PATCH, stride=PATCH)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (N, 16, dim)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed          # (N, 17, dim)
        h = self.encoder(x)
        return self.head(self.norm(h[:, 0]))                     # the class token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=50, help="warm-up steps")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_labels = torch.multinomial(torch.tensor(SHARE), 6000, replacement=True, generator=g)
    train_images = make_images(train_labels, seed=2 * args.seed)
    test_labels = torch.arange(1000) % len(CLASSES)
    test_images = make_images(test_labels, seed=2 * args.seed + 1)

    counts = torch.bincount(train_labels, minlength=len(CLASSES)).float()
    weights = 1.0 / counts[train_labels]  # every class drawn equally often
    sampler = WeightedRandomSampler(weights, num_samples=len(train_labels), replacement=True)
    loader = DataLoader(TensorDataset(train_images, train_labels), batch_size=args.batch_size, sampler=sampler)

    model = TinyViT(dropout=args.dropout)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    total = args.epochs * len(loader)

    def warmup_cosine(step: int) -> float:
        if step < args.warmup:
            return (step + 1) / args.warmup
        return 0.5 * (1 + math.cos(math.pi * (step - args.warmup) / (total - args.warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine)

    for epoch in range(args.epochs):
        model.train()
        for images, labels in loader:
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(test_images).argmax(1) == test_labels).float().mean().item()
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}, balanced test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
