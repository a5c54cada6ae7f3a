"""nndoctor: a training doctor for PyTorch.

Finds out why a neural network does not train, and says so with evidence.
The public API::

    report = nndoctor.check(model, data, loss_fn, optimizer, task=nndoctor.Task.classification(10))
"""

from __future__ import annotations

__version__ = "0.1.0"

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The public names are imported on first use, not with the package: the pytest plugin
# and ``nndoctor --help`` import ``nndoctor`` too, and should not pay for ``import torch``.
_PUBLIC = {
    "Thresholds": "nndoctor.checks.thresholds",
    "check": "nndoctor.engine",
    "check_subject": "nndoctor.engine",
    "Finding": "nndoctor.report.model",
    "Report": "nndoctor.report.model",
    "Severity": "nndoctor.report.model",
    "Status": "nndoctor.report.model",
    "Where": "nndoctor.report.model",
    "OptimizerSpec": "nndoctor.subject",
    "Subject": "nndoctor.subject",
    "Task": "nndoctor.subject",
    "watch": "nndoctor.watch",
    "Watcher": "nndoctor.watch",
    "WatchReport": "nndoctor.watch",
}

if TYPE_CHECKING:
    from nndoctor.checks.thresholds import Thresholds
    from nndoctor.engine import check, check_subject
    from nndoctor.report.model import Finding, Report, Severity, Status, Where
    from nndoctor.subject import OptimizerSpec, Subject, Task
    from nndoctor.watch import Watcher, WatchReport, watch


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nndoctor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


__all__ = [
    "Finding",
    "OptimizerSpec",
    "Report",
    "Severity",
    "Status",
    "Subject",
    "Task",
    "Thresholds",
    "Where",
    "__version__",
    "check",
    "check_subject",
    "watch",
    "Watcher",
    "WatchReport",
]
