"""Amortised clustering of 2-D point sets with a Set Transformer: healthy.

In the manner of the Set Transformer authors' PyTorch code (Lee et al. 2019,
``modules.py`` / ``models.py`` / ``mixture_of_mvns.py`` / ``run.py``): every training
batch is a fresh draw of 10 point sets of the same size N (N drawn per batch between 50
and 150, as the original draws it between N_min and N_max), each set sampled from its own
mixture of 4 diagonal Gaussians in the plane: weights from a flat Dirichlet, means uniform
in [-4, 4]^2, standard deviations uniform in [0.25, 0.6] per component and axis. A fixed
benchmark of 20 such batches is generated first, with the log-likelihood of its points
under the true mixtures.

``MAB`` is multi-head attention written out (queries, keys and values projected, split
into heads along the features and stacked on the batch axis, softmax of Q K^T / sqrt(dim_V),
the heads concatenated back, a residual and a ReLU feed-forward, optional LayerNorms);
``SAB`` is a MAB of a set with itself, ``ISAB`` attends through 16 learned inducing points
and ``PMA`` pools a set into 4 learned seed vectors. ``SetTransformer`` is two ISABs as the
encoder and PMA + two SABs + a Linear as the decoder (hidden width 64, 4 heads, LayerNorm
on), giving one row per mixture component: a weight logit, a mean and a log-variance per
axis. ``MixtureOfMVNs.log_prob`` writes the mixture log-likelihood by hand (diagonal
Gaussian log-densities plus log weights, ``logsumexp`` over the components, mean over the
points); the loss is its negative. Adam at 2e-3, divided by 10 at half the run, 2,000
steps. Top-level functions and ``main()`` with argparse; prints the training and benchmark
log-likelihood per point every 250 steps, and at the end the benchmark log-likelihood of
the network's mixtures against that of the true mixtures and of one Gaussian fitted to
each set.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/set_transformer_clustering.py
    nndoctor check examples/wild/set_transformer_clustering.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Dirichlet

# -----------------------------------------------------------------------------
# modules


class MAB(nn.Module):
    def __init__(self, dim_Q, dim_K, dim_V, num_heads, ln=False):
        super().__init__()
        self.dim_V = dim_V
        self.num_heads = num_heads
        self.fc_q = nn.Linear(dim_Q, dim_V)
        self.fc_k = nn.Linear(dim_K, dim_V)
        self.fc_v = nn.Linear(dim_K, dim_V)
        if ln:
            self.ln0 = nn.LayerNorm(dim_V)
            self.ln1 = nn.LayerNorm(dim_V)
        self.fc_o = nn.Linear(dim_V, dim_V)

    def forward(self, Q, K):
        Q = self.fc_q(Q)
        K, V = self.fc_k(K), self.fc_v(K)

        dim_split = self.dim_V // self.num_heads
        Q_ = torch.cat(Q.split(dim_split, 2), 0)
        K_ = torch.cat(K.split(dim_split, 2), 0)
        V_ = torch.cat(V.split(dim_split, 2), 0)

        A = torch.softmax(Q_.bmm(K_.transpose(1, 2)) / math.sqrt(self.dim_V), 2)
        O = torch.cat((Q_ + A.bmm(V_)).split(Q.size(0), 0), 2)
        O = O if getattr(self, "ln0", None) is None else self.ln0(O)
        O = O + F.relu(self.fc_o(O))
        O = O if getattr(self, "ln1", None) is None else self.ln1(O)
        return O


class SAB(nn.Module):
    def __init__(self, dim_in, dim_out, num_heads, ln=False):
        super().__init__()
        self.mab = MAB(dim_in, dim_in, dim_out, num_heads, ln=ln)

    def forward(self, X):
        return self.mab(X, X)


class ISAB(nn.Module):
    def __init__(self, dim_in, dim_out, num_heads, num_inds, ln=False):
        super().__init__()
        self.I = nn.Parameter(torch.Tensor(1, num_inds, dim_out))
        nn.init.xavier_uniform_(self.I)
        self.mab0 = MAB(dim_out, dim_in, dim_out, num_heads, ln=ln)
        self.mab1 = MAB(dim_in, dim_out, dim_out, num_heads, ln=ln)

    def forward(self, X):
        H = self.mab0(self.I.repeat(X.size(0), 1, 1), X)
        return self.mab1(X, H)


class PMA(nn.Module):
    def __init__(self, dim, num_heads, num_seeds, ln=False):
        super().__init__()
        self.S = nn.Parameter(torch.Tensor(1, num_seeds, dim))
        nn.init.xavier_uniform_(self.S)
        self.mab = MAB(dim, dim, dim, num_heads, ln=ln)

    def forward(self, X):
        return self.mab(self.S.repeat(X.size(0), 1, 1), X)


class SetTransformer(nn.Module):
    def __init__(
        self, dim_input, num_outputs, dim_output, num_inds=16, dim_hidden=64, num_heads=4, ln=True
    ):
        super().__init__()
        self.enc = nn.Sequential(
            ISAB(dim_input, dim_hidden, num_heads, num_inds, ln=ln),
            ISAB(dim_hidden, dim_hidden, num_heads, num_inds, ln=ln),
        )
        self.dec = nn.Sequential(
            PMA(dim_hidden, num_heads, num_outputs, ln=ln),
            SAB(dim_hidden, dim_hidden, num_heads, ln=ln),
            SAB(dim_hidden, dim_hidden, num_heads, ln=ln),
            nn.Linear(dim_hidden, dim_output),
        )

    def forward(self, X):
        return self.dec(self.enc(X))


# -----------------------------------------------------------------------------
# mixture of diagonal Gaussians


class MultivariateNormalDiag:
    def __init__(self, dim):
        self.dim = dim
        self.dim_params = 2 * dim

    def sample_params(self, shape):
        mu = -4.0 + 8.0 * torch.rand(*shape, self.dim)
        std = 0.25 + 0.35 * torch.rand(*shape, self.dim)
        return mu, 2 * std.log()

    def sample(self, params):
        mu, logvar = params
        return mu + (0.5 * logvar).exp() * torch.randn_like(mu)

    def log_prob(self, X, params):
        # X: (B, N, D); mu, logvar: (B, K, D) -> (B, N, K)
        mu, logvar = params
        diff = X.unsqueeze(2) - mu.unsqueeze(1)
        logvar = logvar.unsqueeze(1)
        ll = -0.5 * (math.log(2 * math.pi) + logvar + diff.pow(2) / logvar.exp())
        return ll.sum(-1)

    def parse(self, raw):
        pi = torch.softmax(raw[..., 0], -1)
        mu = raw[..., 1 : 1 + self.dim]
        logvar = raw[..., 1 + self.dim :].clamp(-8.0, 4.0)
        return pi, (mu, logvar)


class MixtureOfMVNs:
    def __init__(self, mvn):
        self.mvn = mvn

    def sample(self, B, N, K, return_gt=False):
        pi = Dirichlet(torch.ones(K)).sample((B,))
        labels = torch.multinomial(pi, N, replacement=True)
        mu, logvar = self.mvn.sample_params((B, K))
        idx = labels.unsqueeze(-1).expand(B, N, self.mvn.dim)
        X = self.mvn.sample((mu.gather(1, idx), logvar.gather(1, idx)))
        if return_gt:
            return X, labels, pi, (mu, logvar)
        return X

    def log_prob(self, X, pi, params, return_labels=False):
        ll = self.mvn.log_prob(X, params)
        ll = ll + (pi + 1e-10).log().unsqueeze(-2)
        if return_labels:
            return ll.logsumexp(-1).mean(), ll.argmax(-1)
        return ll.logsumexp(-1).mean()


def single_gaussian_ll(X):
    mu = X.mean(1, keepdim=True)
    var = X.var(1, unbiased=False, keepdim=True)
    ll = -0.5 * (math.log(2 * math.pi) + var.log() + (X - mu).pow(2) / var)
    return ll.sum(-1).mean()


# -----------------------------------------------------------------------------
# benchmark and training


def generate_benchmark(mog, args):
    bench = []
    for _ in range(args.num_bench):
        N = np.random.randint(args.N_min, args.N_max)
        X, labels, pi, params = mog.sample(args.B, N, args.K, return_gt=True)
        bench.append((X, mog.log_prob(X, pi, params).item(), single_gaussian_ll(X).item()))
    return bench


def test(net, mvn, mog, bench):
    net.eval()
    avg_ll = 0.0
    with torch.no_grad():
        for X, _, _ in bench:
            avg_ll += mog.log_prob(X, *mvn.parse(net(X))).item()
    return avg_ll / len(bench)


def main():
    parser = argparse.ArgumentParser(description="Set Transformer amortised clustering")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_steps", type=int, default=2000)
    parser.add_argument("--num_bench", type=int, default=20)
    parser.add_argument("--B", type=int, default=10)
    parser.add_argument("--N_min", type=int, default=50)
    parser.add_argument("--N_max", type=int, default=150)
    parser.add_argument("--K", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--test_freq", type=int, default=250)
    args = parser.parse_args()

    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    D = 2
    mvn = MultivariateNormalDiag(D)
    mog = MixtureOfMVNs(mvn)
    bench = generate_benchmark(mog, args)
    oracle_ll = sum(b[1] for b in bench) / len(bench)
    single_ll = sum(b[2] for b in bench) / len(bench)
    print(f"benchmark: oracle ll {oracle_ll:.4f}, one Gaussian per set {single_ll:.4f}")

    net = SetTransformer(D, args.K, 1 + mvn.dim_params)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)

    running_ll = 0.0
    for t in range(1, args.num_steps + 1):
        if t == int(0.5 * args.num_steps):
            optimizer.param_groups[0]["lr"] *= 0.1
        net.train()
        optimizer.zero_grad()
        N = np.random.randint(args.N_min, args.N_max)
        X = mog.sample(args.B, N, args.K)
        ll = mog.log_prob(X, *mvn.parse(net(X)))
        loss = -ll
        loss.backward()
        optimizer.step()
        running_ll += ll.item()

        if t % args.test_freq == 0:
            bench_ll = test(net, mvn, mog, bench)
            print(
                f"step {t}, lr {optimizer.param_groups[0]['lr']:.1e}, "
                f"train ll {running_ll / args.test_freq:.4f}, test ll {bench_ll:.4f} "
                f"(oracle {oracle_ll:.4f})"
            )
            running_ll = 0.0

    bench_ll = test(net, mvn, mog, bench)
    print(
        f"final: benchmark log-likelihood per point {bench_ll:.4f} (true mixtures "
        f"{oracle_ll:.4f}, one Gaussian per set {single_ll:.4f})"
    )


if __name__ == "__main__":
    main()
