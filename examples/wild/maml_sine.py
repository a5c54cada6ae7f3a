"""MAML for few-shot regression of sine waves: healthy.

In the manner of the sinusoid experiment of "Model-Agnostic Meta-Learning for Fast
Adaptation of Deep Networks" and of its PyTorch re-implementations: each task is a sine
wave with an amplitude drawn from [0.1, 5] and a phase from [0, pi], observed at inputs
drawn from [-5, 5]; a task gives K = 10 support points to adapt on and 10 query points
to judge the adapted model. The model is a 1-40-40-1 ReLU MLP written functionally, as
in the reference code: ``MetaMLP`` keeps its weights in an ``nn.ParameterDict``
(truncated-normal weights, zero biases) and ``forward(x, params)`` runs it with any
dict of fast weights; with a leading task axis on the weights (the meta-weights
``expand``-ed over the meta-batch) it runs one network per task, so that the whole
meta-batch is adapted at once. The inner loop takes one SGD step (alpha = 0.01) on the
support MSE with ``torch.autograd.grad(..., create_graph=True)``, so that the outer
update is the full second-order MAML gradient; the outer loop averages the query MSE of
the adapted weights over a meta-batch of 25 tasks and steps Adam (lr 1e-3). A
``main()`` with argparse; prints every 1,000 meta-iterations the meta-training loss
and, on 100 held-out tasks, the query MSE (over 100 points) before adaptation and
after 1 and 10 inner steps from the meta-weights.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/maml_sine.py
    nndoctor check examples/wild/maml_sine.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class SineTasks:
    def __init__(self, generator):
        self.g = generator

    def sample(self, n_tasks):
        amplitude = 0.1 + 4.9 * torch.rand(n_tasks, 1, 1, generator=self.g)
        phase = math.pi * torch.rand(n_tasks, 1, 1, generator=self.g)
        return amplitude, phase

    def points(self, amplitude, phase, n):
        x = -5 + 10 * torch.rand(amplitude.shape[0], n, 1, generator=self.g)
        return x, amplitude * torch.sin(x - phase)


class MetaMLP(nn.Module):
    """A 1-40-40-1 ReLU MLP written functionally: ``forward(x, params)`` runs it with any
    weights, and with a leading task axis on the weights it runs one network per task."""

    def __init__(self, sizes=(1, 40, 40, 1)):
        super().__init__()
        self.params = nn.ParameterDict()
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            self.params[f"w{i}"] = nn.Parameter(torch.empty(n_in, n_out))
            self.params[f"b{i}"] = nn.Parameter(torch.empty(n_out))
        self.n_layers = len(sizes) - 1
        for name, p in self.params.items():
            if name.startswith("w"):
                nn.init.trunc_normal_(p, std=0.01 if p.shape[0] == 1 else 0.1)
            else:
                nn.init.zeros_(p)

    def forward(self, x, params=None):
        params = dict(self.params) if params is None else params
        for i in range(self.n_layers):
            x = x @ params[f"w{i}"] + params[f"b{i}"].unsqueeze(-2)
            if i < self.n_layers - 1:
                x = F.relu(x)
        return x

    def task_params(self, n_tasks):
        """The meta-weights repeated along a task axis (still in the graph)."""
        return {n: p.expand(n_tasks, *p.shape) for n, p in self.params.items()}


def task_mse(pred, y):
    return ((pred - y) ** 2).mean(dim=(1, 2))  # one MSE per task


def adapt(model, params, x, y, inner_lr, steps, create_graph):
    """SGD on each task's support set; the tasks' losses are summed, so each task's
    fast weights get their own task's gradient."""
    for _ in range(steps):
        loss = task_mse(model(x, params), y).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
        params = {
            name: p - inner_lr * g for (name, p), g in zip(params.items(), grads, strict=True)
        }
    return params


def evaluate(model, tasks, inner_lr, steps=(0, 1, 10)):
    """Query MSE on held-out tasks after 0, 1 and 10 inner steps from the meta-weights."""
    x_s, y_s, x_q, y_q = tasks
    fast = {n: p.detach().clone().requires_grad_() for n, p in model.task_params(len(x_s)).items()}
    results, done = {}, 0
    for s in steps:
        fast = adapt(model, fast, x_s, y_s, inner_lr, s - done, create_graph=False)
        done = s
        with torch.no_grad():
            results[s] = task_mse(model(x_q, fast), y_q).mean().item()
    return results


def main():
    parser = argparse.ArgumentParser(description="MAML on sine waves")
    parser.add_argument("--meta-iters", type=int, default=6000)
    parser.add_argument("--meta-batch", type=int, default=25)
    parser.add_argument("--k-shot", type=int, default=10)
    parser.add_argument("--inner-lr", type=float, default=0.01)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--meta-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    task_dist = SineTasks(g)

    amplitude, phase = task_dist.sample(100)
    held_out = task_dist.points(amplitude, phase, args.k_shot)
    held_out += task_dist.points(amplitude, phase, 100)

    model = MetaMLP()
    meta_optimizer = torch.optim.Adam(model.parameters(), lr=args.meta_lr)

    running = 0.0
    for iteration in range(1, args.meta_iters + 1):
        amplitude, phase = task_dist.sample(args.meta_batch)
        x_support, y_support = task_dist.points(amplitude, phase, args.k_shot)
        x_query, y_query = task_dist.points(amplitude, phase, args.k_shot)

        fast_weights = adapt(
            model,
            model.task_params(args.meta_batch),
            x_support,
            y_support,
            args.inner_lr,
            args.inner_steps,
            create_graph=True,
        )
        meta_loss = task_mse(model(x_query, fast_weights), y_query).mean()

        meta_optimizer.zero_grad()
        meta_loss.backward()
        meta_optimizer.step()
        running += meta_loss.item()

        if iteration % 1000 == 0:
            mse = evaluate(model, held_out, args.inner_lr)
            print(
                f"iter {iteration:5d}: meta-train query MSE {running / 1000:.3f}, held-out MSE "
                f"before {mse[0]:.3f}, after 1 step {mse[1]:.3f}, after 10 steps {mse[10]:.3f}"
            )
            running = 0.0


if __name__ == "__main__":
    main()
