"""Replay one step's batch on a copy of the model to name the first op making a NaN/inf.

The live run keeps, by reference, the arguments of the step's model call and the gradient
that flowed into the model's output (what the loss sent back). When the sentinel reports a
non-finite value, the copy runs that forward again, and the backward from that output
gradient, under the op-level tracer of :mod:`nndoctor.probes.trace` (offline only: it
synchronises per op). The user's model, its gradients and the random state are untouched:
the copy is a deep copy, and the random state is forked around it. An op of the backward
pass is named with the module whose forward made the autograd node running it: during the
replay's forward each module labels the nodes of its output's graph back to its inputs,
innermost module first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from nndoctor.copying import deepcopy_detached
from nndoctor.probes.trace import OpEvent, nonfinite_traced
from nndoctor.trees import first_tensor


@dataclass
class ReplayResult:
    """What a replay found: the first op (or None) and a note when it could not tell."""

    event: OpEvent | None = None
    note: str = ""


def _devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def replay_step(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    output_grad: torch.Tensor | None,
    weights: list[torch.Tensor] | None = None,
) -> ReplayResult:
    """Run ``model``'s forward on ``args``/``kwargs`` on a deep copy, then the backward from
    ``output_grad``, and return the first op producing a non-finite value. ``weights``, when
    given, are the trainable parameters (in ``named_parameters`` order) the step ran with,
    loaded into the copy: the model itself may have been updated since."""
    debug = torch.cuda.get_sync_debug_mode() if torch.cuda.is_available() else 0
    try:
        if debug:
            # An offline replay synchronises per op by design: not the training loop's syncs.
            torch.cuda.set_sync_debug_mode(0)
        return _replay(model, args, kwargs, output_grad, weights)
    finally:
        if debug:
            torch.cuda.set_sync_debug_mode(debug)


def _replay(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    output_grad: torch.Tensor | None,
    weights: list[torch.Tensor] | None,
) -> ReplayResult:
    with torch.random.fork_rng(devices=_devices(model)):
        twin = deepcopy_detached(model)
        twin.zero_grad(set_to_none=True)
        if weights is not None:
            with torch.no_grad():
                trained = [p for _, p in twin.named_parameters() if p.requires_grad]
                torch._foreach_copy_(trained, weights)
        weights_finite = all(bool(torch.isfinite(p).all()) for p in twin.parameters())
        if not weights_finite:
            return ReplayResult(
                note=(
                    "The weights were already non-finite when the batch was replayed (the value "
                    "was read after the update), so the first operation could not be named."
                )
            )

        def run() -> None:
            with torch.enable_grad():
                out = first_tensor(twin(*args, **kwargs))
                if out is None or not out.requires_grad:
                    return
                if output_grad is not None and output_grad.shape == out.shape:
                    out.backward(output_grad)
                elif out.dim() == 0:
                    out.backward()

        try:
            with (
                _nodes_by_module(twin) as labels,
                nonfinite_traced(twin) as tracer,
                _NodeAtEvent(tracer) as at_event,
            ):
                run()
        except (RuntimeError, ValueError, TypeError) as exc:
            return ReplayResult(note=f"The replay of the batch failed ({type(exc).__name__}).")
    if tracer.event is None:
        return ReplayResult(
            note=(
                "Replayed on a copy, the model's forward and backward stayed finite: the "
                "non-finite value came from the loss computation outside the model."
            )
        )
    event = tracer.event
    if event.phase == "backward" and event.module is None and at_event.node is not None:
        event = replace(event, module=labels.get(at_event.node))
    return ReplayResult(event=event)


class _NodeAtEvent(TorchDispatchMode):
    """Entered inside the tracer, so each op reaches it first: once the tracer has its
    event, the autograd node running then (None in the forward pass) is kept."""

    def __init__(self, tracer: Any) -> None:
        super().__init__()
        self.tracer = tracer
        self.done = False
        self.node: Any = None

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not self.done and self.tracer.event is not None:
            self.done = True
            self.node = torch._C._current_autograd_node()
        return out


def _tensors(obj: Any) -> list[torch.Tensor]:
    leaves, _ = tree_flatten(obj)
    return [t for t in leaves if isinstance(t, torch.Tensor)]


@contextmanager
def _nodes_by_module(model: nn.Module) -> Iterator[dict[Any, str]]:
    """Autograd node -> the innermost module whose forward made it, filled while the block
    runs the forward: each module's forward hook walks its output's graph back to its
    inputs' nodes and labels what no inner module (whose hook ran first) labelled."""
    labels: dict[Any, str] = {}
    handles = []

    def labeller(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            stop = {t.grad_fn for t in _tensors(args) if t.grad_fn is not None}
            stack = [t.grad_fn for t in _tensors(output) if t.grad_fn is not None]
            seen: set[Any] = set()
            while stack:
                node = stack.pop()
                if node is None or node in stop or node in seen:
                    continue
                seen.add(node)
                labels.setdefault(node, name)
                stack.extend(n for n, _ in node.next_functions)

        return hook

    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_hook(labeller(name or "<root>")))
        yield labels
    finally:
        for h in handles:
            h.remove()
