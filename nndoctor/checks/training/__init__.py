"""Part IV of REASONS.md: training issues (one file per check family).

The modules are imported in this order on purpose: registration order breaks ties in the
diagnosis ranking.
"""

# isort: off
from nndoctor.checks.training import experiments  # noqa: F401
from nndoctor.checks.training import hyperparameters  # noqa: F401
from nndoctor.checks.training import schedule  # noqa: F401
from nndoctor.checks.training import overfit  # noqa: F401
from nndoctor.checks.training import parameters  # noqa: F401
from nndoctor.checks.training import frozen  # noqa: F401
from nndoctor.checks.training import zero_grad  # noqa: F401
from nndoctor.checks.training import train_mode  # noqa: F401
from nndoctor.checks.training import progress  # noqa: F401
from nndoctor.checks.training import activations  # noqa: F401
from nndoctor.checks.training import initialisation  # noqa: F401
from nndoctor.checks.training import gradients  # noqa: F401
from nndoctor.checks.training import updates  # noqa: F401
from nndoctor.checks.training import divergence  # noqa: F401
# isort: on
