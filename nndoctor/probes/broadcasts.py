"""Broadcasts inside a hand-written loss, read from the autograd graph of the loss.

A loss written by hand (``((pred - y) ** 2).mean()``) is a handful of elementwise
operations on the model's output (or on the last layer's output of a network the loss
reads: a critic called beside the observed actor). When the operands differ in shape,
broadcasting stretches one along a new axis: ``(N, 1) - (N,)`` gives ``(N, N)``. The
graph records each operation's result shape (its input metadata) and which operands carry
a gradient, so the stretch is visible after the fact without re-running anything. The
probe records every such stretch of a tensor made from the model's output; which of them
pair samples with other samples is for a check to judge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Autograd nodes of elementwise operations of two or more tensors, which broadcast.
ELEMENTWISE_NODES = frozenset(
    {
        "AddBackward0",
        "SubBackward0",
        "RsubBackward0",
        "MulBackward0",
        "DivBackward0",
        "PowBackward1",
        "MaximumBackward0",
        "MinimumBackward0",
        "FmaxBackward0",
        "FminBackward0",
        "Atan2Backward0",
        "HypotBackward0",
        "XlogyBackward0",
        "WhereBackward0",
        "AddcmulBackward0",
        "AddcdivBackward0",
        "LerpBackward0",
        "LerpBackward1",
    }
)
# A loss part this many operations deep (the walk ends at every layer, so only a long
# chain of operations without parameters gets there) is not searched.
GRAPH_LIMIT = 5000


@dataclass(frozen=True)
class LossBroadcast:
    """An elementwise operation that stretched a tensor made from the model's output
    along axes it did not have (or had of length 1)."""

    op: str  # the autograd node's name, e.g. "SubBackward0"
    operand: tuple[int, ...]  # the shape of the operand made from the model's output
    result: tuple[int, ...]  # the operation's result shape
    new_axes: tuple[int, ...]  # axes of ``result`` the operand was stretched along
    # Another operand carries a gradient too (two of the model's outputs compared, every
    # pair on purpose), rather than a target or a constant.
    other_has_grad: bool
    # The operand's length-1 axis was made just before (``x.unsqueeze(1)``, ``x[:, None]``):
    # a stretch written on purpose.
    unsqueezed: bool
    # For an operand of one element: the shape of the tensor a reduction of all its
    # elements made it from (``d.sum()`` of a ``(N, D)`` tensor), a few elementwise steps
    # back; None where it was not so made (a learned scale, ``log_alpha.exp()``).
    reduced_from: tuple[int, ...] | None = None
    # Where the loss was back-propagated (the user's ``loss.backward()``), set by the probe.
    file: str | None = None
    line: int | None = None


def _shape(node: Any, index: int) -> tuple[int, ...] | None:
    """The shape of the ``index``-th forward output of ``node`` (None where the graph does
    not say: an older torch, a nested tensor)."""
    try:
        return tuple(int(d) for d in node._input_metadata[index].shape)
    except Exception:  # noqa: BLE001 - private metadata: absent means unknown
        return None


def stretched_axes(operand: tuple[int, ...], result: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of ``result`` that broadcasting ``operand`` to it stretched (axes the
    operand lacks, or has of length 1, that are longer in the result); () where the
    operand does not broadcast to the result."""
    if len(operand) > len(result):
        return ()
    padded = (1,) * (len(result) - len(operand)) + operand
    if any(p not in (1, r) for p, r in zip(padded, result, strict=True)):
        return ()
    return tuple(i for i, (p, r) in enumerate(zip(padded, result, strict=True)) if p == 1 and r > 1)


# Reductions of every element of a tensor to one number.
FULL_REDUCTIONS = frozenset(
    {
        "SumBackward0",
        "MeanBackward0",
        "NormBackward0",
        "LinalgVectorNormBackward0",
        "MaxBackward1",
        "MinBackward1",
        "ProdBackward0",
        "StdBackward0",
        "VarBackward0",
        "LogsumexpBackward0",
    }
)
# Elementwise steps looked through, from an operand of one element back to its reduction.
REDUCTION_HOPS = 6


