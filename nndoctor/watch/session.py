"""The Watcher: stays attached to a training run and raises alerts as problems appear.

::

    with nndoctor.watch(model, optimizer) as w:
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    alerts = w.report.alerts

What runs when:

- **Every step (the sentinel)**: the loss of every backward pass (``Tensor.backward`` is
  wrapped while attached; a GradScaler's scaled loss is read unscaled), the global gradient
  norm at the update (one fused norm over the gradients), the GradScaler's skip decisions
  and scale, the model's train/eval mode, the optimizer and its parameter groups. Gathered
  on the device, copied to the host without blocking and read when the copy lands (at once
  on the CPU, a step or so later on a GPU).
- **Every k-th step (sampling)**: per leaf module the mean, std and zero share of its output;
  per parameter the gradient norm, the weight norm before the update and the update norm.
  Computed on the device into preallocated buffers, one row per sampled step.
- **Updates by hand** (``p.data.add_(p.grad, alpha=-lr)``, no optimizer): until an optimizer
  steps the model, a global forward pre-hook compares the parameters' checksums at the
  model's training forwards after a backward pass; once they moved, a step ends at each
  such forward, and gradients are read right after each backward pass.
- ``every=K`` fixes k; otherwise k adapts so that watch's measured cost stays within
  ``budget`` (see :mod:`nndoctor.watch.sampling`). Verdicts never depend on machine speed
  beyond which steps were sampled: see :mod:`nndoctor.watch.stream_checks`.

Nothing is stored on the model, so it keeps no closure of watch's and stays picklable: its
calls are seen through its class's ``forward``, wrapped and filtered by identity; layer
outputs through a global module forward hook installed for sampled steps only (any global
hook slows every module call); steps through global optimizer step hooks. A
``torch.compile``d model is watched from outside its compiled call (the
``torch.compile(model)`` wrapper's hook, or a wrapper of the compiled call of a
``model.compile()``d module): its layers' activations and updates by hand are not seen,
and a note says so. Every hook and patch is removed on exit, exceptions included; a hook
that fails is disabled and
recorded, never raised into the user's run. Watch itself changes neither the model, nor
the optimizer's state, nor the random state (the NaN replay works on a copy, with the random
state forked).
"""

from __future__ import annotations

import functools
import math
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

import torch
import torch.optim.optimizer as optim_mod
from torch import nn
from torch.nn.modules import module as module_mod
from torch.utils.hooks import RemovableHandle

from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS, Thresholds
from nndoctor.probes.layers import RELU, is_kind
from nndoctor.probes.training import param_checksums
from nndoctor.report.model import Finding, Severity
from nndoctor.trees import first_tensor
from nndoctor.watch.alerts import AlertSink
from nndoctor.watch.replay import ReplayResult, replay_step
from nndoctor.watch.report import SeriesBuilder, WatchReport
from nndoctor.watch.rows import Sample
from nndoctor.watch.sampling import WINDOW, Sampler
from nndoctor.watch.sentinel import Sentinel, decode
from nndoctor.watch.stats import (
    ACTIVATION_FIELDS,
    AsyncRing,
    activation_row,
    activation_stats,
    leading_rows,
    norms,
)
from nndoctor.watch.stream_checks import StreamCheck, StreamContext, fresh_checks

STOP_ON = ("never", "error")
_compiling = getattr(torch.compiler, "is_compiling", lambda: False)
# Steps whose batch (by reference) and output gradient are kept for a NaN replay.
_KEPT_CALLS = 3
_INHERITED = object()  # marks a patched attribute the owner did not define itself
# Models up to this size keep a double-buffered copy of their weights on a GPU (see Watcher).
KEEP_WEIGHTS_MAX_BYTES = 1 << 30
# Training forwards after which parameters that have not moved are taken as not updated by
# hand: an update by hand moves them before the next forward.
MANUAL_STEP_TRIES = 8


