"""A convolutional denoising autoencoder on generated images: healthy.

In the manner of the denoising-autoencoder tutorials: 16x16 grey images of random
rectangles and crosses in [0, 1] are generated once; every batch is corrupted afresh
with Gaussian noise (std 0.3, clipped to [0, 1]) and the network learns to return the
clean image. ``ConvAutoencoder`` (a strided ``Conv2d`` encoder, a ``ConvTranspose2d``
decoder whose last layer returns logits) is trained with ``nn.BCEWithLogitsLoss``
against the clean pixels; Adam; a ``DataLoader``; the training loop at top level
with argparse. Prints the training loss and the validation PSNR of the noisy and
the denoised images.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/denoising_ae.py
    nndoctor check examples/compat/denoising_ae.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=6)
parser.add_argument("--noise", type=float, default=0.3)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)


def make_shapes(n: int) -> torch.Tensor:
    images = torch.zeros(n, 1, 16, 16)
    for i in range(n):
        y0, x0 = torch.randint(0, 10, (2,)).tolist()
        h, w = torch.randint(3, 7, (2,)).tolist()
        if torch.rand(()) < 0.5:
            images[i, 0, y0 : y0 + h, x0 : x0 + w] = 0.5 + 0.5 * torch.rand(())
        else:
            images[i, 0, y0 + h // 2, x0 : x0 + w] = 1.0
            images[i, 0, y0 : y0 + h, x0 + w // 2] = 1.0
    return images


class ConvAutoencoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),   # 8x8
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),  # 4x4
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1), nn.ReLU(),  # 8x8
            nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),              # 16x16 logits
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / (a - b).pow(2).mean().item())


train_images, val_images = make_shapes(4000), make_shapes(400)
loader = DataLoader(TensorDataset(train_images), batch_size=64, shuffle=True)
model = ConvAutoencoder()
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

for epoch in range(args.epochs):
    total = 0.0
    for (clean,) in loader:
        noisy = (clean + args.noise * torch.randn_like(clean)).clamp(0, 1)
        optimizer.zero_grad()
        loss = criterion(model(noisy), clean)
        loss.backward()
        optimizer.step()
        total += loss.item()
    with torch.no_grad():
        noisy_val = (val_images + args.noise * torch.randn_like(val_images)).clamp(0, 1)
        denoised = torch.sigmoid(model(noisy_val))
    print(f"epoch {epoch + 1}: loss {total / len(loader):.4f}, PSNR noisy {psnr(noisy_val, val_images):.2f} dB, "
          f"denoised {psnr(denoised, val_images):.2f} dB")
