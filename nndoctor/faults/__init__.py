"""Named, real bugs planted in healthy training setups: the corpus ``nndoctor bench`` runs.

See :mod:`nndoctor.faults.registry` for the vocabulary (healthy case, script fault,
subject fault, dev/test split); the other modules of this package declare the corpus,
one module per family of base scripts.
"""

from nndoctor.faults.registry import (
    Edit,
    Fault,
    FaultError,
    HealthyCase,
    apply_edits,
    faults,
    get_fault,
    get_healthy,
    healthy_cases,
    register_fault,
    register_healthy,
)

__all__ = [
    "Edit",
    "Fault",
    "FaultError",
    "HealthyCase",
    "apply_edits",
    "faults",
    "get_fault",
    "get_healthy",
    "healthy_cases",
    "register_fault",
    "register_healthy",
]
