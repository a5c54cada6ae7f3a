"""Gradients that pile up (reasons 26, 36): ``zero_grad()`` never called between steps."""

from __future__ import annotations

import math

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import StepRecord
from nndoctor.report.model import Severity, Where


@register_check(
    id="zero-grad-missing", reasons=(26, 36), severity="error", explains=causes.ALL_SYMPTOMS
)
def zero_grad_missing(ctx: CheckContext) -> None:
    """``optimizer.zero_grad()`` is never called: gradients accumulate across steps.

    Why it matters:
        ``loss.backward()`` adds to ``.grad``; it does not overwrite it. Without
        ``optimizer.zero_grad()`` (or ``model.zero_grad()``) each step applies the
        sum of all gradients so far: the update is not the gradient of the current
        loss, and the effective learning rate grows with every step until
        training oscillates or diverges.

    What is measured:
        For every observed step after the first, whether ``zero_grad`` was called
        on an optimizer or module since the previous step, and whether gradients
        were already present when the forward pass began. An error when that
        holds for at least ``zero_grad_missing_fraction`` (half) of the later
        steps, a warning when only at some. The total gradient norm at the first
        and last such step shows the accumulation. Gradients reset by hand
        (``p.grad = None``) count as reset; ``p.grad.zero_()`` cannot be seen and
        reads as missing.

    How to fix:
        Call ``optimizer.zero_grad()`` once per step, before ``loss.backward()``
        (or right after ``optimizer.step()``). For gradient accumulation over
        k micro-batches, zero after each ``optimizer.step()``.

    Example:
        Before::

            for x, y in loader:
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()

        After::

            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
    """
    t = ctx.thresholds
    steps = [s for s in ctx.recording.steps if s.forwards > 0 or s.loss_seen]
    later = steps[1:]
    if not later:
        ctx.skip("fewer than two training steps were observed")
    # Gradients zeroed by hand (p.grad.zero_() or p.grad = None) are not accumulation.
    missing = [
        s
        for s in later
        if not s.zero_grad_called and s.grads_present_at_forward and s.grad_norm_at_forward > 0
    ]
    ctx.note(f"zero_grad called before {len(later) - len(missing)} of {len(later)} later steps")
    if not missing:
        return
    share = len(missing) / len(later)

    def total(step: StepRecord) -> float:
        return math.sqrt(sum(v * v for v in step.grad_norms.values() if math.isfinite(v)))

    first_norm, last_norm = total(steps[0]), total(missing[-1])
    growth = last_norm / first_norm if first_norm > 0 else math.nan
    ctx.finding(
        title="Gradients accumulate across steps: zero_grad() is not called",
        message=(
            f"At {len(missing)} of {len(later)} steps after the first, gradients from the previous "
            "step were still present when the forward pass began and no zero_grad() was called, so "
            "each update applies the sum of all gradients so far"
            + (
                f" (total gradient norm {first_norm:.3g} at step {steps[0].step}, "
                f"{last_norm:.3g} at step {missing[-1].step})."
                if math.isfinite(growth)
                else "."
            )
        ),
        fix="Call optimizer.zero_grad() once per step, before loss.backward() (or right after optimizer.step()).",
        severity=Severity.ERROR if share >= t.zero_grad_missing_fraction else Severity.WARNING,
        where=Where(step=missing[0].step),
        evidence={
            "steps_missing": len(missing),
            "later_steps": len(later),
            "first_missing_step": missing[0].step,
            "grad_norm_first_step": first_norm,
            "grad_norm_last_missing_step": last_norm,
            "grad_norm_growth": growth,
        },
    )
