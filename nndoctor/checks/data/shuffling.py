"""Shuffling (reasons 7, 10): do batches look like random draws from the data set?

The targets of the first recognised loss call at each step tell the class mix of every
batch (``TargetSummary.class_counts`` for class-index targets; the mean of 0/1 targets
for a binary loss) and how ordered the batch is (``sortedness``: the share of
non-decreasing adjacent targets). A shuffled loader gives batches whose class mix
varies only as much as random sampling allows; a sorted data set gives batches that
hold one or two classes, in order, and a mix that drifts from step to step.

Order *inside* a batch does not change the batch gradient, so a batch built on purpose
in class order (all four rotations of each image, contrastive labels ``arange(N)``) is
not a problem as long as every batch holds the same mix: the class-mix drift, measured
against what random sampling would give, separates the two.

The inputs show the order whatever the loss and the targets: batches that walk through a
data set in its stored order have means that drift from step to step further than random
batches' do, and consecutive batches alike (``inputs-in-order``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from nndoctor.checks import causes
from nndoctor.checks.data.dataset import one_target_from_random_batches
from nndoctor.checks.fingerprints import distinct_fingerprints, near_fingerprint
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.rollouts import eval_steps, preparing_steps
from nndoctor.checks.significance import chi_square_above_p, homogeneity_p
from nndoctor.report.model import Where

if TYPE_CHECKING:
    from nndoctor.probes.recording import LossCall, StepRecord

# Tasks whose targets are not one class per sample: no class mix to judge.
NON_CLASS_TASKS = ("multilabel", "regression", "reconstruction", "detection")
BINARY_LOSSES = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
# Samplers that decide their own order, or that a flag on the loader cannot describe.
ITERABLE_SAMPLERS = ("_InfiniteConstantSampler",)


@dataclass
class _Mix:
    """The class mix of one batch."""

    step: int
    counts: list[float]
    n: float  # targets in the batch
    # Independent samples in the batch: its first axis. The targets of one sample (the
    # pixels of a segmentation or colorization map) are correlated, so random-sampling
    # expectations count samples, not targets.
    samples: float

    @property
    def present(self) -> int:
        return sum(1 for c in self.counts if c > 0)

    @property
    def majority(self) -> int:
        return max(range(len(self.counts)), key=lambda i: self.counts[i])


def _task_kind(ctx: CheckContext) -> str | None:
    return ctx.subject.task.kind if ctx.subject is not None else None


def _class_mixes(steps: list[StepRecord], batch_axis: int = 0) -> list[_Mix]:
    """Per-step class counts, for class-index targets and 0/1 targets of a binary loss."""
    mixes: list[_Mix] = []
    for s in steps:
        shape = s.inputs.shape if s.inputs is not None else ()
        inputs = shape[batch_axis] if len(shape) > batch_axis else None
        # A step's batch is every target its loss calls saw: a GAN's discriminator sees its
        # real samples labelled 1 and its fakes labelled 0 in two calls of one step.
        parts = [m for m in (_call_mix(s.step, c, inputs) for c in s.loss_calls) if m is not None]
        if not parts:
            continue
        parts = [m for m in parts if len(m.counts) == len(parts[0].counts)]  # one kind of target
        counts = [sum(m.counts[i] for m in parts) for i in range(len(parts[0].counts))]
        mixes.append(_Mix(s.step, counts, sum(m.n for m in parts), sum(m.samples for m in parts)))
    # Class counts from steps whose loss had a different number of outputs are not comparable.
    if mixes:
        k = len(mixes[0].counts)
        mixes = [m for m in mixes if len(m.counts) == k and m.n >= 2]
    return mixes


def _call_mix(step: int, call: LossCall, inputs: int | None = None) -> _Mix | None:
    """The class counts of one loss call's targets, for class-index or 0/1 binary targets
    (``inputs``: the samples in the step's model input, where known)."""
    t = call.target
    if t is None or not t.finite:
        return None
    if t.class_counts is not None:
        # Targets equal to ignore_index are in no class count.
        n = float(sum(t.class_counts))
        return _Mix(step, list(t.class_counts), n, _samples(t.shape, n, inputs)) if n > 0 else None
    if (
        call.fn in BINARY_LOSSES
        and t.integral
        and t.min >= 0
        and t.max <= 1
        and (len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1))
    ):
        n = float(math.prod(t.shape))
        return _Mix(step, [n * (1 - t.mean), n * t.mean], n, _samples(t.shape, n, inputs))
    return None


