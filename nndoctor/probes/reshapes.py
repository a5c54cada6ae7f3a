"""Every ``view`` and ``reshape`` the user's own code runs during one call of a model copy.

A reshape only relabels memory: it never moves a value. Which reshapes a forward runs,
with the shape before and after and the line of user code that asked for each, is what
an experiment needs to tell a relabelling that keeps each value's meaning (a flatten, a
split of the heads) from one that does not (a transpose written as a view). The recorder
is a ``TorchFunctionMode`` that lives for the block and hooks that keep the module stack;
everything is removed on exit, and a failure to record never stops the call.

Calls made from inside torch (``nn.MultiheadAttention``'s own reshapes) or from an
installed library are tested code and left out: only the frames of the user's files count.
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from nndoctor.probes.trace import module_stack

_RESHAPES = {
    torch.Tensor.view: "view",
    torch.Tensor.reshape: "reshape",
    torch.reshape: "reshape",
    torch.Tensor.view_as: "view_as",
    torch.Tensor.reshape_as: "reshape_as",
}
_TORCH = os.path.dirname(torch.__file__)
_NNDOCTOR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The zoo's models are subjects, written as a user writes them.
_ZOO = os.path.join(_NNDOCTOR, "zoo")
_LIBRARY_DIRS = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class ReshapeEvent:
    """One reshape of a tensor that is no parameter, by the user's code."""

    op: str  # view | reshape | view_as | reshape_as
    before: tuple[int, ...]
    after: tuple[int, ...]
    module: str  # the innermost module under way ("<root>" for the model itself)
    file: str
    line: int
    constant: bool = False  # every value of the tensor is the same: no order to lose
    # The index of the latest earlier event that reshaped a view of the same memory (the
    # tensor a view was taken of, alive at both reshapes): a relabelling relabelled again,
    # with at most a slice in between and no computation; None otherwise.
    again_of: int | None = None


def _user_frame(frame: FrameType) -> tuple[str, int] | None:
    """The file and line of ``frame``, or None when it is torch's, nndoctor's own (the zoo
    aside) or an installed library's."""
    name = frame.f_code.co_filename
    if name.startswith(_ZOO):
        return name, frame.f_lineno
    if name.startswith((_TORCH, _NNDOCTOR)) or any(d in name for d in _LIBRARY_DIRS):
        return None
    return name, frame.f_lineno


def _constant(t: torch.Tensor) -> bool:
    flat = t.detach().reshape(-1)
    return flat.numel() > 0 and bool((flat == flat[0]).all())


class _ReshapeRecorder(TorchFunctionMode):
    def __init__(self, stack: list[str]) -> None:
        super().__init__()
        self.stack = stack
        self.events: list[ReshapeEvent] = []
        # Per event, the tensor whose memory it reshaped (the base of a view), held weakly:
        # identity with a live one, not an id that a freed tensor's successor may reuse.
        self._memories: list[weakref.ReferenceType[torch.Tensor]] = []

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        op = _RESHAPES.get(func)
        if op is not None:
            try:
                self._record(op, args, out, sys._getframe(1))
            except Exception:  # noqa: BLE001 - recording never breaks the forward
                pass
        return out

    def _record(self, op: str, args: tuple[Any, ...], out: Any, caller: FrameType) -> None:
        source = args[0] if args else None
        if not (isinstance(source, torch.Tensor) and isinstance(out, torch.Tensor)):
            return
        # A parameter relabelled is still a parameter: whatever order its values take,
        # training gives them their meaning. A view as another dtype is no reshape.
        if isinstance(source, nn.Parameter) or source.dtype != out.dtype:
            return
        where = _user_frame(caller)
        if where is None:
            return
        memory = source._base if source._base is not None else source
        again_of = next(
            (k for k in range(len(self.events) - 1, -1, -1) if self._memories[k]() is memory),
            None,
        )
        self._memories.append(weakref.ref(memory))
        self.events.append(
            ReshapeEvent(
                op,
                tuple(source.shape),
                tuple(out.shape),
                self.stack[-1] if self.stack else "",
                *where,
                constant=_constant(source),
                again_of=again_of,
            )
        )


@contextmanager
def recorded_reshapes(model: nn.Module | None = None) -> Iterator[list[ReshapeEvent]]:
    """Record the reshapes run by user code inside the block, each with the innermost of
    ``model``'s modules under way; the mode and hooks are removed on exit."""
    stack: list[str] = []
    recorder = _ReshapeRecorder(stack)
    with module_stack(model, stack), recorder:
        yield recorder.events
