"""Custom layers: float64 gradient check, batch independence, causality of next-token
models, bottlenecks."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nndoctor.checks import causes
from nndoctor.checks.implementation.graph_batches import GraphBatch, graph_batch, graph_dependence
from nndoctor.checks.lab import NO_POSITIONAL_CALL, same_noise
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.copying import set_training
from nndoctor.probes.functions import (
    FunctionCall,
    custom_function_classes,
    differentiated_through_forward,
    recorded_function_calls,
    run_forward,
)
from nndoctor.probes.internals import (
    OutputKey,
    layers_fed,
    state_restored_at_each_call,
    visit_module_outputs,
)
from nndoctor.probes.layers import BATCH_NORM, CONV, LINEAR
from nndoctor.probes.recording import Recording
from nndoctor.probes.stats import holds_ids
from nndoctor.probes.trace import recorded_module_inputs
from nndoctor.report.model import Where
from nndoctor.subject import fix_batch_statistics, leading_sizes
from nndoctor.trees import map_tensors, tensors, tree_leaves

_GRADCHECK_DIRECTIONS = 3


def _device_of(module: nn.Module) -> torch.device:
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def _is_user_module(m: nn.Module) -> bool:
    return not (type(m).__module__ or "").startswith("torch.")


def _definition(m: nn.Module) -> tuple[str | None, int | None]:
    try:
        return inspect.getsourcefile(type(m)), inspect.getsourcelines(type(m))[1]
    except (OSError, TypeError):
        return None, None


@register_check(
    id="custom-layer-gradient",
    reasons=(22, 26),
    severity="error",
    kind="experiment",
    quick=True,
    priority=12,
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def custom_layer_gradient(ctx: CheckContext) -> None:
    """A user-written layer's backward does not match its forward (float64 gradient check).

    Why it matters:
        Layers from torch.nn are tested; your own modules and autograd Functions are not.
        A wrong backward (a missing factor, a wrong sign, a transposed matrix) still trains
        — in the wrong direction — and nothing else in the loss curve says why.

    What is measured:
        For each user-defined module class (one instance each) whose forward runs a custom
        ``torch.autograd.Function`` (a backward written by hand), on a tiny input recorded
        from a real forward pass, in float64: the analytic directional derivative (autograd)
        against central finite differences, along random directions in its inputs and
        parameters. Modules of torch operations alone are differentiated by autograd and
        not checked (where they stop gradients on purpose, with ``no_grad`` or ``detach``,
        finite differences disagree by design). A
        layer fails when every direction disagrees (a kink of ReLU or max-pooling crossed by
        the finite difference makes one direction disagree now and then; a wrong backward
        makes all of them disagree). Two kinds of Function are written so that their
        backward is not their forward's derivative, and are left out (the rest of the
        module is checked with them differentiated as their forward): one whose forward
        passes its input through unchanged and whose backward multiplies the gradient by a
        constant (gradient reversal, gradient scaling), and one
        whose forward is piecewise constant (a spike's step, a binarising sign, a rounding:
        its backward is a surrogate or straight-through gradient).

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
    model = set_training(lab.fresh_model(dtype=torch.float64), False)
    classes: dict[type, str] = {}
    for name, m in model.named_modules():
        if _is_user_module(m) and type(m) not in classes:
            classes[type(m)] = name
    if not classes:
        ctx.skip("the model is built only from torch.nn layers, which are trusted")
    names = list(classes.values())[:12]  # in definition order, so runs are reproducible
    calls = lab.model_inputs(1)
    if not calls:
        ctx.skip(NO_POSITIONAL_CALL)
    args = _to_double(batch_slice(calls[0], ctx.thresholds.gradcheck_max_inputs))
    with recorded_module_inputs(model, names) as seen, torch.no_grad():
        _call_cut(ctx, model, args)
    t = ctx.thresholds
    failures: dict[str, dict[str, Any]] = {}
    by_design: dict[type, str] = {}
    checked = 0
    generator = torch.Generator(device="cpu").manual_seed(0)
    for name in names:
        if name not in seen:
            continue
        module = model.get_submodule(name)
        result, left_out = _directional_check(module, *seen[name], t, generator)
        by_design.update(left_out)
        if result is None:
            continue
        checked += 1
        if not result["ok"]:
            failures[name] = result
    left_out = "".join(
        f"; {function.__name__}'s backward is not gradient-checked: its forward {why} by design"
        for function, why in by_design.items()
    )
    ctx.note(
        f"{checked} user-defined module class(es) with a custom backward gradient-checked in "
        f"float64{left_out}"
    )
    # Report the innermost failures: a parent fails whenever a child does.
    innermost = [
        n
        for n in failures
        if not any(o != n and o.startswith(n + ".") or (n == "" and o) for o in failures)
    ]
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
            evidence={
                k: r[k]
                for k in ("analytic", "numeric", "rel_error", "directions", "failed_directions")
            },
        )


def batch_slice(args: tuple[Any, ...], n: int, axis: int = 0) -> tuple[Any, ...]:
    """The first ``n`` entries along the batch ``axis`` of every argument that shares the
    first argument's size there (the others are passed whole). On axis 0 only the
    arguments themselves are cut, unless every tensor nested in them holds the batch
    first too; on a later axis (sequence-first data) tensors nested in
    them too (an RNN's hidden state ``(layers, batch, hidden)`` holds the batch there), and
    vectors of one value per sample (the sequences' lengths) along their only axis."""
    first = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() > axis), None)
    if first is None:
        return args
    size = first.shape[axis]
    if axis > 0:

        def cut(t: torch.Tensor) -> torch.Tensor:
            at = _sample_axis(t, axis, size)
            return _first_rows(t, n, at) if at >= 0 else t

        return map_tensors(cut, args)
    nests = any(not isinstance(a, torch.Tensor) and tensors(a) for a in args)
    if nests and all(t.dim() > 0 and t.shape[0] == size for t in tensors(args)):
        # Every tensor, those inside tuples and dicts too ((context, target) queries), holds
        # the batch first: all are cut.
        return map_tensors(lambda t: _first_rows(t, n, 0), args)
    return tuple(
        _first_rows(a, n, 0)
        if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == size
        else a
        for a in args
    )


def _first_rows(t: torch.Tensor, n: int, axis: int) -> torch.Tensor:
    """The first ``n`` entries of ``t`` along ``axis`` (all of them when it holds fewer:
    one bag per batch); a sparse tensor (a graph's adjacency) by index, since it has no
    strided views."""
    n = min(n, t.shape[axis])
    if t.layout == torch.strided:
        return t.narrow(axis, 0, n)
    return t.index_select(axis, torch.arange(n, device=t.device))


def _sample_axis(t: torch.Tensor, axis: int, n: int) -> int:
    """The axis of ``t`` that holds the ``n`` samples of a batch whose input has them on
    ``axis``: that axis, or the first of a vector of one value per sample (the lengths
    beside sequence-first data) or of a matrix of one row per sample (a key padding mask,
    ``(batch, seq)`` by PyTorch's convention even beside sequence-first data); -1 when
    ``t`` holds no batch."""
    if t.dim() > axis and t.shape[axis] == n:
        return axis
    return 0 if t.dim() in (1, 2) and t.shape[0] == n else -1


def _to_double(obj: Any) -> Any:
    return map_tensors(lambda t: t.detach().double() if t.is_floating_point() else t, obj)


