"""Turn what a script run left behind into a Subject for in-process experiments.

This works when the loss is a recognised torch loss applied to the model output
(or a view of it); then a copy of the model can be trained on the captured
batches with exactly the user's loss call. Otherwise no Subject is built and
the experiments say so instead of guessing.
"""

from __future__ import annotations

import ast
import json
import math
import re
import statistics
from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nndoctor.capture.runner import Capture
from nndoctor.copying import deepcopy_detached
from nndoctor.probes.recording import GradClip, Recording
from nndoctor.probes.schedule import hand_warmup_target, recorded_peak
from nndoctor.probes.training import CLASS_INDEX_LOSSES
from nndoctor.subject import OptimizerSpec, Subject, Task, call_model, same_tensors


def captured_task(capture: Capture) -> Task:
    """The task, inferred from the first recognised loss call and its target."""
    for step in capture.recording.steps:
        for call in step.loss_calls:
            return task_from_loss(call.fn, call.input_shape, call.target_shape, call.target_dtype)
    return Task("custom")


def task_from_loss(
    fn: str,
    input_shape: tuple[int, ...],
    target_shape: tuple[int, ...] | None,
    target_dtype: str | None,
) -> Task:
    if fn in CLASS_INDEX_LOSSES and len(input_shape) >= 2:
        return Task.classification(int(input_shape[1]))
    if fn in (
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "multilabel_soft_margin_loss",
    ):
        outputs = 1 if len(input_shape) < 2 else int(torch.Size(input_shape[1:]).numel())
        return Task.binary() if outputs == 1 else Task.multilabel(outputs)
    if fn in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"):
        if len(input_shape) >= 3:
            return Task.reconstruction()
        return Task.regression()
    return Task("custom")


def _select(output: Any, path: str) -> torch.Tensor:
    """Follow a path like ``output[0]['logits']`` recorded by the probe."""
    expr = path.rpartition("|")[2].removeprefix("view:")
    for key in re.findall(r"\[([^\]]+)\]", expr):
        output = output[ast.literal_eval(key)]
    return output


def rearranged(out: torch.Tensor, ops: list[list[Any]]) -> torch.Tensor:
    """``out`` put through the transposes, permutes and casts a probe recorded (see
    ``nndoctor.probes.training.rearrangement``)."""
    for op in ops:
        if op[0] == "transpose":
            out = out.transpose(op[1], op[2])
        elif op[0] == "permute":
            out = out.permute(*op[1:])
        elif op[0] == "to":
            out = out.to(getattr(torch, op[1]))
    return out


ALTERNATING = (
    "the script alternates between optimizers of separate networks, each after its own backward "
    "pass (adversarial or alternating training): a copy of one network trained alone, or the "
    "script fit to a tiny batch, tests none of its objectives"
)


# Update/gradient norm ratios of one step and parameter that agree within this share are
# one learning rate: plain SGD written by hand.
MANUAL_SGD_AGREEMENT = 0.02


def manual_sgd(rec: Recording) -> OptimizerSpec | None:
    """For parameters updated by hand, the SGD the updates are: every update the gradient
    times one rate (|Δp| / |∇p| equal for every parameter and step). None for another rule
    (momentum, weight decay, per-parameter rates) or an optimizer-driven run."""
    if rec.step_source != "manual":
        return None
    ratios = [
        s.update_norms[n] / s.grad_norms[n]
        for s in rec.steps
        for n in s.update_norms
        if s.grad_norms.get(n, 0.0) > 0 and s.update_norms[n] > 0
    ]
    if len(ratios) < 2:
        return None
    rate = statistics.median(ratios)
    if any(abs(r - rate) > MANUAL_SGD_AGREEMENT * rate for r in ratios):
        return None
    return OptimizerSpec.of(torch.optim.SGD, lr=float(f"{rate:.4g}"))


