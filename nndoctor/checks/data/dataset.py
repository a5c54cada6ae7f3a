"""The dataset as a whole: class balance (8), its size and its distinct samples (9), and the
batch size against it (11)."""

from __future__ import annotations

import math
import statistics

import torch

from nndoctor.checks.fingerprints import distinct_fingerprints, distinct_rows
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import regularized_beta
from nndoctor.probes.layers import EMBEDDING
from nndoctor.probes.recording import LoaderInfo, Recording, StepRecord, TensorSummary
from nndoctor.report.model import Where
from nndoctor.trees import tensors


def training_loader(rec: Recording) -> LoaderInfo | None:
    """The DataLoader that fed most observed training steps."""
    fed = [s.loader for s in rec.steps if s.loader is not None]
    if not fed:
        return None
    index = max(set(fed), key=fed.count)
    return rec.loaders[index] if index < len(rec.loaders) else None


@register_check(
    id="class-imbalance",
    reasons=(8,),
    severity="warning",
    explains=frozenset({"loss-not-at-chance", "loss-accuracy-disagree", "nothing-generalizes"}),
)
def class_imbalance(ctx: CheckContext) -> None:
    """The classes in the observed targets are far from balanced, and nothing compensates.

    Why it matters:
        With one class ten times rarer than another, predicting the frequent class is a
        cheap local optimum: the loss looks fine while the rare classes are never
        predicted. A class-weighted loss or a weighted sampler tells the model they matter.

    What is measured:
        Class counts of the targets of every observed classification loss call, the ratio
        of the most to the least frequent class seen, and whether the loss has class
        weights. A WeightedRandomSampler acts before the batches, so the counts already
        show whether it balances them. Next-token targets (the integer
        model input one position on, in ``next_token_match`` of positions) are the
        text's own distribution, which a language model must learn: they are not judged.
        Nor are the targets of a model that reads token ids (through an ``nn.Embedding``)
        and is trained on several class targets per sample, output sequences whose length
        is not the input's (a translation, a generated language): their frequencies are
        the language's own, which reweighting would distort. Nor are dense labels, several
        class targets per sample (a class per pixel, a tag per token): their frequencies
        are the structure inside each sample (background, "O" tags), not a choice of
        samples, so imbalance is judged only where each sample carries one label. Targets
        the loss ignores (``ignore_index``, padding) count for no class. Class weights
        given to the loss are read too: where every pair of classes whose observed counts
        differ beyond chance (a two-sided binomial test of the pair's split at
        ``label_pairing_alpha``) has the more frequent class weighted higher, the weights
        deepen the imbalance they were meant to compensate (weights computed from the
        counts rather than their inverse), whatever the imbalance ratio. A binary loss with
        logits and one ``pos_weight`` is judged the same way on its 0/1 targets (negatives
        weighted 1, positives ``pos_weight``); a binary loss without one is not judged.

    How to fix:
        Pass ``weight=`` to CrossEntropyLoss (inverse frequency), or use a
        ``WeightedRandomSampler``, or resample the data. Weights must fall as the class
        frequency rises: ``pos_weight`` is negatives over positives, not the reverse.

    Example:
        Before::

            loss_fn = nn.CrossEntropyLoss()

        After::

            loss_fn = nn.CrossEntropyLoss(weight=1.0 / class_frequency)
    """
    rec = ctx.recording
    counts: list[float] | None = None
    weighted = False
    for s in rec.steps:
        for call in s.loss_calls[:1]:
            if call.target is None or call.target.class_counts is None:
                continue
            weighted = weighted or call.kwargs.get("weight") not in (None, "NoneType")
            c = call.target.class_counts
            counts = c if counts is None else [a + b for a, b in zip(counts, c, strict=False)]
    if counts is None:
        binary = _binary_counts_and_weights(rec)
        if binary is not None:
            # A binary loss with logits weighs its positives by ``pos_weight``: judged as
            # class weights (1 for negatives), on the observed 0/1 targets.
            favoured = frequent_classes_favoured(*binary, ctx.thresholds.label_pairing_alpha)
            if favoured:
                _weights_favour_frequent(ctx, *binary, favoured)
                return
            negatives, positives = binary[0]
            ctx.note(
                f"{int(negatives + positives)} binary targets, {int(positives)} positive, "
                f"pos_weight {binary[1][1]:.3g}: the weight does not favour the frequent class"
            )
            return
        ctx.skip("no classification loss with class-index targets was observed")
    shifted = [
        c.target.next_position_match
        for s in rec.steps
        for c in s.loss_calls[:1]
        if c.target is not None and c.target.class_counts is not None
    ]
    if shifted and all(v >= ctx.thresholds.next_token_match for v in shifted):
        # A language model's targets are its own inputs one position on: their frequencies
        # are the data's, and a model of the data must learn them, not have them reweighted.
        ctx.note(
            f"the targets equal the token inputs one position on (in at least {min(shifted):.0%} of "
            "positions at every step): next-token prediction, whose class frequencies are the text's own"
        )
        return
    tokens = token_sequence_targets(rec)
    if tokens:
        ctx.note(tokens)
        return
    dense = targets_per_sample(rec)
    if dense is not None and dense > 1:
        # Many class targets per sample (pixels, tokens, time steps): their frequencies are
        # the structure inside each sample (background pixels, "O" tags), which no choice
        # of samples sets and reweighting trades against precision. Imbalance is a choice
        # only where each sample carries one label.
        seen = [c for c in counts if c > 0]
        ctx.note(
            f"{dense:g} class targets per sample (dense labels: pixels, tokens or positions); "
            f"most/least frequent = {max(seen) / min(seen):.1f}: the data's own structure, "
            "not a choice of samples"
        )
        return
    pointers = positions_as_classes(rec)
    if pointers:
        ctx.note(pointers)
        return
    # A weighted sampler acts before the batches: the counts above are what it drew, so it
    # compensates only if they come out balanced (its weights may be the counts, not their
    # inverse). Loss weights act after, and do compensate whatever the batches hold.
    loader = training_loader(rec)
    sampled = loader is not None and loader.sampler == "WeightedRandomSampler"
    seen = [c for c in counts if c > 0]
    total = sum(counts)
    if len(seen) < 2:
        ctx.skip("fewer than two classes in the observed targets (see single-label-batches)")
    ratio = max(seen) / min(seen)
    ctx.note(f"{int(total)} targets over {len(seen)} classes; most/least frequent = {ratio:.1f}")
    weights = next(
        (c.class_weights for s in rec.steps for c in s.loss_calls[:1] if c.class_weights), None
    )
    if weights is not None:
        favoured = frequent_classes_favoured(counts, weights, ctx.thresholds.label_pairing_alpha)
        if favoured:
            _weights_favour_frequent(ctx, counts, weights, favoured)
            return
    if total < 10 * len(counts) or ratio < ctx.thresholds.imbalance_ratio or weighted:
        return
    rare = min(range(len(counts)), key=lambda i: counts[i] if counts[i] > 0 else float("inf"))
    common = max(range(len(counts)), key=lambda i: counts[i])
    ctx.finding(
        title="Strong class imbalance without compensation",
        message=(
            f"In {int(total)} observed targets class {common} appears {int(counts[common])} times and class "
            f"{rare} only {int(counts[rare])} ({ratio:.0f}×), and "
            + (
                "these are the batches the WeightedRandomSampler drew: its weights do not balance "
                "the classes (inverse class frequencies do), and the loss is not weighted."
                if sampled
                else "neither the loss nor the sampler is weighted."
            )
        ),
        fix=(
            "Give the WeightedRandomSampler one weight per sample, 1 / (count of its class)."
            if sampled
            else "Weight the loss by inverse class frequency or sample with a WeightedRandomSampler."
        ),
        evidence={"class_counts": [int(c) for c in counts], "ratio": ratio},
    )