def _samples(shape: tuple[int, ...], n: float, inputs: int | None) -> float:
    """The independent samples among ``n`` targets of ``shape``: its rows, but no more
    than the model input's samples when the targets are positions flattened into rows
    (every answer of a student, every token of a sentence: one sample's are correlated)."""
    rows = float(min(shape[0], n)) if shape else n
    return min(rows, float(inputs)) if inputs else rows


def _pooled(mixes: list[_Mix]) -> list[float]:
    total = sum(m.n for m in mixes)
    k = len(mixes[0].counts)
    return [sum(m.counts[i] for m in mixes) / total for i in range(k)]


def class_drift(mixes: list[_Mix]) -> tuple[float, float]:
    """(observed, expected) mean total-variation distance of each batch's class mix from
    the pooled mix of all observed batches.

    The expected value is what batches drawn at random from the pooled mix would show:
    E|q_i - p_i| ≈ sqrt(2 p_i (1 - p_i) / (π n)) by the normal approximation, capped by
    its exact value 2 p_i (1 - p_i) for a batch of one, with n the number of samples in
    the batch (not of targets: a sample's many targets are not independent draws).
    """
    p = _pooled(mixes)
    observed = expected = 0.0
    for m in mixes:
        q = [c / m.n for c in m.counts]
        observed += 0.5 * sum(abs(a - b) for a, b in zip(q, p, strict=True))
        expected += 0.5 * sum(
            min(math.sqrt(2 * pi * (1 - pi) / (math.pi * m.samples)), 2 * pi * (1 - pi)) for pi in p
        )
    return observed / len(mixes), expected / len(mixes)


def longest_run(mixes: list[_Mix]) -> tuple[int, int, int]:
    """(length, class, first step) of the longest run of consecutive batches with the same
    majority class."""
    best = (0, -1, -1)
    run, start = 0, 0
    for i, m in enumerate(mixes):
        if i and m.majority == mixes[i - 1].majority:
            run += 1
        else:
            run, start = 1, i
        if run > best[0]:
            best = (run, m.majority, mixes[start].step)
    return best


def majority_chance(pooled: list[float], samples: float, cls: int, draws: int = 4000) -> float:
    """The probability that ``cls`` is the majority of a random batch of ``samples``
    independent samples from the ``pooled`` class mix (ties to the lowest class, as
    :attr:`_Mix.majority` breaks them), by a fixed-seed multinomial simulation: the same
    data gives the same answer on any machine."""
    rng = np.random.default_rng(0)
    p = np.asarray(pooled, dtype=np.float64)
    counts = rng.multinomial(max(1, round(samples)), p / p.sum(), size=draws)
    return float(np.mean(counts.argmax(axis=1) == cls))


def run_chance(mixes: list[_Mix], run: int, cls: int) -> float:
    """An upper bound on the probability that random batches show a run of ``run``
    consecutive batches with majority ``cls`` somewhere among ``mixes`` (a union over the
    run's possible starts)."""
    samples = float(np.median([m.samples for m in mixes]))
    q = majority_chance(_pooled(mixes), samples, cls)
    return min(1.0, (len(mixes) - run + 1) * q**run)


# -- checks ---------------------------------------------------------------------------


