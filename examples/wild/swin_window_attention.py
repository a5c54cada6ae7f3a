"""A tiny Swin Transformer image classifier with shifted-window attention: healthy.

In the manner of the Swin authors' ``models/swin_transformer.py`` and ``main.py``
(microsoft/Swin-Transformer): 5,600 generated RGB images of 32x32 (4,800 for training) of
8 classes, four shapes (disc, ring, square frame, diagonal cross) and four textures (a
patch of horizontal stripes, vertical stripes, a checkerboard or dots), each drawn at a
random position and size, 11 to 22 pixels across so that it spans several windows, in a
random light colour on a random dark background with pixel noise, stored as uint8 HWC
arrays; the ``Dataset`` scales them to [0, 1], normalises per channel with the training
set's mean and standard deviation and flips training images horizontally at random.

``SwinTransformer``: ``PatchEmbed`` (a ``Conv2d`` with kernel and stride 4 to 8x8 tokens of
dim 32, flattened to (B, L, C), ``LayerNorm``), then two stages (depths 2, 2; 2 and 4 heads)
of ``SwinTransformerBlock``: pre-norm, ``window_partition`` into 4x4 windows by
``view`` + ``permute``, ``WindowAttention`` with a learned relative position bias table of
(2*4-1)^2 entries per head gathered by a registered ``relative_position_index`` buffer,
``window_reverse``; in the first stage every second block shifts the map by ``torch.roll``
by half a window first and rolls it back after, with a precomputed ``attn_mask`` (-100
between tokens from different regions of the shifted map); the second stage, on 4x4 tokens
of dim 64 after ``PatchMerging`` (2x2 neighbours concatenated, ``LayerNorm``, ``Linear``
4C -> 2C), is a single window and is not shifted, as in the original when the resolution
is no larger than the window. Stochastic depth (``DropPath``, rate rising to 0.1) on both
residual branches; a final ``LayerNorm``, average pooling over the tokens and a linear
head; ``trunc_normal_(std=0.02)`` init. Cross-entropy with label smoothing 0.1; AdamW (lr
2e-3, weight decay 0.05, none on 1-D parameters, biases and the relative position bias
tables, as ``set_weight_decay`` does) with ``LambdaLR`` stepped per iteration (linear
warm-up over the first epoch, then cosine decay), gradient clipping at 5.0, 8 epochs of 75
batches of 64. ``main()`` with argparse; ``train_one_epoch()`` and ``validate()``
(``model.eval()`` under ``torch.no_grad()``) print loss and top-1 accuracy every epoch; the
last line is the held-out accuracy against chance (1/8).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/swin_window_attention.py
    nndoctor check examples/wild/swin_window_attention.py
"""

import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

CLASSES = ("disc", "ring", "frame", "cross", "h-stripes", "v-stripes", "checker", "dots")


# -----------------------------------------------------------------------------
# data


