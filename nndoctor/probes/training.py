"""The training probe: hook sets on a model, its optimizer and the loss calls.

It observes real training steps and writes numbers into a :class:`Recording`.
It never judges. Every hook body runs under a guard: an exception inside a hook
removes that hook set, is recorded as a probe crash, and never reaches the
user's code. Device statistics are gathered per step and copied to the host
once, non-blocking (see :class:`HostTransfer`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import os
import re
import sys
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from nndoctor.probes import stats
from nndoctor.probes.adversarial import AdversarialProbe
from nndoctor.probes.broadcasts import loss_broadcasts
from nndoctor.probes.distributed import local_part
from nndoctor.probes.functions import gradient_multiple
from nndoctor.probes.layers import BATCH_NORM, DROPOUT
from nndoctor.probes.output_range import LAYOUT_NODES, node_name, output_range
from nndoctor.probes.recording import (
    CtcCall,
    DerivativeCall,
    DistributionLogits,
    ElementwiseLoss,
    GradClip,
    HostTransfer,
    LossCall,
    OtherOptimizer,
    PaddingMaskCall,
    ProbeCrash,
    Recording,
    RepeatedForward,
    StepRecord,
    StorageExtent,
    TargetSummary,
    TensorSummary,
    TripletCall,
    activation_from,
    logits_from,
    summary_from,
)
from nndoctor.probes.trace import autograd_nodes, graphless_derivative
from nndoctor.trees import first_tensor, map_tensors, tensors

# Losses recognised by name in torch.nn.functional; nn.*Loss modules call these.
RECOGNISED_LOSSES = (
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "kl_div",
    "multilabel_soft_margin_loss",
    "poisson_nll_loss",
    "gaussian_nll_loss",
)
CLASS_INDEX_LOSSES = ("cross_entropy", "nll_loss")
# Losses on (anchor, positive, negative) embeddings, recorded apart (see TripletCall).
TRIPLET_LOSSES = ("triplet_margin_loss", "triplet_margin_with_distance_loss")
# Losses on values regressed on: their targets may be compared with the input's features.
VALUE_REGRESSION_LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
_SATURATING = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.Hardtanh: "tanh"}
# Layers whose train() mode spoils an evaluation: batch statistics, dropped units.
_MODE_DEPENDENT = BATCH_NORM + DROPOUT
MAX_FINGERPRINTED_STEPS = 64
# Steps in which unreduced loss calls are read (their level at initialisation is what
# loss-not-at-chance needs).
ELEMENTWISE_STEPS = 2
# Steps in which a repeated forward of the same input is looked for (an equality test of
# the inputs and outputs, which waits for the device).
MAX_REPEAT_STEPS = 4
# Steps whose backward passes are searched for broadcasts inside a hand-written loss.
LOSS_BROADCAST_STEPS = 3
# Forwards per backward pass whose outputs bound the loss's graph (a siamese pair, an
# anchor, positive and negative).
PASS_FORWARDS = 4
# Steps whose first attention key padding mask is read against the token ids (which waits
# for the device).
MAX_PADDING_MASK_STEPS = 4
# Backward passes in which custom Functions' backward nodes are watched (a gradient
# reversal's coefficient may start at zero and grow with the step), and how many autograd
# nodes of each pass's graph are searched for them.
CUSTOM_BACKWARD_PASSES = 5
CUSTOM_BACKWARD_NODES = 20000
# Autograd nodes a backward pass's graph is searched through for two forwards' outputs.
REPEAT_GRAPH_LIMIT = 50_000
MAX_EVAL_RECORDS = 32
# Categorical distributions whose logits are read (each read waits for the device).
MAX_DISTRIBUTION_CALLS = 4
# Class-index losses whose per-class ``weight`` is read (its third positional argument
# where not passed by name), up to this many classes.
CLASS_WEIGHTED_LOSSES = frozenset({"cross_entropy", "nll_loss"})
MAX_CLASS_WEIGHTS = 4096
_TORCH_DIR = os.path.dirname(torch.__file__)
_OWN_DIR = os.path.dirname(os.path.dirname(__file__))
_NUMPY_DIR = os.path.dirname(np.__file__)


def _standing_in_for(
    wrapper: Callable[..., Any], original: Callable[..., Any], name: str
) -> Callable[..., Any]:
    """``wrapper`` made to look like the torch function it replaces (name, doc, __wrapped__)."""
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(original, "__name__", name)
    wrapper.__doc__ = original.__doc__
    return wrapper


def user_frame() -> tuple[str | None, int | None]:
    """File and line of the innermost caller outside torch and nndoctor."""
    frame = sys._getframe(1)
    while frame is not None:
        fname = frame.f_code.co_filename
        if not fname.startswith((_TORCH_DIR, _OWN_DIR)) and not fname.startswith("<"):
            return fname, frame.f_lineno
        frame = frame.f_back
    return None, None


# Backward passes after which parameters that have not moved are taken as not updated by
# hand: an update by hand moves them at the first one.
MANUAL_STEP_TRIES = 8


def _record_norms(
    pending: _Pending, params: list[tuple[str, nn.Parameter]], into: dict[str, float]
) -> None:
    """The norms of ``params``, copied to the host with the step, written ``into`` by name."""
    slot = pending.transfer.add(stats.param_norms([p.detach() for _, p in params]))
    names = [n for n, _ in params]
    pending.decoders.append(
        lambda: into.update(zip(names, pending.transfer.get(slot), strict=True))
    )


@dataclass
class _Pending:
    """Device tensors and host facts of the step being observed."""

    record: StepRecord
    transfer: HostTransfer = field(default_factory=HostTransfer)
    decoders: list[Callable[[], None]] = field(default_factory=list)
    seen_modules: set[str] = field(default_factory=set)
    snapshot: list[torch.Tensor] | None = None
    snapshot_names: list[str] = field(default_factory=list)
    started: bool = False
    unscaled_loss: tuple[int, torch.Tensor] | None = None
    # The step's first training forward, and later forwards that repeated it exactly
    # (see RepeatedForward), with both forwards' output nodes until a backward pass.
    first_forward: _FirstForward | None = None
    repeat: RepeatedForward | None = None
    repeats: list[tuple[RepeatedForward, set[Any]]] = field(default_factory=list)


@dataclass
class _FirstForward:
    """The step's first training forward of the model: its first input, its output
    tensors (detached) and autograd nodes, and how many backward passes came before it."""

    input: torch.Tensor
    backwards: int
    outputs: list[tuple[tuple[int, ...], torch.Tensor]] = field(default_factory=list)
    nodes: set[Any] = field(default_factory=set)


def _distinct_samples(x: torch.Tensor) -> bool:
    """Whether ``x`` holds at least two different samples along its first axis."""
    return x.dim() >= 1 and x.shape[0] >= 2 and bool((x != x[:1]).any())


def _output_checksum(t: torch.Tensor) -> tuple[tuple[int, ...], torch.Tensor]:
    """A tensor's shape and (sum, norm), reduced in place: equal for an identical tensor,
    and no copy of a large output is held (a language model's logits)."""
    x = t.detach()
    if not (x.is_floating_point() or x.is_complex()):
        x = x.double()  # ids or indices beside the outputs: small
    return tuple(x.shape), torch.stack([x.sum(), torch.linalg.vector_norm(x)]).to(torch.float64)


# Batches of the observed steps kept for the experiments on copies: the held-out tests of
# the input-label pairing need distinct samples to have any power (see
# Thresholds.pairing_experiment_batches); the other experiments cycle through the first few.
CAPTURED_BATCHES = 8
# ... and past them, small batches until this many samples (a second, larger cross-fit
# needs them), up to MAX_CAPTURED_BATCHES in all: memory stays near eight large batches.
CAPTURED_SAMPLES = 1024
MAX_CAPTURED_BATCHES = 32


def later_measurements(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], first: torch.Tensor
) -> torch.Tensor | None:
    """The first model input after ``first`` (ids) that holds measurements of the same
    samples: floating point or uint8, as long along its first axis as ``first``, and not a
    parameter named as a mask (an additive attention mask is no measurement)."""
    if first.dim() == 0:
        return None
    try:
        bound = _forward_signature(type(module)).bind(None, *args, **kwargs).arguments
    except (TypeError, ValueError):
        return None
    for name, value in list(bound.items())[1:]:
        if "mask" in name.lower():
            continue
        for t in tensors(value):
            if t is first or not (t.is_floating_point() or t.dtype == torch.uint8):
                continue
            if t.dim() >= 1 and t.shape[0] == first.shape[0]:
                return t
    return None


@functools.cache
def _forward_signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls.forward)


# Integer model inputs (ids, a decoder's tokens) whose positions are matched with the targets.
MAX_MATCHED_INPUTS = 4
# Steps whose model inputs are compared with the loader's batch (a copy to another device
# is compared by value, which waits for the device).
MAX_RELABEL_STEPS = 3


