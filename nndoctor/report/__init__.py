"""Findings, reports and their renderers (console, JSON)."""

from nndoctor.report.model import CheckResult, Finding, Report, RunInfo, Severity, Status, Where

__all__ = ["CheckResult", "Finding", "Report", "RunInfo", "Severity", "Status", "Where"]
