"""Custom ``torch.autograd.Function``s: found in a graph, their forward calls recorded, their
forward run on its own, or their hand-written backward replaced by the derivative of their
forward, each for the span of a block.

The patches are on the Function's class (``forward``, ``setup_context``, ``backward``), not
on ``apply``: scripts often keep ``spike_fn = SurrGradSpike.apply`` at module level, and
``apply`` looks ``forward`` up on the class at every call, as its backward node does
``backward``. Every class attribute is put back on exit, also after an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from nndoctor.probes.trace import autograd_nodes
from nndoctor.trees import map_tensors, tensors

_MISSING = object()


@dataclass(frozen=True)
class FunctionCall:
    """One call of a custom Function's forward: its arguments and its float outputs."""

    function: type
    args: tuple[Any, ...]
    outputs: tuple[torch.Tensor, ...]


def custom_function_classes(total: torch.Tensor) -> list[type]:
    """The custom Function classes whose backward the graph behind ``total`` runs, in the
    order the graph is walked from the output (reproducible for one graph)."""
    found: list[type] = []
    for node in autograd_nodes([total.grad_fn]):
        cls = getattr(node, "_forward_cls", None)
        if (
            isinstance(node, torch.autograd.function.BackwardCFunction)
            and cls is not None
            and cls not in found
        ):
            found.append(cls)
    return found


def gradient_multiple(
    grad_inputs: Sequence[torch.Tensor | None], grad_outputs: Sequence[torch.Tensor | None]
) -> float | None:
    """The number ``c`` such that a backward node returned ``c`` times its one incoming
    gradient for an input of the same shape (a gradient reversal returns ``-lambda`` times
    it, a gradient scaling ``lambda`` times it); None when no returned gradient is one
    number times the incoming one, or nothing came in."""
    incoming = [g for g in grad_outputs if isinstance(g, torch.Tensor)]
    if len(incoming) != 1 or not incoming[0].is_floating_point():
        return None
    g = incoming[0].detach()
    energy = float((g * g).sum())
    if not energy > 0:
        return None
    for returned in grad_inputs:
        if not isinstance(returned, torch.Tensor) or returned.shape != g.shape:
            continue
        r = returned.detach().to(g.dtype)
        c = float((r * g).sum()) / energy
        scale = float(g.abs().max()) * max(abs(c), 1.0)
        if torch.allclose(r, c * g, rtol=1e-5, atol=1e-6 * scale):
            return c
    return None


class _StandInContext:
    """What a forward written with ``ctx`` may call, when it runs outside ``apply``."""

    def __init__(self, args: Sequence[Any]) -> None:
        self.needs_input_grad = tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
        self.saved_tensors: tuple[torch.Tensor, ...] = ()

    def save_for_backward(self, *saved: torch.Tensor) -> None:
        self.saved_tensors = saved

    def save_for_forward(self, *saved: torch.Tensor) -> None:
        pass

    def mark_dirty(self, *args: torch.Tensor) -> None:
        pass

    def mark_non_differentiable(self, *args: torch.Tensor) -> None:
        pass

    def set_materialize_grads(self, value: bool) -> None:
        pass


def _takes_context(function: type) -> bool:
    """Whether ``forward`` takes ``ctx`` first (the classic form), rather than the inputs
    alone with a separate ``setup_context``."""
    own = getattr(function, "setup_context", None)
    return own is getattr(torch.autograd.Function, "setup_context", None)


def run_forward(function: type, args: Sequence[Any]) -> Any:
    """The Function's forward on ``args``, run as plain torch code: autograd records the
    operations inside it, as it would for a function without a hand-written backward."""
    if _takes_context(function):
        return function.forward(_StandInContext(args), *args)
    return function.forward(*args)


def _float_outputs(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(t for t in tensors(out) if t.is_floating_point())


def _copied(obj: Any) -> Any:
    return map_tensors(lambda t: t.detach().clone(), obj)


@contextmanager
def _patched(function: type, name: str, value: Any) -> Iterator[None]:
    original = function.__dict__.get(name, _MISSING)
    setattr(function, name, value)
    try:
        yield
    finally:
        if original is _MISSING:
            delattr(function, name)
        else:
            setattr(function, name, original)


@contextmanager
def recorded_function_calls(functions: Sequence[type]) -> Iterator[list[FunctionCall]]:
    """Record every call of the given Functions' forward inside the block."""
    calls: list[FunctionCall] = []
    with ExitStack() as stack:
        for function in functions:
            recording = _recording_forward(function, calls)
            stack.enter_context(_patched(function, "forward", staticmethod(recording)))
        yield calls


def _recording_forward(function: type, calls: list[FunctionCall]) -> Any:
    # A closure, not default arguments: ``apply`` binds a new-style forward's defaults.
    forward = function.forward  # the function itself, unwrapped from staticmethod
    context_first = _takes_context(function)

    def recording(*args: Any) -> Any:
        out = forward(*args)
        inputs = args[1:] if context_first else args
        calls.append(FunctionCall(function, _copied(tuple(inputs)), _copied(_float_outputs(out))))
        return out

    return recording


@contextmanager
def differentiated_through_forward(functions: Sequence[type]) -> Iterator[None]:
    """Inside the block, the given Functions' backward is the derivative of their forward
    (autograd through the forward's own operations) instead of the one written by hand."""
    with ExitStack() as stack:
        for function in functions:
            stack.enter_context(_inputs_kept(function))
            backward = _forward_derivative(function)
            stack.enter_context(_patched(function, "backward", staticmethod(backward)))
            if getattr(function, "vjp", None) is not getattr(torch.autograd.Function, "vjp", None):
                stack.enter_context(_patched(function, "vjp", staticmethod(backward)))
        yield


@contextmanager
def _inputs_kept(function: type) -> Iterator[None]:
    """Keep each call's inputs on its ctx, for the replaced backward to run the forward again."""
    if _takes_context(function):
        forward = function.forward

        def keeping(ctx: Any, *args: Any) -> Any:
            ctx._nndoctor_inputs = args
            return forward(ctx, *args)

        with _patched(function, "forward", staticmethod(keeping)):
            yield
    else:
        setup = function.setup_context

        def keeping_setup(ctx: Any, inputs: Any, output: Any) -> Any:
            ctx._nndoctor_inputs = tuple(inputs)
            return setup(ctx, inputs, output)

        with _patched(function, "setup_context", staticmethod(keeping_setup)):
            yield


def _forward_derivative(function: type) -> Any:
    def backward(ctx: Any, *grads: Any) -> tuple[Any, ...]:
        inputs = ctx._nndoctor_inputs
        with torch.enable_grad():
            leaves = [
                a.detach().requires_grad_(True)
                if isinstance(a, torch.Tensor) and a.is_floating_point()
                else a
                for a in inputs
            ]
            wrt = [a for a in leaves if isinstance(a, torch.Tensor) and a.requires_grad]
            outs = _float_outputs(run_forward(function, leaves))
            pairs = [
                (o, g)
                for o, g in zip(outs, grads, strict=False)
                if g is not None and o.requires_grad
            ]
            found = (
                torch.autograd.grad(
                    [o for o, _ in pairs], wrt, [g for _, g in pairs], allow_unused=True
                )
                if pairs and wrt
                else [None] * len(wrt)
            )
        by_leaf = iter(found)
        result = []
        for a in leaves:
            if isinstance(a, torch.Tensor) and a.requires_grad:
                g = next(by_leaf)
                result.append(torch.zeros_like(a) if g is None else g)
            else:
                result.append(None)
        return tuple(result)

    return backward
