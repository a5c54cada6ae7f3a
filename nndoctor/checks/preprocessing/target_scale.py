"""Regression targets far from standardised (reason 12): the outputs' side of feature scaling.

A network's output layer starts near zero with a spread of order one. Targets in raw units
(prices in the thousands, a year, a sensor in millivolts) put the initialised model a long
way from the data, and with a loss whose gradient is bounded (L1, Huber, smooth L1) or an
adaptive optimiser whose steps are of the learning rate's size, the output layer's bias
crawls towards them for thousands of steps. Whether that holds this model back is decided
by a twin experiment, as for the inputs, in units both copies share: each copy's loss
against the loss of the best constant prediction of its own targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nndoctor.checks import causes
from nndoctor.checks.lab import (
    Delay,
    ExperimentCrashed,
    Lab,
    TrainResult,
    delay_steps,
    first_reaching,
)
from nndoctor.checks.preprocessing.normalization import TWIN_BATCHES
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.report.model import Where
from nndoctor.subject import Subject

# Losses of a value whose scale is the target's own (functional names).
REGRESSION_LOSSES = frozenset({"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"})
_CRITERIA: dict[type[nn.Module], str] = {
    nn.MSELoss: "mse_loss",
    nn.L1Loss: "l1_loss",
    nn.SmoothL1Loss: "smooth_l1_loss",
    nn.HuberLoss: "huber_loss",
}
# Target columns a message names before it says "and N more".
_SHOWN = 4


@dataclass
class TargetColumns:
    """Per target element (one column of the targets reshaped to one row per sample): the
    mean and std over the twins' batches."""

    mean: torch.Tensor
    std: torch.Tensor
    off: list[int]  # the columns far from standardised

    def describe(self) -> str:
        cols = self.off[:_SHOWN]
        listed = "; ".join(
            (f"element {c}: " if self.mean.numel() > 1 else "")
            + f"mean {float(self.mean[c]):.4g}, std {float(self.std[c]):.4g}"
            for c in cols
        )
        more = f"; and {len(self.off) - _SHOWN} more" if len(self.off) > _SHOWN else ""
        return listed + more


@dataclass
class TargetTwin:
    """Two copies from the initial weights trained alike, on the targets as they are and on
    the same targets standardised; each copy's losses are read against the loss of the
    best constant prediction of its own batch (1: no better than a constant)."""

    raw: TrainResult
    standardised: TrainResult
    raw_constant: list[float]  # per batch, the best constant's loss on the raw targets
    standardised_constant: list[float]
    steps: int

    @staticmethod
    def _relative(result: TrainResult, constant: list[float]) -> list[float]:
        return [loss / constant[i % len(constant)] for i, loss in enumerate(result.losses)]

    @staticmethod
    def _final(curve: list[float]) -> float:
        tail = [x for x in curve[-5:] if math.isfinite(x)]
        return sum(tail) / len(tail) if tail else math.inf

    @property
    def raw_final(self) -> float:
        if self.raw.error or self.raw.diverged:
            return math.inf
        return self._final(self._relative(self.raw, self.raw_constant))

    @property
    def standardised_final(self) -> float:
        return self._final(self._relative(self.standardised, self.standardised_constant))

    @property
    def raw_initial(self) -> float:
        curve = self._relative(self.raw, self.raw_constant)
        return curve[0] if curve else math.nan

    @property
    def standardised_initial(self) -> float:
        curve = self._relative(self.standardised, self.standardised_constant)
        return curve[0] if curve else math.nan

    def holds_back(self, t: Any) -> bool:
        """The copy on the raw targets ends ``target_twin_gain`` times above the
        standardised one and ``target_twin_margin`` above it (in units of the constant's
        loss: a difference worth a quarter of what a constant leaves unexplained)."""
        standardised_ok = not (self.standardised.error or self.standardised.diverged)
        return (
            standardised_ok
            and self.raw_final >= t.target_twin_gain * self.standardised_final
            and self.raw_final - self.standardised_final >= t.target_twin_margin
        )

    def describe(self) -> str:
        raw = (
            "failed (non-finite loss)"
            if self.raw.error or self.raw.diverged
            else f"{self.raw_initial:.3g} → {self.raw_final:.3g}"
        )
        return (
            f"trained alike for {self.steps} steps from the initial weights, a copy on these "
            f"targets went {raw} times the loss of the best constant prediction, a copy on "
            f"the same targets standardised {self.standardised_initial:.3g} → "
            f"{self.standardised_final:.3g}"
        )

    def evidence(self) -> dict[str, float | int]:
        return {
            "twin_steps": self.steps,
            "raw_relative_initial": self.raw_initial,
            "raw_relative_final": self.raw_final,
            "standardised_relative_initial": self.standardised_initial,
            "standardised_relative_final": self.standardised_final,
        }


