"""Named groups of checks for the causal links the checks declare (``explains=``).

A bug that stops a network from learning shows the same handful of effects whatever it
is: a tiny batch cannot be fit, the loss sits away from chance, shuffled labels train as
well as real ones, the model ignores its input. Those are *symptoms*; a check that finds
a cause (a softmax before the loss, frozen weights, a too-high learning rate) declares
which symptoms it explains, by these groups, so the report can nest them under it.
Every id here must be a registered check (a test holds it), optionally with the aspect
of its findings that is meant (``update-ratio:high``: runaway updates, not tiny ones).
"""

from __future__ import annotations

# Effects of anything that keeps the model from fitting or from using its input.
FIT_SYMPTOMS: frozenset[str] = frozenset(
    {
        "cannot-overfit-tiny-batch",
        "loss-not-at-chance",
        "model-ignores-input",
        "labels-not-connected",
        "nothing-generalizes",
        "label-noise",
        "optimizer-underperforms",
        "simpler-task-trains",
        "loss-accuracy-disagree",
        "regularisation-prevents-fit",
        "augmentation-too-strong",
        "learning-rate-out-of-range",
        "params-not-changing",
        "update-ratio:low",
        "give-it-time",
    }
)

# Effects of steps too large for the weights: the loss climbs past its start, values
# overflow, each update rewrites the weights. Dead units, a frozen layer or a narrow one
# make a model learn less, never this: only what makes steps large explains them.
DIVERGENCE_SYMPTOMS: frozenset[str] = frozenset(
    {
        "loss-diverging",
        "non-finite-values",
        "update-ratio:high",
    }
)

# Effects of unstable optimisation: values that grow, saturate, die or overflow.
INSTABILITY_SYMPTOMS: frozenset[str] = DIVERGENCE_SYMPTOMS | frozenset(
    {
        "gradient-norm-spread",
        "activation-scale-drift",
        "saturated-activations",
        "dead-relus",
    }
)

# Effects of inputs on the wrong scale (the first layers saturate or blow up).
SCALE_SYMPTOMS: frozenset[str] = frozenset(
    {
        "input-not-standardized",
        "feature-scales-differ",
        "activation-scale-drift",
        "saturated-activations",
        "gradient-norm-spread",
        "loss-not-at-chance",
    }
)

# Effects of the order of the data (per-batch label statistics).
ORDER_SYMPTOMS: frozenset[str] = frozenset(
    {
        "targets-sorted",
        "inputs-in-order",
        "single-label-batches",
        "loss-accuracy-disagree",
        "class-imbalance",
    }
)

# Effects of wrong labels: learning them is slower and does not carry over.
LABEL_SYMPTOMS: frozenset[str] = frozenset(
    {
        "labels-not-connected",
        "label-noise",
        "nothing-generalizes",
        "loss-accuracy-disagree",
        "model-ignores-input",
        "give-it-time",
    }
)

# Every effect above: for bugs that break the whole computation (bad data, broken updates).
ALL_SYMPTOMS: frozenset[str] = (
    FIT_SYMPTOMS | INSTABILITY_SYMPTOMS | SCALE_SYMPTOMS | ORDER_SYMPTOMS | LABEL_SYMPTOMS
)


def every_group() -> dict[str, frozenset[str]]:
    return {
        "FIT_SYMPTOMS": FIT_SYMPTOMS,
        "DIVERGENCE_SYMPTOMS": DIVERGENCE_SYMPTOMS,
        "INSTABILITY_SYMPTOMS": INSTABILITY_SYMPTOMS,
        "SCALE_SYMPTOMS": SCALE_SYMPTOMS,
        "ORDER_SYMPTOMS": ORDER_SYMPTOMS,
        "LABEL_SYMPTOMS": LABEL_SYMPTOMS,
    }
