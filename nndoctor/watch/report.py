"""What a watched run left: its alerts, how it was sampled, what watch cost, and its series."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

from nndoctor.report.model import Finding, Severity
from nndoctor.report.series import Marker, RunSeries
from nndoctor.watch.rows import Sample

# The series keeps at most about this many points per curve (a run of a million steps
# still makes a drawable, JSON-sized series); sampled steps beyond it are thinned evenly.
MAX_SERIES_POINTS = 2000


@dataclass
class WatchReport:
    """The outcome of ``nndoctor.watch``: alerts (findings with ``where.step``), steps seen and
    sampled, the sampling periods used, watch's measured overhead and the run's series."""

    alerts: list[Finding] = field(default_factory=list)
    steps_seen: int = 0
    steps_sampled: int = 0
    # (first step, k): the sampling period from that step on
    periods: list[tuple[int, int]] = field(default_factory=list)
    budget: float = 0.02
    every: int | None = None
    overhead: float = math.nan  # watch's own time / the steps' time without it (estimate)
    series: RunSeries = field(default_factory=RunSeries)
    notes: list[str] = field(default_factory=list)  # what watch could not see, and why
    crashes: list[str] = field(default_factory=list)  # watch's own hooks that failed (disabled)
    stopped: bool = False  # stop_on="error" stopped the run
    stopped_by: str = ""  # the alert (check at step) that stopped the run

    def worst(self) -> Severity | None:
        if not self.alerts:
            return None
        return max((f.severity for f in self.alerts), key=lambda s: s.rank)

    def errors(self) -> list[Finding]:
        return [f for f in self.alerts if f.severity is Severity.ERROR]

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.alerts if f.check == check]

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps_seen": self.steps_seen,
            "steps_sampled": self.steps_sampled,
            "periods": [{"from_step": s, "every": k} for s, k in self.periods],
            "budget": self.budget,
            "every": self.every,
            "overhead": self.overhead if math.isfinite(self.overhead) else None,
            "alerts": [f.to_dict() for f in self.alerts],
            "notes": list(self.notes),
            "crashes": list(self.crashes),
            "stopped": self.stopped,
            "stopped_by": self.stopped_by,
            "series": self.series.to_dict(),
        }


class SeriesBuilder:
    """Collects the per-step loss and learning rate (every step, compactly) and the sampled
    per-layer values, and builds the :class:`RunSeries` at the end."""

    def __init__(self) -> None:
        self.loss = array("d")
        self.lr = array("d")
        self.samples: list[Sample] = []
        self._stride = 1  # keep one sample in this many (thinning)
        self._seen = 0

    def add_step(self, step: int, loss: float, lr: float) -> None:
        while len(self.loss) <= step:
            self.loss.append(math.nan)
            self.lr.append(math.nan)
        self.loss[step] = loss
        self.lr[step] = lr

    def add_sample(self, sample: Sample) -> None:
        self._seen += 1
        if (self._seen - 1) % self._stride:
            return
        self.samples.append(sample)
        if len(self.samples) > 2 * MAX_SERIES_POINTS:
            self.samples = self.samples[::2]
            self._stride *= 2

    def build(self, alerts: list[Finding]) -> RunSeries:
        n = len(self.loss)
        stride = max(1, math.ceil(n / MAX_SERIES_POINTS))
        by_step = {s.step: s for s in self.samples}
        marked = {f.where.step for f in alerts if f.where.step is not None and f.where.step < n}
        steps = sorted(set(range(0, n, stride)) | set(by_step) | marked)
        series = RunSeries(
            steps=steps,
            loss=[self.loss[s] if s < n else math.nan for s in steps],
            learning_rate=[self.lr[s] if s < n else math.nan for s in steps],
        )
        layers = {m for s in self.samples for m in s.activations}
        params = {p for s in self.samples for p in s.grad_norms}
        updated = {p for s in self.samples for p in s.update_norms}
        for m in sorted(layers):
            series.activation_mean[m] = []
            series.activation_std[m] = []
            series.activation_zero_frac[m] = []
        for p in sorted(params):
            series.grad_norm[p] = []
        for p in sorted(updated):
            series.update_ratio[p] = []
        for s in steps:
            sample = by_step.get(s)
            acts = sample.activations if sample else {}
            for m in layers:
                mean, std, zero = acts.get(m, (math.nan, math.nan, math.nan))
                series.activation_mean[m].append(mean)
                series.activation_std[m].append(std)
                series.activation_zero_frac[m].append(zero)
            grads = sample.grad_norms if sample else {}
            for p in params:
                series.grad_norm[p].append(grads.get(p, math.nan))
            ratios = sample.update_ratios() if sample else {}
            for p in updated:
                series.update_ratio[p].append(ratios.get(p, math.nan))
        series.markers = [
            Marker(step=f.where.step, check=f.check, severity=f.severity.value, label=f.title)
            for f in alerts
            if f.where.step is not None
        ]
        return series
