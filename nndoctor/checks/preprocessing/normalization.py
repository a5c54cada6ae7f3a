"""Normalisation statistics (reason 12): are the model inputs standardised?

Measured on the per-channel statistics the training probe records for the model
input (mean and std along axis 1, per step), pooled over the observed steps:

- a 2-D input [N, F] is judged per feature;
- an input of three or more axes is judged per channel when the first convolution
  reads its axis 1 as channels ([N, C, H, W], [N, C, L]), else as a whole (a sequence
  [N, T, F] has time on axis 1, which says nothing about feature scales).

What stays silent, by design: standardised data; images in [0, 1] (mean ≈ 0.5, std
≈ 0.2–0.3 train fine); binary and one-hot features (a 0/1 feature has variance
p(1 - p) whatever its rarity); sparse features, exactly constant within some batches
(the rarely-lit border pixels of a flattened image: their small std measures how
rare they are, not their scale); integer inputs such as token ids (no statistics are
recorded for them); and models whose first layer normalises its own input (BatchNorm,
LayerNorm, ...). A model that standardises inside ``forward`` before any module cannot
be told apart from one that does not: ignore the check for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from nndoctor.checks import causes
from nndoctor.checks.data.sanity import (
    first_conv,
    first_feature_leaf,
    first_leaf,
    has_embedding,
    has_stats,
    input_steps,
)
from nndoctor.checks.lab import ExperimentCrashed, Lab, TrainResult
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.layers import NORM
from nndoctor.probes.training import later_measurements
from nndoctor.report.model import HARMLESS, Severity, Where
from nndoctor.subject import Subject
from nndoctor.trees import first_tensor, map_tensors

if TYPE_CHECKING:
    from nndoctor.checks.thresholds import Thresholds
    from nndoctor.probes.recording import StepRecord, TensorSummary

# How many offending features a message names before it says "and N more".
_SHOWN = 5


@dataclass
class FeatureStats:
    """One feature (or channel) of the input, pooled over the observed steps."""

    index: int | None  # None: the input as a whole
    mean: float
    std: float
    steady: bool  # its std is above the constant threshold at every step (not sparse)
    binary: bool  # every step's variance equals mean (1 - mean): a 0/1 feature

    def label(self, unit: str) -> str:
        return "the input" if self.index is None else f"{unit} {self.index}"


@dataclass
class InputStats:
    unit: str  # "feature", "channel" or "input"
    features: list[FeatureStats]
    steps: list[StepRecord]
    module: str | None


def _pool(rows: list[tuple[float, float, float]], t: Thresholds) -> tuple[float, float, bool, bool]:
    """Pool (weight, mean, std) rows: the mean and std of all elements together."""
    total = sum(w for w, _, _ in rows)
    mean = sum(w * m for w, m, _ in rows) / total
    second = sum(w * (s * s + m * m) for w, m, s in rows) / total
    std = math.sqrt(max(second - mean * mean, 0.0))
    steady = all(s > t.constant_input_std for _, _, s in rows)
    binary = all(
        0.0 <= m <= 1.0
        and abs(s * s - m * (1 - m)) <= t.binary_feature_tolerance * max(m * (1 - m), 1e-12)
        for _, m, s in rows
    )
    return mean, std, steady, binary


def input_stats(ctx: CheckContext) -> InputStats:
    """The input's features pooled over steps, or a skip saying why they cannot be judged."""
    rec, t = ctx.recording, ctx.thresholds
    steps = input_steps(rec) or [s for s in rec.steps if has_stats(s.columns)]
    if not steps:
        ctx.skip("no step recorded statistics of a float or uint8 model input")
    if not all(_measured(s).finite for s in steps):
        ctx.skip("the input holds non-finite values (see input-not-finite)")
    first = _measured(steps[0])
    if first.dtype == "uint8" and has_embedding(rec):
        ctx.skip("uint8 input to a model with an nn.Embedding: token ids, not features")
    leaf = first_leaf(rec)
    reader = first_feature_leaf(rec)
    if reader is not None and rec.is_kind(reader, NORM):
        ctx.skip(
            f"the first layer{' after the embeddings' if reader != leaf else ''}, {reader} "
            f"({rec.module_types[reader]}), normalises the input itself"
        )
    shape = first.shape
    conv = first_conv(rec)
    if len(shape) == 2:
        unit = "feature"
    elif len(shape) >= 3 and conv is not None and conv[1] == shape[1]:
        unit = "channel"
    else:
        unit = "input"
    width = len(first.channel_mean or []) if unit != "input" else 0
    per_axis = [
        s
        for s in steps
        if _measured(s).channel_mean is not None
        and _measured(s).channel_std is not None
        and len(_measured(s).channel_mean or []) == width
    ]
    module = conv[0] if unit == "channel" and conv is not None else leaf
    if unit == "input" or width == 0 or len(per_axis) < len(steps):
        # The whole input as one feature (also when axis 1 was too wide to summarise).
        rows = [(_count(s), _measured(s).mean, _measured(s).std) for s in steps]
        return InputStats("input", [FeatureStats(None, *_pool(rows, t))], steps, module)
    features = []
    for i in range(width):
        rows = [
            (_count(s), _measured(s).channel_mean[i], _measured(s).channel_std[i])  # type: ignore[index]
            for s in per_axis
        ]
        features.append(FeatureStats(i, *_pool(rows, t)))
    return InputStats(unit, features, per_axis, module)


