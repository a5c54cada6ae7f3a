"""Copies of the user's model (and optimizer) that ``copy.deepcopy`` alone would refuse.

Experiments train copies, never the user's objects. ``copy.deepcopy`` raises on a tensor
that is part of an autograd graph (``Only Tensors created explicitly by the user (graph
leaves) support the deepcopy protocol``), and training code keeps such tensors on its
modules: the classic REINFORCE policy appends each action's log-probability to
``self.saved_log_probs``, a recurrent model keeps its last hidden state, a module caches
its last output for a loss term. A copy holds them detached: values equal, no graph, so
nothing of the user's backward pass is shared with (or freed by) the copy.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterator
from typing import Any, TypeVar

import torch
from torch import nn

T = TypeVar("T")

# How deep the walk for graph tensors goes through containers and plain objects.
_MAX_DEPTH = 6


def deepcopy_detached(obj: T) -> T:
    """``copy.deepcopy(obj)``, where every tensor of an autograd graph that ``obj``'s modules
    (and optimizers, and plain containers) hold is copied detached instead."""
    memo: dict[int, Any] = {}
    for t in _graph_tensors(obj):
        memo[id(t)] = t.detach().clone()
    return copy.deepcopy(obj, memo)


def _graph_tensors(obj: Any) -> Iterator[torch.Tensor]:
    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(obj, 0)]
    while todo:
        x, depth = todo.pop()
        if id(x) in seen or depth > _MAX_DEPTH:
            continue
        seen.add(id(x))
        if isinstance(x, torch.Tensor):
            if not x.is_leaf:
                yield x
            continue
        for child in _children(x):
            todo.append((child, depth + 1))


def _children(x: Any) -> list[Any]:
    if isinstance(x, dict):
        return [*x.keys(), *x.values()]
    if isinstance(x, (list, tuple, set, frozenset)):
        return list(x)
    if isinstance(x, (nn.Module, torch.optim.Optimizer)):
        return list(vars(x).values())
    if hasattr(x, "__dict__") and not isinstance(x, type) and type(x).__module__ != "builtins":
        return list(vars(x).values())
    return []


def redraw_by_default(module: nn.Module, done: set[int] | None = None) -> None:
    """Re-draw ``module`` and every submodule by its own ``reset_parameters`` (PyTorch's
    default initialisation), in place. Submodules whose ids are in ``done`` are left as
    they are, and every id visited is added to it. Parameters of modules without
    ``reset_parameters`` (a bare ``nn.Parameter`` on a custom module) keep their values.
    The caller seeds the random streams, and forks them to leave the user's untouched."""
    done = set() if done is None else done
    with torch.no_grad():
        for sub in module.modules():
            if id(sub) in done:
                continue
            done.add(id(sub))
            reset = getattr(sub, "reset_parameters", None)
            if callable(reset):
                reset()


def set_training(model: nn.Module, mode: bool) -> nn.Module:
    """``model.train(mode)`` on a copy, unless one of its modules' classes redefines ``train``
    as something else than the mode switch (layer-local training code writes
    ``def train(self, x_pos, x_neg)`` on its layers): then every module's ``training`` flag
    is set directly, which is all ``nn.Module.train`` does."""
    if all(_is_mode_switch(type(m)) for m in model.modules()):
        return model.train(mode)
    for m in model.modules():
        m.training = mode
    return model


def _is_mode_switch(cls: type) -> bool:
    """Whether ``cls.train`` can be called as ``train(mode)``: PyTorch's own, or an override
    whose parameters past the first all have defaults (``def train(self, mode=True)``)."""
    method = getattr(cls, "train", None)
    if method is nn.Module.train:
        return True
    try:
        params = list(inspect.signature(method).parameters.values())[1:]
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return bool(positional) and all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params
    )
