"""Every submodule's outputs during one call of a model copy, handed to a callback.

Experiments that ask where inside a network something happens (which layer first mixes
the samples of a batch) read the intermediate values this way. The hooks live for one
call and are removed in ``finally``; the callback gets each float tensor a submodule
returns, in forward order, keyed by the submodule's name, the call's index among that
submodule's calls (a block reused) and the tensor's index among its outputs. A model
whose forward writes its own state can be made to start every call from the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from nndoctor.probes.trace import autograd_nodes
from nndoctor.trees import tree_leaves

OutputKey = tuple[str, int, int]  # (module name, call of that module, tensor among its outputs)


def _tensors(output: Any) -> list[torch.Tensor]:
    """The tensors of a module's output, those of a ``PackedSequence`` left out: its rows
    are the sequences' time steps interleaved by length, held on no axis of the batch."""
    if isinstance(output, PackedSequence):
        return []
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for o in output for t in _tensors(o)]
    if isinstance(output, dict):
        return [t for o in output.values() for t in _tensors(o)]
    return [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]


def visit_module_outputs(
    model: nn.Module,
    run: Callable[[], Any],
    on_output: Callable[[OutputKey, torch.Tensor], None],
    on_input: Callable[[OutputKey, torch.Tensor], None] | None = None,
) -> Any:
    """``run()`` with ``on_output`` called on every non-empty float tensor each submodule
    (the model itself left out) returns (an expert given no token returns an empty one),
    and ``on_input`` on those of its positional arguments, before; ``run``'s result."""
    calls: dict[str, int] = {}
    handles = []

    def visit(key: tuple[str, int], values: Any, on: Callable[..., None]) -> None:
        for i, t in enumerate(_tensors(values)):
            # A nested tensor (a Transformer encoder's padded batch packed in eval mode)
            # has no one shape to compare or cut by sample.
            if t.is_nested:
                continue
            if t.is_floating_point() and t.dim() > 0 and t.numel() > 0:
                on((*key, i), t.detach())

    def hook_for(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, args: Any, output: Any) -> None:
            k = calls.get(name, 0)
            calls[name] = k + 1
            if on_input is not None:
                visit((name, k), args, on_input)
            visit((name, k), output, on_output)

        return hook

    try:
        for name, module in model.named_modules():
            if name:
                handles.append(module.register_forward_hook(hook_for(name)))
        return run()
    finally:
        for h in handles:
            h.remove()


@contextmanager
def state_restored_at_each_call(model: nn.Module) -> Iterator[None]:
    """Inside the block, every call of ``model`` starts from the parameters and buffers it
    held when the block began: a forward that writes its own state (MoCo's queue of
    negatives and momentum encoder, a memory bank) answers each call from the same state,
    so two calls differ only by their inputs. The hook is removed on exit."""
    saved = {name: t.detach().clone() for name, t in _state(model)}

    def restore(module: nn.Module, args: Any) -> None:
        with torch.no_grad():
            for name, t in _state(model):
                kept = saved.get(name)
                if kept is not None and kept.shape == t.shape and kept.dtype == t.dtype:
                    t.copy_(kept)

    handle = model.register_forward_pre_hook(restore)
    try:
        yield
    finally:
        handle.remove()


