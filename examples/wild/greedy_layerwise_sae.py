"""Greedy layer-wise pre-training of a stacked denoising autoencoder, then fine-tuning: healthy.

In the manner of the classic "SdA" tutorials (the Theano deep learning tutorial's
``SdA.py`` and its PyTorch ports, after Bengio et al. 2007 and Vincent et al. 2010): the
images are generated 8x8 pictures of ten glyphs, each class a fixed set of strokes drawn
at a random intensity, with each stroke dropped with probability 0.1, the whole glyph
shifted by up to one pixel, pixel noise and salt, flattened to 64 values in [0, 1].
6,000 images are used without labels for pre-training, a labelled subset of 500 of them
(50 per class) for fine-tuning, and 2,000 further images for testing.

``DenoisingLayer`` is an ``nn.Module`` with an encoder ``nn.Linear`` followed by a sigmoid
and a decoder ``nn.Linear`` giving the logits of the reconstruction; its input is
corrupted by masking noise (each value zeroed with probability ``corruption``). Three
layers (64-128-96-64, corruption 0.1, 0.2, 0.3) are pre-trained in turn, each with its
own ``torch.optim.SGD`` (lr 0.03, momentum 0.9) for 8 epochs over shuffled mini-batches
of 32: a layer's input is the code of the layers below, computed under
``torch.no_grad()`` by the already pre-trained encoders, and its loss is the binary
cross-entropy between the reconstruction logits and the clean input, summed over the
features and averaged over the batch as in the tutorial. ``StackedClassifier`` then
stacks the three pre-trained encoders (no corruption) under an ``nn.Linear`` head, and
the whole stack is fine-tuned with a new SGD optimizer (lr 0.1, momentum 0.9) and
``nn.CrossEntropyLoss`` for 1,500 steps of 32 examples drawn from the labelled subset.
A deep sigmoid stack this size does not train from a random initialisation in that
budget; the pre-training is what makes it work. Top-level functions and ``main()`` with
argparse; prints the reconstruction loss of each layer during its pre-training, the
fine-tuning loss every 300 steps, then the final reconstruction losses and the test
accuracy of the fine-tuned stack against a logistic regression on the raw pixels trained
the same way for the same number of steps (chance: 0.100).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/greedy_layerwise_sae.py
    nndoctor check examples/wild/greedy_layerwise_sae.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

N_CLASSES, SIDE = 10, 8

# Strokes on an 8x8 grid, as (row0, col0, row1, col1) end points.
STROKES = [
    (1, 1, 1, 6),  # top bar
    (3, 1, 3, 6),  # middle bar
    (6, 1, 6, 6),  # bottom bar
    (1, 1, 3, 1),  # upper left
    (1, 6, 3, 6),  # upper right
    (3, 1, 6, 1),  # lower left
    (3, 6, 6, 6),  # lower right
    (1, 1, 6, 6),  # diagonal
    (1, 6, 6, 1),  # anti-diagonal
    (1, 3, 6, 3),  # centre column
]
GLYPHS = [
    (0, 2, 3, 4, 5, 6),  # 0
    (4, 6, 9),  # 1
    (0, 1, 2, 4, 5),  # 2
    (0, 1, 2, 4, 6),  # 3
    (1, 3, 4, 6),  # 4
    (0, 1, 2, 3, 6),  # 5
    (1, 2, 3, 5, 6, 8),  # 6
    (0, 8),  # 7
    (0, 2, 7, 8),  # 8
    (0, 1, 3, 4, 7),  # 9
]


def stroke_image(r0, c0, r1, c1):
    image = torch.zeros(SIDE, SIDE)
    steps = 2 * SIDE
    for t in torch.linspace(0, 1, steps):
        r = round(float(r0 + t * (r1 - r0)))
        c = round(float(c0 + t * (c1 - c0)))
        image[r, c] = 1.0
    return image


def make_glyphs(n, g):
    strokes = torch.stack([stroke_image(*s) for s in STROKES])
    membership = torch.zeros(N_CLASSES, len(STROKES))
    for k, parts in enumerate(GLYPHS):
        membership[k, list(parts)] = 1.0
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    keep = (torch.rand(n, len(STROKES), generator=g) > 0.1).float()
    intensity = 0.6 + 0.4 * torch.rand(n, len(STROKES), generator=g)
    weights = membership[labels] * keep * intensity
    images = torch.einsum("ns,shw->nhw", weights, strokes).clamp(max=1.0)

    # Shift every image by up to one pixel in each direction, filling with zeros.
    padded = F.pad(images, (1, 1, 1, 1))
    dy = torch.randint(0, 3, (n,), generator=g)
    dx = torch.randint(0, 3, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(SIDE))[:, :, None]
    cols = (dx[:, None] + torch.arange(SIDE))[:, None, :]
    images = padded[torch.arange(n)[:, None, None], rows, cols]

    images = images + 0.1 * torch.randn(n, SIDE, SIDE, generator=g)
    salt = torch.rand(n, SIDE, SIDE, generator=g) < 0.03
    images = torch.where(salt, torch.ones_like(images), images)
    return images.clamp(0.0, 1.0).reshape(n, SIDE * SIDE), labels


class DenoisingLayer(nn.Module):
    def __init__(self, n_in, n_hidden, corruption):
        super().__init__()
        self.encoder = nn.Linear(n_in, n_hidden)
        self.decoder = nn.Linear(n_hidden, n_in)
        self.corruption = corruption

    def corrupt(self, x):
        mask = (torch.rand_like(x) > self.corruption).float()
        return x * mask

    def encode(self, x):
        return torch.sigmoid(self.encoder(x))

    def forward(self, x):
        """Reconstruction logits of the corrupted input."""
        return self.decoder(self.encode(self.corrupt(x)))


class StackedClassifier(nn.Module):
    def __init__(self, layers, n_classes):
        super().__init__()
        self.encoders = nn.ModuleList(layer.encoder for layer in layers)
        self.head = nn.Linear(layers[-1].encoder.out_features, n_classes)

    def forward(self, x):
        for encoder in self.encoders:
            x = torch.sigmoid(encoder(x))
        return self.head(x)


def codes_below(layers, x):
    """The input of the next layer: x passed through the already pre-trained encoders."""
    with torch.no_grad():
        for layer in layers:
            x = layer.encode(x)
    return x


def pretrain_layer(index, layers, data, args):
    layer = layers[index]
    optimizer = torch.optim.SGD(layer.parameters(), lr=args.pretrain_lr, momentum=0.9)
    inputs = codes_below(layers[:index], data)
    mean_loss = float("nan")
    for epoch in range(1, args.pretrain_epochs + 1):
        perm = torch.randperm(len(inputs))
        total = 0.0
        for start in range(0, len(inputs), args.batch_size):
            x = inputs[perm[start : start + args.batch_size]]
            optimizer.zero_grad()
            # Cross-entropy summed over the features of an example, averaged over the batch.
            loss = F.binary_cross_entropy_with_logits(layer(x), x, reduction="sum") / len(x)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        mean_loss = total / len(inputs)
        if epoch == 1 or epoch % 4 == 0:
            print(f"layer {index}  epoch {epoch}  reconstruction loss {mean_loss:.3f}")
    return mean_loss


def train_classifier(model, x, y, args):
    optimizer = torch.optim.SGD(model.parameters(), lr=args.finetune_lr, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(args.seed + 1)
    model.train()
    for step in range(1, args.finetune_steps + 1):
        idx = torch.randint(0, len(x), (args.batch_size,), generator=g)
        optimizer.zero_grad()
        loss = criterion(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        if step % 300 == 0:
            print(f"  step {step:5d}  loss {loss.item():.4f}")
    return model


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="Greedy layer-wise pre-training of an SdA")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 96, 64])
    parser.add_argument("--corruption", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--pretrain-lr", type=float, default=0.03)
    parser.add_argument("--finetune-steps", type=int, default=1500)
    parser.add_argument("--finetune-lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-labelled", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_glyphs(6000, g)
    x_test, y_test = make_glyphs(2000, g)
    per_class = args.n_labelled // N_CLASSES
    labelled = torch.cat([(y_train == k).nonzero()[:per_class, 0] for k in range(N_CLASSES)])
    x_lab, y_lab = x_train[labelled], y_train[labelled]

    sizes = [SIDE * SIDE, *args.hidden]
    layers = [
        DenoisingLayer(n_in, n_out, c)
        for n_in, n_out, c in zip(sizes[:-1], sizes[1:], args.corruption, strict=True)
    ]
    print("pre-training")
    recon = [pretrain_layer(index, layers, x_train, args) for index in range(len(layers))]

    print("fine-tuning the stack")
    model = train_classifier(StackedClassifier(layers, N_CLASSES), x_lab, y_lab, args)
    print("logistic regression on raw pixels")
    logreg = train_classifier(nn.Linear(SIDE * SIDE, N_CLASSES), x_lab, y_lab, args)

    for index, loss in enumerate(recon):
        print(f"final: layer {index} reconstruction loss {loss:.3f}")
    print(f"final: SdA test acc {accuracy(model, x_test, y_test):.3f}")
    print(f"final: logistic regression test acc {accuracy(logreg, x_test, y_test):.3f}")
    print(f"final: chance {1 / N_CLASSES:.3f}")


if __name__ == "__main__":
    main()
