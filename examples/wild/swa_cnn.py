"""Stochastic weight averaging of a small BatchNorm CNN with torch.optim.swa_utils: healthy.

In the manner of the PyTorch SWA recipe (the ``torch.optim.swa_utils`` documentation and
the blog post that introduced it): the images are generated 3x16x16 pictures of eight
shapes (disc, ring, square, frame, plus, cross, triangle, bar) of random size, position
and colour on a noisy background with a random brightness gradient, 4,000 for training
and 2,000 for testing, standardised per channel with the training set's statistics;
10% of the training labels are replaced by random ones, the kind of noise that weight
averaging smooths over. ``ConvNet`` is an ``nn.Module`` of three Conv-BatchNorm-ReLU
stages with max pooling, global average pooling and a linear classifier, initialised
as torchvision's models are (Kaiming normal convolutions, BatchNorm at weight 1 and
bias 0, a classifier from N(0, 0.01)). A shuffled
``DataLoader`` over a ``TensorDataset`` with random horizontal flips applied to each
batch, ``nn.CrossEntropyLoss``, SGD with momentum 0.9 and weight decay 5e-4.

The averaged model is built at the start, ``swa_model = AveragedModel(model)``. Until
``swa_start`` (epoch 12 of 18) a ``CosineAnnealingLR`` over those epochs is stepped once
per epoch; from then on ``swa_model.update_parameters(model)`` is called at the end of
every epoch and ``SWALR`` (``swa_lr=0.02``, two annealing epochs) takes over the learning
rate. After training, ``torch.optim.swa_utils.update_bn(train_loader, swa_model)``
recomputes the BatchNorm statistics of the averaged weights with one pass over the
training data. Top-level functions and ``main()`` with argparse; prints the training loss,
the learning rate and the test accuracy of the model every 3 epochs, then the final test
accuracy of the model and of the SWA model.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/swa_cnn.py
    nndoctor check examples/wild/swa_cnn.py
"""

import argparse

import torch
import torch.nn as nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES, SIZE = 8, 16


def make_shapes(n, g):
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    cy = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    cx = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    r = 3.0 + 2.0 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    masks = torch.stack(
        [
            dist <= r,  # disc
            (dist <= r) & (dist >= r - 1.5),  # ring
            cheb <= 0.8 * r,  # square
            (cheb <= 0.8 * r) & (cheb >= 0.8 * r - 1.2),  # frame
            ((dy.abs() <= 1.0) | (dx.abs() <= 1.0)) & (cheb <= r),  # plus
            (((dy - dx).abs() <= 1.2) | ((dy + dx).abs() <= 1.2)) & (cheb <= r),  # cross
            (dy <= 0.7 * r) & (dy >= 2 * dx.abs() - r),  # triangle
            (dy.abs() <= 1.0) & (dx.abs() <= r),  # bar
        ],
        dim=1,
    )
    shape = masks[torch.arange(n), labels].float()[:, None]
    colour = 0.3 + 0.7 * torch.rand(n, 3, 1, 1, generator=g)
    background = 0.3 * torch.rand(n, 3, 1, 1, generator=g)
    slope = 0.02 * torch.randn(n, 1, 2, generator=g)
    gradient = (slope[..., :1] * (ys - 8) + slope[..., 1:] * (xs - 8))[:, None]
    noise = 0.15 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    images = shape * colour + (1 - shape) * background + gradient + noise
    return images, labels


class ConvNet(nn.Module):
    def __init__(self, n_classes=N_CLASSES):
        super().__init__()

        def stage(c_in, c_out):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            stage(3, 32),
            nn.MaxPool2d(2),
            stage(32, 64),
            nn.MaxPool2d(2),
            stage(64, 64),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, n_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def train_epoch(model, loader, criterion, optimizer):
    model.train()
    total, n = 0.0, 0
    for images, labels in loader:
        flip = torch.rand(images.shape[0]) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
        total += loss.item() * images.shape[0]
        n += images.shape[0]
    return total / n


@torch.no_grad()
def accuracy(model, loader):
    model.eval()
    correct = n = 0
    for images, labels in loader:
        correct += (model(images).argmax(dim=1) == labels).sum().item()
        n += labels.numel()
    return correct / n


def main():
    parser = argparse.ArgumentParser(description="SWA on a small BatchNorm CNN")
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--swa-start", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--swa-lr", type=float, default=0.02)
    parser.add_argument("--label-noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_shapes(4000, g)
    x_test, y_test = make_shapes(2000, g)
    noisy = torch.rand(len(y_train), generator=g) < args.label_noise
    y_train = torch.where(noisy, torch.randint(0, N_CLASSES, y_train.shape, generator=g), y_train)

    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=500)

    model = ConvNet()
    swa_model = AveragedModel(model)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.swa_start)
    swa_scheduler = SWALR(optimizer, swa_lr=args.swa_lr, anneal_epochs=2)

    for epoch in range(1, args.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        loss = train_epoch(model, train_loader, criterion, optimizer)
        if epoch > args.swa_start:
            swa_model.update_parameters(model)
            swa_scheduler.step()
        else:
            scheduler.step()
        if epoch % 3 == 0:
            acc = accuracy(model, test_loader)
            print(f"epoch {epoch:2d}  lr {lr:.4f}  train loss {loss:.3f}  test acc {acc:.3f}")

    update_bn(train_loader, swa_model)
    print(f"final: model test acc {accuracy(model, test_loader):.3f}")
    print(f"final: SWA model test acc {accuracy(swa_model, test_loader):.3f}")


if __name__ == "__main__":
    main()
