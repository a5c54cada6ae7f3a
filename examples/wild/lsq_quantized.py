"""Quantization-aware training with Learned Step Size Quantization (LSQ) at 4 bits: healthy.

In the manner of the LSQ paper (Esser et al. 2020, "Learned Step Size Quantization") and its
common PyTorch implementations (zhutmost's ``lsq-net``, hustzxd's ``LSQuantization``): the
data are 16x16 grey-level glyphs of 10 kinds (disc, ring, square, frame, plus, cross,
horizontal bar, vertical bar, triangle, diamond) drawn at a random position, size and
contrast on a random background with pixel noise, generated in the script (6,000 for
training, 2,000 for testing) and standardised with the training set's mean and standard
deviation, served by ``DataLoader`` s over ``TensorDataset`` s.

The float model is a small VGG-like ``nn.Sequential`` of four ``Conv2d`` (no bias) +
``BatchNorm2d`` + ``ReLU`` stages (16, 32, 32, 64 channels, two with stride 2), global
average pooling and a ``Linear`` head. It is trained first for a few epochs with SGD
(momentum 0.9, Nesterov, weight decay 5e-4) and a cosine schedule. ``quantize_model``
then deep-copies it and replaces every ``Conv2d`` / ``Linear`` by a ``QConv2d`` /
``QLinear`` built from it (the float weights copied in): each fake-quantizes its weight and
its input activation with an ``LsqQuantizer`` holding one learned step size ``s``. The
quantizer divides by the step, clamps to [-Qn, Qp], rounds through the straight-through
estimator ``(x.round() - x).detach() + x`` and multiplies back; the step's gradient is scaled
by ``1 / sqrt(N * Qp)`` through ``grad_scale`` (the same detach trick). Weights are signed
(Qn = 8, Qp = 7 at 4 bits), activations after a ReLU unsigned (0..15); as in the paper the
first and last layers are kept at 8 bits (the first layer's input, the standardised image,
is signed). Each step size is initialised from the first training batch that reaches it,
``2 * mean|x| / sqrt(Qp)`` (an ``init_state`` buffer marks it done). The quantized model is
fine-tuned with SGD (momentum 0.9, lr a tenth of the float one, no weight decay on the
step sizes) and its own cosine schedule, BatchNorm kept in float. ``main()`` with argparse;
``train_one_epoch()`` and ``evaluate()`` (``model.eval()`` under ``torch.no_grad()``) print
the loss and accuracies every epoch; the last lines give the float test accuracy, the
accuracy of the 4-bit model straight after conversion (post-training quantization) and
after LSQ fine-tuning, against chance (10%).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/lsq_quantized.py
    nndoctor check examples/wild/lsq_quantized.py
"""

import argparse
import copy
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

CLASSES = ("disc", "ring", "square", "frame", "plus", "cross", "h-bar", "v-bar", "triangle",
           "diamond")


# -----------------------------------------------------------------------------
# data


def make_glyphs(n, rng, size=16):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, 1, size, size), dtype=np.float32)
    labels = rng.integers(0, len(CLASSES), n)
    for i, label in enumerate(labels):
        r = rng.uniform(3.5, 6.0)
        cy, cx = rng.uniform(r, size - 1 - r, 2)
        dy, dx = yy - cy, xx - cx
        w = rng.uniform(0.9, 1.5)  # stroke width
        name = CLASSES[label]
        if name == "disc":
            mask = dy**2 + dx**2 < r**2
        elif name == "ring":
            d = np.sqrt(dy**2 + dx**2)
            mask = np.abs(d - 0.75 * r) < w
        elif name == "square":
            mask = (np.abs(dy) < 0.8 * r) & (np.abs(dx) < 0.8 * r)
        elif name == "frame":
            m = np.maximum(np.abs(dy), np.abs(dx))
            mask = np.abs(m - 0.7 * r) < w
        elif name == "plus":
            mask = ((np.abs(dy) < w) & (np.abs(dx) < r)) | ((np.abs(dx) < w) & (np.abs(dy) < r))
        elif name == "cross":
            box = (np.abs(dy) < 0.8 * r) & (np.abs(dx) < 0.8 * r)
            mask = box & ((np.abs(dy - dx) < 1.2 * w) | (np.abs(dy + dx) < 1.2 * w))
        elif name == "h-bar":
            mask = (np.abs(dy) < 1.2 * w) & (np.abs(dx) < r)
        elif name == "v-bar":
            mask = (np.abs(dx) < 1.2 * w) & (np.abs(dy) < r)
        elif name == "triangle":
            mask = (dy < 0.7 * r) & (dy > -r + 2 * np.abs(dx))
        else:
            mask = np.abs(dy) + np.abs(dx) < r
        background = rng.uniform(0.0, 0.4)
        contrast = rng.uniform(0.4, 1.0) * rng.choice([-1.0, 1.0])
        img = background + contrast * mask + rng.normal(0, 0.15, (size, size))
        images[i, 0] = img
    return images, labels


