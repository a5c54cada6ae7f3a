"""A Spatial Transformer Network on affinely distorted glyphs: healthy.

In the manner of the PyTorch tutorial ``spatial_transformer_tutorial.py`` (Jaderberg et
al. 2015 on distorted MNIST): the images are generated 1x28x28 pictures of ten digit-like
glyphs drawn with anti-aliased strokes, each placed on the canvas by a random affine
map (rotation up to 45 degrees either way, scale 0.75 to 1.15, a translation of up to
4 pixels, a little shear), with a random stroke width and brightness and pixel noise.
8,000 images for training and 2,000 for testing, normalised with the training set's mean
and standard deviation as the tutorial normalises MNIST.

``Net`` is the tutorial's model: a localisation network (Conv2d 1-8 k7, MaxPool2d, ReLU,
Conv2d 8-10 k5, MaxPool2d, ReLU) feeding ``fc_loc`` (Linear 90-32, ReLU, Linear 32-6)
that regresses the 2x3 affine matrix, its last layer initialised to the identity
transformation (weights zero, bias [1, 0, 0, 0, 1, 0]); ``F.affine_grid`` and
``F.grid_sample`` resample the input, and the classifier (Conv2d 1-10 k5, Conv2d 10-20 k5
with Dropout2d, max pooling and ReLU, Linear 320-50, dropout, Linear 50-10) ends in
``F.log_softmax``, trained with ``F.nll_loss``. ``torch.optim.SGD`` with lr 0.01 and
momentum 0.5 (as the PyTorch MNIST example), shuffled ``DataLoader`` batches of 64, 8
epochs. ``train(epoch)`` and ``test()`` as in the tutorial, with ``model.train()`` and
``model.eval()`` + ``torch.no_grad()``. The same ``Net`` without its transformer is
trained the same way as the baseline. Prints the training loss every 40 batches and the
test loss and accuracy of each epoch, then the final test accuracy of the network with
and without the spatial transformer (chance: 0.100).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/spatial_transformer.py
    nndoctor check examples/wild/spatial_transformer.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES, SIZE = 10, 28

# Glyph strokes as segments between points of a box [-1, 1] x [-1.4, 1.4] (x right, y down).
TL, TR, ML, MR, BL, BR = (-1, -1.4), (1, -1.4), (-1, 0), (1, 0), (-1, 1.4), (1, 1.4)
TC, BC = (0, -1.4), (0, 1.4)
GLYPHS = [
    [(TL, TR), (TR, BR), (BR, BL), (BL, TL)],  # 0
    [(TC, BC), ((-0.6, -0.9), TC)],  # 1
    [(TL, TR), (TR, MR), (MR, BL), (BL, BR)],  # 2
    [(TL, TR), (TR, BR), (ML, MR), (BL, BR)],  # 3
    [(TL, ML), (ML, MR), (TR, BR)],  # 4
    [(TR, TL), (TL, ML), (ML, MR), (MR, BR), (BR, BL)],  # 5
    [(TR, TL), (TL, BL), (BL, BR), (BR, MR), (MR, ML)],  # 6
    [(TL, TR), (TR, BC)],  # 7
    [(TL, TR), (TL, BR), (TR, BL), (BL, BR)],  # 8
    [(MR, ML), (ML, TL), (TL, TR), (TR, BR)],  # 9
]


def glyph_distances():
    """For each glyph, the distance (in pixels) of every pixel of the canvas to its strokes."""
    coords = (torch.arange(SIZE) - (SIZE - 1) / 2) / 5.0
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    maps = []
    for strokes in GLYPHS:
        dist = torch.full((SIZE, SIZE), float("inf"))
        for (x0, y0), (x1, y1) in strokes:
            dx, dy = x1 - x0, y1 - y0
            t = ((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy)
            t = t.clamp(0, 1)
            d = torch.sqrt((xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2)
            dist = torch.minimum(dist, d)
        maps.append(dist * 5.0)
    return torch.stack(maps)


def make_distorted_glyphs(n, g):
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    width = 1.0 + 1.0 * torch.rand(n, generator=g)
    # Anti-aliased strokes of the given width, centred on the canvas.
    glyphs = (1.0 - (glyph_distances()[labels] - width[:, None, None] / 2)).clamp(0, 1)[:, None]

    angle = (torch.rand(n, generator=g) * 2 - 1) * math.pi / 4
    scale = 0.75 + 0.4 * torch.rand(n, generator=g)
    shear = 0.15 * torch.randn(n, generator=g)
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * 4.0 / (SIZE / 2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output coordinates to input coordinates: the inverse of the placement.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos / scale
    theta[:, 0, 1] = (sin + shear) / scale
    theta[:, 1, 0] = -sin / scale
    theta[:, 1, 1] = cos / scale
    theta[:, :, 2] = -torch.einsum("nij,nj->ni", theta[:, :, :2], shift)
    grid = F.affine_grid(theta, list(glyphs.shape), align_corners=False)
    images = F.grid_sample(glyphs, grid, align_corners=False)

    brightness = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    images = images * brightness + 0.1 * torch.randn(images.shape, generator=g)
    return images.clamp(0, 1), labels


class Net(nn.Module):
    def __init__(self, use_stn=True):
        super().__init__()
        self.use_stn = use_stn
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

        # Spatial transformer localization-network
        self.localization = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
            nn.Conv2d(8, 10, kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
        )

        # Regressor for the 3 * 2 affine matrix
        self.fc_loc = nn.Sequential(nn.Linear(10 * 3 * 3, 32), nn.ReLU(True), nn.Linear(32, 3 * 2))

        # Initialize the weights/bias with identity transformation
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    # Spatial transformer network forward function
    def stn(self, x):
        xs = self.localization(x)
        xs = xs.view(-1, 10 * 3 * 3)
        theta = self.fc_loc(xs)
        theta = theta.view(-1, 2, 3)

        grid = F.affine_grid(theta, x.size(), align_corners=False)
        x = F.grid_sample(x, grid, align_corners=False)
        return x

    def forward(self, x):
        # transform the input
        if self.use_stn:
            x = self.stn(x)

        # Perform the usual forward pass
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 320)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


def train(model, optimizer, train_loader, epoch, log_interval):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % log_interval == 0:
            print(
                f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}]"
                f"\tLoss: {loss.item():.4f}"
            )


def test(model, test_loader):
    with torch.no_grad():
        model.eval()
        test_loss = 0
        correct = 0
        for data, target in test_loader:
            output = model(data)
            # sum up batch loss
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            # get the index of the max log-probability
            pred = output.max(1, keepdim=True)[1]
            correct += pred.eq(target.view_as(pred)).sum().item()

        test_loss /= len(test_loader.dataset)
        accuracy = correct / len(test_loader.dataset)
        print(f"Test set: Average loss: {test_loss:.4f}, Accuracy: {accuracy:.3f}")
        return accuracy


def fit(model, train_loader, test_loader, args):
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    accuracy = 0.0
    for epoch in range(1, args.epochs + 1):
        train(model, optimizer, train_loader, epoch, args.log_interval)
        accuracy = test(model, test_loader)
    return accuracy


def main():
    parser = argparse.ArgumentParser(description="Spatial transformer on distorted glyphs")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.5)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--log-interval", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_distorted_glyphs(args.n_train, g)
    x_test, y_test = make_distorted_glyphs(2000, g)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=args.batch_size)

    print("with the spatial transformer")
    stn_acc = fit(Net(use_stn=True), train_loader, test_loader, args)
    print("baseline: the same classifier without the transformer")
    base_acc = fit(Net(use_stn=False), train_loader, test_loader, args)

    print(f"final: STN test acc {stn_acc:.3f}")
    print(f"final: no-STN test acc {base_acc:.3f}")
    print(f"final: chance {1 / N_CLASSES:.3f}")


if __name__ == "__main__":
    main()
