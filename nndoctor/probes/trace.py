"""Offline probes for experiments: op-level NaN tracing and module-input recording.

These are for *replays* on copies, never for the live run: the dispatch mode
checks every op's output, which synchronises with the device per op and costs
several times the step (see DESIGN.md's pitfalls).
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nndoctor.trees import tensors

_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(__file__))


@dataclass
class OpEvent:
    """The first op whose output was non-finite although its inputs were finite."""

    op: str
    phase: str  # "forward" or "backward"
    autograd_node: str | None
    file: str | None
    line: int | None
    code: str | None
    inputs_finite: bool
    module: str | None = None  # the innermost module running it (forward ops, when known)


def _user_location(
    stack: list[traceback.FrameSummary],
) -> tuple[str | None, int | None, str | None]:
    for fr in reversed(stack):
        if not fr.filename.startswith((_TORCH_DIR, _OWN_DIR)) and not fr.filename.startswith("<"):
            return fr.filename, fr.lineno, fr.line
    return None, None, None


def _location_from_anomaly(node: Any) -> tuple[str | None, int | None, str | None]:
    """The forward-pass location anomaly mode stored on an autograd node."""
    try:
        text = node.metadata.get("traceback_")
    except (AttributeError, RuntimeError):
        return None, None, None
    if not text:
        return None, None, None
    if isinstance(text, list):
        text = "".join(text)
    found = re.findall(r'File "([^"]+)", line (\d+)[^\n]*\n\s*(.*)', text)
    for fname, line, code in reversed(found):
        if not fname.startswith((_TORCH_DIR, _OWN_DIR)):
            return fname, int(line), code.strip()
    return None, None, None


# Ops that allocate without initialising: whatever bits the memory held (NaN included)
# are not a value the program computed, and the next op overwrites them.
_UNINITIALISED = frozenset(
    {
        "empty",
        "empty_like",
        "empty_strided",
        "empty_permuted",
        "new_empty",
        "new_empty_strided",
        "resize_",
        "resize_as_",
    }
)


def _op_name(func: Any) -> str:
    return str(func.overloadpacket.__name__) if hasattr(func, "overloadpacket") else str(func)


class _NonFiniteTracer(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.event: OpEvent | None = None
        self.modules: list[str] = []  # the forward calls under way, outermost first

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.event is None and _op_name(func) not in _UNINITIALISED and _has_nonfinite(out):
            inputs_finite = not _has_nonfinite((args, kwargs))
            node = torch._C._current_autograd_node()
            if node is not None:
                file, line, code = _location_from_anomaly(node)
                phase, node_name = "backward", node.name()
            else:
                file, line, code = _user_location(traceback.extract_stack())
                phase, node_name = "forward", None
            if inputs_finite or self.event is None:
                self.event = OpEvent(
                    op=_op_name(func),
                    phase=phase,
                    autograd_node=node_name,
                    file=file,
                    line=line,
                    code=code,
                    inputs_finite=inputs_finite,
                    module=self.modules[-1] if self.modules and phase == "forward" else None,
                )
        return out


def _has_nonfinite(obj: Any) -> bool:
    leaves, _ = tree_flatten(obj)
    for t in leaves:
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() > 0:
            # Offline replay only: this synchronises, which is acceptable here.
            if not bool(torch.isfinite(t).all()):
                return True
    return False


def trace_first_nonfinite(fn: Callable[[], Any], model: nn.Module | None = None) -> OpEvent | None:
    """Run ``fn`` (a forward, loss and backward) and return the first op making a non-finite
    value; with ``model``, the event names the module whose forward ran it."""
    with nonfinite_traced(model) as tracer:
        fn()
    return tracer.event


@contextmanager
def nonfinite_traced(model: nn.Module | None = None) -> Iterator[_NonFiniteTracer]:
    """Trace every op run inside the block; the tracer's ``event`` is the first op making a
    non-finite value. Offline only (it synchronises per op); hooks removed on exit."""
    tracer = _NonFiniteTracer()
    with module_stack(model, tracer.modules):
        with torch.autograd.set_detect_anomaly(True, check_nan=False), tracer:
            yield tracer


@contextmanager
def module_stack(model: nn.Module | None, stack: list[str]) -> Iterator[None]:
    """Keep ``stack`` the forward calls of ``model``'s modules under way, outermost first,
    inside the block; hooks removed on exit."""
    handles = []
    try:
        if model is not None:
            for name, module in model.named_modules():

                def enter(mod: nn.Module, args: Any, name: str = name) -> None:
                    stack.append(name or "<root>")

                def leave(mod: nn.Module, args: Any, out: Any) -> None:
                    if stack:
                        stack.pop()

                handles.append(module.register_forward_pre_hook(enter))
                handles.append(module.register_forward_hook(leave, always_call=True))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def recorded_module_inputs(
    model: nn.Module, names: set[str]
) -> Iterator[dict[str, tuple[Any, dict[str, Any]]]]:
    """Record the (args, kwargs) of the first call of each named submodule; hooks removed on exit."""
    seen: dict[str, tuple[Any, dict[str, Any]]] = {}
    handles = []
    try:
        for name, module in model.named_modules():
            if name in names:

                def hook(mod: nn.Module, args: Any, kwargs: Any, name: str = name) -> None:
                    if name not in seen:
                        seen[name] = (args, kwargs)

                handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
        yield seen
    finally:
        for h in handles:
            h.remove()


@contextmanager
def recorded_loss_terms() -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Record the output of every recognised torch loss called inside the block (name, tensor)."""
    import torch.nn.functional as F

    from nndoctor.probes.training import RECOGNISED_LOSSES

    terms: list[tuple[str, torch.Tensor]] = []
    originals = {}
    depth = [0]

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                depth[0] -= 1
            if (
                depth[0] == 0
                and isinstance(out, torch.Tensor)
                and out.dim() == 0
                and out.requires_grad
            ):
                terms.append((name, out))
            return out

        return wrapper

    try:
        for name in RECOGNISED_LOSSES:
            fn = getattr(F, name, None)
            if fn is not None:
                originals[name] = fn
                setattr(F, name, wrap(name, fn))
        yield terms
    finally:
        for name, fn in originals.items():
            setattr(F, name, fn)


