"""Deep Sets: the sum of the digits in a set, trained on small sets: healthy.

In the manner of the digit-sum experiment of "Deep Sets" (Zaheer et al.) and its PyTorch
re-implementations: each example is a set of 1 to 10 "digits" and the target is their
sum; the test sets are larger (11 to 20 digits) than any seen in training. Instead of
MNIST images, a digit is a noisy reading of a seven-segment display: the seven segment
intensities of its glyph times a random brightness, a random background glow and
Gaussian noise, plus five channels of pure noise (12 features). ``DigitSumSets`` is a
map-style ``Dataset`` that draws every set on the fly from a generator seeded by the
data-set seed and the index, so the sets are reproducible and every epoch sees new ones
of the same kind; a ``collate`` function pads the sets of a batch with
``pad_sequence(batch_first=True)`` and returns a boolean mask of the real elements.
``DeepSet`` applies an element-wise ``phi`` MLP, sums its outputs over the real
elements of each set (masked sum pooling) and maps the sum by a ``rho`` MLP to one
number. ``F.l1_loss`` against the sum, Adam with ``CosineAnnealingLR`` stepped per batch,
``DataLoader`` over the training sets; a ``main()`` with argparse that prints the training
loss every 500 steps and then the mean absolute error and the accuracy of the rounded
prediction on held-out sets of the training sizes and on the larger test sets.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/deepsets_sum.py
    nndoctor check examples/wild/deepsets_sum.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

# Seven-segment glyphs (segments a-g) of the digits 0-9.
SEGMENTS = torch.tensor(
    [
        [1, 1, 1, 1, 1, 1, 0],
        [0, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 1, 1, 0, 1],
        [1, 1, 1, 1, 0, 0, 1],
        [0, 1, 1, 0, 0, 1, 1],
        [1, 0, 1, 1, 0, 1, 1],
        [1, 0, 1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 1, 1],
    ],
    dtype=torch.float32,
)
NOISE_CHANNELS = 5
N_FEATURES = SEGMENTS.size(1) + NOISE_CHANNELS


def read_digits(digits, generator):
    """8-bit seven-segment readings of a 1-D tensor of digits: uint8 (len, N_FEATURES)."""
    n = len(digits)
    brightness = 0.6 + 0.4 * torch.rand(n, 1, generator=generator)
    glow = 0.2 * torch.rand(n, 1, generator=generator)
    segments = SEGMENTS[digits] * brightness + glow
    segments = segments + 0.1 * torch.randn(segments.shape, generator=generator)
    noise = 0.4 + 0.2 * torch.randn(n, NOISE_CHANNELS, generator=generator)
    readings = torch.cat([segments, noise], dim=1).clamp(0, 1)
    return (255 * readings).round().to(torch.uint8)


class DigitSumSets(Dataset):
    def __init__(self, num_sets, min_size, max_size, seed):
        self.num_sets, self.min_size, self.max_size = num_sets, min_size, max_size
        self.seed = seed

    def __len__(self):
        return self.num_sets

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + idx)
        size = int(torch.randint(self.min_size, self.max_size + 1, (1,), generator=g))
        digits = torch.randint(0, 10, (size,), generator=g)
        features = read_digits(digits, g).float() / 255
        return features, digits.sum().float()


def collate(batch):
    sets, targets = zip(*batch, strict=True)
    lengths = torch.tensor([len(s) for s in sets])
    x = pad_sequence(sets, batch_first=True)  # (batch, max_len, features)
    mask = torch.arange(x.size(1))[None, :] < lengths[:, None]
    return x, mask, torch.stack(targets)


class DeepSet(nn.Module):
    def __init__(self, in_dim, hidden=64):
        super().__init__()
        self.phi = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
        )
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x, mask):
        h = self.phi(x)  # (batch, max_len, hidden), one row per element
        pooled = (h * mask.unsqueeze(-1)).sum(dim=1)  # sum over the real elements
        return self.rho(pooled)  # (batch, 1)


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    abs_err = correct = count = 0.0
    for x, mask, target in loader:
        pred = model(x, mask).squeeze(-1)
        abs_err += (pred - target).abs().sum().item()
        correct += (pred.round() == target).sum().item()
        count += len(target)
    model.train()
    return abs_err / count, correct / count


def main():
    parser = argparse.ArgumentParser(description="Deep Sets digit sum")
    parser.add_argument("--train-sets", type=int, default=64_000)
    parser.add_argument("--max-train-size", type=int, default=10)
    parser.add_argument("--max-test-size", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    train_set = DigitSumSets(args.train_sets, 1, args.max_train_size, seed=3 * args.seed)
    val_set = DigitSumSets(2000, 1, args.max_train_size, seed=3 * args.seed + 1)
    test_set = DigitSumSets(
        2000, args.max_train_size + 1, args.max_test_size, seed=3 * args.seed + 2
    )
    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, collate_fn=collate
    )
    val_loader = DataLoader(val_set, batch_size=500, collate_fn=collate)
    test_loader = DataLoader(test_set, batch_size=500, collate_fn=collate)

    model = DeepSet(N_FEATURES, args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.epochs * len(train_loader)
    )

    step = 0
    for epoch in range(1, args.epochs + 1):
        running = 0.0
        for x, mask, target in train_loader:
            pred = model(x, mask).squeeze(-1)
            loss = F.l1_loss(pred, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item()
            step += 1
            if step % 500 == 0:
                print(f"epoch {epoch} step {step}: train L1 {running / 500:.3f}")
                running = 0.0
        val_mae, val_acc = evaluate(model, val_loader)
        test_mae, test_acc = evaluate(model, test_loader)
        print(
            f"epoch {epoch}: sets of 1-{args.max_train_size}: MAE {val_mae:.3f}, "
            f"accuracy {val_acc:.3f}; sets of {args.max_train_size + 1}-"
            f"{args.max_test_size}: MAE {test_mae:.3f}, accuracy {test_acc:.3f}"
        )


if __name__ == "__main__":
    main()
