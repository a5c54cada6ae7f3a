"""The rank probe: what one rank of a distributed job saw, for the checks that compare ranks.

Per optimizer step it keeps, on the tensors' own device (copied to the host once, when the
run is over):

- the gradient norm of every parameter the optimizer holds, at the end of the step (after
  DistributedDataParallel's all-reduce, so equal on every rank when gradients are
  synchronised), and the norm of every such parameter after the update: the checksums that
  drift apart when one rank's parameters do;
- the norm of every buffer of the model when its first training forward of the step begins
  (after DDP has broadcast rank 0's buffers) and again at the end of the step (after each
  rank's BatchNorm layers updated their running statistics from their own batch);
- every pass of a ``DistributedSampler`` (one per epoch's iterator): its epoch and seed,
  so a sampler whose epoch never advances is seen.

It never judges and never communicates: the facts of every rank are gathered by
:mod:`nndoctor.distributed` and compared by :mod:`nndoctor.checks.distributed`. Every hook
and patch is removed by :meth:`RankProbe.close`; a hook that fails disables the probe and is
recorded, never raised into the user's run.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from nndoctor.probes.layers import BATCH_NORM

# Steps whose checksums are kept: enough for any step budget `check` runs with.
MAX_RECORDED_STEPS = 256


@dataclass
class SamplerPass:
    """One pass of a DistributedSampler: the iterator of one epoch."""

    dataset: int  # the sampler's dataset, numbered in the order datasets were first seen
    epoch: int
    seed: int
    shuffle: bool
    training: bool  # gradients were enabled when the pass began (not an evaluation loop)
    num_replicas: int
    rank: int


@dataclass
class SourceFacts:
    """What the script's source says about scaling with the world size."""

    file: str | None = None
    # Where the source multiplies a batch size by the world size (the global batch grows
    # with the number of ranks), as (line, text).
    batch_scaled: tuple[int, str] | None = None
    # Whether any expression combines a learning rate with the world size.
    lr_scaled: bool = False
    # Where the source names SyncBatchNorm (line), when it does.
    sync_batchnorm: int | None = None


@dataclass
class RankFacts:
    """One rank's facts, plain numbers (picklable: they are gathered on rank 0)."""

    rank: int
    world: int
    backend: str = ""
    steps: int = 0
    stop_reason: str = ""
    error: str | None = None  # the script raised (one line)
    wrapper: str | None = None  # DistributedDataParallel, FSDP, or None (the bare module)
    sharded: bool = False  # parameters are shards (FSDP): they differ across ranks by design
    # Per step: one number per input sample (nndoctor.probes.training's fingerprints), the
    # batch's fingerprint, keyed by the step number they were recorded at.
    sample_fingerprints: dict[int, list[float]] = field(default_factory=dict)
    batch_fingerprints: dict[int, tuple[float, float]] = field(default_factory=dict)
    batch_sizes: dict[int, int] = field(default_factory=dict)
    # The optimizer's parameters (named as in the model; those outside it are listed in
    # outside_model) and per step their gradient norms and norms after the update.
    param_names: list[str] = field(default_factory=list)
    outside_model: list[str] = field(default_factory=list)
    grad_norms: list[list[float]] = field(default_factory=list)
    param_norms: list[list[float]] = field(default_factory=list)
    # The model's buffers, per step at the first training forward and at the step's end.
    buffer_names: list[str] = field(default_factory=list)
    buffers_at_forward: list[list[float]] = field(default_factory=list)
    buffers_at_step_end: list[list[float]] = field(default_factory=list)
    batchnorm_buffers: list[str] = field(default_factory=list)  # running statistics of BN layers
    sync_batchnorm_layers: int = 0
    sampler_passes: list[SamplerPass] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)  # per group, at the first step
    source: SourceFacts = field(default_factory=SourceFacts)
    probe_errors: list[str] = field(default_factory=list)


@dataclass
class DistributedRecord:
    """The facts of every rank that answered, gathered on rank 0."""

    world: int
    ranks: list[RankFacts]  # in rank order; ranks that were lost are missing
    lost: list[int] = field(default_factory=list)  # ranks that did not answer
    lost_reason: str | None = None

    def rank(self, r: int) -> RankFacts | None:
        return next((f for f in self.ranks if f.rank == r), None)


