"""What a run looked like over time: plain per-step series for plots and the HTML report.

Both ``nndoctor check`` (from its Recording and its experiments) and ``nndoctor watch``
(from its sampled stream) fill a :class:`RunSeries`; the renderers (plots, HTML) only draw
it. Missing values are ``nan``: a layer not sampled at a step, a step whose loss was not seen.
Plain data, no rendering and no torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Curve:
    """One x/y line, such as an experiment's loss over its steps."""

    label: str
    x: list[float]
    y: list[float]


@dataclass
class Marker:
    """A finding or an alert placed on the time axis."""

    step: int
    check: str
    severity: str  # "error", "warning", "info"
    label: str


@dataclass
class ExperimentCurves:
    """The curves one experiment produced, drawn on one chart."""

    check: str  # the check that ran it, e.g. "learning-rate-range" or "cannot-overfit-tiny-batch"
    title: str
    x_label: str
    y_label: str
    curves: list[Curve] = field(default_factory=list)
    log_x: bool = False
    # Labelled positions on the x axis drawn as vertical lines (the user's learning rate).
    x_marks: dict[str, float] = field(default_factory=dict)


@dataclass
class RunSeries:
    """Per-step values of one run. Every per-layer list is aligned with ``steps``."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)  # first parameter group
    # layer (module or parameter name) -> one value per step
    grad_norm: dict[str, list[float]] = field(default_factory=dict)
    activation_mean: dict[str, list[float]] = field(default_factory=dict)
    activation_std: dict[str, list[float]] = field(default_factory=dict)
    activation_zero_frac: dict[str, list[float]] = field(default_factory=dict)
    update_ratio: dict[str, list[float]] = field(default_factory=dict)  # |update| / |weight|
    markers: list[Marker] = field(default_factory=list)
    experiments: list[ExperimentCurves] = field(default_factory=list)

    def empty(self) -> bool:
        return not self.steps and not self.experiments

    def to_dict(self) -> dict[str, Any]:
        return _finite_or_none(asdict(self))


def _finite_or_none(obj: Any) -> Any:
    """JSON has no nan/inf: missing values become null."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
