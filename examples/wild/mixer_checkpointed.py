"""An MLP-Mixer trained with activation checkpointing on its blocks: healthy.

In the manner of the MLP-Mixer of Tolstikhin et al. 2021 as written in lucidrains'
``mlp-mixer-pytorch`` and timm's ``mlp_mixer.py`` (with timm's ``set_grad_checkpointing``):
the data are 32x32 grey-level images, generated in the script, each showing a dark disc and
a bright square of random sizes on a noisy grey background of random brightness; the
label is where the square lies relative to the disc (right, left, below, above: 4 classes),
at a random distance of 9 to 15 pixels with some sideways jitter, anywhere in the image.
No single 4x4 patch tells the class: the model has to relate distant patches, which is
what the token-mixing MLPs are for. 4,000 images for training, 1,000 for testing, in a
``Dataset`` that standardises them with the training set's mean and standard deviation
and serves them through ``DataLoader`` s.

``MlpMixer``: a ``PatchEmbed`` stem (a ``Conv2d`` with kernel and stride 4 to an 8x8 grid
of 64 tokens of dim 64, flattened to (B, N, C)), 4 ``MixerBlock`` s, a final ``LayerNorm``,
global average pooling over the tokens and a linear head. A ``MixerBlock`` is two pre-norm
residual MLPs: token mixing, ``mlp_tokens(norm1(x).transpose(1, 2)).transpose(1, 2)``
(an MLP over the 64 tokens, hidden 32, per channel), and channel mixing,
``mlp_channels(norm2(x))`` (hidden 128, per token), each ``Linear`` + ``GELU`` + ``Linear``
with ``LayerNorm(eps=1e-6)``. As with timm's ``set_grad_checkpointing(True)``, in training
every block is run through ``torch.utils.checkpoint.checkpoint(block, x,
use_reentrant=False)``, so its activations are recomputed in the backward pass instead of
being stored; in evaluation the blocks are called directly. timm-style init (xavier-uniform
``Linear`` s, zero head). Cross-entropy with label smoothing 0.1; AdamW (lr 2e-3, weight
decay 0.05 on the 2-D weights only) with ``LambdaLR`` stepped every iteration (linear
warm-up over the first epoch, then cosine decay), gradient clipping at 1.0, 8 epochs of 62
batches of 64. ``main()`` with argparse; ``train_one_epoch()`` and ``validate()``
(``model.eval()`` under ``torch.no_grad()``) print loss and accuracy every epoch; the last
line is the test accuracy against chance (25%).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/mixer_checkpointed.py
    nndoctor check examples/wild/mixer_checkpointed.py
"""

import argparse
import math
import time
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, Dataset

CLASSES = ("right", "left", "below", "above")
DIRECTIONS = ((0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0))  # (dy, dx) from disc to square


# -----------------------------------------------------------------------------
# data


def make_pairs(n, rng, size=32):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, 1, size, size), dtype=np.float32)
    labels = rng.integers(0, len(CLASSES), n)
    for i, label in enumerate(labels):
        r_disc, r_square = rng.uniform(2.5, 4.0), rng.uniform(2.0, 3.5)
        dist, jitter = rng.uniform(9.0, 15.0), rng.uniform(-3.0, 3.0)
        dy, dx = DIRECTIONS[label]
        off_y, off_x = dy * dist + dx * jitter, dx * dist + dy * jitter
        # place the pair anywhere it fits
        margin = 4.5
        lo_y, hi_y = margin + max(0.0, -off_y), size - 1 - margin - max(0.0, off_y)
        lo_x, hi_x = margin + max(0.0, -off_x), size - 1 - margin - max(0.0, off_x)
        cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r_disc**2
        square = (np.abs(yy - cy - off_y) < r_square) & (np.abs(xx - cx - off_x) < r_square)
        img = np.full((size, size), rng.uniform(0.35, 0.65), dtype=np.float32)
        img[disc] = rng.uniform(0.0, 0.2)  # a dark disc
        img[square] = rng.uniform(0.8, 1.0)  # a bright square
        images[i, 0] = img + rng.normal(0, 0.1, (size, size))
    return images, labels


class PairsDataset(Dataset):
    def __init__(self, images, labels, mean, std):
        self.images = torch.from_numpy((images - mean) / std)
        self.labels = torch.from_numpy(labels)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        return self.images[idx], self.labels[idx]


# -----------------------------------------------------------------------------
# model


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(x))


