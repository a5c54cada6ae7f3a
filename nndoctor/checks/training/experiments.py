"""Experiments on the training setup: regularisation (30), the optimiser (34), the learning rate (36).

Each trains fresh copies of the model in-process (``Lab``), from the real initial
weights, on batches captured from the subject. The tiny-batch run with the user's
optimiser and regularisation off is shared with the other tiny-batch experiments
through ``lab.memo`` (``Lab.overfit_user`` and ``Lab.overfit_known_good``).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nndoctor.checks import causes, significance
from nndoctor.checks.lab import (
    KNOWN_GOOD_LR,
    Delay,
    Lab,
    TrainResult,
    trailing_delay,
)
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.thresholds import Thresholds
from nndoctor.copying import set_training
from nndoctor.report.series import Curve, ExperimentCurves
from nndoctor.subject import REGULARISERS, OptimizerSpec, batch_size_of, switch_off_dropout

# The known-good optimiser (Kingma & Ba 2015, their default): it fits a tiny batch of
# almost any sound model in a hundred steps, so it separates "the optimiser settings"
# from "the model or the data".
# Batches the range test cycles over (captured from the subject).
RANGE_TEST_BATCHES = 4
# Half-width of the centred moving average over the range test's losses: two steps each
# side, about half a decade of learning rate at the default 60 steps over 7 decades.
SMOOTHING_HALF_WIDTH = 2
# Points of the range-test curve kept in the evidence.
CURVE_POINTS = 8
# Steps at the end of a rate trial whose losses are compared: each of the range test's
# batches three times, so both copies are scored on the same batches.
RATE_TRIAL_TAIL = 3 * RANGE_TEST_BATCHES
# Losses a rate replay needs at the script's own rates (and at zero): a fifth of them is
# the tail compared, and a paired t-test on fewer than two says nothing.
MIN_RATE_REPLAY_LOSSES = 10


def _unavailable(ctx: CheckContext) -> Lab:
    """The lab, or a skip saying why the experiment cannot run and how to enable it."""
    lab: Lab | None = ctx.services
    if lab is None or not lab.available:
        why = (
            lab.unavailable_reason
            if lab is not None and lab.unavailable_reason
            else "no replayable subject"
        )
        ctx.skip(
            f"{why}; declare a Subject (nndoctor.check(model, data, loss_fn, optimizer)) to run it"
        )
    assert lab is not None
    spec = lab.optimizer_spec()
    closure = inspect.signature(spec.cls.step).parameters.get("closure")
    if closure is not None and closure.default is inspect.Parameter.empty:
        ctx.skip(
            f"{spec.cls.__name__} needs a closure at every step; the experiment trains without one"
        )
    return lab


def _g(x: float) -> str:
    return f"{x:.3g}"


def _evaluated(lab: Lab, model: torch.nn.Module, batch: Any) -> float:
    """The loss of ``model`` on ``batch`` in eval mode (dropout off, as at test time)."""
    set_training(model, False)
    try:
        return lab.evaluate(model, [batch])[0]
    except (RuntimeError, ValueError, IndexError):
        return math.nan
    finally:
        lab.training_mode(model)


def _regularised(
    lab: Lab, batch: Any, t: Thresholds, *, dropout: bool, weight_decay: bool
) -> float:
    """A fresh copy trained on ``batch`` with the user's dropout and/or weight decay on:
    its loss in eval mode afterwards (NaN when training failed)."""
    model = lab.fresh_model()
    if not dropout:
        switch_off_dropout(model)
    overrides = {} if weight_decay else {"weight_decay": 0.0}
    run = lab.train([batch], t.overfit_steps, regularisation=True, overrides=overrides, model=model)
    if run.error or run.diverged:
        return math.nan
    return _evaluated(lab, model, batch)


def _progress_kept(initial: float, off: float, on: float) -> float:
    """The share of the fall without regularisation that the run with it makes too."""
    if not (math.isfinite(on) and initial > off):
        return 0.0
    return (initial - on) / (initial - off)


def _fits_eval(lab: Lab, initial: float, final: float, t: Thresholds) -> bool:
    """The tiny-batch rule for one evaluated loss against the run's initial loss."""
    return lab.fits_loss(initial, final, t)


# -- regularisation prevents the fit (30) -------------------------------------------------


def _dropout_rates(model: torch.nn.Module) -> dict[str, float]:
    return {
        name or "<root>": float(m.p)
        for name, m in model.named_modules()
        if isinstance(m, REGULARISERS) and m.p > 0
    }


def _weight_decays(spec: OptimizerSpec) -> list[float]:
    return [float(g.get("weight_decay") or 0.0) for g in spec.hyperparameters()]