class WatchStopped(RuntimeError):
    """Raised into the training loop by ``stop_on="error"`` right after an error alert."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(
            f"nndoctor watch stopped the run at step {finding.where.step}: "
            f"{finding.title} ({finding.check}). {finding.message}"
        )
        self.finding = finding


class Watcher:
    """Watches ``model`` trained by ``optimizer`` (or by whichever optimizer steps its
    parameters, when None). ``attach()`` / ``detach()``, or use as a context manager;
    ``report`` holds the :class:`WatchReport` once detached.

    ``every``: sample every K steps (reproducible); None adapts k to ``budget`` (a fraction
    of the step time). ``log``: a path or an open text file receiving JSON lines.
    ``stop_on="error"`` raises :class:`WatchStopped` after the first error alert.
    ``on_alert(finding)`` is called for every alert. ``on_step_end(steps_done)`` is called
    after each step (it may raise to stop a run).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Any = None,
        *,
        every: int | None = None,
        budget: float = 0.02,
        log: Any = None,
        stop_on: str = "never",
        on_alert: Callable[[Finding], None] | None = None,
        thresholds: Thresholds | None = None,
        quiet: bool = False,
        console: Any = None,
        on_step_end: Callable[[int], None] | None = None,
        keep_weights: bool | None = None,
    ) -> None:
        if stop_on not in STOP_ON:
            raise ValueError(f"stop_on must be one of {STOP_ON}, got {stop_on!r}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"watch needs an nn.Module, got {type(model).__name__}")
        if budget <= 0:
            raise ValueError(f"budget must be a positive fraction of the step time, got {budget}")
        self.model = model
        inner = getattr(model, "_orig_mod", model)
        self._inner: nn.Module = inner if isinstance(inner, nn.Module) else model
        self.compiled = self._inner is not model or (
            getattr(model, "_compiled_call_impl", None) is not None
        )
        # Framework wrappers (accelerate's AcceleratedOptimizer, Lightning's) hold the real
        # one, whose step() is the one that runs the step hooks.
        for attr in ("optimizer", "_optimizer"):
            inner_opt = getattr(optimizer, attr, None)
            if isinstance(inner_opt, torch.optim.Optimizer):
                optimizer = inner_opt
                break
        self.stop_on = stop_on
        self.on_alert = on_alert
        self.on_step_end = on_step_end
        self.thresholds = thresholds or DEFAULT_THRESHOLDS
        self.sampler = Sampler(every=every, budget=budget)
        self.sink = AlertSink(log, console=console, quiet=quiet)
        self.ring = AsyncRing()
        self.sentinel = Sentinel(self.ring)
        self.series = SeriesBuilder()
        self.report = WatchReport(budget=budget, every=every)

        self._params = [(n, p) for n, p in self._inner.named_parameters() if p.requires_grad]
        self._param_ids = {id(p) for _, p in self._params}
        leaves = [
            (n, m) for n, m in self._inner.named_modules() if next(m.children(), None) is None
        ]
        self._leaf_names = [n for n, _ in leaves]
        self._leaf_index = {id(m): i for i, (_, m) in enumerate(leaves)}
        # Layers whose share of exact zeros is measured (the dead-unit rule reads it).
        self._zero_leaves = {i for i, (_, m) in enumerate(leaves) if is_kind(type(m), RELU)}
        first = next(iter(self._inner.parameters()), None)
        self._device = first.device if first is not None else torch.device("cpu")
        # Where the sentinel is read a step late (a GPU), the weights each step ran with are
        # kept on the device, double-buffered (one copy per step, no host transfer), so a NaN
        # replay sees them rather than weights an update with NaN gradients has spoilt.
        size = sum(p.numel() * p.element_size() for _, p in self._params)
        if keep_weights is None:
            keep_weights = self._device.type == "cuda" and size <= KEEP_WEIGHTS_MAX_BYTES
        self._keep_weights = keep_weights
        self._weights: list[list[torch.Tensor]] = []
        self._weights_step = [-1, -1]
        self._act: torch.Tensor | None = None
        self._snapshot: list[torch.Tensor] | None = None
        self.ctx = StreamContext(
            thresholds=self.thresholds,
            module_classes={n: type(m) for n, m in self._inner.named_modules()},
            param_shapes={n: tuple(p.shape) for n, p in self._params},
            replay=self._replay,
        )
        self._checks: list[StreamCheck] = fresh_checks()
        self._checks_phase = 0

        self._handles: list[RemovableHandle] = []
        self._patches: list[tuple[Any, str, Any]] = []
        self._disabled: set[str] = set()
        self._attached = False
        self._closing = False
        self._replaying = False

        self._tracked: weakref.WeakKeyDictionary[Any, tuple[int, bool]] = (
            weakref.WeakKeyDictionary()
        )
        self._current_opt: Any = optimizer
        self._current_groups = len(optimizer.param_groups) if optimizer is not None else 0
        self._known_opts: weakref.WeakSet[Any] = weakref.WeakSet()
        if optimizer is not None:
            self._known_opts.add(optimizer)
        self._phase = 0
        self._phase_what: dict[int, str] = {}
        self._scaler: Any = None
        self._scaled: tuple[torch.Tensor, torch.Tensor] | None = None
        self._calls: deque[tuple[int, Any, Any, Any]] = deque(maxlen=_KEPT_CALLS)

        self.step = 0  # the step under way (0-based)
        self._backward_seen = False
        # Updates by hand (no optimizer steps the model): found by the parameters moving
        # between two training forwards with a backward pass between them and no optimizer
        # step; from then on a step ends at the next training forward.
        self._stepped_by_optimizer = False
        self._manual = False
        self._manual_tries = 0
        self._first_sums: torch.Tensor | None = None
        self._manual_grads: tuple[torch.Tensor, list[int]] | None = None
        self._boundary_handle: RemovableHandle | None = None
        self._leaf_handle: RemovableHandle | None = None
        self._root_by_hook = False
        self._new_step_state()
        self._sampling = self.sampler.sampled(0)
        self._last_close = math.nan
        self._sampled_count = 0
        self._replay_seconds = 0.0  # time spent replaying batches (kept out of the cost)
        self._job: Any = None  # the distributed job this Watcher joined, if any

    @property
    def backward_seen(self) -> bool:
        """Whether a backward pass ran while attached."""
        return self._backward_seen

    # -- life cycle ------------------------------------------------------------------
    def __enter__(self) -> Watcher:
        self.attach()
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def attach(self) -> Watcher:
        """Install the hooks and patches (idempotent)."""
        if self._attached:
            return self
        self._attached = True
        try:
            if self.compiled:
                if getattr(self.model, "_compiled_call_impl", None) is not None:
                    # model.compile(): the module's own hooks run inside the compiled call
                    # (traced, where watch's hooks do nothing); its call is observed from
                    # outside, by wrapping the compiled call on the instance.
                    self._wrap_compiled_call()
                else:
                    self._handles.append(
                        self.model.register_forward_hook(
                            self._forward_hook(with_root=True), with_kwargs=True
                        )
                    )
                self._note(
                    "torch.compile: per-layer activations are not observed (hooks inside the "
                    "compiled graph would break it), nor are updates by hand; the loss, "
                    "gradients, weights, updates, the train/eval mode and the sentinel are, "
                    "and a NaN replay runs the model's eager code on a copy."
                )
            else:
                self._observe_root_calls()
                self._sync_leaf_hook()
            self._handles.append(
                optim_mod.register_optimizer_step_pre_hook(self._guard("optimizer", self._pre_step))
            )
            self._handles.append(
                optim_mod.register_optimizer_step_post_hook(
                    self._guard("optimizer", self._post_step)
                )
            )
            if not self.compiled:
                # A global pre-hook would be traced into a compiled graph: a compiled model
                # is taken to be stepped by an optimizer.
                self._boundary_handle = module_mod.register_module_forward_pre_hook(
                    self._boundary_hook()
                )
                self._handles.append(self._boundary_handle)
                # The weights as the first step finds them (watch may attach in the middle
                # of that step's forward): an update by hand is seen against these.
                self._first_sums = param_checksums([p for _, p in self._params])
                if self._sampling:
                    self._snapshot_weights()
            self._patch_backward()
            self._patch_grad_scaler()
        except BaseException:
            self._remove_all()
            self._attached = False
            raise
        self._last_close = time.perf_counter()
        # In a distributed job the ranks compare notes (nndoctor.distributed.watch).
        from nndoctor.distributed.watch import join

        self._job = join(self)
        self.sink.event(
            "start",
            model=type(self._inner).__name__,
            every=self.sampler.every,
            budget=self.sampler.budget,
            compiled=self.compiled,
        )
        return self

    def detach(self) -> WatchReport:
        """Remove every hook and patch, read what is still in flight, fill ``report``."""
        if not self._attached:
            return self.report
        self._attached = False
        self._closing = True
        try:
            if self._manual and self._backwards:
                self._end_manual_step(last=True)
        except Exception as exc:  # noqa: BLE001 - the report must still be filled
            self._crash("manual", exc)
        try:
            self._remove_all()
        finally:
            try:
                self._consume(self.ring.poll(wait=True))
            except Exception as exc:  # noqa: BLE001 - the report must still be filled
                self._crash("decode", exc)
            if self._job is not None:
                self._job.leave()  # the ranks' last exchange (nndoctor.distributed.watch)
            self._finish_report()
            self.sink.close()
        return self.report

    def observe(
        self, *, loss: torch.Tensor | None = None, metric: torch.Tensor | float | None = None
    ) -> None:
        """Report this step's ``loss`` (when watch cannot see the backward call) or a
        ``metric`` (higher is better, e.g. accuracy) for the loss/metric check."""
        if loss is not None and self.sentinel.losses_seen == 0:
            self.sentinel.note_loss(loss)
        if metric is not None:
            self.sentinel.note_metric(metric)

    # -- guards and patches --------------------------------------------------------------
    def _guard(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            # Traced by torch.compile (a hook reached from inside a compiled region), the
            # hook is a no-op: nothing of watch's enters the user's graph and the graph does
            # not break. Run eagerly, this is one cheap call, unlike a Dynamo-disabled
            # wrapper (several microseconds per module call once Dynamo is loaded).
            if _compiling() or part in self._disabled or self._replaying:
                return None
            try:
                return fn(*args, **kwargs)
            except WatchStopped:
                raise
            except Exception as exc:  # a hook must never break the user's run
                self._crash(part, exc)
                return None

        return guarded

    def _crash(self, part: str, exc: BaseException) -> None:
        self._disabled.add(part)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.report.crashes.append(f"{part}: {detail}")
        self._note(f"watch's {part} hook failed and was disabled ({detail})")

    def _note(self, text: str) -> None:
        self.report.notes.append(text)
        self.sink.note(text)

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        # An attribute the owner only inherits is deleted again on exit, not copied onto it.
        own = name in vars(owner)
        self._patches.append((owner, name, getattr(owner, name) if own else _INHERITED))
        setattr(owner, name, replacement)

    def _remove_all(self) -> None:
        try:
            for h in self._handles:
                h.remove()
            self._handles.clear()
            self._drop_leaf_hook()
        finally:
            for owner, name, original in reversed(self._patches):
                if original is _INHERITED:
                    delattr(owner, name)
                else:
                    setattr(owner, name, original)
            self._patches.clear()

    def _observe_root_calls(self) -> None:
        """Every call of the model, seen by wrapping its class's ``forward`` (filtered by
        identity; put back on exit). A global module hook would do it too, but any global
        hook sends every module call of the process down torch's slow path, a third of
        watch's host time per step on a host-bound model (``benchmarks/host_overhead.py``),
        and a GPU step of a few milliseconds is mostly host time. Where the model
        has a ``forward`` of its own (an instance attribute), the leaf hook, then always
        installed, sees the model's calls instead."""
        root = self.model
        if "forward" in vars(root):
            self._root_by_hook = True
            return
        cls = type(root)
        original = cls.forward
        on_root = self._guard("model", self._on_root)

        @functools.wraps(original)
        def forward(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
            output = original(module, *args, **kwargs)
            if module is root and not _compiling():
                on_root(module, args, kwargs, output)
            return output

        self._patch(cls, "forward", forward)

    def _sync_leaf_hook(self) -> None:
        """The global forward hook that reads layer outputs is installed for sampled steps
        only (between them no module call pays for it)."""
        if self._sampling or self._root_by_hook:
            if self._leaf_handle is None:
                self._leaf_handle = module_mod.register_module_forward_hook(
                    self._forward_hook(), with_kwargs=True
                )
        else:
            self._drop_leaf_hook()

    def _drop_leaf_hook(self) -> None:
        handle, self._leaf_handle = self._leaf_handle, None
        if handle is not None:
            handle.remove()

    def _wrap_compiled_call(self) -> None:
        """Observe a ``model.compile()``d model's calls around its compiled call (an
        instance attribute, put back on exit; ``Module.__getstate__`` leaves it out of a
        pickle or a copy)."""
        model = self.model
        compiled_call = model._compiled_call_impl
        hook = self._forward_hook(with_root=True)

        def call(*args: Any, **kwargs: Any) -> Any:
            output = compiled_call(*args, **kwargs)
            hook(model, args, kwargs, output)
            return output

        self._patch(model, "_compiled_call_impl", call)

    def _patch_backward(self) -> None:
        original = torch.Tensor.backward
        note = self._guard("loss", self._note_loss)
        after = self._guard("manual", self._after_backward)

        @functools.wraps(original)
        def backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if tensor.dim() == 0 and not self._replaying:
                note(tensor)
            result = original(tensor, *args, **kwargs)
            if self._boundary_handle is not None:
                after()
            return result

        self._patch(torch.Tensor, "backward", backward)

    def _patch_grad_scaler(self) -> None:
        scaler_cls = getattr(torch.amp, "GradScaler", None)
        if scaler_cls is None:
            return
        original_scale, original_step = scaler_cls.scale, scaler_cls.step
        noted_scale = self._guard("scaler", self._note_scaled)
        noted_skip = self._guard("scaler", self._note_scaler_step)

        @functools.wraps(original_scale)
        def scale(scaler: Any, outputs: Any) -> Any:
            scaled = original_scale(scaler, outputs)
            noted_scale(scaler, outputs, scaled)
            return scaled

        @functools.wraps(original_step)
        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            before = self.step
            result = original_step(scaler, optimizer, *args, **kwargs)
            noted_skip(optimizer, before)
            return result

        self._patch(scaler_cls, "scale", scale)
        self._patch(scaler_cls, "step", step)

    # -- hooks -----------------------------------------------------------------------------
    def _new_step_state(self) -> None:
        self._forwards = 0
        self._training = True
        self._backwards = 0
        self._pushed = False
        self._step_opt: Any = None
        self._seen_leaves: dict[int, int] = {}  # leaf index -> elements
        self._grad_vec: torch.Tensor | None = None
        self._grad_idx: list[int] = []
        self._weight_vec: torch.Tensor | None = None
        self._cost_always = 0.0
        self._cost_sampled = 0.0
        self._call: tuple[Any, Any] | None = None
        self._output_grad: torch.Tensor | None = None
        self._scaled = None

    def _note_loss(self, loss: torch.Tensor) -> None:
        t0 = time.perf_counter()
        self._backward_seen = True
        self._backwards += 1
        if self._scaled is not None and loss is self._scaled[0]:
            loss = self._scaled[1]
        self.sentinel.note_loss(loss)
        self._cost_always += time.perf_counter() - t0

    def _note_scaled(self, scaler: Any, outputs: Any, scaled: Any) -> None:
        if isinstance(outputs, torch.Tensor) and outputs.dim() == 0:
            self._scaler = scaler
            self._scaled = (scaled, outputs)

    def _note_scaler_step(self, optimizer: Any, before: int) -> None:
        """No optimizer step ran inside ``scaler.step``: the scaler skipped this update (it
        found inf/NaN gradients, which is how it tunes its scale)."""
        if self.step != before or not self._tracks(optimizer) or self._backwards == 0:
            return
        t0 = time.perf_counter()
        self._push_sentinel(measure=False, skipped=True)
        self._cost_always += time.perf_counter() - t0
        self._close_step(sampled=False)

    def _forward_hook(self, *, with_root: bool | None = None) -> Callable[..., None]:
        """The forward hook: global, it runs for every module call of every model, so the
        common case (another module, not a sampled step) returns after two cheap tests. It
        handles the model's own calls too where the model's ``forward`` is not wrapped
        (``with_root``; a compiled model, a ``forward`` set on the instance)."""
        root = self.model
        on_root = self._guard("model", self._on_root)
        on_leaf = self._guard("activations", self._on_leaf)

        def hook(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            if module is root:
                if _compiling():
                    return None
                if self._sampling:
                    on_leaf(module, output)
                if with_root if with_root is not None else self._root_by_hook:
                    return on_root(module, args, kwargs, output)
                return None
            if self._sampling and not _compiling():
                return on_leaf(module, output)
            return None

        return hook

    def _on_leaf(self, module: nn.Module, output: Any) -> None:
        idx = self._leaf_index.get(id(module))
        if idx is not None and torch.is_grad_enabled():
            self._activation(idx, output)

    def _on_root(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> None:
        if torch.is_grad_enabled():
            t0 = time.perf_counter()
            self._forwards += 1
            if self._forwards == 1:
                self._training = self._inner.training
            # By reference, for a NaN replay of this step's batch: no copy, no kernel.
            self._call = (args, kwargs)
            self._output_grad = None
            out = first_tensor(output)
            if out is not None and out.requires_grad:
                out.register_hook(self._keep_output_grad)
            self._cost_always += time.perf_counter() - t0

    def _keep_output_grad(self, grad: torch.Tensor) -> None:
        self._output_grad = grad

    def _activation(self, idx: int, output: Any) -> None:
        t0 = time.perf_counter()
        try:
            out = output if isinstance(output, torch.Tensor) else first_tensor(output)
            if out is None or not out.is_floating_point() or out.numel() == 0:
                return
            if self._act is None:
                self._act = torch.zeros(
                    len(self._leaf_names), len(ACTIVATION_FIELDS), device=out.device
                )
            zeros = idx in self._zero_leaves
            out = leading_rows(out)
            activation_row(out, self._act[idx], zeros)
            # A negative count marks a zero share that was not measured (not a ReLU).
            self._seen_leaves[idx] = out.numel() if zeros else -out.numel()
        finally:
            self._cost_sampled += time.perf_counter() - t0

    def _tracks(self, optimizer: Any) -> bool:
        """Whether ``optimizer`` steps some of the model's parameters (cached per optimizer
        and number of parameter groups)."""
        groups = len(optimizer.param_groups)
        cached = self._tracked.get(optimizer)
        if cached is None or cached[0] != groups:
            holds = any(
                id(p) in self._param_ids for g in optimizer.param_groups for p in g["params"]
            )
            cached = (groups, holds)
            self._tracked[optimizer] = cached
        return cached[1]

    def _pre_step(self, optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not self._tracks(optimizer):
            return
        # The hooks get step()'s own arguments, the optimizer first: a closure follows it.
        closure = args[1] if len(args) > 1 else kwargs.get("closure")
        if self._step_opt is not None or (
            closure is None and self._backward_seen and self._backwards == 0 and self.step > 0
        ):
            # A second optimizer of the same model in the same step (no backward since the
            # last update): its update belongs to the step already counted.
            return
        t0 = time.perf_counter()
        if not self._stepped_by_optimizer:
            self._stepped_by_optimizer = True
            self._drop_boundary_hook()
        self._step_opt = optimizer
        self._phase_change(optimizer)
        if self._sampling:
            t1 = time.perf_counter()
            self._snapshot_weights()
            self._cost_sampled += time.perf_counter() - t1
            t0 += time.perf_counter() - t1
        if closure is None:
            # The gradients are ready before the update: reading the sentinel now lets a
            # NaN be replayed with the weights that produced it (at once on the CPU).
            self._push_sentinel(measure=True, skipped=False)
        if self._keep_weights:
            self._keep_step_weights()
        self._cost_always += time.perf_counter() - t0

    def _keep_step_weights(self) -> None:
        """Copy the weights this step runs with into the slot of its parity (after the
        sentinel was read, so the previous step's slot is still intact for a replay)."""
        params = [p for _, p in self._params]
        if not params:
            return
        slot = self.step % 2
        with torch.no_grad():
            if not self._weights:
                self._weights = [[torch.empty_like(p) for p in params] for _ in range(2)]
            torch._foreach_copy_(self._weights[slot], params)
        self._weights_step[slot] = self.step

    def _post_step(self, optimizer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._step_opt is not optimizer:
            return
        t0 = time.perf_counter()
        if not self._pushed:
            self._push_sentinel(measure=True, skipped=False)
        sampled = self._sampling
        if sampled:
            t1 = time.perf_counter()
            self._push_sample()
            self._cost_sampled += time.perf_counter() - t1
            t0 += time.perf_counter() - t1
        self._consume(self.ring.poll())
        self._cost_always += time.perf_counter() - t0
        self._close_step(sampled=sampled)

    def _phase_change(self, optimizer: Any) -> None:
        groups = len(optimizer.param_groups)
        if self._current_opt is None:
            self._current_opt, self._current_groups = optimizer, groups
            self._known_opts.add(optimizer)
            return
        what = None
        if optimizer is not self._current_opt:
            if optimizer not in self._known_opts:
                what = (
                    f"a new optimizer ({type(optimizer).__name__}, {groups} parameter group(s)) "
                    "steps the model's parameters"
                )
                self._known_opts.add(optimizer)
            self._current_opt = optimizer
        elif groups != self._current_groups:
            what = f"the optimizer's parameter groups went from {self._current_groups} to {groups}"
        self._current_groups = groups
        if what is not None:
            self._phase += 1
            self._phase_what[self._phase] = what

    def _snapshot_weights(self) -> None:
        params = [p for _, p in self._params]
        if not params:
            return
        with torch.no_grad():
            if self._snapshot is None:
                self._snapshot = [torch.empty_like(p) for p in params]
            torch._foreach_copy_(self._snapshot, params)
            self._weight_vec = norms(self._snapshot)

    def _lr(self) -> float:
        opt = self._current_opt
        if opt is None:
            return math.nan
        lr = opt.param_groups[0].get("lr") if opt.param_groups else None
        return float(lr) if isinstance(lr, (int, float)) else math.nan

    def _push_sentinel(
        self,
        *,
        measure: bool,
        skipped: bool,
        grads: tuple[torch.Tensor, list[int]] | None = None,
    ) -> None:
        self._pushed = True
        grad_norm = None
        if measure and grads is None:
            grads = self._grad_norms()
        if grads is not None:
            per, idx = grads
            grad_norm = torch.linalg.vector_norm(per)
            if self._sampling:
                self._grad_vec, self._grad_idx = per, idx
        scaler = self._scaler
        if scaler is not None and scaler.is_enabled():
            self.sentinel.note_scale(getattr(scaler, "_scale", None))
        else:
            self.sentinel.note_scale(None)
        if self._call is not None:
            self._calls.append((self.step, *self._call, self._output_grad))
        facts = {
            "grad_measured": grad_norm is not None,
            "skipped": skipped,
            "training": self._training,
            "forwards": self._forwards,
            "lr": self._lr(),
            "phase": self._phase,
        }
        self.sentinel.push(self.step, grad_norm, facts)
        self._consume(self.ring.poll())

    def _grad_norms(self) -> tuple[torch.Tensor, list[int]] | None:
        """The norm of each parameter's gradient (one fused kernel), with their indices."""
        idx = [i for i, (_, p) in enumerate(self._params) if p.grad is not None]
        if not idx:
            return None
        return norms([self._params[i][1].grad for i in idx]), idx

    # -- updates by hand ---------------------------------------------------------------
    def _boundary_hook(self) -> Callable[..., None]:
        """A global forward pre-hook (the model keeps no closure of watch's): the model's
        training forward is where a step updated by hand ends. Removed at the first
        optimizer step of the model, or once the parameters are found not updated by hand."""
        root = self.model
        boundary = self._guard("manual", self._manual_boundary)

        def hook(module: nn.Module, args: Any) -> None:
            if module is root and torch.is_grad_enabled():
                boundary()

        return hook

    def _drop_boundary_hook(self) -> None:
        handle, self._boundary_handle = self._boundary_handle, None
        if handle is not None:
            handle.remove()
        self._first_sums = None
        self._manual_grads = None

    def _after_backward(self) -> None:
        """Updated by hand, gradients are read right after the backward pass: the script may
        zero them (``model.zero_grad()``) before the next forward. With several backward
        passes in a step the last one's gradients are those used."""
        if not self._stepped_by_optimizer:
            t0 = time.perf_counter()
            self._manual_grads = self._grad_norms()
            self._cost_always += time.perf_counter() - t0

    def _manual_boundary(self) -> None:
        if self._stepped_by_optimizer:
            return
        if not self._manual:
            if self._backwards == 0 or not self._updated_by_hand():
                return
            self._manual = True
            self._note(
                "no optimizer steps the model: its parameters are updated by hand, so a step "
                "ends at the model's next training forward (gradients are read right after "
                "each backward pass; no learning rate is known)"
            )
        elif self._backwards == 0:
            return
        self._end_manual_step(last=False)

    def _updated_by_hand(self) -> bool:
        """Whether a parameter moved since the first training forward (one host read, at
        most ``MANUAL_STEP_TRIES`` times): an accumulation of gradients moves nothing."""
        first = self._first_sums
        if first is None:
            return False
        now = param_checksums([p for _, p in self._params])
        if not torch.equal(now, first):
            self._first_sums = None
            return True
        self._manual_tries += 1
        if self._manual_tries >= MANUAL_STEP_TRIES:
            # Nothing updates this model by hand (a frozen teacher, an optimizer yet to
            # come after long accumulation): stop paying a host read per forward.
            self._drop_boundary_hook()
        return False

    def _end_manual_step(self, *, last: bool) -> None:
        t0 = time.perf_counter()
        sampled = self._sampling
        self._push_sentinel(measure=False, skipped=False, grads=self._manual_grads)
        self._manual_grads = None
        if sampled:
            t1 = time.perf_counter()
            self._push_sample()
            self._cost_sampled += time.perf_counter() - t1
            t0 += time.perf_counter() - t1
        self._consume(self.ring.poll())
        self._cost_always += time.perf_counter() - t0
        if last:
            self.step += 1
            if sampled:
                self._sampled_count += 1
            return
        self._close_step(sampled=sampled)
        if self._sampling:
            self._snapshot_weights()

    def _push_sample(self) -> None:
        params = [p for _, p in self._params]
        parts: list[torch.Tensor] = []
        layout: dict[str, Any] = {"step": self.step, "leaves": sorted(self._seen_leaves.items())}
        if self._act is not None and self._seen_leaves:
            parts.append(self._act.reshape(-1))
        else:
            layout["leaves"] = []
        if self._grad_vec is not None:
            parts.append(self._grad_vec)
            layout["grads"] = self._grad_idx
        if self._snapshot is not None and self._weight_vec is not None:
            with torch.no_grad():
                torch._foreach_sub_(self._snapshot, params)
                parts.append(self._weight_vec)
                parts.append(norms(self._snapshot))
            layout["weights"] = True
        if not parts:
            return
        device = parts[0].device
        row = torch.cat([p.to(device, non_blocking=True) for p in parts])
        self.ring.push(("sample", layout), row)

    def _close_step(self, *, sampled: bool) -> None:
        now = time.perf_counter()
        wall = now - self._last_close
        self._last_close = now
        if sampled:
            self._sampled_count += 1
        self.sampler.note_step(self.step, wall, self._cost_always, self._cost_sampled, sampled)
        self.step += 1
        self._new_step_state()
        self._sampling = self.sampler.sampled(self.step)
        if self._attached and not self.compiled:
            self._sync_leaf_hook()
        if self.on_step_end is not None:
            self.on_step_end(self.step)

    # -- reading rows, running checks ----------------------------------------------------
    def _consume(self, items: list[tuple[Any, list[float]]]) -> None:
        for (kind, data), values in items:
            if kind == "step":
                row = decode(data, values)
                self.series.add_step(row.step, row.loss, row.lr)
                if row.phase != self._checks_phase:
                    self._checks = fresh_checks()
                    self._checks_phase = row.phase
                    for check in self._checks:
                        self._emit(
                            check.on_phase(row.step, self._phase_what.get(row.phase, ""), self.ctx)
                        )
                for check in self._checks:
                    self._emit(check.on_step(row, self.ctx))
            else:
                # Reading a sample is part of sampling's cost, not of the always-on part in
                # whose hook it happens (a replay it trips is neither: _replay takes it out).
                t0, replayed = time.perf_counter(), self._replay_seconds
                try:
                    sample = self._decode_sample(data, values)
                    self.series.add_sample(sample)
                    for check in self._checks:
                        self._emit(check.on_sample(sample, self.ctx))
                finally:
                    spent = time.perf_counter() - t0 - (self._replay_seconds - replayed)
                    self._cost_always -= spent
                    self._cost_sampled += spent

    def _decode_sample(self, layout: dict[str, Any], values: list[float]) -> Sample:
        sample = Sample(step=layout["step"])
        pos = 0
        width = len(ACTIVATION_FIELDS)
        if layout["leaves"]:
            block = values[: len(self._leaf_names) * width]
            pos = len(block)
            for i, n in layout["leaves"]:
                row = block[i * width : (i + 1) * width]
                mean, std, zero = activation_stats(row, abs(n))
                sample.activations[self._leaf_names[i]] = (mean, std, zero if n > 0 else math.nan)
        if "grads" in layout:
            for i in layout["grads"]:
                sample.grad_norms[self._params[i][0]] = values[pos]
                pos += 1
        if layout.get("weights"):
            n = len(self._params)
            for i, (name, _) in enumerate(self._params):
                sample.weight_norms[name] = values[pos + i]
                sample.update_norms[name] = values[pos + n + i]
        return sample

    def _emit(self, findings: list[Finding]) -> None:
        for f in findings:
            self.report.alerts.append(f)
            self.sink.alert(f)
            if self.on_alert is not None:
                try:
                    self.on_alert(f)
                except Exception as exc:  # noqa: BLE001 - the user's callback, not the run
                    self._note(f"on_alert raised {type(exc).__name__}: {exc}")
            if (
                self.stop_on == "error"
                and f.severity is Severity.ERROR
                and not self._closing
                and not self.report.stopped
            ):
                self.report.stopped = True
                self.report.stopped_by = f"{f.check} at step {f.where.step}"
                raise WatchStopped(f)

    def _replay(self, step: int) -> ReplayResult | None:
        kept = next((c for c in self._calls if c[0] == step), None)
        if kept is None:
            return ReplayResult(note="The batch of that step was no longer kept for a replay.")
        _, args, kwargs, output_grad = kept
        slot = step % 2
        weights = self._weights[slot] if self._weights_step[slot] == step else None
        self._replaying = True
        t0 = time.perf_counter()
        try:
            return replay_step(self._inner, args, kwargs, output_grad, weights)
        except Exception as exc:  # noqa: BLE001 - a replay that fails says so, nothing more
            return ReplayResult(note=f"The replay failed ({type(exc).__name__}: {exc}).")
        finally:
            self._replaying = False
            # A one-off diagnosis, not the cost of watching: kept out of the overhead.
            spent = time.perf_counter() - t0
            self._replay_seconds += spent
            self._cost_always -= spent

    def _finish_report(self) -> None:
        r = self.report
        r.steps_seen = self.step
        r.steps_sampled = self._sampled_count
        r.periods = list(self.sampler.periods)
        r.overhead = self.sampler.overhead
        if self.step == 0 and self._backward_seen:
            self._note(
                "no optimizer step of the model's parameters was seen and they were not "
                "updated by hand (backward passes were): watch counts steps at "
                "optimizer.step() or at an update by hand"
            )
        self._note_cost_over_budget()
        r.series = self.series.build(r.alerts)
        self.sink.event(
            "end",
            steps_seen=r.steps_seen,
            steps_sampled=r.steps_sampled,
            periods=[{"from_step": s, "every": k} for s, k in r.periods],
            overhead=r.overhead if math.isfinite(r.overhead) else None,
            alerts=len(r.alerts),
            errors=len(r.errors()),
        )

    def _note_cost_over_budget(self) -> None:
        """Say so when the always-on part alone cost more than the budget: sampling cannot
        make up for it (host time per step is fixed, and a step of a few milliseconds on a
        GPU is mostly host time)."""
        sampler = self.sampler
        share = sampler.always_on_share
        if sampler.every is not None or sampler.counted < 2 * WINDOW or not share > sampler.budget:
            return
        per_step = 1e3 * sampler.total_always / sampler.counted
        plain = 1e3 * (sampler.total_wall - sampler.total_own) / sampler.counted
        self._note(
            f"watch's always-on part (loss, gradient norm, train/eval mode at every step) cost "
            f"{100 * share:.0f} % of this run's step time, over the {100 * sampler.budget:.0f} % "
            f"budget that sampling keeps to: about {per_step:.2f} ms of host time per step "
            f"against a step of {plain:.2f} ms. A longer step (a larger batch or model) "
            "makes it a smaller share."
        )


def watch(
    model: nn.Module,
    optimizer: Any = None,
    *,
    every: int | None = None,
    budget: float = 0.02,
    log: Any = None,
    stop_on: str = "never",
    on_alert: Callable[[Finding], None] | None = None,
    **options: Any,
) -> Watcher:
    """Watch a whole training run: ``with nndoctor.watch(model, optimizer) as w: ...``;
    afterwards ``w.report`` is the :class:`~nndoctor.watch.report.WatchReport`.

    ``every=K`` samples per-layer statistics every K steps (reproducible); by default k
    adapts so watch's cost stays within ``budget`` (2 % of the step). The sentinel (loss,
    global gradient norm, GradScaler) runs at every step either way. Alerts print to stderr
    as they happen and go to ``log`` (JSON lines); the run is never stopped unless
    ``stop_on="error"``. Other options: ``thresholds``, ``quiet``, ``on_step_end``.
    """
    return Watcher(
        model,
        optimizer,
        every=every,
        budget=budget,
        log=log,
        stop_on=stop_on,
        on_alert=on_alert,
        **options,
    )
