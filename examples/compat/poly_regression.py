"""Polynomial regression fitted by hand, one ``nn.Linear`` and no optimizer: healthy.

In the manner of the classic PyTorch regression example: a random degree-4
polynomial ``y = w1 x + w2 x^2 + w3 x^3 + w4 x^4 + b`` is the target function; every
step draws a fresh batch of ``x ~ N(0, 1)``, builds the features ``[x, x^2, x^3, x^4]``
and fits a single ``torch.nn.Linear(4, 1)`` with ``F.smooth_l1_loss``. There is no
optimizer object: ``fc.zero_grad()``, ``backward()``, then ``param -= lr * param.grad``
for every parameter under ``torch.no_grad()``. Runs until the loss is below 1e-3 or a
step limit is reached, at top level, ``--seed N`` read from ``sys.argv``. Prints the
learned and the actual function.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/poly_regression.py
    nndoctor check examples/compat/poly_regression.py
"""

import sys
from itertools import count

import torch
import torch.nn.functional as F

POLY_DEGREE = 4
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
torch.manual_seed(seed)
W_target = torch.randn(POLY_DEGREE, 1) * 5
b_target = torch.randn(1) * 5


def make_features(x: torch.Tensor) -> torch.Tensor:
    """Builds features i.e. a matrix with columns [x, x^2, x^3, x^4]."""
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x: torch.Tensor) -> torch.Tensor:
    """Approximated function."""
    return x.mm(W_target) + b_target.item()


def poly_desc(W: torch.Tensor, b: torch.Tensor) -> str:
    """Creates a string description of a polynomial."""
    result = "y = "
    for i, w in enumerate(W):
        result += f"{w:+.2f} x^{i + 1} "
    result += f"{b[0]:+.2f}"
    return result


def get_batch(batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Builds a batch i.e. (x, f(x)) pair."""
    random = torch.randn(batch_size)
    x = make_features(random)
    y = f(x)
    return x, y


# Define model
fc = torch.nn.Linear(W_target.size(0), 1)
lr = 0.1

for batch_idx in count(1):
    # Get data
    batch_x, batch_y = get_batch()

    # Reset gradients
    fc.zero_grad()

    # Forward pass
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()

    # Backward pass
    output.backward()

    # Apply gradients
    with torch.no_grad():
        for param in fc.parameters():
            param -= lr * param.grad

    # Stop criterion
    if loss < 1e-3 or batch_idx >= 20000:
        break

print(f"Loss: {loss:.6f} after {batch_idx} batches")
print("==> Learned function:\t" + poly_desc(fc.weight.view(-1), fc.bias))
print("==> Actual function:\t" + poly_desc(W_target.view(-1), b_target))