@register_check(
    id="regularisation-prevents-fit",
    reasons=(30,),
    severity="warning",
    kind="experiment",
    priority=19,
    explains=frozenset({"nothing-generalizes", "loss-accuracy-disagree", "give-it-time"}),
)
def regularisation_prevents_fit(ctx: CheckContext) -> None:
    """The model fits a tiny batch with regularisation off, but not with it on.

    Why it matters:
        Dropout and weight decay fight memorisation: that is their job. But when
        they are strong enough that the model cannot even memorise eight samples,
        they also stop it from learning the training set at all. The recipe is to
        get the model to fit first and add regularisation back gradually.

    What is measured:
        Two copies from the initial weights are trained on the same tiny batch
        (``overfit_batch_size`` samples, ``overfit_steps`` steps) with the user's
        optimiser: one with dropout and weight decay off (the run shared with the
        other tiny-batch experiments), one with dropout and weight decay as the
        user set them, judged by its loss in eval mode after training. A warning
        when only the first fits (final loss below ``overfit_ce_target`` or
        ``overfit_target_fraction`` of the initial) and the second makes no more than
        ``regularisation_progress_kept`` (half) of the first's fall: a run that lands
        just short of the line slows the fit, as regularisation should, rather than
        stopping it. When the model uses both, two
        more runs, each with only one of them on, say which one blocks the fit.
        Skipped when the model has no dropout and the optimiser no weight decay.

    How to fix:
        Lower dropout (p <= 0.5; 0.1-0.3 in most modern networks) and weight decay
        (1e-4-5e-4 for SGD, 0.01-0.1 for AdamW), get the model to fit, then raise
        them step by step while watching the validation loss.

    Example:
        Before::

            model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.9), nn.Linear(32, 3))
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1.0)

        After::

            model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    """
    lab = _unavailable(ctx)
    assert lab.subject is not None
    t = ctx.thresholds
    spec = lab.optimizer_spec()
    dropout = _dropout_rates(lab.subject.model)
    decays = _weight_decays(spec)
    has_wd = any(wd > 0 for wd in decays)
    if not dropout and not has_wd:
        ctx.skip(
            "the model has no dropout and the optimiser no weight decay: nothing to switch off"
        )
    off = lab.overfit_user(t)
    if not lab.fits(off, t):
        ctx.note(
            f"a tiny batch does not fit even with regularisation off ({off.initial:.4g} → {off.final:.4g}); "
            "see cannot-overfit-tiny-batch"
        )
        return
    tiny = lab.tiny_batch(t.overfit_batch_size)
    on = _regularised(lab, tiny, t, dropout=True, weight_decay=True)
    summary = f"regularisation off: {off.initial:.4g} → {off.final:.4g}; on (eval mode): {on:.4g}"
    if _fits_eval(lab, off.initial, on, t):
        ctx.note(f"fits a tiny batch with the user's regularisation; {summary}")
        return
    kept = _progress_kept(off.initial, off.final, on)
    if kept > t.regularisation_progress_kept:
        # Short of the fit line but most of the way there: regularisation slows the fit,
        # as it is meant to; it does not stop it.
        ctx.note(
            f"with the user's regularisation {kept:.0%} of the progress made without it remains; "
            f"{summary}"
        )
        return
    evidence: dict[str, Any] = {
        "steps": t.overfit_steps,
        "batch_size": t.overfit_batch_size,
        "initial_loss": off.initial,
        "final_loss_regularisation_off": off.final,
        "final_loss_regularisation_on": on,
        "dropout": dropout,
        "weight_decay": decays,
    }
    if dropout and has_wd:
        # Both are on: each alone says which one blocks the fit.
        dropout_only = _regularised(lab, tiny, t, dropout=True, weight_decay=False)
        decay_only = _regularised(lab, tiny, t, dropout=False, weight_decay=True)
        evidence.update(
            final_loss_dropout_only=dropout_only, final_loss_weight_decay_only=decay_only
        )
        blocks = [
            name
            for name, loss in (("dropout", dropout_only), ("weight decay", decay_only))
            if not _fits_eval(lab, off.initial, loss, t)
        ]
        culprit = (
            " and ".join(blocks) + (" (each alone prevents the fit)" if len(blocks) == 2 else "")
            if blocks
            else "the combination of dropout and weight decay (neither alone prevents the fit)"
        )
    else:
        culprit = "dropout" if dropout else "weight decay"
    settings = "; ".join(
        ([f"dropout {', '.join(f'p={v:g} at {k}' for k, v in dropout.items())}"] if dropout else [])
        + ([f"weight_decay={'/'.join(f'{wd:g}' for wd in decays)}"] if has_wd else [])
    )
    ctx.finding(
        title="Regularisation prevents the model from fitting a tiny batch",
        message=(
            f"On {t.overfit_batch_size} samples for {t.overfit_steps} steps with {spec.describe()}, the loss falls "
            f"from {off.initial:.4g} to {off.final:.4g} with dropout and weight decay off, but only to {on:.4g} "
            f"(eval mode) with them on ({settings}). The regularisation is strong enough to stop memorisation. "
            f"What blocks it: {culprit}."
        ),
        fix=(
            "Lower the regularisation until a tiny batch fits, then raise it gradually: "
            + "; ".join(
                (
                    [f"dropout p <= 0.5 (0.1-0.3 is common) instead of {max(dropout.values()):g}"]
                    if dropout
                    else []
                )
                + (
                    [f"weight_decay 1e-4 to 5e-4 (0.01-0.1 for AdamW) instead of {max(decays):g}"]
                    if has_wd
                    else []
                )
            )
            + "."
        ),
        evidence={**evidence, "culprit": culprit},
    )


# -- the optimiser underperforms a known-good one (34) ---------------------------------


def _is_known_good(spec: OptimizerSpec) -> bool:
    if spec.cls is not torch.optim.Adam:
        return False
    return all(
        g.get("lr") == KNOWN_GOOD_LR and tuple(g.get("betas", (0.9, 0.999))) == (0.9, 0.999)
        for g in spec.hyperparameters()
    )


