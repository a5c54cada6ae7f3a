"""Callbacks that attach ``nndoctor.watch`` to training frameworks.

- :mod:`nndoctor.integrations.lightning`: ``NNDoctorCallback`` for ``lightning.pytorch.Trainer``
  (extra ``nndoctor[lightning]``);
- :mod:`nndoctor.integrations.hf`: ``NNDoctorCallback`` for the Hugging Face ``Trainer``
  (extra ``nndoctor[hf]``).

Each module imports its framework when it is imported; without it, the ImportError names the
extra to install. This package itself imports neither.
"""

from __future__ import annotations

from typing import Any

from nndoctor.watch.report import WatchReport
from nndoctor.watch.session import Watcher


class WatchHandle:
    """What both callbacks share: one Watcher per training run, attached at its start,
    detached at its end (or on an exception); ``report`` is the last run's WatchReport."""

    def __init__(self, **watch_options: Any) -> None:
        self.watch_options = watch_options
        self.watcher: Watcher | None = None
        self.report: WatchReport | None = None

    def start(self, model: Any, optimizer: Any) -> None:
        self.stop()
        self.watcher = Watcher(model, optimizer, **self.watch_options)
        self.watcher.attach()

    def stop(self) -> WatchReport | None:
        """Detach the Watcher (idempotent); returns its report."""
        if self.watcher is not None:
            self.report = self.watcher.detach()
            self.watcher = None
        return self.report


def missing(framework: str, extra: str) -> ImportError:
    """The ImportError raised when ``framework`` is not installed."""
    return ImportError(
        f"nndoctor.integrations.{extra} needs {framework}: pip install 'nndoctor[{extra}]'"
    )
