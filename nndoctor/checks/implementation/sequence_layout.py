"""Token sequences laid out along the wrong axis (reason 25): the text runs across the batch.

A language model's batch of token ids is ``(seq_len, batch)`` or ``(batch, seq_len)``: along
the sequence axis each token follows the one before it in the text, across the batch axis
neighbours come from unrelated places. A ``view`` that lays the text out the other way
(``data.view(-1, bsz)`` where ``data.view(bsz, -1).t()`` was meant) keeps every shape, so
nothing fails: the text then runs across the batch, and the "sequences" the model reads
hold every ``bsz``-th token. How much each axis's neighbours tell about each other is
measured on the batches themselves, held out, and compared.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import torch

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.significance import mean_with_margin

# Distinct token values below which an integer input is not read as token ids (flags,
# binary masks, a handful of categories).
MIN_VOCABULARY = 8
_TOKEN_DTYPES = frozenset({"int64", "int32", "int16", "int8"})


@dataclass(frozen=True)
class NeighbourGains:
    """Per held-out batch, the log-likelihood gain (nats per pair) of predicting each token
    from its neighbour along an axis over predicting it from token frequencies alone."""

    sequence: list[float]
    batch: list[float]


def _pairs(x: torch.Tensor, axis: int) -> list[tuple[int, int]]:
    """Neighbouring values along ``axis`` of a 2-D tensor, in order."""
    y = x.movedim(axis, 0)
    first, second = y[:-1].reshape(-1).tolist(), y[1:].reshape(-1).tolist()
    return list(zip(first, second, strict=True))


def held_out_gains(batches: list[list[tuple[int, int]]]) -> list[float]:
    """For each batch of pairs, the mean held-out gain of a bigram model (add-one unigram
    model as its prior, weight one) over that unigram model, both counted on every other
    batch: above zero where the first of a pair tells about the second, at or below zero
    (the bigram's own variance) where they are independent."""
    pair_counts = [Counter(b) for b in batches]
    left_counts = [Counter(a for a, _ in b) for b in batches]
    right_counts = [Counter(c for _, c in b) for b in batches]
    pairs_all = sum(pair_counts, Counter())
    left_all = sum(left_counts, Counter())
    right_all = sum(right_counts, Counter())
    values = len(set(right_all) | set(left_all)) + 1
    total = sum(right_all.values())
    gains = []
    for b, pairs, lefts, rights in zip(
        batches, pair_counts, left_counts, right_counts, strict=True
    ):
        n_out = total - sum(rights.values())
        gain = 0.0
        for a, c in b:
            unigram = (right_all[c] - rights[c] + 1) / (n_out + values)
            seen = pairs_all[(a, c)] - pairs[(a, c)]
            given = left_all[a] - lefts[a]
            bigram = (seen + unigram) / (given + 1)
            gain += math.log(bigram) - math.log(unigram)
        gains.append(gain / max(len(b), 1))
    return gains


def neighbour_gains(tokens: list[torch.Tensor], batch_axis: int) -> NeighbourGains:
    """The held-out gains of neighbours along the sequence axis and along the batch axis."""
    sequence_axis = 1 - batch_axis
    return NeighbourGains(
        sequence=held_out_gains([_pairs(x, sequence_axis) for x in tokens]),
        batch=held_out_gains([_pairs(x, batch_axis) for x in tokens]),
    )


def lower_bound(values: list[float], alpha: float) -> float:
    """The one-sided lower confidence bound of the mean of ``values`` (Student's t)."""
    mean, margin = mean_with_margin(values, alpha)
    return mean - margin


@register_check(
    id="sequence-across-batch",
    reasons=(25, 4),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | frozenset({"reads-next-token"}),
)
def sequence_across_batch(ctx: CheckContext) -> None:
    """Token sequences run across the batch axis: the data was laid out along the wrong axis.

    Why it matters:
        A sequence model reads its batch of token ids along the sequence axis. A layout
        written with the axes the other way round (``data.view(-1, bsz)`` for
        ``data.view(bsz, -1).t()`` in a word-level language model's ``batchify``, a
        ``reshape`` where a ``transpose`` was meant) keeps every shape, so nothing fails:
        each "sequence" then holds every ``bsz``-th token, the next-token targets are not
        the next words, and the model learns little beyond word frequencies.

    What is measured:
        On the captured batches of an integer (token id) model input with two axes, of a
        language model (its targets are its input one position on) whose batch axis is
        known from the data or a layer: how much each token tells about its neighbour
        along each axis, as the held-out log-likelihood gain of a bigram model over token
        frequencies (counts from every other batch, per batch). Along the sequence axis
        text has that gain; across the batch neighbours come from unrelated places and
        have none. A warning when the batch axis's gain exceeds the sequence axis's, the
        lower confidence bounds (Student's t over the batches) of the per-batch difference
        and of the batch axis's own gain both above zero at ``sequence_layout_alpha``
        (1 %): on a correct layout, where neighbours across the batch are independent,
        that happens at most that often. Tokens in no order tie on both axes, and so do
        overlapping windows in order (each sample one token on from the last). Copies of
        one sample side by side agree across the batch too: ``samples-repeat`` finds them
        and explains this finding.

    How to fix:
        Lay each part of the text out along the sequence axis: for ``(seq_len, batch)``
        data ``data.view(bsz, -1).t().contiguous()``; for ``(batch, seq_len)``
        ``data.view(bsz, -1)``. Print a column (or row) of a batch as text: it should read
        as text.

    Example:
        Before::

            data = data.narrow(0, 0, nbatch * bsz).view(-1, bsz)       # text runs across

        After::

            data = data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()
    """
    rec = ctx.recording
    lab = ctx.services
    t = ctx.thresholds
    if lab is None:
        ctx.skip("no captured batches")
    first = next((s.inputs for s in rec.steps if s.inputs is not None), None)
    if first is None or len(first.shape) != 2 or first.dtype not in _TOKEN_DTYPES:
        ctx.skip("the model input is not a two-axis tensor of integers (token ids)")
    next_token = any(
        c.target is not None and c.target.next_position_match >= t.next_token_match
        for s in rec.steps
        for c in s.loss_calls
    )
    if not next_token:
        # Only next-token targets say that neighbours along the sequence axis are meant to
        # follow each other: a copy or translation task's batch padded after length-sorted
        # sources has neighbours across the batch that agree (padding beside padding).
        ctx.skip("the targets are not the input one position on: not a language model")
    batch_axis = rec.witnessed_batch_axis()
    if batch_axis is None:
        ctx.skip("no loader, per-sample target or layer says which input axis is the batch")
    tokens = [
        x[0]
        for x in lab.model_inputs(64)
        if x and isinstance(x[0], torch.Tensor) and x[0].dim() == 2
    ]
    tokens = [x.detach().to("cpu", torch.int64) for x in tokens if not x.is_floating_point()]
    if len(tokens) < t.sequence_layout_min_batches:
        ctx.skip(
            f"{len(tokens)} captured batch(es) of token ids; the comparison needs "
            f"{t.sequence_layout_min_batches}"
        )
    if min(x.shape[0] for x in tokens) < 2 or min(x.shape[1] for x in tokens) < 2:
        ctx.skip("an axis of length one: no neighbours along it")
    if len(torch.unique(torch.cat([x.reshape(-1) for x in tokens]))) < MIN_VOCABULARY:
        ctx.skip(f"fewer than {MIN_VOCABULARY} distinct values: not token ids")
    gains = neighbour_gains(tokens, batch_axis)
    seq_mean = sum(gains.sequence) / len(gains.sequence)
    batch_mean = sum(gains.batch) / len(gains.batch)
    difference = [b - s for b, s in zip(gains.batch, gains.sequence, strict=True)]
    bound = lower_bound(difference, t.sequence_layout_alpha)
    # Independent neighbours gain nothing held out (less than nothing, by the bigram's
    # variance): tokens drawn at random on both axes tie, and are no finding.
    across = lower_bound(gains.batch, t.sequence_layout_alpha)
    axis_name = ("first", "second")
    ctx.note(
        f"held out over {len(tokens)} batches, a token's neighbour along the sequence axis "
        f"({axis_name[1 - batch_axis]}) is worth {seq_mean:.3f} nats per token, along the "
        f"batch axis ({axis_name[batch_axis]}) {batch_mean:.3f}; lower bound of the "
        f"difference {bound:.3f}"
    )
    if bound <= 0 or across <= 0:
        return
    ctx.finding(
        title="The token sequences run across the batch: the data is laid out along the wrong axis",
        message=(
            f"In the captured batches of token ids ({tuple(tokens[0].shape)}, batch axis "
            f"{batch_axis} as {'a layer declares' if rec.sequence_layouts else 'the data says'}), "
            f"a token tells about its neighbour across the batch ({batch_mean:.3f} nats per "
            f"token, held out) more than about its neighbour along the sequence "
            f"({seq_mean:.3f}); the difference's lower bound at "
            f"{t.sequence_layout_alpha:.0%} is {bound:.3f}. Text runs along the batch axis: "
            "each sequence the model reads holds tokens from far apart, and its next-token "
            "targets are not the next tokens. Look at how the token stream is cut into the "
            "batch (a view(-1, bsz) where view(bsz, -1).t() was meant)."
        ),
        fix=(
            "Lay each part of the token stream out along the sequence axis: "
            "data.view(bsz, -1).t().contiguous() for (seq_len, batch) batches, "
            "data.view(bsz, -1) for (batch, seq_len)."
        ),
        evidence={
            "batches": len(tokens),
            "batch_axis": batch_axis,
            "sequence_gain": seq_mean,
            "batch_gain": batch_mean,
            "difference_lower_bound": bound,
            "batch_gain_lower_bound": across,
        },
    )