@register_check(
    id="targets-not-standardized",
    reasons=(12,),
    severity="warning",
    kind="experiment",
    quick=True,
    priority=14,
    explains=causes.SCALE_SYMPTOMS | causes.FIT_SYMPTOMS,
)
def targets_not_standardized(ctx: CheckContext) -> None:
    """Regression targets far from standardised hold training back.

    Why it matters:
        The output layer of an initialised network gives values near zero with a spread of
        order one. Targets in raw units (a price in the thousands, a count in the
        hundreds, a year) start the model far from every target; with a bounded gradient
        (L1, Huber, smooth L1) or an adaptive optimiser, whose steps are of the learning
        rate's size whatever the error, the output's bias moves towards them a
        learning rate at a time, and for thousands of steps the model predicts little more
        than a drifting constant. With MSE the gradients are instead scaled by the
        targets' size and a rate that suits the rest of the net diverges.

    What is measured:
        For a recognised loss of a value (``mse_loss``, ``l1_loss``, ``smooth_l1_loss``,
        ``huber_loss``) on floating targets shaped like the prediction: each target
        element's mean and std over the first few captured batches (cut to
        ``experiment_batch_size``). Elements far from standardised use the inputs' limits
        (std above ``feature_std_max``, |mean| above ``feature_mean_abs_max`` times
        max(std, 1), std below ``feature_std_min`` while it varies). A scale far from one
        matters only if it holds training back, so a twin experiment decides: two copies
        from the initial weights train alike (the script's optimiser, regularisation off,
        ``data_experiment_steps`` steps), one on the targets as they are, one on them
        standardised per element. Their losses are compared in units they share: each
        step's loss divided by the loss of the best constant prediction of that batch's
        own targets (the mean, or the median where the loss is absolute), 1 for a model
        that has learned nothing but the targets' centre. A warning when the raw copy ends
        ``target_twin_gain`` (2) times above the standardised one and at least
        ``target_twin_margin`` (a quarter of the constant's loss) above it; a note
        otherwise (targets on a scale the model copes with). Where the script's loops say
        how long it trains (:mod:`nndoctor.capture.horizon`), a scale the model only needs
        longer for is a delay, not a stall: the raw copy trains on from the initial weights
        for ``horizon_delay_share`` (5%) of the planned steps past the twin's (at most
        ``horizon_delay_max_steps``, 600, in all), and if within them it reaches what the
        standardised copy reached in the twin's steps, the finding becomes a note that
        states the delay.

    How to fix:
        Standardise the targets with training-set statistics and map predictions back:
        ``y_s = (y - mean) / std`` for the loss, ``pred * std + mean`` for reports and
        metrics. Or predict a log for positive quantities spanning orders of magnitude.

    Example:
        Before::

            loss = F.huber_loss(model(x), price)            # prices around 3000

        After::

            mu, sigma = price_train.mean(), price_train.std()
            loss = F.huber_loss(model(x), (price - mu) / sigma)
            predicted_price = model(x) * sigma + mu
    """
    lab: Lab | None = ctx.services
    if lab is None or not lab.available or lab.subject is None:
        ctx.skip("no replayable subject: the twin experiment needs the loss on copies")
    assert lab is not None and lab.subject is not None
    subject = lab.subject
    name = loss_name(subject)
    if name not in REGRESSION_LOSSES:
        ctx.skip("the loss is not a recognised loss of a value (MSE, L1, Huber, smooth L1)")
    t = ctx.thresholds
    batches = lab.small_batches(TWIN_BATCHES, t.experiment_batch_size)
    # One initialised copy answers for every batch: its prediction's size is all that is read.
    model = lab.fresh_model()
    rows = [_target_rows(subject, model, b) for b in batches]
    if not batches or any(r is None for r in rows):
        ctx.skip("the targets are not floating tensors shaped like the prediction")
    columns = _columns([r for r in rows if r is not None], t)
    if not columns.off:
        ctx.note(
            f"{columns.mean.numel()} target element(s), all of order one "
            f"(largest |mean| {float(columns.mean.abs().max()):.3g}, "
            f"std {float(columns.std.min()):.3g} to {float(columns.std.max()):.3g})"
        )
        return
    twin = _twin(lab, subject, batches, columns, name, t)
    if twin is None:
        ctx.skip("the targets cannot be replaced on copies, or a copy cannot take a step")
    assert twin is not None
    ctx.note(f"targets far from standardised ({columns.describe()}); {twin.describe()}")
    if not twin.holds_back(t):
        ctx.note(ctx.detail + ": the targets' scale is not what holds training back")
        return
    catch_up = _catch_up(lab, batches, twin, ctx.recording.horizon, t)
    if catch_up is not None and catch_up.caught_up_at is not None:
        ctx.note(
            f"{ctx.detail}; {_delay(catch_up)}: the scale delays the run, it does not hold it back"
        )
        return
    ctx.finding(
        title="Regression targets are not standardised, which holds training back",
        message=(
            f"The {name} targets are far from mean 0, std 1 ({columns.describe()}), while an "
            "initialised output layer gives values near zero of order one. "
            f"{_capitalised(twin.describe())}: "
            "in the same steps the model explains far less of raw targets than of "
            "standardised ones" + (f"; {_delay(catch_up)}." if catch_up is not None else ".")
        ),
        fix=(
            "Standardise the targets with training-set statistics, y_s = (y - mean) / std, "
            "train on y_s and map predictions back with pred * std + mean (or predict a log "
            "for positive quantities spanning orders of magnitude)."
        ),
        where=Where(),
        evidence={
            "loss": name,
            "elements": int(columns.mean.numel()),
            "flagged": len(columns.off),
            "flagged_stats": [
                {"element": c, "mean": float(columns.mean[c]), "std": float(columns.std[c])}
                for c in columns.off[:10]
            ],
            **twin.evidence(),
            **(catch_up.evidence() if catch_up is not None else {}),
        },
    )


