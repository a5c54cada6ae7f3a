"""Checks: parameters that do not train, gradients that accumulate, and the model's mode.

Reason 23 (frozen layers or variables): parameters left out of the optimizer,
parameters that never get a gradient, parameters that never change, and
``requires_grad=False`` on parameters that look meant to train. Reasons 26/36:
``zero_grad()`` never called, so gradients pile up across steps. Reason 32:
training steps taken with the model in ``eval()`` mode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.training.default_init import at_default_init
from nndoctor.probes.layers import MODE_DEPENDENT, NORM
from nndoctor.probes.recording import Recording, StepRecord, module_of
from nndoctor.report.model import Severity, Where

# More module groups than this are reported as one finding naming them all.
MAX_MODULE_FINDINGS = 5
# Names listed in a finding's evidence, at most.
MAX_NAMES = 24

ONE_OPTIMIZER_NOTE = (
    "nndoctor follows the one optimizer that steps this model; if a second optimizer "
    "updates these parameters, this finding does not apply."
)


# -- helpers -------------------------------------------------------------------------------


def _common_module(names: Sequence[str]) -> str:
    """The deepest module that contains every parameter in ``names``."""
    parts = [module_of(n).split(".") if module_of(n) else [] for n in names]
    common: list[str] = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def group_by_module(names: Sequence[str]) -> list[tuple[str, list[str]]]:
    """[(module, its parameters)] in order; merged into one group (the common parent
    module) when there are more than ``MAX_MODULE_FINDINGS`` modules."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(module_of(n), []).append(n)
    if len(groups) > MAX_MODULE_FINDINGS:
        return [(_common_module(names), list(names))]
    return list(groups.items())


def _label(module: str) -> str:
    return module if module else "<root>"


def _numel(rec: Recording, names: Sequence[str]) -> int:
    return sum(math.prod(rec.param_shapes.get(n, ())) for n in names)


def _names_evidence(names: Sequence[str]) -> list[str]:
    return list(names[:MAX_NAMES]) + (
        [f"... {len(names) - MAX_NAMES} more"] if len(names) > MAX_NAMES else []
    )


def _grad_steps(rec: Recording) -> list[StepRecord]:
    """Steps at which the optimizer step saw the gradients."""
    return [s for s in rec.steps if s.hyperparameters or s.grad_norms]


def _lr_of(ctx: CheckContext, names: Sequence[str]) -> list[float]:
    """Learning rates of the groups holding ``names`` (all recorded groups when unknown)."""
    spec = ctx.subject.optimizer if ctx.subject is not None else None
    lrs: list[float] = []
    rec = ctx.recording
    steps = _grad_steps(rec)
    groups = {rec.param_groups[n] for n in names if n in rec.param_groups}
    if groups and steps:
        for i in sorted(groups):
            if i < len(steps[0].hyperparameters):
                lr = steps[0].hyperparameters[i].get("lr")
                if isinstance(lr, (int, float)) and not isinstance(lr, bool):
                    lrs.append(float(lr))
        if lrs:
            return lrs
    if spec is not None and spec.groups:
        for g in spec.groups:
            if set(names) & set(g.get("param_names", ())) and isinstance(g.get("lr"), (int, float)):
                lrs.append(float(g["lr"]))
        if lrs:
            return lrs
    steps = _grad_steps(ctx.recording)
    if steps:
        for g in steps[0].hyperparameters:
            lr = g.get("lr")
            if isinstance(lr, (int, float)) and not isinstance(lr, bool):
                lrs.append(float(lr))
    return lrs


# -- not in the optimizer (23) -----------------------------------------------------------------