def make_images(n, rng, size=32):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, len(CLASSES), n)
    for i, label in enumerate(labels):
        r = rng.uniform(5.5, 11)
        cy, cx = rng.uniform(r, size - r, 2)
        dy, dx = yy - cy, xx - cx
        box = (np.abs(dy) < r) & (np.abs(dx) < r)
        period = rng.uniform(3.0, 5.0)
        name = CLASSES[label]
        if name == "disc":
            mask = dy**2 + dx**2 < r**2
        elif name == "ring":
            mask = (dy**2 + dx**2 < r**2) & (dy**2 + dx**2 > (0.55 * r) ** 2)
        elif name == "frame":
            mask = box & ((np.abs(dy) > 0.6 * r) | (np.abs(dx) > 0.6 * r))
        elif name == "cross":
            mask = box & ((np.abs(dy - dx) < 0.3 * r) | (np.abs(dy + dx) < 0.3 * r))
        elif name == "h-stripes":
            mask = box & (np.floor((dy + r) / period) % 2 == 0)
        elif name == "v-stripes":
            mask = box & (np.floor((dx + r) / period) % 2 == 0)
        elif name == "checker":
            mask = box & ((np.floor((dy + r) / period) + np.floor((dx + r) / period)) % 2 == 0)
        else:
            fy, fx = (dy + r) % period - period / 2, (dx + r) % period - period / 2
            mask = box & (fy**2 + fx**2 < (0.3 * period) ** 2)
        background, colour = rng.uniform(0, 110, 3), rng.uniform(140, 255, 3)
        img = np.where(mask[..., None], colour, background) + rng.normal(0, 10, (size, size, 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return images, labels


class ShapesDataset(Dataset):
    def __init__(self, images, labels, mean, std, train):
        self.images = images
        self.labels = labels
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.train = train

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        img = torch.from_numpy(self.images[idx]).permute(2, 0, 1).float() / 255.0
        if self.train and torch.rand(1).item() < 0.5:
            img = img.flip(-1)
        img = (img - self.mean) / self.std
        return img, int(self.labels[idx])


# -----------------------------------------------------------------------------
# model


def drop_path(x, drop_prob=0.0, training=False):
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    return x * random_tensor / keep_prob


class DropPath(nn.Module):
    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


def window_partition(x, window_size):
    """(B, H, W, C) -> (num_windows*B, window_size, window_size, C)"""
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    windows = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window_size, window_size, C)
    return windows


def window_reverse(windows, window_size, H, W):
    """(num_windows*B, window_size, window_size, C) -> (B, H, W, C)"""
    B = int(windows.shape[0] / (H * W / window_size / window_size))
    x = windows.view(B, H // window_size, W // window_size, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)
    return x


class WindowAttention(nn.Module):
    def __init__(self, dim, window_size, num_heads, qkv_bias=True, attn_drop=0.0, proj_drop=0.0):
        super().__init__()
        self.dim = dim
        self.window_size = window_size  # Wh, Ww
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5

        # parameter table of relative position bias: (2*Wh-1 * 2*Ww-1, nH)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size[0] - 1) * (2 * window_size[1] - 1), num_heads)
        )

        # pair-wise relative position index for each token inside the window
        coords_h = torch.arange(self.window_size[0])
        coords_w = torch.arange(self.window_size[1])
        coords = torch.stack(torch.meshgrid([coords_h, coords_w], indexing="ij"))  # 2, Wh, Ww
        coords_flatten = torch.flatten(coords, 1)  # 2, Wh*Ww
        relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]  # 2, N, N
        relative_coords = relative_coords.permute(1, 2, 0).contiguous()  # N, N, 2
        relative_coords[:, :, 0] += self.window_size[0] - 1  # shift to start from 0
        relative_coords[:, :, 1] += self.window_size[1] - 1
        relative_coords[:, :, 0] *= 2 * self.window_size[1] - 1
        relative_position_index = relative_coords.sum(-1)  # N, N
        self.register_buffer("relative_position_index", relative_position_index)

        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x, mask=None):
        """x: (num_windows*B, N, C); mask: (num_windows, N, N) of 0 / -100, or None"""
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]

        q = q * self.scale
        attn = q @ k.transpose(-2, -1)

        relative_position_bias = self.relative_position_bias_table[
            self.relative_position_index.view(-1)
        ].view(self.window_size[0] * self.window_size[1], self.window_size[0] * self.window_size[1], -1)
        relative_position_bias = relative_position_bias.permute(2, 0, 1).contiguous()  # nH, N, N
        attn = attn + relative_position_bias.unsqueeze(0)

        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, N, N)
        attn = self.softmax(attn)
        attn = self.attn_drop(attn)

        x = (attn @ v).transpose(1, 2).reshape(B_, N, C)
        x = self.proj(x)
        x = self.proj_drop(x)
        return x


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim, input_resolution, num_heads, window_size=4, shift_size=0,
                 mlp_ratio=2.0, drop_path=0.0):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = shift_size
        if min(self.input_resolution) <= self.window_size:
            # if window size is larger than input resolution, we don't partition windows
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        assert 0 <= self.shift_size < self.window_size, "shift_size must in 0-window_size"

        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, (self.window_size, self.window_size), num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

        if self.shift_size > 0:
            # calculate attention mask for SW-MSA
            H, W = self.input_resolution
            img_mask = torch.zeros((1, H, W, 1))  # 1 H W 1
            h_slices = (
                slice(0, -self.window_size),
                slice(-self.window_size, -self.shift_size),
                slice(-self.shift_size, None),
            )
            w_slices = (
                slice(0, -self.window_size),
                slice(-self.window_size, -self.shift_size),
                slice(-self.shift_size, None),
            )
            cnt = 0
            for h in h_slices:
                for w in w_slices:
                    img_mask[:, h, w, :] = cnt
                    cnt += 1
            mask_windows = window_partition(img_mask, self.window_size)  # nW, ws, ws, 1
            mask_windows = mask_windows.view(-1, self.window_size * self.window_size)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)
        else:
            attn_mask = None
        self.register_buffer("attn_mask", attn_mask)

    def forward(self, x):
        H, W = self.input_resolution
        B, L, C = x.shape
        assert L == H * W, "input feature has wrong size"

        shortcut = x
        x = self.norm1(x)
        x = x.view(B, H, W, C)

        # cyclic shift
        if self.shift_size > 0:
            shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        else:
            shifted_x = x

        # partition windows
        x_windows = window_partition(shifted_x, self.window_size)  # nW*B, ws, ws, C
        x_windows = x_windows.view(-1, self.window_size * self.window_size, C)

        # W-MSA/SW-MSA
        attn_windows = self.attn(x_windows, mask=self.attn_mask)  # nW*B, ws*ws, C

        # merge windows
        attn_windows = attn_windows.view(-1, self.window_size, self.window_size, C)
        shifted_x = window_reverse(attn_windows, self.window_size, H, W)  # B H' W' C

        # reverse cyclic shift
        if self.shift_size > 0:
            x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        else:
            x = shifted_x
        x = x.view(B, H * W, C)

        # FFN
        x = shortcut + self.drop_path(x)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class PatchMerging(nn.Module):
    def __init__(self, input_resolution, dim):
        super().__init__()
        self.input_resolution = input_resolution
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        H, W = self.input_resolution
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        x0 = x[:, 0::2, 0::2, :]  # B H/2 W/2 C
        x1 = x[:, 1::2, 0::2, :]
        x2 = x[:, 0::2, 1::2, :]
        x3 = x[:, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1)  # B H/2 W/2 4*C
        x = x.view(B, -1, 4 * C)
        x = self.norm(x)
        return self.reduction(x)


