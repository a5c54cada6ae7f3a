"""Other trained networks beside the observed model: a decoder beside its encoder, a GAN's
second network. Each is kept as it was at its first training call, with that call's
positional arguments, for experiments that need only a module and an input (batch
independence)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nndoctor.copying import deepcopy_detached
from nndoctor.trees import map_tensors, tensors

# Networks kept beside the observed model (the copies and their inputs cost memory).
MAX_OTHER_ROOTS = 2


@dataclass
class OtherRoot:
    """A trained network called by the script beside the observed model."""

    name: str  # its class
    module: nn.Module  # a copy at its first training call
    args: tuple[Any, ...]  # that call's positional arguments, detached copies
    source: int  # id() of the live network it copies


class OtherRootRecorder:
    """Notes the first training call of each network with trainable parameters that is
    neither the observed model nor part of it, nor part of a network already noted. A
    global forward pre-hook meets a network before its submodules, so the first module of
    a tree met outside the model is its root."""

    def __init__(self) -> None:
        self.roots: list[OtherRoot] = []
        self._known: set[int] = set()
        self._model_id: int | None = None

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
            )
        )

    def beside(self, model: nn.Module | None) -> list[OtherRoot]:
        """The networks noted, less the one observed in the end (the model a retarget
        chose may have been noted before it was chosen)."""
        return [r for r in self.roots if model is None or r.source != id(model)]
