"""Frozen parameters (reason 23): ``requires_grad=False`` on parameters that look meant to
train (a half-frozen layer, a frozen layer the optimizer still holds, weights frozen at
their random initialisation)."""

from __future__ import annotations

import torch
from torch import nn

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import neighbours_closer_p
from nndoctor.checks.training.default_init import at_default_init
from nndoctor.checks.training.parameters import (
    changed_between_steps,
    common_module,
    group_by_module,
    module_label,
    names_evidence,
    numel_of,
)
from nndoctor.probes.layers import BATCH_NORM, INSTANCE_NORM, NORM, WEIGHTED
from nndoctor.probes.recording import module_of
from nndoctor.report.model import Severity, Where


@register_check(
    id="params-frozen",
    reasons=(23,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS
    | (causes.INSTABILITY_SYMPTOMS - causes.DIVERGENCE_SYMPTOMS)
    | frozenset({"params-without-grad"}),
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
        what anyone meant, so that is a warning. A frozen bias whose layer feeds a
        BatchNorm or InstanceNorm (the next layer in forward order) is left out: the norm
        subtracts any constant per channel, so that bias does nothing either way. So are
        frozen parameters whose values change between observed steps, in the optimizer or
        not: no gradient moved them, the script did (MoCo's momentum encoder, BYOL's EMA
        target network, a DQN target network). So are frozen parameters a custom module holds directly (not a
        torch layer's) whose values a formula arranged rather than drew: neighbours along
        one axis closer than the same values shuffled (a permutation test at
        ``fixed_table_alpha``), as in a sin-cos positional table kept as a frozen parameter;
        and so are frozen parameters whose elements all hold one value, a constant the
        script fixed (a weight-normalised layer's magnitude held at 1, as DINO's head does).

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
    inert = inert_biases(ctx, frozen)
    if inert:
        ctx.note(
            f"frozen bias(es) {', '.join(inert)} feed a BatchNorm or InstanceNorm, which "
            "subtracts any constant per channel: they have no effect, frozen or not"
        )
    maintained = changed_between_steps(rec, frozen)
    if maintained:
        ctx.note(
            f"{ctx.detail}; {len(maintained)} of them "
            f"({module_label(common_module(maintained))} and below) change between steps "
            "without a gradient: the script updates them itself (a momentum encoder, an EMA "
            "or target network), so they are not meant to train"
        )
        frozen = [n for n in frozen if n not in set(maintained)]
        if not frozen:
            return
    tables = _fixed_tables(ctx, frozen)
    if tables:
        ctx.note(
            f"{ctx.detail}; {', '.join(tables)}: free parameter(s) of a custom module holding "
            "a table built by a formula, not a random draw (neighbours closer than shuffled "
            f"values, p <= {ctx.thresholds.fixed_table_alpha:g}): fixed on purpose (a sin-cos "
            "positional table)"
        )
        frozen = [n for n in frozen if n not in set(tables)]
        if not frozen:
            return
    constants = _held_constant(ctx, frozen)
    if constants:
        ctx.note(
            f"{ctx.detail}; {', '.join(constants)}: every element at one value, a constant the "
            "script fixed (a weight-normalised layer's magnitude held at 1, a scale left at 1), "
            "not a random draw: fixed on purpose"
        )
        frozen = [n for n in frozen if n not in set(constants)]
        if not frozen:
            return
    for module, params in by_module.items():
        cold = [p for p in params if p in frozen and p not in inert]
        if not cold:
            continue
        # Partly frozen: some parameter trains (a frozen bias a norm layer cancels is no
        # trained part, and frozen with the rest it does not make the layer mixed).
        if any(p not in frozen and p not in maintained for p in params):
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
            title=f"{module_label(module)} is partly frozen",
            message=(
                f"In {module_label(module)} ({rec.module_types.get(module, '?')}), "
                f"{', '.join(p.rsplit('.', 1)[-1] for p in cold)} "
                f"{'has' if len(cold) == 1 else 'have'} requires_grad=False while "
                f"{', '.join(p.rsplit('.', 1)[-1] for p in warm)} "
                f"{'trains' if len(warm) == 1 else 'train'}: a layer is rarely meant to be half "
                "frozen, so the frozen part is probably a leftover."
            ),
            fix=(
                f"Call {module_label(module)}.requires_grad_(True) (or freeze the whole module on purpose and "
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
            title=f"Frozen parameters of {module_label(module)} are in the optimizer",
            message=(
                f"{len(group)} parameter(s) of {module_label(module)} ({numel_of(rec, group)} values) have "
                "requires_grad=False but were given to the optimizer, and they are not a leading "
                "block frozen for fine-tuning: they were probably meant to train."
            ),
            fix=(
                f"Call {module_label(module)}.requires_grad_(True); if freezing is intended, pass only "
                "trainable parameters to the optimizer: (p for p in model.parameters() if p.requires_grad)."
            ),
            where=Where(module=module),
            evidence={
                "parameters": names_evidence(group),
                "count": len(group),
                "numel": numel_of(rec, group),
            },
        )
    random = _frozen_at_random_init(ctx, intended)
    if random:
        modules = sorted({module_of(n) for n in random})
        ctx.finding(
            title=f"{module_label(common_module(random))} is frozen at its random initialisation",
            message=(
                f"{len(random)} frozen parameter(s) ({numel_of(rec, random)} values) in {len(modules)} layer(s) "
                f"({', '.join(module_label(m) for m in modules[:4])}{', ...' if len(modules) > 4 else ''}) hold the "
                "values their constructor drew: a Kolmogorov-Smirnov test cannot tell them from PyTorch's "
                f"default initialisation (at level {ctx.thresholds.default_init_alpha:g}). Frozen random "
                "weights never learn: nothing was loaded into them before they were frozen."
            ),
            fix=(
                "Load the pretrained weights before freezing (model.backbone.load_state_dict(...)), or let "
                "these layers train: requires_grad_(True) and give them to the optimizer."
            ),
            where=Where(module=common_module(random)),
            evidence={
                "parameters": names_evidence(random),
                "count": len(random),
                "numel": numel_of(rec, random),
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
                f"{len(intended)} parameter(s) ({numel_of(rec, intended)} values) in "
                f"{len(modules)} module(s) have requires_grad=False"
                + (
                    f", {module_label(common_module(intended))} and below"
                    if len(modules) > 1
                    else f": {module_label(modules[0])}"
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
            where=Where(module=common_module(intended)),
            evidence={
                "parameters": names_evidence(intended),
                "count": len(intended),
                "numel": numel_of(rec, intended),
                "in_optimizer": len(in_opt),
            },
        )


def inert_biases(ctx: CheckContext, frozen: list[str]) -> list[str]:
    """The frozen biases of layers whose output the next layer in forward order normalises
    per channel over the batch or the positions (BatchNorm, InstanceNorm): the norm takes
    away any constant added to a channel, so such a bias does nothing, trained or not
    (SimSiam freezes the bias before its last BatchNorm for this reason)."""
    order = ctx.recording.forward_order()
    inert = []
    for name in frozen:
        module, _, leaf = name.rpartition(".")
        if leaf != "bias" or module not in order or not ctx.recording.is_kind(module, WEIGHTED):
            continue
        after = [m for m in order[order.index(module) + 1 :] if not module.startswith(m + ".")]
        nxt = next((m for m in after if m and not _is_container(ctx, m)), None)
        if nxt is not None and ctx.recording.is_kind(nxt, BATCH_NORM + INSTANCE_NORM):
            inert.append(name)
    return inert


def _is_container(ctx: CheckContext, name: str) -> bool:
    """A module with sub-modules: its forward finishes after theirs."""
    return any(other.startswith(name + ".") for other in ctx.recording.module_types)


def _fixed_tables(ctx: CheckContext, frozen: list[str]) -> list[str]:
    """The frozen parameters that a custom module holds directly (not a torch layer's weight
    or bias, which their layer draws at random) and whose values are arranged by a formula
    rather than drawn (:func:`neighbours_closer_p` at ``fixed_table_alpha``): a sin-cos
    positional table registered as a frozen parameter, a fixed ramp or mask. Freezing a
    table that was built to stay fixed is no mistake; a random draw frozen is judged as before."""
    rec = ctx.recording
    free = [n for n in frozen if not _torch_layer(rec.module_class(module_of(n)))]
    values = _initial_values(ctx) if free else {}
    alpha = ctx.thresholds.fixed_table_alpha
    return [n for n in free if n in values and neighbours_closer_p(values[n]) <= alpha]


def _held_constant(ctx: CheckContext, frozen: list[str]) -> list[str]:
    """The frozen parameters of more than one element that all hold one value: a constant
    the script fixed (DINO's normalised last layer, its weight-norm magnitude filled with 1
    and frozen), which no random initialisation draws."""
    values = _initial_values(ctx) if frozen else {}
    return [
        n
        for n in frozen
        if n in values
        and values[n].numel() > 1
        and bool((values[n] == values[n].detach().flatten()[0]).all())
    ]


def _initial_values(ctx: CheckContext) -> dict[str, torch.Tensor]:
    """The model's tensors at its initial state, by name, read rather than copied (as they
    stand where no initial state was kept: frozen parameters the script does not update
    have not moved); empty without a model."""
    lab = ctx.services
    if lab is None or not getattr(lab, "has_model", False):
        return {}
    return lab.initial_state() or lab.tensors_now()


def _torch_layer(cls: type | None) -> bool:
    """Whether ``cls`` is, or derives from, a layer of ``torch.nn`` that owns parameters
    (a ``Linear``, a convolution, an embedding, a norm...), not a container or a module
    written in the script."""
    if cls is None:
        return True  # unknown: judged as a layer, as before
    containers = (nn.Module, nn.Sequential, nn.ModuleList, nn.ModuleDict)
    return any(
        c.__module__.startswith("torch.nn.modules") and c not in containers for c in cls.__mro__
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
