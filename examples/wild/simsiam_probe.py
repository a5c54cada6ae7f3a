"""SimSiam self-supervised pre-training on generated shapes, then a linear probe: healthy.

In the manner of the SimSiam reference code (``main_simsiam.py`` with its ``SimSiam``
builder, then ``main_lincls.py``), scaled down to 16x16 grey images generated in code:
one of six shapes (disc, ring, square, plus, triangle, bar) of random size, position
and brightness on a background with a random gradient and noise. The pre-training sees
no labels. Two views of every image are made by ``augment``, written in torch on the
whole batch: a random resized crop and a random horizontal flip through
``F.affine_grid`` / ``F.grid_sample``, brightness and contrast jitter and Gaussian
noise. ``SimSiam`` wraps a small BatchNorm CNN whose ``fc`` is replaced by a 3-layer
projector ending in ``BatchNorm1d(affine=False)`` (the bias before it frozen, as in the
reference), plus a 2-layer bottleneck predictor; its ``forward`` returns ``p1, p2,
z1.detach(), z2.detach()`` and the loss is the symmetric negative cosine similarity
``-(cos(p1, z2).mean() + cos(p2, z1).mean()) / 2`` with ``nn.CosineSimilarity(dim=1)``.
SGD with momentum and weight decay, ``lr = base_lr * batch_size / 256``, a cosine
schedule set per epoch by ``adjust_learning_rate`` with the predictor's lr kept fixed
(``fix_lr``). Prints the loss and the std of the l2-normalised outputs (the collapse
monitor of the paper) per epoch.

Then the linear evaluation: a fresh encoder takes the pre-trained weights, everything
but a new ``fc`` (weights from N(0, 0.01), zero bias) is frozen, the model stays in
``eval()`` so that the BatchNorm statistics do not move, and the ``fc`` is trained on
1,500 labelled images with its own SGD, ``nn.CrossEntropyLoss`` and a cosine schedule;
prints the probe's test accuracy (chance: 1/6). Functions and ``main()`` with argparse.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/simsiam_probe.py
    nndoctor check examples/wild/simsiam_probe.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 6
SIZE = 16


def make_shapes(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    cy = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    cx = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    r = 2.5 + 2.5 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    disc = dist <= r
    ring = (dist <= r) & (dist >= r - 1.5)
    square = cheb <= 0.8 * r
    plus = ((dy.abs() <= 1.0) | (dx.abs() <= 1.0)) & (cheb <= r)
    triangle = (dy <= 0.7 * r) & (dy >= 2 * dx.abs() - r)
    bar = (dy.abs() <= 1.0) & (dx.abs() <= r)
    masks = torch.stack([disc, ring, square, plus, triangle, bar], dim=1)
    shape = masks[torch.arange(n), labels].float()

    angle = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    background = 0.3 * torch.rand(n, 1, 1, generator=g) + 0.02 * (
        torch.cos(angle) * xs + torch.sin(angle) * ys
    )
    brightness = 0.5 + 0.5 * torch.rand(n, 1, 1, generator=g)
    images = background + brightness * shape + 0.05 * torch.randn(n, SIZE, SIZE, generator=g)
    return images.unsqueeze(1), labels


def augment(x: torch.Tensor) -> torch.Tensor:
    """A random resized crop, a horizontal flip, brightness/contrast jitter and noise."""
    n = x.shape[0]
    scale = torch.sqrt(torch.empty(n).uniform_(0.4, 1.0))
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
    shift_x = (1 - scale) * torch.empty(n).uniform_(-1, 1)
    shift_y = (1 - scale) * torch.empty(n).uniform_(-1, 1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 0, 2] = shift_x
    theta[:, 1, 1] = scale
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = torch.empty(n, 1, 1, 1).uniform_(0.6, 1.4)
    brightness = torch.empty(n, 1, 1, 1).uniform_(-0.2, 0.2)
    out = (out - mean) * contrast + mean + brightness
    return out + 0.05 * torch.randn_like(out)


class ConvNet(nn.Module):
    """A small BatchNorm CNN with a torchvision-style ``fc`` head."""

    def __init__(self, num_classes: int = 128, width: int = 32) -> None:
        super().__init__()

        def block(c_in, c_out, stride):
            return [
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.features = nn.Sequential(
            *block(1, width, 1),
            *block(width, width, 1),
            *block(width, 2 * width, 2),  # 8x8
            *block(2 * width, 4 * width, 2),  # 4x4
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


class SimSiam(nn.Module):
    def __init__(self, base_encoder, dim: int = 128, pred_dim: int = 32) -> None:
        super().__init__()
        self.encoder = base_encoder(num_classes=dim)

        prev_dim = self.encoder.fc.weight.shape[1]
        self.encoder.fc = nn.Sequential(
            nn.Linear(prev_dim, prev_dim, bias=False),
            nn.BatchNorm1d(prev_dim),
            nn.ReLU(inplace=True),  # first layer
            nn.Linear(prev_dim, prev_dim, bias=False),
            nn.BatchNorm1d(prev_dim),
            nn.ReLU(inplace=True),  # second layer
            self.encoder.fc,
            nn.BatchNorm1d(dim, affine=False),  # output layer
        )
        self.encoder.fc[6].bias.requires_grad = False  # no bias, it is followed by BN

        self.predictor = nn.Sequential(
            nn.Linear(dim, pred_dim, bias=False),
            nn.BatchNorm1d(pred_dim),
            nn.ReLU(inplace=True),  # hidden layer
            nn.Linear(pred_dim, dim),  # output layer
        )

    def forward(self, x1, x2):
        z1 = self.encoder(x1)
        z2 = self.encoder(x2)
        p1 = self.predictor(z1)
        p2 = self.predictor(z2)
        return p1, p2, z1.detach(), z2.detach()


def adjust_learning_rate(optimizer, init_lr, epoch, epochs):
    """Decay the learning rate with a half-cycle cosine."""
    cur_lr = init_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    for param_group in optimizer.param_groups:
        if param_group.get("fix_lr", False):
            param_group["lr"] = init_lr
        else:
            param_group["lr"] = cur_lr


def pretrain(args, images):
    model = SimSiam(ConvNet, args.dim, args.pred_dim)
    init_lr = args.lr * args.batch_size / 256
    optim_params = [
        {"params": model.encoder.parameters(), "fix_lr": False},
        {"params": model.predictor.parameters(), "fix_lr": True},
    ]
    optimizer = torch.optim.SGD(
        optim_params, init_lr, momentum=args.momentum, weight_decay=args.weight_decay
    )
    criterion = nn.CosineSimilarity(dim=1)

    steps_per_epoch = len(images) // args.batch_size
    for epoch in range(args.epochs):
        adjust_learning_rate(optimizer, init_lr, epoch, args.epochs)
        model.train()
        perm = torch.randperm(len(images))
        total, std = 0.0, 0.0
        for i in range(steps_per_epoch):
            x = images[perm[i * args.batch_size : (i + 1) * args.batch_size]]
            x1, x2 = augment(x), augment(x)

            p1, p2, z1, z2 = model(x1, x2)
            loss = -(criterion(p1, z2).mean() + criterion(p2, z1).mean()) * 0.5

            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

            total += loss.item()
            std += F.normalize(z1, dim=1).std(dim=0).mean().item()
        print(
            f"pretrain epoch {epoch + 1:2d}: loss {total / steps_per_epoch:.4f}, "
            f"output std {std / steps_per_epoch:.4f} (collapse: 0, ideal: {args.dim**-0.5:.4f})"
        )
    return model.encoder.state_dict()


def linear_probe(args, encoder_state, train_x, train_y, test_x, test_y):
    model = ConvNet(num_classes=NUM_CLASSES)
    state = {k: v for k, v in encoder_state.items() if not k.startswith("fc.")}
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert set(missing) == {"fc.weight", "fc.bias"}, missing

    for name, param in model.named_parameters():
        if name not in ("fc.weight", "fc.bias"):
            param.requires_grad = False
    model.fc.weight.data.normal_(mean=0.0, std=0.01)
    model.fc.bias.data.zero_()

    parameters = [p for p in model.parameters() if p.requires_grad]
    assert len(parameters) == 2  # fc.weight, fc.bias
    init_lr = args.probe_lr * args.probe_batch_size / 256
    optimizer = torch.optim.SGD(parameters, init_lr, momentum=0.9, weight_decay=0.0)
    criterion = nn.CrossEntropyLoss()

    for epoch in range(args.probe_epochs):
        adjust_learning_rate(optimizer, init_lr, epoch, args.probe_epochs)
        model.eval()  # frozen features: the BatchNorm statistics must not move
        perm = torch.randperm(len(train_x))
        for i in range(0, len(train_x), args.probe_batch_size):
            idx = perm[i : i + args.probe_batch_size]
            x = train_x[idx]
            x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(3), x)
            loss = criterion(model(x), train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(dim=1) == test_y).float().mean().item()
    print(f"linear probe: last train loss {loss.item():.4f}, test accuracy {accuracy:.3f}")
    return accuracy


def main():
    parser = argparse.ArgumentParser(description="SimSiam pre-training and linear probe")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1, help="base lr for batch size 256")
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--pred-dim", type=int, default=32)
    parser.add_argument("--probe-epochs", type=int, default=20)
    parser.add_argument("--probe-batch-size", type=int, default=128)
    parser.add_argument("--probe-lr", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    unlabelled, _ = make_shapes(4096, g)
    train_x, train_y = make_shapes(1500, g)
    test_x, test_y = make_shapes(1000, g)

    encoder_state = pretrain(args, unlabelled)
    linear_probe(args, encoder_state, train_x, train_y, test_x, test_y)


if __name__ == "__main__":
    main()
