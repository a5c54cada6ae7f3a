"""A physics-informed neural network for the 1-D heat equation: healthy.

In the manner of the physics-informed neural network tutorials (the PINN papers' PyTorch
re-implementations): the network ``PINN`` is an MLP of ``Linear`` and ``Tanh`` layers
(Xavier-normal weights, zero biases) that maps a point ``(x, t)`` to the temperature
``u(x, t)`` on ``x in [-1, 1]``, ``t in [0, 1]``. It is trained without any solution
data, from the equation itself: ``u_t = nu * u_xx`` with ``nu = 0.05``, the initial
condition ``u(x, 0) = sin(pi x) + 0.5 sin(2 pi x)`` and the boundary condition
``u(-1, t) = u(1, t) = 0``. Each step draws fresh collocation points in the interior, on
the initial line and on the two boundaries; the PDE residual ``u_t - nu * u_xx`` is
computed with ``torch.autograd.grad(..., create_graph=True)`` so that its derivatives are
differentiable in the weights, and the loss is the sum of the residual's mean square and
the mean squared errors of the initial and boundary conditions. Adam with a
``StepLR`` halving; a top-level script with argparse; prints the three loss terms and
the relative L2 error against the known solution (a sum of two decaying sine modes) on a
fixed grid every 500 steps.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/pinn_heat.py
    nndoctor check examples/wild/pinn_heat.py
"""

import argparse
import math

import torch
import torch.nn as nn

NU = 0.05


def exact_solution(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    mode1 = torch.sin(math.pi * x) * torch.exp(-NU * math.pi**2 * t)
    mode2 = 0.5 * torch.sin(2 * math.pi * x) * torch.exp(-4 * NU * math.pi**2 * t)
    return mode1 + mode2


class PINN(nn.Module):
    def __init__(self, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(2, width), nn.Tanh()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.Tanh()]
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, t], dim=1))


def pde_residual(model: PINN, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    x.requires_grad_(True)
    t.requires_grad_(True)
    u = model(x, t)
    ones = torch.ones_like(u)
    u_t = torch.autograd.grad(u, t, grad_outputs=ones, create_graph=True)[0]
    u_x = torch.autograd.grad(u, x, grad_outputs=ones, create_graph=True)[0]
    u_xx = torch.autograd.grad(u_x, x, grad_outputs=torch.ones_like(u_x), create_graph=True)[0]
    return u_t - NU * u_xx


def sample_points(n_f: int, n_ic: int, n_bc: int):
    x_f = 2 * torch.rand(n_f, 1) - 1
    t_f = torch.rand(n_f, 1)
    x_ic = 2 * torch.rand(n_ic, 1) - 1
    t_ic = torch.zeros(n_ic, 1)
    u_ic = torch.sin(math.pi * x_ic) + 0.5 * torch.sin(2 * math.pi * x_ic)
    x_bc = torch.where(torch.rand(n_bc, 1) < 0.5, -1.0, 1.0)
    t_bc = torch.rand(n_bc, 1)
    return x_f, t_f, x_ic, t_ic, u_ic, x_bc, t_bc


parser = argparse.ArgumentParser(description="PINN for the 1-D heat equation")
parser.add_argument("--steps", type=int, default=4000)
parser.add_argument("--n-collocation", type=int, default=1000)
parser.add_argument("--n-initial", type=int, default=200)
parser.add_argument("--n-boundary", type=int, default=200)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

model = PINN()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1500, gamma=0.5)

grid_x, grid_t = torch.meshgrid(torch.linspace(-1, 1, 101), torch.linspace(0, 1, 51), indexing="ij")
grid_x, grid_t = grid_x.reshape(-1, 1), grid_t.reshape(-1, 1)
u_true = exact_solution(grid_x, grid_t)

for step in range(1, args.steps + 1):
    x_f, t_f, x_ic, t_ic, u_ic, x_bc, t_bc = sample_points(
        args.n_collocation, args.n_initial, args.n_boundary
    )
    optimizer.zero_grad()
    loss_pde = pde_residual(model, x_f, t_f).pow(2).mean()
    loss_ic = (model(x_ic, t_ic) - u_ic).pow(2).mean()
    loss_bc = model(x_bc, t_bc).pow(2).mean()
    loss = loss_pde + loss_ic + loss_bc
    loss.backward()
    optimizer.step()
    scheduler.step()

    if step % 500 == 0 or step == args.steps:
        with torch.no_grad():
            u_pred = model(grid_x, grid_t)
            rel_l2 = (torch.linalg.norm(u_pred - u_true) / torch.linalg.norm(u_true)).item()
        print(
            f"step {step:5d}: loss {loss.item():.2e} (pde {loss_pde.item():.2e}, "
            f"ic {loss_ic.item():.2e}, bc {loss_bc.item():.2e}), relative L2 error {rel_l2:.3e}"
        )
