"""Checks that read a training run as a stream: one step row at a time, one sample at a time.

A stream check keeps its own running state and returns :class:`~nndoctor.report.model.Finding`
objects (the alerts) as soon as its rule holds. It never installs hooks: the session feeds
it the sentinel's :class:`~nndoctor.watch.rows.StepRow` of every step and the
:class:`~nndoctor.watch.rows.Sample` of every sampled step, and lends it a replay service for
non-finite values. Its rules reuse the thresholds of the check families that judge a short
run (``nndoctor/checks/training``) and add the ``watch_*`` ones, all in
:class:`~nndoctor.checks.thresholds.Thresholds`.

What a verdict may depend on: rules on step rows (non-finite values, divergence, plateau,
train/eval mode, GradScaler, phases, loss/metric) see every step, whatever the sampling
period; rules on samples (dead units, update ratios, non-finite activations) are stated in
sampled steps ("at every sampled step over at least N consecutive sampled steps"), so a
faster machine that samples more often reaches the same verdict on the same run, possibly
sooner.
"""

from __future__ import annotations

import inspect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS, Thresholds
from nndoctor.probes.layers import MODE_DEPENDENT, RELU, is_kind
from nndoctor.report.model import Finding, Severity, Where
from nndoctor.watch.rows import Sample, StepRow


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@dataclass
class StreamContext:
    """What stream checks see besides the rows: thresholds, the model's layout, services."""

    thresholds: Thresholds = DEFAULT_THRESHOLDS
    module_classes: dict[str, type] = field(default_factory=dict)
    param_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # step -> what a replay of that step's batch found (see nndoctor.watch.replay), or None
    replay: Callable[[int], Any] | None = None


class StreamCheck:
    """Base of stream checks: ``id``, ``reasons``, ``severity``; the docstring is the manual."""

    id = ""
    reasons: tuple[int, ...] = ()
    severity = Severity.WARNING

    def on_step(self, row: StepRow, ctx: StreamContext) -> list[Finding]:
        return []

    def on_sample(self, sample: Sample, ctx: StreamContext) -> list[Finding]:
        return []

    def on_phase(self, step: int, what: str, ctx: StreamContext) -> list[Finding]:
        return []

    def finding(
        self,
        title: str,
        message: str,
        fix: str,
        *,
        step: int,
        module: str | None = None,
        severity: Severity | None = None,
        reasons: tuple[int, ...] | None = None,
        evidence: dict[str, Any] | None = None,
        where: Where | None = None,
    ) -> Finding:
        return Finding(
            check=self.id,
            reasons=sorted(reasons or self.reasons),
            severity=severity or self.severity,
            title=title,
            message=message,
            fix=fix,
            where=where or Where(module=module, step=step),
            evidence=evidence or {},
        )


