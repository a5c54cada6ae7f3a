"""Hinton's Forward-Forward algorithm on generated glyphs, layer by layer: healthy.

In the manner of the PyTorch examples repository's ``mnist_forward_forward`` (and the
popular ``pytorch_forward_forward`` repository it grew from): the images are generated
12x12 glyphs of the ten digits (a 5x7 bitmap font placed at one of six offsets, randomly
thickened, with random ink intensity, 10% missing pixels and Gaussian noise), 4,000 for
training and 1,000 for testing, standardised with one mean and standard deviation of the
training set (as ``Normalize((0.1307,), (0.3081,))`` does for MNIST) and flattened to 144
pixels. There is no backpropagation between layers and no loss on the output: the label
is written into the image itself. ``overlay_y_on_x`` zeroes the first 10 pixels (the top
row, which the glyphs never reach) and sets pixel ``y`` to the data's maximum; positive
data is each training image with its true label, negative data the same image with a
wrong label drawn at random.

``Net`` is a stack of two ``Layer``s (144-256-256). ``Layer`` subclasses ``nn.Linear``,
owns its own ``torch.optim.Adam`` (lr 0.1) and its own ``train(x_pos, x_neg)`` loop: each
forward divides the input by its length (``x / (||x|| + 1e-4)``, so that a layer cannot
read the goodness of the previous one), applies the linear map and a ReLU; the goodness
of a sample is the mean of its squared activations, and the loss is
``log(1 + exp(cat([-g_pos + threshold, g_neg - threshold]))).mean()`` with threshold 2.
Each layer is trained for 100 epochs of shuffled mini-batches (500 positive and 500
negative samples) before the next one, on the detached outputs of the previous layer
(``h_pos, h_neg = layer.train(h_pos, h_neg)``). A test image is classified by overlaying
each of the ten labels in turn and taking the label with the highest goodness summed over
the layers. Top-level functions and ``main()`` with argparse; prints each layer's loss
every 20 epochs, then the train and test error (chance: 0.9).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/forward_forward.py
    nndoctor check examples/wild/forward_forward.py
"""

import argparse

import torch
import torch.nn as nn
from torch.optim import Adam

N_CLASSES, SIZE = 10, 12

FONT = [
    ["01110", "10001", "10011", "10101", "11001", "10001", "01110"],
    ["00100", "01100", "00100", "00100", "00100", "00100", "01110"],
    ["01110", "10001", "00001", "00010", "00100", "01000", "11111"],
    ["11111", "00010", "00100", "00010", "00001", "10001", "01110"],
    ["00010", "00110", "01010", "10010", "11111", "00010", "00010"],
    ["11111", "10000", "11110", "00001", "00001", "10001", "01110"],
    ["00110", "01000", "10000", "11110", "10001", "10001", "01110"],
    ["11111", "00001", "00010", "00100", "01000", "01000", "01000"],
    ["01110", "10001", "10001", "01110", "10001", "10001", "01110"],
    ["01110", "10001", "10001", "01111", "00001", "00010", "01100"],
]


def make_glyphs(n, g):
    """Digits of a 5x7 font at random offsets, thickened at random, with noise."""
    font = torch.tensor([[[float(c) for c in row] for row in glyph] for glyph in FONT])
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    images = torch.zeros(n, SIZE, SIZE)
    top = torch.randint(3, 5, (n,), generator=g)
    left = torch.randint(2, 5, (n,), generator=g)
    thick = torch.rand(n, generator=g) < 0.5
    for i in range(n):
        glyph = font[labels[i]]
        if thick[i]:
            glyph = torch.maximum(glyph, torch.cat([torch.zeros(7, 1), glyph[:, :-1]], dim=1))
            glyph = torch.cat([glyph, torch.zeros(7, 1)], dim=1)
        t, lft = top[i].item(), left[i].item()
        w = min(glyph.shape[1], SIZE - lft)
        images[i, t : t + 7, lft : lft + w] = glyph[:, :w]
    ink = 0.6 + 0.4 * torch.rand(n, 1, 1, generator=g)
    keep = (torch.rand(n, SIZE, SIZE, generator=g) > 0.1).float()
    images = images * ink * keep + 0.15 * torch.randn(n, SIZE, SIZE, generator=g)
    images[:, 0, :] = 0.15 * torch.randn(n, SIZE, generator=g)
    return images.flatten(1), labels


