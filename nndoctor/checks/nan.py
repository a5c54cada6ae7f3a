"""NaN tracing (reason 37): where a non-finite value first appears."""

from __future__ import annotations

import math
import os
from typing import Any

from nndoctor.checks import causes
from nndoctor.checks.lab import KNOWN_GOOD_LR, Lab, TrainResult, descend
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import NonFiniteEvent, Recording
from nndoctor.probes.trace import OpEvent, trace_first_nonfinite
from nndoctor.report.model import Where

_CAUSES = {
    "log": "log of zero or a negative number",
    "log2": "log of zero or a negative number",
    "log10": "log of zero or a negative number",
    "log1p": "log1p of a value ≤ -1",
    "div": "division by zero",
    "reciprocal": "division by zero",
    "rsqrt": "rsqrt of zero or a negative number",
    "sqrt": "sqrt of a negative number (or its gradient at zero)",
    "pow": "a power of zero or a negative base",
    "exp": "exp overflow",
    "acos": "acos outside [-1, 1]",
    "asin": "asin outside [-1, 1]",
}


AFTER_GROWTH = "after-growth"
INHERITED = "inherited"


# Ops that write a given value where a mask says: a -inf from one of them was put there.
MASKING_OPS = frozenset({"masked_fill", "where", "fill", "full", "full_like", "index_put"})


@register_check(
    id="non-finite-values",
    reasons=(37,),
    severity="error",
    priority=11,
    explains=causes.ALL_SYMPTOMS,
    # A NaN that ends a loss grown by orders of magnitude is the divergence's effect; one
    # in weights that were already non-finite when the observed phase began was made
    # before it (an earlier phase, a checkpoint).
    symptom_aspects=(AFTER_GROWTH, INHERITED),
    differential=(
        (36, "a too-high learning rate (learning-rate-out-of-range, loss-diverging)"),
        (35, "exploding gradients (gradient-norm-spread; clip the gradient norm)"),
        (20, "a loss term weighted far above the others (loss-term-dominates)"),
        (12, "inputs on a large scale (input-not-standardized)"),
    ),
)
def non_finite_values(ctx: CheckContext) -> None:
    """A NaN or infinity appears in the forward pass, the loss, the gradients or the weights.

    Why it matters:
        One non-finite value spreads to every weight at the next update and the run is lost.
        The symptom (loss = nan) appears far from the cause: a log of zero, a division by
        zero, an overflow in float16, a learning rate that blew the weights up.

    What is measured:
        Per step, fused statistics of every module output, the loss, every output gradient,
        every parameter gradient and every weight: the first step, phase and module where a
        non-finite value appears. When the step can be replayed on a copy, the replay runs
        under a dispatch mode that finds the first operation producing it, and its file:line.

        A -inf written on purpose is not a fault: when the first non-finite value is a
        -inf in a module's output, put there by a masking op (``masked_fill``, ``where``,
        ``fill``) from finite inputs, and every loss, gradient and weight of the observed
        steps is finite (no NaN, no +inf anywhere), the positions are masked out before a
        softmax (attention, a pointer over the inputs, a causal mask): a note.

    How to fix:
        Guard the operation: clamp before log (``x.clamp_min(1e-8).log()``), add an epsilon to
        denominators, use the fused, stable forms (``log_softmax``, ``BCEWithLogitsLoss``,
        ``logsumexp``), lower the learning rate or clip gradients when weights blow up.

    Example:
        Before::

            loss = -(y * torch.log(p)).sum(1).mean()

        After::

            loss = -(y * torch.log(p.clamp_min(1e-8))).sum(1).mean()
            # better: F.cross_entropy(logits, y)
    """
    rec: Recording = ctx.recording
    if not rec.steps:
        ctx.skip("no step was observed")
    event = rec.first_nonfinite()
    if event is None:
        ctx.note(f"no non-finite value in {len(rec.steps)} observed step(s)")
        return
    op = _replay(ctx.services, event)
    if (
        event.phase == "forward"
        and op is not None
        and _op_base(op.op) in MASKING_OPS
        and op.inputs_finite
        and rec.only_negative_infinity_in_forward()
    ):
        ctx.note(
            f"-inf in the output of {event.module or 'the model'} from step {event.step}, "
            f"written by aten.{op.op} ({op.code or 'a mask'}); the losses, gradients and "
            f"weights of all {len(rec.steps)} observed step(s) are finite: positions masked "
            "out on purpose (a softmax gives them probability 0)"
        )
        return
    reasons = (1, 37) if event.phase == "input" else (37,)
    what = _describe(event)
    where = Where(module=event.module if event.module is not None else None, step=event.step)
    evidence: dict[str, Any] = {"step": event.step, "phase": event.phase}
    if event.module is not None:
        evidence["module_type"] = rec.module_types.get(event.module, "")
    if event.param is not None:
        evidence["parameter"] = event.param
    message = f"The first non-finite value appeared at step {event.step}: {what}."
    if op is not None:
        cause = _CAUSES.get(_op_base(op.op), "")
        op_text = f"aten.{op.op}" + (f" ({op.autograd_node})" if op.autograd_node else "")
        message += f" Replayed on a copy, the first operation producing it is {op_text} in the {op.phase} pass"
        message += f" — likely {cause}." if cause else "."
        where = Where(module=where.module, step=event.step, file=op.file, line=op.line, op=op.op)
        evidence.update(op=op.op, op_phase=op.phase, inputs_finite=op.inputs_finite)
        if op.code:
            evidence["code"] = op.code
    elif event.phase in ("gradient", "weights") and event.step > 0:
        message += " Earlier steps were finite: the updates grew until they overflowed."
    aspect = _effect_of_earlier(ctx, event)
    if aspect == AFTER_GROWTH:
        growth = _growth_before(rec, event.step)
        evidence["loss_growth_before"] = growth
        message += (
            f" Before it, the loss had grown to {growth:.3g}x its first value: the values grew "
            "until they overflowed, the end of a divergence (see loss-diverging), not its cause."
        )
    elif aspect == INHERITED:
        evidence["initial_weights_finite"] = False
        message += (
            " The model's weights were already non-finite when this phase of training began: "
            "they were made so before it (an earlier phase, a loaded checkpoint)."
        )
    ctx.finding(
        aspect=aspect,
        title="Non-finite values (NaN/inf) during training",
        message=message,
        fix=_fix_for(event, op),
        reasons=reasons,
        where=where,
        evidence=evidence,
    )


