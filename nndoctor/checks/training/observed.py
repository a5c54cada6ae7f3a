"""What the statistics checks of part IV read from the recording: layers in forward order,
weight matrices, learning rates, and evidence kept to a bounded size.

The checks (reasons 28, 33, 35, 36) live in activations, initialisation, gradients,
updates and divergence; everything they read are numbers the training probe already
recorded.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

from nndoctor.probes.layers import EMBEDDING, WEIGHTED
from nndoctor.probes.recording import GradClip, Recording, StepRecord, module_of

# Per-layer numbers kept in a finding's evidence, at most (the extremes, in layer order).
MAX_EVIDENCE_LAYERS = 32


def fmt3(x: float) -> str:
    """``x`` to three significant digits."""
    return f"{x:.3g}"


def leaf_modules(rec: Recording) -> set[str]:
    """Modules without submodules (their activations are the model's layers)."""
    names = list(rec.module_types)
    parents = {n.rsplit(".", 1)[0] if "." in n else "" for n in names if n}
    return {n for n in names if n not in parents}


def forward_steps(rec: Recording) -> list[StepRecord]:
    """Steps whose forward pass was observed (activations recorded)."""
    return [s for s in rec.steps if s.activations]


def is_matrix(shape: tuple[int, ...]) -> bool:
    """A weight matrix or kernel: at least two axes longer than one (not a bias, not a
    (1, 1, D) token or a (1, N, D) positional table)."""
    return sum(d > 1 for d in shape) >= 2


def is_bias(param: str) -> bool:
    """A bias by name, whatever its shape (a channel-wise layer may hold a 2-D bias)."""
    return "bias" in param.rsplit(".", 1)[-1].lower()


def weight_matrices(rec: Recording) -> list[str]:
    """Trainable weight matrices, excluding biases and lookup tables, in registration order."""
    return [
        n
        for n in rec.param_names
        if is_matrix(rec.param_shapes.get(n, ()))
        and not is_bias(n)
        and rec.requires_grad.get(n, True)
        # An embedding's gradient and update touch only the rows seen in a batch, so its
        # norms say nothing about the learning rate or about vanishing gradients.
        and not rec.is_kind(module_of(n), EMBEDDING)
    ]


def weighted_layers(rec: Recording, step: StepRecord) -> list[str]:
    """Linear/conv leaf modules, and hand-written ones holding a weight matrix of their own
    (a graph convolution's ``weight``), in the order their forward completed at ``step``."""
    leaves = leaf_modules(rec)
    hand_written = _hand_written_layers(rec)
    return [
        n
        for n in step.activations
        if n in leaves and (rec.is_kind(n, WEIGHTED) or n in hand_written)
    ]


def _hand_written_layers(rec: Recording) -> set[str]:
    """Modules of the user's own classes whose own parameters include a trainable matrix
    (two axes, each longer than one): they transform their input as a linear layer does."""
    with_matrix = {
        module_of(p)
        for p, shape in rec.param_shapes.items()
        if rec.requires_grad.get(p, True) and len(shape) == 2 and min(shape) > 1
    }
    out = set()
    for name in with_matrix:
        cls = rec.module_class(name)
        if cls is not None and cls.__module__.split(".")[0] != "torch":
            out.add(name)
    return out


def output_module(rec: Recording, step: StepRecord) -> str | None:
    """The last leaf module to complete its forward (the one producing the output)."""
    leaves = leaf_modules(rec)
    order = [n for n in step.activations if n in leaves]
    return order[-1] if order else None


def capped(values: dict[str, float], limit: int = MAX_EVIDENCE_LAYERS) -> dict[str, float]:
    """``values`` if short enough, else its ``limit`` most extreme entries, in their order."""
    if len(values) <= limit:
        return dict(values)
    ranked = sorted(values, key=lambda k: (math.isnan(values[k]), values[k]))
    keep = set(ranked[: limit // 2]) | set(ranked[-(limit - limit // 2) :])
    return {k: v for k, v in values.items() if k in keep}


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return statistics.median(vals) if vals else math.nan


def learning_rates(step: StepRecord) -> list[float]:
    """The learning rate of each parameter group at ``step`` (numbers only)."""
    out = []
    for group in step.hyperparameters:
        lr = group.get("lr")
        if isinstance(lr, (int, float)) and not isinstance(lr, bool):
            out.append(float(lr))
    return out


# Optimisers whose step is the gradient times the learning rate (with momentum, a running
# sum of such steps): clipping the gradient's norm bounds the length of their steps. The
# adaptive ones (Adam, RMSprop, Adagrad, ...) divide the gradient by its own running scale,
# so clipping leaves their step length to the rate.
GRADIENT_PROPORTIONAL = frozenset({"SGD"})


def optimizer_name(rec: Recording, subject: Any) -> str | None:
    """The class name of what stepped: the optimizer's, or for updates by hand the rule
    read off them (the subject's optimizer, plain SGD when the updates are SGD's)."""
    if rec.optimizer_class:
        return rec.optimizer_class
    spec = getattr(subject, "optimizer", None)
    if rec.step_source == "manual" and spec is not None:
        return spec.cls.__name__
    return None


def active_norm_clip(rec: Recording, t: Any) -> GradClip | None:
    """The norm clipping that scaled the gradient down (its norm before clipping above the
    limit) at more than ``clip_active_share`` of the steps that updated; None otherwise."""
    stepped = [s for s in rec.steps if s.update_norms]
    active = [
        s.grad_clip
        for s in stepped
        if s.grad_clip is not None
        and s.grad_clip.kind == "norm"
        and s.grad_norm_before_clip > s.grad_clip.limit
    ]
    if not stepped or len(active) <= t.clip_active_share * len(stepped):
        return None
    return Counter(active).most_common(1)[0][0]


def clipped_step_bound(rec: Recording, optimizer: str | None, t: Any) -> str:
    """Why the learning rate alone does not set the step size, or "": for a
    gradient-proportional optimiser (``optimizer``, a class name) whose gradient norm was
    clipped at most steps, every step is at most lr x max_norm long, a length the script
    chose; the experiments that replay the clipped update judge the rate instead."""
    clip = active_norm_clip(rec, t)
    if clip is None or optimizer not in GRADIENT_PROPORTIONAL:
        return ""
    stepped = [s for s in rec.steps if s.update_norms]
    active = sum(s.grad_clip == clip and s.grad_norm_before_clip > clip.limit for s in stepped)
    return (
        f"the gradient norm was clipped to {clip.limit:g} at {active} of {len(stepped)} steps, "
        f"so each {optimizer} step is at most lr x {clip.limit:g} long (divided by 1 - momentum "
        "with momentum): the learning rate alone does not set the step size"
    )
