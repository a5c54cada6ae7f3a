"""Updates (reasons 33, 36): the ratio of each step's update to the weights, which says
whether the learning rate is too high or too low.
"""

from __future__ import annotations

import math

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import falling_trend_p
from nndoctor.checks.training.observed import (
    capped,
    clipped_step_bound,
    fmt3,
    learning_rates,
    median,
    optimizer_name,
    weight_matrices,
)
from nndoctor.probes.layers import CONV, CONV_TRANSPOSE, LINEAR, RECURRENT
from nndoctor.probes.recording import module_of
from nndoctor.report.model import Severity, Where

# The update/weight ratio that cs231n's "babysitting the learning process" calls healthy.
HEALTHY_UPDATE_RATIO = 1e-3


# Layers whose default initialisation gives a weight the norm ``default_init_norm`` says.
DEFAULT_INIT_KNOWN = LINEAR + CONV + CONV_TRANSPOSE


def default_init_norm(shape: tuple[int, ...]) -> float:
    """The norm PyTorch's default initialisation gives a weight of ``shape`` (nn.Linear and
    nn.ConvNd and nn.ConvTransposeNd: kaiming_uniform with a=sqrt(5), uniform within
    1/sqrt(fan_in), so the squared norm is numel / (3 fan_in) = shape[0] / 3); 0 for fewer
    than two dimensions."""
    return math.sqrt(shape[0] / 3) if len(shape) >= 2 and shape[0] > 0 else 0.0


def matrix_working_norm(shape: tuple[int, ...]) -> float:
    """The norm nn.Linear's default initialisation gives a weight matrix of ``shape`` read
    with its longer side as the fan-in (a hand-written matrix may be used either way round,
    ``F.linear(x, W)`` or ``x @ W``; the longer side gives the smaller norm): the scale a
    matrix held as a bare parameter (an RBM's weights drawn at N(0, 0.01)) grows to, which
    its tiny start understates. 0 for no matrix."""
    if len(shape) != 2 or min(shape) <= 0:
        return 0.0
    return math.sqrt(min(shape) / 3)