def _float_leaves(obj: Any, out: list[torch.Tensor]) -> Any:
    """Replace float tensors by leaves that require grad; collect them in ``out`` (in
    ``tree_leaves`` order, the order ``_shifted`` replaces them in)."""

    def leaf(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t
        out.append(t.detach().clone().requires_grad_(True))
        return out[-1]

    return map_tensors(leaf, obj)


def _output_sum(
    out: Any, weights: list[torch.Tensor] | None, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    tensors = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if weights is None:
        weights = [
            torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in tensors
        ]
    total = sum((t * w).sum() for t, w in zip(tensors, weights, strict=True))
    return total, weights  # type: ignore[return-value]


def _gradients_by_design(
    f: Callable[..., Any],
    args: Any,
    kwargs: Any,
    params: dict[str, torch.Tensor],
    functions: list[type],
    eps: float,
    generator: torch.Generator,
) -> dict[type, str]:
    """The custom Functions whose backward is, by design, not the derivative of their
    forward, with why. Two kinds are written for that alone. A Function whose forward passes
    its input through unchanged and whose backward multiplies the gradient by a constant
    exists to change the gradient (gradient reversal, gradient scaling). A Function whose
    forward is piecewise constant (a step, a sign, a rounding) has a derivative of zero
    almost everywhere, so its backward is a surrogate or straight-through gradient. Finite
    differences cannot judge either; a backward written for any other forward can be (an
    identity forward whose backward is not one constant times the gradient is checked)."""
    with recorded_function_calls(functions) as calls, torch.no_grad():
        f(args, kwargs, params)
    by_design: dict[type, str] = {}
    for function in functions:
        own = [c for c in calls if c.function is function]
        if not own:
            continue
        if all(_passes_input_through(c) and _scales_the_gradient(c, generator) for c in own):
            by_design[function] = (
                "passes its input through unchanged, so it exists to change the gradient "
                "(gradient reversal or scaling)"
            )
        elif all(_piecewise_constant(c, eps, generator) for c in own):
            by_design[function] = (
                "is piecewise constant (a step, sign or rounding), so its backward is a "
                "surrogate or straight-through gradient"
            )
    return by_design


def _passes_input_through(call: FunctionCall) -> bool:
    inputs = [a for a in tensors(call.args) if a.is_floating_point()]
    return bool(call.outputs) and all(
        any(a.shape == o.shape and a.dtype == o.dtype and torch.equal(a, o) for a in inputs)
        for o in call.outputs
    )


def _scales_the_gradient(call: FunctionCall, generator: torch.Generator) -> bool:
    """Whether the Function's backward returns the incoming gradient times one constant
    other than 1 (for an identity forward, a backward that returns it unchanged is simply
    right, and is checked as such)."""
    try:
        with torch.enable_grad():
            leaves: list[torch.Tensor] = []
            args = _float_leaves(call.args, leaves)
            outs = [
                t
                for t in tensors(call.function.apply(*args))
                if t.is_floating_point() and t.requires_grad
            ]
            if len(outs) != 1 or not leaves:
                return False
            g = torch.randn(outs[0].shape, generator=generator, dtype=outs[0].dtype)
            found = torch.autograd.grad(outs, leaves, [g.to(outs[0].device)], allow_unused=True)
    except Exception:  # noqa: BLE001 - a Function that cannot run on its own is judged as written
        return False
    g = g.to(outs[0].device)
    for grad in found:
        if grad is None or grad.shape != g.shape:
            continue
        scale = float((grad * g).sum() / (g * g).sum())
        if abs(scale - 1) > 1e-6 and torch.allclose(grad, scale * g, rtol=1e-6, atol=1e-12):
            return True
    return False


def _piecewise_constant(call: FunctionCall, eps: float, generator: torch.Generator) -> bool:
    """Whether a step of ``eps`` (relative to each input's scale) along a random direction,
    either way, leaves every float output exactly as it was."""
    if not call.outputs or not any(a.is_floating_point() for a in tensors(call.args)):
        return False

    def moved(sign: float) -> Any:
        def move(t: torch.Tensor) -> torch.Tensor:
            if not t.is_floating_point():
                return t
            d = torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)
            return t + sign * eps * (t.abs().mean() + eps) * d

        return map_tensors(move, call.args)

    try:
        with torch.no_grad():
            for sign in (1.0, -1.0):
                out = tensors(run_forward(call.function, moved(sign)))
                floats = [t for t in out if t.is_floating_point()]
                if len(floats) != len(call.outputs) or not all(
                    a.shape == b.shape and torch.equal(a, b)
                    for a, b in zip(floats, call.outputs, strict=True)
                ):
                    return False
    except Exception:  # noqa: BLE001 - a forward that cannot run on its own is judged as written
        return False
    return True


def _directional_check(
    module: nn.Module, args: Any, kwargs: dict[str, Any], t: Any, generator: torch.Generator
) -> tuple[dict[str, Any] | None, dict[type, str]]:
    """The worst disagreement of the module's analytic and numeric directional derivatives
    (None when nothing in it can be checked), and the custom Functions left out by design."""
    params = {n: p.detach().clone() for n, p in module.named_parameters() if p.is_floating_point()}
    buffers = dict(module.named_buffers())
    # Move the point off exact kinks: a masked (all-zero) region puts every ReLU behind it
    # at exactly 0, where finite differences and autograd legitimately disagree.
    args = _jitter(args, generator)
    kwargs = _jitter(kwargs, generator)
    leaves: list[torch.Tensor] = []
    args_l = _float_leaves(args, leaves)
    kwargs_l = _float_leaves(kwargs, leaves)
    p_leaves = {n: p.requires_grad_(True) for n, p in params.items()}
    variables = leaves + list(p_leaves.values())
    if not variables:
        return None, {}

    device = _device_of(module)

    def f(a: Any, k: Any, p: dict[str, torch.Tensor]) -> Any:
        with same_noise(device):
            return functional_call(module, {**p, **buffers}, a, k)

    try:
        out = f(args_l, kwargs_l, p_leaves)
        total, weights = _output_sum(out, None, generator)
        if not isinstance(total, torch.Tensor) or not total.requires_grad:
            return None, {}
        functions = custom_function_classes(total)
        if not functions:
            return None, {}
        by_design = _gradients_by_design(
            f, args, kwargs, params, functions, t.gradcheck_eps, generator
        )
        if len(by_design) == len(functions):
            return None, by_design
        # The others are checked with these differentiated as their forward.
        with differentiated_through_forward(list(by_design)):
            out = f(args_l, kwargs_l, p_leaves)
            total, _ = _output_sum(out, weights, generator)
            grads = torch.autograd.grad(total, variables, allow_unused=True)
    except (RuntimeError, TypeError, ValueError):
        return None, {}
    eps = t.gradcheck_eps
    failed = 0
    worst: dict[str, Any] = {
        "ok": True,
        "analytic": 0.0,
        "numeric": 0.0,
        "rel_error": 0.0,
        "directions": _GRADCHECK_DIRECTIONS,
    }
    with torch.no_grad():
        for _ in range(_GRADCHECK_DIRECTIONS):
            dirs = [
                torch.randn(v.shape, generator=generator, dtype=v.dtype).to(v.device)
                for v in variables
            ]
            analytic = sum(
                float((g * d).sum()) for g, d in zip(grads, dirs, strict=True) if g is not None
            )
            numeric = None
            # A kink crossed by the finite difference gives an error that shrinks with the
            # step (fewer units sit that close to their kink); a wrong backward's does not.
            # So a direction fails only when it disagrees at every step size.
            for step in (eps, eps * _KINK_RETRY_FACTOR):
                numeric = _central_difference(
                    f, args, kwargs, params, leaves, p_leaves, dirs, step, weights, generator
                )
                if numeric is None:
                    return None, by_design
                if abs(analytic - numeric) <= t.gradcheck_atol + t.gradcheck_rtol * abs(numeric):
                    break
            assert numeric is not None
            err = abs(analytic - numeric)
            rel = err / max(abs(numeric), abs(analytic), 1e-12)
            if err > t.gradcheck_atol + t.gradcheck_rtol * abs(numeric):
                failed += 1
                if rel > worst["rel_error"]:
                    worst = {
                        "ok": False,
                        "analytic": analytic,
                        "numeric": numeric,
                        "rel_error": rel,
                        "directions": _GRADCHECK_DIRECTIONS,
                    }
    # A wrong backward fails along every direction; a ReLU or max-pool kink crossed by the
    # finite difference fails along one now and then. Only the first is a finding.
    worst["ok"] = failed < _GRADCHECK_DIRECTIONS
    worst["failed_directions"] = failed
    return worst, by_design


JITTER = 1e-3  # relative to each input's own scale
# batch-dependence's nudge: the changed sample moved by this share of its scale, in this many
# random directions (float64: a continuous coupling of 1e-9 still shows as a change).
NUDGE = 1e-6
NUDGE_TRIALS = 3
_KINK_RETRY_FACTOR = 1e-2  # a disagreeing direction is retried with a step this much smaller


def _central_difference(
    f: Any,
    args: Any,
    kwargs: Any,
    params: dict[str, torch.Tensor],
    leaves: list[torch.Tensor],
    p_leaves: dict[str, torch.Tensor],
    dirs: list[torch.Tensor],
    eps: float,
    weights: list[torch.Tensor],
    generator: torch.Generator,
) -> float | None:
    plus = _shifted(f, args, kwargs, params, leaves, p_leaves, dirs, eps)
    minus = _shifted(f, args, kwargs, params, leaves, p_leaves, dirs, -eps)
    if plus is None or minus is None:
        return None
    fp, _ = _output_sum(plus, weights, generator)
    fm, _ = _output_sum(minus, weights, generator)
    return float((fp - fm) / (2 * eps))


def _jitter(obj: Any, generator: torch.Generator) -> Any:
    def jitter(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            return t
        noise = torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device)
        return t + noise * JITTER * (t.detach().abs().mean() + JITTER)

    return map_tensors(jitter, obj)


def _shifted(
    f: Any,
    args: Any,
    kwargs: Any,
    params: dict[str, torch.Tensor],
    leaves: list[torch.Tensor],
    p_leaves: dict[str, torch.Tensor],
    dirs: list[torch.Tensor],
    eps: float,
) -> Any:
    n_in = len(leaves)
    shifted_inputs = iter(
        [leaf.detach() + eps * d for leaf, d in zip(leaves, dirs[:n_in], strict=True)]
    )

    def replace(t: torch.Tensor) -> torch.Tensor:
        return next(shifted_inputs) if t.is_floating_point() else t

    # The same order as _float_leaves took the inputs in.
    a = map_tensors(replace, args)
    k = map_tensors(replace, kwargs)
    p = {n: v.detach() + eps * d for (n, v), d in zip(p_leaves.items(), dirs[n_in:], strict=True)}
    try:
        return f(a, k, p)
    except (RuntimeError, TypeError, ValueError):
        return None


@register_check(
    id="batch-dependence",
    reasons=(25,),
    severity="error",
    kind="experiment",
    quick=True,
    priority=13,
    explains=causes.FIT_SYMPTOMS | causes.LABEL_SYMPTOMS,
)
def batch_dependence(ctx: CheckContext) -> None:
    """One sample's output depends on other samples in the batch.

    Why it matters:
        Each sample's prediction should depend on that sample only. A ``view`` or
        ``reshape`` that folds the batch axis into the features, a transpose before a
        flatten, or a reduction over the wrong axis mixes samples silently: shapes still
        match, the loss still falls a little, and the model learns nonsense.

    What is measured:
        On a copy in eval mode (BatchNorm then uses running statistics, so its legitimate
        mixing in train mode is excluded; dropout is off), the output for every sample
        before and after the *other* samples of the batch are changed, every call starting
        from the same parameters and buffers (a forward that writes its own state, as
        MoCo's queue of negatives does, would answer the second call from the first's
        batch). A sample is changed by noise of its own scale (integer ids take the next
        sample's); a model that refuses the noise (category codes kept in a float matrix
        and cast to indices inside) has each changed sample replaced by the next one. Any
        change beyond floating-point noise (``batch_dependence_rtol``) is a dependence, but
        for an output holding pairs of samples (two axes of the batch's size among its
        first two: a kernel or similarity matrix between them, as a Gaussian process's
        deep kernel returns) the other samples' pairs with the changed one are its own to
        change and are left out (and in the reverse-order test below, its columns follow
        their samples too). Every
        submodule's output is compared too, and the first one in forward order that
        mixes the samples is named: its values for other samples change, whichever way
        it holds the batch (an axis of the batch's size among its first two, that axis
        flattened with another, batch or sequence first, or two such axes holding pairs
        of samples, as a similarity matrix does; a tensor with no such axis, or a packed
        sequence, is left out), other than one new row for the changed sample, every
        other row equal to one before wherever the network moved it (a batch sorted
        by length inside the model). A dependence that a nudge does not show (the changed
        sample moved by a millionth of its scale in three random directions, in float64,
        leaves every other output exactly as it was) comes from discrete decisions over
        the batch, such as a mixture of experts' capacity dropping tokens, and is a note:
        a view, reduction or attention across the batch moves the others by about the
        nudge times its coupling, never by exactly 0. Only floating inputs are nudged (a
        model fed integers alone keeps the error). Two designs mix on purpose and are a note
        too: a batch norm that keeps no running statistics (``track_running_stats=False``,
        as MAML's networks use) normalises every batch by its own statistics in eval mode
        as well, so it is first held at the batch's statistics and only other mixing
        counts; and a layer whose only effect on other samples is one statistic of the
        whole batch, the same value in every sample's row (a minibatch standard deviation
        appended as a feature, as ProGAN's discriminator does), hands each sample a summary
        of the batch rather than mixing samples into each other.
        Mixing inside with the outputs unchanged is a finding too: the mixed
        values reach the outputs alike for every sample (a class token that attends,
        across the batch, only to copies of itself) or not at all. There the submodule
        must mix the samples itself: a call whose positional inputs already differ beyond
        one row (a network called once per sample on that sample's rows, as a hierarchical
        attention network encodes each document's sentences; values mixed upstream) passes
        a change on and is not named. The model's outputs
        must also follow their samples when the batch is fed in reverse order (a
        positional encoding sliced along the batch axis makes each output depend on where
        its sample stands; a model whose eval outputs are random, or an input with two
        axes of the batch's size, is left out of this test). Where nothing names the batch
        axis (no loader batch size, per-sample target or sequence layer's layout) and axis 0,
        taken by convention, proves causal (each changed position moves only later ones,
        never earlier: a sequence-first language model's segments), the samples are taken
        along axis 1 instead and judged there. The same for each other trained network the
        script calls beside the model (a decoder beside its encoder, a GAN's second
        network; two at most), on the positional arguments of its first training call,
        batch first; a network whose call cannot be replayed so is left out. A model fed a
        graph batch (its graphs' nodes concatenated into one disconnected graph, a sorted
        vector of graph ids beside them, as graph libraries batch) has its graphs for
        samples: the node features of each of the first graphs are changed in turn and
        every other graph's outputs (rows per graph, or per node grouped by graph)
        compared, in float64 or, where the model makes float32 buffers of its own, in
        float32 against ``batch_dependence_rtol_float32``. A model whose sequence layers (an
        LSTM, a Transformer layer) all see a batch of one over as many positions as the
        input's first axis holds reads one sequence per call (a tagger fed one sentence at
        a time, ``.view(len(sentence), 1, -1)`` inside): there is no batch to judge.

    How to fix:
        Keep the batch axis first and intact: flatten with ``x.flatten(1)`` or
        ``x.view(x.size(0), -1)``, permute before reshaping, reduce over feature axes only.

    Example:
        Before::

            x = x.view(-1, 128)        # after a conv: mixes samples when shapes drift

        After::

            x = x.flatten(1)           # keeps the batch axis
    """
    lab = ctx.services
    if lab is None or not lab.has_model:
        ctx.skip("no model copy is available")
    main = _model_dependence(ctx, lab)
    others = [_other_dependence(name, model, args) for name, model, args in lab.other_models()]
    measured = [m for m in [main, *others] if isinstance(m, _Dependence)]
    if not measured:
        ctx.skip(main if isinstance(main, str) else "no model input could be replayed")
    ctx.note("; ".join(m.describe() for m in measured))
    base_rtol = ctx.thresholds.batch_dependence_rtol

    def rtol_of(m: _Dependence) -> float:
        return m.rtol if m.rtol is not None else base_rtol

    worst = max(measured, key=lambda m: m.delta / rtol_of(m))
    rtol = rtol_of(worst)
    if worst.delta > rtol and all(m.discrete for m in measured if m.delta > rtol_of(m)):
        ctx.note(
            ctx.detail + "; nudged by a millionth of its scale instead, the changed sample moves "
            "no other sample's output at all: the samples meet only through discrete "
            "decisions over the batch (an expert's capacity, a top-k across samples), as "
            "capacity-limited routing does by design"
        )
        return
    over = [m for m in measured if m.delta > rtol_of(m)]
    appended = [m.broadcast_first(rtol_of(m)) for m in over]
    if over and all(appended):
        ctx.note(
            ctx.detail + f"; the first layer that mixes the samples, `{appended[0]}`, only hands "
            "every sample one statistic of the whole batch, the same value in each sample's row "
            "(a minibatch standard deviation, as ProGAN's and StyleGAN's discriminators append), "
            "by design"
        )
        return
    if worst.delta <= rtol:
        if isinstance(main, _Dependence) and main.position and main.position[0] > rtol:
            _report_position_dependence(ctx, main)
            return
        _judge_internal_mixing(ctx, measured, rtol)
        return
    of = f" of {worst.network}" if worst.network else ""
    inside = worst.first_mixing(rtol)
    how = (
        "a softmax, normalisation or pooling runs over all the nodes of the batch instead of "
        "within each graph (by its graph ids)"
        if worst.unit == "graph"
        else "a reshape, view or reduction mixes the batch axis"
    )
    ctx.finding(
        title="Samples in a batch influence each other's outputs",
        message=(
            f"Changing {worst.unit} {worst.changed} of a batch of {worst.n} changed the "
            f"output{of} for {worst.unit} {worst.affected} by {worst.delta:.3g} (relative), with "
            f"the {'network' if worst.network else 'model'} in eval mode: {how}"
            + (f", first in `{inside[0]}`." if inside else ".")
        ),
        where=Where(module=inside[0]) if inside else None,
        fix=(
            "Reduce within each graph: a softmax, sum or normalisation grouped by the graph ids "
            "(`index_add_`/`scatter_reduce` over `batch`, torch_geometric.utils.softmax(x, batch))."
            if worst.unit == "graph"
            else "Keep the batch axis intact: `x.flatten(1)` instead of `x.view(-1, k)`, "
            "permute before reshape."
        ),
        evidence={
            **({"unit": worst.unit} if worst.unit != "sample" else {}),
            "changed_sample": worst.changed,
            "affected_sample": worst.affected,
            "relative_change": worst.delta,
            "batch": worst.n,
            **({"network": worst.network} if worst.network else {}),
            **({"first_mixing_module": inside[0]} if inside else {}),
        },
    )


def _report_position_dependence(ctx: CheckContext, dep: _Dependence) -> None:
    """No sample's output depends on another sample, but each depends on where in the batch
    it stands."""
    assert dep.position is not None
    delta, sample = dep.position
    ctx.finding(
        title="A sample's output depends on its position in the batch",
        message=(
            f"With the model in eval mode, the same {dep.n} samples fed in reverse order change "
            f"the output for sample {sample} by {delta:.3g} (relative), though changing the other "
            "samples does not: something is indexed along the batch axis. Most often a positional "
            "encoding or a learned position embedding sliced by the size of the batch axis and "
            "added along it (a sequence-first encoding, pe[:x.size(0)], applied to batch-first "
            "tensors, or a batch-first one to sequence-first tensors)."
        ),
        fix=(
            "Index positions along the sequence axis: for batch-first tensors add "
            "pe[:, : x.size(1)] shaped (1, seq, features); for sequence-first ones pe[: x.size(0)] "
            "shaped (seq, 1, features)."
        ),
        evidence={
            "relative_change": delta,
            "sample": sample,
            "batch": dep.n,
            "order": "reversed",
        },
    )


def _judge_internal_mixing(ctx: CheckContext, measured: list[_Dependence], rtol: float) -> None:
    """No output depends on another sample; a finding when a value inside a network does:
    the mixed values reach the outputs alike for every sample, or not at all (a class
    token that attends across the batch only to copies of itself)."""
    for dep in measured:
        inside = dep.first_own_mixing(rtol)
        if inside is None:
            continue
        module, delta = inside
        of = f" of {dep.network}" if dep.network else ""
        ctx.finding(
            title="Samples in a batch mix inside the model",
            message=(
                f"With the {'network' if dep.network else 'model'} in eval mode, changing one "
                f"sample of a batch of {dep.n} changes the output of `{module}`{of} for other "
                f"samples by {delta:.3g} (relative to its largest value), whichever axis is taken "
                "as the batch's; the final outputs do not show it, so the mixed values reach them "
                "alike for every sample or not at all. An attention, recurrence or reduction "
                "runs along the batch axis: nn.MultiheadAttention or nn.Transformer*Layer without "
                "batch_first=True fed (batch, sequence, features), an RNN fed the batch on the "
                "wrong axis, a transpose missing."
            ),
            fix=(
                "Give sequence layers the layout they expect: batch_first=True for batch-first "
                "tensors, or transpose to (sequence, batch, features) before them."
            ),
            where=Where(module=module),
            evidence={
                "module": module,
                "relative_change": delta,
                "batch": dep.n,
                "outputs_unchanged": True,
                **({"network": dep.network} if dep.network else {}),
            },
        )
        return


@dataclass
class _Dependence:
    """The largest relative change of one sample's output when another sample changed."""

    delta: float
    affected: int
    changed: int
    n: int
    axis: int = 0
    network: str = ""  # a network beside the model (its class), or "" for the model
    batch_norm: bool = False
    changes: int = 0  # samples changed in turn (all n unless fewer were)
    # Each submodule output's largest relative change of other samples' values, and the
    # same of the inputs of its call, in forward order (see _InternalMixing).
    inside: list[tuple[str, float, float]] = field(default_factory=list)
    # The batch in reverse order: the largest relative change of a sample's output, and
    # which sample (see _position_dependence); None where not measured.
    position: tuple[float, int] | None = None
    # The changed sample nudged by a tiny amount instead (float inputs only): the largest
    # relative change of another sample's output then. Exactly 0 while the full change moved
    # them: the samples meet only through discrete decisions (an expert's capacity, a top-k
    # over the batch), which a nudge does not flip; None where not measured.
    nudged_delta: float | None = None
    # influence[j][i]: the relative change of sample i's output when sample j changed.
    influence: list[list[float]] = field(default_factory=list)
    # Why the samples were taken along this axis rather than the convention's (see
    # _model_dependence); "" where they were not.
    retaken: str = ""
    # What one sample is ("graph" for a graph batch), and the tolerance of the precision
    # the dependence was measured in (None: batch_dependence_rtol, float64).
    unit: str = "sample"
    rtol: float | None = None
    # Batch norms that keep no running statistics (each batch normalised by its own, by
    # design), given the batch's statistics as fixed ones before the samples were changed.
    fixed_norms: list[str] = field(default_factory=list)
    # Submodules that mix the samples only by handing each one statistic of the whole
    # batch, the same for every sample (a minibatch standard deviation).
    broadcasts: set[str] = field(default_factory=set)

    @property
    def discrete(self) -> bool:
        return self.delta > 0 and self.nudged_delta == 0.0

    def causal(self, rtol: float) -> bool:
        """Every dependence runs one way: a changed sample moves only samples after it,
        never one before it, as positions along a sequence read in order do."""
        moved = [
            (j, i) for j, row in enumerate(self.influence) for i, d in enumerate(row) if d > rtol
        ]
        return bool(moved) and all(i > j for j, i in moved)

    def first_mixing(self, rtol: float) -> tuple[str, float] | None:
        """The first submodule whose output mixes the samples beyond ``rtol`` (where the
        outputs show a dependence: the first place it is seen)."""
        return next(((name, d) for name, d, _ in self.inside if d > rtol), None)

    def first_own_mixing(self, rtol: float) -> tuple[str, float] | None:
        """The first submodule that mixes the samples itself: its output beyond ``rtol``,
        the inputs of that call within it (a call handed one sample's values whole, as a
        network called once per sample's sentences is, mixes nothing)."""
        return next(
            ((name, d) for name, d, given in self.inside if d > rtol and given <= rtol), None
        )

    def broadcast_first(self, rtol: float) -> str | None:
        """The first submodule that mixes the samples, where all it does is hand every
        sample one statistic of the whole batch; None otherwise."""
        first = self.first_own_mixing(rtol) or self.first_mixing(rtol)
        return first[0] if first is not None and first[0] in self.broadcasts else None

    def describe(self) -> str:
        where = f"{self.network}: " if self.network else ""
        layout = (
            f" along axis {self.axis}, where this sequence-first input holds them"
            if self.axis
            else ""
        )
        turns = "each" if self.changes >= self.n else f"{self.changes} of them"
        return (
            f"{self.retaken}{where}{self.n} {self.unit}s{layout}, {turns} changed in turn; "
            "largest relative change of "
            f"another {self.unit}'s output {self.delta:.2g}"
            + (" (BatchNorm checked in eval mode)" if self.batch_norm else "")
            + (
                f"; {', '.join(self.fixed_norms)}: batch norm without running statistics "
                "(each batch normalised by its own mean and variance, by design), held at "
                "this batch's statistics"
                if self.fixed_norms
                else ""
            )
        )


def _model_dependence(ctx: CheckContext, lab: Any) -> _Dependence | str:
    """Batch independence of the observed model, or why it cannot be measured."""
    calls = lab.model_inputs(1)
    if not calls:
        return NO_POSITIONAL_CALL
    axis = ctx.recording.input_batch_axis()
    if axis == 0 and ctx.recording.one_sequence_per_call():
        return (
            "the model reads one sequence per call: its recurrent or sequence layers see a batch "
            "of one over as many positions as the input's first axis holds (a tagger fed one "
            "sentence at a time), so there is no batch of samples to judge"
        )
    if axis == 0 and len(leading_sizes(calls[0])) > 1:
        graphs = graph_batch(calls[0])
        if graphs is not None:
            return _graph_batch_dependence(ctx, lab, calls[0], graphs)
        return "the model's input tensors disagree on their first axis, so no axis is known to be the batch's"
    args = batch_slice(calls[0], 4, axis)
    first = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() > axis), None)
    if first is None or first.shape[axis] < 2:
        return "the model input has no batch axis with at least two samples"
    model = set_training(lab.fresh_model(dtype=torch.float64), False)
    # Each call from the same state: a forward that enqueues its batch (MoCo's queue of
    # negatives) would otherwise answer the second call from what the first one wrote.
    with state_restored_at_each_call(model):
        found = _dependence(model, _to_double(args), axis, lambda m, a: _call_cut(ctx, m, a))
        if found is None:
            return f"the model output has no tensor with the batch axis (axis {axis} of the input)"
        rtol = ctx.thresholds.batch_dependence_rtol
        if axis == 0 and ctx.recording.witnessed_batch_axis() is None and found.causal(rtol):
            # Axis 0 was the convention's guess, and what it holds behaves as positions of
            # a sequence read in order (a language model's segments, sequence first, fed
            # without a loader or layer that says so): the samples are on the next axis.
            again = _sequence_first_dependence(ctx, model, calls[0])
            if again is not None:
                found, args, axis = again
        found.position = _position_dependence(
            model, _to_double(args), axis, lambda m, a: _call_cut(ctx, m, a)
        )
    return found