def loss_term_gradients(
    total: torch.Tensor, terms: list[tuple[str, torch.Tensor]], params: list[torch.Tensor]
) -> list[dict[str, Any]]:
    """Each term's effective gradient norm in ``total``: its weight in the total times ∇term
    (and per parameter, ``param_sq``). Then one more row, ``"rest": True``, for the part of the total the recognised terms do
    not account for (terms written in plain torch): the norm of ∇total less their weighted
    gradients, beside ``recognised_norm``, the norm of those weighted gradients summed."""
    weights = torch.autograd.grad(
        total, [t for _, t in terms], retain_graph=True, allow_unused=True
    )
    whole = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
    # In float32: a rest that cancels to zero leaves rounding noise far below the ratio
    # the check looks for, and a float64 copy of every gradient would double the memory.
    rest = [g.detach().float().clone() if g is not None else None for g in whole]
    rows = []
    explained = 0.0
    for (name, term), w in zip(terms, weights, strict=True):
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        sq = sum(float(g.detach().double().pow(2).sum()) for g in grads if g is not None)
        weight = float(w) if w is not None else 0.0
        for r, g in zip(rest, grads, strict=True):
            if r is not None and g is not None:
                r.sub_(g.detach().float(), alpha=weight)
        explained += weight * float(term.detach())
        rows.append(
            {
                "term": name,
                "value": float(term.detach()),
                "weight": weight,
                "grad_norm": abs(weight) * sq**0.5,
                # Per parameter (in the order of ``params``), the weighted gradient's squared
                # norm: which parameters the term moves, and how hard.
                "param_sq": [
                    weight**2 * float(g.detach().double().pow(2).sum()) if g is not None else 0.0
                    for g in grads
                ],
            }
        )
    rest_sq = sum(float(r.double().pow(2).sum()) for r in rest if r is not None)
    recognised_sq = sum(
        float((g.detach().float() - r).double().pow(2).sum())
        for g, r in zip(whole, rest, strict=True)
        if g is not None and r is not None
    )
    rows.append(
        {
            "term": "rest",
            "value": float(total.detach()) - explained,
            "weight": 1.0,
            "grad_norm": rest_sq**0.5,
            "rest": True,
            "recognised_norm": recognised_sq**0.5,
        }
    )
    return rows