def local_part(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard (its norm needs no collective); any other tensor as it is."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def _norms(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    """One float per tensor (NaN for None), on the first tensor's device, without syncing."""
    present = [(i, local_part(t).detach()) for i, t in enumerate(tensors) if t is not None]
    if not present:
        return None
    device = present[0][1].device
    out = torch.full((len(tensors),), math.nan, dtype=torch.float32, device=device)
    floats = [(i, t if t.is_floating_point() else t.float()) for i, t in present]
    values = torch._foreach_norm([t for _, t in floats])
    index = torch.tensor([i for i, _ in floats], device=device)
    out.index_copy_(0, index, torch.stack([v.float().to(device) for v in values]))
    return out


class RankProbe:
    """Records a rank's checksums and sampler passes (see the module docstring)."""

    def __init__(self, max_steps: int = MAX_RECORDED_STEPS) -> None:
        self.max_steps = max_steps
        self.model: nn.Module | None = None
        self.param_names: list[str] = []
        self.outside_model: list[str] = []
        self.buffer_names: list[str] = []
        self.batchnorm_buffers: list[str] = []
        self.sync_batchnorm_layers = 0
        self._params: list[torch.Tensor] = []
        self._buffers: list[torch.Tensor] = []
        self._grads: list[torch.Tensor | None] = []
        self._after: list[torch.Tensor | None] = []
        self._at_forward: list[torch.Tensor | None] = []
        self._at_end: list[torch.Tensor | None] = []
        self._armed = True  # the next training forward is the first of its step
        self._handles: list[RemovableHandle] = []
        self._optimizer: Any = None
        self.sampler_passes: list[SamplerPass] = []
        self._datasets: dict[int, int] = {}
        self.errors: list[str] = []
        self._disabled = False

    def _guard(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._disabled:
                return None
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # a probe must never break the user's run
                self._disabled = True
                self.errors.append(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
                return None

        return guarded

    def attach(self, model: nn.Module) -> None:
        """Observe ``model`` (the module inside DDP, not the wrapper)."""
        self.model = model
        buffers = list(model.named_buffers())
        self.buffer_names = [n for n, _ in buffers]
        self._buffers = [b for _, b in buffers]
        bn = {n for n, m in model.named_modules() if isinstance(m, BATCH_NORM)}
        self.sync_batchnorm_layers = sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
        self.batchnorm_buffers = [
            n
            for n in self.buffer_names
            if n.rsplit(".", 1)[0] in bn and n.endswith(("running_mean", "running_var"))
        ]
        self._handles.append(model.register_forward_pre_hook(self._guard(self._on_forward)))

    def _on_forward(self, module: nn.Module, args: Any) -> None:
        if not (self._armed and torch.is_grad_enabled()):
            return
        self._armed = False
        if len(self._at_forward) < self.max_steps:
            self._at_forward.append(_norms(list(self._buffers)))

    def step_ended(self, optimizer: Any) -> None:
        """The optimizer stepped (called once per step, after the update)."""
        self._guard(self._step_ended)(optimizer)

    def _step_ended(self, optimizer: Any) -> None:
        self._armed = True
        if optimizer is not None and optimizer is not self._optimizer:
            self._bind(optimizer)
        if len(self._grads) >= self.max_steps:
            return
        # A step whose forward was not seen (the model called outside the hook) still
        # keeps the lists aligned by step.
        while len(self._at_forward) < len(self._grads) + 1:
            self._at_forward.append(None)
        self._grads.append(_norms([p.grad for p in self._params]))
        self._after.append(_norms(list(self._params)))
        self._at_end.append(_norms(list(self._buffers)))

    def _bind(self, optimizer: Any) -> None:
        self._optimizer = optimizer
        names = {id(p): n for n, p in self.model.named_parameters()} if self.model else {}
        self._params, self.param_names, self.outside_model = [], [], []
        for g, group in enumerate(optimizer.param_groups):
            for i, p in enumerate(group["params"]):
                name = names.get(id(p))
                if name is None:
                    name = f"<outside the model: group {g}, parameter {i}, shape {list(p.shape)}>"
                    self.outside_model.append(name)
                self._params.append(p)
                self.param_names.append(name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Patch ``DistributedSampler.__iter__`` to record each pass; put back on exit."""
        from torch.utils.data.distributed import DistributedSampler

        original = DistributedSampler.__iter__
        probe = self

        def __iter__(sampler: DistributedSampler) -> Any:  # noqa: N807 - replaces a dunder
            probe._guard(probe._note_pass)(sampler)
            return original(sampler)

        DistributedSampler.__iter__ = __iter__  # type: ignore[method-assign]
        try:
            yield
        finally:
            DistributedSampler.__iter__ = original  # type: ignore[method-assign]

    def _note_pass(self, sampler: Any) -> None:
        key = id(sampler.dataset)
        index = self._datasets.setdefault(key, len(self._datasets))
        self.sampler_passes.append(
            SamplerPass(
                dataset=index,
                epoch=int(sampler.epoch),
                seed=int(getattr(sampler, "seed", 0)),
                shuffle=bool(sampler.shuffle),
                training=torch.is_grad_enabled(),
                num_replicas=int(sampler.num_replicas),
                rank=int(sampler.rank),
            )
        )

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._params, self._buffers, self._optimizer = [], [], None

    def fill(self, facts: RankFacts) -> None:
        """Write what was recorded into ``facts`` (the one host copy of the run)."""
        facts.param_names = list(self.param_names)
        facts.outside_model = list(self.outside_model)
        facts.buffer_names = list(self.buffer_names)
        facts.batchnorm_buffers = list(self.batchnorm_buffers)
        facts.sync_batchnorm_layers = self.sync_batchnorm_layers
        facts.grad_norms = _host(self._grads, len(self.param_names))
        facts.param_norms = _host(self._after, len(self.param_names))
        facts.buffers_at_forward = _host(
            self._at_forward[: len(self._grads)], len(self.buffer_names)
        )
        facts.buffers_at_step_end = _host(self._at_end, len(self.buffer_names))
        facts.sampler_passes = list(self.sampler_passes)
        facts.probe_errors = list(self.errors)


def _host(rows: list[torch.Tensor | None], width: int) -> list[list[float]]:
    nan_row = [math.nan] * width
    return [r.cpu().tolist() if r is not None else list(nan_row) for r in rows]