class BasicLayer(nn.Module):
    def __init__(self, dim, input_resolution, depth, num_heads, window_size, mlp_ratio,
                 drop_path, downsample=None):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(
                dim=dim,
                input_resolution=input_resolution,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if (i % 2 == 0) else window_size // 2,
                mlp_ratio=mlp_ratio,
                drop_path=drop_path[i],
            )
            for i in range(depth)
        ])
        self.downsample = downsample(input_resolution, dim=dim) if downsample is not None else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size=32, patch_size=4, in_chans=3, embed_dim=32):
        super().__init__()
        self.patches_resolution = [img_size // patch_size, img_size // patch_size]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)  # B Ph*Pw C
        return self.norm(x)


class SwinTransformer(nn.Module):
    def __init__(self, img_size=32, patch_size=4, in_chans=3, num_classes=8, embed_dim=32,
                 depths=(2, 2), num_heads=(2, 4), window_size=4, mlp_ratio=2.0,
                 drop_path_rate=0.1):
        super().__init__()
        self.num_layers = len(depths)
        self.num_features = int(embed_dim * 2 ** (self.num_layers - 1))
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        patches_resolution = self.patch_embed.patches_resolution

        # stochastic depth decay rule
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, sum(depths))]
        self.layers = nn.ModuleList()
        for i_layer in range(self.num_layers):
            layer = BasicLayer(
                dim=int(embed_dim * 2**i_layer),
                input_resolution=(
                    patches_resolution[0] // (2**i_layer),
                    patches_resolution[1] // (2**i_layer),
                ),
                depth=depths[i_layer],
                num_heads=num_heads[i_layer],
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                drop_path=dpr[sum(depths[:i_layer]) : sum(depths[: i_layer + 1])],
                downsample=PatchMerging if (i_layer < self.num_layers - 1) else None,
            )
            self.layers.append(layer)

        self.norm = nn.LayerNorm(self.num_features)
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(self.num_features, num_classes)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def no_weight_decay_keywords(self):
        return {"relative_position_bias_table"}

    def forward_features(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)  # B L C
        x = self.avgpool(x.transpose(1, 2))  # B C 1
        return torch.flatten(x, 1)

    def forward(self, x):
        return self.head(self.forward_features(x))