def _growth_before(rec: Recording, step: int) -> float:
    """The largest finite loss before ``step`` over the first one (nan without two)."""
    before = [s.loss for s in rec.steps if s.loss_seen and s.step < step and math.isfinite(s.loss)]
    if len(before) < 2 or before[0] <= 0:
        return math.nan
    return max(before) / before[0]


def _effect_of_earlier(ctx: CheckContext, event: NonFiniteEvent) -> str:
    """``AFTER_GROWTH`` when the finite losses before the event rose past
    ``loss_spike_ratio`` times the first (the divergence rule's own bar); ``INHERITED``
    when the event is in the first step and the weights the phase began with were
    non-finite; "" otherwise (the non-finite value is where the trouble starts)."""
    if event.phase == "input":
        return ""
    growth = _growth_before(ctx.recording, event.step)
    if math.isfinite(growth) and growth >= ctx.thresholds.loss_spike_ratio:
        return AFTER_GROWTH
    lab = ctx.services
    if event.step == 0 and lab is not None and lab.initial_weights_finite() is False:
        return INHERITED
    return ""


def _describe(event: NonFiniteEvent) -> str:
    if event.phase == "input":
        return "in the model input (the data already holds NaN/inf)"
    if event.phase == "forward":
        return f"in the output of module {event.module or '<root>'} (forward)"
    if event.phase == "loss":
        return (
            "in the loss, while every module output was finite (the loss computation produced it)"
        )
    if event.phase == "backward":
        return f"in the gradient flowing into the output of module {event.module or '<root>'} (backward)"
    if event.phase == "gradient":
        return f"in the gradient of parameter {event.param}"
    return f"in the weights of parameter {event.param} after an update"


def _fix_for(event: NonFiniteEvent, op: OpEvent | None) -> str:
    if event.phase == "input":
        return "Clean the data: drop or impute NaN/inf before training (check the loader and preprocessing)."
    name = op.op if op is not None else ""
    if name.startswith("log"):
        return "Clamp before the log (`x.clamp_min(1e-8).log()`) or use log_softmax / BCEWithLogitsLoss."
    if name.startswith(("div", "reciprocal", "rsqrt")):
        return "Add an epsilon to the denominator (`x / (d + 1e-8)`)."
    if name.startswith("sqrt"):
        return "Use `torch.sqrt(x + 1e-12)`: the gradient of sqrt at zero is infinite."
    if event.phase in ("gradient", "weights"):
        return "Lower the learning rate, clip gradients (clip_grad_norm_), or check for a loss scale that grows."
    return "Guard the operation that produced it (clamp, epsilon, stable fused ops) or lower the learning rate."


def _replay(lab: Lab | None, event: NonFiniteEvent) -> OpEvent | None:
    """Replay the steps up to the bad one on a copy and trace the first bad op."""
    if lab is None or event.phase == "input":
        return None
    if not lab.available:
        return _replay_script(lab, event)
    batches = lab.batches(event.step + 1)
    if len(batches) <= event.step:
        return None
    model = lab.fresh_model()
    spec = lab.optimizer_spec()
    opt = spec.build(model)
    try:
        for b in batches[: event.step]:
            opt.zero_grad()
            descend(opt, spec, lab.loss, model, b, lab.loss(model, b))
        opt.zero_grad()

        def step() -> None:
            lab.loss(model, batches[event.step]).backward()

        return trace_first_nonfinite(step)
    except (RuntimeError, ValueError):
        return None


def _replay_script(lab: Lab, event: NonFiniteEvent) -> OpEvent | None:
    """Re-run the script to the bad step with the tracer on (custom losses)."""
    if lab.script is None:
        return None
    result = lab.replay("trace", trace_step=event.step)
    if result.event is None:
        return None
    return OpEvent(**result.event)