@register_check(
    id="targets-sorted",
    reasons=(7,),
    severity="warning",
    explains=causes.ORDER_SYMPTOMS | causes.LABEL_SYMPTOMS,
)
def targets_sorted(ctx: CheckContext) -> None:
    """Targets arrive sorted, or in long runs of one class across steps.

    Why it matters:
        Stochastic gradient descent assumes every batch is a random sample of the data
        set. Fed a data set sorted by label, the model learns class 0, then forgets it
        while it learns class 1, and so on; the loss looks fine within a run and jumps
        at every change. BatchNorm statistics are biased the same way.

    What is measured:
        For classification targets: the class mix of each batch and how far it drifts
        from the mix pooled over all observed steps, compared with the drift random
        batches of the same size would show (``class_drift_ratio``); then either the
        share of adjacent non-decreasing targets inside the batches (mean over batches
        of at least ``sorted_min_batch`` targets holding two or more classes, against
        ``sorted_target_fraction``) or the longest run of consecutive batches with the
        same majority class (against ``long_run_steps``), when random batches of that
        many samples from the pooled mix would show such a run with probability at most
        ``majority_run_alpha`` (5%): a class that holds most of the data is the majority
        of most random batches. For regression targets, the
        share of non-decreasing adjacent targets alone (random order gives about 0.5).

    How to fix:
        Shuffle: ``DataLoader(dataset, shuffle=True)``, or a random permutation of the
        indices every epoch when slicing tensors by hand.

    Example:
        Before::

            for i in range(0, len(x), bs):            # x, y sorted by class
                xb, yb = x[i:i + bs], y[i:i + bs]

        After::

            perm = torch.randperm(len(x))
            for i in range(0, len(x), bs):
                idx = perm[i:i + bs]
                xb, yb = x[idx], y[idx]
    """
    t = ctx.thresholds
    kind = _task_kind(ctx)
    if kind in ("multilabel", "reconstruction", "detection"):
        ctx.skip(f"the task is {kind}: targets have no single order to judge")
    steps = [s for s in ctx.recording.steps if s.target is not None]
    if not steps:
        ctx.skip("no loss call with a target tensor was recorded")
    mixes = _class_mixes(steps, ctx.recording.input_batch_axis())
    if not mixes:
        if kind == "classification":
            ctx.skip("no batch with class-index or binary 0/1 targets was observed")
        _regression_order(ctx, steps)
        return
    if len(mixes) < t.long_run_steps:
        ctx.skip(f"{len(mixes)} batches with class targets observed: too few to judge their order")
    observed, expected = class_drift(mixes)
    ratio = observed / expected if expected > 0 else 0.0
    run, run_class, run_step = longest_run(mixes)
    mixed = [
        s
        for s in steps
        if s.target is not None
        and s.target.shape
        and s.target.shape[0] >= t.sorted_min_batch
        and len(s.target.shape) == 1
        and math.isfinite(s.target.sortedness)
        and s.target.class_counts is not None
        and sum(c > 0 for c in s.target.class_counts) >= 2
    ]
    sortedness = (
        sum(s.target.sortedness for s in mixed if s.target is not None) / len(mixed)
        if mixed
        else math.nan
    )
    chance = run_chance(mixes, run, run_class) if run >= t.long_run_steps else 1.0
    ctx.note(
        f"class-mix drift {observed:.3f} vs {expected:.3f} expected for random batches "
        f"(ratio {ratio:.2f}); in-batch sortedness {sortedness:.2f}; longest majority run {run}"
        f" (chance in random batches {chance:.2g})"
    )
    if ratio < t.class_drift_ratio:
        return
    in_order = bool(mixed) and sortedness >= t.sorted_target_fraction
    in_runs = run >= t.long_run_steps and chance <= t.majority_run_alpha
    if not (in_order or in_runs):
        return
    why = []
    if in_order:
        why.append(
            f"inside the {len(mixed)} batches holding several classes, {sortedness:.0%} of "
            "adjacent targets are in non-decreasing order"
        )
    if in_runs:
        why.append(
            f"class {run_class} is the majority of {run} consecutive batches from step {run_step}"
        )
    ctx.finding(
        title="Targets arrive sorted by class",
        message=(
            f"The class mix of a batch drifts from step to step {ratio:.1f} times more than in "
            f"random batches (mean distance {observed:.2f} from the pooled mix, {expected:.2f} "
            f"expected) and {'; '.join(why)}: the data is fed in label order, not shuffled."
        ),
        fix=(
            "Shuffle the training data: DataLoader(dataset, shuffle=True), or draw "
            "torch.randperm(len(x)) each epoch and index the tensors with it."
        ),
        where=Where(step=run_step if in_runs else (mixed[0].step if mixed else None)),
        evidence={
            "class_drift": observed,
            "class_drift_expected": expected,
            "class_drift_ratio": ratio,
            "sortedness": sortedness,
            "sorted_batches": len(mixed),
            "longest_run": run,
            "run_class": run_class,
            "steps": len(mixes),
        },
    )


