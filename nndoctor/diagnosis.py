"""The diagnosis: the report's first word, assembled from its findings.

One bug shows as several findings: a softmax before the loss also makes the tiny batch
impossible to fit and the loss sit away from chance. Checks declare in the registry
which other checks' findings theirs explains (``explains=``) and which of them are mere
symptoms (``symptom=True``). From the loud findings (warnings and errors) this module
builds:

- **causes**: findings of non-symptom checks that no stronger finding explains, each with
  the findings it explains (directly or through another explained finding) nested under
  it, ranked by severity, then by how much they explain;
- **weak causes**: an info (advice that healthy setups also draw) whose check explains a
  loud symptom that no loud cause explains, leading with low confidence;
- **independent** findings: loud findings that no cause explains;
- a **differential** when there are symptoms but no cause: the reasons to look at next,
  most likely first (the reasons most of the symptoms point to), with what tells them apart;
  a reason whose every check ran to a conclusion and found nothing goes after the others,
  saying so (it has been looked at).

When two findings explain each other (a NaN and a too-high learning rate), the stronger
one (error over warning, then a non-symptom, then the earlier experiment) is the cause.
A finding may name its ``aspect`` (update/weight ratios too ``high`` or too ``low``): a
link to ``check:aspect`` explains only that aspect, a link to ``check`` every one, since a
frozen layer explains tiny updates but not runaway ones.
Every finding gets a ``role``: ``cause``, ``symptom`` or ``independent``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nndoctor.report.model import HARMLESS, Finding, Severity, Status

if TYPE_CHECKING:
    from nndoctor.checks.registry import CheckSpec
    from nndoctor.report.model import CheckResult, Report


@dataclass
class Cause:
    """One cause: the findings of one check, and the findings of others it explains."""

    findings: list[Finding]
    confidence: str  # high | medium | low
    explains: list[Finding] = field(default_factory=list)

    @property
    def lead(self) -> Finding:
        return self.findings[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.lead.check,
            "reasons": list(self.lead.reasons),
            "title": self.lead.title,
            "severity": self.lead.severity.value,
            "confidence": self.confidence,
            "explains": sorted({f.check for f in self.explains}),
        }


@dataclass(frozen=True)
class Lead:
    """A reason to look at next when only symptoms were found."""

    reason: int
    look_at: str
    pointed_to_by: tuple[str, ...]
    # The checks covering this reason that ran to a conclusion and found nothing.
    checked_clean: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """What to look at, and whether the checks for it already looked."""
        if not self.checked_clean:
            return self.look_at
        return f"{self.look_at} (checked by {', '.join(self.checked_clean)}: nothing found)"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reason": self.reason,
            "look_at": self.look_at,
            "pointed_to_by": list(self.pointed_to_by),
        }
        if self.checked_clean:
            out["checked_clean"] = list(self.checked_clean)
        return out


@dataclass
class Diagnosis:
    causes: list[Cause] = field(default_factory=list)
    independent: list[Finding] = field(default_factory=list)
    differential: list[Lead] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.causes or self.independent)

    def ordered_findings(self, findings: list[Finding]) -> list[Finding]:
        """``findings`` reordered as the diagnosis reads: each cause followed by what it
        explains, then the independent loud findings, then the rest (infos)."""
        order: list[Finding] = []
        for cause in self.causes:
            order += cause.findings + cause.explains
        order += self.independent
        seen = {id(f) for f in order}
        return order + [f for f in findings if id(f) not in seen]


def diagnose(
    findings: list[Finding],
    specs: dict[str, CheckSpec] | None = None,
    results: list[CheckResult] | None = None,
) -> Diagnosis:
    """Assemble the diagnosis of ``findings`` and set each finding's ``role``; ``results``
    (every check's status) let the differential put the reasons already looked at last."""
    if specs is None:
        from nndoctor.checks.registry import all_checks

        specs = {s.id: s for s in all_checks()}
    loud = [f for f in findings if f.severity != Severity.INFO]
    by_check: dict[str, list[Finding]] = {}
    for f in sorted(loud, key=lambda f: -f.severity.rank):
        by_check.setdefault(finding_key(f), []).append(f)
    checks = list(by_check)

    def spec(check: str) -> CheckSpec | None:
        return specs.get(_base(check))

    def is_symptom(check: str) -> bool:
        s = spec(check)
        return bool(s and (s.symptom or _aspect(check) in s.symptom_aspects))

    def effect_only(check: str) -> bool:
        """A finding whose aspect marks it the effect of another's cause explains nothing."""
        s = spec(check)
        return bool(s and _aspect(check) in s.symptom_aspects)

    def strength(check: str) -> tuple[int, int, int]:
        s = spec(check)
        return (by_check[check][0].severity.rank, not is_symptom(check), -(s.priority if s else 99))

    def explains(a: str, b: str) -> bool:
        s = spec(a)
        return a != b and s is not None and not effect_only(a) and links(s.explains, b)

    def wins(b: str, a: str) -> bool:
        """Of two findings that explain each other, b is the cause: stronger, or as strong
        and first in the report (so that one of them always stays a cause)."""
        return strength(b) > strength(a) or (
            strength(b) == strength(a) and checks.index(b) < checks.index(a)
        )

    def explained(b: str) -> bool:
        return any(explains(a, b) and not (explains(b, a) and wins(b, a)) for a in checks)

    cause_checks = [c for c in checks if not is_symptom(c) and not explained(c)]
    reach = {c: _reachable(c, checks, explains) for c in cause_checks}
    cause_checks.sort(
        key=lambda c: (*(-x for x in strength(c)[:2]), -len(reach[c]), checks.index(c))
    )
    owner: dict[str, str] = {}
    for c in cause_checks:
        for other in reach[c]:
            if other not in cause_checks:
                owner.setdefault(other, c)
    diagnosis = Diagnosis()
    for c in cause_checks:
        lead = by_check[c][0]
        explained_findings = [
            f for other, own in owner.items() if own == c for f in by_check[other]
        ]
        confidence = (
            "high" if lead.severity == Severity.ERROR else "medium" if explained_findings else "low"
        )
        diagnosis.causes.append(Cause(by_check[c], confidence, explained_findings))
    diagnosis.independent = [
        f for c in checks if c not in cause_checks and c not in owner for f in by_check[c]
    ]
    # The tops of the chains no cause owns: loud findings that no other loud finding
    # explains (dead ReLUs under a diverging loss are its effect, and what they explain
    # theirs). Weak causes and the differential start from these.
    unowned = [c for c in checks if c not in cause_checks and c not in owner]
    roots = {id(f) for c in unowned if not explained(c) for f in by_check[c]} or {
        id(f) for c in unowned for f in by_check[c]
    }
    _promote_explaining_infos(findings, diagnosis, specs, roots)
    if not diagnosis.causes:
        diagnosis.differential = _differential(
            [c for c in unowned if any(id(f) in roots for f in by_check[c])],
            specs,
            _checked_clean(results or [], specs, findings),
        )
    _set_roles(findings, diagnosis)
    return diagnosis


def _promote_explaining_infos(
    findings: list[Finding], diagnosis: Diagnosis, specs: dict[str, CheckSpec], roots: set[int]
) -> None:
    """An info is advice while nothing goes wrong (raw [0, 1] inputs train fine); once a
    loud symptom that no loud finding explains is there (one of ``roots``, by ``id``), an
    info whose check explains that symptom is the evidence at hand for it, and leads as a
    low-confidence cause."""
    orphans = [
        f
        for f in diagnosis.independent
        if id(f) in roots
        and (s := specs.get(f.check))
        and (s.symptom or f.aspect in s.symptom_aspects)
    ]
    if not orphans:
        return
    infos: dict[str, list[Finding]] = {}
    for f in findings:
        # An info its own evidence shows harmless is no evidence for a symptom.
        if f.severity == Severity.INFO and f.aspect != HARMLESS:
            infos.setdefault(f.check, []).append(f)

    def covered(check: str) -> list[Finding]:
        s = specs.get(check)
        return [f for f in orphans if s is not None and links(s.explains, finding_key(f))]

    ranked = sorted(
        (c for c in infos if covered(c)),
        key=lambda c: (-len(covered(c)), specs[c].priority),
    )
    taken: set[int] = set()
    for check in ranked:
        explained = [f for f in covered(check) if id(f) not in taken]
        if not explained:
            continue
        taken.update(id(f) for f in explained)
        diagnosis.causes.append(Cause(infos[check], "low", explained))
    diagnosis.independent = [f for f in diagnosis.independent if id(f) not in taken]


def finding_key(f: Finding) -> str:
    """``check`` or ``check:aspect``: what the links of the registry name."""
    return f"{f.check}:{f.aspect}" if f.aspect else f.check


def _base(key: str) -> str:
    return key.split(":", 1)[0]


def _aspect(key: str) -> str:
    return key.split(":", 1)[1] if ":" in key else ""


def links(explains: frozenset[str], key: str) -> bool:
    """Whether a check explaining ``explains`` explains a finding keyed ``key``: named with
    its aspect, or by its check alone; a finding without an aspect matches any aspect."""
    base = _base(key)
    if key in explains or base in explains:
        return True
    return key == base and any(_base(e) == base for e in explains)


def _reachable(start: str, checks: list[str], explains: Any) -> list[str]:
    seen: list[str] = []
    frontier = [start]
    while frontier:
        current = frontier.pop()
        for other in checks:
            if other != start and other not in seen and explains(current, other):
                seen.append(other)
                frontier.append(other)
    return seen


def _checked_clean(
    results: list[CheckResult], specs: dict[str, CheckSpec], findings: list[Finding]
) -> dict[int, tuple[str, ...]]:
    """Reasons that every check covering them ran to a conclusion about and found nothing
    (no finding, not even a note, names them), with those checks."""
    status = {r.check: r for r in results}
    named = {reason for f in findings for reason in f.reasons}
    clean: dict[int, tuple[str, ...]] = {}
    for reason in {r for s in specs.values() for r in s.reasons} - named:
        covering = tuple(s.id for s in specs.values() if reason in s.reasons and not s.distributed)
        ran = [status.get(c) for c in covering]
        if covering and all(
            r is not None and r.status is Status.PASSED and r.conclusive for r in ran
        ):
            clean[reason] = covering
    return clean


def _differential(
    symptoms: list[str],
    specs: dict[str, CheckSpec],
    clean: dict[int, tuple[str, ...]] | None = None,
) -> list[Lead]:
    """Reasons the symptoms point to, most symptoms first, then by each symptom's own order;
    the reasons in ``clean`` (looked at, nothing found) after all the others."""
    clean = clean or {}
    votes: Counter[int] = Counter()
    first_seen: dict[int, tuple[int, int]] = {}
    look_at: dict[int, str] = {}
    by: dict[int, list[str]] = {}
    for i, check in enumerate(symptoms):
        s = specs.get(_base(check))
        for j, (reason, how) in enumerate(s.differential if s else ()):
            votes[reason] += 1
            first_seen.setdefault(reason, (j, i))
            look_at.setdefault(reason, how)
            by.setdefault(reason, []).append(check)
    ranked = sorted(votes, key=lambda r: (r in clean, -votes[r], first_seen[r]))
    return [Lead(r, look_at[r], tuple(by[r]), clean.get(r, ())) for r in ranked]


def _set_roles(findings: list[Finding], diagnosis: Diagnosis) -> None:
    causes = {id(f) for c in diagnosis.causes for f in c.findings}
    symptoms = {id(f) for c in diagnosis.causes for f in c.explains}
    for f in findings:
        f.role = "cause" if id(f) in causes else "symptom" if id(f) in symptoms else "independent"


def merge_diagnoses(first: Diagnosis, second: Diagnosis) -> Diagnosis:
    """The diagnoses of two phases of training as one: causes ranked by severity (the
    first phase first among equals), independent findings and leads side by side."""
    causes = sorted(first.causes + second.causes, key=lambda c: -c.lead.severity.rank)
    return Diagnosis(
        causes=causes,
        independent=first.independent + second.independent,
        differential=[] if causes else first.differential + second.differential,
    )


def attach(report: Report) -> Report:
    """Diagnose ``report``'s findings and order them as the diagnosis reads; returns it."""
    report.diagnosis = diagnose(report.findings, results=report.checks)
    report.findings = report.diagnosis.ordered_findings(report.findings)
    return report
