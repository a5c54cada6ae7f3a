"""What the stream checks read: one :class:`StepRow` per step (the sentinel) and one
:class:`Sample` per sampled step (per-layer statistics). Plain Python numbers, no torch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class StepRow:
    """The always-on numbers of one step, read a step or so after it ran."""

    step: int
    loss: float = math.nan  # mean of the step's losses (several under accumulation)
    grad_norm: float = math.nan  # global L2 norm of the model's gradients at the update
    scale: float = math.nan  # the GradScaler's loss scale used for this step (nan: none)
    metric: float = math.nan  # a metric the user reported for this step (nan: none)
    loss_seen: bool = False
    grad_measured: bool = False  # False on a step a GradScaler skipped (no update ran)
    skipped: bool = False  # a GradScaler skipped this step's update
    training: bool = True  # the model was in train() mode at the step's forward
    forwards: int = 0
    lr: float = math.nan  # first parameter group's learning rate
    phase: int = 0


@dataclass
class Sample:
    """Per-layer statistics of one sampled step."""

    step: int
    # module -> (mean, std, zero fraction) of its output
    activations: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)  # parameter -> |grad|
    weight_norms: dict[str, float] = field(
        default_factory=dict
    )  # parameter -> |w| before the update
    update_norms: dict[str, float] = field(default_factory=dict)  # parameter -> |update|

    def update_ratios(self) -> dict[str, float]:
        """|update| / |weight| per parameter whose weight norm is positive."""
        return {
            n: u / self.weight_norms[n]
            for n, u in self.update_norms.items()
            if self.weight_norms.get(n, 0.0) > 0
        }