@register_check(
    id="update-ratio",
    reasons=(33, 36),
    severity="warning",
    symptom=True,
    differential=(
        (36, "the learning rate (learning-rate-out-of-range)"),
        (12, "the scale of the inputs"),
        (28, "the initialisation"),
    ),
)
def update_ratio(ctx: CheckContext) -> None:
    """Update/weight ratios far from ~1e-3: the learning rate is too high or too low.

    Why it matters:
        The size of each optimizer step relative to the weights is the most direct
        reading of the learning rate. Around 1e-3 per step is healthy (cs231n):
        far above it, each step rewrites the weights and training oscillates or
        diverges; far below it, the weights barely move and training crawls.

    What is measured:
        For each trainable weight matrix in the optimizer (biases and lookup tables
        left out), at each observed step, the norm of the update divided by the
        matrix's norm at the first observed step (its initial scale: dividing by
        the current norm would hide a runaway learning rate, since the weights
        inflate with it); the median over steps per matrix, then the median over
        matrices. The initial scale is never taken below the norm PyTorch's default
        initialisation gives a matrix of that shape (a zero-initialised or N(0, 0.01) head
        grows to its working scale in its first steps); a weight matrix held as a bare
        parameter of the user's own module (an RBM's, drawn at N(0, 0.01)) is held to the
        norm nn.Linear's default gives its shape, read with the longer side as the fan-in
        (``matrix_working_norm``). A warning above ``update_ratio_high`` (0.1) or below
        ``update_ratio_low`` (1e-5); an error above ``update_ratio_extreme`` (1.0,
        every step as large as the weights themselves). A learning rate rising
        over the observed steps (warm-up) turns a "too low" finding into a note. A "too
        high" ratio up to ``update_ratio_extreme`` is not judged for SGD whose gradient
        norm was clipped (clip_grad_norm_) at more than ``clip_active_share`` of the
        steps: each step is then at most lr x max_norm long, a length the script chose
        rather than a rate running away, and the experiments that replay the clipped
        update (range test, tiny batch) judge it; the check's detail says so. A "too
        high" ratio up to ``update_ratio_extreme`` under which the observed loss falls
        (one-sided Mann-Kendall trend test at ``update_ratio_training_alpha``, 1%: the
        rate at which a loss without a trend is taken for a falling one) is a note: the
        large steps train, and the range test judges whether a lower rate trains better.
        A "too high" warning for SGD is also a note when ``optimizer-underperforms`` finds
        that a copy with the user's optimiser fits a tiny batch at least as far as
        Adam(lr=1e-3) does (its healthy twin: SGD steps too large for the loss surface do
        not fit a fixed batch either); an error (above ``update_ratio_extreme``) stands then.
        A warning or an error becomes a note when ``learning-rate-out-of-range`` trains two
        copies on the script's batches and the one at the user's rate ends lower than the
        one at the rate its range test proposes: that tests the claim itself. A warning
        (not an error) becomes a note too when that range test, run with the user's
        optimiser and settings, does not find the rate above the range it proposes: an
        adaptive optimiser's first steps are about its rate per weight (Adagrad at 0.1
        moves a small head by a tenth of its norm), large for the weights but measured
        not too large to train.
        Matrices that never change are left to ``params-not-changing``.

    How to fix:
        Too high: lower the learning rate (by the factor shown) or add warm-up;
        too low: raise it. A learning-rate range test (increase the rate
        exponentially over a few hundred steps, pick a value an order below where
        the loss blows up) finds a good value quickly.

    Example:
        Before::

            optimizer = torch.optim.Adam(model.parameters(), lr=1.0)

        After::

            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """
    t = ctx.thresholds
    rec = ctx.recording
    candidates = [n for n in weight_matrices(rec) if n in rec.in_optimizer]
    per_tensor: dict[str, float] = {}
    per_tensor_current: dict[str, float] = {}
    for name in candidates:
        pairs = [
            (s.update_norms[name], s.weight_norms.get(name, math.nan))
            for s in rec.steps
            if name in s.update_norms
        ]
        pairs = [(u, w) for u, w in pairs if math.isfinite(u) and math.isfinite(w)]
        if not pairs or all(u == 0 for u, _ in pairs):
            continue
        # A matrix initialised far below its default scale (a zero or N(0, 0.01) head, a
        # linear probe) grows to its working scale in the first steps: against that tiny
        # start every rate looks too high. The default scale still shows a runaway rate.
        # (A zero-initialised matrix's first non-zero norm is one step's length: no scale.)
        # The default scale is known for nn.Linear and convolutions; other matrices (an
        # RNN's, scaled by its hidden size) keep their first non-zero norm.
        shape = rec.param_shapes.get(name, ())
        default = (
            default_init_norm(shape)
            if rec.is_kind(module_of(name), DEFAULT_INIT_KNOWN)
            else matrix_working_norm(shape)
            if len(shape) == 2 and not rec.is_kind(module_of(name), RECURRENT)
            else 0.0
        )
        first = pairs[0][1] if default > 0 else next((w for _, w in pairs if w > 0), 0.0)
        ref = max(first, default)
        if ref <= 0:
            continue
        per_tensor[name] = median(u / ref for u, _ in pairs)
        per_tensor_current[name] = median(u / w for u, w in pairs if w > 0)
    if not per_tensor:
        ctx.skip("no weight matrix in the optimizer changed during the observed steps")
    ratio = median(per_tensor.values())
    ctx.note(f"median update/weight ratio {fmt3(ratio)} over {len(per_tensor)} weight matrices")
    stepped = [s for s in rec.steps if s.update_norms]
    lrs_first = learning_rates(stepped[0]) if stepped else []
    lrs_last = learning_rates(stepped[-1]) if stepped else []
    evidence = {
        "median_ratio": ratio,
        "healthy_ratio": HEALTHY_UPDATE_RATIO,
        "ratios": capped(per_tensor),
        "ratios_to_current_norm": capped(per_tensor_current),
        "lr": lrs_first,
        "steps": len(stepped),
    }
    lr_text = f" (lr={', '.join(fmt3(x) for x in lrs_first)})" if lrs_first else ""
    if ratio > t.update_ratio_high:
        worst = max(per_tensor, key=per_tensor.__getitem__)
        factor = ratio / HEALTHY_UPDATE_RATIO
        # Under clipping that sets SGD's step length, large steps are the script's choice;
        # whether the rate trains is measured by the experiments that replay the clipping.
        # Steps as large as the weights themselves rewrite them whatever chose the length.
        clipped = (
            clipped_step_bound(rec, optimizer_name(rec, ctx.subject), t)
            if ratio <= t.update_ratio_extreme
            else ""
        )
        if clipped:
            ctx.note(
                f"median update/weight ratio {fmt3(ratio)} over {len(per_tensor)} weight matrices, "
                f"above {fmt3(t.update_ratio_high)}, but {clipped}: not judged here "
                "(learning-rate-out-of-range and cannot-overfit-tiny-batch replay the clipped update)"
            )
            return
        # Large steps under which the loss keeps falling train: the ratio alone is advice
        # then (fastText-style SGD at a rate of 10 is healthy). Whether a lower rate trains
        # better is the range test's to say (learning-rate-out-of-range).
        losses = [s.loss for s in rec.steps if s.loss_seen and math.isfinite(s.loss)]
        trend_p = falling_trend_p(losses)
        trains = ratio <= t.update_ratio_extreme and trend_p < t.update_ratio_training_alpha
        evidence["loss_falling_p"] = trend_p
        ctx.finding(
            title="Updates are too large for the weights: learning rate too high"
            if not trains
            else "Updates are large for the weights, though the loss keeps falling",
            message=(
                f"Each step changes the weight matrices by a median {fmt3(ratio)} of their initial "
                f"norm over {len(stepped)} steps{lr_text}; healthy is about "
                f"{fmt3(HEALTHY_UPDATE_RATIO)}, warning above {fmt3(t.update_ratio_high)}. "
                f"Largest: {worst} at {fmt3(per_tensor[worst])}."
                + (
                    f" The loss falls over these steps ({fmt3(losses[0])} → {fmt3(losses[-1])}; "
                    f"Mann-Kendall trend p={trend_p:.2g}): the large steps train, so this is advice "
                    "(learning-rate-out-of-range tests whether a lower rate trains better)."
                    if trains
                    else ""
                )
            ),
            fix=(
                f"Lower the learning rate, by up to ~{fmt3(factor)}x toward an update/weight "
                "ratio of 1e-3 (or run a learning-rate range test); add warm-up for large models."
            ),
            severity=Severity.ERROR
            if ratio > t.update_ratio_extreme
            else (Severity.INFO if trains else None),
            where=Where(module=module_of(worst), step=stepped[0].step if stepped else None),
            evidence=evidence,
            aspect="high",
        )
    elif ratio < t.update_ratio_low:
        smallest = min(per_tensor, key=per_tensor.__getitem__)
        warming = (
            bool(lrs_first)
            and len(lrs_first) == len(lrs_last)
            and any(b > a for a, b in zip(lrs_first, lrs_last, strict=True))
        )
        note = (
            f" The learning rate is still rising (warm-up: {', '.join(fmt3(x) for x in lrs_last)} "
            "at the last observed step), so this may be expected."
            if warming
            else ""
        )
        ctx.finding(
            title="Updates are tiny compared with the weights: learning rate too low",
            message=(
                f"Each step changes the weight matrices by a median {fmt3(ratio)} of their initial "
                f"norm over {len(stepped)} steps{lr_text}; healthy is about "
                f"{fmt3(HEALTHY_UPDATE_RATIO)}, warning below {fmt3(t.update_ratio_low)}.{note}"
            ),
            fix=(
                f"Raise the learning rate, by up to ~{fmt3(HEALTHY_UPDATE_RATIO / ratio)}x toward an "
                "update/weight ratio of 1e-3 (or run a learning-rate range test)."
                if ratio > 0
                # Most steps left the weights exactly as they were: a rate scheduled to zero.
                else "Most steps left the weights unchanged: check that the learning rate (and "
                "its schedule) is above zero, then aim for an update/weight ratio of about 1e-3."
            ),
            severity=Severity.INFO if warming else None,
            where=Where(module=module_of(smallest), step=stepped[0].step if stepped else None),
            evidence={**evidence, "warm_up": warming},
            aspect="low",
        )


