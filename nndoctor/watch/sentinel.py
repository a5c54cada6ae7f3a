"""The always-on sentinel: the loss, the global gradient norm and the GradScaler's scale at
every step, gathered on the device and read without a host synchronisation.

Each step's numbers are stacked into one small device row and pushed to an
:class:`~nndoctor.watch.stats.AsyncRing`; host facts known without touching the device (did
a GradScaler skip the update, was the model in train mode) travel with the row as its tag.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nndoctor.watch.rows import StepRow
from nndoctor.watch.stats import AsyncRing

_FIELDS = ("loss", "grad_norm", "scale", "metric")


class Sentinel:
    """Collects one step's device scalars, then pushes them as one row."""

    def __init__(self, ring: AsyncRing) -> None:
        self.ring = ring
        self._losses: list[torch.Tensor] = []
        self._scale: torch.Tensor | None = None
        self._metric: torch.Tensor | None = None
        self._metric_host = math.nan
        self._nan: dict[torch.device, torch.Tensor] = {}

    def note_loss(self, loss: torch.Tensor) -> None:
        """A loss back-propagated in this step (kept by reference, no kernel)."""
        self._losses.append(loss.detach())

    @property
    def losses_seen(self) -> int:
        return len(self._losses)

    def note_scale(self, scale: torch.Tensor | None) -> None:
        """The GradScaler's current scale tensor (read with the row, not now)."""
        self._scale = scale

    def note_metric(self, metric: torch.Tensor | float) -> None:
        """A metric of this step (higher is better), as a device tensor or a host number."""
        if isinstance(metric, torch.Tensor):
            self._metric = metric.detach()
        else:
            self._metric_host = float(metric)

    def _missing(self, device: torch.device) -> torch.Tensor:
        nan = self._nan.get(device)
        if nan is None:
            nan = self._nan[device] = torch.full((), math.nan, device=device)
        return nan

    def push(self, step: int, grad_norm: torch.Tensor | None, facts: dict[str, Any]) -> None:
        """Stack this step's numbers into one row, start its copy to the host, reset."""
        first = next(
            (t for t in (grad_norm, *self._losses, self._scale, self._metric) if t is not None),
            None,
        )
        device = first.device if first is not None else torch.device("cpu")
        if not self._losses:
            loss = self._missing(device)
        elif len(self._losses) == 1:
            loss = self._losses[0]
        else:
            loss = torch.stack([x.to(device, torch.float32) for x in self._losses]).mean()
        parts = [loss, grad_norm, self._scale, self._metric]
        row = torch.stack(
            [
                self._missing(device)
                if p is None
                else p.reshape(()).to(device=device, dtype=torch.float32, non_blocking=True)
                for p in parts
            ]
        )
        facts = dict(facts, step=step, loss_seen=bool(self._losses), metric_host=self._metric_host)
        self.ring.push(("step", facts), row)
        self._losses = []
        self._metric = None
        self._metric_host = math.nan


def decode(facts: dict[str, Any], values: list[float]) -> StepRow:
    """The row of one step, from its host facts and its device numbers."""
    facts = dict(facts)
    host_metric = facts.pop("metric_host", math.nan)
    numbers = dict(zip(_FIELDS, values, strict=True))
    if math.isnan(numbers["metric"]):
        numbers["metric"] = host_metric
    return StepRow(**facts, **numbers)
