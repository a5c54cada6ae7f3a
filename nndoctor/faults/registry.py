"""The bench's corpus: healthy cases and the faults injected into them.

A **healthy case** is an ordinary training setup that nndoctor must stay quiet on: a
plain script under ``examples/`` (run as ``nndoctor check`` would run it) or a zoo
subject (run through the Python API).

A **fault** is one named, real bug planted in a healthy case:

- a *script fault* is a list of exact text edits of the case's script, the way bugs
  really arrive (a line removed, a call added, an argument changed);
- a *subject fault* is a transformation of a zoo subject (its model, batches, loss
  or optimiser), applied before the doctor sees it.

Each fault names its primary reason (REASONS.md) and the other reasons an expert
would accept as a correct diagnosis of it. Each case and fault belongs to one split:
``dev`` (thresholds and checks are tuned on it) or ``test`` (never tuned on; about a
third of each corpus, fixed in the declarations and documented in the README).

Registries are the only module-level state; definitions live in the modules of this
package (one per family of base scripts) and are imported on first use.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Split = Literal["dev", "test"]
SPLITS: tuple[Split, ...] = ("dev", "test")


class FaultError(ValueError):
    """A fault that cannot be applied to its base (an edit that no longer matches)."""


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of ``old`` by ``new`` in a script."""

    old: str
    new: str


@dataclass(frozen=True)
class HealthyCase:
    """A setup nndoctor must stay quiet on (no warning, no error, observed).

    ``script`` is a path relative to the repository's ``examples/`` folder; ``zoo`` names
    a zoo subject checked through the Python API instead. Every script takes ``--seed N``.
    """

    name: str
    split: Split
    what: str  # one line: the setup and why it is easy to false-alarm on
    script: str | None = None
    zoo: str | None = None
    args: tuple[str, ...] = ()
    # Cheap enough (a few seconds) for the bench subset that runs in the test suite.
    ci: bool = False

    @property
    def kind(self) -> str:
        return "zoo" if self.zoo is not None else "script"


@dataclass(frozen=True)
class Fault:
    """A named bug planted in the healthy case ``base``.

    ``reason`` is the primary reason; ``also`` the other reasons an expert accepts as a
    correct diagnosis. A script fault carries ``edits``; a subject fault a ``transform``
    of the zoo subject (``Subject -> Subject``, it may mutate and return its argument).
    """

    name: str
    base: str
    reason: int
    split: Split
    what: str  # one line: the bug, as a reviewer would describe it
    also: tuple[int, ...] = ()
    edits: tuple[Edit, ...] = ()
    transform: Callable[[Any], Any] | None = None
    args: tuple[str, ...] = ()  # extra script arguments, after the base case's
    ci: bool = False

    @property
    def kind(self) -> str:
        return "subject" if self.transform is not None else "script"

    @property
    def accepted(self) -> frozenset[int]:
        """Every reason that counts as naming this bug."""
        return frozenset((self.reason, *self.also))


_HEALTHY: dict[str, HealthyCase] = {}
_FAULTS: dict[str, Fault] = {}


def register_healthy(case: HealthyCase) -> HealthyCase:
    _check_common(case.name, case.split, _HEALTHY)
    if (case.script is None) == (case.zoo is None):
        raise ValueError(f"healthy case {case.name!r}: give exactly one of script= and zoo=")
    _HEALTHY[case.name] = case
    return case


def register_fault(fault: Fault) -> Fault:
    _check_common(fault.name, fault.split, _FAULTS)
    if fault.name in _HEALTHY:
        raise ValueError(f"fault {fault.name!r} has the name of a healthy case")
    if not 1 <= fault.reason <= 37 or any(not 1 <= r <= 37 for r in fault.also):
        raise ValueError(f"fault {fault.name!r}: reasons are numbers 1-37")
    if bool(fault.edits) == (fault.transform is not None):
        raise ValueError(f"fault {fault.name!r}: give exactly one of edits= and transform=")
    _FAULTS[fault.name] = fault
    return fault


def _check_common(name: str, split: str, registry: dict[str, Any]) -> None:
    if name in registry:
        raise ValueError(f"{name!r} registered twice")
    if split not in SPLITS:
        raise ValueError(f"{name!r}: split must be one of {SPLITS}, got {split!r}")


def healthy_cases(split: str = "all", select: str | None = None) -> list[HealthyCase]:
    """Registered healthy cases of ``split`` (dev, test or all) whose name matches ``select``."""
    _import_all()
    return [c for c in _HEALTHY.values() if _wanted(c.name, c.split, split, select)]


def faults(split: str = "all", select: str | None = None) -> list[Fault]:
    """Registered faults of ``split`` whose name (or base case) matches ``select``."""
    _import_all()
    return [
        f
        for f in _FAULTS.values()
        if _wanted(f.name, f.split, split, select)
        or (select and _wanted(f.base, f.split, split, select))
    ]


def get_healthy(name: str) -> HealthyCase:
    _import_all()
    if name not in _HEALTHY:
        raise KeyError(f"no healthy case named {name!r}")
    return _HEALTHY[name]


def get_fault(name: str) -> Fault:
    _import_all()
    if name not in _FAULTS:
        raise KeyError(f"no fault named {name!r}")
    return _FAULTS[name]


def _wanted(name: str, case_split: str, split: str, select: str | None) -> bool:
    if split != "all" and case_split != split:
        return False
    if not select:
        return True
    # Several patterns, comma-separated: a case matching any of them.
    for one in (p.strip() for p in select.split(",")):
        pattern = one if any(ch in one for ch in "*?[") else f"*{one}*"
        if one and fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def apply_edits(text: str, edits: tuple[Edit, ...], *, fault: str = "") -> str:
    """``text`` with every edit applied; each ``old`` must occur exactly once."""
    for edit in edits:
        count = text.count(edit.old)
        if count != 1:
            where = f"fault {fault!r}: " if fault else ""
            raise FaultError(
                f"{where}the edit's text occurs {count} times (must be once): {edit.old[:60]!r}"
            )
        text = text.replace(edit.old, edit.new)
    return text


def _import_all() -> None:
    import importlib
    import pkgutil

    import nndoctor.faults as package

    for mod in pkgutil.iter_modules(package.__path__):
        if mod.name not in ("registry",) and not mod.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{mod.name}")