def _graph_batch_dependence(
    ctx: CheckContext, lab: Any, call: tuple[Any, ...], batch: GraphBatch
) -> _Dependence | str:
    """Batch independence of a model fed a graph batch (its graphs concatenated into one
    disconnected graph, a vector of graph ids beside them): the graphs are the samples. In
    float64 where the model runs so, else in its own precision against a float32 tolerance
    (segment sums written into float32 buffers it makes itself)."""
    t = ctx.thresholds
    tries = ((torch.float64, t.batch_dependence_rtol), (None, t.batch_dependence_rtol_float32))
    for dtype, rtol in tries:
        model = set_training(lab.fresh_model(dtype=dtype), False)
        args = _to_double(call) if dtype is torch.float64 else call
        device = _device_of(model)

        def run(m: nn.Module, a: tuple[Any, ...], device: torch.device = device) -> Any:
            with same_noise(device):  # every call draws the same noise, as for samples
                return m(*a)

        with state_restored_at_each_call(model):
            try:
                found = graph_dependence(model, args, batch, run)
            except (RuntimeError, ValueError, IndexError, TypeError) as exc:
                if dtype is torch.float64:
                    continue  # buffers the model makes in float32 meet float64 values
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                return f"the model refuses its graph batch with one graph's node features changed: {first}"
        if found is None:
            return "the model output has no row per graph or per node of its graph batch"
        return _Dependence(
            found.delta,
            found.affected,
            found.changed,
            found.graphs,
            changes=found.changes,
            unit="graph",
            rtol=rtol,
            retaken=(
                f"the input is a batch of {found.graphs} graphs in one disconnected graph, with a "
                "vector of graph ids beside it, so its graphs are the samples"
                + ("" if dtype is torch.float64 else " (in the model's own precision)")
                + ": "
            ),
        )
    return "the model runs in neither float64 nor its own precision on its graph batch"