# Class weights are set against the class counts for up to this many classes (pairs grow
# with its square).
MAX_WEIGHED_CLASSES = 200


def _binary_counts_and_weights(rec: Recording) -> tuple[list[float], list[float]] | None:
    """For a binary loss with logits given one ``pos_weight`` for all its outputs, on 0/1
    targets: the observed (negative, positive) counts and the weights (1, pos_weight);
    None otherwise (no such loss, a weight per output, soft targets)."""
    negatives = positives = 0.0
    pos_weight: float | None = None
    for s in rec.steps:
        for call in s.loss_calls[:1]:
            weight, target = call.kwargs.get("pos_weight"), call.target
            if call.fn != "binary_cross_entropy_with_logits" or target is None:
                continue
            if not isinstance(weight, float) or weight <= 0 or not target.finite:
                return None
            # 0/1 targets only: a mean of soft targets counts no samples.
            if not target.integral or target.min < 0 or target.max > 1:
                return None
            n = math.prod(target.shape)
            positives += target.mean * n
            negatives += (1 - target.mean) * n
            pos_weight = weight
    if pos_weight is None:
        return None
    return [round(negatives), round(positives)], [1.0, pos_weight]


def frequent_classes_favoured(
    counts: list[float], weights: list[float], alpha: float
) -> list[tuple[int, int]]:
    """The pairs of classes (more frequent, less frequent) whose observed counts differ beyond
    chance (a two-sided binomial test of the pair's split at ``alpha``), when the loss
    weights the more frequent class of every such pair higher; empty otherwise. Weights
    that compensate imbalance (inverse frequency, its square root, the effective number of
    samples) all weight the rarer class higher; one order wrong among such pairs is no
    inversion, every order wrong is."""
    classes = [i for i, c in enumerate(counts) if c > 0 and i < len(weights)]
    if len(classes) > MAX_WEIGHED_CLASSES:
        return []
    pairs = []
    for i in classes:
        for j in classes:
            hi, lo = int(counts[i]), int(counts[j])
            # P(X >= hi) for X ~ Binomial(hi + lo, 1/2) is I_{1/2}(hi, lo + 1).
            if hi > lo and 2 * regularized_beta(0.5, hi, lo + 1) < alpha:
                pairs.append((i, j))
    if not pairs or any(weights[i] <= weights[j] for i, j in pairs):
        return []
    return pairs