@register_check(
    id="params-not-in-optimizer",
    reasons=(23,),
    severity="error",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def params_not_in_optimizer(ctx: CheckContext) -> None:
    """Trainable parameters that no optimizer param group holds.

    Why it matters:
        ``optimizer.step()`` updates only the parameters it was given. A parameter
        with ``requires_grad=True`` that is missing from every param group gets a
        gradient at every step and never moves: that part of the model stays at
        its random initialisation. It happens when layers are added after the
        optimizer was built, when parameter groups are listed by hand, or when a
        submodule is kept in a plain Python list instead of ``nn.ModuleList``.

    What is measured:
        The model's parameters with ``requires_grad=True`` against the parameters
        of the optimizer that steps the model. An error when a missing parameter
        receives a gradient (it is part of the loss: it was meant to train); a
        warning when it also gets no gradient (an unused part that would not train
        anyway).

    How to fix:
        Build the optimizer after the model is complete, from ``model.parameters()``,
        or add the missing ones with ``optimizer.add_param_group({"params": ...})``.
        Parameters meant to stay fixed: ``requires_grad_(False)`` or a buffer.

    Example:
        Before::

            optimizer = torch.optim.Adam(model.backbone.parameters(), lr=1e-3)
            # model.head is never updated

        After::

            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """
    rec = ctx.recording
    if rec.optimizer_class is None or not rec.in_optimizer:
        ctx.skip("no optimizer stepping the model's parameters was observed")
    missing = [
        n
        for n in rec.param_names
        if rec.requires_grad.get(n, True)
        and n not in rec.in_optimizer
        and n not in rec.other_optimizer_params
    ]
    ctx.note(f"{len(rec.in_optimizer)} of {len(rec.param_names)} parameters are in the optimizer")
    steps = _grad_steps(rec)
    for module, names in group_by_module(missing):
        grads = {n: max((s.grad_norms.get(n, 0.0) for s in steps), default=0.0) for n in names}
        with_grad = [n for n, g in grads.items() if g > 0]
        ctx.finding(
            title=f"Parameters of {_label(module)} are not in the optimizer",
            message=(
                f"{len(names)} parameter(s) of {_label(module)} ({_numel(rec, names)} values) "
                f"require grad but are in no param group of the {rec.optimizer_class} optimizer, "
                "so optimizer.step() never updates them"
                + (
                    f"; {len(with_grad)} of them receive a gradient at every step that is thrown away."
                    if with_grad
                    else "; they get no gradient either (an unused part of the model)."
                )
                + f" {ONE_OPTIMIZER_NOTE}"
            ),
            fix=(
                "Build the optimizer after the model is complete, from model.parameters(), or add "
                "them with optimizer.add_param_group({'params': ...}); mark parameters meant to "
                "stay fixed with requires_grad_(False)."
            ),
            severity=None if with_grad else Severity.WARNING,
            where=Where(module=module),
            evidence={
                "parameters": _names_evidence(names),
                "count": len(names),
                "numel": _numel(rec, names),
                "with_gradient": len(with_grad),
            },
        )


# -- no gradient (23) -----------------------------------------------------------------------------


@register_check(
    id="params-without-grad",
    reasons=(23,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def params_without_grad(ctx: CheckContext) -> None:
    """Parameters in the optimizer that never receive a gradient.

    Why it matters:
        A parameter whose gradient is missing (``None``) or exactly zero at every
        step cannot learn, however long you train. Missing gradients mean the
        parameter is not on the path from the loss back to the inputs: an unused
        layer or head, a ``.detach()``, ``.data``, ``.item()``/numpy round trip or
        ``torch.no_grad()`` inside the forward pass, or an output that the loss
        never reads. A gradient of exactly zero usually means the units feeding
        it are dead (ReLU) or multiplied by zero.

    What is measured:
        For every parameter in the optimizer with ``requires_grad=True``, its
        gradient norm when each observed ``optimizer.step()`` ran. An error when
        the layer's own forward ran with autograd on but its parameters got no
        gradient (its output is detached from the loss); a warning when the
        module never ran in a training forward pass (unused) or when its gradient
        is exactly zero.

    How to fix:
        Remove unused layers (or include their output in the loss); remove the
        ``.detach()``/``.data``/``no_grad`` that cuts the graph; for zero
        gradients, look at dead ReLUs or masks before the layer.

    Example:
        Before::

            def forward(self, x):
                feats = self.backbone(x).detach()   # backbone never learns
                return self.head(feats)

        After::

            def forward(self, x):
                return self.head(self.backbone(x))
    """
    rec = ctx.recording
    steps = _grad_steps(rec)
    if not steps:
        ctx.skip("no optimizer step was observed")
    trained = [
        n for n in rec.param_names if n in rec.in_optimizer and rec.requires_grad.get(n, True)
    ]
    never = [n for n in trained if all(n not in s.grad_norms for s in steps)]
    zero = [
        n for n in trained if n not in never and all(s.grad_norms.get(n, 0.0) == 0.0 for s in steps)
    ]
    ctx.note(f"{len(trained)} optimised parameters checked over {len(steps)} step(s)")
    ran = {name for s in rec.steps for name in s.activations}
    parents = {module_of(m) for m in rec.module_types if m}
    for module, names in group_by_module(never):
        detached = module in ran and module not in parents
        ctx.finding(
            title=f"Parameters of {_label(module)} never receive a gradient",
            message=(
                f"{len(names)} parameter(s) of {_label(module)} ({_numel(rec, names)} values) had "
                f"no gradient (grad is None) at all {len(steps)} observed steps, so they never "
                "learn. "
                + (
                    f"{_label(module)} did run in the training forward pass: its output does not "
                    "reach the loss with a gradient (a .detach(), .data, no_grad or a value the loss "
                    "never reads)."
                    if detached
                    else f"{_label(module)} never ran in a training forward pass with autograd on "
                    "(an unused layer or head, or run under torch.no_grad())."
                )
            ),
            fix=(
                "Remove the detach/.data/no_grad that cuts the graph"
                if detached
                else "Use the layer's output in the loss or remove the layer"
            )
            + "; parameters meant to stay fixed should not be in the optimizer.",
            severity=Severity.ERROR if detached else None,
            where=Where(module=module, step=steps[0].step),
            evidence={
                "parameters": _names_evidence(names),
                "count": len(names),
                "numel": _numel(rec, names),
                "steps": len(steps),
                "module_ran": module in ran,
            },
        )
    for module, names in group_by_module(zero):
        ctx.finding(
            title=f"Gradients of {_label(module)} are exactly zero",
            message=(
                f"{len(names)} parameter(s) of {_label(module)} had a gradient of norm exactly 0 at "
                f"all {len(steps)} observed steps: the units feeding them are dead (ReLU) or "
                "masked/multiplied by zero."
            ),
            fix=(
                "Look at the layer's input: dead ReLUs (see dead-relus), a mask or a factor of zero "
                "before it; fix the initialisation or the masking."
            ),
            where=Where(module=module, step=steps[0].step),
            evidence={
                "parameters": _names_evidence(names),
                "count": len(names),
                "steps": len(steps),
            },
        )


# -- never changing (23) ------------------------------------------------------------------------


@register_check(
    id="params-not-changing", reasons=(23,), severity="error", explains=causes.FIT_SYMPTOMS
)
def params_not_changing(ctx: CheckContext) -> None:
    """Parameters that receive a gradient but never change.

    Why it matters:
        A parameter can be in the optimizer and get a gradient yet never move:
        the learning rate of its group is zero (a typo, a scheduler that
        starts at zero and stays there, a param group built with ``lr=0``), or
        the step is masked. The model then does not train at all, silently.

    What is measured:
        For every parameter in the optimizer, the norm of its change across each
        observed ``optimizer.step()``; flagged when it never exceeds
        ``unchanged_update_norm`` (0) although its gradient was non-zero at some
        step. The learning rates of the groups holding it are shown.

    How to fix:
        Give the group a positive learning rate; check the scheduler's first
        values (``scheduler.get_last_lr()``); a warm-up that starts at exactly 0
        must rise after the first step.

    Example:
        Before::

            optimizer = torch.optim.SGD(model.parameters(), lr=0.0)

        After::

            optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    """
    t = ctx.thresholds
    rec = ctx.recording
    stepped = [s for s in rec.steps if s.update_norms]
    if not stepped:
        ctx.skip("no optimizer step with a measured update was observed")
    stuck = []
    for n in rec.param_names:
        updates = [s.update_norms[n] for s in stepped if n in s.update_norms]
        grads = [s.grad_norms.get(n, 0.0) for s in stepped]
        if (
            updates
            and all(u <= t.unchanged_update_norm for u in updates)
            and any(g > 0 for g in grads)
        ):
            stuck.append(n)
    ctx.note(f"updates of {len(rec.in_optimizer)} parameters over {len(stepped)} step(s)")
    for module, names in group_by_module(stuck):
        lrs = _lr_of(ctx, names)
        lr_text = (
            f" The learning rate of their param group(s): {', '.join(f'{x:g}' for x in lrs)}."
            if lrs
            else ""
        )
        ctx.finding(
            title=f"Parameters of {_label(module)} never change",
            message=(
                f"{len(names)} parameter(s) of {_label(module)} received non-zero gradients but "
                f"their update was exactly zero at all {len(stepped)} observed steps.{lr_text}"
            ),
            fix=(
                "Set a positive learning rate for their param group and check that the scheduler "
                "does not hold it at 0 (scheduler.get_last_lr())."
            ),
            where=Where(module=module, step=stepped[0].step),
            evidence={
                "parameters": _names_evidence(names),
                "count": len(names),
                "steps": len(stepped),
                "lr": lrs,
            },
        )


# -- requires_grad=False on trainable-looking parameters (23) ---------------------------------------


@register_check(
    id="params-frozen",
    reasons=(23,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS | frozenset({"params-without-grad"}),
)
def params_frozen(ctx: CheckContext) -> None:
    """Parameters with ``requires_grad=False`` that look meant to train.

    Why it matters:
        Freezing is how fine-tuning keeps a pretrained backbone fixed, but a stray
        ``requires_grad=False`` (left over from an earlier experiment, copied from
        a fine-tuning recipe, set on the wrong module) silently stops part of the
        model from learning. Frozen parameters sitting in the optimizer, or a
        layer whose weight is frozen while its bias trains, are signs it was not
        meant.

    What is measured:
        Every parameter with ``requires_grad=False``, grouped by the module that
        owns it. A warning for a module with frozen and trainable parameters
        mixed (weight frozen, bias trains), and for whole frozen modules that are
        in the optimizer but are neither a leading block (the backbone before the
        trainable head, in registration order) nor normalisation layers. An info
        note for the rest: whole blocks frozen and left out of the optimizer, the
        usual fine-tuning setup — unless the frozen layers still hold the random values
        their constructors drew (a Kolmogorov–Smirnov test against PyTorch's default
        initialisation at level ``default_init_alpha``): freezing random weights is never
        what anyone meant, so that is a warning.

    How to fix:
        Load the pretrained weights before freezing them. Set ``requires_grad_(True)`` on
        parameters that should train; when
        freezing on purpose, freeze whole modules and give the optimizer only the
        trainable parameters: ``(p for p in model.parameters() if p.requires_grad)``.

    Example:
        Before::

            model[2].weight.requires_grad_(False)    # left from a debugging session
            optimizer = torch.optim.Adam(model.parameters())

        After::

            optimizer = torch.optim.Adam(model.parameters())
    """
    rec = ctx.recording
    names = rec.param_names
    frozen = [n for n in names if not rec.requires_grad.get(n, True)]
    ctx.note(f"{len(frozen)} of {len(names)} parameters have requires_grad=False")
    if not frozen:
        return
    trainable = [n for n in names if rec.requires_grad.get(n, True)]
    index = {n: i for i, n in enumerate(names)}
    leading = bool(trainable) and max(index[n] for n in frozen) < min(index[n] for n in trainable)
    by_module: dict[str, list[str]] = {}
    for n in names:
        by_module.setdefault(module_of(n), []).append(n)
    mixed: list[str] = []
    suspicious: list[str] = []
    intended: list[str] = []
    for module, params in by_module.items():
        cold = [p for p in params if p in frozen]
        if not cold:
            continue
        if len(cold) < len(params):
            mixed.append(module)
        elif (
            any(p in rec.in_optimizer for p in cold)
            and not leading
            and not rec.is_kind(module, NORM)
        ):
            suspicious.extend(cold)
        else:
            intended.extend(cold)
    for module in mixed:
        params = by_module[module]
        cold = [p for p in params if p in frozen]
        warm = [p for p in params if p not in frozen]
        ctx.finding(
            title=f"{_label(module)} is partly frozen",
            message=(
                f"In {_label(module)} ({rec.module_types.get(module, '?')}), "
                f"{', '.join(p.rsplit('.', 1)[-1] for p in cold)} "
                f"{'has' if len(cold) == 1 else 'have'} requires_grad=False while "
                f"{', '.join(p.rsplit('.', 1)[-1] for p in warm)} "
                f"{'trains' if len(warm) == 1 else 'train'}: a layer is rarely meant to be half "
                "frozen, so the frozen part is probably a leftover."
            ),
            fix=(
                f"Call {_label(module)}.requires_grad_(True) (or freeze the whole module on purpose and "
                "leave it out of the optimizer)."
            ),
            where=Where(module=module),
            evidence={
                "frozen": cold,
                "trainable": warm,
                "frozen_in_optimizer": [p for p in cold if p in rec.in_optimizer],
            },
        )
    for module, group in group_by_module(suspicious):
        ctx.finding(
            title=f"Frozen parameters of {_label(module)} are in the optimizer",
            message=(
                f"{len(group)} parameter(s) of {_label(module)} ({_numel(rec, group)} values) have "
                "requires_grad=False but were given to the optimizer, and they are not a leading "
                "block frozen for fine-tuning: they were probably meant to train."
            ),
            fix=(
                f"Call {_label(module)}.requires_grad_(True); if freezing is intended, pass only "
                "trainable parameters to the optimizer: (p for p in model.parameters() if p.requires_grad)."
            ),
            where=Where(module=module),
            evidence={
                "parameters": _names_evidence(group),
                "count": len(group),
                "numel": _numel(rec, group),
            },
        )
    random = _frozen_at_random_init(ctx, intended)
    if random:
        modules = sorted({module_of(n) for n in random})
        ctx.finding(
            title=f"{_label(_common_module(random))} is frozen at its random initialisation",
            message=(
                f"{len(random)} frozen parameter(s) ({_numel(rec, random)} values) in {len(modules)} layer(s) "
                f"({', '.join(_label(m) for m in modules[:4])}{', ...' if len(modules) > 4 else ''}) hold the "
                "values their constructor drew: a Kolmogorov-Smirnov test cannot tell them from PyTorch's "
                f"default initialisation (at level {ctx.thresholds.default_init_alpha:g}). Frozen random "
                "weights never learn: nothing was loaded into them before they were frozen."
            ),
            fix=(
                "Load the pretrained weights before freezing (model.backbone.load_state_dict(...)), or let "
                "these layers train: requires_grad_(True) and give them to the optimizer."
            ),
            where=Where(module=_common_module(random)),
            evidence={
                "parameters": _names_evidence(random),
                "count": len(random),
                "numel": _numel(rec, random),
                "alpha": ctx.thresholds.default_init_alpha,
            },
        )
        intended = [n for n in intended if n not in set(random)]
    if intended:
        modules = sorted({module_of(n) for n in intended})
        in_opt = [n for n in intended if n in rec.in_optimizer]
        ctx.finding(
            title=f"{len(intended)} parameter(s) are frozen",
            message=(
                f"{len(intended)} parameter(s) ({_numel(rec, intended)} values) in "
                f"{len(modules)} module(s) have requires_grad=False"
                + (
                    f", {_label(_common_module(intended))} and below"
                    if len(modules) > 1
                    else f": {_label(modules[0])}"
                )
                + ". Whole frozen blocks look like an intended fine-tuning setup."
                + (
                    f" {len(in_opt)} of them are in the optimizer, where they only cost memory."
                    if in_opt
                    else ""
                )
            ),
            fix="Nothing to do if freezing is intended; otherwise call requires_grad_(True) on them.",
            severity=Severity.INFO,
            where=Where(module=_common_module(intended)),
            evidence={
                "parameters": _names_evidence(intended),
                "count": len(intended),
                "numel": _numel(rec, intended),
                "in_optimizer": len(in_opt),
            },
        )


def _frozen_at_random_init(ctx: CheckContext, frozen: list[str]) -> list[str]:
    """The frozen parameters whose layers all still hold their constructor's random draw
    (empty unless every frozen layer with a known default initialisation does)."""
    lab = ctx.services
    if lab is None or not frozen or not getattr(lab, "has_model", False):
        return []
    modules = dict(lab.fresh_model().named_modules())
    verdicts = {
        m: at_default_init(modules[m], ctx.thresholds.default_init_alpha)
        for m in {module_of(n) for n in frozen}
        if m in modules
    }
    known = {m: v for m, v in verdicts.items() if v is not None}
    if not known or not all(known.values()):
        return []
    return [n for n in frozen if module_of(n) in known]


# -- zero_grad never called (26, 36) ----------------------------------------------------------------


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


# -- training in eval mode (32) --------------------------------------------------------------------


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