def _regression_order(ctx: CheckContext, steps: list[StepRecord]) -> None:
    """targets-sorted for continuous targets: random order gives sortedness ≈ 0.5."""
    t = ctx.thresholds
    judged = [
        s
        for s in steps
        if s.target is not None
        and s.target.shape
        and s.target.shape[0] >= t.sorted_min_batch
        and math.isfinite(s.target.sortedness)
        and s.target.std > t.constant_input_std
        and not s.target.integral
    ]
    if not judged:
        ctx.skip("no batch of continuous, varying targets large enough to judge its order")
    sortedness = sum(s.target.sortedness for s in judged if s.target is not None) / len(judged)
    ctx.note(
        f"in-batch sortedness of continuous targets {sortedness:.2f} over {len(judged)} batches"
    )
    if sortedness < t.sorted_target_fraction:
        return
    ctx.finding(
        title="Targets arrive sorted",
        message=(
            f"Inside {len(judged)} observed batches, {sortedness:.0%} of adjacent targets are in "
            "non-decreasing order (random order gives about 50%): the data is fed sorted by "
            "its target, not shuffled."
        ),
        fix=(
            "Shuffle the training data: DataLoader(dataset, shuffle=True), or draw "
            "torch.randperm(len(x)) each epoch and index the tensors with it."
        ),
        where=Where(step=judged[0].step),
        evidence={"sortedness": sortedness, "sorted_batches": len(judged)},
    )


@register_check(
    id="single-label-batches",
    reasons=(10,),
    severity="warning",
    explains=frozenset({"loss-accuracy-disagree", "label-noise"}),
)
def single_label_batches(ctx: CheckContext) -> None:
    """Batches whose targets are all one class.

    Why it matters:
        A classifier trained on single-class batches is pushed, step after step, to
        predict whatever class the current batch holds; it never sees classes side by
        side, BatchNorm normalises each class on its own, and the loss swings instead of
        falling. It nearly always means the data set is sorted by label.

    What is measured:
        For classification targets (class indices, or 0/1 targets of a binary loss), the
        share of observed batches of two or more samples that hold one class only,
        against ``single_label_batch_fraction`` — judged only when random batches from the
        pooled class mix would rarely be single-class (their expected share is at most
        half the observed one), so heavy imbalance alone is not reported here. All
        observed batches holding one and the same class of several is reported, unless a
        shuffling loader drew them: random draws of a labelled data set are never one class
        step after step, so such targets are built per batch (InfoNCE's positive at index 0
        in MoCo and SimCLR code), not read from a sorted data set.

    How to fix:
        Shuffle the data (``DataLoader(..., shuffle=True)``); for a very imbalanced data
        set use a ``WeightedRandomSampler`` so every batch holds several classes.

    Example:
        Before::

            loader = DataLoader(sorted_by_label, batch_size=32)

        After::

            loader = DataLoader(sorted_by_label, batch_size=32, shuffle=True)
    """
    t = ctx.thresholds
    kind = _task_kind(ctx)
    if kind in NON_CLASS_TASKS:
        ctx.skip(f"the task is {kind}: targets are not one class per sample")
    mixes = _class_mixes(
        [s for s in ctx.recording.steps if s.target is not None],
        ctx.recording.input_batch_axis(),
    )
    if not mixes:
        ctx.skip("no batch with class-index or binary 0/1 targets was observed")
    classes = len(mixes[0].counts)
    if ctx.subject is not None and ctx.subject.task.num_classes:
        classes = max(classes, ctx.subject.task.num_classes)
    single = [m for m in mixes if m.present == 1]
    share = len(single) / len(mixes)
    p = _pooled(mixes)
    expected = sum(sum(pi**m.samples for pi in p) for m in mixes) / len(mixes)
    seen = sum(1 for pi in p if pi > 0)
    ctx.note(
        f"{len(single)} of {len(mixes)} batches hold one class ({expected:.0%} expected "
        f"for random batches); {seen} of {classes} classes seen"
    )
    only_one = seen == 1 and classes >= 2 and len(mixes) >= 2
    built = one_target_from_random_batches(ctx.recording) if only_one else None
    if built is not None:
        ctx.note(
            f"every target of the {len(mixes)} batches a shuffling loader drew is class {built}: "
            "targets built per batch (the positive's index among the candidates, as in "
            "InfoNCE), not classes of the data set"
        )
        return
    if not only_one and (share < t.single_label_batch_fraction or expected > share / 2):
        return
    run, run_class, run_step = longest_run(mixes)
    in_runs = run >= t.long_run_steps or only_one
    first = single[0]
    if only_one:
        message = (
            f"All {len(mixes)} observed batches ({int(sum(m.n for m in mixes))} targets) hold "
            f"class {first.majority} only, of the {classes} classes the loss expects: the data "
            "is sorted by label (or the labels are broken)."
        )
    else:
        message = (
            f"{len(single)} of {len(mixes)} observed batches ({share:.0%}) hold a single class, "
            f"first at step {first.step}; random batches with the same class frequencies would "
            f"be single-class {expected:.1%} of the time."
            + (
                f" Class {run_class} fills {run} batches in a row from step {run_step}."
                if run > 1
                else ""
            )
        )
    ctx.finding(
        title="Batches hold a single class",
        message=message,
        fix=(
            "Shuffle the training data (DataLoader(dataset, shuffle=True), or index with "
            "torch.randperm each epoch); for heavy class imbalance use a WeightedRandomSampler."
        ),
        reasons=(7, 10) if in_runs else (10,),
        where=Where(step=first.step),
        evidence={
            "single_label_batches": len(single),
            "batches": len(mixes),
            "share": share,
            "expected_share": expected,
            "classes_seen": seen,
            "classes": classes,
            "longest_run": run,
        },
    )


