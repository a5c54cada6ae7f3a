"""Fitting a 1-D function on a grid, the whole grid at every step: healthy.

In the manner of the function-approximation demos that open many deep-learning courses
(and of the toy regressions in PINN and SIREN code): 256 points of ``torch.linspace`` over
[-2, 2], in order, with targets ``sin(3x)`` plus a little noise; a tanh MLP; the same input
tensor fed at every step (full-batch training, no DataLoader); ``F.mse_loss``; Adam at 1e-2
with a step decay. Prints the training loss and the error on a finer grid.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/sine_fit_full_batch.py
    nndoctor check examples/wild/sine_fit_full_batch.py
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn


class Approximator(nn.Module):
    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(1, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (points, 1)
        return self.net(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    x = torch.linspace(-2, 2, 256).unsqueeze(1)
    y = torch.sin(3 * x) + 0.05 * torch.randn_like(x)
    fine = torch.linspace(-2, 2, 1001).unsqueeze(1)

    model = Approximator()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=500, gamma=0.5)
    for step in range(args.steps):
        loss = F.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 200 == 0 or step == args.steps - 1:
            with torch.no_grad():
                err = F.mse_loss(model(fine), torch.sin(3 * fine))
            print(f"step {step} loss {loss.item():.5f} error on the fine grid {err.item():.5f}")


if __name__ == "__main__":
    main()
