"""A ``view`` or ``reshape`` that reorders axes (reason 25): a transpose written as a view."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import torch
from torch import nn

from nndoctor.checks import causes
from nndoctor.checks.implementation.layers import batch_slice
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.copying import set_training
from nndoctor.probes.recording import LossCall
from nndoctor.probes.reshapes import ReshapeEvent, recorded_reshapes
from nndoctor.report.model import Where

# The second batch size each network runs at: odd, so that it meets few other sizes.
CUT_SAMPLES = 3


def reorders_axes(before: tuple[int, ...], after: tuple[int, ...]) -> bool:
    """Whether a reshape from ``before`` to ``after`` gives the same axis sizes in another
    order (axes of size 1 aside, which a view may move freely): memory laid out for one
    order of axes, read as the other."""
    kept = [s for s in before if s != 1]
    made = [s for s in after if s != 1]
    return len(kept) >= 2 and kept != made and sorted(kept) == sorted(made)


def cuts_across(before: tuple[int, ...], after: tuple[int, ...]) -> bool:
    """Whether a reshape from ``before`` to ``after`` draws an axis boundary through an
    axis at no factor of it: neither splitting an axis into factors nor merging
    neighbouring ones (nor both, as a hand-written GroupNorm's ``(N, C, H, W)`` to
    ``(N, G, C/G * H * W)`` does) gives that. Sub-pixel channels read as rows do:
    ``(N, 9, 16, 16)`` viewed as ``(N, 1, 48, 48)`` puts a boundary at 48 rows of 16 inside
    the 9 x 16 block of channels and rows. Axes of size 1 aside."""
    kept = [s for s in before if s != 1]
    made = [s for s in after if s != 1]
    if len(kept) < 2 or len(made) < 2 or math.prod(kept) != math.prod(made):
        return False

    def splits_at_factors(boundaries: list[int], axes: list[int]) -> bool:
        # Each boundary P lies in an axis whose span runs from A (exclusive) to B, and
        # splits it at a factor when A divides P and P divides B.
        ends = [1, *axes]
        for p in boundaries:
            for start, end in zip(ends, ends[1:], strict=False):
                if start < p <= end:
                    if p % start or end % p:
                        return False
                    break
        return True

    into, outof = list(accumulate(kept, operator.mul)), list(accumulate(made, operator.mul))
    return not (splits_at_factors(outof[:-1], into) and splits_at_factors(into[:-1], outof))


def _reorders(e: ReshapeEvent) -> bool:
    """A reshape that reorders axes or cuts across them, of a tensor whose values differ
    (a constant, a mask of ones, has no order to lose)."""
    return not e.constant and (reorders_axes(e.before, e.after) or cuts_across(e.before, e.after))


def relabelled_back(events: list[ReshapeEvent]) -> set[int]:
    """The indices of reshapes that are half of a relabelling undone: a reshape whose
    memory (sliced, nothing computed on it) is reshaped again into the axis order
    the first one started from, each axis at most as long as it was (Transformer-XL's
    relative shift: scores padded by a zero column, viewed with the two axes' sizes
    swapped, the first row dropped, viewed back: every row shifted by one). A transpose
    written as a view is computed on in its wrong order; viewed back untouched it would
    have done nothing."""
    paired: set[int] = set()
    for j, later in enumerate(events):
        i = later.again_of
        if i is None:
            continue
        first = events[i]
        # What the second reshapes is a slice of the first's memory, neither the tensor
        # the first started from nor its result: the same input reshaped twice (a
        # transpose written as a view, then the input read again in its own shape) is
        # no way back.
        sliced = later.before not in (first.before, first.after)
        if (
            sliced
            and len(later.after) == len(first.before)
            and all(a <= b for a, b in zip(later.after, first.before, strict=True))
        ):
            paired.update((i, j))
    return paired


def _reorderings_left(events: list[ReshapeEvent]) -> list[ReshapeEvent]:
    """The reshapes among ``events`` that reorder or cut across axes, less the halves of a
    relabelling undone."""
    undone = relabelled_back(events)
    return [e for k, e in enumerate(events) if k not in undone and _reorders(e)]


@dataclass(frozen=True)
class _Reordering:
    network: str  # "" for the model, else the class of a network beside it
    event: ReshapeEvent

    def describe(self) -> str:
        e = self.event
        of = f" of {self.network}" if self.network else ""
        inside = f" in `{e.module}`{of}" if e.module and e.module != "<root>" else of
        return (
            f"`{e.op}` from {_shape(e.before)} to {_shape(e.after)}{inside} "
            f"({_short(e.file)}:{e.line})"
        )


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _short(file: str) -> str:
    return file.rsplit("/", 1)[-1]


@register_check(
    id="reshape-reorders-axes",
    reasons=(25,),
    severity="error",
    kind="experiment",
    quick=True,
    priority=13,
    explains=causes.FIT_SYMPTOMS | causes.LABEL_SYMPTOMS,
)
def reshape_reorders_axes(ctx: CheckContext) -> None:
    """A ``view`` or ``reshape`` in the model gives its input's axis sizes in another order,
    or cuts across its axes.

    Why it matters:
        ``view`` and ``reshape`` relabel memory; they never move a value. Turning a
        ``(batch, points, 3)`` tensor into ``(batch, 3, points)`` with ``view`` does not
        swap the axes: each of the three new "channels" holds a run of x, y and z values of
        different points. Shapes match, nothing raises, the loss falls a little, and the
        model learns from scrambled inputs. Only ``transpose``/``permute`` reorder axes.

    What is measured:
        Forwards of a copy of the model in eval mode, without gradients (and of each other
        trained network beside it, on its first call's arguments), with every ``view``,
        ``reshape``, ``view_as`` and ``reshape_as`` that the user's own code runs
        recorded: the shape before and after, the module under way and the line. Reshapes
        inside torch and installed libraries are tested code and left out, and so are
        reshapes of parameters (their values take their meaning from training, in
        whatever order) and of constant tensors (no order to lose). A reshape reorders
        axes when the axis sizes after it are those before it in another order, axes of
        size 1 aside: no flatten, split or merge gives that; a transpose written as a view
        does. Sizes can meet by coincidence at one batch size (9 tile embeddings of width
        64 merged per image at a batch of 64 turn ``(576, 64)`` into ``(64, 576)``), so
        each network runs on its first batch and on that batch cut to 3 samples, and a
        line counts where it reorders axes both times (or at the one size a network
        takes). Between the loader and the model, in the first observed steps, a model
        input that holds the values of a tensor of the batch the DataLoader had just
        yielded, in that tensor's memory order but under its axis sizes reordered, is the
        same mistake made in the training loop (``x.view(seq_len, batch, 1)`` for
        ``x.transpose(0, 1)``). Inside the networks a reshape also counts where it draws an
        axis boundary through an axis at no factor of it: no split of an axis into
        factors and no merge of neighbouring axes gives that (a hand-written GroupNorm's
        ``(N, C, H, W)`` to ``(N, G, C/G * H * W)`` splits C at a factor and merges the
        rest), while sub-pixel channels viewed as image rows do (``(N, 9, 16, 16)`` as
        ``(N, 1, 48, 48)``: 48 rows of 16 end inside the block of 9 channels of 16 rows).
        Between the model and the loss, a class-score loss (cross-entropy, NLL) given
        (rows, C) scores viewed from a model output whose axis of C classes is not its
        innermost (``out.view(-1, C)`` of an ``(N, C, T)`` or ``(N, C, H, W)`` output)
        counts too: each row then holds C values along the positions of one class, and
        the targets flattened beside them belong to other rows (only where exactly one
        axis has C entries and the innermost has another size). A reshape whose memory,
        sliced and with nothing computed on it, is reshaped back into the axis
        order it started from (each axis at most as long) is a shift, not a transpose:
        Transformer-XL's relative shift pads its scores by a zero column, views them with
        the two axes' sizes swapped, drops the first row and views them back.
        This is a rule about the code, not a statistic: it does
        not misfire by chance, only on code that relabels memory laid out in one order of
        axes as another on purpose.

    How to fix:
        Reorder axes with ``transpose``/``permute`` (followed by ``.contiguous()`` or use
        ``reshape`` if a later ``view`` needs it); keep ``view``/``reshape`` for splitting
        and merging neighbouring axes.

    Example:
        Before::

            x = points.view(points.size(0), 3, -1)   # (batch, n, 3) -> "(batch, 3, n)"

        After::

            x = points.transpose(1, 2)                # (batch, 3, n)
    """
    loop = _loader_reorderings(ctx)
    to_loss = _loss_reorderings(ctx)
    if to_loss:
        _class_axis_finding(ctx, to_loss)
    inside, seen, why_not = _model_reorderings(ctx)
    relabelled = sum(len(s.loader_reshapes) for s in ctx.recording.steps)
    if not loop and not inside:
        if to_loss:
            return
        if why_not and not relabelled:
            ctx.skip(why_not)
        ctx.note(
            f"{seen} reshape(s) by the model's own code in one forward and {relabelled} of a "
            "loader batch on its way to the model; none reorders axes"
            + (f" ({why_not})" if why_not else "")
        )
        return
    listed = "; ".join(
        [
            f"the loader's batch {_shape(b)} reaches the model as {_shape(a)} (step {step})"
            for step, b, a in loop
        ]
        + [r.describe() for r in inside]
    )
    first = inside[0].event if inside else None
    cut = [r for r in inside if not reorders_axes(r.event.before, r.event.after)]
    ctx.finding(
        title=(
            "A view or reshape cuts across axes instead of rearranging them"
            if cut and len(cut) == len(inside) and not loop
            else "A view or reshape reorders axes instead of transposing them"
        ),
        message=(
            f"{len(loop) + len(inside)} reshape(s) give a tensor's axis sizes in another order"
            + (" or draw an axis boundary through another axis at no factor of it" if cut else "")
            + f": {listed}. A view relabels memory and never moves a value, so the values that "
            "land on each new axis are not the ones the code means (a transpose written as a "
            "view" + ("; sub-pixel channels read as image rows" if cut else "") + ")."
        ),
        fix=(
            "Use `x.transpose(i, j)` or `x.permute(...)` to reorder axes; keep `view`/`reshape` "
            "for splitting and merging neighbouring axes (sub-pixel upsampling: "
            "`nn.PixelShuffle(r)`, or a view to (N, C, r, r, H, W), a permute to "
            "(N, C, H, r, W, r) and a reshape)."
        ),
        where=(
            Where(
                module=first.module if first.module != "<root>" else None,
                file=first.file,
                line=first.line,
            )
            if first is not None
            else Where(step=loop[0][0])
        ),
        evidence={
            "reshapes": [
                {"before": list(b), "after": list(a), "step": step, "between": "loader and model"}
                for step, b, a in loop
            ]
            + [
                {
                    "op": r.event.op,
                    "before": list(r.event.before),
                    "after": list(r.event.after),
                    "module": r.event.module,
                    "file": r.event.file,
                    "line": r.event.line,
                    **({"network": r.network} if r.network else {}),
                }
                for r in inside
            ]
        },
    )


def _loader_reorderings(
    ctx: CheckContext,
) -> list[tuple[int, tuple[int, ...], tuple[int, ...]]]:
    """(step, batch shape, model input shape) for each loader batch tensor that reached the
    model relabelled with its axis sizes reordered, once per pair of shapes."""
    found: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    for step in ctx.recording.steps:
        for before, after in step.loader_reshapes:
            if reorders_axes(before, after):
                found.setdefault((before, after), step.step)
    return [(step, b, a) for (b, a), step in found.items()]


# Losses whose input is (rows, classes): a row's class scores must be one sample's.
_CLASS_SCORE_LOSSES = ("cross_entropy", "nll_loss")


def class_axis_not_innermost(layout: tuple[int, ...], loss_input: tuple[int, ...]) -> bool:
    """Whether a loss input of (rows, C) class scores was viewed from an output laid out
    ``layout`` whose axis of C classes is not its innermost: each row then holds C values
    run along the innermost axis (positions, pixels), not one position's C scores. Only
    where exactly one axis has C entries and the innermost has another size (with both C,
    it cannot be told which is which). Axes of size 1 aside."""
    if len(loss_input) != 2:
        return False
    classes = loss_input[1]
    sizes = [s for s in layout if s != 1]
    return len(sizes) >= 3 and sizes[-1] != classes and sizes.count(classes) == 1


def _loss_reorderings(ctx: CheckContext) -> list[tuple[int, LossCall]]:
    """(step, loss call) for each class-score loss whose input was viewed from the model
    output with the class axis not innermost, once per place in the code."""
    found: dict[tuple[str | None, int | None], tuple[int, LossCall]] = {}
    for step in ctx.recording.steps:
        for call in step.loss_calls:
            link = call.linked_to_output or ""
            if (
                call.fn in _CLASS_SCORE_LOSSES
                and call.input_layout is not None
                and link.startswith(("view:", "rearrange:"))
                and class_axis_not_innermost(call.input_layout, call.input_shape)
            ):
                found.setdefault((call.file, call.line), (step.step, call))
    return list(found.values())


def _model_reorderings(ctx: CheckContext) -> tuple[list[_Reordering], int, str]:
    """The reshapes of the model's (and the networks' beside it) own code that reorder
    axes, once per line; how many reshapes ran; why the forward could not be replayed
    ("" when it was).

    Each network runs twice, on its batch and on that batch cut to ``CUT_SAMPLES``: a line
    counts only where it reorders axes both times. Sizes can meet by coincidence (64
    tiles' embeddings of width 64 merged per image turn (576, 64) into (64, 576) at a
    batch of 64) but not at two batch sizes; a transpose written as a view reorders at
    every size."""
    lab = ctx.services
    if lab is None or not lab.has_model:
        return [], 0, "no model copy is available to replay a forward"
    calls = lab.model_calls(1)
    if not calls:
        return [], 0, "no model call was recorded to replay"
    axis = ctx.recording.input_batch_axis()
    args, kwargs = calls[0]
    runs: list[tuple[str, nn.Module, tuple[Any, ...], dict[str, Any], int]] = [
        ("", set_training(lab.fresh_model(), False), args, kwargs, axis)
    ]
    runs += [(name, set_training(model, False), a, {}, 0) for name, model, a in lab.other_models()]
    seen = 0
    found: dict[tuple[str, int], _Reordering] = {}
    refused: list[str] = []
    for network, model, a, k, at in runs:
        full = _reshapes_of(model, a, k)
        if isinstance(full, str):
            refused.append(f"{network or 'the model'}: {full}")
            continue
        seen += len(full)
        cut = _reshapes_of(model, *_cut(a, k, at))
        # A network that refuses its batch cut (sizes fixed in its code) is judged on the
        # one batch it takes.
        again = (
            {(e.file, e.line) for e in _reorderings_left(cut)} if not isinstance(cut, str) else None
        )
        for e in _reorderings_left(full):
            if again is None or (e.file, e.line) in again:
                found.setdefault((e.file, e.line), _Reordering(network, e))
    if len(refused) == len(runs):
        return [], 0, "the forward could not be replayed (" + "; ".join(refused) + ")"
    return list(found.values()), seen, ""


def _cut(
    args: tuple[Any, ...], kwargs: dict[str, Any], axis: int
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call's arguments, positional and keyword, cut to ``CUT_SAMPLES`` along the batch axis."""
    cut = batch_slice((*args, *kwargs.values()), CUT_SAMPLES, axis)
    return tuple(cut[: len(args)]), dict(zip(kwargs, cut[len(args) :], strict=True))