def _measured(step: StepRecord) -> TensorSummary:
    """The model input whose statistics are judged: the first, else (ids first) the
    continuous columns after it."""
    summary = step.inputs if has_stats(step.inputs) else step.columns
    assert summary is not None
    return summary


def _count(step: StepRecord) -> float:
    shape = _measured(step).shape
    return (
        float(math.prod(shape) / shape[1])
        if len(shape) >= 2 and shape[1]
        else float(math.prod(shape))
    )


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _problem(f: FeatureStats, t: Thresholds) -> str | None:
    """What is wrong with one feature's scale, or None."""
    if f.binary:
        return None
    if f.std <= t.constant_input_std:
        return f"constant at {_fmt(f.mean)}" if abs(f.mean) > t.feature_mean_abs_max else None
    if f.std > t.feature_std_max:
        return f"std {_fmt(f.std)} (mean {_fmt(f.mean)})"
    if abs(f.mean) > t.feature_mean_abs_max * max(f.std, 1.0):
        return f"mean {_fmt(f.mean)} with std {_fmt(f.std)}"
    if f.steady and f.std < t.feature_std_min:
        return f"std {_fmt(f.std)} (mean {_fmt(f.mean)})"
    return None


@register_check(
    id="input-not-standardized",
    reasons=(12,),
    severity="warning",
    # An experiment since its verdict rests on a twin of copies trained alike: the budget
    # may skip it (and says so), never turn it into the observation alone.
    kind="experiment",
    quick=True,
    priority=14,
    explains=causes.SCALE_SYMPTOMS | causes.INSTABILITY_SYMPTOMS | causes.FIT_SYMPTOMS,
)
def input_not_standardized(ctx: CheckContext) -> None:
    """Input features or channels are far from standardised (mean 0, std 1).

    Why it matters:
        Default initialisations and learning rates assume inputs of order one. A
        feature with std 1000 (money, pixel values 0..255, counts) gives first-layer
        pre-activations and weight gradients ~1000 times too large, so the learning rate
        that suits the rest of the net diverges there; a feature with a large offset
        (a year, 2020 ± 3) turns into a near-constant bias; a feature with std 0.001 is
        learned ~1000 times more slowly.

    What is measured:
        Each feature's (2-D input) or channel's (input of a conv net) mean and std over
        all observed steps. A feature is reported when its std exceeds
        ``feature_std_max``, its |mean| exceeds ``feature_mean_abs_max`` times
        max(std, 1), or its std is below ``feature_std_min`` while it varies in every
        batch. Binary/one-hot features, sparse features (exactly constant in some
        batches), integer inputs and models whose first layer (after any embeddings,
        which read ids: a tabular model's BatchNorm over its continuous columns and
        embedded categories) is a normalisation layer are left out; images in [0, 1]
        pass. A scale far from one is a problem only if it holds training back, so a
        twin experiment decides the severity: two copies from the initial weights train
        alike (the user's optimiser, regularisation off,
        ``data_experiment_steps`` steps on a few captured batches), one on the inputs as
        they are, one on the same inputs standardised with the observed statistics. A
        warning when the first starts ``standardisation_start_ratio`` (1.5) times above
        the second (the scale throws the initialised model off, as an initial loss above
        chance does), or does not fit its batches and ends ``standardisation_gain`` (10)
        times above it (or fails), or falls a ``standardisation_progress``-th (a quarter)
        as far as the second where that one's loss fell clearly (losses far from zero
        after the twin's steps, which no final-loss ratio reaches); a note
        otherwise (polynomial features of one variable, a row-normalised bag of words: a
        scale the data has, which the model starts and trains with). Inputs whose every
        non-zero row sums to one (non-negative) or has unit length, within
        ``row_normalised_rtol``, were normalised per sample by design (a bag of words or a
        graph's node features divided by their sum, TF-IDF rows): a note even where the
        twin on standardised features trains faster. Without a
        replayable subject (a custom loss) the twin cannot run and the observation alone
        is a note: a scale far from one is common in healthy training, and only the twin
        shows that it holds this one back.

    How to fix:
        Standardise with statistics computed on the training set only:
        ``x = (x - mean) / std`` per feature (``sklearn.preprocessing.StandardScaler``)
        or per channel for images (``torchvision.transforms.Normalize(mean, std)``).

    Example:
        Before::

            x = torch.tensor(table.values, dtype=torch.float32)      # prices, years

        After::

            mean, std = x_train.mean(0), x_train.std(0) + 1e-8
            x = (x - mean) / std
    """
    t = ctx.thresholds
    stats = input_stats(ctx)
    bad = [(f, p) for f in stats.features if (p := _problem(f, t)) is not None]
    skipped = sum(f.binary for f in stats.features)
    ctx.note(
        f"{len(stats.features)} {stats.unit}(s) over {len(stats.steps)} steps, "
        f"{len(bad)} far from standardised, {skipped} binary left out"
    )
    if not bad:
        return
    worst_f, _ = max(bad, key=lambda fp: _badness(fp[0]))
    listed = "; ".join(f"{f.label(stats.unit)}: {p}" for f, p in bad[:_SHOWN])
    more = f"; and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    of = "" if stats.unit == "input" else f"{len(bad)} of {len(stats.features)} {stats.unit}s: "
    twin = standardised_twin(ctx.services, stats, t)
    harmless = twin is not None and not twin.helps
    # Rows normalised per sample (a bag of words or a graph's node features divided by
    # their sum, TF-IDF rows of unit length) are a normalisation the data was given by
    # design: a faster twin on standardised features is advice there, not a fault.
    per_sample = rows_normalised(ctx.services, t) if twin is not None and twin.helps else None
    # Scales far from one are common in healthy training (pixels in [0, 1], features a
    # model copes with): without the twin nothing shows that this one holds training back,
    # so the observation alone is advice, not a warning.
    untested = twin is None
    ctx.finding(
        title=(
            "Inputs are not standardised, which does not hold training back"
            if harmless
            else "Inputs are not standardised (whether it holds training back was not tested)"
            if untested
            else "Inputs are normalised per sample, not standardised per feature"
            if per_sample
            else "Inputs are not standardised"
        ),
        severity=Severity.INFO if harmless or untested or per_sample else None,
        aspect=HARMLESS if harmless else "",
        message=(
            f"Over {len(stats.steps)} observed steps the model input is far from mean 0, std 1 "
            f"({of}{listed}{more}). Layers initialised for inputs of order one see "
            "pre-activations and gradients scaled by the same factors."
            + (
                f" {twin.describe()}"
                if twin is not None
                else " No twin experiment could run (the loss or the batches cannot be "
                "replayed on copies), so this is advice: standardise and compare."
            )
            + (
                f" But every sample's row {per_sample}: the inputs are normalised per sample "
                "by design (a bag of words or a graph's node features divided by their sum), "
                "so this is advice."
                if per_sample
                else ""
            )
        ),
        fix=(
            "Standardise the inputs with training-set statistics: x = (x - mean) / std per "
            + (
                "channel (torchvision.transforms.Normalize(mean, std))."
                if stats.unit == "channel"
                else "feature (sklearn's StandardScaler, or mean/std over the training tensor)."
            )
        ),
        where=Where(step=stats.steps[0].step, module=stats.module),
        evidence={
            "unit": stats.unit,
            "features": len(stats.features),
            "flagged": len(bad),
            "worst": worst_f.index,
            "worst_mean": worst_f.mean,
            "worst_std": worst_f.std,
            "flagged_stats": [
                {"index": f.index, "mean": f.mean, "std": f.std} for f, _ in bad[:10]
            ],
            **(twin.evidence() if twin is not None else {}),
        },
    )


