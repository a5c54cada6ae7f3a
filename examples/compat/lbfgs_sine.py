"""Sine-wave prediction with stacked LSTM cells and LBFGS, in double precision: healthy.

In the manner of the classic PyTorch time-sequence-prediction example: sine waves of
period 2*pi*T with random phase offsets are generated (one wave per row; the offsets
are drawn from a continuum, so that no held-out wave repeats a training wave), the model
reads each wave one value at a time through two stacked ``nn.LSTMCell`` and a linear
read-out, and learns to predict the next value (targets are the inputs shifted by one).
The first three waves are held out as a test set. The whole training set is one batch;
``optim.LBFGS`` steps with a closure (``zero_grad``, forward, ``nn.MSELoss``,
``backward``) that it evaluates several times per step. Everything is ``double``
(``torch.set_default_dtype`` is left alone: the model and data are cast). A ``main()``
with argparse. Prints the training and test loss after every step.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/lbfgs_sine.py
    nndoctor check examples/compat/lbfgs_sine.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


def make_waves(n: int, length: int, period: float, seed: int) -> np.ndarray:
    rs = np.random.RandomState(seed)
    # Phase offsets drawn from a continuum: whole-number offsets from a range of 8 periods
    # repeat among 48 waves, and the held-out waves would be copies of training waves.
    x = np.empty((n, length), dtype="float64")
    x[:] = np.array(range(length)) + rs.uniform(-4 * period, 4 * period, n).reshape(n, 1)
    return np.sin(x / 1.0 / period).astype("float64")


class Sequence(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.hidden = hidden
        self.lstm1 = nn.LSTMCell(1, hidden)
        self.lstm2 = nn.LSTMCell(hidden, hidden)
        self.linear = nn.Linear(hidden, 1)

    def forward(self, input: torch.Tensor, future: int = 0) -> torch.Tensor:
        outputs = []
        h_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), self.hidden, dtype=torch.double)

        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for _ in range(future):  # if we should predict the future
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15, help="steps to run")
    parser.add_argument("--seed", type=int, default=0)
    opt = parser.parse_args()
    np.random.seed(opt.seed)
    torch.manual_seed(opt.seed)

    data = make_waves(n=48, length=40, period=5, seed=opt.seed)
    input = torch.from_numpy(data[3:, :-1])
    target = torch.from_numpy(data[3:, 1:])
    test_input = torch.from_numpy(data[:3, :-1])
    test_target = torch.from_numpy(data[:3, 1:])

    seq = Sequence()
    seq.double()
    criterion = nn.MSELoss()
    # use LBFGS as optimizer since we can load the whole data to train
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=5)
    for i in range(opt.steps):
        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            loss.backward()
            return loss

        loss = optimizer.step(closure)
        with torch.no_grad():
            future = 10
            pred = seq(test_input, future=future)
            test_loss = criterion(pred[:, :-future], test_target)
        print(f"step {i}: loss {loss.item():.6f}, test loss {test_loss.item():.6f}")


if __name__ == "__main__":
    main()
