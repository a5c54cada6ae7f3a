"""Watch a whole training run at near-zero cost.

``nndoctor.watch(model, optimizer)`` (a context manager) and ``nndoctor watch SCRIPT`` stay
attached to a training run from its first step to its last: an always-on sentinel reads the
loss, the global gradient norm and a GradScaler's decisions at every step, per-layer
statistics are sampled every k steps (k adapted to a cost budget), and stream checks raise
alerts as problems appear. See :mod:`nndoctor.watch.session`.
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "watch": "nndoctor.watch.session",
    "Watcher": "nndoctor.watch.session",
    "WatchStopped": "nndoctor.watch.session",
    "WatchReport": "nndoctor.watch.report",
}

if TYPE_CHECKING:
    from nndoctor.watch.report import WatchReport
    from nndoctor.watch.session import Watcher, WatchStopped, watch


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nndoctor.watch' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``nndoctor.watch`` names this package once any of its modules is imported (Python
    sets a subpackage as an attribute of its parent): calling the package calls
    :func:`watch`, so ``nndoctor.watch(model, optimizer)`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return import_module("nndoctor.watch.session").watch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["WatchReport", "WatchStopped", "Watcher", "watch"]
