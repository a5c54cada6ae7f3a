"""The JSON renderer: the report as a machine-readable document."""

from __future__ import annotations

import json
from pathlib import Path

from nndoctor.report.model import Report


def dumps(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=False)


def write(report: Report, path: str | Path) -> None:
    Path(path).write_text(dumps(report) + "\n", encoding="utf-8")
