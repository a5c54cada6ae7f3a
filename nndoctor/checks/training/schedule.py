"""The learning-rate schedule judged on its plan (reason 36), not on the first steps alone."""

from __future__ import annotations

import ast
import math
import re
import statistics

from nndoctor.capture.horizon import Horizon
from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import Recording
from nndoctor.probes.schedule import SchedulePlan
from nndoctor.report.model import Where

# The fix for a per-epoch schedule stepped per batch, however it shows.
PER_EPOCH_FIX = (
    "Call scheduler.step() once per epoch (outside the batch loop), or express the "
    "schedule in batches (step_size, T_max or total_steps multiplied by len(loader))."
)


def _seen_rates(rec: Recording) -> list[float]:
    rates = []
    for s in rec.steps:
        lr = s.hyperparameters[0].get("lr") if s.hyperparameters else None
        if isinstance(lr, (int, float)) and math.isfinite(lr):
            rates.append(float(lr))
    return rates


def _base_rate(rec: Recording, seen: list[float]) -> float | None:
    """The rate the user chose: the scheduler's base (``initial_lr``), else the first seen."""
    first = rec.steps[0].hyperparameters if rec.steps and rec.steps[0].hyperparameters else []
    base = first[0].get("initial_lr") if first else None
    if isinstance(base, (int, float)) and base > 0:
        return float(base)
    return seen[0] if seen and seen[0] > 0 else None


def _g(x: float) -> str:
    return f"{x:.3g}"


