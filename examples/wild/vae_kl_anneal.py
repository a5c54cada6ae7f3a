"""A convolutional VAE on binary shape images with KL annealing: healthy.

In the manner of the PyTorch VAE example, made convolutional and with the KL warm-up of
the "posterior collapse" tutorials: 16x16 binary images of one shape each (a filled
disc, a filled square, a ring or a plus sign of random size and position, plus a few
flipped pixels) are generated in code. ``ConvVAE`` (a custom ``nn.Module``): two strided
``Conv2d`` + ReLU layers to ``fc_mu`` and ``fc_logvar`` (an 8-d latent),
``reparameterize`` with ``std = exp(0.5 * logvar)``, a ``Linear`` and two
``ConvTranspose2d`` layers back to 16x16 logits, no sigmoid. The loss is
``nn.BCEWithLogitsLoss(reduction="sum")`` on the pixels plus ``beta`` times the analytic
KL divergence, summed over the batch as in the example, with ``beta`` rising linearly
from 0 to 1 over the first 600 steps. Adam; a ``DataLoader`` over a ``TensorDataset``;
``train`` / ``test`` functions and a top-level script with argparse. Prints the
training loss per image, ``beta`` and the test ELBO (with ``beta`` = 1) each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/vae_kl_anneal.py
    nndoctor check examples/wild/vae_kl_anneal.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_shapes(n: int, g: torch.Generator) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    kind = torch.randint(0, 4, (n, 1, 1), generator=g)
    cy = 4 + 8 * torch.rand(n, 1, 1, generator=g)
    cx = 4 + 8 * torch.rand(n, 1, 1, generator=g)
    r = 2 + 2.5 * torch.rand(n, 1, 1, generator=g)
    dist = torch.sqrt((ys - cy) ** 2 + (xs - cx) ** 2)
    cheb = torch.maximum((ys - cy).abs(), (xs - cx).abs())
    disc = dist <= r
    square = cheb <= r * 0.85
    ring = (dist <= r) & (dist >= r - 1.3)
    plus = (((ys - cy).abs() <= 0.8) | ((xs - cx).abs() <= 0.8)) & (cheb <= r)
    images = torch.where(kind == 0, disc, torch.where(kind == 1, square, torch.where(kind == 2, ring, plus)))
    flips = torch.rand(n, 16, 16, generator=g) < 0.01
    return (images ^ flips).float().unsqueeze(1)


class ConvVAE(nn.Module):
    def __init__(self, latent_dim: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1),  # 8x8
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1),  # 4x4
            nn.ReLU(),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(64 * 4 * 4, latent_dim)
        self.fc_logvar = nn.Linear(64 * 4 * 4, latent_dim)
        self.fc_dec = nn.Linear(latent_dim, 64 * 4 * 4)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # 8x8
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1),  # 16x16
        )

    def encode(self, x):
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h = torch.relu(self.fc_dec(z)).view(-1, 64, 4, 4)
        return self.decoder(h)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


reconstruction_loss = nn.BCEWithLogitsLoss(reduction="sum")


def loss_function(recon_logits, x, mu, logvar, beta):
    bce = reconstruction_loss(recon_logits, x)
    # 0.5 * sum(1 + log(sigma^2) - mu^2 - sigma^2), Kingma and Welling, appendix B
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + beta * kld, bce, kld


def train(epoch, step):
    model.train()
    train_loss = 0.0
    for (data,) in train_loader:
        beta = min(1.0, step / args.anneal_steps)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss, _, _ = loss_function(recon_batch, data, mu, logvar, beta)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
        step += 1
    print(f"====> Epoch {epoch}: train loss {train_loss / len(train_loader.dataset):.2f} per image, beta {beta:.2f}")
    return step


def test(epoch):
    model.eval()
    bce_sum = kld_sum = 0.0
    with torch.no_grad():
        for (data,) in test_loader:
            recon_batch, mu, logvar = model(data)
            _, bce, kld = loss_function(recon_batch, data, mu, logvar, 1.0)
            bce_sum += bce.item()
            kld_sum += kld.item()
    n = len(test_loader.dataset)
    print(f"      test ELBO {-(bce_sum + kld_sum) / n:.2f} (reconstruction {bce_sum / n:.2f}, KL {kld_sum / n:.2f})")


parser = argparse.ArgumentParser(description="convolutional VAE with KL annealing")
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--anneal-steps", type=int, default=600)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
g = torch.Generator().manual_seed(args.seed)
train_loader = DataLoader(TensorDataset(make_shapes(6000, g)), batch_size=args.batch_size, shuffle=True)
test_loader = DataLoader(TensorDataset(make_shapes(1000, g)), batch_size=500)

model = ConvVAE()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

step = 0
for epoch in range(1, args.epochs + 1):
    step = train(epoch, step)
    test(epoch)