class NonFinite(StreamCheck):
    """A NaN or infinity in the loss, the global gradient norm or a sampled activation.

    Why it matters:
        One non-finite value reaches every weight at the next update and the run is lost,
        often thousands of steps after the last look at it.

    What is measured:
        At every step (the sentinel, whatever the sampling period): the loss and the global
        gradient norm at the update; a step a GradScaler skipped is expected to have
        non-finite gradients and is not counted. At sampled steps: the mean and std of
        every leaf module's output. The first non-finite value trips a replay of that
        step's batch on a copy of the model that names the first operation and module
        producing it, forward or backward.

    How to fix:
        Guard the operation named (``x.clamp_min(1e-8).log()``, an epsilon in denominators,
        ``log_softmax`` / ``BCEWithLogitsLoss``), lower the learning rate or clip gradients
        when the weights grew until they overflowed; under float16, use a GradScaler.
    """

    id = "watch-non-finite"
    reasons = (37,)
    severity = Severity.ERROR

    def __init__(self) -> None:
        self.fired = False

    def on_step(self, row: StepRow, ctx: StreamContext) -> list[Finding]:
        if self.fired:
            return []
        bad_loss = row.loss_seen and not math.isfinite(row.loss)
        bad_grad = row.grad_measured and not math.isfinite(row.grad_norm)
        if not (bad_loss or bad_grad):
            return []
        self.fired = True
        what = "the loss" if bad_loss else "the global gradient norm"
        value = row.loss if bad_loss else row.grad_norm
        return [self._traced(row.step, f"{what} became {value}", ctx, {"phase": "step"})]

    def on_sample(self, sample: Sample, ctx: StreamContext) -> list[Finding]:
        if self.fired:
            return []
        bad = next(
            (
                m
                for m, (mean, std, _) in sample.activations.items()
                if not math.isfinite(mean + std)
            ),
            None,
        )
        if bad is None:
            return []
        self.fired = True
        return [
            self._traced(
                sample.step,
                f"the output of module {bad or '<root>'} held a non-finite value",
                ctx,
                {"phase": "forward", "module": bad},
                module=bad,
            )
        ]

    def _traced(
        self,
        step: int,
        what: str,
        ctx: StreamContext,
        evidence: dict[str, Any],
        module: str | None = None,
    ) -> Finding:
        from nndoctor.checks.nan import _CAUSES, _op_base

        message = f"At step {step} {what}."
        where = Where(module=module, step=step)
        result = ctx.replay(step) if ctx.replay is not None else None
        fix = (
            "Guard the operation that produced it (clamp before log, an epsilon in denominators, "
            "stable fused losses), or lower the learning rate / clip gradients if the weights grew "
            "until they overflowed."
        )
        if result is not None and result.event is not None:
            op = result.event
            cause = _CAUSES.get(_op_base(op.op), "")
            inside = f" in module {op.module}" if op.module else ""
            message += (
                f" Replayed on a copy, the first operation producing it is aten.{op.op}{inside}, "
                f"in the {op.phase} pass" + (f" — likely {cause}." if cause else ".")
            )
            where = Where(
                module=op.module or module, step=step, file=op.file, line=op.line, op=op.op
            )
            evidence.update(op=op.op, op_phase=op.phase, inputs_finite=op.inputs_finite)
            if op.code:
                evidence["code"] = op.code
        elif result is not None and result.note:
            message += f" {result.note}"
        return self.finding(
            "Non-finite values (NaN/inf) during training",
            message,
            fix,
            step=step,
            where=where,
            evidence=evidence,
        )


class Divergence(StreamCheck):
    """The loss rises well above the best it reached, and stays there.

    Why it matters:
        A run that was learning and then climbs back above its starting loss has an
        optimiser overshooting: most often a learning rate (or a warm-up peak, or a restart
        of a schedule) too high for this point of training, or exploding gradients.

    What is measured:
        Every step's loss (the sentinel), smoothed with an EMA (``watch_loss_smoothing``).
        After ``watch_warmup_steps`` steps the best smoothed loss is held; an error when the
        smoothed loss stays above ``lr_range_divergence`` (4) times the best and above
        ``watch_divergence_share`` of the smoothed loss at warm-up end for
        ``watch_divergence_steps`` consecutive steps. The step reported is the first of the
        stretch whose raw loss exceeded the ratio. Positive losses only.

    How to fix:
        Lower the learning rate (or the schedule's peak) 3-10x, add warm-up, clip the
        gradient norm (``clip_grad_norm_(model.parameters(), 1.0)``).
    """

    id = "watch-divergence"
    reasons = (36,)
    severity = Severity.ERROR

    def __init__(self) -> None:
        self.ema = math.nan
        self.best = math.nan
        self.start = math.nan
        self.seen = 0
        self.run = 0
        self.excursion: int | None = None
        self.fired = False

    def on_step(self, row: StepRow, ctx: StreamContext) -> list[Finding]:
        t = ctx.thresholds
        if self.fired or not row.loss_seen or not math.isfinite(row.loss):
            return []
        a = t.watch_loss_smoothing
        self.ema = row.loss if math.isnan(self.ema) else self.ema + a * (row.loss - self.ema)
        self.seen += 1
        if self.seen < t.watch_warmup_steps:
            return []
        if math.isnan(self.start):
            self.start = self.best = self.ema
        self.best = min(self.best, self.ema)
        if self.best <= 0:
            return []
        ratio = t.lr_range_divergence
        if row.loss > ratio * self.best:
            self.excursion = row.step if self.excursion is None else self.excursion
        elif self.ema <= ratio * self.best:
            self.excursion = None
        high = self.ema > ratio * self.best and self.ema > t.watch_divergence_share * self.start
        self.run = self.run + 1 if high else 0
        if self.run < t.watch_divergence_steps:
            return []
        self.fired = True
        at = self.excursion if self.excursion is not None else row.step
        return [
            self.finding(
                "The loss diverged from its best value",
                (
                    f"The smoothed loss reached {_fmt(self.ema)} at step {row.step}, "
                    f"{_fmt(self.ema / self.best)}x its best {_fmt(self.best)} (error above "
                    f"{_fmt(ratio)}x for {t.watch_divergence_steps} steps); it started rising at "
                    f"step {at} (loss {_fmt(row.loss)} now)."
                ),
                "Lower the learning rate (or the schedule's peak) 3-10x, add warm-up, and clip the "
                "gradient norm (clip_grad_norm_(model.parameters(), 1.0)).",
                step=at,
                evidence={
                    "best_loss": self.best,
                    "smoothed_loss": self.ema,
                    "loss": row.loss,
                    "lr": row.lr,
                    "detected_at": row.step,
                },
            )
        ]


