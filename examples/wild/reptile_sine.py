"""Reptile meta-learning of sine-wave regression, by hand, with no optimizer object: healthy.

In the manner of OpenAI's ``reptile-sinewaves`` demo (the PyTorch script of the Reptile
blog post, Nichol, Achiam and Schulman 2018) and its ports: a task is a sine wave
``a * sin(x + phase)`` with the amplitude drawn from [0.1, 5] and the phase from [0, 2 pi],
observed on 50 evenly spaced points of [-5, 5]. The model is an ``nn.Sequential`` MLP
1-64-64-1 with tanh activations, the loss the mean squared error.

Each outer iteration draws a task, saves ``weights_before = deepcopy(model.state_dict())``
and runs one epoch of inner SGD over the task's 50 points in shuffled minibatches of 10
(five steps), written by hand: ``model.zero_grad()``, forward, ``loss.backward()``, then
``param.data -= innerstepsize * param.grad.data`` for every parameter. The outer (Reptile)
update then moves the saved weights a fraction of the way towards the adapted ones,
``weights_before[name] + (weights_after[name] - weights_before[name]) * outerstepsize``,
loaded back with ``model.load_state_dict``; the outer step size is annealed linearly
from 0.1 to 0. There is no optimizer object.

Evaluation, as in the demo's plots but averaged over 100 held-out tasks: from a snapshot
of the weights, 32 inner SGD steps on 10 random points of the task (k = 10 shots), then
the MSE over the 50 points, the snapshot restored afterwards; the same adaptation from
the network's random initialisation is the baseline, next to predicting zero. Top-level
functions and ``main()`` with argparse; prints the held-out post-adaptation MSE every
1,000 iterations, then the final comparison.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/reptile_sine.py
    nndoctor check examples/wild/reptile_sine.py
"""

import argparse
from copy import deepcopy

import numpy as np
import torch
from torch import nn

x_all = np.linspace(-5, 5, 50)[:, None]  # all of the x points
ntrain = 10  # size of training minibatches


def gen_task(rng):
    """A random sine wave."""
    phase = rng.uniform(low=0, high=2 * np.pi)
    ampl = rng.uniform(0.1, 5)

    def f_randomsine(x):
        return np.sin(x + phase) * ampl

    return f_randomsine


def make_model():
    # The Reptile paper uses ReLU, but tanh gives slightly better results.
    return nn.Sequential(
        nn.Linear(1, 64),
        nn.Tanh(),
        nn.Linear(64, 64),
        nn.Tanh(),
        nn.Linear(64, 1),
    )


def totorch(x):
    return torch.tensor(x, dtype=torch.float32)


def train_on_batch(model, x, y, innerstepsize):
    x = totorch(x)
    y = totorch(y)
    model.zero_grad()
    ypred = model(x)
    loss = (ypred - y).pow(2).mean()
    loss.backward()
    for param in model.parameters():
        param.data -= innerstepsize * param.grad.data
    return loss.item()


def predict(model, x):
    with torch.no_grad():
        return model(totorch(x)).numpy()


def eval_after_adaptation(model, tasks, innerstepsize, inner_iters=32):
    """Mean MSE over the tasks after ``inner_iters`` SGD steps on each task's k shots."""
    losses = []
    for f, xtrain in tasks:
        weights_before = deepcopy(model.state_dict())  # save snapshot before evaluation
        for _ in range(inner_iters):
            train_on_batch(model, xtrain, f(xtrain), innerstepsize)
        losses.append(np.mean((predict(model, x_all) - f(x_all)) ** 2))
        model.load_state_dict(weights_before)  # restore from snapshot
    return float(np.mean(losses))


def main():
    parser = argparse.ArgumentParser(description="Reptile on sine-wave regression")
    parser.add_argument("--iterations", type=int, default=10000)
    parser.add_argument("--innerstepsize", type=float, default=0.02)
    parser.add_argument("--innerepochs", type=int, default=1)
    parser.add_argument("--outerstepsize", type=float, default=0.1)
    parser.add_argument("--eval-tasks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.RandomState(args.seed)
    torch.manual_seed(args.seed)
    innerstepsize = args.innerstepsize
    outerstepsize0 = args.outerstepsize
    niterations = args.iterations

    model = make_model()
    random_init = deepcopy(model)

    # Held-out tasks, each with the k = 10 points it may adapt on.
    eval_rng = np.random.RandomState(args.seed + 1000)
    eval_tasks = [
        (gen_task(eval_rng), x_all[eval_rng.choice(len(x_all), size=ntrain)])
        for _ in range(args.eval_tasks)
    ]

    # Reptile training loop
    for iteration in range(niterations):
        weights_before = deepcopy(model.state_dict())
        # Generate task
        f = gen_task(rng)
        y_all = f(x_all)
        # Do SGD on this task
        inds = rng.permutation(len(x_all))
        for _ in range(args.innerepochs):
            for start in range(0, len(x_all), ntrain):
                mbinds = inds[start : start + ntrain]
                loss = train_on_batch(model, x_all[mbinds], y_all[mbinds], innerstepsize)
        # Interpolate between current weights and trained weights from this task,
        # i.e. (weights_before - weights_after) is the meta-gradient.
        weights_after = model.state_dict()
        outerstepsize = outerstepsize0 * (1 - iteration / niterations)  # linear schedule
        model.load_state_dict(
            {
                name: weights_before[name]
                + (weights_after[name] - weights_before[name]) * outerstepsize
                for name in weights_before
            }
        )

        if (iteration + 1) % 1000 == 0:
            mse = eval_after_adaptation(model, eval_tasks[:20], innerstepsize)
            print(
                f"iteration {iteration + 1:5d}  outer step {outerstepsize:.4f}  "
                f"last inner loss {loss:.3f}  held-out MSE after 32 steps {mse:.3f}"
            )

    zero_mse = float(np.mean([np.mean(f(x_all) ** 2) for f, _ in eval_tasks]))
    reptile_mse = eval_after_adaptation(model, eval_tasks, innerstepsize)
    random_mse = eval_after_adaptation(random_init, eval_tasks, innerstepsize)
    print(f"final: predicting zero                   MSE {zero_mse:.3f}")
    print(f"final: random init + 32 steps (10-shot)  MSE {random_mse:.3f}")
    print(f"final: Reptile init + 32 steps (10-shot) MSE {reptile_mse:.3f}")


if __name__ == "__main__":
    main()
