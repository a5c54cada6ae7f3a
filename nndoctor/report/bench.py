"""Renderers of ``nndoctor bench``: the corpus listing, the per-case tables, the summary
(console and Markdown), the JSON file and the fault × reason matrix (matplotlib).

They only format: verdicts and rates come from :mod:`nndoctor.bench.score`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nndoctor.bench.runner import Outcome
from nndoctor.bench.score import SplitSummary, false_alarms, fault_verdict, reason_matrix
from nndoctor.faults.registry import Fault, HealthyCase

STATUS_STYLE = {"found": "green", "other": "yellow", "missed": "red", "error": "magenta"}


def corpus_listing(healthy: list[HealthyCase], faults: list[Fault]) -> dict[str, Any]:
    """The corpus as data (``nndoctor bench --list --json``)."""
    reasons = sorted({f.reason for f in faults})
    return {
        "healthy": [
            {
                "name": c.name,
                "split": c.split,
                "kind": c.kind,
                "target": c.script or c.zoo,
                "what": c.what,
                "ci": c.ci,
            }
            for c in healthy
        ],
        "faults": [
            {
                "name": f.name,
                "base": f.base,
                "kind": f.kind,
                "reason": f.reason,
                "also": list(f.also),
                "split": f.split,
                "what": f.what,
                "ci": f.ci,
            }
            for f in faults
        ],
        "counts": {
            "healthy": len(healthy),
            "faults": len(faults),
            "reasons": len(reasons),
            "faults_by_split": {s: sum(f.split == s for f in faults) for s in ("dev", "test")},
            "healthy_by_split": {s: sum(c.split == s for c in healthy) for s in ("dev", "test")},
        },
        "reasons": reasons,
    }


def print_listing(out: Console, healthy: list[HealthyCase], faults: list[Fault]) -> None:
    table = Table(title=f"healthy cases ({len(healthy)})", title_justify="left")
    for col in ("name", "split", "runs", "what"):
        table.add_column(col)
    for c in healthy:
        table.add_row(c.name, c.split, escape(c.script or f"zoo:{c.zoo}"), escape(c.what))
    out.print(table)
    table = Table(title=f"faults ({len(faults)})", title_justify="left")
    for col in ("name", "base", "kind", "reason", "also", "split", "what"):
        table.add_column(col)
    for f in faults:
        table.add_row(
            f.name,
            f.base,
            f.kind,
            str(f.reason),
            ", ".join(map(str, f.also)),
            f.split,
            escape(f.what),
        )
    out.print(table)
    counts = corpus_listing(healthy, faults)["counts"]
    out.print(
        f"{counts['faults']} faults over {counts['reasons']} reasons, {counts['healthy']} healthy cases"
    )


def print_outcomes(out: Console, outcomes: list[Outcome]) -> None:
    faults = [o for o in outcomes if o.fault]
    if faults:
        table = Table(title="faults", title_justify="left")
        for col in (
            "fault",
            "split",
            "accepted",
            "verdict",
            "first",
            "loud findings (reasons)",
            "s",
        ):
            table.add_column(col)
        for o in faults:
            v = fault_verdict(o)
            loud = "; ".join(f"{f['check']} {f['reasons']}" for f in o.loud) or (o.error or "")
            table.add_row(
                o.name + (f" s{o.seed}" if o.seed else ""),
                o.split,
                ",".join(map(str, o.accepted)),
                f"[{STATUS_STYLE[v.status]}]{v.status}[/]" + (" top-1" if v.top1 else ""),
                escape(v.first or ""),
                escape(loud),
                f"{o.seconds:.0f}",
            )
        out.print(table)
    healthy = [o for o in outcomes if not o.fault]
    if healthy:
        table = Table(title="healthy cases", title_justify="left")
        for col in ("case", "seed", "split", "false alarms", "s"):
            table.add_column(col)
        for o in healthy:
            alarms = (
                o.error and f"[magenta]{escape(o.error)}[/]" or escape(", ".join(false_alarms(o)))
            )
            table.add_row(
                o.name, str(o.seed), o.split, alarms or "[green]quiet[/]", f"{o.seconds:.0f}"
            )
        out.print(table)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def summary_rows(summaries: dict[str, SplitSummary]) -> list[list[str]]:
    rows = []
    for s in summaries.values():
        rows.append(
            [
                s.split,
                f"{s.faults}",
                f"{_pct(s.recall)} ({s.found})",
                f"{_pct(s.top1_rate)} ({s.top1})",
                f"{_pct(s.list_top1_rate)} ({s.list_top1})",
                f"{_pct(s.exact_rate)} ({s.exact})",
                f"{s.other}",
                f"{s.missed}",
                f"{_pct(s.false_alarm_rate)} ({s.alarm_runs}/{s.healthy_runs})",
                f"{s.errors}",
                "–" if s.seconds_per_run is None else f"{s.seconds_per_run:.1f}",
            ]
        )
    return rows


SUMMARY_HEADER = [
    "split",
    "faults",
    "recall",
    "top-1",
    "list top-1",
    "exact",
    "other reason",
    "missed",
    "false alarms (runs)",
    "errors",
    "s/run",
]


def print_summary(out: Console, summaries: dict[str, SplitSummary]) -> None:
    table = Table(title="summary", title_justify="left")
    for col in SUMMARY_HEADER:
        table.add_column(col, justify="left" if col == "split" else "right")
    for row in summary_rows(summaries):
        table.add_row(*row)
    out.print(table)
    for s in summaries.values():
        if s.alarms_by_check and s.split != "all":
            common = ", ".join(f"{k} ×{n}" for k, n in s.alarms_by_check.most_common())
            out.print(f"false alarms on {s.split}, by check (runs): {escape(common)}")


def summary_markdown(summaries: dict[str, SplitSummary]) -> str:
    lines = ["| " + " | ".join(SUMMARY_HEADER) + " |", "|" + "---|" * len(SUMMARY_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(summaries)]
    return "\n".join(lines) + "\n"


def results_json(
    outcomes: list[Outcome], summaries: dict[str, SplitSummary], settings: dict[str, Any]
) -> str:
    runs = []
    for o in outcomes:
        row = o.to_json()
        if o.fault:
            v = fault_verdict(o)
            row.update(verdict=v.status, top1=v.top1, exact=v.exact, first=v.first)
        else:
            row.update(false_alarms=false_alarms(o))
        runs.append(row)
    payload = {
        "settings": settings,
        "summary": {k: s.to_json() for k, s in summaries.items()},
        "runs": runs,
    }
    return json.dumps(payload, indent=2)


def write_plot(path: Path, outcomes: list[Outcome]) -> bool:
    """The fault × reason matrix as an image; False when there is no fault to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    names, rows = reason_matrix(outcomes)
    if not rows:
        return False
    # -1 accepted but not named, 0 nothing, 1 another reason named, 2 an accepted reason named
    colours = ListedColormap(["#f4c7c3", "#ffffff", "#fbd38d", "#38a169"])
    fig, ax = plt.subplots(figsize=(12, max(3.0, 0.22 * len(rows) + 1.5)))
    ax.imshow(rows, cmap=colours, vmin=-1.5, vmax=2.5, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(37), [str(r) for r in range(1, 38)], fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("reason (REASONS.md)")
    ax.set_title(
        "nndoctor bench: reasons named loudly per fault\n"
        "green: an accepted reason named · orange: another reason · pink: accepted, not named",
        fontsize=9,
    )
    ax.set_xticks([x - 0.5 for x in range(38)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(len(rows) + 1)], minor=True)
    ax.grid(which="minor", color="#dddddd", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
