"""SimCLR-style contrastive learning with InfoNCE: a healthy training script.

Learns representations of generated 32-d vectors without labels: each vector mixes a
class code with a large "style" component, and the two views of a sample re-draw part
of its style and add noise (the augmentations). A small MLP encoder plus projection
head (custom ``nn.Module``) is trained with a hand-written InfoNCE / NT-Xent loss
(cosine similarities over the 2N views, self-pairs masked, temperature 0.2, written
with ``logsumexp``); Adam, no scheduler; manual slicing of a shuffled index inside
``main()``, argparse. Progress is measured by nearest-neighbour accuracy of the
encoder features on held-out samples (labels never used for training).

Healthy: nndoctor should report no warning and no error.
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class code (8 classes, 6-d) and style (12-d, larger) mixed into 32 features."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randn(8, 6, generator=g) * 1.5
    labels = torch.randint(0, 8, (n,), generator=g)
    content = codes[labels] + 0.3 * torch.randn(n, 6, generator=g)
    style = 2.0 * torch.randn(n, 12, generator=g)
    mix_content = torch.randn(6, 32, generator=g) / 6**0.5
    mix_style = torch.randn(12, 32, generator=g) / 12**0.5
    return content @ mix_content + style @ mix_style, labels, mix_style


def augment(x: torch.Tensor, mix_style: torch.Tensor) -> torch.Tensor:
    """A view: re-draw part of the style and add a little noise."""
    style_shift = 1.5 * torch.randn(len(x), mix_style.shape[0]) @ mix_style
    return x + style_shift + 0.1 * torch.randn_like(x)


class SimCLR(nn.Module):
    def __init__(self, dim_in: int = 32, dim_feat: int = 64, dim_proj: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(dim_in, 128), nn.ReLU(), nn.Linear(128, dim_feat), nn.ReLU()
        )
        self.projector = nn.Sequential(nn.Linear(dim_feat, dim_feat), nn.ReLU(), nn.Linear(dim_feat, dim_proj))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder(x))


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    pos = sim[torch.arange(2 * n), positives]
    return (torch.logsumexp(sim, dim=1) - pos).mean()


@torch.no_grad()
def knn_accuracy(encoder: nn.Module, x_ref, y_ref, x_query, y_query) -> float:
    f_ref = F.normalize(encoder(x_ref), dim=1)
    f_query = F.normalize(encoder(x_query), dim=1)
    nearest = (f_query @ f_ref.t()).argmax(dim=1)
    return (y_ref[nearest] == y_query).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.2)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x, labels, mix_style = make_data(5000, args.seed)
    x = (x - x.mean(dim=0)) / x.std(dim=0)
    x_train, x_ref, x_query = x[:4000], x[4000:4500], x[4500:]
    y_ref, y_query = labels[4000:4500], labels[4500:]
    mix_style = mix_style / x.std(dim=0).mean()

    model = SimCLR()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
    raw = (F.normalize(x_query, dim=1) @ F.normalize(x_ref, dim=1).t()).argmax(dim=1)
    print(f"nearest-neighbour accuracy on raw inputs: {(y_ref[raw] == y_query).float().mean():.3f}")

    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        total, batches = 0.0, 0
        for i in range(0, len(x_train) - args.batch_size + 1, args.batch_size):
            xb = x_train[perm[i : i + args.batch_size]]
            z1, z2 = model(augment(xb, mix_style)), model(augment(xb, mix_style))
            loss = info_nce(z1, z2, args.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        model.eval()
        acc = knn_accuracy(model.encoder, x_ref, y_ref, x_query, y_query)
        print(f"epoch {epoch + 1}: InfoNCE {total / batches:.4f}  kNN accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