def _sequence_first_dependence(
    ctx: CheckContext, model: nn.Module, call: tuple[Any, ...]
) -> tuple[_Dependence, tuple[Any, ...], int] | None:
    """The dependence measured along axis 1, for an input whose axis 0 (taken by convention,
    no witness naming the batch's) proved causal; None where axis 1 cannot hold samples."""
    args = batch_slice(call, 4, 1)
    first = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() > 1), None)
    if first is None or first.shape[1] < 2:
        return None
    try:
        found = _dependence(model, _to_double(args), 1, lambda m, a: _call_cut(ctx, m, a))
    except (IndexError, RuntimeError, ValueError):
        return None
    if found is None:
        return None
    found.retaken = (
        "along axis 0 (no loader, target or layer says where the samples are) each changed "
        "position moved only later ones, as a sequence read in order does, so the samples "
        "were taken along axis 1: "
    )
    return found, args, 1


def _position_dependence(
    model: nn.Module, args: tuple[Any, ...], axis: int, call: Callable[..., Any]
) -> tuple[float, int] | None:
    """The batch fed in reverse order: the largest relative change of a sample's output from
    its output in the original order, and which sample. None where the test cannot be
    made: an input with two axes of the batch's size (a mask whose length happens to equal
    it could not be told from the batch), an output without the batch, or a model whose
    outputs in eval mode are random (two calls on the same batch differ: a sampled latent
    would follow its position, not its sample)."""
    first = next(a for a in args if isinstance(a, torch.Tensor) and a.dim() > axis)
    n = first.shape[axis]
    lead = tuple(first.shape[: axis + 1])
    if any(
        isinstance(a, torch.Tensor) and sum(s == n for s in a.shape) > 1 for a in tree_leaves(args)
    ):
        return None
    reverse = torch.arange(n - 1, -1, -1)

    def reordered(a: torch.Tensor) -> torch.Tensor:
        at = _sample_axis(a, axis, n) if axis > 0 else (0 if a.dim() and a.shape[0] == n else -1)
        return a if at < 0 else a.index_select(at, reverse.to(a.device))

    flipped = map_tensors(reordered, args)
    with torch.no_grad():
        base = _batch_outputs(call(model, args), n, axis, lead)
        again = _batch_outputs(call(model, args), n, axis, lead)
        back = _batch_outputs(call(model, flipped), n, axis, lead)
    if not base or len(back) != len(base) or len(again) != len(base):
        return None
    if any(not torch.equal(a, b) for a, b in zip(base, again, strict=True)):
        return None
    worst = (0.0, -1)
    pairs = _pair_axes(model, args, axis, base, call)
    for a, b, pair in zip(base, back, pairs, strict=True):
        if a.shape != b.shape:
            return None
        b = b.index_select(axis, reverse.to(b.device))
        if pair is not None:  # pairs of samples: each sample's column follows it too
            b = b.index_select(pair, reverse.to(b.device))
        for i in range(n):
            delta = _sample_change(a, b, axis, i)
            if delta > worst[0]:
                worst = (delta, i)
    return worst


