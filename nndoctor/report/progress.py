"""Live progress of ``nndoctor check``: the events the engine emits and how they are shown.

The engine calls its ``progress`` callback with a :class:`ProgressEvent` when the script
reaches a step, when a check starts and when all checks are done; the event carries
everything shown (the step and the budget, the check, the experiment budget spent so far,
what was found so far). :class:`CheckProgress` shows the latest event: on a terminal as a
few live lines (rich, redrawn four times a second so that the running experiment's time
moves), elsewhere as plain lines without control codes, a few per run, for pipes and CI logs.
:class:`WatchProgress` does the same for ``nndoctor watch`` from a :class:`WatchEvent` per
step (the step, the budget, the sampling period, watch's cost, the alerts so far).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

Phase = Literal["observe", "check", "done"]


@dataclass(frozen=True)
class ProgressEvent:
    """Where a check run stands. ``started`` is ``time.monotonic()`` when the phase or check
    began; the experiment budget numbers count experiments that have finished."""

    phase: Phase
    step: int = 0  # observe: steps done so far
    steps: int = 0  # observe: the step budget
    check: str = ""  # check: the check starting
    kind: str = ""  # check: "observation" or "experiment"
    index: int = 0  # check: its position among the checks that run (1-based)
    total: int = 0  # check: how many checks are selected to run
    experiment_spent: float = 0.0
    experiment_budget: float = 0.0
    errors: int = 0
    warnings: int = 0
    found: tuple[str, ...] = field(default_factory=tuple)  # checks with a warning or error
    started: float = 0.0

    def found_line(self) -> str:
        """One line: what was found so far."""
        if not self.errors and not self.warnings:
            return "found so far: nothing"
        checks = ", ".join(self.found[:4]) + (", …" if len(self.found) > 4 else "")
        return f"found so far: {self.errors} error(s), {self.warnings} warning(s) ({checks})"


def describe(event: ProgressEvent, now: float | None = None) -> list[str]:
    """The lines shown for ``event`` at time ``now`` (default: the current time)."""
    now = time.monotonic() if now is None else now
    elapsed = max(0.0, now - event.started) if event.started else 0.0
    if event.phase == "observe":
        return [f"observing the script: step {event.step} of {event.steps} · {elapsed:.0f}s"]
    if event.phase == "done":
        return [f"checks done · {event.found_line()}"]
    head = f"check {event.index} of {event.total}: {event.check}"
    if event.kind == "experiment":
        left = max(0.0, event.experiment_budget - event.experiment_spent - elapsed)
        head = (
            f"check {event.index} of {event.total}: experiment {event.check} running "
            f"{elapsed:.0f}s · experiment budget left {left:.0f}s of "
            f"{event.experiment_budget:.0f}s"
        )
    return [head, event.found_line()]


class _Latest:
    """A renderable of the latest event, re-described at each refresh."""

    def __init__(self) -> None:
        self.event: ProgressEvent | None = None

    def __rich__(self) -> Group:
        if self.event is None:
            return Group(Text("starting…", style="dim"))
        lines = describe(self.event)
        return Group(Text(lines[0], style="bold"), *(Text(x, style="dim") for x in lines[1:]))


class CheckProgress:
    """Shows progress events: live on a terminal, plain lines otherwise (see module doc)."""

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self._latest = _Latest()
        self._observing = False
        self._found = "found so far: nothing"

    def __call__(self, event: ProgressEvent) -> None:
        self._latest.event = event
        if not self.live:
            self._plain(event)

    def _plain(self, event: ProgressEvent) -> None:
        # Few lines: the first, the quarters and the last step; one line when the observation
        # checks start, one per experiment; what was found whenever it changed; the end.
        if event.phase == "observe":
            quarter = max(1, event.steps // 4)
            if event.step in (0, 1, event.steps) or event.step % quarter == 0:
                self._emit(describe(event)[0])
            return
        if event.phase == "done":
            self._emit(describe(event)[0])
            return
        if event.kind == "experiment":
            left = max(0.0, event.experiment_budget - event.experiment_spent)
            self._emit(
                f"check {event.index} of {event.total}: experiment {event.check} · experiment "
                f"budget left {left:.0f}s of {event.experiment_budget:.0f}s"
            )
        elif not self._observing:
            self._observing = True
            self._emit(f"running {event.total} checks, observations first")
        found = event.found_line()
        if found != self._found:
            self._found = found
            self._emit(found)

    def _emit(self, line: str) -> None:
        self.console.print(escape(line), soft_wrap=True, highlight=False)
        self.console.file.flush()

    @contextmanager
    def shown(self) -> Iterator[CheckProgress]:
        """Show the events sent while inside the block."""
        if not self.live:
            yield self
            return
        # transient: the report that follows replaces the live lines.
        with Live(self._latest, console=self.console, refresh_per_second=4, transient=True):
            yield self


# -- nndoctor watch ------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchEvent:
    """Where a watched run stands after a step."""

    step: int  # steps done
    steps: int | None  # the step budget (--steps), None to run to the end
    seconds: float  # since the run started
    period: int  # the current sampling period k
    overhead: float  # watch's own time over the steps' (estimate; nan before a step)
    errors: int = 0
    warnings: int = 0
    found: tuple[str, ...] = field(default_factory=tuple)  # checks with a warning or error

    def line(self) -> str:
        budget = f" of {self.steps:,}" if self.steps else ""
        cost = f" · watch ≈ {self.overhead:.1%}" if self.overhead == self.overhead else ""
        found = (
            "no alert"
            if not (self.errors or self.warnings)
            else f"{self.errors} error(s), {self.warnings} warning(s) ("
            + ", ".join(self.found[:3])
            + (", …" if len(self.found) > 3 else "")
            + ")"
        )
        return (
            f"watching: step {self.step:,}{budget} · {self.seconds:.0f}s · sampling every "
            f"{self.period}{cost} · {found}"
        )


def plain_watch_step(step: int, steps: int | None) -> bool:
    """Steps worth a plain line: the first, each quarter of a budget, or without one the
    powers of ten and then every 10,000."""
    if step == 1:
        return True
    if steps:
        quarter = max(1, steps // 4)
        return step % quarter == 0 or step == steps
    if step < 10_000:
        return step in (10, 100, 1000)
    return step % 10_000 == 0


class WatchProgress:
    """Shows a watched run's progress: one live line on a terminal (the script's own output
    printed above it), a few plain lines otherwise."""

    def __init__(self, console: Console, *, live: bool | None = None) -> None:
        self.console = console
        self.live = console.is_terminal if live is None else live
        self._text = Text("starting…", style="dim")
        self._live: Live | None = None

    def __call__(self, event: WatchEvent) -> None:
        if self.live:
            self._text = Text(event.line(), style="bold")
            if self._live is not None:
                self._live.update(self._text)
        elif plain_watch_step(event.step, event.steps):
            self.console.print(escape(event.line()), soft_wrap=True, highlight=False)
            self.console.file.flush()

    @contextmanager
    def shown(self) -> Iterator[WatchProgress]:
        """Show the events sent while inside the block."""
        if not self.live:
            yield self
            return
        with Live(
            self._text,
            console=self.console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=True,
            redirect_stderr=True,
        ) as live:
            self._live = live
            try:
                yield self
            finally:
                self._live = None
