"""PGD adversarial training of a small convnet on generated digit glyphs: healthy.

In the manner of the PGD adversarial-training scripts of Madry et al. (2018) as the
"fast adversarial training" repository (Wong, Rice and Kolter) writes them in PyTorch:
the images are 1x12x12 digits of a 3x5 bitmap font drawn with a 2-pixel pen at a random
position, with a random stroke intensity on a background of random level with Gaussian
pixel noise, clipped to [0, 1]; 6,000 for training and 1,000 for testing. The model is
the repository's MNIST network scaled to 12x12: a standardising ``Normalize`` module (so
that the attack works in pixel space), two stride-2 convolutions with ReLU, a ReLU
hidden layer of 100 units and ten logits, in an ``nn.Sequential`` with a ``Flatten``.

Each batch first builds its adversarial examples with an L-infinity PGD attack of
5 steps: ``delta`` starts uniform in the epsilon ball, clamped so that ``X + delta``
stays in [0, 1], with ``delta.requires_grad = True``; each step back-propagates the
cross-entropy, moves ``delta`` by ``alpha * sign(delta.grad)`` (alpha = 2.5 epsilon /
steps), projects it back into the ball and the pixel range and zeroes ``delta.grad``.
Epsilon is ramped up linearly to 0.2 over the first 4 epochs. The attack's backward
passes also fill the model's gradients, which ``opt.zero_grad()`` clears before the
training step on the detached adversarial batch. ``nn.CrossEntropyLoss``, SGD with
momentum 0.9 and weight decay 5e-4, and the repository's piecewise-linear ("cyclic")
learning rate, ``np.interp`` from 0 up to 0.1 at 2/5 of the 10 epochs and back to 0, set
by hand in the param group at every batch. The same network trained the same way on the
clean batches is the undefended baseline. Top-level functions and ``main()`` with
argparse; prints each epoch's epsilon, learning rate and training loss and accuracy, then
the clean and robust (PGD at epsilon 0.2, 10 steps, 2 restarts) test accuracy of the
adversarially trained and of the undefended model (chance: 0.1).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/pgd_adversarial_training.py
    nndoctor check examples/wild/pgd_adversarial_training.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FONT = {
    0: ["###", "#.#", "#.#", "#.#", "###"],
    1: [".#.", "##.", ".#.", ".#.", "###"],
    2: ["###", "..#", "###", "#..", "###"],
    3: ["###", "..#", ".##", "..#", "###"],
    4: ["#.#", "#.#", "###", "..#", "..#"],
    5: ["###", "#..", "###", "..#", "###"],
    6: ["###", "#..", "###", "#.#", "###"],
    7: ["###", "..#", ".#.", ".#.", ".#."],
    8: ["###", "#.#", "###", "#.#", "###"],
    9: ["###", "#.#", "###", "..#", "###"],
}
SIZE = 12


def glyph_bitmaps():
    """The 3x5 font drawn with a 2-pixel pen: ten 10x6 bitmaps."""
    rows = [[[1.0 if c == "#" else 0.0 for c in line] for line in FONT[d]] for d in range(10)]
    return torch.tensor(rows).repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)


def make_digits(n, g):
    bitmaps = glyph_bitmaps()
    h, w = bitmaps.shape[1:]
    labels = torch.randint(0, 10, (n,), generator=g)
    images = torch.zeros(n, 1, SIZE, SIZE)
    tops = torch.randint(0, SIZE - h + 1, (n,), generator=g)
    lefts = torch.randint(0, SIZE - w + 1, (n,), generator=g)
    for i in range(n):
        top, left = tops[i].item(), lefts[i].item()
        images[i, 0, top : top + h, left : left + w] = bitmaps[labels[i]]
    intensity = 0.7 + 0.3 * torch.rand(n, 1, 1, 1, generator=g)
    background = 0.1 * torch.rand(n, 1, 1, 1, generator=g)
    noise = 0.05 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    images = background + (intensity - background) * images + noise
    return images.clamp(0.0, 1.0), labels


class Flatten(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class Normalize(nn.Module):
    """Standardise inside the model, so that the attack works in pixel space."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x):
        return (x - self.mean) / self.std


def mnist_net(mean, std):
    return nn.Sequential(
        Normalize(mean, std),
        nn.Conv2d(1, 16, 4, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1),
        nn.ReLU(),
        Flatten(),
        nn.Linear(32 * 3 * 3, 100),
        nn.ReLU(),
        nn.Linear(100, 10),
    )


def clamp(X, lower_limit, upper_limit):
    return torch.max(torch.min(X, upper_limit), lower_limit)