@register_check(
    id="learning-rate-schedule",
    reasons=(36,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def learning_rate_schedule(ctx: CheckContext) -> None:
    """The scheduler's plan kills the learning rate within the first epoch, or keeps
    raising it far past the rate the optimizer was given.

    Why it matters:
        A schedule acts over the whole run, and a handful of observed steps shows only
        its start. A per-epoch schedule (``StepLR(step_size=3)``, ``ExponentialLR``)
        stepped after every batch decays hundreds of times faster than meant: the
        learning rate is gone before the model has seen its data once, and training
        stalls for no visible reason. A warm-up whose end condition is wrong never
        stops rising, and the rate climbs until training diverges.

    What is measured:
        A copy of the scheduler that drives the model's optimizer, bound to copies of
        its parameter groups, is stepped ahead as the script steps the original (per
        batch when the script stepped it at every observed optimizer step, else per
        epoch); the original scheduler, optimizer and model are untouched. One epoch
        is the length of the DataLoader that fed the steps (or the inverse of a hand-
        sliced batch's share of its tensor). A warning when, stepped per batch, the
        planned rate falls below ``schedule_collapse_ratio`` (1e-3) of its first-epoch
        peak within the first epoch, and the whole plan read ahead (up to 5000 steps,
        past the first epoch) adds up to less than one epoch of steps at that peak: the
        run, however long, learns less than one pass at the chosen rate would (a
        ``StepLR(step_size=4, gamma=0.5)`` meant per epoch gives 8 such steps in all). A
        schedule that rises again after a dip (a restarted cosine, a cycle) plans more
        than that and is not called out, nor is one that refuses to step past the first
        two epochs (a OneCycleLR sized for one pass: the run cannot be longer); or when the rate after
        ``schedule_overshoot_epochs`` (3) epochs is above ``schedule_overshoot_factor``
        (3) times the rate the optimizer was given (the scheduler's ``initial_lr``) and
        still rising over the last quarter of that span. Schedules that rise by design
        (OneCycleLR, CyclicLR) peak and fall within their plan and are not called out.
        ReduceLROnPlateau needs the script's metric and is not planned; but a
        ``ReduceLROnPlateau`` whose ``mode`` contradicts the metric the script steps it with
        (read from the script's source: ``scheduler.step(val_acc)`` under ``mode="min"``,
        a loss under ``mode="max"``; the metric's words name a score to raise, such as
        accuracy, F1, AUC or BLEU, or an error to lower, such as a loss, MSE or perplexity,
        and not both) lowers the rate at every ``patience`` epochs of progress: a warning,
        quoting the two lines. A warning, too,
        when a scheduler stepped once per epoch was built for a whole number (2 or more)
        of epochs of batches (OneCycleLR's ``total_steps``, ``T_max`` or ``total_iters``
        equal to k x the DataLoader's length: ``epochs * len(loader)``) and, within the k
        epochs of a run that long, never reaches ``schedule_peak_share`` (half) of its
        planned peak: a OneCycleLR sized per batch but stepped per epoch trains at
        max_lr/25 throughout. (A per-epoch schedule of k x len(loader) epochs whose peak
        lies past its first k epochs reads the same: runs that long are rare.) The same
        for a schedule with no such attribute (a ``LambdaLR`` whose warm-up is written in
        batches): stepped once per epoch over the epochs the script's loops plan, it stays
        below ``schedule_peak_share`` of the peak its plan, read ahead, reaches later.

    How to fix:
        Step per-epoch schedulers once per epoch (outside the batch loop), or give
        the schedule its horizon in batches (``T_max=epochs * len(loader)``,
        ``total_steps=...``). For a warm-up, end the ramp at the warm-up length and
        cap the factor at 1.

    Example:
        Before::

            for epoch in range(epochs):
                for x, y in loader:
                    ...
                    optimizer.step()
                    scheduler.step()          # StepLR(step_size=3): meant per epoch

        After::

            for epoch in range(epochs):
                for x, y in loader:
                    ...
                    optimizer.step()
                scheduler.step()
    """
    rec = ctx.recording
    t = ctx.thresholds
    found, agreeing = _plateau_mode_against_its_metric(ctx)
    if found:
        return
    plan: SchedulePlan | None = rec.schedule
    if agreeing and (plan is None or plan.scheduler == "ReduceLROnPlateau"):
        ctx.note("ReduceLROnPlateau: " + "; ".join(agreeing))
        return
    if plan is None:
        why = (
            "a scheduler was stepped but its plan could not be read"
            if rec.scheduler_seen
            else ("no learning-rate scheduler drives the model's optimizer")
        )
        ctx.skip(why)
    seen = _seen_rates(rec)
    if plan.scheduler == "ReduceLROnPlateau":
        ctx.skip(
            "ReduceLROnPlateau lowers the rate when the script's own metric stalls: it has no "
            "plan to read ahead"
        )
    if not plan.lrs or not seen:
        ctx.skip(f"the plan of {plan.scheduler} could not be read ahead")
    epoch = rec.epoch_length()
    unit = "batch" if plan.per_batch else "epoch"
    horizon = rec.horizon
    inner = _inner_loop(horizon) if not plan.per_batch and not epoch else None
    ctx.note(
        f"{plan.scheduler} stepped per {unit} ({plan.scheduler_steps} call(s) over "
        f"{plan.steps_taken} steps); plan read {len(plan.lrs)} steps ahead"
        + (
            f"; one epoch is {epoch} steps"
            if epoch
            else (
                f"; no loader tells the epoch: taken as the innermost loop's {inner} steps, "
                "at least that many between the scheduler's steps"
                if inner
                else "; the epoch length is unknown"
            )
        )
    )
    epoch = epoch or inner
    if horizon is not None:
        ctx.note(f"{ctx.detail}; the script's loops plan {horizon.describe()}")
    if plan.per_batch and epoch:
        _judge_collapse(ctx, plan, seen, epoch, t.schedule_collapse_ratio)
    if plan.per_batch and horizon is not None and horizon.exact and not ctx.findings:
        _judge_idle_run(ctx, plan, seen, horizon, t.schedule_collapse_ratio, t.schedule_idle_share)
    if not plan.per_batch and epoch:
        _judge_batch_sized_plan(ctx, plan, seen, epoch, t.schedule_peak_share)
    if not plan.per_batch and epoch and horizon is not None and horizon.exact and not ctx.findings:
        _judge_peak_past_run(ctx, plan, seen, horizon, epoch, t.schedule_peak_share)
    base = _base_rate(rec, seen)
    if base is not None:
        span = len(plan.lrs)
        if plan.per_batch and epoch:
            span = min(span, epoch * t.schedule_overshoot_epochs - plan.steps_taken)
        elif not plan.per_batch:
            span = min(span, t.schedule_overshoot_epochs)
        _judge_overshoot(ctx, plan, base, span, unit, t.schedule_overshoot_factor)


def _inner_loop(horizon: Horizon | None) -> int | None:
    """The passes of the innermost of two or more loops the script plans, where a scheduler
    stepped less often than every optimizer step is stepped outside it: at least that many
    steps lie between two of its steps (a loop of iterations, each of so many steps, with
    batches drawn by hand). None otherwise."""
    if horizon is None or not horizon.exact or len(horizon.lengths) < 2:
        return None
    return horizon.lengths[-1] if horizon.lengths[-1] > 1 else None


def _judge_collapse(
    ctx: CheckContext, plan: SchedulePlan, seen: list[float], epoch: int, ratio: float
) -> None:
    whole = seen + plan.lrs
    first_epoch = whole[:epoch]
    if len(whole) <= epoch or (plan.ends and len(whole) < 2 * epoch):
        # The plan ends within the first two epochs (a OneCycleLR sized for one pass, which
        # refuses to step further): the run is planned that short, its decay is the plan's.
        return
    peak = max(first_epoch)
    # After the peak: a warm-up that starts from zero is no collapse.
    top = first_epoch.index(peak)
    below = next((i for i, lr in enumerate(first_epoch) if i > top and lr < ratio * peak), None)
    if peak <= 0 or below is None:
        return
    # Every step at the peak rate counts 1: a schedule that still plans at least one
    # epoch's worth of learning after its dip (a cosine restarted, a cycle) has not ended it.
    learning = sum(whole) / peak
    if learning >= epoch:
        return
    ctx.finding(
        title=f"{plan.scheduler}, stepped after every batch, ends learning within the first epoch",
        message=(
            f"{plan.scheduler} is stepped at every optimizer step; read ahead, it takes the "
            f"learning rate from {_g(peak)} to below {_g(ratio * peak)} by step {below + 1} and "
            f"to {_g(first_epoch[-1])} at the end of the first epoch ({epoch} batches). All "
            f"{len(whole)} steps of the plan read ahead add up to {learning:.3g} steps at the "
            f"peak rate, less than one epoch: however long the run, the weights move as if "
            "trained for a fraction of one pass over the data. A per-epoch schedule stepped "
            "per batch decays that many times faster than meant."
        ),
        fix=PER_EPOCH_FIX,
        where=Where(step=below + 1),
        evidence={
            "scheduler": plan.scheduler,
            "per_batch": True,
            "steps_per_epoch": epoch,
            "peak_lr": peak,
            "median_lr_first_epoch": statistics.median(first_epoch),
            "lr_end_of_first_epoch": first_epoch[-1],
            "collapsed_at_step": below + 1,
            "planned_steps_read": len(whole),
            "learning_in_peak_steps": learning,
        },
    )


def _judge_idle_run(
    ctx: CheckContext,
    plan: SchedulePlan,
    seen: list[float],
    horizon: Horizon,
    ratio: float,
    share: float,
) -> None:
    """A schedule stepped per batch that, over the run the script's loops plan, leaves the
    rate below ``ratio`` of its peak for at least ``share`` of the steps: that part of the
    run moves nothing."""
    whole = seen + plan.lrs
    read = min(len(whole), horizon.steps)
    if read < 2:
        return
    peak = max(whole[:read])
    if peak <= 0:
        return
    # The first step from which the rate stays below ratio * peak to the end of the read.
    idle_from = read
    while idle_from > 0 and whole[idle_from - 1] < ratio * peak:
        idle_from -= 1
    idle = read - idle_from
    if idle < share * horizon.steps:
        return
    at_least = "at least " if read < horizon.steps else ""
    ctx.finding(
        title=(
            f"{plan.scheduler}, stepped after every batch, leaves the learning rate at nothing "
            f"for {at_least}{idle / horizon.steps:.0%} of the planned run"
        ),
        message=(
            f"The script's loops plan {horizon.describe()}. {plan.scheduler} is stepped at "
            f"every optimizer step; read ahead, it takes the learning rate from {_g(peak)} to "
            f"below {_g(ratio * peak)} by step {idle_from + 1} and keeps it there through step "
            f"{read}: {idle} of the {horizon.steps} planned steps train at under "
            f"{ratio:g} of the peak rate and change the weights by almost nothing. A "
            "schedule meant per epoch and stepped per batch decays that many times faster "
            "than meant."
        ),
        fix=PER_EPOCH_FIX,
        where=Where(step=idle_from + 1),
        evidence={
            "scheduler": plan.scheduler,
            "per_batch": True,
            "planned_steps": horizon.steps,
            "peak_lr": peak,
            "idle_from_step": idle_from + 1,
            "idle_steps_read": idle,
            "idle_share": idle / horizon.steps,
        },
    )


def _judge_batch_sized_plan(
    ctx: CheckContext, plan: SchedulePlan, seen: list[float], epoch: int, share: float
) -> None:
    """A schedule built for ``epochs * len(loader)`` batch steps, stepped once per epoch:
    a run of that many epochs covers only its first ``epochs`` steps."""
    if plan.length is None:
        return
    epochs, rest = divmod(plan.length, epoch)
    if rest or epochs < 2 or not plan.lrs:
        return
    reached, peak = _reached_and_peak(plan, seen, epochs)
    if peak <= 0 or reached >= share * peak:
        return
    ctx.finding(
        title=f"{plan.scheduler} is sized in batches but stepped once per epoch",
        message=(
            f"{plan.scheduler} was built for {plan.length} steps, {epochs} epochs of "
            f"{epoch} batches, but the script steps it once per epoch: in {epochs} epochs it "
            f"takes {epochs} of its {plan.length} steps, and the learning rate reaches at most "
            f"{_g(reached)} against the {_g(peak)} it plans ({reached / peak:.2g}x). Training "
            "runs at a fraction of the intended rate throughout."
        ),
        fix=(
            "Call scheduler.step() after every optimizer step (inside the batch loop), as a "
            "schedule built with steps_per_epoch=len(loader) expects; or build it in epochs."
        ),
        evidence={
            "scheduler": plan.scheduler,
            "per_batch": False,
            "planned_steps": plan.length,
            "steps_per_epoch": epoch,
            "epochs": epochs,
            "planned_peak_lr": peak,
            "peak_lr_in_run": reached,
        },
    )


def _reached_and_peak(plan: SchedulePlan, seen: list[float], epochs: int) -> tuple[float, float]:
    """For a schedule stepped once per epoch: the highest rate of a run of ``epochs``
    epochs (the rates seen, then the plan up to the run's last epoch) and the highest rate
    of the whole plan read ahead."""
    run = seen + plan.lrs[: max(0, epochs - 1 - plan.scheduler_steps)]
    return max(run), max(seen + plan.lrs)


def _judge_peak_past_run(
    ctx: CheckContext,
    plan: SchedulePlan,
    seen: list[float],
    horizon: Horizon,
    epoch: int,
    share: float,
) -> None:
    """A schedule stepped once per epoch whose plan, read ahead, peaks only after as many
    steps as the script's loops plan epochs, the rate over the whole run staying below
    ``share`` of that peak: a warm-up written in batches (``warmup_epochs * len(loader)``
    inside a ``LambdaLR``) stepped per epoch, whose length no attribute says."""
    epochs = horizon.steps // epoch
    if epochs < 2 or not plan.lrs:
        return
    reached, peak = _reached_and_peak(plan, seen, epochs)
    if peak <= 0 or reached >= share * peak:
        return
    at = plan.scheduler_steps + plan.lrs.index(peak) + 1
    ctx.finding(
        title=f"{plan.scheduler}, stepped once per epoch, stays far below its peak for the whole run",
        message=(
            f"The script's loops plan {horizon.describe()}, and {plan.scheduler} is stepped "
            f"once per epoch: the run takes {epochs} of its steps. Read ahead, its plan "
            f"reaches its peak rate {_g(peak)} only after {at} of its steps; within the run the rate "
            f"reaches at most {_g(reached)} ({reached / peak:.2g}x). A warm-up or cycle "
            "written in batches (warmup_epochs * len(loader)) but stepped per epoch never "
            "gets past its start."
        ),
        fix=(
            "Call scheduler.step() after every optimizer step (inside the batch loop), as a "
            "schedule written in batches expects; or write its lengths in epochs."
        ),
        evidence={
            "scheduler": plan.scheduler,
            "per_batch": False,
            "planned_epochs": epochs,
            "steps_per_epoch": epoch,
            "planned_peak_lr": peak,
            "peak_at_scheduler_step": at,
            "peak_lr_in_run": reached,
        },
    )


def _judge_overshoot(
    ctx: CheckContext, plan: SchedulePlan, base: float, span: int, unit: str, factor: float
) -> None:
    if span < 4:
        return
    window = plan.lrs[:span]
    end = window[-1]
    last_quarter = window[-max(2, span // 4) :]
    rising = all(b > a for a, b in zip(last_quarter, last_quarter[1:], strict=False))
    if not (end > factor * base and rising):
        return
    ctx.finding(
        title=f"{plan.scheduler} keeps raising the learning rate past {factor:g}x its base",
        message=(
            f"Read ahead {span} {unit} step(s), {plan.scheduler} raises the learning rate from the "
            f"optimizer's {_g(base)} to {_g(end)} ({end / base:.1f}x) and is still rising: a warm-up "
            "that never ends climbs until training oscillates or diverges."
        ),
        fix=(
            "End the warm-up at its length (if step < warmup: ...) and cap the factor at 1, "
            "or use a library schedule (LinearLR then CosineAnnealingLR in SequentialLR)."
        ),
        where=Where(step=plan.steps_taken + span),
        evidence={
            "scheduler": plan.scheduler,
            "base_lr": base,
            "planned_lr": end,
            "factor": end / base,
            "steps_ahead": span,
            "unit": unit,
        },
    )


# Words of a metric's name that say which way it should go.
_HIGHER_IS_BETTER = frozenset(
    {
        "acc",
        "accuracy",
        "f1",
        "auc",
        "auroc",
        "score",
        "precision",
        "recall",
        "bleu",
        "map",
        "iou",
        "miou",
        "dice",
        "r2",
        "top1",
        "top5",
        "hits",
        "ndcg",
        "mrr",
        "rouge",
        "correct",
    }
)
_LOWER_IS_BETTER = frozenset(
    {
        "loss",
        "error",
        "err",
        "mse",
        "mae",
        "rmse",
        "nll",
        "perplexity",
        "ppl",
        "cost",
        "deviance",
        "wer",
        "cer",
    }
)


def _plateau_mode_against_its_metric(ctx: CheckContext) -> tuple[int, list[str]]:
    """A warning for each ReduceLROnPlateau whose mode contradicts its metric's name (see
    the check's manual): how many, and the pairs of mode and metric that agree."""
    found, agreeing = 0, []
    for plateau in ctx.recording.plateau_schedulers:
        stepped = plateau_metrics(plateau.file, plateau.line)
        for metric, line in stepped:
            way = metric_direction(metric)
            if way is None:
                continue
            if (way == "max") == (plateau.mode == "max"):
                agreeing.append(f"mode={plateau.mode!r} stepped on {metric} (line {line})")
                continue
            ctx.finding(
                title=f"ReduceLROnPlateau(mode={plateau.mode!r}) is stepped on {metric}",
                message=(
                    f"The scheduler built at line {plateau.line} waits for its metric to "
                    f"{'fall' if plateau.mode == 'min' else 'rise'} (mode={plateau.mode!r}), "
                    f"and line {line} steps it on {metric}, which "
                    f"{'rises' if way == 'max' else 'falls'} as training works: every "
                    "improvement counts as a plateau, and the learning rate is cut again "
                    "after each `patience` epochs of progress."
                ),
                fix=(
                    f"Build it with mode={'max' if way == 'max' else 'min'!r} for {metric}, "
                    "or step it on a loss with mode='min'."
                ),
                where=Where(file=plateau.file, line=line),
                evidence={"mode": plateau.mode, "metric": metric, "built_at": plateau.line},
            )
            found += 1
    return found, agreeing


def metric_direction(expression: str) -> str | None:
    """``"max"`` when the words of a metric expression name a score to raise, ``"min"``
    when they name an error to lower; None when they name neither, or both."""
    words = {w for w in re.split(r"[^a-z0-9]+", expression.lower()) if w}
    higher, lower = bool(words & _HIGHER_IS_BETTER), bool(words & _LOWER_IS_BETTER)
    if higher == lower:
        return None
    return "max" if higher else "min"


def plateau_metrics(file: str, line: int) -> list[tuple[str, int]]:
    """The metric expressions (with their lines) that the script's source steps the
    scheduler built at ``line`` of ``file`` with: the name it is assigned to there, then
    every ``<that name>.step(metric)`` in the file. Empty when the source cannot be read."""
    try:
        with open(file, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    names = {
        _last_name(target)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        and node.lineno <= line <= (node.end_lineno or line)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
    } - {None}
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "step"
            and _last_name(node.func.value) in names
            and node.args
        ):
            found.append((ast.unparse(node.args[0]), node.lineno))
    return found


def _last_name(node: ast.AST) -> str | None:
    """``scheduler`` for ``scheduler`` and ``self.scheduler``; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None
