"""Tensors nested in batches, model inputs and outputs, walked with ``torch.utils._pytree``.

pytree descends into the containers registered with it (tuple, list, dict, OrderedDict,
defaultdict, deque, namedtuples, ``torch.return_types``) and rebuilds them as their own
type. An unregistered subclass of dict, tuple or list (a user's ``class Batch(dict)``, a
Hugging Face ``ModelOutput`` where transformers does not register it) would be a leaf, its
tensors out of reach: these helpers open it as the plain dict, tuple or list it is, so
everything an ``isinstance`` walk reached is still reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree


def _opaque(x: Any) -> bool:
    """A dict, tuple or list that pytree does not open (an unregistered subclass)."""
    return isinstance(x, (dict, tuple, list)) and pytree.tree_is_leaf(x)


def _plain(x: dict[Any, Any] | tuple[Any, ...] | list[Any]) -> Any:
    if isinstance(x, dict):
        return dict(x)
    return tuple(x) if isinstance(x, tuple) else list(x)


def tree_leaves(obj: Any) -> list[Any]:
    """Every leaf of ``obj``, depth first, dict values in insertion order."""
    out: list[Any] = []
    for leaf in pytree.tree_leaves(obj):
        if _opaque(leaf):
            out.extend(tree_leaves(_plain(leaf)))
        else:
            out.append(leaf)
    return out


def tree_map(fn: Callable[[Any], Any], obj: Any) -> Any:
    """``obj`` with ``fn`` applied to every leaf, in ``tree_leaves`` order (so a stateful
    ``fn`` sees the leaves in the same order); an unregistered container comes back plain."""

    def leaf(x: Any) -> Any:
        return tree_map(fn, _plain(x)) if _opaque(x) else fn(x)

    return pytree.tree_map(leaf, obj)


def map_tensors(fn: Callable[[torch.Tensor], Any], obj: Any) -> Any:
    """``obj`` with ``fn`` applied to every tensor in it; other leaves are kept."""
    return tree_map(lambda x: fn(x) if isinstance(x, torch.Tensor) else x, obj)


def tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in ``obj``, in ``tree_leaves`` order."""
    return [x for x in tree_leaves(obj) if isinstance(x, torch.Tensor)]


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor in ``obj`` (``obj`` itself when it is one), or None."""
    found = tensors(obj)
    return found[0] if found else None
