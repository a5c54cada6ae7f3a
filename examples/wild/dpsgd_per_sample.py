"""DP-SGD by hand with torch.func per-sample gradients: healthy.

In the manner of the Opacus-free DP-SGD tutorials and the ``torch.func`` per-sample-gradients
tutorial: the data are generated patient records, 16 standardised measurements drawn
around three prototypes for each of five diagnoses (a mixture of 15 Gaussians whose classes
are not linearly separable), with 5% of the labels flipped at random; 20,000 records for
training and 5,000 held out. The model is a small ``nn.Module`` MLP 16-64-64-5 with ReLU.

There is no optimizer object and no ``loss.backward()``: the parameters are taken out as
``params = {k: v.detach() for k, v in model.named_parameters()}`` (the same storage as the
model's), the loss of ONE sample is written with ``torch.func.functional_call`` (the sample
unsqueezed into a batch of one, ``F.cross_entropy``), and ``vmap(grad(compute_loss),
in_dims=(None, 0, 0))`` gives every sample's gradient. Each step draws a batch by Poisson
sampling (every record taken with probability q = 256 / 20,000), clips every sample's
gradient to an L2 norm of at most C = 1 over all the parameters together, sums them, adds
Gaussian noise of standard deviation sigma * C (sigma = 1.0) to the sum and divides by the
expected batch size; the parameters are then updated by hand, ``p.sub_(lr * g)`` under
``torch.no_grad()``, with lr = 0.5 for 12 epochs (about 940 steps). No privacy accounting
(epsilon is not computed). Top-level functions and ``main()`` with argparse; prints the
training loss on a fixed subset every 2 epochs and the test accuracy, against the 20%
accuracy of chance.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/dpsgd_per_sample.py
    nndoctor check examples/wild/dpsgd_per_sample.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

N_FEATURES, N_CLASSES, PROTOTYPES_PER_CLASS = 16, 5, 3


def make_prototypes(g):
    return 1.0 * torch.randn(N_CLASSES, PROTOTYPES_PER_CLASS, N_FEATURES, generator=g)


def sample_records(n, prototypes, g, label_noise=0.05):
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    which = torch.randint(0, PROTOTYPES_PER_CLASS, (n,), generator=g)
    x = prototypes[labels, which] + torch.randn(n, N_FEATURES, generator=g)
    flip = torch.rand(n, generator=g) < label_noise
    labels = torch.where(flip, torch.randint(0, N_CLASSES, (n,), generator=g), labels)
    return x, labels


class MLP(nn.Module):
    def __init__(self, n_in=N_FEATURES, hidden=64, n_out=N_CLASSES):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, n_out)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def poisson_batch(n, sample_rate, g):
    mask = torch.rand(n, generator=g) < sample_rate
    return mask.nonzero().squeeze(1)


def clip_and_sum(per_sample_grads, max_norm):
    """Clip each sample's gradient (over all parameters together) to max_norm, then sum."""
    norms = torch.stack(
        [g.reshape(g.shape[0], -1).norm(2, dim=1) for g in per_sample_grads.values()], dim=1
    ).norm(2, dim=1)
    clip_factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    return {
        name: torch.einsum("i,i...->...", clip_factor, g) for name, g in per_sample_grads.items()
    }


@torch.no_grad()
def evaluate(model, x, y):
    logits = model(x)
    loss = F.cross_entropy(logits, y).item()
    acc = (logits.argmax(dim=1) == y).float().mean().item()
    return loss, acc


def main():
    parser = argparse.ArgumentParser(description="DP-SGD with torch.func per-sample gradients")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=256, help="expected batch size")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--noise-multiplier", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    prototypes = make_prototypes(g)
    x_train, y_train = sample_records(20_000, prototypes, g)
    x_test, y_test = sample_records(5_000, prototypes, g)
    mean, std = x_train.mean(dim=0), x_train.std(dim=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    model = MLP()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def compute_loss(params, sample, target):
        logits = functional_call(model, params, (sample.unsqueeze(0),))
        return F.cross_entropy(logits, target.unsqueeze(0))

    per_sample_grad_fn = vmap(grad(compute_loss), in_dims=(None, 0, 0))

    n = len(x_train)
    sample_rate = args.batch_size / n
    steps_per_epoch = int(1 / sample_rate)
    for epoch in range(1, args.epochs + 1):
        for _ in range(steps_per_epoch):
            idx = poisson_batch(n, sample_rate, g)
            per_sample_grads = per_sample_grad_fn(params, x_train[idx], y_train[idx])
            summed = clip_and_sum(per_sample_grads, args.max_grad_norm)
            with torch.no_grad():
                for name, p in params.items():
                    noise = torch.normal(
                        0.0,
                        args.noise_multiplier * args.max_grad_norm,
                        size=p.shape,
                        generator=g,
                    )
                    p.sub_(args.lr * (summed[name] + noise) / args.batch_size)
        if epoch % 2 == 0:
            train_loss, _ = evaluate(model, x_train[:5000], y_train[:5000])
            test_loss, test_acc = evaluate(model, x_test, y_test)
            print(
                f"epoch {epoch:2d}  train loss {train_loss:.4f}  test loss {test_loss:.4f}  "
                f"test acc {test_acc:.3f}"
            )

    _, test_acc = evaluate(model, x_test, y_test)
    print(f"final: test accuracy {test_acc:.3f} (chance {1 / N_CLASSES:.3f})")


if __name__ == "__main__":
    main()