def _weights_favour_frequent(
    ctx: CheckContext, counts: list[float], weights: list[float], pairs: list[tuple[int, int]]
) -> None:
    common = max(range(len(counts)), key=lambda i: counts[i])
    rare = min((j for _, j in pairs), key=lambda j: counts[j] if counts[j] > 0 else float("inf"))
    ctx.finding(
        title="The class weights favour the frequent classes",
        message=(
            f"The loss weights class {common} ({int(counts[common])} of {int(sum(counts))} observed "
            f"targets) by {weights[common]:.3g} and class {rare} ({int(counts[rare])}) by "
            f"{weights[rare]:.3g}: in every one of {len(pairs)} pair(s) of classes whose counts "
            "differ beyond chance, the more frequent class weighs more. Weights meant to "
            "compensate imbalance do the opposite (inverse class frequencies); these deepen it, "
            "as weights computed from the counts rather than their inverse do."
        ),
        fix="Weight each class by the inverse of its frequency (weight = total / (classes * count)).",
        evidence={
            "class_counts": [int(c) for c in counts],
            "class_weights": list(weights),
            "pairs": len(pairs),
        },
    )


def targets_per_sample(rec: Recording) -> float | None:
    """Class targets per sample of the first loss call (the median over the observed
    steps, ignored targets included): 1 for one label per sample, more for dense labels;
    None when no step tells the number of samples."""
    axis = rec.input_batch_axis()
    ratios = []
    for s in rec.steps:
        call = s.loss_calls[0] if s.loss_calls else None
        x = s.inputs
        if call is None or call.target is None or call.target.class_counts is None:
            continue
        if x is None or len(x.shape) <= axis or x.shape[axis] < 1:
            continue
        ratios.append(math.prod(call.target.shape) / x.shape[axis])
    return statistics.median(ratios) if ratios else None