@register_check(
    id="updates-climb-gradient",
    reasons=(36, 29),
    severity="error",
    explains=causes.DIVERGENCE_SYMPTOMS | causes.FIT_SYMPTOMS,
)
def updates_climb_gradient(ctx: CheckContext) -> None:
    """The parameters move up the loss gradient: the loss is maximised.

    Why it matters:
        Every descent method moves the parameters against the gradient of the loss it
        back-propagated. An update rule written by hand with the wrong sign
        (``p.data.add_(p.grad, alpha=lr)``, ``p += lr * p.grad``), or a negative learning
        rate, climbs it instead: the loss rises, slowly at a small rate, and no setting
        of anything else helps.

    What is measured:
        At each observed step, the cosine between the change of the parameters and minus
        the gradients they held when the step ended (1 for plain SGD, positive for
        momentum and Adam at nearly every step). A finding when at least
        ``uphill_min_steps`` (5) steps were measured and at least
        ``uphill_step_fraction`` (80%) of them had a negative cosine. An optimizer told
        ``maximize=True`` is left to ``hyperparameters-out-of-range``.

    How to fix:
        Subtract the gradient: ``p.data.add_(p.grad, alpha=-lr)`` or ``p -= lr * p.grad``
        under ``torch.no_grad()``; keep the learning rate positive.

    Example:
        Before::

            for p in model.parameters():
                p.data.add_(p.grad.data, alpha=lr)

        After::

            for p in model.parameters():
                p.data.add_(p.grad.data, alpha=-lr)
    """
    steps = [s for s in ctx.recording.steps if math.isfinite(s.update_alignment)]
    if any(g.get("maximize") is True for s in ctx.recording.steps for g in s.hyperparameters or []):
        ctx.skip("the optimizer maximises its objective (see hyperparameters-out-of-range)")
    t = ctx.thresholds
    if len(steps) < t.uphill_min_steps:
        ctx.skip(
            f"{len(steps)} step(s) ended with the gradients still held; "
            f"{t.uphill_min_steps} are needed to compare updates with them"
        )
    uphill = [s for s in steps if s.update_alignment < 0]
    share = len(uphill) / len(steps)
    cosine = median([s.update_alignment for s in steps])
    ctx.note(
        f"{len(uphill)} of {len(steps)} steps moved up the gradient; median update/gradient "
        f"cosine {cosine:+.2f} (1 is plain descent)"
    )
    if share < t.uphill_step_fraction:
        return
    manual = ctx.recording.step_source == "manual"
    ctx.finding(
        title="The updates climb the loss gradient",
        message=(
            f"At {len(uphill)} of {len(steps)} observed steps the parameters moved up the "
            f"gradient of the loss (median cosine between the update and the descent direction "
            f"{cosine:+.2f}): "
            + (
                "the script's own update adds the gradient instead of subtracting it"
                if manual
                else "the optimizer's learning rate or update has the wrong sign"
            )
            + ", so training maximises the loss."
        ),
        fix=(
            "Subtract the gradient in the update (p.data.add_(p.grad, alpha=-lr)), and keep "
            "the learning rate positive."
        ),
        where=Where(step=uphill[0].step),
        evidence={
            "uphill_steps": len(uphill),
            "steps": len(steps),
            "median_cosine": cosine,
            "manual_update": manual,
        },
    )
