"""Part IV of REASONS.md: training issues (one file per check family)."""

from nndoctor.checks.training import (  # noqa: F401
    experiments,
    hyperparameters,
    overfit,
    parameters,
    progress,
    statistics,
)
