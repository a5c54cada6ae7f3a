"""A VQ-VAE with a learned codebook on small generated images: healthy.

In the manner of the popular PyTorch re-implementations of VQ-VAE (van den Oord et al.,
"Neural Discrete Representation Learning", 2017; the zalandoresearch notebook and the
repositories written after it): the images are generated 1x16x16 pictures of one to three
strokes and shapes (filled rectangles, discs, rings and horizontal, vertical or diagonal
bars) of random size, position and brightness on a dark, slightly noisy background,
20,000 for training and 2,000 held out, shifted to [-0.5, 0.5] like the notebook's
``Normalize(0.5, 1)``; the training set's variance scales the reconstruction error.

``VQVAE`` is an ``nn.Module`` of an ``Encoder`` (two stride-2 convolutions and a residual
block, then a 1x1 convolution to ``embedding_dim = 16``: a 4x4 grid of latent vectors), a
``VectorQuantizer`` and a ``Decoder`` (a convolution, a residual block and two transposed
convolutions). ``VectorQuantizer`` holds an ``nn.Embedding`` of ``K = 64`` codes initialised
uniformly in ``±1/K``; it moves the channels last, computes the squared distances of every
latent vector to every code, takes the nearest code by ``argmin``, builds the one-hot
encodings and the quantised vectors, and returns the codebook loss
``mse(z_q, z_e.detach())`` plus ``beta = 0.25`` times the commitment loss
``mse(z_q.detach(), z_e)``, the quantised latents passed through the straight-through
estimator ``z_e + (z_q - z_e).detach()``, and the perplexity of the average code usage.
The loss is ``mse(x_recon, x) / data_variance`` plus the VQ loss; Adam with lr 1e-3 on
shuffled batches of 64 for 1,500 steps. Top-level functions and ``main()`` with argparse;
prints the reconstruction error, VQ loss and perplexity every 250 steps, then the held-out
normalised reconstruction error (against 1.0 for predicting the mean image and the error of
the per-pixel mean image), the perplexity and the number of codes in use.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/vqvae_codebook.py
    nndoctor check examples/wild/vqvae_codebook.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SIZE = 16


def make_images(n, g):
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    images = 0.05 * torch.rand(n, 1, 1, 1, generator=g).expand(n, 1, SIZE, SIZE).clone()
    n_shapes = torch.randint(1, 4, (n,), generator=g)
    for k in range(3):
        kind = torch.randint(0, 6, (n, 1, 1), generator=g)
        cy = 2 + 12 * torch.rand(n, 1, 1, generator=g)
        cx = 2 + 12 * torch.rand(n, 1, 1, generator=g)
        r = 1.5 + 3.0 * torch.rand(n, 1, 1, generator=g)
        dy, dx = ys - cy, xs - cx
        dist = torch.sqrt(dy**2 + dx**2)
        masks = [
            (dy.abs() <= r) & (dx.abs() <= 0.7 * r),  # rectangle
            dist <= r,  # disc
            (dist <= r + 0.5) & (dist >= r - 0.9),  # ring
            (dy.abs() <= 0.8) & (dx.abs() <= r + 1),  # horizontal bar
            (dx.abs() <= 0.8) & (dy.abs() <= r + 1),  # vertical bar
            ((dy - dx).abs() <= 1.0) & (dist <= r + 1),  # diagonal bar
        ]
        mask = torch.zeros(n, SIZE, SIZE, dtype=torch.bool)
        for i, m in enumerate(masks):
            mask |= (kind == i) & m
        mask &= (n_shapes > k)[:, None, None]
        brightness = 0.5 + 0.5 * torch.rand(n, 1, 1, generator=g)
        images[:, 0] = torch.where(mask, brightness, images[:, 0])
    images = images + 0.03 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    return images.clamp(0, 1)


class Residual(nn.Module):
    def __init__(self, channels, hidden):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x):
        return x + self.block(x)


class Encoder(nn.Module):
    def __init__(self, hidden, embedding_dim):
        super().__init__()
        self.conv_1 = nn.Conv2d(1, hidden // 2, 4, stride=2, padding=1)
        self.conv_2 = nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1)
        self.conv_3 = nn.Conv2d(hidden, hidden, 3, padding=1)
        self.residual = Residual(hidden, hidden // 2)
        self.pre_vq = nn.Conv2d(hidden, embedding_dim, 1)

    def forward(self, x):
        x = F.relu(self.conv_1(x))
        x = F.relu(self.conv_2(x))
        x = self.conv_3(x)
        x = F.relu(self.residual(x))
        return self.pre_vq(x)


class Decoder(nn.Module):
    def __init__(self, hidden, embedding_dim):
        super().__init__()
        self.conv_1 = nn.Conv2d(embedding_dim, hidden, 3, padding=1)
        self.residual = Residual(hidden, hidden // 2)
        self.deconv_1 = nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1)
        self.deconv_2 = nn.ConvTranspose2d(hidden // 2, 1, 4, stride=2, padding=1)

    def forward(self, z):
        x = self.conv_1(z)
        x = F.relu(self.residual(x))
        x = F.relu(self.deconv_1(x))
        return self.deconv_2(x)


class VectorQuantizer(nn.Module):
    def __init__(self, num_embeddings, embedding_dim, commitment_cost):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.num_embeddings = num_embeddings
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        self.embedding.weight.data.uniform_(-1 / num_embeddings, 1 / num_embeddings)
        self.commitment_cost = commitment_cost

    def forward(self, inputs):
        # BCHW -> BHWC
        inputs = inputs.permute(0, 2, 3, 1).contiguous()
        input_shape = inputs.shape
        flat_input = inputs.view(-1, self.embedding_dim)

        distances = (
            torch.sum(flat_input**2, dim=1, keepdim=True)
            + torch.sum(self.embedding.weight**2, dim=1)
            - 2 * torch.matmul(flat_input, self.embedding.weight.t())
        )
        encoding_indices = torch.argmin(distances, dim=1).unsqueeze(1)
        encodings = torch.zeros(encoding_indices.shape[0], self.num_embeddings)
        encodings.scatter_(1, encoding_indices, 1)

        quantized = torch.matmul(encodings, self.embedding.weight).view(input_shape)

        e_latent_loss = F.mse_loss(quantized.detach(), inputs)
        q_latent_loss = F.mse_loss(quantized, inputs.detach())
        loss = q_latent_loss + self.commitment_cost * e_latent_loss

        # straight-through estimator
        quantized = inputs + (quantized - inputs).detach()
        avg_probs = torch.mean(encodings, dim=0)
        perplexity = torch.exp(-torch.sum(avg_probs * torch.log(avg_probs + 1e-10)))

        # BHWC -> BCHW
        return loss, quantized.permute(0, 3, 1, 2).contiguous(), perplexity, encodings


class VQVAE(nn.Module):
    def __init__(self, hidden=64, num_embeddings=64, embedding_dim=16, commitment_cost=0.25):
        super().__init__()
        self.encoder = Encoder(hidden, embedding_dim)
        self.vq = VectorQuantizer(num_embeddings, embedding_dim, commitment_cost)
        self.decoder = Decoder(hidden, embedding_dim)

    def forward(self, x):
        z = self.encoder(x)
        vq_loss, quantized, perplexity, encodings = self.vq(z)
        x_recon = self.decoder(quantized)
        return vq_loss, x_recon, perplexity, encodings


@torch.no_grad()
def evaluate(model, images, data_variance):
    model.eval()
    _, x_recon, perplexity, encodings = model(images)
    model.train()
    recon = (F.mse_loss(x_recon, images) / data_variance).item()
    used = int((encodings.sum(dim=0) > 0).sum())
    return recon, perplexity.item(), used


def main():
    parser = argparse.ArgumentParser(description="VQ-VAE on generated 16x16 images")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--num-embeddings", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--commitment-cost", type=float, default=0.25)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_images = make_images(args.n_train, g) - 0.5
    test_images = make_images(2000, g) - 0.5
    data_variance = train_images.var().item()
    mean_image = train_images.mean(dim=0, keepdim=True)
    mean_error = (F.mse_loss(mean_image.expand_as(test_images), test_images) / data_variance).item()
    print(
        f"data variance {data_variance:.4f}; per-pixel mean image: normalised error {mean_error:.3f}"
    )

    loader = DataLoader(
        TensorDataset(train_images), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    model = VQVAE(
        num_embeddings=args.num_embeddings,
        embedding_dim=args.embedding_dim,
        commitment_cost=args.commitment_cost,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, amsgrad=False)

    model.train()
    step = 0
    while step < args.steps:
        for (data,) in loader:
            optimizer.zero_grad()
            vq_loss, data_recon, perplexity, _ = model(data)
            recon_error = F.mse_loss(data_recon, data) / data_variance
            loss = recon_error + vq_loss
            loss.backward()
            optimizer.step()

            step += 1
            if step % 250 == 0:
                print(
                    f"step {step:5d}  recon error {recon_error.item():.4f}  "
                    f"vq loss {vq_loss.item():.4f}  perplexity {perplexity.item():.1f}"
                )
            if step == args.steps:
                break

    recon, perplexity, used = evaluate(model, test_images, data_variance)
    print(
        f"final: held-out normalised reconstruction error {recon:.4f} (mean image {mean_error:.3f})"
    )
    print(f"final: perplexity {perplexity:.1f}, codes in use {used} of {args.num_embeddings}")


if __name__ == "__main__":
    main()
