"""Poisson regression of event counts whose predicted rate can be exactly 0 (broken).

Trains an ``nn.Sequential`` MLP to predict how many events (a count) happen
given six standardised features, with the Poisson negative log-likelihood
written by hand: ``rate - counts * log(rate)``. Shuffled ``DataLoader`` over a
``TensorDataset``, Adam, ``main()`` with no command-line options.

The bug: the rate must be positive, and the author made it non-negative with a
final ``nn.ReLU``. For every sample where the last layer's output is negative
the rate is exactly 0, ``torch.log(0)`` is -inf, and ``counts * log(rate)`` is
-inf or, for zero counts, 0 · -inf = NaN. The loss is NaN from the first step
and the NaN gradients poison every weight at the first ``optimizer.step()``.
Fix: predict the log-rate and use ``F.poisson_nll_loss(log_rate, counts)``
(or ``rate = F.softplus(out) + 1e-6``).

Expected reasons: 37 (NaNs: log of zero).

    python examples/nan_log.py
    nndoctor check examples/nan_log.py
"""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_counts(n: int, features: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    true_log_rate = 0.5 + x @ (0.4 * torch.randn(features, generator=g))
    counts = torch.poisson(true_log_rate.exp(), generator=g)
    return x, counts.unsqueeze(1)  # (n, features), (n, 1)


def poisson_nll(rate: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``counts`` under Poisson(rate), without the constant log(k!)."""
    return (rate - counts * torch.log(rate)).mean()


def main() -> None:
    torch.manual_seed(0)
    x, counts = make_counts(2048, 6, seed=0)
    loader = DataLoader(TensorDataset(x, counts), batch_size=64, shuffle=True)
    model = nn.Sequential(
        nn.Linear(6, 32),
        nn.ReLU(),
        nn.Linear(32, 1),
        nn.ReLU(),  # BUG: makes the rate non-negative, but it is exactly 0 for many samples
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    for epoch in range(5):
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = poisson_nll(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        print(f"epoch {epoch + 1}: Poisson NLL {total / len(x):.4f}")


if __name__ == "__main__":
    main()