@register_check(
    id="loader-not-shuffled",
    reasons=(7,),
    severity="warning",
    explains=causes.ORDER_SYMPTOMS | causes.LABEL_SYMPTOMS,
)
def loader_not_shuffled(ctx: CheckContext) -> None:
    """A training DataLoader iterates its data set in a fixed order (shuffle off).

    Why it matters:
        Without shuffling every epoch sees the same batches in the same order: if the
        data set is stored sorted (by class, by time, by source) every batch is
        unrepresentative, and even a pre-shuffled data set gives correlated epochs.
        Reason 7 of the checklist: shuffle the training set.

    What is measured:
        The sampler of each DataLoader that fed training steps (iterated with gradients
        enabled): a ``SequentialSampler`` means ``shuffle=False``. Loaders of an
        ``IterableDataset`` (the data set decides the order), loaders with a custom
        ``batch_sampler`` or sampler (their order is their own), and data sets no larger
        than one batch are not judged. An unshuffled loader is a warning where the batches
        it fed are no random draws of the data: their class mixes differ beyond chance
        (the chi-square test of homogeneity) or their input means spread beyond what random
        batches of their size give (inputs-in-order's spread test), each at
        ``loader_order_alpha``. A data set stored in random order (the quickstart
        tutorial's unshuffled loader over FashionMNIST) passes both, as random batches do
        but at that rate, and repeats the same batches every epoch: that costs little, and
        is an info.

    How to fix:
        Pass ``shuffle=True`` to the training DataLoader (keep validation loaders
        unshuffled), or a random sampler of your own.

    Example:
        Before::

            train_loader = DataLoader(train_set, batch_size=64)

        After::

            train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    """
    rec = ctx.recording
    if not rec.loaders:
        ctx.skip("the data did not come from a DataLoader")
    fed = {s.loader for s in rec.steps if s.loader is not None}
    training = [info for info in rec.loaders if info.index in fed and not info.under_no_grad]
    if not training:
        ctx.skip("no DataLoader was seen feeding a training step")
    judged, reasons = [], []
    for info in training:
        if info.sampler in ITERABLE_SAMPLERS:
            reasons.append(f"loader {info.index} reads an IterableDataset")
        elif info.batch_size is None:
            reasons.append(f"loader {info.index} uses a batch_sampler or yields whole batches")
        elif info.sampler not in ("SequentialSampler", "RandomSampler"):
            reasons.append(f"loader {info.index} uses its own sampler ({info.sampler})")
        elif info.dataset_len is not None and info.dataset_len <= info.batch_size:
            reasons.append(f"loader {info.index} holds one batch only")
        else:
            judged.append(info)
    if not judged:
        ctx.skip("; ".join(reasons))
    ctx.note(
        f"{len(judged)} training loader(s) checked: "
        + ", ".join(f"{i.dataset} with {i.sampler}" for i in judged)
    )
    first_step = {
        info.index: next(s.step for s in rec.steps if s.loader == info.index) for info in judged
    }
    for info in judged:
        if info.shuffle:
            continue
        size = f"{info.dataset_len} samples" if info.dataset_len is not None else "a data set"
        ordered, tested = _stored_order(ctx, info.index)
        message = (
            f"DataLoader {info.index} over {info.dataset} ({size}, batch size "
            f"{info.batch_size}) fed training steps with a {info.sampler}: every epoch "
            "visits the samples in the same stored order"
        )
        ctx.finding(
            title="The training DataLoader does not shuffle",
            message=message
            + (
                f", and {ordered}."
                if ordered
                else f". {tested}: no sign that the stored order costs anything here, but "
                "every epoch repeats the same batches."
            ),
            fix="Pass shuffle=True to the training DataLoader (leave evaluation loaders as they are).",
            severity=None if ordered else "info",
            where=Where(step=first_step[info.index]),
            evidence={
                "loader": info.index,
                "sampler": info.sampler,
                "dataset": info.dataset,
                "dataset_len": info.dataset_len,
                "batch_size": info.batch_size,
                "batches_ordered": bool(ordered),
            },
        )