def attack_pgd(model, X, y, epsilon, alpha, attack_iters, restarts):
    """The strongest of ``restarts`` PGD attacks per example (for evaluation)."""
    max_loss = torch.zeros(y.shape[0])
    max_delta = torch.zeros_like(X)
    for _ in range(restarts):
        delta = torch.zeros_like(X).uniform_(-epsilon, epsilon)
        delta.data = clamp(delta, 0 - X, 1 - X)
        delta.requires_grad = True
        for _ in range(attack_iters):
            output = model(X + delta)
            loss = F.cross_entropy(output, y)
            loss.backward()
            grad = delta.grad.detach()
            d = torch.clamp(delta + alpha * torch.sign(grad), -epsilon, epsilon)
            delta.data = clamp(d, 0 - X, 1 - X)
            delta.grad.zero_()
        all_loss = F.cross_entropy(model(X + delta), y, reduction="none")
        better = all_loss >= max_loss
        max_delta[better] = delta.detach()[better]
        max_loss = torch.max(max_loss, all_loss.detach())
    return max_delta


def evaluate(model, X_test, y_test, epsilon, batch_size=500):
    model.eval()
    clean = robust = 0
    for start in range(0, len(y_test), batch_size):
        X, y = X_test[start : start + batch_size], y_test[start : start + batch_size]
        delta = attack_pgd(model, X, y, epsilon, alpha=epsilon / 4, attack_iters=10, restarts=2)
        model.zero_grad()
        with torch.no_grad():
            clean += (model(X).argmax(1) == y).sum().item()
            robust += (model(X + delta).argmax(1) == y).sum().item()
    return clean / len(y_test), robust / len(y_test)


def train(model, X_train, y_train, args, adversarial, g):
    opt = torch.optim.SGD(model.parameters(), lr=args.lr_max, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()

    def lr_schedule(t):
        return np.interp([t], [0, args.epochs * 2 // 5, args.epochs], [0, args.lr_max, 0])[0]

    n_batches = len(y_train) // args.batch_size
    for epoch in range(args.epochs):
        model.train()
        # Ramp epsilon up over the first epochs, then PGD with 2.5 * epsilon / steps per step.
        epsilon = args.epsilon * min(1.0, (epoch + 1) / args.epsilon_warmup)
        alpha = 2.5 * epsilon / args.attack_iters
        perm = torch.randperm(len(y_train), generator=g)
        train_loss = train_acc = train_n = 0
        for i in range(n_batches):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            X, y = X_train[idx], y_train[idx]
            lr = lr_schedule(epoch + (i + 1) / n_batches)
            opt.param_groups[0].update(lr=lr)
            if adversarial:
                delta = torch.zeros_like(X).uniform_(-epsilon, epsilon)
                delta.data = clamp(delta, 0 - X, 1 - X)
                delta.requires_grad = True
                for _ in range(args.attack_iters):
                    output = model(X + delta)
                    loss = criterion(output, y)
                    loss.backward()
                    grad = delta.grad.detach()
                    delta.data = torch.clamp(delta + alpha * torch.sign(grad), -epsilon, epsilon)
                    delta.data = clamp(delta, 0 - X, 1 - X)
                    delta.grad.zero_()
                delta = delta.detach()
                X = X + delta
            output = model(X)
            loss = criterion(output, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            train_loss += loss.item() * y.size(0)
            train_acc += (output.max(1)[1] == y).sum().item()
            train_n += y.size(0)
        print(
            f"epoch {epoch + 1:2d}  eps {epsilon if adversarial else 0.0:.3f}  lr {lr:.4f}  "
            f"train loss {train_loss / train_n:.4f}  "
            f"train acc {train_acc / train_n:.4f}"
        )
    return model


def main():
    parser = argparse.ArgumentParser(description="PGD adversarial training on digit glyphs")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr-max", type=float, default=0.1)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--epsilon-warmup", type=int, default=4)
    parser.add_argument("--attack-iters", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    X_train, y_train = make_digits(6000, g)
    X_test, y_test = make_digits(1000, g)

    mean, std = X_train.mean().item(), X_train.std().item()

    print("PGD adversarial training")
    robust_model = train(mnist_net(mean, std), X_train, y_train, args, adversarial=True, g=g)
    print("standard training (undefended baseline)")
    standard_model = train(mnist_net(mean, std), X_train, y_train, args, adversarial=False, g=g)

    clean, robust = evaluate(robust_model, X_test, y_test, args.epsilon)
    print(f"final: PGD-trained  clean acc {clean:.4f}  PGD acc {robust:.4f}")
    clean, robust = evaluate(standard_model, X_test, y_test, args.epsilon)
    print(f"final: undefended   clean acc {clean:.4f}  PGD acc {robust:.4f}  (chance 0.1)")


if __name__ == "__main__":
    main()
