"""Part III of REASONS.md: implementation issues (one file per check family)."""

from nndoctor.checks.implementation import layers, loss, task  # noqa: F401
