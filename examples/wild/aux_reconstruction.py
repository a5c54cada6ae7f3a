"""A classifier with an auxiliary reconstruction loss added every few steps: healthy.

In the manner of semi-supervised and multi-task code that regularises an encoder with a
decoder head (the "auxiliary task" of ladder-network and multi-task training loops): a
trunk of two ReLU layers feeds a classification head and a reconstruction head. The
classification loss is used at every step; the reconstruction term, which is more expensive
in the real setting, is computed by the training loop itself through
``model.recon_head(features)`` and added with weight 0.1 every ``--aux-every`` steps (50),
so the first observed steps never run that head. Adam; the loop prints the accuracy on a
held-out split and the reconstruction error each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/aux_reconstruction.py
    nndoctor check examples/wild/aux_reconstruction.py
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class AuxNet(nn.Module):
    def __init__(self, features: int = 16, classes: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, classes)
        self.recon_head = nn.Linear(hidden, features)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)  # (batch, hidden)
        return self.head(h), h


def make_data(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    mix = torch.randn(16, 16, generator=g) / 4
    z = torch.randn(n, 16, generator=g)
    x = z @ mix + z
    y = (z[:, :4] * torch.tensor([1.0, -1.0, 0.5, 2.0])).argmax(1)
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--aux-every", type=int, default=50)
    parser.add_argument("--aux-weight", type=float, default=0.1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x, y = make_data(6000, g)
    train = DataLoader(TensorDataset(x[:5000], y[:5000]), batch_size=64, shuffle=True)

    model = AuxNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = 0
    for epoch in range(args.epochs):
        model.train()
        for xb, yb in train:
            logits, features = model(xb)
            loss = F.cross_entropy(logits, yb)
            if step % args.aux_every == args.aux_every - 1:
                recon = model.recon_head(features)
                loss = loss + args.aux_weight * F.mse_loss(recon, xb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        model.eval()
        with torch.no_grad():
            logits, features = model(x[5000:])
            acc = (logits.argmax(1) == y[5000:]).float().mean().item()
            recon = F.mse_loss(model.recon_head(features), x[5000:]).item()
        print(f"epoch {epoch} loss {loss.item():.4f} accuracy {acc:.3f} reconstruction {recon:.3f}")


if __name__ == "__main__":
    main()