def _same_flat_values(t: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``t`` holds ``b``'s values in ``b``'s memory order: the same memory read
    contiguously, or, copied (to another device or dtype), equal values read flat; never
    for a constant ``b``, which any reading matches."""
    if not (t.is_contiguous() and b.is_contiguous()):
        return False
    if t.device == b.device and t.data_ptr() == b.data_ptr():
        return True
    flat = b.detach().reshape(-1)
    if not torch.equal(t.detach().reshape(-1), flat.to(t.device, t.dtype)):
        return False
    return not torch.equal(flat[1:], flat[:-1])


LABEL_KEYWORD = re.compile(r"label|target", re.IGNORECASE)


def as_backward_loss(
    tensor: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> torch.Tensor:
    """The tensor a backward pass starts from, as the scalar loss it is: torch takes any
    one-element tensor with no gradient given as a loss (``-(y * log p)`` of shape (1, 1),
    a bag-level likelihood); read as a scalar, that step's loss is seen like any other.
    Other tensors are returned as they are."""
    given = args[0] if args else kwargs.get("gradient")
    if given is None and tensor.dim() > 0 and tensor.numel() == 1:
        return tensor.reshape(())
    return tensor


def functorch_transforming() -> bool:
    """Whether a ``torch.func`` transform (``vmap``, ``grad``) is running: its tensors are
    per-sample stand-ins that must not leave it (keeping one for later statistics breaks
    torch's internal checks), and they are not the run's tensors anyway, so hooks let them
    pass."""
    peek = getattr(getattr(torch._C, "_functorch", None), "peek_interpreter_stack", None)
    try:
        return peek is not None and peek() is not None
    except Exception:  # noqa: BLE001 - a build without functorch runs no transform
        return False


class TrainingProbe:
    """Observe training steps of ``model`` driven by ``optimizer`` (or by the first
    optimizer that steps the model's parameters, when ``optimizer`` is None).

    Use as a context manager; ``attach_model`` may also be called later (zero-code
    capture discovers the model at its first forward).
    """

    def __init__(
        self,
        recording: Recording | None = None,
        *,
        keep_batches: int = CAPTURED_BATCHES,
        on_step_end: Callable[[int], None] | None = None,
    ) -> None:
        self.recording = recording or Recording()
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.keep_batches = keep_batches
        self.on_step_end = on_step_end
        self.captured_batches: list[dict[str, Any]] = []  # model args + loss targets, by step
        self.captured_samples = 0  # leading sizes of the captured batches' first inputs
        self.steps_done = 0
        self._names: dict[int, str] = {}
        self._params: list[tuple[str, nn.Parameter]] = []
        self._integer_input: torch.Tensor | None = (
            None  # this step's token ids, for next-token targets
        )
        # Every integer tensor the model was called with (ids, a decoder's input tokens).
        self._integer_inputs: list[torch.Tensor] = []
        # This step's float input (batch first), for regression targets copied from it.
        self._float_input: torch.Tensor | None = None
        self._model_handles: list[RemovableHandle] = []
        self._global_handles: list[RemovableHandle] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._disabled: set[str] = set()
        self._pending = _Pending(StepRecord(step=0))
        self._in_flight: list[_Pending] = []
        self._outputs: dict[str, weakref.ReferenceType[torch.Tensor]] = {}
        self._output_nodes: dict[Any, tuple[str, tuple[int, ...]]] = {}
        # The output nodes of the last few training forwards since the last backward pass:
        # where the loss part of the graph ends, for loss_broadcasts. Few, because each
        # holds its graph alive (a forward with gradients that no backward pass follows).
        self._pass_output_nodes: deque[set[Any]] = deque(maxlen=PASS_FORWARDS)
        self._loss_depth = 0
        self._projections: dict[tuple[int, str], torch.Tensor] = {}
        self._input_shape: tuple[int, ...] | None = None
        # The forward met by discovery's global hook, which is handed no keyword arguments:
        # the batch it kept gets them from the model's own hook once the forward returns.
        self._keywords_unseen = False
        # Parameter snapshots for update norms, reused step after step: a fresh copy of
        # every parameter per step costs an allocation (and, on the CPU, page faults).
        self._snapshot: list[torch.Tensor] | None = None
        self._closed = False
        # Steps recorded before the module found first gave way to the network around it
        # (observe_instead): they are not the model observed's.
        self._steps_of_another_model = 0
        # Manual updates (no optimizer object): a step is a forward and backward pass followed
        # by a change of the parameters, found by comparing them with their values at the
        # first forward (once, before any optimizer step; see _manual_boundary).
        self.manual = False
        self._first_checksums: torch.Tensor | None = None
        # Loss calls made inside the model's own forward (a model returning its loss): their
        # input is linked to the output once the forward returns.
        self._in_model_forward = False
        self._deferred_links: list[
            tuple[LossCall, int, int, torch.dtype, tuple[int, ...], int]
        ] = []
        self._unchanged_boundaries = 0
        self._last_input: weakref.ReferenceType[torch.Tensor] | None = None
        # The parameters holding a gradient after the last backward pass (see grads_held).
        self._grads_after_backward: set[str] = set()
        # Gradients a script took with torch.autograd.grad for its own update (no backward
        # pass, no .grad): by parameter id, until the step they belong to ends.
        self._taken: dict[int, torch.Tensor] = {}
        # The tensors of the batch a DataLoader yielded last, set by zero-code capture.
        self.loader_batch: Callable[[], list[torch.Tensor]] | None = None
        # The DataLoader (its index) whose last batch, yielded with gradients off, holds a
        # tensor of the given shape, set by zero-code capture: the source of an evaluation.
        self.evaluated_loader: Callable[[tuple[int, ...]], int | None] | None = None
        # Another network's optimizer stepped (see _note_other_optimizer); since the model's
        # gradient was last zeroed or stepped on, a backward pass reached it, and then
        # another optimizer stepped on that pass's gradient too (see _note_carried).
        self._foreign_seen = False
        self._other_optimizers: dict[int, OtherOptimizer] = {}
        self._reached_model = False
        self._carried = False
        self.on_step_closing: Callable[[], None] | None = None
        self._repeat_input = self._guard("repeats", self._note_repeat_input)
        self._repeat_output = self._guard("repeats", self._note_repeat_output)
        self._repeat_backward = self._guard("repeats", self._note_repeat_backward)
        self._adversarial = AdversarialProbe(self.recording, self._guard)
        self._node_handles: list[RemovableHandle] = []
        self._custom_backwards_watched = 0

    # -- life cycle --------------------------------------------------------------
    def __enter__(self) -> TrainingProbe:
        self.install_global()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def install_global(self) -> None:
        """Install the instrumentation that needs no model: loss calls, backward,
        zero_grad and optimizer steps."""
        import torch.nn.functional as F
        import torch.optim.optimizer as optim_mod

        for name in RECOGNISED_LOSSES:
            original = getattr(F, name, None)
            if original is not None:
                self._patch(F, name, self._wrap_loss(name, original))
        self._patch(F, "ctc_loss", self._wrap_ctc(F.ctc_loss))
        for name in TRIPLET_LOSSES:
            self._patch(F, name, self._wrap_triplet(name, getattr(F, name)))
        self._patch(torch.autograd, "grad", self._wrap_derivative(torch.autograd.grad))
        self._patch(torch.Tensor, "backward", self._wrap_backward(torch.Tensor.backward))
        self._patch(
            torch.optim.Optimizer,
            "zero_grad",
            self._wrap_zero_grad(torch.optim.Optimizer.zero_grad),
        )
        self._patch(nn.Module, "zero_grad", self._wrap_zero_grad(nn.Module.zero_grad))
        self._patch_grad_scaler()
        self._patch_clipping()
        self._patch_distributions()
        self._patch_seeding()
        self._global_handles.append(
            optim_mod.register_optimizer_step_pre_hook(self._guard("optimizer", self._pre_step))
        )
        self._global_handles.append(
            optim_mod.register_optimizer_step_post_hook(self._post_step_outer)
        )
        self._adversarial.install()

    def _patch_grad_scaler(self) -> None:
        """Under a GradScaler the loss is scaled and some steps are skipped on purpose.

        Record the unscaled loss, and mark a step the scaler skipped (no optimizer step
        happened inside ``scaler.step``) so its non-finite gradients are not reported.
        """
        scaler_cls = getattr(torch.amp, "GradScaler", None)
        if scaler_cls is None:
            return
        original_scale, original_step = scaler_cls.scale, scaler_cls.step
        probe = self

        def scale(scaler: Any, outputs: Any) -> Any:
            scaled = original_scale(scaler, outputs)
            if isinstance(outputs, torch.Tensor) and outputs.dim() == 0:
                probe.note_unscaled_loss(scaled, outputs)
            return scaled

        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            before = probe.steps_done
            result = original_step(scaler, optimizer, *args, **kwargs)
            if probe.steps_done == before:  # no optimizer step happened inside scaler.step
                probe.note_skipped_by_scaler(optimizer)
            return result

        self._patch(scaler_cls, "scale", scale)
        self._patch(scaler_cls, "step", step)

    def _patch_seeding(self) -> None:
        """A script that seeds a generator inside its loop (``torch.manual_seed(1)`` before it
        draws a batch) replays the same draws at every step: the global seeding functions
        (torch's, numpy's legacy one, ``random``'s) are wrapped, and a step whose batch
        follows a seed call the script made itself says so (``StepRecord.reseeded``)."""
        import random

        note = self._guard("seeding", self._note_seeded)
        wrapped: dict[int, Callable[..., Any]] = {}
        for owner, name in (
            (torch, "manual_seed"),
            (torch.random, "manual_seed"),
            (np.random, "seed"),
            (random, "seed"),
        ):
            original = getattr(owner, name, None)
            if original is None:
                continue
            if id(original) not in wrapped:
                wrapped[id(original)] = self._wrap_seeding(original, note)
            self._patch(owner, name, wrapped[id(original)])

    @staticmethod
    def _wrap_seeding(original: Callable[..., Any], note: Callable[..., Any]) -> Callable[..., Any]:
        def seed(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            caller = sys._getframe(1).f_code.co_filename
            if not caller.startswith((_TORCH_DIR, _OWN_DIR, _NUMPY_DIR)):
                note()
            return result

        functools.update_wrapper(seed, original)
        return seed

    def _note_seeded(self) -> None:
        self._pending.record.reseeded = True

    def _patch_distributions(self) -> None:
        """A policy or a classifier written with ``torch.distributions`` takes its loss from
        ``Categorical(logits=...).log_prob``: what it is given as logits is the loss input.
        (``OneHotCategorical`` and the relaxed categoricals build a ``Categorical`` inside and
        are seen through it; ``F.gumbel_softmax`` is wrapped on its own.)"""
        import torch.distributions as distributions
        import torch.nn.functional as F

        cls = distributions.Categorical
        self._patch(cls, "__init__", self._wrap_distribution(cls.__name__, cls.__init__))
        self._patch(F, "gumbel_softmax", self._wrap_gumbel_softmax(F.gumbel_softmax))

    def _wrap_gumbel_softmax(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """``F.gumbel_softmax`` samples from the categorical whose logits it is given (a
        categorical VAE's latent, a relaxed discrete choice): its first argument is read as
        a distribution's logits are, along its ``dim``."""
        note = self._guard("distribution", self._note_distribution)

        def gumbel_softmax(logits: Any, *args: Any, **kwargs: Any) -> Any:
            dim = kwargs.get("dim", args[3] if len(args) > 3 else -1)
            if isinstance(logits, torch.Tensor) and isinstance(dim, int):
                note("gumbel_softmax", logits.movedim(dim, -1) if logits.dim() else logits)
            return original(logits, *args, **kwargs)

        functools.update_wrapper(gumbel_softmax, original)
        return gumbel_softmax

    def _wrap_distribution(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        note = self._guard("distribution", self._note_distribution)

        def init(
            dist: Any, probs: Any = None, logits: Any = None, validate_args: Any = None
        ) -> None:
            original(dist, probs, logits, validate_args)
            if logits is not None:
                note(name, logits)

        functools.update_wrapper(init, original)
        return init

    def _note_distribution(self, name: str, logits: Any) -> None:
        """Record the range and row sums of the logits of the first few distributions built
        while the model's steps are observed (each read waits for the device)."""
        rec = self.recording
        if self.model is None or len(rec.distribution_logits) >= MAX_DISTRIBUTION_CALLS:
            return
        if (
            not isinstance(logits, torch.Tensor)
            or not logits.is_floating_point()
            or logits.dim() < 1
            or logits.shape[-1] < 2
            or logits.numel() == 0
        ):
            return
        x = logits.detach()
        lo, hi = torch.aminmax(x)
        deviation = (x.sum(-1) - 1).abs().max()
        file, line = user_frame()
        rec.distribution_logits.append(
            DistributionLogits(
                name,
                self.steps_done,
                tuple(x.shape),
                float(lo),
                float(hi),
                float(deviation),
                file=file,
                line=line,
            )
        )

    def _patch_clipping(self) -> None:
        """Gradient clipping between the backward pass and the update is part of the update
        rule: an experiment that trains a copy without it misjudges the learning rate (SGD at
        lr 5 clipped to norm 0.5 takes steps of at most 2.5; unclipped, it diverges).

        Both module attributes are wrapped: ``torch.nn.utils.clip_grad_norm_`` and the
        ``torch.nn.utils.clip_grad`` function it re-exports, which others call by that path."""
        import torch.nn.utils as nn_utils
        import torch.nn.utils.clip_grad as clip_grad

        for owner in (nn_utils, clip_grad):
            for name, kind in (("clip_grad_norm_", "norm"), ("clip_grad_value_", "value")):
                original = getattr(owner, name, None)
                if original is not None:
                    self._patch(owner, name, self._wrap_clip(kind, original))

    def _wrap_clip(self, kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        note = self._guard("clipping", self._note_clip)

        def clip(parameters: Any, *args: Any, **kwargs: Any) -> Any:
            # A generator of parameters is read once: listed here, handed on as a list.
            params = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
            result = original(params, *args, **kwargs)
            note(kind, params, args, kwargs, result)
            return result

        clip.__wrapped__ = original  # type: ignore[attr-defined]
        clip.__doc__ = original.__doc__
        return clip

    def _note_clip(
        self,
        kind: str,
        params: list[torch.Tensor],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
    ) -> None:
        """Record a clipping call over the model's parameters (another network's is not this
        model's rule); without an optimizer object, read the gradients again once clipped,
        since the update by hand uses them as clipped."""
        if self.model is None:
            return
        ids = {id(p) for p in params}
        covered = tuple(n for n, p in self._params if id(p) in ids)
        if not covered:
            return
        key = "max_norm" if kind == "norm" else "clip_value"
        limit = args[0] if args else kwargs.get(key)
        norm_type = args[1] if kind == "norm" and len(args) > 1 else kwargs.get("norm_type", 2.0)
        if not isinstance(limit, (int, float)) or not isinstance(norm_type, (int, float)):
            return
        pending = self._pending
        rec = pending.record
        rec.grad_clip = GradClip(kind, float(limit), float(norm_type), covered)
        if kind == "norm" and isinstance(result, torch.Tensor) and result.numel() == 1:
            slot = pending.transfer.add(result.detach().reshape(1))
            pending.decoders.append(
                lambda: setattr(rec, "grad_norm_before_clip", pending.transfer.get(slot)[0])
            )
        if self.optimizer is None:
            self._record_grad_norms(pending)

    def attach_model(self, model: nn.Module) -> None:
        """Attach per-module hooks to ``model`` (detaching from a previous one)."""
        self._remove(self._model_handles)
        self.model = model
        rec = self.recording
        self._names = {id(m): n for n, m in model.named_modules()}
        self._params = list(model.named_parameters())
        rec.param_names = [n for n, _ in self._params]
        rec.param_shapes = {n: tuple(p.shape) for n, p in self._params}
        rec.requires_grad = {n: p.requires_grad for n, p in self._params}
        rec.module_types = {n: type(m).__name__ for n, m in model.named_modules()}
        rec.module_classes = {n: type(m) for n, m in model.named_modules()}
        rec.module_files = {
            n: _module_file(m) for n, m in model.named_modules() if _is_user_module(m)
        }
        rec.device = str(next((p.device for _, p in self._params), torch.device("cpu")))
        self._model_handles.append(
            model.register_forward_pre_hook(self._guard("model", self._root_pre), with_kwargs=True)
        )
        self._model_handles.append(
            model.register_forward_hook(self._guard("model", self._root_post), with_kwargs=True)
        )
        for name, module in model.named_modules():
            if isinstance(module, nn.MultiheadAttention):
                self._model_handles.append(
                    module.register_forward_pre_hook(
                        self._guard("padding-mask", self._padding_mask_hook(name)),
                        with_kwargs=True,
                    )
                )
            sat = next((v for k, v in _SATURATING.items() if isinstance(module, k)), None)
            declares = isinstance(getattr(module, "batch_first", None), bool)
            hook = self._make_activation_hook(name, sat, declares)
            self._model_handles.append(
                module.register_forward_hook(self._guard("activations", hook))
            )

    def observe_instead(self, model: nn.Module, args: tuple[Any, ...]) -> None:
        """Observe ``model`` from its forward now starting, in place of the model attached
        before any of its steps was observed: what was gathered for the step in progress
        belongs to the other model and is dropped."""
        self._pending = _Pending(StepRecord(step=self.steps_done + 1))
        self._steps_of_another_model = len(self.recording.steps)
        self._outputs = {}
        self._output_nodes = {}
        self._pass_output_nodes.clear()
        # Its batches were that model's arguments (a backbone's one input, where this
        # model's forward takes two views): copies of this model could not be called on them.
        self.captured_batches = []
        self.captured_samples = 0
        rec = self.recording
        # The other model's no-grad forwards were no evaluation of this one.
        rec.eval_forwards = rec.eval_forwards_in_train_mode = 0
        rec.eval_inputs, rec.eval_input_storages, rec.eval_sample_fingerprints = [], [], []
        rec.eval_steps, rec.eval_fingerprint_steps = [], []
        rec.eval_fingerprint_storages, rec.eval_fingerprint_loaders = [], []
        rec.sequence_layouts = {}
        self.attach_model(model)
        if self.optimizer is not None:
            # Read again for this model's parameters (the network around the module found
            # first, trained by the same optimizer); dropped if it holds none of them.
            optimizer, self.optimizer = self.optimizer, None
            self._is_tracked(optimizer)
        if torch.is_grad_enabled():
            self.begin_step_at(model, args)

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._first_checksums = None
        names = {id(p): n for n, p in self._params}
        self.recording.in_optimizer = {
            names[id(p)] for g in optimizer.param_groups for p in g["params"] if id(p) in names
        }
        self.recording.param_groups = {
            names[id(p)]: i
            for i, g in enumerate(optimizer.param_groups)
            for p in g["params"]
            if id(p) in names
        }
        self.recording.optimizer_class = type(optimizer).__name__

    def close(self) -> None:
        """Remove every hook and patch, then decode what is still in flight."""
        if self._closed:
            return
        self._closed = True
        try:
            self._remove(self._model_handles)
            self._remove(self._global_handles)
            self._remove(self._node_handles)
            self._finish_adversarial()
        finally:
            self._adversarial.remove()
            for owner, name, original in reversed(self._patches):
                setattr(owner, name, original)
            self._patches.clear()
        # A step whose forward/backward ran but whose optimizer step never came
        # (budget hit mid-step, or a crash) still carries useful numbers.
        if self._pending.started and (
            self._pending.record.loss_seen or self._pending.record.forwards
        ):
            self._finish_step(stepped=False)
        for p in self._in_flight:
            p.transfer.wait()
        self._drain()
        self._snapshot = None
        self._output_nodes = {}
        self._pass_output_nodes.clear()
        self._drop_steps_of_another_model()

    def _drop_steps_of_another_model(self) -> None:
        """The steps recorded before the model observed took over from the module found
        first hold that module's inputs, activations and gradients (a backbone's bag of
        instances, where the network takes the bag): they are not this model's steps."""
        steps = self.recording.steps
        if 0 < self._steps_of_another_model < len(steps):
            del steps[: self._steps_of_another_model]

    def _finish_adversarial(self) -> None:
        # Not through _guard: the probe is closed by now, and a guard would skip it.
        try:
            if "adversarial" not in self._disabled:
                self._adversarial.finish()
        except Exception as exc:  # a probe must never break the user's run
            self._adversarial.remove()
            self.recording.crashes.append(
                ProbeCrash("adversarial", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )

    # -- guards and patches --------------------------------------------------------
    def begin_step_at(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """The model was found at its first forward: record that forward as the first
        step's (guarded like every hook: a failure removes the probe, never the run)."""
        self._guard("model", self._root_pre)(module, args, {})
        self._keywords_unseen = True

    def current_input_shape(self) -> tuple[int, ...] | None:
        """The shape of the model input of the last training forward (read when it ran:
        the step's input summary is decoded later)."""
        return self._input_shape

    def last_input(self) -> torch.Tensor | None:
        """The model input of the last training forward, while something still holds it."""
        return self._last_input() if self._last_input is not None else None

    def note_loader(self, index: int | None) -> None:
        """The DataLoader (by its index in the recording) that fed the current step."""
        self._pending.record.loader = index

    def note_unscaled_loss(self, scaled: torch.Tensor, loss: torch.Tensor) -> None:
        """A GradScaler scaled the current step's ``loss`` into ``scaled``: when the loss
        function's result turns out to be ``scaled``, record ``loss`` instead."""
        self._pending.unscaled_loss = (id(scaled), loss.detach())

    def note_skipped_by_scaler(self, optimizer: torch.optim.Optimizer) -> None:
        """A GradScaler skipped ``optimizer``'s update (it found inf/NaN gradients): close the
        current step as not stepped and mark it, so its non-finite gradients are expected."""
        if not (self._pending.started and self._is_tracked(optimizer)):
            return
        self._pending.record.skipped_by_scaler = True
        self.recording.scaler_skipped_steps += 1
        self._guard("optimizer", self._finish_step)(stepped=False)

    def _guard(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            # A hook torch had already gathered for the current call when the probe closed
            # (closed from a global hook of the same forward) finds the probe gone.
            if part in self._disabled or self._closed:
                return None
            if functorch_transforming():
                if part == "model":
                    self.recording.transformed_forwards += 1
                return None
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # a probe must never break the user's run
                self._disabled.add(part)
                self.recording.crashes.append(
                    ProbeCrash(part, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                )
                return None

        return eager(guarded)

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._patches.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    @staticmethod
    def _remove(handles: list[RemovableHandle]) -> None:
        for h in handles:
            h.remove()
        handles.clear()

    def _note_loader_reshapes(self, rec: StepRecord, given: Any) -> None:
        """Record the shapes of the loader's last batch, and which model inputs hold one of
        its tensors in its own memory order under other axis sizes, in the first
        ``MAX_RELABEL_STEPS`` steps."""
        if self.loader_batch is None or len(self.recording.steps) >= MAX_RELABEL_STEPS:
            return
        batch = self.loader_batch()
        rec.loader_shapes = [tuple(b.shape) for b in batch]
        for t in tensors(given)[:MAX_MATCHED_INPUTS]:
            for b in batch:
                if t.numel() == b.numel() > 1 and t.shape != b.shape and _same_flat_values(t, b):
                    rec.loader_reshapes.append((tuple(b.shape), tuple(t.shape)))

    # -- model hooks ---------------------------------------------------------------
    def _root_pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not torch.is_grad_enabled():
            self._record_eval_forward(module, args, kwargs)
            return None
        self._manual_boundary()
        self._in_model_forward = True
        pending = self._pending
        rec = pending.record
        if module.training and rec.forwards and not rec.model_training and not rec.backwards:
            self._restart_at_training_forward()
            pending = self._pending
            rec = pending.record
        rec.forwards += 1
        rec.training_forwards += int(module.training)
        if len(self.recording.steps) < MAX_REPEAT_STEPS:
            self._repeat_input(rec, args, kwargs)
        if rec.forwards > 1:
            return None
        pending.started = True
        rec.model_training = module.training
        rec.modules_in_eval = [
            self._names.get(id(m), "?") for m in module.modules() if not m.training
        ]
        present = [p.grad for _, p in self._params if p.grad is not None]
        rec.grads_present_at_forward = bool(present)
        if present:
            # Zeroed by hand (p.grad.zero_()) or accumulated: the norm tells them apart.
            slot = pending.transfer.add(
                torch.linalg.vector_norm(stats.param_norms(present)).reshape(1)
            )
            pending.decoders.append(
                lambda: setattr(rec, "grad_norm_at_forward", pending.transfer.get(slot)[0])
            )
        x = first_tensor(args) if args else first_tensor(tuple(kwargs.values()))
        integer = x is not None and stats.holds_ids(x)
        # Labels handed to the model for a loss computed inside (``labels=``) are no input.
        given = (args, {k: v for k, v in kwargs.items() if not LABEL_KEYWORD.search(k)})
        integers = [t for t in tensors(given) if stats.holds_ids(t)][:MAX_MATCHED_INPUTS]
        self._integer_inputs = [t.detach() for t in integers]
        # The first input, when it holds ids, is one of them: the same detached tensor, so
        # that its next-position match is computed once.
        first = next(
            (d for t, d in zip(integers, self._integer_inputs, strict=True) if t is x), None
        )
        if first is None and integer:
            first = x.detach()  # type: ignore[union-attr]
        self._integer_input = first
        self._float_input = (
            x.detach() if x is not None and x.is_floating_point() and x.dim() >= 2 else None
        )
        self._input_shape = tuple(x.shape) if x is not None else None
        if x is not None and x.numel():
            rec.input_storage_share = _row_share(x)
            rec.input_storage = StorageExtent.of(x)
            last = self._last_input() if self._last_input is not None else None
            rec.input_same_object = last is x
            self._last_input = weakref.ref(x)
        self._note_loader_reshapes(rec, given)
        self._add_other_inputs(pending, [t for t in tensors(given) if t is not x])
        if x is not None and x.is_floating_point() or (x is not None and x.dtype == torch.uint8):
            self._add_tensor_summary(pending, x, "inputs")
        elif x is not None:
            rec.inputs = TensorSummary(tuple(x.shape), str(x.dtype).replace("torch.", ""))
            columns = later_measurements(module, args, kwargs, x)
            if columns is not None:
                self._add_tensor_summary(pending, columns, "columns")
        if x is not None and x.dim() >= 1 and len(self.recording.steps) < MAX_FINGERPRINTED_STEPS:
            self._add_sample_fingerprints(pending, x, rec.sample_fingerprints)
        if self._keeps_capturing(x):
            self.captured_samples += int(x.shape[0]) if x is not None and x.dim() else 1
            self.captured_batches.append(
                {
                    "step": rec.step,
                    "args": map_tensors(lambda t: t.detach(), args),
                    "kwargs": map_tensors(lambda t: t.detach(), kwargs),
                    "targets": None,
                }
            )
        return None

    def _restart_at_training_forward(self) -> None:
        """The step's forwards so far ran in eval mode with gradients on, and nothing was
        back-propagated since: an evaluation pass that forgot ``torch.no_grad()`` (a
        validation loss computed after the update, as pygcn does), not this step's. The
        step starts at this forward in training mode: what those forwards gathered (their
        input, activations, loss calls, kept batch) is dropped; a ``zero_grad`` since is
        kept."""
        old = self._pending.record
        if self.captured_batches and self.captured_batches[-1]["step"] == old.step:
            dropped = self.captured_batches.pop()
            x = first_tensor(tuple(dropped["args"]) or tuple(dropped["kwargs"].values()))
            self.captured_samples -= int(x.shape[0]) if x is not None and x.dim() else 1
        self._pending = _Pending(StepRecord(step=old.step, zero_grad_called=old.zero_grad_called))
        self._outputs = {}
        self._output_nodes = {}
        self._pass_output_nodes.clear()

    def _keeps_capturing(self, x: torch.Tensor | None) -> bool:
        """Whether this step's batch is kept for the experiments: the first ``keep_batches``,
        then more while they hold fewer than CAPTURED_SAMPLES samples in all."""
        n = len(self.captured_batches)
        if n < self.keep_batches:
            return True
        return n < MAX_CAPTURED_BATCHES and self.captured_samples < CAPTURED_SAMPLES

    def _record_eval_forward(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """A forward with gradients off: evaluation. Its inputs feed the split checks."""
        rec = self.recording
        rec.eval_forwards += 1
        if module.training and any(isinstance(m, _MODE_DEPENDENT) for m in module.modules()):
            rec.eval_forwards_in_train_mode += 1
        if len(rec.eval_inputs) >= MAX_EVAL_RECORDS:
            return
        x = first_tensor(args) if args else first_tensor(tuple(kwargs.values()))
        if x is None or not (x.is_floating_point() or x.dtype == torch.uint8):
            return
        if x.numel():
            rec.eval_input_storages.append(StorageExtent.of(x))
        pending = _Pending(StepRecord(step=-1))
        self._add_tensor_summary(pending, x, "inputs")
        fingerprints: list[float] = []
        if x.dim() >= 1:
            self._add_sample_fingerprints(pending, x, fingerprints)
        record = pending.record
        done = self.steps_done
        storage = StorageExtent.of(x) if x.layout == torch.strided and x.numel() else None
        loader = self.evaluated_loader(tuple(x.shape)) if self.evaluated_loader else None

        def store() -> None:
            if record.inputs is not None:
                rec.eval_inputs.append(record.inputs)
                rec.eval_steps.append(done)
            rec.eval_sample_fingerprints.extend(fingerprints)
            rec.eval_fingerprint_steps.extend([done] * len(fingerprints))
            rec.eval_fingerprint_storages.extend([storage] * len(fingerprints))
            rec.eval_fingerprint_loaders.extend([loader] * len(fingerprints))

        pending.decoders.append(store)
        pending.transfer.launch()
        self._in_flight.append(pending)

    def record_evaluation_past_budget(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """An evaluation forward of the model met after the probe closed (the script followed
        past its budget to its first evaluation pass): its inputs join those seen within the
        budget, for the split checks. Never raises into the script."""
        try:
            self._record_eval_forward(module, args, {})
            for pending in self._in_flight:
                pending.transfer.wait()
            self._drain()
        except Exception as exc:  # a probe must never break the user's run
            self.recording.crashes.append(
                ProbeCrash("evaluation", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            )

    _EVALUATION_LISTS = (
        "eval_inputs",
        "eval_steps",
        "eval_input_storages",
        "eval_sample_fingerprints",
        "eval_fingerprint_steps",
        "eval_fingerprint_storages",
        "eval_fingerprint_loaders",
    )

    def evaluation_marks(self) -> tuple[int, ...]:
        """How much evaluation data is recorded now (see ``forget_evaluation_since``)."""
        rec = self.recording
        return (
            *(len(getattr(rec, name)) for name in self._EVALUATION_LISTS),
            rec.eval_forwards,
            rec.eval_forwards_in_train_mode,
        )

    def forget_evaluation_since(self, marks: tuple[int, ...]) -> None:
        """Drop the evaluation data recorded after ``marks``: forwards past the budget that
        turned out to be no evaluation pass."""
        rec = self.recording
        for name, size in zip(self._EVALUATION_LISTS, marks, strict=False):
            del getattr(rec, name)[size:]
        rec.eval_forwards, rec.eval_forwards_in_train_mode = marks[-2:]

    def _add_sample_fingerprints(
        self, pending: _Pending, x: torch.Tensor, into: list[float]
    ) -> None:
        """One number per sample (a fixed random projection), to find samples shared across splits."""
        flat = x.detach().reshape(x.shape[0], -1)
        key = (flat.shape[1], str(flat.device))
        proj = self._projections.get(key)
        if proj is None:
            proj = self._projections[key] = sample_projection(flat.shape[1], flat.device)
        slot = pending.transfer.add(flat.float() @ proj)
        pending.decoders.append(lambda: into.extend(pending.transfer.get(slot)))

    def _root_post(self, module: nn.Module, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        if not torch.is_grad_enabled():
            return None
        if self._keywords_unseen:
            self._keep_keywords(kwargs)
        paths = _tensors_with_paths(output)
        if len(self.recording.steps) < MAX_REPEAT_STEPS:
            self._repeat_output([t for _, t in paths])
        self._outputs = {path: weakref.ref(t) for path, t in paths}
        # The outputs' autograd nodes, held until the next forward or step: a loss input
        # made from an output (``model(x).transpose(1, 2)``) outlives the output's Python
        # object, which only its graph then remembers.
        self._output_nodes = {
            t.grad_fn: (path, tuple(t.shape)) for path, t in paths if t.grad_fn is not None
        }
        if len(self.recording.steps) < LOSS_BROADCAST_STEPS:
            self._pass_output_nodes.append(set(self._output_nodes))
        self._in_model_forward = False
        self._link_deferred()
        return None

    def _keep_keywords(self, kwargs: dict[str, Any]) -> None:
        """The keyword arguments of the forward discovery met (``model(frames, n_future=4)``),
        into the batch kept for it: replayed without them, the call would fail or differ."""
        self._keywords_unseen = False
        kept = self.captured_batches[-1] if self.captured_batches else None
        if kwargs and kept is not None and kept["step"] == self._pending.record.step:
            if not kept["kwargs"]:
                kept["kwargs"] = map_tensors(lambda t: t.detach(), kwargs)

    def _padding_mask_hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            mask = kwargs.get("key_padding_mask", args[3] if len(args) > 3 else None)
            rec = self._pending.record
            if (
                isinstance(mask, torch.Tensor)
                and mask.dim() == 2
                and torch.is_grad_enabled()
                and not rec.padding_masks
                and len(self.recording.steps) < MAX_PADDING_MASK_STEPS
            ):
                self._note_padding_mask(rec, name, mask)

        return hook

    def _note_padding_mask(self, rec: StepRecord, name: str, mask: torch.Tensor) -> None:
        """The first key padding mask of the step, against the model's token ids of its shape
        (batch first, or sequence first and transposed): of the integer inputs that fit, the
        one with the most distinct values (the ids, not a 0/1 attention mask)."""
        ignored = mask if mask.dtype == torch.bool else mask < -1e4
        fitting = [
            ids if ids.shape == mask.shape else ids.t()
            for ids in self._integer_inputs
            if ids.dim() == 2
            and ids.device == mask.device
            and mask.shape in (ids.shape, ids.t().shape)
        ]
        if not fitting:
            return
        ids = max(fitting, key=lambda t: t.unique().numel())
        rec.padding_masks.append(
            PaddingMaskCall(
                module=name,
                ignored=int(ignored.sum()),
                attended=int((~ignored).sum()),
                ignored_ids=int(ids[ignored].unique().numel()),
                attended_ids=int(ids[~ignored].unique().numel()),
            )
        )

    def _note_repeat_input(
        self, rec: StepRecord, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Keep the step's first forward's input; a later forward before any backward pass
        given the same values is a candidate repeat, confirmed by its output."""
        pending = self._pending
        pending.repeat = None
        x = first_tensor(args) if args else first_tensor(tuple(kwargs.values()))
        if x is None or not x.numel():
            return
        first = pending.first_forward
        if rec.forwards == 1 or first is None:
            pending.first_forward = _FirstForward(x.detach(), rec.backwards)
            return
        if rec.backwards != first.backwards:
            # A backward pass in between: another evaluation of the same batch (an LBFGS
            # closure, sharpness-aware steps), not a second view beside the first.
            return
        a = first.input
        if x.shape != a.shape or x.dtype != a.dtype or x.device != a.device:
            return
        rec.forwards_compared += 1
        same = x.data_ptr() == a.data_ptr() and x.stride() == a.stride()
        if (same or torch.equal(x.detach(), a)) and _distinct_samples(a):
            # A batch of distinct samples met again exactly is no chance; one state (a
            # rollout back at its start) or one sample repeated recurs by itself.
            file, line = user_frame()
            pending.repeat = RepeatedForward(rec.forwards, same, file=file, line=line)

    def _note_repeat_output(self, outputs: list[torch.Tensor]) -> None:
        pending = self._pending
        first = pending.first_forward
        if first is None:
            return
        repeat, pending.repeat = pending.repeat, None
        if pending.record.forwards == 1:
            first.outputs = [_output_checksum(t) for t in outputs]
            first.nodes = {t.grad_fn for t in outputs if t.grad_fn is not None}
            return
        if repeat is None or not first.nodes or len(outputs) != len(first.outputs):
            return
        checksums = [_output_checksum(t) for t in outputs]
        if all(
            shape == other_shape and torch.equal(sums, other_sums)
            for (shape, sums), (other_shape, other_sums) in zip(
                checksums, first.outputs, strict=True
            )
        ):
            nodes = {t.grad_fn for t in outputs if t.grad_fn is not None}
            if nodes:
                pending.record.repeated_forwards.append(repeat)
                pending.repeats.append((repeat, nodes))

    def _note_repeat_backward(self, tensor: torch.Tensor) -> None:
        """Whether this backward pass's graph holds the first forward's output and a repeat's:
        then one loss compares an output with the same output again."""
        pending = self._pending
        first = pending.first_forward
        if not pending.repeats or first is None or tensor.grad_fn is None:
            return
        reached: set[Any] = set()
        stack = [tensor.grad_fn]
        while stack and len(reached) < REPEAT_GRAPH_LIMIT:
            node = stack.pop()
            if node is None or node in reached:
                continue
            reached.add(node)
            stack.extend(n for n, _ in node.next_functions)
        if reached.isdisjoint(first.nodes):
            return
        for repeat, nodes in pending.repeats:
            if not reached.isdisjoint(nodes):
                repeat.in_one_loss = True
        pending.repeats = []

    def _link_deferred(self) -> None:
        """Link the loss calls made inside the forward to the output it returned: the loss
        input is one of the returned tensors, or a view of one (``logits.view(-1, V)``)."""
        deferred, self._deferred_links = self._deferred_links, []
        for call, ptr, numel, dtype, shape, batch_index in deferred:
            for path, ref in self._outputs.items():
                t = ref()
                if t is None or t.data_ptr() != ptr or t.numel() != numel or t.dtype != dtype:
                    continue
                call.linked_to_output = path if tuple(t.shape) == shape else f"view:{path}"
                if 0 <= batch_index < len(self.captured_batches):
                    self.captured_batches[batch_index]["link"] = call.linked_to_output
                break

    def _make_activation_hook(
        self, name: str, saturating: str | None, declares_layout: bool = False
    ) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if not torch.is_grad_enabled():
                return
            pending = self._pending
            if name in pending.seen_modules:
                return
            layouts = self.recording.sequence_layouts
            if declares_layout and name not in layouts and args:
                # Where this layer keeps the batch (batch_first), and its input's shape: how
                # the model input is laid out (sequence-first or not) follows from them.
                x = args[0] if isinstance(args[0], torch.Tensor) else None
                if x is not None:
                    layouts[name] = (bool(module.batch_first), tuple(x.shape))
            out = output if isinstance(output, torch.Tensor) else first_tensor(output)
            if out is None or not out.is_floating_point():
                return
            pending.seen_modules.add(name)
            slot = pending.transfer.add(stats.activation_stats(out, saturating))
            rec = pending.record
            pending.decoders.append(
                lambda: rec.activations.__setitem__(
                    name, activation_from(pending.transfer.get(slot))
                )
            )
            if out.requires_grad:
                out.register_hook(self._guard("gradients", self._make_grad_hook(pending, name)))

        return hook

    def _make_grad_hook(self, pending: _Pending, name: str) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            if pending is not self._pending:
                return
            slot = pending.transfer.add(torch.linalg.vector_norm(grad.detach().float()).reshape(1))
            rec = pending.record
            pending.decoders.append(
                lambda: rec.output_grad_norms.__setitem__(name, pending.transfer.get(slot)[0])
            )

        return hook

    def _add_other_inputs(self, pending: _Pending, others: list[torch.Tensor]) -> None:
        others = [t for t in others if t.layout == torch.strided and t.numel()][:MAX_MATCHED_INPUTS]
        if not others:
            return
        with torch.no_grad():
            slot = pending.transfer.add(torch.cat([stats.fingerprint(t.detach()) for t in others]))
        rec = pending.record

        def decode() -> None:
            rec.other_inputs = [float(v) for v in pending.transfer.get(slot)]

        pending.decoders.append(decode)

    def _add_tensor_summary(self, pending: _Pending, x: torch.Tensor, kind: str) -> None:
        slot = pending.transfer.add(stats.tensor_stats(x))
        ch = stats.channel_stats(x) if x.dim() >= 2 else None
        ch_slot = pending.transfer.add(ch) if ch is not None else None
        shape, dtype = tuple(x.shape), str(x.dtype).replace("torch.", "")
        rec = pending.record

        def decode() -> None:
            s = TensorSummary(**summary_from(pending.transfer.get(slot), shape, dtype))
            if ch_slot is not None:
                values = pending.transfer.get(ch_slot)
                c = len(values) // 3
                s.channel_mean, s.channel_std = values[:c], values[c : 2 * c]
                s.channel_kurtosis = values[2 * c :]
            setattr(rec, kind, s)

        pending.decoders.append(decode)

    # -- loss, backward, zero_grad -------------------------------------------------
    def _wrap_loss(self, fn_name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        record_call = self._guard("loss", self._record_loss_call)

        def loss_wrapper(*args: Any, **kwargs: Any) -> Any:
            self._loss_depth += 1
            try:
                out = original(*args, **kwargs)
            finally:
                self._loss_depth -= 1
            if self._loss_depth == 0 and torch.is_grad_enabled():
                record_call(fn_name, args, kwargs, out)
            return out

        return _standing_in_for(loss_wrapper, original, fn_name)

    def _wrap_ctc(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """CTC takes lengths beside its inputs and targets, so it is not one of the
        recognised (input, target) losses; what makes a call of it ill-posed is recorded."""
        record_call = self._guard("loss", self._record_ctc_call)

        def ctc_wrapper(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if torch.is_grad_enabled():
                record_call(args, kwargs, out)
            return out

        return _standing_in_for(ctc_wrapper, original, "ctc_loss")

    def _wrap_triplet(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        """A triplet loss takes three embeddings and no target: it is not one of the
        recognised (input, target) losses; how its arguments lie at the step is recorded."""
        record_call = self._guard("loss", self._record_triplet_call)

        def triplet_wrapper(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if torch.is_grad_enabled():
                record_call(name, args, kwargs, out)
            return out

        return _standing_in_for(triplet_wrapper, original, name)

    def _record_triplet_call(
        self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        import torch.nn.functional as F

        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return
        pending = self._pending
        if pending.record.triplet_calls:
            return  # the first call of a step
        names = ("anchor", "positive", "negative")
        bound = dict(zip(names, args, strict=False)) | {
            k: v for k, v in kwargs.items() if k in names
        }
        anchor, positive, negative = (bound.get(k) for k in names)
        if not all(isinstance(t, torch.Tensor) for t in (anchor, positive, negative)):
            return
        assert isinstance(anchor, torch.Tensor) and isinstance(positive, torch.Tensor)
        assert isinstance(negative, torch.Tensor)
        if anchor.dim() != 2 or not anchor.shape == positive.shape == negative.shape:
            return
        if name == "triplet_margin_loss":
            norm = kwargs.get("p", args[4] if len(args) > 4 else 2.0)
            eps = kwargs.get("eps", args[5] if len(args) > 5 else 1e-6)

            def distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return F.pairwise_distance(x, y, float(norm), float(eps))

        else:
            chosen = kwargs.get("distance_function", args[3] if len(args) > 3 else None)
            distance = chosen if callable(chosen) else F.pairwise_distance
        ops = [producing_op(t) for t in (anchor, positive, negative)]
        file, line = user_frame()
        call = TripletCall(
            samples=int(anchor.shape[0]),
            same_source=len(set(ops)) == 1
            and not any(_picked_by_index(t) for t in (anchor, positive, negative)),
            op=ops[0],
            file=file,
            line=line,
        )
        pending.record.triplet_calls.append(call)
        slot = pending.transfer.add(
            stats.positive_farther(anchor.detach(), positive.detach(), negative.detach(), distance)
        )

        def decode() -> None:
            call.positive_farther = int(pending.transfer.get(slot)[0])

        pending.decoders.append(decode)

    def _wrap_derivative(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """``torch.autograd.grad``: a derivative taken without its graph is recorded (see
        ``DerivativeCall``); the call itself is the user's, unchanged."""
        record_call = self._guard("derivatives", self._record_derivative_call)
        taken = self._guard("manual", self._note_gradients_taken)

        def grad_wrapper(*args: Any, **kwargs: Any) -> Any:
            if torch.is_grad_enabled():
                record_call(args, kwargs)
            # ``inputs`` given as ``model.parameters()``, a generator the call consumes:
            # held as a tuple (the same tensors, in order) so they can be read after it.
            if len(args) > 1 and isinstance(args[1], Iterator):
                args = (args[0], tuple(args[1]), *args[2:])
            elif isinstance(kwargs.get("inputs"), Iterator):
                kwargs = {**kwargs, "inputs": tuple(kwargs["inputs"])}
            result = original(*args, **kwargs)
            taken(args, kwargs, result)
            return result

        return _standing_in_for(grad_wrapper, original, "grad")

    def _note_gradients_taken(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
    ) -> None:
        """``grads = torch.autograd.grad(loss, model.parameters())`` followed by an update by
        hand (``p -= lr * g``): the backward pass of a step that no optimizer takes. Read
        only while no optimizer steps the model, for a one-element loss and without
        ``create_graph`` (a meta-learning inner step feeds fast weights, not an update)."""
        if self.optimizer is not None or self.model is None or not isinstance(result, tuple):
            return
        # torch.autograd.grad(outputs, inputs, grad_outputs, retain_graph, create_graph, ...)
        outputs = tensors(args[0] if args else kwargs.get("outputs"))
        inputs = tensors(args[1] if len(args) > 1 else kwargs.get("inputs"))
        given = tensors(args[2] if len(args) > 2 else kwargs.get("grad_outputs"))
        create_graph = args[4] if len(args) > 4 else kwargs.get("create_graph", False)
        if create_graph or given or len(outputs) != 1 or outputs[0].numel() != 1:
            return
        trainable = {id(p) for _, p in self._params if p.requires_grad}
        grads = {
            id(p): g
            for p, g in zip(inputs, result, strict=False)
            if id(p) in trainable and isinstance(g, torch.Tensor)
        }
        if not grads:
            return
        self._taken = grads
        rec = self.recording
        rec.gradients_taken += 1
        if rec.gradients_taken == 1:
            reached = {id(leaf) for leaf in graph_leaves(outputs[0])}
            rec.gradients_not_taken = [
                n for n, p in self._params if id(p) in reached and id(p) in trainable - grads.keys()
            ]
        self._note_backward(outputs[0].reshape(()))
        self._after_backward()

    def _grad(self, p: torch.Tensor) -> torch.Tensor | None:
        """The gradient of ``p`` the step uses: its ``.grad``, or one the script took with
        ``torch.autograd.grad`` for an update by hand."""
        return p.grad if p.grad is not None else self._taken.get(id(p))

    def _record_derivative_call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not graphless_derivative(args, kwargs):
            return
        calls = self._pending.record.derivative_calls
        if len(calls) < 4:
            file, line = user_frame()
            calls.append(DerivativeCall(file=file, line=line))

    def _record_ctc_call(self, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return
        names = ("log_probs", "targets", "input_lengths", "target_lengths", "blank")
        bound = dict(zip(names, args, strict=False)) | {
            k: v for k, v in kwargs.items() if k in names
        }
        log_probs, targets = bound.get("log_probs"), bound.get("targets")
        if not isinstance(log_probs, torch.Tensor) or not isinstance(targets, torch.Tensor):
            return
        if log_probs.dim() not in (2, 3):
            return
        lengths = [
            v if isinstance(v, torch.Tensor) else torch.as_tensor(v)
            for v in (bound.get("input_lengths"), bound.get("target_lengths"))
        ]
        blank = int(bound.get("blank", 0))
        pending = self._pending
        if len(pending.record.ctc_calls) >= 4:
            return
        file, line = user_frame()
        call = CtcCall(
            blank=blank,
            classes=int(log_probs.shape[-1]),
            log_probs_shape=tuple(log_probs.shape),
            input_op=producing_op(log_probs),
            file=file,
            line=line,
        )
        pending.record.ctc_calls.append(call)
        slot = pending.transfer.add(
            stats.ctc_facts(log_probs.detach(), targets.detach(), *lengths, blank)
        )

        def decode() -> None:
            blanks, outside, short, off = pending.transfer.get(slot)
            call.blank_labels, call.labels_outside = int(blanks), int(outside)
            call.too_short, call.normalisation_error = int(short), float(off)

        pending.decoders.append(decode)

    def _record_loss_call(
        self, fn_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any
    ) -> None:
        if (
            isinstance(out, torch.Tensor)
            and out.dim() > 0
            and out.requires_grad
            and kwargs.get("reduction") == "none"
        ):
            self._record_elementwise(fn_name, args, kwargs, out)
            return
        if not isinstance(out, torch.Tensor) or out.dim() != 0 or not out.requires_grad:
            return
        pending = self._pending
        rec = pending.record
        if len(rec.loss_calls) >= 8:
            return
        inp = args[0] if args else kwargs.get("input")
        target = args[1] if len(args) > 1 else kwargs.get("target")
        if not isinstance(inp, torch.Tensor):
            return
        extra = {k: _describe_kwarg(v) for k, v in kwargs.items() if k not in ("input", "target")}
        extra.update({f"arg{i}": _describe_kwarg(v) for i, v in enumerate(args[2:], start=2)})
        file, line = user_frame()
        link, layout = self._link(inp)
        selection = output_selection(inp, self._output_nodes) if link is None else None
        if selection is not None:
            link = f"select:{selection[0]}"
        call = LossCall(
            fn=fn_name,
            input_shape=tuple(inp.shape),
            target_shape=tuple(target.shape) if isinstance(target, torch.Tensor) else None,
            input_dtype=str(inp.dtype).replace("torch.", ""),
            target_dtype=str(target.dtype).replace("torch.", "")
            if isinstance(target, torch.Tensor)
            else None,
            kwargs=extra,
            linked_to_output=link,
            input_layout=layout,
            input_op=producing_op(inp),
            input_range=output_range(inp),
            file=file,
            line=line,
        )
        rec.loss_calls.append(call)
        if (
            len(rec.loss_calls) == 1
            and self.captured_batches
            and self.captured_batches[-1]["step"] == rec.step
        ):
            self.captured_batches[-1]["targets"] = (
                target.detach() if isinstance(target, torch.Tensor) else None
            )
            self.captured_batches[-1]["loss_fn"] = fn_name
            others = {k: v for k, v in kwargs.items() if k not in ("input", "target")}
            # A further argument computed by the model (the variance of gaussian_nll_loss
            # beside the mean) is kept detached, and said to be a model output.
            self.captured_batches[-1]["loss_reads_graph"] = any(
                isinstance(v, torch.Tensor) and v.requires_grad
                for v in (*args[2:], *others.values())
            )
            self.captured_batches[-1]["loss_kwargs"] = {
                k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in others.items()
            }
            self.captured_batches[-1]["loss_args"] = tuple(
                a.detach() if isinstance(a, torch.Tensor) else a for a in args[2:]
            )
            self.captured_batches[-1]["link"] = call.linked_to_output
            self.captured_batches[-1]["loss_input_shape"] = tuple(inp.shape)
            if selection is not None:
                # The rows the loss reads, by index or mask, and the shape they were picked
                # in: a copy picks the same rows of its own output.
                self.captured_batches[-1]["loss_index"] = selection[1]
                self.captured_batches[-1]["loss_index_shape"] = selection[2]
        if call.linked_to_output is None and self._in_model_forward:
            first = len(rec.loss_calls) == 1 and bool(self.captured_batches)
            index = len(self.captured_batches) - 1 if first else -1
            self._deferred_links.append(
                (call, inp.data_ptr(), inp.numel(), inp.dtype, tuple(inp.shape), index)
            )
        if (
            len(rec.loss_calls) == 1
            and isinstance(target, torch.Tensor)
            and target.dim() >= 1
            and target.numel()
            and len(self.recording.steps) < MAX_FINGERPRINTED_STEPS
        ):
            self._add_sample_fingerprints(pending, target, rec.target_fingerprints)
        value_slot = pending.transfer.add(out.detach().reshape(1))
        acc = _accuracy(fn_name, inp, target, kwargs)
        acc_slot = pending.transfer.add(acc.reshape(1)) if acc is not None else None
        prior = stats.constant_prior_loss(fn_name, inp, target, kwargs)
        prior_slot = pending.transfer.add(prior.reshape(1)) if prior is not None else None
        class_dim = 1 if inp.dim() > 1 else 0
        in_slot = pending.transfer.add(stats.logit_stats(inp, class_dim))
        weight = kwargs.get("weight", args[2] if len(args) > 2 else None)
        # Class weights are a constant of the loss: read once, at the first step's first
        # loss call (the one class-imbalance judges), not copied to the host every step.
        w_slot = (
            pending.transfer.add(weight)
            if not self.recording.steps
            and len(rec.loss_calls) == 1
            and fn_name in CLASS_WEIGHTED_LOSSES
            and isinstance(weight, torch.Tensor)
            and weight.dim() == 1
            and 1 < weight.numel() <= MAX_CLASS_WEIGHTS
            else None
        )
        ignore = kwargs.get("ignore_index", -100)
        t_slots = self._target_slots(
            pending, fn_name, inp, target, ignore if isinstance(ignore, int) else -100
        )

        def decode() -> None:
            call.value = pending.transfer.get(value_slot)[0]
            if acc_slot is not None:
                call.accuracy = pending.transfer.get(acc_slot)[0]
            if prior_slot is not None:
                call.prior = pending.transfer.get(prior_slot)[0]
            call.input_stats = logits_from(pending.transfer.get(in_slot))
            if w_slot is not None:
                call.class_weights = pending.transfer.get(w_slot)
            if t_slots is not None:
                call.target = t_slots()

        pending.decoders.append(decode)

    def _record_elementwise(
        self, fn_name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: torch.Tensor
    ) -> None:
        """An unreduced loss in one of the first steps: the mean of its elements (and of its
        float targets and their squares), copied to the host with the step's other facts."""
        pending = self._pending
        rec = pending.record
        if len(self.recording.steps) >= ELEMENTWISE_STEPS or len(rec.elementwise_losses) >= 4:
            return
        inp = args[0] if args else kwargs.get("input")
        target = args[1] if len(args) > 1 else kwargs.get("target")
        if not isinstance(inp, torch.Tensor) or out.numel() == 0:
            return
        extra = {
            k: _describe_kwarg(v)
            for k, v in kwargs.items()
            if k not in ("input", "target", "reduction")
        }
        file, line = user_frame()
        call = ElementwiseLoss(
            fn=fn_name, input_shape=tuple(inp.shape), kwargs=extra, file=file, line=line
        )
        with torch.no_grad():
            values = [out.detach().float().mean()]
            if isinstance(target, torch.Tensor) and target.is_floating_point() and target.numel():
                t = target.detach().float()
                values += [t.mean(), t.pow(2).mean()]
            slot = pending.transfer.add(torch.stack(values))
        rec.elementwise_losses.append(call)

        def decode() -> None:
            got = pending.transfer.get(slot)
            call.value = got[0]
            if len(got) == 3:
                call.target_mean, call.target_mean_square = got[1], got[2]

        pending.decoders.append(decode)

    def _target_slots(
        self,
        pending: _Pending,
        fn_name: str,
        inp: torch.Tensor,
        target: Any,
        ignore_index: int = -100,
    ) -> Callable[[], TargetSummary] | None:
        if not isinstance(target, torch.Tensor) or target.numel() == 0:
            return None
        base = pending.transfer.add(stats.tensor_stats(target))
        shape, dtype = tuple(target.shape), str(target.dtype).replace("torch.", "")
        counts_slot = order_slot = shift_slot = match_slot = None
        if fn_name in CLASS_INDEX_LOSSES and not target.is_floating_point() and inp.dim() >= 2:
            counts_slot = pending.transfer.add(
                stats.class_counts(target, int(inp.shape[1]), ignore_index)
            )
            # A later argument sharing the target's memory is the target handed to the model
            # for a loss computed inside (``model(x, y)``), or the sequence a decoder shifts
            # inside; the first is what it reads. The very view of the targets handed to a
            # model whose loss is computed outside is its own input: a decoder fed the
            # unshifted targets.
            memory = target.untyped_storage().data_ptr()
            sources = [
                t
                for i, t in enumerate(self._integer_inputs)
                if t.device == target.device
                and (
                    i == 0
                    or t.untyped_storage().data_ptr() != memory
                    or (
                        not self._in_model_forward
                        and t.data_ptr() == target.data_ptr()
                        and t.numel() == target.numel()
                    )
                )
            ]
            source = self._integer_input
            first_at = next((i for i, t in enumerate(sources) if t is source), None)
            if first_at is None and source is not None and source.device == target.device:
                shift_slot = pending.transfer.add(stats.next_position_match(target, source))
            if sources:
                match_slot = pending.transfer.add(
                    torch.cat(
                        [stats.same_position_match(target, t, ignore_index) for t in sources]
                        + [stats.next_position_match(target, t) for t in sources]
                        + [stats.two_positions_match(target, t, ignore_index) for t in sources]
                    )
                )
            order_slot = pending.transfer.add(
                torch.stack([stats.sortedness(target), target.reshape(-1)[0].float()])
            )
        elif target.dim() >= 1 and target.shape[0] > 1:
            order_slot = pending.transfer.add(
                torch.stack([stats.sortedness(target), target.reshape(-1)[0].float()])
            )
        column_slot = None
        features = self._float_input
        if (
            fn_name in VALUE_REGRESSION_LOSSES
            and target.is_floating_point()
            and features is not None
            and features.device == target.device
            and len(self.recording.steps) < MAX_FINGERPRINTED_STEPS
        ):
            column_slot = pending.transfer.add(stats.target_columns_in_input(target, features))

        def decode() -> TargetSummary:
            t = TargetSummary(**summary_from(pending.transfer.get(base), shape, dtype))
            if counts_slot is not None:
                t.class_counts = pending.transfer.get(counts_slot)
            if order_slot is not None:
                t.sortedness, t.first = pending.transfer.get(order_slot)
            if shift_slot is not None:
                t.next_position_match = pending.transfer.get(shift_slot)[0]
            if match_slot is not None:
                values = pending.transfer.get(match_slot)
                k = len(values) // 3
                t.same_position_matches = values[:k]
                t.next_position_matches = values[k : 2 * k]
                t.two_positions_matches = [v if v >= 0 else math.nan for v in values[2 * k :]]
                if first_at is not None:
                    t.next_position_match = t.next_position_matches[first_at]
            if column_slot is not None:
                t.input_column_match = pending.transfer.get(column_slot)[0]
            return t

        return decode

    def _link(self, inp: torch.Tensor) -> tuple[str | None, tuple[int, ...] | None]:
        """How a loss input relates to the model output: the output itself ("output[...]"),
        a reshape of it ("view:output[...]"), or its elements rearranged by transposes, then
        reshaped and cast ("rearrange:[ops]|output[...]", see ``rearrangement``); with the
        shape it was reshaped from, where it was."""
        alive = [(path, t) for path, ref in self._outputs.items() if (t := ref()) is not None]
        for path, t in alive:
            if t is inp:
                return path, None
        chain = rearrangement(inp, self._output_nodes)
        if chain is not None:
            path, ops, layout = chain
            return (f"rearrange:{json.dumps(ops)}|{path}" if ops else f"view:{path}"), layout
        for path, t in alive:
            # A view in the output's storage made by ops the walk does not know: a reshape
            # only when both are contiguous (then the elements keep their order).
            if (
                t.numel() == inp.numel()
                and t.data_ptr() == inp.data_ptr()
                and t.dtype == inp.dtype
                and t.is_contiguous()
                and inp.is_contiguous()
            ):
                return f"view:{path}", tuple(t.shape)
        return None, None

    def _wrap_backward(self, original: Callable[..., Any]) -> Callable[..., Any]:
        note = self._guard("backward", self._note_backward)
        plain = self._guard("plain-parameters", self._note_plain_parameters)
        carried = self._guard("carried-gradient", self._note_carried)

        after = self._guard("manual", self._after_backward)
        multiples = self._guard("gradient-multiples", self._watch_custom_backwards)
        broadcasts = self._guard("loss-broadcasts", self._note_loss_broadcasts)

        def backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if self.model is None and self.recording.plain_parameters is None:
                plain(tensor)
            note(as_backward_loss(tensor, args, kwargs))
            carried(tensor)
            multiples(tensor)
            broadcasts(tensor)
            try:
                result = original(tensor, *args, **kwargs)
            finally:
                self._remove(self._node_handles)
            after()
            return result

        backward.__wrapped__ = original  # type: ignore[attr-defined]
        backward.__doc__ = original.__doc__
        return backward

    def _note_loss_broadcasts(self, tensor: torch.Tensor) -> None:
        """In the first steps' backward passes: the elementwise operations between the
        model's outputs and this loss that stretched an output along a new axis."""
        outputs = set().union(*self._pass_output_nodes)
        self._pass_output_nodes.clear()
        if not outputs or tensor.grad_fn is None:
            return
        events = loss_broadcasts(tensor.grad_fn, outputs)
        if events is None:
            return
        self.recording.loss_graphs_searched += 1
        file, line = user_frame()
        found = self._pending.record.loss_broadcasts
        for event in events:
            event = dataclasses.replace(event, file=file, line=line)
            if event not in found:
                found.append(event)

    def _watch_custom_backwards(self, tensor: torch.Tensor) -> None:
        """In the first backward passes, each custom Function's backward node on the graph
        gets a hook (removed when the pass returns) recording the number its hand-written
        backward multiplied the gradient by, where it did (Recording.gradient_multiples)."""
        if self._custom_backwards_watched >= CUSTOM_BACKWARD_PASSES or tensor.grad_fn is None:
            return
        self._custom_backwards_watched += 1
        multiples = self.recording.gradient_multiples
        for node in autograd_nodes([tensor.grad_fn], limit=CUSTOM_BACKWARD_NODES):
            cls = getattr(node, "_forward_cls", None)
            if cls is None or not isinstance(node, torch.autograd.function.BackwardCFunction):
                continue
            name = cls.__qualname__

            def seen(grad_inputs: Any, grad_outputs: Any, name: str = name) -> None:
                c = gradient_multiple(grad_inputs, grad_outputs)
                if c is not None:
                    multiples.setdefault(name, []).append(c)

            self._node_handles.append(node.register_hook(self._guard("gradient-multiples", seen)))

    def _note_plain_parameters(self, tensor: torch.Tensor) -> None:
        """A loss back-propagated before any module was seen: the leaf tensors its graph
        accumulates gradients into, which no module holds (a model written as plain tensors,
        ``W = torch.randn(..., requires_grad=True)``)."""
        leaves = graph_leaves(tensor)
        if leaves:
            self.recording.plain_parameters = (len(leaves), sum(x.numel() for x in leaves))
            self.recording.module_parameters_reached = sum(
                isinstance(x, nn.Parameter) for x in leaves
            )

    def _note_carried(self, tensor: torch.Tensor) -> None:
        """Whether this backward pass reaches the model while its gradient still holds an
        earlier pass that another optimizer has stepped on since (a GAN's discriminator
        loss back-propagated into the generator, then the generator's own loss added to
        it). Walks the graph only once another network's optimizer has been seen."""
        if not self._foreign_seen or self.model is None or tensor.grad_fn is None:
            return
        ids = {id(p) for _, p in self._params}
        if not any(id(leaf) in ids for leaf in graph_leaves(tensor)):
            return
        if self._carried:
            self._carried = False
            grads = [p.grad for _, p in self._params if p.grad is not None]
            if grads:
                pending = self._pending
                rec = pending.record
                slot = pending.transfer.add(stats.param_norms(grads).sum().reshape(1))
                pending.decoders.append(
                    lambda: setattr(rec, "carried_gradient", pending.transfer.get(slot)[0] > 0)
                )
        self._reached_model = True

    def _gradient_cleared(self, obj: Any) -> None:
        """A zero_grad of the model's optimizer, or of a module holding its parameters."""
        if obj is self.optimizer and obj is not None:
            self._reached_model = self._carried = False
        elif isinstance(obj, nn.Module) and self._params:
            first = self._params[0][1]
            if any(p is first for p in obj.parameters()):
                self._reached_model = self._carried = False

    def _note_backward(self, tensor: torch.Tensor) -> None:
        pending = self._pending
        rec = pending.record
        self._repeat_backward(tensor)
        rec.backwards += 1
        if tensor.dim() != 0 or rec.loss_seen:
            return
        rec.loss_seen = True
        pending.started = True
        if pending.unscaled_loss is not None and pending.unscaled_loss[0] == id(tensor):
            tensor = pending.unscaled_loss[1]
        slot = pending.transfer.add(tensor.detach().reshape(1))
        pending.decoders.append(lambda: setattr(rec, "loss", pending.transfer.get(slot)[0]))

    def _wrap_zero_grad(self, original: Callable[..., Any]) -> Callable[..., Any]:
        boundary = self._guard("manual", self._manual_boundary)
        cleared = self._guard("carried-gradient", self._gradient_cleared)

        def zero_grad(obj: Any, *args: Any, **kwargs: Any) -> Any:
            boundary()
            cleared(obj)
            self._pending.record.zero_grad_called = True
            return original(obj, *args, **kwargs)

        zero_grad.__wrapped__ = original  # type: ignore[attr-defined]
        zero_grad.__doc__ = original.__doc__
        return zero_grad

    # -- manual updates ----------------------------------------------------------------
    def _manual_boundary(self) -> None:
        """At a training forward or a zero_grad: if the pending step ran its backward pass
        and the parameters were updated by hand since (no optimizer steps them), the
        pending step is complete."""
        if self.optimizer is not None or self.model is None:
            return
        pending = self._pending
        if not pending.started:
            if self._first_checksums is None and not self.manual and not self._unchanged_boundaries:
                self._first_checksums = param_checksums([p for _, p in self._params])
            return
        if not pending.record.backwards:
            return
        if not self.manual and not self._updated_by_hand():
            return
        self._finish_manual_step()

    def _updated_by_hand(self) -> bool:
        """Whether any parameter moved since the first forward (one host sync, once): the
        script updates them itself. Accumulated gradients move nothing until a step."""
        first = self._first_checksums
        if first is None:
            return False
        moved = (param_checksums([p for _, p in self._params]) != first).any(dim=1).tolist()
        changed = {n for (n, _), m in zip(self._params, moved, strict=True) if m}
        if not changed:
            self._unchanged_boundaries += 1
            if self._unchanged_boundaries >= MANUAL_STEP_TRIES:
                # A model nothing updates after this many passes (a frozen teacher, a model
                # another optimizer does not hold): stop paying a host sync per forward.
                self._first_checksums = None
            return False
        self.manual = True
        self._first_checksums = None
        rec = self.recording
        rec.step_source = "manual"
        # The parameters the script's own rule updates play the optimizer's part.
        rec.in_optimizer = changed
        rec.param_groups = dict.fromkeys(changed, 0)
        return True

    def _after_backward(self) -> None:
        """Which parameters hold a gradient after the backward pass (known on the host); and,
        without an optimizer, their gradients are read now: a script updating by hand may
        zero them (``p.grad.zero_()``) before the next forward."""
        if self.model is None:
            return
        self._grads_after_backward = {n for n, p in self._params if self._grad(p) is not None}
        if self.optimizer is not None:
            return
        # Several backward passes in one step: the last one's gradients are the ones used.
        self._record_grad_norms(self._pending)

    def _finish_manual_step(self) -> None:
        if self.on_step_closing is not None:
            self.on_step_closing()
        self._post_step()
        self._finish_step(stepped=True)
        # Every trainable parameter: which ones the rule updates can change from step to step.
        self._record_weights(self._pending, [(n, p) for n, p in self._params if p.requires_grad])
        if self.on_step_end is not None:
            self.on_step_end(self.steps_done)

    # -- optimizer steps ---------------------------------------------------------------
    def _is_tracked(self, optimizer: torch.optim.Optimizer) -> bool:
        if self.optimizer is not None:
            return optimizer is self.optimizer
        if self.model is None:
            return False
        ids = {id(p) for _, p in self._params}
        if any(id(p) in ids for g in optimizer.param_groups for p in g["params"]):
            self.attach_optimizer(optimizer)
            return True
        return False

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._guard("adversarial", self._adversarial.on_optimizer_step)(optimizer)
        if not self._is_tracked(optimizer):
            self._note_other_optimizer(optimizer)
            return
        self._reached_model = self._carried = False
        pending = self._pending
        rec = pending.record
        rec.hyperparameters = [
            {k: _describe_kwarg(v) for k, v in g.items() if k != "params"}
            for g in optimizer.param_groups
        ]
        rec.grads_at_step = self._record_grad_norms(pending, at_step=True)
        rec.grads_held = sorted(
            n for n, p in self._params if p.grad is None and n in self._grads_after_backward
        )
        self._grads_after_backward = set()
        self._record_weights(
            pending, [(n, p) for n, p in self._params if n in self.recording.in_optimizer]
        )
        self._record_outside(
            pending, [(n, p) for n, p in self._params if n not in self.recording.in_optimizer]
        )

    def _record_grad_norms(self, pending: _Pending, at_step: bool = False) -> bool:
        """The norm of every parameter's gradient, copied to the host with the step;
        whether any parameter had a gradient. ``at_step``: read as the optimizer steps,
        replacing any read after the backward pass (before the optimizer was known): a
        gradient the script removed before the step (``p.grad = None``, DINO's last layer
        held in its first epoch) did not reach the optimizer."""
        rec = pending.record
        with_grad = [(n, g) for n, p in self._params if (g := self._grad(p)) is not None]
        if at_step:
            pending.decoders.append(rec.grad_norms.clear)
        if not with_grad:
            return False
        slot = pending.transfer.add(stats.param_norms([g for _, g in with_grad]))
        names = [n for n, _ in with_grad]
        pending.decoders.append(
            lambda: rec.grad_norms.update(zip(names, pending.transfer.get(slot), strict=True))
        )
        return True

    def _record_weights(self, pending: _Pending, tracked: list[tuple[str, nn.Parameter]]) -> None:
        """The norms of ``tracked`` before the update, and a snapshot for the update's norm."""
        if not tracked:
            return
        _record_norms(pending, tracked, pending.record.weight_norms)
        # FSDP's parameters are DTensors: the update is measured on this rank's shard.
        pending.snapshot = self._take_snapshot([local_part(p.detach()) for _, p in tracked])
        pending.snapshot_names = [n for n, _ in tracked]

    def _record_outside(self, pending: _Pending, outside: list[tuple[str, nn.Parameter]]) -> None:
        """The norms of ``outside`` (parameters the optimizer does not hold) as it steps."""
        if outside:
            _record_norms(pending, outside, pending.record.outside_norms)

    def _take_snapshot(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """A copy of ``params`` in buffers kept from the previous step when they still fit."""
        buffers = self._snapshot
        with torch.no_grad():
            if (
                buffers is not None
                and len(buffers) == len(params)
                and all(
                    b.shape == p.shape and b.dtype == p.dtype and b.device == p.device
                    for b, p in zip(buffers, params, strict=True)
                )
            ):
                torch._foreach_copy_(buffers, params)
            else:
                buffers = [p.clone() for p in params]
                self._snapshot = buffers
        return buffers

    def _note_other_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Parameters of the model stepped by another optimizer are optimised too; an
        optimizer holding none of them trains another network."""
        names = {id(p): n for n, p in self._params}
        mine = [names[id(p)] for g in optimizer.param_groups for p in g["params"] if id(p) in names]
        self.recording.other_optimizer_params.update(mine)
        if not mine and self.model is not None:
            self._note_foreign_step(optimizer)
            self._pending.record.foreign_steps += 1
            self._foreign_seen = True
            self._carried = self._carried or self._reached_model

    def _note_foreign_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Whether any parameter of another network's optimizer has a gradient at its step
        (no device sync: ``grad is None`` is known on the host)."""
        entry = self._other_optimizers.get(id(optimizer))
        if entry is None:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            entry = OtherOptimizer(type(optimizer).__name__, len(params))
            self._other_optimizers[id(optimizer)] = entry
            self.recording.other_optimizers.append(entry)
        entry.steps.append(self.steps_done)
        entry.with_grad.append(
            any(p.grad is not None for g in optimizer.param_groups for p in g["params"])
        )

    def _post_step_outer(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        tracked = self._guard("optimizer", self._is_tracked)(optimizer)
        if not tracked:
            return
        self._guard("optimizer", self._post_step)()
        self._guard("optimizer", self._finish_step)(stepped=True)
        # Outside the guard: the capture's step budget stops the script from here.
        if self.on_step_end is not None:
            self.on_step_end(self.steps_done)

    def _post_step(self) -> None:
        pending = self._pending
        if pending.snapshot is None:
            return
        by_name = dict(self._params)
        with torch.no_grad():
            now = [local_part(by_name[n].detach()) for n in pending.snapshot_names]
            # In place: the buffers then hold before - after, whose norms are the updates'.
            torch._foreach_sub_(pending.snapshot, now)
            u_slot = pending.transfer.add(
                torch.stack(torch._foreach_norm(pending.snapshot)).float()
            )
            try:
                a_slot = self._alignment_slot(pending, by_name)
            except (RuntimeError, TypeError, ValueError):
                a_slot = None  # parameters on several devices, say: no alignment, norms kept
        names = pending.snapshot_names
        rec = pending.record
        pending.decoders.append(
            lambda: rec.update_norms.update(zip(names, pending.transfer.get(u_slot), strict=True))
        )
        if a_slot is not None:
            pending.decoders.append(
                lambda: setattr(rec, "update_alignment", pending.transfer.get(a_slot)[0])
            )
        pending.snapshot = None

    def _alignment_slot(self, pending: _Pending, by_name: dict[str, nn.Parameter]) -> int | None:
        """The cosine between before - after (the snapshot, by now) and the gradients the
        parameters hold, over every parameter with one: on the device, copied with the step."""
        assert pending.snapshot is not None
        grads = {n: self._grad(by_name[n]) for n in pending.snapshot_names}
        pairs = [
            (d, local_part(g))
            for d, n in zip(pending.snapshot, pending.snapshot_names, strict=True)
            if (g := grads[n]) is not None and local_part(g).shape == d.shape
        ]
        if not pairs:
            return None
        # One parameter at a time in float32: no second copy of the whole model at once.
        dot = torch.stack(
            [torch.dot(d.reshape(-1).float(), g.reshape(-1).float()) for d, g in pairs]
        ).sum()
        norm = torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm([d for d, _ in pairs])).float()
        ) * torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm([g for _, g in pairs])).float()
        )
        cosine = torch.where(norm > 0, dot / norm.clamp(min=1e-30), math.nan)
        return pending.transfer.add(cosine.reshape(1))

    def _finish_step(self, stepped: bool) -> None:
        self._taken = {}
        pending = self._pending
        pending.transfer.launch()
        self._in_flight.append(pending)
        self.recording.steps.append(pending.record)
        if stepped:
            self.steps_done += 1
        self._pending = _Pending(
            StepRecord(step=self.steps_done if stepped else self.steps_done + 1)
        )
        self._outputs = {}
        self._output_nodes = {}
        self._pass_output_nodes.clear()
        self._drain()

    def _drain(self) -> None:
        """Decode every step whose host copy has arrived (never waits)."""
        while self._in_flight and self._in_flight[0].transfer.ready():
            done = self._in_flight.pop(0)
            for decode in done.decoders:
                decode()
            done.decoders.clear()


# -- helpers -----------------------------------------------------------------------


def _accuracy(
    fn: str, inp: torch.Tensor, target: Any, kwargs: dict[str, Any]
) -> torch.Tensor | None:
    """The batch accuracy implied by a classification loss call, on the device."""
    if not isinstance(target, torch.Tensor) or target.numel() == 0:
        return None
    with torch.no_grad():
        if fn in CLASS_INDEX_LOSSES and inp.dim() >= 2 and not target.is_floating_point():
            if target.shape != inp.shape[:1] + inp.shape[2:]:
                return None
            ignore = kwargs.get("ignore_index", -100)
            valid = target != ignore
            hits = (inp.detach().argmax(1) == target) & valid
            return hits.sum().float() / valid.sum().clamp_min(1).float()
        if (
            fn in ("binary_cross_entropy_with_logits", "binary_cross_entropy")
            and target.shape == inp.shape
        ):
            threshold = 0.0 if fn.endswith("logits") else 0.5
            return ((inp.detach() > threshold) == (target > 0.5)).float().mean()
    return None


# Autograd nodes of ops that only move a tensor's elements (or change its dtype): a loss
# input made from a model output by these alone is that output rearranged, which a copy of
# the model can rebuild for any batch size.
_RESHAPES = frozenset(
    {
        "ViewBackward0",
        "UnsafeViewBackward0",
        "ReshapeAliasBackward0",
        "CloneBackward0",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "SqueezeBackward2",
        "UnsqueezeBackward0",
    }
)
_TRANSPOSES = frozenset({"TransposeBackward0", "TransposeBackward1", "PermuteBackward0"})
_MAX_HOPS = 8


def _dim(d: int) -> int:
    # Autograd saves a negative dim as its unsigned 64-bit wrap.
    return d - 2**64 if d >= 2**63 else int(d)


def rearrangement(
    inp: torch.Tensor, outputs: dict[Any, tuple[str, tuple[int, ...]]]
) -> tuple[str, list[list[Any]], tuple[int, ...]] | None:
    """Whether ``inp`` is one of ``outputs`` (their autograd nodes: path and shape) put
    through transposes or permutes, then reshapes and dtype casts only: the output's path,
    the ops a copy must repeat, in forward order (``["transpose", d0, d1]``, ``["permute",
    *dims]``, ``["to", dtype]``; a final reshape to the loss input's shape is implied), and
    the output's shape once its axes are moved (before that reshape).
    None for any other op on the way, or a transpose after a reshape (its dims would
    depend on the batch size)."""
    node, backward_ops = inp.grad_fn, []
    for _ in range(_MAX_HOPS):
        if node is None:
            return None
        if node in outputs:
            break
        name = type(node).__name__
        if name in _TRANSPOSES:
            if name == "PermuteBackward0":
                backward_ops.append(["permute", *(_dim(d) for d in node._saved_dims)])
            else:
                backward_ops.append(["transpose", _dim(node._saved_dim0), _dim(node._saved_dim1)])
        elif name == "ToCopyBackward0":
            backward_ops.append(["to"])
        elif name in _RESHAPES:
            backward_ops.append(["reshape"])
        else:
            return None
        parents = [f for f, _ in node.next_functions if f is not None]
        if len(parents) != 1:
            return None
        node = parents[0]
    else:
        return None
    path, shape = outputs[node]
    if math.prod(shape) != inp.numel():
        return None
    # Every cast ends at the loss input's dtype, and casting after the element moves gives
    # the same values: one cast at the end stands for them all.
    cast = any(op[0] == "to" for op in backward_ops)
    moves: list[list[Any]] = []
    reshaped = False
    for op in reversed(backward_ops):
        if op[0] == "reshape":
            reshaped = True
        elif op[0] in ("transpose", "permute"):
            if reshaped:
                return None
            moves.append(op)
    layout = torch.empty(shape, device="meta")
    for op in moves:
        layout = layout.transpose(op[1], op[2]) if op[0] == "transpose" else layout.permute(*op[1:])
    ops = moves + ([["to", str(inp.dtype).replace("torch.", "")]] if cast else [])
    return path, ops, tuple(layout.shape)


def output_selection(
    inp: torch.Tensor, outputs: dict[Any, tuple[str, tuple[int, ...]]]
) -> tuple[str, torch.Tensor, tuple[int, ...]] | None:
    """Whether ``inp`` is rows of one of ``outputs`` (their autograd nodes: path and shape)
    picked by an index or a mask on the leading axes: ``output[idx_train]`` (a graph's
    labelled nodes), ``logits[mask]`` (the tokens that are not padding),
    ``index_select(0, idx)``, of the output itself or of a reshape of it
    (``logits.view(-1, C)[keep]``). The output's path, the index (detached) and the shape
    the output was indexed in; None otherwise."""
    node = inp.grad_fn
    name = type(node).__name__
    if name == "IndexBackward0":
        indices = node._saved_indices
        if len(indices) != 1 or indices[0] is None:
            return None
        index = indices[0]
    elif name == "IndexSelectBackward0" and node._saved_dim == 0:
        index = node._saved_index
    else:
        return None
    sizes = tuple(int(s) for s in node._saved_self_sym_sizes)
    parents = [f for f, _ in node.next_functions if f is not None]
    parent = parents[0] if len(parents) == 1 else None
    if parent is not None and parent not in outputs and type(parent).__name__ in _RESHAPES:
        above = [f for f, _ in parent.next_functions if f is not None]
        parent = above[0] if len(above) == 1 else None
    if parent is None or parent not in outputs:
        return None
    path, shape = outputs[parent]
    if math.prod(shape) != math.prod(sizes):
        return None
    return path, index.detach(), sizes


def _tensors_with_paths(obj: Any, path: str = "output") -> list[tuple[str, torch.Tensor]]:
    # Not pytree: these paths are recorded (how a loss input links to the output) and name
    # a namedtuple's fields by position, "output[0]", where pytree's key paths say ".x".
    if isinstance(obj, torch.Tensor):
        return [(path, obj)]
    out: list[tuple[str, torch.Tensor]] = []
    if isinstance(obj, (tuple, list)):
        for i, o in enumerate(obj):
            out.extend(_tensors_with_paths(o, f"{path}[{i}]"))
    elif isinstance(obj, dict):
        for k, o in obj.items():
            out.extend(_tensors_with_paths(o, f"{path}[{k!r}]"))
    return out[:16]


def _describe_kwarg(v: Any) -> Any:
    """Hyperparameters and loss kwargs as JSON-friendly values, without touching tensor data."""
    if isinstance(v, torch.Tensor):
        if v.numel() == 1 and v.device.type == "cpu":
            return float(v.reshape(()))  # a scalar weight (pos_weight=torch.tensor([3.9]))
        return f"tensor{tuple(v.shape)}"
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return [_describe_kwarg(x) for x in v]
    return type(v).__name__


def _is_user_module(m: nn.Module) -> bool:
    mod = type(m).__module__ or ""
    return not mod.startswith("torch.")


def _module_file(m: nn.Module) -> str:
    try:
        return sys.modules[type(m).__module__].__file__ or ""
    except (KeyError, AttributeError):
        return ""


def eager(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run eagerly when called from a ``torch.compile``d model: a hook traced into a
    graph would be compiled with the model (and may fail to compile, breaking the user's
    run); kept out of it, the graph breaks around the hook instead.

    ``torch.compiler.disable`` itself imports Dynamo, which creates a cache folder in the
    temp directory and sets an environment variable: it is applied only once Dynamo is
    loaded (a script that compiles loads it), and Dynamo reads the marker on the wrapper."""
    disabled: list[Callable[..., Any]] = []

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" not in sys.modules:
            return fn(*args, **kwargs)
        if not disabled:
            # Dynamo would otherwise compile this wrapper's own frame at every call.
            skip_code = getattr(sys.modules.get("torch._dynamo.eval_frame"), "skip_code", None)
            if skip_code is not None:
                skip_code(run.__code__)
            disabled.append(torch._dynamo.disable(fn))
        return disabled[0](*args, **kwargs)

    run._torchdynamo_disable = True  # type: ignore[attr-defined]
    return run


def sample_projection(features: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The fixed random direction a flattened sample of ``features`` values is projected on
    to give its fingerprint: the same for every probe, so fingerprints compare across runs
    and with the data a script holds."""
    gen = torch.Generator(device=device).manual_seed(12345)
    return torch.randn(features, generator=gen, device=device)


def _row_share(x: torch.Tensor) -> float:
    """The share of its storage that ``x``'s rows (its first axis) take up: below 1 when
    rows of more data lie beside it (``x[:64]`` of the whole set), 1 when it is all the rows
    there are, whatever columns every row leaves out (``data[:, :-1]``), or whatever order
    its axes are stored in (a column-major array from numpy: its rows are interleaved)."""
    stored = max(x.untyped_storage().nbytes(), 1)
    if x.dim() == 0 or x.stride(0) == 0:
        return min(1.0, x.numel() * x.element_size() / stored)
    outer = [step for n, step in zip(x.shape[1:], x.stride()[1:], strict=True) if n > 1]
    if outer and x.stride(0) < min(outer):
        # Rows innermost: the array's rows are as many as fit between two of its columns.
        return min(1.0, x.shape[0] * x.stride(0) / min(outer))
    return min(1.0, x.shape[0] * x.stride(0) * x.element_size() / stored)


def param_checksums(params: list[torch.Tensor]) -> torch.Tensor:
    """(sum, sum of squares) of each parameter in float64, shape (n, 2), on the first
    parameter's device: any update by hand, however small against the weights, changes one
    of them. Taking them never waits for the device; comparing two of them does."""
    if not params:
        return torch.zeros(0, 2, dtype=torch.float64)
    device = params[0].device
    with torch.no_grad():
        rows = [torch.stack([p.double().sum(), p.double().pow(2).sum()]).to(device) for p in params]
    return torch.stack(rows)


def finite(x: float) -> bool:
    return math.isfinite(x)


def graph_leaves(t: torch.Tensor, limit: int = 10_000) -> list[torch.Tensor]:
    """The leaf tensors ``t``'s autograd graph accumulates gradients into (its
    ``AccumulateGrad`` nodes' variables), visiting at most ``limit`` nodes."""
    leaves: list[torch.Tensor] = []
    stack = [t.grad_fn] if t.grad_fn is not None else []
    seen: set[Any] = set()
    while stack and len(seen) < limit:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves.append(variable)
        stack.extend(n for n, _ in node.next_functions)
    return leaves


# Nodes that pick rows out of a tensor by index: a triplet's positives or negatives
# chosen this way were mined from a batch (the hardest ones, say), not drawn apart.
_INDEX_NODES = frozenset({"index", "indexselect", "gather", "take", "maskedselect"})


def _picked_by_index(t: torch.Tensor) -> bool:
    """Whether ``t`` was picked out of another tensor by an index, behind its layout-only
    nodes."""
    node = t.grad_fn
    for _ in range(32):
        if node is None:
            return False
        name = node_name(node)
        if name in _INDEX_NODES:
            return True
        if name not in LAYOUT_NODES:
            return False
        nxt = [f for f, _ in node.next_functions if f is not None]
        node = nxt[0] if nxt else None
    return False


def producing_op(t: torch.Tensor) -> str:
    """The last value-changing operation behind ``t`` ("sigmoid", "tanh", "softmax", "clamp",
    "addmm", ...), found by following its autograd graph through layout-only nodes along
    their first input; "" without a gradient history."""
    node = t.grad_fn
    for _ in range(32):
        if node is None:
            return ""
        name = node_name(node)
        if name not in LAYOUT_NODES:
            return name
        nxt = [f for f, _ in node.next_functions if f is not None]
        node = nxt[0] if nxt else None
    return ""
