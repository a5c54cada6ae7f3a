"""Two networks in a game (a GAN): which way each one's loss pushes the critic's score of
the other's outputs.

A network whose training call takes another network's output (a discriminator called on
generated samples, ``netD(fake)`` or ``netD(fake.detach())``) is that output's *critic*,
the other its *producer*. At each such call a gradient hook on the critic's output
records, once the loss is back-propagated, ``sum(grad)`` and ``sum(|grad|)``: gradient
descent moves the output against its gradient, so their ratio says which way that loss
pushes the critic's score of the produced samples (+1: every element down, -1: every one
up). The optimizer that steps next says whose update the loss served: the critic's (it
holds the critic's parameters) or the producer's. In a game the two push the same score
opposite ways; the probe only records, ``generator-not-adversarial`` judges.

Only calls at the top of the module tree count (a network, not its layers), in the first
``MAX_ADVERSARIAL_STEPS`` optimizer steps of any optimizer; the hooks are global (the
critic is usually not the observed model) and removed after those steps.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from nndoctor.probes.recording import CriticPush, Recording
from nndoctor.trees import tensors

# Optimizer steps (of either network) over which calls are watched: a few rounds of a
# discriminator step and a generator step, enough for a pattern of every iteration.
MAX_ADVERSARIAL_STEPS = 16
# Outputs of the last network calls kept as possible producers' outputs.
MAX_PRODUCED = 8
# ... held (a detached alias: the values, not the graph) up to this size, so that
# ``netD(netG(z).detach())``, whose generated tensor dies before the critic is called,
# still shows where its input came from (and no other tensor can take its memory);
# larger outputs (a language model's logits) are only followed while the script holds them.
MAX_HELD_BYTES = 16 * 2**20


def _storage(t: torch.Tensor) -> int | None:
    try:
        return t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):
        return None  # a wrapped tensor (functorch, a subclass) without a plain storage


@dataclass
class _Produced:
    output: weakref.ReferenceType[torch.Tensor]
    storage: int
    module: nn.Module
    held: torch.Tensor | None = None

    def alive(self) -> bool:
        return self.held is not None or self.output() is not None


@dataclass
class _Call:
    """A critic's call on a producer's output, and the gradient sums of its outputs."""

    critic: nn.Module
    producer: nn.Module
    # Per output tensor (its place among the call's float outputs): [sum(grad), sum(|grad|)].
    sums: dict[int, torch.Tensor] = field(default_factory=dict)


class AdversarialProbe:
    """Watches network calls on other networks' outputs; see the module docstring."""

    def __init__(
        self, recording: Recording, guard: Callable[[str, Callable[..., Any]], Callable[..., Any]]
    ) -> None:
        self.recording = recording
        self._guard = guard
        self._handles: list[RemovableHandle] = []
        self._depth = 0
        self._produced: list[_Produced] = []
        self._waiting: list[_Call] = []  # grads arrived, no optimizer step since
        self._labelled: list[tuple[_Call, str, int]] = []
        self._params: weakref.WeakKeyDictionary[nn.Module, frozenset[int]] = (
            weakref.WeakKeyDictionary()
        )
        self._steps = 0

    def install(self) -> None:
        from torch.nn.modules import module as module_mod

        self._handles.append(
            module_mod.register_module_forward_pre_hook(self._guard("adversarial", self._enter))
        )
        self._handles.append(
            module_mod.register_module_forward_hook(self._guard("adversarial", self._leave))
        )

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    # -- calls -------------------------------------------------------------------
    def _enter(self, module: nn.Module, args: Any) -> None:
        self._depth += 1

    def _leave(self, module: nn.Module, args: Any, output: Any) -> None:
        self._depth = max(self._depth - 1, 0)
        if self._depth:
            return
        if not self._param_ids(module):
            return  # no network: a parameter-free function module
        outputs = [t for t in tensors(output) if t.is_floating_point()]
        # The critic may be frozen for the producer's update (requires_grad switched off,
        # as WGAN-GP code does): its output still carries the producer's gradient.
        producer = self._producer_of(module, args) if torch.is_grad_enabled() else None
        if producer is not None:
            call = _Call(critic=module, producer=producer)
            for k, out in enumerate(outputs):
                if out.requires_grad:
                    out.register_hook(self._guard("adversarial", self._grad_hook(call, k)))
        # Produced under no_grad too: the critic's own update is often fed samples
        # generated without a graph.
        for out in outputs:
            storage = _storage(out)
            if storage is not None:
                small = out.numel() * out.element_size() <= MAX_HELD_BYTES
                held = out.detach() if small else None
                self._produced.append(_Produced(weakref.ref(out), storage, module, held))
        del self._produced[:-MAX_PRODUCED]

    def _producer_of(self, module: nn.Module, args: Any) -> nn.Module | None:
        """The other network whose output (or a detached view of it) ``module`` was given."""
        mine = self._param_ids(module)
        for arg in tensors(args):
            storage = _storage(arg)
            if storage is None:
                continue
            for p in reversed(self._produced):
                if p.storage != storage or not p.alive() or p.module is module:
                    continue
                if self._param_ids(p.module) & mine:
                    continue  # a part of the same network (weights shared)
                return p.module
        return None

    def _param_ids(self, module: nn.Module) -> frozenset[int]:
        ids = self._params.get(module)
        if ids is None:
            ids = frozenset(id(p) for p in module.parameters())
            self._params[module] = ids
        return ids

    def _grad_hook(self, call: _Call, k: int) -> Callable[[torch.Tensor], None]:
        def hook(grad: torch.Tensor) -> None:
            with torch.no_grad():
                g = grad.detach().float()
                new = torch.stack([g.sum(), g.abs().sum()])
                call.sums[k] = call.sums[k] + new if k in call.sums else new
            if not any(c is call for c in self._waiting):
                self._waiting.append(call)

        return hook

    # -- steps -------------------------------------------------------------------
    def on_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Label the calls whose gradients arrived since the last step by whose update
        this optimizer makes; stop watching after MAX_ADVERSARIAL_STEPS steps."""
        self._depth = 0
        stepped = {id(p) for g in optimizer.param_groups for p in g["params"]}
        still: list[_Call] = []
        for call in self._waiting:
            if self._param_ids(call.critic) & stepped:
                self._labelled.append((call, "critic", self._steps))
            elif self._param_ids(call.producer) & stepped:
                self._labelled.append((call, "producer", self._steps))
            else:
                still.append(call)
        self._waiting = still
        self._steps += 1
        if self._steps >= MAX_ADVERSARIAL_STEPS:
            self.remove()
            self._produced.clear()

    def finish(self) -> None:
        """Remove the hooks and copy what was measured into the recording (one host copy)."""
        self.remove()
        self._produced.clear()
        rows = [
            (call, side, step, k, sums)
            for call, side, step in self._labelled
            for k, sums in sorted(call.sums.items())
        ]
        if not rows:
            return
        values = torch.stack([sums.cpu() for *_, sums in rows]).tolist()
        for (call, side, step, k, _), (total, size) in zip(rows, values, strict=True):
            self.recording.critic_pushes.append(
                CriticPush(
                    critic=type(call.critic).__name__,
                    producer=type(call.producer).__name__,
                    side=side,
                    step=step,
                    grad_sum=total,
                    grad_abs_sum=size,
                    output=k,
                )
            )
        self._labelled.clear()
