"""How long does ``nndoctor check`` take with its default budget, and what does it spend it on?

For every example script (``examples/*.py`` and ``examples/zoo/*.py``) and every
seed asked for, one fresh interpreter runs ``nndoctor check SCRIPT --json …`` with
the default budget (20 observed steps, every check, 40 s of experiments), and a
second one runs the same script plainly for the same 20 optimizer steps
(``overhead.py --plain-run``). The table gives, per script:

- ``check s``: wall-clock seconds of the whole ``nndoctor check`` process;
- ``plain s`` and ``ratio``: the plain 20-step run and ``check s / plain s``;
- ``script s`` / ``checks s``: the report's own split (running the script under
  observation, then the checks);
- ``top checks``: the three checks that took longest, with seconds;
- ``findings``: warnings and errors (a healthy script must have none).

Seeds: a script that takes ``--seed`` is run with ``-- --seed S`` for each seed in
``--seeds``; a script with a fixed seed (most broken examples) runs once.

Usage::

    python benchmarks/check_budget.py                         # every example, seed 0
    python benchmarks/check_budget.py --seeds 0 1 2           # three seeds where a script takes --seed
    python benchmarks/check_budget.py --examples healthy_mlp zoo/rotation
    python benchmarks/check_budget.py --json check_budget.json --markdown check_budget.md

Nothing here is asserted: timings depend on the machine and its load (DESIGN.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
OVERHEAD = Path(__file__).resolve().parent / "overhead.py"
STEPS = 20  # nndoctor check's default step budget
TIMEOUT = 600  # seconds: a run past this is reported as such, not waited for


def example_scripts(names: list[str] | None) -> list[Path]:
    """``examples/*.py`` then ``examples/zoo/*.py``, or the named ones (``zoo/rotation``)."""
    everything = sorted(EXAMPLES.glob("*.py")) + sorted((EXAMPLES / "zoo").glob("*.py"))
    if not names:
        return everything
    by_name = {str(p.relative_to(EXAMPLES).with_suffix("")): p for p in everything}
    missing = [n for n in names if n.removesuffix(".py") not in by_name]
    if missing:
        raise SystemExit(
            f"no such example: {', '.join(missing)} (known: {', '.join(sorted(by_name))})"
        )
    return [by_name[n.removesuffix(".py")] for n in names]


def takes_seed(script: Path) -> bool:
    return '"--seed"' in script.read_text(encoding="utf-8")


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, 124, f"timed out after {TIMEOUT}s"
    tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
    return time.perf_counter() - start, proc.returncode, tail[0]


def measure(script: Path, seed: int | None, env: dict[str, str], tmp: str) -> dict[str, Any]:
    argv = ["--seed", str(seed)] if seed is not None else []
    report_path = os.path.join(tmp, "report.json")
    if os.path.exists(report_path):
        os.remove(report_path)
    check_cmd = [
        sys.executable,
        "-m",
        "nndoctor",
        "check",
        str(script),
        "--json",
        report_path,
        "--fail-on",
        "never",
        *(["--", *argv] if argv else []),
    ]
    plain_cmd = [sys.executable, str(OVERHEAD), "--plain-run", str(script), str(STEPS), *argv]
    check_s, check_rc, check_err = run(check_cmd, env)
    plain_s, plain_rc, _ = run(plain_cmd, env)
    row: dict[str, Any] = {
        "example": str(script.relative_to(EXAMPLES).with_suffix("")),
        "seed": seed,
        "check_seconds": round(check_s, 2),
        "check_exit": check_rc,
        "plain_seconds": round(plain_s, 2) if plain_rc == 0 else None,
        "ratio": round(check_s / plain_s, 2) if plain_rc == 0 and plain_s > 0 else None,
    }
    if not os.path.exists(report_path):
        row["error"] = check_err or f"exit {check_rc}, no report"
        return row
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    checks = sorted(report["checks"], key=lambda c: -c.get("seconds", 0.0))
    row.update(
        script_seconds=report["timings"].get("script"),
        checks_seconds=report["timings"].get("checks"),
        experiment_seconds=round(
            sum(c.get("seconds", 0.0) for c in checks if c["kind"] == "experiment"), 2
        ),
        top_checks=[[c["check"], round(c.get("seconds", 0.0), 1)] for c in checks[:3]],
        budget_skipped=[
            c["check"] for c in checks if "experiment budget" in (c.get("detail") or "")
        ],
        serious=sorted(
            f"{f['severity']}:{f['check']}"
            for f in report["findings"]
            if f["severity"] in ("warning", "error")
        ),
        observed_steps=report["run"].get("steps_observed"),
    )
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| example | seed | check s | plain s | ratio | script s | checks s | top checks (s) | warnings/errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        top = ", ".join(f"{c} {s}" for c, s in r.get("top_checks", []))
        serious = ", ".join(r.get("serious", [])) or ("—" if "error" not in r else r["error"])
        lines.append(
            f"| {r['example']} | {'' if r['seed'] is None else r['seed']} | {r['check_seconds']:.1f} | "
            f"{r['plain_seconds'] if r['plain_seconds'] is not None else '-'} | {r['ratio'] or '-'} | "
            f"{r.get('script_seconds', '-')} | {r.get('checks_seconds', '-')} | {top} | {serious} |"
        )
    times = sorted(r["check_seconds"] for r in rows)
    if times:
        lines.append("")
        lines.append(
            f"median {times[len(times) // 2]:.1f} s, max {times[-1]:.1f} s over {len(times)} runs; "
            f"{sum(t >= 60 for t in times)} at or over a minute"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", nargs="*", help="names like healthy_mlp or zoo/rotation (default: all)"
    )
    parser.add_argument(
        "--seeds", nargs="*", type=int, default=[0], help="seeds for scripts that take --seed"
    )
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads in every run (OMP_NUM_THREADS)"
    )
    parser.add_argument("--json", default="check_budget.json", help="where to write every row")
    parser.add_argument("--markdown", help="also write the table here")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="nndoctor-budget-") as tmp:
        for script in example_scripts(args.examples):
            for seed in args.seeds if takes_seed(script) else [None]:
                row = measure(script, seed, env, tmp)
                rows.append(row)
                print(
                    f"{row['example']:<28} seed {row['seed']!s:<4} {row['check_seconds']:6.1f} s  "
                    f"{', '.join(row.get('serious', [])) or row.get('error', '')}",
                    flush=True,
                )
    table = markdown(rows)
    print()
    print(table)
    meta = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": args.threads,
        "steps": STEPS,
    }
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