class MixerBlock(nn.Module):
    """Residual block with token mixing and channel mixing."""

    def __init__(self, dim, seq_len, mlp_ratio=(0.5, 4.0), norm_layer=partial(nn.LayerNorm, eps=1e-6),
                 act_layer=nn.GELU, drop=0.0):
        super().__init__()
        tokens_dim, channels_dim = [int(x * dim) for x in mlp_ratio]
        self.norm1 = norm_layer(dim)
        self.mlp_tokens = Mlp(seq_len, tokens_dim, act_layer=act_layer, drop=drop)
        self.norm2 = norm_layer(dim)
        self.mlp_channels = Mlp(dim, channels_dim, act_layer=act_layer, drop=drop)

    def forward(self, x):
        x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.mlp_channels(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size=32, patch_size=4, in_chans=1, embed_dim=64):
        super().__init__()
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # B, N, C


class MlpMixer(nn.Module):
    def __init__(self, num_classes=4, img_size=32, in_chans=1, patch_size=4, num_blocks=4,
                 embed_dim=64, mlp_ratio=(0.5, 2.0), drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.grad_checkpointing = False
        self.stem = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.blocks = nn.Sequential(*[
            MixerBlock(embed_dim, self.stem.num_patches, mlp_ratio, drop=drop_rate)
            for _ in range(num_blocks)
        ])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(self._init_weights)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.normal_(m.bias, std=1e-6)
        elif isinstance(m, nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, enable=True):
        self.grad_checkpointing = enable

    def forward_features(self, x):
        x = self.stem(x)
        for block in self.blocks:
            if self.grad_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.norm(x)

    def forward_head(self, x):
        x = x.mean(dim=1)
        return self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


# -----------------------------------------------------------------------------
# training


def param_groups_weight_decay(model, weight_decay):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.ndim <= 1 or name.endswith(".bias"):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay}]


def train_one_epoch(model, loader, criterion, optimizer, lr_scheduler, clip_grad):
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, targets in loader:
        output = model(images)
        loss = criterion(output, targets)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        lr_scheduler.step()
        loss_sum += loss.item() * targets.size(0)
        correct += (output.argmax(1) == targets).sum().item()
        seen += targets.size(0)
    return loss_sum / seen, 100.0 * correct / seen


@torch.no_grad()
def validate(model, loader, criterion):
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, targets in loader:
        output = model(images)
        loss_sum += criterion(output, targets).item() * targets.size(0)
        correct += (output.argmax(1) == targets).sum().item()
        seen += targets.size(0)
    return loss_sum / seen, 100.0 * correct / seen


def main():
    parser = argparse.ArgumentParser(description="MLP-Mixer with gradient checkpointing")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--clip-grad", type=float, default=1.0)
    parser.add_argument("--no-grad-checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images, labels = make_pairs(args.n_train + args.n_test, rng)
    train_images, test_images = images[: args.n_train], images[args.n_train :]
    mean, std = train_images.mean(), train_images.std()
    dataset_train = PairsDataset(train_images, labels[: args.n_train], mean, std)
    dataset_test = PairsDataset(test_images, labels[args.n_train :], mean, std)
    loader_train = DataLoader(dataset_train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    loader_test = DataLoader(dataset_test, batch_size=250)

    model = MlpMixer(num_classes=len(CLASSES))
    model.set_grad_checkpointing(not args.no_grad_checkpointing)
    print(f"MlpMixer: {sum(p.numel() for p in model.parameters()):,} parameters, "
          f"grad checkpointing {model.grad_checkpointing}")

    criterion = nn.CrossEntropyLoss(label_smoothing=args.smoothing)
    optimizer = torch.optim.AdamW(param_groups_weight_decay(model, args.weight_decay), lr=args.lr)
    steps_per_epoch = len(loader_train)
    total_steps = args.epochs * steps_per_epoch
    warmup_steps = args.warmup_epochs * steps_per_epoch

    def lr_lambda(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

    for epoch in range(args.epochs):
        start = time.time()
        train_loss, train_acc = train_one_epoch(model, loader_train, criterion, optimizer,
                                                lr_scheduler, args.clip_grad)
        test_loss, test_acc = validate(model, loader_test, criterion)
        print(f"epoch {epoch}  lr {optimizer.param_groups[0]['lr']:.2e}  train loss {train_loss:.4f}  "
              f"train acc {train_acc:.2f}%  test loss {test_loss:.4f}  test acc {test_acc:.2f}%  "
              f"({time.time() - start:.1f}s)")

    _, test_acc = validate(model, loader_test, criterion)
    print(f"Test accuracy of the Mixer on {len(dataset_test)} images: {test_acc:.2f}% "
          f"(chance {100.0 / len(CLASSES):.1f}%)")


if __name__ == "__main__":
    main()
