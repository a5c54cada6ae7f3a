"""Seeing a network whose ``forward`` the script calls directly.

Zero-code capture finds the model through PyTorch's module hooks, which run when a module
is *called* (``layer(x)``). Some training code calls the method instead, ``self.forward(x)``
(layer-local training where each layer runs its own loop, teaching code, RL agents): no
hook runs and no model is ever found, though an optimizer steps on the parameters of a
module.

So at the first optimizer step of a script in which no module with parameters was called
(or only a layer inside the network that optimizer trains: ``net.forward(x)`` calls its
layers normally), the module that holds that optimizer's parameters is looked up among the
live objects, and a direct ``forward`` of exactly that instance is routed through the
module's own call from then on (``self(*args)``: hooks, then the same ``forward``). Nothing else
changes: a call through ``module(x)`` runs its ``forward`` once as before, another
instance of the class (a copy, a layer of another network) is not routed, and a subclass
reaching the class's ``forward`` through ``super()`` runs it as written. The class
attributes are put back when the capture ends; the instances themselves are never
touched, so they pickle and copy as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules import module as module_mod

# Classes routed at most: one optimizer's parameters are held by a few module types.
MAX_CLASSES = 8


class DirectForwards:
    """Routes direct ``forward`` calls of chosen module instances through their call."""

    def __init__(self) -> None:
        self.routed: list[str] = []  # class names, for the report
        self._owners: set[int] = set()
        self._entered: set[int] = set()  # instances inside their own call right now
        self._inside: set[int] = set()  # instances inside a routed direct call right now
        self._patched: list[tuple[type, Any, bool]] = []  # class, forward, own attribute
        self._decided = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        handle = module_mod.register_module_forward_pre_hook(self._note_call)
        try:
            yield
        finally:
            handle.remove()
            self._restore()

    def route(self, optimizer: torch.optim.Optimizer) -> None:
        """At the first optimizer step with no model found: route the direct forwards of
        the modules that hold its parameters. Decided once."""
        if not self._decided:
            self.route_modules(
                holders({id(p) for g in optimizer.param_groups for p in g["params"]})
            )

    def route_modules(self, owners: list[nn.Module]) -> None:
        """Route the direct forwards of ``owners`` from now on. Decided once."""
        if self._decided:
            return
        self._decided = True
        classes: dict[type, None] = {}
        for module in owners:
            classes.setdefault(type(module))
        if not owners or len(classes) > MAX_CLASSES:
            return
        self._owners = {id(m) for m in owners}
        for cls in classes:
            self._patch(cls)
            self.routed.append(cls.__name__)

    def _note_call(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if id(module) in self._owners:
            self._entered.add(id(module))

    def _patch(self, cls: type) -> None:
        own = "forward" in cls.__dict__
        original = cls.__dict__["forward"] if own else cls.forward
        self._patched.append((cls, original, own))
        cls.forward = self._routing(cls, original)  # type: ignore[attr-defined]

    def _routing(self, cls: type, original: Callable[..., Any]) -> Callable[..., Any]:
        owners, entered, inside = self._owners, self._entered, self._inside

        def forward(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            key = id(module)
            if key not in owners or type(module) is not cls:
                return original(module, *args, **kwargs)
            if key in inside:
                # Inside its own call already: a forward that calls itself on its parts (a
                # tree, node by node), or a call whose hooks did not run: as written.
                entered.discard(key)
                return original(module, *args, **kwargs)
            inside.add(key)
            try:
                if key in entered:  # called through module(x): its hooks have run
                    entered.discard(key)
                    return original(module, *args, **kwargs)
                return module(*args, **kwargs)
            finally:
                inside.discard(key)

        forward.__wrapped__ = original  # type: ignore[attr-defined]
        forward.__doc__ = getattr(original, "__doc__", None)
        return forward

    def _restore(self) -> None:
        for cls, original, own in reversed(self._patched):
            if own:
                cls.forward = original  # type: ignore[attr-defined]
            else:
                try:
                    del cls.forward  # type: ignore[attr-defined]
                except AttributeError:
                    pass
        self._patched.clear()
        self._owners.clear()
        self._entered.clear()
        self._inside.clear()


def holders(params: set[int]) -> list[nn.Module]:
    """The live module that holds all of ``params`` with the fewest parameters besides (the
    network the optimizer trains, not a container of several); else, when no module holds
    them all, the outermost modules holding some."""
    found = _holding(params)
    cover = _smallest_cover(found, params)
    if cover is not None:
        return [cover]
    inner = {id(m) for h, _ in found for m in h.modules() if m is not h}
    return [h for h, _ in found if id(h) not in inner]


def direct_parent(own: set[int], model: nn.Module, called: set[int]) -> nn.Module | None:
    """When an optimizer holding the parameters ``own`` steps and holds more than ``model``
    (the module found first), the module holding all of them, if it contains ``model`` but
    is not among the modules ``called`` (ids): its forward is called directly
    (``net.forward(x)`` calls its layers normally), and it is the network trained."""
    if own <= {id(p) for p in model.parameters()}:
        return None
    parent = covering_module(own)
    if (
        parent is None
        or parent is model
        or id(parent) in called
        or not any(m is model for m in parent.modules())
    ):
        return None
    return parent


def covering_module(params: set[int]) -> nn.Module | None:
    """The live module that holds all of ``params`` with the fewest parameters besides."""
    return _smallest_cover(_holding(params), params)


def _smallest_cover(found: list[tuple[nn.Module, set[int]]], params: set[int]) -> nn.Module | None:
    covering = [(len(own), i) for i, (_, own) in enumerate(found) if params <= own]
    return found[min(covering)[1]][0] if covering else None


def _holding(params: set[int]) -> list[tuple[nn.Module, set[int]]]:
    """The live modules holding any of ``params``, each with its parameters' ids. By
    ``type``: ``isinstance`` would ask every object for its ``__class__``."""
    found = []
    for o in gc.get_objects():
        if issubclass(type(o), nn.Module):
            own = {id(p) for p in o.parameters()}
            if own & params:
                found.append((o, own))
    return found