# -----------------------------------------------------------------------------
# float model


def make_model(num_classes=10):
    def stage(c_in, c_out, stride):
        return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *stage(1, 16, 1),
        *stage(16, 32, 2),
        *stage(32, 32, 1),
        *stage(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


# -----------------------------------------------------------------------------
# LSQ


def grad_scale(x, scale):
    y_out = x
    y_grad = x * scale
    return (y_out - y_grad).detach() + y_grad


def round_pass(x):
    return (x.round() - x).detach() + x


class LsqQuantizer(nn.Module):
    def __init__(self, bits, all_positive=False):
        super().__init__()
        if all_positive:
            self.Qn, self.Qp = 0, 2**bits - 1
        else:
            self.Qn, self.Qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
        self.s = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("init_state", torch.zeros(1))

    def forward(self, x):
        if self.training and self.init_state == 0:
            self.s.data.copy_(2 * x.detach().abs().mean() / math.sqrt(self.Qp))
            self.init_state.fill_(1)
        g = 1.0 / math.sqrt(x.numel() * self.Qp)
        s = grad_scale(self.s, g)
        x = torch.clamp(x / s, -self.Qn, self.Qp)
        x = round_pass(x)
        return x * s

    def extra_repr(self):
        return f"Qn={self.Qn}, Qp={self.Qp}"


class _QuantMixin:
    """Copies the float layer's parameters in and adds the weight and activation quantizers."""

    def _from_float(self, m, w_bits, a_bits, a_signed):
        self.weight = nn.Parameter(m.weight.detach().clone())
        if m.bias is not None:
            self.bias = nn.Parameter(m.bias.detach().clone())
        self.quan_w_fn = LsqQuantizer(w_bits, all_positive=False)
        self.quan_a_fn = LsqQuantizer(a_bits, all_positive=not a_signed)


class QConv2d(_QuantMixin, nn.Conv2d):
    def __init__(self, m: nn.Conv2d, w_bits=4, a_bits=4, a_signed=False):
        super().__init__(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                         padding=m.padding, dilation=m.dilation, groups=m.groups,
                         bias=m.bias is not None)
        self._from_float(m, w_bits, a_bits, a_signed)

    def forward(self, x):
        quantized_weight = self.quan_w_fn(self.weight)
        quantized_act = self.quan_a_fn(x)
        return self._conv_forward(quantized_act, quantized_weight, self.bias)


class QLinear(_QuantMixin, nn.Linear):
    def __init__(self, m: nn.Linear, w_bits=4, a_bits=4, a_signed=False):
        super().__init__(m.in_features, m.out_features, bias=m.bias is not None)
        self._from_float(m, w_bits, a_bits, a_signed)

    def forward(self, x):
        quantized_weight = self.quan_w_fn(self.weight)
        quantized_act = self.quan_a_fn(x)
        return F.linear(quantized_act, quantized_weight, self.bias)


def quantize_model(model, bits=4, first_last_bits=8):
    """Replace every Conv2d / Linear of a trained float model by its LSQ counterpart."""
    qmodel = copy.deepcopy(model)
    names = [n for n, m in qmodel.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for i, name in enumerate(names):
        m = qmodel.get_submodule(name)
        edge = i == 0 or i == len(names) - 1
        b = first_last_bits if edge else bits
        kind = QConv2d if isinstance(m, nn.Conv2d) else QLinear
        qmodel.set_submodule(name, kind(m, w_bits=b, a_bits=b, a_signed=i == 0))
    return qmodel


# -----------------------------------------------------------------------------
# training


def train_one_epoch(model, criterion, loader, optimizer, scheduler):
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for images, target in loader:
        output = model(images)
        loss = criterion(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item() * target.size(0)
        correct += (output.argmax(1) == target).sum().item()
        seen += target.size(0)
    return loss_sum / seen, 100.0 * correct / seen


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    correct, seen = 0, 0
    for images, target in loader:
        correct += (model(images).argmax(1) == target).sum().item()
        seen += target.size(0)
    return 100.0 * correct / seen


def split_step_sizes(model, weight_decay):
    """No weight decay on the learned step sizes."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".s") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def main():
    parser = argparse.ArgumentParser(description="LSQ 4-bit quantization-aware training")
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5, help="float training epochs")
    parser.add_argument("--qat-epochs", type=int, default=4, help="LSQ fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--qat-lr", type=float, default=0.005)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--bits", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images, labels = make_glyphs(args.n_train + args.n_test, rng)
    train_x, test_x = images[: args.n_train], images[args.n_train :]
    mean, std = train_x.mean(), train_x.std()
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    train_y, test_y = labels[: args.n_train], labels[args.n_train :]
    train_set = TensorDataset(torch.from_numpy(train_x), torch.from_numpy(train_y))
    test_set = TensorDataset(torch.from_numpy(test_x), torch.from_numpy(test_y))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    test_loader = DataLoader(test_set, batch_size=500)

    criterion = nn.CrossEntropyLoss()

    # 1) full-precision training
    model = make_model(len(CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                nesterov=True, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.epochs * len(train_loader))
    for epoch in range(args.epochs):
        start = time.time()
        loss, train_acc = train_one_epoch(model, criterion, train_loader, optimizer, scheduler)
        test_acc = evaluate(model, test_loader)
        print(f"[fp32] epoch {epoch}  loss {loss:.4f}  train {train_acc:.2f}%  "
              f"test {test_acc:.2f}%  ({time.time() - start:.1f}s)")
    float_acc = evaluate(model, test_loader)

    # 2) convert to LSQ and fine-tune
    qmodel = quantize_model(model, bits=args.bits)
    with torch.no_grad():  # one training-mode pass initialises the activation step sizes
        qmodel.train()
        qmodel(next(iter(train_loader))[0])
    ptq_acc = evaluate(qmodel, test_loader)
    print(f"[w{args.bits}a{args.bits}] after conversion: test {ptq_acc:.2f}%")

    optimizer = torch.optim.SGD(split_step_sizes(qmodel, args.weight_decay), lr=args.qat_lr,
                                momentum=args.momentum, nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.qat_epochs * len(train_loader))
    for epoch in range(args.qat_epochs):
        start = time.time()
        loss, train_acc = train_one_epoch(qmodel, criterion, train_loader, optimizer, scheduler)
        test_acc = evaluate(qmodel, test_loader)
        steps = [f"{m.s.item():.3f}" for m in qmodel.modules() if isinstance(m, LsqQuantizer)]
        print(f"[w{args.bits}a{args.bits}] epoch {epoch}  loss {loss:.4f}  train {train_acc:.2f}%  "
              f"test {test_acc:.2f}%  steps {' '.join(steps[:4])} ...  ({time.time() - start:.1f}s)")
    q_acc = evaluate(qmodel, test_loader)

    print(f"float accuracy {float_acc:.2f}%, {args.bits}-bit accuracy {q_acc:.2f}% "
          f"(post-training {ptq_acc:.2f}%, chance {100.0 / len(CLASSES):.1f}%)")


if __name__ == "__main__":
    main()
