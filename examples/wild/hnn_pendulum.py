"""A Hamiltonian Neural Network on an ideal pendulum, against a baseline MLP: healthy.

In the manner of Greydanus et al.'s ``hnn`` repository ("Hamiltonian Neural Networks",
2019: ``experiment-pend/data.py``, ``hnn.py``, ``nn_models.py`` and ``experiment-pend/
train.py``): the data are trajectories of the ideal pendulum H(q, p) = 3 (1 - cos q) + p^2
(so dq/dt = 2 p, dp/dt = -3 sin q), integrated here with fine RK4 steps from random
initial states of "radius" 1.3 to 2.3 in phase space, 30 points over 3 seconds each, 50
trajectories; the coordinates get Gaussian noise (std 0.1) while the time derivatives are
those of the clean trajectory; the first half of the points trains, the second half tests.

``HNN`` wraps an ``MLP`` (2 -> 200 -> 200 -> 1, tanh) that outputs a scalar H(q, p); its
``forward`` differentiates H with respect to its input with
``torch.autograd.grad(H.sum(), x, create_graph=True)`` and returns the symplectic gradient
(dH/dp, -dH/dq) as the predicted time derivative, so the loss can be differentiated again
with respect to the weights. The baseline is the same ``MLP`` with two outputs predicting
the derivatives directly. Each is trained full-batch for 2,000 steps by Adam (lr 1e-3,
weight decay 1e-4) on the mean squared error between predicted and true derivatives
(``L2_loss``). Top-level functions and ``main()`` with argparse; prints the train and test
losses every 200 steps, then for both models the test derivative MSE (against predicting
zero derivatives) and the energy drift of rollouts integrated with RK4 for 20 seconds from
held-out initial states: the mean absolute change of the true energy along the rollout.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/hnn_pendulum.py
    nndoctor check examples/wild/hnn_pendulum.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn

# -----------------------------------------------------------------------------
# data (experiment-pend/data.py)


def hamiltonian_fn(coords):
    q, p = coords[..., 0], coords[..., 1]
    return 3 * (1 - np.cos(q)) + p**2


def dynamics_fn(t, coords):
    q, p = coords[..., 0], coords[..., 1]
    dqdt, dpdt = 2 * p, -3 * np.sin(q)
    return np.stack([dqdt, dpdt], axis=-1)


def solve_rk4(fun, y0, t_eval, substeps=20):
    ys = [y0]
    y = y0
    for t0, t1 in zip(t_eval[:-1], t_eval[1:], strict=True):
        h = (t1 - t0) / substeps
        for k in range(substeps):
            t = t0 + k * h
            k1 = fun(t, y)
            k2 = fun(t + h / 2, y + h / 2 * k1)
            k3 = fun(t + h / 2, y + h / 2 * k2)
            k4 = fun(t + h, y + h * k3)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        ys.append(y)
    return np.stack(ys, axis=-1)  # (2, len(t_eval))


def get_trajectory(rng, t_span=(0, 3), timescale=10, radius=None, y0=None, noise_std=0.1):
    t_eval = np.linspace(t_span[0], t_span[1], int(timescale * (t_span[1] - t_span[0])))
    if y0 is None:
        y0 = rng.random(2) * 2.0 - 1
    if radius is None:
        radius = rng.random() + 1.3  # sample a range of radii
    y0 = y0 / np.sqrt((y0**2).sum()) * radius
    ys = solve_rk4(dynamics_fn, y0, t_eval)
    q, p = ys[0], ys[1]
    dydt = dynamics_fn(None, ys.T).T
    dqdt, dpdt = dydt[0], dydt[1]

    # add noise to the coordinates, not to the derivatives
    q = q + rng.standard_normal(q.shape) * noise_std
    p = p + rng.standard_normal(p.shape) * noise_std
    return q, p, dqdt, dpdt, t_eval


def get_dataset(rng, samples=50, test_split=0.5, **kwargs):
    xs, dxs = [], []
    for _ in range(samples):
        x, y, dx, dy, _ = get_trajectory(rng, **kwargs)
        xs.append(np.stack([x, y]).T)
        dxs.append(np.stack([dx, dy]).T)
    data = {"x": np.concatenate(xs), "dx": np.concatenate(dxs)}

    # make a train/test split
    split_ix = int(len(data["x"]) * test_split)
    split_data = {}
    for k in ["x", "dx"]:
        split_data[k], split_data["test_" + k] = data[k][:split_ix], data[k][split_ix:]
    return split_data


# -----------------------------------------------------------------------------
# models (nn_models.py, hnn.py)


class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim):
        super().__init__()
        self.linear1 = nn.Linear(input_dim, hidden_dim)
        self.linear2 = nn.Linear(hidden_dim, hidden_dim)
        self.linear3 = nn.Linear(hidden_dim, output_dim, bias=False)
        for layer in [self.linear1, self.linear2, self.linear3]:
            nn.init.orthogonal_(layer.weight)

    def forward(self, x):
        h = torch.tanh(self.linear1(x))
        h = torch.tanh(self.linear2(h))
        return self.linear3(h)


class HNN(nn.Module):
    """Learns a Hamiltonian H(q, p); its time derivative is the symplectic gradient."""

    def __init__(self, differentiable_model):
        super().__init__()
        self.differentiable_model = differentiable_model

    def hamiltonian(self, x):
        return self.differentiable_model(x)

    def forward(self, x):
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_()
            H = self.hamiltonian(x)
            dH = torch.autograd.grad(H.sum(), x, create_graph=True)[0]
        dHdq, dHdp = dH.split(1, dim=1)
        return torch.cat([dHdp, -dHdq], dim=1)


def L2_loss(u, v):
    return (u - v).pow(2).mean()


# -----------------------------------------------------------------------------
# training (experiment-pend/train.py)


def train(args, data, baseline):
    torch.manual_seed(args.seed)
    if baseline:
        model = MLP(args.input_dim, args.hidden_dim, args.input_dim)
    else:
        model = HNN(MLP(args.input_dim, args.hidden_dim, 1))
    optim = torch.optim.Adam(model.parameters(), args.learn_rate, weight_decay=1e-4)

    x = torch.tensor(data["x"], dtype=torch.float32)
    test_x = torch.tensor(data["test_x"], dtype=torch.float32)
    dxdt = torch.tensor(data["dx"], dtype=torch.float32)
    test_dxdt = torch.tensor(data["test_dx"], dtype=torch.float32)

    name = "baseline" if baseline else "HNN"
    for step in range(args.total_steps + 1):
        # train step
        dxdt_hat = model(x)
        loss = L2_loss(dxdt, dxdt_hat)
        loss.backward()
        optim.step()
        optim.zero_grad()

        if step % args.print_every == 0:
            test_loss = L2_loss(test_dxdt, model(test_x).detach())
            print(
                f"{name} step {step}, train_loss {loss.item():.4e}, "
                f"test_loss {test_loss.item():.4e}"
            )
    return model


def integrate_model(model, y0, t_span, dt):
    """RK4 rollout of the learned vector field."""
    ys = [y0]
    y = torch.tensor(y0, dtype=torch.float32)[None]

    def fun(y):
        return model(y).detach()

    for _ in range(int(round((t_span[1] - t_span[0]) / dt))):
        k1 = fun(y)
        k2 = fun(y + dt / 2 * k1)
        k3 = fun(y + dt / 2 * k2)
        k4 = fun(y + dt * k3)
        y = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        ys.append(y[0].numpy().astype(np.float64))
    return np.stack(ys)


def energy_drift(model, y0s, t_span, dt):
    drifts = []
    for y0 in y0s:
        traj = integrate_model(model, y0, t_span, dt)
        energy = hamiltonian_fn(traj)
        drifts.append(np.abs(energy - energy[0]).mean())
    return float(np.mean(drifts))


def get_args():
    parser = argparse.ArgumentParser(description=None)
    parser.add_argument("--input_dim", default=2, type=int, help="dimensionality of input tensor")
    parser.add_argument("--hidden_dim", default=200, type=int, help="hidden dimension of mlp")
    parser.add_argument("--learn_rate", default=1e-3, type=float, help="learning rate")
    parser.add_argument("--total_steps", default=2000, type=int, help="number of gradient steps")
    parser.add_argument("--print_every", default=200, type=int, help="steps between prints")
    parser.add_argument("--rollout_time", default=20.0, type=float, help="seconds to integrate")
    parser.add_argument("--seed", default=0, type=int, help="random seed")
    return parser.parse_args()


def main():
    args = get_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = get_dataset(rng)
    print(f"{len(data['x'])} training points, {len(data['test_x'])} test points")

    hnn_model = train(args, data, baseline=False)
    base_model = train(args, data, baseline=True)

    test_x = torch.tensor(data["test_x"], dtype=torch.float32)
    test_dxdt = torch.tensor(data["test_dx"], dtype=torch.float32)
    hnn_mse = L2_loss(test_dxdt, hnn_model(test_x).detach()).item()
    with torch.no_grad():
        base_mse = L2_loss(test_dxdt, base_model(test_x)).item()
    zero_mse = L2_loss(test_dxdt, torch.zeros_like(test_dxdt)).item()
    print(
        f"test derivative MSE: HNN {hnn_mse:.4e}, baseline {base_mse:.4e} "
        f"(zero derivative {zero_mse:.4e})"
    )

    # rollouts from held-out initial states on the radii of the data
    y0s = []
    for _ in range(8):
        y0 = rng.random(2) * 2.0 - 1
        y0s.append(y0 / np.sqrt((y0**2).sum()) * (rng.random() + 1.3))
    t_span = (0.0, args.rollout_time)
    hnn_drift = energy_drift(hnn_model, y0s, t_span, dt=0.05)
    base_drift = energy_drift(base_model, y0s, t_span, dt=0.05)
    mean_energy = float(np.mean([hamiltonian_fn(y0) for y0 in y0s]))
    print(
        f"energy drift over {args.rollout_time:.0f}s rollouts: HNN {hnn_drift:.4f}, "
        f"baseline {base_drift:.4f} (mean energy {mean_energy:.3f})"
    )


if __name__ == "__main__":
    main()
