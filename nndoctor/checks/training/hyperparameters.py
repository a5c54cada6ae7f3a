"""Optimiser hyperparameters far outside their common ranges (reason 29).

An observation: it reads the hyperparameters of every parameter group as the
optimizer held them at each observed step (``StepRecord.hyperparameters``, so a
scheduler that pushes a value out of range is seen too) and the optimizer's class
(``Recording.optimizer_class``). The ranges are those of the PyTorch documentation
and of the papers behind each optimiser: momentum and Adam's betas are decay rates
in [0, 1), a learning rate is positive, weight decay is a small coefficient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.thresholds import Thresholds
from nndoctor.checks.training.observed import clipped_step_bound, optimizer_name
from nndoctor.report.model import Severity, Where

# Optimisers that divide by a running RMS of the gradient: each step moves a weight by
# about ``lr`` whatever the gradient's scale, so their sane learning rates are small
# (Kingma & Ba 2015 use 1e-3) and ``eps`` must stay far below the gradient's RMS.
ADAM_FAMILY = frozenset({"Adam", "AdamW", "NAdam", "RAdam", "Adamax", "SparseAdam"})
# Optimisers whose weight decay is decoupled from the gradient (Loshchilov & Hutter 2019):
# the weights shrink by lr * weight_decay per step.
DECOUPLED = frozenset({"AdamW"})
# Parameter names listed per group in a message, at most.
MAX_NAMES = 3


@dataclass(frozen=True)
class Problem:
    """One hyperparameter of one group outside its range."""

    key: str  # the param_group key, e.g. "momentum" or "betas[1]"
    rule: str  # a short name of the violated rule, e.g. "at or above 1"
    value: Any
    common: str  # the common range, in words
    consequence: str
    fix: str
    severity: Severity


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _g(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def group_problems(
    optimizer: str, group: dict[str, Any], t: Thresholds, clipped: str = ""
) -> list[Problem]:
    """Every out-of-range hyperparameter of one parameter group of an ``optimizer`` (class
    name). ``clipped`` says why clipping sets the step length (see ``clipped_step_bound``):
    a learning rate above the common range is then not judged here."""
    out: list[Problem] = []
    adam = optimizer in ADAM_FAMILY
    lr = _number(group.get("lr"))
    if lr is not None:
        if lr < 0:
            out.append(
                Problem(
                    "lr",
                    "negative",
                    lr,
                    "positive: 1e-4 to 1e-1 for SGD, 1e-4 to 3e-3 for Adam",
                    "a negative learning rate climbs the loss instead of descending it",
                    "Use a positive learning rate.",
                    Severity.ERROR,
                )
            )
        elif lr > t.max_lr and not clipped:
            out.append(
                Problem(
                    "lr",
                    f"above {_g(t.max_lr)}",
                    lr,
                    "1e-4 to 1e-1 for SGD, up to ~1 with warm-up",
                    "steps this large overshoot any minimum: the loss oscillates or diverges",
                    "Lower the learning rate by orders of magnitude (start from 0.01-0.1 for SGD with "
                    "momentum) or run a learning-rate range test.",
                    Severity.WARNING,
                )
            )
        elif adam and lr > t.max_adaptive_lr:
            out.append(
                Problem(
                    "lr",
                    f"above {_g(t.max_adaptive_lr)}",
                    lr,
                    "1e-4 to 3e-3 (default 1e-3)",
                    f"{optimizer} moves every weight by about lr per step whatever the gradient's scale, "
                    "so a rate copied from an SGD recipe rewrites the weights at every step",
                    f"Use lr=1e-3 with {optimizer} (3e-4 for large models), or run a learning-rate range test.",
                    Severity.WARNING,
                )
            )
    momentum = _number(group.get("momentum"))
    if momentum is not None:
        if momentum >= 1:
            out.append(
                Problem(
                    "momentum",
                    "at or above 1",
                    momentum,
                    "[0, 1): typically 0.9, 0.99 at most",
                    "the velocity never forgets old gradients and grows without bound: training diverges",
                    "Use momentum=0.9.",
                    Severity.ERROR,
                )
            )
        elif momentum < 0:
            out.append(
                Problem(
                    "momentum",
                    "negative",
                    momentum,
                    "[0, 1): typically 0.9",
                    "negative momentum reverses part of every previous step",
                    "Use momentum=0.9 (or 0 for plain SGD).",
                    Severity.WARNING,
                )
            )
    dampening = _number(group.get("dampening"))
    if dampening is not None and not 0 <= dampening < 1:
        out.append(
            Problem(
                "dampening",
                "outside [0, 1)",
                dampening,
                "[0, 1): 0 by default",
                "with dampening 1 or more the gradient no longer reaches the velocity",
                "Leave dampening at 0.",
                Severity.WARNING,
            )
        )
    if group.get("nesterov") is True and (
        momentum is None or momentum <= 0 or (dampening or 0) != 0
    ):
        out.append(
            Problem(
                "nesterov",
                "without momentum",
                True,
                "nesterov=True needs momentum > 0 and dampening 0",
                "Nesterov's look-ahead is defined on a momentum buffer; without one the flag means nothing "
                "(torch refuses it at construction, so the group was changed afterwards)",
                "Set momentum=0.9 with nesterov=True, or drop nesterov.",
                Severity.WARNING,
            )
        )
    betas = group.get("betas")
    if isinstance(betas, (list, tuple)) and len(betas) == 2:
        for i, raw in enumerate(betas):
            beta = _number(raw)
            if beta is None:
                continue
            # beta1 = 0 is a documented choice (no first moment, as in RMSprop; common for GANs);
            # beta2 = 0 divides by |g| alone, i.e. sign descent.
            low_ok = beta >= 0 if i == 0 else beta > 0
            if beta >= 1:
                what = "first" if i == 0 else "second"
                out.append(
                    Problem(
                        f"betas[{i}]",
                        "at or above 1",
                        beta,
                        "(0, 1): 0.9 and 0.999 by default",
                        f"the {what}-moment estimate never takes in a gradient and its bias correction "
                        "divides by 1 - beta^t <= 0: no update, or inf/NaN",
                        "Use betas=(0.9, 0.999) (or (0.9, 0.95) for large transformers).",
                        Severity.ERROR,
                    )
                )
            elif not low_ok:
                out.append(
                    Problem(
                        f"betas[{i}]",
                        "not in (0, 1)" if i else "negative",
                        beta,
                        "(0, 1): 0.9 and 0.999 by default",
                        "the moment estimate is no longer an average of past gradients",
                        "Use betas=(0.9, 0.999).",
                        Severity.WARNING,
                    )
                )
    for key, name in (("alpha", "RMSprop"), ("rho", "Adadelta")):
        value = _number(group.get(key))
        if optimizer == name and value is not None and not 0 < value < 1:
            out.append(
                Problem(
                    key,
                    "outside (0, 1)",
                    value,
                    "(0, 1): 0.99 for RMSprop, 0.9 for Adadelta",
                    "the running average of squared gradients is no longer an average",
                    f"Use the default {key} of {name}.",
                    Severity.ERROR if value >= 1 else Severity.WARNING,
                )
            )
    wd = _number(group.get("weight_decay"))
    if wd is not None:
        decoupled = optimizer in DECOUPLED or group.get("decoupled_weight_decay") is True
        if wd < 0:
            out.append(
                Problem(
                    "weight_decay",
                    "negative",
                    wd,
                    "1e-5 to 1e-2 (1e-2 to 0.1 for AdamW)",
                    "negative weight decay inflates the weights at every step",
                    "Use a small positive weight decay, or 0.",
                    Severity.WARNING,
                )
            )
        elif wd >= t.max_weight_decay:
            shrink = (
                f" (weights shrink by lr x weight_decay = {_g(lr * wd)} per step)"
                if lr and decoupled
                else ""
            )
            out.append(
                Problem(
                    "weight_decay",
                    f"at or above {_g(t.max_weight_decay)}",
                    wd,
                    "1e-2 to 0.1 for decoupled decay (AdamW)"
                    if decoupled
                    else "1e-5 to 1e-2 (5e-4 is common for SGD)",
                    "the decay term outweighs the gradient, pulling the weights to zero faster than they learn"
                    + shrink,
                    "Use weight_decay=0.01-0.1 with AdamW"
                    if decoupled
                    else "Use weight_decay=1e-4 to 5e-4",
                    Severity.WARNING,
                )
            )
    eps = _number(group.get("eps"))
    if eps is not None:
        if adam and eps > t.max_adam_eps:
            out.append(
                Problem(
                    "eps",
                    f"above {_g(t.max_adam_eps)}",
                    eps,
                    "1e-8 (1e-6 in half precision)",
                    "a large eps dominates the RMS of the gradient in the denominator: the optimiser "
                    "degrades to SGD with a learning rate of lr / eps per unit gradient",
                    "Use eps=1e-8 (1e-6 or 1e-7 for fp16).",
                    Severity.WARNING,
                )
            )
        elif eps < 0:
            out.append(
                Problem(
                    "eps",
                    "negative",
                    eps,
                    "a small positive number, 1e-8 by default",
                    "a negative eps can make the denominator zero or negative",
                    "Use eps=1e-8.",
                    Severity.WARNING,
                )
            )
    if group.get("maximize") is True:
        out.append(
            Problem(
                "maximize",
                "set",
                True,
                "False for a loss",
                "the optimiser ascends the loss instead of descending it",
                "Remove maximize=True (it is meant for objectives such as rewards, not losses).",
                Severity.WARNING,
            )
        )
    return out


@register_check(
    id="hyperparameters-out-of-range",
    reasons=(29,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def hyperparameters_out_of_range(ctx: CheckContext) -> None:
    """Optimiser hyperparameters far outside their common ranges.

    Why it matters:
        A momentum of 1.5, Adam betas above 1, a weight decay of 10 or an Adam
        learning rate of 0.5 do not make training a little worse: they make it
        diverge, stall or drift. Such values come from typos, from a recipe for
        another optimiser (SGD's lr given to Adam), or from code that edits
        ``param_groups`` after the optimiser checked them.

    What is measured:
        Each parameter group's hyperparameters at every observed step, against the
        common ranges: momentum and dampening in [0, 1); Adam-family betas in (0, 1)
        (beta1 = 0 allowed); RMSprop ``alpha`` and Adadelta ``rho`` in (0, 1);
        weight decay in [0, ``max_weight_decay``); Adam-family ``eps`` at most
        ``max_adam_eps``; a positive learning rate, at most ``max_lr`` (10) for any
        optimiser (not judged for SGD whose gradient norm was clipped at more than
        ``clip_active_share`` of the steps: its steps are then at most lr x max_norm
        long whatever the rate, and the range test judges the rate with the clipping
        replayed; the detail says so) and ``max_adaptive_lr`` (0.1) for the Adam
        family; nesterov only
        with momentum; ``maximize`` off. A learning rate of zero counts only when it
        is zero at every observed step (a warm-up may start at zero). An error where
        the value makes training diverge or produce NaN (momentum or betas at or
        above 1, a negative learning rate), a warning otherwise.

    How to fix:
        Use the value from the optimiser's documentation or the common range
        printed with the finding: momentum 0.9, betas (0.9, 0.999), eps 1e-8,
        weight decay 1e-4-5e-4 (0.01-0.1 for AdamW), lr 1e-3 for Adam and
        0.01-0.1 for SGD with momentum.

    Example:
        Before::

            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=1.5)

        After::

            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """
    rec = ctx.recording
    t = ctx.thresholds
    observed = [(s.step, s.hyperparameters) for s in rec.steps if s.hyperparameters]
    optimizer = rec.optimizer_class
    source = "observed steps"
    if not observed and ctx.subject is not None and ctx.subject.optimizer is not None:
        spec = ctx.subject.optimizer
        observed = [(0, spec.hyperparameters())]
        optimizer = spec.cls.__name__
        source = "the declared optimiser"
    if not observed:
        ctx.skip("no optimizer step was observed, so no hyperparameters were recorded")
    optimizer = optimizer or "optimizer"
    clipped = clipped_step_bound(rec, optimizer_name(rec, ctx.subject) or optimizer, t)

    # (group, key) -> (first step, the first problem seen with it): a scheduler that keeps
    # raising the rate is one finding. A zero lr counts only when zero at every step.
    first: dict[tuple[int, str], tuple[int, Problem]] = {}
    zero_lr: dict[int, bool] = {}
    for step, groups in observed:
        for i, group in enumerate(groups):
            for p in group_problems(optimizer, group, t, clipped):
                first.setdefault((i, p.key), (step, p))
            lr = _number(group.get("lr"))
            if lr is not None:
                zero_lr[i] = zero_lr.get(i, True) and lr == 0
    for i, always_zero in zero_lr.items():
        if always_zero:
            first[(i, "lr")] = (
                observed[0][0],
                Problem(
                    "lr",
                    "zero at every step",
                    0.0,
                    "positive: 1e-4 to 1e-1 for SGD, 1e-4 to 3e-3 for Adam",
                    "the weights of this group never move",
                    "Set a positive learning rate.",
                    Severity.WARNING,
                ),
            )

    n_groups = max(len(g) for _, g in observed)
    # One finding per (key, rule), naming every group that breaks it.
    merged: dict[tuple[str, str], list[tuple[int, int, Problem]]] = {}
    for (i, key), (step, p) in sorted(first.items(), key=lambda kv: kv[0]):
        merged.setdefault((key, p.rule), []).append((i, step, p))
    high = sorted(
        {lr for _, groups in observed for g in groups if (lr := _number(g.get("lr"))) is not None}
    )
    unjudged = (
        f"; lr={_g(high[-1])} is above {_g(t.max_lr)}, but {clipped}: not judged here "
        "(learning-rate-out-of-range replays the clipped update)"
        if clipped and high and high[-1] > t.max_lr
        else ""
    )
    ctx.note(
        f"{optimizer}: {n_groups} parameter group(s) over {len(observed)} {source}; "
        + (
            f"out of range: {', '.join(k for k, _ in merged)}"
            if merged
            else "every hyperparameter in range"
        )
        + unjudged
    )
    members = _group_members(ctx)
    for (key, rule), hits in merged.items():
        p = hits[0][2]
        step = min(s for _, s, _ in hits)
        where_groups = "; ".join(
            f"group {i}{_members_text(members.get(i))}: {key}={_g(q.value)}" for i, _, q in hits
        )
        scope = "" if n_groups == 1 else f" in {len(hits)} of {n_groups} parameter groups"
        ctx.finding(
            title=f"{optimizer} {key}={_g(p.value)} is outside its common range",
            message=(
                f"{optimizer} {key} is {rule}{scope} ({where_groups}), first seen at step {step}; "
                f"common range: {p.common}. Consequence: {p.consequence}."
            ),
            fix=p.fix,
            severity=max((q.severity for _, _, q in hits), key=lambda s: s.rank),
            # A learning rate out of range is also reason 36, the learning rate itself.
            reasons=(29, 36) if key == "lr" else None,
            where=Where(
                step=step, module=_module_of_group(members, hits[0][0]) if n_groups > 1 else None
            ),
            evidence={
                "optimizer": optimizer,
                "key": key,
                "rule": rule,
                "groups": [i for i, _, _ in hits],
                "values": [q.value for _, _, q in hits],
                "common_range": p.common,
                "step": step,
            },
        )


def _group_members(ctx: CheckContext) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for name, i in ctx.recording.param_groups.items():
        out.setdefault(i, []).append(name)
    return out


def _members_text(names: list[str] | None) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:MAX_NAMES]) + (
        f", ... {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    )
    return f" ({shown})"


def _module_of_group(members: dict[int, list[str]], group: int) -> str | None:
    """The deepest module holding every parameter of ``group`` (None when unknown)."""
    names = members.get(group)
    if not names:
        return None
    parts = [n.split(".")[:-1] for n in names]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common) if common else None