def _state(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    yield from model.named_parameters()
    yield from model.named_buffers()


def layers_fed(
    model: nn.Module, run: Callable[[], Any], sources: set[str], targets: set[str]
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """For each submodule named in ``sources``, the submodules named in ``targets`` whose
    first input, in ``run()`` (gradients on), was computed from its output (the autograd
    graph of each target's first input walked back to the sources' output nodes); and, of
    those, the ones that reach what the forward computed before that source only through
    it: with the source's output taken away, the walk back from the target's input meets no
    node of the source input's history (parameters aside, which hold nothing of one
    sample). A layer of width one that a target reads only this way squeezes every sample
    into one number on the way there; one whose output only weighs features that also
    reach the target by another path (an attention scorer, a gate) does not. A history
    too long to walk counts as no other path. The hooks live for the call and are removed
    in ``finally``."""
    flows = _record_flows(model, run, sources, targets)
    only: dict[str, set[str]] = {name: set() for name in sources}
    for source, fed in flows.fed.items():
        outputs = {node for node, name in flows.made.items() if name == source}
        before = {
            node
            for node in autograd_nodes(flows.source_inputs.get(source, []), _WALK_LIMIT)
            if not _is_leaf_node(node)
        }
        for target in fed:
            roots = [t.grad_fn for t in flows.inputs.get(target, [])]
            if not before or not _meets(roots, before, stop=outputs):
                only[source].add(target)
    return {name: set(fed) for name, fed in flows.fed.items()}, only


# Autograd nodes walked for one question about a forward's graph; a small model's whole
# graph holds a few hundred.
_WALK_LIMIT = 50_000


def _is_leaf_node(node: Any) -> bool:
    """A parameter's (or any leaf tensor's) gradient accumulator: no sample flows through it."""
    return type(node).__name__ == "AccumulateGrad"


def _meets(roots: list[Any], nodes: set[Any], *, stop: set[Any]) -> bool:
    """Whether the autograd history behind ``roots`` reaches one of ``nodes`` without
    passing through one of ``stop``; a walk past ``_WALK_LIMIT`` nodes answers False."""
    return any(node in nodes for node in autograd_nodes(roots, _WALK_LIMIT, stop=stop))


class _Flows:
    """What one forward computed from what, for the named sources and targets."""

    def __init__(self, sources: set[str]) -> None:
        self.made: dict[Any, str] = {}  # a source output's autograd node -> the source
        self.fed: dict[str, set[str]] = {name: set() for name in sources}
        self.inputs: dict[str, list[torch.Tensor]] = {}  # a target's first input
        self.source_inputs: dict[str, list[Any]] = {}  # a source's first input's nodes


def _record_flows(
    model: nn.Module, run: Callable[[], Any], sources: set[str], targets: set[str]
) -> _Flows:
    flows = _Flows(sources)
    handles = []

    def keep_output(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, args: Any, output: Any) -> None:
            if name not in flows.source_inputs:
                flows.source_inputs[name] = [
                    t.grad_fn for t in _tensors(args) if t.grad_fn is not None
                ]
            for t in _tensors(output):
                if t.grad_fn is not None:
                    flows.made.setdefault(t.grad_fn, name)

        return hook

    def keep_input(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, args: Any) -> None:
            if name not in flows.inputs:
                flows.inputs[name] = [t for t in _tensors(args) if t.grad_fn is not None]

        return hook

    try:
        for name, module in model.named_modules():
            if name in sources:
                handles.append(module.register_forward_hook(keep_output(name)))
            if name in targets:
                handles.append(module.register_forward_pre_hook(keep_input(name)))
        with torch.enable_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    for target, tensors in flows.inputs.items():
        for node in autograd_nodes(t.grad_fn for t in tensors):
            if node in flows.made and flows.made[node] != target:
                flows.fed[flows.made[node]].add(target)
    return flows


def _outputs_of(run: Callable[[], Any], repeat: Callable[[], Any]) -> list[torch.Tensor]:
    with torch.no_grad(), repeat():
        return [t.detach() for t in _tensors(run())]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(
        x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b, strict=True)
    )


def _steady_outputs(run: Callable[[], Any], repeat: Callable[[], Any]) -> list[torch.Tensor] | None:
    """``run()``'s tensors, when two calls under ``repeat`` give them bit for bit alike
    (a forward that draws beyond the seeded noise, or writes state it reads, cannot be
    compared with a changed one); None otherwise."""
    base = _outputs_of(run, repeat)
    return base if base and _same(base, _outputs_of(run, repeat)) else None


def _changed(output: Any) -> Any:
    """A module output or a tensor, every float tensor in it changed (``2 t + 1``)."""
    if isinstance(output, torch.Tensor) and (output.is_floating_point() or output.is_complex()):
        return output * 2 + 1
    if isinstance(output, tuple):
        return tuple(_changed(o) for o in output)
    return output


def outputs_reading(
    model: nn.Module, run: Callable[[], Any], modules: set[str], *, repeat: Callable[[], Any]
) -> dict[str, bool]:
    """For each submodule named in ``modules`` that ``run()`` calls, whether ``run()``'s
    result changes when that submodule's float outputs are changed (each ``2 t + 1``): a
    layer whose output the model's own output reads, against one whose output is computed
    and discarded. ``repeat`` wraps each call (the same random draws each time); an empty
    answer when two plain calls already disagree. Without gradients; each hook lives for
    its call."""
    base = _steady_outputs(run, repeat)
    if base is None:
        return {}
    read: dict[str, bool] = {}
    for name, module in model.named_modules():
        if name not in modules:
            continue
        calls = [0]

        def hook(_module: nn.Module, _args: Any, output: Any, calls: list[int] = calls) -> Any:
            calls[0] += 1
            return _changed(output)

        handle = module.register_forward_hook(hook)
        try:
            moved = not _same(base, _outputs_of(run, repeat))
        finally:
            handle.remove()
        if calls[0]:
            read[name] = moved
    return read


def plain_tensor_attributes(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors the submodules of ``model`` hold as plain attributes, neither parameters
    nor buffers (``self.w = torch.randn(...)``), by qualified name: ``model.parameters()``,
    ``state_dict()`` and ``.to(device)`` do not see them."""
    found: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
                found[f"{prefix}.{attr}" if prefix else attr] = value
    return found


def attributes_reading(
    model: nn.Module, run: Callable[[], Any], names: set[str], *, repeat: Callable[[], Any]
) -> dict[str, bool]:
    """For each plain tensor attribute named in ``names`` (see :func:`plain_tensor_attributes`),
    whether ``run()``'s result changes when the attribute is changed (``2 t + 1``), the
    attribute restored after each call; an empty answer when two plain calls disagree."""
    base = _steady_outputs(run, repeat)
    if base is None:
        return {}
    modules = dict(model.named_modules())
    read: dict[str, bool] = {}
    for name in sorted(names):
        owner, _, attr = name.rpartition(".")
        module = modules.get(owner)
        if module is None or not isinstance(vars(module).get(attr), torch.Tensor):
            continue
        original = vars(module)[attr]
        setattr(module, attr, _changed(original))
        try:
            read[name] = not _same(base, _outputs_of(run, repeat))
        finally:
            setattr(module, attr, original)
    return read
