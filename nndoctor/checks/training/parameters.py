"""Parameters that do not train (reason 23): left out of the optimizer, never given a
gradient, or never changing. ``requires_grad=False`` on parameters that look meant to
train is in :mod:`nndoctor.checks.training.frozen`, which shares the helpers here.
"""

from __future__ import annotations

import inspect
import itertools
import math
import re
from collections.abc import Sequence
from typing import Any

import torch

from nndoctor.checks import causes
from nndoctor.checks.lab import same_noise
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import neighbours_closer_p
from nndoctor.copying import set_training
from nndoctor.probes.internals import attributes_reading, outputs_reading, plain_tensor_attributes
from nndoctor.probes.recording import Recording, StepRecord, module_of
from nndoctor.report.model import HARMLESS, Severity, Where

# More module groups than this are reported as one finding naming them all.
MAX_MODULE_FINDINGS = 5
# Names listed in a finding's evidence, at most.
MAX_NAMES = 24

ONE_OPTIMIZER_NOTE = (
    "nndoctor follows the one optimizer that steps this model; if a second optimizer "
    "updates these parameters, this finding does not apply."
)


# -- helpers -------------------------------------------------------------------------------


def common_module(names: Sequence[str]) -> str:
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
        return [(common_module(names), list(names))]
    return list(groups.items())


def module_label(module: str) -> str:
    """A module's name for a message (the root module has none)."""
    return module if module else "<root>"


def numel_of(rec: Recording, names: Sequence[str]) -> int:
    """How many values the parameters ``names`` hold together."""
    return sum(math.prod(rec.param_shapes.get(n, ())) for n in names)


def names_evidence(names: Sequence[str]) -> list[str]:
    """``names`` for a finding's evidence, at most ``MAX_NAMES`` of them."""
    return list(names[:MAX_NAMES]) + (
        [f"... {len(names) - MAX_NAMES} more"] if len(names) > MAX_NAMES else []
    )


def _grad_steps(rec: Recording) -> list[StepRecord]:
    """Steps at which the optimizer step saw the gradients."""
    return [s for s in rec.steps if s.hyperparameters or s.grad_norms]


# The spacing of float32 values relative to their size: a step smaller than half of it
# leaves a weight exactly as it was.
FLOAT32_SPACING = 2.0**-23


