"""A Neural ODE fitted to a spiral trajectory with a hand-written RK4 solver: healthy.

In the manner of torchdiffeq's ``examples/ode_demo.py`` (Chen et al., 2018, "Neural
Ordinary Differential Equations"), without torchdiffeq: ``odeint(func, y0, t)`` is written
here as a fixed-grid fourth-order Runge-Kutta solver (the 3/8 rule, one step per interval
of ``t``, as torchdiffeq's ``method="rk4"``) that returns the states at every time of
``t``, stacked along a new first axis, and is differentiated through by autograd. The
data is one trajectory of the true 2-D ODE dy/dt = y**3 A with A = [[-0.1, 2], [-2, -0.1]]
from y0 = (2, 0), sampled at 1,000 times over [0, 25] (an inward spiral).

``get_batch()`` draws 20 random start indices and returns the true states there, the first
10 times of the grid and the true states over the next 10 times (T x M x 1 x 2).
``ODEFunc`` is an ``nn.Module`` with an MLP 2-50-2 (tanh) applied to y**3, its weights
initialised from N(0, 0.1) and its biases at 0. Each iteration integrates the batch from
its start states, the loss is the mean absolute error against the true states, and
RMSprop (lr 1e-3) takes a step; 2,000 iterations, the learning rate annealed to zero by a
``CosineAnnealingLR`` stepped every iteration (without it the demo's full-trajectory loss
jumps between 0.1 and 0.7 from one report to the next). Top-level functions and ``main()`` with
argparse; prints every 250 iterations the loss of the whole trajectory integrated from
y0, with a running average of the batch loss, then the final full-trajectory loss next to
that of a constant prediction (y0 at every time, no dynamics).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/neural_ode_spirals.py
    nndoctor check examples/wild/neural_ode_spirals.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


def rk4_step(func, t0, dt, y0):
    k1 = func(t0, y0)
    k2 = func(t0 + dt / 3, y0 + dt * k1 / 3)
    k3 = func(t0 + dt * 2 / 3, y0 + dt * (k2 - k1 / 3))
    k4 = func(t0 + dt, y0 + dt * (k1 - k2 + k3))
    return y0 + dt * (k1 + 3 * (k2 + k3) + k4) / 8


def odeint(func, y0, t):
    """Solve dy/dt = func(t, y) from y(t[0]) = y0; returns y at every time of t (len(t) x ...)."""
    solution = [y0]
    y = y0
    for t0, t1 in zip(t[:-1], t[1:], strict=True):
        y = rk4_step(func, t0, t1 - t0, y)
        solution.append(y)
    return torch.stack(solution)


class Lambda(nn.Module):
    def __init__(self, true_A):
        super().__init__()
        self.true_A = true_A

    def forward(self, t, y):
        return torch.mm(y**3, self.true_A)


class ODEFunc(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2, 50),
            nn.Tanh(),
            nn.Linear(50, 2),
        )
        for m in self.net.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0, std=0.1)
                nn.init.constant_(m.bias, val=0)

    def forward(self, t, y):
        return self.net(y**3)


class RunningAverageMeter:
    """Computes and stores the average and current value."""

    def __init__(self, momentum=0.99):
        self.momentum = momentum
        self.reset()

    def reset(self):
        self.val = None
        self.avg = 0

    def update(self, val):
        if self.val is None:
            self.avg = val
        else:
            self.avg = self.avg * self.momentum + val * (1 - self.momentum)
        self.val = val


def get_batch(true_y, t, data_size, batch_time, batch_size):
    s = torch.from_numpy(
        np.random.choice(
            np.arange(data_size - batch_time, dtype=np.int64), batch_size, replace=False
        )
    )
    batch_y0 = true_y[s]  # (M, 1, D)
    batch_t = t[:batch_time]  # (T)
    batch_y = torch.stack([true_y[s + i] for i in range(batch_time)], dim=0)  # (T, M, 1, D)
    return batch_y0, batch_t, batch_y


def main():
    parser = argparse.ArgumentParser(description="Neural ODE on a spiral (ode_demo style)")
    parser.add_argument("--data_size", type=int, default=1000)
    parser.add_argument("--batch_time", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=20)
    parser.add_argument("--niters", type=int, default=2000)
    parser.add_argument("--test_freq", type=int, default=250)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    true_y0 = torch.tensor([[2.0, 0.0]])
    t = torch.linspace(0.0, 25.0, args.data_size)
    true_A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    with torch.no_grad():
        true_y = odeint(Lambda(true_A), true_y0, t)

    func = ODEFunc()
    optimizer = optim.RMSprop(func.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.niters)
    loss_meter = RunningAverageMeter(0.97)

    for itr in range(1, args.niters + 1):
        optimizer.zero_grad()
        batch_y0, batch_t, batch_y = get_batch(
            true_y, t, args.data_size, args.batch_time, args.batch_size
        )
        pred_y = odeint(func, batch_y0, batch_t)
        loss = torch.mean(torch.abs(pred_y - batch_y))
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_meter.update(loss.item())

        if itr % args.test_freq == 0:
            with torch.no_grad():
                pred_y = odeint(func, true_y0, t)
                loss = torch.mean(torch.abs(pred_y - true_y))
                print(
                    f"Iter {itr:04d} | Total Loss {loss.item():.6f} | "
                    f"Running batch loss {loss_meter.avg:.6f}"
                )

    with torch.no_grad():
        pred_y = odeint(func, true_y0, t)
        final = torch.mean(torch.abs(pred_y - true_y)).item()
        constant = torch.mean(torch.abs(true_y0 - true_y)).item()
    print(f"final: full-trajectory loss {final:.4f} (constant prediction y0: {constant:.4f})")


if __name__ == "__main__":
    main()