def _sample_change(a: torch.Tensor, b: torch.Tensor, axis: int, i: int) -> float:
    """The largest change of sample ``i``'s values (along ``axis``) from ``a`` to ``b``,
    relative to their largest finite magnitude in ``a``. Values non-finite in both alike
    (log-probabilities of masked positions, -inf) are no change, and leave the finite ones
    to be compared; a value that becomes or stops being finite is a full change (1)."""
    x, y = a.select(axis, i), b.select(axis, i)
    finite = torch.isfinite(x) & torch.isfinite(y)
    alike = (x == y) | (torch.isnan(x) & torch.isnan(y))
    if bool((~finite & ~alike).any()):
        return 1.0
    if not bool(finite.any()):
        return 0.0
    x, y = x[finite], y[finite]
    scale = float(x.abs().max()) + 1e-12
    return float((x - y).abs().max()) / scale


def _other_dependence(name: str, model: nn.Module, args: tuple[Any, ...]) -> _Dependence | None:
    """Batch independence of a network beside the model (batch first, as most are): None
    when its first call cannot be replayed so (its inputs disagree on the first axis, it
    refuses float64 or fewer samples, its output holds no batch)."""
    first = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() > 0), None)
    if first is None or first.shape[0] < 2:
        return None
    model = set_training(model.double(), False)
    # Cut to four samples where the network accepts it; a state that holds the batch on
    # another axis (a decoder's (layers, batch, hidden)) refuses the cut, and the whole
    # batch is kept, four of its samples changed in turn.
    found = None
    with state_restored_at_each_call(model):
        for cut, changes in ((batch_slice(args, 4, 0), None), (args, 4)):
            try:
                found = _dependence(model, _to_double(cut), 0, lambda m, a: m(*a), changes)
                break
            except (RuntimeError, ValueError, IndexError, TypeError):
                continue
    if found is not None:
        found.network = name
    return found


def _dependence(
    model: nn.Module,
    args: tuple[Any, ...],
    axis: int,
    call: Callable[..., Any],
    changes: int | None = None,
) -> _Dependence | None:
    """Each sample along ``axis`` (the first ``changes`` of them) changed in turn; the
    largest relative change of another sample's output (None when the output holds no
    batch), and the first submodule whose own output mixes the samples."""
    first = next(a for a in args if isinstance(a, torch.Tensor) and a.dim() > axis)
    n = first.shape[axis]
    lead = tuple(first.shape[: axis + 1])
    device = _device_of(model)
    inside = _InternalMixing(n)
    with torch.no_grad():
        # A batch norm that keeps no running statistics mixes the samples by design, in
        # eval mode too; held at this batch's statistics it maps each sample alone, and
        # only other mixing is measured.
        with same_noise(device):
            fixed = fix_batch_statistics(model, lambda: call(model, args))
        with same_noise(device):
            base = _batch_outputs(
                visit_module_outputs(
                    model, lambda: call(model, args), inside.keep, inside.keep_input
                ),
                n,
                axis,
                lead,
            )
        if not base:
            return None
        pairs = _pair_axes(model, args, axis, base, call)
        worst = _Dependence(0.0, -1, -1, n, axis, changes=min(n, changes or n), fixed_norms=fixed)

        def outputs_with(j: int, swap: bool) -> list[torch.Tensor]:
            changed = _perturb_sample(args, j, n, axis, swap=swap)
            with same_noise(device):
                return _batch_outputs(
                    visit_module_outputs(
                        model, lambda: model(*changed), inside.compare, inside.compare_input
                    ),
                    n,
                    axis,
                    lead,
                )

        swap = False
        for j in range(worst.changes):
            try:
                outs = outputs_with(j, swap)
            except (IndexError, RuntimeError, ValueError):
                if swap:
                    raise
                # Noise the model cannot take (category codes kept in a float matrix and
                # cast to indices inside): each changed sample becomes another real one.
                swap = True
                outs = outputs_with(j, swap)
            row = [0.0] * n
            for i in range(n):
                if i == j:
                    continue
                for a, b, pair in zip(base, outs, pairs, strict=True):
                    delta = _sample_change(*_without_pairs_with(a, b, pair, j), axis, i)
                    row[i] = max(row[i], delta)
                    if delta > worst.delta:
                        worst.delta, worst.affected, worst.changed = delta, i, j
            worst.influence.append(row)
        if worst.delta > 0:
            worst.nudged_delta = _nudged_change(
                model, args, axis, lead, base, worst.changed, device, pairs
            )
    worst.batch_norm = any(isinstance(m, BATCH_NORM) for m in model.modules())
    worst.inside = inside.in_forward_order()
    worst.broadcasts = inside.broadcasting()
    return worst


def _nudged_change(
    model: nn.Module,
    args: tuple[Any, ...],
    axis: int,
    lead: tuple[int, ...],
    base: list[torch.Tensor],
    j: int,
    device: torch.device,
    pairs: list[int | None],
) -> float | None:
    """Sample ``j`` moved by ``NUDGE`` of its scale in a few random directions: the largest
    relative change of any other sample's output (None where no input holding the batch is
    floating; integer inputs, which cannot be nudged, are kept). Continuous mixing (a view across the batch, a
    softmax or attention over it) moves the others by about the nudge times its coupling,
    never exactly 0 in float64."""
    n = base[0].shape[axis] if base else 0
    if not any(
        isinstance(a, torch.Tensor) and a.is_floating_point() and _holds_batch(a, axis, n)
        for a in tree_leaves(args)
    ):
        return None
    worst = 0.0
    for trial in range(NUDGE_TRIALS):
        nudged = _perturb_sample(args, j, n, axis, scale=NUDGE, seed=1000 + trial, floats_only=True)
        with same_noise(device):
            outs = _batch_outputs(model(*nudged), n, axis, lead)
        if len(outs) != len(base):
            return None
        for i in range(n):
            if i != j:
                for a, b, pair in zip(base, outs, pairs, strict=True):
                    worst = max(worst, _sample_change(*_without_pairs_with(a, b, pair, j), axis, i))
    return worst