class Plateau(StreamCheck):
    """The loss stays flat for a long stretch while still far above where it started to fall.

    Why it matters:
        A loss that stopped moving long before it is low means the optimiser is stuck: a
        learning rate decayed to nothing, too low from the start, or saturated units.

    What is measured:
        Every step's loss, in windows of ``watch_plateau_steps``: an info alert when a
        window's mean differs from the previous window's by less than
        ``watch_plateau_change`` (relative) while it is still above ``give_it_time_floor``
        of the first window's mean. Each run of the rule sees every step.

    How to fix:
        Look at the learning-rate schedule (a decay that reached ~0), try a higher rate
        (a learning-rate range test) or another optimiser.
    """

    id = "watch-plateau"
    reasons = (36,)
    severity = Severity.INFO

    def __init__(self) -> None:
        self.window: list[float] = []
        self.first = math.nan
        self.previous = math.nan
        self.fired = False

    def on_step(self, row: StepRow, ctx: StreamContext) -> list[Finding]:
        t = ctx.thresholds
        if self.fired or not row.loss_seen or not math.isfinite(row.loss):
            return []
        self.window.append(row.loss)
        if len(self.window) < t.watch_plateau_steps:
            return []
        mean = sum(self.window) / len(self.window)
        self.window = []
        if math.isnan(self.first):
            self.first = self.previous = mean
            return []
        previous, self.previous = self.previous, mean
        change = abs(mean - previous) / max(abs(previous), 1e-12)
        if change >= t.watch_plateau_change or mean <= t.give_it_time_floor * self.first:
            return []
        self.fired = True
        return [
            self.finding(
                "The loss has plateaued",
                (
                    f"The mean loss over steps {row.step - t.watch_plateau_steps + 1}-{row.step} "
                    f"({_fmt(mean)}) is within {_fmt(100 * change)}% of the window before, still "
                    f"{_fmt(mean / self.first)}x the first window's mean ({_fmt(self.first)})."
                ),
                "Check the learning-rate schedule (decayed to ~0?), try a higher rate or another "
                "optimiser.",
                step=row.step,
                evidence={"window_mean": mean, "previous_mean": previous, "lr": row.lr},
            )
        ]


