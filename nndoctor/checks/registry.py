"""The one registry of checks, filled by ``@register_check``.

A check is a function ``check(ctx: CheckContext) -> None`` that reads the
subject and the recording and reports through ``ctx.finding(...)``. It never
installs hooks; an *experiment* (kind="experiment") may train or evaluate copies.
Its docstring is its manual (``nndoctor explain``), in fixed headings.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS, Thresholds
from nndoctor.report.model import Finding, Severity, Where

if TYPE_CHECKING:
    from nndoctor.probes.recording import Recording
    from nndoctor.subject import Subject

DOC_HEADINGS = ("Why it matters", "What is measured", "How to fix", "Example")

CheckKind = Literal["observation", "experiment"]


class SkipCheck(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a check that cannot run here; the message says why."""


@dataclass(frozen=True)
class CheckSpec:
    id: str
    reasons: tuple[int, ...]
    severity: Severity
    kind: CheckKind
    func: Callable[[CheckContext], None]
    quick: bool  # runs under --quick (observations and the cheapest experiments)
    order: int
    # Experiments run in this order (lower first), so a spent budget leaves out the least
    # informative; observations run in registration order.
    priority: int = 50
    # The checks whose findings this one's finding explains (a causal link, for the diagnosis).
    explains: frozenset[str] = frozenset()
    # A symptom: an effect that many different bugs produce (cannot fit, loss far from chance).
    # Alone, it opens the diagnosis with a differential instead of a cause.
    symptom: bool = False
    # For a symptom: the reasons to look at next, most likely first, and how to tell each apart.
    differential: tuple[tuple[int, str], ...] = ()
    # Compares the ranks of a distributed job: runs only there (on rank 0, from every rank's
    # facts), and is no part of a single process's report.
    distributed: bool = False
    # For an experiment: the findings ("check:aspect") whose claim it tests directly. Its
    # ``ctx.refute(key, why)`` turns such a warning into a note carrying the evidence.
    refutes: frozenset[str] = frozenset()
    # Aspects of this check's findings that are effects, not causes: such a finding is
    # read as a symptom (it explains nothing, and the differential applies), as the NaN
    # that ends a diverging loss is the divergence's effect.
    symptom_aspects: frozenset[str] = frozenset()

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")

    def title(self) -> str:
        return self.doc.splitlines()[0] if self.doc else self.id


_REGISTRY: dict[str, CheckSpec] = {}


def register_check(
    id: str,  # noqa: A002 - the public name of the field
    reasons: tuple[int, ...] | list[int],
    severity: Severity | str = Severity.WARNING,
    kind: CheckKind = "observation",
    quick: bool | None = None,
    *,
    priority: int = 50,
    explains: tuple[str, ...] | frozenset[str] = (),
    symptom: bool = False,
    differential: tuple[tuple[int, str], ...] = (),
    distributed: bool = False,
    refutes: tuple[str, ...] | frozenset[str] = (),
    symptom_aspects: tuple[str, ...] | frozenset[str] = (),
) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Register ``func`` as the check ``id`` covering ``reasons`` (numbers from REASONS.md).

    ``explains`` names the checks whose findings a finding of this one explains (see
    :mod:`nndoctor.diagnosis`); ``symptom`` marks a check whose finding many bugs produce,
    with its ``differential``; ``priority`` orders the experiments (lower runs first);
    ``distributed`` marks a check comparing the ranks of a distributed job; ``refutes``
    names the findings (``"check:aspect"``) an experiment's outcome can refute;
    ``symptom_aspects`` names the aspects of its findings that are effects of another
    finding's cause (read as symptoms, with ``differential``)."""
    bad = [r for r in reasons if not 1 <= int(r) <= 37]
    if bad:
        raise ValueError(f"check {id!r}: reasons must be 1..37, got {bad}")

    def decorate(func: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
        if id in _REGISTRY:
            raise ValueError(f"check id {id!r} registered twice")
        _REGISTRY[id] = CheckSpec(
            id=id,
            reasons=tuple(int(r) for r in reasons),
            severity=Severity(severity),
            kind=kind,
            func=func,
            quick=(kind == "observation") if quick is None else quick,
            order=len(_REGISTRY),
            priority=priority,
            explains=frozenset(explains) - {id},
            symptom=symptom,
            differential=tuple(differential),
            distributed=distributed,
            refutes=frozenset(refutes),
            symptom_aspects=frozenset(symptom_aspects),
        )
        return func

    return decorate


def all_checks() -> list[CheckSpec]:
    """Every registered check, in registration order (importing the families on first use)."""
    _import_families()
    return sorted(_REGISTRY.values(), key=lambda s: s.order)


def get_check(check_id: str) -> CheckSpec:
    _import_families()
    if check_id not in _REGISTRY:
        raise KeyError(check_id)
    return _REGISTRY[check_id]


def checks_for_reason(reason: int) -> list[CheckSpec]:
    return [c for c in all_checks() if reason in c.reasons]


def _import_families() -> None:
    # Importing the family modules runs their decorators.
    from nndoctor.checks import (  # noqa: F401
        data,
        distributed,
        implementation,
        nan,
        preprocessing,
        training,
    )


@dataclass(frozen=True)
class Refutation:
    """An experiment's outcome against another check's finding: why, and whether it also
    turns an error into a note (the experiment tests the very claim the error makes)."""

    why: str
    errors: bool = False


@dataclass
class CheckContext:
    """What a check sees: the subject, the recording, thresholds and its own findings."""

    spec: CheckSpec
    subject: Subject | None
    recording: Recording
    thresholds: Thresholds = DEFAULT_THRESHOLDS
    budget: str = "default"  # "quick" or "default"
    findings: list[Finding] = field(default_factory=list)
    detail: str = ""  # a one-line note on what was checked, shown for passed checks
    services: Any = None  # the engine's helpers for experiments (copies, replays)
    refuted: dict[str, Refutation] = field(default_factory=dict)  # keyed "check:aspect"
    conclusive: bool = True  # False: passed without evidence either way

    def finding(
        self,
        title: str,
        message: str,
        fix: str,
        *,
        severity: Severity | str | None = None,
        reasons: tuple[int, ...] | list[int] | None = None,
        where: Where | None = None,
        evidence: dict[str, Any] | None = None,
        aspect: str = "",
    ) -> Finding:
        f = Finding(
            check=self.spec.id,
            reasons=sorted(set(reasons if reasons is not None else self.spec.reasons)),
            severity=Severity(severity) if severity is not None else self.spec.severity,
            title=title,
            message=message,
            fix=fix,
            where=where or Where(),
            evidence=evidence or {},
            aspect=aspect,
        )
        self.findings.append(f)
        return f

    def skip(self, why: str) -> None:
        raise SkipCheck(why)

    def note(self, detail: str) -> None:
        self.detail = detail

    def inconclusive(self, detail: str) -> None:
        """The check ran but its evidence decides neither way: it passes, and the
        diagnosis does not count it as having looked and found nothing."""
        self.detail = detail
        self.conclusive = False

    def refute(self, key: str, why: str, *, errors: bool = False) -> None:
        """This experiment's outcome contradicts the warning ``key`` ("check:aspect") of
        another check: the engine turns that warning into a note that says ``why``. With
        ``errors``, an error too: the experiment tests the very claim the error makes."""
        if key not in self.spec.refutes:
            raise ValueError(f"check {self.spec.id!r} does not declare refutes={key!r}")
        self.refuted[key] = Refutation(why, errors)
