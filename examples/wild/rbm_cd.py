"""A Bernoulli restricted Boltzmann machine trained with contrastive divergence: healthy.

In the manner of the classic PyTorch RBM repositories: the data are noisy 8x8
bars-and-stripes images generated in the script (each image is either a set of full
vertical bars or a set of full horizontal stripes, every line on with probability 1/2,
then 2% of the pixels flipped); the bars are generated first, then the stripes. ``RBM``
is an ``nn.Module`` holding the weight matrix ``W`` and the visible and hidden biases as
``nn.Parameter``s; its ``forward`` runs CD-k (k = 1) Gibbs sampling ``v -> h -> v'``
starting from the data, with binary samples drawn as ``relu(sign(p - uniform))``. The
loss is the mean free energy of the data minus the mean free energy of the (detached)
negative samples, so that ``loss.backward()`` yields the CD gradient; it is not a
likelihood and can be negative. SGD with momentum, a shuffled ``DataLoader`` over a
``TensorDataset``; a ``main()`` with argparse; prints the loss and the reconstruction
error (squared error of the mean-field reconstruction, per image) on the training set,
and on a held-out set the reconstruction error and the pseudo-log-likelihood (exact: the
sum over all 64 pixels of log p(v_i | v_rest), nats per image) every few epochs.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/rbm_cd.py
    nndoctor check examples/wild/rbm_cd.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def bars_and_stripes(n: int, size: int, noise: float, generator: torch.Generator) -> torch.Tensor:
    n_bars = n // 2
    columns = (torch.rand(n_bars, 1, size, generator=generator) < 0.5).float()
    rows = (torch.rand(n - n_bars, size, 1, generator=generator) < 0.5).float()
    bars = columns.expand(n_bars, size, size)
    stripes = rows.expand(n - n_bars, size, size)
    images = torch.cat([bars, stripes]).reshape(n, size * size)
    flip = (torch.rand(images.shape, generator=generator) < noise).float()
    return (images + flip) % 2


class RBM(nn.Module):
    def __init__(self, n_vis: int = 64, n_hid: int = 64, k: int = 1) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(n_hid, n_vis) * 1e-2)
        self.v_bias = nn.Parameter(torch.zeros(n_vis))
        self.h_bias = nn.Parameter(torch.zeros(n_hid))
        self.k = k

    def sample_from_p(self, p: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.sign(p - torch.rand_like(p)))

    def v_to_h(self, v: torch.Tensor):
        p_h = torch.sigmoid(F.linear(v, self.W, self.h_bias))
        return p_h, self.sample_from_p(p_h)

    def h_to_v(self, h: torch.Tensor):
        p_v = torch.sigmoid(F.linear(h, self.W.t(), self.v_bias))
        return p_v, self.sample_from_p(p_v)

    def forward(self, v: torch.Tensor):
        _, h = self.v_to_h(v)
        for _ in range(self.k):
            _, v_k = self.h_to_v(h)
            _, h = self.v_to_h(v_k)
        return v, v_k

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        vbias_term = v.mv(self.v_bias)
        hidden_term = F.softplus(F.linear(v, self.W, self.h_bias)).sum(dim=1)
        return -hidden_term - vbias_term

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        p_h, _ = self.v_to_h(v)
        p_v, _ = self.h_to_v(p_h)
        return p_v

    def pseudo_log_likelihood(self, v: torch.Tensor) -> torch.Tensor:
        fe = self.free_energy(v)
        total = torch.zeros(v.shape[0])
        for i in range(v.shape[1]):
            v_flip = v.clone()
            v_flip[:, i] = 1 - v_flip[:, i]
            total += F.logsigmoid(self.free_energy(v_flip) - fe)
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description="RBM with CD-1 on bars and stripes")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    g = torch.Generator().manual_seed(args.seed)
    train_data = bars_and_stripes(args.n_train, 8, 0.02, g)
    test_data = bars_and_stripes(1000, 8, 0.02, g)
    train_loader = DataLoader(TensorDataset(train_data), batch_size=args.batch_size, shuffle=True)

    rbm = RBM(n_vis=64, n_hid=args.n_hidden, k=1)
    optimizer = torch.optim.SGD(rbm.parameters(), lr=args.lr, momentum=args.momentum)

    for epoch in range(1, args.epochs + 1):
        total_loss, total_recon = 0.0, 0.0
        for (v,) in train_loader:
            v, v_model = rbm(v)
            loss = rbm.free_energy(v).mean() - rbm.free_energy(v_model.detach()).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                recon = (v - rbm.reconstruct(v)).pow(2).sum(dim=1).mean()
            total_loss += loss.item() * len(v)
            total_recon += recon.item() * len(v)

        if epoch % 5 == 0 or epoch == 1:
            with torch.no_grad():
                test_recon = (test_data - rbm.reconstruct(test_data)).pow(2).sum(dim=1).mean()
                test_pll = rbm.pseudo_log_likelihood(test_data).mean()
            n = len(train_data)
            print(
                f"epoch {epoch:3d}: loss {total_loss / n:7.3f}, train recon error "
                f"{total_recon / n:.3f}, test recon error {test_recon.item():.3f}, "
                f"test pseudo-log-likelihood {test_pll.item():.2f} nats"
            )


if __name__ == "__main__":
    main()