def positions_as_classes(rec: Recording) -> str:
    """Why the classes are positions in the input, or "": at every observed step the first
    classification loss's logits have as many classes as the model's input sequence has
    positions (token ids [N, L], or vectors [N, L, F]: an answer span's start in extractive
    question answering, a pointer network's choice among its inputs). Where an answer
    sits in its text is the data's layout, not a choice of samples to rebalance."""
    lengths: set[int] = set()
    for s in rec.steps:
        call = s.loss_calls[0] if s.loss_calls else None
        if call is None or call.target is None or call.target.class_counts is None:
            continue
        x = s.inputs
        if x is None:
            continue
        if len(call.input_shape) != 2:
            return ""
        sequence = len(x.shape) == 2 and not x.measured or len(x.shape) == 3 and x.measured
        if not sequence or x.shape[1] != call.input_shape[1]:
            return ""
        lengths.add(x.shape[1])
    if not lengths:
        return ""
    return (
        f"the loss scores positions of the input sequence ({'/'.join(map(str, sorted(lengths)))} "
        "classes, as many as the input has positions: a span's start, a pointer among the "
        "inputs): their frequencies are the data's layout, not a choice of samples"
    )


def token_sequence_targets(rec: Recording) -> str:
    """Why the class targets are generated text, or "": at every observed step the model
    reads integer token ids through an embedding and the loss has a whole number, above
    one, of class targets per sample (one per output position), and at some step as many
    as the input has no positions (an output sequence of its own length: a translation,
    not a tag per input token, whose label set is judged like any other)."""
    if not rec.modules_of_kind(EMBEDDING):
        return ""
    axis = rec.input_batch_axis()
    lengths: set[tuple[int, int]] = set()  # (targets, input positions) per sample
    for s in rec.steps:
        call = s.loss_calls[0] if s.loss_calls else None
        if call is None or call.target is None or call.target.class_counts is None:
            continue
        x = s.inputs
        if x is None or x.measured or len(x.shape) <= axis or x.shape[axis] < 1:
            return ""  # float inputs (images, features), or no batch to count samples by
        batch = x.shape[axis]
        targets = math.prod(call.target.shape)
        if targets <= batch or targets % batch:
            return ""
        lengths.add((targets // batch, math.prod(x.shape) // batch))
    if not any(out != positions for out, positions in lengths):
        return ""
    per_sample = [out for out, _ in lengths]
    return (
        f"the model reads token ids and is trained on {min(per_sample)}-{max(per_sample)} "
        "class targets per sample, output sequences of their own length: generated text, "
        "whose token frequencies are the language's own"
    )


@register_check(
    id="too-few-examples",
    reasons=(9,),
    severity="warning",
    explains=frozenset({"nothing-generalizes"}),
)
def too_few_examples(ctx: CheckContext) -> None:
    """The dataset has very few examples per class, or per parameter.

    Why it matters:
        A network trained from scratch needs many examples per class; with a handful it
        memorises them and generalises to nothing. A model with thousands of parameters
        per training example is in the same place.

    What is measured:
        The length of the training DataLoader's dataset, divided by the number of classes
        (classification) and compared with the number of parameters. Targets that hold
        every class equally often in every batch are built per batch (InfoNCE's positions
        ``arange(N)``, an N-way K-shot episode's labels), as are targets that are one and the
        same class in every batch a shuffling loader drew (the positive's index, 0, in
        MoCo's InfoNCE): no class of the data set to count.

    How to fix:
        Collect more data, augment it, start from a pretrained model, or shrink the model.

    Example:
        Before::

            model = resnet50()        # 25M parameters, 200 training images

        After::

            model = small_cnn()       # or fine-tune a pretrained network
    """
    rec = ctx.recording
    loader = training_loader(rec)
    if loader is None or not loader.dataset_len:
        ctx.skip("the dataset size is unknown (no DataLoader over a sized dataset fed the steps)")
    n = loader.dataset_len
    params = sum(
        _numel(shape) for name, shape in rec.param_shapes.items() if rec.requires_grad.get(name)
    )
    subject = ctx.subject
    classes = (
        subject.task.num_classes
        if subject is not None and subject.task.kind == "classification"
        else None
    )
    if classes is None:
        first = next(
            (c for s in rec.steps for c in s.loss_calls if c.fn in ("cross_entropy", "nll_loss")),
            None,
        )
        classes = first.input_shape[1] if first is not None and len(first.input_shape) > 1 else None
    built = ""
    if classes is not None and _classes_by_construction(rec, classes):
        # Targets that are positions in the batch (InfoNCE's arange) or an episode's own
        # labels (N-way K-shot) name no class of the data set: nothing to count per class.
        built = (
            f"; every batch holds each of its {classes} target classes equally often: "
            "in-batch positions or episode labels, not classes of the data set"
        )
        classes = None
    elif classes is not None and (only := one_target_from_random_batches(rec)) is not None:
        built = (
            f"; every target of every batch a shuffling loader drew is class {only} of "
            f"{classes}: the positive's index among the candidates, not a class of the data set"
        )
        classes = None
    per_class = n / classes if classes else None
    ctx.note(
        f"{n} examples"
        + (f", {per_class:.1f} per class" if per_class else "")
        + f", {params:,} parameters"
        + built
    )
    if per_class is not None and per_class < ctx.thresholds.min_examples_per_class:
        ctx.finding(
            title="Very few examples per class",
            message=f"The training set has {n} examples for {classes} classes: {per_class:.1f} per class.",
            fix="Collect more data, augment, or fine-tune a pretrained model instead of training from scratch.",
            evidence={
                "examples": n,
                "classes": classes,
                "per_class": per_class,
                "parameters": params,
            },
        )
    elif params > 1000 * n:
        ctx.finding(
            title="Far more parameters than examples",
            message=f"{params:,} trainable parameters for {n} examples ({params / n:,.0f} per example).",
            fix="Shrink the model, add data or augmentation, or start from pretrained weights.",
            severity="info",
            evidence={"examples": n, "parameters": params},
        )


def _classes_by_construction(rec: Recording, classes: int) -> bool:
    """Every observed batch of the first loss's class targets holds each of the
    ``classes`` classes the same number of times: targets built per batch (the positive's
    position among the batch's candidates, the labels of a balanced episode), which no
    sampler of a labelled data set gives step after step."""
    counts = _first_target_counts(rec)
    return len(counts) >= 2 and all(
        len(c) == classes and min(c) > 0 and min(c) == max(c) for c in counts
    )


def _first_target_counts(rec: Recording) -> list[list[int]]:
    counts = [
        s.loss_calls[0].target.class_counts
        for s in rec.steps
        if s.loss_calls and s.loss_calls[0].target is not None
    ]
    return [list(c) for c in counts if c is not None]


def one_target_from_random_batches(rec: Recording) -> int | None:
    """The one class that every target of every observed batch holds, when those batches
    were drawn at random (a shuffling DataLoader fed the steps); None otherwise. Random
    draws from a data set of several classes are never all one class step after step: such
    targets are built per batch, not read from the data (MoCo's and SimCLR's InfoNCE put
    the positive first among the candidates and give every sample target 0)."""
    counts = _first_target_counts(rec)
    loader = training_loader(rec)
    if len(counts) < 2 or loader is None or not loader.shuffle:
        return None
    present = {i for c in counts for i, n in enumerate(c) if n > 0}
    if len(present) != 1 or any(len(c) != len(counts[0]) for c in counts):
        return None
    return present.pop()


@register_check(
    id="samples-repeat",
    reasons=(9, 3),
    severity="warning",
    # Copies of one sample side by side agree across the batch as a token stream laid out
    # along it does.
    explains=frozenset({"nothing-generalizes", "sequence-across-batch"}),
)
def samples_repeat(ctx: CheckContext) -> None:
    """Batches hold the same few samples several times over.

    Why it matters:
        A dataset of 10 000 rows that holds 40 distinct samples is a dataset of 40: the
        model memorises them and learns nothing else. It happens when a generator is
        re-seeded for every sample (``random.Random(seed)`` inside the loop), when an
        index is dropped in ``__getitem__`` or a list is built with ``[sample] * n``, or
        when a periodic signal is cut into windows of its own period.

    What is measured:
        One fingerprint per sample (a fixed random projection of its input) at each
        observed step, and the number of distinct ones within each batch. A batch draws
        each row of the data once (a DataLoader's sampler, a slice, a window), so copies
        within one batch are copies in the data; no pass over the data has to be known,
        and full-batch training is judged like any other. Where the loss's target has one
        row per sample, a sample is its input and its target: inputs that recur with
        different targets (a gridworld's states in a replay memory, each with the
        transitions made from it) are distinct rows of a small input space, not copies. A
        warning when at most
        ``distinct_sample_fraction`` of at least ``min_fingerprinted_samples`` samples are
        distinct within their batches. This is a count, not a statistical test; batches
        drawn with replacement (``x[torch.randint(n, (b,))]``) repeat samples by chance,
        and reach the threshold only when a batch is larger than the data it is drawn
        from, which then holds few samples indeed. Samples of fewer than
        ``min_sample_elements`` elements (an environment's state, a few categories) are
        left out, as a small input space recurs by nature, and so are one-hot samples
        (one 1 among zeros: a categorical state of as many values as elements), sequence-first
        inputs, where a fingerprint covers one position rather than one sample, and
        constant batches (all zeros: ``input-constant`` reports them). Only the
        model's first input is fingerprinted, so a model that takes another input of one
        row per sample (an image fed once per caption, beside the captions) is left out
        too; a 0/1 mask beside its sequence is no other input.

    How to fix:
        Make each sample depend on its index (and each generated sample on a generator
        created once, outside the loop); count distinct samples with ``len(set(...))``.

    Example:
        Before::

            text = "".join(sentence(random.Random(seed)) for _ in range(n))  # one sentence, n times

        After::

            rng = random.Random(seed)
            text = "".join(sentence(rng) for _ in range(n))
    """
    rec = ctx.recording
    t = ctx.thresholds
    if rec.input_batch_axis() != 0:
        ctx.skip("sequence-first inputs: a fingerprint covers one position, not one sample")
    steps = [s for s in rec.steps if len(s.sample_fingerprints) > 1 and not s.unrolled]
    if not steps:
        ctx.skip("no step fingerprinted the samples of its batch")
    # A constant batch (all zeros) is one sample many times over; input-constant says so.
    steps = [s for s in steps if not _constant(s, t.constant_input_std)]
    if not steps:
        ctx.skip("every input batch is constant (see input-constant)")
    shapes = [s.inputs.shape for s in steps if s.inputs is not None and s.inputs.shape]
    elements = math.prod(shapes[0][1:]) if shapes else 0
    if elements < t.min_sample_elements:
        ctx.skip(f"samples of {elements} elements: a small input space recurs by nature")
    if all(_one_hot_rows(s.inputs, elements) for s in steps):
        ctx.skip(
            f"every sample is one-hot over its {elements} elements (a categorical state): an "
            f"input space of {elements} values recurs by nature"
        )
    other = _other_per_sample_input(ctx)
    if other:
        # An image fed once per caption (``images.repeat_interleave(5)`` beside five
        # captions) repeats the first input, not the sample: only the first is fingerprinted.
        ctx.skip(f"the model takes another input of one row per sample ({other})")
    fed = [sum(math.isfinite(v) for v in s.sample_fingerprints) for s in steps]
    samples = sum(fed)
    if samples < t.min_fingerprinted_samples:
        ctx.skip(f"{samples} samples were fingerprinted, too few to count")
    paired = all(len(s.target_fingerprints) == len(s.sample_fingerprints) for s in steps)
    kinds = [
        distinct_rows(s.sample_fingerprints, s.target_fingerprints)
        if paired
        else len(distinct_fingerprints(s.sample_fingerprints))
        for s in steps
    ]
    distinct = sum(kinds)
    share = distinct / samples
    ctx.note(
        f"{distinct} distinct samples within their batches, among {samples} in {len(steps)} steps"
        + (" (a sample: its input and its target)" if paired else " (by their inputs)")
    )
    if share > t.distinct_sample_fraction:
        return
    worst = min(range(len(steps)), key=kinds.__getitem__)
    ctx.finding(
        title="Batches hold the same few samples several times over",
        message=(
            f"Over {len(steps)} steps, the batches fed {samples} samples, of which {distinct} are "
            f"distinct within their own batch ({share:.0%}); at step {steps[worst].step}, "
            f"{kinds[worst]} of {fed[worst]}. A batch draws each row once, so the data's rows "
            "are copies of a few samples."
        ),
        fix=(
            "Check that each sample depends on its index and that a random generator is "
            "created once, not re-seeded for every sample."
        ),
        where=Where(step=steps[worst].step),
        evidence={"samples": samples, "distinct": distinct, "steps": len(steps), "share": share},
    )


def _one_hot_rows(x: TensorSummary | None, elements: int) -> bool:
    """Whether every sample of a measured input is one-hot: 0/1 values with exactly the
    share of zeros that one 1 per sample of ``elements`` leaves (a categorical variable)."""
    return (
        x is not None
        and x.measured
        and x.integral
        and x.min == 0.0
        and x.max == 1.0
        and math.isclose(x.zero_frac, 1.0 - 1.0 / elements, abs_tol=1e-6)
    )


def _constant(step: StepRecord, floor: float) -> bool:
    """Whether the step's float model input was measured constant (std below ``floor``)."""
    x = step.inputs
    return x is not None and x.measured and x.std < floor


def _other_per_sample_input(ctx: CheckContext) -> str:
    """The shape of a model input beside the first that holds one row per sample of it,
    other than a 0/1 mask (a padding mask repeats with its sequence); "" when there is
    none, or the inputs were not kept."""
    lab = ctx.services
    calls = lab.model_inputs(1) if lab is not None and lab.has_model else []
    if not calls:
        return ""
    found = tensors(calls[0])
    if len(found) < 2 or found[0].dim() == 0:
        return ""
    rows = found[0].shape[0]
    for t in found[1:]:
        if t.dim() == 0 or t.shape[0] != rows:
            continue
        values = t.coalesce().values() if t.layout == torch.sparse_coo else t
        if t.dtype == torch.bool or bool(((values == 0) | (values == 1)).all()):
            continue
        return "x".join(str(d) for d in t.shape)
    return ""


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


@register_check(
    id="batch-too-large", reasons=(11,), severity="warning", explains=frozenset({"give-it-time"})
)
def batch_too_large(ctx: CheckContext) -> None:
    """The batch is so large relative to the dataset that an epoch is a handful of steps.

    Why it matters:
        Few, large steps per epoch mean few updates for the same compute, and very large
        batches lose the gradient noise that helps escape sharp minima. Smaller batches
        often generalise better and train faster per epoch.

    What is measured:
        The training DataLoader's batch size against its dataset length: the number of
        optimizer steps per epoch.

    How to fix:
        Reduce the batch size (and scale the learning rate down with it).

    Example:
        Before::

            DataLoader(train_set, batch_size=len(train_set))

        After::

            DataLoader(train_set, batch_size=64, shuffle=True)
    """
    loader = training_loader(ctx.recording)
    if loader is None or not loader.dataset_len or not loader.batch_size:
        ctx.skip("no DataLoader with a batch size over a sized dataset fed the steps")
    n, b = loader.dataset_len, loader.batch_size
    steps = n // b if loader.drop_last else -(-n // b)
    ctx.note(f"batch size {b} over {n} examples: {steps} step(s) per epoch")
    if steps >= ctx.thresholds.min_steps_per_epoch or n < 256:
        return
    ctx.finding(
        title="Only a handful of steps per epoch",
        message=f"A batch size of {b} over {n} examples gives {steps} optimizer step(s) per epoch.",
        fix="Use a smaller batch (e.g. 32-256) and scale the learning rate accordingly.",
        where=Where(),
        evidence={"batch_size": b, "dataset_len": n, "steps_per_epoch": steps},
    )
