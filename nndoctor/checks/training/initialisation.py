"""Initial weights (reason 28): constant or symmetric weight matrices, which no gradient
can tell apart. The only tensor work of the statistics checks, on the initial state dict,
on the host.
"""

from __future__ import annotations

import math

import torch

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.training.observed import (
    MAX_EVIDENCE_LAYERS,
    forward_steps,
    is_bias,
    is_matrix,
    weighted_layers,
)
from nndoctor.probes.layers import WEIGHTED
from nndoctor.probes.recording import Recording, module_of
from nndoctor.report.model import Severity, Where


@register_check(
    id="weights-constant-init",
    reasons=(28,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def weights_constant_init(ctx: CheckContext) -> None:
    """Weight matrices initialised to zero, to a constant, or with identical rows.

    Why it matters:
        Units whose incoming weights are identical compute the same output and
        receive the same gradient: they stay identical forever, so a layer of
        N units behaves like one unit ("symmetry"). A weight matrix that is all
        zero passes no signal forward and, with zero biases and ReLU, no gradient
        back. Random initialisation exists to break this symmetry.

    What is measured:
        The model's initial state (before the first update): every trainable
        weight matrix (biases left out, whatever their shape) with more than one
        output unit is tested for all-zero,
        constant, or identical rows (every output unit with the same incoming
        weights). Grouped convolutions are tested for all-zero only. Severity:
        an error when every weight matrix of a model with hidden layers is
        affected (nothing breaks the symmetry); a warning for a single affected
        matrix; an info note for an all-zero *output* layer (a deliberate choice
        in some architectures, e.g. zero-initialised heads), for an all-zero
        matrix beside a bias that is not zero and whose gradient at the first
        step is not zero (the layer starts at a chosen output, a spatial
        transformer's identity, and the layers after it tell its units apart)
        and for single-layer models (zero init is fine for linear/logistic
        regression). A symmetric matrix held by hand (no Linear, convolution or bilinear
        layer's weight: an S4D kernel's ``log_A_real``, one decay rate for every channel)
        whose rows receive different gradients at the first step, on a copy, is an info
        too: identical rows stay identical only if their gradients are.

    How to fix:
        Use a random initialisation: leave PyTorch's default, or call
        ``nn.init.kaiming_normal_``/``xavier_uniform_``; initialise biases (not
        weights) to constants.

    Example:
        Before::

            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.constant_(m.weight, 0.5)

        After::

            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
    """
    rec = ctx.recording
    state = ctx.services.initial_state() if ctx.services is not None else None
    if state is None:
        ctx.skip("the initial state of the model was not captured")
    matrices = [
        n
        for n in rec.param_names
        if rec.requires_grad.get(n, True)
        and not is_bias(n)
        and n in state
        and state[n].is_floating_point()
        and is_matrix(tuple(state[n].shape))
        and state[n].shape[0] > 1
    ]
    if not matrices:
        ctx.skip("no trainable weight matrix with more than one output unit")
    steps = forward_steps(rec)
    layers = weighted_layers(rec, steps[0]) if steps else []
    output_layer = layers[-1] if layers else None
    bad: list[tuple[str, str, dict[str, float | int | list[int]]]] = []
    for name in matrices:
        kind, ev = _symmetry(state[name], _groups(ctx, module_of(name)))
        if kind is not None:
            bad.append((name, kind, ev))
    ctx.note(
        f"{len(matrices)} weight matri{'x' if len(matrices) == 1 else 'ces'} checked at initialisation"
    )
    parted = _parted_by_their_gradient(ctx, [n for n, _, _ in bad])
    for name, kind, ev in [b for b in bad if b[0] in parted]:
        ctx.finding(
            title=f"{name} starts {kind}, and its first gradient tells its rows apart",
            message=(
                f"{name} (shape {list(state[name].shape)}) is {kind} at initialisation, but it is "
                f"a parameter of {module_of(name) or 'the model'}'s own code, not a layer's "
                "weights, and at the first step (on a copy) its rows receive different "
                "gradients: other parameters tell them apart, so no symmetry holds them together "
                "(a state-space model's shared decay rate, a structured initialisation)."
            ),
            fix="Nothing, if the constant start is the design.",
            severity=Severity.INFO,
            where=Where(module=module_of(name), step=0),
            evidence={"kind": kind, "first_gradient_rows_differ": True, **ev},
        )
    bad = [b for b in bad if b[0] not in parted]
    if not bad:
        return
    fix = (
        "Use a random initialisation (PyTorch's default, kaiming_normal_ for ReLU, "
        "xavier_uniform_ for tanh/sigmoid); set constants on biases, not on weights."
    )
    if len(matrices) >= 2 and len(bad) == len(matrices):
        ctx.finding(
            title="Every weight matrix starts symmetric",
            message=(
                f"All {len(matrices)} weight matrices are {_kinds(bad)} at initialisation: the "
                "units of each layer compute the same value and get the same gradient, so "
                "they can never become different."
            ),
            fix=fix,
            severity=Severity.ERROR,
            where=Where(module=module_of(bad[0][0]), step=0),
            evidence={
                "count": len(bad),
                "matrices": {n: {"kind": k, **ev} for n, k, ev in bad[:MAX_EVIDENCE_LAYERS]},
            },
        )
        return
    for name, kind, ev in bad:
        module = module_of(name)
        if len(matrices) == 1:
            severity, note = Severity.INFO, " The model has one weight matrix, so this is harmless."
        elif kind == "all zero" and module == output_layer:
            severity = Severity.INFO
            note = (
                " It is the output layer: a zero-initialised head is a deliberate choice in some "
                "architectures (the layers before it get no gradient at the first step only)."
            )
        elif (
            kind == "all zero"
            and _starts_at_its_bias(state, name)
            and _first_gradient(rec, name) > 0
        ):
            severity = Severity.INFO
            note = (
                " Its bias is not zero and its first gradient is not: the layer starts at a "
                "chosen output (an identity transform) and its units part at the first step, "
                "a deliberate choice."
            )
        else:
            severity, note = Severity.WARNING, ""
        ctx.finding(
            title=f"Weight {name} starts {kind}",
            message=(
                f"{name} (shape {list(state[name].shape)}) is {kind} at initialisation: its "
                f"{state[name].shape[0]} output units start identical and receive identical "
                f"gradient from this layer's input.{note}"
            ),
            fix=fix,
            severity=severity,
            where=Where(module=module, step=0),
            evidence={"kind": kind, **ev},
        )


def _parted_by_their_gradient(ctx: CheckContext, names: list[str]) -> set[str]:
    """Of the symmetric matrices ``names``, those held by hand (no Linear, convolution or
    bilinear layer's weight) whose rows receive different gradients at the first step, on
    a copy at the initial weights: identical rows stay identical only if their gradients
    are too, and a parameter of the user's own code (an S4D kernel's ``log_A_real``, one
    decay rate for every channel beside a random ``C`` and step) is no row of output units
    fed the same input. A layer's weights keep the layer rule; without a copy to take a
    step on, nothing is parted."""
    rec, lab = ctx.recording, ctx.services
    by_hand = [n for n in names if not rec.is_kind(module_of(n), WEIGHTED)]
    if not by_hand or lab is None or not lab.available:
        return set()
    try:
        model = lab.fresh_model()
        lab.loss(model, lab.batches(1)[0]).backward()
    except (RuntimeError, ValueError, TypeError, IndexError):
        return set()
    params = dict(model.named_parameters())
    parted = set()
    for name in by_hand:
        grad = params[name].grad if name in params else None
        if grad is None or not bool(torch.isfinite(grad).all()):
            continue
        rows = grad.detach().double().reshape(grad.shape[0], -1)
        scale = float(rows.abs().max())
        if (
            scale > 0
            and float((rows - rows[:1]).abs().max()) > ctx.thresholds.symmetric_rows_rtol * scale
        ):
            parted.add(name)
    return parted


def _starts_at_its_bias(state: dict[str, torch.Tensor], name: str) -> bool:
    """Whether the module of weight ``name`` has a bias that is not all zero: with zero
    weights it outputs that bias whatever its input (a spatial transformer's identity)."""
    bias = state.get(f"{module_of(name)}.bias" if module_of(name) else "bias")
    return (
        isinstance(bias, torch.Tensor)
        and bias.is_floating_point()
        and bool(torch.isfinite(bias).all())
        and bool((bias != 0).any())
    )


def _first_gradient(rec: Recording, name: str) -> float:
    """The norm of parameter ``name``'s gradient at the first observed step that read it
    (the initial weights); 0 when none did."""
    for step in rec.steps:
        if name in step.grad_norms:
            g = step.grad_norms[name]
            return g if math.isfinite(g) else 0.0
    return 0.0


def _groups(ctx: CheckContext, module: str) -> int | None:
    """``groups`` of a convolution, when the subject's model is at hand."""
    if ctx.subject is None:
        return None
    for name, m in ctx.subject.model.named_modules():
        if name == module:
            return int(getattr(m, "groups", 1))
    return None


def _symmetry(
    w: torch.Tensor, groups: int | None
) -> tuple[str | None, dict[str, float | int | list[int]]]:
    """('all zero' | 'constant' | 'identical rows' | None, evidence) for a weight matrix."""
    rows = w.detach().to("cpu", torch.float64).reshape(w.shape[0], -1)
    ev: dict[str, float | int | list[int]] = {"shape": list(w.shape), "units": int(w.shape[0])}
    if not bool(torch.isfinite(rows).all()):
        return None, ev
    if bool((rows == 0).all()):
        return "all zero", ev
    # A grouped (e.g. depthwise) convolution's output units read different input
    # channels, so identical kernels do not make them identical. Without the model
    # at hand, a kernel with one input channel may be depthwise: leave it alone.
    grouped = (groups or 1) > 1 or (groups is None and w.dim() >= 3 and w.shape[1] == 1)
    if grouped:
        return None, ev
    first = rows.reshape(-1)[0]
    if bool((rows == first).all()):
        ev["value"] = float(first)
        return "constant", ev
    if bool((rows == rows[0]).all()):
        ev["row_norm"] = float(rows[0].norm())
        return "identical rows", ev
    return None, ev


def _kinds(bad: list[tuple[str, str, object]]) -> str:
    kinds = sorted({k for _, k, _ in bad})
    return " or ".join(kinds)