@register_check(
    id="optimizer-underperforms",
    reasons=(34,),
    severity="warning",
    kind="experiment",
    priority=18,
    explains=frozenset({"cannot-overfit-tiny-batch", "give-it-time"}),
    refutes=("update-ratio:high",),
)
def optimizer_underperforms(ctx: CheckContext) -> None:
    """The user's optimiser falls far behind a known-good one on the same tiny batch.

    Why it matters:
        When a model does not train, the optimiser settings are the cheapest thing to
        rule out. If Adam with its default learning rate fits a tiny batch that the
        user's optimiser cannot, the model and the data are fine and the optimiser
        (its class, learning rate or momentum) is what holds training back. The finding
        names reasons 34 and 36 both (36 first when the class is Adam's already: then only
        its settings differ), since one comparison cannot tell them apart.

    What is measured:
        Two copies from the initial weights, trained on the same tiny batch
        (``overfit_batch_size`` samples, ``overfit_steps`` steps, regularisation off):
        one with the user's optimiser (the run shared with the other tiny-batch
        experiments), one with Adam(lr=1e-3). A warning when Adam fits the batch, the
        user's optimiser does not, and Adam's final loss is ``optimizer_gap_factor``
        (10) times lower (or the user's run diverged), and the user's optimiser, trained on
        on the tiny batch for ``horizon_delay_share`` (5%) of the run the script's loops
        plan (at most ``horizon_delay_max_steps`` steps in all), still does not fit it: one
        that fits it that soon is slower, and the planned run has time for it (the PyTorch
        tutorials' SGD at lr=1e-3 over thousands of steps). Adam against Adam differs in its
        settings only: there the finding also needs the learning-rate range test, run with
        the user's settings, to find the user's rate far outside the range where the loss
        responds (as ``learning-rate-out-of-range`` judges it); a slower rate inside it
        fits a tiny batch later, not never (a Transformer at Adam(1e-4)). The reverse outcome for SGD, the
        user's optimiser fitting the batch at least as far as Adam, is a healthy twin for
        ``update-ratio``'s "learning rate too high" warning: SGD steps too large for the
        loss surface oscillate or diverge on a fixed batch too, so that warning becomes a
        note. (Adaptive optimisers take steps of about their rate whatever the gradient
        and memorise a tiny batch at rates too high for real training: no twin there.)

    How to fix:
        For SGD: add momentum=0.9 and raise the learning rate (run the range test,
        ``learning-rate-out-of-range``); or switch to Adam(lr=1e-3) for a first
        working baseline and tune from there.

    Example:
        Before::

            opt = torch.optim.SGD(model.parameters(), lr=1e-4)

        After::

            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)   # or Adam(lr=1e-3)
    """
    lab = _unavailable(ctx)
    t = ctx.thresholds
    spec = lab.optimizer_spec()
    if _is_known_good(spec):
        ctx.note(f"the optimiser is already the known-good baseline, {spec.describe()}")
        return
    user = lab.overfit_user(t)
    good = lab.overfit_known_good(t)
    known = OptimizerSpec.of(torch.optim.Adam, lr=KNOWN_GOOD_LR).describe()
    broken = bool(user.error or user.diverged or not math.isfinite(user.final))
    user_final = math.inf if broken else user.final
    gap = user_final / good.final if good.final > 0 else math.inf
    ctx.note(
        f"{spec.describe()}: {user.initial:.4g} → {user.final:.4g}; {known}: {good.initial:.4g} → {good.final:.4g}"
    )
    # SGD's step is the rate times the gradient: fitting a fixed batch at this rate shows
    # it is below the batch loss's stability limit, where too-large steps oscillate or
    # diverge. An adaptive optimiser's step is about its rate whatever the gradient, and
    # memorises a tiny batch at rates too high for the stream (Adam at 0.5 does).
    if (
        spec.cls is torch.optim.SGD
        and not broken
        and lab.fits(user, t)
        and user.final <= good.final
    ):
        ctx.refute(
            "update-ratio:high",
            f"On a tiny batch a copy with {spec.describe()} fit as far as {known} did "
            f"({user.final:.4g} against {good.final:.4g}; optimizer-underperforms): the steps are "
            "not too large to train, so this is advice.",
        )
    if not lab.fits(good, t) or lab.fits(user, t) or gap < t.optimizer_gap_factor:
        return
    same_class = spec.cls is torch.optim.Adam
    if same_class and not broken:
        within = _rate_within_range(ctx, lab, spec, t)
        if within:
            # Adam against Adam differs in its settings only, and the range test, run with
            # those settings, finds the rate where the loss responds: a slower rate that
            # still trains is the user's choice for a longer run, not a fault.
            ctx.note(ctx.detail + f" — slower on a tiny batch, but {within}")
            return
    delay = None if broken else _tiny_batch_delay(ctx, lab, t, user)
    if delay is not None and delay.caught_up_at is not None:
        ctx.note(
            ctx.detail + f" — slower on a tiny batch, but {_fit_delay_text(delay)}: slower, "
            "not held back for the run the script plans"
        )
        return
    how = (
        f"could not be trained ({user.error})"
        if user.error
        else f"diverged to a non-finite loss after {len(user.losses)} steps"
        if broken
        else f"fell only from {user.initial:.4g} to {user.final:.4g}"
    )
    if delay is not None:
        how += f" ({_fit_delay_text(delay)})"
    # The comparison cannot tell the optimiser's class from its learning rate: both are
    # named, the rate first when the class is the known-good one's (only settings differ).
    ctx.finding(
        reasons=(36, 34) if same_class else (34, 36),
        title=f"{spec.cls.__name__} falls far behind {known} on a tiny batch",
        message=(
            f"On the same {t.overfit_batch_size} samples (regularisation off), the loss with "
            f"{spec.describe()} {how} in {len(user.losses)} steps, while {known} brought it to "
            f"{good.final:.4g} in {len(good.losses)}"
            + (f", {_g(gap)}x lower" if math.isfinite(gap) else "")
            + f" (warning at {_g(t.optimizer_gap_factor)}x). The model can fit: the optimiser settings hold it back."
        ),
        fix=(
            "Tune the optimiser: for SGD use momentum=0.9 and a learning rate from the range test "
            "(learning-rate-out-of-range); or start from Adam(lr=1e-3) as a working baseline."
        ),
        evidence={
            "steps": t.overfit_steps,
            "batch_size": t.overfit_batch_size,
            "user_optimizer": spec.describe(),
            "user_initial_loss": user.initial,
            "user_final_loss": user.final,
            "user_diverged": broken,
            "known_good_optimizer": known,
            "known_good_final_loss": good.final,
            "gap": gap,
            **(delay.evidence() if delay is not None else {}),
        },
    )


def _fit_delay_text(delay: Delay) -> str:
    """How long the user's optimiser, trained on, took to fit the tiny batch, in words."""
    return delay.describe_reaching(
        "it", f"gets the loss down to {delay.level:.4g}, where the batch counts as fit"
    )


def _tiny_batch_delay(
    ctx: CheckContext, lab: Lab, t: Thresholds, user: TrainResult
) -> Delay | None:
    """The user's optimiser, trailing on the tiny batch, trained on: when its loss (a mean
    over ``RATE_TRIAL_TAIL`` steps) gets down to where the fit rule holds, within
    ``horizon_delay_share`` of the run the script's loops plan (None where the plan is
    unknown). An optimiser that gets there that soon is slower, not what holds training
    back: the script's run has time for it."""
    if not (user.losses and math.isfinite(user.initial)):
        return None
    rule = lab.fit_rule(t)
    floor, start = rule["floor"], user.initial
    level = floor + rule["fraction"] * (start - floor)
    if rule["absolute"] is not None:
        level = max(level, floor + rule["absolute"])
    batch = [lab.tiny_batch(t.overfit_batch_size)]

    def train_on(steps: int) -> list[float] | None:
        run = lab.train(batch, steps, regularisation=False)
        return None if run.error else run.losses

    return trailing_delay(
        ctx.recording.horizon, len(user.losses), level, RATE_TRIAL_TAIL, t, train_on
    )


# -- learning-rate range test (36) -----------------------------------------------------