# Captured batches the twins train on, cycled.
TWIN_BATCHES = 4


def rows_normalised(lab: Lab | None, t: Thresholds) -> str | None:
    """How every sample (row) of the model's first input, a 2-D float tensor, is
    normalised, where all non-zero rows agree: "sums to one" (non-negative values), "has
    unit length"; None otherwise or where the input was not kept."""
    if lab is None or not lab.has_model:
        return None
    calls = lab.model_inputs(1)
    x = first_tensor(calls[0]) if calls else None
    if x is None or not x.is_floating_point() or x.dim() != 2:
        return None
    x = x.detach().double()
    rows = x[x.abs().sum(1) > 0]  # rows of zeros (a node without features) have no scale
    if rows.shape[0] < 2:
        return None
    one = torch.ones(rows.shape[0], dtype=rows.dtype, device=rows.device)
    if bool((rows >= 0).all()) and torch.allclose(rows.sum(1), one, rtol=t.row_normalised_rtol):
        return "sums to one"
    if torch.allclose(rows.norm(dim=1), one, rtol=t.row_normalised_rtol):
        return "has unit length"
    return None


@dataclass
class StandardisationTwin:
    """Two copies from the initial weights trained alike, one on the inputs as they are and
    one on the same inputs standardised with their observed statistics."""

    raw: TrainResult
    standardised: TrainResult
    steps: int
    start_ratio: float
    gain_needed: float
    raw_fits: bool
    progress_needed: float = math.inf
    learned_fraction: float = 0.0

    @property
    def raw_broken(self) -> bool:
        return bool(self.raw.error or self.raw.diverged or not math.isfinite(self.raw.final))

    @property
    def gain(self) -> float:
        """How many times lower the standardised copy's final loss is than the raw one's."""
        if self.raw_broken:
            return math.inf
        low = self.standardised.final
        return self.raw.final / low if low > 0 else math.inf

    @property
    def starts_apart(self) -> bool:
        """The initialised model's loss on the inputs as they are is ``start_ratio`` times
        its loss on them standardised: the scale puts the start far from where the
        initialisation meant it to be (logits or outputs scaled by the inputs' factor)."""
        raw, low = self.raw.initial, self.standardised.initial
        return math.isfinite(raw) and low > 0 and raw >= self.start_ratio * low

    @property
    def trains_apart(self) -> bool:
        """The copy on the inputs as they are does not fit its batches, and it failed
        outright or ends ``gain_needed`` times above the standardised one."""
        twin_ok = not (self.standardised.error or self.standardised.diverged)
        return not self.raw_fits and twin_ok and (self.gain >= self.gain_needed or self.outpaced)

    @property
    def outpaced(self) -> bool:
        """The standardised copy's loss fell clearly (``learned_fraction`` of its start) and
        ``progress_needed`` times as far as the raw copy's: on losses that stay far from
        zero in the twin's steps, the raw copy needs that many times the steps."""
        std, raw = self.standardised, self.raw
        fell = std.initial - std.final
        if self.raw_broken or not fell > self.learned_fraction * std.initial:
            return False
        return raw.initial - raw.final <= fell / self.progress_needed

    @property
    def helps(self) -> bool:
        return self.starts_apart or self.trains_apart

    def describe(self) -> str:
        raw = (
            "failed (non-finite loss)"
            if self.raw_broken
            else f"{self.raw.initial:.4g} → {self.raw.final:.4g}"
        )
        verdict = (
            "standardising changes where training starts"
            if self.starts_apart
            else "standardising changes how it trains"
            if self.trains_apart
            else "the inputs' scale is not what holds training back, so this is a note"
        )
        return (
            f"Trained alike for {self.steps} steps from the initial weights, a copy on these "
            f"inputs went {raw}, a copy on the same inputs standardised with their observed "
            f"statistics {self.standardised.initial:.4g} → {self.standardised.final:.4g}: "
            f"{verdict} (a warning when the first starts {self.start_ratio:g}x above the "
            f"second, or without fitting ends {self.gain_needed:g}x above it or falls "
            f"{self.progress_needed:g}x less far)."
        )

    def evidence(self) -> dict[str, float | bool | int]:
        return {
            "twin_steps": self.steps,
            "raw_initial_loss": self.raw.initial,
            "standardised_initial_loss": self.standardised.initial,
            "raw_final_loss": self.raw.final,
            "standardised_final_loss": self.standardised.final,
            "standardising_helps": self.helps,
        }


