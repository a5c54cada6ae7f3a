"""Diagnose recorded bench runs again with the current diagnosis, without running anything.

The diagnosis reads findings only, so a change to it (a causal link in the registry, a
ranking rule) can be measured on the findings a bench run recorded, in seconds rather
than the hour a bench run takes. The checks are not rerun: a change to a check needs a
real bench run. Findings recorded before findings carried an ``aspect`` get the one their
title states (update/weight ratios: "too large" is high, "tiny" is low); without it they
would match every aspect.

Usage::

    python benchmarks/rediagnose.py benchmarks/results/bench-round3-dev-faults.json --split dev
    python benchmarks/rediagnose.py A.json B.json --split dev --changed

Prints, per file, the faults rediagnosed and how many now have an accepted reason first
(as recorded, and now), and with ``--changed`` every run whose first cause changed.
Keep ``--split test`` for measuring a rule already fixed, never for writing one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nndoctor.diagnosis import diagnose
from nndoctor.report.model import Finding, Severity

# Aspects of findings recorded without one, from their titles.
_TITLE_ASPECTS = {
    "update-ratio": (("too large", "high"), ("Large updates", "high"), ("tiny", "low"))
}


def _aspect(f: dict[str, Any]) -> str:
    if f.get("aspect"):
        return str(f["aspect"])
    for words, aspect in _TITLE_ASPECTS.get(f["check"], ()):
        if words in f["title"]:
            return aspect
    return ""


def runs_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs of a bench JSON (a whole run, or one written in parts)."""
    if "runs" in data:
        return list(data["runs"])
    return [r for part in data.get("parts", []) for r in part.get("runs", [])]


def first_cause(run: dict[str, Any]) -> tuple[str | None, list[int]]:
    """The first cause of ``run``'s recorded findings under the current diagnosis: its
    check (or ``differential:R``) and its reasons."""
    findings = [
        Finding(
            check=f["check"],
            reasons=list(f["reasons"]),
            severity=Severity(f["severity"]),
            title=f["title"],
            message="",
            fix="",
            aspect=_aspect(f),
        )
        for f in run.get("findings", [])
    ]
    d = diagnose(findings)
    if d.causes:
        return d.causes[0].lead.check, list(d.causes[0].lead.reasons)
    if d.differential:
        return f"differential:{d.differential[0].reason}", [d.differential[0].reason]
    return None, []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--split", default="dev", choices=("dev", "test"))
    parser.add_argument("--changed", action="store_true", help="list the runs that changed")
    args = parser.parse_args(argv)
    for path in args.files:
        runs = [
            r
            for r in runs_of(json.loads(path.read_text(encoding="utf-8")))
            if r.get("split") == args.split
            and r.get("fault")
            and not r.get("error")
            and r.get("observed", True)
        ]
        before = now = 0
        for run in runs:
            check, reasons = first_cause(run)
            right = bool(set(reasons) & set(run.get("accepted", [])))
            before += bool(run.get("top1"))
            now += right
            if args.changed and check != run.get("first"):
                print(
                    f"  {run['name']} seed {run['seed']}: {run.get('first')} -> {check} ({right})"
                )
        print(f"{path.name}: {len(runs)} {args.split} faults, first cause right {before} -> {now}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
