"""A categorical VAE with the Gumbel-Softmax trick on binary shape images: healthy.

In the manner of the public Gumbel-Softmax VAE examples (the PyTorch ports of the
"Categorical Reparameterization with Gumbel-Softmax" demo): the data are binary 16x16
images generated in the script, each holding one or two shapes (filled or outlined
rectangles, discs, plus signs, straight strokes). ``GumbelVAE`` is a pair of MLPs: the
encoder maps a flattened image to the logits of ``N = 10`` categorical latent variables
with ``K = 10`` categories each; in training the code is drawn with
``F.gumbel_softmax(logits, tau, hard=True)`` (one-hot samples in the forward pass,
straight-through relaxed gradients), and the decoder maps the concatenated one-hot codes
to Bernoulli logits of the 256 pixels. The loss is the negative ELBO: the binary
cross-entropy with logits summed over the pixels of an image plus the KL divergence of
the posterior ``q(z|x)`` from the uniform categorical prior summed over the latent
variables, averaged over the batch. The temperature starts at 1 and is annealed
exponentially every 100 steps toward a floor of 0.5. Adam, a shuffled ``DataLoader``
over a ``TensorDataset``; a ``main()`` with argparse; prints the training loss and the
held-out negative ELBO (nats per image, one-hot samples of the posterior) every few
epochs.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/gumbel_vae.py
    nndoctor check examples/wild/gumbel_vae.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SIZE = 16


def draw_shape(img: np.ndarray, rng: np.random.RandomState) -> None:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    kind = rng.randint(5)
    if kind in (0, 1):  # rectangle, filled or outlined
        y0, x0 = rng.randint(0, SIZE - 4, size=2)
        h, w = rng.randint(4, SIZE - max(y0, x0) + 1, size=2)
        inside = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
        if kind == 1:
            inner = (yy > y0) & (yy < y0 + h - 1) & (xx > x0) & (xx < x0 + w - 1)
            inside &= ~inner
        img[inside] = 1.0
    elif kind == 2:  # disc
        cy, cx = rng.uniform(4, SIZE - 4, size=2)
        r = rng.uniform(2.0, 4.5)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1.0
    elif kind == 3:  # plus sign
        cy, cx = rng.randint(3, SIZE - 3, size=2)
        arm = rng.randint(2, 6)
        img[cy, max(cx - arm, 0) : cx + arm + 1] = 1.0
        img[max(cy - arm, 0) : cy + arm + 1, cx] = 1.0
    else:  # straight stroke
        y0, x0, y1, x1 = rng.randint(0, SIZE, size=4)
        n = max(abs(y1 - y0), abs(x1 - x0)) + 1
        ys = np.round(np.linspace(y0, y1, n)).astype(int)
        xs = np.round(np.linspace(x0, x1, n)).astype(int)
        img[ys, xs] = 1.0


def make_shapes(n: int, rng: np.random.RandomState) -> torch.Tensor:
    images = np.zeros((n, SIZE, SIZE), dtype=np.float32)
    for i in range(n):
        for _ in range(rng.randint(1, 3)):
            draw_shape(images[i], rng)
    return torch.from_numpy(images)


class GumbelVAE(nn.Module):
    def __init__(self, latent_dim: int = 10, categorical_dim: int = 10) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.categorical_dim = categorical_dim
        self.encoder = nn.Sequential(
            nn.Linear(SIZE * SIZE, 512),
            nn.ReLU(),
            nn.Linear(512, 256),
            nn.ReLU(),
            nn.Linear(256, latent_dim * categorical_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim * categorical_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 512),
            nn.ReLU(),
            nn.Linear(512, SIZE * SIZE),
        )

    def forward(self, x: torch.Tensor, temp: float):
        logits = self.encoder(x.view(-1, SIZE * SIZE))
        logits = logits.view(-1, self.latent_dim, self.categorical_dim)
        qy = F.softmax(logits, dim=-1)
        z = F.gumbel_softmax(logits, tau=temp, hard=True)
        recon_logits = self.decoder(z.view(-1, self.latent_dim * self.categorical_dim))
        return recon_logits, qy


def loss_function(recon_logits, x, qy, categorical_dim):
    bce = F.binary_cross_entropy_with_logits(
        recon_logits, x.view(-1, SIZE * SIZE), reduction="sum"
    ) / x.shape[0]
    log_ratio = torch.log(qy * categorical_dim + 1e-20)
    kld = torch.sum(qy * log_ratio, dim=(1, 2)).mean()
    return bce + kld, bce, kld


def main() -> None:
    parser = argparse.ArgumentParser(description="Gumbel-Softmax VAE on binary shapes")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temp", type=float, default=1.0)
    parser.add_argument("--temp-min", type=float, default=0.5)
    parser.add_argument("--anneal-rate", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    rng = np.random.RandomState(args.seed)
    train_set = TensorDataset(make_shapes(args.n_train, rng))
    test_set = TensorDataset(make_shapes(2000, rng))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=500)

    model = GumbelVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    temp = args.temp
    step = 0

    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for (x,) in train_loader:
            recon_logits, qy = model(x, temp)
            loss, _, _ = loss_function(recon_logits, x, qy, model.categorical_dim)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            step += 1
            if step % 100 == 0:
                temp = max(args.temp * math.exp(-args.anneal_rate * step), args.temp_min)

        model.eval()
        test_loss = test_bce = test_kld = 0.0
        with torch.no_grad():
            for (x,) in test_loader:
                recon_logits, qy = model(x, temp)
                loss, bce, kld = loss_function(recon_logits, x, qy, model.categorical_dim)
                test_loss += loss.item() * len(x)
                test_bce += bce.item() * len(x)
                test_kld += kld.item() * len(x)
        n_test = len(test_set)
        if epoch % 5 == 0 or epoch == 1:
            print(
                f"epoch {epoch:3d} (temp {temp:.3f}): train loss {total / len(train_set):.2f}, "
                f"test -ELBO {test_loss / n_test:.2f} nats (recon {test_bce / n_test:.2f}, "
                f"KL {test_kld / n_test:.2f})"
            )


if __name__ == "__main__":
    main()
