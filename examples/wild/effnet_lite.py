"""A scaled-down EfficientNet with RMSprop, warm-up + cosine and an EMA of the weights: healthy.

In the manner of the timm ``efficientnet`` models and its ``train.py`` recipe, scaled down
to 32x32 pictures (a "lite" network in size; unlike the EfficientNet-Lite variants it
keeps squeeze-and-excitation and SiLU): 8 classes of generated 3x32x32 8-bit images,
textures (horizontal, vertical or diagonal stripes, a checkerboard, rings, a grid of
dots) and shapes (a disc, a cross) in a random foreground and background colour with
random frequency, phase, position and size, under pixel noise, so that neither colour
nor brightness tells the class. Images are converted to float and standardised per
channel with the training set's mean and standard deviation; random horizontal flips
in training. ``EfficientNet`` (custom ``nn.Module``s after timm's): a 3x3 stem conv +
BatchNorm + SiLU, a ``DepthwiseSeparableConv`` block and ``InvertedResidual`` (MBConv)
blocks with a 1x1 expansion (ratio 4), a 3x3 depthwise conv, ``SqueezeExcite`` (reduce to
a quarter of the block's input channels, SiLU, sigmoid gate), a 1x1 projection with
BatchNorm and no activation, and a residual connection through ``drop_path``
(stochastic depth, rate rising linearly to 0.1 over the blocks) wherever the shape
allows; a 1x1 head conv, global average pooling, dropout 0.2 and a linear classifier;
weights initialised as timm's ``_init_weight_goog``. ``nn.CrossEntropyLoss`` with label
smoothing 0.1; ``torch.optim.RMSprop`` set up the timm way (alpha 0.9, eps 1e-3, momentum
0.9, weight decay 1e-5); one epoch of linear warm-up then cosine decay by ``LambdaLR``
stepped after every optimizer step; ``ModelEma``, a ``deepcopy`` of the model whose
state (weights and BatchNorm statistics) is moved toward the model's after every step
(decay 0.998 with timm's warm-up of the decay), is what validation measures. ``DataLoader``
over a ``TensorDataset`` with shuffling; ``main()`` with argparse. Prints the training
loss, the learning rate and the validation accuracy of the model and of its EMA each
epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/effnet_lite.py
    nndoctor check examples/wild/effnet_lite.py
"""

import argparse
import math
from copy import deepcopy

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

CLASSES = ("h_stripes", "v_stripes", "d_stripes", "checker", "rings", "dots", "disc", "cross")


def make_images(n, g, size=32):
    """8-bit RGB images (n, 3, size, size) and their class ids."""
    labels = torch.randint(0, len(CLASSES), (n,), generator=g)

    def u(lo, hi):
        return (lo + (hi - lo) * torch.rand(n, generator=g))[:, None, None]

    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    freq, phase, phase2 = u(0.6, 1.1), u(0, 2 * math.pi), u(0, 2 * math.pi)
    cx, cy, radius = u(10, 22), u(10, 22), u(5, 10)
    r = ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt()
    patterns = torch.stack(
        [
            torch.sin(freq * ys + phase),
            torch.sin(freq * xs + phase),
            torch.sin(freq * 0.7 * (xs + ys) + phase),
            torch.sin(freq * xs + phase) * torch.sin(freq * ys + phase2),
            torch.sin(freq * r + phase),
            torch.sin(1.3 * freq * xs + phase) * torch.sin(1.3 * freq * ys + phase2) - 0.5,
            radius - r,
            torch.minimum(
                torch.maximum((xs - cx).abs(), (ys - cy).abs()) - radius,
                torch.minimum((xs - cx).abs(), (ys - cy).abs()) - 1.8,
            ).neg(),
        ],
        1,
    )
    mask = (patterns[torch.arange(n), labels] * 3).clamp(-0.5, 0.5) + 0.5
    bg = torch.rand(n, 3, generator=g)
    fg = (bg + 0.3 + 0.4 * torch.rand(n, 3, generator=g)) % 1.0
    images = bg[:, :, None, None] + (fg - bg)[:, :, None, None] * mask[:, None]
    images = images + 0.15 * torch.randn(n, 3, size, size, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


def drop_path(x, drop_prob: float = 0.0, training: bool = False):
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    return x * random_tensor.div_(keep_prob)


class SqueezeExcite(nn.Module):
    def __init__(self, in_chs, rd_channels):
        super().__init__()
        self.conv_reduce = nn.Conv2d(in_chs, rd_channels, 1, bias=True)
        self.act1 = nn.SiLU(inplace=True)
        self.conv_expand = nn.Conv2d(rd_channels, in_chs, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_se = x.mean((2, 3), keepdim=True)
        x_se = self.conv_expand(self.act1(self.conv_reduce(x_se)))
        return x * self.gate(x_se)


class DepthwiseSeparableConv(nn.Module):
    def __init__(self, in_chs, out_chs, stride=1, se_ratio=0.25, drop_path_rate=0.0):
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path_rate = drop_path_rate
        self.conv_dw = nn.Conv2d(in_chs, in_chs, 3, stride, 1, groups=in_chs, bias=False)
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = nn.SiLU(inplace=True)
        self.se = SqueezeExcite(in_chs, max(1, int(in_chs * se_ratio)))
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv_dw(x)))
        x = self.se(x)
        x = self.bn2(self.conv_pw(x))
        if self.has_skip:
            x = drop_path(x, self.drop_path_rate, self.training) + shortcut
        return x


