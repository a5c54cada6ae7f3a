"""Where alerts go as they happen: a line on stderr (rich) and a line of JSON in a log file.

Renders only: the findings arrive made, with their step, layer and numbers.
"""

from __future__ import annotations

import json
import time
from typing import IO, Any

from rich.console import Console
from rich.markup import escape

from nndoctor.report.model import Finding

_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


class AlertSink:
    """Prints alerts to ``console`` and appends them to ``log`` (a path or an open text file)
    as JSON lines: ``{"event": "alert", ...finding}``, plus ``start`` and ``end`` events."""

    def __init__(self, log: Any = None, console: Console | None = None, quiet: bool = False):
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet
        self._own = False
        self._log: IO[str] | None = None
        if isinstance(log, (str, bytes)) or hasattr(log, "__fspath__"):
            self._log = open(log, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._own = True
        elif log is not None:
            self._log = log

    def event(self, kind: str, **data: Any) -> None:
        """One JSON line of kind ``kind``."""
        if self._log is None:
            return
        self._log.write(json.dumps({"event": kind, "time": time.time(), **data}) + "\n")
        self._log.flush()

    def alert(self, finding: Finding) -> None:
        sev = finding.severity.value
        if not self.quiet:
            where = finding.where.describe()
            self.console.print(
                f"[{_STYLE.get(sev, '')}]nndoctor watch {sev}[/] [bold]{escape(finding.check)}[/]"
                f" ({escape(where)}): {escape(finding.title)}\n  {escape(finding.message)}"
            )
        self.event("alert", **finding.to_dict())

    def note(self, text: str) -> None:
        """A line about watch itself (what it cannot see, a hook that failed)."""
        if not self.quiet:
            self.console.print(f"[dim]nndoctor watch: {escape(text)}[/]")
        self.event("note", text=text)

    def close(self) -> None:
        if self._log is not None:
            if self._own:
                self._log.close()
            else:
                self._log.flush()
            self._log = None


def print_summary(console: Console, result: Any) -> None:
    """The end-of-run lines of ``nndoctor watch`` for a
    :class:`~nndoctor.watch.script.ScriptWatch`: how it ended, steps, sampling, cost, alerts."""
    r = result.report
    counts = {s: sum(f.severity.value == s for f in r.alerts) for s in ("error", "warning", "info")}
    periods = ", ".join(f"every {k} from step {s}" for s, k in r.periods) or "none"
    overhead = f"{100 * r.overhead:.2f}%" if r.overhead == r.overhead else "n/a"
    console.print(
        f"[bold]nndoctor watch[/] {escape(result.script)}: {escape(result.stop_reason or 'ended')}"
        f"; {r.steps_seen} step(s) seen, {r.steps_sampled} sampled ({escape(periods)}); "
        f"watch's own cost ≈ {overhead} of the step"
    )
    if result.error:
        console.print(f"[bold red]the script raised:[/] {escape(result.error)}")
        if result.traceback:
            console.print(escape(result.traceback))
    for note in r.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    if result.saves_redirected:
        console.print(
            f"[dim]--dry-run: {len(result.saves_redirected)} write(s) went to a scratch folder, "
            "removed afterwards[/]"
        )
    console.print(
        f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info alert(s)"
    )
