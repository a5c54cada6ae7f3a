"""Other trained networks beside the observed model: a decoder beside its encoder, a GAN's
second network. Each is kept as it was at its first training call, with that call's
positional arguments, for experiments that need only a module and an input (batch
independence), and followed to the end of the observation for one fact: whether its
gradients are used. A network whose parameters receive gradients while no optimizer holds
them and nothing else changes them (a generator whose optimizer was built over the
discriminator's parameters) never trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nndoctor.capture.retarget import live_optimizers
from nndoctor.copying import deepcopy_detached
from nndoctor.probes.recording import UnheldNetwork
from nndoctor.trees import map_tensors, tensors

# Networks kept beside the observed model (the copies and their inputs cost memory).
MAX_OTHER_ROOTS = 2
# Optimizer steps of other networks after a network's gradients first appeared, with none
# by the optimizers holding it, before its gradients are called unused: a generator stepped
# once per five critic steps steps well within them.
UNUSED_STEPS = 10


@dataclass
class OtherRoot:
    """A trained network called by the script beside the observed model."""

    name: str  # its class
    module: nn.Module  # a copy at its first training call
    args: tuple[Any, ...]  # that call's positional arguments, detached copies
    source: int  # id() of the live network it copies
    # The live network, until the observation ends: read at optimizer steps, then compared
    # with the copy (a reference, not a weak one: the script's names are gone by then).
    live: nn.Module | None = None
    # Its trainable parameters (none shared with the observed model) holding a gradient at
    # the first optimizer step where any did; 0 until then.
    with_grad: int = 0
    parameters: int = 0
    # The live optimizers holding any of them then (read once: scanning the live objects
    # costs a few milliseconds); None until gradients were seen.
    holders: dict[int, str] | None = None
    # Optimizer steps since, by those holders and by any other optimizer.
    holder_steps: int = 0
    other_steps: int = 0


class OtherRootRecorder:
    """Notes the first training call of each network with trainable parameters that is
    neither the observed model nor part of it, nor part of a network already noted. A
    global forward pre-hook meets a network before its submodules, so the first module of
    a tree met outside the model is its root."""

    def __init__(self) -> None:
        self.roots: list[OtherRoot] = []
        self._known: set[int] = set()
        self._model_id: int | None = None
        self._shared: tuple[int, set[int]] | None = None  # (id of the model, its parameters' ids)

    def note(self, module: nn.Module, args: tuple[Any, ...], model: nn.Module | None) -> None:
        if model is None or len(self.roots) >= MAX_OTHER_ROOTS:
            return
        if id(model) != self._model_id:
            # The observed model was found or replaced: its parts are no other network.
            self._model_id = id(model)
            self._known |= {id(m) for m in model.modules()}
        if id(module) in self._known or not module.training or not torch.is_grad_enabled():
            return
        parts = list(module.modules())
        self._known |= {id(m) for m in parts}
        if any(m is model for m in parts):
            return  # a wrapper around the observed model
        if not any(p.requires_grad for p in module.parameters()) or not tensors(args):
            return
        self.roots.append(
            OtherRoot(
                type(module).__name__,
                deepcopy_detached(module),
                map_tensors(lambda t: t.detach().clone(), args),
                id(module),
                live=module,
            )
        )

    def note_gradients(self, optimizer: torch.optim.Optimizer, model: nn.Module | None) -> None:
        """At ``optimizer``'s step: for each network not yet seen with gradients, whether
        its parameters hold any now, and if so which optimizers hold them; for the others,
        whether this step is one of theirs (host-side reads only: ``grad is None`` needs no
        device sync)."""
        for root in self.roots:
            if root.live is None:
                continue
            if root.holders is None:
                self._first_gradients(root, self._model_parameters(model))
            if root.holders is not None:
                if id(optimizer) in root.holders:
                    root.holder_steps += 1
                else:
                    root.other_steps += 1

    def _model_parameters(self, model: nn.Module | None) -> set[int]:
        """The ids of ``model``'s parameters, read once per model (not at every step)."""
        if model is None:
            return set()
        if self._shared is None or self._shared[0] != id(model):
            self._shared = (id(model), {id(p) for p in model.parameters()})
        return self._shared[1]

    @staticmethod
    def _first_gradients(root: OtherRoot, shared: set[int]) -> None:
        assert root.live is not None
        trainable = [p for p in root.live.parameters() if p.requires_grad and id(p) not in shared]
        with_grad = sum(p.grad is not None for p in trainable)
        if not with_grad:
            return
        ids = {id(p) for p in trainable}
        root.with_grad, root.parameters = with_grad, len(trainable)
        root.holders = {
            id(o): type(o).__name__
            for o in live_optimizers()
            if any(id(p) in ids for g in o.param_groups for p in g["params"])
        }

    def beside(self, model: nn.Module | None) -> list[OtherRoot]:
        """The networks noted, less the one observed in the end (the model a retarget
        chose may have been noted before it was chosen)."""
        return [r for r in self.roots if model is None or r.source != id(model)]

    def unheld(self, model: nn.Module | None, loaded: list[str]) -> list[UnheldNetwork]:
        """The networks beside ``model`` whose parameters received gradients that no
        optimizer used: none holds them, or those that do never stepped in the
        ``UNUSED_STEPS`` or more optimizer steps that followed; and unchanged since their
        first training call (an exponential moving average or a hand-written update changes
        them: they do train). Releases the live networks. ``loaded``: class names of modules
        that loaded weights before training."""
        found: list[UnheldNetwork] = []
        try:
            for root in self.beside(model):
                if root.live is None or root.holders is None:
                    continue
                if root.holders and (root.holder_steps or root.other_steps < UNUSED_STEPS):
                    continue
                copies = dict(root.module.named_parameters())
                with torch.no_grad():
                    changed = any(
                        name not in copies or not torch.equal(p.detach(), copies[name].to(p.device))
                        for name, p in root.live.named_parameters()
                    )
                if changed:
                    continue
                found.append(
                    UnheldNetwork(
                        module=root.name,
                        parameters=root.parameters,
                        with_grad=root.with_grad,
                        loaded=any(type(m).__name__ in loaded for m in root.live.modules()),
                        holders=sorted(set(root.holders.values())),
                        steps_without=root.other_steps,
                    )
                )
        finally:
            for root in self.roots:
                root.live = None
        return found
