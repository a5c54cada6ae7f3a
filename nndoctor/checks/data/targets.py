"""Targets aligned with the inputs (reason 3): targets that are the model's own input, or
one of its features."""

from __future__ import annotations

import math
from typing import Any

import torch

from nndoctor.checks.lab import same_noise
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.copying import set_training
from nndoctor.probes.recording import TargetSummary
from nndoctor.report.model import Where
from nndoctor.trees import map_tensors, tensors


def _largest(values: list[float] | None) -> float:
    finite = [v for v in values or [] if math.isfinite(v)]
    return max(finite) if finite else math.nan


def _matched_rows(ctx: CheckContext, matches: str) -> list[tuple[int, TargetSummary]]:
    """(step, targets) of the first class-index loss call at every observed step whose
    targets the probe matched against an integer model input (``matches``: the
    ``TargetSummary`` field of those shares)."""
    return [
        (s.step, call.target)
        for s in ctx.recording.steps
        for call in s.loss_calls[:1]
        if call.target is not None
        and call.target.class_counts is not None
        and math.isfinite(_largest(getattr(call.target, matches)))
    ]


@register_check(
    id="targets-copy-input",
    reasons=(3, 4, 21),
    severity="warning",
    explains=frozenset(
        {
            "give-it-time",
            "nothing-generalizes",
            "loss-accuracy-disagree",
            "labels-not-connected",
            "class-imbalance",
            "loss-not-at-chance",
        }
    ),
)
def targets_copy_input(ctx: CheckContext) -> None:
    """The targets are the model's own input tokens, position for position.

    Why it matters:
        A sequence model trained to predict the tokens it is given (next-token targets
        sliced like the inputs, ``x[:, :-1]`` twice; the input ids passed as the labels of
        a masked language model) learns to copy its input. Its training loss falls to
        near zero within a few hundred steps while it learns nothing about what comes
        next: generation and masked-token accuracy stay at chance.

    What is measured:
        For every class-index loss (cross-entropy, NLL) at every observed step, the share
        of its scored positions (``ignore_index`` left out) where the target holds the value
        of an integer model input at the same position (a target shorter along one axis,
        as when the loss leaves out a receptive field, is aligned with the input's start
        and with its end), and the share where it holds an input's value one position on.
        A warning when at every step some input matches at ``target_copy_match`` (99 %) of
        the positions or more, the targets hold at least two classes, and no input holds
        them one position on (a decoder fed the targets shifted, as a copy task or a
        sequence-to-sequence model is, predicts its source legitimately). Labels handed to
        the model for a loss computed inside (a keyword naming labels or targets, or an
        integer argument after the first sharing the target's memory) are no input. Unrelated targets match a handful
        of positions by chance, never 99 % of them at every step.

        Before the warning, a copy in eval mode is called on the first kept step's input
        as it was and with that input changed at each sample's last scored position (given
        another sample's token there): a model whose predictions at the scored positions do
        not change cannot read the token it predicts (a decoder that shifts its tokens inside
        ``forward``, prepending a start token; a Decision Transformer predicting each action
        from the state before it), and that is a note. Not told apart: a sequence
        autoencoder that reconstructs its input through a bottleneck, which predicts its
        input on purpose. One label per sample handed to the model beside its input
        (``model(x, y)``) is changed as a whole (each to the next class in the batch) on a
        copy in training mode, where the loss is computed, with the same random draws: an
        output unchanged bit for bit does not read the labels (manifold mixup takes them
        to know it is training), and that is a note; a model that reads them may copy
        them (a label leak), and the warning stands.

    How to fix:
        Shift the targets one position ahead of the inputs: ``inputs, targets = x[:, :-1],
        x[:, 1:]``; for a masked language model, pass the labels (the original ids at the
        masked positions, ``-100`` elsewhere), not the input ids.

    Example:
        Before::

            inputs, targets = tokens[:, :-1], tokens[:, :-1]

        After::

            inputs, targets = tokens[:, :-1], tokens[:, 1:]
    """
    t = ctx.thresholds
    rows = _matched_rows(ctx, "same_position_matches")
    if not rows:
        ctx.skip("no class-index loss whose targets line up with an integer model input")
    shifted = max(_largest(target.next_position_matches) for _, target in rows)
    if shifted >= t.next_token_match:
        ctx.note(
            f"an integer input holds the targets one position on ({shifted:.0%} of positions): "
            "next-token targets, or a decoder fed the targets shifted"
        )
        return
    same = [_largest(target.same_position_matches) for _, target in rows]
    counts = [sum(c) for c in zip(*(target.class_counts or [] for _, target in rows), strict=False)]
    classes = sum(c > 0 for c in counts)
    if min(same) < t.target_copy_match or classes < 2:
        ctx.note(
            f"the targets hold an integer input's value at the same position in at most "
            f"{max(same):.0%} of the scored positions"
        )
        return
    first = rows[0][1].same_position_matches or []
    which = max(range(len(first)), key=lambda i: first[i] if math.isfinite(first[i]) else -1.0)
    visible = _target_visible(ctx)
    if visible is False:
        ctx.note(
            f"the targets hold an integer input's value at the same position ({min(same):.0%}), "
            "but changing that input at the last position leaves the model's output as it "
            "was: the model cannot see the token it predicts (a causal decoder shifting inside, "
            "a return-conditioned policy predicting each action before it is given)"
        )
        return
    if visible is None and _labels_read(ctx) is False:
        ctx.note(
            f"the targets are the labels handed to the model beside its input ({min(same):.0%} "
            "the same), but the model's output in training mode (a loss it returns aside) stays "
            "bit for bit the same with every label changed: its predictions do not read them (a "
            "forward that takes the labels only for its own loss, or to know it is training, "
            "as manifold mixup does), so it cannot copy them"
        )
        return
    ctx.finding(
        title="The targets are the model's own input",
        message=(
            f"At every one of the {len(rows)} observed steps, the targets of the loss hold the value "
            f"of the model's integer input #{which + 1} at the same position in at least "
            f"{min(same):.1%} of the scored positions, and no input holds them one position on. "
            "The model is asked to reproduce the tokens it is given: it learns to copy them, its "
            "loss falls towards zero, and it learns nothing about the tokens that follow."
        ),
        fix=(
            "Shift the targets one position ahead of the inputs (inputs = x[:, :-1], targets = "
            "x[:, 1:]); for a masked language model, pass the labels, not the input ids."
        ),
        evidence={
            "steps": len(rows),
            "min_same_position_share": min(same),
            "max_next_position_share": shifted,
            "input": which + 1,
            "classes": classes,
        },
    )


