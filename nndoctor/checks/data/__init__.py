"""Part I of REASONS.md: dataset issues (one file per check family)."""

from nndoctor.checks.data import (  # noqa: F401
    alignment,
    dataset,
    experiments,
    sanity,
    shuffling,
    targets,
)
