"""Device-side statistics for watch, written into preallocated buffers, and their trip to the host.

Nothing here calls ``.item()``, ``.cpu()``, ``.tolist()`` or branches on a tensor's value
while training runs: statistics stay on the tensor's device until :class:`AsyncRing` copies a
step's row to the host without blocking (pinned memory and a CUDA event, polled), and the
row is read once the copy has landed, a step or so later on a GPU, at once on the CPU.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

# One row per leaf module in the activation buffer.
ACTIVATION_FIELDS = ("mean", "std", "zero_frac")


def activation_row(x: torch.Tensor, out: torch.Tensor) -> None:
    """Write [mean, std, zero fraction] of ``x`` into ``out`` (a row of 3 on x's device).

    Three reductions, each reading the tensor once with no temporary the size of ``x``:
    ``sum``, ``vector_norm`` (E[x²] without materialising ``x * x``) and ``count_nonzero``.
    A NaN or inf anywhere makes the mean and std non-finite, which is how a sampled step
    sees a non-finite activation without another kernel.
    """
    x = x.detach()
    n = max(x.numel(), 1)
    total = x.sum(dtype=torch.float32)
    norm = torch.linalg.vector_norm(x, dtype=torch.float32)
    mean = total / n
    std = (norm.square() / n - mean.square()).clamp_min(0).sqrt()
    zero = 1.0 - torch.count_nonzero(x).to(torch.float32) / n
    torch.stack([mean, std, zero], out=out)


def norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm of each tensor (fused where the device allows), as one float32 vector."""
    return torch.stack(torch._foreach_norm(tensors)).to(torch.float32)


class AsyncRing:
    """Rows of device numbers brought to the host in order, without blocking the device.

    ``push(tag, row)`` starts the copy of a fresh 1-D float32 tensor (the caller must not
    write into it afterwards); ``poll()`` returns the rows whose copy has finished, oldest
    first, as ``(tag, [floats])``. On CUDA the copy goes to preallocated pinned memory and
    its completion is an event queried without waiting; on the CPU a row is ready at once.
    More than ``depth`` rows in flight make the oldest wait (the device is far behind).
    """

    def __init__(self, depth: int = 16) -> None:
        self.depth = depth
        self._pending: deque[tuple[Any, torch.Tensor, Any]] = deque()
        self._pinned: dict[int, list[torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def push(self, tag: Any, row: torch.Tensor) -> None:
        row = row.detach().reshape(-1)
        if row.device.type == "cuda":
            pool = self._pinned.setdefault(row.numel(), [])
            host = pool.pop() if pool else torch.empty(row.numel(), pin_memory=True)
            host.copy_(row.to(torch.float32), non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._pending.append((tag, host, event))
        else:
            self._pending.append((tag, row.to(torch.float32), None))

    def poll(self, wait: bool = False) -> list[tuple[Any, list[float]]]:
        """The rows that have landed, oldest first; with ``wait``, all of them."""
        out = []
        while self._pending:
            tag, host, event = self._pending[0]
            if event is not None and not event.query():
                if not (wait or len(self._pending) > self.depth):
                    break
                event.synchronize()
            self._pending.popleft()
            out.append((tag, host.tolist()))
            if event is not None:
                self._pinned.setdefault(host.numel(), []).append(host)
        return out
