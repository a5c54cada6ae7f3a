"""Part II of REASONS.md: data normalisation and augmentation (one file per check family).

The modules are imported in this order on purpose: registration order breaks ties in the
diagnosis ranking.
"""

# isort: off
from nndoctor.checks.preprocessing import normalization  # noqa: F401
from nndoctor.checks.preprocessing import target_scale  # noqa: F401
from nndoctor.checks.preprocessing import augmentation  # noqa: F401
from nndoctor.checks.preprocessing import pretrained  # noqa: F401
from nndoctor.checks.preprocessing import splits  # noqa: F401
# isort: on
