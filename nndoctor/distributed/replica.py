"""Copies of a rank's model that rank 0's checks can use without the other ranks.

- :func:`local_copy`: the module DDP wraps, copied with its optimizer; its SyncBatchNorm
  layers compute local statistics, so an experiment on rank 0 never waits for a peer.
- :func:`shard_replica`: an FSDP-sharded module (``fully_shard``) as plain modules of its
  own classes holding this rank's shards as ordinary tensors. FSDP refuses to be copied,
  and the whole parameters would take a collective (and the memory FSDP saves), so the
  replica serves the observation checks only: its shapes are the shards', and a check
  that runs it is skipped, saying so (its forward raises
  :class:`~nndoctor.checks.registry.SkipCheck`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from nndoctor.copying import deepcopy_detached


class _LocalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """A SyncBatchNorm of a copy that trains on one rank alone: plain batch statistics,
    since an experiment on rank 0 must never wait for the other ranks."""

    def _check_input_dim(self, input: Any) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")


def local_copy(model: nn.Module, optimizer: Any) -> tuple[nn.Module, Any]:
    """Copies of ``model`` and ``optimizer`` (together, so the optimizer holds the copy's
    parameters) whose SyncBatchNorm layers compute their statistics locally."""
    model_copy, optimizer_copy = deepcopy_detached((model, optimizer))
    for m in model_copy.modules():
        if isinstance(m, nn.SyncBatchNorm):
            m.__class__ = _LocalBatchNorm
    return model_copy, optimizer_copy


def _local(t: torch.Tensor) -> torch.Tensor:
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def _plain_class(module: nn.Module) -> type:
    """The module's own class, without the FSDP subclass ``fully_shard`` gave it."""
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # an older torch: nothing is sharded by fully_shard
        return type(module)
    cls = type(module)
    if not issubclass(cls, FSDPModule):
        return cls
    return next(b for b in cls.__mro__[1:] if not issubclass(b, FSDPModule))


def shard_replica(
    model: nn.Module, optimizer: Any, initial_state: dict[str, Any] | None
) -> tuple[nn.Module, Any, dict[str, torch.Tensor] | None]:
    """A plain replica of an FSDP-sharded ``model`` (this rank's shards, no hooks), an
    optimizer of the same class and settings over it, and the initial state as shards."""
    replicas: dict[int, nn.Parameter] = {}
    replica = _replicate(model, replicas)
    replica.register_forward_pre_hook(_sharded)
    rebuilt = None
    if optimizer is not None:
        groups = [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [replicas[id(p)] for p in g["params"] if id(p) in replicas],
            }
            for g in optimizer.param_groups
        ]
        rebuilt = type(optimizer)([g for g in groups if g["params"]], **optimizer.defaults)
    state = None
    if initial_state is not None:
        state = {k: _local(v).detach().clone() for k, v in initial_state.items()}
    return replica, rebuilt, state


def _sharded(module: nn.Module, args: Any) -> None:
    from nndoctor.checks.registry import SkipCheck

    raise SkipCheck(
        "the model is sharded by FSDP: each rank holds shards of its parameters, and running "
        "it whole on one rank is not supported"
    )


def _replicate(module: nn.Module, replicas: dict[int, nn.Parameter]) -> nn.Module:
    new = object.__new__(_plain_class(module))
    # FSDP's state (composable-API entries, its flags) stays with the original.
    new.__dict__ = {
        k: v
        for k, v in module.__dict__.items()
        if not k.startswith(("__composable_api_state_key", "_fsdp", "_is_fsdp"))
    }
    for name, value in list(new.__dict__.items()):
        # No hook of the original (FSDP's all-gathers, the probes') follows the replica.
        if name.endswith("hooks") and isinstance(value, dict):
            new.__dict__[name] = OrderedDict()
    new._parameters = {}
    for name, p in module._parameters.items():
        if p is None:
            new._parameters[name] = None
            continue
        local = nn.Parameter(_local(p).detach().clone(), requires_grad=p.requires_grad)
        replicas[id(p)] = local
        new._parameters[name] = local
    new._buffers = {
        name: None if b is None else _local(b).detach().clone()
        for name, b in module._buffers.items()
    }
    new._modules = {
        name: None if m is None else _replicate(m, replicas) for name, m in module._modules.items()
    }
    return new