class DeadUnits(StreamCheck):
    """A ReLU layer whose output is (almost) all zeros at every sampled step.

    Why it matters:
        A ReLU that outputs zero for every input passes no gradient: the layers before it
        stop learning, and a dead layer never recovers by itself. Units die in mid-run
        after a learning-rate spike as well as at initialisation.

    What is measured:
        At sampled steps, the share of exact zeros in each ReLU-family module's output. A
        warning when it is at least ``watch_dead_fraction`` at every sampled step over
        ``watch_sustained_samples`` consecutive sampled steps; an error when it is
        ``dead_relu_error_fraction`` (all zeros) at each of them.

    How to fix:
        Lower the learning rate, initialise with He/Kaiming and zero biases, or use
        LeakyReLU/GELU.
    """

    id = "watch-dead-units"
    reasons = (35, 28)
    severity = Severity.WARNING

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[int, float]]] = {}
        self.fired: set[str] = set()

    def on_sample(self, sample: Sample, ctx: StreamContext) -> list[Finding]:
        t = ctx.thresholds
        out = []
        for name, (_, _, zero) in sample.activations.items():
            if name in self.fired or not is_kind(ctx.module_classes.get(name), RELU):
                continue
            run = self.runs.setdefault(name, [])
            if zero >= t.watch_dead_fraction:
                run.append((sample.step, zero))
            else:
                run.clear()
            if len(run) < t.watch_sustained_samples:
                continue
            self.fired.add(name)
            dead = all(z >= t.dead_relu_error_fraction for _, z in run)
            out.append(
                self.finding(
                    f"ReLU layer {name} is dead",
                    (
                        f"Module {name}'s output was {'all' if dead else 'at least ' + _fmt(100 * min(z for _, z in run)) + '%'} "
                        f"zeros at each of {len(run)} consecutive sampled steps ({run[0][0]}-{run[-1][0]})."
                    ),
                    "Lower the learning rate, initialise with He/Kaiming and zero biases, or use "
                    "LeakyReLU/GELU.",
                    step=run[0][0],
                    module=name,
                    severity=Severity.ERROR if dead else None,
                    evidence={"zero_fraction": [z for _, z in run], "steps": [s for s, _ in run]},
                )
            )
        return out