def _target_visible(ctx: CheckContext) -> bool | None:
    """Whether the model can see the target it predicts: on a copy in eval mode, the first
    kept step's model call once as it was and once with the integer input that holds the
    targets (a (batch, sequence) tensor equal to them, or to them flattened, at
    ``target_copy_match`` of the scored positions) changed at each sample's last scored
    position (given another sample's token there). A model whose predictions at the
    scored positions do not change cannot read that token for any of them, its own
    position's included; an output laid out one row per target is compared at the scored
    rows only (what a padded position attends to is no prediction the loss reads). None
    when not testable (or the changed call raises)."""
    lab = ctx.services
    call = _first_call(ctx)
    if call is None:
        return None
    args, kwargs, target = call
    flat = target.reshape(-1)
    scored = flat >= 0  # ignore_index (negative) marks no target
    if not bool(scored.any()):
        return None
    # A (batch, sequence) input; the targets in its shape or flattened with it.
    held = [
        x
        for x in tensors((args, kwargs))
        if not x.is_floating_point()
        and x.dim() == 2
        and x.numel() == target.numel()
        and float((x.reshape(-1) == flat)[scored].float().mean())
        >= ctx.thresholds.target_copy_match
    ]
    if not held:
        return None
    token = held[0]
    position = 1 - ctx.recording.input_batch_axis()
    if position not in (0, 1):
        return None
    changed = _changed_at_last_scored(token, scored.reshape(token.shape), position)
    if changed is None:
        return None
    outputs = _outputs_with(lab, args, kwargs, token, changed, training=False)
    if outputs is None:
        return None
    pairs = list(zip(*outputs, strict=False))
    if not pairs:
        return None
    return any(
        a.shape != b.shape or not torch.equal(_scored_rows(a, scored), _scored_rows(b, scored))
        for a, b in pairs
    )


def _labels_read(ctx: CheckContext) -> bool | None:
    """:func:`_label_visible` on the first kept step's model call and targets."""
    call = _first_call(ctx)
    if call is None:
        return None
    args, kwargs, target = call
    return _label_visible(ctx.services, args, kwargs, target.reshape(-1))


def _first_call(ctx: CheckContext) -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor] | None:
    """The first kept step's model call (positional and keyword arguments) with its tensor
    of targets; None without a model copy or such a call."""
    lab = ctx.services
    calls = lab.calls_with_targets(1) if lab is not None and lab.has_model else []
    if not calls or not isinstance(calls[0][2], torch.Tensor):
        return None
    return calls[0]