# -----------------------------------------------------------------------------
# training


def set_weight_decay(model, skip_keywords=()):
    has_decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue  # frozen weights
        if len(param.shape) == 1 or name.endswith(".bias") or any(k in name for k in skip_keywords):
            no_decay.append(param)
        else:
            has_decay.append(param)
    return [{"params": has_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_one_epoch(model, criterion, data_loader, optimizer, epoch, lr_scheduler, clip_grad):
    model.train()
    num_steps = len(data_loader)
    start = time.time()
    loss_sum, correct, seen = 0.0, 0, 0
    for samples, targets in data_loader:
        outputs = model(samples)
        loss = criterion(outputs, targets)
        optimizer.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        lr_scheduler.step()

        loss_sum += loss.item() * targets.size(0)
        correct += (outputs.argmax(1) == targets).sum().item()
        seen += targets.size(0)
    lr = optimizer.param_groups[0]["lr"]
    print(
        f"Train: [{epoch}]  steps {num_steps}  lr {lr:.6f}  loss {loss_sum / seen:.4f}  "
        f"acc@1 {100.0 * correct / seen:.2f}  grad_norm {grad_norm:.3f}  "
        f"time {time.time() - start:.1f}s"
    )


@torch.no_grad()
def validate(model, criterion, data_loader):
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, target in data_loader:
        output = model(images)
        loss_sum += criterion(output, target).item() * target.size(0)
        correct += (output.argmax(1) == target).sum().item()
        seen += target.size(0)
    return loss_sum / seen, 100.0 * correct / seen


def main():
    parser = argparse.ArgumentParser("Swin Transformer training on generated shapes")
    parser.add_argument("--train-size", type=int, default=4800)
    parser.add_argument("--val-size", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--base-lr", type=float, default=2e-3)
    parser.add_argument("--min-lr", type=float, default=2e-5)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--clip-grad", type=float, default=5.0)
    parser.add_argument("--drop-path", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images, labels = make_images(args.train_size + args.val_size, rng)
    train_images, train_labels = images[: args.train_size], labels[: args.train_size]
    val_images, val_labels = images[args.train_size :], labels[args.train_size :]
    mean = train_images.reshape(-1, 3).mean(0) / 255.0
    std = train_images.reshape(-1, 3).std(0) / 255.0
    dataset_train = ShapesDataset(train_images, train_labels, mean, std, train=True)
    dataset_val = ShapesDataset(val_images, val_labels, mean, std, train=False)
    data_loader_train = DataLoader(dataset_train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    data_loader_val = DataLoader(dataset_val, batch_size=200, shuffle=False)

    model = SwinTransformer(num_classes=len(CLASSES), drop_path_rate=args.drop_path)
    n_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"number of params: {n_parameters:,}")

    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    parameters = set_weight_decay(model, model.no_weight_decay_keywords())
    optimizer = torch.optim.AdamW(parameters, lr=args.base_lr, betas=(0.9, 0.999),
                                  weight_decay=args.weight_decay)
    n_iter_per_epoch = len(data_loader_train)
    num_steps = args.epochs * n_iter_per_epoch
    warmup_steps = args.warmup_epochs * n_iter_per_epoch
    min_ratio = args.min_lr / args.base_lr

    def lr_lambda(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, num_steps - warmup_steps)
        return min_ratio + (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

    for epoch in range(args.epochs):
        train_one_epoch(model, criterion, data_loader_train, optimizer, epoch, lr_scheduler,
                        args.clip_grad)
        loss, acc1 = validate(model, criterion, data_loader_val)
        print(f"Test: [{epoch}]  loss {loss:.4f}  acc@1 {acc1:.2f}")

    _, acc1 = validate(model, criterion, data_loader_val)
    print(f"Accuracy of the network on the {len(dataset_val)} test images: {acc1:.1f}% "
          f"(chance {100.0 / len(CLASSES):.1f}%)")


if __name__ == "__main__":
    main()