class UpdateRatio(StreamCheck):
    """Updates far too large against the weights, sustained over sampled steps.

    Why it matters:
        A healthy step changes a weight matrix by about 1e-3 of its norm. Steps of a tenth
        of the weights or more rewrite the network every few steps: the learning rate is far
        too high for this stage (a warm-up that ramped too far, a rate multiplied by a bug).

    What is measured:
        At sampled steps, |update| / |weight| of every weight matrix (the weights before the
        update), median over matrices. A warning when it exceeds ``update_ratio_high`` at
        every sampled step over ``watch_sustained_samples`` consecutive sampled steps; an
        error when it exceeds ``update_ratio_extreme`` at each of them.

    How to fix:
        Lower the learning rate (or the schedule's peak); for Adam the update per weight is
        about the learning rate itself.
    """

    id = "watch-update-ratio"
    reasons = (36,)
    severity = Severity.WARNING

    def __init__(self) -> None:
        self.run: list[tuple[int, float]] = []
        self.fired = False

    def on_sample(self, sample: Sample, ctx: StreamContext) -> list[Finding]:
        t = ctx.thresholds
        if self.fired:
            return []
        ratios = sorted(
            r
            for n, r in sample.update_ratios().items()
            if len(ctx.param_shapes.get(n, ())) >= 2 and math.isfinite(r)
        )
        if not ratios:
            return []
        median = ratios[len(ratios) // 2]
        if median > t.update_ratio_high:
            self.run.append((sample.step, median))
        else:
            self.run.clear()
        if len(self.run) < t.watch_sustained_samples:
            return []
        self.fired = True
        extreme = all(r > t.update_ratio_extreme for _, r in self.run)
        return [
            self.finding(
                "Updates far too large for the weights",
                (
                    f"The median |update|/|weight| over weight matrices was above "
                    f"{_fmt(t.update_ratio_extreme if extreme else t.update_ratio_high)} at each of "
                    f"{len(self.run)} consecutive sampled steps ({self.run[0][0]}-{self.run[-1][0]}), "
                    f"up to {_fmt(max(r for _, r in self.run))} (healthy ≈ 1e-3)."
                ),
                "Lower the learning rate (or the schedule's peak) 10x or more.",
                step=self.run[0][0],
                severity=Severity.ERROR if extreme else None,
                evidence={"median_ratio": [r for _, r in self.run]},
            )
        ]


class TrainEvalMode(StreamCheck):
    """Training steps taken with the model in ``eval()`` mode.

    Why it matters:
        Trained in eval mode, BatchNorm uses (and never updates) its running statistics
        and Dropout does nothing: the model trained is not the one intended. The usual cause
        is a ``model.eval()`` for validation without ``model.train()`` afterwards.

    What is measured:
        The model's ``training`` flag at every step's forward. A warning after
        ``watch_eval_mode_steps`` consecutive steps in eval mode when the model has
        mode-dependent modules (BatchNorm, Dropout, ...).

    How to fix:
        Call ``model.train()`` at the start of every training epoch (after each validation).
    """

    id = "watch-train-eval-mode"
    reasons = (32,)
    severity = Severity.WARNING

    def __init__(self) -> None:
        self.run: list[int] = []
        self.fired = False

    def on_step(self, row: StepRow, ctx: StreamContext) -> list[Finding]:
        if self.fired or row.forwards == 0:
            return []
        if row.training:
            self.run.clear()
            return []
        self.run.append(row.step)
        if len(self.run) < ctx.thresholds.watch_eval_mode_steps:
            return []
        modes = [n for n, c in ctx.module_classes.items() if is_kind(c, MODE_DEPENDENT)]
        if not modes:
            return []
        self.fired = True
        return [
            self.finding(
                "Training with the model in eval mode",
                (
                    f"Steps {self.run[0]}-{self.run[-1]} ran with the model in eval() mode; it has "
                    f"{len(modes)} mode-dependent module(s) ({', '.join(modes[:4])})."
                ),
                "Call model.train() after every validation pass (at the start of each epoch).",
                step=self.run[0],
            )
        ]


class ScalerTrouble(StreamCheck):
    """A GradScaler that skips most steps, or whose loss scale has collapsed.

    Why it matters:
        Under float16 a GradScaler skips a step whose gradients overflowed and halves its
        scale: occasional skips are how it finds its scale. Skipping most steps, or a scale
        that keeps falling below 1, means the gradients overflow even unscaled: the model
        is not training at all.

    What is measured:
        At every step the scaler's decision (skipped or not, seen on the host) and its scale.
        A warning when at least ``watch_scaler_skip_fraction`` of the last
        ``watch_scaler_window`` steps were skipped, or the scale fell below
        ``watch_scaler_min_scale``.

    How to fix:
        Find the overflow (often a loss or activation in float16 beyond 65504): compute the
        loss in float32, lower the learning rate, or train in bfloat16.
    """

    id = "watch-grad-scaler"
    reasons = (37,)
    severity = Severity.WARNING

    def __init__(self) -> None:
        self.recent: deque[bool] = deque()
        self.fired = False

    def on_step(self, row: StepRow, ctx: StreamContext) -> list[Finding]:
        t = ctx.thresholds
        if self.fired or math.isnan(row.scale):
            return []
        self.recent.append(row.skipped)
        if len(self.recent) > t.watch_scaler_window:
            self.recent.popleft()
        skipped = sum(self.recent)
        persistent = len(
            self.recent
        ) == t.watch_scaler_window and skipped >= t.watch_scaler_skip_fraction * len(self.recent)
        collapsed = row.scale < t.watch_scaler_min_scale
        if not (persistent or collapsed):
            return []
        self.fired = True
        return [
            self.finding(
                "The GradScaler keeps skipping steps" if persistent else "The loss scale collapsed",
                (
                    f"{skipped} of the last {len(self.recent)} steps were skipped for inf/NaN "
                    f"gradients; the scale is {_fmt(row.scale)} at step {row.step}."
                ),
                "Compute the loss in float32, lower the learning rate, or train in bfloat16.",
                step=row.step,
                evidence={"skipped": skipped, "window": len(self.recent), "scale": row.scale},
            )
        ]


class LossMetricDisagreement(StreamCheck):
    """The loss falls while the reported metric does not improve.

    Why it matters:
        A loss that improves while accuracy (or the task's metric) stays put optimises
        something else than the task: a loss on the wrong outputs, a metric on the wrong
        targets, a loss that rewards confidence only.

    What is measured:
        Only when the run reports a metric (``Watcher.observe(metric=...)``, higher is
        better); skipped otherwise. Means over windows of ``watch_warmup_steps`` steps: a
        warning when the loss fell by at least ``metric_loss_drop`` of its first window while
        the metric gained less than ``metric_accuracy_gain_min`` and stayed below
        ``metric_accuracy_ceiling``.

    How to fix:
        Check that the loss and the metric read the same outputs and targets.
    """

    id = "watch-loss-metric"
    reasons = (21,)
    severity = Severity.WARNING

    def __init__(self) -> None:
        self.window: list[tuple[float, float]] = []
        self.first: tuple[float, float] | None = None
        self.fired = False

    def on_step(self, row: StepRow, ctx: StreamContext) -> list[Finding]:
        t = ctx.thresholds
        if self.fired or not (math.isfinite(row.loss) and math.isfinite(row.metric)):
            return []
        self.window.append((row.loss, row.metric))
        if len(self.window) < t.watch_warmup_steps:
            return []
        loss = sum(x for x, _ in self.window) / len(self.window)
        metric = sum(m for _, m in self.window) / len(self.window)
        self.window = []
        if self.first is None:
            self.first = (loss, metric)
            return []
        loss0, metric0 = self.first
        if loss0 <= 0 or loss > (1 - t.metric_loss_drop) * loss0:
            return []
        if metric - metric0 >= t.metric_accuracy_gain_min or metric >= t.metric_accuracy_ceiling:
            return []
        self.fired = True
        return [
            self.finding(
                "The loss falls but the metric does not improve",
                (
                    f"The loss fell from {_fmt(loss0)} to {_fmt(loss)} while the metric went from "
                    f"{_fmt(metric0)} to {_fmt(metric)}."
                ),
                "Check that the loss and the metric read the same outputs and targets.",
                step=row.step,
                evidence={"loss": [loss0, loss], "metric": [metric0, metric]},
            )
        ]


class Phases(StreamCheck):
    """A new training phase starts: another optimizer, or new parameter groups.

    Why it matters:
        Fine-tuning after pre-training, a linear probe after a frozen trunk, unfreezing a
        backbone: each phase has its own settings and its own bugs, and the statistics before
        it are no guide to the ones after. Alerts are announced per phase.

    What is measured:
        At every step, the optimizer that stepped the model's parameters and its parameter
        groups; a change is announced (info) with the step.

    How to fix:
        Nothing to fix: a marker. Read the alerts after it as the new phase's.
    """

    id = "watch-phase"
    reasons = (33,)
    severity = Severity.INFO

    def on_phase(self, step: int, what: str, ctx: StreamContext) -> list[Finding]:
        return [
            self.finding(
                "A new training phase starts",
                f"At step {step}: {what}.",
                "Nothing to fix: the alerts after this belong to the new phase.",
                step=step,
                evidence={"what": what},
            )
        ]


STREAM_CHECKS: tuple[type[StreamCheck], ...] = (
    NonFinite,
    Divergence,
    Plateau,
    DeadUnits,
    UpdateRatio,
    TrainEvalMode,
    ScalerTrouble,
    LossMetricDisagreement,
    Phases,
)


def fresh_checks() -> list[StreamCheck]:
    """One new instance of every stream check (their running state starts empty)."""
    return [cls() for cls in STREAM_CHECKS]


@dataclass(frozen=True)
class StreamManual:
    """A stream check as ``nndoctor explain`` prints it (the registry's spec fields)."""

    id: str
    reasons: tuple[int, ...]
    severity: Severity
    doc: str
    kind: str = "stream check (watch)"
    explains: tuple[str, ...] = ()
    symptom: bool = False
    differential: tuple[tuple[int, str], ...] = ()


def stream_manuals() -> list[StreamManual]:
    """The manual of every stream check, in :data:`STREAM_CHECKS` order."""
    return [
        StreamManual(c.id, c.reasons, c.severity, inspect.cleandoc(c.__doc__ or ""))
        for c in STREAM_CHECKS
    ]
