"""MADE: a masked autoencoder as a density model of binary vectors: healthy.

In the manner of Karpathy's ``pytorch-made`` (``made.py`` and ``run.py``; Germain et al.
2015): the data are 28-bit binary vectors drawn from a random sparse Bayesian network
written in the script: the bits are visited in a random order and each one is a Bernoulli
whose logit is a bias plus strong signed weights (1.5 to 3.5) on up to three bits drawn
before it, so the bits are correlated in long chains and in clusters. 20,000 vectors are
drawn for training and 5,000 for testing; the log-likelihood of the source is known
exactly, so its entropy (the best reachable NLL) is printed with the marginals baseline.

``MaskedLinear`` subclasses ``nn.Linear`` and keeps its 0/1 connectivity mask in a
registered buffer that ``set_mask`` fills from numpy and ``forward`` multiplies into the
weight (``F.linear(input, self.mask * self.weight, self.bias)``). ``MADE`` stacks three of
them with ReLUs (28 -> 200 -> 200 -> 28); ``update_masks`` draws an input ordering and a
degree for every hidden unit from a ``RandomState`` seeded by the index of the current
mask set (``num_masks`` = 2 of them, cycled; order-agnostic training), connects a unit to
the units of the layer below whose degree is at most its own and the outputs strictly to
the hidden units of lower degree, so the logit of bit d depends only on the bits before d
in the ordering. ``run_epoch(split)`` walks the (shuffled) data in batches of 100 and
resamples the masks every ``resample_every`` (20) steps in training and for every batch at
test (where the logits of ``samples`` mask sets may be averaged; one by default); the loss
is ``binary_cross_entropy_with_logits(..., reduction="sum") / B``, the NLL in nats per
example. Adam (lr 1e-3, weight decay 1e-4) with a ``StepLR`` that cuts the lr tenfold after
15 of the 20 epochs. Top-level functions and
``main()`` with argparse; prints the train and test NLL every epoch, then the final test
NLL against the independent-bits (marginals) baseline and the source entropy, and the
mean NLL under the source of 2,000 vectors sampled from the model bit by bit (against
vectors sampled from the marginals).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/made_density.py
    nndoctor check examples/wild/made_density.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------------------
# data: a random sparse Bayesian network over binary variables


def make_network(rng, nin, max_parents=3):
    order = rng.permutation(nin)
    parents, weights, biases = [], [], []
    for k in range(nin):
        n_par = min(k, rng.integers(1, max_parents + 1))
        par = rng.choice(order[:k], size=n_par, replace=False) if n_par else np.zeros(0, int)
        w = rng.uniform(1.5, 3.5, size=n_par) * rng.choice([-1.0, 1.0], size=n_par)
        parents.append(par)
        weights.append(w)
        biases.append(-0.5 * w.sum() + rng.normal(0.0, 0.5))
    return order, parents, weights, biases


def sample_network(rng, net, n):
    order, parents, weights, biases = net
    x = np.zeros((n, len(order)), dtype=np.float32)
    for k, i in enumerate(order):
        logit = biases[k] + x[:, parents[k]] @ weights[k]
        x[:, i] = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return x


def network_nll(net, x):
    """-log p(x) under the source, per example (nats)."""
    order, parents, weights, biases = net
    nll = np.zeros(len(x))
    for k, i in enumerate(order):
        logit = biases[k] + x[:, parents[k]] @ weights[k]
        nll += np.logaddexp(0.0, -logit) * x[:, i] + np.logaddexp(0.0, logit) * (1 - x[:, i])
    return nll


# ------------------------------------------------------------------------------
# model


class MaskedLinear(nn.Linear):
    """same as Linear except has a configurable mask on the weights"""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask):
        self.mask.data.copy_(torch.from_numpy(mask.astype(np.uint8).T))

    def forward(self, input):
        return F.linear(input, self.mask * self.weight, self.bias)


class MADE(nn.Module):
    def __init__(self, nin, hidden_sizes, nout, num_masks=1, natural_ordering=False):
        super().__init__()
        self.nin = nin
        self.nout = nout
        self.hidden_sizes = hidden_sizes
        assert self.nout % self.nin == 0, "nout must be integer multiple of nin"

        self.net = []
        hs = [nin] + hidden_sizes + [nout]
        for h0, h1 in zip(hs, hs[1:], strict=False):
            self.net.extend([MaskedLinear(h0, h1), nn.ReLU()])
        self.net.pop()  # pop the last ReLU for the output layer
        self.net = nn.Sequential(*self.net)

        self.natural_ordering = natural_ordering
        self.num_masks = num_masks
        self.seed = 0  # for cycling through num_masks orderings

        self.m = {}
        self.update_masks()

    def update_masks(self):
        if self.m and self.num_masks == 1:
            return  # only a single seed, skip for efficiency
        L = len(self.hidden_sizes)

        # fetch the next seed and construct a random stream
        rng = np.random.RandomState(self.seed)
        self.seed = (self.seed + 1) % self.num_masks

        # sample the order of the inputs and the connectivity of all neurons
        self.m[-1] = np.arange(self.nin) if self.natural_ordering else rng.permutation(self.nin)
        for l in range(L):
            self.m[l] = rng.randint(self.m[l - 1].min(), self.nin - 1, size=self.hidden_sizes[l])

        # construct the mask matrices
        masks = [self.m[l - 1][:, None] <= self.m[l][None, :] for l in range(L)]
        masks.append(self.m[L - 1][:, None] < self.m[-1][None, :])

        # handle the case where nout = nin * k, for integer k > 1
        if self.nout > self.nin:
            k = int(self.nout / self.nin)
            masks[-1] = np.concatenate([masks[-1]] * k, axis=1)

        layers = [l for l in self.net.modules() if isinstance(l, MaskedLinear)]
        for l, m in zip(layers, masks, strict=True):
            l.set_mask(m)

    def forward(self, x):
        return self.net(x)


# ------------------------------------------------------------------------------


def run_epoch(model, opt, x, split, args, upto=None):
    torch.set_grad_enabled(split == "train")
    model.train() if split == "train" else model.eval()
    nsamples = 1 if split == "train" else args.samples
    N, D = x.size()
    B = 100
    nsteps = N // B if upto is None else min(N // B, upto)
    perm = torch.randperm(N) if split == "train" else torch.arange(N)
    lossfs = []
    for step in range(nsteps):
        xb = x[perm[step * B : step * B + B]]
        # get the logits, potentially run the same batch a number of times, resampling each time
        xbhat = torch.zeros_like(xb)
        for _ in range(nsamples):
            # perform order/connectivity-agnostic training by resampling the masks
            if step % args.resample_every == 0 or split == "test":
                model.update_masks()
            xbhat += model(xb)
        xbhat /= nsamples

        # evaluate the binary cross entropy loss
        loss = F.binary_cross_entropy_with_logits(xbhat, xb, reduction="sum") / B
        lossf = loss.item()
        lossfs.append(lossf)

        # backward/update
        if split == "train":
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.set_grad_enabled(True)
    return float(np.mean(lossfs))


@torch.no_grad()
def sample_made(model, n, nin):
    """Draw n vectors bit by bit in the ordering of the current mask set."""
    model.eval()
    x = torch.zeros(n, nin)
    for i in np.argsort(model.m[-1]):
        p = torch.sigmoid(model(x)[:, i])
        x[:, i] = torch.bernoulli(p)
    return x


def main():
    parser = argparse.ArgumentParser(description="MADE on a random Bayesian network")
    parser.add_argument("--nin", type=int, default=28, help="number of binary variables")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=5000)
    parser.add_argument("-q", "--hiddens", type=str, default="200,200")
    parser.add_argument("-n", "--num-masks", type=int, default=2)
    parser.add_argument("-r", "--resample-every", type=int, default=20)
    parser.add_argument("-s", "--samples", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    source = make_network(rng, args.nin)
    xtr = torch.from_numpy(sample_network(rng, source, args.n_train))
    xte = torch.from_numpy(sample_network(rng, source, args.n_test))
    entropy = network_nll(source, xte.numpy()).mean()
    marg = xtr.mean(0).clamp(1e-3, 1 - 1e-3)
    baseline = -(xte * marg.log() + (1 - xte) * (1 - marg).log()).sum(1).mean().item()
    print(f"{args.nin} bits, {len(xtr)} train / {len(xte)} test vectors")
    print(f"marginals baseline {baseline:.3f} nats, source entropy {entropy:.3f} nats")

    hidden_list = list(map(int, args.hiddens.split(",")))
    model = MADE(args.nin, hidden_list, args.nin, num_masks=args.num_masks)
    print("number of model parameters:", sum(np.prod(p.size()) for p in model.parameters()))

    opt = torch.optim.Adam(model.parameters(), args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.1)

    for epoch in range(args.epochs):
        train_loss = run_epoch(model, opt, xtr, "train", args)
        scheduler.step()
        test_loss = run_epoch(model, opt, xte, "test", args, upto=10)
        print(f"epoch {epoch + 1:2d}  train NLL {train_loss:.3f}  test NLL {test_loss:.3f}")

    test_loss = run_epoch(model, opt, xte, "test", args)
    samples = sample_made(model, 2000, args.nin)
    sample_nll = network_nll(source, samples.numpy()).mean()
    marg_samples = (torch.rand(2000, args.nin) < marg).float()
    marg_nll = network_nll(source, marg_samples.numpy()).mean()
    print(
        f"final: test NLL {test_loss:.3f} nats per example "
        f"(marginals {baseline:.3f}, source entropy {entropy:.3f})"
    )
    print(
        f"samples: NLL under the source {sample_nll:.3f} nats "
        f"(marginal samples {marg_nll:.3f}, data {entropy:.3f})"
    )


if __name__ == "__main__":
    main()
