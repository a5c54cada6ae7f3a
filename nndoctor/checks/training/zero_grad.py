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


@register_check(
    id="gradient-carried-from-other-loss",
    reasons=(18, 26),
    severity="error",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def gradient_carried_from_other_loss(ctx: CheckContext) -> None:
    """The model's update carries the gradient of another network's loss.

    Why it matters:
        With two networks and two optimizers (a GAN, an actor and a critic), each
        network's update must follow its own objective. When the discriminator's loss is
        back-propagated through the generator (``netD(fake)`` without ``.detach()``) and
        the generator's gradient is not zeroed before its own backward pass, the
        generator's step applies the sum of both gradients: it is pulled against its own
        objective by the loss that the other optimizer has already stepped on.

    What is measured:
        Once another optimizer (holding none of the model's parameters) has stepped, each
        backward pass is followed through its graph: whether it reaches the model's
        parameters. A step is marked when a pass reached them, the other optimizer then
        stepped, and a later pass reaches them again before the model's gradient was
        zeroed (``zero_grad`` on its optimizer or on a module holding its parameters) with
        that gradient still non-zero. This is a fact about the script's order of
        operations, not an estimate: an error when it holds at more than half of the
        observed steps where another optimizer stepped (a pattern of every iteration, not
        an accident of one).

    How to fix:
        Detach what one network hands the other's loss (``netD(fake.detach())``), or zero
        each network's gradient right before its own backward pass.

    Example:
        Before::

            optimizerD.zero_grad(); optimizerG.zero_grad()
            errD = criterion(netD(fake), zeros); errD.backward(retain_graph=True)
            optimizerD.step()
            errG = criterion(netD(fake), ones); errG.backward()
            optimizerG.step()

        After::

            errD = criterion(netD(fake.detach()), zeros)
            ...
            optimizerG.zero_grad()
            errG = criterion(netD(fake), ones); errG.backward()
    """
    steps = [s for s in ctx.recording.steps if s.foreign_steps > 0]
    if not steps:
        ctx.skip("no other network's optimizer stepped between the model's steps")
    carried = [s for s in steps if s.carried_gradient]
    ctx.note(
        f"{len(carried)} of {len(steps)} steps with another optimizer's step carried a "
        "gradient that optimizer had stepped on"
    )
    if 2 * len(carried) <= len(steps):
        return
    ctx.finding(
        title="The model's update carries another network's loss",
        message=(
            f"At {len(carried)} of {len(steps)} steps, a loss back-propagated into the model, "
            "another optimizer stepped on it, and the model's gradient was not zeroed before "
            "its own backward pass added to it: each of the model's updates follows the sum "
            "of its own objective and another network's."
        ),
        fix=(
            "Detach the tensors one network hands the other's loss (netD(fake.detach())), or "
            "zero the model's gradient right before its own backward pass."
        ),
        where=Where(step=carried[0].step),
        evidence={"steps_carried": len(carried), "steps_with_other_optimizer": len(steps)},
    )
