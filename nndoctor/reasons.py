"""The 37 reasons a network does not train, numbered as in REASONS.md, and their coverage.

The coverage table is generated from the check registry, never written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reason:
    number: int
    title: str
    part: str
    automatic: str  # what can be checked automatically


REASONS: dict[int, Reason] = {
    1: Reason(
        1,
        "Check the input data",
        "Dataset issues",
        "batches that are all zeros, constant, non-finite, or repeated step after step; channel/axis order that looks swapped (e.g. NHWC fed to a conv expecting NCHW); values in 0..255 where 0..1 or standardized is expected",
    ),
    2: Reason(
        2,
        "Try random input",
        "Dataset issues",
        "train briefly on random inputs with the same shape/stats: if the loss behaves the same as on real data, the model ignores its input",
    ),
    3: Reason(
        3,
        "Check the data loader",
        "Dataset issues",
        "the same samples yielded every step, batches whose size or dtype changes unexpectedly, targets not aligned with inputs after custom collate, workers returning identical augmentations (same RNG seed in every worker)",
    ),
    4: Reason(
        4,
        "Make sure input is connected to output",
        "Dataset issues",
        "shuffle the labels against the inputs: the real pairing must be learnable faster than the shuffled one; inputs and labels shuffled independently",
    ),
    5: Reason(
        5,
        "Is the input→output relationship too random?",
        "Dataset issues",
        "even a tiny subset cannot be fit beyond chance while the pipeline is otherwise healthy",
    ),
    6: Reason(
        6,
        "Too much noise in the labels?",
        "Dataset issues",
        "per-sample losses: a large share of samples confidently contradicting their labels (likely mislabels)",
    ),
    7: Reason(
        7,
        "Shuffle the dataset",
        "Dataset issues",
        "targets arrive in sorted or long runs across steps; a DataLoader over a training set with shuffle off",
    ),
    8: Reason(
        8,
        "Reduce class imbalance",
        "Dataset issues",
        "class frequencies in the seen targets far from uniform without a weighted loss or sampler",
    ),
    9: Reason(
        9,
        "Enough training examples?",
        "Dataset issues",
        "examples per class and per parameter; a tiny dataset trained from scratch",
    ),
    10: Reason(
        10,
        "Batches with a single label",
        "Dataset issues",
        "batches whose targets are all one class",
    ),
    11: Reason(
        11,
        "Reduce batch size",
        "Dataset issues",
        "very large batches relative to the dataset; a batch size that leaves only a handful of steps per epoch",
    ),
    12: Reason(
        12,
        "Standardise the features",
        "Data normalisation / augmentation",
        "input features whose mean is far from 0 or whose std is far from 1 (per channel / per feature), features on wildly different scales",
    ),
    13: Reason(
        13,
        "Too much augmentation",
        "Data normalisation / augmentation",
        "loss on augmented samples far above loss on the same samples un-augmented; the model cannot fit even a tiny augmented subset",
    ),
    14: Reason(
        14,
        "Preprocessing of a pretrained model",
        "Data normalisation / augmentation",
        "a model loaded with pretrained weights fed inputs whose statistics don't match the normalisation it was trained with (e.g. ImageNet mean/std)",
    ),
    15: Reason(
        15,
        "Same preprocessing for train/val/test",
        "Data normalisation / augmentation",
        "statistics computed on the whole dataset or on the test split; train and validation inputs with different statistics; samples shared between splits (leakage)",
    ),
    16: Reason(
        16,
        "Solve a simpler version first",
        "Implementation issues",
        "reduce the task (fewer classes, one output head, one loss term) and check it trains",
    ),
    17: Reason(
        17,
        "Loss at chance",
        "Implementation issues",
        "the loss of a freshly initialised model against the chance value of its task (−ln(1/C) for C-class cross-entropy, ln 2 per binary output, target variance for MSE)",
    ),
    18: Reason(
        18,
        "Check the loss function",
        "Implementation issues",
        "the loss doesn't match the task (MSE on class indices, BCE on multi-class one-hot, a custom loss with no gradient to the model)",
    ),
    19: Reason(
        19,
        "Verify the loss input",
        "Implementation issues",
        "probabilities or log-probabilities fed to a loss that expects logits (softmax before CrossEntropyLoss), logits fed to a loss expecting probabilities (NLLLoss, BCELoss), target dtype/range wrong, broadcasting between output and target shapes",
    ),
    20: Reason(
        20,
        "Adjust loss weights",
        "Implementation issues",
        "a loss made of several terms where one term dominates the gradient by orders of magnitude",
    ),
    21: Reason(
        21,
        "Monitor other metrics",
        "Implementation issues",
        "the loss moves while accuracy (or the task metric) does not, or the other way round",
    ),
    22: Reason(
        22,
        "Test any custom layers",
        "Implementation issues",
        "user-written modules and autograd Functions: numerical gradient check in float64; outputs non-finite or independent of input",
    ),
    23: Reason(
        23,
        "Frozen layers or variables",
        "Implementation issues",
        "parameters that never receive a gradient, parameters with requires_grad=False that were meant to train, parameters missing from the optimizer, parameters that don't change after a step",
    ),
    24: Reason(
        24,
        "Increase network size",
        "Implementation issues",
        "the model cannot fit a tiny batch although gradients flow (too little capacity, a bottleneck of width 1)",
    ),
    25: Reason(
        25,
        "Hidden dimension errors",
        "Implementation issues",
        "outputs for one sample depend on other samples in the batch (a view/reshape/transpose that mixes the batch axis), silent broadcasting",
    ),
    26: Reason(
        26,
        "Gradient checking",
        "Implementation issues",
        "analytic gradients vs finite differences on a small input in float64",
    ),
    27: Reason(
        27,
        "Overfit a really small dataset",
        "Training issues",
        "train on one or a few batches with regularisation off: the loss must fall close to zero",
    ),
    28: Reason(
        28,
        "Weight initialisation",
        "Training issues",
        "activation std collapsing or growing layer by layer at step 0; all-zero or constant initialisation; symmetric weights",
    ),
    29: Reason(
        29,
        "Hyperparameters",
        "Training issues",
        "settings far outside common ranges (momentum > 1, weight decay ≥ 1, betas outside (0,1), eps too large)",
    ),
    30: Reason(
        30,
        "Reduce regularisation",
        "Training issues",
        "the model fits a tiny batch only once dropout / weight decay / label smoothing / augmentation are switched off",
    ),
    31: Reason(
        31,
        "Give it time",
        "Training issues",
        "the loss is still falling steadily at the end of the budget: not a bug, say so rather than flag it",
    ),
    32: Reason(
        32,
        "Train vs test mode",
        "Training issues",
        "training with the model in eval() mode, evaluating in train() mode; BatchNorm statistics never updated; dropout active at evaluation",
    ),
    33: Reason(
        33,
        "Visualise the training",
        "Training issues",
        "activations, weights, gradients and update/weight ratios per layer over steps (healthy update ratio ≈ 1e-3)",
    ),
    34: Reason(
        34,
        "Try a different optimiser",
        "Training issues",
        "a short comparison of the user's optimiser against a known-good one on the same tiny batch",
    ),
    35: Reason(
        35,
        "Exploding / vanishing gradients",
        "Training issues",
        "per-layer gradient norms spanning many orders of magnitude, activation std outside ~0.5–2, dead ReLUs, saturated sigmoid/tanh",
    ),
    36: Reason(
        36,
        "Learning rate too high / too low",
        "Training issues",
        "loss diverging or oscillating, update ratios far from 1e-3; a learning-rate range test",
    ),
    37: Reason(
        37,
        "NaNs",
        "Training issues",
        "the first module, operation and step where a non-finite value appears, forward or backward; log of zero or negative, division by zero, fp16 overflow",
    ),
}


def coverage() -> list[dict[str, Any]]:
    """Every reason with the registered checks covering it and their kind."""
    from nndoctor.checks.registry import all_checks

    specs = all_checks()
    return [
        {
            "reason": r.number,
            "title": r.title,
            "checks": [{"check": s.id, "kind": s.kind} for s in specs if r.number in s.reasons],
        }
        for r in REASONS.values()
    ]
