"""The zoo registry: named reference subjects, filled by ``@register_zoo`` in each model file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nndoctor.subject import Subject


@dataclass(frozen=True)
class ZooEntry:
    """A registered reference subject.

    ``build(seed=..., device=...)`` returns a fresh, healthy :class:`Subject`.
    ``train(steps=..., device=..., seed=..., progress=...)`` trains it and returns
    a dict of metrics (at least ``loss_start``, ``loss_end`` and the family's
    metric, e.g. ``ap50`` for detectors).
    """

    name: str
    family: str  # "ssl" or "detection"
    learns: str  # one line: what the model learns
    build: Callable[..., Subject]
    train: Callable[..., dict[str, Any]]
    default_steps: int
    script: str  # path of the plain training script, relative to the repository root


_ZOO: dict[str, ZooEntry] = {}


def register_zoo(entry: ZooEntry) -> ZooEntry:
    if entry.name in _ZOO:
        raise ValueError(f"zoo subject {entry.name!r} registered twice")
    _ZOO[entry.name] = entry
    return entry


def zoo_entries() -> list[ZooEntry]:
    """Every registered subject, importing the model files on first use."""
    _import_all()
    return sorted(_ZOO.values(), key=lambda e: (e.family, e.name))


def get_zoo(name: str) -> ZooEntry:
    _import_all()
    if name not in _ZOO:
        raise KeyError(f"no zoo subject named {name!r}; known: {', '.join(sorted(_ZOO))}")
    return _ZOO[name]


def _import_all() -> None:
    import importlib
    import pkgutil

    from nndoctor.zoo import detection, ssl

    for pkg in (ssl, detection):
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg.__name__}.{mod.name}")
