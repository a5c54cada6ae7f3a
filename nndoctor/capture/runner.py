"""Zero-code capture: run an unmodified training script under observation.

The script runs as ``__main__`` with its own argv, in this process, inside a
context that installs global, removable instrumentation: a global forward
pre-hook finds the model (the first module with parameters that is called),
the training probe observes loss calls, backward passes and optimizer steps,
DataLoader iteration is recorded, every write the script makes is redirected to a
scratch folder (:mod:`nndoctor.capture.sandbox`) so a diagnosed script never changes the
user's files, and what it changes in the process is put back afterwards
(:mod:`nndoctor.capture.process_state`).

The script is stopped after the step budget, or the wall-clock timeout, with
:class:`StopCapture`, a ``BaseException`` so the user's ``except Exception``
cannot swallow it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import runpy
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch
import torch.optim.optimizer as optim_mod
from torch import nn
from torch.nn.modules import module as module_mod
from torch.optim.lr_scheduler import ReduceLROnPlateau
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.data.dataloader import _BaseDataLoaderIter

from nndoctor.capture.copies import EvaluatedCopyRecorder
from nndoctor.capture.direct_forwards import DirectForwards
from nndoctor.capture.horizon import Horizon, read_horizon
from nndoctor.capture.other_roots import OtherRoot, OtherRootRecorder
from nndoctor.capture.phases import (
    PHASE_SEARCH_STEPS,
    PhaseFollower,
    evaluation_sites,
    fits_a_part_of,
    script_sources,
)
from nndoctor.capture.process_state import process_state_restored
from nndoctor.capture.retarget import ModelRetarget
from nndoctor.capture.sandbox import Sandbox
from nndoctor.capture.source_data import (
    epoch_from_source,
    held_sources,
    held_values,
    script_frames,
    whole_of,
)
from nndoctor.capture.torchscript import EagerScripting
from nndoctor.copying import deepcopy_detached
from nndoctor.distributed.capture import DistributedCapture, data_parallel_wrapper, unwrap
from nndoctor.probes.recording import LoaderInfo, PlateauScheduler, Recording
from nndoctor.probes.schedule import (
    SCHEDULE_PLAN_BATCH_STEPS,
    SCHEDULE_PLAN_EPOCH_STEPS,
    SchedulePlan,
    planned_length,
    planned_rates,
)
from nndoctor.probes.training import TrainingProbe, eager
from nndoctor.trees import tensors

# torch's own frames: a scheduler built inside torch was built by its caller.
_TORCH_DIR = os.path.dirname(torch.__file__)


class StopCapture(BaseException):  # noqa: N818 - a control-flow signal
    """Stops the observed script; derived from BaseException on purpose."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ScriptError(Exception):
    """The script could not be run at all (missing, unreadable)."""


@dataclass
class Capture:
    """What a script run left behind for the checks."""

    script: str
    argv: list[str]
    recording: Recording
    model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    # Optimizers over other parameters of the model, stepped beside ``optimizer``.
    other_optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    initial_state: dict[str, torch.Tensor] | None = None
    # The model's parameters and buffers as the observed steps left them, cloned at the
    # budget where the script runs on past it (searching for a second phase, watching the
    # end of the first epoch); None where it stopped there, and ``model`` holds them.
    state_at_budget: dict[str, torch.Tensor] | None = None
    batches: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    stop_reason: str = ""
    seconds: float = 0.0
    # The seed torch, numpy and random were given before the script ran (None: not seeded).
    seed: int | None = None
    exception: BaseException | None = None
    traceback: str | None = None
    scratch_dir: str | None = None
    stdout_tail: str = ""
    datasets: dict[int, Any] = field(default_factory=dict)
    # The wall-clock limit the script ran under; a replay of it gets the same.
    timeout: float = 60.0
    # The second phase of training (a new optimizer after this phase's budget), observed
    # the same way; and what the search for it found (see nndoctor.capture.phases).
    next_phase: Capture | None = None
    phase_note: str = ""
    # Module classes whose direct ``forward`` calls were routed through their call
    # (nndoctor.capture.direct_forwards).
    direct_forwards: list[str] = field(default_factory=list)
    # Module classes the script compiled with torch.jit.script/trace, kept eager while
    # observed (nndoctor.capture.torchscript).
    kept_eager: list[str] = field(default_factory=list)
    # TorchScript modules (torch.jit.ScriptModule subclasses) the script called: not
    # observable, named in the report.
    compiled_networks: list[str] = field(default_factory=list)
    phase: int = 1
    # One rank of a distributed job (nndoctor.distributed): its channel, probe and facts.
    distributed: DistributedCapture | None = None
    # Other trained networks the script calls beside the model (a decoder, a GAN's second).
    other_roots: list[OtherRoot] = field(default_factory=list)

    @property
    def observed(self) -> bool:
        return self.model is not None and self.steps > 0


