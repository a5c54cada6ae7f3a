"""The model's mode (reason 32): training steps taken with the model in ``eval()`` mode,
and dropout that stays on when the model is put in ``eval()`` mode."""

from __future__ import annotations

import os

import torch

from nndoctor.checks.lab import NO_POSITIONAL_CALL, same_noise
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.training.parameters import MAX_NAMES
from nndoctor.copying import set_training
from nndoctor.probes.layers import MODE_DEPENDENT
from nndoctor.probes.recording import Recording, module_of
from nndoctor.probes.trace import dropout_masks_recorded
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
        BatchNorm while fine-tuning, on purpose). Validation usually comes at the end
        of an epoch, past the observed steps: where the script calls ``.eval()`` and
        its first epoch ends within the search for a second phase, it is followed
        (unobserved) to the model's first training forward after its first forward
        with gradients off, and a warning is given when the model is still in eval
        mode there and has mode-dependent modules.

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
    mode_modules = modules_that_shape_training(rec, rec.modules_of_kind(MODE_DEPENDENT))
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
                " The model has no BatchNorm/Dropout among or after the layers that train (a "
                "frozen backbone's are meant to be in eval mode), so this has no effect yet, "
                "but adding one later will silently change training."
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
    _judge_mode_after_evaluation(ctx, len(mode_modules))
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


def modules_that_shape_training(rec: Recording, modules: list[str]) -> list[str]:
    """Of the mode-dependent ``modules``, those whose mode changes what the layers that train
    learn: the ones with trainable parameters, and the ones whose forward finishes after the
    first layer with a trainable parameter (or that no forward was seen of). A BatchNorm or
    Dropout inside a frozen backbone before every trainable layer only shapes the features
    a trained head reads; keeping it in eval() there is the linear-probe protocol."""
    trainable = {n for n in rec.param_names if rec.requires_grad.get(n, True)}
    if not trainable or len(trainable) == len(rec.param_names):
        return modules  # nothing frozen: no backbone whose features are read as they are
    order = rec.forward_order()
    owners = {module_of(n) for n in trainable}
    first = next((i for i, m in enumerate(order) if m in owners), None)
    if first is None:
        return modules
    position = {m: i for i, m in enumerate(order)}
    return [m for m in modules if m in owners or m not in position or position[m] > first]


def _judge_mode_after_evaluation(ctx: CheckContext, mode_modules: int) -> None:
    """The model's mode when training resumed after the first evaluation pass, where the
    script was followed that far."""
    after = ctx.recording.mode_after_evaluation
    if after is None:
        ended = ctx.recording.epoch_watch_end
        if ended:
            # Not seen is not judged: a slower run may end before the evaluation pass.
            ctx.note(
                f"{ctx.detail}; the script was followed past the observed steps toward the end "
                f"of its first epoch, with no training after an evaluation pass seen ({ended}): "
                "the mode after evaluation is not judged"
            )
        return
    if after.model_training:
        ctx.note(
            f"{ctx.detail}; after the first evaluation pass, training resumed in train mode "
            f"(step {after.step})"
        )
        return
    ctx.note(
        f"{ctx.detail}; after the first evaluation pass, training resumed in eval mode "
        f"(step {after.step})"
    )
    if not mode_modules:
        return  # eval() changes nothing in a model without BatchNorm or Dropout
    ctx.finding(
        title="Training resumes in eval() mode after the evaluation pass",
        message=(
            f"The script was followed past the observed steps to the end of its first epoch: "
            f"after the model's first evaluation pass (a forward with gradients off), its next "
            f"training forward, at step {after.step}, ran with model.training False. Every "
            f"later epoch trains in eval mode: its {mode_modules} BatchNorm/Dropout module(s) "
            "use frozen statistics and drop nothing."
        ),
        fix="Call model.train() at the start of every training epoch (after each validation pass).",
        where=Where(step=after.step),
        evidence={
            "step": after.step,
            "modules_in_eval": after.modules_in_eval[:MAX_NAMES],
            "mode_dependent_modules": mode_modules,
        },
    )


