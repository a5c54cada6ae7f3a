"""The subprocess side of a replay (see :mod:`nndoctor.capture.replay`).

Usage: ``python -m nndoctor.capture._replay_child PLAN.json RESULT.json``, or with
``--serve``: a :class:`nndoctor.capture.replay.ReplayServer` that reads one request a
line on stdin and forks a process for each. Either way a process exists only to run the
user's script once more; synchronising with the device is acceptable here, unlike in
the live probes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import runpy
import signal
import sys
import tempfile
import time
import traceback
import weakref
from dataclasses import asdict
from typing import Any

import numpy
import torch
import torch.optim.optimizer as optim_mod
from torch import nn
from torch.nn.modules import module as module_mod
from torch.utils.data import DataLoader, Dataset, IterableDataset

from nndoctor.capture.direct_forwards import DirectForwards, direct_parent
from nndoctor.capture.phases import script_sources
from nndoctor.capture.replay import TIMEOUT, ReplayPlan, ReplayResult, fit_reached
from nndoctor.capture.runner import StopCapture
from nndoctor.capture.sandbox import Sandbox
from nndoctor.capture.source_data import permute_rows, script_frames, whole_arrays
from nndoctor.capture.torchscript import EagerScripting
from nndoctor.copying import redraw_by_default
from nndoctor.noise import noise_like
from nndoctor.probes.trace import (
    _TORCH_DIR,
    _NonFiniteTracer,
    graphless_derivative,
    loss_term_gradients,
    reaches,
    recorded_loss_terms,
)
from nndoctor.probes.training import as_backward_loss, graph_leaves, user_frame
from nndoctor.subject import slice_batch, switch_off_dropout
from nndoctor.trees import map_tensors, tensors

# nndoctor's own code indexes tensors too (in hooks, between the script's lines): never a draw.
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Batches a substituted loader yields with no backward pass and no optimizer step in between
# before it ends: a training loop runs one of them on nearly every batch.
IDLE_BATCHES = 64


class _RandomStreams:
    """The random streams a script draws its batches from: Python's and numpy's global
    ones, torch's on every device, and each numpy ``Generator`` the script made with
    ``default_rng``. :meth:`rewind` sets them all back to where :meth:`mark` found them, so
    the draws after it (a batch's indices, a sampled task, noise) are the same again."""

    def __init__(self) -> None:
        self.generators: list[Any] = []
        self._marked: tuple[Any, ...] | None = None

    @contextlib.contextmanager
    def tracking_generators(self) -> Any:
        original = numpy.random.default_rng
        streams = self

        def default_rng(*args: Any, **kwargs: Any) -> Any:
            rng = original(*args, **kwargs)
            streams.generators.append(rng)
            return rng

        numpy.random.default_rng = default_rng
        try:
            yield
        finally:
            numpy.random.default_rng = original

    @property
    def marked(self) -> bool:
        return self._marked is not None

    def mark(self) -> None:
        self._marked = (
            random.getstate(),
            numpy.random.get_state(),
            torch.get_rng_state(),
            torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            [g.bit_generator.state for g in self.generators],
            len(self.generators),
        )

    def rewind(self) -> None:
        assert self._marked is not None
        python, numpy_state, cpu, cuda, kept, known = self._marked
        random.setstate(python)
        numpy.random.set_state(numpy_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        for rng, state in zip(self.generators[:known], kept, strict=True):
            rng.bit_generator.state = state


class _RowDraws:
    """Batches cut by hand from tensors that outlive a step (``x[perm[i:i + 64]]``,
    ``data[i:i + block]``): while :attr:`recording` (the reference step), the k-th rows
    drawn from a tensor are kept; once :attr:`repeating`, the k-th draw from the same
    tensor at every later step returns them again, while the tensor is unchanged (a buffer
    written in place between steps, a replay memory, is no fixed dataset). Inputs and
    targets drawn by one index stay paired, since each is the reference step's own draw,
    and :meth:`cut` cuts those of the batch's length to the tiny batch alike. A draw is a
    ``[]`` on the first axis (a part of it by slice, integer indices or a mask) of a tensor
    that needs no gradient, written outside torch and outside any module's forward."""

    def __init__(self) -> None:
        self.depth = 0  # modules whose forward is running
        self.recording = False
        self.repeating = False
        # (id of the tensor, k) -> [tensor, its version then, the rows drawn]
        self._kept: dict[tuple[int, int], list[Any]] = {}
        self._counts: dict[int, int] = {}

    def next_step(self) -> None:
        self._counts.clear()

    def cut(self, rows: int, size: int) -> bool:
        """Cut every kept draw of ``rows`` rows (the reference batch's) to its first
        ``size``; whether one was."""
        cut = False
        for kept in self._kept.values():
            if kept[2].shape[0] == rows > size:
                kept[2] = kept[2][:size]
                cut = True
        return cut

    @contextlib.contextmanager
    def installed(self) -> Any:
        original = torch.Tensor.__getitem__
        draws = self

        def __getitem__(tensor: torch.Tensor, key: Any) -> Any:  # noqa: N807
            if not (draws.recording or draws.repeating) or not draws.is_draw(tensor, key):
                return original(tensor, key)
            if sys._getframe(1).f_code.co_filename.startswith(_TORCH_DIR):
                return original(tensor, key)
            k = draws._counts.get(id(tensor), 0)
            draws._counts[id(tensor)] = k + 1
            if draws.repeating:
                kept = draws._kept.get((id(tensor), k))
                if kept is not None and kept[0] is tensor and kept[1] == tensor._version:
                    return kept[2].clone()
                return original(tensor, key)
            rows = original(tensor, key)
            if isinstance(rows, torch.Tensor):
                draws._kept[(id(tensor), k)] = [tensor, tensor._version, rows.detach().clone()]
            return rows

        torch.Tensor.__getitem__ = __getitem__  # type: ignore[method-assign]
        try:
            yield
        finally:
            torch.Tensor.__getitem__ = original  # type: ignore[method-assign]

    def is_draw(self, tensor: torch.Tensor, key: Any) -> bool:
        if self.depth or tensor.requires_grad or tensor.dim() == 0 or tensor.shape[0] < 2:
            return False
        first = key[0] if isinstance(key, tuple) and key else key
        if isinstance(first, slice):
            return range(*first.indices(tensor.shape[0])) != range(tensor.shape[0])
        if isinstance(first, torch.Tensor):
            return first.dim() >= 1 and not first.is_floating_point()
        return isinstance(first, (list, numpy.ndarray))


def _drawn_rows(key: Any, length: int) -> torch.Tensor | None:
    """The rows of a tensor of ``length`` rows that a ``[]`` draw reads (a slice, integer
    indices or a mask on the first axis), in order, on the CPU; None for any other key.
    (No ``[]`` here: it is the operator being watched.)"""
    first = key[0] if isinstance(key, tuple) and key else key
    if isinstance(first, slice):
        return torch.arange(*first.indices(length))
    if isinstance(first, (list, numpy.ndarray)):
        try:
            first = torch.as_tensor(first)
        except (TypeError, ValueError, RuntimeError):
            return None
    if not isinstance(first, torch.Tensor) or first.dim() != 1 or first.is_floating_point():
        return None
    if first.dtype == torch.bool:
        return first.cpu().nonzero().squeeze(1) if first.numel() == length else None
    rows = first.cpu().long()
    rows = torch.where(rows < 0, rows + length, rows)
    if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= length):
        return None
    return rows


class _HandPairs:
    """Samples cut by hand from data tensors (``x[idx]``, ``y[idx]``; ``data[i:i + 64]``,
    ``labels[i:i + 64]``), re-paired for the pairing replay: within a step, the first
    tensor a set of rows is drawn from holds the samples' inputs; every other tensor of as
    many rows that the same rows are drawn from holds their other elements (targets,
    masks). Where the same two tensor objects were so paired in an earlier step too (data
    that outlives the steps, not two index tensors of one preprocessing pass or of one
    step's own arithmetic), the other element is read, with ``swap``, at a fixed random
    permutation of its rows instead (sample i's from sample ``partner[i]``), which holds
    across steps and epochs as a wrong pairing in the data would. Without ``swap`` the
    rows are read as they are and only counted, so the unchanged replay reads what the
    re-paired ones do. A draw is :class:`_RowDraws`'s: a ``[]`` on the first axis of a
    tensor that needs no gradient, written outside torch and outside any module's forward.
    Tensors are held by weak references: one that died since is no data that outlives a
    step, whatever object takes its place."""

    def __init__(self, seed: int | None, replay: _Replay) -> None:
        self.swap = seed is not None
        self.seed = int(seed or 0)
        self.replay = replay
        # This step's first draws: (the tensor, its rows, the rows drawn).
        self._drawn: list[tuple[weakref.ref[torch.Tensor], int, torch.Tensor]] = []
        # (input tensor, other tensor) pairs drawn by shared rows this step and before.
        self._paired_now: list[tuple[weakref.ref[torch.Tensor], weakref.ref[torch.Tensor]]] = []
        self._paired_before: list[tuple[weakref.ref[torch.Tensor], weakref.ref[torch.Tensor]]] = []
        self._partners: dict[int, torch.Tensor] = {}

    def next_step(self) -> None:
        self._drawn.clear()
        kept, seen = [], set()
        for a, b in self._paired_before + self._paired_now:
            first, other = a(), b()
            if first is None or other is None or (id(first), id(other)) in seen:
                continue
            seen.add((id(first), id(other)))
            kept.append((a, b))
        self._paired_before, self._paired_now = kept[-_PAIRS_KEPT:], []

    def _partner(self, length: int) -> torch.Tensor:
        if length not in self._partners:
            gen = torch.Generator().manual_seed(self.seed)
            self._partners[length] = torch.randperm(length, generator=gen)
        return self._partners[length]

    def read(self, original: Any, tensor: torch.Tensor, key: Any) -> Any:
        """``tensor[key]``, re-paired where it is a sample's other element."""
        rows = _drawn_rows(key, tensor.shape[0])
        if rows is None or rows.numel() < 2:
            return original(tensor, key)
        length = tensor.shape[0]
        owner = next(
            (
                first
                for first, size, seen in self._drawn
                if first() is not None
                and first() is not tensor
                and size == length
                and seen.shape == rows.shape
                and bool(torch.equal(seen, rows))
            ),
            None,
        )
        if owner is None:
            if not any(first() is tensor for first, _, _ in self._drawn):
                self._drawn.append((weakref.ref(tensor), length, rows))
            return original(tensor, key)
        self._paired_now.append((owner, weakref.ref(tensor)))
        if not any(a() is owner() and b() is tensor for a, b in self._paired_before):
            return original(tensor, key)
        self.replay.note_drawn_targets(original(tensor, key))
        if not self.swap:
            return original(tensor, key)
        moved = self._partner(length).index_select(0, rows).to(tensor.device)
        rest = key[1:] if isinstance(key, tuple) else ()
        return original(tensor, (moved, *rest) if rest else moved)

    @contextlib.contextmanager
    def installed(self) -> Any:
        original = torch.Tensor.__getitem__
        pairs = self

        def __getitem__(tensor: torch.Tensor, key: Any) -> Any:  # noqa: N807
            if not pairs.replay.draws.is_draw(tensor, key):
                return original(tensor, key)
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(_TORCH_DIR) or caller.startswith(_OWN_DIR):
                return original(tensor, key)
            return pairs.read(original, tensor, key)

        torch.Tensor.__getitem__ = __getitem__  # type: ignore[method-assign]
        try:
            yield
        finally:
            torch.Tensor.__getitem__ = original  # type: ignore[method-assign]


# Pairs of tensors drawn by shared rows remembered from earlier steps, at most.
_PAIRS_KEPT = 64
# Model calls whose inputs are kept per step, at most, to find arrays fed whole.
_CALLS_KEPT = 8

# The keys a sample dict names its target by, first found first.
_TARGET_KEYS = ("labels", "label", "targets", "target", "y")
# Targets recorded to tell sample indices and instance labels (each value once) apart.
_TARGETS_RECORDED = 256


class _InputNoise:
    """The data the model reads, replaced by noise like it: each tensor an outermost call
    of a module with parameters is handed while gradients are on (activations and
    tensors that need a gradient left as they are), drawn anew at every call from a
    generator of its own, so the script's random streams draw what they drew."""

    def __init__(self) -> None:
        self._generator = torch.Generator().manual_seed(0)
        self.replaced = 0

    def replace(self, args: Any) -> Any:
        def noisy(x: torch.Tensor) -> torch.Tensor:
            if x.requires_grad:
                return x
            new = noise_like(x, self._generator)
            self.replaced += new is not x
            return new

        return map_tensors(noisy, args)


class _Repaired(Dataset):
    """A map-style dataset whose samples keep their first element (the input) and, when
    ``swap``, take the others (targets, a second input such as an image's caption, any
    weights or ids beside them) from the sample ``partner[i]``; a dict sample takes its
    target keys (``labels``, ...) or else all but its first. The partner sample is read
    either way, so the script's random streams (augmentations in ``__getitem__``) advance
    alike in a replay that swaps and one that does not."""

    def __init__(self, dataset: Any, seed: int, swap: bool, replay: _Replay) -> None:
        self.dataset = dataset
        self.swap = swap
        self.replay = replay
        self.partner = torch.randperm(
            len(dataset), generator=torch.Generator().manual_seed(seed)
        ).tolist()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this wrapper lacks: the script's own dataset attributes.
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> Any:
        sample = self.dataset[index]
        partner = self.dataset[self.partner[index]]
        keys = _paired_keys(sample)
        if not keys or _paired_keys(partner) != keys:
            return sample
        if _unlabelled(sample[keys[-1]]):
            # A sample without a label (semi-supervised data: -1 for NO_LABEL, -100) keeps
            # its own: a re-pairing that moved the marker would change how many samples the
            # loss counts, and with it the loss, whatever the pairing carries.
            return sample
        hops, at = 0, self.partner[index]
        while _unlabelled(partner[keys[-1]]) and hops < _PARTNER_HOPS:
            # ... and a labelled sample takes another labelled sample's target: the next
            # one along the permutation's cycle (read in both arms alike).
            at, hops = self.partner[at], hops + 1
            partner = self.dataset[at]
            if _paired_keys(partner) != keys:
                return sample
        if _unlabelled(partner[keys[-1]]):
            return sample
        if self.replay.result.stored_targets is None:
            # Read once more: elements that differ from one read to the next (noise, a
            # negative drawn at random) are no stored pairing to take apart.
            again = self.dataset[index]
            self.replay.result.stored_targets = _paired_keys(again) == keys and any(
                _same(sample[k], again[k]) for k in keys
            )
        self.replay.note_target(sample[keys[-1]])
        if not self.swap:
            return sample
        if isinstance(sample, dict):
            return {**sample, **{k: partner[k] for k in keys}}
        swapped = [sample[0], *partner[1:]]
        return tuple(swapped) if isinstance(sample, tuple) else swapped


# Samples read along the permutation, at most, for a labelled partner of a labelled sample.
_PARTNER_HOPS = 64


def _unlabelled(target: Any) -> bool:
    """Whether a sample's target is the mark of no label: a negative integer, which no
    class index is (``NO_LABEL = -1`` of semi-supervised code, torch's ``ignore_index``)."""
    if isinstance(target, torch.Tensor):
        return target.dim() == 0 and not target.is_floating_point() and bool(target < 0)
    if isinstance(target, numpy.integer):
        return bool(target < 0)
    return isinstance(target, int) and not isinstance(target, bool) and target < 0


def _paired_keys(sample: Any) -> list[Any]:
    """The elements of a sample that a re-pairing takes from another sample: all but the
    first of a tuple or list of two or more; a dict's target keys, or all but its first;
    none for anything else (one tensor: nothing to pair)."""
    if isinstance(sample, (tuple, list)) and len(sample) >= 2:
        return list(range(1, len(sample)))
    if isinstance(sample, dict) and len(sample) >= 2:
        named = [k for k in _TARGET_KEYS if k in sample]
        return named[:1] if named else list(sample)[1:]
    return []


def _same(a: Any, b: Any) -> bool:
    """Whether two reads of one sample's element are equal."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, numpy.ndarray) and isinstance(b, numpy.ndarray):
        return bool(numpy.array_equal(a, b))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - an element that cannot be compared is not a stored one
        return False


def _number(value: Any) -> Any:
    """A target's value where it is one number (an int, a one-element tensor or array),
    else None."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if isinstance(value, (numpy.ndarray, numpy.generic)) and value.size == 1:
        return value.item()
    return None


class _Derivatives:
    """The "derivatives" replay: each derivative the script takes as a constant (see
    ``graphless_derivative``) is taken with its graph instead, behind a gate on its
    gradient. Closed (0) the backward is the script's own; open (1) it has the terms the
    constant leaves out."""

    def __init__(self) -> None:
        self.gate = 0.0
        self.forced: list[torch.Tensor] = []
        self.where: tuple[str | None, int | None] = (None, None)
        self.feeds_model = False

    def wrap(self, original: Any) -> Any:
        def grad(*args: Any, **kwargs: Any) -> Any:
            if not graphless_derivative(args, kwargs):
                return original(*args, **kwargs)
            if len(args) > 4:
                args = (*args[:4], True, *args[5:])
            else:
                kwargs = {**kwargs, "create_graph": True}
            out = original(*args, **kwargs)
            for g in tensors(out):
                if g.requires_grad:
                    g.register_hook(self._gated)
                    self.forced.append(g)
            if self.where == (None, None):
                self.where = user_frame()
            return out

        return grad

    def _gated(self, grad: torch.Tensor) -> torch.Tensor:
        return grad * self.gate

    def note_model_input(self, args: Any) -> None:
        """A module with parameters called on something computed from a derivative (an
        adversarial example, a perturbed input): the derivative shapes an input."""
        if self.forced and not self.feeds_model:
            nodes = {g.grad_fn for g in self.forced}
            self.feeds_model = any(
                x.grad_fn is not None and reaches(x, nodes) for x in tensors(args)
            )

    def compare(self, loss: torch.Tensor, original_grad: Any) -> dict[str, Any]:
        leaves = graph_leaves(loss, limit=100_000)
        params = [p for p in leaves if isinstance(p, nn.Parameter) and p.requires_grad]
        # Gate closed: the script's own gradient; open: with the derivatives' own terms.
        closed, opened = [], []
        for gate, into in ((0.0, closed), (1.0, opened)):
            self.gate = gate
            grads = (
                original_grad(loss, params, retain_graph=True, allow_unused=True) if params else ()
            )
            into.extend(
                g if g is not None else torch.zeros_like(p)
                for g, p in zip(grads, params, strict=True)
            )
        self.gate = 0.0
        own = math.sqrt(sum(float(g.double().pow(2).sum()) for g in closed))
        missing = math.sqrt(
            sum(
                float((b.double() - a.double()).pow(2).sum())
                for a, b in zip(closed, opened, strict=True)
            )
        )
        return {
            "gradient_norm": own,
            "missing_norm": missing,
            "relative_change": missing / own if own > 0 else (math.inf if missing > 0 else 0.0),
            "feeds_model": self.feeds_model,
            "parameters": len(params),
            "file": self.where[0],
            "line": self.where[1],
        }


class _Replay:
    def __init__(self, plan: ReplayPlan) -> None:
        self.plan = plan
        self.direct = DirectForwards()
        self._called: set[int] = set()  # modules with parameters called before a step
        self._parent_sought = False
        self.result = ReplayResult(ok=False)
        self.model: nn.Module | None = None
        self.tracer: _NonFiniteTracer | None = None
        self._fixed: dict[int, Any] = {}
        self._loss_seen = False
        self.terms: list[tuple[str, torch.Tensor]] = []
        self._input_prints: set[tuple[Any, ...]] = set()
        self._step_prints: list[tuple[Any, ...]] = []
        self.derivatives = _Derivatives()
        self.original_grad: Any = torch.autograd.grad
        self._reset: set[int] = set()
        self._script_rates: dict[int, list[Any]] = {}
        self._targets: list[Any] = []
        self.streams = _RandomStreams()
        self.draws = _RowDraws()
        self.hand_pairs = (
            _HandPairs(plan.overrides.get("pair_seed"), self) if plan.mode == "pairing" else None
        )
        self._steps_before_repeat = 0
        self.noise = _InputNoise() if plan.overrides.get("noise_inputs") else None
        # "pairing" and "overfit": the model's data input at the first two steps; the held
        # arrays that were the first; the rows of the whole arrays re-paired (full-batch
        # training), counted at each later step.
        self._step_inputs: dict[int, list[list[torch.Tensor]]] = {}
        self._first_sources: list[torch.Tensor] = []
        self._whole_rows = 0

    # -- pairing: each sample's target from another sample, or from its own ---------------
    def repaired_init(self, original_init: Any) -> Any:
        replay = self

        def __init__(loader: DataLoader, dataset: Any = None, *args: Any, **kwargs: Any) -> None:  # noqa: N807
            if dataset is None:
                dataset = kwargs.pop("dataset")
            if (
                not isinstance(dataset, IterableDataset)
                and hasattr(dataset, "__getitem__")
                and hasattr(dataset, "__len__")
                and len(dataset) > 1
            ):
                seed = replay.plan.overrides.get("pair_seed")
                dataset = _Repaired(dataset, int(seed or 0), seed is not None, replay)
            original_init(loader, dataset, *args, **kwargs)

        return __init__

    def note_drawn_targets(self, rows: Any) -> None:
        """Another element of samples drawn by hand (:class:`_HandPairs`): a stored one."""
        self.result.paired = True
        self.result.stored_targets = True
        if not isinstance(rows, torch.Tensor) or rows.dim() == 0:
            return
        self.result.pairs_read += rows.shape[0]
        room = min(_TARGETS_RECORDED - len(self._targets), rows.shape[0])
        if room > 0:
            self._targets += [_number(v) for v in rows.narrow(0, 0, room)]

    def note_target(self, value: Any) -> None:
        self.result.paired = True
        self.result.pairs_read += 1
        if len(self._targets) < _TARGETS_RECORDED:
            self._targets.append(_number(value))

    def _note_whole_arrays(self) -> None:
        """After the first step: the held arrays its model calls' inputs were, value for
        value."""
        sources: list[torch.Tensor] = []
        for inputs in self._step_inputs.get(0, []):
            found, _ = self._whole_arrays(inputs)
            sources += [a for a in found if not any(a is b for b in sources)]
        self._first_sources = sources

    def _fed_whole(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """After the second step: the held arrays one of its model calls was fed that one of
        the first step's was fed too (one array fed whole at every step, not a step's own
        batch held in a variable of the loop, nor an evaluation between the steps), and the
        held arrays of as many rows beside them."""
        if not self._first_sources:
            return [], []
        for inputs in self._step_inputs.get(1, []):
            sources, partners = self._whole_arrays(inputs, among=self._first_sources)
            if sources:
                return sources, partners
        return [], []

    def _whole_arrays(
        self, inputs: list[torch.Tensor], among: list[torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """:func:`~nndoctor.capture.source_data.whole_arrays` over the script's frames."""
        frames = script_frames(script_sources(self.plan.script), sys._getframe(1))
        try:
            return whole_arrays(inputs, frames, among=among)
        except Exception:  # noqa: BLE001 - arrays that cannot be read are left as they are
            return [], []
        finally:
            del frames

    def _pair_whole_arrays(self) -> bool:
        """Full-batch training on arrays the script holds (no DataLoader, no rows drawn):
        where the model input of the first two steps is one array the script holds, every
        other held array of as many rows is its samples' other elements, re-paired in place
        by a fixed permutation of the rows from the third step on (with ``pair_seed``), or
        only counted (without), so both arms read alike. Whether they were."""
        _, partners = self._fed_whole()
        if not partners:
            return False
        seed = self.plan.overrides.get("pair_seed")
        rows = int(partners[0].shape[0])
        if seed is not None:
            partner = torch.randperm(rows, generator=torch.Generator().manual_seed(int(seed)))
            if permute_rows(partners, partner) < len(partners):
                return False  # an array that cannot be written: the arms would differ in more
        self._whole_rows = rows
        self.note_drawn_targets(partners[0])
        return True

    def _tile_whole_arrays(self) -> None:
        """Full-batch training (the model fed one whole array the script holds at the first
        two steps, no rows drawn): the tiny batch is that array's first ``batch_size`` rows,
        written down its length over and over in place, and the same rows of every held
        array of as many rows (its targets) alike, so every later step's batch holds those
        samples alone. A loss averaged over the rows is then the tiny batch's."""
        size = self.plan.batch_size
        sources, partners = self._fed_whole()
        if not sources or sources[0].shape[0] <= size:
            return
        rows = torch.arange(sources[0].shape[0]) % size
        arrays = sources + partners
        if permute_rows(arrays, rows) == len(arrays):
            self.result.tiled = self.result.batch_cut = True
        else:
            self.result.error = (
                "the arrays the script trains on whole could not be cut to a tiny batch"
            )
            raise StopCapture(self.result.error)

    def finish_pairing(self) -> None:
        """The share of distinct values among the recorded targets, where all are numbers."""
        if self._targets and all(v is not None for v in self._targets):
            self.result.target_distinct = len(set(self._targets)) / len(self._targets)

    # -- overfit: the same tiny batch forever -------------------------------------------
    def fixed_iter(self, original_iter: Any) -> Any:
        replay = self

        def __iter__(loader: DataLoader) -> Any:  # noqa: N807
            if id(loader) not in replay._fixed:
                first = next(original_iter(loader))
                replay._fixed[id(loader)] = _cut(first, replay.plan.batch_size)
            replay.result.substituted = True
            batch = replay._fixed[id(loader)]

            def forever() -> Any:
                # A loop that runs no backward pass and takes no step for many batches is
                # not training on them (an evaluation before or between epochs, a pass that
                # builds a vocabulary): it gets an end, or the replay would spin to its
                # time limit.
                idle, seen = 0, replay.progress()
                while idle < IDLE_BATCHES:
                    if replay.progress() != seen:
                        idle, seen = 0, replay.progress()
                    idle += 1
                    yield batch

            return forever()

        return __iter__

    def progress(self) -> tuple[int, int]:
        """Optimizer steps taken and losses back-propagated so far."""
        return self.result.steps, len(self.result.losses)

    # -- hooks ----------------------------------------------------------------------------
    def pre_forward(self, module: nn.Module, args: Any) -> Any:
        self.draws.depth += 1
        if self.plan.mode == "default-init" and not self._loss_seen:
            self._default_init(module)
        if self.plan.mode == "overfit":
            switch_off_dropout(module, recurse=False)
        if self.model is None and next(module.parameters(), None) is not None:
            self.model = module
        if not self._parent_sought:
            self._called.add(id(module))
        if (
            self.plan.mode == "overfit"
            and self.draws.depth == 1
            and torch.is_grad_enabled()
            and next(module.parameters(), None) is not None
        ):
            self._note_input(args)
        if self.plan.mode == "derivatives" and next(module.parameters(), None) is not None:
            self.derivatives.note_model_input(args)
        if (
            self.plan.mode in ("pairing", "overfit")
            and self.result.steps < 2
            and len(self._step_inputs.setdefault(self.result.steps, [])) < _CALLS_KEPT
            and self.draws.depth == 1
            and torch.is_grad_enabled()
            and next(module.parameters(), None) is not None
        ):
            inputs = [x for x in tensors(args) if x.grad_fn is None]
            self._step_inputs[self.result.steps].append(inputs)
        if (
            self.plan.mode == "trace"
            and module is self.model
            and self.result.steps == self.plan.trace_step
            and self.tracer is None
            and torch.is_grad_enabled()
        ):
            torch.autograd.set_detect_anomaly(True, check_nan=False)
            self.tracer = _NonFiniteTracer()
            self.tracer.__enter__()
        if (
            self.noise is not None
            and self.draws.depth == 1
            and torch.is_grad_enabled()
            and next(module.parameters(), None) is not None
        ):
            return self.noise.replace(args)
        return None

    def post_forward(self, module: nn.Module, args: Any, output: Any) -> None:
        self.draws.depth = max(0, self.draws.depth - 1)

    def _default_init(self, module: nn.Module) -> None:
        """Re-draw ``module`` and everything in it by PyTorch's own initialisation, once,
        before it first computes: the script's random streams are forked, so the batches
        it draws afterwards are the ones it drew when observed."""
        if id(module) in self._reset:
            return
        devices = sorted({p.device.index or 0 for p in module.parameters() if p.is_cuda})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            redraw_by_default(module, self._reset)

    def _note_input(self, args: Any) -> None:
        """A fingerprint of every data tensor the step's calls of modules with parameters
        from outside any module read (activations left out); two steps' differ when the
        script changes the fixed batch on its way to the model, draws a part of the input
        anew at each step (negative samples, noise, masks), or calls the model on states it
        reached by acting (a rollout's later states, however alike its first)."""
        if self.result.inputs_vary:
            return
        prints = []
        for x in tensors(args):
            if x.numel() == 0 or (x.requires_grad and x.grad_fn is not None):
                continue
            if x.layout == torch.sparse_coo:  # a graph's adjacency: its stored values
                x = x.detach().coalesce().values()
                if x.numel() == 0:
                    continue
            flat = x.detach().reshape(-1)
            prints.append(
                (tuple(x.shape), float(flat.double().sum()), float(flat[0]), float(flat[-1]))
            )
        if not prints:
            return
        if not self._step_prints:
            self.result.batch_rows = prints[0][0][0] if prints[0][0] else 1
        self._step_prints.append(tuple(prints))

    def _close_step_inputs(self) -> None:
        """The step's fingerprints, as one, beside the other steps'."""
        if self._step_prints:
            self._input_prints.add(tuple(self._step_prints))
            self._step_prints = []
            self.result.input_steps += 1
        self.result.inputs_vary = self.result.inputs_vary or len(self._input_prints) > 1

    def pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # A forward called directly: followed as the capture did.
        if self.model is None:
            self.direct.route(optimizer)
        elif not self._parent_sought:
            self._parent_sought = True
            own = {id(p) for g in optimizer.param_groups for p in g["params"]}
            parent = direct_parent(own, self.model, self._called)
            if parent is not None:
                self.direct.route_modules([parent])
                self.model = parent
        if self.plan.mode == "rate":
            self._scale_rates(optimizer)
        if self.plan.mode == "overfit":
            for group in optimizer.param_groups:
                if "weight_decay" in group:
                    group["weight_decay"] = 0.0
                for key, value in self.plan.overrides.items():
                    if key in group:
                        group[key] = value
        if self.tracer is not None:
            self._finish_trace()
            raise StopCapture("traced")

    def _scale_rates(self, optimizer: torch.optim.Optimizer) -> None:
        """Each group steps at ``lr_scale`` times the rate the script (and its scheduler) set;
        the script's own rate is put back after the step, so its schedule runs as written."""
        scale = float(self.plan.overrides.get("lr_scale", 1.0))
        kept = []
        for group in optimizer.param_groups:
            lr = group.get("lr")
            kept.append(lr)
            if isinstance(lr, (int, float)) and not isinstance(lr, bool):
                group["lr"] = lr * scale
        self._script_rates[id(optimizer)] = kept
        first = kept[0] if kept else None
        if isinstance(first, (int, float)) and len(self.result.rates) < self.plan.steps:
            self.result.rates.append(float(first))

    def post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        kept = self._script_rates.pop(id(optimizer), None)
        if kept is not None:
            for group, lr in zip(optimizer.param_groups, kept, strict=False):
                group["lr"] = lr
        self.result.steps += 1
        self.terms.clear()
        self._loss_seen = False
        self._close_step_inputs()
        if self.hand_pairs is not None:
            self.hand_pairs.next_step()
            if self.result.steps == 1 and not self.result.paired:
                # Samples cut by hand are re-paired from the second step on (two tensors
                # drawn by shared rows are data once they recur): the first step's loss,
                # read alike in every arm, is forgotten and the budget counted from here.
                self._count_from_here()
                self._note_whole_arrays()
            elif self.result.steps == 2 and not self.result.paired and self._pair_whole_arrays():
                # Arrays fed whole are re-paired from the third step on: the second step's
                # loss, read alike in every arm, is forgotten too.
                self._count_from_here()
            elif self._whole_rows:
                self.result.pairs_read += self._whole_rows
        if self.plan.mode == "overfit" and not self.result.substituted:
            self._repeat_draws()
        elif self.plan.mode == "overfit" and self.plan.overrides.get("same_draws"):
            self._same_draws_each_step()
        if (
            self.plan.mode in ("overfit", "rate", "pairing")
            and self.result.steps - self._steps_before_repeat >= self.plan.steps
        ):
            raise StopCapture("step budget")
        if self.plan.fit_rule is not None and fit_reached(self.result.losses, self.plan.fit_rule):
            # Fit: the later steps could only say so again (the check's own rule, given).
            raise StopCapture("step budget")
        if self.plan.mode == "trace" and self.result.steps > self.plan.trace_step + 1:
            raise StopCapture("step budget")

    def _repeat_draws(self) -> None:
        """Without a DataLoader to substitute (batches cut by hand from tensors, a task or
        a batch sampled anew at each step), one batch is made of the second step's: the
        random streams are marked after the first step and rewound after each later one,
        and the rows the second step cut from tensors are handed out again, cut to the
        tiny batch where they are the batch's. The steps before are forgotten (other
        batches). Batches made otherwise (slices in sequence of a list, a generator of the
        script's own) still differ, and ``inputs_vary`` says so."""
        self.draws.next_step()
        if not self.streams.marked:
            self.streams.mark()
            self.draws.recording = True
            self._forget_steps()
            if not self.plan.overrides.get("uncut"):
                self._note_whole_arrays()
            return
        if self.draws.recording:
            self.draws.recording, self.draws.repeating = False, True
            if not self.plan.overrides.get("uncut"):
                self._tile_whole_arrays()
                rows = self.result.batch_rows
                cut = self.draws.cut(rows, self.plan.batch_size)
                self.result.batch_cut = cut or self.result.tiled
            self._forget_steps()
        self.streams.rewind()

    def _same_draws_each_step(self) -> None:
        """For a DataLoader's substituted batch: the random streams marked after the first
        step and rewound after each later one, so every later step draws what the second
        drew (weights sampled in the forward, noise added in the loop); the first step's
        loss, drawn otherwise, is forgotten."""
        if not self.streams.marked:
            self.streams.mark()
            self._count_from_here()
            return
        self.streams.rewind()

    def _count_from_here(self) -> None:
        """The steps so far forgotten: their losses dropped, the step budget counted anew."""
        self._steps_before_repeat = self.result.steps
        self.result.losses.clear()
        self.result.term_losses.clear()

    def _forget_steps(self) -> None:
        self._count_from_here()
        self.result.repeated_draws = True
        self._input_prints.clear()
        self.result.inputs_vary = False
        self.result.input_steps = 0

    def note_backward(self, tensor: torch.Tensor) -> None:
        if self.plan.mode == "default-init" and tensor.dim() == 0:
            initial: dict[str, float] = {}
            for name, term in self.terms:
                initial.setdefault(name, float(term.detach()))
            self.result.initial_terms = initial
            self.result.losses.append(float(tensor.detach()))
            raise StopCapture("traced")
        if self.plan.mode == "derivatives":
            if tensor.dim() == 0 and self.derivatives.forced and tensor.requires_grad:
                self.result.derivatives = self.derivatives.compare(tensor, self.original_grad)
                raise StopCapture("traced")
            return
        if (
            self.plan.mode == "terms"
            and tensor.dim() == 0
            and self.result.steps == self.plan.trace_step
        ):
            if len(self.terms) >= 2 and self.model is not None:
                params = [p for p in self.model.parameters() if p.requires_grad]
                self.result.terms = loss_term_gradients(tensor, self.terms, params)
            raise StopCapture("traced")
        if tensor.dim() == 0 and not self._loss_seen:
            self._loss_seen = True
            value = float(tensor.detach())
            self.result.losses.append(value if math.isfinite(value) else float("nan"))
            if self.plan.mode == "overfit":
                # One read of the device for the step's terms, summed where they are.
                self.result.term_losses.append(
                    float(sum(term.detach() for _, term in self.terms))
                    if self.terms
                    else float("nan")
                )
            if self.plan.mode in ("overfit", "rate", "pairing") and not math.isfinite(value):
                raise StopCapture("diverged")

    def _finish_trace(self) -> None:
        tracer, self.tracer = self.tracer, None
        assert tracer is not None
        tracer.__exit__(None, None, None)
        torch.autograd.set_detect_anomaly(False)
        if tracer.event is not None:
            self.result.event = asdict(tracer.event)


def _cut(batch: Any, size: int) -> Any:
    return slice_batch(batch, size, None)


def main(plan_path: str, out_path: str) -> None:
    with open(plan_path, encoding="utf-8") as f:
        plan = ReplayPlan(**json.load(f))
    replay = _Replay(plan)
    original_iter = DataLoader.__iter__
    original_init = DataLoader.__init__
    original_backward = torch.Tensor.backward

    def backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        replay.note_backward(as_backward_loss(tensor, args, kwargs))
        return original_backward(tensor, *args, **kwargs)

    def on_alarm(signum: int, frame: Any) -> None:
        raise StopCapture(TIMEOUT)

    handles = [
        module_mod.register_module_forward_pre_hook(replay.pre_forward),
        module_mod.register_module_forward_hook(replay.post_forward),
        optim_mod.register_optimizer_step_pre_hook(replay.pre_step),
        optim_mod.register_optimizer_step_post_hook(replay.post_step),
    ]
    overfit = plan.mode == "overfit"
    if overfit:
        DataLoader.__iter__ = replay.fixed_iter(original_iter)  # type: ignore[method-assign]
    if plan.mode == "pairing":
        DataLoader.__init__ = replay.repaired_init(original_init)  # type: ignore[method-assign]
    if plan.mode == "derivatives":
        torch.autograd.grad = replay.derivatives.wrap(replay.original_grad)
    torch.Tensor.backward = backward  # type: ignore[method-assign]
    sys.argv = [plan.script, *plan.argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(plan.script)))
    if plan.threads is not None:
        torch.set_num_threads(plan.threads)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, plan.timeout)
    # Inside the replay's own folder, which the parent removes: nothing stays in the temp dir.
    scratch = os.path.join(os.path.dirname(os.path.abspath(out_path)), "scratch")
    os.makedirs(scratch, exist_ok=True)
    try:
        with (
            Sandbox(scratch).installed(),
            replay.direct.installed(),
            EagerScripting().installed(),
            open(os.devnull, "w") as null,
            recorded_loss_terms() as terms,
            replay.streams.tracking_generators() if overfit else contextlib.nullcontext(),
            replay.draws.installed() if overfit else contextlib.nullcontext(),
            replay.hand_pairs.installed() if replay.hand_pairs else contextlib.nullcontext(),
        ):
            replay.terms = terms
            sys.stdout = null
            if plan.seed is not None:  # as the observed run was seeded (a script's own wins)
                random.seed(plan.seed)
                numpy.random.seed(plan.seed)
                torch.manual_seed(plan.seed)
            try:
                runpy.run_path(plan.script, run_name="__main__")
            except StopCapture as stop:
                replay.result.error = (
                    None if stop.reason in ("step budget", "traced") else stop.reason
                )
            except SystemExit:
                pass
            except BaseException as exc:  # noqa: BLE001 - the replay reports, never raises
                replay.result.error = f"{type(exc).__name__}: {exc}"
            finally:
                sys.stdout = sys.__stdout__
        if replay.tracer is not None:
            replay._finish_trace()
        replay.finish_pairing()
        if replay.noise is not None:
            replay.result.inputs_replaced = replay.noise.replaced
        replay.result.ok = replay.result.error is None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for h in handles:
            h.remove()
        DataLoader.__iter__ = original_iter  # type: ignore[method-assign]
        DataLoader.__init__ = original_init  # type: ignore[method-assign]
        torch.Tensor.backward = original_backward  # type: ignore[method-assign]
        torch.autograd.grad = replay.original_grad
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(asdict(replay.result), f)


def serve() -> None:
    """Answer each request line on stdin, ``{"batch": [{plan, out, cwd, log, hard_limit},
    ...], "parallel": k, "threads": n}``, with a line ``{"outcomes": ["done" | "stopped",
    ...], "cpu": [seconds, ...]}`` once every replay of the batch, forked ``k`` at a time,
    has ended; "cpu" is each replay's processor time, its own processes' included."""
    # Every optimizer imports torch._dynamo when it is built (its compile guards), a
    # second or more: imported once here rather than in every replay.
    with contextlib.suppress(Exception):
        import torch._dynamo  # noqa: F401
    answers = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        outcomes, cpu = _forked_batch(request["batch"], request["parallel"], request["threads"])
        answers.write(json.dumps({"outcomes": outcomes, "cpu": cpu}) + "\n")
        answers.flush()


def _forked_batch(
    requests: list[dict[str, Any]], parallel: int, threads: int | None
) -> tuple[list[str], list[float]]:
    """Run each replay in a child forked from this process, ``parallel`` at a time: "done",
    or "stopped" where it had to be killed at its hard limit, and the processor seconds
    each used. Nothing here has run any of the script, so each child starts as clean as a
    new interpreter after its imports."""
    outcomes = ["done"] * len(requests)
    cpu = [0.0] * len(requests)
    waiting = list(enumerate(requests))
    running: dict[int, tuple[int, float]] = {}  # pid -> (index, deadline)
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                index, request = waiting.pop(0)
                pid = _fork_replay(request, threads)
                running[pid] = (index, time.monotonic() + float(request["hard_limit"]))
            for pid, (index, deadline) in list(running.items()):
                done, _, usage = os.wait4(pid, os.WNOHANG)
                if not done and time.monotonic() > deadline:
                    usage = _kill_group(pid)
                    outcomes[index] = "stopped"
                    done = pid
                if done:
                    del running[pid]
                    cpu[index] = _processor_seconds(usage)
            time.sleep(0.02)
    except BaseException:
        # The server is going away (closed, interrupted): so are the replays it started.
        for pid in running:
            _kill_group(pid)
        raise
    return outcomes, cpu


def _processor_seconds(usage: Any) -> float:
    """User and system time of a reaped child; its own reaped children (loader workers)
    are in it too."""
    return float(usage.ru_utime + usage.ru_stime) if usage is not None else 0.0


def _fork_replay(request: dict[str, Any], threads: int | None) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            _become_replay(request)
            if threads is not None:
                torch.set_num_threads(threads)
            main(request["plan"], request["out"])
            code = 0
        except BaseException:
            # os._exit prints nothing: the traceback goes to the replay's log (file 2 once
            # _become_replay has pointed it there), where the caller reads why it failed.
            with contextlib.suppress(Exception):
                sys.stderr.flush()
                os.write(2, traceback.format_exc().encode("utf-8", "replace"))
        finally:
            os._exit(code)
    return pid


def _become_replay(request: dict[str, Any]) -> None:
    """The forked child's own setting: its process group (so that a kill at the hard limit
    reaches the loader workers it starts), the caller's environment as it is now (temp
    folder included), its folder first on the import path, as a new interpreter started
    there would have it, no stdin, and stdout and stderr to its log."""
    os.setpgid(0, 0)
    if "env" in request:
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # read again from the environment on first use
    if sys.path and sys.path[0] == os.getcwd():
        sys.path[0] = request["cwd"]
    os.chdir(request["cwd"])
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def _kill_group(pid: int) -> Any:
    """Kill a replay and the processes it started; its resource usage once reaped."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        return os.wait4(pid, 0)[2]
    except ChildProcessError:
        return None


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main(sys.argv[1], sys.argv[2])
