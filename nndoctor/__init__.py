"""nndoctor: a training doctor for PyTorch.

Finds out why a neural network does not train, and says so with evidence.
The public API::

    report = nndoctor.check(model, data, loss_fn, optimizer, task=nndoctor.Task.classification(10))
"""

from __future__ import annotations

__version__ = "0.1.0"

from nndoctor.checks.thresholds import Thresholds  # noqa: E402
from nndoctor.engine import check, check_subject  # noqa: E402
from nndoctor.report.model import Finding, Report, Severity, Status, Where  # noqa: E402
from nndoctor.subject import OptimizerSpec, Subject, Task  # noqa: E402

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
]
