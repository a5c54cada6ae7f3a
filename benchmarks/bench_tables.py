"""Markdown tables for the README from ``nndoctor bench --json`` output.

    nndoctor bench --seeds 3 --jobs 2 --json bench.json
    python benchmarks/bench_tables.py bench.json [more.json ...]

Several JSON files (for example a full run and a rerun of a few cases) are merged, later
runs of the same (case, seed) replacing earlier ones. Prints the summary per split, the
faults that were not found or whose first cause was wrong, and the false alarms.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nndoctor.bench.runner import Outcome
from nndoctor.bench.score import false_alarms, fault_verdict, summarise
from nndoctor.report.bench import summary_markdown


def load(paths: list[Path]) -> list[Outcome]:
    runs: dict[tuple[str, int], Outcome] = {}
    for path in paths:
        for row in json.loads(path.read_text())["runs"]:
            fields = {k: row[k] for k in Outcome.__dataclass_fields__ if k in row}
            runs[(row["name"], row["seed"])] = Outcome(**fields)
    return list(runs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    outcomes = load(parser.parse_args().paths)
    print(summary_markdown(summarise(outcomes)))
    print("| fault | split | accepted | verdict | first cause | loud findings |")
    print("|---|---|---|---|---|---|")
    for o in sorted((o for o in outcomes if o.fault), key=lambda o: (o.split, o.name)):
        v = fault_verdict(o)
        if v.status == "found" and v.top1:
            continue
        loud = "; ".join(f"`{f['check']}` {f['reasons']}" for f in o.loud) or (o.error or "–")
        print(
            f"| {o.name} | {o.split} | {', '.join(map(str, o.accepted))} | {v.status}"
            f"{'' if v.top1 else ', not top-1'} | {v.first or '–'} | {loud} |"
        )
    print()
    print("| healthy case | split | seeds with a false alarm | checks |")
    print("|---|---|---|---|")
    by_case: dict[str, list[Outcome]] = {}
    for o in outcomes:
        if not o.fault:
            by_case.setdefault(o.name, []).append(o)
    for name, runs in sorted(by_case.items(), key=lambda kv: (kv[1][0].split, kv[0])):
        loud = [o for o in runs if false_alarms(o) or o.error]
        if loud:
            checks = sorted(
                {c for o in loud for c in false_alarms(o)} | {o.error for o in loud if o.error}
            )
            print(
                f"| {name} | {runs[0].split} | {len(loud)} of {len(runs)} | {', '.join(checks)} |"
            )


if __name__ == "__main__":
    main()
