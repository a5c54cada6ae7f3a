"""The values a loss input can take, read from the operation that made it.

A loss input made by ``sigmoid`` lies in (0, 1), by ``elu`` above ``-alpha``, by
``clamp(0, 1)`` in [0, 1]; one made by a ``Linear`` can be anything. The range is read from
the last value-changing node of the input's autograd graph and the arguments it saved
(``alpha`` of ``EluBackward0``, ``min_val``/``max_val`` of ``HardtanhBackward0``), through
nodes that only move values around. A concatenation's range covers all its parts.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

INF = math.inf

# Nodes that move values without changing them: the range of their input is theirs.
LAYOUT_NODES = frozenset(
    {
        "view",
        "reshapealias",
        "unsafeview",
        "squeeze",
        "unsqueeze",
        "permute",
        "transpose",
        "t",
        "expand",
        "clone",
        "select",
        "slice",
        "index",
        "cat",
        "stack",
        "tocopy",
        "split",
        "splitwithsizes",
        "unbind",
        "asstrided",
        "alias",
    }
)
# Nodes that join several tensors: the range of each part counts.
_JOINING_NODES = frozenset({"cat", "stack"})

# Operations whose output range does not depend on their arguments. The smooth
# ReLU-like activations are bounded below by their minimum over the real line.
_FIXED_RANGES: dict[str, tuple[float, float]] = {
    "sigmoid": (0.0, 1.0),
    "hardsigmoid": (0.0, 1.0),
    "softmax": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "relu": (0.0, INF),
    "softplus": (0.0, INF),
    "exp": (0.0, INF),
    "gelu": (-0.1700, INF),  # min of x * Phi(x), at x = -0.752
    "silu": (-0.2785, INF),  # min of x * sigmoid(x), at x = -1.278
    "mish": (-0.3089, INF),  # min of x * tanh(softplus(x)), at x = -1.192
    "hardswish": (-0.375, INF),  # min of x * relu6(x + 3) / 6, at x = -1.5
}

_MAX_DEPTH = 32


def node_name(node: Any) -> str:
    """An autograd node's operation in lower case: ``SigmoidBackward0`` → ``sigmoid``."""
    return re.sub(r"Backward\d*$", "", type(node).__name__).lower()


def output_range(t: torch.Tensor) -> tuple[str, float, float] | None:
    """The bounding operation that made ``t`` and the range of values it can produce, as
    ``(name, low, high)``; None where the last value-changing operation does not bound its
    output (a ``Linear``, a sum) or ``t`` has no gradient history."""
    return _range_of(t.grad_fn, 0)


def _range_of(node: Any, depth: int) -> tuple[str, float, float] | None:
    if node is None or depth > _MAX_DEPTH:
        return None
    name = node_name(node)
    if name in _JOINING_NODES:
        parts = [_range_of(f, depth + 1) for f, _ in node.next_functions if f is not None]
        if not parts or any(p is None for p in parts):
            return None
        bounded = [p for p in parts if p is not None]
        names = sorted({p[0] for p in bounded})
        return "/".join(names), min(p[1] for p in bounded), max(p[2] for p in bounded)
    if name in LAYOUT_NODES:
        nxt = [f for f, _ in node.next_functions if f is not None]
        return _range_of(nxt[0], depth + 1) if nxt else None
    return _bounds(node, name)


def _bounds(node: Any, name: str) -> tuple[str, float, float] | None:
    """The range of one value-changing node, from its kind and its saved arguments."""
    if name in _FIXED_RANGES:
        return (name, *_FIXED_RANGES[name])
    if name == "elu":
        # F.selu is elu with alpha 1.6733 and scale 1.0507: its floor is -scale * alpha.
        alpha, scale = _saved_number(node, "alpha"), _saved_number(node, "scale")
        if alpha is None or scale is None or alpha < 0 or scale <= 0:
            return None
        return ("elu" if scale == 1 else "selu"), -alpha * scale, INF
    if name == "celu":
        alpha = _saved_number(node, "alpha")
        return None if alpha is None or alpha < 0 else ("celu", -alpha, INF)
    if name == "hardtanh":
        lo, hi = _saved_number(node, "min_val"), _saved_number(node, "max_val")
        if lo is None or hi is None:
            return None
        return ("relu6" if (lo, hi) == (0, 6) else "hardtanh"), lo, hi
    if name.startswith("clamp"):
        # Bounds given as tensors (an element-wise clamp) are not read.
        lo, hi = _saved_number(node, "min"), _saved_number(node, "max")
        if lo is None and hi is None:
            return None
        return "clamp", (-INF if lo is None else lo), (INF if hi is None else hi)
    return None


def _saved_number(node: Any, field: str) -> float | None:
    """A scalar argument the node saved for its backward (``_saved_alpha``), or None where
    it saved none, saved a tensor, or the torch version names it otherwise."""
    value = getattr(node, f"_saved_{field}", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