class InvertedResidual(nn.Module):
    def __init__(self, in_chs, out_chs, stride=1, exp_ratio=4.0, se_ratio=0.25, drop_path_rate=0.0):
        super().__init__()
        mid_chs = int(in_chs * exp_ratio)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path_rate = drop_path_rate
        self.conv_pw = nn.Conv2d(in_chs, mid_chs, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_chs)
        self.act1 = nn.SiLU(inplace=True)
        self.conv_dw = nn.Conv2d(mid_chs, mid_chs, 3, stride, 1, groups=mid_chs, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.act2 = nn.SiLU(inplace=True)
        self.se = SqueezeExcite(mid_chs, max(1, int(in_chs * se_ratio)))
        self.conv_pwl = nn.Conv2d(mid_chs, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        x = self.se(x)
        x = self.bn3(self.conv_pwl(x))
        if self.has_skip:
            x = drop_path(x, self.drop_path_rate, self.training) + shortcut
        return x


# (block type, repeats, stride of the first, output channels) per stage
ARCH = (("ds", 1, 1, 16), ("ir", 2, 2, 24), ("ir", 2, 2, 40), ("ir", 2, 1, 64))


class EfficientNet(nn.Module):
    def __init__(
        self, num_classes, stem_chs=24, num_features=256, drop_rate=0.2, drop_path_rate=0.1
    ):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, stem_chs, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        self.act1 = nn.SiLU(inplace=True)
        total = sum(repeats for _, repeats, _, _ in ARCH)
        blocks, in_chs, idx = [], stem_chs, 0
        for kind, repeats, stride, out_chs in ARCH:
            for i in range(repeats):
                dpr = drop_path_rate * idx / (total - 1)
                s = stride if i == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparableConv(in_chs, out_chs, s, drop_path_rate=dpr))
                else:
                    blocks.append(InvertedResidual(in_chs, out_chs, s, drop_path_rate=dpr))
                in_chs, idx = out_chs, idx + 1
        self.blocks = nn.Sequential(*blocks)
        self.conv_head = nn.Conv2d(in_chs, num_features, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(num_features)
        self.act2 = nn.SiLU(inplace=True)
        self.drop_rate = drop_rate
        self.classifier = nn.Linear(num_features, num_classes)
        for m in self.modules():
            _init_weight_goog(m)

    def forward_features(self, x):
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward(self, x):
        x = self.forward_features(x).mean((2, 3))
        x = nn.functional.dropout(x, p=self.drop_rate, training=self.training)
        return self.classifier(x)


def _init_weight_goog(m):
    if isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Linear):
        init_range = 1.0 / math.sqrt(m.weight.size(0))
        nn.init.uniform_(m.weight, -init_range, init_range)
        nn.init.zeros_(m.bias)


class ModelEma:
    """Exponential moving average of a model's state, kept in a separate copy."""

    def __init__(self, model, decay=0.998):
        self.module = deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model):
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_v, model_v in zip(
            self.module.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_v.dtype.is_floating_point:
                ema_v.mul_(decay).add_(model_v, alpha=1 - decay)
            else:
                ema_v.copy_(model_v)


@torch.no_grad()
def accuracy(model, loader):
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, targets in loader:
        correct += (model(images).argmax(dim=1) == targets).sum().item()
        total += len(targets)
    model.train(was_training)
    return correct / total


def main():
    parser = argparse.ArgumentParser(description="scaled-down EfficientNet, timm-style recipe")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--model-ema-decay", type=float, default=0.998)
    parser.add_argument("--n-train", type=int, default=3200)
    parser.add_argument("--n-val", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    images, labels = make_images(args.n_train + args.n_val, g)
    x = images.float() / 255
    x_train, x_val = x[: args.n_train], x[args.n_train :]
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    y_train, y_val = labels[: args.n_train], labels[args.n_train :]
    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=200)

    model = EfficientNet(len(CLASSES))
    model_ema = ModelEma(model, decay=args.model_ema_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.smoothing)
    optimizer = torch.optim.RMSprop(
        model.parameters(),
        lr=args.lr,
        alpha=0.9,
        eps=1e-3,
        momentum=0.9,
        weight_decay=args.weight_decay,
    )
    steps_per_epoch = len(train_loader)
    warmup_steps = args.warmup_epochs * steps_per_epoch
    total_steps = args.epochs * steps_per_epoch

    def lr_lambda(step):
        if step < warmup_steps:
            return step / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

    for epoch in range(args.epochs):
        model.train()
        running, batches = 0.0, 0
        for images, targets in train_loader:
            flip = torch.rand(len(images)) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            output = model(images)
            loss = criterion(output, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            lr_scheduler.step()
            model_ema.update(model)
            running, batches = running + loss.item(), batches + 1
        lr = optimizer.param_groups[0]["lr"]
        acc, ema_acc = accuracy(model, val_loader), accuracy(model_ema.module, val_loader)
        print(
            f"epoch {epoch + 1}: loss {running / batches:.4f}  lr {lr:.2e}  "
            f"val acc {acc:.3f}  val acc (EMA) {ema_acc:.3f}"
        )


if __name__ == "__main__":
    main()
