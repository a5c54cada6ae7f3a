"""A variational autoencoder with its ELBO written in plain torch: a healthy training script.

Trains ``VAE`` (a custom ``nn.Module``: an MLP encoder to a 2-d Gaussian latent,
a reparameterised sample, an MLP decoder) on 16-d points that lie near a 2-d
manifold (a tanh of a random linear map of 2-d Gaussians, plus noise). The loss is
the negative ELBO, reconstruction sum of squares plus the KL term, written by hand,
so nndoctor replays the script for its experiments. The forward pass is random by
design (the sampled latent): nndoctor compares forwards under the same noise and
does not ask the loss to reach zero. ``DataLoader`` over a ``TensorDataset``, Adam,
``main()`` with argparse.

Healthy: nndoctor should report no warning and no error.

    python examples/healthy_vae.py --epochs 10
    nndoctor check examples/healthy_vae.py
"""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class VAE(nn.Module):
    def __init__(self, features: int = 16, latent: int = 2, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, features))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (N, latent) each
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # the reparameterisation trick
        return self.decoder(z), mu, logvar


def negative_elbo(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Reconstruction sum of squares plus KL(q(z|x) || N(0, I)), averaged over the batch."""
    reconstruction = ((recon - x) ** 2).sum()
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()
    return (reconstruction + kl) / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    latent = torch.randn(4096, 2, generator=g)
    x = torch.tanh(latent @ torch.randn(2, 16, generator=g)) + 0.05 * torch.randn(4096, 16, generator=g)
    loader = DataLoader(TensorDataset(x), batch_size=64, shuffle=True)
    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(args.epochs):
        for (xb,) in loader:
            loss = negative_elbo(xb, *model(xb))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
