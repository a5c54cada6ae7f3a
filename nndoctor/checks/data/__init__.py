"""Part I of REASONS.md: dataset issues (one file per check family)."""

from nndoctor.checks.data import dataset, experiments, sanity, shuffling, targets  # noqa: F401