@register_check(
    id="dropout-in-eval-mode",
    reasons=(32,),
    severity="warning",
    kind="experiment",
    quick=True,
    priority=14,
    explains=frozenset({"loss-accuracy-disagree", "nothing-generalizes"}),
)
def dropout_in_eval_mode(ctx: CheckContext) -> None:
    """Dropout still drops units after ``model.eval()``.

    Why it matters:
        ``model.eval()`` switches dropout off only where it is an ``nn.Dropout`` module or
        a functional call told the mode. ``F.dropout(x, p)`` defaults to
        ``training=True``: it keeps dropping at evaluation, so validation and test
        predictions are noisy and worse than the model, and checkpoint or early-stopping
        choices made on them are partly chance.

    What is measured:
        One forward of a copy of the model in eval mode on a captured input, with every
        dropout mask drawn recorded (a Bernoulli draw or a dropout kernel asked to train),
        and the module and line that drew it. Any mask is a finding; sampling that is not
        dropping (a VAE's noise, a policy's samples) is not recorded.

    How to fix:
        Pass the module's mode, ``F.dropout(x, p, training=self.training)``, or use an
        ``nn.Dropout`` module, which follows ``model.train()`` / ``model.eval()``. If the
        dropout is meant at test time (Monte Carlo dropout), say so in a comment and
        ignore this.

    Example:
        Before::

            x = F.dropout(x, self.dropout)

        After::

            x = F.dropout(x, self.dropout, training=self.training)
    """
    lab = ctx.services
    if lab is None or not lab.has_model:
        ctx.skip("no model copy is available")
    calls = lab.model_inputs(1)
    if not calls:
        ctx.skip(NO_POSITIONAL_CALL)
    model = set_training(lab.fresh_model(), False)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad(), same_noise(device), dropout_masks_recorded(model) as masks:
            model(*calls[0])
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        ctx.skip(f"the copy in eval mode does not run on the captured input: {first}")
    ctx.note(f"{len(masks)} dropout mask(s) drawn in one forward in eval mode")
    if not masks:
        return
    first = masks[0]
    place = f"{os.path.basename(first.file)}:{first.line}" if first.file else "the model"
    code = f" (`{first.code}`)" if first.code else ""
    module = f" in module '{first.module}'" if first.module and first.module != "<root>" else ""
    ctx.finding(
        title="Dropout stays on in eval() mode",
        message=(
            f"With the model in eval mode one forward still drew {len(masks)} dropout mask(s), the "
            f"first at {place}{code}{module}: evaluation and test predictions are randomly "
            "degraded, and choices made on them (early stopping, the best checkpoint) partly chance."
        ),
        fix=(
            "Pass training=self.training to F.dropout (and its 2d/3d/alpha forms), or use an "
            "nn.Dropout module."
        ),
        where=Where(module=first.module, file=first.file, line=first.line),
        evidence={"masks": len(masks), "op": first.op},
    )


