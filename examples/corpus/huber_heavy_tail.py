"""Regression with heavy-tailed target noise and a Huber loss: a healthy training script.

Predicts a nonlinear function of eight features from 6000 generated records ordered in
time: six Gaussian features, an event count (Poisson, fed as ``log1p``) and a positive
amount (log-normal, fed as its ``log``, drifting upward over time). The targets carry
Student-t noise with 2 degrees of freedom (infinite variance: a few huge outliers), so
the loss is ``nn.HuberLoss`` rather than the mean squared error. The last sixth of the
records (the latest) is the validation split; features are standardised with the
training split's statistics. An ``nn.Sequential`` MLP whose activation is a
memory-efficient Swish written as a ``torch.autograd.Function`` with its own backward
(as in EfficientNet-PyTorch). Batches sliced by hand from a fresh permutation; SGD with
momentum and ``StepLR``; the epoch with the lowest validation mean absolute error is
kept. A top-level script (``--seed N`` read from ``sys.argv``).

Healthy: nndoctor should report no warning and no error.

    python examples/corpus/huber_heavy_tail.py
    nndoctor check examples/corpus/huber_heavy_tail.py
"""

import copy
import sys

import torch
from torch import nn

seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
torch.manual_seed(seed)

# --- data: records in time order ----------------------------------------------------
n = 6000
time = torch.linspace(0.0, 1.0, n)
gauss = torch.randn(n, 6)
counts = torch.poisson(torch.exp(0.3 + 0.6 * gauss[:, 0]))   # many zeros
amount = torch.exp(torch.randn(n) + 0.8 * time)              # log-normal, drifting upward
noise = torch.distributions.StudentT(df=2.0).sample((n,))
y = (2.0 * torch.sin(1.5 * gauss[:, 1]) + gauss[:, 2] * gauss[:, 3] + 0.5 * gauss[:, 4]
     + 0.6 * torch.log1p(counts) + 0.7 * torch.log(amount) + 0.3 * noise).unsqueeze(1)

features = torch.cat([gauss, torch.log1p(counts)[:, None], torch.log(amount)[:, None]], dim=1)
n_train = n * 5 // 6
x_train, x_val = features[:n_train], features[n_train:]
y_train, y_val = y[:n_train], y[n_train:]
mean, std = x_train.mean(0), x_train.std(0)
x_train = (x_train - mean) / std
x_val = (x_val - mean) / std


# --- model: an MLP with a hand-written Swish ----------------------------------------
class SwishFunction(torch.autograd.Function):
    """x * sigmoid(x), saving only the input for the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad_output * (s * (1 + x * (1 - s)))  # d/dx [x s(x)] = s + x s (1 - s)


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SwishFunction.apply(x)


hidden = 64
model = nn.Sequential(
    nn.Linear(features.shape[1], hidden), Swish(),
    nn.Linear(hidden, hidden), Swish(),
    nn.Linear(hidden, 1),
)
criterion = nn.HuberLoss(delta=1.0)
optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.3)
batch_size, epochs = 64, 30

# --- training: batches sliced by hand ------------------------------------------------
best_mae, best_state = float("inf"), None
for epoch in range(epochs):
    model.train()
    perm = torch.randperm(n_train)
    for start in range(0, n_train, batch_size):
        idx = perm[start : start + batch_size]
        optimizer.zero_grad()
        loss = criterion(model(x_train[idx]), y_train[idx])
        loss.backward()
        optimizer.step()
    scheduler.step()

    model.eval()
    with torch.no_grad():
        mae = (model(x_val) - y_val).abs().mean().item()
    if mae < best_mae:
        best_mae, best_state = mae, copy.deepcopy(model.state_dict())
    if (epoch + 1) % 5 == 0:
        print(f"epoch {epoch + 1}: last batch Huber loss {loss.item():.4f}, validation MAE {mae:.4f}")
model.load_state_dict(best_state)
print(f"kept the epoch with validation MAE {best_mae:.4f}")
