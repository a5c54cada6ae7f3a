"""Part III of REASONS.md: implementation issues (one file per check family)."""

from nndoctor.checks.implementation import derivatives, layers, loss, reshapes, task  # noqa: F401