@dataclass
class RandomOpEvent:
    """An op that drops elements at random (a dropout mask) and where it ran."""

    op: str
    module: str | None
    file: str | None
    line: int | None
    code: str | None


# The ops a dropout mask is drawn with: a Bernoulli draw (the CPU path of F.dropout and
# its 2d/3d/alpha forms), or a fused dropout kernel asked to train. Sampling that is not
# dropping (a VAE's randn, a policy's multinomial) is left out: it is meant at any mode.
_MASK_OPS = frozenset({"bernoulli", "bernoulli_", "_fused_dropout"})


def _draws_a_mask(func: Any, args: Any) -> bool:
    name = _op_name(func)
    if name in _MASK_OPS:
        return True
    # native_dropout(input, p, train): a train flag of None or True drops.
    return name == "native_dropout" and (len(args) < 3 or args[2] is None or bool(args[2]))


class _MaskRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[RandomOpEvent] = []
        self.modules: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if _draws_a_mask(func, args) and len(self.events) < 16:
            file, line, code = _user_location(traceback.extract_stack())
            module = self.modules[-1] if self.modules else None
            self.events.append(RandomOpEvent(_op_name(func), module, file, line, code))
        return func(*args, **(kwargs or {}))


@contextmanager
def dropout_masks_recorded(model: nn.Module) -> Iterator[list[RandomOpEvent]]:
    """Record every dropout mask drawn inside the block, with the innermost module of
    ``model`` running it and the user's line; hooks and mode removed on exit."""
    recorder = _MaskRecorder()
    with module_stack(model, recorder.modules), recorder:
        yield recorder.events


def graphless_derivative(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a ``torch.autograd.grad`` call takes a derivative as a constant where it
    could keep its graph: no ``create_graph``, outputs that carry a graph, and inputs that
    the script marked as requiring a gradient rather than parameters or tensors computed
    from them (a fast weight: differentiating those without the second order is a method,
    first-order meta-learning, not an omission)."""
    create = args[4] if len(args) > 4 else kwargs.get("create_graph", False)
    if create or not torch.is_grad_enabled():
        return False
    outs = tensors(args[0] if args else kwargs.get("outputs"))
    ins = tensors(args[1] if len(args) > 1 else kwargs.get("inputs"))
    if not outs or not ins or not any(t.requires_grad for t in outs):
        return False
    return not any(isinstance(t, nn.Parameter) or t.grad_fn is not None for t in ins)


def reaches(tensor: torch.Tensor, nodes: set[Any], limit: int = 512) -> bool:
    """Whether ``tensor``'s autograd history passes through one of ``nodes`` (grad_fn
    objects), looking at no more than ``limit`` nodes."""
    return any(node in nodes for node in autograd_nodes([tensor.grad_fn], limit))


def autograd_nodes(
    roots: Iterable[Any], limit: int | None = None, stop: set[Any] | None = None
) -> Iterator[Any]:
    """The autograd nodes behind ``roots`` (grad_fn objects), each once, depth first; at
    most ``limit`` of them where given; nodes in ``stop`` (and what lies only behind them)
    are not walked."""
    stack, seen = list(roots), set()
    while stack and (limit is None or len(seen) < limit):
        node = stack.pop()
        if node is None or node in seen or (stop is not None and node in stop):
            continue
        seen.add(node)  # the node, not its id: a freed wrapper's id can be reused
        yield node
        stack.extend(n for n, _ in getattr(node, "next_functions", ()))
