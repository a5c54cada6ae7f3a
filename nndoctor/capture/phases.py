"""Following a script into its second phase of training.

Scripts train in stages: a backbone pretrained and then frozen under a new head, a
teacher before its student, a pretext task before its linear probe. The model that
matters (and the bug) is often in the second stage, while zero-code capture finds the
first model a script calls. After the first phase's step budget the script goes on
unobserved (every probe hook removed) for at most ``search_steps`` further optimizer
steps, a count rather than a time so that whether a phase is reached never depends on
the machine's speed. An optimizer that never stepped while the first phase was observed
starts a new phase; the next forward of a module holding its parameters is that phase's
model, and a fresh probe observes it for its own step budget. Weights loaded between
the phases (``load_state_dict`` of the checkpoint to fine-tune) belong to the new phase.

The search runs only where a second phase can come: when the script's own source (the
script and the modules it imported from its folder) constructs optimizers at more places
than the optimizers that stepped while the first phase was observed. A script with one
optimizer (or a GAN whose two optimizers both step from the start) stops at the budget as
it always did, at no cost; the trigger is a property of the source, not of time.

The same run past the budget watches the end of the first epoch, where scripts evaluate:
a ``model.eval()`` for validation without ``model.train()`` after it leaves every later
epoch training in eval mode, which no step within the budget shows. Where the source calls
``.eval()`` and the first epoch ends within ``search_steps`` further steps, the script goes
on until the model's first training forward after its first forward with gradients off
(or one step past the epoch), and the model's mode there is recorded
(``Recording.mode_after_evaluation``); then it stops, unless a second phase is searched for.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from nndoctor.capture.source_calls import name_of, parse_source
from nndoctor.probes.layers import MODE_DEPENDENT
from nndoctor.probes.recording import ModeAfterEvaluation, Recording
from nndoctor.probes.training import TrainingProbe

# Optimizer steps a script may take, unobserved, after the first phase's budget before a
# second phase (a new optimizer) is given up on. A pretraining stage of a few hundred
# steps fits; a count, so that whether it is reached does not depend on speed.
PHASE_SEARCH_STEPS = 1000


def optimizer_classes() -> set[str]:
    """The names of every optimizer class known now (torch's and any subclass imported)."""
    names: set[str] = set()
    todo = [torch.optim.Optimizer]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__name__ not in names:
                names.add(sub.__name__)
                todo.append(sub)
    return names


def _calls(paths: Iterable[str]) -> Iterator[ast.Call]:
    """Every call in the source files ``paths``; unreadable files give none."""
    for path in paths:
        tree = parse_source(path)
        if tree is not None:
            yield from (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def optimizer_sites(paths: Iterable[str], classes: set[str]) -> int:
    """How many places in the source files ``paths`` construct an optimizer: calls of a
    name or attribute that names an optimizer class (``torch.optim.Adam(...)``,
    ``SGD(...)``); unreadable files count nothing."""
    sites = 0
    for call in _calls(paths):
        sites += name_of(call.func) in classes
    return sites


def evaluation_sites(paths: Iterable[str]) -> int:
    """How many places in the source files ``paths`` call ``.eval()`` with no argument
    (``model.eval()``: an evaluation pass); unreadable files count nothing."""
    return sum(
        isinstance(call.func, ast.Attribute)
        and call.func.attr == "eval"
        and not call.args
        and not call.keywords
        for call in _calls(paths)
    )


def script_sources(script: str) -> list[str]:
    """The script and the modules it imported from its own folder (or below it)."""
    folder = os.path.dirname(os.path.abspath(script))
    paths = [os.path.abspath(script)]
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.endswith(".py"):
            file = os.path.abspath(file)
            if (
                file.startswith(folder + os.sep)
                and file not in paths
                and "site-packages" not in file
            ):
                paths.append(file)
    return paths


class PhaseFollower:
    """The state of one script run across its phases (two at most)."""

    def __init__(
        self,
        first: TrainingProbe,
        *,
        search_steps: int,
        on_step_end: Callable[[int], None],
        script: str | None = None,
    ) -> None:
        self.probe = first  # the probe observing now
        self.recording: Recording = first.recording
        self.first = first
        self.second: TrainingProbe | None = None
        self.search_steps = search_steps
        self._on_step_end = on_step_end
        self.script = script
        self.sites: int | None = None  # optimizer constructions in the script's source
        self.searching = False
        self.phase_search = False  # searching for a second phase (not only watching)
        self.watch_steps = 0  # further steps the end-of-epoch watch may take; 0: no watch
        self._evaluated = False  # the first phase's model ran a forward with gradients off
        # Where the evaluation inputs recorded past the budget begin (the probe's
        # ``evaluation_marks``): kept only if the model trains again before any optimizer
        # steps, which makes those forwards an evaluation pass; a frozen teacher scoring
        # training batches for another network is none.
        self._evaluation_marks: tuple[int, ...] | None = None
        self._evaluation_dropped = False
        self.searched = 0  # optimizer steps taken while searching
        self._close_first = False
        self._seen: set[int] = set()  # optimizers that stepped while the first phase was observed
        self._new: torch.optim.Optimizer | None = None
        self.new_steps = 0  # steps the new optimizer took while its model was sought
        self.loaded_between: list[str] = []  # load_state_dict calls while searching
        self.loaded_between_from_run: list[str] = []  # of those, checkpoints of the first model
        self.model: nn.Module | None = None
        self.initial_state: dict[str, torch.Tensor] | None = None
        self.on_new_phase: Callable[[Recording], None] | None = None
        self.on_search: Callable[[], None] | None = None

    @property
    def follows(self) -> bool:
        return self.search_steps > 0

    @property
    def unheld_optimizer(self) -> str | None:
        """The class of a new optimizer that stepped while a second phase was sought but
        whose model was never found: no module run since holds the tensors it trains (an
        image optimised through a frozen network, as style transfer does); None otherwise."""
        if self._new is None or self.second is not None:
            return None
        return type(self._new).__name__

    def budget_reached(self, epoch_end: int | None = None) -> bool:
        """The first phase used its step budget: go on (True), searching for a second
        phase or watching the end of the first epoch (``epoch_end``: the further steps to
        it, where known), or stop."""
        if not self.follows or self.second is not None or self.searching:
            return False
        self.phase_search = True
        if self.script is not None:
            sources = script_sources(self.script)
            self.sites = optimizer_sites(sources, optimizer_classes())
            # Every optimizer the source makes has stepped already: no second phase.
            self.phase_search = self.sites > len(self._seen)
            if epoch_end is not None and 0 <= epoch_end < self.search_steps:
                self.watch_steps = epoch_end + 1 if evaluation_sites(sources) else 0
        if not (self.phase_search or self.watch_steps):
            return False
        self.searching = True
        if self.on_search is not None:
            self.on_search()
        # Removed at the next forward: not from inside the optimizer hook now running,
        # whose hook table cannot change while torch iterates it.
        self._close_first = True
        return True

    def on_optimizer_step(self, optimizer: torch.optim.Optimizer) -> str | None:
        """Called before every optimizer step; returns a reason to stop the script, if any."""
        if (
            self._evaluation_marks is not None
            and self.first.recording.mode_after_evaluation is None
        ):
            # A step before the model trained again: those no-grad forwards served training.
            self.first.forget_evaluation_since(self._evaluation_marks)
            self._evaluation_marks, self._evaluation_dropped = None, True
        if not self.searching:
            if self.second is None:
                self._seen.add(id(optimizer))
            return None
        if self.phase_search and id(optimizer) not in self._seen and self._new is None:
            self._new = optimizer
            self.new_steps = 1
            return None
        if optimizer is self._new:
            self.new_steps += 1
        self.searched += 1
        if self.phase_search:
            if self.searched > self.search_steps:
                return f"no second phase of training within {self.search_steps} further steps"
            return None
        if self.first.recording.mode_after_evaluation is not None:
            return "training resumed after the first evaluation pass"
        if self.searched > self.watch_steps:
            return "the first epoch ended without an evaluation pass of the model"
        return None

    def on_forward(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """Called before every module's forward: the first probe is closed, and the second
        phase's model found, here (outside any optimizer hook)."""
        if self._close_first:
            self._close_first = False
            self.first.close()
        if (
            self.searching
            and self.watch_steps
            and self.first.recording.mode_after_evaluation is None
        ):
            self._watch(module, args)
        if self._new is None or self.second is not None:
            return
        module = getattr(module, "_orig_mod", module)
        own = {id(p) for p in module.parameters()}
        if not own or not any(id(p) in own for g in self._new.param_groups for p in g["params"]):
            return
        self._start_second(module, args)

    def _watch(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        """At the first phase model's forwards past the budget: its first forward with
        gradients off is an evaluation pass; its first training forward after that shows
        whether the script put it back in train mode."""
        model = self.first.model
        if model is None or getattr(module, "_orig_mod", module) is not model:
            return
        if not torch.is_grad_enabled() or torch.is_inference_mode_enabled():
            self._evaluated = True
            # Evaluation data seen only here (a script that evaluates once an epoch ends)
            # is evaluation data all the same.
            if not self._evaluation_dropped:
                if self._evaluation_marks is None:
                    self._evaluation_marks = self.first.evaluation_marks()
                self.first.record_evaluation_past_budget(module, args)
            return
        if not self._evaluated:
            return
        self.first.recording.mode_after_evaluation = ModeAfterEvaluation(
            step=self.first.steps_done + self.searched,
            model_training=model.training,
            modules_in_eval=[
                name
                for name, m in model.named_modules()
                if isinstance(m, MODE_DEPENDENT) and not m.training
            ],
        )

    def _start_second(self, model: nn.Module, args: tuple[Any, ...]) -> None:
        recording = Recording(
            data_source="script",
            weights_loaded=list(self.loaded_between),
            weights_from_this_run=list(self.loaded_between_from_run),
            weights_loaded_between_phases=bool(self.loaded_between),
            earlier_phase_inputs=[
                s.inputs for s in self.first.recording.steps if s.inputs is not None
            ],
        )
        probe = TrainingProbe(recording, on_step_end=self._on_step_end)
        probe.on_step_closing = self.first.on_step_closing
        probe.loader_batch = self.first.loader_batch
        probe.evaluated_loader = self.first.evaluated_loader
        probe.install_global()
        self.initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        probe.attach_model(model)
        assert self._new is not None
        probe.attach_optimizer(self._new)
        self.second, self.probe, self.recording, self.model = probe, probe, recording, model
        self.searching = False
        if self.on_new_phase is not None:
            self.on_new_phase(recording)
        if torch.is_grad_enabled():
            probe.begin_step_at(model, args)

    def close(self) -> None:
        self.first.close()
        if self.second is not None:
            self.second.close()


def fits_a_part_of(state: Any, model: nn.Module | None) -> bool:
    """Whether a state dict is a checkpoint of ``model`` or of one of its submodules: every
    tensor it holds has a key of that part, with the same shape, the keys perhaps under
    another prefix (``backbone.`` added or stripped, as a SimCLR encoder's weights are
    handed to a classifier). Loaded while a later phase is sought, it is the earlier phase's
    network going on (an encoder into a linear probe, a best checkpoint restored), trained
    on this script's inputs, not a pretrained model."""
    if model is None or not isinstance(state, Mapping):
        return False
    shapes = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not shapes:
        return False
    for _, part in model.named_modules():
        own = {k: tuple(v.shape) for k, v in part.state_dict().items()}
        if all(_has_key(own, k, shape) for k, shape in shapes.items()):
            return True
    return False


def _has_key(own: dict[str, tuple[int, ...]], key: str, shape: tuple[int, ...]) -> bool:
    """Whether ``own`` holds ``key`` with ``shape``, the key perhaps under another prefix:
    one of the two ends the other after a dot."""
    if own.get(key) == shape:
        return True
    return any(
        s == shape and (k.endswith("." + key) or key.endswith("." + k)) for k, s in own.items()
    )