def standardised_twin(
    lab: Lab | None, stats: InputStats, t: Thresholds
) -> StandardisationTwin | None:
    """The twin experiment, or None when it cannot run (no replayable subject, inputs that
    cannot be replaced, a copy that cannot take a step): the observation then stands alone."""
    if lab is None or not lab.available or lab.subject is None:
        return None
    subject = lab.subject
    batches = lab.small_batches(TWIN_BATCHES, t.experiment_batch_size)
    twins = [_standardised(subject, b, stats) for b in batches]
    if not batches or any(b is None for b in twins):
        return None
    steps = t.data_experiment_steps
    try:
        raw = lab.train(batches, steps, regularisation=False)
        standardised = lab.train(twins, steps, regularisation=False)
    except ExperimentCrashed:
        return None
    return StandardisationTwin(
        raw,
        standardised,
        steps,
        t.standardisation_start_ratio,
        t.standardisation_gain,
        lab.fits(raw, t),
        t.standardisation_progress,
        t.learned_fraction,
    )


def _standardised(subject: Subject, batch: Any, stats: InputStats) -> Any | None:
    """``batch`` with its model input (the one whose statistics were recorded: the first
    tensor, else the columns after ids) standardised per feature or channel; None when it
    cannot be replaced."""
    inputs = subject.inputs(batch)
    x = first_tensor(inputs)
    if x is not None and not (x.is_floating_point() or x.dtype == torch.uint8):
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        x = later_measurements(subject.model, args, {}, x)
    if x is None or x.dim() < 2 or not (x.is_floating_point() or x.dtype == torch.uint8):
        return None
    dtype = x.dtype if x.is_floating_point() else torch.float32
    mean = torch.tensor([f.mean for f in stats.features], dtype=dtype, device=x.device)
    # A constant feature keeps its scale: there is no spread to divide by.
    std = torch.tensor(
        [f.std if f.std > 0 else 1.0 for f in stats.features], dtype=dtype, device=x.device
    )
    if stats.unit != "input":
        if x.shape[1] != len(stats.features):
            return None
        shape = [1, -1] + [1] * (x.dim() - 2)
        mean, std = mean.reshape(shape), std.reshape(shape)
    scaled = (x.to(dtype) - mean) / std
    return subject.with_inputs(batch, map_tensors(lambda t: scaled if t is x else t, inputs))