def _label_visible(
    lab: Any, args: tuple[Any, ...], kwargs: dict[str, Any], target: torch.Tensor
) -> bool | None:
    """For one label per sample handed to the model beside its input (``model(x, y)``, a
    1-D integer argument equal to the 1-D targets): whether the model's output reads the
    label's values. A copy in training mode, where the loss is computed, is called as it
    was and with every sample's label changed to the next class present in the batch, the
    random draws the same; an output unchanged bit for bit cannot copy the label (manifold
    mixup asks for the labels only to know it is training), and neither can a scalar the
    model returns (the loss it computes inside from the labels: ``start_positions`` handed
    to a question-answering model). None when no such argument is there, the batch holds
    one class, the model returns only scalars, or the changed call raises."""
    held = [
        x
        for x in tensors((args, kwargs))
        if not x.is_floating_point()
        and x.dim() == 1
        and target.dim() == 1
        and x.shape == target.shape
        and torch.equal(x, target)
    ]
    if not held:
        return None
    label = held[0]
    classes = label.unique()  # sorted
    if classes.numel() < 2:
        return None
    changed = classes[(torch.searchsorted(classes, label) + 1) % classes.numel()]
    outputs = _outputs_with(lab, args, kwargs, label, changed, training=True)
    if outputs is None:
        return None
    # A scalar is the loss a model computes inside from the labels it was handed (as
    # Hugging Face models return it): it reads them by design. Copying needs predictions.
    pairs = [
        (a, b) for a, b in zip(*outputs, strict=False) if a.is_floating_point() and a.dim() > 0
    ]
    if not pairs:
        return None
    return any(a.shape != b.shape or not torch.equal(a, b) for a, b in pairs)


def _outputs_with(
    lab: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    given: torch.Tensor,
    changed: torch.Tensor,
    *,
    training: bool,
) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
    """The output tensors of a fresh copy (in training or eval mode) called as it was and
    with the argument ``given`` replaced by ``changed``, the random draws the same for both;
    None when the changed call raises."""
    new_args, new_kwargs = map_tensors(lambda x: changed if x is given else x, (args, kwargs))
    model = set_training(lab.fresh_model(), training)
    try:
        with torch.no_grad():
            with same_noise(lab.device):
                before = model(*args, **kwargs)
            with same_noise(lab.device):
                after = model(*new_args, **new_kwargs)
    except (RuntimeError, ValueError, IndexError, TypeError):
        return None
    return list(tensors(before)), list(tensors(after))


def _changed_at_last_scored(
    token: torch.Tensor, scored: torch.Tensor, position: int
) -> torch.Tensor | None:
    """``token`` with each sample's last scored position along ``position`` given another
    sample's token there (the next one up with a different token, else the next id); None
    when no sample has a scored position."""
    changed = token.clone()
    rows, marks = changed.movedim(position, 1), scored.movedim(position, 1)
    picked = [(i, int(m.nonzero()[-1])) for i, m in enumerate(marks) if bool(m.any())]
    if not picked:
        return None
    values = torch.stack([rows[i, j] for i, j in picked])
    others = values.roll(1)
    if torch.equal(others, values):
        others = (values + 1) % (int(token.max()) + 1)
    for (i, j), v in zip(picked, others, strict=True):
        rows[i, j] = v
    return changed


