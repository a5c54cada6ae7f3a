"""A small ResNet with mixup on generated CIFAR-like images: healthy.

In the manner of the mixup / ResNet-on-CIFAR training scripts: 3x32x32 colour images of
10 classes (each class an oriented stripe pattern of its own frequency and colour, at a
random phase and contrast, a blob at a random place, colour jitter and strong pixel
noise) are standardised per channel with the training set's mean and std. ``ResNet``
stacks ``BasicBlock``s (two 3x3 convolutions with ``BatchNorm2d`` and a projection
shortcut when the shape changes) in three stages of 16, 32 and 64 channels, global
average pooling and a linear head. Every batch is mixed (``mixup_data``: lam from
Beta(alpha, alpha), a random pairing of the batch) and the loss is ``lam *
criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)`` with
``nn.CrossEntropyLoss(label_smoothing=0.1)``. SGD with Nesterov momentum in two
parameter groups (weight decay on conv/linear weights only, none on BatchNorm parameters
and biases), ``OneCycleLR`` stepped after every batch; ``model.eval()`` for validation;
``DataLoader``s; ``train`` / ``test`` functions and ``main()`` with argparse. Prints the
training loss and the validation accuracy.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/mixup_resnet.py
    nndoctor check examples/wild/mixup_resnet.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

NUM_CLASSES = 10


def make_images(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    world = torch.Generator().manual_seed(1234)  # the same classes for every seed
    colours = 0.3 + 0.6 * torch.rand(NUM_CLASSES, 3, 1, 1, generator=world)
    angles = math.pi * torch.arange(NUM_CLASSES) / NUM_CLASSES
    freqs = 0.35 + 0.25 * torch.rand(NUM_CLASSES, generator=world)
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    a, f = angles[labels].view(n, 1, 1), freqs[labels].view(n, 1, 1)
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    stripes = 0.5 + 0.5 * torch.sin(f * (torch.cos(a) * xs + torch.sin(a) * ys) + phase)
    cy, cx = (8 + 16 * torch.rand(2, n, 1, 1, generator=g)).unbind(0)
    blob = torch.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / 20)
    tint = colours[labels] + 0.25 * torch.randn(n, 3, 1, 1, generator=g)  # colour jitter
    contrast = 0.2 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    images = 0.3 + contrast * tint * stripes.unsqueeze(1) + 0.4 * (1 - tint) * blob.unsqueeze(1)
    images = images + 0.5 * torch.randn(n, 3, 32, 32, generator=g)
    return images.clamp(0, 1), labels


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, num_blocks: list[int], num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def mixup_data(x, y, alpha=1.0):
    """Returns mixed inputs, pairs of targets, and lambda."""
    lam = np.random.beta(alpha, alpha) if alpha > 0 else 1.0
    batch_size = x.size(0)
    index = torch.randperm(batch_size)
    mixed_x = lam * x + (1 - lam) * x[index, :]
    y_a, y_b = y, y[index]
    return mixed_x, y_a, y_b, lam


def mixup_criterion(criterion, pred, y_a, y_b, lam):
    return lam * criterion(pred, y_a) + (1 - lam) * criterion(pred, y_b)


def train(model, loader, criterion, optimizer, scheduler, alpha, epoch):
    model.train()
    train_loss = 0.0
    for inputs, targets in loader:
        inputs, targets_a, targets_b, lam = mixup_data(inputs, targets, alpha)
        outputs = model(inputs)
        loss = mixup_criterion(criterion, outputs, targets_a, targets_b, lam)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        train_loss += loss.item()
    print(
        f"epoch {epoch}: train loss {train_loss / len(loader):.3f}, lr {scheduler.get_last_lr()[0]:.4f}"
    )


def test(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, targets in loader:
            correct += (model(inputs).argmax(1) == targets).sum().item()
            total += targets.size(0)
    print(f"         val acc {100.0 * correct / total:.1f}%")


def main():
    parser = argparse.ArgumentParser(description="mixup ResNet on generated CIFAR-like images")
    parser.add_argument("--lr", default=0.1, type=float, help="peak learning rate")
    parser.add_argument("--alpha", default=1.0, type=float, help="mixup interpolation strength")
    parser.add_argument("--decay", default=5e-4, type=float, help="weight decay")
    parser.add_argument("--epochs", default=8, type=int)
    parser.add_argument("--batch-size", default=64, type=int)
    parser.add_argument("--seed", default=0, type=int)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    g = torch.Generator().manual_seed(args.seed)
    train_x, train_y = make_images(3000, g)
    val_x, val_y = make_images(600, g)
    mean = train_x.mean(dim=(0, 2, 3), keepdim=True)
    std = train_x.std(dim=(0, 2, 3), keepdim=True)
    train_x, val_x = (train_x - mean) / std, (val_x - mean) / std
    trainloader = DataLoader(
        TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True
    )
    valloader = DataLoader(TensorDataset(val_x, val_y), batch_size=200)

    model = ResNet([1, 1, 1])
    decay, no_decay = [], []
    for param in model.parameters():
        (no_decay if param.ndim <= 1 else decay).append(param)
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=len(trainloader)
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)

    for epoch in range(1, args.epochs + 1):
        train(model, trainloader, criterion, optimizer, scheduler, args.alpha, epoch)
        test(model, valloader)


if __name__ == "__main__":
    main()