def _reduced_from(node: Any, index: int, made: dict[Any, bool]) -> tuple[int, ...] | None:
    """The shape of the tensor whose full reduction ``node`` (its ``index``-th output, one
    element) was made from, through at most REDUCTION_HOPS operations of one operand made
    from an output each; None where no such reduction is found."""
    for _ in range(REDUCTION_HOPS):
        shape = _shape(node, index)
        if shape is None or math.prod(shape) != 1:
            return None
        children = [
            (c, i) for c, i in getattr(node, "next_functions", ()) if c is not None and made.get(c)
        ]
        if node.name() in FULL_REDUCTIONS:
            reduced = _shape(*children[0]) if len(children) == 1 else None
            return reduced if reduced is not None and math.prod(reduced) > 1 else None
        if len(children) != 1:
            return None
        node, index = children[0]
    return None


def _parametrized(node: Any) -> bool:
    """Whether ``node`` takes a leaf with a gradient (a parameter) directly: the operation
    of a layer (a linear map, a convolution, a learned scale), where a model ends."""
    return any(
        child is not None and child.name() == "torch::autograd::AccumulateGrad"
        for child, _ in getattr(node, "next_functions", ())
    )


def _post_order(root: Any, outputs: set[Any]) -> list[Any] | None:
    """The nodes behind ``root``, each after the nodes behind it, not walking past the
    ``outputs`` (the model's outputs, and every layer's operation: a network called
    outside the model's forward, a critic beside an actor, ends there too); None past
    GRAPH_LIMIT nodes."""
    order: list[Any] = []
    seen: set[Any] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        if len(seen) > GRAPH_LIMIT:
            return None
        stack.append((node, True))
        if node in outputs or _parametrized(node):
            continue
        for child, _ in getattr(node, "next_functions", ()):
            if child is not None and child not in seen:
                stack.append((child, False))
    return order


def loss_broadcasts(
    root: Any, outputs: Iterable[Any], limit: int = 16
) -> list[LossBroadcast] | None:
    """Each elementwise operation between the model's ``outputs`` (their autograd nodes)
    and the loss at ``root`` (its grad_fn) that stretched a tensor made from an output
    along a new axis; at most ``limit`` of them, each kind once. None where the graph
    cannot be searched (no output nodes, shapes the graph does not record, a walk past
    GRAPH_LIMIT nodes)."""
    stops = set(outputs)
    if root is None or not stops or _shape(root, 0) is None:
        return None
    order = _post_order(root, stops)
    if order is None:
        return None
    # Where the walk ended: the outputs met, and the layers' operations behind the rest.
    stops = {node for node in order if node in stops or _parametrized(node)}
    made_from_output: dict[Any, bool] = {}
    for node in order:
        made_from_output[node] = node in stops or any(
            made_from_output.get(child, False)
            for child, _ in getattr(node, "next_functions", ())
            if child is not None
        )
    found: list[LossBroadcast] = []
    for node in order:
        if node in stops or node.name() not in ELEMENTWISE_NODES or not made_from_output[node]:
            continue
        result = _shape(node, 0)
        if result is None:
            continue
        slots = node.next_functions
        for i, (child, index) in enumerate(slots):
            if child is None or not made_from_output.get(child, False):
                continue
            operand = _shape(child, index)
            if operand is None:
                continue
            axes = stretched_axes(operand, result)
            if not axes:
                continue
            event = LossBroadcast(
                op=node.name(),
                operand=operand,
                result=result,
                new_axes=axes,
                other_has_grad=any(c is not None for j, (c, _) in enumerate(slots) if j != i),
                unsqueezed=child.name() == "UnsqueezeBackward0",
                reduced_from=(
                    _reduced_from(child, index, made_from_output)
                    if math.prod(operand) == 1
                    else None
                ),
            )
            if event not in found:
                found.append(event)
            if len(found) >= limit:
                return found
    return found