def _stored_order(ctx: CheckContext, loader: int) -> tuple[str | None, str]:
    """Whether the batches a loader fed show the data set's stored order: a sentence saying
    how (their class mixes differ beyond chance, or their input means spread beyond random
    batches'), or None with a sentence saying what was tested and found like random
    draws."""
    t = ctx.thresholds
    steps = [s for s in ctx.recording.steps if s.loader == loader]
    tested = []
    mixes = _class_mixes(steps, ctx.recording.input_batch_axis())
    if len(mixes) >= 2:
        p = homogeneity_p([m.counts for m in mixes])
        if p < t.loader_order_alpha:
            return (
                f"the class mixes of its {len(mixes)} batches differ beyond chance (chi-square "
                f"test of homogeneity, p={p:.2g}): the data set is stored in an order"
            ), ""
        tested.append(f"the class mixes of its {len(mixes)} batches are alike (p={p:.2g})")
    usable = {s.step for s in _order_steps(ctx)}
    ordered_steps = [s for s in steps if s.step in usable]
    order = (
        input_order(ordered_steps, t.input_order_permutations)
        if len(ordered_steps) >= t.input_order_min_steps
        else None
    )
    if order is not None:
        if order.spread_p < t.loader_order_alpha:
            return (
                f"the input means of its {order.steps} batches spread "
                f"{order.spread_ratio:.1f} times as far as random batches' at most "
                f"(p={order.spread_p:.2g}): the data set is stored in an order"
            ), ""
        tested.append(
            f"the input means of its {order.steps} batches spread as random batches' do "
            f"(p={order.spread_p:.2g})"
        )
    if not tested:
        return (
            None,
            "Its batches hold nothing to test their order by (no class targets, no input of one shape)",
        )
    return None, "; ".join(tested).capitalize() + ", as random draws of the data would"


# -- the order of the inputs -------------------------------------------------------------


@dataclass(frozen=True)
class InputOrder:
    """How the per-channel means of the model input's batches vary over the steps.

    ``spread`` holds, per channel, the batch means' squared deviations from the pooled mean
    in units of what random batches of their size give at most (the channel's element
    variance over the batch size), summed over the steps: at most chi-square with
    ``steps - 1`` degrees of freedom when batches are random draws. ``spread_p`` is the
    smallest channel's tail probability times the channels (Bonferroni); ``order_p`` the
    permutation p that consecutive batches are as alike as they are by chance."""

    steps: int
    channels: int
    spread_ratio: float  # the largest channel's spread over its degrees of freedom
    spread_p: float
    order_p: float
    first_step: int


def _standardised_means(steps: list[StepRecord]) -> np.ndarray:
    """(steps, channels) batch means minus the pooled mean, over the standard error of the
    mean of a random batch of that size: per input channel (axis 1, against the element std,
    which bounds a sample's channel mean's), and of the samples' fingerprints (a fixed
    random projection of each sample, against their own std) where every step has one per
    sample."""
    parts = [p for p in (_channel_z(steps), _fingerprint_z(steps)) if p is not None]
    return np.concatenate(parts, axis=1) if parts else np.zeros((len(steps), 0))


def _channel_z(steps: list[StepRecord]) -> np.ndarray | None:
    summaries = [s.inputs for s in steps]
    if any(
        x is None
        or not x.measured
        or not x.finite
        or x.channel_mean is None
        or x.channel_std is None
        or len(x.channel_mean) != x.shape[1]
        for x in summaries
    ):
        return None
    means = np.array([x.channel_mean for x in summaries if x is not None], dtype=float)
    stds = np.array([x.channel_std for x in summaries if x is not None], dtype=float)
    batch = np.array([x.shape[0] for x in summaries if x is not None], dtype=float)
    per_sample = float(np.prod(steps[0].inputs.shape[2:], dtype=float)) if steps[0].inputs else 1.0
    w = (batch * per_sample)[:, None] / (batch * per_sample).sum()
    pooled = (w * means).sum(axis=0)
    variance = (w * (stds**2 + (means - pooled) ** 2)).sum(axis=0)
    varying = variance > 0
    return (means - pooled)[:, varying] * np.sqrt(batch)[:, None] / np.sqrt(variance[varying])


