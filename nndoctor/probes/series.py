"""Turn what ``nndoctor check`` observed into a :class:`~nndoctor.report.series.RunSeries`.

The Recording holds one record per observed step with per-parameter gradient, weight and
update norms and per-module activation statistics; the series wants one line per layer.
Parameters are grouped by the module that owns them (a layer's weight and bias together,
norms combined as the root of the summed squares), so a chart has one line per layer
rather than two. Findings that name a step become markers; experiment checks hand their
curves back through the lab (:meth:`nndoctor.checks.lab.Lab.hand_back`), and they are
appended as they came. Plain arithmetic, no torch, no judgement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from nndoctor.probes.recording import Recording, module_of
from nndoctor.report.model import Finding
from nndoctor.report.series import ExperimentCurves, Marker, RunSeries

NAN = math.nan


def build_series(
    recording: Recording,
    findings: Iterable[Finding] = (),
    experiments: Iterable[ExperimentCurves] = (),
) -> RunSeries:
    """The per-step series of ``recording``, with ``findings`` that name a step as markers
    and the curves ``experiments`` handed back."""
    series = RunSeries()
    records = recording.steps
    series.steps = [s.step for s in records]
    series.loss = [s.loss if s.loss_seen else NAN for s in records]
    series.learning_rate = [_first_lr(s.hyperparameters) for s in records]
    layers = _layers(recording)
    grad: dict[str, list[float]] = {name: [] for name in layers}
    ratio: dict[str, list[float]] = {name: [] for name in layers}
    for s in records:
        for name, params in layers.items():
            grad[name].append(_combined(s.grad_norms, params))
            update = _combined(s.update_norms, params)
            weight = _combined(s.weight_norms, params)
            ratio[name].append(update / weight if weight > 0 else NAN)
    series.grad_norm = _keep_measured(grad)
    series.update_ratio = _keep_measured(ratio)
    modules = list(dict.fromkeys(m for s in records for m in s.activations))
    series.activation_mean = _keep_measured(
        {m: [_act(s.activations, m, "mean") for s in records] for m in modules}
    )
    series.activation_std = _keep_measured(
        {m: [_act(s.activations, m, "std") for s in records] for m in modules}
    )
    series.activation_zero_frac = _keep_measured(
        {m: [_act(s.activations, m, "zero_frac") for s in records] for m in modules}
    )
    series.markers = markers_from(findings)
    series.experiments = list(experiments)
    return series


def markers_from(findings: Iterable[Finding]) -> list[Marker]:
    """One marker per finding that says at which step it was seen."""
    return [
        Marker(step=f.where.step, check=f.check, severity=f.severity.value, label=f.title)
        for f in findings
        if f.where.step is not None
    ]


def _first_lr(groups: list[dict[str, object]]) -> float:
    if not groups:
        return NAN
    lr = groups[0].get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool):
        return float(lr)
    return NAN


def _layers(recording: Recording) -> dict[str, list[str]]:
    """Module -> its parameters, in parameter order; '<root>' for parameters of the root."""
    names = list(recording.param_names)
    if not names:
        names = list(dict.fromkeys(p for s in recording.steps for p in s.grad_norms))
    layers: dict[str, list[str]] = {}
    for p in names:
        layers.setdefault(module_of(p) or "<root>", []).append(p)
    return layers


def _combined(norms: dict[str, float], params: list[str]) -> float:
    """The norm of the layer's parameters taken together; nan when none was recorded."""
    values = [norms[p] for p in params if p in norms]
    if not values:
        return NAN
    return math.sqrt(sum(v * v for v in values))


def _act(activations: dict[str, object], module: str, field: str) -> float:
    a = activations.get(module)
    return float(getattr(a, field)) if a is not None else NAN


def _keep_measured(lines: dict[str, list[float]]) -> dict[str, list[float]]:
    """Drops layers with no value at any step (frozen layers have no gradient, for example)."""
    return {k: v for k, v in lines.items() if any(not math.isnan(x) for x in v)}
