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

import contextlib
import json
import os
import signal
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
    # Each experiment that did not run, and why: what a miss owes to an experiment that
    # stood down rather than to one that ran and saw nothing.
    skipped_experiments: dict[str, str] = field(default_factory=dict)
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

    folder = (
        root if root is not None else Path(nndoctor.__file__).resolve().parent.parent / "examples"
    )
    if not folder.is_dir():
        raise BenchError(
            f"the bench runs the scripts of nndoctor's examples/ folder, and {folder} is not one; "
            "run it from a source checkout or pass --examples PATH"
        )
    return folder


def plan(
    healthy: Iterable[HealthyCase], faults: Iterable[Fault], seeds: int, fault_seeds: int = 1
) -> list[Job]:
    """Every healthy case at ``seeds`` seeds and every fault at ``fault_seeds`` seeds; the
    script cases first and the zoo's (minutes each) last, so an interrupted bench has
    measured the most cases."""
    jobs = [Job(get_healthy(f.base), seed, f) for f in faults for seed in range(fault_seeds)]
    jobs += [Job(case, seed) for case in healthy for seed in range(seeds)]
    return sorted(jobs, key=lambda j: _is_zoo(j.case))


def _is_zoo(case: HealthyCase) -> bool:
    return case.zoo is not None or (case.script or "").startswith("zoo/")


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
    running: set[subprocess.Popen[str]] = set()
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(run_job, job, folder, running): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[futures[future]] = outcome
            if on_done is not None:
                on_done(outcome)
    finally:
        # Interrupted (Ctrl-C, an error): no child of the bench outlives it.
        pool.shutdown(wait=False, cancel_futures=True)
        for child in list(running):
            _kill(child)
        pool.shutdown(wait=True)
    return [outcomes[i] for i in range(len(jobs))]


def run_job(job: Job, examples: Path, running: set[subprocess.Popen[str]] | None = None) -> Outcome:
    """Run one job in a child interpreter, in a scratch folder removed afterwards."""
    outcome = Outcome(
        name=job.name,
        seed=job.seed,
        split=job.split,
        fault=job.fault is not None,
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
        returncode, stdout, stderr = _run_child(
            command, scratch, running if running is not None else set()
        )
        if returncode is None:
            outcome.error = f"did not finish within {BENCH_RUN_TIMEOUT:.0f}s"
        elif report_path.is_file():
            _read_report(outcome, json.loads(report_path.read_text(encoding="utf-8")))
        else:
            tail = (stderr or stdout).strip().splitlines()[-3:]
            outcome.error = f"exit {returncode}, no report: {' | '.join(tail)}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def _run_child(
    command: list[str], cwd: str, running: set[subprocess.Popen[str]]
) -> tuple[int | None, str, str]:
    """Run ``command`` in its own process group; (None, ...) on timeout. The whole group
    (the check and any replay it started) is killed on timeout or interruption."""
    child = subprocess.Popen(
        command,
        cwd=cwd,
        env=_child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    running.add(child)
    try:
        stdout, stderr = child.communicate(timeout=BENCH_RUN_TIMEOUT)
        return child.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        return None, "", ""
    finally:
        _kill(child)
        running.discard(child)


# How long a check stopped by SIGTERM gets to undo what it started (its replays and their
# temporary folders) before its whole process group is killed.
STOP_GRACE_SECONDS = 15.0


def _kill(child: subprocess.Popen[str]) -> None:
    """Stop a check and everything it started: SIGTERM first, so that it cleans up as
    ``nndoctor check`` does when stopped, then SIGKILL to the group for what is left."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _command(job: Job, examples: Path, scratch: Path, report: Path) -> list[str]:
    seed = str(job.seed)
    if job.case.zoo is not None:
        command = [
            sys.executable,
            "-m",
            "nndoctor.bench._child",
            job.case.zoo,
            "--seed",
            seed,
            "--json",
            str(report),
        ]
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
        sys.executable,
        "-m",
        "nndoctor",
        "check",
        str(script),
        "--seed",
        seed,
        "--json",
        str(report),
        "--experiment-seconds",
        str(BENCH_EXPERIMENT_SECONDS),
        "--timeout",
        str(BENCH_SCRIPT_TIMEOUT),
        "--fail-on",
        "never",
        "--",
        "--seed",
        seed,
        *args,
    ]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONHASHSEED="0",
        MPLBACKEND="Agg",
        CUDA_VISIBLE_DEVICES="",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _read_report(outcome: Outcome, report: dict[str, Any]) -> None:
    outcome.findings = [
        {
            "check": f["check"],
            "severity": f["severity"],
            "reasons": list(f["reasons"]),
            "title": f["title"],
            **({"aspect": f["aspect"]} if f.get("aspect") else {}),
        }
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
        outcome.findings.insert(
            0,
            {
                "check": "not-observed",
                "severity": "error",
                "reasons": outcome.likely_reasons,
                "title": run.get("error") or "the script could not be observed",
            },
        )
    outcome.crashed_checks = [
        c["check"] for c in report.get("checks", []) if c.get("status") == "crashed"
    ]
    outcome.skipped_experiments = {
        c["check"]: str(c.get("detail") or "")
        for c in report.get("checks", [])
        if c.get("status") == "skipped" and c.get("kind") == "experiment"
    }
