"""Running the doctor over the corpus: one fresh interpreter per (case, seed).

A script case runs exactly as a user would run it, ``nndoctor check SCRIPT --json ...``,
on the case's script (a script fault: on a copy with the fault's edits applied), in a
scratch folder that is removed afterwards. A zoo case runs through the Python API in a
child interpreter (``nndoctor.bench._child``). Either way the bench reads back the JSON
report, so it measures what a user sees.

Verdicts must not depend on machine speed: every run gets an unbounded experiment
budget (no experiment is skipped for time) and a generous script time limit, and every
child runs on one thread, so ``--jobs`` changes how long the bench takes, never what it
finds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nndoctor.faults.registry import Fault, HealthyCase, apply_edits, get_healthy

# No experiment is skipped for time in the bench (see the module docstring).
BENCH_EXPERIMENT_SECONDS = 1e6
BENCH_SCRIPT_TIMEOUT = 900.0
# A run that has not finished by then is recorded as such, never as a verdict.
BENCH_RUN_TIMEOUT = 1800.0
LOUD = ("error", "warning")


class BenchError(RuntimeError):
    """The bench cannot run (no examples folder, a fault that no longer applies)."""


@dataclass(frozen=True)
class Job:
    """One run: a healthy case (``fault`` None) or a fault, at one seed."""

    case: HealthyCase
    seed: int
    fault: Fault | None = None

    @property
    def name(self) -> str:
        return self.fault.name if self.fault is not None else self.case.name

    @property
    def split(self) -> str:
        return self.fault.split if self.fault is not None else self.case.split


@dataclass
class Outcome:
    """What one run reported, read back from its JSON report."""

    name: str
    seed: int
    split: str
    fault: bool
    accepted: list[int] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)  # check, severity, reasons, title
    diagnosis: list[dict[str, Any]] | None = None
    differential: list[dict[str, Any]] = field(default_factory=list)
    observed: bool = True
    likely_reasons: list[int] = field(default_factory=list)
    crashed_checks: list[str] = field(default_factory=list)
    error: str | None = None  # the run itself failed: no report
    seconds: float = 0.0

    @property
    def loud(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f["severity"] in LOUD]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def examples_root(root: Path | None = None) -> Path:
    """The ``examples/`` folder of a source checkout (or the one given)."""
    import nndoctor

    folder = root if root is not None else Path(nndoctor.__file__).resolve().parent.parent / "examples"
    if not folder.is_dir():
        raise BenchError(
            f"the bench runs the scripts of nndoctor's examples/ folder, and {folder} is not one; "
            "run it from a source checkout or pass --examples PATH"
        )
    return folder


def plan(
    healthy: Iterable[HealthyCase], faults: Iterable[Fault], seeds: int, fault_seeds: int = 1
) -> list[Job]:
    """Every healthy case at ``seeds`` seeds and every fault at ``fault_seeds`` seeds."""
    jobs = [Job(case, seed) for case in healthy for seed in range(seeds)]
    jobs += [Job(get_healthy(f.base), seed, f) for f in faults for seed in range(fault_seeds)]
    return jobs


def run_jobs(
    jobs: list[Job],
    *,
    workers: int = 1,
    examples: Path | None = None,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run ``jobs`` in ``workers`` parallel child processes; outcomes in job order."""
    folder = examples_root(examples)
    outcomes: dict[int, Outcome] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_job, job, folder): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[futures[future]] = outcome
            if on_done is not None:
                on_done(outcome)
    return [outcomes[i] for i in range(len(jobs))]


def run_job(job: Job, examples: Path) -> Outcome:
    """Run one job in a child interpreter, in a scratch folder removed afterwards."""
    outcome = Outcome(
        name=job.name, seed=job.seed, split=job.split, fault=job.fault is not None,
        accepted=sorted(job.fault.accepted) if job.fault is not None else [],
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nndoctor-bench-") as scratch:
        report_path = Path(scratch) / "report.json"
        try:
            command = _command(job, examples, Path(scratch), report_path)
        except Exception as exc:  # noqa: BLE001 - a fault that cannot be built is a bench error
            outcome.error = f"{type(exc).__name__}: {exc}"
            return outcome
        try:
            done = subprocess.run(
                command, cwd=scratch, env=_child_env(), capture_output=True, text=True,
                timeout=BENCH_RUN_TIMEOUT, stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            outcome.error = f"did not finish within {BENCH_RUN_TIMEOUT:.0f}s"
        else:
            if report_path.is_file():
                _read_report(outcome, json.loads(report_path.read_text(encoding="utf-8")))
            else:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                outcome.error = f"exit {done.returncode}, no report: {' | '.join(tail)}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _command(job: Job, examples: Path, scratch: Path, report: Path) -> list[str]:
    seed = str(job.seed)
    if job.case.zoo is not None:
        command = [sys.executable, "-m", "nndoctor.bench._child", job.case.zoo, "--seed", seed,
                   "--json", str(report)]
        if job.fault is not None:
            command += ["--fault", job.fault.name]
        return command
    assert job.case.script is not None
    source = examples / job.case.script
    text = source.read_text(encoding="utf-8")
    if job.fault is not None:
        text = apply_edits(text, job.fault.edits, fault=job.fault.name)
    script = scratch / source.name
    script.write_text(text, encoding="utf-8")
    args = [*job.case.args, *(job.fault.args if job.fault is not None else ())]
    return [
        sys.executable, "-m", "nndoctor", "check", str(script), "--seed", seed, "--json", str(report),
        "--experiment-seconds", str(BENCH_EXPERIMENT_SECONDS), "--timeout", str(BENCH_SCRIPT_TIMEOUT),
        "--fail-on", "never", "--", "--seed", seed, *args,
    ]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0", MPLBACKEND="Agg",
               CUDA_VISIBLE_DEVICES="", PYTHONDONTWRITEBYTECODE="1")
    return env


def _read_report(outcome: Outcome, report: dict[str, Any]) -> None:
    outcome.findings = [
        {"check": f["check"], "severity": f["severity"], "reasons": list(f["reasons"]), "title": f["title"]}
        for f in report.get("findings", [])
    ]
    if "diagnosis" in report:
        outcome.diagnosis = report["diagnosis"]
        outcome.differential = list(report.get("differential") or [])
    run = report.get("run", {})
    outcome.observed = bool(run.get("observed", True))
    outcome.likely_reasons = list(run.get("likely_reasons") or [])
    if not outcome.observed:
        outcome.error = None
        outcome.findings.insert(0, {
            "check": "not-observed", "severity": "error", "reasons": outcome.likely_reasons,
            "title": run.get("error") or "the script could not be observed",
        })
    outcome.crashed_checks = [c["check"] for c in report.get("checks", []) if c.get("status") == "crashed"]
