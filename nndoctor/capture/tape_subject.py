"""A Subject whose loss is the script's own, replayed from the captured steps' loss tapes.

When the back-propagated loss is no single recognised loss call on the model output (a
transformed output, several terms, a hand-written loss), the probe's loss tape (see
:mod:`nndoctor.probes.tape`) still says how the loss was computed from the output: a copy
of the model is trained on the captured batches with that tape replayed on its output.

The targets the data experiments permute or corrupt are the tape's per-sample leaves: the
data the loss reads that holds the batch on the subject's batch axis, boolean masks aside
(they select samples). One such leaf is the
target. Several holding the same values (``y`` and ``y.float()`` computed before the output)
are one target, replaced together. Several of one shape (mixup's ``y_a`` and ``y_b``) are
stacked on a last axis, so a permutation of the samples moves them together. Any other mix
(labels beside per-pixel weights of another shape) has no sound single tensor: the subject then gives
no targets, and the experiments that need them say so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nndoctor.capture.runner import Capture
from nndoctor.probes.tape import Tape, TapeError
from nndoctor.probes.training import CLASS_INDEX_LOSSES
from nndoctor.subject import OptimizerSpec, Subject, Task, call_model, take_samples
from nndoctor.trees import first_tensor, tensors

Batch = dict[str, Any]


def tape_subject(
    capture: Capture,
    model: nn.Module,
    optimizer: OptimizerSpec | None,
    inputs: Callable[[Batch], Any],
    replace_inputs: Callable[[Batch, Any], Batch],
) -> tuple[Subject | None, str]:
    """A Subject replaying the captured loss tapes on copies of ``model`` (the user's model
    at its initial weights), or None and why not."""
    raw = [
        b
        for b in capture.batches
        if b.get("tape") is not None and (b.get("args") or b.get("kwargs"))
    ]
    if not raw:
        failures = [b["tape_failure"] for b in capture.batches if b.get("tape_failure")]
        return None, f"no loss tape: {failures[0]}" if failures else "no loss tape was recorded"
    if any(len(b["tape"].input_counts) != 1 for b in raw):
        return None, "the model is called more than once before the loss"
    axis = capture.recording.input_batch_axis()
    try:
        batches = [_rooted(b, axis, inputs) for b in raw]
    except TapeError as exc:
        return None, f"no loss tape: {exc}"
    if len({b["tape"].signature() for b in batches}) != 1:
        return None, "the loss is computed differently from step to step"
    rule = _target_rule(batches, axis, inputs)
    metas = batches[0]["tape"].loss_calls()
    task = (
        task_of(metas[0].fn, metas[0].input_shape, metas[0].target_shape, metas[0].target_dtype)
        if metas
        else Task("custom")
    )

    def loss_fn(model: nn.Module, batch: Batch) -> torch.Tensor:
        return batch["tape"].replay([call_model(model, inputs(batch))], batch["leaves"])

    def output_loss(prediction: torch.Tensor, batch: Batch) -> torch.Tensor:
        return batch["tape"].replay([prediction], batch["leaves"])

    def model_output(model: nn.Module, batch: Batch) -> torch.Tensor:
        return tensors(call_model(model, inputs(batch)))[0]

    single = batches[0]["tape"].input_counts == [1]
    subject = Subject(
        model=model,
        batches=lambda: list(batches),
        loss_fn=loss_fn,
        optimizer=optimizer,
        task=task,
        inputs=inputs,
        targets=rule.targets,
        replace_inputs=replace_inputs,
        replace_targets=rule.replace,
        loss_input=model_output if single else None,
        output_loss=output_loss if single else None,
        pretrained=bool(capture.recording.weights_loaded),
        name=capture.script,
        label_smoothing=metas[0].label_smoothing if metas else 0.0,
        batch_axis=axis,
    )
    try:
        out_shape = _trial(subject, batches[0])
    except Exception as exc:  # noqa: BLE001 - a tape a copy cannot run is no subject
        return None, f"the loss tape does not replay on a copy of the model ({type(exc).__name__})"
    subject.cuttable = _cuts(subject, batches[0])
    # Class scores for the per-sample experiments: the model output itself, when it is what
    # a class-index loss on the tape reads (one row of scores per sample).
    if (
        single
        and task.kind == "classification"
        and metas[0].fn in CLASS_INDEX_LOSSES
        and metas[0].input_shape == out_shape
    ):
        subject.logits = model_output
    return subject, ""


def task_of(
    fn: str,
    input_shape: tuple[int, ...],
    target_shape: tuple[int, ...] | None,
    target_dtype: str | None,
) -> Task:
    from nndoctor.capture.subject import task_from_loss  # the recognised route's rule

    return task_from_loss(fn, input_shape, target_shape, target_dtype)


def _batch_size(batch: Batch, axis: int, inputs: Callable[[Batch], Any]) -> int | None:
    x = first_tensor(inputs(batch))
    return int(x.shape[axis]) if x is not None and x.dim() > axis else None


def _per_sample(axis: int, n: int | None) -> Callable[[torch.Tensor], bool]:
    """Whether a leaf holds one entry per sample on the batch axis: not a row index of the
    batch (``torch.arange(n)``, a permutation of it), which says where samples are."""

    def test(t: torch.Tensor) -> bool:
        if n is None or t.dim() <= axis or t.shape[axis] != n or t.requires_grad:
            return False
        return not _positions(t, n)

    return test


def _positions(t: torch.Tensor, n: int) -> bool:
    if t.dim() != 1 or t.is_floating_point() or t.dtype == torch.bool or n < 2:
        return False
    return bool(torch.equal(t.sort().values, torch.arange(n, device=t.device, dtype=t.dtype)))


def _rooted(batch: Batch, axis: int, inputs: Callable[[Batch], Any]) -> Batch:
    """The captured batch as the subject's: the model call's arguments, the tape cut at the
    per-sample data and its leaves."""
    n = _batch_size(batch, axis, inputs)
    tape, leaves = batch["tape"].rooted(batch["tape_leaves"], _per_sample(axis, n))
    return {
        "step": batch["step"],
        "args": batch["args"],
        "kwargs": batch["kwargs"],
        "tape": tape,
        "leaves": tuple(leaves),
    }


class _TargetRule:
    """Which leaves are the targets and how a replacement goes back into them."""

    def __init__(self, index: list[int], kind: str) -> None:
        self.index, self.kind = index, kind

    def targets(self, batch: Batch) -> Any:
        leaves = batch["leaves"]
        if self.kind == "none":
            return None
        if self.kind in ("one", "same"):
            return leaves[self.index[0]]
        picked = [leaves[i] for i in self.index]
        dtype = _promoted(picked)
        return torch.stack([t.to(dtype) for t in picked], dim=-1)

    def replace(self, batch: Batch, new: Any) -> Batch | None:
        if self.kind == "none" or not isinstance(new, torch.Tensor):
            return None
        leaves = list(batch["leaves"])
        parts = new.unbind(-1) if self.kind == "stacked" else [new] * len(self.index)
        for i, part in zip(self.index, parts, strict=True):
            leaves[i] = part.to(leaves[i].dtype)
        return {**batch, "leaves": tuple(leaves)}


def _promoted(ts: list[torch.Tensor]) -> torch.dtype:
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _target_rule(batches: list[Batch], axis: int, inputs: Callable[[Batch], Any]) -> _TargetRule:
    """The rule every batch agrees on (see the module docstring); no targets otherwise."""
    rules = set()
    for batch in batches:
        test = _per_sample(axis, _batch_size(batch, axis, inputs))
        # A boolean leaf selects samples (a node classifier's training mask): no target.
        index = [i for i, t in enumerate(batch["leaves"]) if test(t) and t.dtype != torch.bool]
        picked = [batch["leaves"][i] for i in index]
        if not index:
            kind = "none"
        elif len(index) == 1:
            kind = "one"
        elif all(t.shape == picked[0].shape for t in picked) and all(
            torch.equal(t.double(), picked[0].double()) for t in picked[1:]
        ):
            kind = "same"
        elif all(t.shape == picked[0].shape for t in picked):
            kind = "stacked"
        else:
            kind = "none"
        rules.add((tuple(index), kind))
    if len(rules) != 1:
        return _TargetRule([], "none")
    index, kind = rules.pop()
    return _TargetRule(list(index), kind)


def _trial(subject: Subject, batch: Batch) -> tuple[int, ...]:
    """Replay the loss on a copy once (eval mode, no gradients, the random generators
    forked: nothing of the copy or the run changes); the model output's shape."""
    model = subject.model
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=_cuda(model)), torch.no_grad():
            out = call_model(model, subject.inputs(batch))
            loss = batch["tape"].replay([out], batch["leaves"])
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TapeError("the replayed loss is not one number")
            first = tensors(out)
            return tuple(first[0].shape) if first else ()
    finally:
        model.train(was)


def _cuts(subject: Subject, batch: Batch) -> bool:
    """Whether a batch cut to fewer samples still replays (no batch size written into the
    loss as a number, no row index of the whole batch among its leaves)."""
    n = _batch_size(batch, subject.batch_axis or 0, subject.inputs)
    if n is None or n < 4:
        return False
    cut = take_samples(batch, list(range(n // 2)), subject)
    try:
        _trial(subject, cut)
    except Exception:  # noqa: BLE001 - any failure: keep batches whole
        return False
    target = subject.targets(cut)
    return not isinstance(target, torch.Tensor) or math.prod(target.shape) < math.prod(
        subject.targets(batch).shape
    )


def _cuda(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


__all__ = ["Tape", "tape_subject"]