def _reshapes_of(
    model: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[ReshapeEvent] | str:
    """The reshapes the user's code runs in ``model(*args, **kwargs)``, or why it failed."""
    try:
        with torch.no_grad(), recorded_reshapes(model) as events:
            model(*args, **kwargs)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return events


def _class_axis_finding(ctx: CheckContext, to_loss: list[tuple[int, LossCall]]) -> None:
    step, call = to_loss[0]
    assert call.input_layout is not None
    classes = call.input_shape[1]
    ctx.finding(
        title="Class scores flattened from an axis that is not the class axis",
        message=(
            f"The {call.fn} loss is given {_shape(call.input_shape)} class scores viewed from a "
            f"model output laid out {_shape(call.input_layout)}, whose {classes} classes are not "
            "its last axis: a view keeps memory order, so each row holds "
            f"{classes} consecutive values along the last axis (positions, pixels) of one class, "
            "not one position's scores for each class, and the targets flattened beside them "
            "belong to other rows. The loss still falls, on scrambled pairs."
        ),
        fix=(
            "Move the class axis last before flattening (`out.permute(0, 2, 1).reshape(-1, C)`, "
            "`out.movedim(1, -1).reshape(-1, C)`), or pass the output unflattened: "
            "`F.cross_entropy(out, y)` takes (N, C, d1, ...) scores with (N, d1, ...) targets."
        ),
        where=Where(step=step, file=call.file, line=call.line),
        evidence={
            "reshapes": [
                {
                    "before": list(c.input_layout or ()),
                    "after": list(c.input_shape),
                    "step": s,
                    "between": "model and loss",
                    "file": c.file,
                    "line": c.line,
                }
                for s, c in to_loss
            ]
        },
    )
