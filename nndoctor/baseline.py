"""A baseline of accepted findings, so a team can adopt the gate on a pipeline that has some.

``nndoctor check train.py --write-baseline nndoctor-baseline.json`` records today's
findings; ``--baseline nndoctor-baseline.json`` then reports only findings that are
not in it, the way linters (PHPStan, detekt, ruff's ``--add-noqa``) let a team start
from a clean gate and hold the line.

A finding is identified by *what* and *where*, never by its numbers: the check id,
its title with every number masked (``Gradient norms span 5.2 orders`` and ``... 5.4
orders`` are the same finding), and the module, operation and file of its ``where``.
The line and the step are left out on purpose: an unrelated edit moves the line,
and the step depends on the step budget. Files are stored relative to the baseline
file, so the baseline works in any checkout. Identical keys are counted: a baseline
with one dead ReLU in ``encoder`` accepts one, and a second one there is new.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nndoctor.diagnosis import attach as attach_diagnosis
from nndoctor.report.model import Finding, Report, Severity, Status

FORMAT_VERSION = 1
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")

Key = tuple[str, str, str, str, str]  # check, masked title, module, op, file


class BaselineError(Exception):
    """A baseline file that cannot be read; the message is one line."""


@dataclass
class Baseline:
    """Accepted findings, counted by key."""

    path: Path
    counts: Counter[Key] = field(default_factory=Counter)

    def __len__(self) -> int:
        return sum(self.counts.values())


def mask_numbers(text: str) -> str:
    """``text`` with every number replaced by ``#``."""
    return _NUMBER.sub("#", text)


def key_of(finding: Finding, base: Path) -> Key:
    """The identity of ``finding``; files relative to the folder ``base``."""
    w = finding.where
    return (
        finding.check,
        mask_numbers(finding.title),
        w.module or "",
        w.op or "",
        _relative(w.file, base) if w.file else "",
    )


def _relative(file: str, base: Path) -> str:
    path = os.path.abspath(file)
    try:
        return Path(os.path.relpath(path, base.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).as_posix()


def write(report: Report, path: Path) -> int:
    """Record every finding of ``report`` in ``path``; returns how many were recorded."""
    base = path.resolve().parent
    counts: Counter[Key] = Counter()
    shown: dict[Key, Finding] = {}
    for f in report.findings:
        key = key_of(f, base)
        counts[key] += 1
        shown.setdefault(key, f)
    entries = []
    for key in sorted(counts):
        check, _, module, op, file = key
        finding = shown[key]
        where = {k: v for k, v in (("module", module), ("op", op), ("file", file)) if v}
        entries.append(
            {
                "check": check,
                "title": finding.title,
                "where": where,
                "severity": finding.severity.value,  # for the reader; not part of the identity
                "count": counts[key],
            }
        )
    document = {
        "nndoctor_baseline": FORMAT_VERSION,
        "target": report.run.target,
        "note": "Findings accepted for now; `nndoctor check --baseline THIS_FILE` reports only new ones.",
        "findings": entries,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(report.findings)


def load(path: Path) -> Baseline:
    """Read a baseline written by :func:`write`."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BaselineError(f"no such baseline file: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{path}: not a baseline file ({exc})") from exc
    if not isinstance(document, dict) or document.get("nndoctor_baseline") != FORMAT_VERSION:
        raise BaselineError(
            f"{path}: not an nndoctor baseline (version {FORMAT_VERSION}); write one with --write-baseline"
        )
    counts: Counter[Key] = Counter()
    for i, entry in enumerate(document.get("findings", [])):
        try:
            where = entry.get("where", {})
            key = (
                str(entry["check"]),
                mask_numbers(str(entry["title"])),
                str(where.get("module", "")),
                str(where.get("op", "")),
                str(where.get("file", "")),
            )
            count = int(entry.get("count", 1))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise BaselineError(f"{path}: entry {i} is malformed ({exc!r})") from exc
        counts[key] += count
    return Baseline(path=path, counts=counts)


def apply(report: Report, baseline: Baseline) -> tuple[Report, int]:
    """A copy of ``report`` without the findings ``baseline`` accepts, and how many it left out.

    A check whose serious findings are all accepted counts as passed. The copy's
    run notes say how many findings were accepted, and how many baseline entries no
    longer occur (fixed, or the baseline is stale).
    """
    base = baseline.path.resolve().parent
    left = Counter(baseline.counts)
    keep: list[int] = []
    accepted: Counter[str] = Counter()
    for i, f in enumerate(report.findings):
        key = key_of(f, base)
        if left[key] > 0:
            left[key] -= 1
            accepted[f.check] += 1
        else:
            keep.append(i)
    out = copy.deepcopy(report)
    out.findings = [out.findings[i] for i in keep]
    attach_diagnosis(out)
    still_serious = {f.check for f in out.findings if f.severity != Severity.INFO}
    for result in out.checks:
        if (
            result.check in accepted
            and result.status == Status.FAILED
            and result.check not in still_serious
        ):
            result.status = Status.PASSED
            result.detail = f"{accepted[result.check]} finding(s) accepted by the baseline"
    n = sum(accepted.values())
    if n:
        out.run.notes.append(
            f"{n} finding(s) accepted by the baseline {baseline.path} are not shown"
        )
    gone = sum(c for c in left.values() if c > 0)
    if gone:
        out.run.notes.append(
            f"{gone} finding(s) in the baseline {baseline.path} no longer occur: "
            "fixed? write the baseline again with --write-baseline"
        )
    return out, n
