"""Data sanity (reasons 1, 3, 37): is the model input a plausible, changing, finite batch?

Each check reads the per-step summary of the model input (the first tensor passed to
the model's forward) that the training probe recorded: moments, range, share of
zeros, integrality and an order-sensitive fingerprint. Integer inputs other than
``uint8`` (token ids, indices) carry no statistics and are left alone.

The helpers at the top (which steps have input statistics, which module first
consumes the input) are shared with :mod:`nndoctor.checks.preprocessing.normalization`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nndoctor.checks import causes
from nndoctor.checks.data.dataset import training_loader
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.layers import CONV, EMBEDDING
from nndoctor.report.model import Where

if TYPE_CHECKING:
    from collections.abc import Iterator

    from nndoctor.probes.recording import Recording, StepRecord, TensorSummary

# Image layouts: grayscale, RGB, RGBA. An axis of one of these sizes is a colour axis.
IMAGE_CHANNEL_COUNTS = (1, 3, 4)


# -- shared helpers -------------------------------------------------------------------


def has_stats(summary: TensorSummary | None) -> bool:
    """True when the probe recorded statistics for this input (float or uint8 tensors)."""
    return summary is not None and summary.measured


def input_steps(recording: Recording) -> list[StepRecord]:
    """The observed steps whose model input carries statistics."""
    return [s for s in recording.steps if has_stats(s.inputs)]


def leaf_order(recording: Recording) -> list[str]:
    """Module names in the order their forward completed at the first recorded step
    (falling back to definition order), leaves first: the first one consumed the input."""
    for s in recording.steps:
        if s.activations:
            return [n for n in s.activations if n]
    return [n for n in recording.module_types if n]


def _leaves_in_order(recording: Recording) -> Iterator[str]:
    """The modules without children, in the order they ran (types known)."""
    children = {n.rsplit(".", 1)[0] for n in recording.module_types if "." in n}
    return (
        name
        for name in leaf_order(recording)
        if name in recording.module_types and name not in children
    )


def first_leaf(recording: Recording) -> str | None:
    """The first module that ran on the input, when the module types are known."""
    return next(_leaves_in_order(recording), None)


def first_feature_leaf(recording: Recording) -> str | None:
    """The first module that ran on the input's features: the first leaf, lookup tables
    aside (an embedding reads ids, so a tabular model's continuous columns meet the first
    layer after its embeddings, often a normalisation over both)."""
    return next(
        (n for n in _leaves_in_order(recording) if not recording.is_kind(n, EMBEDDING)), None
    )


def first_conv(recording: Recording) -> tuple[str, int] | None:
    """(name, in_channels) of the first convolution to run, from its weight shape.

    A convolution's weight is [out, in / groups, *kernel]; a first layer is almost
    never grouped, so ``weight.shape[1]`` is its ``in_channels``.
    """
    for name in leaf_order(recording):
        if recording.is_kind(name, CONV):
            shape = recording.param_shapes.get(f"{name}.weight")
            if shape is not None and len(shape) >= 3:
                return name, int(shape[1])
    return None


def has_embedding(recording: Recording) -> bool:
    return bool(recording.modules_of_kind(EMBEDDING))


def _fmt(x: float) -> str:
    return f"{x:.4g}"


# -- checks ---------------------------------------------------------------------------


@register_check(
    id="input-not-finite", reasons=(1, 37), severity="error", explains=causes.ALL_SYMPTOMS
)
def input_not_finite(ctx: CheckContext) -> None:
    """The model input contains NaN or infinite values.

    Why it matters:
        A single NaN or inf in a batch turns the loss, every gradient and, after the
        optimizer step, every weight into NaN. Training is over from that step on,
        and the cause is in the data pipeline, not in the model.

    What is measured:
        The mean, std, min and max of the model input at every observed step; any of
        them non-finite means the batch held a NaN or an inf. Reported: the first such
        step and how many steps were affected.

    How to fix:
        Find the samples with ``torch.isfinite(x).all(dim=...)`` and repair them at the
        source: missing values in a table (impute them), a division by a zero std
        during normalisation (add an epsilon), ``log`` of zero in a feature transform.
        Assert ``torch.isfinite(x).all()`` in the Dataset while debugging.

    Example:
        Before::

            x = (x - x.mean(0)) / x.std(0)          # a constant column: 0 / 0 = NaN

        After::

            x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    """
    steps = input_steps(ctx.recording)
    if not steps:
        ctx.skip("no step recorded statistics of a float model input")
    bad = [s for s in steps if s.inputs is not None and not s.inputs.finite]
    ctx.note(f"{len(steps)} input batches checked, {len(bad)} non-finite")
    if not bad:
        return
    first = bad[0]
    assert first.inputs is not None
    ctx.finding(
        title="The model input contains NaN or inf",
        message=(
            f"{len(bad)} of {len(steps)} observed input batches held non-finite values, "
            f"first at step {first.step} (mean {_fmt(first.inputs.mean)}, "
            f"min {_fmt(first.inputs.min)}, max {_fmt(first.inputs.max)}); the loss and "
            "every gradient computed from such a batch are non-finite too."
        ),
        fix=(
            "Locate the bad samples with torch.isfinite(x) and repair them where the data is "
            "made: impute missing values, add an epsilon to divisions (x.std() + 1e-8), "
            "clamp before log; assert torch.isfinite(x).all() in the Dataset while debugging."
        ),
        where=Where(step=first.step),
        evidence={
            "nonfinite_steps": len(bad),
            "steps": len(steps),
            "first_step": first.step,
            "mean": first.inputs.mean,
            "min": first.inputs.min,
            "max": first.inputs.max,
        },
    )


@register_check(id="input-constant", reasons=(1, 3), severity="error", explains=causes.ALL_SYMPTOMS)
def input_constant(ctx: CheckContext) -> None:
    """Input batches are all zeros or one constant value.

    Why it matters:
        A batch in which every element has the same value carries no information:
        the model can only learn the average target. It usually means the loader
        returns a zero-filled buffer, a mask replaced the image, an image failed to
        decode into a black tensor, or a normalisation divided everything away.

    What is measured:
        The std of every observed input batch (over all its elements); a batch whose
        std is below ``constant_input_std`` is constant, and all-zero when its share of
        zeros is one. Severity is error when every batch is constant, warning when only
        some are.

    How to fix:
        Look at one batch (``x.unique()``, plot an image) and follow it back through
        the Dataset: reading the file, decoding, the transforms, the collate function.

    Example:
        Before::

            img = torch.zeros(3, 32, 32)
            img.copy_(load(path)) if path.exists() else None   # a wrong path: zeros

        After::

            img = load(path)            # fail loudly on a missing file
    """
    t = ctx.thresholds
    steps = [
        s
        for s in input_steps(ctx.recording)
        if s.inputs is not None and s.inputs.finite and _numel(s.inputs.shape) >= 2
    ]
    if not steps:
        ctx.skip(
            "no step recorded finite statistics of a float model input with two or more values"
        )
    constant = [s for s in steps if s.inputs is not None and s.inputs.std < t.constant_input_std]
    ctx.note(f"{len(steps)} input batches checked, {len(constant)} constant")
    if not constant:
        return
    first = constant[0]
    assert first.inputs is not None
    zeros = [s for s in constant if s.inputs is not None and s.inputs.zero_frac >= 1.0]
    kind = (
        "all zeros"
        if len(zeros) == len(constant)
        else f"constant (value {_fmt(first.inputs.mean)})"
    )
    every = len(constant) == len(steps)
    ctx.finding(
        title="Input batches are all zeros"
        if kind == "all zeros"
        else "Input batches are constant",
        message=(
            f"{len(constant)} of {len(steps)} observed input batches were {kind}: their std "
            f"(at step {first.step}: {_fmt(first.inputs.std)}) is below "
            f"{_fmt(t.constant_input_std)}. "
            + (
                "The model never sees a varying input and can only learn the mean target."
                if every
                else "Those steps teach the model nothing about its input."
            )
        ),
        fix=(
            "Inspect a batch (x.unique(), plot an image) and follow it back through the Dataset: "
            "file reading and decoding, transforms, masks, the collate function; make a failed "
            "load raise instead of returning a zero tensor."
        ),
        severity="error" if every else "warning",
        where=Where(step=first.step),
        evidence={
            "constant_steps": len(constant),
            "all_zero_steps": len(zeros),
            "steps": len(steps),
            "first_step": first.step,
            "std": first.inputs.std,
            "value": first.inputs.mean,
        },
    )


@register_check(id="batch-repeated", reasons=(1, 3), severity="error", explains=causes.ALL_SYMPTOMS)
def batch_repeated(ctx: CheckContext) -> None:
    """The same batch is fed step after step.

    Why it matters:
        A loader that yields the same samples at every step trains the model on one
        batch: the loss falls quickly (it memorises the batch) while nothing is learned
        about the data set. The usual cause is ``next(iter(loader))`` inside the loop,
        which builds a new iterator and takes its first batch each time.

    What is measured:
        An order-sensitive fingerprint of the model input (a position-weighted sum over
        up to 65 536 sampled elements) at each observed step; the share of steps whose
        input is identical to the previous step's (and whose further tensor arguments,
        fingerprinted alike, are too: a graph's whole feature matrix comes with new node
        ids at each step) is compared with ``repeated_batch_fraction``. Full-batch
        training is no repeat: a script feeding the same whole tensor object at every
        step without a DataLoader (not a slice of a larger one, nor rows indexed anew each
        step; a slice cut once from an array whose other part the script evaluates on is
        the training part of a split, fed whole); one converting or copying an array it
        holds anew at every step (``torch.from_numpy(x_train)`` or ``x.to(device)`` in the
        loop) where that array is all of the batch and no larger array it holds contains
        the batch's samples (the model input itself is no such array: a batch drawn anew
        after a seed reset is held as nothing else); or a DataLoader whose one batch is its
        whole dataset (its batch size at least its length). In a script without a
        DataLoader a repeat is reported only where the source had more to give: an array
        the script holds with more rows than the batch contains the batch's samples (the
        same first rows cut at every step), the batch is a view of part of an array whose
        other rows the script does not evaluate on, or the script re-seeds its random
        generator before the draws (``torch.manual_seed`` inside the loop); an input
        computed anew from the whole data at every step (``model(x / s)``) matches no held
        array and shows no more data. Steps that call the model more often than they
        evaluate the loss (a recurrence or an environment rollout unrolled in the script)
        are left out: their first call is no batch.

    How to fix:
        Create the iterator once per epoch and draw from it, or loop over the loader
        directly. If you meant to overfit one batch as a test, this finding is expected.

    Example:
        Before::

            for step in range(1000):
                x, y = next(iter(loader))   # a new iterator each step, same first batch

        After::

            for epoch in range(epochs):
                for x, y in loader:
                    ...
    """
    steps = [s for s in input_steps(ctx.recording) if s.inputs is not None and s.inputs.finite]
    if len(steps) < 2:
        ctx.skip("fewer than two steps with a finite float model input were observed")
    if all(s.unrolled for s in steps):
        # A rollout starts from the same state, a name from the same zero hidden state: the
        # first call of a step is no batch.
        ctx.skip(
            "the model is called several times for each loss evaluation (a recurrence or a "
            "rollout unrolled in the script): the first call's input is not the step's batch"
        )
    steps = [s for s in steps if not s.unrolled]
    if len(steps) < 2:
        ctx.skip("fewer than two steps call the model once per loss evaluation")
    t = ctx.thresholds
    # A constant batch equals any other constant batch; input-constant reports those.
    pairs = [
        (a, b)
        for a, b in zip(steps, steps[1:], strict=False)
        if b.inputs is not None and b.inputs.std >= t.constant_input_std
    ]
    if not pairs:
        ctx.skip("every input batch is constant (see input-constant)")
    repeats = [
        b
        for a, b in pairs
        if b.inputs is not None and b.inputs.same_as(a.inputs) and _same_others(a, b)
    ]
    share = len(repeats) / len(pairs)
    ctx.note(f"{len(repeats)} of {len(pairs)} steps repeated the previous batch")
    if share < t.repeated_batch_fraction:
        return
    # Judged over the repeats, not on the first alone: a forward with gradients on outside
    # the step (an evaluation of a model that needs input gradients) stands in for one step.
    verdicts = [_full_batch(ctx.recording, step) for step in repeats]
    whole = max(verdicts, key=verdicts.count)
    if whole and 2 * verdicts.count(whole) > len(verdicts):
        # Full-batch training (LBFGS, a small regression fit on all its data at once) feeds
        # the same data at every step by design; only a source with more to give repeats.
        ctx.note(ctx.detail + f": full-batch training ({whole})")
        return
    more = _more_to_give(ctx.recording, repeats)
    if not more:
        ctx.note(
            ctx.detail + ": full-batch training (no DataLoader, and nothing shows the script had "
            "other samples to give: no larger array it holds contains the batch's samples, and "
            "it does not re-seed its random draws before each batch; an input computed anew "
            "from the whole data at every step, x / s or x.unsqueeze(-1), is no array it holds)"
        )
        return
    ctx.finding(
        title="The same batch is fed at every step",
        message=(
            f"{len(repeats)} of {len(pairs)} consecutive steps ({share:.0%}) received an input "
            f"batch identical to the previous step's, first at step {repeats[0].step}; the model "
            f"is trained on one batch over and over, not on the data set, though {more}."
        ),
        fix=(
            "Create the DataLoader iterator once per epoch (for x, y in loader: ...) instead of "
            "calling next(iter(loader)) at every step, and check that the Dataset's __getitem__ "
            "uses its index."
        ),
        where=Where(step=repeats[0].step),
        evidence={
            "repeated_steps": len(repeats),
            "steps": len(pairs) + 1,
            "share": share,
            "first_step": repeats[0].step,
            "more_to_give": more,
        },
    )


def _more_to_give(rec: Recording, repeats: list[StepRecord]) -> str:
    """Why the source of the repeated batches had other samples to give, or "" where nothing
    shows it did: a DataLoader or data handed to the API (a source with its own length), an
    array the script holds with more rows than the batch that contains its samples (the
    first rows cut at every step), a batch cut as a view from an array whose other rows
    are not a held-out split, or a seed reset before most of the repeated draws."""
    if rec.data_source != "script" or training_loader(rec) is not None:
        return "it comes from a data source with more batches"
    batch = rec.held_source_batch
    larger = [n for n in rec.held_source_rows or [] if batch is not None and n > batch]
    if larger:
        return f"the script holds an array of {max(larger)} rows that contains the batch's samples"
    cut = [s for s in repeats if s.input_storage_share < 1.0 and not _rest_evaluated(rec, s)]
    if 2 * len(cut) > len(repeats):
        return (
            f"the batch is {cut[0].input_storage_share:.0%} of the rows of the array it is cut "
            "from, and the script evaluates on no other part of it"
        )
    reseeded = sum(s.reseeded for s in repeats)
    if 2 * reseeded > len(repeats):
        return (
            f"the script re-seeds its random generator before {reseeded} of the "
            f"{len(repeats)} repeated draws"
        )
    return ""


def _same_others(a: StepRecord, b: StepRecord) -> bool:
    """Whether two steps called the model with the same further tensor arguments (the node
    ids sampled beside a graph's whole feature matrix, a mask beside the tokens)."""
    if a.other_inputs is None or b.other_inputs is None:
        return a.other_inputs is b.other_inputs
    return len(a.other_inputs) == len(b.other_inputs) and all(
        math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
        for x, y in zip(a.other_inputs, b.other_inputs, strict=True)
    )


def _rest_evaluated(rec: Recording, step: StepRecord) -> bool:
    """Whether the rows of the training input's storage that it leaves out are all read by
    evaluation forwards: between them, the training slice and the evaluated ones take up
    every row of the array (whatever columns each leaves out)."""
    extent = step.input_storage
    if extent is None or extent.row <= 0:
        return False
    held_out = [
        e for e in rec.eval_input_storages if e.storage == extent.storage and not e.overlaps(extent)
    ]
    rows: set[int] = set()
    for e in [extent, *held_out]:
        rows.update(range(e.start // extent.row, -(-e.end // extent.row)))
    return bool(held_out) and len(rows) >= extent.total // extent.row


def _full_batch(rec: Recording, step: StepRecord) -> str:
    """Why a repeated batch is the whole data, or "" when the source had more to give: the
    same whole tensor fed at every step without a DataLoader, or a DataLoader whose batch is
    its whole dataset."""
    loader = training_loader(rec)
    rows = step.inputs.shape[0] if step.inputs is not None and step.inputs.shape else None
    if loader is None:
        # Full-batch training feeds the data tensor itself, the same object at every step,
        # or its training array converted or copied anew (torch.from_numpy(x_train) or
        # x.to(device) in the loop), an array no larger one holds. A batch rebuilt at each
        # step (indexed, sliced: x[perm[:64]], x[:64]) was drawn from more data, and drawing
        # the same rows every time is the bug.
        if rec.data_source != "script":
            return ""
        if rows is not None and rec.whole_array_rows == rows:
            return (
                f"the script feeds its whole array of {rows} rows at every step, converted or "
                "copied anew, no DataLoader"
            )
        if not step.input_same_object:
            return ""
        if step.input_storage_share >= 1.0:
            return "the script feeds the same whole tensor at every step, no DataLoader"
        # Cut once from a larger array whose other rows are all evaluated: one array split
        # into a training part, fed whole, and a held-out part.
        if _rest_evaluated(rec, step):
            return (
                "the script feeds the same tensor at every step, no DataLoader, cut from an array "
                "whose other part it evaluates on (a held-out split)"
            )
        return ""
    # A loader whose batches are smaller than its dataset yields no whole dataset: an input
    # of as many rows came from elsewhere (a graph's feature matrix beside the node ids).
    yields_all = loader.batch_size is None or loader.batch_size >= (loader.dataset_len or 0)
    if (
        loader.dataset_len is not None
        and rows is not None
        and rows >= loader.dataset_len
        and yields_all
    ):
        return f"each batch holds the DataLoader's whole dataset of {loader.dataset_len}"
    return ""


@register_check(
    id="input-uint8-range",
    reasons=(1,),
    severity="warning",
    explains=causes.SCALE_SYMPTOMS | causes.INSTABILITY_SYMPTOMS | causes.FIT_SYMPTOMS,
)
def input_uint8_range(ctx: CheckContext) -> None:
    """Inputs are raw 0..255 integers where 0..1 or standardised values are expected.

    Why it matters:
        Pixel values fed unscaled are ~100 times larger than the inputs that default
        initialisations are designed for: the first layer's activations and gradients
        are ~100 times too large, the learning rate that suits the rest of the net is
        far too high for the first layer, and training diverges or stalls.

    What is measured:
        Over every observed step: all input values integral, the minimum at least 0,
        the maximum above ``uint8_range_max`` and at most 255, for a ``uint8`` input or
        a float input shaped like images or signals (three or more axes) or like
        flattened images (at least ``uint8_flat_min_features`` features). Integer
        token ids fed to an ``nn.Embedding`` are not inputs of this kind and are skipped.

    How to fix:
        Convert to float and scale: ``x.float() / 255``, then standardise with the data
        set's per-channel mean and std (torchvision: ``ToTensor()`` then ``Normalize``).

    Example:
        Before::

            x = torch.from_numpy(images).float()                # 0..255

        After::

            x = torch.from_numpy(images).float() / 255.0
            x = (x - mean[:, None, None]) / std[:, None, None]
    """
    t = ctx.thresholds
    steps = [s for s in input_steps(ctx.recording) if s.inputs is not None and s.inputs.finite]
    if not steps:
        ctx.skip("no step recorded finite statistics of a float or uint8 model input")
    first = steps[0].inputs
    assert first is not None
    if first.dtype == "uint8" and has_embedding(ctx.recording):
        ctx.skip("uint8 input to a model with an nn.Embedding: token ids, not pixels")
    shape = first.shape
    image_like = (
        first.dtype == "uint8"
        or len(shape) >= 3
        or (len(shape) == 2 and shape[1] >= t.uint8_flat_min_features)
    )
    if not image_like:
        ctx.skip(f"input of shape {list(shape)}: neither uint8 nor shaped like images or signals")
    summaries = [s.inputs for s in steps if s.inputs is not None]
    lo = min(x.min for x in summaries)
    hi = max(x.max for x in summaries)
    integral = all(x.integral for x in summaries)
    ctx.note(f"input range {_fmt(lo)}..{_fmt(hi)} over {len(steps)} steps, integral: {integral}")
    if not (integral and lo >= 0 and t.uint8_range_max < hi <= 255):
        return
    mean = sum(x.mean for x in summaries) / len(summaries)
    ctx.finding(
        title="Inputs are raw 0..255 values",
        message=(
            f"Every observed input value is an integer in {_fmt(lo)}..{_fmt(hi)} (dtype "
            f"{first.dtype}, shape {list(shape)}, mean {_fmt(mean)}): these look like raw 8-bit "
            "pixels, about 100 times larger than the 0..1 or standardised inputs the model's "
            "initialisation expects."
        ),
        fix=(
            "Scale the input to 0..1 (x.float() / 255) and standardise it with the data set's "
            "per-channel mean and std (torchvision: ToTensor() then Normalize(mean, std))."
        ),
        where=Where(step=steps[0].step, module=first_leaf(ctx.recording)),
        evidence={"min": lo, "max": hi, "mean": mean, "dtype": first.dtype, "shape": list(shape)},
    )


@register_check(
    id="input-channels-last", reasons=(1,), severity="error", explains=causes.ALL_SYMPTOMS
)
def input_channels_last(ctx: CheckContext) -> None:
    """Images arrive channels-last (NHWC) at a conv net that reads axis 1 as channels.

    Why it matters:
        ``nn.Conv2d`` expects [N, C, H, W]. Fed [N, H, W, C] images, it takes the rows
        as channels and slides its kernel over width and colour: the net trains, but on
        a scrambled image, and a conv built with ``in_channels`` equal to the image
        height hides the mistake instead of raising a shape error.

    What is measured:
        A 4-D input whose last axis has an image channel count (1, 3 or 4) while axis 1
        is larger, fed to a model whose first convolution (the first to run, found from
        the module types and its weight shape) has ``in_channels`` equal to axis 1.

    How to fix:
        Permute the batch to channels-first, ``x.permute(0, 3, 1, 2)``, (or use
        torchvision's ``ToTensor()``, which does it) and build the first convolution
        with ``in_channels`` equal to the number of colour channels.

    Example:
        Before::

            conv = nn.Conv2d(32, 16, 3)               # 32 = image height
            out = conv(images)                        # images: [N, 32, 32, 3]

        After::

            conv = nn.Conv2d(3, 16, 3)
            out = conv(images.permute(0, 3, 1, 2))    # [N, 3, 32, 32]
    """
    steps = [s for s in ctx.recording.steps if s.inputs is not None]
    if not steps:
        ctx.skip("no model input was recorded")
    first = steps[0].inputs
    assert first is not None
    shape = first.shape
    if len(shape) != 4:
        ctx.skip(f"input of shape {list(shape)} is not a 4-D image batch")
    conv = first_conv(ctx.recording)
    if conv is None:
        ctx.skip("the model has no convolution with a known weight shape")
    name, in_channels = conv
    ctx.note(f"input {list(shape)}, first convolution {name} with in_channels={in_channels}")
    last, axis1 = shape[-1], shape[1]
    if not (
        last in IMAGE_CHANNEL_COUNTS and axis1 > max(IMAGE_CHANNEL_COUNTS) and in_channels == axis1
    ):
        return
    ctx.finding(
        title="Images look channels-last (NHWC) for a conv net",
        message=(
            f"The input has shape {list(shape)}: its last axis ({last}) is an image channel "
            f"count while axis 1 ({axis1}) is not, and the first convolution {name} reads "
            f"in_channels={in_channels} from axis 1. The net treats image rows as channels "
            "and convolves over width and colour."
        ),
        fix=(
            f"Permute the batch to [N, C, H, W] with x.permute(0, 3, 1, 2) (torchvision's "
            f"ToTensor() does this) and build {name} with in_channels={last}."
        ),
        where=Where(step=steps[0].step, module=name),
        evidence={"shape": list(shape), "in_channels": in_channels, "channel_axis_size": last},
    )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