def divergence_text(result: TrainResult) -> str:
    """Where the first non-finite value of a diverged experiment run came from, in words."""
    op = result.trace
    if op is None:
        return ""
    inside = f" in {op.module}" if op.module else ""
    at = f" at {os.path.basename(op.file)}:{op.line}" if op.file else ""
    return f"the first non-finite value came from aten.{op.op}{inside}, {op.phase} pass{at}"


def divergence_evidence(result: TrainResult) -> dict[str, Any]:
    """The step, op, phase and module of a diverged experiment run's first non-finite value."""
    op = result.trace
    evidence: dict[str, Any] = {"nonfinite_step": result.nonfinite_step}
    if op is not None:
        evidence.update(op=op.op, op_phase=op.phase, inputs_finite=op.inputs_finite)
        if op.module:
            evidence["module"] = op.module
        if op.code:
            evidence["code"] = op.code
    return evidence


@register_check(
    id="nonfinite-in-experiment",
    reasons=(37,),
    severity="error",
    kind="experiment",
    priority=11,
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def nonfinite_in_experiment(ctx: CheckContext) -> None:
    """Training a copy on a tiny batch turns the loss non-finite.

    Why it matters:
        The observed steps may stay finite while the run is still young; a few hundred steps
        on a tiny batch, the first experiment of the recipe, reach the weights and outputs
        where an unguarded log, a division or an exp overflows. A run that overflows cannot
        fit anything, so "cannot overfit" would name the symptom, not the cause.

    What is measured:
        The tiny-batch run of cannot-overfit-tiny-batch (the user's optimiser, regularisation
        off). When its loss turns non-finite, the run is redone with its last finite step and
        the bad one traced op by op: the first operation making a non-finite value, the module
        running it and the line of code. An op outside its domain (log of 0, a division by 0)
        is a warning: it is unsafe at any learning rate. An overflow in plain arithmetic while
        Adam(lr=1e-3) fits the same batch belongs to the optimiser settings (reason 36): an
        info. Otherwise an error.

    How to fix:
        Guard the operation the finding names (``x.clamp_min(1e-8).log()``, an epsilon in
        denominators, ``log_softmax``/``BCEWithLogitsLoss``/``logsumexp``), or lower the
        learning rate or clip gradients when the weights grew until they overflowed.

    Example:
        Before::

            loss = -(y * torch.log(model(x).sigmoid())).mean()

        After::

            loss = F.binary_cross_entropy_with_logits(model(x), y)
    """
    lab: Lab = ctx.services
    if lab is None or not lab.available:
        why = lab.unavailable_reason if lab is not None else "no subject"
        ctx.skip(f"{why}; declare a Subject (nndoctor.check) to run it")
    if ctx.recording.first_nonfinite() is not None:
        ctx.skip("the observed run itself turned non-finite (see non-finite-values)")
    t = ctx.thresholds
    user = lab.overfit_user(t)
    step = user.nonfinite_step
    if step is None:
        ctx.note(f"the tiny-batch run stayed finite for {len(user.losses)} steps")
        return
    if step == 0:
        ctx.skip("the loss is not finite from the first step (see non-finite-values)")
    evidence = divergence_evidence(user)
    evidence["initial_loss"] = user.initial
    op = user.trace
    where = Where(step=step)
    if op is not None:
        where = Where(module=op.module, step=step, file=op.file, line=op.line, op=op.op)
    # An op outside its domain (log of 0, a division by 0) is unsafe at any learning rate;
    # an overflow in plain arithmetic is weights grown too large, which a gentler optimiser
    # that fits the batch shows to be the optimiser settings' doing.
    domain = op is not None and op.inputs_finite and _op_base(op.op) in _CAUSES
    fallback = lab.overfit_known_good(t)
    settings = not domain and lab.fits(fallback, t)
    traced = f"; {divergence_text(user)}" if op is not None else ""
    message = (
        f"Trained from the initial weights on {t.overfit_batch_size} samples with the user's optimiser "
        f"and regularisation off, the loss went from {user.initial:.4g} to a non-finite value at step "
        f"{step}{traced}."
    )
    if domain:
        message += f" That is {_CAUSES[_op_base(op.op)]}: the operation is unguarded."
    elif settings:
        message += (
            f" With Adam(lr={KNOWN_GOOD_LR:g}) the same batch is fit and stays finite: the "
            "optimiser settings grow the weights until they overflow."
        )
    ctx.finding(
        title="Training on a tiny batch turns the loss non-finite",
        message=message,
        fix=(
            "Lower the learning rate or clip gradients."
            if settings
            else "Guard the operation named (clamp before log, an epsilon in denominators, the fused "
            "stable losses), or lower the learning rate if the weights grew until they overflowed."
        ),
        severity="info" if settings else "warning" if domain else "error",
        reasons=(37, 36) if settings else (37,),
        where=where,
        evidence=evidence,
    )


def _op_base(op: str) -> str:
    return op.split(".")[0].rstrip("_")
