"""``nndoctor watch SCRIPT``: run an unmodified training script to its end under a Watcher.

The script runs as ``__main__`` in this process with its own argv, like ``nndoctor check``
runs it (:mod:`nndoctor.capture.runner`, whose pieces are reused): the model is the first
module with parameters the script calls (a ``torch.compile`` wrapper is watched as such),
found by a global forward pre-hook that is removed once it has found it; the optimizer is
whichever steps that model's parameters. Without ``dry_run`` this is the user's real run:
its files, checkpoints and trackers go where the script sends them. With ``dry_run`` it runs
inside the same :class:`~nndoctor.capture.sandbox.Sandbox` and
:func:`~nndoctor.capture.process_state.process_state_restored` as ``check``: nothing of the
user's files, temp dir, trackers or process changes.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.nn.modules import module as module_mod

from nndoctor.capture.process_state import process_state_restored
from nndoctor.capture.runner import Capture, ScriptError, StopCapture, _run_as_main
from nndoctor.capture.sandbox import Sandbox
from nndoctor.probes.recording import Recording
from nndoctor.probes.training import eager
from nndoctor.report.progress import WatchEvent, plain_watch_step
from nndoctor.watch.report import WatchReport
from nndoctor.watch.session import Watcher, WatchStopped

__all__ = ["ScriptError", "ScriptWatch", "watch_script"]


@dataclass
class ScriptWatch:
    """How a watched script run went."""

    script: str
    argv: list[str]
    report: WatchReport
    model: str | None = None  # class name of the watched model
    stop_reason: str = ""  # "script finished", "step budget", "stopped on error", ...
    error: str | None = None  # one line, when the script raised or exited non-zero
    traceback: str | None = None
    seconds: float = 0.0
    saves_redirected: list[str] = field(default_factory=list)  # --dry-run only
    backward_seen: bool = False  # a backward pass ran through the watched model

    @property
    def observed(self) -> bool:
        return self.model is not None and self.report.steps_seen > 0

    def why_not_observed(self) -> str:
        """Why no step was watched, and what to do about it (empty when observed)."""
        if self.observed:
            return ""
        if self.model is None:
            if self.error:
                return f"the script raised before calling a model ({self.error})"
            return (
                "no module with parameters was called in this process; if training runs in "
                "another process, put `with nndoctor.watch(model, optimizer):` around its loop"
            )
        if self.error:
            return f"the script raised before its first step ({self.error})"
        if not self.backward_seen:
            return (
                f"{self.model} was called but never back-propagated through (no "
                "loss.backward() reached watch); if the loss is back-propagated another way, "
                "put `with nndoctor.watch(model, optimizer) as w:` around the loop and pass "
                "each step's loss with `w.observe(loss=loss)`"
            )
        return (
            f"backward passes ran through {self.model}, but no optimizer stepped its "
            "parameters and they did not change between forwards; if another object "
            "updates them, put `with nndoctor.watch(model, optimizer):` around the loop"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "script": self.script,
            "argv": list(self.argv),
            "model": self.model,
            "observed": self.observed,
            "stop_reason": self.stop_reason,
            "error": self.error,
            "traceback": self.traceback,
            "seconds": round(self.seconds, 3),
            "saves_redirected": list(self.saves_redirected),
            **self.report.to_dict(),
        }


def watch_script(
    script: str,
    argv: list[str] | None = None,
    *,
    steps: int | None = None,
    every: int | None = None,
    budget: float = 0.02,
    log: Any = None,
    stop_on: str = "never",
    dry_run: bool = False,
    quiet: bool = False,
    console: Any = None,
    progress: Callable[[WatchEvent], None] | None = None,
) -> ScriptWatch:
    """Run ``script`` to its end (or ``steps`` steps) under a :class:`Watcher`;
    ``progress`` receives a :class:`~nndoctor.report.progress.WatchEvent` after a step, at
    most about four times a second."""
    path = os.path.abspath(script)
    if not os.path.isfile(path):
        raise ScriptError(f"no such script: {script}")
    argv = list(argv or [])
    own_log = None
    if log is not None and (isinstance(log, str) or hasattr(log, "__fspath__")):
        # Opened before any sandbox: the log is nndoctor's own file, never redirected.
        own_log = log = open(log, "a", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        return _watch_script(
            path,
            script,
            argv,
            steps,
            every,
            budget,
            log,
            stop_on,
            dry_run,
            quiet,
            console,
            progress,
        )
    finally:
        if own_log is not None:
            own_log.close()


def _watch_script(
    path: str,
    script: str,
    argv: list[str],
    steps: int | None,
    every: int | None,
    budget: float,
    log: Any,
    stop_on: str,
    dry_run: bool,
    quiet: bool,
    console: Any,
    progress: Callable[[WatchEvent], None] | None = None,
) -> ScriptWatch:
    outcome = Capture(script=script, argv=argv, recording=Recording(data_source="script"))
    found: list[Watcher] = []
    shown_at = [-math.inf]

    def on_step_end(done: int) -> None:
        now = time.monotonic()
        # Display only, never a verdict: at most about four events a second, and the first
        # step, the quarters of a budget and the last always.
        if (
            progress is not None
            and found
            and (now - shown_at[0] >= 0.25 or plain_watch_step(done, steps))
        ):
            shown_at[0] = now
            progress(_event(found[0], done, steps, now - started))
        if steps is not None and done >= steps:
            raise StopCapture("step budget")

    handles: list[Any] = []

    def discover(module: nn.Module, args: tuple[Any, ...]) -> None:
        if found:
            return
        try:
            inner = getattr(module, "_orig_mod", module)
            if not isinstance(inner, nn.Module) or next(inner.parameters(), None) is None:
                return
            watcher = Watcher(
                module,
                None,
                every=every,
                budget=budget,
                log=log,
                stop_on=stop_on,
                quiet=quiet,
                console=console,
                on_step_end=on_step_end,
            )
            watcher.attach()
            found.append(watcher)
            for h in handles:
                h.remove()
        except Exception:  # noqa: BLE001 - discovery must never break the script
            pass

    start = time.perf_counter()
    started = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="nndoctor-scratch-") if dry_run else None
    sandbox = Sandbox(scratch) if scratch is not None else None
    try:
        with _isolated(path, argv, dry_run):
            handles.append(module_mod.register_module_forward_pre_hook(eager(discover)))
            try:
                with sandbox.installed() if sandbox is not None else contextlib.nullcontext():
                    _run_as_main(path, outcome)
            finally:
                for h in handles:
                    h.remove()
                for w in found:
                    w.detach()
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    watcher = found[0] if found else None
    result = ScriptWatch(
        script=script,
        argv=argv,
        report=watcher.report if watcher is not None else WatchReport(budget=budget, every=every),
        model=type(watcher._inner).__name__ if watcher is not None else None,
        stop_reason=outcome.stop_reason,
        traceback=outcome.traceback,
        seconds=time.perf_counter() - start,
        saves_redirected=list(sandbox.redirected) if sandbox is not None else [],
        backward_seen=watcher is not None and watcher.backward_seen,
    )
    exc = outcome.exception
    if isinstance(exc, WatchStopped):
        result.stop_reason = "stopped on error"
        result.traceback = None
    elif exc is not None:
        result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return result


def _event(watcher: Watcher, done: int, steps: int | None, seconds: float) -> WatchEvent:
    alerts = watcher.report.alerts
    loud = [f for f in alerts if f.severity.value in ("error", "warning")]
    return WatchEvent(
        step=done,
        steps=steps,
        seconds=seconds,
        period=watcher.sampler.period,
        overhead=watcher.sampler.overhead,
        errors=sum(f.severity.value == "error" for f in loud),
        warnings=sum(f.severity.value == "warning" for f in loud),
        found=tuple(dict.fromkeys(f.check for f in loud)),
    )


@contextlib.contextmanager
def _isolated(path: str, argv: list[str], dry_run: bool) -> Iterator[None]:
    """The script's argv and import path; with ``dry_run``, the whole process state put back."""
    if dry_run:
        with process_state_restored(os.path.dirname(path)):
            sys.argv = [path, *argv]
            sys.path.insert(0, os.path.dirname(path))
            yield
        return
    saved_argv, saved_path = list(sys.argv), list(sys.path)
    try:
        sys.argv = [path, *argv]
        sys.path.insert(0, os.path.dirname(path))
        yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
