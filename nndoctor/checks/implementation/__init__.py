"""Part III of REASONS.md: implementation issues (one file per check family)."""

from nndoctor.checks.implementation import (  # noqa: F401
    adversarial,
    data_free,
    derivatives,
    floor,
    layers,
    loss,
    masks,
    reshapes,
    sequence_layout,
    task,
    triplet,
    views,
)