def captured_clip(rec: Recording) -> GradClip | None:
    """The gradient clipping of the observed update rule: the clipping most steps ran, when
    more than half of the steps that updated ran it (clipping now and then is no rule a copy
    can follow); None otherwise."""
    stepped = [s for s in rec.steps if s.update_norms]
    clips = Counter(s.grad_clip for s in stepped if s.grad_clip is not None)
    if not clips:
        return None
    clip, count = clips.most_common(1)[0]
    return clip if 2 * count > len(stepped) else None


def _inputs(batch: dict[str, Any]) -> Any:
    """What the model was called with: its positional arguments, or its keyword arguments
    when it was called with those alone (``model(**encoding)``, a Hugging Face model)."""
    if batch.get("args") or not batch.get("kwargs"):
        return tuple(batch["args"])
    return dict(batch["kwargs"])


def _keywords(batch: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments beside positional ones (``model(frames, n_future=4)``)."""
    return dict(batch.get("kwargs") or {}) if batch.get("args") else {}


def _call(model: nn.Module, batch: dict[str, Any]) -> Any:
    return call_model(model, _inputs(batch), _keywords(batch))


def _with_inputs(batch: dict[str, Any], new: Any) -> dict[str, Any]:
    if isinstance(new, dict):
        return {**batch, "kwargs": dict(new)}
    return {**batch, "args": tuple(new)}


def labelled_row_subsets(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Full-batch training whose loss reads rows picked by an index or a mask (a graph's
    labelled nodes, ``output[idx_train]``): every step's batch is the same, so experiments
    that hold a batch out would hold out the very rows they trained on. The labelled rows
    are dealt into as many disjoint subsets as there were steps kept (the inputs, the whole
    graph, shared): each a batch of its own, so a held-out batch holds other rows. Other
    batches are returned as they are."""
    first = batches[0]
    index = first.get("loss_index")
    target = first.get("targets")
    if (
        len(batches) < 2
        or not isinstance(index, torch.Tensor)
        or not isinstance(target, torch.Tensor)
        or not all(_same_batch(b, first) for b in batches[1:])
    ):
        return batches
    if index.dtype == torch.bool:
        if index.dim() != 1:
            return batches
        index = index.nonzero().squeeze(1)
    if index.dim() != 1 or target.dim() < 1 or target.shape[0] != index.shape[0]:
        return batches
    k = min(len(batches), index.shape[0])
    rest = tuple(first["loss_input_shape"][1:])
    dealt = [(index[i::k], target[i::k]) for i in range(k)]
    return [
        {**first, "loss_index": rows, "targets": t, "loss_input_shape": (len(rows), *rest)}
        for rows, t in dealt
    ]


def _same_batch(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two captured batches hold the same model inputs, targets and loss rows."""
    parts = ("args", "kwargs", "targets", "loss_index")
    return same_tensors([a.get(key) for key in parts], [b.get(key) for key in parts])


def subject_from_capture(capture: Capture) -> tuple[Subject | None, str]:
    """A replayable Subject, or None and the reason it cannot be built."""
    if capture.recording.alternating_objectives:
        return None, ALTERNATING
    if capture.model is None:
        return None, "no model was found"
    batches = [
        b
        for b in capture.batches
        if b.get("loss_fn") and b.get("link") and (b.get("args") or b.get("kwargs"))
    ]
    if not batches:
        if any(b.get("loss_fn") for b in capture.batches):
            return None, (
                "the recognised loss is not applied to the model output directly "
                "(it is computed from a transformed output)"
            )
        return None, "the loss is not a recognised torch loss (a custom loss)"
    if any(b.get("loss_reads_graph") for b in batches):
        return None, (
            "the recognised loss also reads another output of the model (a variance beside "
            "the mean), and a copy rebuilds the loss from one output"
        )
    for step in capture.recording.steps[:3]:
        # Several loss calls each followed by its own backward pass are evaluations of one
        # loss (an LBFGS closure re-evaluated within a step, accumulated micro-batches);
        # several calls under fewer backward passes are terms summed into one loss.
        evaluations = len(step.loss_calls) > 1 and step.backwards >= len(step.loss_calls)
        if len(step.loss_calls) > 1 and not evaluations:
            return None, "the loss combines several terms"
        if step.unrolled:
            # One call of the model stands for one loss evaluation in a replayed batch. A
            # recurrence unrolled in the script (a step per character, the hidden state fed
            # back) or several inputs per loss (siamese branches) need every call.
            return None, (
                f"the model is called {step.forwards} times for each loss (a recurrence unrolled "
                "in the script, or several inputs per loss), and a copy replays one call"
            )
    # The back-propagated loss is the recognised call times one constant (1 without
    # gradient accumulation, 1/k when it is divided over k micro-batches).
    scales = capture.recording.criterion_scales()
    scale = scales[0] if scales else 1.0
    if any(not math.isclose(x, scale, rel_tol=1e-4) for x in scales) or not math.isfinite(scale):
        return None, "the back-propagated loss is not the recognised loss call alone"
    batches = labelled_row_subsets(batches)
    first = batches[0]
    fn = getattr(F, first["loss_fn"])
    fn = getattr(fn, "__wrapped__", fn)
    kwargs = dict(first["loss_kwargs"])
    extra_args = tuple(first.get("loss_args", ()))
    link = first["link"]
    # "rearrange:[ops]|path": the output moved and cast on its way to the loss.
    moves = (
        json.loads(link.removeprefix("rearrange:").rpartition("|")[0])
        if link.startswith("rearrange:")
        else None
    )

    model = deepcopy_detached(capture.model)
    if capture.initial_state is not None:
        model.load_state_dict(capture.initial_state)
    beside = [] if capture.recording.alternating_objectives else capture.other_optimizers
    optimizer = (
        OptimizerSpec.from_optimizers(
            [capture.optimizer, *beside],
            capture.model,
            recorded_peak(capture.recording),
            warmup_target=hand_warmup_target(
                capture.recording, capture.optimizer.defaults.get("lr")
            ),
        )
        if capture.optimizer is not None
        else manual_sgd(capture.recording)
    )
    if optimizer is not None:
        optimizer.grad_clip = captured_clip(capture.recording)

    def loss_input(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The model output the recognised loss was applied to (a view of it, reshaped, or
        its elements rearranged as the script did)."""
        if link.startswith("select:"):
            # Rows picked by index or mask (a graph's labelled nodes, tokens not padding).
            out = _select(_call(model, batch), link.removeprefix("select:"))
            shape = tuple(batch["loss_index_shape"])
            out = out if tuple(out.shape) == shape else out.reshape(shape)
            return out[batch["loss_index"].to(out.device)]
        out = _select(_call(model, batch), link)
        if moves is not None:
            out = rearranged(out, moves)
        reshaped = moves is not None or link.startswith("view:")
        return out.reshape(batch["loss_input_shape"]) if reshaped else out

    def output_loss(prediction: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return fn(prediction, batch["targets"], *extra_args, **kwargs)

    def loss_fn(model: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        return output_loss(loss_input(model, batch), batch)

    subject = Subject(
        model=model,
        batches=lambda: list(batches),
        loss_fn=loss_fn,
        optimizer=optimizer,
        task=captured_task(capture),
        inputs=_inputs,
        keywords=_keywords,
        targets=lambda b: b["targets"],
        replace_inputs=_with_inputs,
        replace_targets=lambda b, new: {**b, "targets": new},
        logits=loss_input if first["loss_fn"] in CLASS_INDEX_LOSSES else None,
        loss_input=loss_input,
        output_loss=output_loss,
        loss_name=first["loss_fn"],
        loss_kwargs=kwargs,
        pretrained=bool(capture.recording.weights_from_elsewhere),
        name=capture.script,
        label_smoothing=float(kwargs.get("label_smoothing", 0.0) or 0.0),
        batch_axis=capture.recording.input_batch_axis(),
        loss_scale=scale,
    )
    return subject, ""