@dataclass
class RangeTest:
    """A learning-rate range test: loss after a step at each rate, and what it suggests."""

    lrs: list[float] = field(default_factory=list)  # the rate of each step taken
    losses: list[float] = field(default_factory=list)  # the loss after that step
    initial: float = math.nan  # the loss before the first step
    smoothed: list[float] = field(default_factory=list)
    diverged_at: float | None = None  # the rate at which the loss blew up, if it did
    onset: float = math.nan  # the rate at which the smoothed loss starts to fall
    steep: float = math.nan  # the rate of steepest descent (fastai's point suggestion)
    minimum: float = math.nan  # the rate at the minimum of the smoothed loss
    low: float = math.nan
    high: float = math.nan
    low_open: bool = False  # the loss already fell at the smallest rates tried
    high_open: bool = False  # the loss never turned up: no evidence of a rate too high
    conclusive: bool = False

    def curve(self, points: int = CURVE_POINTS) -> list[list[float]]:
        """A few [lr, loss] points spread over the curve (smoothed when it was)."""
        values = self.smoothed or self.losses
        n = min(len(self.lrs), len(values))
        if n == 0:
            return []
        idx = sorted({round(i * (n - 1) / max(points - 1, 1)) for i in range(points)})
        return [[self.lrs[i], values[i]] for i in idx]


def _smooth(values: list[float], half: int = SMOOTHING_HALF_WIDTH) -> list[float]:
    """A centred moving average (no lag: the whole curve is known after the test)."""
    out = []
    for i in range(len(values)):
        window = values[max(0, i - half) : i + half + 1]
        out.append(sum(window) / len(window))
    return out


def lr_range_test(lab: Lab, t: Thresholds) -> RangeTest:
    """Smith (2017) / fastai ``lr_find``: the rate grows exponentially from ``lr_range_min`` to
    ``lr_range_max`` over ``lr_range_steps`` steps of a fresh copy with the user's optimiser.
    Memoised: the checks that read it share one test."""
    return lab.memo("lr-range-test", lambda: _lr_range_test(lab, t))


def _lr_range_test(lab: Lab, t: Thresholds) -> RangeTest:
    spec = lab.optimizer_spec()
    base = [float(g.get("initial_lr", g.get("lr")) or 0.0) for g in spec.hyperparameters()]
    ref = base[0]
    model = lab.fresh_model()
    opt = spec.build(model)
    batches = lab.small_batches(RANGE_TEST_BATCHES, t.experiment_batch_size)
    n = t.lr_range_steps
    growth = (t.lr_range_max / t.lr_range_min) ** (1 / max(n - 1, 1))
    test = RangeTest()
    best = math.inf
    ema = 0.0
    beta = t.lr_range_smoothing
    for i in range(n + 1):
        opt.zero_grad(set_to_none=True)
        loss = lab.loss(model, batches[i % len(batches)])
        value = float(loss.detach())
        if i == 0:
            test.initial = value
        else:
            # Divergence: the loss far above its best, where "best" is of the smoothed loss:
            # once the loss is low, single batches of a few samples reach several times the
            # lowest one at any rate, and a lucky batch must not set the bar.
            ema = beta * ema + (1 - beta) * value
            smooth = ema / (1 - beta ** len(test.lrs))
            if not math.isfinite(value) or value > t.lr_range_divergence * min(best, test.initial):
                test.diverged_at = test.lrs[-1]
                test.lrs.pop()
                break
            test.losses.append(value)
            best = min(best, smooth)
        if i == n:
            break
        lr = t.lr_range_min * growth**i
        for group, b in zip(opt.param_groups, base, strict=False):
            # Several groups keep their ratios to the first group's rate.
            group["lr"] = lr * (b / ref if ref > 0 else 1.0)
        test.lrs.append(lr)
        loss.backward()
        spec.clip_gradients(model)
        opt.step()
    _suggest(test, t)
    return test