def _scored_rows(out: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
    """The rows of a model output at the scored targets, when its leading axes hold one row
    per target (``(batch, sequence, classes)`` beside ``(batch, sequence)`` targets); the
    whole output otherwise."""
    n = scored.numel()
    for k in range(1, out.dim() + 1):
        if math.prod(out.shape[:k]) == n:
            return out.reshape(n, -1)[scored]
    return out


@register_check(
    id="targets-shifted-twice",
    reasons=(3, 4),
    severity="warning",
    explains=frozenset(
        {
            "give-it-time",
            "nothing-generalizes",
            "loss-accuracy-disagree",
            "labels-not-connected",
            "loss-not-at-chance",
        }
    ),
)
def targets_shifted_twice(ctx: CheckContext) -> None:
    """The targets are the model's input tokens two positions on: next-token labels
    shifted twice.

    Why it matters:
        A causal language model predicts the token after each position. Hugging Face
        style models take ``labels`` equal to the input ids and shift them inside
        ``forward``; labels already shifted where the batch is built (``input_ids[:, 1:]``
        or ``roll(-1)`` in a ``collate_fn``) are shifted once more there, and the model is
        trained to predict the token after next. Its loss still falls, but generation and
        perplexity on real next tokens are far worse than they look.

    What is measured:
        For every class-index loss at every observed step, the share of its scored
        positions (``ignore_index`` left out) holding an integer model input's value two
        positions on, and the share holding it one position on. A warning when at every
        step some input holds the targets two positions on at ``next_token_match`` (90 %)
        of the scored positions or more, and none holds them one position on at that
        share. Text in which a token usually equals the one two before it (a repeated
        pair) could match both; the second condition leaves it out.

    How to fix:
        Shift once: pass ``labels = input_ids`` (with ``-100`` on padding) to a model that
        shifts inside ``forward``, or shift in the data and compute the loss unshifted.

    Example:
        Before::

            batch["labels"] = batch["input_ids"].roll(-1, dims=1)   # and forward shifts again

        After::

            batch["labels"] = batch["input_ids"].masked_fill(padding, -100)
    """
    t = ctx.thresholds
    rows = _matched_rows(ctx, "two_positions_matches")
    if not rows:
        ctx.skip("no class-index loss whose targets line up with an integer model input")
    two = [_largest(target.two_positions_matches) for _, target in rows]
    one = max(_largest(target.next_position_matches) for _, target in rows)
    ctx.note(
        f"the targets hold an integer input's value two positions on in at least {min(two):.0%} "
        f"of the scored positions at every step, one position on in at most {one:.0%}"
    )
    if min(two) < t.next_token_match or one >= t.next_token_match:
        return
    ctx.finding(
        title="The targets are two tokens ahead: next-token labels shifted twice",
        message=(
            f"At every one of the {len(rows)} observed steps, the targets of the loss hold the "
            f"model's input token two positions on in at least {min(two):.1%} of the scored "
            f"positions (one position on: at most {one:.0%}). The labels were shifted one "
            "position too many: the model is trained to predict the token after next."
        ),
        fix=(
            "Shift the labels once: give a model that shifts inside forward the unshifted "
            "input ids as labels (-100 on padding), or shift in the data and not in the model."
        ),
        evidence={
            "steps": len(rows),
            "min_two_positions_share": min(two),
            "max_next_position_share": one,
        },
    )


@register_check(
    id="target-among-inputs",
    reasons=(3, 4),
    severity="warning",
    explains=frozenset(
        {"give-it-time", "nothing-generalizes", "labels-not-connected", "loss-not-at-chance"}
    ),
)
def target_among_inputs(ctx: CheckContext) -> None:
    """The regression target is one of the model's input features.

    Why it matters:
        A model asked for a value it is given learns to pass that feature through: the
        loss falls fast and far, and nothing useful is learned. The common forms are a
        sliding window cut one step short (``y = series[i + W - 1]``, the window's own last
        value, instead of ``series[i + W]``) and a tabular target column left among the
        features (leakage).

    What is measured:
        For every value-regression loss (MSE, L1, smooth L1, Huber) whose per-sample
        target is smaller than the per-sample float model input (batch first), at each of
        the first observed steps: for each target column, the largest share of samples for
        which one input column holds exactly its value. A warning when at every measured
        step every target column is found at ``target_copy_match`` (99 %) of the samples
        or more. A target column that is constant within the batch is not compared (a
        constant matches constant features by nature), and a target as large as the input
        (an autoencoder reconstructs its input on purpose) is not measured; nor is a
        sequence forecaster's target shifted one step (its last value is not in the input).

    How to fix:
        Take the target from outside the window (``x = s[i:i + W]``, ``y = s[i + W]``), and
        drop the target column from the features before training.

    Example:
        Before::

            x, y = series[i:i + W], series[i + W - 1]

        After::

            x, y = series[i:i + W], series[i + W]
    """
    t = ctx.thresholds
    rows = [
        (s.step, call.target.input_column_match)
        for s in ctx.recording.steps
        for call in s.loss_calls[:1]
        if call.target is not None and math.isfinite(call.target.input_column_match)
    ]
    if not rows:
        ctx.skip(
            "no value-regression loss whose target is smaller than a float, batch-first model input"
        )
    shares = [share for _, share in rows]
    ctx.note(
        f"the target column found least among the input's features matches one in "
        f"{min(shares):.0%} to {max(shares):.0%} of the samples ({len(rows)} step(s))"
    )
    if min(shares) < t.target_copy_match:
        return
    ctx.finding(
        title="The regression target is one of the input features",
        message=(
            f"At every one of the {len(rows)} measured steps, each column of the loss's target "
            f"equals a column of the model's input in at least {min(shares):.1%} of the samples: "
            "the model is given the value it is asked to predict, learns to pass it through, and "
            "learns nothing else (a window cut one step short, or the target left among the "
            "features)."
        ),
        fix=(
            "Take the target from outside the input window (y = series[i + W]), or drop the "
            "target column from the features."
        ),
        where=Where(step=rows[0][0]),
        evidence={"steps": len(rows), "min_share": min(shares)},
    )