def _badness(f: FeatureStats) -> float:
    """How far a feature is from standardised, in orders of magnitude."""
    std = max(f.std, 1e-12)
    return max(abs(math.log10(std)), math.log10(max(abs(f.mean) / max(std, 1.0), 1.0)))


@register_check(
    id="feature-scales-differ",
    reasons=(12,),
    severity="warning",
    explains=causes.SCALE_SYMPTOMS | causes.INSTABILITY_SYMPTOMS | causes.FIT_SYMPTOMS,
)
def feature_scales_differ(ctx: CheckContext) -> None:
    """Input features are on wildly different scales.

    Why it matters:
        When one feature's values are a thousand times larger than another's, the large
        one dominates the first layer's pre-activations and gradients; the optimiser's
        one learning rate is too large for one and too small for the other, and the small
        feature is effectively ignored. A global rescaling (``x / x.max()``) does not
        help: the ratio stays.

    What is measured:
        The ratio of the largest to the smallest per-feature (or per-channel) std,
        pooled over the observed steps, against ``feature_scale_ratio_max``. Constant,
        binary/one-hot and sparse features (exactly constant in some batches) are left
        out of the smallest, because their std measures rarity, not scale. A model whose
        first layer (embeddings aside) is a normalisation layer is left out: it rescales
        every feature itself.

    How to fix:
        Standardise every feature on its own (``(x - x.mean(0)) / x.std(0)`` over the
        training set, or ``StandardScaler``), not with one global mean and std.

    Example:
        Before::

            x = x / x.abs().max()                  # one scale for all features

        After::

            x = (x - x_train.mean(0)) / (x_train.std(0) + 1e-8)
    """
    t = ctx.thresholds
    stats = input_stats(ctx)
    if stats.unit == "input":
        ctx.skip("the input is judged as a whole (no per-feature or per-channel axis)")
    varying = [f for f in stats.features if not f.binary and f.std > t.constant_input_std]
    steady = [f for f in varying if f.steady]
    if len(varying) < 2 or not steady:
        ctx.skip(f"fewer than two varying, non-binary {stats.unit}s")
    big = max(varying, key=lambda f: f.std)
    small = min(steady, key=lambda f: f.std)
    ratio = big.std / small.std
    ctx.note(f"largest/smallest {stats.unit} std {ratio:.3g} over {len(varying)} {stats.unit}s")
    if ratio <= t.feature_scale_ratio_max or big is small:
        return
    ctx.finding(
        title=f"Input {stats.unit}s are on very different scales",
        message=(
            f"{stats.unit.capitalize()} {big.index} has std {_fmt(big.std)} while {stats.unit} "
            f"{small.index} has std {_fmt(small.std)}: a ratio of {ratio:.3g} (over "
            f"{len(stats.steps)} observed steps). The large {stats.unit} dominates the first "
            "layer; the small one is barely learned."
        ),
        fix=(
            f"Standardise each {stats.unit} separately with training-set statistics, "
            f"x = (x - mean) / std computed per {stats.unit}, not one global mean and std."
        ),
        where=Where(step=stats.steps[0].step, module=stats.module),
        evidence={
            "ratio": ratio,
            "largest": big.index,
            "largest_std": big.std,
            "smallest": small.index,
            "smallest_std": small.std,
            "features": len(stats.features),
        },
    )
