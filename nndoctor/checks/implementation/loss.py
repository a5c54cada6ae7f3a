"""Part III of REASONS.md: implementation issues — the loss and custom layers."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import LossCall, StepRecord
from nndoctor.probes.trace import recorded_module_inputs
from nndoctor.report.model import Where

_BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
_ELEMENTWISE = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", *_BINARY)


def _first_call(steps: list[StepRecord]) -> tuple[StepRecord, LossCall] | None:
    for s in steps:
        if s.loss_calls:
            return s, s.loss_calls[0]
    return None


def chance_loss(call: LossCall) -> tuple[float, str] | None:
    """The loss of an uninformed predictor for this call, and how it was derived."""
    reduction = call.kwargs.get("reduction", "mean")
    if reduction not in ("mean", "sum"):
        return None
    shape = call.input_shape
    if call.fn in ("cross_entropy", "nll_loss") and len(shape) >= 2:
        c = shape[1]
        value, how = math.log(c), f"ln({c}) for {c}-class cross-entropy (uniform prediction)"
        per = math.prod(shape) / c
    elif call.fn in _BINARY:
        value, how = math.log(2), "ln 2 per output (p = 0.5)"
        per = math.prod(shape)
    elif call.fn == "mse_loss" and call.target is not None and math.isfinite(call.target.std):
        value, how = call.target.std**2, "the variance of the targets (predicting their mean)"
        per = math.prod(shape)
    else:
        return None
    if reduction == "sum":
        value, how = value * per, how + f", summed over {int(per)} elements"
    return value, how


@register_check(id="loss-not-at-chance", reasons=(17,), severity="warning")
def loss_not_at_chance(ctx: CheckContext) -> None:
    """The loss at initialisation is far from the chance level of the task.

    Why it matters:
        A freshly initialised model should be uninformed: C-class cross-entropy starts
        near ln(C), binary cross-entropy near ln 2 per output, MSE near the variance of
        the targets. A much higher start means outputs that are confidently wrong from
        the first step — a bad initialisation, unscaled inputs, a wrong loss input —
        and the first part of training is spent undoing it.

    What is measured:
        The recognised loss at the initial weights (the first observed step, or the mean
        over a few captured batches evaluated on a copy at the initial weights), against
        the chance value derived from the loss call and its targets.

    How to fix:
        Use the framework's default initialisation (or Kaiming/Xavier), keep the last
        layer's weights small, initialise its bias to the class prior (or to the target
        mean for regression), and standardise the inputs.

    Example:
        Before::

            nn.init.normal_(model.head.weight, std=5.0)   # confident logits at step 0

        After::

            nn.init.zeros_(model.head.weight)             # or PyTorch's default init
            nn.init.constant_(model.head.bias, 0.0)
    """
    first = _first_call(ctx.recording.steps)
    if first is None:
        ctx.skip("no recognised torch loss was called (a custom loss has no defined chance level)")
    step, call = first
    chance = chance_loss(call)
    if chance is None:
        ctx.skip(f"no chance level is defined for {call.fn} with these arguments")
    value, how = chance
    initial = call.value
    source = f"the loss at step {step.step}"
    lab = ctx.services
    if lab is not None and lab.available and step.step == 0:
        model = lab.fresh_model()
        losses = lab.evaluate(model, lab.batches(4))
        finite = [x for x in losses if math.isfinite(x)]
        if finite:
            initial = sum(finite) / len(finite)
            source = f"the mean loss of the initial weights over {len(finite)} batch(es)"
    if not math.isfinite(initial):
        ctx.skip("the initial loss is not finite (see the non-finite check)")
    t = ctx.thresholds
    ratio = initial / value if value > 0 else math.inf
    ctx.note(f"initial loss {initial:.4g} vs chance {value:.4g} ({how})")
    if initial <= value * t.chance_ratio_warning + t.chance_abs_margin:
        return
    severity = "error" if initial > value * t.chance_ratio_error + t.chance_abs_margin else "warning"
    ctx.finding(
        title="The loss at initialisation is far above chance",
        message=(
            f"The {call.fn} loss starts at {initial:.4g} ({source}), {ratio:.1f}× the chance "
            f"level {value:.4g} — {how}. The model is confidently wrong before it has learned anything."
        ),
        fix=(
            "Check the initialisation of the last layers (default init, small output weights, "
            "bias at the class prior or target mean) and that the inputs are standardised."
        ),
        severity=severity,
        reasons=(17, 28),
        where=Where(step=step.step, file=call.file, line=call.line),
        evidence={"initial_loss": initial, "chance": value, "ratio": ratio, "loss": call.fn},
    )


@register_check(id="loss-input-mismatch", reasons=(19,), severity="error")
def loss_input_mismatch(ctx: CheckContext) -> None:
    """The loss receives the wrong kind of input: probabilities, logits or shapes it does not expect.

    Why it matters:
        CrossEntropyLoss applies log-softmax itself: feeding it softmax outputs squashes
        the gradients and the loss plateaus. NLLLoss expects log-probabilities, BCELoss
        probabilities, BCEWithLogitsLoss raw logits. Elementwise losses broadcast silently
        when output and target shapes differ ((N, 1) against (N,) becomes (N, N)), so
        every prediction is compared with every target.

    What is measured:
        For every recognised loss call: the range of the input, whether its rows sum to one
        (probabilities) or have zero logsumexp (log-probabilities), and the input and target
        shapes and dtypes.

    How to fix:
        Give CrossEntropyLoss and BCEWithLogitsLoss the raw logits (no softmax/sigmoid in the
        model's forward), give NLLLoss log_softmax outputs, and make output and target shapes
        equal for elementwise losses (``out.squeeze(1)`` or ``target.unsqueeze(1)``).

    Example:
        Before::

            logits = model(x)
            loss = nn.CrossEntropyLoss()(logits.softmax(dim=1), y)

        After::

            loss = nn.CrossEntropyLoss()(model(x), y)
    """
    calls = [(s, c) for s in ctx.recording.steps for c in s.loss_calls]
    if not calls:
        ctx.skip("no recognised torch loss was called")
    tol = ctx.thresholds.probability_sum_tolerance
    by_fn: dict[str, list[tuple[StepRecord, LossCall]]] = {}
    for s, c in calls:
        by_fn.setdefault(c.fn, []).append((s, c))
    ctx.note(f"{len(calls)} loss call(s) of {', '.join(sorted(by_fn))} inspected")
    for fn, items in by_fn.items():
        stats = [c.input_stats for _, c in items if c.input_stats]
        step0, c0 = items[0]
        where = Where(step=step0.step, file=c0.file, line=c0.line)
        if not stats:
            continue
        lo = min(s["min"] for s in stats)
        hi = max(s["max"] for s in stats)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            # Non-finite loss inputs are the NaN check's finding; their kind cannot be judged.
            continue
        rowsum = max(s["rowsum_dev"] for s in stats)
        lse = max(s["logsumexp_dev"] for s in stats)
        evidence = {"loss": fn, "input_min": lo, "input_max": hi, "max_rowsum_minus_1": rowsum,
                    "max_abs_logsumexp": lse, "input_shape": list(c0.input_shape)}
        if fn == "cross_entropy" and lo >= 0 and hi <= 1 and rowsum < tol and len(c0.input_shape) >= 2:
            ctx.finding(
                title="Softmax applied before CrossEntropyLoss",
                message=(
                    f"The input of cross_entropy lies in [{lo:.3g}, {hi:.3g}] and every row sums to 1 "
                    f"(max deviation {rowsum:.2g}): these are probabilities, but cross_entropy applies "
                    "log-softmax itself, so the gradients are squashed and training stalls."
                ),
                fix="Remove the softmax: pass the raw logits to CrossEntropyLoss (apply softmax only for predictions).",
                where=where,
                evidence=evidence,
            )
        elif fn == "nll_loss" and (hi > tol or lse > 0.01):
            kind = "probabilities (softmax)" if lo >= 0 and rowsum < tol else "raw logits"
            ctx.finding(
                title=f"NLLLoss receives {kind}, not log-probabilities",
                message=(
                    f"nll_loss expects log-probabilities (all ≤ 0, logsumexp 0 per row) but its input lies in "
                    f"[{lo:.3g}, {hi:.3g}] with |logsumexp| up to {lse:.3g}: the loss is not a likelihood and "
                    "can fall without bound."
                ),
                fix="Apply log_softmax before NLLLoss, or use CrossEntropyLoss on the raw logits.",
                where=where,
                evidence=evidence,
            )
        elif fn == "binary_cross_entropy_with_logits" and lo >= 0 and hi <= 1:
            ctx.finding(
                title="Sigmoid applied before BCEWithLogitsLoss",
                message=(
                    f"The input of binary_cross_entropy_with_logits stays in [{lo:.3g}, {hi:.3g}] at every "
                    "observed step: these look like sigmoid outputs, which the loss passes through a "
                    "second sigmoid, so predictions can never leave (0.5, 0.73)."
                ),
                fix="Remove the sigmoid from the model output; BCEWithLogitsLoss applies it.",
                where=where,
                evidence=evidence,
            )
        _check_shapes(ctx, fn, c0, where)


def _check_shapes(ctx: CheckContext, fn: str, call: LossCall, where: Where) -> None:
    if fn not in _ELEMENTWISE or call.target_shape is None:
        return
    if tuple(call.input_shape) == tuple(call.target_shape):
        return
    try:
        broadcast = tuple(torch.broadcast_shapes(call.input_shape, call.target_shape))
    except RuntimeError:
        return
    ctx.finding(
        title="Output and target shapes broadcast inside the loss",
        message=(
            f"{fn} compares an output of shape {tuple(call.input_shape)} with a target of shape "
            f"{tuple(call.target_shape)}; they broadcast to {broadcast}, so each prediction is compared "
            "with other samples' targets and the loss cannot be minimised correctly."
        ),
        fix="Make the shapes equal: `out.squeeze(-1)` or `target.view_as(out)` before the loss.",
        reasons=(19, 25),
        where=where,
        evidence={"input_shape": list(call.input_shape), "target_shape": list(call.target_shape),
                  "broadcast_shape": list(broadcast)},
    )


# -- gradient check ---------------------------------------------------------------------

_GRADCHECK_DIRECTIONS = 3


def _is_user_module(m: nn.Module) -> bool:
    return not (type(m).__module__ or "").startswith("torch.")


def _definition(m: nn.Module) -> tuple[str | None, int | None]:
    try:
        return inspect.getsourcefile(type(m)), inspect.getsourcelines(type(m))[1]
    except (OSError, TypeError):
        return None, None


@register_check(id="custom-layer-gradient", reasons=(22, 26), severity="error", kind="experiment", quick=True)
def custom_layer_gradient(ctx: CheckContext) -> None:
    """A user-written layer's backward does not match its forward (float64 gradient check).

    Why it matters:
        Layers from torch.nn are tested; your own modules and autograd Functions are not.
        A wrong backward (a missing factor, a wrong sign, a transposed matrix) still trains
        — in the wrong direction — and nothing else in the loss curve says why.

    What is measured:
        For each user-defined module class (one instance each), on a tiny input recorded from
        a real forward pass, in float64: the analytic directional derivative (autograd) against
        central finite differences, along random directions in its inputs and parameters.

    How to fix:
        Fix the backward of the autograd.Function the module uses (or drop the custom
        backward and let autograd differentiate the forward); test it with
        torch.autograd.gradcheck on float64 inputs.

    Example:
        Before::

            class Square(torch.autograd.Function):
                @staticmethod
                def backward(ctx, g):
                    x, = ctx.saved_tensors
                    return g * x          # should be 2 * x

        After::

            return g * 2 * x
    """
    lab = ctx.services
    if lab is None or not lab.has_model:
        ctx.skip("no model copy is available for the gradient check")
    model = lab.fresh_model(dtype=torch.float64).eval()
    classes: dict[type, str] = {}
    for name, m in model.named_modules():
        if _is_user_module(m) and type(m) not in classes:
            classes[type(m)] = name
    if not classes:
        ctx.skip("the model is built only from torch.nn layers, which are trusted")
    names = set(list(classes.values())[:12])
    args = _to_double(_slice(lab.model_inputs(1)[0], ctx.thresholds.gradcheck_max_inputs))
    with recorded_module_inputs(model, names) as seen, torch.no_grad():
        model(*args)
    t = ctx.thresholds
    failures: dict[str, dict[str, Any]] = {}
    checked = 0
    generator = torch.Generator(device="cpu").manual_seed(0)
    for name in names:
        if name not in seen:
            continue
        module = model.get_submodule(name)
        result = _directional_check(module, *seen[name], t, generator)
        if result is None:
            continue
        checked += 1
        if not result["ok"]:
            failures[name] = result
    ctx.note(f"{checked} user-defined module class(es) gradient-checked in float64")
    # Report the innermost failures: a parent fails whenever a child does.
    innermost = [n for n in failures if not any(o != n and o.startswith(n + ".") or (n == "" and o) for o in failures)]
    for name in innermost:
        r = failures[name]
        module = model.get_submodule(name)
        file, line = _definition(module)
        ctx.finding(
            title=f"Wrong gradient in custom layer {type(module).__name__}",
            message=(
                f"In float64, the analytic directional derivative of {type(module).__name__} "
                f"({name or 'the model'}) is {r['analytic']:.6g} but finite differences give "
                f"{r['numeric']:.6g} (relative error {r['rel_error']:.2g}): its backward does not "
                "compute the gradient of its forward."
            ),
            fix=(
                "Fix the backward of the autograd.Function this module uses, or remove the custom "
                "backward; verify with torch.autograd.gradcheck on float64 inputs."
            ),
            where=Where(module=name, file=file, line=line),
            evidence={k: r[k] for k in ("analytic", "numeric", "rel_error", "directions")},
        )


def _slice(args: tuple[Any, ...], n: int) -> tuple[Any, ...]:
    first = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() > 0), None)
    if first is None:
        return args
    size = first.shape[0]
    return tuple(a[:n] if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == size else a for a in args)


def _to_double(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().double() if obj.is_floating_point() else obj
    if isinstance(obj, tuple):
        return tuple(_to_double(o) for o in obj)
    if isinstance(obj, list):
        return [_to_double(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _to_double(v) for k, v in obj.items()}
    return obj


def _float_leaves(obj: Any, out: list[torch.Tensor]) -> Any:
    """Replace float tensors by leaves that require grad; collect them in ``out``."""
    if isinstance(obj, torch.Tensor) and obj.is_floating_point():
        leaf = obj.detach().clone().requires_grad_(True)
        out.append(leaf)
        return leaf
    if isinstance(obj, tuple):
        return tuple(_float_leaves(o, out) for o in obj)
    if isinstance(obj, list):
        return [_float_leaves(o, out) for o in obj]
    if isinstance(obj, dict):
        return {k: _float_leaves(v, out) for k, v in obj.items()}
    return obj


def _output_sum(out: Any, weights: list[torch.Tensor] | None, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
    tensors = [t for t in _flat(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if weights is None:
        weights = [torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in tensors]
    total = sum((t * w).sum() for t, w in zip(tensors, weights, strict=True))
    return total, weights  # type: ignore[return-value]


def _flat(obj: Any) -> list[Any]:
    if isinstance(obj, (tuple, list)):
        return [x for o in obj for x in _flat(o)]
    if isinstance(obj, dict):
        return [x for o in obj.values() for x in _flat(o)]
    return [obj]


def _directional_check(
    module: nn.Module, args: Any, kwargs: dict[str, Any], t: Any, generator: torch.Generator
) -> dict[str, Any] | None:
    params = {n: p.detach().clone() for n, p in module.named_parameters() if p.is_floating_point()}
    buffers = {n: b for n, b in module.named_buffers()}
    leaves: list[torch.Tensor] = []
    args_l = _float_leaves(args, leaves)
    kwargs_l = _float_leaves(kwargs, leaves)
    p_leaves = {n: p.requires_grad_(True) for n, p in params.items()}
    variables = leaves + list(p_leaves.values())
    if not variables:
        return None

    def f(a: Any, k: Any, p: dict[str, torch.Tensor]) -> Any:
        return functional_call(module, {**p, **buffers}, a, k)

    try:
        out = f(args_l, kwargs_l, p_leaves)
        total, weights = _output_sum(out, None, generator)
        if not isinstance(total, torch.Tensor) or not total.requires_grad:
            return None
        grads = torch.autograd.grad(total, variables, allow_unused=True)
    except (RuntimeError, TypeError, ValueError):
        return None
    eps = t.gradcheck_eps
    worst: dict[str, Any] = {"ok": True, "analytic": 0.0, "numeric": 0.0, "rel_error": 0.0,
                             "directions": _GRADCHECK_DIRECTIONS}
    with torch.no_grad():
        for _ in range(_GRADCHECK_DIRECTIONS):
            dirs = [torch.randn(v.shape, generator=generator, dtype=v.dtype).to(v.device) for v in variables]
            analytic = sum(
                float((g * d).sum()) for g, d in zip(grads, dirs, strict=True) if g is not None
            )
            plus = _shifted(f, args, kwargs, params, leaves, p_leaves, dirs, eps)
            minus = _shifted(f, args, kwargs, params, leaves, p_leaves, dirs, -eps)
            if plus is None or minus is None:
                return None
            fp, _ = _output_sum(plus, weights, generator)
            fm, _ = _output_sum(minus, weights, generator)
            numeric = float((fp - fm) / (2 * eps))
            err = abs(analytic - numeric)
            rel = err / max(abs(numeric), abs(analytic), 1e-12)
            if err > t.gradcheck_atol + t.gradcheck_rtol * abs(numeric) and rel > worst["rel_error"]:
                worst = {"ok": False, "analytic": analytic, "numeric": numeric, "rel_error": rel,
                         "directions": _GRADCHECK_DIRECTIONS}
    return worst


def _shifted(f: Any, args: Any, kwargs: Any, params: dict[str, torch.Tensor], leaves: list[torch.Tensor],
             p_leaves: dict[str, torch.Tensor], dirs: list[torch.Tensor], eps: float) -> Any:
    n_in = len(leaves)
    shifted_inputs = iter([leaf.detach() + eps * d for leaf, d in zip(leaves, dirs[:n_in], strict=True)])

    def replace(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor) and obj.is_floating_point():
            return next(shifted_inputs)
        if isinstance(obj, tuple):
            return tuple(replace(o) for o in obj)
        if isinstance(obj, list):
            return [replace(o) for o in obj]
        if isinstance(obj, dict):
            return {k: replace(v) for k, v in obj.items()}
        return obj

    a = replace(args)
    k = replace(kwargs)
    p = {n: v.detach() + eps * d for (n, v), d in zip(p_leaves.items(), dirs[n_in:], strict=True)}
    try:
        return f(a, k, p)
    except (RuntimeError, TypeError, ValueError):
        return None
