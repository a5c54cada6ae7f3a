"""SimCLR contrastive pre-training with the NT-Xent loss, then a linear probe: healthy.

In the manner of the popular PyTorch SimCLR implementations (Chen et al. 2020): the images
are generated 3x16x16 pictures of eight shapes (disc, ring, square, frame, plus, cross,
triangle, bar) of random size, position and brightness on a darker noisy background, both
slightly tinted; 4,096 unlabelled images for pre-training and 2,000 labelled test images.
Every batch is augmented twice, in torch (``[augment(images) for _ in range(2)]``): a
random resized crop (scale 0.5 to 1, by ``F.affine_grid`` / ``F.grid_sample``), a
horizontal flip with probability 0.5, colour jitter (brightness, contrast, saturation)
with probability 0.8, random grayscale with probability 0.2 and Gaussian noise.

The encoder is a small BatchNorm CNN (three Conv-BN-ReLU stages, max pooling, global
average pooling, 64 features) and the projection head an MLP 64-64-32. The loss is
NT-Xent written as the implementations write it: the 2N projections of the two views
are L2-normalised, the 2N x 2N cosine similarity matrix is divided by the temperature
0.5, the self-similarities on its diagonal are masked out, and cross-entropy over each
row has its positive at i <-> i+N. Adam at 3e-3, batches of 256, 12 epochs (192 steps).
Then the linear probe: the encoder is frozen and put in ``eval()``, its features (without
the projection head) are computed for the un-augmented images, standardised, and an
``nn.Linear(64, 8)`` is trained on them with ``CrossEntropyLoss`` and Adam, using the
labels of 1,024 of the pre-training images (label-scarce evaluation); the same probe on
the randomly initialised encoder (a copy of the model's initial weights) is the baseline.
Top-level functions and ``main()`` with argparse; prints the contrastive loss every 2
epochs (ln 511 = 6.24 at chance) and the probe test accuracy of the pre-trained and of
the random encoder.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/simclr_ntxent.py
    nndoctor check examples/wild/simclr_ntxent.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

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
    tint = 0.8 + 0.2 * torch.rand(n, 3, 1, 1, generator=g)
    colour = (0.5 + 0.5 * torch.rand(n, 1, 1, 1, generator=g)) * tint
    background = 0.4 * torch.rand(n, 1, 1, 1, generator=g) * tint
    noise = 0.1 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    images = shape * colour + (1 - shape) * background + noise
    return images, labels


def random_resized_crop(x, scale=(0.5, 1.0)):
    n = x.shape[0]
    s = torch.empty(n).uniform_(*scale).sqrt()
    tx = (1 - s) * torch.empty(n).uniform_(-1, 1)
    ty = (1 - s) * torch.empty(n).uniform_(-1, 1)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = s, tx
    theta[:, 1, 1], theta[:, 1, 2] = s, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="reflection")


def color_jitter(x, strength=0.5, p=0.8):
    n = x.shape[0]
    apply = (torch.rand(n, 1, 1, 1) < p).float()
    brightness = 1 + strength * torch.empty(n, 1, 1, 1).uniform_(-1, 1)
    contrast = 1 + strength * torch.empty(n, 1, 1, 1).uniform_(-1, 1)
    saturation = 1 + strength * torch.empty(n, 1, 1, 1).uniform_(-1, 1)
    y = x * brightness
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * contrast + mean
    gray = y.mean(dim=1, keepdim=True)
    y = (y - gray) * saturation + gray
    return apply * y + (1 - apply) * x


def augment(x):
    x = random_resized_crop(x)
    flip = torch.rand(x.shape[0]) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    x = color_jitter(x)
    gray = torch.rand(x.shape[0]) < 0.2
    x = torch.where(gray[:, None, None, None], x.mean(dim=1, keepdim=True).expand_as(x), x)
    return x + 0.05 * torch.randn_like(x)


class Encoder(nn.Module):
    def __init__(self, width=32, out_dim=64):
        super().__init__()

        def stage(c_in, c_out):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )

        self.net = nn.Sequential(
            stage(3, width),
            nn.MaxPool2d(2),
            stage(width, out_dim),
            nn.MaxPool2d(2),
            stage(out_dim, out_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.net(x)


class SimCLR(nn.Module):
    def __init__(self, feature_dim=64, projection_dim=32):
        super().__init__()
        self.encoder = Encoder(out_dim=feature_dim)
        self.projector = nn.Sequential(
            nn.Linear(feature_dim, feature_dim),
            nn.ReLU(inplace=True),
            nn.Linear(feature_dim, projection_dim),
        )

    def forward(self, x):
        h = self.encoder(x)
        return h, self.projector(h)


def nt_xent_loss(z_i, z_j, temperature):
    n = z_i.shape[0]
    z = F.normalize(torch.cat([z_i, z_j], dim=0), dim=1)
    similarity = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool)
    similarity = similarity.masked_fill(self_mask, -9e15)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(similarity, targets)


@torch.no_grad()
def extract_features(encoder, images, batch_size=500):
    encoder.eval()
    return torch.cat(
        [encoder(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
    )


def linear_probe(encoder, x_train, y_train, x_test, y_test, epochs=100, lr=1e-2):
    f_train = extract_features(encoder, x_train)
    f_test = extract_features(encoder, x_test)
    mean, std = f_train.mean(dim=0), f_train.std(dim=0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    probe = nn.Linear(f_train.shape[1], N_CLASSES)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    for _ in range(epochs):
        for idx in torch.randperm(len(f_train)).split(256):
            loss = criterion(probe(f_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return (probe(f_test).argmax(dim=1) == y_test).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="SimCLR with NT-Xent and a linear probe")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--probe-labels", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_shapes(4096, g)
    x_test, y_test = make_shapes(2000, g)

    model = SimCLR()
    random_encoder = Encoder()
    random_encoder.load_state_dict(model.encoder.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, batches = 0.0, 0
        for idx in torch.randperm(len(x_train)).split(args.batch_size):
            images = x_train[idx]
            x_i, x_j = [augment(images) for _ in range(2)]
            _, z_i = model(x_i)
            _, z_j = model(x_j)
            loss = nt_xent_loss(z_i, z_j, args.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        if epoch % 2 == 0:
            print(f"epoch {epoch:2d}  NT-Xent loss {total / batches:.4f}")

    for p in model.encoder.parameters():
        p.requires_grad_(False)
    x_labelled, y_labelled = x_train[: args.probe_labels], y_train[: args.probe_labels]
    acc = linear_probe(model.encoder, x_labelled, y_labelled, x_test, y_test)
    random_acc = linear_probe(random_encoder, x_labelled, y_labelled, x_test, y_test)
    print(f"final: linear probe test acc {acc:.3f} (random encoder {random_acc:.3f}, chance 0.125)")


if __name__ == "__main__":
    main()