def _fingerprint_z(steps: list[StepRecord]) -> np.ndarray | None:
    batches = [np.array(s.sample_fingerprints, dtype=float) for s in steps]
    if any(
        s.inputs is None or len(f) != s.inputs.shape[0] or len(f) < 2 or not np.isfinite(f).all()
        for s, f in zip(steps, batches, strict=True)
    ):
        return None
    pooled = np.concatenate(batches)
    std = float(pooled.std())
    if std <= 0:
        return None
    mean = float(pooled.mean())
    return np.array([[(f.mean() - mean) * np.sqrt(len(f)) / std] for f in batches])


def _adjacent_distance(gram: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Sum over consecutive positions of |z_a - z_b|^2 for each row of step orders, from
    the Gram matrix of the standardised means."""
    a, b = order[:, :-1], order[:, 1:]
    diag = np.diag(gram)
    return (diag[a] + diag[b] - 2.0 * gram[a, b]).sum(axis=1)


def input_order(steps: list[StepRecord], permutations: int) -> InputOrder | None:
    """The two tests of ``inputs-in-order`` on ``steps`` (see :class:`InputOrder`); None
    without a channel that varies."""
    z = _standardised_means(steps)
    k, channels = z.shape
    if channels == 0 or k < 3:
        return None
    spread = (z**2).sum(axis=0)
    dof = k - 1
    tail = min(chi_square_above_p(float(x), dof) for x in spread)
    gram = z @ z.T
    observed = _adjacent_distance(gram, np.arange(k)[None, :])[0]
    # Seeded: the same steps always give the same p.
    rng = np.random.default_rng(0)
    shuffled = np.argsort(rng.random((permutations, k)), axis=1)
    alike = int((_adjacent_distance(gram, shuffled) <= observed).sum())
    return InputOrder(
        steps=k,
        channels=channels,
        spread_ratio=float(spread.max() / dof),
        spread_p=min(1.0, tail * channels),
        order_p=(1 + alike) / (1 + permutations),
        first_step=steps[0].step,
    )


def _order_steps(ctx: CheckContext) -> list[StepRecord]:
    """Training steps that call the model once per loss, whose model input holds its
    samples on axis 0, of the most common shape past that axis; none for networks trained
    against another (alternating objectives)."""
    rec = ctx.recording
    if rec.input_batch_axis() != 0 or rec.alternating_objectives:
        return []
    usable = [
        s for s in rec.steps if s.inputs is not None and len(s.inputs.shape) >= 1 and not s.unrolled
    ]
    if not usable:
        return []
    shapes = Counter(s.inputs.shape[1:] for s in usable if s.inputs is not None)
    common = shapes.most_common(1)[0][0]
    return [s for s in usable if s.inputs is not None and s.inputs.shape[1:] == common]


def _one_rollout(ctx: CheckContext, steps: list[StepRecord]) -> list[StepRecord] | None:
    """The steps that train mostly on the samples of the first no-grad phase that prepares
    training (a rollout, ``rollouts.preparing_steps``); None where no phase does."""
    rec = ctx.recording
    preparing = preparing_steps(rec, ctx.thresholds.shared_samples_alpha)
    if not preparing:
        return None
    first = min(preparing)
    pool = distinct_fingerprints(
        [
            v
            for v, k in zip(
                rec.eval_sample_fingerprints,
                eval_steps(rec.eval_sample_fingerprints, rec.eval_fingerprint_steps),
                strict=True,
            )
            if k == first
        ]
    )
    return [
        s
        for s in steps
        if s.sample_fingerprints
        and 2 * sum(near_fingerprint(pool, v) for v in s.sample_fingerprints)
        > len(s.sample_fingerprints)
    ]


@register_check(
    id="inputs-in-order",
    reasons=(7,),
    severity="warning",
    explains=causes.ORDER_SYMPTOMS | causes.LABEL_SYMPTOMS | {"loss-diverging"},
)
def inputs_in_order(ctx: CheckContext) -> None:
    """The model's inputs arrive in an order: batch after batch from one region of the data.

    Why it matters:
        Stochastic gradient descent assumes every batch is a random sample of the data
        set. Data stored in an order (by class, by time, by source, by a feature) and fed
        without shuffling gives batches that each cover one corner of the data: the model
        chases the current corner, forgets the last, and the loss swings instead of
        falling. This is seen in the inputs alone, whatever the loss and the targets (a
        custom loss, an autoencoder, a regression) are.

    What is measured:
        Each batch's mean per input channel (axis 1), and the mean of its samples'
        fingerprints (a fixed random projection of each sample, also of token ids). Two
        tests, each at error rate ``input_order_alpha``, must both reject random batches:
        the batch means spread further than random batches of their size could (a
        chi-square test over the steps against the variance over the batch size: of the
        fingerprints, and of a channel's elements, which bounds a sample's channel mean's;
        Bonferroni over the channels), by at least
        ``input_order_spread_ratio`` times; and consecutive batches are more alike than
        the same batches in a random order (the sum of squared differences of adjacent
        batch means against ``input_order_permutations`` seeded permutations of the
        steps). Batches that differ by design (buckets of lengths, alternating sources)
        but come in a random order pass the second test. Needs
        ``input_order_min_steps`` steps of one input shape, samples on axis 0; steps
        that call the model more often than the loss (rollouts, unrolled recurrences)
        are left out; where no-grad rollouts prepare the training data (PPO's epochs of
        minibatches over each rollout), only the steps over the first rollout recorded are
        compared, since each rollout is a data set of its own; and so are networks trained against another (a GAN's: the input a
        step first shows one of them may be the other's output, which changes as it
        learns).

    How to fix:
        Shuffle the training data: ``DataLoader(dataset, shuffle=True)``, or a fresh
        ``torch.randperm`` of the indices every epoch when slicing tensors by hand.

    Example:
        Before::

            for i in range(0, len(x), bs):            # x stored class by class
                xb = x[i:i + bs]

        After::

            perm = torch.randperm(len(x))
            for i in range(0, len(x), bs):
                xb = x[perm[i:i + bs]]
    """
    t = ctx.thresholds
    steps = _order_steps(ctx)
    rollout = _one_rollout(ctx, steps)
    scope = ""
    if rollout is not None:
        # Each rollout is a data set of its own, replaced as the policy changes: batches of
        # two rollouts differ by design. Order is judged among those of one.
        scope = (
            f"the training data are renewed by no-grad rollouts: {len(rollout)} of {len(steps)} "
            "steps train on the first rollout recorded, and only they are compared; "
        )
        steps = rollout
    if len(steps) < t.input_order_min_steps:
        ctx.skip(
            f"{len(steps)} steps with a model input of one shape, samples on axis 0, one model "
            f"call per loss, one objective: at least {t.input_order_min_steps} are needed"
        )
    order = input_order(steps, t.input_order_permutations)
    if order is None:
        ctx.skip("no input channel or sample fingerprint varies")
    ctx.note(
        f"{scope}batch means over {order.steps} steps and {order.channels} channels: spread "
        f"{order.spread_ratio:.2f}× random batches' at most (p {order.spread_p:.2g}); "
        f"consecutive batches alike, permutation p {order.order_p:.2g}"
    )
    if not (
        order.spread_p <= t.input_order_alpha
        and order.order_p <= t.input_order_alpha
        and order.spread_ratio >= t.input_order_spread_ratio
    ):
        return
    ctx.finding(
        title="Inputs arrive in order, not shuffled",
        message=(
            f"Over {order.steps} steps the model input's batch means spread "
            f"{order.spread_ratio:.0f} times as far as random batches of the same size "
            f"could (p {order.spread_p:.1g}), and consecutive batches are alike (a random "
            f"order of the same batches is as alike with p {order.order_p:.1g}): the "
            "batches walk through the data set in its stored order."
        ),
        fix=(
            "Shuffle the training data: DataLoader(dataset, shuffle=True), or draw "
            "torch.randperm(len(x)) each epoch and index the tensors with it."
        ),
        where=Where(step=order.first_step),
        evidence={
            "steps": order.steps,
            "channels": order.channels,
            "spread_ratio": order.spread_ratio,
            "spread_p": order.spread_p,
            "order_p": order.order_p,
        },
    )