def overlay_y_on_x(x, y):
    """Replace the first 10 pixels of the data by a one-hot of the label y."""
    x_ = x.clone()
    x_[:, :N_CLASSES] *= 0.0
    x_[range(x.shape[0]), y] = x.max()
    return x_


class Layer(nn.Linear):
    def __init__(self, in_features, out_features, args):
        super().__init__(in_features, out_features)
        self.relu = nn.ReLU()
        self.opt = Adam(self.parameters(), lr=args.lr)
        self.threshold = args.threshold
        self.num_epochs = args.epochs
        self.batch_size = args.batch_size
        self.log_interval = args.log_interval

    def forward(self, x):
        x_direction = x / (x.norm(2, 1, keepdim=True) + 1e-4)
        return self.relu(torch.mm(x_direction, self.weight.T) + self.bias.unsqueeze(0))

    def train(self, x_pos, x_neg):
        for i in range(self.num_epochs):
            perm = torch.randperm(x_pos.shape[0])
            total = 0.0
            for start in range(0, x_pos.shape[0], self.batch_size):
                idx = perm[start : start + self.batch_size]
                g_pos = self.forward(x_pos[idx]).pow(2).mean(1)
                g_neg = self.forward(x_neg[idx]).pow(2).mean(1)
                # The following loss pushes pos (neg) samples to values larger (smaller) than
                # the threshold.
                loss = torch.log(
                    1 + torch.exp(torch.cat([-g_pos + self.threshold, g_neg - self.threshold]))
                ).mean()
                self.opt.zero_grad()
                # this backward just compute the derivative and hence is not considered
                # backpropagation.
                loss.backward()
                self.opt.step()
                total += loss.item() * len(idx)
            if (i + 1) % self.log_interval == 0:
                print(f"    epoch {i + 1:4d}  loss {total / x_pos.shape[0]:.4f}")
        return self.forward(x_pos).detach(), self.forward(x_neg).detach()


class Net(nn.Module):
    def __init__(self, dims, args):
        super().__init__()
        self.layers = nn.ModuleList(Layer(dims[d], dims[d + 1], args) for d in range(len(dims) - 1))

    def predict(self, x):
        goodness_per_label = []
        for label in range(N_CLASSES):
            h = overlay_y_on_x(x, label)
            goodness = []
            for layer in self.layers:
                h = layer(h)
                goodness += [h.pow(2).mean(1)]
            goodness_per_label += [sum(goodness).unsqueeze(1)]
        goodness_per_label = torch.cat(goodness_per_label, 1)
        return goodness_per_label.argmax(1)

    def train(self, x_pos, x_neg):
        h_pos, h_neg = x_pos, x_neg
        for i, layer in enumerate(self.layers):
            print(f"training layer {i} ...")
            h_pos, h_neg = layer.train(h_pos, h_neg)


def main():
    parser = argparse.ArgumentParser(description="Forward-Forward on generated glyphs")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per layer")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threshold", type=float, default=2.0)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--log-interval", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x, y = make_glyphs(args.train_size, g)
    x_te, y_te = make_glyphs(args.test_size, g)
    mean, std = x.mean(), x.std()
    x, x_te = (x - mean) / std, (x_te - mean) / std

    net = Net([SIZE * SIZE, 256, 256], args)
    x_pos = overlay_y_on_x(x, y)
    y_wrong = (y + torch.randint(1, N_CLASSES, y.shape, generator=g)) % N_CLASSES
    x_neg = overlay_y_on_x(x, y_wrong)

    net.train(x_pos, x_neg)

    with torch.no_grad():
        train_error = 1.0 - net.predict(x).eq(y).float().mean().item()
        test_error = 1.0 - net.predict(x_te).eq(y_te).float().mean().item()
    print(f"train error: {train_error:.4f}")
    print(f"test error: {test_error:.4f}  (chance: {1 - 1 / N_CLASSES:.4f})")


if __name__ == "__main__":
    main()
