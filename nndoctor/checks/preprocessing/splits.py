"""The same preprocessing for every split (reason 15): training and evaluation inputs
with the same statistics, and no sample in both."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nndoctor.checks.data.dataset import training_loader
from nndoctor.checks.fingerprints import (
    distinct_fingerprints,
    fingerprint_tolerance,
    near_fingerprint,
)
from nndoctor.checks.lab import Lab
from nndoctor.checks.preprocessing.inputs import (
    MAX_SOURCE_ROWS,
    SAMPLE_ITEMS,
    ChannelStats,
    channel_stats,
    draw,
    sample_indices,
    source_rows,
    tensor_channel_stats,
)
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.rollouts import eval_steps, preparing_steps
from nndoctor.checks.significance import (
    binomial_tail,
    pooled_t_p,
    proportion_excess_p,
    two_sided_level,
    variance_ratio_p,
)
from nndoctor.probes.recording import LoaderInfo, Recording, StorageExtent, TensorSummary


@register_check(
    id="split-preprocessing-differs",
    reasons=(15,),
    severity="warning",
    kind="experiment",
    quick=True,
    priority=21,
    explains=frozenset({"nothing-generalizes", "loss-accuracy-disagree"}),
)
def split_preprocessing_differs(ctx: CheckContext) -> None:
    """Training and evaluation data are preprocessed differently, or share samples.

    Why it matters:
        A validation set normalised with other statistics (or not at all) reports a loss
        that says nothing about the model; samples present in both splits make it look
        better than it is. Both hide real problems until deployment.

    What is measured:
        Per-channel statistics of the inputs of evaluation forwards (gradients off) and
        of a sample of every other DataLoader's dataset (not those that, with gradients
        on, yield batches for at least half of the steps: a second training source, such
        as the unlabelled data of semi-supervised training), against the training inputs: a
        warning when a channel's std changes by more than ``split_std_ratio`` (2)× (a
        transform applied to one split rescales it), a note when only its mean moves by
        more than ``split_mean_shift`` (0.5) training stds (the data themselves shift
        between periods and sources), each change beyond the sampling noise of the two
        samples (Student's pooled t-test for the mean; for the std, the F-test on channels
        no heavier-tailed than normal, otherwise the larger of its p and that of Layard's
        test with the channels' own kurtosis, since a sparse 0/1 channel's std varies many
        times more than a normal one's; each at the two-sided level of ``split_noise_z``
        (4) standard errors, 6.3e-5 per channel; samples fed at several steps count once,
        by their fingerprints); per-sample fingerprints of evaluation inputs found among
        training inputs more often than chance gives (the matches of the same fingerprints
        shifted off their values, binomial test; and more often than a training sample
        recurs at another step of the first epoch, as a small world's states and tabular
        rows with a few discrete columns do, Fisher's exact test, which carries the noise
        of that rate; each at ``shared_samples_alpha``, 1e-3; each sample counted once on
        either side, so that
        a chance match evaluated at every epoch is one match; passes over the training data
        itself are left out: its own array, a DataLoader that fed training steps or another
        over the same dataset object, as for a training accuracy); another loader's stored rows
        normalised with their own statistics (every column at mean 0 and std 1, the std
        over n or n - 1, or every continuous column's extremes exactly at 0 or -1 and 1),
        or all splits with the statistics of all of them, or an evaluation forward's whole
        input standardised with its own (``model(x_val)``: every channel at mean 0 and std
        1, where the training batches are not, and the input is not read from the training
        data's own array; a note only, since a generator that standardises each split it
        makes leaves the same trace harmlessly), against the probability of landing that
        close by chance (at ``label_pairing_alpha``, for evaluation forwards at
        ``split_own_statistics_alpha``, 1e-3); except where
        every step trains on one full batch and the evaluation re-reads it (a graph's
        nodes split by masks on the outputs: the inputs are shared by design). No-grad
        forwards whose samples are trained on right after them prepare training (a
        rollout's action choices, a bootstrapped value, pseudo-labels) and are left out
        of the evaluation data: most of their samples are trained on in the two steps
        from there, and more than in the two steps before; or the phase that follows
        consumes them (a rollout trained on for a few epochs of minibatches, then
        replaced): they are trained on before the next no-grad phase far more often than
        in as many steps after it (McNemar's exact test at ``shared_samples_alpha``, the
        rate at which a leaking evaluation is taken for a rollout).

    How to fix:
        Compute normalisation statistics on the training split only and apply the same
        transform (minus random augmentation) to every split; split by sample id before
        any augmentation or duplication.

    Example:
        Before::

            val_x = (val_x - val_x.mean()) / val_x.std()   # statistics of the wrong split

        After::

            val_x = (val_x - train_mean) / train_std
    """
    rec = ctx.recording
    train_inputs = [s.inputs for s in rec.steps if s.inputs is not None]
    train_stats = channel_stats(train_inputs)
    findings = 0
    compared = []
    # No-grad forwards on inputs trained on afterwards (a rollout's action choices, a
    # bootstrapped value, pseudo-labels) prepare training: they are no evaluation.
    preparing = preparing_steps(rec, ctx.thresholds.shared_samples_alpha)
    eval_inputs = [
        x
        for x, k in zip(rec.eval_inputs, eval_steps(rec.eval_inputs, rec.eval_steps), strict=True)
        if k not in preparing
    ]
    evaluated_fp = [
        v
        for v, k in zip(
            rec.eval_sample_fingerprints,
            eval_steps(rec.eval_sample_fingerprints, rec.eval_fingerprint_steps),
            strict=True,
        )
        if k not in preparing
    ]
    if preparing:
        compared.append(
            f"{len(rec.eval_inputs) - len(eval_inputs)} no-grad forward(s) on inputs trained on at "
            "the same or a later step (rollouts, bootstrapped values, pseudo-labels) left out: "
            "they prepare training, they do not evaluate"
        )
    if eval_inputs and train_stats is not None:
        eval_stats = channel_stats(eval_inputs)
        # The same samples fed at several steps (full-batch training, a held-out set
        # evaluated at every step) are as many samples as they are distinct ones.
        train_fp = [v for s in rec.steps for v in s.sample_fingerprints]
        train_stats = _distinct_rows(train_stats, train_fp)
        if eval_stats is not None:
            eval_stats = _distinct_rows(eval_stats, evaluated_fp)
        if eval_stats is not None and len(eval_stats.mean) == len(train_stats.mean):
            compared.append("evaluation forwards")
            findings += _compare(
                ctx,
                "the inputs of evaluation forwards",
                "the training inputs",
                train_stats,
                eval_stats,
            )
    if evaluated_fp and _rereads_the_full_batch(rec, evaluated_fp):
        # Full-batch training (a graph's nodes, a whole table) evaluated on that same batch:
        # the split is made on the outputs it scores (node masks), not on the inputs.
        compared.append(
            "the evaluation forwards re-read the one full batch every step trains on (a split "
            "by the outputs scored, such as node masks): shared inputs say nothing there"
        )
        evaluated_fp = []
    elif evaluated_fp:
        evaluated_fp = _left_of_training_arrays(ctx, evaluated_fp, preparing, compared)
    if evaluated_fp:
        # Each sample once: one evaluated at every epoch, or trained on at several steps, is
        # one sample, and a chance match repeated with it is one chance match, not several.
        train_fp = distinct_fingerprints([v for s in rec.steps for v in s.sample_fingerprints])
        evaluated = distinct_fingerprints(evaluated_fp)
        recurrence = training_recurrence(rec)
        shared, expected, p = shared_beyond_chance(train_fp, evaluated, recurrence)
        compared.append(
            f"{len(evaluated)} distinct evaluation samples against {len(train_fp)} distinct training samples"
            + (
                f" (a training sample recurs at another step of the first epoch at {recurrence.rate:.1%}: "
                f"{recurrence.met} of {recurrence.samples})"
                if recurrence.met
                else ""
            )
        )
        if shared and p < ctx.thresholds.shared_samples_alpha:
            findings += 1
            ctx.finding(
                title="Samples shared between training and evaluation",
                message=(
                    f"{shared} of {len(evaluated)} distinct evaluation inputs are identical to "
                    f"inputs seen in the first {len(rec.steps)} training steps (chance and natural repeats match "
                    f"{expected:.2g}; p={p:.2g}): the evaluation leaks training data."
                ),
                fix="Split by sample id before augmentation or duplication, and de-duplicate across splits.",
                severity="error",
                evidence={
                    "shared": shared,
                    "evaluated": len(evaluated),
                    "expected_by_chance": expected,
                    "binomial_p": p,
                },
            )
    if not findings:
        findings += _shared_stored_samples(ctx, compared)
    if not findings:
        findings += _standardised_apart(ctx, compared)
    if not findings:
        findings += _evaluated_standardised_apart(ctx, preparing, compared)
    if not findings:
        # Without an evaluation forward in the budget, sample the other loaders' datasets.
        findings += _compare_datasets(ctx, compared)
    if not compared:
        ctx.skip("no evaluation data was observed (no no-grad forward and no other DataLoader)")
    ctx.note("compared: " + "; ".join(compared))


def _left_of_training_arrays(
    ctx: CheckContext, evaluated_fp: list[float], preparing: set[int], compared: list[str]
) -> list[float]:
    """The evaluation fingerprints less those read from the training data: a pass over the
    very array the training batches are drawn from (``model(X_train)`` for a training
    accuracy), or over the training DataLoader itself (a training accuracy, a statistic of
    the training data such as Deep SVDD's centre), measures the training data; it is no
    split that could leak."""
    on_training_array = _read_from_training_arrays(ctx, preparing)
    if not any(on_training_array):
        return evaluated_fp
    kept = [v for v, own in zip(evaluated_fp, on_training_array, strict=True) if not own]
    compared.append(
        f"{len(evaluated_fp) - len(kept)} evaluated sample(s) read from the training data's "
        "own array (a measurement on the training set) left out of the shared-sample test"
    )
    return kept


def _read_from_training_arrays(ctx: CheckContext, preparing: set[int]) -> list[bool]:
    """For each evaluation fingerprint kept (those not preparing training), whether its
    forward read from within a training array: a tensor of the training DataLoader's
    dataset (a ``TensorDataset``, or a dataset holding its samples as tensor attributes),
    or the whole of a storage the training steps' inputs were cut from; or from a batch of
    a DataLoader that fed training steps. A split cut from one array beside the training
    rows, overlapping them or not, is neither; nor is another loader over the same data."""
    rec = ctx.recording
    on_training_array = _training_array_test(ctx)
    steps = eval_steps(rec.eval_sample_fingerprints, rec.eval_fingerprint_steps)
    storages = rec.eval_fingerprint_storages
    if len(storages) != len(steps):
        return [False] * sum(k not in preparing for k in steps)
    loaders = rec.eval_fingerprint_loaders
    if len(loaders) != len(steps):
        loaders = [None] * len(steps)
    training = _training_loaders(ctx)
    return [
        on_training_array(e) or loader in training
        for e, loader, k in zip(storages, loaders, steps, strict=True)
        if k not in preparing
    ]


def _training_loaders(ctx: CheckContext) -> set[int]:
    """The DataLoaders (their indices) that fed training steps, and those over the very
    dataset object one of them draws from (``DataLoader(train_set, shuffle=False)`` for a
    training accuracy)."""
    rec = ctx.recording
    fed = {s.loader for s in rec.steps if s.loader is not None}
    lab: Lab | None = ctx.services
    if lab is None:
        return fed
    datasets = {id(lab.datasets[i]) for i in fed if lab.datasets.get(i) is not None}
    return fed | {i for i, d in lab.datasets.items() if d is not None and id(d) in datasets}


def _training_array_test(ctx: CheckContext) -> Callable[[StorageExtent | None], bool]:
    """Whether an input's extent lies within a training array (see
    ``_read_from_training_arrays``)."""
    rec = ctx.recording
    sliced = {s.input_storage.storage for s in rec.steps if s.input_storage is not None}
    lab: Lab | None = ctx.services
    loader = training_loader(rec)
    dataset = lab.datasets.get(loader.index) if lab is not None and loader is not None else None
    held: list[Any] = list(getattr(dataset, "tensors", ()) or ()) if dataset is not None else []
    if dataset is not None and hasattr(dataset, "__dict__"):
        held += list(vars(dataset).values())
    arrays = [
        StorageExtent.of(t)
        for t in held
        if isinstance(t, torch.Tensor) and t.layout == torch.strided and t.numel()
    ]

    def on_training_array(e: StorageExtent | None) -> bool:
        if e is None:
            return False
        if e.storage in sliced and e.start == 0 and e.end == e.total:
            return True
        return any(a.storage == e.storage and a.start <= e.start and e.end <= a.end for a in arrays)

    return on_training_array


# Offsets, in match tolerances, at which evaluation fingerprints are also looked up among the
# training ones: a real duplicate matches at its own value only, so the matches found at
# these offsets (windows that do not overlap the value's own) count what chance gives at
# this density of fingerprints. Thousands of one-number fingerprints collide by chance.
CHANCE_OFFSETS = (-9.0, -7.0, -5.0, -3.0, 3.0, 5.0, 7.0, 9.0)


@dataclass(frozen=True)
class Recurrence:
    """How often training samples meet their equal among the samples of other training
    steps: ``met`` of ``samples`` did."""

    met: int = 0
    samples: int = 0

    @property
    def rate(self) -> float:
        return self.met / self.samples if self.samples else 0.0


def shared_beyond_chance(
    train_sorted: list[float], evaluated: list[float], recurrence: Recurrence | None = None
) -> tuple[int, float, float]:
    """(evaluation fingerprints matching a training one, the number chance and natural repeats match,
    the one-sided p of that many matches).

    Two ways to match without a leak are tested, and the p is the larger of the two
    (each must be ruled out):
    - fingerprints colliding by chance, counted at offsets off their values: a binomial
      test at that rate, floored at half of one match over all offsets (the resolution of
      its estimate);
    - samples recurring by nature, as training samples meet their equal among other
      training steps (a small discrete input space, duplicated rows, a grid world's
      states): Fisher's exact test against ``recurrence``, which carries the noise of that
      rate's estimate. Taken as known, a rate read from the few recurrences of twenty
      steps is often far below the true one: on tables with rare repeated rows a binomial
      test at 1% alarmed on 4-10% of disjoint splits in simulation. (An evaluation sample
      is looked up among all observed training samples, a training sample among those of
      the other steps only: with twenty steps its chance to meet an equal is about 5%
      higher, which the test does not correct.)"""
    shared = sum(near_fingerprint(train_sorted, v) for v in evaluated)
    if not evaluated:
        return 0, 0.0, 1.0
    by_chance = [
        sum(
            near_fingerprint(train_sorted, v + 2.0 * k * fingerprint_tolerance(v))
            for v in evaluated
        )
        for k in CHANCE_OFFSETS
    ]
    collisions = sum(by_chance) / len(by_chance)
    rate = min(1.0, max(collisions, 0.5 / len(CHANCE_OFFSETS)) / len(evaluated))
    p = binomial_tail(len(evaluated), shared, rate)
    expected = collisions
    if recurrence is not None and recurrence.samples:
        p = max(p, proportion_excess_p(shared, len(evaluated), recurrence.met, recurrence.samples))
        expected = max(expected, recurrence.rate * len(evaluated))
    return shared, expected, p


def training_recurrence(rec: Recording) -> Recurrence:
    """How the samples of a training step, each counted once, meet their equal among the
    other steps of the first epoch. Within one pass over a dataset of distinct samples none
    recurs; duplicated rows and small discrete input spaces (an environment's states) recur
    at their own rate. Empty with fewer than two steps of per-sample fingerprints."""
    steps = [s for s in rec.steps if s.sample_fingerprints]
    length = rec.epoch_length()
    if length:
        steps = [s for s in steps if s.step < steps[0].step + length]
    if len(steps) < 2:
        return Recurrence()
    per_step = [distinct_fingerprints(s.sample_fingerprints) for s in steps]
    met = total = 0
    for i, own in enumerate(per_step):
        others = distinct_fingerprints([v for j, fp in enumerate(per_step) if j != i for v in fp])
        met += sum(near_fingerprint(others, v) for v in own)
        total += len(own)
    return Recurrence(met, total)


def _rereads_the_full_batch(rec: Recording, evaluated: list[float]) -> bool:
    """Every observed step trains on the same batch (the same samples, by fingerprint), of
    more than one sample, and every evaluation input is one of its samples."""
    batches = {tuple(sorted(s.sample_fingerprints)) for s in rec.steps if s.sample_fingerprints}
    if len(batches) != 1 or len(rec.steps) < 2:
        return False
    batch = list(batches.pop())
    if len(batch) < 2 or not all(math.isfinite(v) for v in batch):
        return False
    return all(near_fingerprint(batch, v) for v in evaluated)


def _distinct_rows(stats: ChannelStats, fingerprints: list[float]) -> ChannelStats:
    """``stats`` counting each sample once: its rows capped at the number of distinct
    per-sample fingerprints (when they were recorded)."""
    finite = sorted(v for v in fingerprints if math.isfinite(v))
    if not finite:
        return stats
    distinct = 1 + sum(
        b - a > fingerprint_tolerance(b) for a, b in zip(finite, finite[1:], strict=False)
    )
    return stats._replace(n=min(stats.n, distinct))


def _compare(
    ctx: CheckContext, what: str, against: str, train: ChannelStats, other: ChannelStats
) -> int:
    t = ctx.thresholds
    n1, n2 = max(train.n, 1), max(other.n, 1)
    # A channel's shift or std ratio counts only beyond the sampling noise of two finite
    # samples (the means of a few dozen items of a clustered dataset differ by half a std by
    # chance; the std of three items is anywhere from a tenth to twice the true one):
    # Student's t-test and the F-test of samples from one distribution, each at the
    # two-sided level of split_noise_z standard errors.
    level = two_sided_level(t.split_noise_z)
    rows = list(
        zip(
            train.mean,
            train.std,
            train.kurtosis,
            other.mean,
            other.std,
            other.kurtosis,
            strict=True,
        )
    )
    shifts = [
        abs(m2 - m1) / max(s1, 1e-6) if pooled_t_p(m1, s1, n1, m2, s2, n2) < level else 0.0
        for m1, s1, _, m2, s2, _ in rows
    ]
    # Heavy-tailed and discrete channels (one-hot states, sparse counts) vary their sample
    # std far more than normal ones: the test allows for each channel's kurtosis.
    ratios = [
        max(s2, 1e-12) / max(s1, 1e-12) if variance_ratio_p(s1, n1, s2, n2, k1, k2) < level else 1.0
        for _, s1, k1, _, s2, k2 in rows
    ]
    shift = max(shifts)
    ratio = max(max(ratios), 1 / min(ratios))
    if shift <= t.split_mean_shift and ratio <= t.split_std_ratio:
        return 0
    # A transform applied to one split only (no normalisation, another split's statistics)
    # rescales it: the spread changes. A shift of the mean with the spread intact is also
    # what the data do between periods or sources (a chronological split of a trending
    # series), so alone it is reported, not warned about.
    rescaled = ratio > t.split_std_ratio
    ctx.finding(
        title=(
            "Evaluation data preprocessed differently from training data"
            if rescaled
            else "Evaluation data are shifted from training data, their spread alike"
        ),
        message=(
            f"Per channel, {what} differ from {against}: the means are up to {shift:.2f} training standard "
            f"deviations apart and the stds differ up to {ratio:.2f}×."
            + (
                ""
                if rescaled
                else f" With the spreads within {t.split_std_ratio:g}x of each other, this may be "
                "the data themselves (a later period, another source) rather than their "
                "preprocessing: worth a look, not a verdict."
            )
        ),
        fix="Apply the training split's normalisation (same mean/std, same transform minus augmentation) to every split.",
        severity=None if rescaled else "info",
        evidence={
            "max_mean_shift_in_std": shift,
            "max_std_ratio": ratio,
            "train_mean": train.mean[:8],
            "other_mean": other.mean[:8],
        },
    )
    return 1


def _stored_splits(
    ctx: CheckContext, series: bool = False
) -> tuple[torch.Tensor, list[tuple[LoaderInfo, torch.Tensor]]] | None:
    """The rows the training dataset stores, and those of every other loader's dataset with
    rows of the same width; the training rows themselves behind a second loader (training
    accuracy) are no other split. With ``series``, the rows of a series that windows are
    cut from count too (see ``source_rows``). None without stored training rows."""
    lab: Lab | None = ctx.services
    train = training_loader(ctx.recording)
    if lab is None or train is None or train.index not in lab.datasets:
        return None
    a = source_rows(lab.datasets[train.index], series)
    if a is None:
        return None
    others = []
    for info in ctx.recording.loaders:
        if info.index == train.index or info.index not in lab.datasets:
            continue
        if lab.datasets[info.index] is lab.datasets[train.index] or _feeds_training(ctx, info):
            continue
        b = source_rows(lab.datasets[info.index], series)
        if (
            b is None
            or b.shape[1] != a.shape[1]
            or (b.data_ptr(), b.shape) == (a.data_ptr(), a.shape)
        ):
            continue
        others.append((info, b))
    return a, others


def _feeds_training(ctx: CheckContext, info: LoaderInfo) -> bool:
    """Whether a loader other than the main one yields training batches too (labelled
    and unlabelled data drawn for each step): a second training source, no other split."""
    return info.feeds_training(len(ctx.recording.steps))


def _shared_stored_samples(ctx: CheckContext, compared: list[str]) -> int:
    """Rows stored by another loader's dataset that the training dataset stores too, against
    the rate at which one half of the training rows recurs in the other half: data with
    legitimately repeated rows (a few discrete features) recurs within training as often."""
    splits = _stored_splits(ctx)
    if splits is None or splits[0].shape[0] < 4:
        return 0
    a, others = splits
    a = a[sample_indices(a.shape[0], MAX_SOURCE_ROWS, seed=0)]
    half = a.shape[0] // 2
    reference, own = _fingerprints(a[:half]), _fingerprints(a[half:])
    own_met = sum(near_fingerprint(reference, v) for v in own)
    own_rate = own_met / max(len(own), 1)
    found = 0
    for info, b in others:
        b = b[sample_indices(b.shape[0], MAX_SOURCE_ROWS, seed=1)]
        shared = sum(near_fingerprint(reference, v) for v in _fingerprints(b))
        compared.append(
            f"{b.shape[0]} stored rows of loader {info.index} against {half} training rows"
        )
        # More of the other split's rows recur among the reference rows than the training
        # rows' own recurrence allows, at shared_samples_alpha: both counts are looked up
        # among the same reference rows, so the proportions compare like with like; the
        # conditional test carries the noise of the training rows' own (often few) repeats.
        p = proportion_excess_p(shared, int(b.shape[0]), own_met, len(own))
        if shared == 0 or p >= ctx.thresholds.shared_samples_alpha:
            continue
        found += 1
        ctx.finding(
            title="Samples shared between training and evaluation",
            message=(
                f"{shared} of {b.shape[0]} inputs stored by the {info.dataset} behind loader {info.index} are "
                f"identical to inputs of half the training set (training rows recur within training at "
                f"{own_rate:.1%}; binomial p={p:.2g}): the evaluation leaks training data."
            ),
            fix="Split by sample id before augmentation or duplication, draw each split from its own seed, "
            "and de-duplicate across splits.",
            severity="error",
            evidence={
                "shared": shared,
                "compared": int(b.shape[0]),
                "training_reference_rows": half,
                "training_recurrence": own_rate,
                "binomial_p": p,
            },
        )
    return found


# Float32 arithmetic leaves a standardised column's mean and std this far from 0 and 1; a
# column standardised with another split's statistics is off by its sampling noise instead.
STANDARDISED_TOLERANCE = 1e-4
# A column min-max scaled with its own range has its extremes at 0 (or -1) and 1 to float
# rounding; one scaled with another range lands there only by chance.
MIN_MAX_TOLERANCE = 1e-6
# Columns of 8-bit data divided by 255 reach exactly 0 and 1 wherever a pixel saturates.
EIGHT_BIT_LEVELS = 255
# A column min-max scaled with its own range meets each end at its one extreme sample (a
# few where samples repeat); values clipped to a fixed range (``clamp(0, 1)``) pile up
# there: this share of the rows, and at least three, at an end is a pile.
CLIPPED_PILE_SHARE = 0.01


def _exactly_normalised(rows: torch.Tensor) -> tuple[float, str]:
    """The smaller of two probabilities, with the scheme it belongs to: that ``rows``,
    standardised with statistics of other data, would have every column at mean 0 and std
    1 to float precision, and that, min-max scaled with another range, the continuous
    columns would have their extremes exactly at 0 (or -1) and 1. Small means the rows
    were normalised with their own statistics. 1.0 when they are not that close (or too
    few to tell)."""
    return min(
        (_exactly_standardised(rows), "at mean 0 and std 1"),
        (_exactly_min_max(rows), "with its extremes at exactly the ends of the scaled range"),
    )


def _exactly_standardised(rows: torch.Tensor) -> float:
    """The probability that ``rows``, standardised with statistics of other data, would
    have every column's mean within ``STANDARDISED_TOLERANCE`` of 0 and its std within it of
    1, the std taken either way it is computed (over n, as numpy and scikit-learn do, or
    over n - 1, as torch does). 1.0 when they are not that close (or too few to tell)."""
    n = rows.shape[0]
    if n < 10 or rows.shape[1] == 0:
        return 1.0
    x = rows.double()
    mean = x.mean(0)
    if bool((mean.abs() > STANDARDISED_TOLERANCE).any()):
        return 1.0
    if not any(
        bool(((x.std(0, correction=c) - 1).abs() <= STANDARDISED_TOLERANCE).all()) for c in (0, 1)
    ):
        return 1.0
    return _standardised_by_chance(n, rows.shape[1])


def _standardised_by_chance(n: int, columns: int) -> float:
    """The probability that ``columns`` columns of ``n`` values, standardised with other
    data's statistics, all land within ``STANDARDISED_TOLERANCE`` of mean 0 and std 1."""
    # Under another split's statistics a column's mean varies by about 1/sqrt(n) and its std
    # by about 1/sqrt(2n): the chance of landing within the tolerance of both, per column,
    # is at most (2 tol / sqrt(2 pi)) * sqrt(n) * sqrt(2n), and columns multiply; either of
    # the two ways of computing the std doubles it.
    per_column = min(
        1.0, (2 * STANDARDISED_TOLERANCE / math.sqrt(2 * math.pi)) ** 2 * n * math.sqrt(2)
    )
    return min(1.0, 2 * per_column**columns)


def _summary_standardised(s: TensorSummary) -> tuple[int, int] | None:
    """(values per channel, channels) of a batch summary whose every channel (axis 1) is at
    mean 0 and std 1 to float precision, the std over n or n - 1; None otherwise."""
    if s.channel_mean is None or s.channel_std is None or len(s.shape) < 2 or not s.shape[0]:
        return None
    channels = len(s.channel_mean)
    n = math.prod(s.shape) // max(channels, 1)
    if n < 10 or not channels:
        return None
    if any(not abs(m) <= STANDARDISED_TOLERANCE for m in s.channel_mean):
        return None
    # The summary's std is over n; one standardised over n - 1 reads sqrt((n - 1) / n) there.
    for scale in (1.0, math.sqrt(n / (n - 1))):
        if all(abs(v * scale - 1) <= STANDARDISED_TOLERANCE for v in s.channel_std):
            return n, channels
    return None


def _evaluated_standardised_apart(
    ctx: CheckContext, preparing: set[int], compared: list[str]
) -> int:
    """An evaluation forward whose whole input is standardised with its own statistics
    (``model(x_val)`` after ``x_val = (x_val - x_val.mean(0)) / x_val.std(0)``): every
    channel exactly at mean 0 and std 1, where the training batches are not (a scheme that
    standardises each batch or sample does so to both), and the input is not read from the
    training data's own array (a training accuracy: that split is fitted exactly)."""
    rec = ctx.recording
    if len(rec.eval_input_storages) != len(rec.eval_inputs):
        return 0
    if any(_summary_standardised(s.inputs) for s in rec.steps if s.inputs is not None):
        return 0
    on_training_array = _training_array_test(ctx)
    steps = eval_steps(rec.eval_inputs, rec.eval_steps)
    for s, k, e in zip(rec.eval_inputs, steps, rec.eval_input_storages, strict=True):
        exact = _summary_standardised(s)
        if exact is None or k in preparing or on_training_array(e):
            continue
        n, channels = exact
        p = _standardised_by_chance(n, channels)
        compared.append("normalisation of the evaluation forwards' inputs")
        if p >= ctx.thresholds.split_own_statistics_alpha:
            continue
        # A note, not a warning: a data generator that standardises each split it makes
        # (two healthy scripts on the bench) leaves the same trace as a scaler refitted on
        # the validation rows, and the harm, a shift between the splits' raw statistics
        # that the refit hides, cannot be seen once both are standardised.
        ctx.finding(
            title="Evaluation data standardised with statistics of its own",
            message=(
                f"An evaluation forward's input of shape {tuple(s.shape)} has every channel at mean "
                "0 and std 1 to float precision, while the training batches are not: it was "
                "standardised with its own statistics (a split standardised with other data's "
                f"statistics lands this close with probability {p:.2g}). Where the splits' raw "
                "statistics differ, its loss and metrics measure a differently preprocessed "
                "input than the model is trained on; where both come from one distribution "
                "(a generator that standardises each split it makes), it is harmless."
            ),
            fix="Fit the scaler (mean and std) on the training split only, and apply it to "
            "every split.",
            severity="info",
            evidence={"shape": list(s.shape), "values_per_channel": n, "probability": p},
        )
        return 0
    return 0


def _piled_at_an_end(column: torch.Tensor, pile: int) -> bool:
    """Whether ``pile`` or more of a column's values sit at its minimum or at its maximum
    (within ``MIN_MAX_TOLERANCE``): values clipped to a fixed range, not scaled by their
    own."""
    for end in (column.min(), column.max()):
        if int(((column - end).abs() <= MIN_MAX_TOLERANCE).sum()) >= pile:
            return True
    return False


def _exactly_min_max(rows: torch.Tensor) -> float:
    """The probability that the continuous columns of ``rows`` (more than two distinct
    values, not 8-bit levels divided by 255, not piled up at an end of their range as
    values clipped to it are), min-max scaled with another range, would all have their
    minimum within ``MIN_MAX_TOLERANCE`` of 0 (or all of -1) and their maximum within it
    of 1. 1.0 when they do not, or no column is continuous."""
    n = rows.shape[0]
    if n < 10 or not rows.is_floating_point():
        return 1.0
    x = rows.double()
    levels = x * EIGHT_BIT_LEVELS
    pile = max(3, math.ceil(CLIPPED_PILE_SHARE * n))
    continuous = [
        j
        for j in range(x.shape[1])
        if x[:, j].unique().numel() > 2
        and not bool(((levels[:, j] - levels[:, j].round()).abs() < 1e-3).all())
        and not _piled_at_an_end(x[:, j], pile)
    ]
    if not continuous:
        return 1.0
    lo, hi = x[:, continuous].amin(0), x[:, continuous].amax(0)
    if not bool(((hi - 1).abs() <= MIN_MAX_TOLERANCE).all()):
        return 1.0
    if not any(bool(((lo - end).abs() <= MIN_MAX_TOLERANCE).all()) for end in (0.0, -1.0)):
        return 1.0
    # Scaled with another range, a column's extreme of n values spread over about the unit
    # range has a density of at most about n there: each lands within the tolerance with
    # probability at most 2 tol n, both extremes of a column at most (2 tol n)^2; columns
    # multiply, and the two ranges ([0, 1], [-1, 1]) double it.
    per_column = min(1.0, (2 * MIN_MAX_TOLERANCE * n) ** 2)
    return min(1.0, 2 * per_column ** len(continuous))


def _standardised_apart(ctx: CheckContext, compared: list[str]) -> int:
    """Evaluation rows normalised with their own statistics (each column exactly mean 0 and
    std 1, or its extremes exactly at the ends of the scaled range), or every split
    normalised with statistics of all of them together."""
    splits = _stored_splits(ctx, series=True)
    if splits is None or not splits[0].is_floating_point():
        return 0
    a, others = splits
    found = 0
    alpha = ctx.thresholds.label_pairing_alpha
    for info, b in others:
        if not b.is_floating_point():
            continue
        own, scheme = _exactly_normalised(b)
        whole, whole_scheme = (
            _exactly_normalised(torch.cat([a, b])) if own >= alpha else (1.0, scheme)
        )
        compared.append(f"normalisation of loader {info.index}'s stored rows")
        if own < alpha:
            what = (
                f"the {b.shape[0]} stored inputs of the {info.dataset} behind loader {info.index} have "
                f"every feature {scheme} to float precision: they were normalised with "
                "their own statistics, not the training set's"
            )
            p = own
        elif whole < alpha and _exactly_normalised(a)[0] >= alpha:
            what = (
                f"the training inputs together with the {b.shape[0]} of loader {info.index} have every "
                f"feature {whole_scheme} to float precision: the statistics were computed on all "
                "the data, evaluation included"
            )
            p = whole
        else:
            continue
        found += 1
        ctx.finding(
            title="Evaluation data normalised with statistics of its own",
            message=(
                f"{what[0].upper()}{what[1:]} (a split normalised with other data's statistics "
                f"lands this close with probability {p:.2g}). Its loss and metrics then measure a "
                "differently preprocessed input than the model is trained on."
            ),
            fix="Fit the scaler (mean and std, or min and max) on the training split only, and "
            "apply it to every split.",
            evidence={"loader": info.index, "rows": int(b.shape[0]), "probability": p},
        )
    return found


def _fingerprints(rows: torch.Tensor) -> list[float]:
    """One number per row, a fixed random projection in float64, sorted."""
    gen = torch.Generator().manual_seed(12345)
    proj = torch.randn(rows.shape[1], generator=gen, dtype=torch.float64)
    return sorted((rows.double() @ proj).tolist())


def _compare_datasets(ctx: CheckContext, compared: list[str]) -> int:
    """Sample every non-training DataLoader's dataset and compare it with the training dataset."""
    lab: Lab | None = ctx.services
    train = training_loader(ctx.recording)
    if lab is None or train is None or train.index not in lab.datasets or not train.dataset_len:
        return 0
    try:
        a = draw(lab.datasets[train.index], sample_indices(train.dataset_len, SAMPLE_ITEMS, seed=0))
    except Exception:  # noqa: BLE001 - an unindexable dataset is not comparable
        return 0
    if a is None or a.dim() < 2:
        return 0
    train_stats = tensor_channel_stats(a)
    found = 0
    for info in ctx.recording.loaders:
        if info.index == train.index or info.index not in lab.datasets or not info.dataset_len:
            continue
        if _feeds_training(ctx, info):
            continue
        try:
            b = draw(
                lab.datasets[info.index], sample_indices(info.dataset_len, SAMPLE_ITEMS, seed=1)
            )
        except Exception:  # noqa: BLE001
            continue
        if b is None or b.shape[1:] != a.shape[1:]:
            continue
        compared.append(f"dataset of loader {info.index} ({info.dataset})")
        other = tensor_channel_stats(b)
        found += _compare(
            ctx,
            f"items of the {info.dataset} behind loader {info.index}",
            "training items",
            train_stats,
            other,
        )
    return found