def _suggest(test: RangeTest, t: Thresholds) -> None:
    """The range: from where the loss starts to fall (Smith 2017's lower bound) to a tenth of the
    rate at its minimum (fastai's margin below the point where the loss turns up)."""
    if len(test.losses) < 2 * SMOOTHING_HALF_WIDTH + 3:
        return
    s = _smooth(test.losses)
    test.smoothed = s
    i_min = min(range(len(s)), key=s.__getitem__)
    start = max(s[0], test.initial) if math.isfinite(test.initial) else s[0]
    if i_min == 0 or s[i_min] > start - t.lr_range_min_fall * abs(start):
        return  # the loss never fell noticeably: nothing to suggest
    # The onset: the first rate at which the loss has made lr_range_min_fall of its whole fall.
    i_onset = next(
        i for i in range(i_min + 1) if s[i] <= start - t.lr_range_min_fall * (start - s[i_min])
    )
    logs = [math.log10(x) for x in test.lrs]
    slopes = {i: (s[i + 1] - s[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(1, i_min)}
    i_steep = min(slopes, key=slopes.__getitem__) if slopes else i_min
    test.onset, test.steep, test.minimum = test.lrs[i_onset], test.lrs[i_steep], test.lrs[i_min]
    test.low, test.high = sorted((test.onset, test.minimum / 10))
    # The loss already falling within lr_outside_factor of the smallest rate tried: the flat
    # region that would show a rate too low was not observed, smaller rates might work too.
    test.low_open = test.onset < t.lr_outside_factor * test.lrs[0]
    # The loss never turned up after its minimum: larger rates might work too.
    rose = test.diverged_at is not None or max(s[i_min:]) > s[i_min] + t.lr_range_min_fall * (
        start - s[i_min]
    )
    test.high_open = not rose
    test.conclusive = True


def _range_test_curves(check: str, test: RangeTest, user_lr: float) -> ExperimentCurves:
    """The range test's loss by rate, for the report's chart (data only)."""
    n = min(len(test.lrs), len(test.losses))
    curves = [Curve("loss after a step at that rate", test.lrs[:n], test.losses[:n])]
    if test.smoothed:
        curves.append(Curve("smoothed", test.lrs[: len(test.smoothed)], test.smoothed))
    marks = {"your learning rate": user_lr}
    if test.conclusive:
        marks.update({"proposed range, low": test.low, "proposed range, high": test.high})
    return ExperimentCurves(
        check=check,
        title="Learning-rate range test",
        x_label="learning rate",
        y_label="loss",
        curves=curves,
        log_x=True,
        x_marks=marks,
    )


def _positive(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)
    return float(v) if ok else None


def _rate_outside(test: RangeTest, user_lr: float, t: Thresholds) -> tuple[bool, bool]:
    """Whether a conclusive range test finds ``user_lr`` far too high, and far too low:
    at or past the rate where it diverged, or more than ``lr_above_minimum_factor`` times
    the rate of the lowest loss; more than ``lr_outside_factor`` below the proposed range.
    An open end is never called out."""
    past_divergence = test.diverged_at is not None and user_lr >= test.diverged_at
    too_high = past_divergence or (
        user_lr > t.lr_above_minimum_factor * test.minimum and not test.high_open
    )
    too_low = user_lr < test.low / t.lr_outside_factor and not test.low_open
    return too_high, too_low


@dataclass
class RateTrial:
    """Two copies trained on the same batches, one at the user's rate, one at the proposed."""

    steps: int
    user_lr: float
    proposed_lr: float
    user_tail: float  # mean loss over the last steps, in the loss's own units
    proposed_tail: float
    batch_size: int | None = None  # the samples in each of the trial's batches

    @property
    def user_worse(self) -> bool:
        """The user's rate ends no lower than the proposed one (or does not stay finite)."""
        return not math.isfinite(self.user_tail) or (
            math.isfinite(self.proposed_tail) and self.user_tail >= self.proposed_tail
        )

    def describe(self) -> str:
        return (
            f"the mean loss over the last {RATE_TRIAL_TAIL} steps of {self.steps} is "
            f"{self.user_tail:.4g} at lr={_g(self.user_lr)} and {self.proposed_tail:.4g} at "
            f"lr={_g(self.proposed_lr)}"
        )

    def evidence(self) -> dict[str, Any]:
        return {
            "trial_steps": self.steps,
            "trial_user_tail_loss": self.user_tail,
            "trial_proposed_lr": self.proposed_lr,
            "trial_proposed_tail_loss": self.proposed_tail,
            "trial_batch_size": self.batch_size,
        }


def _tail(result: TrainResult) -> float:
    if result.error is not None or len(result.losses) < RATE_TRIAL_TAIL:
        return math.nan
    values = result.losses[-RATE_TRIAL_TAIL:]
    return sum(values) / len(values) if all(math.isfinite(v) for v in values) else math.inf


def rate_trial(
    lab: Lab, t: Thresholds, spec: OptimizerSpec, user_lr: float, proposed_lr: float
) -> RateTrial:
    """Copies from the initial weights trained ``lr_confirm_steps`` steps on the range test's
    batches at the user's rates and at those rates scaled to ``proposed_lr`` (memoised).
    The batches keep the script's own size: a rate is chosen for a batch size (a step's
    noise falls as the batch grows, so the rate that works grows with it: the linear
    scaling rule), and judged on batches cut to a few samples, a rate that trains well at
    the script's size can look far too high."""

    def compute() -> RateTrial:
        batches = lab.batches(RANGE_TEST_BATCHES)
        user = lab.train(batches, t.lr_confirm_steps, optimizer=spec)
        proposed = lab.train(
            batches, t.lr_confirm_steps, optimizer=spec.with_lr_scaled(proposed_lr / user_lr)
        )
        return RateTrial(
            t.lr_confirm_steps,
            user_lr,
            proposed_lr,
            _tail(user),
            _tail(proposed),
            batch_size_of(batches[0], lab.subject) if batches else None,
        )

    return lab.memo(f"rate-trial-{proposed_lr!r}", compute)


def _rate_delay(
    lab: Lab, t: Thresholds, spec: OptimizerSpec, trial: RateTrial, horizon: Any
) -> Delay | None:
    """A rate the trial found slower than the proposed one, trained on: when it reaches the
    proposed rate's level, within ``horizon_delay_share`` of the run the script's loops plan
    (None where the plan is unknown)."""
    if not math.isfinite(trial.proposed_tail):
        return None
    batches = lab.batches(RANGE_TEST_BATCHES)  # the trial's

    def train_on(steps: int) -> list[float] | None:
        user = lab.train(batches, steps, optimizer=spec)
        return None if user.error else user.losses

    return trailing_delay(horizon, trial.steps, trial.proposed_tail, RATE_TRIAL_TAIL, t, train_on)


def _rate_within_range(ctx: CheckContext, lab: Lab, spec: OptimizerSpec, t: Thresholds) -> str:
    """Where a conclusive range test with the user's optimiser puts the user's rate, when
    ``learning-rate-out-of-range`` would call it neither too high nor too low; "" otherwise
    (no rate, no conclusive test, or a rate outside)."""
    user_lr = _user_lr(ctx, spec)
    if user_lr is None:
        return ""
    try:
        test = lr_range_test(lab, t)
    except (RuntimeError, ValueError, IndexError):
        return ""
    if not test.conclusive:
        return ""
    if any(_rate_outside(test, user_lr, t)):
        if rate_trial(lab, t, spec, user_lr, test.high).user_worse:
            return ""
        return (
            f"a copy at lr={_g(user_lr)} trains at least as far as one at the rate a range test "
            f"proposes ({_g(test.high)}; learning-rate-out-of-range)"
        )
    return (
        f"a range test with these settings puts lr={_g(user_lr)} within reach of the range "
        f"where the loss responds ({_g(test.low)} to {_g(test.high)}; learning-rate-out-of-range)"
    )


@dataclass
class RateReplay:
    """The script replayed at ``scale`` times its own rates: the loss of each step."""

    scale: float
    losses: list[float]

    def usable(self, steps: int) -> bool:
        return len(self.losses) == steps and all(math.isfinite(v) for v in self.losses)

    def tail(self, size: int) -> list[float]:
        return self.losses[-size:]

    def fall(self, frozen: RateReplay, size: int) -> float:
        """How far below the model left at its initial weights this run's loss is, on the
        same batches of the last ``size`` steps (paired: batch to batch noise cancels)."""
        return sum(a - b for a, b in zip(frozen.tail(size), self.tail(size), strict=True)) / size


def _rate_replays(ctx: CheckContext, lab: Lab) -> list[RateReplay]:
    """The script replayed with its rates at zero (the initial model scored on the same
    batches), as the script sets them, and at ``lr_replay_factor`` and its square times
    them; skips when a replay cannot be judged (failed, cut short by the clock, a warm-up)."""
    t = ctx.thresholds
    runs = []
    scales = (0.0, 1.0, t.lr_replay_factor, t.lr_replay_factor**2)
    plans = [{"steps": t.lr_replay_steps, "overrides": {"lr_scale": s}} for s in scales]
    for scale, result in zip(scales, lab.replays("rate", plans), strict=True):
        if result.timed_out:
            # A run cut short by the clock decides nothing (a verdict never depends on speed).
            ctx.skip(
                f"{lab.unavailable_reason}, and the script replay at {_g(scale)}x its rates hit "
                f"its time limit after {len(result.losses)} losses"
            )
        if scale <= 1.0:
            if result.error or len(result.losses) < MIN_RATE_REPLAY_LOSSES:
                ctx.skip(
                    f"{lab.unavailable_reason}, and the script replay at {_g(scale)}x its rates "
                    f"{'raised: ' + result.error if result.error else 'took too few steps'}"
                )
            rates = [r for r in result.rates if r > 0]
            if not rates or max(rates) > t.lr_replay_warmup_rise * rates[0]:
                ctx.skip(
                    f"{lab.unavailable_reason}, and the script's rates over the first "
                    f"{t.lr_replay_steps} steps "
                    + ("rise (a warm-up, slow by design)" if rates else "are not positive")
                )
        runs.append(RateReplay(scale, list(result.losses)))
    return runs


def _rate_by_replay(ctx: CheckContext, lab: Lab) -> None:
    """The rate-too-low test for a custom loss: the script replayed at scaled rates."""
    t = ctx.thresholds
    competing = ctx.recording.competing_objectives
    if competing:
        ctx.skip(
            f"{lab.unavailable_reason}, and {competing}: how far the loss falls does not "
            "measure progress"
        )
    if ctx.recording.step_source == "manual":
        # A replay counts optimizer steps; updates by hand take none, so it would run the
        # whole script, and there is no rate to scale.
        ctx.skip(f"{lab.unavailable_reason}, and the script updates its parameters by hand")
    frozen, user, *scaled = _rate_replays(ctx, lab)
    steps = len(user.losses)
    size = max(3, steps // 5)
    if not frozen.usable(steps) or not user.usable(steps):
        ctx.skip(
            f"{lab.unavailable_reason}, and the script replayed at its own rates and at zero "
            "took different numbers of steps or did not stay finite"
        )
    lab.hand_back(
        ExperimentCurves(
            check=ctx.spec.id,
            title="Script replayed at scaled learning rates",
            x_label="step",
            y_label="loss",
            curves=[
                Curve(f"{_g(r.scale)}x the script's rates", list(range(len(r.losses))), r.losses)
                for r in (frozen, user, *scaled)
            ],
        )
    )
    runs = (user, *scaled)
    describe = "; ".join(
        f"{_g(r.scale)}x: {r.fall(frozen, size):.4g}"
        if r.usable(steps)
        else f"{_g(r.scale)}x: not finite or cut short"
        for r in runs
    )
    what = (
        f"replaying the script {steps} steps, the loss of its last {size} below the initial "
        f"model's on the same batches ({sum(frozen.tail(size)) / size:.4g}), at its rates times "
        + describe
    )
    user_fall = user.fall(frozen, size)
    best = max(
        (r for r in scaled if r.usable(steps)), key=lambda r: r.fall(frozen, size), default=None
    )
    if best is None or best.fall(frozen, size) <= 0:
        ctx.note(f"{what}: no higher rate trained further")
        return
    best_fall = best.fall(frozen, size)
    share = user_fall / best_fall
    p = significance.mean_above_zero_p(
        [u - b for u, b in zip(user.tail(size), best.tail(size), strict=True)]
    )
    # A rate far too low moves the loss a little either way: a run that ends a little above
    # the initial model is as stuck as one a little below it.
    if abs(share) >= t.lr_replay_fall_share or p >= t.lr_replay_alpha:
        ctx.note(
            f"{what}: the script's rates make {100 * share:.0f}% of the fall at "
            f"{_g(best.scale)}x (paired t-test p={p:.2g})"
        )
        return
    user_lr = _observed_rate(ctx)
    rate = f"{_g(user_lr)} " if user_lr is not None else ""
    level = sum(best.tail(size)) / size
    delay = _replay_delay(ctx, lab, level, steps, size)
    said = ""
    if delay is not None:
        said = delay.describe("the replay at its own rates", f"the one at {_g(best.scale)}x")
        if delay.caught_up_at is not None:
            ctx.note(
                f"{what}: the script's rates make {100 * share:.0f}% of the fall at "
                f"{_g(best.scale)}x, but {said}: slower, not too low for the run the script plans"
            )
            return
        said = f" {said[:1].upper()}{said[1:]}."
    ctx.finding(
        title=f"The learning rate {rate}is far too low: the loss barely moves",
        message=(
            f"Replaying the script on its own data for {steps} steps, at its own rates the loss "
            f"of the last {size} steps ends {user_fall:.4g} below the initial model's on the same "
            f"batches, {100 * share:.1f}% of the {best_fall:.4g} at {_g(best.scale)}x those rates "
            f"(lower step by step: paired t-test p={p:.2g}; at its rates times {describe}). "
            "Progress that grows in proportion to the rate like this is the regime far below "
            f"where the loss responds.{said}"
        ),
        fix=(
            f"Raise the learning rate (about {_g(best.scale)}x"
            + (f", lr={_g(user_lr * best.scale)}" if user_lr is not None else "")
            + "), or use an adaptive optimiser such as Adam(lr=1e-3) for a first baseline."
        ),
        evidence={
            "method": "script replay (custom loss)",
            "steps": steps,
            "tail": size,
            "user_lr": user_lr,
            "initial_model_tail_loss": sum(frozen.tail(size)) / size,
            "fall_by_scale": {str(r.scale): r.fall(frozen, size) for r in runs if r.usable(steps)},
            "fall_share": share,
            "best_scale": best.scale,
            "p_value": p,
            "direction": "too low",
            **(delay.evidence() if delay is not None else {}),
        },
    )


def _replay_delay(
    ctx: CheckContext, lab: Lab, level: float, compared_at: int, window: int
) -> Delay | None:
    """The script replayed at its own rates past the comparison's steps, for
    ``horizon_delay_share`` of the run its loops plan: when its loss (a mean over ``window``
    steps) reaches ``level``, the one the best scaled rate reached (None where the plan is
    unknown). A replay cut short by the clock decides nothing: the check is skipped."""

    def train_on(steps: int) -> list[float] | None:
        (result,) = lab.replays("rate", [{"steps": steps, "overrides": {"lr_scale": 1.0}}])
        if result.timed_out:
            ctx.skip(
                f"{lab.unavailable_reason}; the script's rates trail {_g(level)} at "
                f"{compared_at} steps, and the longer replay that decides whether they only "
                f"trail hit its time limit after {len(result.losses)} of {steps} steps"
            )
        return list(result.losses)

    return trailing_delay(
        ctx.recording.horizon, compared_at, level, window, ctx.thresholds, train_on
    )


def _observed_rate(ctx: CheckContext) -> float | None:
    """The largest rate of the first parameter group seen at an observed step."""
    rates = [
        _positive(s.hyperparameters[0].get("lr")) for s in ctx.recording.steps if s.hyperparameters
    ]
    found = [r for r in rates if r is not None]
    return max(found) if found else None


def _user_lr(ctx: CheckContext, spec: OptimizerSpec) -> float | None:
    """The largest rate the first parameter group runs at or is scheduled for: the spec's lr
    (under a scheduler, the rate the schedule is built around: its planned peak where the plan
    was read, else its base rate or OneCycleLR's ``max_lr``), any observed step's lr."""
    group = spec.hyperparameters()[0]
    rates = [r for r in map(_positive, [group.get("lr")]) if r is not None]
    observed = _observed_rate(ctx)
    rates += [observed] if observed is not None else []
    return max(rates) if rates else None


@register_check(
    id="learning-rate-out-of-range",
    reasons=(36,),
    severity="warning",
    kind="experiment",
    priority=17,
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
    refutes=("update-ratio:high",),
)
def learning_rate_out_of_range(ctx: CheckContext) -> None:
    """A learning-rate range test puts the user's rate far outside the range that works.

    Why it matters:
        The learning rate is the hyperparameter that matters most. Too high and
        training oscillates or diverges; too low and it crawls, which looks like a
        model that cannot learn. A range test (Smith 2017, "Cyclical learning rates";
        fastai's ``lr_find``) measures where the loss responds, for this model, this
        data and this optimiser, in a few dozen steps.

    What is measured:
        A fresh copy with the user's optimiser class and hyperparameters trains on
        the captured batches while the learning rate grows exponentially from
        ``lr_range_min`` (1e-6) to ``lr_range_max`` (10) over ``lr_range_steps`` (60)
        steps, stopping once the loss exceeds ``lr_range_divergence`` (4) times the best
        of its exponentially smoothed value (``lr_range_smoothing``). On the smoothed loss (centred moving average) the proposed range runs
        from the onset of the descent (the rate at which the loss has made
        ``lr_range_min_fall`` (10%) of its whole fall; Smith's lower bound) to a
        tenth of the rate at the minimum (fastai's margin below the point where the
        loss turns up); the rate of steepest descent is given as a point estimate. A
        warning when the user's rate is more than ``lr_outside_factor`` (10) times
        below that range, or too high: more than ``lr_above_minimum_factor`` (10)
        times the rate of the lowest loss (the proposed upper end is a cautious tenth
        of that rate, and rates a few times past it still train well: the sweep's
        minimum comes from a few dozen steps on small batches, and BatchNorm and
        momentum shift it), or at or past the rate where the test diverged. An open end (the loss already falling
        at the smallest rates, or never turning up at the largest) is never called out.
        The user's rate is the largest the first parameter group runs at or is
        scheduled for (a scheduler's base rate, OneCycleLR's ``max_lr``).

        Without a replayable loss (a custom loss, a loss computed from a transformed
        output), the script itself is replayed, unchanged but for its rates, for
        ``lr_replay_steps`` (60) steps on its own data: at rate zero (the initial model
        scored on the same batches), at the rates it sets, and at ``lr_replay_factor`` (10)
        and 100 times them (its scheduler still shapes them). A run's fall is how far its
        losses over the last fifth of the steps lie below the initial model's on the same
        batches (paired, so batch-to-batch noise cancels). The rate is called too low when
        its fall, either way, is less than ``lr_replay_fall_share`` (a tenth) of the fall
        of the scaled run that falls furthest, and that run's losses are lower step by step (a paired
        one-sided t-test at ``lr_replay_alpha``, 1%). Falls that grow in proportion to the
        rate, a tenth of the best at a hundredth of its rate, are the regime far below
        where the loss responds; a rate chosen for a run longer than 60 steps still makes a
        good share of a faster rate's fall (the bench's healthy custom-loss scripts: a
        fifth or more). Not judged: competing objectives (a GAN), and a schedule that
        raises the rate over the replayed steps (a warm-up, slow by design). This path
        tells only a rate too low; one too high shows in the script's own run
        (loss-diverging, non-finite-values). As below, a rate that only trails is slower,
        not wrong: where the script's loops plan its run, the replay at its own rates goes
        on for ``horizon_delay_share`` of it (at most ``horizon_delay_max_steps`` in all),
        and reaching the level of the scaled run that fell furthest (a mean over the last
        fifth's number of steps) makes the warning a note stating the delay.

        The sweep takes one step at each rate, so what it suggests is then tried: two
        copies from the initial weights train ``lr_confirm_steps`` (60) steps on the same
        batches (the script's first four, at the script's own batch size: a rate is chosen
        for its batch size, and batches of a few samples make every step noisier), one at
        the user's rates, one at the rates scaled to the proposed range's upper end, and the mean loss of the last 12 steps (each batch three times) is
        compared. Only a user's rate that ends no lower (or leaves the loss non-finite) is
        called out; one that trains at least as far is not shown to be wrong, whatever the
        sweep suggested (a linear probe on frozen features trains at rates a sweep of single
        steps calls far too high), and it also turns ``update-ratio``'s "too high" warning
        or error into a note: the trial tests directly what the ratio only suggests. The two runs are deterministic, so the verdict is too. A rate called too
        low is slower, not wrong, for a run that is long enough: where the script's loops say
        how many steps it trains (:mod:`nndoctor.capture.horizon`), the copy at the user's
        rate trains on for ``horizon_delay_share`` (5%) of those steps past the trial's (at
        most ``horizon_delay_max_steps``, 600, in all), and if within them it reaches the
        proposed rate's level, the warning becomes a note stating the delay.

    How to fix:
        Set the learning rate inside the proposed range (its upper end is usually a
        good start), or use a one-cycle schedule with the upper end as its peak.

    Example:
        Before::

            opt = torch.optim.SGD(model.parameters(), lr=5.0)

        After::

            opt = torch.optim.SGD(model.parameters(), lr=0.1)   # inside the range the test proposed
    """
    services: Lab | None = ctx.services
    if services is not None and not services.available and services.script is not None:
        _rate_by_replay(ctx, services)
        return
    lab = _unavailable(ctx)
    t = ctx.thresholds
    spec = lab.optimizer_spec()
    user_lr = _user_lr(ctx, spec)
    if user_lr is None:
        ctx.skip("the learning rate is not a positive number (see hyperparameters-out-of-range)")
    try:
        test = lr_range_test(lab, t)
    except (RuntimeError, ValueError, IndexError) as exc:
        ctx.skip(f"the range test could not train a copy ({type(exc).__name__}: {exc})")
    lab.hand_back(_range_test_curves(ctx.spec.id, test, user_lr))
    evidence: dict[str, Any] = {
        "optimizer": spec.describe(),
        "user_lr": user_lr,
        "steps": len(test.lrs),
        "lr_min_tried": t.lr_range_min,
        "lr_max_tried": test.lrs[-1] if test.lrs else t.lr_range_min,
        "initial_loss": test.initial,
        "diverged_at_lr": test.diverged_at,
        "curve": test.curve(),
    }
    if not test.conclusive:
        ctx.inconclusive(
            f"inconclusive: the smoothed loss never fell by {100 * t.lr_range_min_fall:.0f}% over rates {_g(t.lr_range_min)} to "
            f"{_g(evidence['lr_max_tried'])} (from {test.initial:.4g})"
        )
        return
    evidence.update(
        proposed_range=[test.low, test.high],
        onset_lr=test.onset,
        steepest_descent_lr=test.steep,
        minimum_loss_lr=test.minimum,
        low_open=test.low_open,
        high_open=test.high_open,
    )
    proposed = f"{_g(test.low)} to {_g(test.high)}"
    curve = ", ".join(f"{_g(lr)}: {loss:.3g}" for lr, loss in test.curve(5))
    end = (
        f"diverged at lr={_g(test.diverged_at)}"
        if test.diverged_at is not None
        else f"ended at lr={_g(evidence['lr_max_tried'])}"
    )
    what = (
        f"A learning-rate range test ({len(test.lrs)} steps, {spec.cls.__name__} with the user's "
        f"settings, lr growing exponentially from {_g(t.lr_range_min)}) found the smoothed loss "
        f"starting to fall at lr={_g(test.onset)}, falling fastest at lr={_g(test.steep)} and "
        f"lowest at lr={_g(test.minimum)}; it {end}. Proposed range: {proposed}. Loss by lr: {curve}."
    )
    too_high, too_low = _rate_outside(test, user_lr, t)
    if too_high or too_low:
        trial = rate_trial(lab, t, spec, user_lr, test.high)
        evidence.update(trial.evidence())
        if not trial.user_worse:
            # The sweep's minimum comes from single steps at each rate; a copy trained at the
            # user's rate that ends at least as low as one at the proposed rate shows the
            # rate trains, whatever the sweep suggested.
            if too_high:
                # The trial tests what an update ratio only suggests, whatever its size.
                ctx.refute(
                    "update-ratio:high",
                    f"Copies trained {trial.steps} steps on the same batches show the rate "
                    f"trains: {trial.describe()} (learning-rate-out-of-range).",
                    errors=True,
                )
            ctx.note(
                f"proposed range {proposed}, but {trial.describe()}: the user's "
                f"lr={_g(user_lr)} is not shown to be too {'high' if too_high else 'low'}"
            )
            return
        what += f" Trained {trial.steps} steps on the same batches, {trial.describe()}."
        delay = _rate_delay(lab, t, spec, trial, ctx.recording.horizon) if too_low else None
        if delay is not None:
            evidence.update(delay.evidence())
            said = delay.describe(f"the copy at lr={_g(user_lr)}", f"the one at lr={_g(test.high)}")
            if delay.caught_up_at is not None:
                ctx.note(
                    f"proposed range {proposed}; {trial.describe()}, but {said}: the user's "
                    f"lr={_g(user_lr)} is slower, not too low for the run the script plans"
                )
                return
            what += f" {said[:1].upper()}{said[1:]}."
        factor = user_lr / test.high if too_high else test.low / user_lr
        ctx.note(
            f"proposed range {proposed}; the user's lr={_g(user_lr)} is {_g(factor)}x "
            + ("above" if too_high else "below")
            + " it"
        )
    else:
        if test.low <= user_lr <= test.high:
            where = "inside it"
        elif user_lr > test.high and test.high_open:
            where = "above it, past its open upper end (the loss never turned up at larger rates)"
        elif user_lr > test.high:
            where = (
                f"above it, but within {_g(t.lr_above_minimum_factor)}x of the rate of the lowest "
                f"loss ({_g(test.minimum)})"
            )
        else:
            where = f"below it by less than {_g(t.lr_outside_factor)}x or past an open end"
        if user_lr >= test.low:
            # The sweep, run with the user's optimiser and settings, finds the rate at least
            # an order below where the loss turns up: what an update ratio only suggests
            # (an adaptive optimiser's first steps are about its rate per weight, large
            # against a small head's norm), measured and not found.
            ctx.refute(
                "update-ratio:high",
                f"A learning-rate range test with the user's optimiser and settings puts "
                f"lr={_g(user_lr)} {where} (proposed range {proposed}; "
                "learning-rate-out-of-range): the steps are large for the weights, not shown "
                "to be too large to train, so this is advice.",
            )
        ctx.note(f"proposed range {proposed}; the user's lr={_g(user_lr)} is {where}")
        return
    if too_high:
        ctx.finding(
            title=f"The learning rate {_g(user_lr)} is far above the range that works",
            message=f"The user's lr={_g(user_lr)} is {_g(factor)}x above the proposed range. {what}",
            fix=f"Lower the learning rate into {proposed} (e.g. lr={_g(test.high)}), or add warm-up and clipping.",
            evidence={**evidence, "direction": "too high", "factor_outside": factor},
        )
    else:
        ctx.finding(
            title=f"The learning rate {_g(user_lr)} is far below the range that works",
            message=(
                f"The user's lr={_g(user_lr)} is {_g(factor)}x below the proposed range: at that rate the loss "
                f"barely moves. {what}"
            ),
            fix=f"Raise the learning rate into {proposed} (e.g. lr={_g(test.high)}).",
            evidence={**evidence, "direction": "too low", "factor_outside": factor},
        )