def _pair_axes(
    model: nn.Module,
    args: tuple[Any, ...],
    axis: int,
    base: list[torch.Tensor],
    call: Callable[..., Any],
) -> list[int | None]:
    """Per output holding the batch, the axis beside ``axis`` among its first two that holds
    the batch's samples a second time (pairs of samples: a kernel or similarity matrix
    between them), or None. An axis of the batch's length is one only if it shrinks with
    the batch: the outputs are taken again for one sample fewer (four candidates scored per
    sample, for a batch of four, stay four). None everywhere where that call fails."""
    n = base[0].shape[axis] if base else 0
    sized = [
        next((ax for ax in range(2) if ax != axis and a.dim() >= 2 and a.shape[ax] == n), None)
        for a in base
    ]
    if n < 3 or all(ax is None for ax in sized):
        return [None] * len(base)
    fewer = batch_slice(args, n - 1, axis)
    first = next(a for a in fewer if isinstance(a, torch.Tensor) and a.dim() > axis)
    try:
        with torch.no_grad(), same_noise(_device_of(model)):
            small = _batch_outputs(call(model, fewer), n - 1, axis, tuple(first.shape[: axis + 1]))
    except (IndexError, RuntimeError, ValueError, TypeError):
        return [None] * len(base)
    if len(small) != len(base):
        return [None] * len(base)
    return [
        ax if ax is not None and b.dim() == a.dim() and b.shape[ax] == n - 1 else None
        for ax, a, b in zip(sized, base, small, strict=True)
    ]