# Tensors of a yielded batch kept for comparison with the model's inputs.
MAX_BATCH_TENSORS = 8
_V = TypeVar("_V")


def _note_model_optimizer(
    capture: Capture, model: nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """The first optimizer that steps parameters of ``model`` is the capture's; a later one
    over others of its parameters (none of the first's) steps beside it. Once the capture
    holds copies (the script runs on past the observed phase), nothing is added."""
    if optimizer is capture.optimizer or any(optimizer is o for o in capture.other_optimizers):
        return
    if capture.model is not None and capture.model is not model:
        return
    ids = {id(p) for p in model.parameters()}
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if not held & ids:
        return
    if capture.optimizer is None:
        capture.optimizer = optimizer
        return
    first = {id(p) for g in capture.optimizer.param_groups for p in g["params"]}
    if not held & first:
        capture.other_optimizers.append(optimizer)


class _ByObject(Generic[_V]):
    """A map from live objects (by identity) to values: an entry whose object is gone is
    not returned for another object that took its id (loaders and their iterators are
    built and dropped by the dozen, and CPython reuses the address of a freed one)."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Callable[[], Any], _V]] = {}

    def get(self, obj: Any) -> _V | None:
        entry = self._entries.get(id(obj))
        return entry[1] if entry is not None and entry[0]() is obj else None

    def set(self, obj: Any, value: _V) -> None:
        try:
            ref: Callable[[], Any] = weakref.ref(obj)
        except TypeError:  # not weakly referable: held, so its id is not reused
            ref = functools.partial(lambda o: o, obj)
        self._entries[id(obj)] = (ref, value)

    def items(self) -> list[tuple[Any, _V]]:
        """Every (object, value) pair, the object None where it is gone."""
        return [(r(), v) for r, v in self._entries.values()]


class _LoaderRecorder:
    """Records every DataLoader the script iterates and which one fed the last batch."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self._by_loader: _ByObject[LoaderInfo] = _ByObject()
        self._by_iter: _ByObject[LoaderInfo] = _ByObject()
        self.last: LoaderInfo | None = None
        # The tensors of the last batch yielded for training, until the next one replaces them.
        self.last_batch: list[torch.Tensor] = []
        # The loader and tensor shapes of the last batch, when it was yielded with gradients
        # off (an evaluation's, or a pass over the training data to compute something).
        self.last_evaluated: tuple[LoaderInfo, list[tuple[int, ...]]] | None = None
        # The loaders that yielded a batch with gradients on since the last optimizer step.
        self.since_step: dict[int, LoaderInfo] = {}
        self.datasets: dict[int, Any] = {}  # loader index -> its dataset (for experiments)
        self.first_datasets = self.datasets  # the first phase's, kept when a second begins
        # Between the phases (searching): loaders built now belong to the next phase.
        self.paused = False
        self._dataset_of: dict[int, Any] = {}  # id(LoaderInfo) -> its loader's dataset

    def pause(self) -> None:
        """The observed phase is over: loaders built from now on are not its own."""
        self.paused = True

    def rebind(self, recording: Recording) -> None:
        """A second phase records into ``recording``: the loaders known so far (their
        iterators too, one may be mid-epoch) are registered there afresh."""
        by_loader, by_iter = self._by_loader, self._by_iter
        self.paused = False
        self.recording, self.datasets = recording, {}
        self._by_loader, self._by_iter = _ByObject(), _ByObject()
        fresh: dict[int, LoaderInfo] = {}
        # Loaders gone by now (built in a function that returned) are registered all the
        # same: the next phase may have read their data (a validation set).
        for loader, info in by_loader.items():
            new = dataclasses.replace(
                info, index=len(recording.loaders), batches_yielded=0, steps_fed=0
            )
            recording.loaders.append(new)
            fresh[id(info)] = new
            if loader is not None:
                self._by_loader.set(loader, new)
            if id(info) in self._dataset_of:
                self.datasets[new.index] = self._dataset_of[id(new)] = self._dataset_of[id(info)]
        for it, info in by_iter.items():
            if it is not None:
                self._by_iter.set(it, fresh.get(id(info), info))
        self.last = fresh.get(id(self.last)) if self.last is not None else None
        self.since_step, self.last_evaluated = {}, None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        original_init = DataLoader.__init__
        original_iter = DataLoader.__iter__
        original_next = _BaseDataLoaderIter.__next__
        recorder = self

        def __init__(loader: DataLoader, *args: Any, **kwargs: Any) -> None:  # noqa: N807
            original_init(loader, *args, **kwargs)
            # A loader built but never iterated within the budget (often the validation
            # loader) is still known, so the split checks can sample its dataset.
            try:
                recorder._info(loader, iterated=False)
            except Exception:  # noqa: BLE001 - recording must never break the script
                pass

        def __iter__(loader: DataLoader) -> Any:  # noqa: N807 - replaces a dunder
            it = original_iter(loader)
            try:
                recorder._note_iter(loader, it)
            except Exception:  # noqa: BLE001 - recording must never break iteration
                pass
            return it

        def __next__(it: Any) -> Any:  # noqa: N807
            batch = original_next(it)
            info = recorder._by_iter.get(it)
            if info is not None:
                info.batches_yielded += 1
                recorder.last = info
                recorder.last_evaluated = None
                if torch.is_grad_enabled():
                    if not recorder.paused:
                        info.training_batches += 1
                    recorder.since_step[id(info)] = info
                    try:
                        recorder.last_batch = tensors(batch)[:MAX_BATCH_TENSORS]
                    except Exception:  # noqa: BLE001 - recording must never break iteration
                        recorder.last_batch = []
                else:
                    try:
                        shapes = [tuple(t.shape) for t in tensors(batch)[:MAX_BATCH_TENSORS]]
                    except Exception:  # noqa: BLE001 - recording must never break iteration
                        shapes = []
                    recorder.last_evaluated = (info, shapes)
            return batch

        DataLoader.__init__ = __init__  # type: ignore[method-assign]
        DataLoader.__iter__ = __iter__  # type: ignore[method-assign]
        _BaseDataLoaderIter.__next__ = __next__  # type: ignore[method-assign]
        try:
            yield
        finally:
            DataLoader.__init__ = original_init  # type: ignore[method-assign]
            DataLoader.__iter__ = original_iter  # type: ignore[method-assign]
            _BaseDataLoaderIter.__next__ = original_next  # type: ignore[method-assign]

    def feeding(self, input_shape: tuple[int, ...] | None) -> LoaderInfo | None:
        """The DataLoader that fed the step about to be taken on a model input of
        ``input_shape``: the last one to yield, if it yielded for training since the last
        step, or if one of its batches has a size the input has (a list of its batches
        made in advance). A loader iterated only to extract features under no_grad did not
        feed a step that trains on the extracted tensor."""
        info = self.last
        if info is None or self.since_step:
            return info
        sizes = {info.batch_size}
        if info.dataset_len and info.batch_size:
            sizes.add(info.dataset_len % info.batch_size or info.batch_size)
            sizes.add(info.dataset_len)  # a loader with batch_size=None yields the samples
        return info if input_shape and sizes & set(input_shape) else None

    def evaluated(self, input_shape: tuple[int, ...]) -> int | None:
        """The loader (its index) whose last batch, yielded with gradients off, holds a
        tensor of ``input_shape``: where an evaluation forward's input came from."""
        if self.last_evaluated is None or self.since_step:
            return None
        info, shapes = self.last_evaluated
        return info.index if input_shape in shapes else None

    def stepped(self) -> None:
        """An optimizer step: the loaders that yielded since the last one fed it."""
        if not self.paused:  # steps between the phases are not observed
            for info in self.since_step.values():
                info.steps_fed += 1
        self.since_step = {}

    def _note_iter(self, loader: DataLoader, it: Any) -> None:
        info = self._info(loader, iterated=True)
        self._by_iter.set(it, info)

    def _info(self, loader: DataLoader, iterated: bool) -> LoaderInfo:
        info = self._by_loader.get(loader)
        if info is None:
            try:
                n = len(loader.dataset)  # type: ignore[arg-type]
            except TypeError:
                n = None
            info = LoaderInfo(
                index=-1 if self.paused else len(self.recording.loaders),
                sampler=type(loader.sampler).__name__,
                shuffle=isinstance(loader.sampler, RandomSampler),
                batch_size=loader.batch_size,
                dataset_len=n,
                dataset=type(loader.dataset).__name__,
                drop_last=loader.drop_last,
                num_workers=loader.num_workers,
                under_no_grad=not torch.is_grad_enabled(),
            )
            self._by_loader.set(loader, info)
            self._dataset_of[id(info)] = loader.dataset
            if not self.paused:
                self.recording.loaders.append(info)
                self.datasets[info.index] = loader.dataset
        if iterated and not info.iterated:
            info.iterated = True
            info.under_no_grad = not torch.is_grad_enabled()
        return info


def _read_script_frames(
    script: str,
    recording: Recording,
    copies: EvaluatedCopyRecorder,
    model: nn.Module | None,
    known_epoch: int | None,
) -> int | None:
    """At the budget, before the script runs on to its first evaluation: the copies of the
    model the script holds (their parts may be what it evaluates), and, for a script that
    cuts its batches by hand and evaluates somewhere, the epoch length its training array
    gives (None where ``known_epoch`` is known already, or nothing tells)."""
    sources = script_sources(script)
    frames = script_frames(sources)
    try:
        copies.adopt_held(held_values(frames), model)
        if known_epoch is not None or not evaluation_sites(sources):
            return None
        return epoch_from_source(recording, frames)
    except Exception:  # noqa: BLE001 - a value that cannot be read leaves things unknown
        return None
    finally:
        del frames  # the script's frames, not kept alive past this step


def _read_held_arrays(script: str, recording: Recording, fed: Any) -> None:
    """At the budget, for steps no DataLoader fed: the row counts of the arrays the script
    holds that hold the recorded samples (``held_source_rows``), and the rows of the one
    that is the whole of every step's batch (``whole_array_rows``), where one is."""
    frames = script_frames(script_sources(script))
    try:
        found = held_sources(recording, frames, fed)
    except Exception:  # noqa: BLE001 - a value that cannot be read leaves things unknown
        return
    finally:
        del frames
    if found is None:
        return
    sizes, batch = found
    recording.held_source_rows = sorted(sizes)
    recording.held_source_batch = batch
    recording.whole_array_rows = whole_of(sizes, batch)


def _read_horizon(
    script: str, epoch: int | None, recording: Recording, steps: int
) -> Horizon | None:
    """At an optimizer step: the run the loops leading to it plan (nndoctor.capture.horizon).
    A training DataLoader that yielded more batches than there were steps (and the one
    fetched for the next) shows steps taken at some passes only, whatever the source says
    (an accumulation context manager skips the step inside the optimizer): the plan is then
    an upper bound, not exact."""
    frames = script_frames(script_sources(script))
    try:
        horizon = read_horizon(frames, epoch)
    except Exception:  # noqa: BLE001 - a source that cannot be read leaves it unknown
        return None
    finally:
        del frames
    fed = [s.loader for s in recording.steps if s.loader is not None]
    if horizon is not None and fed:
        yielded = recording.loaders[statistics.mode(fed)].batches_yielded
        if yielded > steps + 1:
            horizon.exact = False
    return horizon


def run_script(
    script: str,
    argv: list[str] | None = None,
    *,
    steps: int = 20,
    timeout: float = 60.0,
    keep_scratch: bool = False,
    on_step: Callable[[int], None] | None = None,
    phase_steps: int = PHASE_SEARCH_STEPS,
    distributed: DistributedCapture | None = None,
) -> Capture:
    """Run ``script`` as ``__main__`` for at most ``steps`` optimizer steps or ``timeout`` seconds.

    After the budget, the script goes on unobserved for at most ``phase_steps`` further
    optimizer steps looking for a second phase of training (0: stop at the budget); one
    found is observed for ``steps`` steps too, as ``capture.next_phase``
    (:mod:`nndoctor.capture.phases`). The script's writes go to a scratch folder (see
    :mod:`nndoctor.capture.sandbox`), removed before this returns unless ``keep_scratch``.

    ``distributed`` (dormant unless the script starts a process group of several ranks)
    makes every rank of a distributed job stop at the same, collectively agreed step; no
    second phase is searched for then (:mod:`nndoctor.distributed.capture`)."""
    path = os.path.abspath(script)
    if not os.path.isfile(path):
        raise ScriptError(f"no such script: {script}")
    argv = list(argv or [])
    recording = Recording(data_source="script")
    capture = Capture(script=script, argv=argv, recording=recording, timeout=timeout)
    scratch = tempfile.mkdtemp(prefix="nndoctor-scratch-")
    capture.scratch_dir = scratch

    def on_step_end(done: int) -> None:
        if follower.searching:
            return  # the first phase's probe, between its budget and its removal
        capture.steps = done
        if on_step is not None:
            on_step(done)  # progress for the caller; it must not raise
        if distributed is not None and distributed.active:
            # Every rank stops at the same step, agreed by all of them.
            why = distributed.agree_stop(done >= steps, done, probe.optimizer)
            if why is not None:
                raise StopCapture(why)
            return
        if done >= steps:
            epoch = recording.epoch_length()
            # The phase being observed: the second one reads the plan of its own loops.
            active = follower.recording
            if active.horizon is None:
                active.horizon = _read_horizon(path, active.epoch_length(), active, done)
            if follower.follows:
                epoch = _read_script_frames(path, recording, copies, probe.model, epoch) or epoch
            if done == steps and not any(s.loader is not None for s in recording.steps):
                # Once, at the budget: a run followed past it reads its arrays no further.
                _read_held_arrays(path, recording, probe.last_input())
            if follower.budget_reached(epoch_end=epoch - done if epoch else None):
                if capture.state_at_budget is None and probe.model is not None:
                    capture.state_at_budget = _clone_state(probe.model)
                return
            raise StopCapture("step budget")

    probe = TrainingProbe(recording, on_step_end=on_step_end)
    follower = PhaseFollower(probe, search_steps=phase_steps, on_step_end=on_step_end, script=path)
    loaders = _LoaderRecorder(recording)
    follower.on_new_phase = loaders.rebind
    schedulers = _Schedulers(follower)

    def on_search() -> None:
        loaders.pause()
        schedulers.read(probe)
        # The script runs on with the model and optimizer the first phase observed: it may
        # freeze, replace or re-schedule them. The experiments on this phase start from
        # them as they were at the budget (the initial weights are restored on copies).
        try:
            model, optimizer = capture.model, capture.optimizer or probe.optimizer
            capture.model, capture.optimizer, capture.other_optimizers = deepcopy_detached(
                (model, optimizer, capture.other_optimizers)
            )
        except Exception:  # noqa: BLE001 - not copyable: the live objects are used
            pass

    follower.on_search = on_search
    candidates: list[nn.Module] = []
    retarget = ModelRetarget()
    others = OtherRootRecorder()
    copies = EvaluatedCopyRecorder()
    direct = DirectForwards()
    scripting = EagerScripting()

    def single_phase() -> bool:
        # A distributed job's ranks, and a second phase, keep the model they found.
        busy = distributed is not None and distributed.active
        return not busy and follower.second is None and not follower.searching

    def follow_trained(module: nn.Module, args: tuple[Any, ...]) -> None:
        """The module found first is not what the optimizer trains: observe the one it does
        train from its next forward (nndoctor.capture.retarget)."""
        if retarget.decided and retarget.candidate is None or not single_phase():
            return
        retarget.note_forward(module)
        chosen = retarget.take_candidate(module)
        if chosen is None:
            return
        probe.observe_instead(chosen, args)
        candidates.append(chosen)
        capture.model = chosen
        capture.initial_state = retarget.candidate_state

    def discover(module: nn.Module, args: tuple[Any, ...]) -> None:
        try:
            follower.on_forward(module, args)
        except Exception:  # noqa: BLE001 - following must never break the script
            pass
        try:
            if probe.model is not None:
                follow_trained(module, args)
                if single_phase():
                    others.note(module, args, probe.model)
                copies.note(
                    module, probe.model, capture.initial_state, probe.steps_done + follower.searched
                )
                return
            if any(module is c for c in candidates):
                return
            # A torch.compile wrapper: observe the module it compiles.
            module = getattr(module, "_orig_mod", module)
            # DDP: the module inside, whose own forward (called next) the hooks then see.
            wrapper = data_parallel_wrapper(module)
            inner = unwrap(module)
            if not isinstance(inner, nn.Module) or any(inner is c for c in candidates):
                return
            if next(inner.parameters(), None) is None:
                return
            if isinstance(inner, torch.jit.ScriptModule):
                # Its compiled forward runs no hooks: nothing of it can be observed.
                if type(inner).__name__ not in capture.compiled_networks:
                    capture.compiled_networks.append(type(inner).__name__)
                return
            candidates.append(inner)
            capture.initial_state = _clone_state(inner)
            probe.attach_model(inner)
            capture.model = inner
            if distributed is not None:
                distributed.attach(inner, wrapper)
            if torch.is_grad_enabled() and inner is module:
                probe.begin_step_at(module, args)
        except Exception:  # noqa: BLE001 - discovery must never break the script
            pass

    def note_loader(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        stop = follower.on_optimizer_step(optimizer)
        if stop is not None:
            raise StopCapture(stop)
        try:
            if probe.model is None:
                direct.route(optimizer)
            if single_phase():
                unstepped = probe.optimizer is None and probe.steps_done == 0
                retarget.on_step(optimizer, probe.model if unstepped else None)
                if retarget.direct_parent is not None:
                    direct.route_modules([retarget.direct_parent])
                others.note_gradients(optimizer, probe.model)
        except Exception:  # noqa: BLE001 - following must never break the script
            pass
        fed = loaders.feeding(follower.probe.current_input_shape())
        if fed is not None:
            follower.probe.note_loader(fed.index)
        loaders.stepped()
        if probe.model is not None:
            _note_model_optimizer(capture, probe.model, optimizer)

    def note_loader_of_manual_step() -> None:
        fed = loaders.feeding(follower.probe.current_input_shape())
        if fed is not None:
            follower.probe.note_loader(fed.index)
        loaders.stepped()

    probe.on_step_closing = note_loader_of_manual_step
    probe.loader_batch = lambda: loaders.last_batch
    probe.evaluated_loader = loaders.evaluated

    # Weights loaded before a phase's first step: (its recording, the module's class, the
    # storages of the tensors loaded), told apart from a pretrained model once it is known
    # which network each phase trained.
    loads: list[tuple[Recording, str, frozenset[int]]] = []
    start = time.perf_counter()
    sandbox = Sandbox(scratch)
    handles = []
    try:
        # What the script changes in the process it shares with nndoctor is put back
        # afterwards (working directory, environment, its modules, torch's switches, ...).
        # A distributed capture holds SIGTERM past the script, until its teardown.
        held = distributed.held_signals if distributed is not None else None
        with process_state_restored(os.path.dirname(path), held):
            try:
                handles.append(module_mod.register_module_forward_pre_hook(eager(discover)))
                handles.append(optim_mod.register_optimizer_step_pre_hook(note_loader))
                sys.argv = [path, *argv]
                sys.path.insert(0, os.path.dirname(path))

                def on_alarm(signum: int, frame: Any) -> None:
                    # In a distributed job the ranks stop together, at the next step.
                    if distributed is not None and distributed.defer_timeout():
                        return
                    raise StopCapture("timeout")

                signal.signal(signal.SIGALRM, on_alarm)
                output = io.StringIO()
                with (
                    probe,
                    contextlib.closing(follower),
                    loaders.installed(),
                    sandbox.installed(),
                    schedulers.installed(),
                    contextlib.redirect_stdout(output),
                    contextlib.redirect_stderr(output),
                    _weights_loaded(follower, loads),
                    _plateaus_built(follower),
                    direct.installed(),
                    scripting.installed(),
                    distributed.installed()
                    if distributed is not None
                    else contextlib.nullcontext(),
                ):
                    # Started once everything is installed: the timeout is the script's.
                    signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
                    try:
                        _run_as_main(
                            path,
                            capture,
                            distributed.script_ended if distributed is not None else None,
                        )
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                    if distributed is not None and distributed.active:
                        capture.distributed = distributed
                        distributed.finish()
                capture.stdout_tail = output.getvalue()[-4000:]
            finally:
                for h in handles:
                    h.remove()
    finally:
        if distributed is not None and distributed.active and capture.distributed is None:
            distributed.teardown()  # not handed on to the diagnosis: nothing else closes it
        recording.saves_redirected = list(sandbox.redirected)
        if not keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    capture.seconds = time.perf_counter() - start
    capture.direct_forwards = list(direct.routed)
    capture.kept_eager = list(scripting.kept_eager)
    recording.unstepped = retarget.unstepped
    try:
        if retarget.set_aside_changed() and not (retarget.unstepped and retarget.unstepped.holders):
            recording.unstepped = None  # trained without an optimizer: nothing to report
    except Exception:  # noqa: BLE001 - a fact for one check: never the capture's failure
        pass
    capture.steps = probe.steps_done
    capture.optimizer = capture.optimizer or probe.optimizer
    capture.batches = probe.captured_batches
    capture.other_roots = others.beside(probe.model)
    recording.evaluated_copies = copies.copies
    try:
        recording.unheld_networks = others.unheld(probe.model, recording.weights_loaded)
    except Exception:  # noqa: BLE001 - a fact for one check: never the capture's failure
        recording.unheld_networks = []
    capture.datasets = loaders.first_datasets
    try:
        _note_weights_of_the_run(follower, loads)
    except Exception:  # noqa: BLE001 - a fact for one check: never the capture's failure
        pass
    _split_phases(capture, follower, loaders)
    return capture


def _split_phases(capture: Capture, follower: PhaseFollower, loaders: _LoaderRecorder) -> None:
    """How the run ended belongs to the phase that was running then: the first phase
    ended at its budget when the script went on to search for, or run, a second one."""
    if not follower.follows or (follower.second is None and not follower.searching):
        if follower.sites is not None:
            capture.phase_note = (
                f"no search for a second phase of training: the script's source constructs "
                f"optimizers at {follower.sites} place(s), and as many optimizers stepped while "
                "it was observed"
            )
        return
    reason, exc, tb = capture.stop_reason, capture.exception, capture.traceback
    capture.stop_reason = "step budget"
    capture.exception = capture.traceback = None
    second = follower.second
    if follower.watch_steps:
        capture.recording.epoch_watch_end = {
            "script finished": "the script finished",
            "timeout": "the time limit was reached",
        }.get(reason, reason)
    if second is None and not follower.phase_search:
        capture.phase_note = (
            f"after the observed steps the script ran {follower.searched} more optimizer "
            f"step(s) unobserved, to the end of its first epoch: {reason}"
        )
        return
    if second is None:
        ended = {
            "script finished": "the script finished",
            "timeout": "the time limit was reached",
        }.get(reason, reason)
        raised = f" (the script raised {type(exc).__name__}: {exc})" if exc is not None else ""
        unheld = follower.unheld_optimizer
        if unheld is not None:
            capture.phase_note = (
                f"a second phase of training was not observed: after the observed steps a new "
                f"optimizer ({unheld}) took {follower.new_steps} step(s), but no module run since "
                "holds the tensors it trains (a tensor optimised directly through a network, as "
                f"style transfer does, is no model to observe); then {ended}{raised}"
            )
            return
        capture.phase_note = (
            f"no second phase of training: after the observed steps the script ran "
            f"{follower.searched} more optimizer step(s) with the same optimizer(s), then "
            f"{ended}{raised}"
        )
        return
    recording = follower.recording
    recording.saves_redirected = list(capture.recording.saves_redirected)
    phase = Capture(
        script=capture.script,
        argv=capture.argv,
        timeout=capture.timeout,
        recording=recording,
        model=follower.model,
        optimizer=second.optimizer,
        initial_state=follower.initial_state,
        batches=second.captured_batches,
        steps=second.steps_done,
        stop_reason=reason,
        seconds=capture.seconds,
        exception=exc,
        traceback=tb,
        scratch_dir=capture.scratch_dir,
        stdout_tail=capture.stdout_tail,
        datasets=loaders.datasets,
        phase=2,
    )
    capture.next_phase = phase
    capture.phase_note = (
        f"a second phase of training was observed: {type(second.optimizer).__name__} over "
        f"{type(follower.model).__name__}, starting after {follower.searched} unobserved step(s)"
    )


def _run_as_main(path: str, capture: Capture, disarm: Callable[[], None] | None = None) -> None:
    """Run the script; how it ended goes into ``capture`` (only Ctrl-C propagates).
    ``disarm``, called once the script ended, turns off what would stop it by raising."""
    try:
        try:
            _record_ending(path, capture)
        finally:
            if disarm is not None:
                disarm()
    except StopCapture as late:
        # A signal's stop (the time limit, a launcher's SIGTERM) that came while the script's
        # own ending was being recorded: that ending stands.
        capture.stop_reason = capture.stop_reason or late.reason
        if capture.exception is not None and capture.traceback is None:
            capture.traceback = _user_traceback(capture.exception, path)


def _record_ending(path: str, capture: Capture) -> None:
    try:
        runpy.run_path(path, run_name="__main__")
        capture.stop_reason = "script finished"
    except StopCapture as stop:
        capture.stop_reason = stop.reason
    except SystemExit as exit_:
        code = exit_.code
        if code in (None, 0):
            capture.stop_reason = "script finished"
        else:
            capture.stop_reason = f"script exited with status {code}"
            capture.exception = exit_
    except BaseException as exc:  # noqa: BLE001 - report whatever the script raised
        if isinstance(exc, KeyboardInterrupt):
            raise
        capture.exception = exc
        capture.stop_reason = "script raised"
        capture.traceback = _user_traceback(exc, path)


def trained_state(capture: Capture) -> dict[str, torch.Tensor] | None:
    """The model's parameters and buffers as the observed steps left them (without a copy
    where the script stopped at the budget); None without a model."""
    if capture.state_at_budget is not None:
        return capture.state_at_budget
    return capture.model.state_dict() if capture.model is not None else None


def _clone_state(module: nn.Module) -> dict[str, torch.Tensor]:
    # A device-side clone: no host transfer, so no synchronisation inside the hook.
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@contextlib.contextmanager
def _weights_loaded(
    follower: PhaseFollower, loads: list[tuple[Recording, str, frozenset[int]]]
) -> Iterator[None]:
    """Notes modules that load weights before the first step of a phase (a pretrained
    model; between two phases, the checkpoint the second one fine-tunes), and into
    ``loads`` where the tensors loaded live, for ``_note_weights_of_the_run``."""
    original = nn.Module.load_state_dict

    def load_state_dict(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        state = args[0] if args else kwargs.get("state_dict")
        if follower.searching:
            follower.loaded_between.append(type(module).__name__)
            if fits_a_part_of(state, follower.first.model):
                follower.loaded_between_from_run.append(type(module).__name__)
        elif follower.probe.steps_done == 0:
            follower.recording.weights_loaded.append(type(module).__name__)
            with contextlib.suppress(Exception):  # noting must never break the load
                loads.append((follower.recording, type(module).__name__, _storages(state)))
        return original(module, *args, **kwargs)

    with _patched(nn.Module, "load_state_dict", load_state_dict):
        yield


def _storages(state: Any) -> frozenset[int]:
    """Where the tensors of a state dict live (their storages' addresses)."""
    if not isinstance(state, Mapping):
        return frozenset()
    return frozenset(
        t.untyped_storage().data_ptr()
        for t in state.values()
        if isinstance(t, torch.Tensor) and t.numel() and t.device.type != "meta"
    )


def _note_weights_of_the_run(
    follower: PhaseFollower, loads: list[tuple[Recording, str, frozenset[int]]]
) -> None:
    """A state loaded whose every tensor lives in the network a phase trained is that
    network's own weights handed on in memory (a momentum encoder started as a copy of the
    model, ``key.load_state_dict(query.state_dict())``): weights of this run, not a
    pretrained model."""
    probes = [p for p in (follower.first, follower.second) if p is not None]
    for recording, name, storages in loads:
        model = next((p.model for p in probes if p.recording is recording), None)
        if model is None or not storages:
            continue
        own = _storages(model.state_dict())
        if storages <= own:
            recording.weights_from_this_run.append(name)


@contextlib.contextmanager
def _plateaus_built(follower: PhaseFollower) -> Iterator[None]:
    """Notes every ``ReduceLROnPlateau`` the script builds, its mode and the line of the
    script that built it: the metric it is stepped with is read from that source."""
    original = ReduceLROnPlateau.__init__

    def __init__(scheduler: ReduceLROnPlateau, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        original(scheduler, *args, **kwargs)
        try:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR):
                frame = frame.f_back
            if frame is not None:
                follower.recording.plateau_schedulers.append(
                    PlateauScheduler(
                        str(getattr(scheduler, "mode", "min")),
                        frame.f_code.co_filename,
                        frame.f_lineno,
                    )
                )
        except Exception:  # noqa: BLE001 - recording must never break the script
            pass

    with _patched(ReduceLROnPlateau, "__init__", __init__):
        yield


@contextlib.contextmanager
def _patched(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """``owner.name`` replaced for the duration, put back however the block ends."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


class _Schedulers:
    """Notes whether the script steps a learning-rate scheduler, and reads the plan of the
    one driving each phase's optimizer from a copy of it when that phase's observation ends
    (the first phase's at its budget, before the script runs on)."""

    def __init__(self, follower: PhaseFollower) -> None:
        self.follower = follower
        # per phase's probe: id(scheduler) -> [scheduler, steps observed]
        self.calls: dict[int, dict[int, list[Any]]] = {}
        self.read_for: set[int] = set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from torch.optim import lr_scheduler

        follower, calls = self.follower, self.calls

        def noting(original: Callable[..., Any]) -> Callable[..., Any]:
            def step(scheduler: Any, *args: Any, **kwargs: Any) -> Any:
                follower.recording.scheduler_seen = True
                if not follower.searching:
                    probe = follower.probe
                    entry = calls.setdefault(id(probe), {}).setdefault(
                        id(scheduler), [scheduler, 0]
                    )
                    if probe.steps_done > 0:  # the constructor's own step is not the script's
                        entry[1] += 1
                return original(scheduler, *args, **kwargs)

            return step

        # ReduceLROnPlateau steps with the script's metric through a step of its own.
        plateau = lr_scheduler.ReduceLROnPlateau
        try:
            with (
                _patched(lr_scheduler.LRScheduler, "step", noting(lr_scheduler.LRScheduler.step)),
                _patched(plateau, "step", noting(plateau.step)),
            ):
                yield
        finally:
            for probe in (follower.first, follower.second):
                if probe is not None:
                    self.read(probe)

    def read(self, probe: TrainingProbe) -> None:
        """Read the plan of ``probe``'s optimizer's scheduler (once)."""
        if id(probe) in self.read_for:
            return
        self.read_for.add(id(probe))
        try:
            probe.recording.schedule = _plan_of(self.calls.get(id(probe), {}), probe)
        except Exception:  # noqa: BLE001 - a plan that cannot be read is left out
            probe.recording.schedule = None


def _plan_of(calls: dict[int, list[Any]], probe: TrainingProbe) -> SchedulePlan | None:
    optimizer = probe.optimizer
    ours = [(s, n) for s, n in calls.values() if getattr(s, "optimizer", None) is optimizer]
    if optimizer is None or not ours or probe.steps_done < 2:
        return None
    scheduler, n = ours[0]
    # Stepped at (nearly) every optimizer step: per batch. Otherwise per epoch (or rarer).
    per_batch = n >= probe.steps_done - 1
    length = planned_length(scheduler)
    horizon = SCHEDULE_PLAN_BATCH_STEPS if per_batch else SCHEDULE_PLAN_EPOCH_STEPS
    if length is not None:
        # The whole plan where it is known and not longer than a per-batch read.
        horizon = max(horizon, min(length, SCHEDULE_PLAN_BATCH_STEPS))
    lrs = planned_rates(scheduler, optimizer, horizon)
    return SchedulePlan(
        scheduler=type(scheduler).__name__,
        per_batch=per_batch,
        steps_taken=probe.steps_done,
        scheduler_steps=n,
        lrs=lrs,
        length=length,
        ends=0 < len(lrs) < horizon,
    )


def _user_traceback(exc: BaseException, script: str) -> str:
    """The traceback from the script's first frame on (nndoctor's own frames dropped)."""
    tb = exc.__traceback__
    own = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frames = [
        fr for fr in traceback.extract_tb(tb) if not os.path.abspath(fr.filename).startswith(own)
    ]
    keep = 0
    for i, fr in enumerate(frames):
        if os.path.abspath(fr.filename) == script:
            keep = i
            break
    lines = traceback.format_list(frames[keep:])
    lines += traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines)
