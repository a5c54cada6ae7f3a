"""A joint energy-based model (JEM) on labelled 2-D blobs and rings: healthy.

In the manner of wgrathwohl/JEM (``train_wrn_ebm.py``, Grathwohl et al. 2019, "Your
classifier is secretly an energy-based model"), scaled down to the plane: the data are
generated 2-D points of four classes (a Gaussian blob at the origin, a ring of radius
1.6, and the upper and lower halves of a ring of radius 3.2, each with Gaussian jitter),
4,000 for training and 2,000 for testing. ``CCF`` is an ``nn.Module`` whose ``classify``
is an MLP 2-128-128-128-4 with SiLU activations giving the class logits f(x), and whose
``forward`` returns their ``logsumexp``, the negative energy -E(x).

As in the repository, two cycling ``DataLoader`` iterators draw the batches, one for
p(x) (``dload_train``) and one for p(y|x) (``dload_train_labeled``). Samples of the
model come from short-run SGLD: a replay buffer of 10,000 points initialised uniformly
on the square [-4, 4]^2, of which a batch is drawn each step, each point re-initialised
from the uniform noise with probability 0.05 (``reinit_freq``); 20 steps of
``x += sgld_lr * grad_x (-E(x)) + sgld_std * noise`` with the gradient from
``torch.autograd.grad``, the model in eval mode during sampling, the final samples
written back to the buffer. The loss is the cross-entropy of the labelled batch plus
-(f(x_data).logsumexp - f(x_sampled).logsumexp), i.e. E(x_data) - E(x_sampled) (negative
when the data sit lower than the samples); Adam at 1e-3 for 1,200 iterations, batch 64.

Top-level functions and ``main()`` with argparse; prints the cross-entropy, the energy
term and the batch accuracy every 200 iterations, then the test accuracy (chance: 0.25),
the energy gap E(uniform noise) - E(test data), and the mean distance to the nearest
training point of the replay buffer and of 1,000 fresh 100-step SGLD chains, against
that of uniform noise.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/jem_energy_model.py
    nndoctor check examples/wild/jem_energy_model.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES = 4
BOX = 4.0


def make_data(n, g):
    """Four classes in the plane: a blob, an inner ring and two halves of an outer ring."""
    y = torch.randint(0, N_CLASSES, (n,), generator=g)
    angle = 2 * math.pi * torch.rand(n, generator=g)
    radius = torch.zeros(n)
    radius[y == 1] = 1.6
    radius[y >= 2] = 3.2
    # class 2 is the upper half of the outer ring, class 3 the lower half
    angle = torch.where(y == 2, angle / 2, angle)
    angle = torch.where(y == 3, math.pi + angle / 2, angle)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    jitter = torch.where(y == 0, 0.45, 0.15)[:, None]
    x = x + jitter * torch.randn(n, 2, generator=g)
    return x, y


def cycle(loader):
    while True:
        yield from loader


class CCF(nn.Module):
    """A classifier whose logits' logsumexp is the negative energy of x."""

    def __init__(self, n_classes=N_CLASSES, hidden=128):
        super().__init__()
        self.f = nn.Sequential(
            nn.Linear(2, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
        )
        self.class_output = nn.Linear(hidden, n_classes)

    def classify(self, x):
        return self.class_output(self.f(x))

    def forward(self, x, y=None):
        logits = self.classify(x)
        if y is None:
            return logits.logsumexp(1)
        return torch.gather(logits, 1, y[:, None])


def init_random(n):
    return torch.empty(n, 2).uniform_(-BOX, BOX)


def sample_p_0(replay_buffer, bs, reinit_freq):
    buffer_size = len(replay_buffer)
    inds = torch.randint(0, buffer_size, (bs,))
    buffer_samples = replay_buffer[inds]
    random_samples = init_random(bs)
    choose_random = (torch.rand(bs) < reinit_freq).float()[:, None]
    samples = choose_random * random_samples + (1 - choose_random) * buffer_samples
    return samples, inds


def sgld(f, x_k, n_steps, sgld_lr, sgld_std):
    x_k = x_k.clone().requires_grad_(True)
    for _ in range(n_steps):
        f_prime = torch.autograd.grad(f(x_k).sum(), [x_k], retain_graph=True)[0]
        x_k.data += sgld_lr * f_prime + sgld_std * torch.randn_like(x_k)
    return x_k.detach()


def sample_q(f, replay_buffer, bs, args):
    """Short-run SGLD from the replay buffer; the final samples go back into the buffer."""
    init_sample, buffer_inds = sample_p_0(replay_buffer, bs, args.reinit_freq)
    f.eval()
    final_samples = sgld(f, init_sample, args.n_steps, args.sgld_lr, args.sgld_std)
    f.train()
    replay_buffer[buffer_inds] = final_samples
    return final_samples


def nearest_distance(points, data):
    return torch.cdist(points, data).min(dim=1).values.mean().item()


@torch.no_grad()
def accuracy(f, x, y):
    f.eval()
    acc = (f.classify(x).argmax(1) == y).float().mean().item()
    f.train()
    return acc


def main():
    parser = argparse.ArgumentParser(description="JEM on 2-D blobs and rings")
    parser.add_argument("--n-iters", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-steps", type=int, default=20)
    parser.add_argument("--sgld-lr", type=float, default=0.05)
    parser.add_argument("--sgld-std", type=float, default=0.01)
    parser.add_argument("--buffer-size", type=int, default=10000)
    parser.add_argument("--reinit-freq", type=float, default=0.05)
    parser.add_argument("--print-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_data(4000, g)
    x_test, y_test = make_data(2000, g)

    dset = TensorDataset(x_train, y_train)
    dload_train = cycle(DataLoader(dset, batch_size=args.batch_size, shuffle=True, drop_last=True))
    dload_train_labeled = cycle(
        DataLoader(dset, batch_size=args.batch_size, shuffle=True, drop_last=True)
    )

    f = CCF()
    optim = torch.optim.Adam(f.parameters(), lr=args.lr, betas=(0.9, 0.999))
    replay_buffer = init_random(args.buffer_size)

    for it in range(1, args.n_iters + 1):
        x_p_d, _ = next(dload_train)
        x_lab, y_lab = next(dload_train_labeled)

        x_q = sample_q(f, replay_buffer, args.batch_size, args)
        fp = f(x_p_d).mean()
        fq = f(x_q).mean()
        l_p_x = -(fp - fq)

        logits = f.classify(x_lab)
        l_p_y_given_x = nn.functional.cross_entropy(logits, y_lab)
        loss = l_p_x + l_p_y_given_x

        optim.zero_grad()
        loss.backward()
        optim.step()

        if it % args.print_every == 0:
            acc = (logits.argmax(1) == y_lab).float().mean().item()
            print(
                f"iter {it:4d}  p(y|x) {l_p_y_given_x.item():.4f}  p(x) {l_p_x.item():+.4f}  "
                f"fp {fp.item():+.3f}  fq {fq.item():+.3f}  batch acc {acc:.3f}"
            )

    noise = init_random(2000)
    with torch.no_grad():
        gap = f(x_test).mean().item() - f(noise).mean().item()
    f.eval()
    fresh = sgld(f, init_random(1000), 100, args.sgld_lr, args.sgld_std)
    print(f"test accuracy {accuracy(f, x_test, y_test):.3f}  (chance {1 / N_CLASSES:.2f})")
    print(f"energy gap E(noise) - E(test data) {gap:.3f}")
    print(
        f"mean distance to nearest data point: uniform noise {nearest_distance(noise, x_train):.3f}"
        f"  replay buffer {nearest_distance(replay_buffer, x_train):.3f}"
        f"  fresh 100-step SGLD {nearest_distance(fresh, x_train):.3f}"
    )


if __name__ == "__main__":
    main()