def _without_pairs_with(
    a: torch.Tensor, b: torch.Tensor, pair: int | None, j: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """An output holding pairs of samples on axis ``pair`` (:func:`_pair_axes`) with the
    pairs with sample ``j`` left out of both: another sample's similarity to ``j`` is
    ``j``'s to change. Any other output as it is."""
    if pair is None:
        return a, b
    at = torch.tensor([j], device=a.device)
    return a.index_fill(pair, at, 0), b.index_fill(pair, at, 0)


def _holds_batch(a: torch.Tensor, axis: int, n: int) -> bool:
    at = _sample_axis(a, axis, n) if axis > 0 else (0 if a.dim() and a.shape[0] == n else -1)
    return at >= 0


class _InternalMixing:
    """Which submodule outputs mix the ``n`` samples of a batch: for each, the smallest
    relative change of the other samples' values when one sample changed, over every way
    the tensor can hold the batch (an axis of ``n`` among its first two, one of them
    holding the batch flattened with another axis, batch first or sequence first, or two
    axes of ``n`` holding pairs of samples, as a similarity matrix does). Along the batch
    axis one row, the changed sample's, may be new; every other row must equal one of the
    rows before, wherever the network moved it (a batch sorted by length inside the model).
    A tensor with no such axis is left out, as are packed sequences; the scale is the
    tensor's largest value, so rows of zeros (padding) do not turn rounding into a
    change."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.base: dict[OutputKey, torch.Tensor] = {}
        self.order: dict[OutputKey, int] = {}
        self.worst: dict[OutputKey, float] = {}
        # Per call of a submodule, the same measure of its positional inputs: a call handed
        # values that already differ beyond one row (one sample's sentences, called once
        # per sample; values mixed upstream) passes the change on, it does not mix.
        self.base_inputs: dict[OutputKey, torch.Tensor] = {}
        self.given: dict[tuple[str, int], float] = {}
        # Per output, whether every change it showed in other samples' rows was a statistic
        # of the batch broadcast to every sample (see _batch_statistic_appended).
        self.broadcast: dict[OutputKey, bool] = {}
        # ... where in a row (the positions of a flattened row) the statistic sits, and the
        # outputs that some changed sample left alone in every other row.
        self.statistic_columns: dict[OutputKey, torch.Tensor] = {}
        self.unmoved: set[OutputKey] = set()

    def keep(self, key: OutputKey, t: torch.Tensor) -> None:
        self.order.setdefault(key, len(self.order))
        self.base[key] = t.clone()

    def keep_input(self, key: OutputKey, t: torch.Tensor) -> None:
        self.base_inputs[key] = t.clone()

    def compare_input(self, key: OutputKey, t: torch.Tensor) -> None:
        a = self.base_inputs.get(key)
        call = key[:2]
        # An input of another shape than before: the call holds other values, not the rows
        # it held, and what it returns cannot be laid beside them.
        delta = math.inf if a is None or a.shape != t.shape else self._mixing(a, t)
        if delta is not None and delta > self.given.get(call, 0.0):
            self.given[call] = delta

    def compare(self, key: OutputKey, t: torch.Tensor) -> None:
        a = self.base.get(key)
        if a is None or a.shape != t.shape:
            return
        delta = self._mixing(a, t)
        if delta is not None and delta > self.worst.get(key, 0.0):
            self.worst[key] = delta
        if a.dim() and a.shape[0] == self.n:
            moved = _batch_statistic_appended(a, t)
            if moved is None:
                self.unmoved.add(key)
            else:
                # A statistic of the whole batch moves with every sample, in the same place:
                # a sample's own values copied into other rows (a repeat laid out across the
                # batch) move where that sample landed, another place for each sample.
                first = self.statistic_columns.setdefault(key, moved)
                self.broadcast[key] = (
                    self.broadcast.get(key, True)
                    and bool(moved.any())
                    and bool(torch.equal(first, moved))
                )

    def _mixing(self, a: torch.Tensor, b: torch.Tensor) -> float | None:
        n = self.n
        scale = float(a.abs().max()) + 1e-12
        found: list[float] = []
        sized = [ax for ax in range(min(2, a.dim())) if a.shape[ax] == n]
        for ax in sized:
            found.append(_beyond_one_row(a, b, ax) / scale)
        for ax in range(min(2, a.dim())):
            size = a.shape[ax]
            if size > n and size % n == 0:
                for shape, at in (((n, size // n), ax), ((size // n, n), ax + 1)):
                    found.append(
                        _beyond_one_row(a.unflatten(ax, shape), b.unflatten(ax, shape), at) / scale
                    )
        if len(sized) == 2:
            # Pairs of samples (a similarity matrix): one row and its column change.
            diff = (a - b).abs()
            rows = diff.flatten(2).amax(2) if diff.dim() > 2 else diff
            r = int(rows.amax(1).argmax())
            rest = diff.clone()
            rest.select(0, r).zero_()
            rest.select(1, r).zero_()
            found.append(float(rest.max()) / scale)
        return min(found) if found else None

    def broadcasting(self) -> set[str]:
        """The submodules whose every change to other samples' values, whichever sample
        changed, was one statistic of the batch: the same in every sample's row, at the same
        place in the row."""
        return {key[0] for key, only in self.broadcast.items() if only and key not in self.unmoved}

    def in_forward_order(self) -> list[tuple[str, float, float]]:
        """(submodule, its largest relative change of other samples' values, the same of the
        inputs of that call) in forward order."""
        keys = sorted(self.worst, key=lambda k: self.order[k])
        return [(k[0], self.worst[k], self.given.get(k[:2], 0.0)) for k in keys]


def _batch_statistic_appended(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor | None:
    """For an output holding the batch on its first axis, before (``a``) and after (``b``) one
    sample changed: where every value that moved in another sample's row holds one value in
    every row, before and after alike (a statistic of the whole batch handed to each sample,
    a minibatch standard deviation appended as a feature, as ProGAN's discriminator does),
    the positions in a row that moved; an empty mask where the moved values differ from row
    to row (samples mixed into each other); None where no other row moved."""
    rows_a, rows_b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    scale = float(rows_a.abs().max()) + 1e-12
    moved = (rows_a - rows_b).abs() > 1e-9 * scale
    others = moved.clone()
    others[int(moved.sum(1).argmax())] = False  # the changed sample's own row
    columns = others.any(0)
    if not bool(columns.any()):
        return None
    shared = all(
        bool(((rows[:, columns] - rows[:1, columns]).abs() <= 1e-12 * scale).all())
        for rows in (rows_a, rows_b)
    )
    return columns if shared else torch.zeros_like(columns)


def _beyond_one_row(a: torch.Tensor, b: torch.Tensor, axis: int) -> float:
    """How far the rows of ``b`` along ``axis`` are from every row of ``a``, for the row
    second furthest: one row (the changed sample's own) may be new, every other must be
    one of ``a``'s, wherever the network moved it (a batch sorted by length inside the
    model, in an order the changed sample's length may change, unsorted before it
    returns)."""
    rows_a = a.transpose(0, axis).reshape(a.shape[axis], -1)
    rows_b = b.transpose(0, axis).reshape(b.shape[axis], -1)
    if rows_b.shape[0] < 2:
        return 0.0
    nearest = (rows_b[:, None, :] - rows_a[None, :, :]).abs().amax(2).amin(1)
    return float(nearest.topk(2).values[1])


def _batch_outputs(
    out: Any, n: int, axis: int = 0, lead: tuple[int, ...] = ()
) -> list[torch.Tensor]:
    """The float outputs holding the batch on ``axis``; on a later axis, also outputs
    flattened over the input's leading axes ``lead`` (a language model's ``.view(-1, V)``
    of ``(seq_len, batch, V)``), unflattened, and outputs with one row per sample (a
    sequence classifier's ``(batch, classes)``), the batch moved to ``axis``."""
    out_tensors = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
    found = []
    for t in out_tensors:
        if not t.is_floating_point() or t.dim() == 0:
            continue
        if t.dim() > axis and t.shape[axis] == n:
            found.append(t)
        elif axis > 0 and t.shape[0] == math.prod(lead):
            found.append(t.reshape(*lead, *t.shape[1:]))
        elif axis > 0 and t.shape[0] == n:
            # One row per sample, first: a sequence-first encoder's summary, classified.
            found.append(t.reshape((1,) * axis + tuple(t.shape)))
    return found


def _perturb_sample(
    args: tuple[Any, ...],
    j: int,
    n: int,
    axis: int = 0,
    *,
    scale: float = 1.0,
    seed: int | None = None,
    floats_only: bool = False,
    swap: bool = False,
) -> tuple[Any, ...]:
    """``args`` with sample ``j`` (along ``axis``) replaced: floats get noise of their own
    scale (times ``scale``), integers a roll (or are kept, ``floats_only``); with ``swap``,
    every tensor takes the next sample's values (a change the model accepts whatever its
    inputs encode). On a later axis, nested tensors holding the batch there too."""

    def perturb(a: torch.Tensor) -> torch.Tensor:
        at = _sample_axis(a, axis, n) if axis > 0 else (0 if a.shape[0] == n else -1)
        if at < 0 or (floats_only and not a.is_floating_point()):
            return a
        a = a.clone()
        row = a.select(at, j)
        if a.is_floating_point() and not swap:
            gen = torch.Generator(device="cpu").manual_seed(j if seed is None else seed)
            noise = torch.randn(row.shape, generator=gen, dtype=a.dtype).to(a.device)
            row.add_(noise * (a.std() + 1.0) * scale)
        else:
            row.copy_(a.select(at, (j + 1) % n))
        return a

    if axis > 0:
        return map_tensors(perturb, args)
    return tuple(perturb(a) if isinstance(a, torch.Tensor) and a.dim() > 0 else a for a in args)


@register_check(
    id="reads-next-token",
    reasons=(22, 25),
    severity="error",
    kind="experiment",
    quick=True,
    priority=13,
    explains=causes.LABEL_SYMPTOMS,
)
def reads_next_token(ctx: CheckContext) -> None:
    """Each position's prediction reads the token it is trained to predict.

    Why it matters:
        A model trained to predict the next token from the ones before it must not see
        that token. A causal convolution padded on the right, an attention mask left out
        or inverted, or a bidirectional layer in a language model lets each position read
        the answer: the training loss falls to nearly zero, and the model cannot generate
        anything, because at generation time the next token is not there to read.

    What is measured:
        Only where the targets are the model's own token input one position on (in at
        least ``next_token_match`` of the positions at every observed step): on a copy in
        eval mode (dropout off, random draws repeated), the outputs for a few samples
        before and after every token after the middle position is replaced by another
        token id of the batch. The outputs at the middle position and before it predict
        tokens up to the middle one, which did not change, so they must not change
        either. The copy runs in the model's own precision; a relative change beyond
        float32 rounding (``next_token_rtol``) is a leak. This is no statistical test: a
        causal model passes it exactly (every healthy language model on the bench
        measures 0).

    How to fix:
        Pad a causal convolution on the left only (``F.pad(x, (k - 1, 0))``), pass a
        causal mask to self-attention (``nn.Transformer.generate_square_subsequent_mask``
        or ``is_causal=True``), and keep recurrent layers one-directional.

    Example:
        Before::

            x = F.pad(x, (0, self.dilation * (k - 1)))     # pads on the right: sees the future

        After::

            x = F.pad(x, (self.dilation * (k - 1), 0))     # pads on the left: causal
    """
    lab = ctx.services
    t = ctx.thresholds
    which = _next_token_input(ctx.recording, t.next_token_match)
    if which is None:
        ctx.skip("the targets are not the model's token input one position on")
    if lab is None or not lab.has_model:
        ctx.skip("no model copy is available")
    calls = lab.model_inputs(1)
    if not calls:
        ctx.skip(NO_POSITIONAL_CALL)
    batch_axis = ctx.recording.input_batch_axis()
    args = batch_slice(calls[0], 4, batch_axis)
    # In the order the probe matched them against the targets (``next_position_matches``).
    tokens = [a for a in tensors(args) if holds_ids(a)]
    if which >= len(tokens):
        ctx.skip("the token input the targets follow is a keyword argument")
    source = tokens[which]
    if source.dim() != 2 or batch_axis > 1:
        ctx.skip("the token input is not one sequence of ids per sample")
    time_axis = 1 - batch_axis
    length = source.shape[time_axis]
    ids = source.unique()
    if length < 4 or ids.numel() < 2:
        ctx.skip("the token input is too short, or holds a single token id")
    middle = length // 2
    changed = source.clone()
    tail = changed.narrow(time_axis, middle + 1, length - middle - 1)
    # Each later token becomes the next id of the batch's own: valid for any embedding.
    tail.copy_(ids[(torch.searchsorted(ids, tail.contiguous()) + 1) % ids.numel()])
    changed_args = map_tensors(lambda a: changed if a is source else a, args)
    # In the model's own precision: models that build float32 tensors of their own (a
    # one-hot input cast with .float()) refuse float64, and a leak moves outputs by far
    # more than float32 rounding.
    model = set_training(lab.fresh_model(), False)
    before, after = _twice_with_the_same_noise(
        model, lambda: _call_cut(ctx, model, args), lambda: model(*changed_args)
    )
    pairs = _positions(before, after, tuple(source.shape), time_axis)
    if not pairs:
        ctx.skip("no model output holds one row per input position")
    worst = 0.0
    for a, b in pairs:
        a, b = a.narrow(time_axis, 0, middle + 1), b.narrow(time_axis, 0, middle + 1)
        scale = float(a.abs().max()) + 1e-12
        worst = max(worst, float((a - b).abs().max()) / scale)
    ctx.note(
        f"tokens after position {middle} of {length} replaced; largest relative change of the "
        f"outputs up to it {worst:.2g}"
    )
    if worst <= t.next_token_rtol:
        return
    ctx.finding(
        title="Each position's prediction reads the token it is trained to predict",
        message=(
            f"The targets are the input one position on (next-token prediction), yet replacing the "
            f"tokens after position {middle} of {length} changed the outputs at positions up to "
            f"{middle} by {worst:.3g} (relative), with the model in eval mode: each prediction "
            "reads later inputs, the token it predicts among them."
        ),
        fix=(
            "Pad causal convolutions on the left only, give self-attention a causal mask, and "
            "keep recurrent layers one-directional."
        ),
        evidence={"position": middle, "length": length, "relative_change": worst},
    )


@register_check(
    id="reads-own-target",
    reasons=(22, 25),
    severity="error",
    kind="experiment",
    quick=True,
    priority=13,
    explains=causes.LABEL_SYMPTOMS,
)
def reads_own_target(ctx: CheckContext) -> None:
    """An autoregressive model's prediction for a position reads the value it predicts there.

    Why it matters:
        A model trained to predict each element of its input from the elements before it
        (PixelCNN over pixels, WaveNet over samples, with the targets the input itself) must
        not see the element it predicts. A first masked convolution built with mask type B
        instead of A, or a causal padding one short, lets every position read its own
        target: the training loss falls to nearly zero, and sampling produces nothing,
        because at generation time that element is not there yet.

    What is measured:
        Only where the targets are the float model input itself, or an exact rescaling of
        it (a correlation of at least ``own_target_correlation`` between the two over a
        captured batch), and the output the loss reads has the input's shape. On a copy in
        eval mode (dropout off, random draws repeated), the element at the middle position
        (in row-major order over the axes after the batch's) is changed for a few
        samples. A model that predicts each position from the ones before it leaves the
        outputs of the earlier positions as they were (bit for bit, as they are computed
        from identical values; within ``next_token_rtol``, relative, it counts as causal);
        if it does, and the output at the changed position itself moves more than
        ``own_target_margin`` times the most any earlier one moved (any change at all when
        those did not move), that position reads its target. A model that is not causal at all (an autoencoder, whose
        outputs before the middle move too) is not judged: it is meant to see its input.

    How to fix:
        Mask the first layer so that a position sees only the ones before it (PixelCNN's
        mask type A, the centre weight zero), use type B only after it, and pad causal
        convolutions by ``dilation * (kernel_size - 1)`` on the left, taking the output
        before the position it predicts.

    Example:
        Before::

            MaskedConv2d("B", 1, 64, 7, padding=3)   # the first layer sees the centre pixel

        After::

            MaskedConv2d("A", 1, 64, 7, padding=3)
    """
    lab = ctx.services
    t = ctx.thresholds
    if lab is None or not lab.has_model or lab.subject is None:
        ctx.skip("no model copy with a recognised loss is available")
    subject = lab.subject
    batch = lab.tiny_batch(4)
    raw, target = subject.inputs(batch), subject.targets(batch)
    # A captured script's model inputs are its positional arguments: one of them.
    wrapped = isinstance(raw, (tuple, list))
    x = raw[0] if wrapped and len(raw) == 1 else raw
    if not (
        isinstance(x, torch.Tensor)
        and isinstance(target, torch.Tensor)
        and x.is_floating_point()
        and target.is_floating_point()
        and x.dim() >= 2
        and target.numel() == x.numel()
    ):
        ctx.skip("the targets are not a float tensor the size of a single float model input")
    corr = _correlation(x, target)
    if not corr >= t.own_target_correlation:
        ctx.skip(f"the targets are not the model input (correlation {corr:.3g})")
    per_sample = x[0].numel()
    if per_sample < 3:
        ctx.skip("one or two elements per sample: no position comes before another")
    middle = per_sample // 2
    changed = x.clone(memory_format=torch.contiguous_format)
    changed.view(x.shape[0], -1)[:, middle] += float(x.std()) or 1.0
    changed_batch = subject.with_inputs(batch, (changed,) if wrapped else changed)
    if changed_batch is None:
        ctx.skip("the batch layout does not say where the inputs are")
    model = set_training(lab.fresh_model(), False)
    before, after = _twice_with_the_same_noise(
        model,
        lambda: subject.prediction(model, batch),
        lambda: subject.prediction(model, changed_batch),
    )
    if not (
        isinstance(before, torch.Tensor)
        and isinstance(after, torch.Tensor)
        and before.numel() == x.numel()
        and after.shape == before.shape
    ):
        ctx.skip("the output the loss reads does not have the input's shape")
    a = before.detach().reshape(x.shape[0], -1).double()
    b = after.detach().reshape(x.shape[0], -1).double()
    scale = float(a.abs().max()) + 1e-12
    earlier = float((a[:, :middle] - b[:, :middle]).abs().max()) / scale
    own = float((a[:, middle] - b[:, middle]).abs().max()) / scale
    ctx.note(
        f"targets are the input (correlation {corr:.4g}); element {middle} of {per_sample} "
        f"changed: outputs before it moved by {earlier:.2g}, its own by {own:.2g} (relative)"
    )
    if earlier > t.next_token_rtol:
        ctx.note(ctx.detail + ": not a causal model (it sees its whole input), not judged")
        return
    # Outputs that do not depend on the changed element are computed from identical values
    # and come out bit for bit the same; one that moves many times more than all of them
    # (however little: a deep stack at its initial scale passes a single element on faintly)
    # depends on it.
    if not own > t.own_target_margin * earlier:
        return
    ctx.finding(
        title="Each position's prediction reads the value it is trained to predict",
        message=(
            f"The targets are the model's input (correlation {corr:.4g}), and the model is "
            f"causal: changing element {middle} of {per_sample} leaves every earlier output "
            f"as it was ({earlier:.2g}, relative), with the model in eval mode. But the "
            f"output at that element moves by {own:.3g}: each position reads its own "
            "target, and the model learns to copy it."
        ),
        fix=(
            "Mask the first layer so a position sees only earlier ones (mask type A, "
            "then B), and pad causal convolutions on the left by dilation * (k - 1)."
        ),
        evidence={
            "correlation": corr,
            "position": middle,
            "elements": per_sample,
            "earlier_change": earlier,
            "own_change": own,
        },
    )


def _twice_with_the_same_noise(
    model: nn.Module, first: Callable[[], Any], second: Callable[[], Any]
) -> tuple[Any, Any]:
    """``first()`` and ``second()`` without gradients, each under the same random draws (a
    stochastic layer samples alike in both), so that only what the two inputs differ in can
    make their outputs differ."""
    device = _device_of(model)
    with torch.no_grad():
        with same_noise(device):
            a = first()
        with same_noise(device):
            b = second()
    return a, b


def _correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson's correlation of two same-sized tensors, element by element (NaN without spread)."""
    a = x.detach().reshape(-1).double()
    b = y.detach().reshape(-1).double()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else math.nan


def _next_token_input(rec: Recording, share: float) -> int | None:
    """Which integer model input (in argument order) the targets equal one position on at
    every step whose first loss call measured it; None when none does."""
    matches = [
        c.target.next_position_matches
        for s in rec.steps
        for c in s.loss_calls[:1]
        if c.target is not None and c.target.next_position_matches
    ]
    if not matches:
        return None
    width = min(len(m) for m in matches)
    return next(
        (i for i in range(width) if all(m[i] >= share for m in matches)),
        None,
    )


def _positions(
    before: Any, after: Any, shape: tuple[int, ...], time_axis: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The float outputs (before, after) with the input's positions on ``time_axis``: as
    returned when one axis beside the batch's has the sequence's length and the batch axis
    leads as in the input, or unflattened from one row per position (``logits.view(-1, V)``).
    Outputs where the length is ambiguous (two axes of that size) are left out."""
    pairs = []
    for a, b in zip(tree_leaves(before), tree_leaves(after), strict=False):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            continue
        if not a.is_floating_point() or a.shape != b.shape or a.dim() < 2:
            continue
        batch_axis = 1 - time_axis
        if a.shape[0] == math.prod(shape) and a.shape[0] != shape[batch_axis]:
            a, b = a.reshape(*shape, *a.shape[1:]), b.reshape(*shape, *b.shape[1:])
        if a.shape[batch_axis] != shape[batch_axis]:
            continue
        axes = [d for d in range(a.dim()) if d != batch_axis and a.shape[d] == shape[time_axis]]
        if len(axes) != 1:
            continue
        pairs.append((a.movedim(axes[0], time_axis), b.movedim(axes[0], time_axis)))
    return pairs


@register_check(
    id="width-one-bottleneck",
    reasons=(24,),
    severity="warning",
    # One unit carries the whole signal: once that unit's ReLU is off, the layers after it
    # see a constant and die with it.
    explains=causes.FIT_SYMPTOMS | frozenset({"dead-relus"}),
)
def width_one_bottleneck(ctx: CheckContext) -> None:
    """A hidden layer one unit (or one channel) wide throttles the whole network.

    Why it matters:
        Everything the network knows must pass through its narrowest layer. A hidden
        Linear with one output feature or a hidden convolution with one output channel —
        usually a typo in a layer size — leaves capacity for one number per sample.

    What is measured:
        The weight shapes of Linear and convolution layers other than the last one in the
        forward order: an output width of 1 is a bottleneck when another Linear or
        convolution layer reads the network's earlier computation only through that
        output (followed through the autograd graph of one forward of a model copy, where
        there is one). A width-one layer whose output reaches no such layer is an output
        head of a model with several (a Gaussian's mean beside its scale, a critic's value
        beside the policy); one whose output only weighs features that reach the next layer
        by another path is a scorer or a gate (attention pooling's ``Linear(d, 1)`` score
        per position, a sigmoid gate): neither is a bottleneck. Without a copy to run,
        every hidden layer of width one counts.

    How to fix:
        Widen the layer; a hidden width of 1 is almost never intended.

    Example:
        Before::

            nn.Sequential(nn.Linear(64, 1), nn.ReLU(), nn.Linear(1, 10))

        After::

            nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    """
    rec = ctx.recording
    if not rec.steps:
        ctx.skip("no step was observed")
    # Layers whose weight holds the output width on axis 0 (not a transposed convolution).
    order = [n for n in rec.steps[0].activations if rec.is_kind(n, LINEAR + CONV)]
    if len(order) < 2:
        ctx.skip("fewer than two Linear/convolution layers")
    hidden = order[:-1]
    narrow = [n for n in hidden if rec.param_shapes.get(f"{n}.weight", (0,))[0] == 1]
    ctx.note(f"{len(hidden)} hidden Linear/convolution layer(s) checked for width 1")
    heads, scorers = _not_bottlenecks(ctx.services, narrow, set(order))
    if heads:
        ctx.note(
            f"{ctx.detail}; of width 1 but feeding no other Linear/convolution layer, so output "
            f"heads (a mean beside a scale, a value beside a policy): {', '.join(heads)}"
        )
    if scorers:
        ctx.note(
            f"{ctx.detail}; of width 1 but weighing features that reach the next layers by "
            f"another path, so scorers or gates (attention pooling): {', '.join(scorers)}"
        )
    for name in (n for n in narrow if n not in heads and n not in scorers):
        ctx.finding(
            title="A hidden layer of width one",
            message=(
                f"{rec.module_types[name]} {name} has a single output unit but is not the last layer: "
                "every sample is squeezed into one number there."
            ),
            fix="Widen the layer (its output size is probably a typo).",
            where=Where(module=name),
            evidence={"weight_shape": list(rec.param_shapes[f"{name}.weight"])},
        )


def _not_bottlenecks(lab: Any, narrow: list[str], layers: set[str]) -> tuple[list[str], list[str]]:
    """Of the ``narrow`` layers, the output heads (whose output reaches no other of
    ``layers`` in one forward of a model copy) and the scorers or gates (whose output
    reaches others, none of which reads the earlier computation only through it). None
    known without a copy to run, or when the forward fails."""
    copy = lab.eval_copy() if narrow and lab is not None else None
    if copy is None:
        return [], []
    model, run = copy
    try:
        fed, only = layers_fed(model, run, set(narrow), layers)
    except (RuntimeError, ValueError, IndexError, TypeError):
        return [], []
    heads = [n for n in narrow if not fed.get(n)]
    scorers = [n for n in narrow if fed.get(n) and not only.get(n)]
    return heads, scorers


def _call_cut(ctx: CheckContext, model: nn.Module, args: tuple[Any, ...]) -> Any:
    """The model on its input cut along the first axis; a model that refuses the cut input
    has another batch axis (sequence-first data) or inputs sized by the batch (a mask), and
    the check cannot run, which it says instead of crashing."""
    try:
        return model(*args)
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if _dtype_mismatch(first):
            # The cut is fine; the float64 copy is not: the model casts its input itself.
            ctx.skip(
                "the model does not run in float64 (it makes float32 tensors of its own, "
                f"such as a one-hot input cast with .float()): {first}"
            )
        ctx.skip(
            "the model refuses its input cut along the first axis, which is then not the batch's "
            f"(sequence-first data, or an input sized by the batch such as a mask): {first}"
        )


def _dtype_mismatch(message: str) -> bool:
    """Whether an error says two tensors' dtypes disagree (float against double)."""
    text = message.lower()
    return ("double" in text or "float64" in text) and ("float" in text or "half" in text)