def _catch_up(lab: Lab, batches: list[Any], twin: TargetTwin, horizon: Any, t: Any) -> Delay | None:
    """How long the copy on the raw targets takes to reach what the standardised copy
    reached in the twin's steps, trained for at most ``horizon_delay_share`` of the run the
    script plans past them (and ``horizon_delay_max_steps`` in all): a delay that small is a
    cost of the run, not a stall. None where the run's length is unknown."""
    steps = delay_steps(horizon, twin.steps, t.horizon_delay_share, t.horizon_delay_max_steps)
    if steps is None:
        return None
    try:
        raw = lab.train(batches, steps, regularisation=False)
    except ExperimentCrashed:
        return None
    level = twin.standardised_final
    caught = None
    if not (raw.error or raw.diverged):
        # The mean of five consecutive steps, as the twin's final level is read.
        caught = first_reaching(TargetTwin._relative(raw, twin.raw_constant), level, 5)
    return Delay(steps, horizon.steps, twin.steps, level, caught)


def _delay(delay: Delay) -> str:
    return delay.describe("the copy on these targets", "the standardised one")


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def loss_name(subject: Subject) -> str | None:
    """The functional name of the subject's loss of a value, if it is one."""
    if subject.loss_name is not None:
        return subject.loss_name
    for cls, name in _CRITERIA.items():
        if isinstance(subject.criterion, cls):
            return name
    return None


def _target_rows(subject: Subject, model: nn.Module, batch: Any) -> torch.Tensor | None:
    """The batch's targets, one row per sample (float64 on the host), when they are a
    floating tensor with as many elements as the prediction."""
    target = subject.targets(batch)
    if not isinstance(target, torch.Tensor) or not target.is_floating_point():
        return None
    if target.dim() == 0 or target.shape[0] < 2:
        return None
    with torch.no_grad():
        try:
            prediction = subject.prediction(model, batch)
        except Exception:  # noqa: BLE001 - a model that cannot be called here is not judged
            return None
    if not isinstance(prediction, torch.Tensor) or prediction.numel() != target.numel():
        return None
    return target.detach().reshape(target.shape[0], -1).double().cpu()


def _columns(rows: list[torch.Tensor], t: Any) -> TargetColumns:
    stacked = torch.cat(rows)
    mean, std = stacked.mean(0), stacked.std(0)
    off = [
        c
        for c in range(mean.numel())
        if float(std[c]) > t.feature_std_max
        or abs(float(mean[c])) > t.feature_mean_abs_max * max(float(std[c]), 1.0)
        or 0.0 < float(std[c]) < t.feature_std_min
    ]
    return TargetColumns(mean, std, off)


def _twin(
    lab: Lab,
    subject: Subject,
    batches: list[Any],
    columns: TargetColumns,
    name: str,
    t: Any,
) -> TargetTwin | None:
    centre = columns.mean
    scale = torch.where(columns.std > 0, columns.std, torch.ones_like(columns.std))
    twins: list[Any] = []
    for batch in batches:
        y = subject.targets(batch)
        rows = y.reshape(y.shape[0], -1)
        m = centre.to(device=y.device, dtype=y.dtype)
        s = scale.to(device=y.device, dtype=y.dtype)
        new = subject.with_targets(batch, ((rows - m) / s).reshape(y.shape))
        if new is None:
            return None
        twins.append(new)
    raw_constant = [_constant_loss(subject, b, name) for b in batches]
    standardised_constant = [_constant_loss(subject, b, name) for b in twins]
    if not all(math.isfinite(c) and c > 0 for c in raw_constant + standardised_constant):
        return None
    steps = t.data_experiment_steps
    try:
        raw = lab.train(batches, steps, regularisation=False)
        standardised = lab.train(twins, steps, regularisation=False)
    except ExperimentCrashed:
        return None
    if not raw.losses or not standardised.losses:
        return None
    return TargetTwin(raw, standardised, raw_constant, standardised_constant, steps)


def _constant_loss(subject: Subject, batch: Any, name: str) -> float:
    """The loss of the best constant prediction of the batch's own targets (per element:
    the mean, or the median for absolute losses, whichever the loss rates lower)."""
    y = subject.targets(batch)
    rows = y.reshape(y.shape[0], -1)
    best = math.inf
    centres = [rows.mean(0)] + ([rows.median(0).values] if name != "mse_loss" else [])
    for centre in centres:
        constant = centre.expand_as(rows).reshape(y.shape)
        with torch.no_grad():
            value = subject.loss_of_prediction(constant, batch)
        if value is not None and math.isfinite(float(value)):
            best = min(best, float(value))
    return best