def _rounded_away(ctx: CheckContext, name: str, steps: Sequence[StepRecord]) -> bool:
    """Whether a parameter's steps are too small to survive float32 rounding at a learning
    rate above zero: the largest step its gradients allow (the rate times the gradient's
    norm, times ``1 / (1 - momentum)`` for momentum's accumulation) is below half the spacing
    of float32 values at the parameter's own scale (its norm over its size's square root,
    which even its smallest element's spacing exceeds less often than not). Gradients that
    small are rounding noise themselves: a bias that a normalisation right after it cancels
    gets about 1e-8. A rate of zero, the bug the check is for, is never this."""
    lrs = _lr_of(ctx, [name])
    if not lrs or min(lrs) <= 0:
        return False
    lr = max(lrs)
    momentum = 0.0
    for s in steps:
        for group in s.hyperparameters:
            m = group.get("momentum")
            if isinstance(m, (int, float)) and not isinstance(m, bool) and 0 <= m < 1:
                momentum = max(momentum, float(m))
    numel = numel_of(ctx.recording, [name])
    for s in steps:
        grad, weight = s.grad_norms.get(name, 0.0), s.weight_norms.get(name, math.nan)
        if not (math.isfinite(weight) and weight > 0):
            return False
        step = lr * grad / (1 - momentum)
        scale = weight / math.sqrt(numel) if numel else weight
        if step >= 0.5 * FLOAT32_SPACING * scale:
            return False
    return True


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
    # Parameters that do not learn make a model learn less, never its steps large.
    explains=causes.FIT_SYMPTOMS | (causes.INSTABILITY_SYMPTOMS - causes.DIVERGENCE_SYMPTOMS),
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
        anyway). Parameters outside the optimizer whose values change between observed
        steps all the same are left out: the script updates them itself (BYOL's EMA target
        network with ``requires_grad`` left on, a momentum encoder). Also a network the
        script calls before the one it trains (an encoder,
        a feature extractor) that no optimizer holds: nndoctor then observes the network
        the optimizer steps, and reports the other when its parameters receive gradients
        (an error; a warning when weights were loaded, as for a frozen pretrained network
        that only wastes its backward pass). And a network the script trains beside the
        model (a GAN's generator, a decoder) whose parameters hold gradients at an optimizer
        step while no optimizer alive then holds any of them and, by the end of the
        observation, nothing has changed them (no exponential moving average, no update by
        hand): an error, as its gradients are computed and never used (an info when it
        loaded weights: a frozen pretrained network whose ``requires_grad`` was left on).
        The same when optimizers do hold them but none of those stepped in the ten or more
        optimizer steps (``UNUSED_STEPS``) of other networks that followed their first
        gradients (another network's ``step()`` where its own was meant): a generator stepped
        once per five critic steps steps well within them. Without an optimizer (an update
        by hand), the parameters the update never changes although they receive a gradient,
        or although the loss reaches them and the script's ``torch.autograd.grad`` call,
        which takes the gradients for its update, leaves them out.

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
    manual = rec.step_source == "manual"
    if not manual and (rec.optimizer_class is None or not rec.in_optimizer):
        ctx.skip("no optimizer stepping the model's parameters was observed")
    _report_module_set_aside(ctx, rec)
    _report_unheld_networks(ctx, rec)
    # Updated by hand: the parameters the script's own rule changed at some step.
    updated = rec.in_optimizer | (
        {n for s in rec.steps for n, u in s.update_norms.items() if u > 0} if manual else set()
    )
    missing = [
        n
        for n in rec.param_names
        if rec.requires_grad.get(n, True)
        and n not in updated
        and n not in rec.other_optimizer_params
    ]
    if manual:
        _report_not_updated_by_hand(ctx, rec, missing, updated)
        return
    ctx.note(f"{len(rec.in_optimizer)} of {len(rec.param_names)} parameters are in the optimizer")
    maintained = changed_between_steps(rec, missing)
    if maintained:
        ctx.note(
            f"{ctx.detail}; {len(maintained)} of those outside it "
            f"({module_label(common_module(maintained))} and below) change between steps all "
            "the same: the script updates them itself (an EMA target network, a momentum "
            "encoder), so no optimizer is meant to hold them"
        )
        missing = [n for n in missing if n not in set(maintained)]
    steps = _grad_steps(rec)
    for module, names in group_by_module(missing):
        grads = {n: max((s.grad_norms.get(n, 0.0) for s in steps), default=0.0) for n in names}
        with_grad = [n for n, g in grads.items() if g > 0]
        ctx.finding(
            title=f"Parameters of {module_label(module)} are not in the optimizer",
            message=(
                f"{len(names)} parameter(s) of {module_label(module)} ({numel_of(rec, names)} values) "
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
                "parameters": names_evidence(names),
                "count": len(names),
                "numel": numel_of(rec, names),
                "with_gradient": len(with_grad),
            },
        )


@register_check(
    id="weights-not-registered",
    reasons=(23,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS,
)
def weights_not_registered(ctx: CheckContext) -> None:
    """A random tensor the forward pass reads is a plain attribute, not an ``nn.Parameter``.

    Why it matters:
        ``self.w = torch.randn(...)`` (or ``scale * torch.rand(...)`` where
        ``nn.Parameter(...)`` was meant) stores a tensor the module does not register:
        ``model.parameters()`` leaves it out, so no optimizer ever updates it, and
        ``state_dict()`` and ``.to(device)`` leave it out too. The layer computes with
        weights frozen at their random draw, and nothing in the training loop says so.

    What is measured:
        On a copy of the model at its initial weights, every tensor a submodule holds in
        its ``__dict__`` (neither a parameter nor a buffer) that is a float or complex
        tensor of two axes or more and at least ``unregistered_min_elements`` values, with
        ``requires_grad=False``, whose values are not arranged by a formula (a sin-cos or
        causal-mask table is: :func:`neighbours_closer_p` at ``fixed_table_alpha``). One
        warning names every such tensor the model's output reads: changed on the copy
        (``2 t + 1``, the same random draws), it changes the output.

    How to fix:
        Wrap the tensor in ``nn.Parameter(...)`` so that it is registered and trained; if it
        is meant to stay fixed (random features), register it as a buffer:
        ``self.register_buffer("w", torch.randn(...))``.

    Example:
        Before::

            self.weights = scale * torch.rand(in_ch, out_ch, modes, dtype=torch.cfloat)

        After::

            self.weights = nn.Parameter(scale * torch.rand(in_ch, out_ch, modes, dtype=torch.cfloat))
    """
    lab = ctx.services
    copy = lab.eval_copy() if lab is not None else None
    if copy is None:
        ctx.skip("no copy of the model and no captured model input to run it on")
    model, run = copy
    t = ctx.thresholds
    plain = plain_tensor_attributes(model)
    drawn = {
        name: value
        for name, value in plain.items()
        if (value.is_floating_point() or value.is_complex())
        and value.dim() >= 2
        and value.numel() >= t.unregistered_min_elements
        and not value.requires_grad
        and neighbours_closer_p(_real_view(value)) > t.fixed_table_alpha
    }
    ctx.note(
        f"{len(plain)} plain tensor attribute(s) in the model's modules, {len(drawn)} of them "
        "random draws of weight shape"
    )
    if not drawn:
        return
    try:
        read = attributes_reading(model, run, set(drawn), repeat=lambda: same_noise(lab.device))
    except Exception as exc:  # noqa: BLE001 - a copy that will not run is no finding
        ctx.skip(f"the model copy did not run with its attributes changed: {exc}")
    unregistered = [n for n, reads in sorted(read.items()) if reads]
    if not unregistered:
        return
    first = drawn[unregistered[0]]
    listed = ", ".join(f"{n} {tuple(drawn[n].shape)}" for n in unregistered[:4])
    more = f" and {len(unregistered) - 4} more" if len(unregistered) > 4 else ""
    ctx.finding(
        title=(
            f"{unregistered[0]} is a plain tensor, not a parameter: it never trains"
            if len(unregistered) == 1
            else f"{len(unregistered)} weight tensors are plain tensors, not parameters: they never train"
        ),
        message=(
            f"{listed}{more} ({str(first.dtype).replace('torch.', '')}) "
            f"{'is' if len(unregistered) == 1 else 'are'} held as plain attributes of their "
            "modules, neither nn.Parameter nor buffer. Their values are a random draw and the "
            "model's output reads them (changed on a copy, the output changes), but "
            "model.parameters() leaves them out: no optimizer updates them, and state_dict() "
            "and .to(device) miss them too."
        ),
        fix=(
            "Wrap each in nn.Parameter(...) to train it; if it is meant to stay fixed (random "
            "features), register it as a buffer: self.register_buffer(name, tensor)."
        ),
        where=Where(module=unregistered[0].rpartition(".")[0] or None),
        evidence={
            "attributes": unregistered,
            "shapes": [list(drawn[n].shape) for n in unregistered],
            "numel": sum(drawn[n].numel() for n in unregistered),
        },
    )


def _real_view(value: torch.Tensor) -> torch.Tensor:
    """A complex tensor as its real and imaginary parts on a last axis; others unchanged."""
    return torch.view_as_real(value) if value.is_complex() else value


def _report_module_set_aside(ctx: CheckContext, rec: Recording) -> None:
    """The module the script called first, which no optimizer holds, while the observed
    model (the one the optimizer trains) was followed instead; reported when it received
    gradients, which were computed for nothing."""
    aside = rec.unstepped
    if aside is None or aside.holders or not aside.with_grad:
        return
    loaded = bool(rec.weights_loaded)
    ctx.finding(
        title=f"{aside.module} receives gradients but no optimizer holds its parameters",
        message=(
            f"{aside.describe()}. Its gradients are computed at every step and thrown away, "
            f"and it stays at its {'loaded' if loaded else 'random initial'} weights. nndoctor "
            f"observed {aside.trained}, the network the optimizer trains."
        ),
        fix=(
            f"If {aside.module} should train, give its parameters to an optimizer (one optimizer "
            "over both networks, or a param group each). If it is meant to stay fixed, call its "
            "requires_grad_(False) or run it under torch.no_grad()."
        ),
        # Frozen random weights are never what anyone meant; loaded ones may be a frozen
        # pretrained network that only wastes its backward pass.
        severity=Severity.WARNING if loaded else None,
        where=Where(module=aside.module),
        evidence={
            "module": aside.module,
            "parameters": aside.parameters,
            "with_gradient": aside.with_grad,
            "optimizer": aside.stepped,
            "observed_instead": aside.trained,
            "weights_loaded": loaded,
        },
    )


def _report_unheld_networks(ctx: CheckContext, rec: Recording) -> None:
    """Networks beside the model whose gradients no optimizer uses (see the manual)."""
    for net in rec.unheld_networks:
        weights = "loaded" if net.loaded else "random initial"
        if net.holders:
            title = f"{net.module}'s optimizer never steps"
            unused = (
                f"the {' and '.join(net.holders)} optimizer holding them never stepped in the "
                f"{net.steps_without} optimizer steps that followed, of other networks"
            )
            cause = "A common cause is another network's optimizer.step() where its own was meant."
        else:
            title = f"{net.module} receives gradients but no optimizer holds its parameters"
            unused = "no optimizer holds any of them"
            cause = (
                "A common cause is an optimizer built over another network's parameters (the "
                "discriminator's instead of the generator's)."
            )
        ctx.finding(
            title=title,
            message=(
                f"{net.module} is trained in the script's forward passes beside the observed "
                f"model and {net.with_grad} of its {net.parameters} trainable parameter "
                f"tensor(s) hold gradients at an optimizer step, but {unused}, and nothing "
                f"changed them while observed: it stays at its {weights} weights. {cause}"
            ),
            fix=(
                f"Step {net.module}'s own optimizer after its backward pass."
                if net.holders
                else f"Give {net.module}'s parameters to an optimizer (its own, or a param group "
                "of the existing one). If it is meant to stay fixed, call its "
                "requires_grad_(False) or run it under torch.no_grad()."
            ),
            # Loaded weights left trainable only waste a backward pass.
            severity=Severity.INFO if net.loaded and not net.holders else None,
            where=Where(module=net.module),
            evidence={
                "module": net.module,
                "parameters": net.parameters,
                "with_gradient": net.with_grad,
                "weights_loaded": net.loaded,
                "optimizers_never_stepped": net.holders,
                "other_steps": net.steps_without,
            },
        )


# -- no gradient (23) -----------------------------------------------------------------------------


@register_check(
    id="params-without-grad",
    reasons=(23,),
    severity="warning",
    # Parameters that do not learn make a model learn less, never its steps large.
    explains=causes.FIT_SYMPTOMS | (causes.INSTABILITY_SYMPTOMS - causes.DIVERGENCE_SYMPTOMS),
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
        is exactly zero (reasons 23 and 35: the gradient vanishes, every step). A module
        that never ran but that its owner's ``forward`` calls by name (the attribute in the
        source of the nearest module above it that is no container) sits on a branch these
        steps did not take, a head for another mode or stage (a DANN's domain classifier in
        a source-only run of the same network): an info; so is one the script's own code
        calls by its attribute with gradients on (``model.aux_head(h)`` in the training
        loop, for a term of the loss added every fiftieth step). A layer that no
        ``forward`` names and the script calls nowhere, or only under ``torch.no_grad()``
        (evaluated, never trained), was forgotten, and stays a warning. A layer
        that ran without a gradient reaching it is then changed on a copy of the model (its
        output doubled plus one, the same random draws): if the model's output stays bit for
        bit the same, nothing reads that layer's output (the last block's backcast of
        N-BEATS, computed and dropped), its parameters are unused rather than cut off, and
        that is an info; unless the layer has the same place in two or more repeated blocks
        (``layers.0.attention.wk``, ``layers.1.attention.wk``) and is dropped in every one
        of them: a role the block's code computes and never reads anywhere is a slip in that
        code (keys computed, then taken from the queries), a warning, where N-BEATS reads
        the backcasts of all its blocks but the last. Parameters whose gradient the
        backward pass made and the script removed before the step while other parameters
        kept theirs (``p.grad = None``, as DINO holds its last layer in the first epoch) are
        held on purpose: left out. So are parameters without a gradient whose values change
        between observed steps all the same: the script updates them itself (an EMA teacher
        run under ``no_grad`` and left in the optimizer, which skips it). A bias
        alone at zero while its layer's weights get gradients is redundant rather than
        broken (a normalisation right after it, or an output used only as a difference of
        two passes, as in a siamese network): an info.

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
    # The backward pass reached them; the script took their gradient away before the step
    # while others kept theirs (``p.grad = None``: DINO holds its last layer in the first
    # epoch). A choice, not a cut; every gradient gone is a misplaced ``zero_grad``.
    held = [n for n in never if any(n in s.grads_held and s.grad_norms for s in steps)]
    if held:
        never = [n for n in never if n not in set(held)]
        ctx.note(
            f"{len(held)} parameter(s) ({module_label(common_module(held))} and below) got a "
            "gradient from the backward pass that the script removed before the step: held "
            "on purpose"
        )
    zero = [
        n
        for n in trained
        if n not in never and n not in held and all(s.grad_norms.get(n, 0.0) == 0.0 for s in steps)
    ]
    ctx.note(
        (ctx.detail + "; " if held else "")
        + f"{len(trained)} optimised parameters checked over {len(steps)} step(s)"
    )
    maintained = changed_between_steps(rec, never)
    if maintained:
        # No gradient, yet they change: the script updates them itself (an EMA teacher
        # run under no_grad, left in the optimizer, which skips a parameter without one).
        never = [n for n in never if n not in set(maintained)]
        ctx.note(
            f"{ctx.detail}; {len(maintained)} without a gradient "
            f"({module_label(common_module(maintained))} and below) change between steps all "
            "the same: the script updates them itself (an EMA or momentum copy), they are not "
            "meant to learn from the loss"
        )
    ran = {name for s in rec.steps for name in s.activations}
    parents = {module_of(m) for m in rec.module_types if m}
    groups = group_by_module(never)
    cut = {module for module, _ in groups if module in ran and module not in parents}
    discarded = _discarded_outputs(ctx.services, cut)
    everywhere = _discarded_in_every_block(rec, discarded)
    unread = _outputs_the_loss_leaves(ctx.services, cut - discarded)
    reported_roles: set[str] = set()
    for module, names in groups:
        if module in everywhere:
            if _role(module) not in reported_roles:
                reported_roles.add(_role(module))
                blocks = everywhere[module]
                every = [n for m, ns in groups if m in blocks for n in ns]
                _report_discarded(ctx, module, every, len(steps), blocks)
            continue
        if module in discarded:
            _report_discarded(ctx, module, names, len(steps))
            continue
        if module in unread:
            _report_unread_by_loss(ctx, module, names, len(steps))
            continue
        detached = module in cut
        called = None if detached else _called_on_a_path_not_taken(ctx.services, module, ran)
        if called is not None:
            _report_path_not_taken(ctx, module, names, len(steps), called)
            continue
        ctx.finding(
            title=f"Parameters of {module_label(module)} never receive a gradient",
            message=(
                f"{len(names)} parameter(s) of {module_label(module)} ({numel_of(rec, names)} values) had "
                f"no gradient (grad is None) at all {len(steps)} observed steps, so they never "
                "learn. "
                + (
                    f"{module_label(module)} did run in the training forward pass: its output does not "
                    "reach the loss with a gradient (a .detach(), .data, no_grad or a value the loss "
                    "never reads)."
                    if detached
                    else f"{module_label(module)} never ran in a training forward pass with autograd on "
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
                "parameters": names_evidence(names),
                "count": len(names),
                "numel": numel_of(rec, names),
                "steps": len(steps),
                "module_ran": module in ran,
            },
        )
    redundant = _redundant_biases(zero, trained, steps)
    for module, names in group_by_module(redundant):
        ctx.finding(
            title=f"The bias of {module_label(module)} gets an exactly zero gradient",
            message=(
                f"{', '.join(names)} had a gradient of exactly 0 at all {len(steps)} observed "
                f"steps while the weights of {module_label(module)} did not: its units are alive, "
                "and what the bias adds cancels out downstream (a normalisation right after the "
                "layer subtracts it, or the output is used only as a difference of two passes). "
                "It is redundant, not broken."
            ),
            fix="Harmless; drop it with bias=False to save the parameters if you like.",
            severity=Severity.INFO,
            aspect=HARMLESS,
            where=Where(module=module, step=steps[0].step),
            evidence={"parameters": names_evidence(names), "count": len(names)},
        )
    zero = [n for n in zero if n not in redundant]
    for module, names in group_by_module(zero):
        ctx.finding(
            title=f"Gradients of {module_label(module)} are exactly zero",
            message=(
                f"{len(names)} parameter(s) of {module_label(module)} had a gradient of norm exactly 0 at "
                f"all {len(steps)} observed steps: the units feeding them are dead (ReLU) or "
                "masked/multiplied by zero."
            ),
            fix=(
                "Look at the layer's input: dead ReLUs (see dead-relus), a mask or a factor of zero "
                "before it; fix the initialisation or the masking."
            ),
            # The parameter is on the graph and its gradient still vanishes, at every step:
            # the extreme of a vanishing gradient (35) as much as a layer that does not learn.
            reasons=(23, 35),
            where=Where(module=module, step=steps[0].step),
            evidence={
                "parameters": names_evidence(names),
                "count": len(names),
                "steps": len(steps),
            },
        )


def _called_on_a_path_not_taken(lab: Any, module: str, ran: set[str]) -> str | None:
    """Where a module that never ran is called on a branch the observed steps did not take:
    in its owner's ``forward`` (a DANN's domain classifier, reached only when a reversal
    coefficient is passed, in a source-only run of the same network), or in the script's
    own code with gradients on (``model.aux_head(h)`` for an auxiliary loss added every
    fiftieth step). Says where, as ``Owner.forward calls `attr``` or the line of the script.
    A layer forgotten is called nowhere; one called only under ``torch.no_grad()`` is
    evaluated, never trained. None otherwise, or where the code cannot be read."""
    found = lab.caller_of(module, ran) if lab is not None and lab.has_model else None
    if found is None:
        return None
    owner, attr = found
    try:
        source = inspect.getsource(type(owner).forward)
    except (OSError, TypeError):
        source = ""
    if re.search(rf"\b{re.escape(attr)}\b", source):
        return f"{type(owner).__name__}.forward calls `{attr}`"
    sites = lab.calls_in_source(attr)
    return sites[0].describe() if sites else None


def _report_path_not_taken(
    ctx: CheckContext, module: str, names: list[str], steps: int, called: str
) -> None:
    """Parameters of a module its owner's forward calls on a path the training did not take."""
    rec = ctx.recording
    ctx.finding(
        title=f"{module_label(module)} never ran in training: the branch that calls it was not taken",
        message=(
            f"{len(names)} parameter(s) of {module_label(module)} ({numel_of(rec, names)} values) "
            f"had no gradient at all {steps} observed steps: it never ran in a training "
            f"forward pass, though {called}, on a path these steps did not take (a head used "
            "in another mode or stage, such as a domain classifier reached only when a "
            "reversal coefficient is passed, or a term of the loss added only at some "
            "steps). Its parameters sit in the optimizer unused until it is taken."
        ),
        fix=(
            "Nothing, if that branch is meant to stay off in this training; otherwise check the "
            "condition that skips it. Parameters meant to stay unused need not be in "
            "the optimizer."
        ),
        severity=Severity.INFO,
        where=Where(module=module),
        evidence={**_no_gradient_evidence(rec, names, steps), "called_in": called},
    )


def _no_gradient_evidence(rec: Recording, names: list[str], steps: int) -> dict[str, Any]:
    """The evidence every finding on parameters without a gradient gives."""
    return {
        "parameters": names_evidence(names),
        "count": len(names),
        "numel": numel_of(rec, names),
        "steps": steps,
    }


def _discarded_outputs(lab: Any, modules: set[str]) -> set[str]:
    """Of ``modules`` (layers that ran but whose parameters got no gradient), those whose
    output the model's own output does not read: changed on a copy, it leaves the model's
    output bit for bit as it was. None known without a copy to run, or when the forward
    fails or is random beyond the seeded draws."""
    copy = lab.eval_copy() if modules and lab is not None else None
    if copy is None:
        return set()
    model, run = copy
    try:
        read = outputs_reading(model, run, modules, repeat=lambda: same_noise(lab.device))
    except Exception:  # noqa: BLE001 - a copy that will not run tells nothing
        return set()
    return {m for m, reads in read.items() if not reads}


def _outputs_the_loss_leaves(lab: Any, modules: set[str]) -> set[str]:
    """Of ``modules`` (layers that ran, whose output the model's output reads, and whose
    parameters got no gradient), those whose output the loss does not read either: changed
    on a copy, the model's output moves and the loss on the same batch stays bit for bit the
    same. The model returns a value no term of the loss uses (N-BEATS's final backcast
    beside the forecast it is trained on); a layer whose output the loss reads through a
    ``.detach()`` moves the loss and is cut off. None known without a replayable loss, or
    when the loss of a copy fails or is random beyond the seeded draws."""
    if not modules or lab is None or getattr(lab, "subject", None) is None or not lab.has_model:
        return set()
    try:
        model = set_training(lab.fresh_model(), False)
        batch = lab.batches(1)[0]
        read = outputs_reading(
            model,
            lambda: lab.loss(model, batch),
            modules,
            repeat=lambda: same_noise(lab.device),
        )
    except Exception:  # noqa: BLE001 - a loss that will not run on a copy tells nothing
        return set()
    return {m for m, reads in read.items() if not reads}


def _report_unread_by_loss(ctx: CheckContext, module: str, names: list[str], steps: int) -> None:
    """Parameters of a layer whose output the model returns and the loss never reads."""
    rec = ctx.recording
    label = module_label(module)
    ctx.finding(
        title=f"The model returns the output of {label}, and the loss never reads it",
        message=(
            f"{len(names)} parameter(s) of {label} ({numel_of(rec, names)} values) had no "
            f"gradient at all {steps} observed steps. {label} runs in the forward pass and the "
            "model's output depends on it, but the loss does not: changed on a copy, the "
            "model's output moves while the loss on the same batch stays bit for bit the same. "
            "The part of the output it makes is returned and never trained (the last block's "
            "backcast of N-BEATS beside the forecast, a pooled output beside the token states)."
        ),
        fix=(
            "Nothing, if that output is not meant to be trained; if it is (a second head, a "
            "term of the loss forgotten), add its term to the loss."
        ),
        severity=Severity.INFO,
        where=Where(module=module),
        evidence={
            **_no_gradient_evidence(rec, names, steps),
            "output_read": True,
            "loss_reads_output": False,
        },
    )


def _role(module: str) -> str:
    """A module's place within its repeated block: its path with the indices as ``*``
    (``layers.3.attention.wk`` is ``layers.*.attention.wk``)."""
    return ".".join("*" if part.isdigit() else part for part in module.split("."))


def _discarded_in_every_block(rec: Any, discarded: set[str]) -> dict[str, list[str]]:
    """Of ``discarded``, the modules whose every instance in a repeated block is discarded
    too (two blocks or more), with those instances: the forward leaves the same role unused
    in every block, a slip in the block's code (keys computed, then taken from the queries),
    where the last block's backcast of a doubly residual stack is an end of the structure
    (its siblings in earlier blocks are read)."""
    out: dict[str, list[str]] = {}
    for module in discarded:
        role = _role(module)
        if role == module:
            continue
        siblings = [m for m in rec.module_types if m and _role(m) == role]
        if len(siblings) >= 2 and all(m in discarded for m in siblings):
            out[module] = sorted(siblings)
    return out


def changed_between_steps(rec: Recording, names: list[str]) -> list[str]:
    """Of ``names``, the parameters whose norm, read at each observed optimizer step (in the
    optimizer or not), is not the same at every step although no gradient step of theirs
    moved them: updated by the script itself (an EMA target network, a momentum encoder)."""
    seen: dict[str, set[float]] = {}
    for s in rec.steps:
        for name in names:
            norm = s.weight_norms.get(name, s.outside_norms.get(name))
            if norm is not None:
                seen.setdefault(name, set()).add(norm)
    return [n for n in names if len(seen.get(n, ())) > 1]


def _report_discarded(
    ctx: CheckContext,
    module: str,
    names: list[str],
    steps: int,
    every_block: list[str] | None = None,
) -> None:
    rec = ctx.recording
    evidence = {**_no_gradient_evidence(rec, names, steps), "output_read": False}
    if every_block:
        role = _role(module)
        ctx.finding(
            title=f"The output of {role} is computed and discarded in every block",
            message=(
                f"{len(names)} parameter(s) of {role} in {len(every_block)} blocks "
                f"({numel_of(rec, names)} values) had no gradient at all {steps} observed steps: "
                "each runs in the forward pass, but the "
                "model's output stays bit for bit the same when its output is changed (on a "
                "copy, in eval mode). A role the block's code computes and never reads in any "
                "block is a slip in that code (a projection computed, then overwritten by "
                "another), not an end of the structure: the layer the block meant to use is "
                "not used."
            ),
            fix=(
                f"Read the block's forward where the output of {role} should be used: a "
                "variable overwritten or a copy-pasted line using another projection."
            ),
            reasons=(23, 22),
            where=Where(module=module),
            evidence={**evidence, "blocks": every_block},
        )
        return
    ctx.finding(
        title=f"The output of {module_label(module)} is computed and discarded",
        message=(
            f"{len(names)} parameter(s) of {module_label(module)} ({numel_of(rec, names)} values) had "
            f"no gradient at all {steps} observed steps. {module_label(module)} runs in the forward "
            "pass, but the model's output stays bit for bit the same when its output is changed "
            "(on a copy, in eval mode): nothing downstream reads it (the last block's backcast of "
            "a doubly residual stack, a branch kept for another use). Its parameters are unused, "
            "not cut off from a loss that needs them."
        ),
        fix=(
            f"Harmless for training; leave {module_label(module)} out of the forward pass (or out "
            "of the optimizer) to save its computation, or use its output if it was meant to count."
        ),
        severity=Severity.INFO,
        aspect=HARMLESS,
        where=Where(module=module),
        evidence=evidence,
    )


def _redundant_biases(zero: list[str], trained: list[str], steps: list[StepRecord]) -> list[str]:
    """Biases among ``zero`` whose module's other parameters got a non-zero gradient: dead
    units would zero the whole layer's gradient, so these cancel downstream instead."""
    alive = {
        module_of(n)
        for n in trained
        if n not in zero and any(s.grad_norms.get(n, 0.0) > 0 for s in steps)
    }
    return [n for n in zero if n.rsplit(".", 1)[-1] == "bias" and module_of(n) in alive]


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
    rounded = [n for n in stuck if _rounded_away(ctx, n, stepped)]
    stuck = [n for n in stuck if n not in rounded]
    ctx.note(
        f"updates of {len(rec.in_optimizer)} parameters over {len(stepped)} step(s)"
        + (
            f"; {len(rounded)} parameter(s) ({', '.join(rounded[:3])}"
            + (", ..." if len(rounded) > 3 else "")
            + ") got gradients too small for a step at their learning rate to survive float32 "
            "rounding (a bias a normalisation right after it cancels): unchanged by arithmetic, "
            "not by a rate of zero"
            if rounded
            else ""
        )
    )
    for module, names in group_by_module(stuck):
        lrs = _lr_of(ctx, names)
        lr_text = (
            f" The learning rate of their param group(s): {', '.join(f'{x:g}' for x in lrs)}."
            if lrs
            else ""
        )
        ctx.finding(
            title=f"Parameters of {module_label(module)} never change",
            message=(
                f"{len(names)} parameter(s) of {module_label(module)} received non-zero gradients but "
                f"their update was exactly zero at all {len(stepped)} observed steps.{lr_text}"
            ),
            fix=(
                "Set a positive learning rate for their param group and check that the scheduler "
                "does not hold it at 0 (scheduler.get_last_lr())."
            ),
            where=Where(module=module, step=stepped[0].step),
            evidence={
                "parameters": names_evidence(names),
                "count": len(names),
                "steps": len(stepped),
                "lr": lrs,
            },
        )


@register_check(
    id="optimizer-without-gradients",
    reasons=(23,),
    severity="error",
    explains=causes.FIT_SYMPTOMS,
)
def optimizer_without_gradients(ctx: CheckContext) -> None:
    """An optimizer keeps stepping, but none of its parameters has a gradient any more.

    Why it matters:
        Scripts that train two networks (a GAN's generator and critic, an actor and a
        critic) switch each network's ``requires_grad`` off while the other one trains,
        or compute one loss under ``no_grad`` or from detached outputs. Forget to switch
        it back on, and that network's optimizer keeps stepping over parameters without
        gradients: every torch optimizer skips those, so the network stays where it
        stopped, and the one trained against it learns against a frozen opponent.
        Nothing fails; the losses just stop meaning anything.

    What is measured:
        At every step of the model's optimizer, and of every optimizer over another
        network (none of the model's parameters), whether any of its parameters had a
        gradient (``grad`` not None; no device sync). A finding when the last
        ``gradless_steps_min`` (3) steps or more, to the end of the observation, found
        none: after steps with gradients (the network stopped training), or, for another
        network, at every step (it never trained). A model whose optimizer never met a
        gradient is for params-without-grad and zero-grad-missing to explain (a
        ``zero_grad`` between backward and step). Gradients that are all zero are not
        called out (the step may still move parameters, by momentum or weight decay).

    How to fix:
        Switch ``requires_grad`` back on before the network's own update (or use
        ``torch.no_grad()`` / ``.detach()`` where the other network is only read), and
        compute its loss with gradients enabled.

    Example:
        Before::

            for p in critic.parameters():
                p.requires_grad_(False)    # for the generator step ...
            g_loss.backward(); opt_g.step()
            # ... never switched back: the critic's next steps move nothing

        After::

            for p in critic.parameters():
                p.requires_grad_(True)     # before the critic's own step
    """
    t = ctx.thresholds
    rec = ctx.recording
    # (label, network, the network described, steps, gradient at each step, another network)
    histories: list[tuple[str, str, str, list[int], list[bool], bool]] = []
    stepped = [s for s in rec.steps if s.grads_at_step is not None]
    if stepped and rec.step_source != "manual":
        steps, with_grad = [s.step for s in stepped], [bool(s.grads_at_step) for s in stepped]
        histories.append(
            ("the model's optimizer", "the model", "the model", steps, with_grad, False)
        )
    for k, other in enumerate(rec.other_optimizers):
        histories.append(
            (
                f"{other.name} #{k + 1} over another network",
                "another network",
                f"another network ({other.params} parameter(s), none of the model's)",
                other.steps,
                other.with_grad,
                True,
            )
        )
    if not histories:
        ctx.skip("no optimizer step was observed")
    notes = []
    for label, network, described, steps, with_grad, other in histories:
        tail = len(list(itertools.takewhile(lambda had: not had, reversed(with_grad))))
        notes.append(f"{label}: {len(steps)} step(s), the last {tail} without any gradient")
        if tail < t.gradless_steps_min or (tail == len(steps) and not other):
            continue
        first = steps[len(steps) - tail]
        since = (
            "at any of its steps"
            if tail == len(steps)
            else f"from the script's step {first} on, after {len(steps) - tail} step(s) with gradients"
        )
        ctx.finding(
            title=f"The optimizer of {network} steps over parameters without gradients",
            message=(
                f"The optimizer of {described} stepped {len(steps)} time(s) while observed; none of "
                f"its parameters had a gradient {since}: {tail} step(s) in a row to the end of the "
                "observation. Every torch optimizer skips parameters without a gradient, so that "
                "network no longer trains, and a network trained against it learns against one "
                "frozen where it stopped."
            ),
            fix=(
                "Switch requires_grad back on before that network's own update, and compute its "
                "loss with gradients enabled (no torch.no_grad(), no .detach() on its path)."
            ),
            where=Where(step=first),
            evidence={
                "network": "other" if other else "model",
                "steps": len(steps),
                "steps_without_gradient_at_end": tail,
                "first_step_without_gradient": first,
            },
        )
    ctx.note("; ".join(notes))


def _report_not_updated_by_hand(
    ctx: CheckContext, rec: Recording, missing: list[str], updated: set[str]
) -> None:
    """The same finding for a script that updates parameters by hand, without an optimizer."""
    ctx.note(
        f"{len(updated)} of {len(rec.param_names)} parameters are updated by the script's own rule"
    )
    steps = _grad_steps(rec)
    not_taken = set(rec.gradients_not_taken)
    for module, names in group_by_module(missing):
        grads = {n: max((s.grad_norms.get(n, 0.0) for s in steps), default=0.0) for n in names}
        asked = not any(n in not_taken for n in names)
        if asked and not any(g > 0 for g in grads.values()):
            continue  # no gradient, no update to make: params-without-grad's finding
        ctx.finding(
            title=f"Parameters of {module_label(module)} are never updated",
            message=(
                f"{len(names)} parameter(s) of {module_label(module)} ({numel_of(rec, names)} values) "
                + (
                    "receive a gradient but never change: the script updates the parameters by "
                    "hand and its update leaves these out, so their gradients are thrown away."
                    if asked
                    else "are reached by the loss but never change: the script takes the "
                    "gradients for its update by hand with torch.autograd.grad, and asks it for "
                    "the other parameters only."
                )
            ),
            fix="Update every parameter in the manual update loop (for p in model.parameters(): ...), or "
            "use a torch.optim optimizer over model.parameters().",
            where=Where(module=module),
            evidence={
                "parameters": names_evidence(names),
                "count": len(names),
                "numel": numel_of(rec, names),
                "steps": "manual updates",
            },
        )
