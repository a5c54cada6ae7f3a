"""A PixelCNN on generated binary 12x12 images, sampled pixel by pixel: healthy.

In the manner of the small PixelCNN-in-PyTorch repositories that follow van den Oord et
al. (2016): 12x12 binary images of strokes and shapes (horizontal, vertical and diagonal
lines, rectangle outlines, filled rectangles, crosses and L shapes, one or two per image)
are generated in code. ``MaskedConv2d`` subclasses ``nn.Conv2d`` and keeps its mask as a
buffer; the mask hides the pixels below and to the right of the centre, and the centre
itself for mask type "A", and is written into ``self.weight.data`` before every
convolution. The network is a ``nn.Sequential``: a 7x7 type-A masked convolution, six
3x3 type-B masked convolutions with ReLU, two 1x1 convolutions, one logit per pixel.
Inputs are scaled to {-1, 1}; the targets are the {0, 1} pixels themselves, under
``nn.BCEWithLogitsLoss`` (mean per pixel). Adam; a ``DataLoader`` over a
``TensorDataset``; a top-level script with argparse. Prints the training loss and the
test negative log-likelihood in nats per image each epoch (an independent Bernoulli per
pixel at the data's mean density: about 50 nats), then draws 8 images pixel by pixel
from the model in ``eval()`` mode and prints them with their density of lit pixels.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/pixelcnn_binary.py
    nndoctor check examples/wild/pixelcnn_binary.py
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SIZE = 12


def make_strokes(n: int, g: torch.Generator) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    images = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
    for layer in range(2):
        kind = torch.randint(0, 7, (n, 1, 1), generator=g)
        y0 = torch.randint(0, SIZE - 4, (n, 1, 1), generator=g)
        x0 = torch.randint(0, SIZE - 4, (n, 1, 1), generator=g)
        h = torch.randint(4, SIZE + 1, (n, 1, 1), generator=g).minimum(SIZE - y0)
        w = torch.randint(4, SIZE + 1, (n, 1, 1), generator=g).minimum(SIZE - x0)
        inside = (ys >= y0) & (ys < y0 + h) & (xs >= x0) & (xs < x0 + w)
        cy, cx = y0 + h // 2, x0 + w // 2
        strokes = torch.stack(
            [
                inside & (ys == cy),  # horizontal line
                inside & (xs == cx),  # vertical line
                inside & (ys - y0 == xs - x0),  # diagonal line
                inside & ((ys == y0) | (ys == y0 + h - 1) | (xs == x0) | (xs == x0 + w - 1)),
                inside & (ys > y0) & (ys < y0 + h - 1) & (xs > x0) & (xs < x0 + w - 1),
                inside & ((ys == cy) | (xs == cx)),  # cross
                inside & ((ys == y0 + h - 1) | (xs == x0)),  # L shape
            ],
            dim=1,
        )
        drawn = strokes.gather(1, kind.unsqueeze(1).expand(n, 1, SIZE, SIZE)).squeeze(1)
        if layer == 1:  # a second stroke on about a third of the images
            drawn &= torch.rand(n, 1, 1, generator=g) < 0.35
        images |= drawn
    return images.float().unsqueeze(1)


class MaskedConv2d(nn.Conv2d):
    def __init__(self, mask_type, *args, **kwargs):
        super().__init__(*args, **kwargs)
        assert mask_type in ("A", "B")
        self.register_buffer("mask", self.weight.data.clone())
        _, _, kh, kw = self.weight.size()
        self.mask.fill_(1)
        self.mask[:, :, kh // 2, kw // 2 + (mask_type == "B") :] = 0
        self.mask[:, :, kh // 2 + 1 :] = 0

    def forward(self, x):
        self.weight.data *= self.mask
        return super().forward(x)


parser = argparse.ArgumentParser(description="PixelCNN on binary strokes")
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--fm", type=int, default=32, help="feature maps per layer")
parser.add_argument("--n-samples", type=int, default=8)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

g = torch.Generator().manual_seed(args.seed)
train_data = make_strokes(6000, g)
test_data = make_strokes(1000, g)
train_loader = DataLoader(TensorDataset(train_data), batch_size=args.batch_size, shuffle=True)
test_loader = DataLoader(TensorDataset(test_data), batch_size=500)

fm = args.fm
layers = [MaskedConv2d("A", 1, fm, 7, 1, 3)]
for _ in range(6):
    layers += [nn.ReLU(), MaskedConv2d("B", fm, fm, 3, 1, 1)]
layers += [nn.ReLU(), nn.Conv2d(fm, fm, 1), nn.ReLU(), nn.Conv2d(fm, 1, 1)]
net = nn.Sequential(*layers)

optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
criterion = nn.BCEWithLogitsLoss()

density = train_data.mean().item()
baseline = -(
    density * torch.log(torch.tensor(density))
    + (1 - density) * torch.log(torch.tensor(1 - density))
)
print(
    f"lit pixels: {density:.3f}; independent-pixel baseline {SIZE * SIZE * baseline.item():.1f} nats per image"
)

for epoch in range(args.epochs):
    net.train()
    train_loss = []
    for (x,) in train_loader:
        inputs = x * 2 - 1  # {0, 1} -> {-1, 1}
        logits = net(inputs)
        loss = criterion(logits, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train_loss.append(loss.item())

    net.eval()
    nll = 0.0
    with torch.no_grad():
        for (x,) in test_loader:
            logits = net(x * 2 - 1)
            nll += F.binary_cross_entropy_with_logits(logits, x, reduction="sum").item()
    print(
        f"epoch {epoch + 1}: train loss {sum(train_loss) / len(train_loss):.4f} per pixel, "
        f"test NLL {nll / len(test_data):.2f} nats per image"
    )

sample = torch.zeros(args.n_samples, 1, SIZE, SIZE)
net.eval()
with torch.no_grad():
    for i in range(SIZE):
        for j in range(SIZE):
            logits = net(sample * 2 - 1)
            probs = torch.sigmoid(logits[:, :, i, j])
            sample[:, :, i, j] = torch.bernoulli(probs)

print(f"samples (lit pixels {sample.mean().item():.3f}, data {density:.3f}):")
for row in range(SIZE):
    print("  ".join("".join("#" if v else "." for v in s[0, row].tolist()) for s in sample))
