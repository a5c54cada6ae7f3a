"""The model's mode (reason 32): training steps taken with the model in ``eval()`` mode."""

from __future__ import annotations

from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.training.parameters import MAX_NAMES
from nndoctor.probes.layers import MODE_DEPENDENT
from nndoctor.report.model import Severity, Where


@register_check(
    id="train-in-eval-mode",
    reasons=(32,),
    severity="warning",
    explains=frozenset(
        {
            "regularisation-prevents-fit",
            "loss-accuracy-disagree",
            "activation-scale-drift",
            "nothing-generalizes",
        }
    ),
)
def train_in_eval_mode(ctx: CheckContext) -> None:
    """Training steps taken with the model in ``eval()`` mode.

    Why it matters:
        BatchNorm and Dropout behave differently in ``train()`` and ``eval()``
        mode. Trained in eval mode, BatchNorm normalises with its running
        statistics and never updates them (they stay at mean 0 / variance 1), and
        Dropout does nothing, so the model trained is not the one intended and
        the evaluation statistics are never learnt. The usual cause is a
        ``model.eval()`` for validation without a ``model.train()`` afterwards.

    What is measured:
        The model's ``training`` flag at the first training forward (autograd on)
        of every observed step, and which BatchNorm/Dropout submodules were in
        eval mode while the model trained. A warning when at least
        ``eval_mode_step_fraction`` (half) of the steps ran in eval mode and the
        model has mode-dependent modules (an info note when it has none: no effect
        yet). An info note for occasional eval-mode steps (a validation forward
        with gradients on) and for submodules kept in eval mode (often a frozen
        BatchNorm while fine-tuning, on purpose).

    How to fix:
        Call ``model.train()`` at the start of every training epoch (after each
        validation pass), and run validation under ``torch.no_grad()`` /
        ``torch.inference_mode()``.

    Example:
        Before::

            model.eval()
            validate(model)
            for x, y in loader:          # still in eval mode
                ...

        After::

            model.eval()
            validate(model)
            model.train()
            for x, y in loader:
                ...
    """
    t = ctx.thresholds
    rec = ctx.recording
    steps = [s for s in rec.steps if s.forwards > 0]
    if not steps:
        ctx.skip("no training forward pass was observed")
    mode_modules = rec.modules_of_kind(MODE_DEPENDENT)
    eval_steps = [s for s in steps if not s.model_training]
    share = len(eval_steps) / len(steps)
    ctx.note(f"{len(eval_steps)} of {len(steps)} training steps ran with the model in eval mode")
    if eval_steps:
        serious = share >= t.eval_mode_step_fraction
        kinds = sorted({rec.module_types[n] for n in mode_modules})
        if serious and mode_modules:
            effect = (
                f" The model has {len(mode_modules)} mode-dependent module(s) ({', '.join(kinds)}): "
                "BatchNorm uses and never updates its running statistics, Dropout is off."
            )
            severity = Severity.WARNING
        elif serious:
            effect = (
                " The model has no BatchNorm/Dropout, so this has no effect yet, but adding one "
                "later will silently change training."
            )
            severity = Severity.INFO
        else:
            effect = (
                " As only some steps are affected, a forward pass with gradients on while the "
                "model was in eval mode (e.g. validation without torch.no_grad()) may have been "
                "counted as a training step."
            )
            severity = Severity.INFO
        ctx.finding(
            title="The model trains in eval() mode",
            message=(
                f"{len(eval_steps)} of {len(steps)} observed training steps ran with model.training "
                f"False (first at step {eval_steps[0].step}).{effect}"
            ),
            fix=(
                "Call model.train() before the training loop and after every validation pass; run "
                "validation under torch.no_grad()."
            ),
            severity=severity,
            where=Where(module="", step=eval_steps[0].step),
            evidence={
                "eval_steps": len(eval_steps),
                "steps": len(steps),
                "mode_dependent_modules": len(mode_modules),
            },
        )
    in_eval: dict[str, int] = {}
    for s in steps:
        if not s.model_training:
            continue
        for n in s.modules_in_eval:
            if rec.is_kind(n, MODE_DEPENDENT):
                in_eval.setdefault(n, s.step)
    if in_eval:
        names = list(in_eval)
        ctx.finding(
            title=f"{len(names)} BatchNorm/Dropout module(s) stay in eval() mode while the model trains",
            message=(
                f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''} "
                f"{'is' if len(names) == 1 else 'are'} in eval mode during training steps "
                f"(first at step {in_eval[names[0]]}): frozen BatchNorm statistics or disabled "
                "Dropout. Common and intended when fine-tuning with frozen BatchNorm."
            ),
            fix="If not intended, call model.train() after setting submodule modes, or drop the .eval() on them.",
            severity=Severity.INFO,
            where=Where(module=names[0], step=in_eval[names[0]]),
            evidence={"modules": names[:MAX_NAMES], "count": len(names)},
        )
