"""Following the network an optimizer trains when the first one a script calls is not it.

Zero-code capture observes the first module with parameters that a script calls. That is
not always the network being trained: a frozen feature extractor called before the head
it feeds, a pretrained embedding, an encoder whose optimizer is somewhere else. Two
situations are told apart at the first optimizer step that holds none of the parameters of
the module found first:

- **no optimizer holds them at all** (none among the optimizers alive in the process): the
  module is not being trained by this script, and the network that is trained is the one
  called in this step that holds most of the stepping optimizer's parameters. It is
  observed instead, from its next forward, and its initial weights are the ones from before
  this step. The module found first is kept aside: when its parameters received gradients,
  no optimizer uses them, and the report says so (reason 23).
- **an optimizer holds them but has not stepped**: the module is meant to train and may
  yet (a critic stepped five times per generator step, an encoder stepped after its
  decoder). Nothing changes; if that optimizer never steps while the others do, the run
  ends unobserved and says which optimizer never stepped (reason 23).

The decision is made once, from facts of the process (which optimizers exist and hold
which parameters), never from timing; it costs one scan of the live objects at that step.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nndoctor.capture.direct_forwards import direct_parent

# Modules with parameters remembered from the training forwards before the first step:
# enough for any network's module tree, bounded for scripts that never step.
CALLS_KEPT = 512


@dataclass
class Unstepped:
    """The module found first, which no optimizer step updated while others stepped."""

    module: str  # its class name
    parameters: int  # parameter tensors that require grad
    # Of them, the most holding a gradient at any step of another optimizer: a generator's
    # gradients arrive only with its own loss, after the discriminator's first step.
    with_grad: int
    # The optimizers alive that hold its parameters (class names): meant to train it, never
    # stepped while observed; empty when none holds them.
    holders: list[str] = field(default_factory=list)
    stepped: str = ""  # the class of the optimizer that did step, over another module
    trained: str = ""  # the module that optimizer trains (the one observed instead, if any)
    foreign_steps: int = 0  # steps of optimizers over other modules meanwhile

    def describe(self) -> str:
        grads = (
            f"{self.with_grad} of its {self.parameters} trainable parameter tensor(s) receive "
            "gradients"
            if self.with_grad
            else f"its {self.parameters} trainable parameter tensor(s) receive no gradient"
        )
        if self.holders:
            return (
                f"{self.module} is called in training forwards and {grads}, but the "
                f"{' and '.join(self.holders)} optimizer holding its parameters never stepped, "
                f"while {self.stepped} stepped {self.foreign_steps} time(s) over {self.trained}"
            )
        return (
            f"{self.module} is called in training forwards and {grads}, but no optimizer holds "
            f"its parameters; {self.stepped} trains {self.trained}"
        )


class ModelRetarget:
    """Decides, at the first optimizer step that is not the observed model's, whether the
    model to observe is another one (see the module docstring)."""

    def __init__(self) -> None:
        self.called: list[nn.Module] = []  # modules with parameters, in call order
        self._called_ids: set[int] = set()
        self.decided = False
        self.candidate: nn.Module | None = None  # to observe from its next forward
        self.candidate_state: dict[str, torch.Tensor] | None = None
        # The network the first step trains, around the module found first, whose forward
        # the script calls directly (nndoctor.capture.direct_forwards): observed instead.
        self.direct_parent: nn.Module | None = None
        self.unstepped: Unstepped | None = None
        self._first_ids: set[int] = set()
        # The module found first's trainable parameters, read at later steps until one of
        # them holds a gradient (then the count is kept: a step cannot take gradients away).
        self._first_trainable: list[nn.Parameter] = []
        # With no optimizer holding it: its trainable parameters and their sums when it was
        # set aside (on their device: no sync, no copy of a large network), to tell a network
        # nothing trains from one trained by other means (an exponential moving average of
        # the network observed, an update by hand).
        self._aside: list[tuple[nn.Parameter, torch.Tensor]] = []
        # Optimizer id -> (its parameter count, whether it holds any of _first_ids): each
        # optimizer is read once, not at every step, unless its groups grow.
        self._holds: dict[int, tuple[int, bool]] = {}

    # -- before the first step ----------------------------------------------------------
    def note_forward(self, module: nn.Module) -> None:
        """A module's forward, while the first step is awaited (training forwards only)."""
        if self.decided or not torch.is_grad_enabled() or len(self.called) >= CALLS_KEPT:
            return
        if id(module) in self._called_ids or next(module.parameters(), None) is None:
            return
        self._called_ids.add(id(module))
        self.called.append(module)

    def take_candidate(self, module: nn.Module) -> nn.Module | None:
        """At a module's forward: the module to observe from now on, once, if this is it."""
        if self.candidate is None or module is not self.candidate:
            return None
        if module is self.direct_parent and not torch.is_grad_enabled():
            return None  # an evaluation pass through it: observed from a training forward
        self.candidate = None
        return module

    def on_step(self, optimizer: torch.optim.Optimizer, model: nn.Module | None) -> None:
        """Before every optimizer step while the observed model has not stepped (``model``
        None once it has): the decision at the first step that is not the model's, then
        whether the module found first is ever stepped after all."""
        if self.unstepped is not None:
            if not self._first_ids:
                return  # nothing of it could train: no step can change that
            if self._holds_first(optimizer):
                self.unstepped = None  # it trains after all (a critic's fifth step, ...)
                self._first_trainable = []
            else:
                self.unstepped.foreign_steps += 1
                self._count_gradients()
            return
        if self.decided or model is None:
            return
        self.decided = True
        own = {id(p) for p in optimizer_params(optimizer)}
        trainable = [p for p in model.parameters() if p.requires_grad]
        if any(id(p) in own for p in model.parameters()):
            self._follow_direct_parent(own, model)
            self.called.clear()
            return  # the usual case: the first optimizer step is the model's
        self._set_aside(optimizer, own, model, trainable)

    def _follow_direct_parent(self, own: set[int], model: nn.Module) -> None:
        parent = direct_parent(own, model, self._called_ids)
        if parent is not None:
            self.direct_parent = self.candidate = parent
            self.candidate_state = {k: v.detach().clone() for k, v in parent.state_dict().items()}

    def set_aside_changed(self) -> bool:
        """Whether the module set aside, which no optimizer holds, changed since (once, at
        the end of the observation: it reads the values, a device sync). Releases them."""
        try:
            with torch.no_grad():
                return any(
                    not torch.equal(p.detach().double().sum(), before) for p, before in self._aside
                )
        finally:
            self._aside = []

    def _count_gradients(self) -> None:
        assert self.unstepped is not None
        if not self._first_trainable:
            return
        with_grad = sum(p.grad is not None for p in self._first_trainable)
        if with_grad > self.unstepped.with_grad:
            self.unstepped.with_grad = with_grad
        if with_grad:
            self._first_trainable = []

    def _holds_first(self, optimizer: torch.optim.Optimizer) -> bool:
        count = sum(len(g["params"]) for g in optimizer.param_groups)
        known = self._holds.get(id(optimizer))
        if known is None or known[0] != count:
            held = any(id(p) in self._first_ids for p in optimizer_params(optimizer))
            known = self._holds[id(optimizer)] = (count, held)
        return known[1]

    def _set_aside(
        self,
        optimizer: torch.optim.Optimizer,
        own: set[int],
        model: nn.Module,
        trainable: list[nn.Parameter],
    ) -> None:
        trained = self._trained_by(own, model)
        model_ids = {id(p) for p in trainable}
        holders = [
            o
            for o in live_optimizers()
            if o is not optimizer and any(id(p) in model_ids for p in optimizer_params(o))
        ]
        self._first_ids = model_ids
        self._first_trainable = trainable
        self.unstepped = Unstepped(
            module=type(model).__name__,
            parameters=len(trainable),
            with_grad=sum(p.grad is not None for p in trainable),
            holders=[type(o).__name__ for o in holders],
            stepped=type(optimizer).__name__,
            trained=type(trained).__name__ if trained is not None else "another network",
            foreign_steps=1,
        )
        if not holders:
            with torch.no_grad():
                self._aside = [(p, p.detach().double().sum()) for p in trainable]
        if not holders and trained is not None:
            self.candidate = trained
            self.candidate_state = {k: v.detach().clone() for k, v in trained.state_dict().items()}
        self.called.clear()

    def _trained_by(self, own: set[int], model: nn.Module) -> nn.Module | None:
        """The module called in training forwards that holds most of ``own`` (the outermost
        on a tie: forwards are entered from the outside in), outside ``model``."""
        inside = {id(m) for m in model.modules()}
        best, best_count = None, 0
        for module in self.called:
            if id(module) in inside:
                continue
            count = sum(id(p) in own for p in module.parameters())
            if count > best_count:
                best, best_count = module, count
        return best


def optimizer_params(optimizer: torch.optim.Optimizer) -> list[Any]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def live_optimizers() -> list[torch.optim.Optimizer]:
    """Every optimizer alive in the process. By ``type``: ``isinstance`` would ask every
    object for its ``__class__``, which some modules' lazy attributes answer with a warning."""
    base = torch.optim.Optimizer
    return [o for o in gc.get_objects() if issubclass(type(o), base)]
