"""Copies of the model that the script evaluates: an exponential moving average, a best
checkpoint, an ``AveragedModel``. Each is a network of the model's own kind (the same
parameter names and shapes) called with gradients off or in ``eval()`` mode. At its first
such call two facts are read, once: whether its BatchNorm layers ever tracked statistics
(an average over ``parameters()`` leaves the running means and variances at 0 and 1), and
whether it still holds the model's initial weights (an average never updated). The steps
at which it is called are counted to the end: a reference model called at every training
step (DPO, self-distillation) holds fixed weights by design."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from nndoctor.probes.layers import BATCH_NORM
from nndoctor.probes.recording import EvaluatedCopy

# Copies followed (each is compared with the model once).
MAX_EVALUATED_COPIES = 2


class EvaluatedCopyRecorder:
    """Finds the model's evaluated copies among the modules the script calls (see the
    module's docstring). Cheap for every other module: one type comparison, then its id is
    remembered."""

    def __init__(self) -> None:
        self.copies: list[EvaluatedCopy] = []
        self._by_id: dict[int, EvaluatedCopy] = {}
        self._other: set[int] = set()
        # The submodules of copies held by the script, by id, to their copy: an evaluation
        # that calls a copy's parts (a decoder run step by step) evaluates that copy.
        self._parts: dict[int, nn.Module] = {}

    def adopt_held(self, held: Iterable[Any], model: nn.Module | None) -> None:
        """Take note of the copies of ``model`` among the objects ``held`` (the script's
        variables), and of an ``AveragedModel`` or any wrapper holding one, so that calls
        of their parts count as calls of the copy."""
        if model is None:
            return
        for value in held:
            if not isinstance(value, nn.Module) or value is model:
                continue
            for sub in value.modules():
                if sub is model or id(sub) in self._parts:
                    continue
                if type(sub) is type(model) and _same_parameters(sub, model):
                    self._parts.update({id(part): sub for part in sub.modules()})

    def note(
        self,
        module: nn.Module,
        model: nn.Module | None,
        initial_state: dict[str, torch.Tensor] | None,
        step: int,
    ) -> None:
        if model is None or module is model:
            return
        module = self._parts.get(id(module), module)
        known = self._by_id.get(id(module))
        evaluating = not torch.is_grad_enabled() or not module.training
        if known is not None:
            if evaluating:
                known.steps_called.add(step)
            return
        if not evaluating or id(module) in self._other or len(self.copies) >= MAX_EVALUATED_COPIES:
            return
        self._other.add(id(module))
        if type(module) is not type(model) or not _same_parameters(module, model):
            return
        copy = _read_copy(module, model, initial_state, step)
        self.copies.append(copy)
        self._by_id[id(module)] = copy


def _same_parameters(a: nn.Module, b: nn.Module) -> bool:
    pa = [(n, tuple(p.shape)) for n, p in a.named_parameters()]
    pb = [(n, tuple(p.shape)) for n, p in b.named_parameters()]
    return bool(pa) and pa == pb


def _read_copy(
    module: nn.Module,
    model: nn.Module,
    initial_state: dict[str, torch.Tensor] | None,
    step: int,
) -> EvaluatedCopy:
    ours = dict(model.named_modules())
    untracked, total = [], 0
    for name, m in module.named_modules():
        twin = ours.get(name)
        if not isinstance(m, BATCH_NORM) or not isinstance(twin, BATCH_NORM):
            continue
        counted, counted_twin = _batches_tracked(m), _batches_tracked(twin)
        if counted is None or counted_twin is None or m.training:
            continue
        total += 1
        if counted == 0 and counted_twin > 0:
            untracked.append(name)
    initial, changed = _at_initial_weights(module, model, initial_state)
    return EvaluatedCopy(
        network=type(module).__name__,
        step=step,
        batch_norms=total,
        batch_norms_untracked=untracked,
        at_initial_weights=initial,
        model_changed=changed,
        steps_called={step},
    )


def _batches_tracked(m: nn.Module) -> int | None:
    counter = getattr(m, "num_batches_tracked", None)
    if not isinstance(counter, torch.Tensor) or not getattr(m, "track_running_stats", False):
        return None
    return int(counter.item())


def _at_initial_weights(
    module: nn.Module, model: nn.Module, initial_state: dict[str, torch.Tensor] | None
) -> tuple[bool, bool]:
    """Whether every parameter of ``module`` equals the model's initial value, and whether
    any of the model's own parameters has moved from it."""
    if not initial_state:
        return False, False
    with torch.no_grad():
        initial = all(
            name in initial_state and _equal(p, initial_state[name])
            for name, p in module.named_parameters()
        )
        changed = any(
            name in initial_state and not _equal(p, initial_state[name])
            for name, p in model.named_parameters()
        )
    return initial, changed


def _equal(a: torch.Tensor, b: Any) -> bool:
    return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b.to(a.device))
