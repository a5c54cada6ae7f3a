"""The report's data model: Finding, CheckResult, RunInfo and Report. Plain data, no rendering."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from nndoctor.report.series import RunSeries

# The aspect of an info whose own evidence shows it harmless (a redundant bias, a scale a
# twin experiment showed to change nothing): it never stands in as a cause.
HARMLESS = "harmless"


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CRASHED = "crashed"


@dataclass(frozen=True)
class Where:
    """Where a problem was seen; every field optional."""

    module: str | None = None
    step: int | None = None
    file: str | None = None
    line: int | None = None
    op: str | None = None
    phase: int | None = None  # the phase of training (2: the script's second optimizer)
    # The ranks of a distributed job where it was seen, when not on every rank.
    ranks: tuple[int, ...] | None = None

    def describe(self) -> str:
        parts = [] if self.phase is None else [f"phase {self.phase}"]
        if self.ranks:
            parts.append(
                f"rank{'s' if len(self.ranks) > 1 else ''} {', '.join(map(str, self.ranks))}"
            )
        if self.module is not None:
            parts.append(f"module {self.module or '<root>'}")
        if self.op:
            parts.append(f"op {self.op}")
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Finding:
    """One diagnosed problem: what, why (reasons), where, the numbers and the fix."""

    check: str
    reasons: list[int]
    severity: Severity
    title: str
    message: str
    fix: str
    where: Where = field(default_factory=Where)
    evidence: dict[str, Any] = field(default_factory=dict)
    # Set by the diagnosis: cause, symptom (explained by a cause) or independent.
    role: str = "independent"
    # Which side of its check this finding is ("high", "low"), where a check can fire for
    # opposite reasons that different causes explain; HARMLESS for an info whose own
    # evidence says it does not hold training back; empty otherwise.
    aspect: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "check": self.check,
            "role": self.role,
            "reasons": list(self.reasons),
            "severity": self.severity.value,
            "title": self.title,
            "message": self.message,
            "where": self.where.to_dict(),
            "evidence": _jsonable(self.evidence),
            "fix": self.fix,
        }
        if self.aspect:
            out["aspect"] = self.aspect
        return out


@dataclass
class CheckResult:
    """How one registered check went."""

    check: str
    reasons: list[int]
    kind: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    phase: int = 1  # 2: run on the second phase of training
    conclusive: bool = True  # False: passed without evidence either way
    # An experiment's cost against the budget: processor seconds over the threads in use.
    budget_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "check": self.check,
            "reasons": list(self.reasons),
            "kind": self.kind,
            "status": self.status.value,
            "detail": self.detail,
            "seconds": round(self.seconds, 4),
        }
        if not self.conclusive:
            out["conclusive"] = False
        if self.budget_seconds is not None:
            out["budget_seconds"] = round(self.budget_seconds, 4)
        return out if self.phase == 1 else {**out, "phase": self.phase}


@dataclass
class RunInfo:
    """What was run and how the observation ended."""

    target: str  # script path or subject name
    argv: list[str] = field(default_factory=list)
    steps_observed: int = 0
    step_budget: int = 0
    stop_reason: str = ""  # "step budget", "script finished", "timeout", "script raised", ...
    seconds: float = 0.0
    observed: bool = True  # False: the script could not be observed (exit code 3)
    error: str | None = None  # one line saying what went wrong
    traceback: str | None = None
    output_tail: str = ""  # the last lines the script printed, when it did not run to a step
    likely_reasons: list[int] = field(default_factory=list)
    likely_cause: str | None = None
    notes: list[str] = field(default_factory=list)
    # A distributed job (nndoctor.distributed): this rank, the world size, which rank
    # reports, and per rank its steps and how it stopped. None for a single process.
    distributed: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["distributed"] is None:
            del out["distributed"]  # a single process's report is as it always was
        return out


@dataclass
class Report:
    """Everything a check produced: the run, the subject, every check's status, findings."""

    run: RunInfo
    subject: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # The causes and their symptoms (nndoctor.diagnosis.Diagnosis), set by the engine.
    diagnosis: Any = None
    # What the run looked like over its steps, for plots and the HTML report; set by the engine.
    series: RunSeries | None = None

    def counts(self) -> dict[str, int]:
        by = {s.value: 0 for s in Severity}
        for f in self.findings:
            by[f.severity.value] += 1
        st = {s.value: 0 for s in Status}
        for c in self.checks:
            st[c.status.value] += 1
        return {
            "errors": by["error"],
            "warnings": by["warning"],
            "infos": by["info"],
            "passed": st["passed"],
            "failed": st["failed"],
            "skipped": st["skipped"],
            "crashed": st["crashed"],
        }

    def worst(self) -> Severity | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=lambda s: s.rank)

    def fails(self, fail_on: str) -> bool:
        """True when some finding reaches ``fail_on`` (``error``, ``warning`` or ``never``)."""
        if fail_on == "never":
            return False
        gate = Severity(fail_on).rank
        return any(f.severity.rank >= gate for f in self.findings)

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def result(self, check: str) -> CheckResult | None:
        return next((c for c in self.checks if c.check == check), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nndoctor_version": self.versions.get("nndoctor"),
            "torch_version": self.versions.get("torch"),
            "versions": dict(self.versions),
            "run": self.run.to_dict(),
            "subject": _jsonable(self.subject),
            "summary": self.counts(),
            "diagnosis": [c.to_dict() for c in self.diagnosis.causes] if self.diagnosis else [],
            "differential": [d.to_dict() for d in self.diagnosis.differential]
            if self.diagnosis
            else [],
            "findings": [f.to_dict() for f in self.findings],
            "checks": [c.to_dict() for c in self.checks],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            **({"series": self.series.to_dict()} if self.series is not None else {}),
        }


def _jsonable(obj: Any) -> Any:
    """Evidence may hold numpy scalars, tuples or floats like inf; make it JSON-safe."""
    import math

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isnan(obj):
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if hasattr(obj, "item"):
        try:
            return _jsonable(obj.item())
        except (ValueError, RuntimeError):
            pass
    if isinstance(obj, Enum):
        return obj.value
    return str(obj)
