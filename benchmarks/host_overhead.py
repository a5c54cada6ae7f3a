"""Watch's host time per step on a host-bound model: 50 residual blocks of a 4-wide linear
layer (152 modules) at batch 2 on one CPU thread, where a step is nearly all Python and
dispatch, as a fast GPU step is. The extra microseconds per step of ``nndoctor.watch``
(default sampling) over the plain step, medians of 5 interleaved rounds of 200 steps in
thread CPU time. A proxy for the always-on cost on a GPU, run where no GPU is at hand.

    python benchmarks/host_overhead.py
"""

import statistics
import time

import torch
from torch import nn

import nndoctor


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x)) + x


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(*[Block() for _ in range(50)], nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = torch.randn(2, 4), torch.randint(0, 2, (2,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    def timed(n: int = 200) -> float:
        start = time.thread_time()
        for _ in range(n):
            step()
        return (time.thread_time() - start) / n * 1e6

    for _ in range(20):
        step()
    plain, watched = [], []
    for _ in range(5):
        plain.append(timed())
        with nndoctor.watch(model, opt, quiet=True):
            for _ in range(10):
                step()
            watched.append(timed())
    p, w = statistics.median(plain), statistics.median(watched)
    modules = sum(1 for _ in model.modules())
    print(
        f"{modules} modules: plain {p:.0f} us/step, watched {w:.0f} us/step, extra {w - p:.0f} us"
    )


if __name__ == "__main__":
    main()