@register_check(
    id="evaluated-copy-stale",
    reasons=(32, 23, 21),
    severity="error",
    explains=frozenset({"loss-accuracy-disagree", "nothing-generalizes"}),
)
def evaluated_copy_stale(ctx: CheckContext) -> None:
    """The copy of the model that is evaluated (an EMA, an ``AveragedModel``) is not the
    model that trains: its BatchNorm statistics or its weights were never updated.

    Why it matters:
        Many scripts validate and keep an average of the weights rather than the model
        itself. An average updated over ``model.parameters()`` only leaves the copy's
        BatchNorm running means and variances at their initial 0 and 1, so in ``eval()``
        it normalises nothing and scores near chance while the model trains well; an
        average whose update is never called keeps the initial weights. Either way the
        numbers reported, and the checkpoint kept, are not the model's.

    What is measured:
        Modules the script calls with gradients off or in ``eval()`` mode that are of the
        model's own class with the same parameter names and shapes (copies), at their first
        such call: each BatchNorm layer in ``eval()`` mode whose ``num_batches_tracked`` is
        still 0 while the model's counterpart has tracked batches; and whether every
        parameter still equals the model's initial value while the model's own have moved.
        A copy called at half or more of the observed steps is a reference model used in
        training (DPO's, a frozen teacher), fixed by design, and is not judged. Evaluations
        at the end of the first epoch are seen where the script is followed past its
        observed steps (see ``train-in-eval-mode``).

    How to fix:
        Update the copy from the model's ``state_dict()`` (parameters and buffers), as
        timm's ``ModelEmaV2`` does, or copy the buffers after each update; for
        ``torch.optim.swa_utils.AveragedModel``, pass ``use_buffers=True`` or call
        ``update_bn`` before evaluating. Call the average's update after every optimizer
        step.

    Example:
        Before::

            for e, m in zip(ema.parameters(), model.parameters()):
                e.mul_(d).add_(m.detach(), alpha=1 - d)

        After::

            for e, m in zip(ema.state_dict().values(), model.state_dict().values()):
                if e.dtype.is_floating_point:
                    e.mul_(d).add_(m.detach(), alpha=1 - d)
                else:
                    e.copy_(m)
    """
    rec = ctx.recording
    copies = rec.evaluated_copies
    if not copies:
        ctx.skip("no copy of the model was evaluated while observed")
    steps = max(len(rec.steps), 1)
    judged = []
    for copy in copies:
        if 2 * len(copy.steps_called) >= steps and len(copy.steps_called) > 1:
            ctx.note(
                f"{copy.network} copy called at {len(copy.steps_called)} of {steps} steps: a "
                "reference model used in training, not judged"
            )
            continue
        judged.append(copy)
        # A copy never updated has never tracked a batch either: that is the cause.
        if copy.at_initial_weights and copy.model_changed:
            ctx.finding(
                title="The evaluated copy still holds the model's initial weights",
                message=(
                    f"A copy of the model ({copy.network}) evaluated at step {copy.step} has every "
                    "parameter equal to the model's initial value, while the model's own have "
                    "trained: the copy (an average, a best checkpoint) is never updated, and what "
                    "is evaluated and kept is the untrained model."
                ),
                fix=(
                    "Call the average's update (ema.update_parameters(model), ema.update(model)) "
                    "after every optimizer step, or copy the model's state_dict into the copy."
                ),
                severity=Severity.ERROR,
                reasons=(23, 21),
                where=Where(step=copy.step),
                evidence={"network": copy.network, "step": copy.step},
            )
        elif copy.batch_norms_untracked:
            names = copy.batch_norms_untracked
            ctx.finding(
                title="The evaluated copy's BatchNorm statistics were never updated",
                message=(
                    f"A copy of the model ({copy.network}) was evaluated at step {copy.step} in "
                    f"eval() mode with {len(names)} of its {copy.batch_norms} BatchNorm layers "
                    "still at their initial running statistics (no batch ever tracked), while the "
                    "model's had tracked batches: it normalises with mean 0 and variance 1, so its "
                    "scores (and the checkpoint kept from them) are not the model's. An average "
                    "updated over parameters() leaves the buffers behind."
                ),
                fix=(
                    "Update the copy from model.state_dict() (buffers included), or pass "
                    "use_buffers=True to AveragedModel / call update_bn before evaluating."
                ),
                severity=Severity.ERROR,
                reasons=(32,),
                where=Where(step=copy.step, module=names[0]),
                evidence={
                    "network": copy.network,
                    "step": copy.step,
                    "batch_norms": copy.batch_norms,
                    "untracked": names[:MAX_NAMES],
                },
            )
    if judged and not ctx.findings:
        ctx.note(
            f"{len(judged)} evaluated copy/copies of the model: BatchNorm statistics tracked and "
            "weights moved from the initial ones"
        )
