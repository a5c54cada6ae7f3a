"""Part IV of REASONS.md: training issues (one file per check family)."""

from nndoctor.checks.training import overfit, parameters, statistics  # noqa: F401
